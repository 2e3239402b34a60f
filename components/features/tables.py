"""The feature tables of the delay model, computed from validated flights, weather and planes.

Pure computations (pandas in, pandas out; DuckDB for the windowed aggregates), no store or Feast:
components.features.build reads the validated partitions, calls these and writes the tables Feast reads.

Point-in-time rules, which the tests check independently:
- weather_hourly rows are stamped with a UTC hour and carry the latest observation at or before it.
- carrier/route daily stats are stamped at the END of local day D (local midnight of D+1, in UTC)
  and use only flights scheduled on D-w .. D-1 whose outcome was known by that stamp (see
  `outcome_known_at`). A flight scheduled on D therefore never feeds a stat stamped at the end of D.
  A key has a row for D iff it had a flight scheduled on D-28 .. D-1 (counts may still be 0 while
  none has landed): rebuilding any range gives the same rows, and later flights never create one.
- plane_attributes are static facts (build year, seats), stamped at the Unix epoch.
"""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import numpy as np
import pandas as pd

from components.contracts.outcomes import DIVERTED_SETTLED_AFTER, LANDING_MARGIN, outcome_known_at  # noqa: F401
from components.contracts.schema import LOCAL_TZ

TS = "event_timestamp"
STATIC_SINCE = pd.Timestamp("1970-01-01", tz="UTC")
# The oldest observation the hourly weather series carries forward over a gap in the reports.
WEATHER_MAX_AGE = pd.Timedelta(hours=6)
# LANDING_MARGIN, DIVERTED_SETTLED_AFTER and outcome_known_at: the one rule, in components.contracts.outcomes
# (ingest stamps each outcome row with it as known_at); imported here for the features' readers.

WEATHER_FEATURES = ["temp", "dewp", "humid", "wind_speed", "wind_gust", "precip", "pressure", "visib"]
CARRIER_FEATURES = ["carrier_late_rate_7d", "carrier_late_rate_28d", "carrier_mean_dep_delay_7d", "carrier_cancel_rate_7d"]
ROUTE_FEATURES = ["route_late_rate_28d", "route_mean_arr_delay_28d", "route_flights_28d"]
PLANE_FEATURES = ["plane_year", "plane_seats"]
# The longest trailing window: how much flight history a build needs before its first day.
HISTORY_DAYS = 28


def utc_us(values) -> pd.Series:
    """Timestamps as datetime64[us, UTC] (Feast's DuckDB path rejects nanoseconds)."""
    return pd.to_datetime(values, utc=True).astype("datetime64[us, UTC]")


def end_of_local_day(days: pd.Series) -> pd.Series:
    """Local midnight after each date, in UTC: the stamp of that day's daily stats."""
    nxt = pd.to_datetime(days) + pd.Timedelta(days=1)
    return utc_us(nxt.dt.tz_localize(LOCAL_TZ).dt.tz_convert("UTC"))


def label(flights: pd.DataFrame) -> pd.Series:
    """Late = arrival delay >= 15 min, or no arrival at all (cancelled or diverted)."""
    arr = flights["arr_delay"].astype("float64")
    return ((arr >= 15) | arr.isna()).astype("int8")


def _local_date(ts: pd.Series) -> pd.Series:
    return ts.dt.tz_convert(LOCAL_TZ).dt.tz_localize(None).dt.normalize()


def flight_outcomes(flights: pd.DataFrame) -> pd.DataFrame:
    """One row per flight with what the daily stats aggregate, and the first stamp day it may feed."""
    sched_day = _local_date(flights["sched_dep_utc"])
    known_day = _local_date(outcome_known_at(flights))
    return pd.DataFrame({
        "carrier": flights["carrier"].astype(str),
        "route": flights["origin"].astype(str) + "-" + flights["dest"].astype(str),
        "sched_day": sched_day,
        # Stats stamped at the end of day X may use this flight iff sched_day < X and eff_day <= X.
        "eff_day": np.maximum(sched_day + pd.Timedelta(days=1), known_day),
        "late": label(flights).astype("float64"),
        "cancelled": flights["dep_time"].isna().astype("float64"),
        "dep_delay": flights["dep_delay"].astype("float64"),
        "arr_delay": flights["arr_delay"].astype("float64"),
    })


_DAILY_SQL = """
WITH agg AS (  -- pre-aggregate per key, scheduled day and effective day: the window join stays small
    SELECT {key} AS k, sched_day::DATE AS sd, eff_day::DATE AS ed, count(*) AS n, sum(late) AS late,
           sum(cancelled) AS cancelled, sum(dep_delay) AS dep_sum, count(dep_delay) AS dep_n,
           sum(arr_delay) AS arr_sum, count(arr_delay) AS arr_n
    FROM outcomes GROUP BY ALL
),
grid AS (  -- a key gets a row for day d iff it had a flight scheduled in the window before d: whether a
           -- row exists never depends on the build's range or on later flights (no look-ahead)
    SELECT DISTINCT a.k, t.d::DATE AS d
    FROM generate_series(DATE '{first}', DATE '{last}', INTERVAL 1 DAY) AS t(d)
    JOIN agg a ON a.sd BETWEEN t.d::DATE - {hist} AND t.d::DATE - 1
)
SELECT g.k AS key, g.d AS day,
    {selects}
FROM grid g LEFT JOIN agg a ON a.k = g.k AND a.sd BETWEEN g.d - {hist} AND g.d - 1 AND a.ed <= g.d
GROUP BY g.k, g.d
"""


