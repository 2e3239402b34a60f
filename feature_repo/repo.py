"""Module-level objects for the `feast` CLI, e.g.

    cd feature_repo && FLIGHTDECK_HOME=/abs/path/to/home feast -f profiles/local/feature_store.yaml plan
    cd feature_repo && FLIGHTDECK_HOME=... feast -f profiles/local/feature_store.yaml apply
    cd feature_repo && FLIGHTDECK_HOME=... feast -f profiles/local/feature_store.yaml feature-views list

The stages do not go through this file: components.features.feast_repo applies the same objects
programmatically (`flightdeck features build`), and reads the same feature_store.yaml. Needs the
flightdeck package importable and the profile's settings as environment variables, because Feast
expands the file's ${...} with the environment: FLIGHTDECK_HOME on the local profile (absolute, or
relative to feature_repo/), FLIGHTDECK_PROFILE=aws with FLIGHTDECK_S3_BUCKET, FLIGHTDECK_REDIS_URL
(and FLIGHTDECK_S3_ENDPOINT_URL for an S3-compatible server) on the aws profile. A settings file
(FLIGHTDECK_CONFIG) is not enough here: Feast reads only the environment.
"""

from components.features.feast_repo import feast_cli_environment, repo_definitions

feast_cli_environment()  # refuses an environment the yaml cannot be expanded with; makes the local dirs
_defs = repo_definitions()
# By name, not by position: a definition added to definitions.py fails here loudly instead of shifting.
_entities = {e.name: e for e in _defs.entities}
_views = {v.name: v for v in _defs.views}
origin, carrier, route, tailnum, as_of_date, as_of_hour = (
    _entities[n] for n in ("origin", "carrier", "route", "tailnum", "as_of_date", "as_of_hour"))
weather_hourly, carrier_daily_stats, route_daily_stats, plane_attributes = (
    _views[n] for n in ("weather_hourly", "carrier_daily_stats", "route_daily_stats", "plane_attributes"))
origin_day_so_far, carrier_origin_day_so_far, plane_day_so_far = (
    _views[n] for n in ("origin_day_so_far", "carrier_origin_day_so_far", "plane_day_so_far"))
_push_sources = {s.name: s for s in _defs.sources if type(s).__name__ == "PushSource"}
origin_day_so_far_push, carrier_origin_day_so_far_push, plane_day_so_far_push = (
    _push_sources[n] for n in ("origin_day_so_far_push", "carrier_origin_day_so_far_push", "plane_day_so_far_push"))
delay_model_v1 = _defs.service
if set(_entities) != {"origin", "carrier", "route", "tailnum", "as_of_date", "as_of_hour"} or len(_views) != 7 \
        or len(_push_sources) != 3:
    raise RuntimeError(f"feature_repo/repo.py names {sorted(_entities)} and {sorted(_views)}: update it to match "
                       "definitions.py, or the feast CLI would plan without some objects")
