"""Kubernetes runtime: the same DAG files, FLIGHTDECK_RUNTIME=kubernetes, give one
KubernetesPodOperator per stage; every pod spec is checked against the Kubernetes schemas
(kubernetes-validate, offline, strict), against Pod Security Standards "restricted" (the
flightdeck namespace enforces it), and for image, args, resources, GPU placement (train only), service
account, settings (the flightdeck-settings ConfigMap) and the secrets (the Triton admin key for deploy,
the Redis online store's password for materialize: Secrets, by reference)."""

from __future__ import annotations

import copy
import json

import pytest

from components.core import cluster
from components.core.settings import Settings
from tests.airflow.conftest import DAGS
from tests.infra.test_k8s import pss_restricted_violations

K8S_VERSION = "1.30.0"
# The pod is only rendered, never sent: a kubeconfig naming a cluster nobody contacts lets the
# KubernetesHook answer "not in cluster" and the xcom sidecar image without an API server.
KUBECONFIG = {
    "apiVersion": "v1", "kind": "Config", "current-context": "offline",
    "clusters": [{"name": "offline", "cluster": {"server": "https://127.0.0.1:6443"}}],
    "contexts": [{"name": "offline", "context": {"cluster": "offline", "user": "nobody"}}],
    "users": [{"name": "nobody", "user": {}}],
}


@pytest.fixture(scope="module")
def k8s_dagbag():
    mp = pytest.MonkeyPatch()
    mp.setenv("FLIGHTDECK_RUNTIME", "kubernetes")
    mp.setenv("FLIGHTDECK_PROFILE", "aws")
    mp.setenv("FLIGHTDECK_S3_BUCKET", "flightdeck-artifacts")
    mp.setenv("FLIGHTDECK_IMAGE_REGISTRY", "123456789012.dkr.ecr.us-east-1.amazonaws.com")
    mp.setenv("FLIGHTDECK_IMAGE_TAG", "1.2.3")
    mp.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps(
        {"conn_type": "kubernetes", "extra": {"kube_config": json.dumps(KUBECONFIG), "in_cluster": False}}))
    try:
        from airflow.dag_processing.dagbag import DagBag

        yield DagBag(dag_folder=str(DAGS))
    finally:
        mp.undo()


def stage_pods(dagbag):
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    for dag in dagbag.dags.values():
        for task in dag.tasks:
            if isinstance(task, KubernetesPodOperator):
                yield dag, task


def rendered(task) -> dict:
    """The pod the operator would create, as the API server would receive it."""
    from kubernetes.client import ApiClient

    return ApiClient().sanitize_for_serialization(task.build_pod_request_obj())


@pytest.fixture(scope="module")
def pods(k8s_dagbag) -> dict[str, tuple]:
    """{dag_id.task_id: (StageSpec, rendered pod)} of every stage pod of the three DAGs."""
    from components.contracts.stages import STAGES

    return {f"{dag.dag_id}.{task.task_id}": (STAGES[task.labels["flightdeck/stage"]], rendered(task))
            for dag, task in stage_pods(k8s_dagbag)}


def test_every_stage_task_is_a_valid_pod(k8s_dagbag, pods):
    import kubernetes_validate

    from components.contracts.stages import STAGES
    from components.core.images import image_key, load_mapping
    from components.orchestration.runtime import STAGE_RESOURCES, service_account

    assert k8s_dagbag.import_errors == {}
    registered = {spec.name.replace("-", "_") for spec in STAGES.values()}
    stage_task_ids = {t.task_id for d in k8s_dagbag.dags.values() for t in d.tasks if t.task_id in registered}
    assert {where.split(".")[1] for where in pods} == stage_task_ids and len(pods) >= 10
    assert {service_account("train"), service_account("ingest")} == {"flightdeck-train", "flightdeck-data"}
    for where, (spec, pod) in pods.items():
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
        container = pod["spec"]["containers"][0]
        repo = load_mapping()["images"][image_key(spec.name)]["repository"]
        assert container["image"] == f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{repo}:1.2.3", where
        assert container["command"] == ["flightdeck"]
        assert container["args"][: len(spec.command)] == list(spec.command), where
        assert pod["spec"]["serviceAccountName"] == service_account(spec.name) == \
            load_mapping()["service_accounts"][spec.name], where
        # Only deploy, and the rollout stages that deploy, talk to the Kubernetes API (Triton replica
        # discovery); no other pod gets a token.
        assert pod["spec"]["automountServiceAccountToken"] is (
            spec.name in ("deploy", "rollout-start", "rollout-advance", "rollout-abort")), where
        assert pod["metadata"]["namespace"] == "flightdeck"
        res = STAGE_RESOURCES.get(spec.name)
        if res is not None:
            assert container["resources"]["requests"] == {"cpu": res.cpu, "memory": res.memory}, where


