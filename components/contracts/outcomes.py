"""When a flight's outcome became known: the one rule ingest stamps outcome rows with (`known_at`) and
the features' labels and daily stats use (components.features.tables).

- a flight that arrived: at its arrival (scheduled departure + departure delay, clipped at 0, + air
  time) plus LANDING_MARGIN (taxi-in, the feed's lag): the last of its outcome facts;
- a flight that departed and never arrived (diverted): DIVERTED_SETTLED_AFTER its departure;
- a cancellation (no departure): at the scheduled departure. The data has no announcement time; the
  flight is certainly known not to have left once its departure time passed without a departure.

Never before the event it stamps: for a departed flight, known_at >= its actual departure
(scheduled departure + dep_delay; an early departure is stamped later, as if it had left on time).
"""

from __future__ import annotations

import pandas as pd

# How long after wheels-on an outcome counts as known (taxi-in, data feed lag).
LANDING_MARGIN = pd.Timedelta(minutes=60)
# A diverted flight (departed, never arrived at its destination) is settled this long after departure.
DIVERTED_SETTLED_AFTER = pd.Timedelta(hours=12)


def outcome_known_at(flights: pd.DataFrame) -> pd.Series:
    """When each flight's outcome (late or not) was known, from sched_dep_utc, dep_time, dep_delay, air_time."""
    sched = flights["sched_dep_utc"]
    dep_delay = pd.to_timedelta(flights["dep_delay"].astype("float64").fillna(0).clip(lower=0), unit="min")
    air = pd.to_timedelta(flights["air_time"].astype("float64"), unit="min")
    departed = flights["dep_time"].notna()
    landed = sched + dep_delay + air + LANDING_MARGIN
    known = landed.where(air.notna(), sched + dep_delay + DIVERTED_SETTLED_AFTER)
    return known.where(departed, sched)
