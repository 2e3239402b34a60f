"""Monitoring cost: the monitor stage per 100k scored rows, against the same drift statistics
computed directly with scipy on the same rows (normed Wasserstein, Jensen-Shannon, PSI).

Data: real 2013 flights scored by a January-March model; the scored window is the days from
June 1 on that hold >= 100k flights (about 3.5 months); the reference is the model's 5,000-row
sample. Measured in one run:
  - monitor stage: read the window's prediction partitions, Evidently drift report, performance,
    HTML + JSON + metrics, atomic publish, decision (the whole `flightdeck monitor` call)
  - Evidently drift only: the Report with one ValueDrift per column, same rows
  - baseline: scipy on the same rows and columns (what the drift numbers cost at minimum)
"""

from __future__ import annotations

import time

import pandas as pd

from benchmarks.harness import Context, Result, peak_rss_mb

ROWS = 100_000


def run(ctx: Context) -> list[Result]:
    from components.contracts.stages import MonitorParams
    from components.core.store import open_store
    from components.monitoring import calibration as mb
    from components.monitoring.drift import drift_statistics
    from components.monitoring.monitor import monitor
    from components.monitoring.policy import load_policy

    rows_wanted = 20_000 if ctx.quick else ROWS
    store = open_store()
    frame = mb.year_frame()
    jan_mar = ("2013-01-01", "2013-03-31")
    scorer = mb.Scorer(mb.days(frame, *jan_mar))
    version = mb.register_reference_model(store, mb.reference_sample(frame, *jan_mar, n=5000), scorer, jan_mar)
    day, n_days, rows = pd.Timestamp("2013-06-01"), 0, 0
    while rows < rows_wanted:
        d = str((day + pd.Timedelta(days=n_days)).date())
        rows += len(mb.publish_predictions(store, frame, d, version, scorer))
        mb.publish_labels(store, frame, d)
        n_days += 1
    last = str((day + pd.Timedelta(days=n_days - 1)).date())
    policy = load_policy(window_days=n_days)
    current = mb.days(frame, "2013-06-01", last).copy()
    current["probability"] = scorer(current)
    import io

    from components.model.registry import open_registry

    reference = pd.read_parquet(io.BytesIO(open_registry(store=store).read_file(version, "reference.parquet")))
    reference = reference.rename(columns={"prediction": "probability"})

    drift_statistics(reference.head(2000), current.head(2000), policy)  # imports Evidently once, outside timing
    t0 = time.perf_counter()
    scipy_stats = drift_statistics(reference, current, policy, engine="scipy")
    scipy_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ev_stats = drift_statistics(reference, current, policy)
    evidently_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = monitor(MonitorParams(date=last, window_days=n_days), store)
    monitor_s = time.perf_counter() - t0
    per = ROWS / rows
    max_diff = max(abs(scipy_stats["features"][c]["score"] - e["score"]) for c, e in ev_stats["features"].items())
    note = (f"{rows} rows ({n_days} days from 2013-06-01), {ev_stats['n_tested']} features + score, reference 5000 "
            f"rows; drift share {result['drift_share']:.2f}; max |Evidently - scipy| {max_diff:.1e}")
    return [
        Result("monitor", "monitor stage per 100k scored rows", monitor_s * per, "s",
               "scipy drift statistics, same rows", scipy_s * per, higher_is_better=False,
               notes=note, peak_rss_mb=peak_rss_mb()),
        Result("monitor", "Evidently drift report per 100k rows", evidently_s * per, "s",
               "scipy drift statistics, same rows", scipy_s * per, higher_is_better=False,
               notes="the drift part of the stage alone (Report + ValueDrift per column)"),
    ]
