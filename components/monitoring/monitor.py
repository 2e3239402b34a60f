"""monitor: data drift, prediction drift and (once labels land) performance of a scored day.

    flightdeck monitor --date 2013-07-14

The stage and its inputs; the parts live beside it: window (which rows are compared), drift,
performance, decision_log (the retraining decision and its record), report (what is published).
docs/MONITORING.md explains the method and the calibration of the thresholds.
"""

from __future__ import annotations

import io
import logging
import time
from datetime import UTC, date, datetime

import pandas as pd

from components.contracts import layout, schema
from components.contracts.errors import StageFailed
from components.contracts.results import MonitorResult
from components.contracts.stages import MonitorParams
from components.core import partitions
from components.core.store import ArtifactNotFound, ArtifactStore, open_store
from components.monitoring.decision_log import (
    decide_day,
    keep_earlier_request,
    record_decision,
    recorded_decision,
    refused_since_serving,
    trigger_day,
)
from components.monitoring.drift import SCORE, columns_and_sample, drift_statistics, no_verdict
from components.monitoring.performance import performance_section
from components.monitoring.policy import RetrainPolicy, apply_action, load_policy
from components.monitoring.report import COMPARED_FILES, push_metrics, report_files
from components.monitoring.window import (
    WindowPlan,
    WindowRows,
    mode_version,
    plan_window,
    select_rows,
    versions,
)

log = logging.getLogger(__name__)


# -- the stage --------------------------------------------------------------------------------
def monitor(params: MonitorParams, store: ArtifactStore | None = None, settings=None) -> MonitorResult:
    """Measure drift and performance of one scored day, publish the report and decide on retraining.

    Inputs (store keys):
      predictions/date=<d>/interval=*/predictions.parquet  batch prediction's parts of each day d of the window
          [D - window_days + 1, D] (and of the longer AUC window): the features the model scored,
          probability, model_version. Day D itself must be published and non-empty.
      models/<name>/versions/<N>/reference.parquet  the training-feature sample of the version N that
          scored most of day D (or params.reference, a store key or URI).
      models/<name>/versions/<N>/ registry record  its holdout AUC and training window.
      validated/flights/date=<d>/  the labels of day d, once its flights have landed.
      monitoring/date=<d>/summary.json, monitoring/decisions/  earlier days' verdicts and decisions
          (the drift streak, the cooldown and the cap of the retraining policy).
      features/materialization.json  how far the online store is materialized (freshness).
    Outputs:
      monitoring/date=<D>/ (published together, atomically): summary.json (every number, the drift tests
          used, the decision), metrics.prom (Prometheus text format, names in components.core.metrics),
          drift_reference.parquet and drift_current.parquet (the rows the drift statistics compared,
          as the tests saw them; absent without a drift verdict). Evidently's HTML report is drawn from
          them off the hot path: `flightdeck monitor-report --date D` (components.monitoring.render).
      monitoring/decisions/date=<D>.json (replaced by a rerun) and monitoring/decisions/log/<time>-<D>.json.
      The metrics are pushed to the Pushgateway when FLIGHTDECK_PUSHGATEWAY_URL is set and params.push.
    Returns:
      MonitorResult: the day's drift and performance headline, the retraining decision (retrain, trigger,
      reasons, blocked_by, already_requested), the published prefix's URI and where the metrics went.
    Failures:
      StageFailed: day D has no published predictions or an empty or unreadable one; the scoring version
          has no readable reference sample (or params.reference does not exist); the Pushgateway push
          failed (the report and the decision are already published then: rerunning the day pushes again).
    """
    from components.core.settings import load_settings

    t0 = time.perf_counter()
    settings = settings or load_settings()
    store = store or open_store(settings)
    policy = load_policy(**{k: v for k, v in (("window_days", params.window_days), ("min_rows", params.min_rows))
                            if v})
    day = schema.parse_day(params.date)
    today = _day_predictions(store, day)
    version = mode_version(today)
    record = _registry_version(store, version)
    reference, reference_uri = load_reference(store, version, params.reference)

    plan = plan_window(day, policy)
    loaded = {d: (today if d == day else predictions_for_day(store, d)[0]) for d in plan.load_days}
    rows = select_rows(plan, loaded, version)
    summary = summary_head(settings.model_name, plan, rows, version, policy, today)
    summary["reference"] = {"uri": reference_uri, "rows": len(reference)}
    summary["drift"], compared = window_drift(reference, rows, version, policy, plan)
    summary["performance"] = performance_section(store, rows.auc_rows, plan.auc_days, policy)
    holdout_auc = (record.get("metrics") or {}).get("roc_auc")
    summary["holdout_auc"] = holdout_auc
    summary["freshness"] = feature_freshness(store, schema.local_day_bounds_utc(day)[1])
    summary["predictions_published_at"] = partitions.published_at(store, layout.predictions_prefix(day))

    # Candidates trained since the serving version that evaluate refused (either rule; the
    # RetrainingRefused alert reads them): the serving model is getting stale and retraining is not fixing it.
    summary["refused_candidates"] = refused_since_serving(store, day, version, record)
    if policy.rule == "trigger":
        decision = trigger_day(store, day, version, summary, holdout_auc, record, rows.auc_rows,
                               summary["refused_candidates"])
    else:
        decision = decide_day(store, policy, day, version, summary, holdout_auc, record)
    apply_action(decision, policy)
    keep_earlier_request(decision, recorded_decision(store, day), version)
    summary["decision"] = decision.as_dict()
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    summary["finished_at"] = datetime.now(UTC).isoformat()

    files, writer = report_files(summary, compared)
    prefix = layout.monitoring_prefix(day)
    store.publish(prefix, files, meta={"model_version": version, "drift_share": summary["drift"].get("drift_share")})
    record_decision(store, day, summary)
    pushed = push_metrics(settings, writer, params)
    log.info("monitor %s: drift share %s, retrain=%s (%s)", day, summary["drift"].get("drift_share"),
             decision.retrain, "; ".join(decision.reasons))
    return stage_result(summary, store.uri(prefix), pushed)


