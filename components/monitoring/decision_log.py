"""The retraining decision of a monitored day, and its record under monitoring/decisions/.

monitoring/decisions/date=<D>.json is the day's decision (a rerun replaces it; the retraining policy
reads these back for its cooldown and cap); monitoring/decisions/log/ keeps an audit entry per run.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta

from components.contracts import layout, schema
from components.contracts.errors import StageFailed
from components.core.store import ArtifactNotFound, ArtifactStore
from components.monitoring.policy import DayEvidence, Decision, RetrainPolicy, decide


def decide_day(store: ArtifactStore, policy: RetrainPolicy, day: date, version: int | None, summary: dict,
               holdout_auc: float | None, record: dict) -> Decision:
    """The policy's decision for `day`, from the summaries of the days before it and the earlier decisions.

    `summary` is the day's own summary so far (drift and performance); `record` is the registry record
    of the serving version (its training window).
    """
    history = []
    for i in range(1, policy.consecutive_days + 1):
        d = day - timedelta(days=i)
        try:
            past = json.loads(store.read_published(layout.monitoring_prefix(d), "summary.json"))
        except (ArtifactNotFound, StageFailed):
            continue
        history.append(evidence_of(d, past))
    history.append(evidence_of(day, summary))
    retrains = [date.fromisoformat(e["date"]) for e in decisions(store, limit=200) if e.get("retrain")
                and date.fromisoformat(e["date"]) < day]
    return decide(policy, day, history, version, holdout_auc, retrains, serving_model_since(record))


def serving_model_since(record: dict) -> date | None:
    """When the serving model counts as retrained: the end of its training window (not its wall-clock
    registration: backfills register models years after the data they were trained on)."""
    window = record.get("window") or {}
    return schema.parse_day(window["end"]) if isinstance(window, dict) and window.get("end") else None


def evidence_of(day: date, summary: dict) -> DayEvidence:
    """What the policy reads of one day's summary (a day without a drift verdict has no drift share)."""
    drift = summary.get("drift", {})
    perf = summary.get("performance", {})
    return DayEvidence(day=day, model_version=summary.get("model_version"),
                       drift_share=drift.get("drift_share") if drift.get("status") == "ok" else None,
                       auc=perf.get("roc_auc"), labelled_rows=int(perf.get("rows") or 0))


def recorded_decision(store: ArtifactStore, day: date) -> dict | None:
    """The decision an earlier run recorded for the day, if any."""
    try:
        return store.read_json(f"{layout.MONITORING_DECISIONS}/date={day.isoformat()}.json")
    except ArtifactNotFound:
        return None


def keep_earlier_request(decision: Decision, earlier: dict | None, version: int | None) -> None:
    """A rerun of a day whose earlier run requested a retrain (for the same serving version) keeps that
    request, once: the day's decision stays `retrain` (the retrain it caused counts for the cooldown and
    the cap, whatever the rerun's evidence says) and `already_requested` says when it was requested, so
    the DAG does not emit a second drift event for the same day."""
    # A retrain that was only recommended (the action "warn") requested nothing: a rerun under "train" may.
    if not earlier or not earlier.get("retrain") or not earlier.get("requested_at") \
            or earlier.get("model_version") != version:
        return
    at = earlier["requested_at"]
    if not decision.retrain:
        decision.retrain, decision.trigger, decision.blocked_by = True, earlier.get("trigger"), None
        decision.reasons.append(f"an earlier run of this day requested a retrain ({earlier.get('trigger')}); "
                                "the request stands")
    decision.already_requested = at
    decision.reasons.append(f"retrain already requested for this day at {at}: not requested again")


def record_decision(store: ArtifactStore, day: date, summary: dict) -> None:
    """monitoring/decisions/date=<D>.json is the day's decision (a rerun replaces it; the policy reads
    these); monitoring/decisions/log/ keeps an audit entry per run, reruns included."""
    now = datetime.now(UTC).isoformat()
    decision = summary["decision"]
    event = {"date": day.isoformat(), "model_version": summary["model_version"], **decision, "recorded_at": now,
             "requested_at": decision.get("already_requested") or (now if decision.get("requested") else None)}
    store.write_json(f"{layout.MONITORING_DECISIONS}/date={day.isoformat()}.json", event)
    store.write_json(f"{layout.MONITORING_DECISIONS}/log/{time.strftime('%Y%m%dT%H%M%S')}-{day.isoformat()}.json", event)


