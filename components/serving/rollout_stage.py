"""The rollout stage: start, advance, abort and status of a challenger's rollout (shadow -> canary -> full).

The decision is components.serving.rollout.decide (pure); this module gathers its evidence (the
challenger records and health files that routing writes, the labels that landed), keeps the state in
serving/<model>/rollout.json by compare-and-swap, and deploys what a decision implies through the deploy
stage. Every decision is written to the state *before* its deploy, with `applied` false, and marked applied
after: a run killed in between is resumed by the next call, which applies the recorded decision instead of
deciding again (so a killed step resumes to the same decision). One decision per day: a rerun of a decided
day changes nothing. Airflow, KFP and the CLI all call these functions.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd

from components.contracts import layout
from components.contracts.errors import StageFailed
from components.contracts.results import RolloutResult
from components.contracts.rollout_stages import (
    RolloutAbortParams,
    RolloutAdvanceParams,
    RolloutStartParams,
    RolloutStatusParams,
)
from components.contracts.stages import DeployParams
from components.core.store import ArtifactStore, open_store
from components.serving import rollout as R
from components.serving.triton.routing import read_state

log = logging.getLogger(__name__)
ACTIVE, PROMOTED, ROLLED_BACK, ABORTED = "active", "promoted", "rolled_back", "aborted"


# -- state ------------------------------------------------------------------------------------------
def read_rollout(store: ArtifactStore, model: str) -> tuple[dict | None, str | None]:
    got = store.read_versioned(layout.rollout_key(model))
    return (json.loads(got[0]), got[1]) if got else (None, None)


def _write(store: ArtifactStore, state: dict, token: str | None) -> str:
    from components.core.artifact_store import ConflictError

    state["updated_at"] = datetime.now(UTC).isoformat()
    try:
        store.write_if(layout.rollout_key(state["model"]), json.dumps(state, indent=2, sort_keys=True).encode(), token)
    except ConflictError as exc:
        raise StageFailed(f"the rollout of {state['model']!r} was changed by another run while this one decided; "
                          "nothing was written: rerun it (it re-reads the state)") from exc
    return read_rollout(store, state["model"])[1]


def _deploy(store, settings, state: dict, version: int, mode: str, fraction: float = 0.0) -> dict:
    """The deploy a decision implies (the only way the rollout changes what serves)."""
    from components.serving.deploy import deploy

    return deploy(DeployParams(version=str(version), mode=mode, canary_fraction=fraction or 0.1,
                               target=state.get("target", ""), online=state.get("online", True),
                               timeout_s=state.get("timeout_s", 120.0)), store, settings)


def _apply(store, settings, state: dict, token: str | None) -> tuple[dict, str | None]:
    """Carry out the pending decision's deploy, then mark it applied. Safe to repeat: a deploy that was done
    before a kill is done again with the same serving state as its outcome (deploy's plan is a function of
    the state and the parameters), so resuming never lands anywhere the decision did not say."""
    pending = state.get("pending")
    if not pending or pending.get("applied"):
        return state, token
    d = pending["deploy"]
    if d:
        _deploy(store, settings, state, d["version"], d["mode"], d.get("fraction", 0.0))
        if pending["action"] in (R.ROLLBACK, "abort"):
            _restore_champion_alias(store, state)
        elif d["mode"] == "full" and d["version"] == state["challenger"]:
            _promote_alias(store, state)
    state["pending"]["applied"] = True
    return state, _write(store, state, token)


def _promote_alias(store, state: dict) -> None:
    """The registry's champion is the version serving all traffic (register already promoted a blessed
    one; a rollout started by hand with --version N is promoted here)."""
    from components.model.registry import Registry

    registry = Registry(store, state["model"])
    if registry.aliases()[0].get("champion") != state["challenger"]:
        registry.promote(state["challenger"])


def _restore_champion_alias(store, state: dict) -> None:
    """The registry's champion back to the version that serves (register promoted the challenger)."""
    from components.model.registry import Registry

    registry = Registry(store, state["model"])
    doc, _ = registry.aliases()
    if doc.get("champion") == state["challenger"]:
        history = doc.get("champion_history", [])
        if history[-2:-1] == [state["champion"]]:
            registry.rollback()
        else:
            registry.promote(state["champion"], force=True)