def test_settings_come_from_the_config_map_and_no_value_is_secret(pods):
    """The FLIGHTDECK_* settings reach the pods by reference to the ConfigMap Terraform creates
    (its keys are checked in tests/infra/test_terraform.py), not copied from the environment the
    DAG was parsed in: these DAGs were parsed with FLIGHTDECK_S3_BUCKET=flightdeck-artifacts."""
    import dataclasses

    from components.core.settings import Settings

    own_paths = {"FLIGHTDECK_RESULT_PATH", *cluster.SCRATCH_ENV}
    settings = {f"FLIGHTDECK_{f.name.upper()}" for f in dataclasses.fields(Settings)}
    for where, (spec, pod) in pods.items():
        container = pod["spec"]["containers"][0]
        assert container["envFrom"] == [{"configMapRef": {"name": "flightdeck-settings"}}], where
        env = {e["name"]: e for e in container.get("env", [])}
        literal = {k for k, e in env.items() if "value" in e}
        assert literal == own_paths, where
        assert not (literal & settings) - {"FLIGHTDECK_HOME"}, where  # home is the pod's scratch dir
        assert "flightdeck-artifacts" not in json.dumps(container), where
        assert not [k for k in env if k.startswith("AWS_")], where
        assert not [k for k in literal if "PASSWORD" in k or "KEY" in k], where  # secrets only by reference
        by_reference = {k: e["valueFrom"] for k, e in env.items() if "valueFrom" in e}
        expected = {}
        if spec.name in cluster.NEEDS_TRITON_ADMIN_KEY:
            expected["FLIGHTDECK_TRITON_ADMIN_KEY"] = {"secretKeyRef": {"name": "triton-admin-key", "key": "admin-key"}}
        if spec.name in cluster.NEEDS_REDIS_PASSWORD:
            expected["FLIGHTDECK_REDIS_PASSWORD"] = {"secretKeyRef": {"name": "flightdeck-redis-auth", "key": "password"}}
        if spec.name in cluster.NEEDS_TUNING_DB:
            expected["FLIGHTDECK_TUNING_STORAGE_URL"] = {"secretKeyRef": {"name": "flightdeck-tuning-db", "key": "url"}}
        assert by_reference == expected, where


def test_exactly_the_stages_that_open_the_online_store_get_the_redis_password(pods):
    """materialize and push-outcomes write the Redis online store; no other stage pod opens it (features-build's
    partial apply never connects: tests/features/test_redis_auth.py), so no other pod gets the Secret."""
    from components.core.settings import Settings

    assert cluster.REDIS_PASSWORD_ENV == "FLIGHTDECK_REDIS_PASSWORD" and "redis_password" in Settings.__dataclass_fields__
    with_password = set()
    for where, (spec, pod) in pods.items():
        env = {e["name"]: e for e in pod["spec"]["containers"][0].get("env", [])}
        if cluster.REDIS_PASSWORD_ENV in env:
            assert env[cluster.REDIS_PASSWORD_ENV] == {"name": cluster.REDIS_PASSWORD_ENV, "valueFrom": {
                "secretKeyRef": {"name": cluster.REDIS_AUTH_SECRET, "key": cluster.REDIS_AUTH_SECRET_KEY}}}, where
            with_password.add(spec.name)
    assert with_password == {"features-materialize", "features-push-outcomes"}
    assert any(spec.name == "features-build" for spec, _ in pods.values())  # the DAGs still build features


