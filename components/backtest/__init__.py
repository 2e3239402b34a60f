"""The backtest: a replay of 2013 under retraining policies, day by day, resumable.

  run     the backtest command and its day loop
  store   the backtest's own store root
  report  the report: monthly table, figure, summary

How a day runs, resuming, promotion, the report: docs/BACKTEST.md.
"""
