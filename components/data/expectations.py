"""The expectation suites of the raw tables, declared as data and turned into Great Expectations
objects only when validation runs (importing GX takes seconds: docs/BENCHMARKS.md, Figures the code
relies on; so nothing here imports it at module level).

A suite is a list of `Check`s: the GX expectation class, its arguments and one line saying, in
plain words, what the check guards. Per-partition values (the local day's UTC bounds, the row-count
bounds, the known carriers) are GX suite parameters, so each table's suite is built once per process.

Some rules are about how columns relate (time_hour must be the local year/month/day/hour in UTC).
GX checks single columns or pairs, so `prepare_batch` adds a few derived columns ("<col>__timezone",
"time_hour__local_clock", "local_clock") and the suite compares those; their sample values in a
report show the problem directly (e.g. "America/New_York" or "2013-03-10 04:00" vs "2013-03-10 08:00").

Flights are two tables with a suite each: the schedule (known in advance) and the outcomes (known when they
happen). The outcomes suite also checks each batch against the same day's raw schedule (`prepare_batch`'s
`schedule`): every outcome is of a scheduled flight and every scheduled flight has one, and known_at is not
before the scheduled departure minus EARLY_DEPARTURE_MINUTES nor before the actual departure it reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import pandas as pd

from components.contracts import schema

SUITE_VERSION = "v1"

# pandas dtypes accepted per contract kind. Floats accept integer dtypes: a CSV column of whole
# numbers (distance "1400") is read as int64 and is still a valid float column.
INT_TYPES = ["int64", "int32", "int16", "int8", "Int64Dtype", "Int32Dtype"]
FLOAT_TYPES = ["float64", "float32", "Float64Dtype", *INT_TYPES]
STRING_TYPES = ["str", "StringDtype"]
TYPE_LISTS = {"int": INT_TYPES, "float": FLOAT_TYPES, "string": STRING_TYPES}

# Required non-null columns per table: the keys and what the keys are derived from.
NOT_NULL = {
    "schedule": ["flight_id", "carrier", "flight", "origin", "dest", "sched_dep_utc",
                 "year", "month", "day", "hour", "minute", "time_hour"],
    "outcomes": ["flight_id", "year", "month", "day", "known_at"],
    "weather": ["origin", "time_hour", "year", "month", "day", "hour"],
    "planes": ["tailnum"],
    "airlines": ["carrier", "name"],
}

# The earliest a flight departs before its schedule (minutes): the tolerance of the outcome time checks.
EARLY_DEPARTURE_MINUTES = 180

# Value ranges: physically or operationally plausible bounds that the whole real 2013 year passes
# with margin (its observed min..max per column: docs/BENCHMARKS.md, Figures the code relies on).
# Delays and times are minutes unless said otherwise.
RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "schedule": {
        "year": (2000, 2100),
        "month": (1, 12),
        "day": (1, 31),
        "hour": (0, 23),
        "minute": (0, 59),
        "sched_dep_time": (0, 2359),  # HHMM local
        "sched_arr_time": (0, 2359),  # HHMM local
        "distance": (1, 6000),  # miles
        "flight": (1, 9999),
    },
    "outcomes": {
        "year": (2000, 2100),
        "month": (1, 12),
        "day": (1, 31),
        "dep_time": (0, 2400),  # HHMM, 2400 = midnight
        "arr_time": (0, 2400),
        "dep_delay": (-EARLY_DEPARTURE_MINUTES, 2880),  # early by up to 3 h, late by up to 2 days
        "arr_delay": (-240, 2880),
        "air_time": (5, 960),
        # known_at - scheduled departure: an outcome is never known before the flight could have left
        "known_at__minutes_from_schedule": (-EARLY_DEPARTURE_MINUTES, None),
        # known_at - actual departure (departed flights): never before the departure it reports
        "known_at__minutes_from_departure": (0, None),
    },
    "weather": {
        "year": (2000, 2100),
        "month": (1, 12),
        "day": (1, 31),
        "hour": (0, 23),
        "temp": (-40, 130),  # F
        "dewp": (-60, 100),  # F
        "humid": (0, 100),  # %
        "wind_dir": (0, 360),  # degrees
        "wind_gust": (0, 200),  # mph
        "precip": (0, 10),  # inches per hour
        "pressure": (900, 1100),  # millibar
        "visib": (0, 20),  # miles
    },
    "planes": {
        "year": (1930, 2100),  # year built
        "engines": (1, 8),
        "seats": (1, 1000),
        "speed": (50, 1000),  # mph
    },
}
# wind_speed has one known sensor glitch in the source (1048 mph at EWR, 2013-02-12 03:00 local).
# A partition may carry a stray glitch (2% of ~72 hourly rows is one reading); a partition mostly
# out of range is refused. The share is computed per partition (a derived column) so the rule
# means the same whether a partition is checked alone or inside a multi-day batch.
SHARE_RANGES = {"weather": {"wind_speed": ((0, 150), 0.02)}}
ROWS = {  # fixed row-count bounds of the reference tables; partitions take theirs from parameters
    "planes": (100, 1_000_000),
    "airlines": (1, 10_000),
}


@dataclass(frozen=True)
class Check:
    expectation: str  # a class in great_expectations.expectations
    kwargs: dict = field(default_factory=dict)
    why: str = ""


def param(name: str) -> dict:
    return {"$PARAMETER": name}


def suite_name(table: str) -> str:
    return f"raw_{table}.{SUITE_VERSION}"


def checks(table: str) -> list[Check]:
    """The whole suite of one raw table, as data."""
    columns = schema.TABLE_COLUMNS[table]
    out: list[Check] = []
    for col in columns:
        out.append(Check("ExpectColumnToExist", {"column": col}, f"the contract requires column {col}"))
    for col, kind in columns.items():
        if kind == "utc":
            out.append(Check("ExpectColumnValuesToBeInSet", {"column": f"{col}__timezone", "value_set": ["UTC"]},
                             f"{col} must be a timezone-aware UTC timestamp"))
        else:
            out.append(Check("ExpectColumnValuesToBeInTypeList", {"column": col, "type_list": TYPE_LISTS[kind]},
                             f"{col} must have dtype kind {kind}"))
    for col in NOT_NULL[table]:
        out.append(Check("ExpectColumnValuesToNotBeNull", {"column": col}, f"{col} is a required key and may not be null"))
    for col, (lo, hi) in RANGES.get(table, {}).items():
        what = f"within {lo}..{hi}" if hi is not None else f"at least {lo}"
        out.append(Check("ExpectColumnValuesToBeBetween", {"column": col, "min_value": lo, "max_value": hi},
                         f"{col} must be {what}"))
    for col, ((lo, hi), share) in SHARE_RANGES.get(table, {}).items():
        out.append(Check("ExpectColumnValuesToBeBetween",
                         {"column": f"{col}__share_out_of_range", "min_value": 0, "max_value": share},
                         f"at most {share:.0%} of a partition's {col} values may fall outside {lo}..{hi}"))
    out += _table_checks(table)
    return out


def _table_checks(table: str) -> list[Check]:
    origins = list(schema.ORIGINS)
    if table == "schedule":
        return [
            Check("ExpectColumnValuesToBeUnique", {"column": "flight_id"},
                  "the flight key (date, carrier, flight number, origin) must be unique"),
            Check("ExpectColumnValuesToBeInSet", {"column": "origin", "value_set": origins},
                  f"origin must be one of {', '.join(origins)}"),
            Check("ExpectColumnValuesToBeInSet", {"column": "carrier", "value_set": param("carriers")},
                  "carrier must be a known airline (the airlines reference table)"),
            *_row_count_checks("scheduled flights"),
            *_time_checks(("sched_dep_utc", "time_hour")),
        ]
    if table == "outcomes":
        pair = {"ignore_row_if": "either_value_is_missing"}
        return [
            Check("ExpectColumnValuesToBeUnique", {"column": "flight_id"}, "one outcome per flight"),
            Check("ExpectColumnValuesToBeInSet", {"column": "flight_id__in_schedule", "value_set": [True]},
                  "an outcome is of a flight of the same day's schedule"),
            Check("ExpectColumnValuesToBeBetween",
                  {"column": "schedule__flights_without_outcome", "min_value": 0, "max_value": 0},
                  "every flight of the day's schedule has its outcome (a cancellation is one)"),
            Check("ExpectColumnValuesToBeInSet", {"column": "arrived_without_departure", "value_set": [False]},
                  "a flight with an arrival time has a departure time"),
            Check("ExpectColumnPairValuesToBeEqual",
                  {"column_A": "dep_time__present", "column_B": "dep_delay__present"},
                  "a departure time comes with its delay, a cancellation has neither"),
            Check("ExpectColumnPairValuesToBeEqual",
                  {"column_A": "flight_id__local_date", "column_B": "partition_date", **pair},
                  "an outcome is in the partition of its flight's scheduled local day"),
            *_row_count_checks("flight outcomes"),
        ]
    if table == "weather":
        return [
            Check("ExpectCompoundColumnsToBeUnique", {"column_list": ["origin", "time_hour"]},
                  "one observation per origin and hour"),
            Check("ExpectColumnValuesToBeInSet", {"column": "origin", "value_set": origins},
                  f"origin must be one of {', '.join(origins)}"),
            *_row_count_checks("hourly weather"),
            *_time_checks(("time_hour",)),
        ]
    if table == "planes":
        return [
            Check("ExpectColumnValuesToBeUnique", {"column": "tailnum"}, "one row per plane"),
            Check("ExpectTableRowCountToBeBetween", {"min_value": ROWS[table][0], "max_value": ROWS[table][1]},
                  "the planes table is not empty or absurdly large"),
        ]
    if table == "airlines":
        return [
            Check("ExpectColumnValuesToBeUnique", {"column": "carrier"}, "one row per carrier code"),
            Check("ExpectColumnValuesToMatchRegex", {"column": "carrier", "regex": r"^[A-Z0-9]{2}$"},
                  "a carrier code is two capital letters or digits"),
            Check("ExpectTableRowCountToBeBetween", {"min_value": ROWS[table][0], "max_value": ROWS[table][1]},
                  "the airlines table is not empty or absurdly large"),
        ]
    raise ValueError(f"no suite for table {table!r}")


def _time_checks(columns: tuple[str, ...]) -> list[Check]:
    # Rows with a null timestamp are the not-null checks' business; compare only the others.
    pair = {"ignore_row_if": "either_value_is_missing"}
    out = [
        Check("ExpectColumnPairValuesToBeEqual", {"column_A": f"{col}__local_date", "column_B": "partition_date", **pair},
              f"{col} must fall within the partition's local day (America/New_York)")
        for col in columns
    ]
    out.append(Check("ExpectColumnPairValuesToBeEqual",
                     {"column_A": "time_hour__local_clock", "column_B": "local_clock", **pair},
                     "time_hour must be the row's local year/month/day/hour converted to UTC"))
    return out


def _row_count_checks(what: str) -> list[Check]:
    # partition_rows is checked row by row so that a multi-day batch enforces it per partition; the
    # table-level count catches an empty partition (it has no rows to carry partition_rows).
    return [
        Check("ExpectColumnValuesToBeBetween",
              {"column": "partition_rows", "min_value": param("min_rows"), "max_value": param("max_rows")},
              f"a day of {what} has a plausible number of rows"),
        Check("ExpectTableRowCountToBeBetween",
              {"min_value": param("table_min_rows"), "max_value": param("table_max_rows")},
              f"a day of {what} has a plausible number of rows"),
    ]


def parameters(table: str, *, min_rows: int = 0, max_rows: int = 0, single: bool = True,
               carriers: list[str] | None = None) -> dict:
    """The suite parameters of a batch: one partition (single) or several days of one table."""
    if table in schema.REFERENCE:
        return {}
    out = {"min_rows": min_rows, "max_rows": max_rows,
           # A multi-day batch holds only non-empty partitions; partition_rows bounds each of them.
           "table_min_rows": min_rows if single else 1, "table_max_rows": max_rows if single else 10**12}
    if table == "schedule":
        out["carriers"] = sorted(carriers or [])
    return out


# -- derived columns ---------------------------------------------------------------------------
def prepare_batch(table: str, df: pd.DataFrame, day: date | None = None,
                  schedule: pd.DataFrame | None = None) -> pd.DataFrame:
    """The raw frame plus the derived columns the suite checks. Never fails on bad data: a derived
    value that cannot be computed is null or a string naming what was found instead. `schedule`: the
    same day's raw schedule, which the outcomes suite checks the outcomes against (None: unreadable,
    those checks see nulls and pass; the schedule's own suite refuses it)."""
    out = df.copy()
    if table == "outcomes":
        for col, value in _outcome_columns(df, schedule).items():
            out[col] = value
    columns = schema.TABLE_COLUMNS[table]
    for col, kind in columns.items():
        if kind == "utc":
            out[f"{col}__timezone"] = _timezone_label(df[col]) if col in df.columns else None
    if day is None:
        return out
    out["partition_date"] = day.isoformat()
    out["partition_rows"] = len(df)
    for col, kind in columns.items():
        if kind == "utc":
            out[f"{col}__local_date"] = _local(df.get(col), "%Y-%m-%d")
    if "time_hour" in columns:
        out["time_hour__local_clock"] = _local(df.get("time_hour"), "%Y-%m-%d %H:00")
        out["local_clock"] = _clock_from_parts(df)
    for col, ((lo, hi), _share) in SHARE_RANGES.get(table, {}).items():
        values = pd.to_numeric(df[col], errors="coerce") if col in df.columns else pd.Series(dtype=float)
        outside = float(((values < lo) | (values > hi)).mean()) if len(values) else 0.0
        out[f"{col}__share_out_of_range"] = outside
    return out