def test_the_deploy_pod_gets_the_key_admin_key_reads(pods):
    from components.serving.triton.server import ADMIN_KEY_ENV

    assert cluster.ADMIN_KEY_ENV == ADMIN_KEY_ENV
    deploys = [pod for spec, pod in pods.values() if spec.name in cluster.NEEDS_TRITON_ADMIN_KEY]
    assert {spec.name for spec, _ in pods.values()} >= {"rollout-start", "rollout-advance"}, \
        "continuous_training lost its rollout_start task, or monitoring its rollout_advance"
    for pod in deploys:
        names = [e["name"] for e in pod["spec"]["containers"][0]["env"]]
        assert ADMIN_KEY_ENV in names


def assert_gpu_placement(where: str, spec, pod: dict) -> None:
    """A gpu=True spec: the accelerator limit, the GPU pool's node selector, the GPU taint's
    toleration (infra/terraform/modules/eks); any other spec: none of the three."""
    container = pod["spec"]["containers"][0]
    if spec.gpu:
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "1", where
        assert pod["spec"]["nodeSelector"] == {"flightdeck.io/node-pool": "gpu"}, where
        assert pod["spec"]["tolerations"] == [
            {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}], where
    else:
        assert "nvidia.com/gpu" not in container["resources"]["limits"], where
        assert not pod["spec"].get("nodeSelector") and not pod["spec"].get("tolerations"), where


def test_only_train_asks_for_a_gpu_node(pods):
    """Placement comes from the StageSpec's gpu flag, the same as the KFP steps (tests/kfp). Deploy
    runs on a CPU node: it talks to Triton over gRPC and checks parity with TorchScript on CPU, in
    the CPU stage image; the GPU node group is sized for Triton and training only (tests/infra)."""
    from components.core.images import image_key

    gpu_stages = {spec.name for spec, _ in pods.values() if spec.gpu}
    assert gpu_stages == {"train"}  # not tune: one small MLP head per trial, on CPU
    assert "rollout-start" in {spec.name for spec, _ in pods.values()}
    for where, (spec, pod) in pods.items():
        assert_gpu_placement(where, spec, pod)
        # A GPU pod runs an image with CUDA torch; a CPU image never asks for a GPU node.
        assert spec.gpu == (image_key(spec.name) == "train"), where


def test_any_gpu_spec_gets_the_gpu_placement(k8s_dagbag, monkeypatch):
    """The capability stays for every stage: a spec with gpu=True (deploy, as a stand-in) gets the
    accelerator limit, node selector and toleration; the same spec without it gets none."""
    import dataclasses

    from components.contracts.stages import STAGES
    from components.orchestration import runtime as airflow_runtime

    for gpu in (True, False):
        spec = dataclasses.replace(STAGES["deploy"], gpu=gpu)
        monkeypatch.setitem(STAGES, "deploy", spec)
        pod = rendered(airflow_runtime.stage_task("deploy", version="1"))
        assert_gpu_placement(f"deploy gpu={gpu}", spec, pod)


def test_every_stage_pod_meets_pod_security_standards_restricted(pods):
    """The checker of the Triton chart (tests/infra/test_k8s.py), on every rendered pod: the
    stage container and the xcom sidecar (each pod has one: results travel as XCom)."""
    for where, (_, pod) in pods.items():
        names = [c["name"] for c in pod["spec"]["containers"]]
        assert names == ["base", "airflow-xcom-sidecar"], where
        assert pss_restricted_violations(pod["spec"]) == [], where
        assert pod["spec"]["securityContext"]["runAsUser"] == cluster.STAGE_UID, where


