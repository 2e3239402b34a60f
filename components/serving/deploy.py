"""deploy: a registry version -> the Triton model repository -> loaded, ready, checked, recorded.

Steps, in order; any failure after the repository is touched rolls back:
 1. resolve the version (default: the champion) and read its bytes, refused on a sha256 mismatch
 2. take the model's deploy lock (one deploy, hence one load call, per model at a time)
 3. write the version's files, then config.pbtxt with the new version policy
 4. load through the model-control API (admin key) on every replica; wait until the version is ready
 5. parity: Triton's outputs on a fixed sample == the in-process TorchScript outputs (max abs diff
    <= 1e-5); a model whose signature does not match fails here, on Triton and in-process alike
 6. only then: write the serving state and record the deployment in the registry
Rollback: the previous config.pbtxt is written back and loaded again on every replica, which
unloads the new version while the previous one keeps serving; the new files are removed. The
command then fails (non-zero exit) naming the reason.

Modes: full (the version serves; the old serving version stays loaded as "previous"), shadow
and canary (the version is loaded beside the serving one as the challenger; see routing).
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
import uuid
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np

from components.contracts import layout, signature
from components.contracts.errors import StageFailed
from components.contracts.stages import DeployParams
from components.core.store import ArtifactStore, ConflictError, open_store
from components.serving.triton import repository
from components.serving.triton.client import TritonClient, TritonTimeout
from components.serving.triton.replicas import Replica, replicas
from components.serving.triton.routing import MODES, Challenger, ServingState, read_state, write_state
from components.serving.triton.server import admin_key

log = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-5
PARITY_ROWS = 512
# A rollback's reload waits for a load still running on the server (one that outlasted the deploy's
# timeout) before it applies the previous config: give it longer than any deploy timeout.
ROLLBACK_LOAD_TIMEOUT_S = 600.0


class DeployFailed(StageFailed):
    pass


# -- the model's deploy lock ----------------------------------------------------------------
@contextmanager
def deploy_lock(store: ArtifactStore, model: str, wait_s: float = 120.0, lease_s: float = 900.0):
    """One deploy per model at a time, across processes and machines (a conditional write in the store).

    A lease older than lease_s is taken over: a deploy killed mid-way must not block the next forever.
    """
    key = layout.deploy_lock_key(model)
    owner = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + wait_s
    while True:
        now = datetime.now(UTC)
        body = json.dumps({"owner": owner, "expires": (now + timedelta(seconds=lease_s)).isoformat()}).encode()
        current = store.read_versioned(key)
        try:
            if current is None:
                store.write_if(key, body, None)
                break
            held = json.loads(current[0])
            if datetime.fromisoformat(held["expires"]) < now:
                log.warning("taking over the expired deploy lock of %s held by %s", model, held["owner"])
                store.write_if(key, body, current[1])
                break
        except ConflictError:
            pass
        if time.monotonic() > deadline:
            raise DeployFailed(
                f"another deploy of {model!r} holds its lock ({store.uri(key)}: {current[0].decode() if current else ''}); "
                f"waited {wait_s:.0f} s. Loads of one model are never run concurrently."
            )
        time.sleep(0.5)
    try:
        yield owner
    finally:
        got = store.read_versioned(key)
        if got is not None and json.loads(got[0]).get("owner") == owner:
            store.delete(key)


# -- parity -----------------------------------------------------------------------------------
def parity_sample(rows: int = PARITY_ROWS, seed: int = 20130101) -> tuple[np.ndarray, np.ndarray]:
    """A fixed sample in the signature's shape: plausible values, missing values, unseen categories."""
    rng = np.random.default_rng(seed)
    numeric = rng.normal(0.0, 1.0, (rows, len(signature.NUMERIC))).astype(np.float32)
    scale = {"distance": 1000.0, "temp": 50.0, "pressure": 1015.0, "visib": 10.0, "plane_year": 2000.0,
             "plane_seats": 150.0, "route_flights_28d": 100.0}
    for j, name in enumerate(signature.NUMERIC):
        if name in scale:
            numeric[:, j] = scale[name] * (1 + 0.2 * numeric[:, j])
    numeric[rng.random(numeric.shape) < 0.08] = np.nan
    pools = {
        "carrier": ["UA", "B6", "EV", "DL", "AA", "MQ", "US", "9E", "WN", "VX", "ZZ"],
        "origin": ["EWR", "JFK", "LGA"],
        "dest": ["ORD", "ATL", "LAX", "BOS", "MCO", "SFO", "XXX"],
    }
    categorical = np.zeros((rows, len(signature.CATEGORICAL)), dtype=np.int64)
    for j, name in enumerate(signature.CATEGORICAL):
        if name in pools:
            codes = np.array([signature.encode_category(v) for v in pools[name]] + [0], dtype=np.int64)
            categorical[:, j] = codes[rng.integers(0, len(codes), rows)]
        elif name == "sched_hour":
            categorical[:, j] = rng.integers(5, 24, rows)
        else:
            categorical[:, j] = rng.integers(0, 7, rows)
    return numeric, categorical


