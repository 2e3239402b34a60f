"""A tiny run log in the artifact store: what each pipeline did last, for status and alerts.

    record_run("batch_prediction", "success", {"date": "2013-07-01", "rows": 912})

Each call writes one event (runlog/<pipeline>/events/<utc-stamp>-<id>.json) and replaces
runlog/<pipeline>/latest.json (and last_success.json on success), each an atomic write. The DAGs
call it at the end of a run (their success and failure callbacks); `flightdeck status` reads it.

Each call also exports the pipeline's run gauges (flightdeck_pipeline_last_run_failed,
..._last_run_timestamp_seconds, ..._last_success_timestamp_seconds; components.core.metrics): it
writes them to runlog/<pipeline>/metrics.prom (Prometheus text format) and, when a Pushgateway is
configured (FLIGHTDECK_PUSHGATEWAY_URL), pushes them as job `flightdeck_pipeline` with grouping key
`pipeline`, one group per pipeline, so a failed run raises PipelineRunFailed even when nothing
downstream (monitoring) runs after it. A push failure is logged, never raised: a run's outcome
must not depend on the run log.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from components.contracts import layout
from components.core.store import ArtifactNotFound, ArtifactStore, open_store

log = logging.getLogger(__name__)

STATUSES = ("success", "failed", "running")
METRICS_FILE = "metrics.prom"


def _now() -> datetime:
    return datetime.now(UTC)


def record_run(pipeline: str, status: str, info: dict | None = None, store: ArtifactStore | None = None,
               at: datetime | None = None, settings=None) -> dict:
    """Record one run of a pipeline (continuous_training, batch_prediction, monitoring, ...) and export
    its run gauges. Returns the event, plus `pushed` (the Pushgateway, or None) and `push_error`."""
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
    store.write_json(f"{layout.runlog_prefix(pipeline)}/events/{stamp}-{uuid.uuid4().hex[:6]}.json", event)
    store.write_json(f"{layout.runlog_prefix(pipeline)}/latest.json", event)
    if status == "success":
        store.write_json(f"{layout.runlog_prefix(pipeline)}/last_success.json", event)
    pushed, error = export_metrics(pipeline, store, settings)
    return {**event, "pushed": pushed, "push_error": error}


def pipeline_metrics(pipeline: str, store: ArtifactStore):
    """The run gauges of one pipeline, from its latest and last successful run."""
    from components.core.metrics import MetricsWriter

    latest = _read(store, f"{layout.runlog_prefix(pipeline)}/latest.json")
    ok = _read(store, f"{layout.runlog_prefix(pipeline)}/last_success.json")
    w = MetricsWriter()
    if latest is not None:
        w.set("flightdeck_pipeline_last_run_timestamp_seconds", latest["ts"], pipeline=pipeline)
        w.set("flightdeck_pipeline_last_run_failed", int(latest["status"] == "failed"), pipeline=pipeline)
    if ok is not None:
        w.set("flightdeck_pipeline_last_success_timestamp_seconds", ok["ts"], pipeline=pipeline)
    return w


def export_metrics(pipeline: str, store: ArtifactStore, settings=None) -> tuple[str | None, str | None]:
    """Write runlog/<pipeline>/metrics.prom and push it when a Pushgateway is configured.

    Returns (the Pushgateway it was pushed to or None, the push error or None)."""
    from components.core import metrics as M
    from components.core.settings import load_settings

    writer = pipeline_metrics(pipeline, store)
    store.write_bytes(f"{layout.runlog_prefix(pipeline)}/{METRICS_FILE}", writer.render())
    gateway = getattr(settings or load_settings(), "pushgateway_url", "")
    if not gateway:
        return None, None
    try:
        M.push(writer, gateway, job=M.PIPELINE_JOB, grouping_key={"pipeline": pipeline})
    except Exception as exc:  # URLError, HTTPError, a malformed address: reported, never raised
        log.error("the %s run is recorded in the run log, but pushing its gauges to the Pushgateway at %s failed "
                  "(%s): PipelineRunFailed/PipelineRunLate cannot see it until the next push. Check "
                  "FLIGHTDECK_PUSHGATEWAY_URL and that the gateway is up.", pipeline, gateway, exc)
        return None, str(exc)
    return gateway, None


def pipelines(store: ArtifactStore) -> list[str]:
    root = layout.runlog_prefix("")
    names = {key[len(root):].split("/", 1)[0] for key in store.list(root)}
    return sorted(names)


def _read(store: ArtifactStore, key: str) -> dict | None:
    try:
        return store.read_json(key)
    except ArtifactNotFound:
        return None


def last_runs(store: ArtifactStore | None = None) -> dict[str, dict]:
    """pipeline -> {"latest": event, "last_success": event or None}."""
    store = store or open_store()
    return {p: {"latest": _read(store, f"{layout.runlog_prefix(p)}/latest.json"),
                "last_success": _read(store, f"{layout.runlog_prefix(p)}/last_success.json")} for p in pipelines(store)}


def events(pipeline: str, store: ArtifactStore | None = None, limit: int = 50) -> list[dict]:
    """The most recent events of a pipeline, newest last."""
    store = store or open_store()
    keys = store.list(f"{layout.runlog_prefix(pipeline)}/events/")[-limit:]
    return [store.read_json(k) for k in keys]
