"""The materialize stage: feature values into the online store, over an explicit interval, in bounded
chunks, idempotent. materialize_plan decides what to load; this module reads the inputs of the plan,
runs its chunks through Feast and records progress (README.md, Features)."""

from __future__ import annotations

import json
import random
import time

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from components.contracts import layout
from components.contracts.errors import StageFailed
from components.contracts.results import MaterializeResult
from components.contracts.stages import MaterializeParams
from components.core.settings import load_settings
from components.core.store import ArtifactNotFound, ArtifactStore, ConflictError, open_store
from components.features import tables as ft
from components.features.duckdb_httpfs import offline_store_ready
from components.features.feast_repo import apply, definitions_module, feast_quiet, feature_store
from components.features.materialize_plan import (
    plan_materialization,
    record,
    requested_interval,
    resumes_from_first_row,
)
from components.features.redis_auth import online_store_access
from components.features.store_lease import store_lease

PROGRESS_ATTEMPTS = 40


def read_progress(store: ArtifactStore) -> dict:
    """The progress record (features/materialization.json); an empty one before the first run."""
    try:
        return store.read_json(layout.MATERIALIZATION_PROGRESS)
    except ArtifactNotFound:
        return {"views": {}}


def save_progress(store: ArtifactStore, done: list[tuple[str, pd.Timestamp, pd.Timestamp]]) -> dict:
    """Merge this run's materialized intervals into the progress record by compare-and-swap.

    The record is re-read and the run's intervals merged into it until the conditional write finds it
    unchanged: another materialization's progress (e.g. one whose lease was taken over) is never lost."""
    for attempt in range(1, PROGRESS_ATTEMPTS + 1):
        current = store.read_versioned(layout.MATERIALIZATION_PROGRESS)
        progress = json.loads(current[0]) if current else {"views": {}}
        for view, a, b in done:
            record(progress, view, a, b)
        body = json.dumps(progress, indent=2, sort_keys=True, default=str).encode()
        try:
            store.write_if(layout.MATERIALIZATION_PROGRESS, body, current[1] if current else None)
            return progress
        except ConflictError:
            time.sleep(random.uniform(0.02, 0.1 * attempt))
    raise StageFailed(f"materialize: {store.uri(layout.MATERIALIZATION_PROGRESS)} kept changing under "
                      f"{PROGRESS_ATTEMPTS} attempts to record the progress; the online store holds the chunks, "
                      "a rerun records them")


def _table_min_ts(store: ArtifactStore, view: str) -> pd.Timestamp | None:
    """The oldest event timestamp of a view's feature table (None: no table, or an empty one)."""
    try:
        data = store.read_bytes(layout.feature_table_key(view))
    except ArtifactNotFound:
        return None
    ts = pq.read_table(pa.BufferReader(data), columns=[ft.TS]).column(0)
    return pd.Timestamp(pc.min(ts).as_py()) if len(ts) else None


def online_write_keeps_newest(fs) -> bool:
    """Whether the online store skips a row older than the one it holds for that key.

    Feast 0.67: the Redis store reads each key's stored event timestamp and skips older or equal rows
    (unless skip_dedup); the SQLite store upserts unconditionally, so the last write wins."""
    cfg = fs.config.online_store
    return getattr(cfg, "type", "") == "redis" and not getattr(cfg, "skip_dedup", False)


