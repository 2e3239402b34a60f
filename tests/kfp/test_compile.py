"""The KFP pipelines compile, the committed IR YAML is current, and it carries the cluster settings."""

from __future__ import annotations

import yaml

from components.images import GPU_NODE_SELECTOR, image_for_stage
from pipelines.cli import COMPILED_DIR, compile_all, submit


def _load(path):
    return list(yaml.safe_load_all(path.read_text()))


def test_committed_yaml_is_up_to_date(tmp_path, monkeypatch):
    for var in ("FLIGHTDECK_IMAGE_REGISTRY", "FLIGHTDECK_IMAGE_TAG"):
        monkeypatch.delenv(var, raising=False)
    for fresh in compile_all(tmp_path):
        committed = COMPILED_DIR / fresh.name
        assert committed.exists(), f"{committed} is missing: run `flightdeck kfp compile` and commit it"
        assert _load(fresh) == _load(committed), (
            f"{committed} is out of date with pipelines/: run `flightdeck kfp compile` and commit it")


def test_training_yaml_names_components_images_gpu_and_tolerations():
    spec, platform = _load(COMPILED_DIR / "training.yaml")
    executors = spec["deploymentSpec"]["executors"]
    assert set(executors) == {f"exec-{n}" for n in
                              ("ingest", "validate", "features-build", "training-set", "train", "evaluate", "register", "deploy")}
    assert executors["exec-train"]["container"]["image"] == image_for_stage("train")
    assert executors["exec-ingest"]["container"]["image"] == image_for_stage("ingest")
    assert executors["exec-train"]["container"]["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
    # Bodies call the stage entry functions, never a copy of stage logic.
    assert "run_stage(\"train\"" in " ".join(executors["exec-train"]["container"]["command"])
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for gpu_step in ("exec-train", "exec-deploy"):
        assert k8s[gpu_step]["tolerations"] == [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Equal",
                                                 "value": "true"}]
        assert k8s[gpu_step]["nodeSelector"]["labels"] == GPU_NODE_SELECTOR
    assert k8s["exec-deploy"]["secretAsEnv"][0]["secretName"] == "triton-admin-key"
    assert "tolerations" not in k8s["exec-ingest"]
    # deploy takes the evaluation (its blessing gate) and the registered version.
    dag = spec["root"]["dag"]["tasks"]
    assert set(dag["deploy"]["dependentTasks"]) == {"evaluate", "register"}


def test_side_effect_steps_are_never_cached_and_gate_never_retries():
    for name in ("training", "batch_prediction", "monitoring"):
        spec, _ = _load(COMPILED_DIR / f"{name}.yaml")
        tasks = dict(spec["root"]["dag"]["tasks"])
        for comp in spec["components"].values():
            tasks.update(comp.get("dag", {}).get("tasks", {}))
        for task_name, task in tasks.items():
            if "componentRef" in task and not task_name.startswith("condition"):
                assert task.get("cachingOptions", {}).get("enableCache") in (None, False), task_name
        if "validate" in tasks:
            assert "retryPolicy" not in tasks["validate"]
            assert tasks["ingest"]["retryPolicy"]["maxRetryCount"] == 2


def test_submit_reaches_the_client_call_and_names_the_host():
    """Everything up to the API call runs here; the call itself needs a cluster."""
    import pytest

    from components.errors import StageFailed

    with pytest.raises(StageFailed, match="cannot reach Kubeflow Pipelines at http://127.0.0.1:9"):
        submit("training", "http://127.0.0.1:9", {"start": "2013-01-01"}, "flightdeck", "flightdeck-train", "kubeflow")


def test_deploy_step_serves_only_a_blessed_version(home):
    import json

    from pipelines import components as c

    out = json.loads(c.deploy.python_func(registered_json='{"version": 1}',
                                          evaluation_json='{"blessed": false, "failed": ["ece 0.08 exceeds 0.05"]}',
                                          mode="full", target="cpu"))
    assert out == {"skipped": True, "reason": "not blessed: ece 0.08 exceeds 0.05"}
