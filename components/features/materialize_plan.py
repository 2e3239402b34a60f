"""What a materialize run has to load, planned without I/O: from the progress record
(features/materialization.json), the requested interval and chunk_days, the chunks of time to
materialize and the views each chunk loads. components.features.materialize executes the plan.

Intervals are half-open [a, b) pairs of UTC timestamps. The progress record holds, per view, the
merged intervals already materialized and `materialized_until` (the newest end), as ISO strings.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from components.contracts import schema
from components.contracts.errors import StageFailed
from components.contracts.results import MaterializedView
from components.features.tables import STATIC_SINCE, day_stamps

Interval = tuple[pd.Timestamp, pd.Timestamp]


@dataclass(frozen=True)
class Chunk:
    """One Feast materialize call: [start, end) for some views."""

    start: pd.Timestamp
    end: pd.Timestamp
    # view -> whether this chunk loads data new to it (False: a repair, rewriting what it already had)
    views: Mapping[str, bool]

    @property
    def loads_new_data(self) -> bool:
        return any(self.views.values())


@dataclass(frozen=True)
class MaterializationPlan:
    start: pd.Timestamp | None  # the requested start; None: each view continues from its progress
    end: pd.Timestamp
    chunk_days: int
    static_views: tuple[str, ...]  # materialized whole, [STATIC_SINCE, end), before the chunks
    chunks: tuple[Chunk, ...]  # in time order
    views: dict[str, MaterializedView]  # per view, static ones first: what the run covers

    @property
    def new_chunks(self) -> int:
        return sum(c.loads_new_data for c in self.chunks)

    @property
    def repair_chunks(self) -> int:
        return sum(not c.loads_new_data for c in self.chunks)


def requested_interval(start: str, end: str) -> tuple[pd.Timestamp | None, pd.Timestamp]:
    """The stage's dates as an interval: (start of local day `start` or None when not given, end of local day `end`)."""
    end_day = schema.parse_day(end, "end")
    if not start:
        return None, day_stamps(end_day, end_day)[0]
    start_day = schema.parse_day(start, "start")
    if start_day > end_day:
        raise StageFailed(f"materialize: --start {start} is after --end {end}")
    return pd.Timestamp(schema.local_day_bounds_utc(start_day)[0]), day_stamps(end_day, end_day)[0]


