"""Production-style deploy on several replicas: two real Triton processes sharing one model repository.

deploy(replica_list=[a, b]) loads on both; when one replica fails (here: it was restarted with another
admin key, so it refuses model control), both end on the previous versions and keep serving them.
"""

from __future__ import annotations

import numpy as np
import pytest

from components.contracts import signature
from components.contracts.errors import StageFailed
from components.contracts.stages import DeployParams
from components.core.store import open_store
from components.model.card import register_unevaluated
from components.model.registry import Registry
from components.serving.triton import repository
from components.serving.triton.client import TritonClient
from components.serving.triton.replicas import Replica
from components.serving.triton.routing import read_state
from components.serving.triton.server import TritonServer
from tests.conftest import free_port, triton_settings
from tests.serving.conftest import flights_frame
from tests.serving.fixture_models import in_process, scripted_bytes

# Versions registered by hand carry a model card saying so: deploy refuses a version without one.
HAND_MADE = "a hand-made model of a serving test (tests/serving), not evaluated"

pytestmark = pytest.mark.slow  # scheduled first (tests/conftest.py): the suite's long poles

MODEL = "flight_delay"
DATA = {1: scripted_bytes(51), 2: scripted_bytes(52), 3: scripted_bytes(53)}


def _server(uri: str, ports: dict, key: str, work, **kw) -> TritonServer:
    return TritonServer(uri, http_port=ports["http"], grpc_port=ports["grpc"], metrics_port=ports["metrics"],
                        admin_key=key, work_dir=work, **kw)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    home = tmp_path_factory.mktemp("fd-replicas")
    with triton_settings(home) as env:
        _, uri = repository.prepare_repository()
        ports_b = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
        servers = {"a": _server(uri, env["ports"], env["key"], home / "triton-a").start()}
        try:
            servers["b"] = _server(uri, ports_b, env["key"], home / "triton-b").start()
            yield {"env": env, "uri": uri, "ports_b": ports_b, "servers": servers, "home": home,
                   "keys": {"a": env["key"], "b": env["key"]}}
        finally:
            for s in servers.values():
                s.stop()


def replicas(fleet) -> list[Replica]:
    return [Replica(name, s.endpoints["grpc"]) for name, s in sorted(fleet["servers"].items())]


def admin(fleet, name: str) -> TritonClient:
    return TritonClient(fleet["servers"][name].endpoints["grpc"], admin_key=fleet["keys"][name])


def assert_serves(fleet, loaded: list[int], serving: int, not_loaded: int | None = None) -> None:
    df = flights_frame(500, seed=9)
    numeric, categorical = signature.to_tensors(df)
    for name in ("a", "b"):
        with admin(fleet, name) as c:
            assert c.loaded_versions(MODEL) == loaded, name
            if not_loaded is not None:
                assert not c.model_ready(MODEL, not_loaded), name
            np.testing.assert_allclose(c.score(MODEL, serving, numeric, categorical), in_process(DATA[serving], numeric,
                                       categorical), atol=1e-6, err_msg=name)


def test_deploy_loads_on_every_replica(fleet):
    from components.serving.deploy import deploy

    registry = Registry(open_store(), MODEL)
    for v in (1, 2):
        assert register_unevaluated(registry, {"model.pt": DATA[v]}, {"blessed": True}, HAND_MADE) == v
    registry.promote(1)
    first = deploy(DeployParams(online=False), replica_list=replicas(fleet))
    assert first["replicas"] == ["a", "b"] and first["loaded_versions"] == [1]
    assert_serves(fleet, [1], 1)
    registry.promote(2)
    second = deploy(DeployParams(online=False), replica_list=replicas(fleet))
    assert (second["serving"], second["previous"], second["loaded_versions"]) == (2, 1, [1, 2])
    assert_serves(fleet, [1, 2], 2)
    state, _ = read_state(open_store(), MODEL)
    assert state.replicas == ["a", "b"] and state.target == "cpu"


def test_one_failing_replica_rolls_back_both_and_the_previous_keeps_serving(fleet):
    from components.serving.deploy import deploy

    # Replica b restarts with another admin key (a rotated secret it alone got): it loads the repository's
    # current model at startup, serves it, and refuses the deploy's model-control calls.
    fleet["servers"]["b"].stop()
    fleet["keys"]["b"] = "another-key"
    fleet["servers"]["b"] = _server(fleet["uri"], fleet["ports_b"], "another-key", fleet["home"] / "triton-b",
                                    load_models=(MODEL,)).start()
    assert_serves(fleet, [1, 2], 2)

    store = open_store()
    registry = Registry(store, MODEL)
    state_before, _ = read_state(store, MODEL)
    deployed_before = registry.deployed("triton-local")
    v = register_unevaluated(registry, {"model.pt": DATA[3]}, {"blessed": True}, HAND_MADE)
    with pytest.raises(StageFailed) as err:
        deploy(DeployParams(version=str(v), online=False), replica_list=replicas(fleet))
    message = str(err.value)
    assert f"while loading version {v} on replica b" in message and "restricted" in message
    assert "version 2 keeps serving (a: serving [1, 2]; b: serving [1, 2])" in message
    # Replica a had loaded and checked version 3: it is unloaded again. Both serve what they served before.
    assert_serves(fleet, [1, 2], 2, not_loaded=v)
    state_after, _ = read_state(store, MODEL)
    assert state_after.to_json() == state_before.to_json()
    assert registry.deployed("triton-local") == deployed_before
    repo_store, _ = repository.repository_location()
    assert repository.policy_versions(repository.read_config(repo_store, MODEL)) == [1, 2]
    assert v not in repository.versions_on_disk(repo_store, MODEL)