def _outcome_columns(df: pd.DataFrame, schedule: pd.DataFrame | None) -> dict:
    """The outcomes suite's derived columns: the flight against its schedule, known_at against the events."""
    ids = df["flight_id"].astype(object) if "flight_id" in df.columns else pd.Series(None, index=df.index, dtype=object)
    num = {c: pd.to_numeric(df[c], errors="coerce") if c in df.columns else pd.Series(float("nan"), index=df.index)
           for c in ("dep_time", "dep_delay", "arr_time")}
    nan = pd.Series(float("nan"), index=df.index)
    out = {
        "flight_id__local_date": ids.astype(str).str.slice(0, 10).where(ids.notna(), None),
        "arrived_without_departure": num["arr_time"].notna() & num["dep_time"].isna(),
        "dep_time__present": num["dep_time"].notna(),
        "dep_delay__present": num["dep_delay"].notna(),
        "flight_id__in_schedule": None,
        "schedule__flights_without_outcome": nan,
        "known_at__minutes_from_schedule": nan,
        "known_at__minutes_from_departure": nan,
    }
    usable = (schedule is not None and {"flight_id", "sched_dep_utc"} <= set(schedule.columns)
              and isinstance(schedule["sched_dep_utc"].dtype, pd.DatetimeTZDtype))
    if not usable:
        return out
    sched = schedule.dropna(subset=["flight_id"]).drop_duplicates("flight_id").set_index("flight_id")["sched_dep_utc"]
    out["flight_id__in_schedule"] = ids.isin(sched.index)
    out["schedule__flights_without_outcome"] = int((~sched.index.isin(ids.dropna())).sum())
    known = df.get("known_at")
    if known is not None and isinstance(known.dtype, pd.DatetimeTZDtype):
        planned = ids.map(sched)
        minutes = (known - pd.to_datetime(planned, utc=True)).dt.total_seconds() / 60
        out["known_at__minutes_from_schedule"] = minutes
        out["known_at__minutes_from_departure"] = (minutes - num["dep_delay"]).where(num["dep_time"].notna())
    return out


