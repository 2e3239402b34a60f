"""What a monitoring run publishes: summary.json, metrics.prom and the compared rows, and the metrics push.

The metric names and help texts are declared in components.core.metrics; the Grafana dashboard and
the alert rules read them (docs/MONITORING.md). Evidently's HTML report is not drawn here: it is
rendered off the hot path from the compared rows (components.monitoring.render, `flightdeck
monitor-report`).
"""

from __future__ import annotations

import json
import time
from datetime import date

import pandas as pd

from components.contracts import schema
from components.contracts.errors import StageFailed
from components.contracts.stages import MonitorParams
from components.core import metrics as M
from components.core.store import parquet_bytes

# The rows the drift statistics were computed on, as the stat tests saw them (typed, sampled, only the
# tested columns, other versions' scores blanked): what the report is rendered from, exactly.
COMPARED_FILES = {"reference": "drift_reference.parquet", "current": "drift_current.parquet"}


def report_files(summary: dict, compared: tuple[pd.DataFrame, pd.DataFrame] | None
                 ) -> tuple[dict[str, bytes], M.MetricsWriter]:
    """The files of monitoring/date=<D>/ for a finished summary (and the compared rows, if drift ran),
    and the metrics writer they were rendered from (to push)."""
    writer = metrics_for(summary)
    files = {
        "summary.json": json.dumps(summary, indent=2, sort_keys=True, default=str).encode(),
        "metrics.prom": writer.render(),
    }
    if compared is not None:
        for side, frame in zip(("reference", "current"), compared, strict=True):
            files[COMPARED_FILES[side]] = parquet_bytes(frame)
    return files, writer


def metrics_for(summary: dict) -> M.MetricsWriter:
    """The summary's numbers as gauges (an unknown value is left out, not exported as 0)."""
    w = M.MetricsWriter()
    model = summary["model"]
    version = str(summary.get("model_version") or 0)
    drift = summary.get("drift", {})
    w.set("flightdeck_drift_share", drift.get("drift_share"), model=model)
    for col, e in drift.get("features", {}).items():
        w.set("flightdeck_feature_drift_score", e["score"], model=model, feature=col, method=e["method"])
        w.set("flightdeck_feature_drift_detected", int(e["drifted"]), model=model, feature=col)
    w.set("flightdeck_prediction_drift_score", (drift.get("prediction") or {}).get("score"), model=model)
    perf = summary.get("performance", {})
    w.set("flightdeck_model_auc", perf.get("roc_auc"), model=model, version=version)
    w.set("flightdeck_model_log_loss", perf.get("log_loss"), model=model, version=version)
    w.set("flightdeck_model_calibration_error", perf.get("calibration_error"), model=model, version=version)
    w.set("flightdeck_model_holdout_auc", summary.get("holdout_auc"), model=model, version=version)
    w.set("flightdeck_observed_late_rate", perf.get("observed_late_rate"), model=model)
    w.set("flightdeck_labelled_count", perf.get("rows", 0), model=model)
    w.set("flightdeck_predicted_late_rate", summary.get("predicted_late_rate"), model=model)
    w.set("flightdeck_prediction_count", summary.get("prediction_count"), model=model)
    w.set("flightdeck_feature_freshness_seconds", summary.get("freshness", {}).get("seconds"), model=model)
    w.set("flightdeck_serving_model_version", summary.get("model_version") or 0, model=model, target="predictions")
    w.set("flightdeck_retrain_recommended", int(bool(summary.get("decision", {}).get("retrain"))), model=model)
    refused = summary.get("refused_candidates")
    w.set("flightdeck_refused_candidates", None if refused is None else len(refused), model=model)
    w.set("flightdeck_monitored_day_timestamp_seconds",
          schema.local_day_bounds_utc(date.fromisoformat(summary["date"]))[0].timestamp(), model=model)
    w.set("flightdeck_predictions_last_published_timestamp_seconds", summary.get("predictions_published_at"),
          model=model)
    w.set("flightdeck_monitor_last_success_timestamp_seconds", time.time(), model=model)
    # The policy in force, so the alerts compare against the policy's own thresholds.
    policy = summary.get("policy") or {}
    for name, field in POLICY_GAUGES.items():
        w.set(name, policy.get(field), model=model)
    # Pipeline-run gauges are not exported here: components.core.runlog writes and pushes them at the end
    # of every recorded run (a copy pushed with the monitor's group would go stale and fire alerts).
    return w


# gauge -> RetrainPolicy field
POLICY_GAUGES = {
    "flightdeck_policy_drift_share_threshold": "drift_share_threshold",
    "flightdeck_policy_consecutive_days": "consecutive_days",
    "flightdeck_policy_auc_drop": "auc_drop",
    "flightdeck_policy_auc_window_days": "auc_window_days",
    "flightdeck_policy_min_labelled_rows": "min_labelled_rows",
}


def push_metrics(settings, writer: M.MetricsWriter, params: MonitorParams) -> str | None:
    """Push to the Pushgateway when one is configured and the run asks to; the gateway pushed to, else None."""
    gateway = getattr(settings, "pushgateway_url", "")
    if not gateway or not params.push:
        return None
    try:
        M.push(writer, gateway, job=M.MONITOR_JOB, grouping_key={"model": settings.model_name})
    except OSError as exc:
        # The report and metrics are already published; a Pushgateway outage must not lose them.
        raise StageFailed(f"the monitoring results were published, but pushing its metrics to the Pushgateway at "
                          f"{gateway} failed: {exc}. Check FLIGHTDECK_PUSHGATEWAY_URL and that the gateway is up; "
                          "re-running the monitor for this day pushes again.") from exc
    return gateway
