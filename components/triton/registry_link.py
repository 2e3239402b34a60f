"""What deploy needs from the model registry: resolve a version, read its verified bytes, record a deployment.

Layout (the registry's): models/<name>/versions/<N>/model.pt with its sha256 in
models/<name>/versions/<N>/version.json, aliases (champion, previous) in models/<name>/aliases.json.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.errors import StageFailed
from components.store import ArtifactNotFound, ArtifactStore, sha256_bytes


class IntegrityError(StageFailed):
    """The model file does not match the sha256 the registry recorded for it."""


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    sha256: str
    data: bytes
    record: dict


def _versions_prefix(name: str) -> str:
    return f"models/{name}/versions"


def resolve(store: ArtifactStore, name: str, ref: str | int) -> int:
    """A version number, or an alias (champion, previous) -> version number."""
    ref = str(ref).strip()
    if ref.isdigit():
        return int(ref)
    try:
        aliases = store.read_json(f"models/{name}/aliases.json")
    except ArtifactNotFound:
        aliases = {}
    if ref not in aliases:
        known = ", ".join(sorted(aliases)) or "none"
        raise StageFailed(
            f"model {name!r} has no version aliased {ref!r} in the registry (aliases: {known}). "
            "Register and promote a model first (flightdeck register), or pass --version N."
        )
    value = aliases[ref]
    return int(value["version"] if isinstance(value, dict) else value)


def load_version(store: ArtifactStore, name: str, version: int) -> ModelVersion:
    """The model bytes, checked against the registry's sha256 (refused, never loaded, on mismatch)."""
    base = f"{_versions_prefix(name)}/{version}"
    try:
        record = store.read_json(f"{base}/version.json")
        data = store.read_bytes(f"{base}/model.pt")
    except ArtifactNotFound as exc:
        raise StageFailed(f"model {name!r} version {version} is not in the registry ({exc})") from exc
    actual = sha256_bytes(data)
    if actual != record.get("sha256"):
        raise IntegrityError(
            f"model {name!r} version {version}: the file {store.uri(base + '/model.pt')} has sha256 {actual}, "
            f"but the registry recorded {record.get('sha256')}. It was changed or corrupted after registration; "
            "it is not deployed. Re-register it from its training run, or deploy another version."
        )
    return ModelVersion(name, version, actual, data, record)


def record_deployment(store: ArtifactStore, name: str, version: int, deployment: dict) -> None:
    """Append the deployment to the version's record (the registry's history of where it serves)."""
    key = f"{_versions_prefix(name)}/{version}/deployments.json"
    try:
        history = store.read_json(key)
    except ArtifactNotFound:
        history = []
    history.append(deployment)
    store.write_json(key, history)


def put_version(store: ArtifactStore, name: str, version: int, data: bytes, aliases: dict | None = None,
                extra: dict | None = None) -> None:
    """Register a file under this layout (tests and the local fixture model)."""
    base = f"{_versions_prefix(name)}/{version}"
    store.write_bytes(f"{base}/model.pt", data)
    store.write_json(f"{base}/version.json", {"version": version, "sha256": sha256_bytes(data), **(extra or {})})
    if aliases:
        try:
            current = store.read_json(f"models/{name}/aliases.json")
        except ArtifactNotFound:
            current = {}
        current.update(aliases)
        store.write_json(f"models/{name}/aliases.json", current)
