"""Online prediction inside Triton: the `<model>_online` python-backend model reads the Feast online store
(materialized by the real features stages) and calls the serving version through BLS, with the serving
state's routing (canary share, shadow records). Every test runs on both online stores: SQLite (local
profile) and Redis (the aws profile's, on a real redis-server)."""

from __future__ import annotations

import contextlib
import json
import re
import time

import numpy as np
import pandas as pd
import pytest

from components.contracts import layout, signature
from components.contracts.results import PredictOnlineResult
from components.contracts.stages import DeployParams
from components.model.card import register_unevaluated
from components.model.registry import Registry
from components.ops.cli import main as cli_main
from components.serving.triton import repository
from components.serving.triton.online import ONLINE_MODEL, online_name
from components.serving.triton.routing import canary_mask, canary_salt, read_state
from components.serving.triton.server import TritonServer
from tests.conftest import free_port, redis_feast_yaml, redis_server
from tests.serving.conftest import DAY, copy_home, flights_of, metric
from tests.serving.fixture_models import in_process, scripted_bytes

# Versions registered by hand carry a model card saying so: deploy refuses a version without one.
HAND_MADE = "a hand-made model of a serving test (tests/serving), not evaluated"

END = DAY
MODEL = "flight_delay"
ONLINE = online_name(MODEL)
# How long the online model keeps a serving state before reading it again (online_model.py).
STATE_TTL_S = float(re.search(r"^STATE_TTL_S = ([\d.]+)", ONLINE_MODEL.read_text(), re.M).group(1))
# ingest + validate + features build of one real day (shared) and a materialization per store dominate.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def online(request, real_days, tmp_path_factory):
    from components.contracts.stages import MaterializeParams, PushOutcomesParams
    from components.core.store import open_store
    from components.features import feast_repo
    from components.features.materialize import materialize
    from components.features.push import push_outcomes
    from components.serving.deploy import deploy

    home = copy_home(real_days, tmp_path_factory.mktemp(f"fd-online-{request.param}"))
    ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
    with pytest.MonkeyPatch.context() as mp, contextlib.ExitStack() as stack:
        for k, v in {"FLIGHTDECK_HOME": str(home), "FLIGHTDECK_PROFILE": "local", "FLIGHTDECK_RUNTIME": "local",
                     "FLIGHTDECK_TRITON_URL": f"127.0.0.1:{ports['grpc']}", "FLIGHTDECK_TRITON_ADMIN_KEY": "k"}.items():
            mp.setenv(k, v)
        mp.delenv("FLIGHTDECK_FEAST_YAML", raising=False)
        if request.param == "redis":  # set before Triton starts: the online model's stub inherits it
            mp.setenv("FLIGHTDECK_REDIS_URL", stack.enter_context(redis_server(home)))
            mp.setenv("FLIGHTDECK_FEAST_YAML", str(redis_feast_yaml(home / "feature_store_redis.yaml")))
        store = open_store()
        materialize(MaterializeParams(end=END), store)
        push_outcomes(PushOutcomesParams(date=END), store)  # the day so far, into the same online store
        assert feast_repo.feature_store().config.online_store.type == request.param
        registry = Registry(store, MODEL)
        data = {}
        for seed in (31, 32):  # the champion, then a challenger for the canary and shadow tests
            v = register_unevaluated(registry, {"model.pt": scripted_bytes(seed)}, {"blessed": True}, HAND_MADE)
            data[v] = scripted_bytes(seed)
        registry.promote(1)
        _, uri = repository.prepare_repository()
        with TritonServer(uri, http_port=ports["http"], grpc_port=ports["grpc"], metrics_port=ports["metrics"],
                          admin_key="k") as server:
            result = deploy(DeployParams(online=True))
            yield {"store": store, "server": server, "data": data, "deploy": result, "kind": request.param}


def requests_of(store, n: int | None = None) -> list[dict]:
    flights = flights_of(store, END)
    flights = flights if n is None else flights.head(n)
    return [{"flight_id": f.flight_id, "carrier": f.carrier, "origin": f.origin, "dest": f.dest,
             "tailnum": f.tailnum if isinstance(f.tailnum, str) else None, "distance": float(f.distance),
             "sched_dep_utc": pd.Timestamp(f.sched_dep_utc).isoformat()} for f in flights.itertuples()]


def expected_outputs(requests: list[dict], data: bytes) -> np.ndarray:
    """The model's outputs on the same features, read in this process from the same online store."""
    from components.features import retrieval
    frame = pd.DataFrame([retrieval.online_features(r) for r in requests])
    numeric, categorical = signature.to_tensors(frame)
    return in_process(data, numeric, categorical)