def test_the_root_filesystem_is_read_only_and_writes_go_to_the_scratch_volume(pods):
    for where, (_, pod) in pods.items():
        container = pod["spec"]["containers"][0]
        (scratch,) = [v for v in pod["spec"]["volumes"] if v["name"] == cluster.SCRATCH_VOLUME]
        assert set(scratch) == {"name", "emptyDir"}, where
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts == {"/tmp": cluster.SCRATCH_VOLUME, "/airflow/xcom": "xcom"}, where
        env = {e["name"]: e.get("value") for e in container["env"]}
        for name in ("FLIGHTDECK_HOME", "HOME", "MPLCONFIGDIR"):  # Feast/DuckDB/torch caches, matplotlib
            assert env[name] == "/tmp" or env[name].startswith("/tmp/"), (where, name)
        assert env["FLIGHTDECK_RESULT_PATH"].startswith("/airflow/xcom/"), where


def test_pss_check_catches_the_provider_sidecar(k8s_dagbag):
    """Without StagePodOperator's fix the provider's xcom sidecar has no security context, and
    the namespace would refuse the pod: the check above would fail."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from kubernetes.client import ApiClient

    _, task = next(stage_pods(k8s_dagbag))
    plain = ApiClient().sanitize_for_serialization(KubernetesPodOperator.build_pod_request_obj(task))
    problems = pss_restricted_violations(plain["spec"])
    assert problems and all(p.startswith("airflow-xcom-sidecar:") for p in problems), problems
    stage_only = copy.deepcopy(plain["spec"])
    stage_only["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = False
    stage_only["containers"] = stage_only["containers"][:1]
    assert pss_restricted_violations(stage_only) == ["base: root filesystem is writable"]


def test_dags_serialize_as_the_dag_processor_stores_them(k8s_dagbag):
    """The scheduler and UI see the serialized DAG: the stage pod tasks (k8s objects in their fields) survive the round trip."""
    from airflow.serialization.serialized_objects import DagSerialization

    for dag_id, dag in k8s_dagbag.dags.items():
        back = DagSerialization.from_dict(json.loads(json.dumps(DagSerialization.to_dict(dag))))
        assert {t.task_id for t in back.tasks} == set(dag.task_dict), dag_id
        assert "StagePodOperator" in {t.task_type for t in back.tasks}, dag_id


def test_rendered_args_are_the_stage_cli(k8s_dagbag):
    """The templated arguments render to exactly what `flightdeck <stage>` takes."""
    import jinja2

    from components.ops.cli import build_parser

    dag = k8s_dagbag.dags["continuous_training"]
    window = {"start": "2013-03-04", "end": "2013-05-26", "day": "2013-05-27"}

    class XComs:  # what the upstream tasks returned in a run
        def xcom_pull(self, task_ids):
            return {"plan_window": window, "train": {"run_id": "r-1"}, "tune": None,  # tune skipped (param off)
                    "evaluate": {"eval_id": "e-1"}}[task_ids]

    context = {"ti": XComs(), "params": {"source": "nycflights13", "max_ece": 0.05, "non_inferiority_margin": 0.005,
                                         "tune_trials": 20}}
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    for task_id in ("ingest", "validate", "features_training_set", "tune", "train", "evaluate", "rollout_start"):
        args = [env.from_string(a).render(**context) for a in dag.task_dict[task_id].arguments]
        parsed = build_parser().parse_args(args)  # the container's CLI accepts them
        if task_id == "train":
            assert (parsed.train_start, parsed.train_end, parsed.tuned) == ("2013-03-04", "2013-05-26", "")
        elif task_id == "tune":
            assert (parsed.train_start, parsed.train_end, parsed.trials) == ("2013-03-04", "2013-05-26", 20)
        elif task_id == "rollout_start":
            # No target in the DAG: the stage deploys to the target that serves now, else its runtime's, and
            # the pods' settings (the flightdeck-settings ConfigMap) say kubernetes: the libtorch Triton on GPUs.
            # (tests/infra/test_terraform.py checks the ConfigMap's FLIGHTDECK_RUNTIME).
            assert parsed.target == ""
            assert Settings(runtime="kubernetes").triton_target == "gpu"
        elif task_id == "evaluate":
            assert (parsed.run_id, parsed.max_ece, parsed.non_inferiority_margin) == ("r-1", 0.05, 0.005)
        else:
            assert (parsed.start, parsed.end) == ("2013-03-04", "2013-05-26")
