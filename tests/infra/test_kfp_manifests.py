"""The Kubeflow Pipelines install modules/platform applies, built offline by the real `kubectl
kustomize` from the manifests kept at the pinned commit (tests/infra/data/kfp-manifests, with the
argo-workflows directories KFP pulls from GitHub): the pins agree with Terraform, the copy is
upstream's and holds exactly what the two kustomizations need, and the build has what Terraform and
the docs rely on (the kubeflow namespace, the ml-pipeline API server and UI, Argo's controller, the
pipeline-runner Role flightdeck's runs are bound to, images at the release's tag), every object
valid against its schema."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.infra.crd_schema import crd_schemas, kept_schemas, problems
from tests.infra.kfp_manifests import (
    ARGO_COMMIT,
    ARGO_DIR,
    ARGO_REPO,
    ARGO_TAG,
    COPY,
    KFP_COMMIT,
    KFP_DIR,
    KFP_TAG,
    KUSTOMIZE_ROOT,
    OVERLAYS,
    KustomizeError,
    RemoteReference,
    build,
    closure,
    kustomize,
    localize,
    prepared,
)
from tests.infra.test_terraform import PLATFORM, parse, platform_locals, unq
from tests.infra.vendored import blob_mismatches

CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "PriorityClass"}
# What the install must have: the API server (`flightdeck kfp submit --host .../pipeline` reaches
# it through the UI's proxy), the UI, the controllers that run and record runs, their stores.
DEPLOYMENTS = {"ml-pipeline", "ml-pipeline-ui", "ml-pipeline-persistenceagent", "ml-pipeline-scheduledworkflow",
               "workflow-controller", "metadata-grpc-deployment", "mysql", "minio"}
SERVICE_PORTS = {"ml-pipeline": {("http", 8888), ("grpc", 8887)}, "ml-pipeline-ui": {("http", 80)}}
CRDS = {"workflows.argoproj.io", "workflowtaskresults.argoproj.io", "scheduledworkflows.kubeflow.org"}
ARGO_REMOTES = {"manifests/base/workflow-controller", "manifests/base/crds/minimal",
                "manifests/namespace-install/workflow-controller-rbac"}


def kfp_namespace() -> str:
    return unq(platform_locals()["kfp_namespace"])


def built_from(tmp: Path, edit=None) -> dict[str, list[dict]]:
    """Build a temporary copy, after `edit(kustomize root)` when given."""
    root = prepared(tmp)
    if edit:
        edit(root)
    return build(root)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, list[dict]]:
    return built_from(tmp_path_factory.mktemp("kfp"))


def _rules_allow(role: dict, group: str, resource: str, verbs: set[str]) -> bool:
    return any(group in r.get("apiGroups", []) and resource in r.get("resources", [])
               and (verbs <= set(r.get("verbs", [])) or "*" in r.get("verbs", [])) for r in role.get("rules", []))


def install_problems(built: dict[str, list[dict]]) -> list[str]:
    """What the build lacks of what modules/platform and the docs rely on (empty when all is there)."""
    namespace = kfp_namespace()
    found = []
    cluster, env = built[OVERLAYS[0]], built[OVERLAYS[1]]
    # The cluster-scoped build creates the namespace every other object (and modules/platform's
    # service account and role binding for flightdeck's runs) goes into, and the CRDs.
    if {(o["kind"], o["metadata"]["name"]) for o in cluster if o["kind"] == "Namespace"} != {("Namespace", namespace)}:
        found.append(f"{OVERLAYS[0]} does not create exactly the namespace {namespace}")
    missing_crds = CRDS - {o["metadata"]["name"] for o in cluster if o["kind"] == "CustomResourceDefinition"}
    found += [f"CRD {name} missing" for name in sorted(missing_crds)]
    for overlay, objs in built.items():
        found += [f"{overlay}: {o['kind']} {o['metadata']['name']} in namespace {o['metadata'].get('namespace')}"
                  for o in objs if o["kind"] not in CLUSTER_SCOPED and o["metadata"].get("namespace") != namespace]
    by_kind: dict[str, dict[str, dict]] = {}
    for obj in env:
        by_kind.setdefault(obj["kind"], {})[obj["metadata"]["name"]] = obj
    found += [f"Deployment {name} missing" for name in sorted(DEPLOYMENTS - set(by_kind.get("Deployment", {})))]
    for name, ports in SERVICE_PORTS.items():
        service = by_kind.get("Service", {}).get(name)
        have = {(p.get("name"), p["port"]) for p in service["spec"]["ports"]} if service else set()
        if not ports <= have:
            found.append(f"Service {name} lacks ports {sorted(ports - have)}")
    # modules/platform binds flightdeck's run account to this Role: KFP's launcher reads its
    # ConfigMap, Argo's executor records each step's outputs as a WorkflowTaskResult.
    runner = by_kind.get("Role", {}).get("pipeline-runner")
    if runner is None:
        found.append("Role pipeline-runner missing")
    elif not (_rules_allow(runner, "", "configmaps", {"get"})
              and _rules_allow(runner, "argoproj.io", "workflowtaskresults", {"create", "patch"})):
        found.append("Role pipeline-runner cannot read ConfigMaps or record WorkflowTaskResults")
    # Images: KFP's own at the release tag, Argo's controller at the ref KFP pulls, none floating.
    for objs in built.values():
        for obj in objs:
            if obj["kind"] != "Deployment":
                continue
            spec = obj["spec"]["template"]["spec"]
            for container in spec.get("initContainers", []) + spec["containers"]:
                image = container["image"]
                tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else None
                if tag in (None, "latest"):
                    found.append(f"{obj['metadata']['name']}: {image} has no fixed tag")
                elif image.startswith("ghcr.io/kubeflow/") and tag != KFP_TAG:
                    found.append(f"{obj['metadata']['name']}: {image} is not at {KFP_TAG}")
                elif image.startswith("quay.io/argoproj/") and tag != ARGO_TAG:
                    found.append(f"{obj['metadata']['name']}: {image} is not at {ARGO_TAG}")
    config = by_kind.get("ConfigMap", {}).get("pipeline-install-config", {}).get("data", {})
    if config.get("appVersion") != KFP_TAG:
        found.append(f"pipeline-install-config appVersion {config.get('appVersion')} is not {KFP_TAG}")
    return found


# -- the pins and the copy ----------------------------------------------------------------------------


def test_the_copy_is_at_the_commit_terraform_builds():
    variables = {unq(k): b for v in parse(PLATFORM / "variables.tf")["variable"] for k, b in v.items()}
    assert unq(variables["kubeflow_pipelines_commit"]["default"]) == KFP_COMMIT
    assert unq(variables["chart_versions"]["default"]["kubeflow_pipelines"]) == KFP_TAG
    builds = {unq(n): b for entry in parse(PLATFORM / "main.tf")["data"] for t, named in entry.items()
              if unq(t) == "kustomization_build" for n, b in named.items()}
    assert [unq(builds[name]["path"]) for name in ("kfp_cluster", "kfp")] == [
        f"github.com/kubeflow/pipelines/{KUSTOMIZE_ROOT}/{overlay}?ref=${{var.kubeflow_pipelines_commit}}"
        for overlay in OVERLAYS]
    readme = (COPY / "README.md").read_text()
    for pin in (KFP_COMMIT, KFP_TAG, ARGO_COMMIT, ARGO_TAG):
        assert pin in readme
    assert KFP_COMMIT in (COPY / KFP_DIR / "BLOBS").read_text() and ARGO_COMMIT in (COPY / ARGO_DIR / "BLOBS").read_text()


def test_the_copy_is_upstreams_files_with_their_licenses():
    for upstream in (KFP_DIR, ARGO_DIR):
        assert blob_mismatches(COPY / upstream) == [], upstream
        assert "Apache License" in (COPY / upstream / "LICENSE").read_text()


def test_the_blob_check_finds_an_edited_file(tmp_path):
    shutil.copytree(COPY / KFP_DIR, tmp_path / KFP_DIR)
    env = tmp_path / KFP_DIR / KUSTOMIZE_ROOT / "env" / "platform-agnostic" / "kustomization.yaml"
    env.write_text(env.read_text().replace("namespace: kubeflow", "namespace: elsewhere"))
    assert [p.split(":")[0] for p in blob_mismatches(tmp_path / KFP_DIR)] == [
        f"{KUSTOMIZE_ROOT}/env/platform-agnostic/kustomization.yaml"]


def test_the_copy_holds_exactly_what_the_two_kustomizations_need():
    needed: set[Path] = set()
    remotes = set()
    for overlay in OVERLAYS:
        files, found = closure(COPY / KFP_DIR / KUSTOMIZE_ROOT / overlay)
        needed |= files
        remotes |= found
    assert remotes == {(ARGO_REPO, path, ARGO_TAG) for path in ARGO_REMOTES}
    for path in sorted(remotes):
        files, nested = closure(COPY / ARGO_DIR / path[1])
        assert nested == set()
        needed |= files
    kept = {p.resolve() for p in COPY.rglob("*") if p.is_file() and p.name not in {"BLOBS", "LICENSE", "README.md"}}
    assert kept == needed, {"unused": sorted(map(str, kept - needed)), "missing": sorted(map(str, needed - kept))}


# -- remote references --------------------------------------------------------------------------------


def test_each_remote_reference_is_made_local(tmp_path):
    shutil.copytree(COPY, tmp_path / "copy")
    rewritten = localize(tmp_path / "copy")
    assert {line.split(": ")[1] for line in rewritten} == ARGO_REMOTES and len(rewritten) == 3
    # Nothing of GitHub is left in what the two kustomizations read.
    for overlay in OVERLAYS:
        files, remotes = closure(tmp_path / "copy" / KFP_DIR / KUSTOMIZE_ROOT / overlay)
        assert remotes == set()
        assert not [f for f in files if f.name.startswith("kustomization")
                    and re.search(r"^\s*-\s+\S*github\.com", f.read_text(), re.M)]


def test_without_the_local_copy_the_build_needs_the_network_and_fails(tmp_path):
    shutil.copytree(COPY, tmp_path / "copy")
    with pytest.raises(KustomizeError, match="argo-workflows"):
        kustomize(tmp_path / "copy" / KFP_DIR / KUSTOMIZE_ROOT / OVERLAYS[0])


@pytest.mark.parametrize("replacement, message", [
    ("https://github.com/argoproj/argo-workflows/manifests/base/crds/minimal?ref=v3.7.0", "the copy is v3.6.7"),
    ("https://github.com/argoproj/argo-events/manifests/base?ref=v1.9.0", "is not kept here"),
    ("https://github.com/argoproj/argo-workflows/manifests/base/crds/full?ref=v3.6.7", "is not kept here"),
])
def test_a_remote_reference_that_is_not_kept_is_refused(tmp_path, replacement, message):
    shutil.copytree(COPY, tmp_path / "copy")
    kfile = (tmp_path / "copy" / KFP_DIR / KUSTOMIZE_ROOT / "third-party" / "argo" / "installs" / "namespace"
             / "cluster-scoped" / "kustomization.yaml")
    kfile.write_text(re.sub(r"https://github\.com/\S+", replacement, kfile.read_text()))
    with pytest.raises(RemoteReference, match=re.escape(message)):
        localize(tmp_path / "copy")


# -- the build ---------------------------------------------------------------------------------------


def test_the_build_has_what_terraform_and_the_docs_rely_on(built):
    assert install_problems(built) == []
    assert kfp_namespace() == "kubeflow"
    deployments = {o["metadata"]["name"] for o in built[OVERLAYS[1]] if o["kind"] == "Deployment"}
    assert DEPLOYMENTS <= deployments


def test_every_object_of_the_build_matches_its_schema(built):
    objs = [o for overlay in OVERLAYS for o in built[overlay]]
    schemas = {**kept_schemas(), **crd_schemas([o for o in objs if o["kind"] == "CustomResourceDefinition"])}
    assert len(objs) > 70
    for obj in objs:
        assert problems(obj, schemas) == [], f"{obj['kind']} {obj['metadata']['name']}"


def _set_namespace(root: Path) -> None:
    env = root / "env" / "platform-agnostic" / "kustomization.yaml"
    env.write_text(env.read_text().replace("namespace: kubeflow", "namespace: pipelines"))


def _old_api_server(root: Path) -> None:
    pipeline = root / "base" / "pipeline" / "kustomization.yaml"
    text = pipeline.read_text()
    assert "name: ghcr.io/kubeflow/kfp-api-server\n    newTag: 2.14.3" in text
    pipeline.write_text(text.replace("name: ghcr.io/kubeflow/kfp-api-server\n    newTag: 2.14.3",
                                     "name: ghcr.io/kubeflow/kfp-api-server\n    newTag: 2.14.2"))


def _no_ui(root: Path) -> None:
    pipeline = root / "base" / "pipeline" / "kustomization.yaml"
    pipeline.write_text(pipeline.read_text().replace("  - ml-pipeline-ui-deployment.yaml\n", ""))


def _narrow_runner(root: Path) -> None:
    role = root / "base" / "pipeline" / "pipeline-runner-role.yaml"
    role.write_text(role.read_text().replace("workflowtaskresults", "workflowtasksets"))


@pytest.mark.parametrize("edit, expected", [
    (_set_namespace, "in namespace pipelines"),
    (_old_api_server, "ml-pipeline: ghcr.io/kubeflow/kfp-api-server:2.14.2 is not at 2.14.3"),
    (_no_ui, "Deployment ml-pipeline-ui missing"),
    (_narrow_runner, "Role pipeline-runner cannot read ConfigMaps or record WorkflowTaskResults"),
], ids=lambda v: v.__name__.strip("_") if callable(v) else "")
def test_a_broken_install_is_found(tmp_path, edit, expected):
    found = install_problems(built_from(tmp_path, edit))
    assert any(expected in p for p in found), found
