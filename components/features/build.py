"""The features build stage: validated partitions -> features/<view>.parquet (upserted by date range),
then `feast apply` (README.md, Features)."""

from __future__ import annotations

import io
import logging
import math
import random
import time
from datetime import timedelta

import pandas as pd

from components.contracts import layout, schema
from components.contracts.errors import StageFailed
from components.contracts.results import FeaturesBuildResult
from components.contracts.stages import FeaturesBuildParams
from components.core.settings import load_settings
from components.core.store import ArtifactStore, ConflictError, open_store, parquet_bytes
from components.features import tables as ft
from components.features.feast_repo import apply, definitions_module
from components.features.push_log import ensure_push_logs
from components.features.validated import read_days, read_reference

log = logging.getLogger(__name__)
# Compare-and-swap attempts of one table write before the build gives up (each loses only to a build
# that wrote, so this bounds the concurrent builds of one table, not their duration).
UPSERT_ATTEMPTS = 40


def _merge(current: bytes | None, new: pd.DataFrame, lo: pd.Timestamp, hi: pd.Timestamp) -> pd.DataFrame:
    """The table with its rows stamped in [lo, hi] replaced by `new`: rebuilding a range never duplicates."""
    table = new
    if current is not None:
        old = pd.read_parquet(io.BytesIO(current))
        old = old[(old[ft.TS] < lo) | (old[ft.TS] > hi)]
        if len(old):
            table = pd.concat([old, new], ignore_index=True)
    keycol = table.columns[0]
    order = [c for c in (keycol, "as_of_date", ft.TS) if c in table.columns]
    table = table.sort_values(order, kind="stable").reset_index(drop=True)
    table[ft.TS] = ft.utc_us(table[ft.TS])
    return table


def _upsert(store: ArtifactStore, view: str, new: pd.DataFrame, lo: pd.Timestamp, hi: pd.Timestamp) -> int:
    """Replace the table's rows stamped in [lo, hi] with `new`, by compare-and-swap on the table object.

    Builds of other ranges may run at once (a backfill, side-by-side DAG runs): the write succeeds only
    if the table is still the version this merge read, else the merge is redone on the newer table, so
    no build's rows are lost. Builds of overlapping ranges compute identical rows for the days they
    share (the rows of a stamp depend only on validated partitions), so the last writer is right too.
    """
    key = layout.feature_table_key(view)
    for attempt in range(1, UPSERT_ATTEMPTS + 1):
        current = store.read_versioned(key)
        table = _merge(current[0] if current else None, new, lo, hi)
        try:
            store.write_if(key, parquet_bytes(table), current[1] if current else None)
            return len(table)
        except ConflictError:
            log.info("features %s: another build wrote it meanwhile (attempt %d), merging again", view, attempt)
            time.sleep(random.uniform(0.05, 0.2 * attempt))
    raise StageFailed(f"features build: {store.uri(key)} kept changing under {UPSERT_ATTEMPTS} attempts to "
                      "write it (too many concurrent builds); run the build again")