def _timezone_label(s: pd.Series) -> str:
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return str(s.dtype.tz)
    return f"no timezone (dtype {s.dtype})"


def _local(s: pd.Series | None, fmt: str):
    if s is None or not isinstance(s.dtype, pd.DatetimeTZDtype):
        return None  # the timezone check reports it
    return s.dt.tz_convert(schema.LOCAL_TZ).dt.strftime(fmt)


def _clock_from_parts(df: pd.DataFrame):
    parts = ("year", "month", "day", "hour")
    if not set(parts) <= set(df.columns):
        return None
    return assemble_local(df, parts).dt.strftime("%Y-%m-%d %H:00")


# The values a date part may take; anything else (a string, 1.5, 10**18 hours) makes the row's date NaT.
# Bounding them first matters: pandas assembles hour/minute as timedeltas and raises on overflow even
# with errors="coerce". Years stay within what datetime64[ns] holds.
PART_RANGES = {"year": (1678, 2261), "month": (1, 12), "day": (1, 31), "hour": (0, 23), "minute": (0, 59)}


def assemble_local(df: pd.DataFrame, parts: tuple[str, ...]) -> pd.Series:
    """The local timestamp of each row from its date/time part columns; NaT where they do not form one."""
    values = {}
    for part in parts:
        number = pd.to_numeric(df[part], errors="coerce")
        number = pd.Series(number, index=df.index).astype("float64")
        lo, hi = PART_RANGES[part]
        values[part] = number.where((number >= lo) & (number <= hi) & (number == number.round()))
    return pd.to_datetime(values, errors="coerce")



def day_str(day: date | None) -> str:
    return day.isoformat() if day else "reference"
