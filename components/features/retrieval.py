"""Model features for flights, through the feature service: point-in-time from the offline store
(training sets, batch scoring) or from the online store (online prediction).

`model_frame` (offline, many flights) and `online_features` (online, one flight) read the same feature
service as of the same prediction time (components.contracts.prediction_time: scheduled departure - lead
time, floored to the scoring interval) and add the same schedule
fields, so training and serving cannot skew.
"""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd

from components.contracts import schema, signature
from components.contracts.prediction_time import prediction_time, prediction_times
from components.core.settings import Settings, load_settings
from components.core.store import ArtifactStore, open_store
from components.features import tables as ft
from components.features.duckdb_httpfs import offline_store_ready
from components.features.feast_repo import feature_service_name, feature_store
from components.features.redis_auth import online_store_access
from components.features.validated import read_days

# What the model reads from the flight row itself (known when the flight is scheduled), not from Feast.
SCHEDULE_FIELDS = ["carrier", "origin", "dest", "sched_hour", "day_of_week", "distance"]


def _default_index(df: pd.DataFrame) -> pd.DataFrame:
    """0..n-1 row labels, without copying a frame that has them already (a copy of a year's frame is
    not free: docs/BENCHMARKS.md, Figures the code relies on)."""
    if isinstance(df.index, pd.RangeIndex) and df.index.start == 0 and df.index.step == 1:
        return df
    return df.reset_index(drop=True)


def _tailnum(flights: pd.DataFrame) -> pd.Series:
    return flights["tailnum"].astype(object).where(flights["tailnum"].notna(), None)


def _utc_dates(ts: pd.Series) -> pd.Series:
    """YYYY-MM-DD of each UTC timestamp (formatting only the distinct days: strftime per row is slow)."""
    days = ts.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[D]")
    uniq, inverse = np.unique(days, return_inverse=True)
    return pd.Series(uniq.astype(str).astype(object)[inverse], index=ts.index)


def entity_rows(flights: pd.DataFrame, lead_time_hours: float, scoring_interval_minutes: int) -> pd.DataFrame:
    """Feast entity rows for flights: the join keys and the prediction time (sched dep - lead time,
    floored to the scoring interval: components.contracts.prediction_time).

    `row` numbers the flights so the joined features can be put back in order without a merge.
    """
    flights = _default_index(flights)
    at = ft.utc_us(prediction_times(flights["sched_dep_utc"], lead_time_hours, scoring_interval_minutes))
    return pd.DataFrame({
        "row": np.arange(len(flights), dtype="int64"),
        "event_timestamp": at,
        "as_of_date": _utc_dates(at),
        "origin": flights["origin"].astype(str),
        "carrier": flights["carrier"].astype(str),
        "route": flights["origin"].astype(str) + "-" + flights["dest"].astype(str),
        "tailnum": _tailnum(flights),
    })


def schedule_fields(flights: pd.DataFrame) -> pd.DataFrame:
    """What the model reads from the flight row itself (known when the flight is scheduled)."""
    flights = _default_index(flights)
    sched = ft.utc_us(flights["sched_dep_utc"])
    local = sched.dt.tz_convert(schema.LOCAL_TZ)
    return pd.DataFrame({
        "flight_id": flights["flight_id"].astype(str),
        "sched_dep_utc": sched,
        "tailnum": _tailnum(flights),
        "month": local.dt.month.astype("int64"),
        "carrier": flights["carrier"].astype(str),
        "origin": flights["origin"].astype(str),
        "dest": flights["dest"].astype(str),
        "sched_hour": local.dt.hour.astype("int64"),
        "day_of_week": local.dt.dayofweek.astype("int64"),
        "distance": flights["distance"].astype("float64"),
    })


_SERVICES: dict[int, object] = {}


def _service(fs):
    """The feature service object, resolved once per FeatureStore (Feast rebuilds it from its proto on
    every call, which an online request would pay for: docs/BENCHMARKS.md, Figures the code relies on)."""
    if id(fs) not in _SERVICES:
        _SERVICES[id(fs)] = fs.get_feature_service(feature_service_name())
    return _SERVICES[id(fs)]


def _utc_hours(ts: pd.Series) -> pd.Series:
    """YYYY-MM-DDTHH of each UTC timestamp: the as_of_hour bucket of the pushed airport views."""
    hours = ts.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[h]")
    uniq, inverse = np.unique(hours, return_inverse=True)
    return pd.Series(np.array([str(u)[:13] for u in uniq], dtype=object)[inverse], index=ts.index)


def historical_features(entities: pd.DataFrame, settings: Settings | None = None) -> pd.DataFrame:
    """Point-in-time features for entity rows through the feature service (offline store).

    The entity rows' event_timestamp (the prediction time) also gives the as_of_hour bucket key of
    the pushed day-so-far views (feature_repo/definitions.py AS_OF_HOUR), added here."""
    if "as_of_hour" not in entities.columns:
        entities = entities.assign(as_of_hour=_utc_hours(entities["event_timestamp"]))
    fs = feature_store(settings)
    offline_store_ready(settings)
    job = fs.get_historical_features(entity_df=entities, features=_service(fs))
    return job.to_arrow().to_pandas()