def build(params: FeaturesBuildParams, store: ArtifactStore | None = None) -> FeaturesBuildResult:
    """Build every feature view's rows for the days start..end and apply the Feast repo.

    Inputs: validated/flights/date=<d>/ for start..end (required) and for the HISTORY_DAYS (+ lead
      time) before start (used where present); validated/weather/date=<d>/ from the lead time before
      start to end (used where present); validated/planes/ (required).
    Outputs: features/<view>.parquet, one table per view of feature_repo/definitions.py: the rows
      stamped in the built range are replaced, the others kept (a rebuild never duplicates), by
      compare-and-swap, so builds running at once leave what one after the other would; the Feast
      registry (`feast apply` when its definitions differ, under the registry lease; materialization
      intervals kept). Returns the days built, the flights
      read, rows built and rows now in each table, the views applied, timings (per view: computing its rows,
      writing its table; also written to features/build_timings.json, the latest build's, for
      `flightdeck feature-report`), and `uri` (the features/ prefix).
    Failures: StageFailed when a flights partition of start..end or the planes table is not
      validated (naming the dates), or a date is malformed; a refused Redis password (StageFailed,
      see redis_auth) if the online store is touched.
    """
    settings = load_settings()
    store = store or open_store(settings)
    days = schema.day_range(params.start, params.end)
    first, last = days[0], days[-1]
    t0 = time.perf_counter()
    # A flight on `first` is predicted up to the lead time before it, so the weather hours start
    # lead_days earlier and the daily stats (stamped at the end of a day) one day more; the stats
    # reach HISTORY_DAYS further back.
    lead_days = max(1, math.ceil(settings.lead_time_hours / 24))
    hour_first = first - timedelta(days=lead_days)
    stat_first = hour_first - timedelta(days=1)
    history = schema.day_range(stat_first - timedelta(days=ft.HISTORY_DAYS), first - timedelta(days=1))
    flights = pd.concat(
        [read_days(store, "flights", history, required=False), read_days(store, "flights", days, required=True)],
        ignore_index=True,
    )
    # One day more than the hours built, so the first hours carry observations from before them.
    weather = read_days(store, "weather", schema.day_range(stat_first, last), required=False)
    planes = read_reference(store, "planes")
    t_read = time.perf_counter() - t0

    outcomes = ft.flight_outcomes(flights)
    lo, hi = ft.day_stamps(stat_first, last)
    w_lo, _ = schema.local_day_bounds_utc(hour_first)
    _, w_hi = schema.local_day_bounds_utc(last)
    makers = {
        "weather_hourly": (lambda: ft.weather_hourly(weather, pd.Timestamp(w_lo), pd.Timestamp(w_hi) - pd.Timedelta(hours=1)),
                           pd.Timestamp(w_lo), pd.Timestamp(w_hi) - pd.Timedelta(microseconds=1)),
        "carrier_daily_stats": (lambda: ft.carrier_daily_stats(outcomes, stat_first, last), lo, hi),
        "route_daily_stats": (lambda: ft.route_daily_stats(outcomes, stat_first, last), lo, hi),
        "plane_attributes": (lambda: ft.plane_attributes(planes), pd.Timestamp.min.tz_localize("UTC"),
                             pd.Timestamp.max.tz_localize("UTC")),
    }
    defs = definitions_module()
    tables, view_seconds = {}, {}
    for view, (make, a, b) in makers.items():  # each view timed: computing its rows, then writing its table
        t_view = time.perf_counter()
        df = make()
        if not defs.VIEWS[view].static:
            df = ft.bucket_by_date(df, pd.Timedelta(defs.VIEWS[view].ttl), defs.AS_OF_DATE)
        tables[view] = (df, a, b)
        view_seconds[view] = {"compute": round(time.perf_counter() - t_view, 3)}
    rows = {}
    for view, (df, a, b) in tables.items():
        t_view = time.perf_counter()
        rows[view] = _upsert(store, view, df, a, b)
        view_seconds[view]["write"] = round(time.perf_counter() - t_view, 3)
    store.write_json(layout.FEATURE_BUILD_TIMINGS, {"start": first.isoformat(), "end": last.isoformat(),
                                                    "days": len(days), "views": view_seconds})
    built = {view: len(df) for view, (df, _, _) in tables.items()}
    ensure_push_logs(store)  # the day-so-far views' offline logs exist before the first push
    t_apply = time.perf_counter()
    views = apply(settings, store)
    seconds = time.perf_counter() - t0
    result: FeaturesBuildResult = {
        "start": first.isoformat(), "end": last.isoformat(),
        "flights_read": len(flights),
        "rows_built": built, "table_rows": rows, "applied_views": views, "view_seconds": view_seconds,
        "seconds": round(seconds, 3), "read_seconds": round(t_read, 3),
        "apply_seconds": round(time.perf_counter() - t_apply, 3),
        "uri": store.uri("features"),  # features/<view>.parquet, one table per view (the KFP Dataset)
    }
    log.info("features build %s..%s: %s", first, last, built)
    return result
