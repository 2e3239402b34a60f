"""What a monitoring run publishes: report.html, summary.json and metrics.prom, and the metrics push.

The metric names and help texts are declared in components.core.metrics; the Grafana dashboard and
the alert rules read them (docs/MONITORING.md).
"""

from __future__ import annotations

import html
import json
import time
from datetime import date

from components.contracts import schema
from components.contracts.errors import StageFailed
from components.contracts.stages import MonitorParams
from components.core import metrics as M


def report_files(summary: dict, snapshot) -> tuple[dict[str, bytes], M.MetricsWriter]:
    """The files of monitoring/date=<D>/ for a finished summary (and Evidently's snapshot, if drift ran),
    and the metrics writer they were rendered from (to push)."""
    writer = metrics_for(summary)
    files = {
        "summary.json": json.dumps(summary, indent=2, sort_keys=True, default=str).encode(),
        "metrics.prom": writer.render(),
        "report.html": report_html(summary, snapshot).encode(),
    }
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
        raise StageFailed(f"the monitoring report was published, but pushing its metrics to the Pushgateway at "
                          f"{gateway} failed: {exc}. Check FLIGHTDECK_PUSHGATEWAY_URL and that the gateway is up; "
                          "re-running the monitor for this day pushes again.") from exc
    return gateway


def report_html(summary: dict, snapshot) -> str:
    """Evidently's drift report with a plain summary of the day on top (or the summary alone)."""
    drift, perf, decision = summary["drift"], summary["performance"], summary["decision"]
    rows = "".join(
        f"<tr><td>{html.escape(c)}</td><td>{e['method']}</td><td>{e['score']:.3f}</td><td>{e['threshold']}</td>"
        f"<td>{'DRIFT' if e['drifted'] else ''}</td></tr>"
        for c, e in sorted(drift.get("features", {}).items(), key=lambda kv: -kv[1]["score"]))
    share = drift.get("drift_share")
    auc = perf.get("roc_auc")
    head = (
        "<section style='font-family:sans-serif;margin:16px'>"
        f"<h1>flightdeck monitoring: {summary['date']} (model {summary['model']} v{summary['model_version']})</h1>"
        f"<p>Window {html.escape(', '.join(summary['window']['days']))}; {summary['window']['rows']} scored rows; "
        f"missing days: {html.escape(', '.join(summary['window']['missing_days']) or 'none')}.</p>"
        f"<p><b>Drift</b>: {drift['status']}"
        + (f", share {share:.2f} ({drift['n_drifted']}/{drift['n_tested']} features)" if share is not None else "")
        + (f" &mdash; {html.escape(drift['message'])}" if drift.get("message") else "") + "</p>"
        f"<p><b>Performance</b>: {perf.get('status')}"
        + (f", ROC AUC {auc:.3f} (holdout {summary.get('holdout_auc')}), log loss {perf['log_loss']:.3f}, "
           f"ECE {perf['calibration_error']:.3f}, observed late rate {perf['observed_late_rate']:.3f} vs predicted "
           f"{perf['predicted_late_rate']:.3f} on {perf['rows']} flights" if auc is not None else "")
        + f"; labels pending for: {html.escape(', '.join(perf['pending_days']) or 'none')}</p>"
        f"<p><b>Retrain</b>: {decision['retrain']} &mdash; {html.escape('; '.join(decision['reasons']))}</p>"
        f"<table border=1 cellpadding=3><tr><th>feature</th><th>test</th><th>score</th><th>threshold</th><th></th></tr>"
        f"{rows}</table></section>")
    if snapshot is None:
        return f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>flightdeck {summary['date']}</title></head><body>{head}</body></html>"
    page = snapshot.get_html_str(as_iframe=False)
    body = page.find("<body")
    at = page.find(">", body) + 1 if body >= 0 else 0
    return page[:at] + head + page[at:]
