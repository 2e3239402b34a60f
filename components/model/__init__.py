"""The model layer: the network, training, evaluation and the registry.

  network     the delay MLP and its TorchScript export (preprocessing inside the model)
  train       the train stage
  evaluate    the evaluate stage: holdout metrics, slices, baselines, the blessing decision
  registry    the model registry on the artifact store and the register stage
"""
