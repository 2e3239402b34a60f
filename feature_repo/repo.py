"""Module-level objects for the `feast` CLI, e.g.

    cd feature_repo && feast -f profiles/local/feature_store.yaml plan

The stages do not go through this file: components.features applies the same objects
programmatically (`flightdeck features build`). Needs the flightdeck package importable and the
FLIGHTDECK_* settings of the profile in the environment.
"""

from components.features import repo_definitions

_defs = repo_definitions()
origin, carrier, route, tailnum = _defs.entities
weather_hourly, carrier_daily_stats, route_daily_stats, plane_attributes = _defs.views
delay_model_v1 = _defs.service
