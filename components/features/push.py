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
    """The replay's end (inclusive): an ISO time (UTC unless it names an offset), default the day's end."""
    if not until:
        return hi - pd.Timedelta(microseconds=1)
    try:
        t = pd.Timestamp(until)
    except ValueError:
        raise ValueError(f"--until {until!r} is not an ISO date-time (e.g. 2013-01-15T14:00:00Z)") from None
    t = (t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")).as_unit("us")
    if not lo <= t < hi:
        raise ValueError(f"--until {t.isoformat()} is outside the replayed local day [{lo.isoformat()}, "
                         f"{hi.isoformat()})")
    return t


def _latest_per_key(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return df.sort_values(ft.TS, kind="stable").drop_duplicates(keys, keep="last")


def push_outcomes(params: PushOutcomesParams, store: ArtifactStore | None = None) -> PushOutcomesResult:
    """Replay local day `date`'s outcome events (up to `until`) into the day-so-far views.

    The events (components.features.day_so_far: departures at the actual departure time,
    cancellations at the scheduled departure) become rows of the views at the moment each value
    became known, bucketed by the UTC date a prediction reads them under (as_of_date). They are
    pushed to the online store in event-time order, `step_minutes` of event time per push (the latest
    row per key of each step), so the online store answers with the day so far at the replayed time;
    then the day's rows of the offline log (features/<view>.parquet, the push sources' batch source)
    are replaced by what was pushed.

    Inputs: validated/flights/date=<d>/ for `date` (required) and for the days before and after (used
      where present: late departures of the day before happen on `date`; the next day's keys get
      their reset row).
    Outputs: the online store (each view's latest row per key as of `until`); features/<view>.parquet
      of each pushed view, its rows stamped on local day `date` replaced (a rerun never duplicates;
      compare-and-swap, so pushes of other days running at once keep theirs). Returns the day, the
      replay's end, events replayed, rows per view, online pushes, timings and the log URIs.
    Failures: StageFailed when the day's flights are not validated; ValueError for a malformed date or
      an `until` outside the day; a refused Redis password (StageFailed, see redis_auth).
    """
    settings = load_settings()
    store = store or open_store(settings)
    day = schema.parse_day(params.date, "date")
    if int(params.step_minutes) < 1:
        raise ValueError(f"step_minutes must be >= 1, not {params.step_minutes}")
    lo, hi = dsf.day_bounds(day)
    until = parse_until(params.until, lo, hi)
    t0 = time.perf_counter()
    flights = pd.concat([read_days(store, "flights", [day - timedelta(days=1)], required=False),
                         read_days(store, "flights", [day], required=True),
                         read_days(store, "flights", [day + timedelta(days=1)], required=False)], ignore_index=True)
    if flights.empty:
        raise StageFailed(f"push-outcomes: no validated flights for {day}")
    defs = definitions_module()
    events = dsf.events_of_day(dsf.outcome_events(flights), day)
    replayed = int((events[ft.TS] <= until).sum())
    rows = {}
    for view, df in dsf.day_rows(flights, day).items():
        df = df[df[ft.TS] <= until]
        rows[view] = ft.bucket_by_date(df, pd.Timedelta(defs.PUSHED_VIEWS[view].ttl), defs.AS_OF_DATE)
    t_compute = time.perf_counter() - t0

    ensure_push_logs(store)
    apply(settings, store)  # the push sources must be registered (a no-op when they are)
    fs = feature_store(settings)
    from feast.data_source import PushMode

    t1 = time.perf_counter()
    pushes, step = 0, pd.Timedelta(minutes=int(params.step_minutes))
    edges = list(pd.date_range(lo, until, freq=step)[1:]) + [until]
    prev = None
    with feast_quiet(), online_store_access(settings, fs):
        for edge in edges:
            for view, df in rows.items():
                part = df[(df[ft.TS] <= edge) & ((df[ft.TS] > prev) if prev is not None else True)]
                if part.empty:
                    continue
                keys = [*defs.PUSHED_VIEWS[view].entities, defs.AS_OF_DATE]
                fs.push(defs.push_source_name(view), _latest_per_key(part, keys).reset_index(drop=True),
                        to=PushMode.ONLINE)
                pushes += 1
            prev = edge
    t_online = time.perf_counter() - t1
    t2 = time.perf_counter()
    end_of_day = hi - pd.Timedelta(microseconds=1)
    table_rows = {view: _upsert(store, view, df, lo, end_of_day) for view, df in rows.items()}
    t_offline = time.perf_counter() - t2
    return {
        "date": day.isoformat(), "until": until.isoformat(), "events": replayed,
        "rows": {view: len(df) for view, df in rows.items()}, "log_rows": table_rows, "online_pushes": pushes,
        "compute_seconds": round(t_compute, 3), "online_seconds": round(t_online, 3),
        "offline_seconds": round(t_offline, 3), "seconds": round(time.perf_counter() - t0, 3),
        "logs": {view: store.uri(layout.feature_table_key(view)) for view in rows},
    }
