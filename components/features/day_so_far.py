"""Outcome events, each with the moment it became known, and the "day so far" rows they produce.

Pure computations (pandas in, pandas out), no store or Feast: components.features.push reads the
validated partitions, calls these and pushes the rows through Feast.

Outcome events (`outcome_events`):
- a departure is known at the actual departure time, scheduled departure + dep_delay (early
  departures included: dep_delay < 0); it carries the departure delay, the 15+ min late flag, the
  tail number, the origin and the carrier;
- a cancellation (no dep_time in the data) is known at the scheduled departure: the data has no
  time of the announcement, and the flight is certainly known not to have left once its departure
  time passed without a departure (the same rule as contracts.outcomes.outcome_known_at). An earlier
  announcement would only make the features fresher; a later one is not possible.

The day so far (`day_rows`) is kept per local day D at the origin airports (America/New_York):
every key is reset at local midnight (a row of zeros), and a row is written at every moment its
values change (a departure; a scheduled departure time passing), so the value at any time t of D
is the row with the latest stamp <= t, and nothing from day D-1 is ever read on day D:
- per origin, and per carrier at the origin: departures of D so far (actual departure time in
  [midnight, t]), their mean departure delay, the share of them 15+ min late, and the flights
  scheduled on D at or before t that neither departed by t nor were cancelled (waiting);
- per aircraft (tail number) at the origin: its departures from that airport on D so far, and the
  departure delay of the latest of them (null before its first).
Reset rows are written for every key with a flight scheduled on D-1, D or D+1 (the schedule is
known in advance), so a prediction made on D (for a flight of D, or of D+1 shortly after midnight)
finds its key's row of D.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from components.contracts import schema
from components.features.tables import TS, utc_us

LATE_DEP_MINUTES = 15

ORIGIN_FEATURES = ["origin_deps_so_far", "origin_dep_delay_so_far", "origin_late15_share_so_far",
                   "origin_waiting_so_far"]
CARRIER_ORIGIN_FEATURES = ["carrier_origin_deps_so_far", "carrier_origin_dep_delay_so_far",
                           "carrier_origin_late15_share_so_far", "carrier_origin_waiting_so_far"]
PLANE_FEATURES = ["plane_deps_so_far", "plane_prev_dep_delay"]
# view -> (its join keys besides the date/hour bucket, its features)
VIEW_KEYS = {
    "origin_day_so_far": (["origin"], ORIGIN_FEATURES),
    "carrier_origin_day_so_far": (["carrier", "origin"], CARRIER_ORIGIN_FEATURES),
    "plane_day_so_far": (["tailnum", "origin"], PLANE_FEATURES),
}


def outcome_events(flights: pd.DataFrame) -> pd.DataFrame:
    """One event per flight: its departure (at the actual departure time) or its cancellation (at the
    scheduled departure), in event-time order, with what became known then."""
    sched = utc_us(flights["sched_dep_utc"])
    delay = flights["dep_delay"].astype("float64")
    departed = flights["dep_time"].notna() & delay.notna()
    known = sched + pd.to_timedelta(delay.where(departed, 0.0), unit="min")
    events = pd.DataFrame({
        "flight_id": flights["flight_id"].astype(str).to_numpy(),
        "kind": np.where(departed, "departed", "cancelled"),
        TS: utc_us(known).to_numpy(),
        "sched_dep_utc": sched.to_numpy(),
        "origin": flights["origin"].astype(str).to_numpy(),
        "carrier": flights["carrier"].astype(str).to_numpy(),
        "tailnum": flights["tailnum"].astype(object).where(flights["tailnum"].notna(), None).to_numpy(),
        "dep_delay": delay.where(departed).to_numpy(),
        "late15": (delay >= LATE_DEP_MINUTES).astype("float64").where(departed).to_numpy(),
    })
    events[TS] = utc_us(events[TS])
    events["sched_dep_utc"] = utc_us(events["sched_dep_utc"])
    return events.sort_values([TS, "flight_id"], kind="stable").reset_index(drop=True)


def day_bounds(day: date) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[local midnight of D, local midnight of D+1), in UTC (microseconds)."""
    lo, hi = schema.local_day_bounds_utc(day)
    return pd.Timestamp(lo).tz_convert("UTC").as_unit("us"), pd.Timestamp(hi).tz_convert("UTC").as_unit("us")


def events_of_day(events: pd.DataFrame, day: date) -> pd.DataFrame:
    """The events that became known on local day D (a day's replay), in event-time order."""
    lo, hi = day_bounds(day)
    return events[(events[TS] >= lo) & (events[TS] < hi)].reset_index(drop=True)


def _counters(events: pd.DataFrame, keys: list[str], lo: pd.Timestamp, hi: pd.Timestamp,
              resets: pd.DataFrame) -> pd.DataFrame:
    """Per key, the running counters of day [lo, hi) at every moment they change (and at lo)."""
    departed = events[(events["kind"] == "departed") & (events[TS] >= lo) & (events[TS] < hi)]
    deltas = [departed[keys].assign(**{TS: departed[TS], "deps": 1.0, "delay_sum": departed["dep_delay"],
                                       "late": departed["late15"], "waiting": 0.0})]
    # Waiting: +1 when a flight of D that was not cancelled reaches its scheduled time, -1 when it
    # departs (if it departed before its scheduled time, it never waits).
    ondays = events[(events["sched_dep_utc"] >= lo) & (events["sched_dep_utc"] < hi) & (events["kind"] == "departed")]
    due = ondays[ondays["sched_dep_utc"] < ondays[TS]]
    deltas.append(due[keys].assign(**{TS: due["sched_dep_utc"], "deps": 0.0, "delay_sum": 0.0, "late": 0.0,
                                      "waiting": 1.0}))
    gone = due[due[TS] < hi]
    deltas.append(gone[keys].assign(**{TS: gone[TS], "deps": 0.0, "delay_sum": 0.0, "late": 0.0, "waiting": -1.0}))
    deltas.append(resets[keys].assign(**{TS: lo, "deps": 0.0, "delay_sum": 0.0, "late": 0.0, "waiting": 0.0}))
    frame = pd.concat(deltas, ignore_index=True)
    frame[TS] = utc_us(frame[TS])
    frame = frame.sort_values([*keys, TS], kind="stable").reset_index(drop=True)
    sums = frame.groupby(keys, sort=False)[["deps", "delay_sum", "late", "waiting"]].cumsum()
    frame[["deps", "delay_sum", "late", "waiting"]] = sums
    return frame.drop_duplicates([*keys, TS], keep="last").reset_index(drop=True)


