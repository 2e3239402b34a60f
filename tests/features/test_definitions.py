"""feature_repo/definitions.py read as a catalogue: every entity, view, feature and the feature service
described, the descriptions carried into Feast's registry, and the names the model reads unchanged."""

from __future__ import annotations

from components.contracts import signature
from components.features import tables as ft
from components.features.feast_repo import definitions_module, feature_service_name, feature_store


def _built():
    defs = definitions_module()
    return defs, defs.build_definitions({v: f"/tables/{v}.parquet" for v in [*defs.VIEWS, *defs.PUSHED_VIEWS]})


def test_every_field_of_every_feature_view_has_a_description():
    defs, built = _built()
    catalogue = {**defs.VIEWS, **defs.PUSHED_VIEWS}
    assert [v.name for v in built.views] == list(catalogue)
    for view in built.views:
        assert view.description.strip(), view.name
        assert view.schema, view.name
        for field in view.schema:
            assert field.description.strip(), f"{view.name}.{field.name} has no description"
        assert {f.name: f.description for f in view.schema} == \
            {f.name: f.description for f in catalogue[view.name].features}
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


def test_the_pushed_views_are_what_day_so_far_computes_on_push_sources():
    """The day-so-far views: keys and features as components/features/day_so_far.py writes them, each
    on a PushSource whose batch source is its offline log, all in the feature service."""
    from feast import PushSource

    from components.features import day_so_far as dsf

    defs, built = _built()
    assert {name: (v.entities, v.feature_names, v.pushed, str(v.ttl)) for name, v in defs.PUSHED_VIEWS.items()} == {
        name: (keys, features, True, "1 day, 0:00:00") for name, (keys, features) in dsf.VIEW_KEYS.items()}
    views = {v.name: v for v in built.views}
    for name in defs.PUSHED_VIEWS:
        source = views[name].stream_source
        assert isinstance(source, PushSource) and source.name == defs.push_source_name(name)
        assert views[name].batch_source.path == f"/tables/{name}.parquet"
        assert views[name].entities == [*defs.PUSHED_VIEWS[name].entities, defs.PUSHED_VIEWS[name].bucket]
    assert {v.bucket for v in defs.PUSHED_VIEWS.values()} == {defs.AS_OF_HOUR, defs.AS_OF_DATE}
    assert {p.name for p in built.service.feature_view_projections} == set(defs.VIEWS) | set(defs.PUSHED_VIEWS)
    names = [f for v in [*defs.VIEWS.values(), *defs.PUSHED_VIEWS.values()] for f in v.feature_names]
    assert len(names) == len(set(names))


def test_the_registry_carries_the_descriptions(fenv):
    """The features build of the fixture applied the repo: Feast's registry holds every description."""
    defs = definitions_module()
    fs = feature_store()
    registered = {fv.name: fv for fv in fs.list_feature_views()}
    assert set(registered) == set(defs.VIEWS) | set(defs.PUSHED_VIEWS)
    for name, view in {**defs.VIEWS, **defs.PUSHED_VIEWS}.items():
        assert registered[name].description == view.description
        assert {f.name: f.description for f in registered[name].features} == \
            {f.name: f.description for f in view.features}
    assert {e.name: e.description for e in fs.list_entities()} == defs.ENTITY_DESCRIPTIONS
    assert fs.get_feature_service(feature_service_name()).description == defs.FEATURE_SERVICE_DESCRIPTION
