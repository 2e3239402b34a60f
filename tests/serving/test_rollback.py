"""`flightdeck rollback` end to end on a real Triton, and the target a deploy or rollback takes by default."""

from __future__ import annotations

import json

import numpy as np
import pytest

from components.contracts import signature
from components.contracts.stages import DeployParams
from components.core.store import LocalStore, open_store
from components.model.card import register_unevaluated
from components.model.registry import Registry
from components.ops.cli import main as cli_main
from components.serving.triton.routing import ServingState, read_state, write_state
from components.serving.triton.scoring import score_frame
from tests.serving.conftest import flights_frame
from tests.serving.fixture_models import in_process, scripted_bytes

# Versions registered by hand carry a model card saying so: deploy refuses a version without one.
HAND_MADE = "a hand-made model of a serving test (tests/serving), not evaluated"

MODEL = "flight_delay"


@pytest.fixture(scope="module")
def two_champions(triton):
    """v1 then v2 promoted and deployed (through the real stages): v2 serves, v1 is the previous champion."""
    from components.serving.deploy import deploy

    store = open_store()
    registry = Registry(store, MODEL)
    data = {}
    for seed in (61, 62):
        v = register_unevaluated(registry, {"model.pt": scripted_bytes(seed)}, {"blessed": True}, HAND_MADE)
        data[v] = scripted_bytes(seed)
        registry.promote(v)
        deploy(DeployParams(online=False))  # no target named: the local runtime's, cpu
    return {"store": store, "registry": registry, "data": data}


def served(store, data) -> tuple[int, np.ndarray, np.ndarray]:
    state, _ = read_state(store, MODEL)
    df = flights_frame(300, seed=4)
    numeric, categorical = signature.to_tensors(df)
    return state.serving, score_frame(df, record=False), in_process(data[state.serving], numeric, categorical)


def test_rollback_cli_deploys_the_previous_champion_on_the_serving_target(two_champions, capsys):
    store, registry = two_champions["store"], two_champions["registry"]
    state, _ = read_state(store, MODEL)
    assert (state.serving, state.target) == (2, "cpu")
    assert cli_main(["rollback", "--timeout-s", "120"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["from"], out["to"], out["serving"], out["champion"], out["target"]) == (2, 1, 1, 1, "cpu")
    state, _ = read_state(store, MODEL)
    assert (state.serving, state.previous, state.target) == (1, 2, "cpu")
    assert registry.aliases()[0]["champion"] == 1
    assert registry.deployed("triton-local")["version"] == 1
    serving, probs, expected = served(store, two_champions["data"])
    assert serving == 1
    np.testing.assert_allclose(probs, expected, atol=1e-6)


def test_rollback_whose_deploy_fails_says_so_and_the_champion_keeps_serving(two_champions, capsys):
    from components.serving.deploy import deploy

    store, registry, data = two_champions["store"], two_champions["registry"], two_champions["data"]
    # A champion that was promoted but can never load (not TorchScript), superseded by a good one.
    bad = register_unevaluated(registry, {"model.pt": b"PK\x03\x04 not a TorchScript archive"}, {"blessed": True},
                               HAND_MADE)
    registry.promote(bad)
    good = register_unevaluated(registry, {"model.pt": scripted_bytes(63)}, {"blessed": True}, HAND_MADE)
    data[good] = scripted_bytes(63)
    registry.promote(good)
    deploy(DeployParams(online=False))
    aliases_before = registry.aliases()[0]
    state_before, _ = read_state(store, MODEL)

    assert cli_main(["rollback", "--timeout-s", "120"]) == 1
    err = capsys.readouterr().err
    assert "flightdeck rollback: FAILED" in err
    assert f"rollback of {MODEL} from v{good} to v{bad} failed; the registry is unchanged (champion v{good})" in err
    assert f"while loading version {bad}" in err and f"version {good} keeps serving" in err
    aliases = registry.aliases()[0]
    assert (aliases["champion"], aliases["champion_history"]) == (good, aliases_before["champion_history"])
    assert read_state(store, MODEL)[0].to_json() == state_before.to_json()
    serving, probs, expected = served(store, data)
    assert serving == good
    np.testing.assert_allclose(probs, expected, atol=1e-6)


def test_the_default_target_is_the_serving_one_else_the_runtimes(tmp_path, monkeypatch):
    from components.core.settings import load_settings
    from components.serving.deploy import default_target

    store = LocalStore(tmp_path / "store")
    monkeypatch.setenv("FLIGHTDECK_RUNTIME", "local")
    assert default_target(store, load_settings()) == "cpu"  # nothing serves yet: the local CPU Triton
    monkeypatch.setenv("FLIGHTDECK_RUNTIME", "kubernetes")
    assert default_target(store, load_settings()) == "gpu"  # the cluster's GPU Triton
    # Once something serves, its target wins, whatever the runtime: a rollback never switches backends.
    write_state(store, ServingState(MODEL, "gpu", serving=3), None)
    monkeypatch.setenv("FLIGHTDECK_RUNTIME", "local")
    assert default_target(store, load_settings()) == "gpu"
    state, token = read_state(store, MODEL)
    state.target = "cpu"
    write_state(store, state, token)
    monkeypatch.setenv("FLIGHTDECK_RUNTIME", "kubernetes")
    assert default_target(store, load_settings()) == "cpu"
    assert DeployParams().target == ""  # deploy and rollback name no target unless told
