"""Each feature view's cost (components.features.costs) and the feature report (`flightdeck feature-report`), on the
real three-week build: the build's seconds per view, the table's bytes, Feast online lookups timed per view."""

from __future__ import annotations

import json

import pytest

from components.contracts import layout
from components.contracts.errors import StageFailed
from components.contracts.stages import MaterializeParams
from components.features.costs import view_costs
from components.features.feast_repo import definitions_module
from components.features.materialize import materialize


def test_build_records_seconds_per_view_and_the_costs_read_them_with_each_table_s_bytes(fenv):
    store, views = fenv.store, definitions_module().VIEWS
    timings = store.read_json(layout.FEATURE_BUILD_TIMINGS)
    assert timings["start"] == "2013-01-01" and timings["end"] == "2013-01-21" and timings["days"] == 21
    assert set(timings["views"]) == set(views)
    costs = view_costs(store)  # no lookups asked: no online store needed
    assert costs["build"] == {"start": "2013-01-01", "end": "2013-01-21", "days": 21}
    for name, cost in costs["views"].items():
        t = timings["views"][name]
        assert t["compute"] >= 0 and t["write"] > 0, name
        assert cost["build_seconds"] == pytest.approx(t["compute"] + t["write"], abs=1e-3), name
        assert cost["storage_bytes"] == len(store.read_bytes(layout.feature_table_key(name))) > 0, name
        assert cost["features"] == views[name].feature_names and cost["online"] is None, name
    # the route stats (a row per route and day) are the largest table here, the plane attributes among the smallest
    size = {n: c["storage_bytes"] for n, c in costs["views"].items()}
    assert max(size, key=size.get) == "route_daily_stats"
    with pytest.raises(ValueError, match="lookups must be >= 0"):
        view_costs(store, lookups=-1)


def test_online_latency_needs_a_materialized_store_then_is_timed_per_view(fenv, capsys):
    from components.ops.cli import main

    store = fenv.store
    with pytest.raises(StageFailed, match="materialize it first"):
        view_costs(store, lookups=3)
    materialize(MaterializeParams(start="2013-01-20", end="2013-01-21"), store)
    costs = view_costs(store, lookups=5, entity_rows=3)
    for name, cost in costs["views"].items():
        online = cost["online"]
        assert online["lookups"] == 5 and online["entity_rows"] == 3 and online["found"] >= 1, name
        assert 0 < online["p50_ms"] <= online["p90_ms"] < 5000, name
    # the CLI: costs alone (no evaluation in this home), as JSON and as the markdown table
    assert main(["feature-report", "--evaluation", "none", "--lookups", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["evaluation"] is None and set(out["views"]) == set(definitions_module().VIEWS)
    assert all(v["importance"] is None and v["online"]["lookups"] == 2 for v in out["views"].values())
    assert "| weather_hourly | 8 |" in out["markdown"]
    assert main(["feature-report", "--lookups", "0"]) != 0  # no evaluation published here: a clear refusal
    assert "no evaluation (latest) is published" in capsys.readouterr().err
