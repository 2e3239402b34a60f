"""The features build stage: validated partitions -> features/<view>.parquet (upserted by date range),
then `feast apply` (README.md, Features)."""

from __future__ import annotations

import io
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

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


@dataclass(frozen=True)
class BuildInputs:
    """What a build reads, for the builders: validated flights (the days built and the HISTORY_DAYS before
    them), their outcomes (tables.flight_outcomes), weather, planes, and the days the tables cover."""

    flights: pd.DataFrame
    outcomes: pd.DataFrame
    weather: pd.DataFrame
    planes: pd.DataFrame
    first: date  # the first and last local day of the build
    last: date
    hour_first: date  # the first day of the hourly rows (a lead time before `first`)
    stat_first: date  # the first day of the daily stats (one day before hour_first)

    def hours(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """The UTC hours hour_first 00:00 local .. last 23:00 local, the range of the hourly rows."""
        lo, _ = schema.local_day_bounds_utc(self.hour_first)
        _, hi = schema.local_day_bounds_utc(self.last)
        return pd.Timestamp(lo), pd.Timestamp(hi) - pd.Timedelta(hours=1)


# A builder computes one view's rows and says which stamps they replace: (table, lo, hi), the rows of the
# table stamped in [lo, hi] are replaced by the new ones (a rebuild never duplicates, other ranges are kept).
Builder = Callable[[BuildInputs], tuple[pd.DataFrame, pd.Timestamp, pd.Timestamp]]
_ALL_TIME = (pd.Timestamp.min.tz_localize("UTC"), pd.Timestamp.max.tz_localize("UTC"))


def _weather_hourly(i: BuildInputs):
    lo, last_hour = i.hours()
    return ft.weather_hourly(i.weather, lo, last_hour), lo, last_hour + pd.Timedelta(hours=1, microseconds=-1)


def _carrier_daily_stats(i: BuildInputs):
    return (ft.carrier_daily_stats(i.outcomes, i.stat_first, i.last), *ft.day_stamps(i.stat_first, i.last))


def _route_daily_stats(i: BuildInputs):
    return (ft.route_daily_stats(i.outcomes, i.stat_first, i.last), *ft.day_stamps(i.stat_first, i.last))


def _plane_attributes(i: BuildInputs):
    return (ft.plane_attributes(i.planes), *_ALL_TIME)


# The one place a built feature view (feature_repo/definitions.py VIEWS) gets its rows: view name -> builder.
# build() refuses a view of the catalogue without one. docs/ADD_A_FEATURE.md, step 2.
BUILDERS: dict[str, Builder] = {
    "weather_hourly": _weather_hourly,
    "carrier_daily_stats": _carrier_daily_stats,
    "route_daily_stats": _route_daily_stats,
    "plane_attributes": _plane_attributes,
}


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

    inputs = BuildInputs(flights=flights, outcomes=ft.flight_outcomes(flights), weather=weather, planes=planes,
                         first=first, last=last, hour_first=hour_first, stat_first=stat_first)
    defs = definitions_module()
    unbuilt = [name for name in defs.VIEWS if name not in BUILDERS]
    if unbuilt:
        raise StageFailed(f"features build: feature view {', '.join(unbuilt)} of feature_repo/definitions.py has no "
                          "builder: register one in components.features.build.BUILDERS (docs/ADD_A_FEATURE.md)")
    tables, view_seconds = {}, {}
    for view, spec in defs.VIEWS.items():  # each view timed: computing its rows, then writing its table
        t_view = time.perf_counter()
        df, a, b = BUILDERS[view](inputs)
        if not spec.static:
            df = ft.bucket_by_date(df, pd.Timedelta(spec.ttl), defs.AS_OF_DATE)
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