def _result(state: dict | None, model: str, action: str = "none", reason: str = "", day: str = "",
            store: ArtifactStore | None = None) -> RolloutResult:
    if state is None:
        return {"model": model, "champion": None, "challenger": None, "status": "none", "step": "", "action": action,
                "reason": reason or "no rollout has started", "day": day, "applied": True, "report": ""}
    report = layout.rollout_report_prefix(model, state["champion"], state["challenger"]) + "/report.json"
    pending = state.get("pending") or {}
    return {"model": model, "champion": state["champion"], "challenger": state["challenger"], "status": state["status"],
            "step": R.step_name(state["step"]), "action": action, "reason": reason, "day": day,
            "applied": bool(pending.get("applied", True)),
            "report": store.uri(report) if store is not None and store.exists(report) else ""}


def _record(state: dict, day: str, action: str, reason: str, checks: list, deploy: dict | None) -> None:
    state["history"].append({"day": day, "step": R.step_name(state["step"]), "action": action, "reason": reason,
                             "checks": checks, "decided_at": datetime.now(UTC).isoformat()})
    state["pending"] = {"day": day, "action": action, "reason": reason, "deploy": deploy, "applied": deploy is None}


def _settings_store(store, settings):
    from components.core.settings import load_settings

    settings = settings or load_settings()
    return settings, store or open_store(settings)


# -- the entry functions ------------------------------------------------------------------------------
def rollout_start(params: RolloutStartParams, store: ArtifactStore | None = None, settings=None) -> RolloutResult:
    """Start the rollout of a registry version: deployed as a shadow beside the serving champion.

    Inputs: the registry version (params.version), serving/<model>/state.json, serving/<model>/rollout.json.
    Outputs: serving/<model>/rollout.json (status active, step shadow, the start recorded before the deploy);
      the shadow deploy (components.serving.deploy). Nothing serving yet: the version is deployed to all
      traffic directly (there is no champion to compare with), recorded as promoted. An active rollout of
      another version is rolled back first (superseded: the newer champion is the one to try).
    Failures: the version was not blessed (StageFailed, nothing touched); the deploy's (DeployFailed: the champion keeps serving, the rollout stays recorded with its
      deploy pending, and the next start/advance applies it); a concurrent change of the rollout state.
    """
    from components.model.registry import Registry

    settings, store = _settings_store(store, settings)
    model = settings.model_name
    registry = Registry(store, model)
    version = registry.resolve(params.version)
    if not registry.get(version).get("blessed"):  # the same rule as promotion: what rolls out may end up serving
        raise StageFailed(f"version {version} of {model} was not blessed by its evaluation: it cannot roll out")
    state, token = read_rollout(store, model)
    if state:
        state, token = _apply(store, settings, state, token)  # an interrupted decision first (a rollback too)
    serving, _ = read_state(store, model)
    if state and state["status"] == ACTIVE and state["challenger"] == version:
        return _result(state, model, "none", f"version {version} is already rolling out", store=store)
    if serving is not None and serving.serving == version and serving.challenger is None:
        return _result(state, model, "none", f"version {version} already serves all traffic", store=store)
    if state and state["status"] == ACTIVE:  # superseded by a newer champion
        _record(state, "", "abort", f"superseded by version {version}",
                [], {"version": state["champion"], "mode": "full"})
        state["status"] = ABORTED
        token = _write(store, state, token)
        from components.serving.rollout_report import write_report

        write_report(store, settings, state)
        state, token = _apply(store, settings, state, token)
    first = serving is None
    new = {"model": model, "champion": version if first else serving.serving, "challenger": version,
           "status": PROMOTED if first else ACTIVE, "step": len(R.STEPS) - 1 if first else 0,
           "target": params.target, "online": params.online, "timeout_s": params.timeout_s,
           "started_at": datetime.now(UTC).isoformat(), "step_days": [], "last_day": "", "history": []}
    reason = ("nothing serves yet: the first champion goes to all traffic" if first
              else f"shadow of version {version} beside champion {serving.serving}")
    _record(new, "", "start", reason, [], {"version": version, "mode": "full" if first else "shadow"})
    token = _write(store, new, token)
    from components.serving.rollout_report import write_report

    write_report(store, settings, new)
    new, token = _apply(store, settings, new, token)
    return _result(new, model, "start", reason, store=store)