def merge_intervals(intervals: list[list[str]]) -> list[list[str]]:
    """ISO [a, b] pairs, sorted, with overlapping or touching ones merged."""
    spans = sorted((pd.Timestamp(a), pd.Timestamp(b)) for a, b in intervals)
    merged: list[list[pd.Timestamp]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [[a.isoformat(), b.isoformat()] for a, b in merged]


def recorded(progress: dict, view: str) -> list[Interval]:
    """The intervals the progress record says `view` has materialized."""
    return [(pd.Timestamp(a), pd.Timestamp(b)) for a, b in progress["views"].get(view, {}).get("intervals", [])]


def subtract(span: Interval, done: list[Interval]) -> list[Interval]:
    """The parts of `span` that no interval of `done` covers, oldest first."""
    out, a = [], span[0]
    for da, db in sorted(done):
        if db <= a or da >= span[1]:
            continue
        if da > a:
            out.append((a, da))
        a = max(a, db)
    if a < span[1]:
        out.append((a, span[1]))
    return out


def intersect(span: Interval, done: list[Interval]) -> list[Interval]:
    """The parts of `span` that intervals of `done` cover, oldest first."""
    return [(max(span[0], a), min(span[1], b)) for a, b in sorted(done) if a < span[1] and b > span[0]]


def union(spans: list[Interval]) -> list[Interval]:
    return [(pd.Timestamp(a), pd.Timestamp(b)) for a, b in merge_intervals([[x.isoformat(), y.isoformat()] for x, y in spans])]


def chunks(start: pd.Timestamp, end: pd.Timestamp, days: int) -> list[Interval]:
    """[start, end) cut at local midnights, at most `days` local days per chunk."""
    out, a = [], start
    while a < end:
        local = a.tz_convert(schema.LOCAL_TZ).normalize().tz_localize(None) + pd.Timedelta(days=days)
        b = min(end, local.tz_localize(schema.LOCAL_TZ).tz_convert("UTC"))
        out.append((a, b))
        a = b
    return out


def resumes_from_first_row(progress: dict, view: str, start: pd.Timestamp | None) -> bool:
    """Whether the plan for `view` starts at its table's oldest row: no start requested and no progress yet."""
    return start is None and not progress["views"].get(view, {}).get("materialized_until")


def plan_materialization(progress: dict, views: Sequence[str], static_views: Collection[str], *,
                         start: pd.Timestamp | None, end: pd.Timestamp, chunk_days: int, keeps_newest: bool,
                         first_rows: Mapping[str, pd.Timestamp | None] | None = None) -> MaterializationPlan:
    """The chunks that bring every view's online values up to `end`, loading only what is not recorded.

    - Each time-varying view covers [start, end), or without a start [its materialized_until, end),
      or for a view never materialized [its oldest feature row (`first_rows`), end); minus what the
      progress record says it has: an interval already materialized gives no chunk.
    - The rest is cut into chunks of at most `chunk_days` local days; views whose chunks coincide
      share one Feast call.
    - A gap before data already online is a backfill. Where the online store keeps the last write
      (`keeps_newest` False: Feast's SQLite store), everything already materialized after the gap is
      written again right after it, in time order, so every key ends with its newest row (repair
      chunks); Redis (`keeps_newest` True) skips older rows itself.
    - Static views are materialized whole, [STATIC_SINCE, end), outside the chunks.
    Raises StageFailed for chunk_days < 1 or a start not before the end.
    """
    if isinstance(chunk_days, bool) or not isinstance(chunk_days, int) or chunk_days < 1:
        raise StageFailed(f"materialize: --chunk-days must be a whole number of days, at least 1 (got {chunk_days!r})")
    if start is not None and start >= end:
        raise StageFailed(f"materialize: the interval starts at {start.isoformat()}, not before its end {end.isoformat()}")
    first_rows = first_rows or {}
    planned: dict[str, MaterializedView] = {}
    static = tuple(v for v in views if v in static_views)
    for view in static:
        planned[view] = {"from": STATIC_SINCE.isoformat(), "to": end.isoformat(), "chunks": 1, "repair_chunks": 0}
    work: dict[Interval, dict[str, bool]] = {}  # window -> {view: loads new data (not only a repair)}
    for view in views:
        if view in static_views:
            continue
        done = recorded(progress, view)
        until = progress["views"].get(view, {}).get("materialized_until")
        since = start or (pd.Timestamp(until) if until else first_rows.get(view))
        if since is None or since >= end:
            planned[view] = {"from": None, "to": until, "chunks": 0, "repair_chunks": 0}
            continue
        gaps = subtract((since, end), done)
        spans = list(gaps)
        newest = max((b for _, b in done), default=None)
        if gaps and newest is not None and gaps[0][0] < newest and not keeps_newest:
            spans += intersect((gaps[0][0], newest), done)
        steps = [c for span in union(spans) for c in chunks(*span, chunk_days)]
        for window in steps:
            work.setdefault(window, {})[view] = any(window[0] < gb and window[1] > ga for ga, gb in gaps)
        fresh = sum(work[w][view] for w in steps)
        planned[view] = {"from": since.isoformat(), "to": end.isoformat(), "chunks": fresh,
                         "repair_chunks": len(steps) - fresh}
    # Sorted by start: each view's windows are disjoint and in time order, so they are written so.
    ordered = tuple(Chunk(a, b, views) for (a, b), views in sorted(work.items()))
    return MaterializationPlan(start=start, end=end, chunk_days=chunk_days, static_views=static, chunks=ordered,
                               views=planned)


def record(progress: dict, view: str, a: pd.Timestamp, b: pd.Timestamp, now: datetime | None = None) -> None:
    """Add [a, b) to `view`'s entry of the progress record (in place)."""
    entry = progress["views"].setdefault(view, {"intervals": []})
    entry["intervals"] = merge_intervals(entry["intervals"] + [[a.isoformat(), b.isoformat()]])
    prev = entry.get("materialized_until")
    entry["materialized_until"] = max(pd.Timestamp(prev), b).isoformat() if prev else b.isoformat()
    entry["updated_at"] = (now or datetime.now(UTC)).isoformat()
