"""The Feast objects of the delay model: entities, sources, feature views, the feature service.

Built by a function, not at import time, because the sources' locations come from the settings
(an absolute path under FLIGHTDECK_HOME locally, an s3:// URI of the artifact bucket on AWS): a
relative FileSource path would resolve against the process's working directory.
`repo.py` calls it with the current settings for the `feast` CLI; components.features.build calls it
for the stages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64

TIMESTAMP = "event_timestamp"
FEATURE_SERVICE = "delay_model_v1"
# Second join key of every time-varying view: the UTC date of the prediction time. Each feature row
# is stored under every date its ttl reaches (components.features.tables.bucket_by_date), so the
# point-in-time join compares a flight only with the rows of its own day instead of a whole year of
# its airport's or carrier's history (DuckDB runs Feast's join as a hash join on the keys with the
# time conditions as a filter: one key per airport made it quadratic). Results are unchanged.
AS_OF_DATE = "as_of_date"

# Feature view -> (entity join key, feature names, ttl). The ttl bounds how old a value may be at
# prediction time; it also keeps the point-in-time join from matching every older row.
VIEWS: dict[str, tuple[str, list[str], timedelta | None]] = {
    "weather_hourly": (
        "origin",
        ["temp", "dewp", "humid", "wind_speed", "wind_gust", "precip", "pressure", "visib"],
        # A dense hourly series (gaps in the reports bridged for up to 6 h when it is built): a
        # prediction reads the row of its hour.
        timedelta(hours=1),
    ),
    "carrier_daily_stats": (
        "carrier",
        ["carrier_late_rate_7d", "carrier_late_rate_28d", "carrier_mean_dep_delay_7d", "carrier_cancel_rate_7d"],
        # Stamped at each local midnight (23 to 25 h apart around DST changes): a prediction reads
        # the latest. Older than 2 days means the daily build stopped: stale stats are not served.
        # (Whole days: Feast cannot turn a ttl of mixed units, e.g. 26 h, into a SQL interval.)
        timedelta(days=2),
    ),
    "route_daily_stats": (
        "route",
        ["route_late_rate_28d", "route_mean_arr_delay_28d", "route_flights_28d"],
        timedelta(days=2),
    ),
    "plane_attributes": (
        "tailnum",
        ["plane_year", "plane_seats"],
        None,  # static facts (build year, seats), stamped at the epoch
    ),
}
# Views whose rows never change with time: always materialized whole (they are small).
STATIC_VIEWS = ("plane_attributes",)

ENTITY_DESCRIPTIONS = {
    "origin": "departure airport (FAA code)",
    "carrier": "airline (two-letter code)",
    "route": "origin-destination pair, ORIGIN-DEST",
    "tailnum": "plane tail number",
    AS_OF_DATE: "UTC date (YYYY-MM-DD) of the prediction time: a join-key bucket, see AS_OF_DATE",
}


@dataclass(frozen=True)
class Definitions:
    entities: list[Entity]
    sources: list[FileSource]
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
    for name, (key, features, ttl) in VIEWS.items():
        source = FileSource(
            name=f"{name}_source",
            path=table_uris[name],
            timestamp_field=TIMESTAMP,
            s3_endpoint_override=s3_endpoint_override or None,
        )
        sources.append(source)
        views.append(FeatureView(
            name=name,
            entities=[entities[key]] if name in STATIC_VIEWS else [entities[key], entities[AS_OF_DATE]],
            ttl=ttl or timedelta(0),
            schema=[Field(name=f, dtype=Float64) for f in features],
            source=source,
            online=True,
            tags={"static": "true"} if name in STATIC_VIEWS else {},
        ))
    service = FeatureService(
        name=FEATURE_SERVICE,
        features=views,
        description="every Feast feature the flight delay model reads (components/contracts/signature.py)",
    )
    return Definitions(entities=list(entities.values()), sources=sources, views=views, service=service)