def rollout_advance(params: RolloutAdvanceParams, store: ArtifactStore | None = None, settings=None) -> RolloutResult:
    """Decide the active rollout's current step for a monitored day and deploy what the decision implies.

    Inputs: serving/<model>/rollout.json; the step's challenger records and health files
      (serving/<model>/challenger/v<champion>-vs-v<challenger>/, written by batch and online prediction);
      labels of those flights from validated/flights/date=<day>/.
    Outputs: the decision (advance | hold | rollback, with every guardrail's numbers) appended to
      rollout.json before its deploy; the deploy (canary 10%, canary 50%, full; a rollback: the champion to
      all traffic, the challenger unloaded, the registry's champion alias restored); the report
      (report.json, report.md, metrics.prom with flightdeck_rollout_rolled_back) under
      serving/<model>/rollouts/v<champion>-vs-v<challenger>/.
    Returns the decision; no active rollout: action none. A day already decided: its decision again
      (nothing new decided, an interrupted deploy re-applied).
    Failures: a bad date (ValueError); the deploy's (the decision stays recorded, pending, and the next
      run applies it); a concurrent change of the rollout state.
    """
    day = date.fromisoformat(params.date).isoformat()
    settings, store = _settings_store(store, settings)
    model = settings.model_name
    state, token = read_rollout(store, model)
    if state is not None:  # a killed run's decision (a rollback or promotion too), exactly as it was decided
        state, token = _apply(store, settings, state, token)
    if state is not None and state.get("last_day") and day <= state["last_day"]:
        last = next((h for h in reversed(state["history"]) if h["day"] == day), state["history"][-1])
        return _result(state, model, last["action"], f"{day} was already decided: {last['reason']}", day, store)
    if state is None or state["status"] != ACTIVE:
        return _result(state, model, "none", "no active rollout" + (f" ({state['status']})" if state else ""), day,
                       store)
    step = state["step"]
    evidence, seen = gather_evidence(store, state)
    decision = R.decide(evidence, len(state["step_days"]) + 1)
    checks = decision.to_json()["checks"]
    deploy = None
    if decision.action == R.ADVANCE:
        mode, share = R.STEPS[step + 1]
        deploy = {"version": state["challenger"], "mode": mode, "fraction": share}
    elif decision.action == R.ROLLBACK:
        deploy = {"version": state["champion"], "mode": "full"}
    _record(state, day, decision.action, decision.reason, checks, deploy)
    state["last_day"] = day
    state.setdefault("evidence", {})[R.step_name(step)] = seen
    if decision.action == R.ADVANCE:
        state["step"], state["step_days"] = step + 1, []
        state["status"] = PROMOTED if step + 1 == len(R.STEPS) - 1 else ACTIVE
    elif decision.action == R.ROLLBACK:
        state["status"] = ROLLED_BACK
    else:
        state["step_days"] = [*state["step_days"], day]
    token = _write(store, state, token)  # the decision, before the deploy it implies
    from components.serving.rollout_report import write_report

    write_report(store, settings, state)
    state, token = _apply(store, settings, state, token)
    if decision.action == R.ROLLBACK:
        log.error("rollout of %s v%s ROLLED BACK at %s: %s", model, state["challenger"], R.step_name(step),
                  decision.reason)
    return _result(state, model, decision.action, decision.reason, day, store)


def rollout_abort(params: RolloutAbortParams, store: ArtifactStore | None = None, settings=None) -> RolloutResult:
    """Stop the active rollout: the champion serves all traffic, the challenger is unloaded.

    Inputs: serving/<model>/rollout.json. Outputs: the abort recorded there before its deploy (the champion,
      full), the registry's champion alias restored, the report rewritten.
    Failures: no active rollout (StageFailed); the deploy's (the abort stays pending and is re-applied by
      the next abort/advance).
    """
    settings, store = _settings_store(store, settings)
    state, token = read_rollout(store, settings.model_name)
    if state is None or state["status"] != ACTIVE:
        if state and not (state.get("pending") or {}).get("applied", True):
            state, token = _apply(store, settings, state, token)
            return _result(state, settings.model_name, state["pending"]["action"], state["pending"]["reason"],
                           store=store)
        raise StageFailed("no active rollout to abort" + (f" (the last one is {state['status']})" if state else ""))
    _record(state, "", "abort", params.reason, [], {"version": state["champion"], "mode": "full"})
    state["status"] = ABORTED
    token = _write(store, state, token)
    from components.serving.rollout_report import write_report

    write_report(store, settings, state)
    state, token = _apply(store, settings, state, token)
    return _result(state, settings.model_name, "abort", params.reason, store=store)


