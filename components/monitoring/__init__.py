"""The monitoring layer: drift, performance and the retraining decision.

  monitor       the monitor stage: its inputs and the order of its steps
  window        which scored rows a run compares (planning, no I/O)
  drift         data drift (Evidently's stat tests) and prediction drift (PSI), the sampling cap
  performance   ROC AUC, log loss and calibration of the days whose labels have landed
  decision_log  the day's retraining decision and its record under monitoring/decisions/
  report        summary.json, metrics.prom, the compared rows and the Pushgateway push
  render        Evidently's HTML report of a monitored day, drawn off the hot path from its compared rows
  policy        the retraining policy: when drift or performance starts a training run
  calibration   scored-day-like frames straight from the source, to calibrate the policy
"""
