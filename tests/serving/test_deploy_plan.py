"""deploy's plan, without Triton or a store: the next serving state, the config that loads it, the replica
order, and what a rollback does on each replica for each way its load ended."""

from __future__ import annotations

import pytest

from components.contracts.stages import DeployParams
from components.serving.deploy import (
    FAILED,
    LOADED,
    RELOAD,
    RELOAD_IF_CHANGED,
    TIMED_OUT,
    UNLOAD,
    WAIT_FOR_LOAD,
    DeployFailed,
    plan_deploy,
    rollback_steps,
)
from components.serving.triton import repository
from components.serving.triton.routing import Challenger, ServingState

MODEL = "flight_delay"
REPLICAS = ["triton-0", "triton-1", "triton-2"]


def serving(version: int, previous: int | None = None, challenger: Challenger | None = None) -> ServingState:
    return ServingState(MODEL, "cpu", serving=version, previous=previous, challenger=challenger)


def plan(state, version, on_disk=(), **params):
    return plan_deploy(state, MODEL, version, DeployParams(target="cpu", **params), REPLICAS, list(on_disk))


def test_a_first_deploy_serves_the_version_alone_on_every_replica_in_order():
    p = plan(None, 3)
    assert (p.state.serving, p.state.previous, p.state.challenger) == (3, None, None)
    assert p.state.loaded_versions == [3] and p.kept_versions == ()
    assert p.load_order == tuple(REPLICAS) and p.state.replicas == REPLICAS
    assert p.config == repository.config_pbtxt(MODEL, "cpu", [3])
    assert repository.policy_versions(p.config) == [3]
    assert p.new_files  # nothing on disk: a rollback removes the version's files


def test_a_full_deploy_keeps_the_serving_version_as_previous_and_drops_the_one_before():
    p = plan(serving(2, previous=1), 3, on_disk=[1, 2, 3])
    assert (p.state.serving, p.state.previous) == (3, 2)
    assert p.state.loaded_versions == [2, 3] and p.kept_versions == (2,)
    assert repository.policy_versions(p.config) == [2, 3]
    assert not p.new_files  # the files were there before the deploy: a rollback leaves them


def test_redeploying_the_serving_version_keeps_its_previous():
    p = plan(serving(2, previous=1), 2, on_disk=[1, 2])
    assert (p.state.serving, p.state.previous, p.kept_versions) == (2, 1, (1,))


@pytest.mark.parametrize("mode, fraction", [("shadow", 0.0), ("canary", 0.25)])
def test_a_challenger_is_loaded_beside_the_serving_version(mode, fraction):
    p = plan(serving(2, previous=1), 4, mode=mode, canary_fraction=0.25)
    assert (p.state.serving, p.state.previous) == (2, 1)
    assert p.state.challenger == Challenger(4, mode, fraction)
    assert p.state.loaded_versions == [2, 4] and p.kept_versions == (2,)  # the previous is not loaded meanwhile
    assert repository.policy_versions(p.config) == [2, 4]


def test_a_challenger_needs_a_serving_version_and_another_version():
    with pytest.raises(DeployFailed, match="needs a serving version to compare with"):
        plan(None, 3, mode="shadow")
    with pytest.raises(DeployFailed, match="already serves"):
        plan(serving(2), 2, mode="canary")


def test_the_planned_target_decides_the_config():
    p = plan_deploy(serving(2), MODEL, 3, DeployParams(target="gpu"), REPLICAS, [2])
    assert p.state.target == "gpu" and p.config == repository.config_pbtxt(MODEL, "gpu", [2, 3])
    assert "pytorch_libtorch" in p.config


@pytest.mark.parametrize("outcome, had_config, steps", [
    (None, True, ()),  # never asked to load: left alone
    (None, False, ()),
    (FAILED, True, (RELOAD_IF_CHANGED,)),  # a failed load usually leaves the old versions serving
    (LOADED, True, (RELOAD_IF_CHANGED,)),  # loaded, then failed readiness or parity: the new version is loaded
    (TIMED_OUT, True, (WAIT_FOR_LOAD, RELOAD)),  # the load may still run: wait for it, then reload regardless
    (FAILED, False, (UNLOAD,)),  # nothing was configured before: nothing of the model stays loaded
    (LOADED, False, (UNLOAD,)),
    (TIMED_OUT, False, (WAIT_FOR_LOAD, UNLOAD)),
])
def test_what_a_rollback_does_on_a_replica_for_each_way_its_load_ended(outcome, had_config, steps):
    assert rollback_steps(outcome, had_config) == steps