def _reset_keys(flights: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    sub = flights[keys].astype(object)
    return sub[sub.notna().all(axis=1)].astype(str).drop_duplicates().reset_index(drop=True)


def day_rows(flights: pd.DataFrame, day: date) -> dict[str, pd.DataFrame]:
    """Per day-so-far view, its rows for local day D (stamped in [midnight, next midnight)), unbucketed.

    `flights`: the validated flights of D-1, D and D+1 (those present): D-1's late departures happen
    on D, D+1's keys get their reset row too.
    """
    lo, hi = day_bounds(day)
    events = outcome_events(flights)
    out = {}
    for view, prefix in (("origin_day_so_far", "origin"), ("carrier_origin_day_so_far", "carrier_origin")):
        keys, features = VIEW_KEYS[view]
        c = _counters(events, keys, lo, hi, _reset_keys(flights, keys))
        deps = c["deps"]
        c[f"{prefix}_deps_so_far"] = deps
        c[f"{prefix}_dep_delay_so_far"] = (c["delay_sum"] / deps).where(deps > 0)
        c[f"{prefix}_late15_share_so_far"] = (c["late"] / deps).where(deps > 0)
        c[f"{prefix}_waiting_so_far"] = c["waiting"]
        out[view] = _finish(c, keys, features)
    # The aircraft: a row at its reset and at each of its departures from the airport on D.
    keys, features = VIEW_KEYS["plane_day_so_far"]
    dep = events[(events["kind"] == "departed") & (events[TS] >= lo) & (events[TS] < hi) & events["tailnum"].notna()]
    dep = dep.assign(tailnum=dep["tailnum"].astype(str))
    rows = pd.concat([
        _reset_keys(flights, keys).assign(**{TS: lo, "n": 0.0, "plane_prev_dep_delay": np.nan}),
        dep[keys].assign(**{TS: dep[TS], "n": 1.0, "plane_prev_dep_delay": dep["dep_delay"]}),
    ], ignore_index=True)
    rows[TS] = utc_us(rows[TS])
    rows = rows.sort_values([*keys, TS], kind="stable").reset_index(drop=True)
    rows["plane_deps_so_far"] = rows.groupby(keys, sort=False)["n"].cumsum()
    out["plane_day_so_far"] = _finish(rows.drop_duplicates([*keys, TS], keep="last"), keys, features)
    return out


def _finish(df: pd.DataFrame, keys: list[str], features: list[str]) -> pd.DataFrame:
    out = df[[*keys, TS, *features]].copy()
    for k in keys:
        out[k] = out[k].astype(str)
    out[TS] = utc_us(out[TS])
    for col in features:
        out[col] = out[col].astype("float64")
    return out.sort_values([*keys, TS], kind="stable").reset_index(drop=True)


def bucket_by_hour(rows: pd.DataFrame, keys: list[str], lo: pd.Timestamp, until: pd.Timestamp,
                   column: str = "as_of_hour") -> pd.DataFrame:
    """The rows of one local day [lo, ...] under each UTC hour H from lo to `until`'s hour: the rows stamped
    in H, and the latest row stamped before H (kept with its own stamp).

    The hour is a join key (feature_repo/definitions.py AS_OF_HOUR): a prediction at t reads the rows
    of t's hour, which hold the row in force at t. An airport has hundreds of rows a day, so a
    whole-day bucket would make the point-in-time join compare every flight of the day with every
    row of the day; an hour bucket compares it with a few dozen.
    """
    if rows.empty:
        return rows.assign(**{column: pd.Series([], dtype=object)})[[*keys, column, *rows.columns[len(keys):]]]
    hours = pd.date_range(lo, until.floor("h"), freq="h").as_unit("us")
    rows = rows.sort_values([*keys, TS], kind="stable").reset_index(drop=True)
    ts = rows[TS].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    starts = hours.tz_convert(None).to_numpy()
    own = rows.assign(**{column: rows[TS].dt.floor("h")})
    carried = []
    for _, idx in rows.groupby(keys, sort=False).indices.items():
        pos = np.searchsorted(ts[idx], starts, side="left") - 1  # latest row before each hour
        ok = pos >= 0
        if ok.any():
            carried.append(rows.iloc[idx[pos[ok]]].assign(**{column: hours[ok]}))
    out = pd.concat([own, *carried], ignore_index=True)
    out[column] = out[column].dt.strftime("%Y-%m-%dT%H").astype(object)
    out = out.drop_duplicates([*keys, column, TS])
    return out[[*keys, column, *[c for c in rows.columns if c not in keys]]].sort_values(
        [*keys, column, TS], kind="stable").reset_index(drop=True)