def materialize(params: MaterializeParams, store: ArtifactStore | None = None) -> MaterializeResult:
    """Load feature values into the online store for an explicit interval, in bounded chunks; idempotent.

    The interval is [start of local day `start`, end of local day `end`): the run's data interval
    (the batch_prediction DAG passes its day as both). Without `start`, each view continues from where
    its materialization stopped (its first one starts at its oldest feature row). What is loaded, in
    which chunks, is planned by materialize_plan.plan_materialization:

    - Idempotent: only the parts of the interval the progress record does not hold are loaded, so a
      re-run of the same interval is a no-op (0 chunks); the record is written after every chunk, so
      a killed run resumes where it stopped.
    - Bounded: chunks of `chunk_days` local days, and Feast holds the latest row per online key of
      one chunk at a time, so memory follows the chunk, not the window.
    - An older interval never overwrites newer online values (Redis skips older rows; on SQLite the
      plan's repair chunks rewrite the newer data after a backfill). Same online values on both.
    - Re-applying the repo keeps Feast's materialization intervals (see feast_repo.apply), and the
      progress record lives in the artifact store, not in the registry.
    - Static views (plane attributes) are always materialized whole: a few thousand rows, one stamp.
    - Concurrent runs are serialized by the registry lease (store_lease at layout.FEAST_REGISTRY_LEASE,
      renewed while held; a killed holder's is taken over), and the progress record is updated by
      compare-and-swap (save_progress): runs started together end as if run one after the other.

    Inputs: features/<view>.parquet through the Feast offline store (the features build stage must
      have built the interval); features/materialization.json, the progress record (absent: none yet).
    Outputs: the online store (SQLite locally, Redis on AWS) holds each view's latest values as of
      the interval's end; the Feast registry (apply, and Feast's own materialization intervals);
      features/materialization.json updated. Returns the interval (`start` None when not given,
      `end`), per view what was covered (`from`, `to`, `chunks`, `repair_chunks`), `chunk_days`, the
      run's chunk counts, whether the online store keeps the newest row itself, seconds, and the URI
      of the progress record (`progress`).
    Failures: StageFailed for a malformed date, a start after the end, chunk_days < 1, or a Redis
      online store that refuses the password (or requires one that is not set); Feast's and the
      store's own errors otherwise (the progress record then holds the chunks that finished).
    """
    settings = load_settings()
    store = store or open_store(settings)
    defs = definitions_module()
    views = list(defs.VIEWS)
    static_views = [v for v in views if defs.VIEWS[v].static]
    start, end = requested_interval(params.start, params.end)
    t0 = time.perf_counter()
    fs = feature_store(settings)
    keeps_newest = online_write_keeps_newest(fs)
    # One materialization at a time: each writes Feast's registry after every chunk, and on SQLite the
    # last write of a key wins, so the plan (repairs included) must see what the others finished.
    with store_lease(store, layout.FEAST_REGISTRY_LEASE, "feast materialize"):
        progress = read_progress(store)
        first_rows = {v: _table_min_ts(store, v) for v in views
                      if v not in static_views and resumes_from_first_row(progress, v, start)}
        # Planned before anything is written: a request the plan refuses changes nothing.
        plan = plan_materialization(progress, views, static_views, start=start, end=end,
                                    chunk_days=int(params.chunk_days), keeps_newest=keeps_newest,
                                    first_rows=first_rows)
        # Idempotent, and makes sure the online tables exist (a fresh SQLite file or Redis has none).
        apply(settings, store, leased=True, always=True)
        offline_store_ready(settings)
        done: list[tuple[str, pd.Timestamp, pd.Timestamp]] = []
        with feast_quiet(), online_store_access(settings, fs):
            fs.materialize(ft.STATIC_SINCE.to_pydatetime(), end.to_pydatetime(), feature_views=list(plan.static_views))
        done += [(view, ft.STATIC_SINCE, end) for view in plan.static_views]
        save_progress(store, done)
        for chunk in plan.chunks:
            with feast_quiet(), online_store_access(settings, fs):
                fs.materialize(chunk.start.to_pydatetime(), chunk.end.to_pydatetime(), feature_views=list(chunk.views))
            done += [(view, chunk.start, chunk.end) for view in chunk.views]
            save_progress(store, done)  # after every chunk: a killed run resumes here
    return {
        "start": start.isoformat() if start is not None else None,
        "end": end.isoformat(), "views": plan.views, "chunk_days": plan.chunk_days,
        "chunks": plan.new_chunks, "repair_chunks": plan.repair_chunks,
        "online_store_keeps_newest": keeps_newest,
        "seconds": round(time.perf_counter() - t0, 3), "progress": store.uri(layout.MATERIALIZATION_PROGRESS),
    }


def online_freshness(store: ArtifactStore | None = None) -> dict[str, str | None]:
    """Per view, up to when the online store holds values (for the demo summary and monitoring)."""
    progress = read_progress(store or open_store())
    return {view: progress["views"].get(view, {}).get("materialized_until") for view in definitions_module().VIEWS}