def model_frame(flights: pd.DataFrame, settings: Settings | None = None, with_label: bool = True) -> pd.DataFrame:
    """KEYS + every model feature (+ label) for flights, as of each one's prediction time (event_timestamp)."""
    settings = settings or load_settings()
    flights = _default_index(flights)
    entities = entity_rows(flights, settings.lead_time_hours, settings.scoring_interval_minutes)
    feats = historical_features(entities, settings)
    # Feast returns the rows in its own order: put them back in flight order by the row number.
    order = np.empty(len(feats), dtype="int64")
    order[feats["row"].to_numpy()] = np.arange(len(feats))
    feats = feats.take(order)
    out = schedule_fields(flights)
    out["event_timestamp"] = entities["event_timestamp"]
    for col in signature.NUMERIC:
        if col not in out.columns:
            out[col] = feats[col].to_numpy(dtype="float64", na_value=np.nan)
    if with_label:
        out[signature.LABEL] = ft.label(flights)
    columns = signature.KEYS + signature.CATEGORICAL + signature.NUMERIC + ([signature.LABEL] if with_label else [])
    return out[columns].sort_values(["sched_dep_utc", "flight_id"], kind="stable").reset_index(drop=True)


def scoring_frame(day: str | date, settings: Settings | None = None, store: ArtifactStore | None = None) -> pd.DataFrame:
    """A day's validated flights with KEYS + every model feature as of the lead time (batch prediction)."""
    settings = settings or load_settings()
    store = store or open_store(settings)
    days = schema.day_range(day, day)
    flights = read_days(store, "flights", days, required=True)
    if flights.empty:
        return pd.DataFrame(columns=signature.KEYS + signature.CATEGORICAL + signature.NUMERIC)
    return model_frame(flights, settings, with_label=False)


_PUSHED_FEATURES: list[str] = []


def _pushed_feature_names() -> list[str]:
    """The features of the pushed day-so-far views (feature_repo/definitions.py PUSHED_VIEWS), read once."""
    if not _PUSHED_FEATURES:
        from components.features.feast_repo import definitions_module

        _PUSHED_FEATURES.extend(f for v in definitions_module().PUSHED_VIEWS.values() for f in v.feature_names)
    return _PUSHED_FEATURES


def _local_midnight_seconds(at: pd.Timestamp) -> int:
    """Epoch seconds of the local (schema.LOCAL_TZ) midnight that starts `at`'s local day."""
    local = at.tz_convert(schema.LOCAL_TZ)
    return int(pd.Timestamp(local.year, local.month, local.day, tz=schema.LOCAL_TZ).timestamp())


def online_features(flight: dict, settings: Settings | None = None) -> dict:
    """Model features for one scheduled flight from the online store (online prediction).

    `flight` needs carrier, origin, dest, tailnum (may be None), distance and sched_dep_utc; the
    values are those of the feature service at the flight's prediction time (the shared rule),
    as far as the online store has been materialized. Same fields and rules as `model_frame`,
    computed for one row without pandas.
    """
    settings = settings or load_settings()
    sched = pd.Timestamp(flight["sched_dep_utc"])
    sched = (sched.tz_localize("UTC") if sched.tzinfo is None else sched.tz_convert("UTC")).as_unit("us")
    at = prediction_time(sched, settings.lead_time_hours, settings.scoring_interval_minutes)
    local = sched.tz_convert(schema.LOCAL_TZ)
    tailnum = flight.get("tailnum")
    tailnum = None if tailnum is None or (isinstance(tailnum, float) and math.isnan(tailnum)) else str(tailnum)
    origin, dest, carrier = str(flight["origin"]), str(flight["dest"]), str(flight["carrier"])
    row = {"origin": origin, "carrier": carrier, "route": f"{origin}-{dest}", "tailnum": tailnum or "",
           "as_of_date": at.strftime("%Y-%m-%d"), "as_of_hour": at.strftime("%Y-%m-%dT%H")}
    fs = feature_store(settings)
    with online_store_access(settings, fs):
        values = fs.get_online_features(features=_service(fs), entity_rows=[row]).to_dict(include_event_timestamps=True)
    # A pushed day-so-far value stamped before the local midnight of the prediction's day is the day before's:
    # the day's reset row has not been pushed yet. The offline join reads that reset row; the online answer
    # says "not known yet" (missing) rather than serve the day before's values (day D never reads D-1's).
    day_start = _local_midnight_seconds(at)
    for name in _pushed_feature_names():
        stamps = values.get(f"{name}__ts")
        if name in values and stamps and stamps[0] < day_start:
            values[name] = [None]
    out = {
        "flight_id": str(flight.get("flight_id", "")), "event_timestamp": at, "sched_dep_utc": sched,
        "tailnum": tailnum, "month": local.month, "carrier": carrier, "origin": origin, "dest": dest,
        "sched_hour": local.hour, "day_of_week": local.dayofweek, "distance": float(flight["distance"]),
    }
    for name in signature.NUMERIC:
        if name in values:
            v = values[name][0]
            out[name] = float("nan") if v is None else float(v)
    return out