def test_predict_online_reads_the_online_store_and_serves_the_champion(online, capsys):
    from components.features import retrieval
    assert online["deploy"]["online_model"] == "ready"
    metrics = online["server"].endpoints["metrics"]
    before = metric(metrics, "nv_inference_request_success", ONLINE)
    flight = flights_of(online["store"], END).dropna(subset=["tailnum"]).iloc[100]
    request = {"flight_id": flight["flight_id"], "carrier": flight["carrier"], "origin": flight["origin"],
               "dest": flight["dest"], "tailnum": flight["tailnum"], "distance": float(flight["distance"]),
               "sched_dep_utc": pd.Timestamp(flight["sched_dep_utc"]).isoformat()}
    args = ["predict", "online"] + [x for k, v in request.items() for x in (f"--{k.replace('_', '-')}", str(v))]
    assert cli_main(args) == 0
    answer = json.loads(capsys.readouterr().out)
    assert set(answer) == set(PredictOnlineResult.__annotations__)  # the declared result, no more, no less
    assert answer["model_version"] == online["deploy"]["version"] and 0 < answer["probability"] < 1

    # The same features, read in this process from the same online store, give the same probability.
    row = retrieval.online_features(request)
    assert any(np.isfinite(row[c]) for c in signature.NUMERIC if c not in ("distance",))  # features were found
    # the day so far at the flight's prediction time came from the pushed views (never pushed: missing)
    assert all(np.isfinite(row[c]) for c in ("origin_deps_so_far", "origin_waiting_so_far",
                                             "carrier_origin_deps_so_far", "carrier_origin_waiting_so_far")), row
    numeric, categorical = signature.to_tensors(pd.DataFrame([row]))
    expected = in_process(online["data"][1], numeric, categorical)[0]
    assert abs(answer["probability"] - expected) <= 1e-6
    # Triton counted the request on the online model (and the BLS call on the scoring model).
    assert metric(metrics, "nv_inference_request_success", ONLINE) == before + 1


def _raw_request(client, payload: bytes):
    import tritonclient.grpc as g

    tensor = g.InferInput("flight", [len(payload)], "UINT8")
    tensor.set_data_from_numpy(np.frombuffer(payload, dtype=np.uint8))
    return client._call("online prediction", client.client.infer, ONLINE, [tensor], client_timeout=client.timeout_s)


# What an answer to a client must never carry: exception class names, tracebacks, paths, URLs.
INTERNALS = re.compile(r"Traceback|File \"|KeyError|TypeError|ValueError|Exception|/home|/tmp|\.py\b|redis://|sqlite")


def test_online_errors_name_the_problem_without_internals(online):
    from components.serving.triton.client import TritonClient, TritonRequestFailed
    from components.serving.triton.online import predict_one

    metrics = online["server"].endpoints["metrics"]
    failed = metric(metrics, "nv_inference_request_failure", ONLINE)
    good = requests_of(online["store"], 1)[0]
    bad_inputs = {  # request -> the words the answer must contain
        json.dumps({"carrier": "UA"}).encode(): ["bad input", "origin is missing", "sched_dep_utc is missing"],
        json.dumps({**good, "distance": "far"}).encode(): ["bad input", "distance must be"],
        json.dumps({**good, "sched_dep_utc": "tomorrow"}).encode(): ["bad input", "sched_dep_utc must be an ISO 8601"],
        json.dumps({**good, "carrier": 7}).encode(): ["bad input", "carrier must be a string"],
        json.dumps([good]).encode(): ["bad input", "one flight as a UTF-8 JSON object"],
        b"\xff\xfe{not json": ["bad input", "UTF-8 JSON object"],
    }
    with TritonClient(online["server"].endpoints["grpc"]) as client:
        for payload, words in bad_inputs.items():
            with pytest.raises(TritonRequestFailed) as refused:
                _raw_request(client, payload)
            message = str(refused.value)
            assert all(w in message for w in words), (payload, message)
            assert not INTERNALS.search(message.split("online prediction failed:", 1)[-1]), message
        assert client.model_ready(ONLINE, 1)  # refused per request; the server keeps serving
        assert predict_one(good, client, MODEL)["model_version"] == online["deploy"]["version"]
    assert metric(metrics, "nv_inference_request_failure", ONLINE) == failed + len(bad_inputs)
    if online["kind"] == "redis":  # the online store goes away: the answer says so, and no more
        _feature_lookup_unavailable(online, good)


def _feature_lookup_unavailable(online, good: dict) -> None:
    import os

    import redis

    from components.serving.triton.client import TritonClient, TritonRequestFailed
    from components.serving.triton.online import predict_one

    admin = redis.Redis.from_url(f"redis://{os.environ['FLIGHTDECK_REDIS_URL']}")
    admin.config_set("requirepass", "changed-under-the-server")  # the online model's password is now wrong
    try:
        admin.execute_command("CLIENT", "KILL", "TYPE", "normal")  # (not this one: SKIPME yes)
        with TritonClient(online["server"].endpoints["grpc"]) as client:
            with pytest.raises(TritonRequestFailed) as refused:
                predict_one(good, client, MODEL)
        message = str(refused.value)
        assert "feature lookup unavailable" in message and "retry later" in message, message
        assert not INTERNALS.search(message.split("online prediction failed:", 1)[-1]), message
        assert "changed-under-the-server" not in message and "NOAUTH" not in message
    finally:
        admin.config_set("requirepass", "")
    with TritonClient(online["server"].endpoints["grpc"]) as client:
        assert predict_one(good, client, MODEL)["model_version"] == online["deploy"]["version"]


