"""The one rule for a flight's prediction time, shared by training sets, batch and online prediction.

A flight's prediction time is its scheduled departure minus the lead time, floored to the scoring
interval: floor(sched_dep_utc - lead_time, scoring_interval). Intervals are counted from local
midnight (schema.LOCAL_TZ), so an interval that divides a day tiles each local day and never crosses
midnight (hourly intervals are the UTC hours: New York's offset is a whole number of hours; on a DST
day the day's last interval ends at the next local midnight). Every feature value a prediction uses
was known at its prediction time, and the prediction is made then: batch prediction scores, in the run
of the interval [start, end), exactly the flights whose prediction time falls in it, with features as
of that time. Flooring makes the effective lead between `lead_time` and `lead_time + interval`, never less.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd

from components.contracts.schema import LOCAL_TZ


def _utc(ts) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).as_unit("us")


def floor_to_interval(at: pd.Series, interval_minutes: int) -> pd.Series:
    """UTC timestamps floored to the scoring interval, counted from each one's local midnight."""
    at = pd.to_datetime(at, utc=True).astype("datetime64[us, UTC]")
    midnight = at.dt.tz_convert(LOCAL_TZ).dt.normalize().dt.tz_convert("UTC")
    step = pd.Timedelta(minutes=int(interval_minutes))
    return (midnight + ((at - midnight) // step) * step).astype("datetime64[us, UTC]")


def prediction_times(sched_dep_utc: pd.Series, lead_time_hours: float, interval_minutes: int) -> pd.Series:
    """Each flight's prediction time (datetime64[us, UTC]): floor(sched_dep_utc - lead_time, interval)."""
    sched = pd.to_datetime(sched_dep_utc, utc=True).astype("datetime64[us, UTC]")
    return floor_to_interval(sched - pd.Timedelta(hours=float(lead_time_hours)), interval_minutes)


def prediction_time(sched_dep_utc, lead_time_hours: float, interval_minutes: int) -> pd.Timestamp:
    """One flight's prediction time (the scalar form of `prediction_times`, same rule; no Series: the online
    path pays for every microsecond)."""
    at = _utc(sched_dep_utc) - pd.Timedelta(hours=float(lead_time_hours))
    local = at.tz_convert(LOCAL_TZ)
    midnight = pd.Timestamp(datetime(local.year, local.month, local.day, tzinfo=LOCAL_TZ)).tz_convert("UTC")
    step = pd.Timedelta(minutes=int(interval_minutes))
    return (midnight + ((at - midnight) // step) * step).as_unit("us")


def interval_end(start, interval_minutes: int) -> pd.Timestamp:
    """The end of the scoring interval that starts at `start`: start + interval, or the next local
    midnight when that comes first (the last interval of a DST day)."""
    start = _utc(start)
    local = start.tz_convert(LOCAL_TZ)
    next_midnight = pd.Timestamp(datetime(local.year, local.month, local.day, tzinfo=LOCAL_TZ) + timedelta(days=1))
    return min(start + pd.Timedelta(minutes=int(interval_minutes)), next_midnight.tz_convert("UTC").as_unit("us"))


def last_prediction_time(start, end, interval_minutes: int) -> pd.Timestamp:
    """The last prediction time of the scoring interval [start, end): one scoring interval before its end,
    never before its start (one interval: its start; a whole day: its last interval's start). What batch
    prediction pushes the day's outcomes up to, so each flight's join finds the day so far at its own time."""
    return max(_utc(start), _utc(end) - pd.Timedelta(minutes=interval_minutes))


def is_aligned(ts, interval_minutes: int) -> bool:
    ts = _utc(ts)
    return floor_to_interval(pd.Series([ts]), interval_minutes).iloc[0] == ts


def day_bounds(day: date) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[start, end) of a local calendar day, UTC: the interval of a whole-day scoring run."""
    start = pd.Timestamp(datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ))
    end = pd.Timestamp(datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ) + timedelta(days=1))
    return _utc(start), _utc(end)


def day_intervals(day: date, interval_minutes: int) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """The scoring intervals of a local day, in order: they tile [local midnight, next local midnight)."""
    start, end = day_bounds(day)
    out = []
    while start < end:
        nxt = interval_end(start, interval_minutes)
        out.append((start, nxt))
        start = nxt
    return out


def interval_day(start) -> date:
    """The local day an interval lies in (intervals never cross local midnight)."""
    return _utc(start).tz_convert(LOCAL_TZ).date()


def ends_day(end) -> bool:
    """True when an interval ending at `end` is the last of its local day (ends at local midnight)."""
    local = _utc(end).tz_convert(LOCAL_TZ)
    return (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0)


def schedule_days(start, end, lead_time_hours: float) -> list[date]:
    """The local days whose flights can have a prediction time in [start, end) (start, end aligned):
    those scheduled in [start + lead, end + lead)."""
    lead = pd.Timedelta(hours=float(lead_time_hours))
    first = (_utc(start) + lead).tz_convert(LOCAL_TZ).date()
    last = (_utc(end) + lead - pd.Timedelta(microseconds=1)).tz_convert(LOCAL_TZ).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def part_name(start, end) -> str:
    """The name of an interval's part of a prediction partition: interval=<start>_<end>, UTC, sortable."""
    fmt = "%Y%m%dT%H%M%SZ"
    return f"interval={_utc(start).strftime(fmt)}_{_utc(end).strftime(fmt)}"


def parse_instant(value: str, what: str) -> pd.Timestamp:
    """An ISO 8601 timestamp; one without an offset is UTC."""
    try:
        return _utc(pd.Timestamp(str(value)))
    except (ValueError, TypeError):
        raise ValueError(f"{what} {value!r} is not an ISO 8601 timestamp (e.g. 2013-03-01T10:00:00Z)") from None
