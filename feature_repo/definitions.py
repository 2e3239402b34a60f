"""The Feast objects of the delay model, as a catalogue: entities, feature views, the feature service.

One record per object, each with a description that says how its values are computed
(components/features/tables.py computes them; the descriptions reach Feast's registry, where
`feast feature-views describe` and the UI show them). The Feast objects themselves are built by a
function, not at import time, because the sources' locations come from the settings (an absolute
path under FLIGHTDECK_HOME locally, an s3:// URI of the artifact bucket on AWS): a relative
FileSource path would resolve against the process's working directory. `repo.py` calls it with the
current settings for the `feast` CLI; components.features.feast_repo calls it for the stages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, ValueType
from feast.types import Float64

TIMESTAMP = "event_timestamp"
FEATURE_SERVICE = "delay_model_v1"
# Second join key of every time-varying view: the UTC date of the prediction time. Each feature row
# is stored under every date its ttl reaches (components.features.tables.bucket_by_date), so the
# point-in-time join compares a flight only with the rows of its own day instead of a whole year of
# its airport's or carrier's history (DuckDB runs Feast's join as a hash join on the keys with the
# time conditions as a filter: one key per airport made it quadratic). Results are unchanged.
AS_OF_DATE = "as_of_date"
# The finer bucket of the pushed per-airport views, which change hundreds of times a day: the UTC hour
# of the prediction time (components.features.day_so_far.bucket_by_hour; the retrieval adds it from
# the entity rows' event_timestamp).
AS_OF_HOUR = "as_of_hour"


@dataclass(frozen=True)
class Feature:
    """One feature of a view: a float64 column of its table."""

    name: str
    description: str


@dataclass(frozen=True)
class View:
    """One feature view: its table features/<name>.parquet, keyed by `entity` (and AS_OF_DATE unless static)."""

    name: str
    entity: str  # the entity's join key, the first column of the table
    features: tuple[Feature, ...]
    # How old a value may be at prediction time (None: never too old); it also keeps the
    # point-in-time join from matching every older row.
    ttl: timedelta | None
    static: bool  # rows never change with time: stamped at the epoch, always materialized whole
    description: str
    pushed: bool = False  # fed through a Feast PushSource (see PUSHED_VIEWS), not built by the features stage
    bucket: str = AS_OF_DATE  # the time bucket join key of a time-varying view (AS_OF_DATE or AS_OF_HOUR)
    # Further join keys (entities) after `entity`, e.g. the origin of a carrier-at-origin view.
    more_entities: tuple[str, ...] = ()

    @property
    def entities(self) -> list[str]:
        """Every join key of the view but AS_OF_DATE, in the order of its table's columns."""
        return [self.entity, *self.more_entities]

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]


# -- entities: the join keys, all strings --------------------------------------------------------
ENTITY_DESCRIPTIONS = {
    # Departure airport of the flight: the weather view's key.
    "origin": "departure airport (FAA code)",
    # Operating airline: the carrier stats' key.
    "carrier": "airline (two-letter code)",
    # Origin and destination: the route stats' key.
    "route": "origin-destination pair, ORIGIN-DEST",
    # The aircraft: the plane attributes' key (a flight without one gets no plane features).
    "tailnum": "plane tail number",
    # The date bucket of the prediction time, the second key of every time-varying view.
    AS_OF_DATE: "UTC date (YYYY-MM-DD) of the prediction time: a join-key bucket, see AS_OF_DATE",
    AS_OF_HOUR: "UTC hour (YYYY-MM-DDTHH) of the prediction time: the pushed airport views' join-key bucket",
}

# What "the latest report" means for the weather features, and which flights the daily stats count.
_WEATHER = "the latest hourly report at the airport at or before the row's UTC hour, at most 6 h old (else null)"
_KNOWN = ("scheduled on local days D-{w}..D-1 whose outcome was known by the stamp (landed + 60 min; cancelled: "
          "at scheduled departure; diverted: 12 h after departure)")
_LATE = "late: arrival delay >= 15 min, or no arrival (cancelled or diverted)"

# -- feature views ---------------------------------------------------------------------------------
# Weather at the departure airport, one row per airport and UTC hour.
WEATHER_HOURLY = View(
    name="weather_hourly",
    entity="origin",
    features=(
        Feature("temp", f"temperature (F): {_WEATHER}"),
        Feature("dewp", f"dew point (F): {_WEATHER}"),
        Feature("humid", f"relative humidity (%): {_WEATHER}"),
        Feature("wind_speed", f"wind speed (mph): {_WEATHER}"),
        Feature("wind_gust", f"wind gust (mph; missing in most reports): {_WEATHER}"),
        Feature("precip", f"precipitation (inches): {_WEATHER}"),
        Feature("pressure", f"sea level pressure (millibars): {_WEATHER}"),
        Feature("visib", f"visibility (miles): {_WEATHER}"),
    ),
    # A dense hourly series (gaps in the reports bridged when it is built): a prediction reads the
    # row of its hour.
    ttl=timedelta(hours=1),
    static=False,
    description="weather at the departure airport, one row per airport and UTC hour (gaps in the hourly "
                "reports bridged for at most 6 h)",
)

