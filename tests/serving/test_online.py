"""Online prediction inside Triton: the `<model>_online` python-backend model reads the Feast online
store (SQLite, materialized by the real features stages) and calls the serving version through BLS."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from components import signature
from components.cli import main as cli_main
from components.registry import Registry
from components.stages import DeployParams
from components.triton import repository
from components.triton.server import TritonServer
from tests.conftest import free_port
from tests.serving.fixture_models import in_process, scripted_bytes

START = END = "2013-01-02"  # one day keeps the feature pipeline small
# ingest + validate + features build + materialize of one real day dominate this module's time.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def online(tmp_path_factory):
    from components.deploy import deploy
    from components.features import build, materialize
    from components.ingest import ingest
    from components.stages import FeaturesBuildParams, IngestParams, MaterializeParams, ValidateParams
    from components.store import open_store
    from components.validate import validate

    home = tmp_path_factory.mktemp("fd-online")
    ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {"FLIGHTDECK_HOME": str(home), "FLIGHTDECK_PROFILE": "local", "FLIGHTDECK_RUNTIME": "local",
                     "FLIGHTDECK_TRITON_URL": f"127.0.0.1:{ports['grpc']}", "FLIGHTDECK_TRITON_ADMIN_KEY": "k"}.items():
            mp.setenv(k, v)
        mp.delenv("FLIGHTDECK_FEAST_YAML", raising=False)
        store = open_store()
        ingest(IngestParams(start=START, end=END), store)
        validate(ValidateParams(start=START, end=END), store)
        build(FeaturesBuildParams(start=START, end=END), store)
        materialize(MaterializeParams(end=END), store)
        registry = Registry(store, "flight_delay")
        data = scripted_bytes(31)
        registry.promote(registry.create_version({"model.pt": data}, {"blessed": True}))
        _, uri = repository.prepare_repository()
        with TritonServer(uri, http_port=ports["http"], grpc_port=ports["grpc"], metrics_port=ports["metrics"],
                          admin_key="k") as server:
            result = deploy(DeployParams(online=True))
            yield {"store": store, "server": server, "data": data, "deploy": result}


def flights_of(store, day: str) -> pd.DataFrame:
    keys = [k for k in store.list(f"validated/flights/date={day}/") if k.endswith(".parquet")]
    return pd.concat([store.read_parquet(k) for k in keys], ignore_index=True)


def test_predict_online_reads_the_online_store_and_serves_the_champion(online, capsys):
    from components import features

    assert online["deploy"]["online_model"] == "ready"
    flight = flights_of(online["store"], END).dropna(subset=["tailnum"]).iloc[100]
    request = {"flight_id": flight["flight_id"], "carrier": flight["carrier"], "origin": flight["origin"],
               "dest": flight["dest"], "tailnum": flight["tailnum"], "distance": float(flight["distance"]),
               "sched_dep_utc": pd.Timestamp(flight["sched_dep_utc"]).isoformat()}
    args = ["predict", "online"] + [x for k, v in request.items() for x in (f"--{k.replace('_', '-')}", str(v))]
    assert cli_main(args) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["model_version"] == online["deploy"]["version"] and 0 < answer["probability"] < 1

    # The same features, read in this process from the same online store, give the same probability.
    row = features.online_features(request)
    assert any(np.isfinite(row[c]) for c in signature.NUMERIC if c not in ("distance",))  # features were found
    numeric, categorical = signature.to_tensors(pd.DataFrame([row]))
    expected = in_process(online["data"], numeric, categorical)[0]
    assert abs(answer["probability"] - expected) <= 1e-6


def test_online_errors_are_reported_per_request(online):
    from components.triton.client import TritonClient, TritonRequestFailed
    from components.triton.online import predict_one

    with TritonClient(online["server"].endpoints["grpc"]) as client:
        with pytest.raises(TritonRequestFailed, match="online prediction failed"):
            predict_one({"carrier": "UA"}, client, "flight_delay")  # no schedule: refused, server keeps serving
        assert client.model_ready("flight_delay_online", 1)


def test_online_row_tensors_equal_the_batch_encoding(online):
    """The online model builds its tensors without pandas; they must equal signature.to_tensors bit for bit."""
    from components import features
    from components.triton.online import row_tensors

    flights = flights_of(online["store"], END)
    sample = pd.concat([flights[flights["tailnum"].isna()].head(20), flights.dropna(subset=["tailnum"]).head(200)])
    rows = [features.online_features({
        "flight_id": f.flight_id, "carrier": f.carrier, "origin": f.origin, "dest": f.dest,
        "tailnum": f.tailnum if isinstance(f.tailnum, str) else None, "distance": float(f.distance),
        "sched_dep_utc": pd.Timestamp(f.sched_dep_utc).isoformat()}) for f in sample.itertuples()]
    # Missing values of every kind the row can carry.
    rows.append({**rows[0], "carrier": None, "sched_hour": None, "temp": None, "dewp": float("nan")})
    assert sum(np.isnan(r["plane_year"]) for r in rows) >= 20  # unknown planes are in the sample
    for row in rows:
        numeric, categorical = row_tensors(row)
        want_n, want_c = signature.to_tensors(pd.DataFrame([row]))
        assert numeric.dtype == want_n.dtype and categorical.dtype == want_c.dtype
        np.testing.assert_array_equal(numeric, want_n)
        np.testing.assert_array_equal(categorical, want_c)
