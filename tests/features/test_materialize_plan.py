"""The materialize planner, without I/O: progress record + requested interval + chunk_days -> chunks.

The stage itself (tests/features/test_features.py) runs the same plans against Feast; here the planning
rules are checked one by one on hand-made progress records."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from components.contracts import schema
from components.contracts.errors import StageFailed
from components.features.materialize_plan import (
    plan_materialization,
    record,
    requested_interval,
    resumes_from_first_row,
)
from components.features.tables import STATIC_SINCE

VIEWS = ["weather_hourly", "carrier_daily_stats", "route_daily_stats", "plane_attributes"]
STATIC = ("plane_attributes",)
TIME_VARYING = [v for v in VIEWS if v not in STATIC]


def start_of(day: str) -> pd.Timestamp:
    """Local midnight starting `day`, in UTC."""
    return pd.Timestamp(schema.local_day_bounds_utc(schema.parse_day(day))[0])


def end_of(day: str) -> pd.Timestamp:
    return requested_interval("", day)[1]


def progress(**views: list[tuple[pd.Timestamp, pd.Timestamp]]) -> dict:
    out: dict = {"views": {}}
    for view, spans in views.items():
        for a, b in spans:
            record(out, view, a, b)
    return out


def plan(done: dict, start: str, end: str, chunk_days: int = 31, keeps_newest: bool = False, first_rows=None):
    a, b = requested_interval(start, end)
    return plan_materialization(done, VIEWS, STATIC, start=a, end=b, chunk_days=chunk_days,
                                keeps_newest=keeps_newest, first_rows=first_rows)


def spans(p) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    return [(c.start, c.end) for c in p.chunks]


def test_the_requested_days_are_cut_into_chunks_of_chunk_days_local_days():
    p = plan(progress(), "2013-01-08", "2013-01-12", chunk_days=2)
    assert spans(p) == [(start_of("2013-01-08"), start_of("2013-01-10")),
                        (start_of("2013-01-10"), start_of("2013-01-12")),
                        (start_of("2013-01-12"), end_of("2013-01-12"))]
    assert start_of("2013-01-10") == pd.Timestamp("2013-01-10T05:00Z")  # local midnight (EST), in UTC
    assert all(dict(c.views) == dict.fromkeys(TIME_VARYING, True) for c in p.chunks)  # one Feast call per chunk
    assert (p.new_chunks, p.repair_chunks, p.chunk_days) == (3, 0, 2)
    for view in TIME_VARYING:
        assert p.views[view] == {"from": start_of("2013-01-08").isoformat(), "to": end_of("2013-01-12").isoformat(),
                                 "chunks": 3, "repair_chunks": 0}
    # Static views: whole, outside the chunks, listed first (as the stage reports them).
    assert p.static_views == STATIC and list(p.views)[0] == "plane_attributes"
    assert p.views["plane_attributes"] == {"from": STATIC_SINCE.isoformat(), "to": end_of("2013-01-12").isoformat(),
                                           "chunks": 1, "repair_chunks": 0}
    # One chunk covers a month when chunk_days allows it.
    assert spans(plan(progress(), "2013-01-01", "2013-01-31")) == [(start_of("2013-01-01"), end_of("2013-01-31"))]


def test_chunks_follow_local_days_across_a_dst_change():
    p = plan(progress(), "2013-03-09", "2013-03-11", chunk_days=1)
    assert [b - a for a, b in spans(p)] == [pd.Timedelta(hours=24), pd.Timedelta(hours=23), pd.Timedelta(hours=24)]
    assert spans(p)[-1][1] == pd.Timestamp("2013-03-12T04:00Z")  # EDT from March 10


def test_without_a_start_each_view_resumes_from_its_own_progress():
    done = progress(weather_hourly=[(start_of("2013-01-01"), end_of("2013-01-10"))],
                    carrier_daily_stats=[(start_of("2013-01-01"), end_of("2013-01-11"))])
    # route_daily_stats has never been materialized: it starts at its table's oldest row.
    assert [resumes_from_first_row(done, v, None) for v in TIME_VARYING] == [False, False, True]
    assert not resumes_from_first_row(done, "route_daily_stats", start_of("2013-01-05"))
    p = plan(done, "", "2013-01-12", chunk_days=1, first_rows={"route_daily_stats": start_of("2013-01-05")})
    assert p.start is None
    assert spans(p) == [(start_of(f"2013-01-{d:02}"), end_of(f"2013-01-{d:02}")) for d in range(5, 13)]
    assert {v: p.views[v]["chunks"] for v in TIME_VARYING} == \
        {"weather_hourly": 2, "carrier_daily_stats": 1, "route_daily_stats": 8}
    assert p.views["weather_hourly"]["from"] == end_of("2013-01-10").isoformat()
    # The chunk of Jan 12 loads all three views in one call; the ones before, only the views that lack them.
    assert set(p.chunks[-1].views) == set(TIME_VARYING)
    assert set(p.chunks[0].views) == {"route_daily_stats"}
    # A view with neither progress nor rows has nothing to load.
    empty = plan(done, "", "2013-01-12", chunk_days=1, first_rows={"route_daily_stats": None})
    assert empty.views["route_daily_stats"] == {"from": None, "to": None, "chunks": 0, "repair_chunks": 0}
    assert len(empty.chunks) == 2


def test_an_interval_already_materialized_gives_nothing_to_do():
    done = progress(**{v: [(start_of("2013-01-08"), end_of("2013-01-12"))] for v in TIME_VARYING})
    p = plan(done, "2013-01-09", "2013-01-11", chunk_days=1)
    assert p.chunks == () and (p.new_chunks, p.repair_chunks) == (0, 0)
    assert all(p.views[v]["chunks"] == p.views[v]["repair_chunks"] == 0 for v in TIME_VARYING)
    # Without a start, a view materialized up to (or past) the end has nothing to do either.
    later = plan(done, "", "2013-01-12")
    assert later.chunks == ()
    assert later.views["weather_hourly"] == {"from": None, "to": end_of("2013-01-12").isoformat(),
                                             "chunks": 0, "repair_chunks": 0}


def test_an_explicit_start_before_the_progress_loads_the_gap_and_repairs_where_the_last_write_wins():
    done = progress(**{v: [(start_of("2013-01-12"), end_of("2013-01-14"))] for v in TIME_VARYING})
    # SQLite keeps the last write: after the gap, the newer days are written again, in time order.
    p = plan(done, "2013-01-10", "2013-01-14", chunk_days=1, keeps_newest=False)
    assert spans(p) == [(start_of(f"2013-01-{d}"), end_of(f"2013-01-{d}")) for d in range(10, 15)]
    assert [c.loads_new_data for c in p.chunks] == [True, True, False, False, False]
    assert (p.new_chunks, p.repair_chunks) == (2, 3)
    assert p.views["carrier_daily_stats"] == {"from": start_of("2013-01-10").isoformat(),
                                              "to": end_of("2013-01-14").isoformat(), "chunks": 2, "repair_chunks": 3}
    # Redis skips older rows itself: only the gap.
    redis = plan(done, "2013-01-10", "2013-01-14", chunk_days=1, keeps_newest=True)
    assert spans(redis) == spans(p)[:2] and redis.repair_chunks == 0
    # A start inside what is recorded loads only what is missing after it, and repairs nothing.
    after = plan(done, "2013-01-13", "2013-01-16", chunk_days=1)
    assert spans(after) == [(end_of("2013-01-14"), end_of("2013-01-15")), (end_of("2013-01-15"), end_of("2013-01-16"))]
    assert after.repair_chunks == 0


@pytest.mark.parametrize("chunk_days", [0, -1, True, 1.5])
def test_chunk_days_below_one_or_not_a_whole_number_is_refused(chunk_days):
    with pytest.raises(StageFailed, match="chunk-days must be a whole number of days, at least 1"):
        plan(progress(), "2013-01-08", "2013-01-12", chunk_days=chunk_days)


def test_an_end_before_the_start_is_refused():
    with pytest.raises(StageFailed, match="--start 2013-01-12 is after --end 2013-01-11"):
        requested_interval("2013-01-12", "2013-01-11")
    with pytest.raises(StageFailed, match="not before its end"):
        plan_materialization(progress(), VIEWS, STATIC, start=end_of("2013-01-12"), end=end_of("2013-01-12"),
                             chunk_days=1, keeps_newest=False)
    with pytest.raises(ValueError, match="end '2013-13-01' is not a date"):
        requested_interval("", "2013-13-01")


def test_record_merges_what_touches_and_keeps_the_newest_end():
    at = datetime(2026, 1, 1, tzinfo=UTC)
    done: dict = {"views": {}}
    record(done, "weather_hourly", start_of("2013-01-12"), end_of("2013-01-12"), now=at)
    record(done, "weather_hourly", start_of("2013-01-10"), end_of("2013-01-10"), now=at)
    record(done, "weather_hourly", start_of("2013-01-11"), end_of("2013-01-11"), now=at)
    assert done["views"]["weather_hourly"] == {
        "intervals": [[start_of("2013-01-10").isoformat(), end_of("2013-01-12").isoformat()]],
        "materialized_until": end_of("2013-01-12").isoformat(), "updated_at": at.isoformat()}