# The airline's recent record, one row per carrier and local day D, stamped at the end of D.
CARRIER_DAILY_STATS = View(
    name="carrier_daily_stats",
    entity="carrier",
    features=(
        Feature("carrier_late_rate_7d", f"share late ({_LATE}) of the carrier's flights {_KNOWN.format(w=7)}; "
                                        "null without any"),
        Feature("carrier_late_rate_28d", f"share late ({_LATE}) of the carrier's flights {_KNOWN.format(w=28)}; "
                                         "null without any"),
        Feature("carrier_mean_dep_delay_7d", "mean departure delay (minutes, negative = early) of the carrier's "
                                             f"flights {_KNOWN.format(w=7)} that departed; null without any"),
        Feature("carrier_cancel_rate_7d", "share cancelled (never departed) of the carrier's flights "
                                          f"{_KNOWN.format(w=7)}; null without any"),
    ),
    # Stamped at each local midnight (23 to 25 h apart around DST changes): a prediction reads the
    # latest. Older than 2 days means the daily build stopped: stale stats are not served.
    # (Whole days: Feast cannot turn a ttl of mixed units, e.g. 26 h, into a SQL interval.)
    ttl=timedelta(days=2),
    static=False,
    description="the airline's delays and cancellations over the 7 and 28 local days before day D, stamped at "
                "the end of D (local midnight, in UTC); a carrier has a row for D iff it had a flight "
                "scheduled on D-28..D-1",
)

# The route's recent record, one row per ORIGIN-DEST and local day D, stamped at the end of D.
ROUTE_DAILY_STATS = View(
    name="route_daily_stats",
    entity="route",
    features=(
        Feature("route_late_rate_28d", f"share late ({_LATE}) of the route's flights {_KNOWN.format(w=28)}; "
                                       "null without any"),
        Feature("route_mean_arr_delay_28d", "mean arrival delay (minutes, negative = early) of the route's "
                                            f"flights {_KNOWN.format(w=28)} that arrived; null without any"),
        Feature("route_flights_28d", f"number of the route's flights {_KNOWN.format(w=28)} (0 when none)"),
    ),
    ttl=timedelta(days=2),  # as the carrier stats
    static=False,
    description="the route's delays over the 28 local days before day D, stamped at the end of D (local "
                "midnight, in UTC); a route has a row for D iff it had a flight scheduled on D-28..D-1",
)

# Facts about the aircraft, from the planes reference table.
PLANE_ATTRIBUTES = View(
    name="plane_attributes",
    entity="tailnum",
    features=(
        Feature("plane_year", "year the plane was manufactured (planes.year; null when unknown)"),
        Feature("plane_seats", "number of seats of the plane (planes.seats)"),
    ),
    ttl=None,
    static=True,
    description="static facts about each plane of the planes reference table, stamped at the Unix epoch",
)

# Every view, by name, in the order of the feature service.
VIEWS: dict[str, View] = {v.name: v for v in (WEATHER_HOURLY, CARRIER_DAILY_STATS, ROUTE_DAILY_STATS,
                                               PLANE_ATTRIBUTES)}

# -- the day so far: pushed as outcomes become known ---------------------------------------------------
# These views are fed by the outcome events of the day (components/features/day_so_far.py computes
# the rows, components/features/push.py pushes them through Feast's push API in event-time order):
# each row is stamped when its values became known, and the offline log of every pushed row
# (features/<view>.parquet, the PushSource's batch source) is joined point in time like any other
# view. Every key is reset at local midnight (a row of zeros), so day D never reads day D-1's values.
# A one-day ttl: the reset row of the prediction's day is always newer than D-1's rows (a safety
# net only; the reset rows are what keeps the days apart).
_SO_FAR = "on the local day of the row's stamp, up to the stamp (reset at local midnight)"
_DEPS = "departures (actual departure time = scheduled + dep_delay)"
_WAITING = ("flights scheduled on that local day at or before the stamp that had not departed by then "
            "(cancelled flights excluded: a cancellation is known at the scheduled departure)")

