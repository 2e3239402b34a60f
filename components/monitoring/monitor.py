"""monitor: data drift, prediction drift and (once labels land) performance of a scored day.

    flightdeck monitor --date 2013-07-14

Inputs
  predictions/date=<D>/predictions.parquet   published by batch prediction for each day of the
                                             window [D - window_days + 1, D]: the features the
                                             model scored, probability, model_version, ...
  models/<name>/versions/<N>/reference.parquet  the training-feature sample of the version that
                                             scored day D (its reference is fixed per model)
  validated/flights/date=<d>/                the labels of day d, once its flights have landed
Outputs (published together, atomically) under monitoring/date=<D>/:
  report.html    Evidently's drift report with a summary header (drift, performance, decision)
  summary.json   every number below, the drift tests used, and the retraining decision
  metrics.prom   Prometheus text format (names in components.core.metrics), with the retraining policy's
                 thresholds; pushed to the Pushgateway when FLIGHTDECK_PUSHGATEWAY_URL is set
and the decision is appended to monitoring/decisions/ (an event log).

Drift is measured over the window (a week by default, see retrain_policy.py for why) with a
distance per column chosen for large samples: normed Wasserstein for numeric features,
Jensen-Shannon for categorical ones, PSI for the predicted probability. Performance (ROC AUC,
log loss, calibration, observed vs predicted late rate) is pooled over the days of the AUC window
(14 by default) that the same version scored and whose labels have landed; days still waiting for
labels are listed, not guessed.
"""

from __future__ import annotations

import html
import io
import json
import logging
import time
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from components.contracts import layout, schema
from components.contracts.errors import StageFailed
from components.contracts.signature import CATEGORICAL, NUMERIC
from components.contracts.stages import MonitorParams
from components.core import metrics as M
from components.core.store import ArtifactNotFound, ArtifactStore, open_store
from components.monitoring.policy import DayEvidence, RetrainPolicy, decide, load_policy

log = logging.getLogger(__name__)

SCORE = "probability"
PIPELINES = ("continuous_training", "batch_prediction", "monitoring")


# -- drift ------------------------------------------------------------------------------------
def drift_tests(policy: RetrainPolicy, columns: list[str]) -> dict[str, tuple[str, float]]:
    """column -> (Evidently stat test name, threshold): the deliberate choice per column type."""
    tests = {}
    for col in columns:
        if col == SCORE:
            tests[col] = (policy.prediction_method, policy.prediction_threshold)
        elif col in CATEGORICAL:
            tests[col] = (policy.categorical_method, policy.categorical_threshold)
        else:
            tests[col] = (policy.numeric_method, policy.numeric_threshold)
    return tests


def _usable_columns(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str], policy: RetrainPolicy):
    usable, skipped = [], {}
    for col in columns:
        if col not in reference.columns or col not in current.columns:
            skipped[col] = "missing from the reference or the scored data"
            continue
        n_ref, n_cur = int(reference[col].notna().sum()), int(current[col].notna().sum())
        if min(n_ref, n_cur) < policy.min_column_values:
            skipped[col] = f"too few values to compare ({n_ref} reference, {n_cur} current; need {policy.min_column_values})"
            continue
        usable.append(col)
    return usable, skipped


