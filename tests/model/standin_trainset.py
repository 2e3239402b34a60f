"""A stand-in training set with the columns of components.signature, built from real nycflights13 rows.

Used only until the Feast features stage (components.features) lands; the point-in-time rules are
approximated (daily stats from earlier days, the latest weather hour at or before the prediction time).
"""

from __future__ import annotations

import pandas as pd

from components.ingest import _canonical_types, _derive
from components.signature import KEYS, LABEL, NUMERIC
from components.sources import nycflights13


def _daily_rates(flights: pd.DataFrame, key: str, windows: dict[str, tuple[str, int]]) -> pd.DataFrame:
    daily = flights.groupby([key, "day"]).agg(
        late=("late", "mean"), cancel=("cancelled", "mean"), dep_delay=("dep_delay", "mean"),
        arr_delay=("arr_delay", "mean"), n=("late", "size")).reset_index().sort_values([key, "day"])
    out = daily[[key, "day"]].copy()
    for name, (col, days) in windows.items():
        rolled = daily.groupby(key)[col].transform(lambda s, d=days: s.rolling(d, min_periods=1).mean().shift(1))
        out[name] = rolled.to_numpy() * (days if col == "n" else 1)
    return out


def build(start: str, end: str) -> pd.DataFrame:
    flights = _derive("flights", _canonical_types("flights", nycflights13.load("flights")))
    weather = _canonical_types("weather", nycflights13.load("weather"))
    planes = nycflights13.load("planes")
    flights["day"] = pd.to_datetime(flights[["year", "month", "day"]])
    flights["late"] = ((flights["arr_delay"] >= 15) | flights["arr_delay"].isna()).astype("int8")
    flights["cancelled"] = flights["dep_time"].isna().astype("int8")
    flights["route"] = flights["origin"] + "-" + flights["dest"]
    carrier = _daily_rates(flights, "carrier", {
        "carrier_late_rate_7d": ("late", 7), "carrier_late_rate_28d": ("late", 28),
        "carrier_mean_dep_delay_7d": ("dep_delay", 7), "carrier_cancel_rate_7d": ("cancel", 7)})
    route = _daily_rates(flights, "route", {
        "route_late_rate_28d": ("late", 28), "route_mean_arr_delay_28d": ("arr_delay", 28),
        "route_flights_28d": ("n", 28)})
    window = flights[(flights["day"] >= pd.Timestamp(start)) & (flights["day"] <= pd.Timestamp(end))].copy()
    window = window[window["sched_dep_utc"].notna()]
    window["event_timestamp"] = (window["sched_dep_utc"] - pd.Timedelta(hours=2)).astype("datetime64[us, UTC]")
    window["sched_hour"] = window["hour"]
    window["day_of_week"] = window["day"].dt.dayofweek
    window = window.merge(carrier, on=["carrier", "day"], how="left").merge(route, on=["route", "day"], how="left")
    plane = planes.rename(columns={"year": "plane_year", "seats": "plane_seats"})[["tailnum", "plane_year", "plane_seats"]]
    window = window.merge(plane, on="tailnum", how="left")
    window = window.sort_values("event_timestamp")
    w = weather.sort_values("time_hour")[["origin", "time_hour", "temp", "dewp", "humid", "wind_speed",
                                           "wind_gust", "precip", "pressure", "visib"]]
    window = pd.merge_asof(window, w, left_on="event_timestamp", right_on="time_hour", by="origin")
    window[LABEL] = window["late"]
    cols = KEYS + ["carrier", "origin", "dest", "sched_hour", "day_of_week"] + NUMERIC + [LABEL]
    out = window[cols].copy()
    out[NUMERIC] = out[NUMERIC].astype("float64")
    return out.sort_values(["sched_dep_utc", "flight_id"]).reset_index(drop=True)
