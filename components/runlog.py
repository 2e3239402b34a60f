"""A tiny run log in the artifact store: what each pipeline did last, for status and alerts.

    record_run("batch_prediction", "success", {"date": "2013-07-01", "rows": 912})

Each call writes one event (runlog/<pipeline>/events/<utc-stamp>-<id>.json) and replaces
runlog/<pipeline>/latest.json (and last_success.json on success), each an atomic write. The DAGs
call it at the end of a run (and from their failure callbacks); `flightdeck status` and the
monitor's pipeline metrics read it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from components.store import ArtifactNotFound, ArtifactStore, open_store

STATUSES = ("success", "failed", "running")
PREFIX = "runlog"


def _now() -> datetime:
    return datetime.now(UTC)


def record_run(pipeline: str, status: str, info: dict | None = None, store: ArtifactStore | None = None,
               at: datetime | None = None) -> dict:
    """Record one run of a pipeline (continuous_training, batch_prediction, monitoring, ...)."""
    if status not in STATUSES:
        raise ValueError(f"run status {status!r} is not one of {', '.join(STATUSES)}")
    if not pipeline or "/" in pipeline:
        raise ValueError(f"pipeline name {pipeline!r} must be non-empty and contain no '/'")
    store = store or open_store()
    at = at or _now()
    if at.tzinfo is None:
        raise ValueError("run timestamps must be timezone-aware (UTC)")
    event = {"pipeline": pipeline, "status": status, "at": at.astimezone(UTC).isoformat(),
             "ts": at.timestamp(), "info": info or {}}
    stamp = at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    store.write_json(f"{PREFIX}/{pipeline}/events/{stamp}-{uuid.uuid4().hex[:6]}.json", event)
    store.write_json(f"{PREFIX}/{pipeline}/latest.json", event)
    if status == "success":
        store.write_json(f"{PREFIX}/{pipeline}/last_success.json", event)
    return event


def pipelines(store: ArtifactStore) -> list[str]:
    names = {key[len(PREFIX) + 1:].split("/", 1)[0] for key in store.list(PREFIX + "/")}
    return sorted(names)


def _read(store: ArtifactStore, key: str) -> dict | None:
    try:
        return store.read_json(key)
    except ArtifactNotFound:
        return None


def last_runs(store: ArtifactStore | None = None) -> dict[str, dict]:
    """pipeline -> {"latest": event, "last_success": event or None}."""
    store = store or open_store()
    return {p: {"latest": _read(store, f"{PREFIX}/{p}/latest.json"),
                "last_success": _read(store, f"{PREFIX}/{p}/last_success.json")} for p in pipelines(store)}


def events(pipeline: str, store: ArtifactStore | None = None, limit: int = 50) -> list[dict]:
    """The most recent events of a pipeline, newest last."""
    store = store or open_store()
    keys = store.list(f"{PREFIX}/{pipeline}/events/")[-limit:]
    return [store.read_json(k) for k in keys]
