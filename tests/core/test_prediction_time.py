"""The one rule for a flight's prediction time (components.contracts.prediction_time) and the partition of
independently published parts batch prediction writes (components.core.partitions), on a real local store."""

from __future__ import annotations

import threading
from datetime import date

import pandas as pd
import pytest

from components.contracts import prediction_time as pt
from components.core import partitions
from components.core.settings import SettingsError, load_settings
from components.core.store import LocalStore, parquet_bytes


def test_prediction_time_is_departure_minus_lead_floored_to_the_interval():
    sched = pd.Series(pd.to_datetime(["2013-03-01 15:40Z", "2013-03-01 15:00Z", "2013-07-27 05:06Z"]))
    hourly = pt.prediction_times(sched, 2.0, 60)
    assert hourly.tolist() == list(pd.to_datetime(["2013-03-01 13:00Z", "2013-03-01 13:00Z", "2013-07-27 03:00Z"]))
    assert str(hourly.dtype) == "datetime64[us, UTC]"
    # Hourly intervals are the UTC hours (New York's offset is whole hours): an independent floor agrees.
    assert hourly.tolist() == (sched - pd.Timedelta(hours=2)).dt.floor("h").tolist()
    # Never later than departure - lead, never earlier than departure - lead - interval.
    six = pt.prediction_times(sched, 2.0, 360)
    assert ((sched - six) >= pd.Timedelta(hours=2)).all() and ((sched - six) < pd.Timedelta(hours=8)).all()
    # 6 h intervals count from local midnight (EST: 05:00 UTC): 15:40Z - 2 h = 08:40 local -> 06:00 local.
    assert six.iloc[0] == pd.Timestamp("2013-03-01 11:00Z")
    assert pt.prediction_time("2013-03-01T15:40:00Z", 2.0, 60) == hourly.iloc[0]


@pytest.mark.parametrize("minutes", [15, 60, 360])
def test_the_scalar_rule_online_equals_the_vector_rule_offline(minutes):
    """online_features (one flight) and model_frame (many) compute the same prediction time, DST days included."""
    sched = pd.Series(pd.date_range("2013-03-09", "2013-03-12", freq="17min", tz="UTC").append(
        pd.date_range("2013-11-02", "2013-11-05", freq="17min", tz="UTC")))
    vector = pt.prediction_times(sched, 2.0, minutes)
    assert [pt.prediction_time(s, 2.0, minutes) for s in sched] == vector.tolist()


@pytest.mark.parametrize("day, hours", [(date(2013, 3, 1), 24), (date(2013, 3, 10), 23), (date(2013, 11, 3), 25)])
def test_a_day_s_intervals_tile_it_dst_days_included(day, hours):
    for minutes in (60, 360, 1440):
        intervals = pt.day_intervals(day, minutes)
        start, end = pt.day_bounds(day)
        assert intervals[0][0] == start and intervals[-1][1] == end
        assert all(a[1] == b[0] for a, b in zip(intervals, intervals[1:], strict=False))
        assert all(pt.is_aligned(s, minutes) and pt.interval_day(s) == day for s, _ in intervals)
        assert pt.ends_day(intervals[-1][1]) and not any(pt.ends_day(e) for _, e in intervals[:-1])
    assert len(pt.day_intervals(day, 60)) == hours
    # Every moment of the day lies in exactly the interval its floor starts.
    moments = pd.Series(pd.date_range(pt.day_bounds(day)[0], pt.day_bounds(day)[1], freq="7min", inclusive="left"))
    floors = pt.floor_to_interval(moments, 360)
    starts = [s for s, _ in pt.day_intervals(day, 360)]
    assert set(floors) <= set(starts)


def test_schedule_days_are_those_whose_flights_can_fall_in_the_interval():
    start, end = pt.day_bounds(date(2013, 3, 1))
    assert pt.schedule_days(start, end, 2.0) == [date(2013, 3, 1), date(2013, 3, 2)]  # next day's first departures
    first_hour = pt.day_intervals(date(2013, 3, 1), 60)[0]
    assert pt.schedule_days(*first_hour, 2.0) == [date(2013, 3, 1)]
    late = pt.day_intervals(date(2013, 3, 1), 60)[-1]  # 23:00 local: flights at 01:00-02:00 the next day
    assert pt.schedule_days(*late, 2.0) == [date(2013, 3, 2)]


def test_the_scoring_interval_setting():
    assert load_settings({}).scoring_interval_minutes == 60
    assert load_settings({"FLIGHTDECK_SCORING_INTERVAL_MINUTES": "360"}).scoring_interval_minutes == 360
    for bad in ("0", "7", "90", "1500", "abc"):
        with pytest.raises(SettingsError):
            load_settings({"FLIGHTDECK_SCORING_INTERVAL_MINUTES": bad})


def _rows(ids):
    return pd.DataFrame({"flight_id": ids, "sched_dep_utc": pd.to_datetime(["2013-03-01T12:00Z"] * len(ids)),
                         "probability": [0.5] * len(ids)})


def test_parts_are_independent_a_rerun_replaces_only_its_own(tmp_path):
    store = LocalStore(str(tmp_path))
    prefix = "predictions/date=2013-03-01"
    partitions.publish_part(store, prefix, "interval=a", {"p.parquet": parquet_bytes(_rows(["1", "2"]))})
    partitions.publish_part(store, prefix, "interval=b", {"p.parquet": parquet_bytes(_rows(["3"]))})
    before_b = store.published(f"{prefix}/interval=b")
    partitions.publish_part(store, prefix, "interval=a", {"p.parquet": parquet_bytes(_rows(["1", "2"]))})  # rerun
    assert store.published(f"{prefix}/interval=b") == before_b  # the other part was not touched
    got = partitions.read_parts(store, prefix, "p.parquet", key="flight_id")
    assert sorted(got["flight_id"]) == ["1", "2", "3"]
    assert sorted(partitions.parts(store, prefix)) == ["interval=a", "interval=b"]
    # Overlapping parts (a whole-day run beside interval runs): each row once, from the part published last.
    partitions.publish_part(store, prefix, "interval=day", {"p.parquet": parquet_bytes(_rows(["1", "2", "3"]))})
    assert len(partitions.read_parts(store, prefix, "p.parquet", key="flight_id")) == 3
    assert len(partitions.read_parts(store, prefix, "p.parquet")) == 6  # without a key: every part's rows


def test_concurrent_parts_of_one_day_all_survive(tmp_path):
    store = LocalStore(str(tmp_path))
    prefix = "predictions/date=2013-03-01"
    barrier = threading.Barrier(8)
    errors = []

    def run(i):
        try:
            barrier.wait()
            for _ in range(3):  # and reruns of the same part at the same time as the others
                partitions.publish_part(store, prefix, f"interval={i:02d}", {"p.parquet": parquet_bytes(_rows([str(i)]))})
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    got = partitions.read_parts(store, prefix, "p.parquet", key="flight_id")
    assert sorted(got["flight_id"]) == [str(i) for i in range(8)]
    assert partitions.published_at(store, prefix) is not None


def test_part_names_sort_by_time_and_are_one_segment():
    a, b = pt.day_intervals(date(2013, 3, 1), 60)[:2]
    assert pt.part_name(*a) < pt.part_name(*b) and "/" not in pt.part_name(*a)
    with pytest.raises(ValueError):
        partitions.publish_part(LocalStore("/nonexistent-never-written"), "p", "a/b", {})
