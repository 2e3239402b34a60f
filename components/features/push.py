"""The push-outcomes stage: a day's outcome events replayed in event-time order through Feast's push
API into the day-so-far views (feature_repo/definitions.py PUSHED_VIEWS), and the offline log of
every pushed row (README.md, Features).

Which Feast path writes which store (Feast 0.67, read from its source): `FeatureStore.push(...,
PushMode.ONLINE)` writes the online store (SQLite locally, Redis on AWS) through the views' push
sources. The offline half is written here, not by `PushMode.ONLINE_AND_OFFLINE`: for a file source
the DuckDB offline store's `offline_write_batch` appends by reading the whole parquet file and
rewriting it in place, so a rerun duplicates every row, a killed write leaves a broken file, two
writers lose each other's rows, and it fails when the file does not exist yet. The log is instead
written like the feature tables (build._upsert): the day's rows replaced by compare-and-swap on the
artifact store (a local file or an s3:// object), so a rerun of a day leaves exactly its rows.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pandas as pd

from components.contracts import layout, schema
from components.contracts.errors import StageFailed
from components.contracts.results import PushOutcomesResult
from components.contracts.stages import PushOutcomesParams
from components.core.settings import load_settings
from components.core.store import ArtifactStore, open_store
from components.features import day_so_far as dsf
from components.features import tables as ft
from components.features.build import _upsert
from components.features.feast_repo import apply, definitions_module, feast_quiet, feature_store
from components.features.push_log import ensure_push_logs
from components.features.redis_auth import online_store_access
from components.features.validated import read_days


def parse_until(until: str, lo: pd.Timestamp, hi: pd.Timestamp) -> pd.Timestamp:
    """The replay's end (inclusive) within [lo, hi): an ISO time (UTC unless it names an offset), clipped to
    the day (before it: lo - 1 us, nothing known yet; after it: the whole day); default the day's end."""
    last = hi - pd.Timedelta(microseconds=1)
    if not until:
        return last
    try:
        t = pd.Timestamp(until)
    except ValueError:
        raise ValueError(f"--until {until!r} is not an ISO date-time (e.g. 2013-01-15T14:00:00Z)") from None
    t = (t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")).as_unit("us")
    return min(max(t, lo - pd.Timedelta(microseconds=1)), last)


def _latest_per_key(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return df.sort_values(ft.TS, kind="stable").drop_duplicates(keys, keep="last")


def day_log_rows(store: ArtifactStore, day, until: pd.Timestamp | None = None) -> tuple[int, dict[str, pd.DataFrame]]:
    """A day's outcome events up to `until` (count) and each pushed view's rows, bucketed by the view's
    bucket key (as_of_hour: the hours up to `until`; as_of_date: the dates its ttl reaches)."""
    defs = definitions_module()
    lo, hi = dsf.day_bounds(day)
    until = hi - pd.Timedelta(microseconds=1) if until is None else until
    flights = pd.concat([read_days(store, "flights", [day - timedelta(days=1)], required=False),
                         read_days(store, "flights", [day], required=True),
                         read_days(store, "flights", [day + timedelta(days=1)], required=False)], ignore_index=True)
    if flights.empty:
        raise StageFailed(f"push-outcomes: no validated flights for {day}")
    events = dsf.events_of_day(dsf.outcome_events(flights), day)
    rows = {}
    for view, df in dsf.day_rows(flights, day).items():
        spec = defs.PUSHED_VIEWS[view]
        df = df[df[ft.TS] <= until]
        rows[view] = (dsf.bucket_by_hour(df, spec.entities, lo, until, spec.bucket) if spec.bucket == defs.AS_OF_HOUR
                      else ft.bucket_by_date(df, pd.Timedelta(spec.ttl), spec.bucket))
    return int((events[ft.TS] <= until).sum()), rows


def _push_online(settings, rows: dict[str, pd.DataFrame], lo: pd.Timestamp, until: pd.Timestamp,
                 step_minutes: int) -> int:
    """Push the rows to the online store in event-time order, `step_minutes` of event time per push."""
    from feast.data_source import PushMode

    defs = definitions_module()
    fs = feature_store(settings)
    pushes, prev = 0, None
    edges = [e for e in pd.date_range(lo, until, freq=pd.Timedelta(minutes=step_minutes))[1:] if e < until] + [until]
    with feast_quiet(), online_store_access(settings, fs):
        for edge in edges:
            for view, df in rows.items():
                part = df[(df[ft.TS] <= edge) & ((df[ft.TS] > prev) if prev is not None else True)]
                if part.empty:
                    continue
                keys = [*defs.PUSHED_VIEWS[view].entities, defs.PUSHED_VIEWS[view].bucket]
                fs.push(defs.push_source_name(view), _latest_per_key(part, keys).reset_index(drop=True),
                        to=PushMode.ONLINE)
                pushes += 1
            prev = edge
    return pushes


def push_outcomes(params: PushOutcomesParams, store: ArtifactStore | None = None) -> PushOutcomesResult:
    """Replay local day `date`'s outcome events (up to `until`) into the day-so-far views.

    The events (components.features.day_so_far: departures at the actual departure time,
    cancellations at the scheduled departure) become rows of the views at the moment each value
    became known, bucketed by the UTC hour or date a prediction reads them under (as_of_hour, as_of_date). They are
    pushed to the online store in event-time order, `step_minutes` of event time per push (the latest
    row per key of each step), so the online store answers with the day so far at the replayed time;
    then the day's rows of the offline log (features/<view>.parquet, the push sources' batch source)
    are replaced by what was pushed. With `end`, the days date..end-1 are a backfill of the offline
    log (not pushed online: the online store serves the present) and `end` is replayed as above.

    Inputs: validated/flights/date=<d>/ for each replayed day (required) and for the days before and
      after (used where present: late departures of the day before happen on the day; the next day's
      keys get their reset row).
    Outputs: the online store (each view's latest row per key as of `until`); features/<view>.parquet
      of each pushed view, its rows stamped on the replayed local days replaced by this replay's (a
      rerun never duplicates; compare-and-swap, so pushes of other days running at once keep theirs). Returns the
      days, the replay's end, events replayed, rows per view, online pushes, timings and the log URIs.
    Failures: StageFailed when a replayed day's flights are not validated; ValueError for a malformed
      date or until, or an end before the date; a refused Redis password (StageFailed, see redis_auth).
    """
    settings = load_settings()
    store = store or open_store(settings)
    days = schema.day_range(params.date, params.end or params.date)
    if int(params.step_minutes) < 1:
        raise ValueError(f"step_minutes must be >= 1, not {params.step_minutes}")
    lo, hi = dsf.day_bounds(days[-1])
    until = parse_until(params.until, lo, hi)
    ensure_push_logs(store)
    apply(settings, store)  # the push sources must be registered (a no-op when they are)
    t0 = time.perf_counter()
    timings = {"compute": 0.0, "online": 0.0, "offline": 0.0}
    events, per_day, pushes = 0, [], 0
    for day in days:
        t = time.perf_counter()
        last = day == days[-1]
        n, rows = day_log_rows(store, day, until if last else None)
        timings["compute"] += time.perf_counter() - t
        if last:
            t = time.perf_counter()
            pushes = _push_online(settings, rows, lo, until, int(params.step_minutes))
            timings["online"] += time.perf_counter() - t
        per_day.append(rows)
        events += n
    # One write per view for the whole range (a table rewrite per day would cost days x table size):
    # the rows stamped on the replayed days are replaced by this replay's (a rerun leaves the same
    # rows; a replay up to an earlier `until` leaves the day's log as of that moment).
    t = time.perf_counter()
    first_lo, _ = dsf.day_bounds(days[0])
    rows_total, log_rows = {}, {}
    for view in per_day[0]:
        df = pd.concat([rows[view] for rows in per_day], ignore_index=True)
        rows_total[view] = len(df)
        log_rows[view] = _upsert(store, view, df, first_lo, hi - pd.Timedelta(microseconds=1))
    timings["offline"] += time.perf_counter() - t
    return {
        "date": days[0].isoformat(), "end": days[-1].isoformat(), "until": until.isoformat(), "events": events,
        "rows": rows_total, "log_rows": log_rows, "online_pushes": pushes,
        "compute_seconds": round(timings["compute"], 3), "online_seconds": round(timings["online"], 3),
        "offline_seconds": round(timings["offline"], 3), "seconds": round(time.perf_counter() - t0, 3),
        "logs": {view: store.uri(layout.feature_table_key(view)) for view in rows_total},
    }