def summary_head(model: str, plan: WindowPlan, rows: WindowRows, version: int | None, policy: RetrainPolicy,
                 today: pd.DataFrame) -> dict:
    """The first part of summary.json: what was compared (the rest is added as it is measured)."""
    return {
        "date": plan.day.isoformat(), "model": model, "model_version": version,
        "window": {"days": [d.isoformat() for d in plan.drift_days], "missing_days": rows.missing_days,
                   "rows": len(rows.current), "rows_scored_by_this_version": len(rows.same_model)},
        "prediction_count": len(today), "policy": policy.as_dict(),
        "predicted_late_rate": float(pd.to_numeric(today[SCORE], errors="coerce").mean()),
    }


def window_drift(reference: pd.DataFrame, rows: WindowRows, version: int | None, policy: RetrainPolicy,
                 plan: WindowPlan) -> tuple[dict, tuple[pd.DataFrame, pd.DataFrame] | None]:
    """The drift section of the summary and the rows it compared (None when there is no verdict).

    The statistics come from Evidently's stat tests without its report (drift.evidently_scores): the
    report's figures cost several times the statistics, so the HTML is rendered later from the
    compared rows, published with the summary (components.monitoring.render)."""
    blocked = no_verdict(len(reference), len(rows.current), policy, plan.drift_days[0], plan.day)
    if blocked is not None:
        return blocked, None
    scored_by_version = (None if version is None else
                         (versions(rows.current) == version).fillna(False).astype(bool))
    columns, sample = columns_and_sample(reference, rows.current, scored_by_version, policy)
    stats = drift_statistics(reference, sample, policy, columns)
    stats.pop("snapshot")
    compared = stats.pop("compared")
    stats["compared"] = {side: {"file": COMPARED_FILES[side], "rows": len(frame), "columns": list(frame.columns)}
                         for side, frame in zip(("reference", "current"), compared, strict=True)}
    return {"status": "ok", **stats}, compared


def stage_result(summary: dict, uri: str, pushed: str | None) -> MonitorResult:
    """The stage's result (what the CLI prints, what XCom and KFP read) from the finished summary."""
    drift, perf, decision = summary["drift"], summary["performance"], summary["decision"]
    return {
        "date": summary["date"], "model_version": summary["model_version"], "drift_status": drift["status"],
        "drift_share": drift.get("drift_share"),
        "drifted_features": sorted(c for c, e in drift.get("features", {}).items() if e["drifted"]),
        "prediction_drift": (drift.get("prediction") or {}).get("score"),
        "auc": perf.get("roc_auc"), "holdout_auc": summary["holdout_auc"],
        "labels_pending": perf["pending_days"],
        "retrain": decision["retrain"], "trigger": decision["trigger"], "reasons": decision["reasons"],
        "blocked_by": decision["blocked_by"], "already_requested": decision["already_requested"],
        "requested": decision["requested"],
        "uri": uri, "pushed": pushed,
        "seconds": summary["seconds"],
    }