def test_online_row_tensors_equal_the_batch_encoding(online):
    """The online model builds its tensors without pandas; they must equal signature.to_tensors bit for bit."""
    from components.features import retrieval
    from components.serving.triton.online import row_tensors

    flights = flights_of(online["store"], END)
    sample = pd.concat([flights[flights["tailnum"].isna()].head(20), flights.dropna(subset=["tailnum"]).head(200)])
    rows = [retrieval.online_features({
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


def _predict_all(online, requests: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    from components.serving.triton.client import TritonClient
    from components.serving.triton.online import predict_one

    with TritonClient(online["server"].endpoints["grpc"]) as client:
        answers = [predict_one(r, client, MODEL) for r in requests]
    return (np.array([a["probability"] for a in answers], dtype=np.float32),
            np.array([a["model_version"] for a in answers]))


def test_online_canary_serves_the_challenger_to_its_stable_share_of_flights(online):
    from components.serving.deploy import deploy

    deploy(DeployParams(version="2", mode="canary", canary_fraction=0.3, online=True))
    time.sleep(STATE_TTL_S + 0.5)  # the online model re-reads the serving state
    metrics = online["server"].endpoints["metrics"]
    counts = {v: metric(metrics, "nv_inference_request_success", MODEL, str(v)) for v in (1, 2)}
    online_count = metric(metrics, "nv_inference_request_success", ONLINE)
    requests = requests_of(online["store"], 300)
    probability, version = _predict_all(online, requests)
    again = _predict_all(online, requests[::-1])[1][::-1]  # the same flights, another order: the same versions

    state, _ = read_state(online["store"], MODEL)
    mask = canary_mask(np.array([r["flight_id"] for r in requests]), 0.3, canary_salt(state))
    np.testing.assert_array_equal(version, np.where(mask, 2, 1))
    np.testing.assert_array_equal(again, version)
    assert 0.2 < mask.mean() < 0.4
    champion, challenger = expected_outputs(requests, online["data"][1]), expected_outputs(requests, online["data"][2])
    np.testing.assert_allclose(probability, np.where(mask, challenger, champion), atol=1e-6)
    # Every online request scored both versions through BLS, and Triton counted each.
    assert metric(metrics, "nv_inference_request_success", ONLINE) == online_count + 600
    for v in (1, 2):
        assert metric(metrics, "nv_inference_request_success", MODEL, str(v)) == counts[v] + 600
    online["canary"] = {"requests": requests, "mask": mask}


def test_online_shadow_records_the_challenger_without_serving_it(online):
    from components.serving.deploy import deploy
    from components.serving.triton.client import TritonClient

    deploy(DeployParams(version="2", mode="shadow", online=True))
    time.sleep(STATE_TTL_S + 0.5)
    requests = requests_of(online["store"])[300:450]
    probability, version = _predict_all(online, requests)
    champion, challenger = expected_outputs(requests, online["data"][1]), expected_outputs(requests, online["data"][2])
    assert (version == 1).all()  # shadow never serves the challenger
    np.testing.assert_allclose(probability, champion, atol=1e-6)
    assert np.abs(challenger - champion).max() > 1e-3  # two different models: serving the challenger would show

    # Unloading the online model flushes what it still holds; then every routed request is on record,
    # each with the routing that served it.
    with TritonClient(online["server"].endpoints["grpc"], admin_key="k") as admin:
        admin.unload(ONLINE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(  # until the stub has finished (finalize flushes)
                m["name"] == ONLINE and m.get("state") != "UNAVAILABLE" for m in admin.repository_index()):
            time.sleep(0.2)
        store = online["store"]
        prefix = layout.challenger_records_prefix(MODEL, 1, 2)
        rec = pd.concat([store.read_parquet(k) for k in store.list(prefix + "/") if k.endswith(".parquet")],
                        ignore_index=True)
        admin.load(ONLINE)
    shadow = rec[rec["mode"] == "shadow"].set_index("flight_id").loc[[r["flight_id"] for r in requests]]
    assert len(shadow) == len(requests) and (shadow["served_version"] == 1).all()
    np.testing.assert_allclose(shadow["challenger_probability"], challenger, atol=1e-6)
    np.testing.assert_allclose(shadow["champion_probability"], champion, atol=1e-6)
    canary = rec[rec["mode"] == "canary"]
    assert len(canary) == 2 * len(online["canary"]["requests"])  # both passes of the canary test
    first = canary.drop_duplicates("flight_id").set_index("flight_id").loc[
        [r["flight_id"] for r in online["canary"]["requests"]]]
    np.testing.assert_array_equal(first["served_version"], np.where(online["canary"]["mask"], 2, 1))