def decisions(store: ArtifactStore, limit: int = 100) -> list[dict]:
    """The latest decision per monitored day (re-running a day replaces its decision), oldest first."""
    keys = [k for k in store.list(f"{layout.MONITORING_DECISIONS}/date=") if k.endswith(".json")][-limit:]
    return [store.read_json(k) for k in keys]


def trigger_day(store: ArtifactStore, day: date, version: int | None, summary: dict, holdout_auc: float | None,
                record: dict, auc_rows, refused: list[str]) -> Decision:
    """The value trigger's decision (components/monitoring/trigger.py) on the morning after the monitored
    `day`: labels through `day`, the serving version's scored rows of the performance window (`auc_rows`,
    the monitor's auc_window_days), the day's drift share as early warning, the earlier decisions."""
    from components.monitoring.drift import SCORE
    from components.monitoring.performance import labels_for_day
    from components.monitoring.trigger import (
        decide_trigger,
        evidence_days,
        guard_days,
        load_trigger,
        pool_evidence,
        recent_unusual,
    )
    from components.monitoring.window import DAY

    policy = load_trigger()
    today = day + timedelta(days=1)
    drift = summary.get("drift", {})
    drift_share = drift.get("drift_share") if drift.get("status") == "ok" else None
    watching = drift_share is not None and drift_share >= policy.drift_share_threshold
    wanted = evidence_days(policy, today, watching)
    labelled, unarrived = {}, {}
    for d in sorted(set(wanted) | set(guard_days(policy, today))):
        labels = labels_for_day(store, d)
        if labels is None or labels.empty:
            continue  # labels not landed: neither evidence nor a guard verdict
        unarrived[d] = float(1.0 - labels["arrived"].mean())
        if d in wanted:
            rows = auc_rows[auc_rows[DAY] == d][["flight_id", SCORE]].rename(columns={SCORE: "probability"})
            labelled[d] = rows.merge(labels, on="flight_id", how="inner")
    evidence, skipped = pool_evidence(policy, labelled, unarrived)
    retrains = [date.fromisoformat(e["date"]) for e in decisions(store, limit=200) if e.get("retrain")
                and date.fromisoformat(e["date"]) < day]
    since = serving_model_since(record)
    decision = decide_trigger(policy, today, evidence, holdout_auc, since, retrains,
                              recent_unusual(policy, today, unarrived), drift_share, refused=len(refused))
    decision.inputs |= {"rule": "trigger", "monitored_day": day.isoformat(), "model_version": version,
                        "skipped_days": skipped, "refused_runs": refused}
    return decision


def refused_since_serving(store: ArtifactStore, day: date, version: int | None, record: dict) -> list[str]:
    """The training runs whose candidates evaluate refused against the serving `version` (registry
    `record`), trained on data up to the monitored `day` (components.monitoring.trigger.refused_candidates)."""
    from components.monitoring.trigger import refused_candidates

    return refused_candidates(evaluations_against(store, version), version, serving_model_since(record),
                              day + timedelta(days=1))


def evaluations_against(store: ArtifactStore, version: int | None) -> list[dict]:
    """The published evaluations of candidates compared with champion `version`: run_id, champion,
    blessed, holdout_end (only refused ones are read whole: the publish record says which were blessed)."""
    if version is None:
        return []
    from components.core import partitions

    found = []
    for eval_id, pointer in partitions.parts(store, layout.EVAL_RUNS).items():  # every published evaluation
        if (pointer.get("meta") or {}).get("blessed", False):
            continue
        report = json.loads(store.read_published(layout.eval_run_prefix(eval_id), "evaluation.json"))
        champion = (report.get("champion") or {}).get("version")
        if champion == version:
            found.append({"run_id": report["run_id"], "champion": champion, "blessed": report["decision"]["blessed"],
                          "holdout_end": report["holdout"]["end"]})
    return found