ORIGIN_DAY_SO_FAR = View(
    name="origin_day_so_far",
    entity="origin",
    features=(
        Feature("origin_deps_so_far", f"number of {_DEPS} from the airport {_SO_FAR}"),
        Feature("origin_dep_delay_so_far", f"mean departure delay (minutes) of those {_DEPS}; null before the "
                                           "first"),
        Feature("origin_late15_share_so_far", "share of those departures that left 15+ min late; null before "
                                              "the first"),
        Feature("origin_waiting_so_far", f"number of the airport's {_WAITING}"),
    ),
    ttl=timedelta(days=1),
    static=False,
    description="the airport's departures of the day so far, pushed as they become known (one row per change)",
    pushed=True,
    bucket=AS_OF_HOUR,
)

CARRIER_ORIGIN_DAY_SO_FAR = View(
    name="carrier_origin_day_so_far",
    entity="carrier",
    more_entities=("origin",),
    features=(
        Feature("carrier_origin_deps_so_far", f"number of the carrier's {_DEPS} from the airport {_SO_FAR}"),
        Feature("carrier_origin_dep_delay_so_far", "mean departure delay (minutes) of those departures; null "
                                                   "before the first"),
        Feature("carrier_origin_late15_share_so_far", "share of those departures that left 15+ min late; null "
                                                      "before the first"),
        Feature("carrier_origin_waiting_so_far", f"number of the carrier's {_WAITING} at the airport"),
    ),
    ttl=timedelta(days=1),
    static=False,
    description="the airline's departures of the day so far at the airport, pushed as they become known",
    pushed=True,
    bucket=AS_OF_HOUR,
)

PLANE_DAY_SO_FAR = View(
    name="plane_day_so_far",
    entity="tailnum",
    more_entities=("origin",),
    features=(
        Feature("plane_deps_so_far", f"number of the aircraft's {_DEPS} from the airport {_SO_FAR}"),
        Feature("plane_prev_dep_delay", "departure delay (minutes) of the aircraft's latest departure from the "
                                        f"airport {_SO_FAR}; null before its first"),
    ),
    ttl=timedelta(days=1),
    static=False,
    description="the aircraft's previous departure from the airport that day, pushed when it departs",
    pushed=True,
)

# The pushed views, by name (not in VIEWS: the features build does not compute them, materialize
# does not load them; the push path writes both stores).
PUSHED_VIEWS: dict[str, View] = {v.name: v for v in (ORIGIN_DAY_SO_FAR, CARRIER_ORIGIN_DAY_SO_FAR, PLANE_DAY_SO_FAR)}


def push_source_name(view: str) -> str:
    return f"{view}_push"


# -- the feature service ------------------------------------------------------------------------------
# What the training set, batch scoring and the online lookup all read: every feature of every view.
FEATURE_SERVICE_DESCRIPTION = "every Feast feature the flight delay model reads (components/contracts/signature.py)"


@dataclass(frozen=True)
class Definitions:
    entities: list[Entity]
    sources: list[FileSource | PushSource]
    views: list[FeatureView]
    service: FeatureService

    def objects(self) -> list:
        return [*self.entities, *self.sources, *self.views, self.service]


def build_definitions(table_uris: dict[str, str], s3_endpoint_override: str | None = None) -> Definitions:
    """The repo's objects, with each view's source at table_uris[view] (absolute path or s3:// URI)."""
    entities = {
        key: Entity(name=key, join_keys=[key], value_type=ValueType.STRING, description=desc)
        for key, desc in ENTITY_DESCRIPTIONS.items()
    }
    sources, views = [], []
    for view in [*VIEWS.values(), *PUSHED_VIEWS.values()]:
        source = FileSource(
            name=f"{view.name}_source",
            path=table_uris[view.name],
            timestamp_field=TIMESTAMP,
            s3_endpoint_override=s3_endpoint_override or None,
        )
        sources.append(source)
        if view.pushed:  # the file is the offline log of every pushed row
            source = PushSource(name=push_source_name(view.name), batch_source=source,
                                description=f"outcome events of the day pushed into {view.name}")
            sources.append(source)
        keys = [entities[k] for k in view.entities]
        views.append(FeatureView(
            name=view.name,
            entities=keys if view.static else [*keys, entities[view.bucket]],
            ttl=view.ttl or timedelta(0),
            schema=[Field(name=f.name, dtype=Float64, description=f.description) for f in view.features],
            source=source,
            online=True,
            description=view.description,
            tags={"static": "true"} if view.static else {},
        ))
    service = FeatureService(name=FEATURE_SERVICE, features=views, description=FEATURE_SERVICE_DESCRIPTION)
    return Definitions(entities=list(entities.values()), sources=sources, views=views, service=service)
