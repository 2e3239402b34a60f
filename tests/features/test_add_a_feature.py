"""Adding a feature view end to end, the way docs/ADD_A_FEATURE.md says: one entry in each of the places a
developer edits (the catalogue feature_repo/definitions.py VIEWS, the builder registry
components.features.build.BUILDERS, the model contract components/contracts/signature.py NUMERIC), and
nothing else. The rest must follow by itself: `feast apply`, the build from validated partitions, the
point-in-time join of the training set, the signature, the online store and the model's input tensor.

The view added is a real one of this data: how many flights the departure airport has scheduled on the
local day of the prediction (the schedule is known in advance), stamped at the start of that day. It is
added in the test process (the same dicts and list the files define), on a private copy of the
features fixture's home; the file's edits are undone afterwards.
"""

from __future__ import annotations

import time
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
import torch

from components.contracts import layout, schema, signature
from components.contracts.errors import StageFailed
from components.contracts.stages import FeaturesBuildParams, MaterializeParams, TrainingSetParams, TrainParams
from components.features import build as build_stage
from components.features import tables as ft
from components.features.feast_repo import definitions_module, feature_service_name, feature_store
from components.features.materialize import materialize
from components.features.retrieval import online_features
from components.features.training_set import training_set
from components.features.validated import read_days
from components.model.network import load_scripted
from components.model.train import train
from components.serving.triton.online import row_tensors
from components.serving.triton.repository import config_pbtxt

VIEW = "origin_scheduled_today"
FEATURE = "origin_flights_scheduled_today"
BUILD_START, BUILD_END = "2013-01-14", "2013-01-16"  # stamps: the starts of local days 14, 15 and 16
TS_START, TS_END = "2013-01-15", "2013-01-16"


def _view():
    defs = definitions_module()
    return defs.View(
        name=VIEW, entity="origin",
        features=(defs.Feature(FEATURE, "number of flights scheduled from the airport on the local day of the row's "
                                        "stamp (the schedule is known in advance)"),),
        ttl=timedelta(days=1), static=False,
        description="the airport's scheduled flights of the local day, stamped at its start (local midnight, in UTC)",
    )


def _local_day(ts: pd.Series) -> pd.Series:
    return ts.dt.tz_convert(schema.LOCAL_TZ).dt.tz_localize(None).dt.normalize()


def origin_scheduled_today(i: build_stage.BuildInputs):
    """The builder (in the repo it would sit in components/features/tables.py): one row per airport and local
    day first..last, stamped at the day's start; it replaces the stamps of those days."""
    day = _local_day(i.flights["sched_dep_utc"])
    sel = (day >= pd.Timestamp(i.first)) & (day <= pd.Timestamp(i.last))
    counts = i.flights[sel].groupby([i.flights.loc[sel, "origin"].astype(str), day[sel]]).size()
    out = pd.DataFrame({
        "origin": counts.index.get_level_values(0).astype(str),
        ft.TS: ft.end_of_local_day(pd.Series(counts.index.get_level_values(1)) - pd.Timedelta(days=1)),
        FEATURE: counts.to_numpy().astype("float64"),
    }).sort_values(["origin", ft.TS], kind="stable").reset_index(drop=True)
    lo, hi = ft.day_stamps(i.first - timedelta(days=1), i.last - timedelta(days=1))
    return out, lo, hi


@pytest.fixture
def added(monkeypatch):
    """The three edits of the recipe, made in this process: the catalogue entry, the builder, the input."""
    monkeypatch.setitem(definitions_module().VIEWS, VIEW, _view())
    monkeypatch.setitem(build_stage.BUILDERS, VIEW, origin_scheduled_today)
    numeric, daily = list(signature.NUMERIC), list(signature.DAILY)
    signature.NUMERIC.insert(numeric.index(signature.DAY_SO_FAR[0]), FEATURE)  # a daily input: before the day so far
    signature.DAILY.append(FEATURE)  # signature.py derives DAILY from NUMERIC at import
    try:
        yield
    finally:
        signature.NUMERIC[:], signature.DAILY[:] = numeric, daily


def _expected(flights: pd.DataFrame, at: pd.Series, origin: pd.Series) -> np.ndarray:
    """Recomputed from the validated flights alone: the airport's flights scheduled on the local day of `at`."""
    sched = flights.assign(day=_local_day(flights["sched_dep_utc"]), origin=flights["origin"].astype(str))
    counts = sched.groupby(["origin", "day"]).size()
    keys = pd.MultiIndex.from_arrays([origin.astype(str).to_numpy(), _local_day(at).to_numpy()])
    return counts.reindex(keys).to_numpy(dtype="float64")


