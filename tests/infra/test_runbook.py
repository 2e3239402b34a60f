"""RUNBOOK.md's commands work against what is installed: every `kubectl`, `helm` and `aws` command
(fenced blocks and inline code) is parsed, and its namespace, object names, label selectors,
containers and JSONPath keys are looked up in the Triton chart as `helm template` renders it and in
the objects infra/terraform creates; the metric names the runbook quotes are the ones the rules
(infra/monitoring/alerts.yml) and the dashboard use."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest
import yaml

from tests.infra.helm import documents, helm_template
from tests.infra.test_terraform import TF, blocks, module_locals, platform_locals, unq

REPO = Path(__file__).resolve().parents[2]
RUNBOOK = REPO / "RUNBOOK.md"
ALERTS = REPO / "infra" / "monitoring" / "alerts.yml"
DASHBOARD = REPO / "infra" / "monitoring" / "grafana" / "flightdeck.json"
TOOLS = ("kubectl", "helm", "aws")
MONITORING_FILES = {"alertRules": ALERTS, "dashboard": DASHBOARD}
PLACEHOLDER = re.compile(r"^<[^>]+>$")
KINDS = {"pod": "Pod", "pods": "Pod", "po": "Pod", "deploy": "Deployment", "deployment": "Deployment",
         "deployments": "Deployment", "hpa": "HorizontalPodAutoscaler", "secret": "Secret", "secrets": "Secret",
         "svc": "Service", "service": "Service", "configmap": "ConfigMap", "cm": "ConfigMap", "node": "Node",
         "nodes": "Node", "pdb": "PodDisruptionBudget", "sa": "ServiceAccount", "serviceaccount": "ServiceAccount",
         "prometheusrule": "PrometheusRule", "servicemonitor": "ServiceMonitor"}
# Verbs followed by `<type> [<name>]`, and those followed by a pod name alone.
TYPED_VERBS = {"get", "describe", "delete", "patch", "scale", "edit"}
POD_VERBS = {"logs", "exec", "attach", "port-forward"}


# -- what is installed --------------------------------------------------------------------------


@dataclass
class Installed:
    namespaces: set[str]
    objects: dict[tuple[str, str, str], dict] = field(default_factory=dict)  # (kind, namespace, name)
    pod_templates: list[tuple[str, dict, list[dict]]] = field(default_factory=list)  # (namespace, labels, containers)
    node_labels: list[dict[str, str]] = field(default_factory=list)
    helm_releases: dict[str, str] = field(default_factory=dict)  # release name -> namespace


def _namespace_of(expression: str) -> str:
    """kubernetes_namespace_v1.this["x"]... or a literal -> the namespace name."""
    match = re.search(r'kubernetes_namespace_v1\.this\["([a-z-]+)"\]', expression)
    return match.group(1) if match else unq(expression)


@cache
def installed() -> Installed:
    names = platform_locals()
    namespaces = set(unq(names["namespaces"])) | {unq(names["kfp_namespace"]), "kube-system"}
    out = Installed(namespaces=namespaces)
    for doc in documents(helm_template(REPO / "infra" / "k8s" / "triton", namespace="flightdeck")):
        out.objects[(doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"])] = doc
        if doc["kind"] == "Deployment":
            template = doc["spec"]["template"]
            out.pod_templates.append((doc["metadata"]["namespace"], template["metadata"]["labels"],
                                      template["spec"]["containers"]))
    monitoring = helm_template(REPO / "infra" / "k8s" / "monitoring", namespace="monitoring",
                               release="flightdeck-monitoring", files=MONITORING_FILES,
                               overrides={"runbookBaseUrl": "https://runbook.example"})
    for doc in documents(monitoring):
        out.objects[(doc["kind"], doc["metadata"]["namespace"], doc["metadata"]["name"])] = doc
    # The Secrets and ConfigMaps modules/platform creates, in each namespace of their for_each.
    for_each = {"${local.stage_namespaces}": set(unq(names["stage_namespaces"])),
                # merge(local.stage_namespaces, {airflow = ...}) in modules/platform
                "${local.settings_namespaces}": set(unq(names["stage_namespaces"])) | {"airflow"}}
    for type_, kind in (("kubernetes_secret_v1", "Secret"), ("kubernetes_config_map_v1", "ConfigMap")):
        for _, t, _name, body in blocks("resource", TF / "modules" / "platform"):
            if t == type_:
                (meta,) = body["metadata"]
                spaces = for_each.get(body.get("for_each"), {_namespace_of(meta.get("namespace", ""))})
                for namespace in spaces:
                    data = body.get("data", {})
                    if isinstance(data, str):  # ${local.stage_settings}
                        data = names[unq(data).removeprefix("local.")]
                    out.objects[(kind, namespace, unq(meta["name"]))] = {"data": {unq(k): v for k, v in data.items()}}
    # The stage pods (KubernetesPodOperator in flightdeck, KFP steps in kubeflow): one container.
    from components.core import cluster

    for namespace in ("flightdeck", "kubeflow"):
        out.pod_templates.append((namespace, cluster.stage_pod_labels("<stage>"), [{"name": "base"}]))
    out.node_labels = [{unq(k): unq(v) for k, v in body["labels"].items()}
                       for _, t, _, body in blocks("resource", TF / "modules" / "eks") if t == "aws_eks_node_group"]
    out.helm_releases = {unq(body["name"]).replace("${local.pushgateway_release}", unq(names["pushgateway_release"])):
                         _namespace_of(body["namespace"])
                         for _, t, _, body in blocks("resource", TF / "modules" / "platform") if t == "helm_release"}
    return out


# -- the runbook's commands ---------------------------------------------------------------------


def runbook_commands(text: str) -> list[list[str]]:
    """Every kubectl/helm/aws invocation, as argv: each line of a fenced block and each inline code
    span, split at `;`, `|`, `&&` (comments dropped; inline spans may wrap lines)."""
    snippets: list[str] = []
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, flags=re.M | re.S):
        snippets += block.splitlines()
    prose = re.sub(r"^```[a-z]*\n.*?^```", "", text, flags=re.M | re.S)
    snippets += [span.replace("\n", " ") for span in re.findall(r"`([^`]+)`", prose)]
    commands = []
    for snippet in snippets:
        lexer = shlex.shlex(snippet, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split, lexer.commenters = True, "#"
        try:
            tokens = list(lexer)
        except ValueError as exc:
            if any(re.search(rf"\b{tool}\b", snippet) for tool in TOOLS):
                raise AssertionError(f"RUNBOOK.md: cannot parse `{snippet}`: {exc}") from exc
            continue  # prose in backticks, not a command
        argv: list[str] = []
        for token in [*tokens, ";"]:
            if token.strip(";&|") == "":
                if argv and argv[0] in TOOLS:
                    commands.append(argv)
                argv = []
            else:
                argv.append(token)
    return commands


def options(argv: list[str], with_value: set[str]) -> tuple[dict[str, str], list[str]]:
    """({flag: value}, positionals) of an argv (--flag=value, --flag value, -f value)."""
    flags, positional, i = {}, [], 1
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("-"):
            name, eq, value = arg.partition("=")
            if eq:
                flags[name] = value
            elif name in with_value:
                flags[name], i = argv[i + 1], i + 1
            else:
                flags[name] = ""
        else:
            positional.append(arg)
        i += 1
    return flags, positional


def selector_matches(selector: str, labels: dict[str, str]) -> bool:
    for term in selector.split(","):
        key, eq, value = term.partition("=")
        if key not in labels or (eq and labels[key] != value and value != "<stage>" and labels[key] != "<stage>"):
            return False
    return True


KUBECTL_VALUE_FLAGS = {"-n", "--namespace", "-l", "--selector", "-o", "--output", "-c", "--container", "-p",
                       "--patch", "--image", "--replicas"}


def check_kubectl(argv: list[str], inv: Installed) -> list[str]:
    flags, args = options(argv, KUBECTL_VALUE_FLAGS)
    where = " ".join(argv)
    namespace = flags.get("-n", flags.get("--namespace"))
    problems = []
    if namespace is not None and namespace not in inv.namespaces:
        return [f"{where}: namespace {namespace} is not created by infra/terraform ({sorted(inv.namespaces)})"]
    verb, rest = args[0], args[1:]
    if verb == "rollout":
        verb, rest = "rollout " + rest[0], rest[1:]
    if verb == "run":
        image = flags.get("--image", "")
        repository = image.split("/", 1)[1].split("@")[0].split(":")[0] if "/" in image else image
        images = yaml.safe_load((REPO / "containers" / "images.yaml").read_text())["images"]
        known = {f"flightdeck/{name}" for name in images}
        return [] if repository in known else [f"{where}: image {repository} is not one of {sorted(known)}"]
    if verb in POD_VERBS:
        kind, name = "Pod", rest[0]
    elif verb in TYPED_VERBS or verb.startswith("rollout "):
        kind_name = rest[0].split("/", 1)
        kind, name = KINDS.get(kind_name[0].lower()), (kind_name[1:] or rest[1:2] or [None])[0]
        if kind is None:
            return [f"{where}: unknown resource type {rest[0]}"]
    else:
        return [f"{where}: verb {verb} is not checked by this test: teach it"]
    if kind == "Node":
        selector = flags.get("-l", flags.get("--selector", ""))
        if not any(selector_matches(selector, labels) for labels in inv.node_labels):
            problems.append(f"{where}: no node group has the labels {selector} ({inv.node_labels})")
        return problems
    if namespace is None:
        return [f"{where}: no -n: it would look in the default namespace, where flightdeck runs nothing"]
    pods = [(labels, containers) for ns, labels, containers in inv.pod_templates if ns == namespace]
    if kind == "Pod":
        selector = flags.get("-l", flags.get("--selector"))
        if selector and not any(selector_matches(selector, labels) for labels, _ in pods):
            problems.append(f"{where}: no pod in {namespace} has the labels {selector}")
        container = flags.get("-c", flags.get("--container"))
        if container and not any(container == c["name"] for _, cs in pods for c in cs):
            problems.append(f"{where}: no pod in {namespace} has a container {container}")
        jsonpath = flags.get("-o", flags.get("--output", ""))
        for index, key in re.findall(r"\.spec\.containers\[(\d+)\]\.(\w+)", jsonpath):
            if not any(len(cs) > int(index) and key in cs[int(index)] for _, cs in pods):
                problems.append(f"{where}: no pod in {namespace} has .spec.containers[{index}].{key}")
    if name and not PLACEHOLDER.match(name):
        obj = inv.objects.get((kind, namespace, name))
        if obj is None:
            return problems + [f"{where}: no {kind} {name} in namespace {namespace}"]
        for key in re.findall(r"\.data\.([A-Za-z0-9_-]+)", flags.get("-o", "")):
            if key not in obj.get("data", {}):
                problems.append(f"{where}: {kind} {name} has no data key {key}")
        patch = flags.get("-p", flags.get("--patch"))
        if patch:
            # A placeholder (N, <count>) stands where a number goes.
            for key in json.loads(re.sub(r"<[^>]+>|\b[A-Z]\b", "0", patch)).get("spec", {}):
                if key not in obj["spec"]:
                    problems.append(f"{where}: {kind} {name} has no spec.{key}")
    return problems


def check_helm(argv: list[str], inv: Installed) -> list[str]:
    flags, args = options(argv, {"-n", "--namespace", "--revision"})
    where = " ".join(argv)
    namespace = flags.get("-n", flags.get("--namespace"))
    if args[0] not in {"history", "status", "get", "rollback", "list"}:
        return [f"{where}: helm {args[0]} is not checked by this test: teach it"]
    release = args[2] if args[0] == "get" else (args[1] if len(args) > 1 else None)
    if release is None:
        return []
    if release not in inv.helm_releases:
        return [f"{where}: no helm_release {release} in infra/terraform ({sorted(inv.helm_releases)})"]
    if namespace != inv.helm_releases[release]:
        return [f"{where}: release {release} is installed in {inv.helm_releases[release]}, not {namespace}"]
    return []


def check_aws(argv: list[str], inv: Installed) -> list[str]:
    flags, args = options(argv, {"--replication-group-id", "--query", "--region", "--name", "--secret-string"})
    where = " ".join(argv)
    if args[:2] == ["elasticache", "describe-replication-groups"]:
        # modules/environment names the environment flightdeck-<env>; online_store uses that name.
        name = unq(module_locals(TF / "modules" / "environment")["name"]).replace("${var.environment}", "<env>")
        body = platform_resource_in("online_store", "aws_elasticache_replication_group")
        if unq(body["replication_group_id"]) != "var.name" or flags["--replication-group-id"] != name:
            return [f"{where}: the replication group is {name} (modules/online_store, modules/environment)"]
        return []
    if args[:2] == ["secretsmanager", "create-secret"]:
        (data,) = [b for _, t, n, b in blocks("data", TF / "modules" / "platform")
                   if t == "aws_secretsmanager_secret_version"]
        name = unq(module_locals(TF / "modules" / "environment")["name"]).replace("${var.environment}", "<env>")
        expected = unq(data["secret_id"]).replace("${var.name}", name)
        return [] if flags.get("--name") == expected else [f"{where}: modules/platform reads {expected}"]
    return [f"{where}: aws {' '.join(args[:2])} is not checked by this test: teach it"]


def platform_resource_in(module: str, type_: str) -> dict:
    (body,) = [b for _, t, _, b in blocks("resource", TF / "modules" / module) if t == type_]
    return body


CHECKS = {"kubectl": check_kubectl, "helm": check_helm, "aws": check_aws}


def problems_of(text: str) -> list[str]:
    inv = installed()
    return [p for argv in runbook_commands(text) for p in CHECKS[argv[0]](argv, inv)]


def test_every_runbook_command_names_what_is_installed():
    commands = runbook_commands(RUNBOOK.read_text())
    assert {argv[0] for argv in commands} == set(TOOLS) and len(commands) >= 15, commands
    assert problems_of(RUNBOOK.read_text()) == []


@pytest.mark.parametrize("bad, reason", [
    ("kubectl -n serving get pods -l app.kubernetes.io/name=triton", "namespace serving"),
    ("`kubectl get nodes -l nvidia.com/gpu.present=true`", "no node group"),
    ("kubectl -n flightdeck get pods -l app=triton", "no pod in flightdeck has the labels"),
    ("kubectl -n flightdeck get deploy tritonserver", "no Deployment tritonserver"),
    ("kubectl -n flightdeck logs <pod> -c tritonserver", "has a container tritonserver"),
    ("kubectl -n kubeflow get secret flightdeck-redis-auth -o jsonpath='{.data.token}'", "no data key token"),
    ("kubectl -n airflow get secret triton-admin-key", "no Secret triton-admin-key in namespace airflow"),
    ("kubectl get deploy triton", "no -n"),
    ("helm -n monitoring history triton", "installed in flightdeck"),
    ("`aws elasticache describe-replication-groups --replication-group-id flightdeck`", "the replication group is"),
    ("kubectl -n flightdeck patch hpa triton -p '{\"spec\":{\"replicas\":3}}'", "no spec.replicas"),
])  # fmt: skip
def test_the_check_catches_a_wrong_command(bad, reason):
    text = f"```bash\n{bad}\n```" if not bad.startswith("`") else bad
    problems = problems_of(text)
    assert any(reason in p for p in problems), problems


# -- metric names and alerts --------------------------------------------------------------------


def rule_and_dashboard_metrics() -> set[str]:
    alerts = yaml.safe_load(ALERTS.read_text())
    exprs = [r["expr"] for g in alerts["groups"] for r in g["rules"]]
    exprs += re.findall(r'"expr":\s*"((?:[^"\\]|\\.)*)"', DASHBOARD.read_text())
    return {m for e in exprs for m in re.findall(r"\b((?:nv|flightdeck|kube|up)_?[a-z0-9_]*)\b", e)}


def test_every_metric_the_runbook_names_is_one_the_rules_or_dashboard_use():
    quoted = set(re.findall(r"\b((?:nv_inference|flightdeck)_[a-z0-9_]+)\b", RUNBOOK.read_text()))
    from components.core.metrics import MONITOR_JOB, PIPELINE_JOB

    # The Pushgateway jobs (groups) the metrics are pushed under are names too, but not metrics.
    quoted = {m for m in quoted if not m.endswith("_")} - {MONITOR_JOB, PIPELINE_JOB}
    assert quoted, "the runbook names no metric any more: update this test"
    assert quoted - rule_and_dashboard_metrics() == set()


def test_every_alert_has_a_runbook_section_and_the_runbook_url_points_at_it():
    headings = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
                for h in re.findall(r"^## (.+)$", RUNBOOK.read_text(), flags=re.M)}
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            anchor = rule["annotations"]["runbook_url"].rsplit("#", 1)[1]
            assert anchor == rule["alert"].lower() and anchor in headings, rule["alert"]
