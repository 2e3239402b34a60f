"""The model layer: the network, training, evaluation and the registry.

  network     the delay MLP and its TorchScript export (preprocessing inside the model)
  train       the train stage
  baselines   the references a model is judged against: carrier rate, logistic regression, LightGBM
  evaluate    the evaluate stage: holdout metrics, slices, baselines, the blessing decision
  registry    the model registry on the artifact store: versions, aliases, checksums
  register    the register stage: an evaluated run becomes a version, promoted when blessed
"""