def _windowed(outcomes: pd.DataFrame, key: str, first: date, last: date, selects: dict[str, str]) -> pd.DataFrame:
    sql = _DAILY_SQL.format(
        key=key, first=first.isoformat(), last=last.isoformat(), hist=HISTORY_DAYS,
        selects=",\n    ".join(f"{expr} AS {name}" for name, expr in selects.items()),
    )
    with duckdb.connect() as con:  # an in-memory database, one per call, closed on the way out
        con.register("outcomes", outcomes)
        out = con.execute(sql).df()
    out[TS] = end_of_local_day(out.pop("day"))
    return out


def _within(days: int, col: str) -> str:
    return f"sum(a.{col}) FILTER (WHERE a.sd >= g.d - {days})"


def _ratio(days: int, num: str, den: str) -> str:
    return f"{_within(days, num)} / nullif({_within(days, den)}, 0)"


def carrier_daily_stats(outcomes: pd.DataFrame, first: date, last: date) -> pd.DataFrame:
    """Per carrier, stamped at the end of each local day first..last."""
    out = _windowed(outcomes, "carrier", first, last, {
        "carrier_late_rate_7d": _ratio(7, "late", "n"),
        "carrier_late_rate_28d": _ratio(28, "late", "n"),
        "carrier_mean_dep_delay_7d": _ratio(7, "dep_sum", "dep_n"),
        "carrier_cancel_rate_7d": _ratio(7, "cancelled", "n"),
    })
    return _finish(out.rename(columns={"key": "carrier"}), "carrier", CARRIER_FEATURES)


def route_daily_stats(outcomes: pd.DataFrame, first: date, last: date) -> pd.DataFrame:
    """Per route (ORIGIN-DEST), stamped at the end of each local day first..last."""
    out = _windowed(outcomes, "route", first, last, {
        "route_late_rate_28d": _ratio(28, "late", "n"),
        "route_mean_arr_delay_28d": _ratio(28, "arr_sum", "arr_n"),
        "route_flights_28d": f"coalesce({_within(28, 'n')}, 0)",
    })
    return _finish(out.rename(columns={"key": "route"}), "route", ROUTE_FEATURES)


def weather_hourly(weather: pd.DataFrame, first_hour: pd.Timestamp, last_hour: pd.Timestamp) -> pd.DataFrame:
    """One row per origin and UTC hour first_hour..last_hour: the latest observation at or before that hour.

    Observations are hourly but have gaps (up to 6 h in 2013): a gap is bridged for at most
    WEATHER_MAX_AGE, longer ones give nulls. A dense hourly series lets the feature view keep a
    one-hour ttl, so the point-in-time join matches one row per flight instead of six.
    """
    obs = weather[["origin", "time_hour", *WEATHER_FEATURES]].rename(columns={"time_hour": TS})
    obs = obs.assign(**{TS: utc_us(obs[TS])})
    # The source has a few repeated hours around the DST change; keep one row per origin and hour.
    obs = obs.drop_duplicates(["origin", TS], keep="last").sort_values(TS, kind="stable")
    hours = pd.date_range(first_hour, last_hour, freq="h", tz="UTC").astype("datetime64[us, UTC]")
    origins = sorted(obs["origin"].astype(str).unique())
    grid = pd.DataFrame({"origin": np.repeat(origins, len(hours)), TS: np.tile(hours, len(origins))})
    grid[TS] = utc_us(grid[TS])
    out = pd.merge_asof(grid.sort_values(TS, kind="stable"), obs.astype({"origin": str}), on=TS, by="origin",
                        direction="backward", tolerance=WEATHER_MAX_AGE)
    return _finish(out, "origin", WEATHER_FEATURES)


def plane_attributes(planes: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({
        "tailnum": planes["tailnum"].astype(str),
        TS: STATIC_SINCE,
        "plane_year": planes["year"].astype("float64"),
        "plane_seats": planes["seats"].astype("float64"),
    }).drop_duplicates("tailnum", keep="last")
    return _finish(out, "tailnum", PLANE_FEATURES)


def _finish(df: pd.DataFrame, key: str, features: list[str]) -> pd.DataFrame:
    """Fixed column order and dtypes, sorted by key and time (what Feast and the as-of joins read)."""
    out = df[[key, TS, *features]].copy()
    out[key] = out[key].astype(str)
    out[TS] = utc_us(out[TS])
    for col in features:
        out[col] = out[col].astype("float64")
    return out.sort_values([key, TS], kind="stable").reset_index(drop=True)


def bucket_by_date(table: pd.DataFrame, ttl: pd.Timedelta, column: str = "as_of_date") -> pd.DataFrame:
    """One copy of each row per UTC date in [ts, ts + ttl]: the dates on which a prediction may read it.

    The date is an extra join key (see feature_repo/definitions.py AS_OF_DATE); a prediction at time
    t looks only at rows stored under t's date, which hold every row with ts <= t <= ts + ttl.
    """
    first = table[TS].dt.tz_convert("UTC").dt.tz_localize(None).dt.floor("D")
    span = ((table[TS].dt.tz_convert("UTC").dt.tz_localize(None) + ttl).dt.floor("D") - first).dt.days.to_numpy()
    reps = span + 1
    out = table.loc[table.index.repeat(reps)].reset_index(drop=True)
    offset = np.arange(len(out)) - np.repeat(np.cumsum(reps) - reps, reps)
    dates = first.to_numpy().astype("datetime64[D]").repeat(reps) + offset.astype("timedelta64[D]")
    out.insert(1, column, pd.DatetimeIndex(dates).strftime("%Y-%m-%d"))
    return out


def day_stamps(first: date, last: date) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The stamps of the daily stats for days first..last (inclusive)."""
    s = end_of_local_day(pd.Series([pd.Timestamp(first), pd.Timestamp(last)]))
    return s.iloc[0], s.iloc[1]


def previous_day(day: date, n: int = 1) -> date:
    return day - timedelta(days=n)
