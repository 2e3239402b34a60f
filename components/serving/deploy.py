"""deploy: a registry version -> the Triton model repository -> loaded, ready, checked, recorded.

What a deploy does is planned before any I/O (plan_deploy, rollback_steps); `deploy` carries the plan
out and rolls back on any failure once the repository is touched. Its docstring lists what it reads,
writes and raises; the modes (full, shadow, canary): components.serving.triton.routing; the operator's
view: README.md, "Serving (Triton)".
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from components.contracts import signature
from components.contracts.errors import StageFailed
from components.contracts.results import DeployResult
from components.contracts.stages import DeployParams
from components.core.store import ArtifactStore, open_store
from components.serving.deploy_lock import DeployFailed, deploy_lock
from components.serving.parity import check_parity
from components.serving.triton import repository
from components.serving.triton.client import TritonClient, TritonTimeout, clients
from components.serving.triton.replicas import Replica, replicas
from components.serving.triton.routing import MODES, Challenger, ServingState, read_state, write_state
from components.serving.triton.server import admin_key

log = logging.getLogger(__name__)

# A rollback's reload waits for a load still running on the server (one that outlasted the deploy's
# timeout) before it applies the previous config: give it longer than any deploy timeout.
ROLLBACK_LOAD_TIMEOUT_S = 600.0


# -- the plan: what a deploy will do, decided before any I/O -----------------------------------------
# How a replica's load ended, as the deploy saw it (a replica never asked to load has no entry).
LOADED, FAILED, TIMED_OUT = "loaded", "failed", "timed out"
# What a rollback does on one replica (rollback_steps).
WAIT_FOR_LOAD, UNLOAD, RELOAD, RELOAD_IF_CHANGED = "wait for the load", "unload", "reload", "reload if changed"


@dataclass(frozen=True)
class DeployPlan:
    version: int
    state: ServingState  # written once every replica passed; its loaded_versions are the version policy
    config: str  # config.pbtxt naming exactly the policy's versions, for the target
    kept_versions: tuple[int, ...]  # the policy's other versions: their files must exist for the target
    load_order: tuple[str, ...]  # replica names: one at a time, each loaded and checked before the next
    new_files: bool  # the version's files were not in the repository before: a rollback removes them


def plan_deploy(state: ServingState | None, model: str, version: int, params: DeployParams,
                replica_names: list[str], on_disk: list[int]) -> DeployPlan:
    """The next serving state, the config that loads it and the order of the replicas (pure)."""
    new_state = _next_state(state, model, version, params)
    new_state.replicas = list(replica_names)
    policy = new_state.loaded_versions
    return DeployPlan(version=version, state=new_state, config=repository.config_pbtxt(model, params.target, policy),
                      kept_versions=tuple(v for v in policy if v != version), load_order=tuple(replica_names),
                      new_files=version not in on_disk)


def rollback_steps(load_outcome: str | None, had_config: bool) -> tuple[str, ...]:
    """What a rollback does on one replica, from how its load ended (None: never asked to load) (pure).

    WAIT_FOR_LOAD: a load that timed out may still run on the server, and Triton makes every later
    load of the model wait for it. UNLOAD: no config existed before, so nothing of the model stays.
    RELOAD: the previous config is loaded again, which unloads the new version while the previous
    ones keep serving. RELOAD_IF_CHANGED: a load that failed (or one that loaded and then failed its
    checks) reloads only if the replica's loaded versions are no longer the previous policy's.
    """
    if load_outcome is None:
        return ()
    wait = (WAIT_FOR_LOAD,) if load_outcome == TIMED_OUT else ()
    if not had_config:
        return (*wait, UNLOAD)
    return (*wait, RELOAD if load_outcome == TIMED_OUT else RELOAD_IF_CHANGED)


def _next_state(state: ServingState | None, model: str, version: int, params: DeployParams) -> ServingState:
    if params.mode == "full" or state is None:
        if params.mode != "full":
            raise DeployFailed(f"nothing serves {model!r} yet: a {params.mode} needs a serving version to compare "
                               "with. Deploy one with --mode full first.")
        previous = state.serving if state and state.serving != version else (state.previous if state else None)
        return ServingState(model, params.target, serving=version, previous=previous)
    if version == state.serving:
        raise DeployFailed(f"version {version} already serves {model!r}; a {params.mode} needs another version")
    return ServingState(model, params.target, serving=state.serving, previous=state.previous,
                        challenger=Challenger(version, params.mode,
                                              params.canary_fraction if params.mode == "canary" else 0.0))


# -- the stage -------------------------------------------------------------------------------
def deploy(params: DeployParams, store: ArtifactStore | None = None, settings=None,
           replica_list: list[Replica] | None = None) -> DeployResult:
    """Load a registry version on every Triton replica, check it, and make it serve (or shadow, or canary).

    Inputs:
      models/<name>/versions/<N>/ (model.pt, refused on a sha256 mismatch; signature.json; model_card.json);
      serving/<model>/state.json (what serves now); the model repository's config.pbtxt; the
      replicas (FLIGHTDECK_TRITON_URL, or every ready pod of the Triton Service on kubernetes).
    Outputs, under the lock serving/<model>/deploy.lock:
      the model repository (FLIGHTDECK_HOME/triton/model_repository or s3://.../triton/model_repository):
      <model>/<N>/ files and config.pbtxt with the new version policy, loaded on every replica; then
      serving/<model>/state.json (compare-and-swap), the files of versions out of the policy removed,
      <model>_online published and loaded (unless --no-online), the registry's deployment record.
    Parity: Triton's outputs on a fixed sample equal the in-process TorchScript's within
      components.serving.parity.PARITY_TOLERANCE, on every replica, before anything is recorded.
    Returns:
      DeployResult: what serves now, what was loaded and removed, the parity figure, the online model.
    Failures (DeployFailed, a StageFailed, unless named):
      bad --mode / --target / --canary-fraction; no such version (or alias); the registered
      signature is not the serving contract; the version has no model card (model_card.json/.md, written by
      register), or one that describes another version; ModelIntegrityError: the bytes (or the card's)
      do not match the registry;
      another deploy holds the lock, or took the lease over mid-deploy (checked before the repository is
      touched and before serving state is written); TritonUnavailable: a replica cannot be reached (nothing touched).
      Once the repository is touched, any failure (load, timeout, readiness, prediction parity with the
      in-process TorchScript) rolls back: the previous config is restored and reloaded where needed,
      the new files removed; the message names the step and what serves after the rollback.
      The online model failing to load is reported in the result, not raised.
    """
    from components.core.settings import load_settings

    settings = settings or load_settings()
    store = store or open_store(settings)
    model = settings.model_name
    params = _checked(params, store, settings)
    t0 = time.perf_counter()
    registry, version, model_bytes, sha256 = _registered_version(store, model, params.version)
    check_declared_signature(registry, version)
    check_model_card(registry, version)
    repo_store, repo_uri = repository.repository_location(settings)
    targets = replica_list if replica_list is not None else replicas(settings)
    key = admin_key(settings)
    with deploy_lock(store, model) as lease, clients([r.grpc_url for r in targets], key, params.timeout_s) as conns:
        state, token = read_state(store, model)
        plan = plan_deploy(state, model, version, params, [r.name for r in targets],
                           repository.versions_on_disk(repo_store, model))
        old_config = repository.read_config(repo_store, model)
        for r, c in zip(targets, conns, strict=True):  # an unreachable server fails here, before anything is touched
            if not c.server_ready():
                raise DeployFailed(f"Triton on {r.name} ({r.grpc_url}) is not ready; nothing was deployed")
        lease.check()  # renewed all along; lost only to a takeover: stop before touching anything
        progress = _Progress(f"writing version {version} into the model repository {repo_uri}")
        try:
            diffs = _publish_and_load(plan, model, params, repo_store, registry, model_bytes, targets, conns, progress)
        except Exception as exc:
            reason = exc if isinstance(exc, StageFailed) else f"{type(exc).__name__}: {exc}"
            restored = _rollback(repo_store, model, old_config, plan, state, conns, targets, progress.load_outcomes)
            raise DeployFailed(
                f"deploy of {model!r} version {version} ({params.mode}, {params.target}) failed while "
                f"{progress.step}: {reason}. Rolled back: {restored}"
            ) from exc
        lease.check()  # (serving state is also compare-and-swap: a deploy that took over cannot be overwritten)
        write_state(store, plan.state, token)
        removed = repository.remove_versions(repo_store, model, set(plan.state.loaded_versions))
        online_status = _online_model(params, repo_store, model, conns)
    new_state = plan.state
    result: DeployResult = {
        "model": model, "version": version, "sha256": sha256, "mode": params.mode, "target": params.target,
        "serving": new_state.serving, "previous": new_state.previous,
        "challenger": new_state.challenger.__dict__ if new_state.challenger else None,
        "loaded_versions": new_state.loaded_versions, "removed_versions": removed,
        "replicas": [r.name for r in targets], "parity_max_abs_diff": max(diffs.values()),
        "online_model": online_status, "repository": repo_uri, "deployed_at": datetime.now(UTC).isoformat(),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    registry.record_deployment(version, deployment_target(settings, params.mode), dict(result))
    log.info("deployed %s v%s (%s): %s", model, version, params.mode, result)
    return result


def _checked(params: DeployParams, store: ArtifactStore, settings) -> DeployParams:
    """The parameters with the default target filled in; a bad mode, target or canary fraction is refused."""
    if not params.target:
        params = replace(params, target=default_target(store, settings))
    if params.mode not in MODES:
        raise DeployFailed(f"--mode {params.mode!r} is not one of {', '.join(MODES)}")
    if params.target not in repository.TARGETS:
        raise DeployFailed(f"--target {params.target!r} is not one of {', '.join(repository.TARGETS)}")
    if params.mode == "canary" and not 0 < params.canary_fraction < 1:
        raise DeployFailed(f"--canary-fraction must be between 0 and 1 (exclusive), got {params.canary_fraction}")
    return params


def _registered_version(store: ArtifactStore, model: str, ref: str):
    """(registry, version number, model bytes, sha256) of a version or alias; a sha256 mismatch
    (ModelIntegrityError) stops here, before anything was touched."""
    from components.model.registry import Registry, VersionNotFound

    registry = Registry(store, model)
    try:
        version = registry.resolve(ref)
        model_bytes, version = registry.model_bytes(version)
        sha256 = registry.get(version)["model_sha256"]
    except VersionNotFound as exc:
        raise DeployFailed(f"cannot deploy {ref!r}: {exc}. Register and promote a model first "
                           "(flightdeck register), or pass --version N.") from exc
    return registry, version, model_bytes, sha256


@dataclass
class _Progress:
    step: str  # what the deploy is doing, for the failure message
    load_outcomes: dict[str, str] = field(default_factory=dict)  # replica name -> LOADED | FAILED | TIMED_OUT


def _publish_and_load(plan: DeployPlan, model: str, params: DeployParams, repo_store, registry, model_bytes: bytes,
                      targets: list[Replica], conns: list[TritonClient], progress: _Progress) -> dict[str, float]:
    """Write the version's files and the new config, then load and check each replica in the plan's order.

    Returns each replica's parity figure (max abs diff); raises on the first failure, with
    `progress` saying which step it was and how each replica's load ended (for the rollback)."""
    version = plan.version
    repository.write_version(repo_store, model, version, model_bytes, params.target)
    for v in plan.kept_versions:  # a target switch needs every kept version's files
        _ensure_target_files(repo_store, model, v, params.target, registry)
    repository.write_config(repo_store, model, plan.config)
    by_name = {r.name: (r, c) for r, c in zip(targets, conns, strict=True)}
    diffs = {}
    for name in plan.load_order:
        r, c = by_name[name]
        progress.step = f"loading version {version} on replica {r.name} ({r.grpc_url})"
        started = time.monotonic()
        progress.load_outcomes[r.name] = FAILED
        try:  # Triton's load returns once the policy's versions are loaded (or failed to)
            c.load(model, timeout_s=params.timeout_s)
        except TritonTimeout as exc:
            progress.load_outcomes[r.name] = TIMED_OUT
            raise DeployFailed(f"version {version} was not ready on {r.name} within {params.timeout_s:g} s "
                               "(the load was still running)") from exc
        progress.load_outcomes[r.name] = LOADED
        progress.step = f"waiting for version {version} to be ready on {r.name}"
        left = max(params.timeout_s - (time.monotonic() - started), 1.0)
        if not c.wait_model_ready(model, version, left):
            raise DeployFailed(f"version {version} was not ready on {r.name} within {params.timeout_s:g} s")
        for v in plan.state.loaded_versions:
            if not c.model_ready(model, v):
                raise DeployFailed(f"version {v} (kept in the policy) is not ready on {r.name} after the load")
        progress.step = f"checking prediction parity of version {version} on {r.name}"
        diffs[r.name] = check_parity(c, model, version, model_bytes)
    return diffs


def _online_model(params: DeployParams, repo_store, model: str, conns: list[TritonClient]) -> str:
    """Publish and load <model>_online unless --no-online; its status (a failure is reported, not raised)."""
    if not params.online:
        return "not deployed (--no-online)"
    from components.serving.triton.online import ensure_online_model

    status = ensure_online_model(repo_store, model, conns, params.timeout_s)
    if status != "ready":
        log.warning("the online model is not serving: %s", status)
    return status


def deployment_target(settings, mode: str) -> str:
    """The registry's name for where a version serves: one entry per environment and mode."""
    where = "kubernetes" if settings.runtime == "kubernetes" else settings.profile
    return f"triton-{where}" if mode == "full" else f"triton-{where}-{mode}"


def check_declared_signature(registry, version: int) -> None:
    """Refuse a version whose registered signature.json is not the serving contract (before touching Triton)."""
    from components.core.store import ArtifactNotFound

    try:
        declared = json.loads(registry.read_file(version, "signature.json"))
    except (ArtifactNotFound, StageFailed) as exc:
        if "no file" in str(exc) or isinstance(exc, ArtifactNotFound):
            return  # nothing declared: the parity check on Triton is the test
        raise
    expected = signature.signature_json()
    for part in ("inputs", "outputs"):
        if declared.get(part) != expected[part]:
            raise DeployFailed(
                f"version {version} of {registry.name} declares {part} {json.dumps(declared.get(part))}, but the "
                f"serving contract (components/contracts/signature.py) is {json.dumps(expected[part])}; it is not deployed."
            )


def check_model_card(registry, version: int) -> None:
    """Refuse a version without its model card, or with one that does not describe it (before touching Triton):
    what serves must say what it is for, what it was trained on and how it was judged."""
    from components.model.card import ModelCardMissing, verified_card

    try:
        verified_card(registry, version)
    except ModelCardMissing as exc:
        raise DeployFailed(f"cannot deploy version {version} of {registry.name}: {exc} "
                           "Nothing was deployed.") from exc


def _ensure_target_files(repo_store, model, version, target, registry) -> None:
    """A kept version's files for the target; its checksum file always from the registry's record (never from
    the file on disk, which is what the checksum is there to check)."""
    if not repo_store.exists(f"{model}/{version}/model.pt"):
        data, _ = registry.model_bytes(version)
        repository.write_version(repo_store, model, version, data, target)
        return
    for name, data in repository.version_files(target, b"").items():
        if name == repository.CHECKSUM:
            data = repository.checksum_file(registry.get(version)["model_sha256"])
        if name != "model.pt":
            repository.write_if_changed(repo_store, f"{model}/{version}/{name}", data)


def _rollback(repo_store, model: str, old_config: str | None, plan: DeployPlan, state: ServingState | None,
              conns: list[TritonClient], targets: list[Replica], load_outcomes: dict[str, str]) -> str:
    """Put the previous config back and carry out each replica's rollback_steps; say what serves now.

    The new version's files are removed last (when the plan says they are new), once no replica can
    still be reading them. The result names each replica's versions as checked afterwards.
    """
    version = plan.version
    notes = []
    try:  # the config first: it is what any replica, or a restarted one, loads from
        if old_config is None:
            repo_store.delete(f"{model}/config.pbtxt")
        else:
            repository.write_config(repo_store, model, old_config)
    except Exception as exc:
        notes.append(f"REPOSITORY NOT RESTORED: {type(exc).__name__}: {exc}")
    old_versions = repository.policy_versions(old_config) if old_config is not None else []
    still_loading = False
    for r, c in zip(targets, conns, strict=True):
        try:
            for step in rollback_steps(load_outcomes.get(r.name), old_config is not None):
                if step == WAIT_FOR_LOAD and not _wait_until_not_loading(c, model, ROLLBACK_LOAD_TIMEOUT_S):
                    # (A python-backend load whose files vanish mid-way never ends, and every later load of
                    # the model waits for it: the files stay, and an operator must look.)
                    notes.append(f"the load on {r.name} was still running after {ROLLBACK_LOAD_TIMEOUT_S:.0f} s; "
                                 f"version {version}'s files were kept")
                    still_loading = True
                    break
                if step == UNLOAD:
                    c.unload(model)
                elif step == RELOAD or (step == RELOAD_IF_CHANGED and c.loaded_versions(model) != old_versions):
                    c.load(model, timeout_s=ROLLBACK_LOAD_TIMEOUT_S)
        except Exception as exc:
            notes.append(f"could not reload {r.name} ({type(exc).__name__}: {exc})")
    if plan.new_files and not still_loading:
        try:
            repo_store.delete_prefix(f"{model}/{version}/")
        except Exception as exc:
            notes.append(f"version {version}'s files not removed: {type(exc).__name__}: {exc}")
    if state is None:
        return "nothing served this model before; the new version is unloaded. " + "; ".join(notes)
    serving = []
    for r, c in zip(targets, conns, strict=True):
        ok = all(c.model_ready(model, v) for v in state.loaded_versions)
        stray = version not in state.loaded_versions and c.model_ready(model, version)
        if ok and not stray:
            serving.append(f"{r.name}: serving {state.loaded_versions}")
        else:  # say so loudly: an operator must look
            serving.append(f"ROLLBACK INCOMPLETE on {r.name}: {state.loaded_versions} "
                           f"{'ready' if ok else 'NOT READY'}" + (f", version {version} still loaded" if stray else ""))
    return f"version {state.serving} keeps serving ({'; '.join(serving)})" + (f"; {'; '.join(notes)}" if notes else "")


def _wait_until_not_loading(client: TritonClient, model: str, timeout_s: float) -> bool:
    """Wait until no version of the model is loading on this replica (a load that outlasted the deploy's timeout)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if not any(m.get("name") == model and m.get("state") == "LOADING" for m in client.repository_index()):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


def default_target(store: ArtifactStore, settings) -> str:
    """The target of a deploy that names none: what the serving state says serves now (so a rollback or
    a redeploy never switches backends behind the operator's back), else the runtime's natural target."""
    state, _ = read_state(store, settings.model_name)
    if state is not None and state.target in repository.TARGETS:
        return state.target
    return settings.triton_target
