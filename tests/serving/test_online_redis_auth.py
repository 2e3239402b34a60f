"""Triton's online model on a Redis online store that requires AUTH (the aws profile's ElastiCache has an
AUTH token): a real redis-server started with --requirepass, a real Triton server whose python-backend
stub inherits the server's environment. With FLIGHTDECK_REDIS_PASSWORD in Triton's environment (on the
cluster: the flightdeck-redis-auth Secret, infra/k8s/triton) the online model reads the features and
serves; without it, every online prediction fails with the sentence saying the password is missing.
The password never appears in Triton's log or in any command output."""

from __future__ import annotations

import json
import secrets

import pandas as pd
import pytest

from components.contracts import signature
from components.contracts.stages import DeployParams, MaterializeParams
from components.model.card import register_unevaluated
from components.model.registry import Registry
from components.ops.cli import main as cli_main
from components.serving.triton import repository
from components.serving.triton.server import TritonServer
from tests.conftest import free_port, redis_feast_yaml, redis_server
from tests.serving.conftest import DAY, copy_home, flights_of
from tests.serving.fixture_models import in_process, scripted_bytes

# Versions registered by hand carry a model card saying so: deploy refuses a version without one.
HAND_MADE = "a hand-made model of a serving test (tests/serving), not evaluated"

pytestmark = pytest.mark.slow


def _predict_online_args(store) -> tuple[dict, list[str]]:
    flight = flights_of(store, DAY).dropna(subset=["tailnum"]).iloc[100]
    request = {"flight_id": flight["flight_id"], "carrier": flight["carrier"], "origin": flight["origin"],
               "dest": flight["dest"], "tailnum": flight["tailnum"], "distance": float(flight["distance"]),
               "sched_dep_utc": pd.Timestamp(flight["sched_dep_utc"]).isoformat()}
    return request, ["predict", "online"] + [x for k, v in request.items() for x in (f"--{k.replace('_', '-')}", str(v))]


def test_the_online_model_authenticates_with_the_password_of_its_environment(real_days, tmp_path, capsys):
    from components.core.store import open_store
    from components.features import retrieval
    from components.features.materialize import materialize
    from components.serving.deploy import deploy

    home = copy_home(real_days, tmp_path / "home")
    password = "pw-" + secrets.token_urlsafe(24)
    ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
    shown: list[str] = []
    with pytest.MonkeyPatch.context() as mp, redis_server(tmp_path, password) as url:
        for k, v in {"FLIGHTDECK_HOME": str(home), "FLIGHTDECK_PROFILE": "local", "FLIGHTDECK_RUNTIME": "local",
                     "FLIGHTDECK_TRITON_URL": f"127.0.0.1:{ports['grpc']}", "FLIGHTDECK_TRITON_ADMIN_KEY": "k",
                     "FLIGHTDECK_REDIS_URL": url, "FLIGHTDECK_REDIS_PASSWORD": password,
                     "FLIGHTDECK_FEAST_YAML": str(redis_feast_yaml(home / "feature_store_redis.yaml"))}.items():
            mp.setenv(k, v)
        store = open_store()
        materialize(MaterializeParams(end=DAY), store)
        registry = Registry(store, "flight_delay")
        data = scripted_bytes(31)
        registry.promote(register_unevaluated(registry, {"model.pt": data}, {"blessed": True}, HAND_MADE))
        request, args = _predict_online_args(store)
        _, uri = repository.prepare_repository()

        # Triton started with the password in its environment (the stub inherits it).
        with TritonServer(uri, http_port=ports["http"], grpc_port=ports["grpc"], metrics_port=ports["metrics"],
                          admin_key="k") as server:
            deployed = deploy(DeployParams(online=True))
            assert deployed["online_model"] == "ready"
            assert cli_main(args) == 0
            out = capsys.readouterr()
            answer = json.loads(out.out)
            assert answer["model_version"] == deployed["version"] and 0 < answer["probability"] < 1
            # The same features read in this process (the same code path, the same settings) give the
            # same probability: the online model really read the protected store.
            row = retrieval.online_features(request)
            numeric, categorical = signature.to_tensors(pd.DataFrame([row]))
            assert abs(answer["probability"] - in_process(data, numeric, categorical)[0]) <= 1e-6
            shown += [out.out, out.err, json.dumps(deployed, default=str)]
            log = server.log_path

        # The same repository and store, Triton started without the password: a clear refusal.
        mp.delenv("FLIGHTDECK_REDIS_PASSWORD")
        with TritonServer(uri, http_port=ports["http"], grpc_port=ports["grpc"], metrics_port=ports["metrics"],
                          admin_key="k") as server:
            assert deploy(DeployParams(online=True))["online_model"] == "ready"  # deploy never opens Redis
            assert cli_main(args) == 1
            out = capsys.readouterr()
            assert "online prediction failed" in out.err
            assert "requires a password and FLIGHTDECK_REDIS_PASSWORD is not set" in out.err, out.err[-3000:]
            shown += [out.out, out.err, server.log_path.read_text(errors="replace")]
    shown.append(log.read_text(errors="replace"))
    assert not [s for s in shown if password in s]
