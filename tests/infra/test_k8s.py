"""The Triton manifests (infra/k8s/triton, a Helm chart, rendered by the real `helm template` and
checked by `helm lint`): schema-valid for Kubernetes, Pod Security Standards "restricted", checkov
clean, and the serving contract (GPU, probes, ports, network access only from the platform)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.infra.checkov_run import describe, run_checkov, skip_reason
from tests.infra.helm import HelmError, helm_lint, helm_template

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "infra" / "k8s" / "triton"
K8S_VERSION = "1.33.0"  # infra/terraform/modules/eks kubernetes_version
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("triton-rendered")
    for name, text in helm_template(CHART, namespace="flightdeck").items():
        (out / name).write_text(text)
    return out


@pytest.fixture(scope="module")
def resources(rendered) -> dict[str, dict]:
    docs = [d for p in sorted(rendered.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
    return {d["kind"]: d for d in docs}


@pytest.fixture(scope="module")
def checkov_k8s(rendered) -> dict:
    return run_checkov(rendered, "kubernetes")


def test_chart_has_the_serving_objects(resources):
    assert set(resources) == {
        "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy", "ServiceAccount",
        "Role", "RoleBinding",
    }  # fmt: skip


def test_every_manifest_matches_the_kubernetes_schema(resources):
    for kind, resource in resources.items():
        try:
            kubernetes_validate.validate(resource, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{kind} {resource['metadata']['name']}: {exc.message} at {list(exc.path)}")


def test_schema_validation_catches_a_broken_manifest(resources):
    broken = yaml.safe_load(yaml.safe_dump(resources["Deployment"]))
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "eight thousand"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def pss_restricted_violations(pod_spec: dict) -> list[str]:
    """The Pod Security Standards "restricted" profile (v1.33), plus a read-only root filesystem."""
    problems = []
    pod_sc = pod_spec.get("securityContext", {})
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(flag):
            problems.append(f"{flag} is set")
    for volume in pod_spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            problems.append(f"volume {volume['name']} uses {kinds - RESTRICTED_VOLUMES}")
    containers = pod_spec.get("initContainers", []) + pod_spec["containers"]
    for c in containers:
        sc = c.get("securityContext", {})
        name = c["name"]
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
            problems.append(f"{name}: runAsNonRoot is not true")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            problems.append(f"{name}: runAsUser 0")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            problems.append(f"{name}: capabilities do not drop ALL")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities {caps['add']}")
        seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile is {seccomp}")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: root filesystem is writable")
        if any("hostPort" in p for p in c.get("ports", [])):
            problems.append(f"{name}: hostPort")
    return problems


def test_pod_security_standards_restricted(resources):
    assert pss_restricted_violations(resources["Deployment"]["spec"]["template"]["spec"]) == []


def test_pss_check_catches_violations(resources):
    pod = yaml.safe_load(yaml.safe_dump(resources["Deployment"]["spec"]["template"]["spec"]))
    pod["hostNetwork"] = True
    pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    pod["containers"][0]["securityContext"]["capabilities"] = {"add": ["SYS_ADMIN"]}
    pod["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    problems = pss_restricted_violations(pod)
    assert len(problems) == 5, problems


def test_gpu_probes_and_ports(resources):
    pod = resources["Deployment"]["spec"]["template"]["spec"]
    (triton,) = pod["containers"]
    assert (
        triton["resources"]["requests"]["nvidia.com/gpu"]
        == triton["resources"]["limits"]["nvidia.com/gpu"]
        == "1"
    )
    # Tolerates exactly the taint of the GPU node group (modules/eks) and asks for those nodes.
    assert {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    assert pod["nodeSelector"] == {"flightdeck.io/node-pool": "gpu"}
    assert triton["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert triton["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert {p["name"]: p["containerPort"] for p in triton["ports"]} == {
        "http": 8000,
        "grpc": 8001,
        "metrics": 8002,
    }
    assert sorted(p["port"] for p in resources["Service"]["spec"]["ports"]) == [8000, 8001, 8002]
    assert "@sha256:" in triton["image"]
    # The model-control API is restricted to holders of the admin key (components/serving/triton/server.py).
    from components.serving.triton.server import ADMIN_HEADER, ADMIN_KEY_ENV, RESTRICTED_APIS

    restricted = f"{','.join(RESTRICTED_APIS)}:{ADMIN_HEADER}=$({ADMIN_KEY_ENV})"
    assert f"--http-restricted-api={restricted}" in triton["args"]
    assert f"--grpc-restricted-protocol={restricted}" in triton["args"]
    assert [e["name"] for e in triton["env"]] == [ADMIN_KEY_ENV, "FLIGHTDECK_REDIS_PASSWORD"]
    assert all(set(e) == {"name", "valueFrom"} for e in triton["env"])  # secrets by reference only


def test_only_platform_pods_reach_triton(resources):
    policy = resources["NetworkPolicy"]["spec"]
    selector = resources["Deployment"]["spec"]["selector"]["matchLabels"]
    assert policy["podSelector"]["matchLabels"] == selector
    assert "Ingress" in policy["policyTypes"]
    for rule in policy["ingress"]:
        assert rule["from"], "an ingress rule without `from` admits everyone"
        for peer in rule["from"]:
            assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/part-of": "flightdeck"}
            assert "ipBlock" not in peer
    ports = {p["port"] for rule in policy["ingress"] for p in rule["ports"]}
    assert ports == {8000, 8001, 8002}


def assert_replicas_consistent(resources: dict, where: str) -> None:
    """The Deployment starts at the HPA's minimum; the PDB always lets a drain evict one replica
    (never blocks, even with one) and, with two or more, never the last one."""
    deployment = resources["Deployment"]["spec"]
    hpa, pdb = resources["HorizontalPodAutoscaler"]["spec"], resources["PodDisruptionBudget"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "triton"}, where
    assert 1 <= deployment["replicas"] == hpa["minReplicas"] <= hpa["maxReplicas"], where
    assert "minAvailable" not in pdb and pdb["maxUnavailable"] >= 1, where
    if hpa["minReplicas"] >= 2:
        assert pdb["maxUnavailable"] < hpa["minReplicas"], where
    assert pdb["selector"]["matchLabels"] == deployment["selector"]["matchLabels"], where


def test_hpa_and_pdb_target_the_deployment(resources):
    assert_replicas_consistent(resources, "values.yaml")


def test_triton_reads_the_stage_settings(resources):
    """The online model (components/serving/triton/online_model.py) loads the settings in the Triton pod:
    the ConfigMap modules/platform creates for the stage pods, by reference."""
    from components.core import cluster
    (triton,) = resources["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert triton["envFrom"] == [{"configMapRef": {"name": cluster.SETTINGS_CONFIG_MAP}}]
    platform = (REPO / "infra" / "terraform" / "modules" / "platform" / "main.tf").read_text()
    assert 'settingsConfigMap = kubernetes_config_map_v1.settings["flightdeck"].metadata[0].name' in platform


def test_triton_gets_the_redis_password_from_the_secret(resources):
    """The online model reads the Redis online store (components/features/retrieval.py, the same code path as
    the stages) with the settings of the Triton pod: FLIGHTDECK_REDIS_PASSWORD comes from the
    Secret the values name, which modules/platform creates from the online store's AUTH token."""
    from components.core import cluster
    from components.core.settings import secret_env_names

    (triton,) = resources["Deployment"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in triton["env"]}
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["redisAuthSecret"] == cluster.REDIS_AUTH_SECRET
    assert env[cluster.REDIS_PASSWORD_ENV]["valueFrom"] == {
        "secretKeyRef": {"name": values["redisAuthSecret"], "key": cluster.REDIS_AUTH_SECRET_KEY}}
    # Every secret setting the online model may need: all but the Optuna study storage, which only the
    # tune stage's pod reads (cluster.NEEDS_TUNING_DB), and which a serving pod must not hold.
    online = set(secret_env_names()) - {cluster.TUNING_STORAGE_ENV}
    assert online and online <= set(env)
    assert cluster.TUNING_STORAGE_ENV not in env
    platform = (REPO / "infra" / "terraform" / "modules" / "platform" / "main.tf").read_text()
    assert 'redisAuthSecret = kubernetes_secret_v1.redis_auth["flightdeck"].metadata[0].name' in platform


