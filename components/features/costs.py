"""What each feature view costs: build time, storage, online lookup latency (docs/MODEL.md, "Feature importance").

- build seconds: the latest `features build`'s time per view (computing its rows, writing its table), recorded by
  the build in features/build_timings.json with the days it built;
- storage bytes: the size of the view's offline table features/<view>.parquet in the artifact store;
- online lookup latency: Feast's get_online_features for that view's features alone, for `entity_rows` entity
  rows read from the view's latest date in its table, timed `lookups` times on the materialized online store
  (the p50 and p90 in milliseconds). Measured only when asked (lookups > 0): it needs a materialized store.
"""

from __future__ import annotations

import time

import numpy as np

from components.contracts import layout
from components.contracts.errors import StageFailed
from components.core.settings import Settings, load_settings
from components.core.store import ArtifactStore, open_store
from components.features.feast_repo import definitions_module, feast_quiet, feature_store
from components.features.redis_auth import online_store_access


def view_costs(store: ArtifactStore | None = None, settings: Settings | None = None, lookups: int = 0,
               entity_rows: int = 5) -> dict:
    """{"build": {start, end, days} or None, "views": {view: {"features", "build_seconds", "build_compute_seconds",
    "build_write_seconds", "storage_bytes", "online": {...} or None}}}. StageFailed when a view's table was never
    built; ValueError on lookups < 0 or entity_rows < 1."""
    if lookups < 0 or entity_rows < 1:
        raise ValueError(f"lookups must be >= 0 and entity_rows >= 1, got {lookups} and {entity_rows}")
    settings = settings or load_settings()
    store = store or open_store(settings)
    defs = definitions_module()
    try:
        timings = store.read_json(layout.FEATURE_BUILD_TIMINGS)
    except KeyError:
        timings = None
    views = {}
    for name, view in defs.VIEWS.items():
        key = layout.feature_table_key(name)
        if not store.exists(key):
            raise StageFailed(f"the feature table of {name} ({store.uri(key)}) was never built: run `flightdeck "
                              "features build` first")
        local = store.local_path(key)
        size = local.stat().st_size if local is not None else len(store.read_bytes(key))
        t = ((timings or {}).get("views") or {}).get(name) or {}
        views[name] = {"features": view.feature_names, "storage_bytes": int(size),
                       "build_seconds": round(t["compute"] + t["write"], 3) if t else None,
                       "build_compute_seconds": t.get("compute"), "build_write_seconds": t.get("write"),
                       "online": online_latency(store, settings, name, lookups, entity_rows) if lookups else None}
    build = {k: timings[k] for k in ("start", "end", "days")} if timings else None
    return {"build": build, "views": views}


def online_latency(store: ArtifactStore, settings: Settings, view_name: str, lookups: int, entity_rows: int) -> dict:
    """Feast get_online_features for one view's features, timed: {"lookups", "entity_rows", "p50_ms", "p90_ms",
    "found": rows with a value}. The entity rows are the view's latest date in its table (a static view: its
    first keys); StageFailed when none of them is in the online store (materialize that date first)."""
    defs = definitions_module()
    view = defs.VIEWS[view_name]
    table = store.read_parquet(layout.feature_table_key(view_name))
    if not view.static:
        table = table[table[defs.AS_OF_DATE] == table[defs.AS_OF_DATE].max()]
    table = table.drop_duplicates(view.entity).head(entity_rows)
    columns = [view.entity] + ([] if view.static else [defs.AS_OF_DATE])
    rows = [{c: str(r[c]) for c in columns} for _, r in table.iterrows()]
    features = [f"{view_name}:{f}" for f in view.feature_names]
    fs = feature_store(settings)
    seconds = []
    with feast_quiet(), online_store_access(settings, fs):
        values = fs.get_online_features(features=features, entity_rows=rows).to_dict()  # warm-up, and the check
        for _ in range(lookups):
            t0 = time.perf_counter()
            fs.get_online_features(features=features, entity_rows=rows).to_dict()
            seconds.append(time.perf_counter() - t0)
    found = sum(any(values[f][i] is not None for f in view.feature_names) for i in range(len(rows)))
    if not found:
        where = f"{defs.AS_OF_DATE} {rows[0].get(defs.AS_OF_DATE)}" if rows and not view.static else "its keys"
        raise StageFailed(f"the online store has none of {view_name}'s rows for {where}: materialize it first "
                          "(`flightdeck features materialize`) to time its lookups")
    ms = np.array(seconds) * 1000
    return {"lookups": lookups, "entity_rows": len(rows), "found": int(found),
            "p50_ms": round(float(np.percentile(ms, 50)), 3), "p90_ms": round(float(np.percentile(ms, 90)), 3)}
