"""The monitoring layer: drift, performance and the retraining decision.

  monitor      the monitor stage (Evidently drift, prediction drift, performance, metrics)
  policy       the retraining policy: when drift or performance starts a training run
  calibration  scored-day-like frames straight from the source, to calibrate the policy
"""