def reference_outputs(model_bytes: bytes, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
    import torch

    module = torch.jit.load(io.BytesIO(model_bytes), map_location="cpu").eval()
    with torch.inference_mode():
        out = module(torch.from_numpy(numeric), torch.from_numpy(categorical))
    if tuple(out.shape) != (len(numeric), 1):
        raise ValueError(f"in-process the model returns shape {tuple(out.shape)}, the signature says [{len(numeric)}, 1]")
    return out[:, 0].float().numpy()


def check_parity(client: TritonClient, model: str, version: int, model_bytes: bytes) -> float:
    numeric, categorical = parity_sample()
    served = client.score(model, version, numeric, categorical, rows_per_request=128, in_flight=2)
    try:
        expected = reference_outputs(model_bytes, numeric, categorical)
    except Exception as exc:
        raise DeployFailed(f"the model does not run on the signature's inputs in-process either: {exc}") from exc
    if served.shape != expected.shape or not np.isfinite(served).all():
        raise DeployFailed(f"Triton returned {served.shape} outputs (finite: {np.isfinite(served).all()}), "
                           f"expected {expected.shape} finite probabilities")
    diff = float(np.max(np.abs(served - expected)))
    if not diff <= PARITY_TOLERANCE:
        raise DeployFailed(f"prediction parity failed: Triton and in-process TorchScript differ by up to {diff:.3g} "
                           f"on the {len(expected)}-row parity sample (tolerance {PARITY_TOLERANCE})")
    return diff


# -- the stage -------------------------------------------------------------------------------
def deploy(params: DeployParams, store: ArtifactStore | None = None, settings=None,
           replica_list: list[Replica] | None = None) -> dict:
    from components.core.settings import load_settings

    settings = settings or load_settings()
    store = store or open_store(settings)
    model = settings.model_name
    if not params.target:
        params = replace(params, target=default_target(store, settings))
    if params.mode not in MODES:
        raise DeployFailed(f"--mode {params.mode!r} is not one of {', '.join(MODES)}")
    if params.target not in repository.TARGETS:
        raise DeployFailed(f"--target {params.target!r} is not one of {', '.join(repository.TARGETS)}")
    if params.mode == "canary" and not 0 < params.canary_fraction < 1:
        raise DeployFailed(f"--canary-fraction must be between 0 and 1 (exclusive), got {params.canary_fraction}")
    t0 = time.perf_counter()

    from components.model.registry import Registry, VersionNotFound

    registry = Registry(store, model)
    try:
        version = registry.resolve(params.version)
        # sha256 mismatch (ModelIntegrityError) stops here: nothing was touched.
        model_bytes, version = registry.model_bytes(version)
        sha256 = registry.get(version)["model_sha256"]
    except VersionNotFound as exc:
        raise DeployFailed(f"cannot deploy {params.version!r}: {exc}. Register and promote a model first "
                           "(flightdeck register), or pass --version N.") from exc
    check_declared_signature(registry, version)

    repo_store, repo_uri = repository.repository_location(settings)
    targets = replica_list if replica_list is not None else replicas(settings)
    key = admin_key(settings)
    with deploy_lock(store, model):
        state, token = read_state(store, model)
        new_state = _next_state(state, model, version, params)
        old_config = repository.read_config(repo_store, model)
        existed = set(repository.versions_on_disk(repo_store, model))
        clients = [TritonClient(r.grpc_url, admin_key=key, timeout_s=params.timeout_s) for r in targets]
        try:  # an unreachable server fails the deploy here, before anything was touched
            for r, c in zip(targets, clients, strict=True):
                if not c.server_ready():
                    raise DeployFailed(f"Triton on {r.name} ({r.grpc_url}) is not ready; nothing was deployed")
        except StageFailed:
            for c in clients:
                c.close()
            raise
        step = f"writing version {version} into the model repository {repo_uri}"
        touched: dict[str, str] = {}  # replica name -> how its load ended: "loaded", "failed", "timed out"
        try:
            repository.write_version(repo_store, model, version, model_bytes, params.target)
            for v in new_state.loaded_versions:  # a target switch needs every kept version's files
                if v != version:
                    _ensure_target_files(repo_store, model, v, params.target, registry)
            repository.write_config(repo_store, model, repository.config_pbtxt(
                model, params.target, new_state.loaded_versions))
            diffs = {}
            for r, c in zip(targets, clients, strict=True):
                step = f"loading version {version} on replica {r.name} ({r.grpc_url})"
                started = time.monotonic()
                touched[r.name] = "failed"
                try:  # Triton's load returns once the policy's versions are loaded (or failed to)
                    c.load(model, timeout_s=params.timeout_s)
                except TritonTimeout as exc:
                    touched[r.name] = "timed out"
                    raise DeployFailed(f"version {version} was not ready on {r.name} within {params.timeout_s:g} s "
                                       "(the load was still running)") from exc
                touched[r.name] = "loaded"
                step = f"waiting for version {version} to be ready on {r.name}"
                left = max(params.timeout_s - (time.monotonic() - started), 1.0)
                if not c.wait_model_ready(model, version, left):
                    raise DeployFailed(f"version {version} was not ready on {r.name} within {params.timeout_s:g} s")
                for v in new_state.loaded_versions:
                    if not c.model_ready(model, v):
                        raise DeployFailed(f"version {v} (kept in the policy) is not ready on {r.name} after the load")
                step = f"checking prediction parity of version {version} on {r.name}"
                diffs[r.name] = check_parity(c, model, version, model_bytes)
        except Exception as exc:
            reason = exc if isinstance(exc, StageFailed) else f"{type(exc).__name__}: {exc}"
            restored = _rollback(repo_store, model, old_config, version, existed, state, clients, targets, touched)
            for c in clients:
                c.close()
            raise DeployFailed(
                f"deploy of {model!r} version {version} ({params.mode}, {params.target}) failed while {step}: "
                f"{reason}. Rolled back: {restored}"
            ) from exc
        new_state.replicas = [r.name for r in targets]
        write_state(store, new_state, token)
        removed = repository.remove_versions(repo_store, model, set(new_state.loaded_versions))
        online_status = "not deployed (--no-online)"
        if params.online:
            from components.serving.triton.online import ensure_online_model

            online_status = ensure_online_model(repo_store, model, clients, params.timeout_s)
            if online_status != "ready":
                log.warning("the online model is not serving: %s", online_status)
        for c in clients:
            c.close()
    result = {
        "model": model, "version": version, "sha256": sha256, "mode": params.mode, "target": params.target,
        "serving": new_state.serving, "previous": new_state.previous,
        "challenger": new_state.challenger.__dict__ if new_state.challenger else None,
        "loaded_versions": new_state.loaded_versions, "removed_versions": removed,
        "replicas": [r.name for r in targets], "parity_max_abs_diff": max(diffs.values()),
        "online_model": online_status, "repository": repo_uri, "deployed_at": datetime.now(UTC).isoformat(),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    registry.record_deployment(version, deployment_target(settings, params.mode), result)
    log.info("deployed %s v%s (%s): %s", model, version, params.mode, result)
    return result


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


def _rollback(repo_store, model, old_config, version, existed, state, clients, targets, touched) -> str:
    """Put the previous config back and reload it on every replica the deploy touched; say what serves now.

    touched: replica name -> how its load ended ("loaded", "failed", "timed out"); replicas not in it
    were never asked to load anything. The new version's files are removed last, once no replica can
    still be reading them. The result names each replica's versions as checked afterwards.
    """
    notes = []
    try:  # the config first: it is what any replica, or a restarted one, loads from
        if old_config is None:
            repo_store.delete(f"{model}/config.pbtxt")
        else:
            repository.write_config(repo_store, model, old_config)
    except Exception as exc:
        notes.append(f"REPOSITORY NOT RESTORED: {type(exc).__name__}: {exc}")
    old_versions = repository.policy_versions(old_config) if old_config is not None else []
    for r, c in zip(targets, clients, strict=True):
        how = touched.get(r.name)
        if how is None:
            continue
        try:
            if how == "timed out" and not _wait_until_not_loading(c, model, ROLLBACK_LOAD_TIMEOUT_S):
                # (A python-backend load whose files vanish mid-way never ends, and every later load of
                # the model waits for it: the files stay, and an operator must look.)
                notes.append(f"the load on {r.name} was still running after {ROLLBACK_LOAD_TIMEOUT_S:.0f} s; "
                             f"version {version}'s files were kept")
                continue
            if old_config is None:
                c.unload(model)
            elif how == "timed out" or c.loaded_versions(model) != old_versions:
                # A load that failed leaves the old versions serving: reloading them would only cost time.
                c.load(model, timeout_s=ROLLBACK_LOAD_TIMEOUT_S)
        except Exception as exc:
            notes.append(f"could not reload {r.name} ({type(exc).__name__}: {exc})")
    if version not in existed and not any("files were kept" in n for n in notes):
        try:
            repo_store.delete_prefix(f"{model}/{version}/")
        except Exception as exc:
            notes.append(f"version {version}'s files not removed: {type(exc).__name__}: {exc}")
    if state is None:
        return "nothing served this model before; the new version is unloaded. " + "; ".join(notes)
    serving = []
    for r, c in zip(targets, clients, strict=True):
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