# -- values: the schema, and what Terraform sets per environment ----------------------------------

SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def environment_values(env: str) -> dict[str, object]:
    """The replica values modules/platform gives the chart in environments/<env> (its triton_replicas;
    tests/infra/test_terraform.py checks the platform module maps them so)."""
    from tests.infra.test_terraform import TF, environment_call

    replicas = environment_call(TF / "environments" / env)["triton_replicas"]
    return {"replicas": replicas["min"], "autoscaling.minReplicas": replicas["min"],
            "autoscaling.maxReplicas": replicas["max"], "disruption.maxUnavailable": replicas["max_unavailable"]}


def merged_values(overrides: dict) -> dict:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for dotted, value in overrides.items():
        node = values
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return values


ENVS = ("dev", "prod")


@pytest.fixture(scope="module")
def rendered_envs(tmp_path_factory) -> Path:
    """The chart as each environment installs it, one folder per environment."""
    out = tmp_path_factory.mktemp("triton-envs")
    for env in ENVS:
        (out / env).mkdir()
        for name, text in helm_template(CHART, namespace="flightdeck", overrides=environment_values(env)).items():
            (out / env / name).write_text(text)
    return out


def env_resources(rendered_envs: Path, env: str) -> dict[str, dict]:
    docs = [d for p in sorted((rendered_envs / env).glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
    return {d["kind"]: d for d in docs}


def test_values_match_the_chart_schema():
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.validate(merged_values({}), SCHEMA)
    for env in ENVS:
        jsonschema.validate(merged_values(environment_values(env)), SCHEMA)
    # Every value the templates use is described by the schema, and the schema has no stale entries.
    used = {m.group(1).split(".")[0] for p in (CHART / "templates").glob("*.yaml")
            for m in re.finditer(r"\{\{\s*\.Values\.([A-Za-z0-9_.]+)\s*\}\}", p.read_text())}
    assert used == set(SCHEMA["properties"]) == set(yaml.safe_load((CHART / "values.yaml").read_text()))


@pytest.mark.parametrize("bad", [{"autoscaling.maxReplicas": 0}, {"disruption.maxUnavailable": 0},
                                 {"replicas": "2"}, {"image.digest": "latest"}, {"nope": 1},
                                 {"redisAuthSecret": "Not_A_Secret_Name"}])
def test_schema_refuses_bad_values(bad):
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(merged_values(bad), SCHEMA)


@pytest.mark.parametrize("env", ENVS)
def test_each_environment_renders_valid_restricted_and_consistent(rendered_envs, env):
    resources = env_resources(rendered_envs, env)
    assert set(resources) == {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
                              "NetworkPolicy", "ServiceAccount", "Role", "RoleBinding"}
    for resource in resources.values():
        kubernetes_validate.validate(resource, K8S_VERSION, strict=True)
    assert pss_restricted_violations(resources["Deployment"]["spec"]["template"]["spec"]) == []
    assert_replicas_consistent(resources, env)
    expected = environment_values(env)
    assert resources["HorizontalPodAutoscaler"]["spec"]["maxReplicas"] == expected["autoscaling.maxReplicas"]


def test_dev_runs_one_replica_that_a_drain_may_evict_and_prod_keeps_one_serving(rendered_envs):
    dev, prod = (env_resources(rendered_envs, env) for env in ENVS)
    assert dev["Deployment"]["spec"]["replicas"] == 1 and dev["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    assert prod["Deployment"]["spec"]["replicas"] >= 2
    assert prod["HorizontalPodAutoscaler"]["spec"]["minReplicas"] - prod["PodDisruptionBudget"]["spec"]["maxUnavailable"] >= 1


def test_replica_check_catches_a_pdb_that_blocks_drains(resources):
    broken = yaml.safe_load(yaml.safe_dump(resources))
    broken["PodDisruptionBudget"]["spec"] = {"minAvailable": 1, "selector": broken["PodDisruptionBudget"]["spec"]["selector"]}
    with pytest.raises(AssertionError, match="minAvailable"):
        assert_replicas_consistent(broken, "one replica, minAvailable 1")


def test_checkov_passes_on_every_environment(rendered_envs):
    report = run_checkov(rendered_envs, "kubernetes")
    assert report["resource_count"] >= 16 and report["parsing_errors"] == 0
    assert not report["failed"], "checkov failed checks:\n" + describe(report["failed"])
    assert {c["check_id"] for c in report["skipped"]} == {"CKV_K8S_35"}


def test_service_account_uses_irsa_and_no_api_token(resources):
    sa = resources["ServiceAccount"]
    assert sa["automountServiceAccountToken"] is False
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
    assert resources["Deployment"]["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]


@pytest.mark.parametrize("env", ENVS)
def test_helm_lint_passes_on_every_environment(env):
    report = helm_lint(CHART, overrides=environment_values(env))
    assert "1 chart(s) linted, 0 chart(s) failed" in report, report


@pytest.mark.parametrize("bad", [{"autoscaling.maxReplicas": 0}, {"image.digest": "latest"}, {"nope": 1}])
def test_helm_applies_the_values_schema(bad):
    """helm itself refuses values that break values.schema.json, as at install and upgrade."""
    with pytest.raises(HelmError, match="values don't meet the specifications of the schema"):
        helm_template(CHART, overrides=bad)


def test_checkov_kubernetes_checks_pass(checkov_k8s):
    assert checkov_k8s["resource_count"] >= 8 and checkov_k8s["parsing_errors"] == 0
    checked = {c["resource"].split(".")[0] for c in checkov_k8s["passed_checks"]}
    assert {"Role", "RoleBinding", "Deployment"} <= checked, checked
    assert not checkov_k8s["failed"], "checkov failed checks:\n" + describe(checkov_k8s["failed"])
    assert {c["check_id"] for c in checkov_k8s["skipped"]} == {"CKV_K8S_35"}  # the one in deployment.yaml
    for check in checkov_k8s["skipped"]:
        assert len(skip_reason(check)) > 20, f"skip without a reason: {check['check_id']}"


# -- replica discovery by `flightdeck deploy` (components/serving/triton/replicas.py) -------------------

# The client calls replicas.py makes -> the RBAC verb and resource each needs.
CLIENT_VERBS = {"list": "list", "read": "get", "watch": "watch"}
CLIENT_RESOURCES = {"endpoint_slice": ("discovery.k8s.io", "endpointslices"), "endpoints": ("", "endpoints")}


def test_deploy_service_account_may_read_the_triton_endpoints_and_nothing_else(resources):
    role, binding = resources["Role"], resources["RoleBinding"]
    service = resources["Service"]["metadata"]["name"]
    namespace = resources["Deployment"]["metadata"]["namespace"]
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == namespace
    granted = {
        (group, resource): (frozenset(rule["verbs"]), tuple(rule.get("resourceNames", [])))
        for rule in role["rules"] for group in rule["apiGroups"] for resource in rule["resources"]
    }  # fmt: skip
    assert granted == {
        ("discovery.k8s.io", "endpointslices"): (frozenset({"get", "list", "watch"}), ()),
        ("", "endpoints"): (frozenset({"get", "list", "watch"}), (service,)),
    }
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]}
    # Bound to the deploy stage's service account, as the stage pods run it (containers/images.yaml),
    # which infra/terraform/modules/platform creates in the flightdeck namespace.
    images = yaml.safe_load((REPO / "containers" / "images.yaml").read_text())
    platform = (REPO / "infra" / "terraform" / "modules" / "platform" / "main.tf").read_text()
    subject, kfp_runs = binding["subjects"]
    assert subject == {"kind": "ServiceAccount", "name": images["service_accounts"]["deploy"], "namespace": "flightdeck"}
    assert re.search(rf'^\s*{re.escape(subject["name"])}\s*=', platform, re.M)
    # ... and to the KFP runs' account (one per run; its IRSA role is in modules/iam).
    assert kfp_runs == {"kind": "ServiceAccount", "name": "flightdeck-pipelines", "namespace": "kubeflow"}
    iam = (REPO / "infra" / "terraform" / "modules" / "iam" / "variables.tf").read_text()
    assert '"kubeflow:flightdeck-pipelines"' in iam


def test_rbac_covers_every_call_replicas_makes(resources):
    import components.serving.triton.replicas as replicas

    calls = re.findall(r"\.(list|read|watch)_namespaced_(endpoint_slice|endpoints)\(", Path(replicas.__file__).read_text())
    assert calls, "replicas.py makes no Kubernetes API call any more: update this test"
    rules = resources["Role"]["rules"]
    for verb, kind in calls:
        group, resource = CLIENT_RESOURCES[kind]
        assert any(
            group in r["apiGroups"] and resource in r["resources"] and CLIENT_VERBS[verb] in r["verbs"] for r in rules
        ), f"{verb}_namespaced_{kind}: the Role does not allow {CLIENT_VERBS[verb]} {resource}"


def test_replicas_are_found_on_the_service_grpc_port(resources):
    """An EndpointSlice as Kubernetes builds it for this Service (the Service's port names, the
    container ports they target) gives replicas.py each pod's gRPC address."""
    from kubernetes.client import models as k8s

    from components.serving.triton.replicas import from_endpoint_slices

    (triton,) = resources["Deployment"]["spec"]["template"]["spec"]["containers"]
    container_ports = {p["name"]: p["containerPort"] for p in triton["ports"]}
    service_ports = resources["Service"]["spec"]["ports"]
    assert "grpc" in {p["name"] for p in service_ports}
    endpoint_slice = k8s.V1EndpointSlice(
        address_type="IPv4",
        metadata=k8s.V1ObjectMeta(name="triton-abcde"),
        ports=[k8s.DiscoveryV1EndpointPort(name=p["name"], port=container_ports[p["targetPort"]], protocol="TCP")
               for p in service_ports],
        endpoints=[
            k8s.V1Endpoint(addresses=[f"10.0.0.{i}"], conditions=k8s.V1EndpointConditions(ready=True),
                           target_ref=k8s.V1ObjectReference(kind="Pod", name=f"triton-{i}"))
            for i in (1, 2)
        ],
    )  # fmt: skip
    ready, not_ready = from_endpoint_slices([endpoint_slice])
    assert [(r.name, r.grpc_url) for r in ready] == [("triton-1", "10.0.0.1:8001"), ("triton-2", "10.0.0.2:8001")]
    assert not_ready == []


def test_triton_reads_the_repository_deploy_writes(resources):
    """The chart's default and the value Terraform sets name the S3 prefix `flightdeck deploy`
    writes the model repository to on the aws profile."""
    from components.core.settings import load_settings
    from components.serving.triton.repository import repository_location

    settings = load_settings({"FLIGHTDECK_PROFILE": "aws", "FLIGHTDECK_S3_BUCKET": "artifacts-bucket",
                              "FLIGHTDECK_S3_MODELS_BUCKET": "models-bucket", "FLIGHTDECK_HOME": "/nonexistent"})
    _, uri = repository_location(settings)
    path = uri.removeprefix("s3://models-bucket/")
    assert path != uri
    (triton,) = resources["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert f"--model-repository=s3://flightdeck-dev-models/{path}" in triton["args"]
    platform = (REPO / "infra" / "terraform" / "modules" / "platform" / "main.tf").read_text()
    assert f'modelRepository = "s3://${{var.bucket_names["models"]}}/{path}"' in platform
