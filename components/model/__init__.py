"""The model layer: the network, training, evaluation and the registry.

  network     the delay MLP and its TorchScript export (preprocessing inside the model)
  fitting     how the ensemble's heads are fitted and calibrated
  train       the train stage
  baselines   the references a model is judged against: carrier rate, logistic regression, LightGBM
  gate        the blessing decision on paired bootstrap intervals, the slice floor included
  slices      per-slice ROC AUC intervals (carrier, origin, hour band, month) and parity
  evaluate    the evaluate stage: holdout metrics, slices, baselines, the blessing decision
  report      the evaluation's report.md (and the tables the model card shares)
  registry    the model registry on the artifact store: versions, aliases, checksums
  card        the model card of a registry version (card_markdown: its markdown)
  register    the register stage: an evaluated run becomes a version with its card, promoted when blessed
"""
