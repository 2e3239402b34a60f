"""predict-batch on a real day's flights and features: through a real Triton with a shadow challenger, and the
--in-process recovery path (no Triton). What the partition holds and what the run's summary counts."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from components.contracts import signature
from components.contracts.results import PredictBatchResult
from components.contracts.stages import DeployParams, PredictBatchParams
from components.model.card import register_unevaluated
from components.model.registry import Registry
from components.ops.cli import main as cli_main
from tests.conftest import free_port, local_triton
from tests.serving.conftest import DAY, copy_home
from tests.serving.fixture_models import in_process, scripted_bytes

# Versions registered by hand carry a model card saying so: deploy refuses a version without one.
HAND_MADE = "a hand-made model of a serving test (tests/serving), not evaluated"

MODEL = "flight_delay"
pytestmark = pytest.mark.slow  # the shared day's ingest, validate and features build


@pytest.fixture(scope="module")
def scored(real_days, tmp_path_factory):
    """v1 serves, v2 is its shadow challenger; the day is scored through Triton once."""
    from components.core.store import open_store
    from components.features.feast_repo import apply
    from components.serving.batch_predict import predict_batch, read_predictions
    from components.serving.deploy import deploy

    home = copy_home(real_days, tmp_path_factory.mktemp("fd-batch"))
    with local_triton(home) as env:
        store = open_store()
        apply(store=store)  # Feast's registry for this home (copy_home leaves it out)
        registry = Registry(store, MODEL)
        data = {register_unevaluated(registry, {"model.pt": scripted_bytes(s)}, {"blessed": True}, HAND_MADE):
                scripted_bytes(s) for s in (71, 72)}
        registry.promote(1)
        deploy(DeployParams(online=False))
        deploy(DeployParams(version="2", mode="shadow", online=False))
        t0 = pd.Timestamp.now(tz="UTC")
        result = predict_batch(PredictBatchParams(date=DAY), store)
        t1 = pd.Timestamp.now(tz="UTC")
        yield {**env, "store": store, "data": data, "result": result, "window": (t0, t1),
               "partition": read_predictions(DAY, store)}


def test_a_shadow_run_publishes_both_versions_outputs(scored):
    from components.features import feast_repo, retrieval
    part, result = scored["partition"], scored["result"]
    assert set(result) == set(PredictBatchResult.__annotations__)  # the declared result, no more, no less
    frame = retrieval.scoring_frame(DAY, store=scored["store"])
    assert len(part) == len(frame) == result["rows"] > 300
    assert list(part["flight_id"]) == list(frame["flight_id"])
    numeric, categorical = signature.to_tensors(frame)
    np.testing.assert_allclose(part["probability"], in_process(scored["data"][1], numeric, categorical), atol=1e-6)
    assert (part["model_version"] == 1).all() and result["model_versions"] == [1]  # shadow: never served
    np.testing.assert_allclose(part["challenger_probability"], in_process(scored["data"][2], numeric, categorical),
                               atol=1e-6)
    assert part["challenger_probability"].dtype == np.float32 and result["challenger_scored"] is True
    assert (part["feature_service"] == feast_repo.feature_service_name()).all()
    assert (part["scored_by"] == "triton").all()
    assert str(part["scored_at"].dtype) == "datetime64[us, UTC]" and part["scored_at"].nunique() == 1
    t0, t1 = scored["window"]
    assert t0 <= part["scored_at"].iloc[0] <= t1


def test_the_summary_counts_flights_with_missing_features(scored):
    """A flight counts once when any model feature has no value as the model sees it (NaN/inf numeric, no
    categorical value); missing_by_feature counts each feature's missing values."""
    from components.features import retrieval
    frame = retrieval.scoring_frame(DAY, store=scored["store"])
    numeric, categorical = signature.to_tensors(frame)
    # What the model treats as missing, from the tensors it is fed: non-finite numeric values; categorical
    # code 0 for a string column (no value), -1 for a number column (sched_hour 0 is midnight, not missing).
    no_value = np.array([0 if c in signature.STRING_CATEGORICAL else -1 for c in signature.CATEGORICAL])
    missing = np.concatenate([categorical == no_value, ~np.isfinite(numeric)], axis=1)
    names = signature.CATEGORICAL + signature.NUMERIC
    result = scored["result"]
    assert result["flights_with_missing_features"] == int(missing.any(axis=1).sum())
    assert result["missing_by_feature"] == {n: int(c) for n, c in zip(names, missing.sum(axis=0), strict=True) if c}
    assert result["missing_by_feature"]["plane_year"] > 0  # e.g. planes not in the planes table
    # Once per flight, not once per missing value.
    assert 0 < result["flights_with_missing_features"] <= len(frame) < sum(result["missing_by_feature"].values())


def test_in_process_scoring_needs_no_triton_and_replaces_the_partition(scored, monkeypatch, capsys):
    from components.serving.batch_predict import read_predictions

    monkeypatch.setenv("FLIGHTDECK_TRITON_URL", f"127.0.0.1:{free_port()}")  # nothing listens there
    assert cli_main(["predict", "batch", "--date", DAY, "--in-process"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["scored_by"] == "in-process" and out["model_versions"] == [1] and out["challenger_scored"] is False
    part = read_predictions(DAY, scored["store"])
    assert len(part) == len(scored["partition"])  # the rerun replaced the partition, no duplicates
    assert (part["scored_by"] == "in-process").all() and (part["model_version"] == 1).all()
    assert "challenger_probability" not in part.columns
    np.testing.assert_array_equal(part["flight_id"], scored["partition"]["flight_id"])
    np.testing.assert_allclose(part["probability"], scored["partition"]["probability"], atol=1e-6)
    assert out["flights_with_missing_features"] == scored["result"]["flights_with_missing_features"]


def test_missing_features_are_what_the_model_treats_as_missing():
    from components.serving.batch_predict import missing_features
    from tests.serving.conftest import flights_frame

    frame = flights_frame(6, seed=1)
    frame["temp"] = [np.nan, np.inf, -np.inf, 1.0, 2.0, 3.0]  # +-inf is missing to the model (components.model.network)
    frame["carrier"] = [None, "UA", "UA", "UA", "UA", "UA"]
    frame["sched_hour"] = [5.0, 0.0, 6.0, np.nan, 7.0, 8.0]  # hour 0 is midnight, a value
    got = missing_features(frame)
    assert list(got.columns) == signature.CATEGORICAL + signature.NUMERIC
    assert got["temp"].tolist() == [True, True, True, False, False, False]
    assert got["carrier"].tolist() == [True] + [False] * 5
    assert got["sched_hour"].tolist() == [False, False, False, True, False, False]
    assert got.any(axis=1).tolist() == [True, True, True, True, False, False]
