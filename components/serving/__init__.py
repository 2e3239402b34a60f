"""The serving layer: putting a registry version behind Triton, and scoring with it.

  deploy         the deploy stage: planned without I/O, then loaded on every replica, checked, rolled back
  deploy_lock    the deploy lease: one deploy per model at a time
  parity         Triton's answers against the TorchScript file's, on a fixed sample
  batch_predict  the predict-batch stage: a day's flights through Triton
  triton/        the Triton server, model repository, client, routing and the backend models
"""
