"""feature_repo/definitions.py read as a catalogue: every entity, view, feature and the feature service
described, the descriptions carried into Feast's registry, and the names the model reads unchanged."""

from __future__ import annotations

from components.contracts import signature
from components.features import tables as ft
from components.features.feast_repo import definitions_module, feature_service_name, feature_store


def _built():
    defs = definitions_module()
    return defs, defs.build_definitions({v: f"/tables/{v}.parquet" for v in defs.VIEWS})


def test_every_field_of_every_feature_view_has_a_description():
    defs, built = _built()
    assert [v.name for v in built.views] == list(defs.VIEWS)
    for view in built.views:
        assert view.description.strip(), view.name
        assert view.schema, view.name
        for field in view.schema:
            assert field.description.strip(), f"{view.name}.{field.name} has no description"
        assert {f.name: f.description for f in view.schema} == \
            {f.name: f.description for f in defs.VIEWS[view.name].features}
    assert all(e.description.strip() for e in built.entities)
    assert built.service.description.strip()


def test_the_catalogue_keeps_the_names_the_tables_and_the_model_use():
    """Descriptions were added; names, keys, ttls and the static flag are what tables.py builds and
    signature.py reads."""
    views = definitions_module().VIEWS
    assert {name: (v.entity, v.feature_names, v.static) for name, v in views.items()} == {
        "weather_hourly": ("origin", ft.WEATHER_FEATURES, False),
        "carrier_daily_stats": ("carrier", ft.CARRIER_FEATURES, False),
        "route_daily_stats": ("route", ft.ROUTE_FEATURES, False),
        "plane_attributes": ("tailnum", ft.PLANE_FEATURES, True),
    }
    assert {name: str(v.ttl) for name, v in views.items()} == {
        "weather_hourly": "1:00:00", "carrier_daily_stats": "2 days, 0:00:00",
        "route_daily_stats": "2 days, 0:00:00", "plane_attributes": "None"}
    served = [f for v in views.values() for f in v.feature_names]
    assert set(served) <= set(signature.NUMERIC) and len(served) == len(set(served))


def test_the_registry_carries_the_descriptions(fenv):
    """The features build of the fixture applied the repo: Feast's registry holds every description."""
    defs = definitions_module()
    fs = feature_store()
    registered = {fv.name: fv for fv in fs.list_feature_views()}
    assert set(registered) == set(defs.VIEWS)
    for name, view in defs.VIEWS.items():
        assert registered[name].description == view.description
        assert {f.name: f.description for f in registered[name].features} == \
            {f.name: f.description for f in view.features}
    assert {e.name: e.description for e in fs.list_entities()} == defs.ENTITY_DESCRIPTIONS
    assert fs.get_feature_service(feature_service_name()).description == defs.FEATURE_SERVICE_DESCRIPTION
