"""The serving layer: putting a registry version behind Triton, and scoring with it.

  deploy         the deploy stage: model repository, load on every replica, parity, rollback
  batch_predict  the predict-batch stage: a day's flights through Triton
  triton/        the Triton server, model repository, client, routing and the backend models
"""
