"""What the on-call engineer runs: `flightdeck status` (one screen) and `flightdeck rollback`.

status gathers, without changing anything: the registry's champion and previous version, the
version each Triton replica serves and whether it is ready, the last run of every pipeline (run
log), the last monitoring numbers and retraining decision, the online store's freshness, and a
list of what needs attention.

rollback restores the previous champion through the safe deploy path: the previous champion is
deployed first (sha256 check, load, readiness, parity; on any failure the current version keeps
serving and nothing else changes), and only then the registry's aliases are rolled back.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from components.contracts import layout, schema
from components.contracts.errors import StageFailed
from components.core import runlog

STALE_FEATURES_S = 36 * 3600
LATE_S = {"batch_prediction": 26 * 3600, "monitoring": 26 * 3600, "continuous_training": 32 * 86400}


def _registry_part(store, settings) -> dict:
    from components.model.registry import Registry

    registry = Registry(store, settings.model_name)
    doc, _ = registry.aliases()
    out = {"champion": doc.get("champion"), "previous": doc.get("previous"), "deployed": doc.get("deployed", {}),
           "versions": registry.versions()}
    if out["champion"] is not None:
        record = registry.get(int(out["champion"]))
        out["champion_holdout_auc"] = (record.get("metrics") or {}).get("roc_auc")
        out["champion_window"] = record.get("window")
    return out


def _serving_part(store, settings) -> dict:
    from components.serving.triton.client import RetryPolicy, TritonClient
    from components.serving.triton.replicas import replicas
    from components.serving.triton.routing import read_state
    from components.serving.triton.server import admin_key

    state, _ = read_state(store, settings.model_name)
    out: dict = {"state": state.to_json() if state else None, "replicas": []}
    try:
        targets = replicas(settings)
    except StageFailed as exc:
        out["error"] = str(exc)
        return out
    for r in targets:
        entry = {"name": r.name, "url": r.grpc_url, "ready": False, "loaded_versions": []}
        try:
            with TritonClient(r.grpc_url, admin_key=admin_key(settings), retry=RetryPolicy(attempts=1),
                              timeout_s=5) as client:
                entry["ready"] = client.server_ready()
                if state is not None:
                    entry["serving_ready"] = client.model_ready(settings.model_name, state.serving)
                try:  # the repository index is a restricted API: it needs the admin key
                    entry["loaded_versions"] = client.loaded_versions(settings.model_name)
                except StageFailed as exc:
                    entry["loaded_versions"] = f"unknown ({str(exc).split(': ')[-1]})"
        except StageFailed as exc:
            entry["error"] = str(exc).split(" (")[0]
        out["replicas"].append(entry)
    return out


def latest_monitoring(store) -> dict | None:
    days = sorted({k.split("/")[1] for k in store.list("monitoring/date=") if k.endswith("_PUBLISHED.json")})
    if not days:
        return None
    day = schema.parse_day(days[-1].split("=", 1)[1])
    return json.loads(store.read_published(layout.monitoring_prefix(day), "summary.json"))


def gather(store=None, settings=None) -> dict:
    from components.core.settings import load_settings
    from components.core.store import open_store
    from components.monitoring.monitor import feature_freshness

    settings = settings or load_settings()
    store = store or open_store(settings)
    now = datetime.now(UTC)
    status: dict = {"model": settings.model_name, "profile": settings.profile, "at": now.isoformat()}
    try:
        status["registry"] = _registry_part(store, settings)
    except StageFailed as exc:
        status["registry"] = {"error": str(exc)}
    status["serving"] = _serving_part(store, settings)
    from components.contracts.rollout_stages import RolloutStatusParams
    from components.serving.rollout_stage import rollout_status

    status["rollout"] = dict(rollout_status(RolloutStatusParams(), store, settings))
    status["runs"] = runlog.last_runs(store)
    status["monitoring"] = latest_monitoring(store)
    status["freshness"] = feature_freshness(store, now)
    status["attention"] = attention(status, now)
    return status


def attention(status: dict, now: datetime) -> list[str]:
    """Plain sentences, most urgent first; empty when all is well."""
    lines: list[str] = []
    reg, serving = status.get("registry", {}), status.get("serving", {})
    state = serving.get("state")
    if reg.get("error"):
        lines.append(f"registry unreadable: {reg['error']}")
    if reg.get("champion") is None:
        lines.append("no champion: train, evaluate and register a model (flightdeck register)")
    for r in serving.get("replicas", []):
        if not r.get("ready"):
            lines.append(f"Triton replica {r['name']} ({r['url']}) is not ready: {r.get('error', 'not ready')}")
        elif state and not r.get("serving_ready"):
            lines.append(f"Triton replica {r['name']} does not have the serving version {state['serving']} ready")
    if serving.get("error"):
        lines.append(serving["error"])
    if state is None and reg.get("champion") is not None:
        lines.append(f"champion v{reg['champion']} is not deployed: flightdeck deploy")
    elif (state and reg.get("champion") is not None and state["serving"] != reg["champion"]
          and not _rolling_out(status, reg["champion"])):  # a rollout serves the champion alias only at full
        lines.append(f"Triton serves v{state['serving']} but the champion is v{reg['champion']}: "
                     "deploy the champion, or roll the registry back if that was intended")
    rollout = status.get("rollout") or {}
    if rollout.get("status") == "rolled_back" and rollout.get("challenger") == reg.get("champion"):
        lines.append(f"the rollout of v{rollout['challenger']} was rolled back but it is still the registry's "
                     "champion: `flightdeck rollout status` says why")
    for pipeline, runs in sorted(status.get("runs", {}).items()):
        latest, ok = runs.get("latest"), runs.get("last_success")
        if latest and latest["status"] == "failed":
            lines.append(f"last {pipeline} run failed at {latest['at']}: {latest['info'].get('error', '')}".rstrip(": "))
        limit = LATE_S.get(pipeline)
        if limit and ok and now.timestamp() - ok["ts"] > limit:
            lines.append(f"{pipeline} has not succeeded since {ok['at']}")
    mon = status.get("monitoring")
    if mon is None:
        lines.append("no monitoring run yet: flightdeck monitor --date YYYY-MM-DD")
    else:
        drift, perf, decision = mon.get("drift", {}), mon.get("performance", {}), mon.get("decision", {})
        threshold = mon.get("policy", {}).get("drift_share_threshold", 0.2)
        if drift.get("drift_share") is not None and drift["drift_share"] >= threshold:
            drifted = sorted(c for c, e in drift.get("features", {}).items() if e["drifted"])
            lines.append(f"data drift on {mon['date']}: share {drift['drift_share']:.2f} ({', '.join(drifted)})")
        auc, holdout = perf.get("roc_auc"), mon.get("holdout_auc")
        if auc is not None and holdout is not None and holdout - auc >= mon.get("policy", {}).get("auc_drop", 0.1):
            lines.append(f"performance drop: AUC {auc:.3f} vs holdout {holdout:.3f}")
        if decision.get("retrain"):
            lines.append(f"retraining recommended on {mon['date']}: {'; '.join(decision.get('reasons', []))}")
        lag = (mon.get("freshness") or {}).get("seconds")
        if lag is not None and lag > STALE_FEATURES_S:
            lines.append(f"online features lag {lag / 3600:.0f} h behind the last monitored day ({mon['date']})")
    fresh = status.get("freshness", {})
    if fresh.get("materialized_until") is None:
        lines.append("the online store was never materialized: flightdeck features materialize --end YYYY-MM-DD")
    return lines


def _rolling_out(status: dict, version) -> bool:
    rollout = status.get("rollout") or {}
    return rollout.get("status") == "active" and rollout.get("challenger") == version


def render(status: dict) -> str:
    reg, serving, mon = status.get("registry", {}), status.get("serving", {}), status.get("monitoring")
    state = serving.get("state") or {}
    out = [f"flightdeck status - model {status['model']} ({status['profile']} profile) at {status['at'][:19]}Z", ""]
    if reg.get("error"):
        out.append(f"registry     {reg['error']}")
    else:
        auc = reg.get("champion_holdout_auc")
        out.append(f"registry     champion v{reg.get('champion')}  previous v{reg.get('previous')}  "
                   f"versions {reg.get('versions')}" + (f"  holdout AUC {auc:.3f}" if auc is not None else ""))
        for target, d in sorted(reg.get("deployed", {}).items()):
            out.append(f"             deployed to {target}: v{d['version']} at {d['at'][:19]}")
    out.append(f"serving      v{state.get('serving')} (previous v{state.get('previous')}, "
               f"challenger {state.get('challenger') and state['challenger'].get('version')}, "
               f"target {state.get('target')})" if state else "serving      nothing deployed")
    rollout = status.get("rollout") or {}
    if rollout.get("challenger") is not None:
        out.append(f"rollout      v{rollout['challenger']} vs v{rollout['champion']}: {rollout['status']} at "
                   f"{rollout['step']}; last: {rollout['action']} {rollout.get('day') or ''} "
                   f"{(rollout.get('reason') or '')[:120]}")
    for r in serving.get("replicas", []):
        health = "READY" if r.get("ready") else f"DOWN ({r.get('error', 'not ready')})"
        out.append(f"  triton     {r['name']:<12} {r['url']:<22} {health}  loaded {r.get('loaded_versions')}")
    out.append("")
    runs = status.get("runs", {})
    out.append("pipelines" if runs else "pipelines    no runs recorded")
    for pipeline, r in sorted(runs.items()):
        latest, ok = r.get("latest") or {}, r.get("last_success") or {}
        out.append(f"  {pipeline:<22} last {latest.get('status', '-'):<8} {latest.get('at', '-')[:19]}  "
                   f"last success {ok.get('at', '-')[:19]}")
    if mon:
        drift, perf = mon.get("drift", {}), mon.get("performance", {})
        share = drift.get("drift_share")
        out.append("")
        out.append(f"monitoring   {mon['date']} (model v{mon.get('model_version')}): drift "
                   + (f"{share:.2f} ({drift['n_drifted']}/{drift['n_tested']} features)" if share is not None
                      else drift.get("status", "-"))
                   + (f", prediction PSI {drift['prediction']['score']:.2f}" if drift.get("prediction") else ""))
        auc = perf.get("roc_auc")
        out.append("             performance " + (
            f"AUC {auc:.3f} (holdout {mon.get('holdout_auc')}), late rate observed {perf['observed_late_rate']:.3f} "
            f"vs predicted {perf['predicted_late_rate']:.3f}, {perf['rows']} labelled" if auc is not None
            else f"{perf.get('status')}") + (f"; labels pending {perf['pending_days']}" if perf.get("pending_days")
                                             else ""))
        decision = mon.get("decision", {})
        out.append(f"             retrain {decision.get('retrain')}: {'; '.join(decision.get('reasons', []))}")
    fresh = status.get("freshness", {})
    out.append(f"features     online store materialized until {fresh.get('materialized_until')}")
    out.append("")
    lines = status.get("attention", [])
    out.append("NEEDS ATTENTION" if lines else "all clear")
    out += [f"  - {line}" for line in lines]
    return "\n".join(out)


def rollback(target: str = "", timeout_s: float = 120.0, store=None, settings=None) -> dict:
    """Deploy the previous champion through deploy(); only when it serves, roll the registry back.

    target "" (the default): the target that serves now (the serving state's), else the runtime's
    natural one (components.serving.deploy.default_target): a rollback never switches backends.
    """
    from components.contracts.stages import DeployParams
    from components.core.settings import load_settings
    from components.core.store import open_store
    from components.model.registry import Registry
    from components.serving.deploy import deploy

    settings = settings or load_settings()
    store = store or open_store(settings)
    registry = Registry(store, settings.model_name)
    doc, _ = registry.aliases()
    history = doc.get("champion_history", [])
    if len(history) < 2:
        raise StageFailed(f"model {settings.model_name} has no previous champion to roll back to "
                          f"(champion history: {history or 'empty'}); nothing was changed")
    current, restored = history[-1], history[-2]
    try:
        deployed = deploy(DeployParams(version=str(restored), mode="full", target=target, timeout_s=timeout_s),
                          store=store, settings=settings)
    except StageFailed as exc:
        raise StageFailed(f"rollback of {settings.model_name} from v{current} to v{restored} failed; the registry "
                          f"is unchanged (champion v{current}). {exc}") from exc
    aliases = registry.rollback()
    if aliases["champion"] != restored:
        raise StageFailed(f"v{restored} now serves, but the registry rolled back to v{aliases['champion']} (another "
                          "promotion changed the history meanwhile); check `flightdeck status` and deploy the champion")
    runlog.record_run("rollback", "success", {"from": current, "to": restored}, store=store)
    return {"model": settings.model_name, "from": current, "to": restored, "serving": deployed["serving"],
            "target": deployed["target"],
            "parity_max_abs_diff": deployed["parity_max_abs_diff"], "champion": aliases["champion"],
            "previous": aliases["previous"]}


def add_status_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the gathered facts as JSON instead of the screen")


def run_status(args: argparse.Namespace) -> int:
    status = gather()
    print(json.dumps(status, indent=2, default=str) if args.json else render(status))
    return 0


def add_rollback_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", default="", choices=("", "cpu", "gpu"),
                   help="Triton target of the deploy (default: the target that serves now, else gpu on the "
                        "kubernetes runtime and cpu locally)")
    p.add_argument("--timeout-s", type=float, default=120.0, help="seconds a load may take on each replica")


def run_rollback(args: argparse.Namespace) -> int:
    try:
        result = rollback(args.target, args.timeout_s)
    except StageFailed as exc:
        print(f"flightdeck rollback: FAILED\n{exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, default=str))
    return 0