def rollout_status(params: RolloutStatusParams, store: ArtifactStore | None = None, settings=None) -> RolloutResult:
    """Where the rollout stands (reads only).

    Inputs: serving/<model>/rollout.json. Outputs: none. Failures: none beyond the store's.
    """
    settings, store = _settings_store(store, settings)
    state, _ = read_rollout(store, settings.model_name)
    last = state["history"][-1] if state and state["history"] else {}
    return _result(state, settings.model_name, last.get("action", "none"), last.get("reason", ""),
                   last.get("day", ""), store)


# -- evidence -------------------------------------------------------------------------------------------
def gather_evidence(store: ArtifactStore, state: dict) -> tuple[R.Evidence, dict]:
    """The step's evidence: flights scored by both versions under this step's routing (mode and share),
    the latency and failures of those batches, and the labels that landed for those flights."""
    mode, share = R.STEPS[state["step"]]
    prefix = layout.challenger_records_prefix(state["model"], state["champion"], state["challenger"])
    keys = store.list(prefix + "/")
    frames = [store.read_parquet(k) for k in keys if k.endswith(".parquet") and "/health/" not in k]
    rec = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["flight_id", "champion_probability", "challenger_probability", "mode", "fraction", "scored_at"])
    if "fraction" not in rec.columns:
        rec["fraction"] = 0.0
    rec = rec[(rec["mode"] == mode) & np.isclose(rec["fraction"].astype(float), share)]
    # A flight scored again (a rerun interval, online and batch) counts once: its latest scores.
    rec = rec.dropna(subset=["challenger_probability"]).sort_values("scored_at").drop_duplicates("flight_id", keep="last")
    champ_ms, chall_ms, errors = [], [], 0
    for k in keys:
        if "/health/" in k and k.endswith(".json"):
            h = store.read_json(k)
            if h.get("mode") == mode and np.isclose(float(h.get("fraction", 0.0)), share):
                champ_ms += h["champion_ms"]
                chall_ms += h["challenger_ms"]
                errors += int(h["challenger_errors"])
    labels = landed_labels(store, rec["flight_id"].astype(str))
    joined = rec.assign(flight_id=rec["flight_id"].astype(str)).merge(labels, on="flight_id", how="inner")
    ev = R.Evidence(np.array(champ_ms), np.array(chall_ms), errors,
                    rec["champion_probability"].to_numpy(np.float64), rec["challenger_probability"].to_numpy(np.float64),
                    joined["label"].to_numpy(np.float64), joined["champion_probability"].to_numpy(np.float64),
                    joined["challenger_probability"].to_numpy(np.float64))
    return ev, {"scored": len(rec), "labelled": len(joined), "requests": len(chall_ms), "errors": errors}


def landed_labels(store: ArtifactStore, flight_ids: pd.Series) -> pd.DataFrame:
    """flight_id, label (1: late or cancelled) of the flights whose outcome is in the published validated
    partitions. A flight_id starts with its scheduled day (YYYY-MM-DD_...): only those days are read."""
    import io

    from components.features import tables as ft

    frames = []
    for d in sorted({f[:10] for f in flight_ids if len(f) >= 10}):
        try:
            prefix = layout.validated_prefix("flights", date.fromisoformat(d))
        except ValueError:
            continue
        record = store.published(prefix)
        for name in (record or {}).get("files", []):
            if name.endswith(".parquet"):
                frames.append(pd.read_parquet(io.BytesIO(store.read_published(prefix, name)),
                                              columns=["flight_id", "arr_delay"]))
    if not frames:
        return pd.DataFrame({"flight_id": pd.Series(dtype=str), "label": pd.Series(dtype="int8")})
    flights = pd.concat(frames, ignore_index=True)
    out = pd.DataFrame({"flight_id": flights["flight_id"].astype(str), "label": ft.label(flights)})
    return out.drop_duplicates("flight_id", keep="last")
