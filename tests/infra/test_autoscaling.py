"""Triton scales on load: its HPA (infra/k8s/triton, rendered by `helm template`) asks only for
per-pod custom metrics that prometheus-adapter's rules (infra/k8s/prometheus-adapter/rules.yaml,
the file modules/platform hands the adapter) expose from Triton's real metric names, scraped with
the pod and namespace labels the rules map; Terraform installs the adapter (pointed at
kube-prometheus-stack's Prometheus) and metrics-server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.infra.helm import documents, helm_template
from tests.infra.test_terraform import PLATFORM, platform_resource, unq

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "infra" / "k8s" / "prometheus-adapter" / "rules.yaml"


@pytest.fixture(scope="module")
def hpa() -> dict:
    (hpa,) = [d for d in documents(helm_template(REPO / "infra" / "k8s" / "triton"))
              if d["kind"] == "HorizontalPodAutoscaler"]
    return hpa


def exposed_metrics(rules: list[dict]) -> dict[str, dict]:
    """{custom metric name: rule} as prometheus-adapter names them (name.as, or the series name)."""
    out = {}
    for rule in rules:
        (series,) = re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{", rule["seriesQuery"])
        matches = rule["name"]["matches"]
        assert re.fullmatch(matches, series), f"{matches} does not match its series {series}"
        out[rule["name"].get("as") or series] = {**rule, "series": series}
    return out


def test_hpa_scales_on_triton_queue_metrics_only(hpa):
    metrics = hpa["spec"]["metrics"]
    assert metrics and all(m["type"] == "Pods" for m in metrics), "CPU is the wrong signal for a GPU server"
    assert {m["pods"]["metric"]["name"] for m in metrics} == {"triton_queue_duration_us_per_request",
                                                               "triton_pending_requests"}


def hpa_problems(hpa: dict, rules: list[dict]) -> list[str]:
    from components.core.metrics import TRITON_METRICS

    exposed, problems = exposed_metrics(rules), []
    for metric in hpa["spec"]["metrics"]:
        name = metric["pods"]["metric"]["name"]
        rule = exposed.get(name)
        if rule is None:
            problems.append(f"{name}: no adapter rule exposes it ({sorted(exposed)})")
            continue
        # Only Triton's real series, in the series query and in the query that computes the value.
        used = set(re.findall(r"\b(nv_[a-z_]+)\b", rule["seriesQuery"] + rule["metricsQuery"]))
        if not used or not used <= TRITON_METRICS:
            problems.append(f"{name}: {sorted(used - TRITON_METRICS) or 'no nv_ series'} are not Triton metrics")
        # A Pods metric is looked up per pod: the rule must map the pod and namespace labels.
        overrides = rule["resources"]["overrides"]
        if {overrides.get("pod", {}).get("resource"), overrides.get("namespace", {}).get("resource")} != {"pod", "namespace"}:
            problems.append(f"{name}: the rule does not map pod and namespace labels")
        if "<<.LabelMatchers>>" not in rule["metricsQuery"] or "<<.GroupBy>>" not in rule["metricsQuery"]:
            problems.append(f"{name}: metricsQuery ignores the HPA's pod selection")
    return problems


def test_hpa_metrics_are_exposed_by_the_adapter_from_triton_series(hpa):
    rules = yaml.safe_load(RULES.read_text())
    assert hpa_problems(hpa, rules) == []
    # The queue metric is the TritonHighQueueTime ratio; its target sits below the alert's 20 ms.
    (queue,) = [m for m in hpa["spec"]["metrics"] if m["pods"]["metric"]["name"] == "triton_queue_duration_us_per_request"]
    assert int(queue["pods"]["target"]["averageValue"]) < 20_000


def test_the_check_catches_a_metric_the_adapter_does_not_expose(hpa):
    rules = yaml.safe_load(RULES.read_text())
    broken = yaml.safe_load(yaml.safe_dump(hpa))
    broken["spec"]["metrics"][0]["pods"]["metric"]["name"] = "nv_inference_queue_time"
    assert any("no adapter rule" in p for p in hpa_problems(broken, rules))
    wrong_series = yaml.safe_load(RULES.read_text().replace("nv_inference_pending_request_count", "nv_pending_requests"))
    assert any("not Triton metrics" in p for p in hpa_problems(hpa, wrong_series))


def test_scraped_triton_series_carry_the_labels_the_rules_map():
    """The Prometheus operator labels every target of a ServiceMonitor with namespace and pod:
    Triton's is a ServiceMonitor (infra/k8s/monitoring), not a static scrape config."""
    monitoring = documents(helm_template(REPO / "infra" / "k8s" / "monitoring", namespace="monitoring",
                                         files={"alertRules": REPO / "infra" / "monitoring" / "alerts.yml",
                                                "dashboard": REPO / "infra" / "monitoring" / "grafana" / "flightdeck.json"},
                                         overrides={"runbookBaseUrl": "https://runbooks.example"}))
    (monitor,) = [d for d in monitoring if d["kind"] == "ServiceMonitor" and d["metadata"]["name"] == "triton"]
    (endpoint,) = monitor["spec"]["endpoints"]
    # No relabeling drops or overwrites the namespace/pod labels the adapter rules select on.
    assert all(r.get("targetLabel") not in {"namespace", "pod"} for r in endpoint.get("relabelings", []))


def test_terraform_installs_the_adapter_with_these_rules_and_metrics_server():
    adapter = platform_resource("helm_release", "prometheus_adapter")
    values = unq(adapter["values"][0])
    assert re.search(r'custom\s*=\s*yamldecode\(file\("\$\{path\.module\}/\.\./\.\./\.\./k8s/prometheus-adapter/rules\.yaml"\)\)',
                     values), values
    assert re.search(r"default\s*=\s*false", values)  # only these rules: no surprise metric names
    # kube-prometheus-stack's Prometheus Service: <release>-prometheus in the monitoring namespace.
    stack = platform_resource("helm_release", "kube_prometheus_stack")
    assert unq(stack["name"]) == "kube-prometheus-stack"
    assert "http://kube-prometheus-stack-prometheus.${kubernetes_namespace_v1.this[\"monitoring\"].metadata[0].name}.svc" in values
    assert unq(adapter["chart"]) == "prometheus-adapter" and unq(adapter["version"]) == "var.chart_versions.prometheus_adapter"
    metrics_server = platform_resource("helm_release", "metrics_server")
    assert unq(metrics_server["chart"]) == "metrics-server" and unq(metrics_server["namespace"]) == "kube-system"
    assert unq(metrics_server["version"]) == "var.chart_versions.metrics_server"
    assert "helm_release.kube_prometheus_stack" in str(adapter["depends_on"])
    assert (PLATFORM / "main.tf").read_text().count("file(\"${path.module}/../../../k8s/prometheus-adapter/rules.yaml\")") == 1