def _prepared(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    out = pd.DataFrame(index=range(len(df)))
    for col in columns:
        s = df[col].reset_index(drop=True)
        if col in CATEGORICAL:
            out[col] = s.astype(object).where(s.notna(), None).astype(str).where(s.notna(), None)
        else:
            out[col] = pd.to_numeric(s, errors="coerce").astype("float64").replace([np.inf, -np.inf], np.nan)
    return out


def drift_statistics(reference: pd.DataFrame, current: pd.DataFrame, policy: RetrainPolicy | None = None,
                     columns: list[str] | None = None, engine: str = "evidently") -> dict:
    """Per-column drift scores and the share of drifted features, with Evidently (or scipy, same math).

    Returns {"features": {col: {...}}, "prediction": {...} or None, "drift_share", "n_drifted",
    "n_tested", "skipped": {col: reason}, "snapshot": the Evidently snapshot (engine="evidently")}.
    """
    policy = policy or load_policy()
    columns = list(columns or (NUMERIC + CATEGORICAL + ([SCORE] if SCORE in reference.columns else [])))
    current_rows = len(current)
    current = capped_sample(current, policy.max_current_rows)
    usable, skipped = _usable_columns(reference, current, columns, policy)
    tests = drift_tests(policy, usable)
    ref, cur = _prepared(reference, usable), _prepared(current, usable)
    snapshot = None
    if engine == "evidently":
        scores, snapshot = _evidently_scores(ref, cur, tests)
    elif engine == "scipy":
        scores = {c: scipy_score(ref[c], cur[c], *tests[c]) for c in usable}
    else:
        raise ValueError(f"drift engine {engine!r} is not evidently or scipy")
    features, prediction = {}, None
    for col in usable:
        method, threshold = tests[col]
        entry = {"method": method, "threshold": threshold, "score": float(scores[col]),
                 "drifted": bool(scores[col] >= threshold),
                 "n_reference": int(ref[col].notna().sum()), "n_current": int(cur[col].notna().sum())}
        if col == SCORE:
            prediction = entry
        else:
            features[col] = entry
    n_drifted = sum(e["drifted"] for e in features.values())
    return {"features": features, "prediction": prediction, "skipped": skipped, "n_tested": len(features),
            "n_drifted": n_drifted, "drift_share": n_drifted / len(features) if features else None,
            "current_rows": current_rows, "sampled_rows": len(current) if len(current) < current_rows else None,
            "snapshot": snapshot}


SAMPLE_SEED = 0  # fixed: the same window always gives the same sample, so a rerun gives the same verdict


def capped_sample(current: pd.DataFrame, max_rows: int) -> pd.DataFrame:
    """At most max_rows rows of current (0: all): a seeded uniform sample without replacement, in row order."""
    if not max_rows or len(current) <= max_rows:
        return current
    rng = np.random.default_rng(SAMPLE_SEED)
    return current.iloc[np.sort(rng.choice(len(current), max_rows, replace=False))]


def _evidently_scores(ref: pd.DataFrame, cur: pd.DataFrame, tests: dict[str, tuple[str, float]]):
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    definition = DataDefinition(numerical_columns=[c for c in tests if c not in CATEGORICAL],
                                categorical_columns=[c for c in tests if c in CATEGORICAL])
    metrics = [ValueDrift(column=c, method=m, threshold=t) for c, (m, t) in tests.items()]
    snapshot = Report(metrics).run(Dataset.from_pandas(cur, data_definition=definition),
                                   Dataset.from_pandas(ref, data_definition=definition))
    scores = {}
    for item in snapshot.dict()["metrics"]:
        config = item["config"]
        scores[config["column"]] = float(item["value"])
    return scores, snapshot


def scipy_score(ref: pd.Series, cur: pd.Series, method: str, threshold: float = 0.0) -> float:
    """The same statistics computed directly (the benchmark baseline, and a cross-check of Evidently)."""
    from scipy import stats
    from scipy.spatial import distance

    r, c = ref.dropna(), cur.dropna()
    if method == "wasserstein":
        return float(stats.wasserstein_distance(r, c) / max(float(np.std(r)), 0.001))
    if method in ("jensenshannon", "psi"):
        if method == "psi" and r.nunique() > 20 and pd.api.types.is_numeric_dtype(r):
            edges = np.histogram_bin_edges(np.concatenate([r.to_numpy(), c.to_numpy()]), bins="sturges")
            p, q = np.histogram(r, edges)[0] / len(r), np.histogram(c, edges)[0] / len(c)
        else:
            keys = list(set(r.unique()) | set(c.unique()))
            p = r.value_counts().reindex(keys, fill_value=0).to_numpy() / len(r)
            q = c.value_counts().reindex(keys, fill_value=0).to_numpy() / len(c)
        if method == "jensenshannon":
            return float(distance.jensenshannon(p, q))
        p, q = _fill_zeroes(p), _fill_zeroes(q)
        return float(np.sum((p - q) * np.log(p / q)))
    raise ValueError(f"no scipy implementation of drift method {method!r}")


def _fill_zeroes(p: np.ndarray) -> np.ndarray:
    # As Evidently does: empty bins get a tiny share so the log stays finite.
    p = p.astype(float).copy()
    smallest = p[p > 0].min()
    p[p == 0] = smallest / 1e6 if smallest <= 1e-4 else 1e-4
    return p


# -- performance ------------------------------------------------------------------------------
def performance(y: np.ndarray, p: np.ndarray, bins: int = 10) -> dict:
    """ROC AUC, log loss, Brier, expected calibration error and the reliability table."""
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    y = np.asarray(y, dtype=int)
    p = np.clip(np.asarray(p, dtype=float), 1e-7, 1 - 1e-7)
    out = {"rows": int(len(y)), "observed_late_rate": float(y.mean()) if len(y) else None,
           "predicted_late_rate": float(p.mean()) if len(y) else None}
    if len(y) == 0:
        return out
    both = 0 < y.sum() < len(y)
    out["roc_auc"] = float(roc_auc_score(y, p)) if both else None
    out["log_loss"] = float(log_loss(y, p, labels=[0, 1]))
    out["brier"] = float(brier_score_loss(y, p))
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            gap = abs(p[mask].mean() - y[mask].mean())
            ece += mask.mean() * gap
            table.append({"bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}", "rows": int(mask.sum()),
                          "predicted": float(p[mask].mean()), "observed": float(y[mask].mean())})
    out["calibration_error"] = float(ece)
    out["calibration"] = table
    return out


def labels_for_day(store: ArtifactStore, day: date) -> pd.DataFrame | None:
    """flight_id -> label for a day whose flights have landed (validated), else None."""
    prefix = layout.validated_prefix("flights", day)
    record = store.published(prefix)
    if record is None:
        return None
    name = next((n for n in record["files"] if n.endswith(".parquet")), None)
    if name is None:
        return None
    flights = pd.read_parquet(io.BytesIO(store.read_published(prefix, name)), columns=["flight_id", "arr_delay"])
    arr = flights["arr_delay"].astype("float64")
    return pd.DataFrame({"flight_id": flights["flight_id"], "label": ((arr >= 15) | arr.isna()).astype(int)})


# -- inputs -----------------------------------------------------------------------------------
def predictions_for_day(store: ArtifactStore, day: date) -> tuple[pd.DataFrame | None, dict | None]:
    prefix = layout.predictions_prefix(day)
    record = store.published(prefix)
    if record is None:
        return None, None
    data = store.read_published(prefix, "predictions.parquet")
    try:
        return pd.read_parquet(io.BytesIO(data)), record
    except Exception as exc:
        raise StageFailed(f"the predictions of {day} at {store.uri(prefix)} cannot be read as parquet ({exc}); "
                          "re-run batch prediction for that day") from exc


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


# -- the stage --------------------------------------------------------------------------------
def monitor(params: MonitorParams, store: ArtifactStore | None = None, settings=None) -> dict:
    from components.core.settings import load_settings

    t0 = time.perf_counter()
    settings = settings or load_settings()
    store = store or open_store(settings)
    policy = load_policy(**{k: v for k, v in (("window_days", params.window_days), ("min_rows", params.min_rows))
                            if v})
    day = schema.parse_day(params.date)
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
    version = _mode_version(today)
    record = _registry_version(store, version)
    reference, reference_uri = load_reference(store, version, params.reference)

    window = [day - timedelta(days=i) for i in range(policy.window_days - 1, -1, -1)]
    span = max(policy.window_days, policy.auc_window_days)
    loaded = {d: (today if d == day else predictions_for_day(store, d)[0])
              for d in (day - timedelta(days=i) for i in range(span - 1, -1, -1))}
    frames = [df.assign(_day=d) for d, df in loaded.items() if df is not None and len(df)]
    missing_days = [d.isoformat() for d in window if loaded[d] is None or len(loaded[d]) == 0]
    scored = pd.concat(frames, ignore_index=True)
    current = scored[scored["_day"] >= window[0]]
    same_model = current[_versions(current) == version] if version is not None else current
    auc_days = sorted(loaded)[-policy.auc_window_days:]
    auc_rows = scored[scored["_day"] >= auc_days[0]]
    auc_rows = auc_rows[_versions(auc_rows) == version] if version is not None else auc_rows

    summary: dict = {
        "date": day.isoformat(), "model": settings.model_name, "model_version": version,
        "reference": {"uri": reference_uri, "rows": len(reference)},
        "window": {"days": [d.isoformat() for d in window], "missing_days": missing_days,
                   "rows": len(current), "rows_scored_by_this_version": len(same_model)},
        "prediction_count": len(today), "policy": policy.as_dict(),
        "predicted_late_rate": float(pd.to_numeric(today[SCORE], errors="coerce").mean()),
    }
    snapshot = None
    if len(reference) < policy.min_reference_rows:
        summary["drift"] = {"status": "insufficient_reference", "message": (
            f"the reference sample has {len(reference)} rows, fewer than {policy.min_reference_rows}: no drift verdict")}
    elif len(current) < policy.min_rows:
        summary["drift"] = {"status": "insufficient_sample", "message": (
            f"the window {window[0]}..{day} holds {len(current)} scored rows, fewer than {policy.min_rows}: "
            "too few to judge drift; no verdict for this day (it breaks a drift streak)")}
    else:
        # Feature drift over every row of the window; prediction drift (PSI of the scores) only on this
        # version's scores, in the same Evidently report: the other versions' scores are blanked out
        # (Evidently drops missing values before its test, as the scipy cross-check does).
        columns, sample = NUMERIC + CATEGORICAL, current
        if SCORE in reference.columns and len(same_model) >= policy.min_rows:
            columns = columns + [SCORE]
            if version is not None:
                sample = current.copy()
                sample[SCORE] = sample[SCORE].where((_versions(current) == version).fillna(False).astype(bool))
        stats = drift_statistics(reference, sample, policy, columns)
        snapshot = stats.pop("snapshot")
        summary["drift"] = {"status": "ok", **stats}
    summary["performance"] = _performance_section(store, auc_rows, auc_days, policy)
    holdout_auc = (record.get("metrics") or {}).get("roc_auc")
    summary["holdout_auc"] = holdout_auc
    summary["freshness"] = feature_freshness(store, _end_of_day(day))
    summary["predictions_published_at"] = (store.published(layout.predictions_prefix(day)) or {}).get("published_at")

    decision = _decide(store, policy, day, version, summary, holdout_auc, record)
    _keep_earlier_request(decision, _recorded_decision(store, day), version)
    summary["decision"] = decision.as_dict()
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    summary["finished_at"] = datetime.now(UTC).isoformat()

    writer = metrics_for(summary)
    files = {
        "summary.json": json.dumps(summary, indent=2, sort_keys=True, default=str).encode(),
        "metrics.prom": writer.render(),
        "report.html": report_html(summary, snapshot).encode(),
    }
    prefix = layout.monitoring_prefix(day)
    store.publish(prefix, files, meta={"model_version": version, "drift_share": summary["drift"].get("drift_share")})
    _record_decision(store, day, summary)
    pushed = _push(settings, writer, params)
    log.info("monitor %s: drift share %s, retrain=%s (%s)", day, summary["drift"].get("drift_share"),
             decision.retrain, "; ".join(decision.reasons))
    return {
        "date": day.isoformat(), "model_version": version, "drift_status": summary["drift"]["status"],
        "drift_share": summary["drift"].get("drift_share"),
        "drifted_features": sorted(c for c, e in summary["drift"].get("features", {}).items() if e["drifted"]),
        "prediction_drift": (summary["drift"].get("prediction") or {}).get("score"),
        "auc": summary["performance"].get("roc_auc"), "holdout_auc": holdout_auc,
        "labels_pending": summary["performance"]["pending_days"],
        "retrain": decision.retrain, "trigger": decision.trigger, "reasons": decision.reasons,
        "blocked_by": decision.blocked_by, "already_requested": decision.already_requested,
        "uri": store.uri(prefix), "pushed": pushed,
        "seconds": summary["seconds"],
    }


def _versions(df: pd.DataFrame) -> pd.Series:
    if "model_version" not in df.columns:
        return pd.Series([None] * len(df), index=df.index)
    return pd.to_numeric(df["model_version"], errors="coerce").astype("Int64")


def _mode_version(df: pd.DataFrame) -> int | None:
    versions = _versions(df).dropna()
    return int(versions.mode().iloc[0]) if len(versions) else None


def _end_of_day(day: date) -> datetime:
    return schema.local_day_bounds_utc(day)[1]


def _performance_section(store: ArtifactStore, scored: pd.DataFrame, window: list[date], policy) -> dict:
    """Pooled over the days (scored by this version) whose labels have landed; the others are listed as pending."""
    labelled, pending, per_day = [], [], {}
    for d in window:
        rows = scored[scored["_day"] == d]
        if rows.empty:
            continue
        labels = labels_for_day(store, d)
        if labels is None:
            pending.append(d.isoformat())
            continue
        joined = rows.merge(labels, on="flight_id", how="inner")
        if joined.empty:
            pending.append(d.isoformat())
            continue
        labelled.append(joined)
        day_perf = performance(joined["label"].to_numpy(), joined[SCORE].to_numpy())
        per_day[d.isoformat()] = {k: day_perf.get(k) for k in ("rows", "roc_auc", "observed_late_rate",
                                                               "predicted_late_rate")}
    out = {"labelled_days": sorted(per_day), "pending_days": pending, "per_day": per_day}
    if not labelled:
        out["status"] = "labels_pending"
        return out
    pooled = pd.concat(labelled, ignore_index=True)
    out.update(performance(pooled["label"].to_numpy(), pooled[SCORE].to_numpy()))
    out["status"] = "ok" if len(pooled) >= policy.min_labelled_rows else "few_labels"
    return out


# -- the decision and its record ------------------------------------------------------------
def _decide(store, policy, day, version, summary, holdout_auc, record):
    history = []
    for i in range(1, policy.consecutive_days + 1):
        d = day - timedelta(days=i)
        try:
            past = json.loads(store.read_published(layout.monitoring_prefix(d), "summary.json"))
        except (ArtifactNotFound, StageFailed):
            continue
        history.append(_evidence(d, past))
    history.append(_evidence(day, summary))
    retrains = [date.fromisoformat(e["date"]) for e in decisions(store, limit=200) if e.get("retrain")
                and date.fromisoformat(e["date"]) < day]
    # The serving model counts as a retrain at the end of its training window (not its wall-clock
    # registration: backfills register models years after the data they were trained on).
    window = record.get("window") or {}
    model_since = schema.parse_day(window["end"]) if isinstance(window, dict) and window.get("end") else None
    return decide(policy, day, history, version, holdout_auc, retrains, model_since)


def _evidence(day: date, summary: dict) -> DayEvidence:
    drift = summary.get("drift", {})
    perf = summary.get("performance", {})
    return DayEvidence(day=day, model_version=summary.get("model_version"),
                       drift_share=drift.get("drift_share") if drift.get("status") == "ok" else None,
                       auc=perf.get("roc_auc"), labelled_rows=int(perf.get("rows") or 0))


def _recorded_decision(store: ArtifactStore, day: date) -> dict | None:
    try:
        return store.read_json(f"{layout.MONITORING_DECISIONS}/date={day.isoformat()}.json")
    except ArtifactNotFound:
        return None


def _keep_earlier_request(decision, earlier: dict | None, version: int | None) -> None:
    """A rerun of a day whose earlier run requested a retrain (for the same serving version) keeps that
    request, once: the day's decision stays `retrain` (the retrain it caused counts for the cooldown and
    the cap, whatever the rerun's evidence says) and `already_requested` says when it was requested, so
    the DAG does not emit a second drift event for the same day."""
    if not earlier or not earlier.get("retrain") or earlier.get("model_version") != version:
        return
    at = earlier.get("requested_at") or earlier.get("recorded_at")
    if not decision.retrain:
        decision.retrain, decision.trigger, decision.blocked_by = True, earlier.get("trigger"), None
        decision.reasons.append(f"an earlier run of this day requested a retrain ({earlier.get('trigger')}); "
                                "the request stands")
    decision.already_requested = at
    decision.reasons.append(f"retrain already requested for this day at {at}: not requested again")


def _record_decision(store: ArtifactStore, day: date, summary: dict) -> None:
    """monitoring/decisions/date=<D>.json is the day's decision (a rerun replaces it; the policy reads
    these); monitoring/decisions/log/ keeps an audit entry per run, reruns included."""
    now = datetime.now(UTC).isoformat()
    decision = summary["decision"]
    event = {"date": day.isoformat(), "model_version": summary["model_version"], **decision, "recorded_at": now,
             "requested_at": decision.get("already_requested") or (now if decision.get("retrain") else None)}
    store.write_json(f"{layout.MONITORING_DECISIONS}/date={day.isoformat()}.json", event)
    store.write_json(f"{layout.MONITORING_DECISIONS}/log/{time.strftime('%Y%m%dT%H%M%S')}-{day.isoformat()}.json", event)


def decisions(store: ArtifactStore, limit: int = 100) -> list[dict]:
    """The latest decision per monitored day (re-running a day replaces its decision), oldest first."""
    keys = [k for k in store.list(f"{layout.MONITORING_DECISIONS}/date=") if k.endswith(".json")][-limit:]
    return [store.read_json(k) for k in keys]


# -- metrics, report, push ------------------------------------------------------------------------
def metrics_for(summary: dict) -> M.MetricsWriter:
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


def _push(settings, writer: M.MetricsWriter, params: MonitorParams) -> str | None:
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