def _day_predictions(store: ArtifactStore, day: date) -> pd.DataFrame:
    """The monitored day's predictions, which must exist and hold rows."""
    today, _ = predictions_for_day(store, day)
    if today is None:
        raise StageFailed(
            f"no predictions are published for {day} ({store.uri(layout.predictions_prefix(day))}): batch "
            f"prediction has not run for that day or failed before publishing, so there is nothing to monitor. "
            f"Run `flightdeck predict batch --date {day}` first; the stale-predictions alert covers this case.")
    if len(today) == 0:
        raise StageFailed(
            f"the predictions of {day} are empty (0 scored flights at {store.uri(layout.predictions_prefix(day))}): "
            "there was nothing scheduled, or the schedule partition was empty. No drift or performance can be "
            "measured on an empty day; check the day's ingest and validation reports.")
    return today


# -- inputs -----------------------------------------------------------------------------------
def predictions_for_day(store: ArtifactStore, day: date) -> tuple[pd.DataFrame | None, dict | None]:
    """A day's predictions, every scoring interval's part as one partition (components.core.partitions),
    and a record of its parts; (None, None) when no part is published."""
    prefix = layout.predictions_prefix(day)
    found = partitions.parts(store, prefix)
    if not found:
        return None, None
    try:
        rows = partitions.read_parts(store, prefix, "predictions.parquet", key="flight_id")
    except Exception as exc:
        raise StageFailed(f"the predictions of {day} at {store.uri(prefix)} cannot be read as parquet ({exc}); "
                          "re-run batch prediction for that day") from exc
    return rows, {"parts": sorted(found), "published_at": max((r.get("published_at") or 0.0) for r in found.values())}


def _registry_version(store: ArtifactStore, version: int | None) -> dict:
    """The registry record of the version that scored the day: holdout AUC, registration date."""
    if version is None:
        return {}
    try:
        from components.model.registry import open_registry

        return open_registry(store=store).get(int(version))
    except (ImportError, StageFailed, ArtifactNotFound):
        return {}


def load_reference(store: ArtifactStore, version: int | None, override: str = "") -> tuple[pd.DataFrame, str]:
    """The reference sample: an explicit store key/URI, else the scoring version's reference.parquet."""
    if override:
        key = override[len(store.root) + 1:] if override.startswith(store.root) else override
        try:
            return store.read_parquet(key), store.uri(key)
        except ArtifactNotFound:
            raise StageFailed(f"the reference sample {override} does not exist") from None
    if version is None:
        raise StageFailed("the predictions name no model_version, so there is no reference sample to compare "
                          "with; pass --reference with a store key of a training-feature parquet")
    from components.model.registry import open_registry

    registry = open_registry(store=store)
    try:
        data = registry.read_file(int(version), "reference.parquet")
    except (StageFailed, ArtifactNotFound) as exc:
        raise StageFailed(f"model {registry.name} version {version} (which scored this day) has no readable "
                          f"reference sample in the registry ({exc}); drift cannot be measured without it") from exc
    ref = pd.read_parquet(io.BytesIO(data))
    if "prediction" in ref.columns and SCORE not in ref.columns:
        ref = ref.rename(columns={"prediction": SCORE})
    return ref, store.uri(f"{registry.version_prefix(int(version))}/reference.parquet")


def feature_freshness(store: ArtifactStore, as_of: datetime) -> dict:
    """How far the online store lags behind `as_of`: the oldest materialized_until over the time-varying views."""
    try:
        progress = store.read_json(layout.MATERIALIZATION_PROGRESS)
    except ArtifactNotFound:
        return {"materialized_until": None, "seconds": None, "views": {}}
    views = {v: e.get("materialized_until") for v, e in progress.get("views", {}).items()}
    times = [pd.Timestamp(t) for t in views.values() if t]
    # Static views (plane attributes) are materialized whole; the lag is that of the oldest dated view.
    dated = [t for t in times if t.year > 1970] or times
    oldest = min(dated) if dated else None
    lag = max(0.0, (as_of - oldest.to_pydatetime()).total_seconds()) if oldest is not None else None
    return {"materialized_until": oldest.isoformat() if oldest is not None else None, "seconds": lag, "views": views}