def test_a_new_feature_view_reaches_feast_the_training_set_the_signature_and_the_online_model(fenv, added):
    store = fenv.store
    t0 = time.perf_counter()

    # Built from the validated partitions, with the other views, and applied in Feast.
    result = build_stage.build(FeaturesBuildParams(start=BUILD_START, end=BUILD_END), store)
    assert VIEW in result["applied_views"] and result["rows_built"][VIEW] > 0
    validated = read_days(store, "flights", schema.day_range(BUILD_START, BUILD_END), required=True)
    table = store.read_parquet(layout.feature_table_key(VIEW))
    assert set(table["as_of_date"]) >= {"2013-01-14", "2013-01-15", "2013-01-16"}  # bucketed like every view
    rows = table.drop(columns="as_of_date").drop_duplicates()
    assert result["rows_built"][VIEW] == 2 * len(rows)  # a one-day ttl: each row under the two dates it reaches
    day_starts = rows[ft.TS] + pd.Timedelta(minutes=1)  # a moment inside the local day the row is stamped for
    assert rows[FEATURE].to_numpy().tolist() == _expected(validated, day_starts, rows["origin"]).tolist()
    fs = feature_store()
    registered = {fv.name: fv for fv in fs.list_feature_views()}
    assert [f.name for f in registered[VIEW].features] == [FEATURE]
    assert VIEW in {p.name for p in fs.get_feature_service(feature_service_name()).feature_view_projections}

    # Joined point in time into the training set: every row equals the recomputation at its prediction time.
    ts = training_set(TrainingSetParams(start=TS_START, end=TS_END), store)
    frame = store.read_parquet(f"training_sets/{TS_START}_{TS_END}.parquet")
    assert list(frame.columns) == signature.KEYS + signature.CATEGORICAL + signature.NUMERIC + [signature.LABEL]
    assert ts["rows"] == len(frame) > 1000 and FEATURE not in ts["missing_rate"]
    flights = read_days(store, "flights", schema.day_range(BUILD_START, TS_END), required=True)
    expected = _expected(flights, frame["event_timestamp"], frame["origin"])
    assert not np.isnan(expected).any()
    np.testing.assert_array_equal(frame[FEATURE].to_numpy(dtype="float64"), expected)
    # The join is not vacuous: the day before (or after) would give other values.
    for shift in (pd.Timedelta(days=-1), pd.Timedelta(days=1)):
        other = _expected(flights, frame["event_timestamp"] + shift, frame["origin"])
        assert (other != expected).any()

    # In the model signature before the day so far; a model trained on the set declares it (signature.json, the
    # lineage's feature service) and Triton's config takes the wider input.
    assert signature.NUMERIC.index(FEATURE) < signature.NUMERIC.index(signature.DAY_SO_FAR[0])
    assert FEATURE in signature.DAILY
    run = train(TrainParams(train_start=TS_START, train_end=TS_END, max_epochs=2, members=1, reference_rows=500),
                store)
    prefix = layout.train_run_prefix(run["run_id"])
    declared = store.read_json(store.published_key(prefix, "signature.json"))["inputs"][0]
    assert declared["features"] == signature.NUMERIC and declared["shape"] == [-1, len(signature.NUMERIC)]
    lineage = store.read_json(store.published_key(prefix, "lineage.json"))
    assert lineage["feature_service"]["views"][VIEW]["features"] == [FEATURE]
    assert f"dims: [ {len(signature.NUMERIC)} ]" in config_pbtxt("delay", "cpu", [1])
    model = load_scripted(store.read_bytes(store.published_key(prefix, "model.pt")), run["model_sha256"], "test")

    # Served: materialized with the other views, read by the online path, at its slot of the model's input.
    materialize(MaterializeParams(start=TS_START, end=TS_START, chunk_days=1), store)
    at = ft.day_stamps(schema.parse_day(TS_START), schema.parse_day(TS_START))[0]  # the start of local day 16
    probes = read_days(store, "flights", schema.day_range(TS_END, TS_END), required=True)
    probes = probes.drop_duplicates("origin").copy()
    probes["sched_dep_utc"] = ft.utc_us(pd.Series([at + pd.Timedelta(hours=2)] * len(probes), index=probes.index))
    served = 0
    for _, flight in probes.iterrows():
        row = online_features(flight.to_dict())
        want = _expected(flights, pd.Series([at]), pd.Series([flight["origin"]]))[0]
        assert row["event_timestamp"] == at and row[FEATURE] == want > 0
        numeric_in, _ = row_tensors(row)
        assert numeric_in.shape == (1, len(signature.NUMERIC))
        slot = signature.NUMERIC.index(FEATURE)
        assert numeric_in[0, slot] == np.float32(want)
        # The model reads that slot: the served value moves the probability.
        categorical_in = torch.from_numpy(row_tensors(row)[1])
        with torch.no_grad():
            p = model(torch.from_numpy(numeric_in), categorical_in)
            numeric_in[0, slot] = want * 4
            assert model(torch.from_numpy(numeric_in), categorical_in).item() != p.item()
        served += 1
    assert served == 3  # EWR, JFK, LGA
    # The whole path on three days of data (reported, not bounded: docs/ADD_A_FEATURE.md "Verify").
    print(f"added {VIEW}: build, training set, train, materialize and online reads in {time.perf_counter() - t0:.1f} s")


def test_a_view_in_the_catalogue_without_a_builder_is_refused_by_name(fenv, monkeypatch):
    """Step 2 cannot be forgotten silently: the build names the view and the registry to add it to."""
    monkeypatch.setitem(definitions_module().VIEWS, VIEW, _view())
    with pytest.raises(StageFailed, match=f"{VIEW} .*BUILDERS"):
        build_stage.build(FeaturesBuildParams(start=BUILD_START, end=BUILD_START), fenv.store)
