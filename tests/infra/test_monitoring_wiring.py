"""On-call wiring in the cluster (infra/k8s/monitoring, installed by modules/platform), rendered by
the real `helm template` from the same files Terraform reads with file(): every alert of
infra/monitoring/alerts.yml is in the PrometheusRule with an absolute runbook URL; every `job` a
rule selects and every metric a rule or the dashboard uses is produced by something installed;
the dashboard reaches Grafana's sidecar; Alertmanager pages on `page` and posts `warning` to
Slack, with its keys from a Secret by reference.

Every object rendered here is also validated against its schema in tests/infra/test_crds.py: the
ConfigMap against Kubernetes', the PrometheusRule, ServiceMonitors and AlertmanagerConfig against
their CRDs (prometheus-operator's, kept as test data)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.infra.helm import HelmError, documents, helm_lint, helm_template
from tests.infra.test_terraform import PLATFORM, platform_locals, platform_resource, unq

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "infra" / "k8s" / "monitoring"
ALERTS = REPO / "infra" / "monitoring" / "alerts.yml"
DASHBOARD = REPO / "infra" / "monitoring" / "grafana" / "flightdeck.json"
FILES = {"alertRules": ALERTS, "dashboard": DASHBOARD}
BASE_URL = "https://github.com/example/flightdeck/blob/main"
K8S_VERSION = "1.33.0"


@pytest.fixture(scope="module")
def objects() -> dict[tuple[str, str], dict]:
    rendered = helm_template(CHART, namespace="monitoring", release="flightdeck-monitoring", files=FILES,
                             overrides={"runbookBaseUrl": BASE_URL})
    return {(d["kind"], d["metadata"]["name"]): d for d in documents(rendered)}


@pytest.fixture(scope="module")
def triton() -> dict[str, dict]:
    return {d["kind"]: d for d in documents(helm_template(REPO / "infra" / "k8s" / "triton"))}


def rules() -> list[dict]:
    return [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]


def test_chart_lints_and_renders_the_wiring(objects):
    report = helm_lint(CHART, overrides={"runbookBaseUrl": BASE_URL}, files=FILES)
    assert "0 chart(s) failed" in report, report
    assert set(objects) == {("PrometheusRule", "flightdeck"), ("ServiceMonitor", "triton"),
                            ("ServiceMonitor", "pushgateway"), ("ConfigMap", "flightdeck-dashboard"),
                            ("AlertmanagerConfig", "flightdeck")}
    kubernetes_validate.validate(objects[("ConfigMap", "flightdeck-dashboard")], K8S_VERSION, strict=True)
    for (kind, _), obj in objects.items():
        assert obj["apiVersion"].startswith("monitoring.coreos.com/") or kind == "ConfigMap", kind
        assert obj["metadata"]["namespace"] == "monitoring"


@pytest.mark.parametrize("bad", [{"runbookBaseUrl": ""}, {"runbookBaseUrl": "https://x/"},
                                 {"runbookBaseUrl": "http://insecure"}])
def test_chart_refuses_a_missing_or_relative_runbook_base(bad):
    with pytest.raises(HelmError, match="schema"):
        helm_template(CHART, namespace="monitoring", files=FILES, overrides=bad)


def test_chart_refuses_a_file_that_is_not_rules(tmp_path):
    (tmp_path / "alerts.yml").write_text("not: rules\n")
    with pytest.raises(HelmError, match="not a Prometheus rule file"):
        helm_template(CHART, namespace="monitoring", files={**FILES, "alertRules": tmp_path / "alerts.yml"},
                      overrides={"runbookBaseUrl": BASE_URL})


def test_every_alert_is_in_the_rendered_rule_with_an_absolute_runbook_url(objects):
    rendered = [r for g in objects[("PrometheusRule", "flightdeck")]["spec"]["groups"] for r in g["rules"]]
    assert [r["alert"] for r in rendered] == [r["alert"] for r in rules()]
    for source, out in zip(rules(), rendered, strict=True):
        # Everything as in alerts.yml (what promtool unit-tests), but the runbook link.
        assert out["annotations"]["runbook_url"] == f"{BASE_URL}/{source['annotations']['runbook_url']}"
        assert {k: v for k, v in out.items() if k != "annotations"} == {k: v for k, v in source.items() if k != "annotations"}
        assert {k: v for k, v in out["annotations"].items() if k != "runbook_url"} == \
            {k: v for k, v in source["annotations"].items() if k != "runbook_url"}
        assert out["labels"]["severity"] in {"page", "warning"}


def test_terraform_installs_the_chart_from_the_files_themselves():
    release = platform_resource("helm_release", "monitoring")
    values = unq(release["values"][0])
    assert 'alertRules     = file("${path.module}/../../../monitoring/alerts.yml")' in values or \
        re.search(r'alertRules\s*=\s*file\("\$\{path\.module\}/\.\./\.\./\.\./monitoring/alerts\.yml"\)', values), values
    assert re.search(r'dashboard\s*=\s*file\("\$\{path\.module\}/\.\./\.\./\.\./monitoring/grafana/flightdeck\.json"\)', values)
    assert re.search(r"runbookBaseUrl\s*=\s*var\.runbook_base_url", values)
    chart = unq(release["chart"]).replace("${path.module}", str(PLATFORM))
    assert Path(chart).resolve() == CHART
    assert "helm_release.kube_prometheus_stack" in str(release["depends_on"])  # the CRDs first
    # No copy of the rules or the dashboard anywhere under infra/ besides the sources.
    copies = [p for p in (REPO / "infra").rglob("*") if p.is_file() and p not in (ALERTS, DASHBOARD)
              and p.suffix in {".yml", ".yaml", ".json"} and "alert: TritonHighQueueTime" in p.read_text()
              and p.parent.name != "monitoring"]
    assert copies == []


def test_triton_is_scraped_as_the_job_the_rules_select(objects, triton):
    monitor = objects[("ServiceMonitor", "triton")]["spec"]
    service = triton["Service"]
    assert monitor["namespaceSelector"]["matchNames"] == [service["metadata"]["namespace"]]
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    (container,) = triton["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]}[endpoint["port"]] == 8002
    assert "--allow-metrics=true" in container["args"]
    jobs = {r["replacement"] for r in endpoint["relabelings"] if r["targetLabel"] == "job"}
    selected = {job for r in rules() for job in re.findall(r'job="([^"]+)"', r["expr"])}
    selected |= set(re.findall(r'job=\\"([^"\\]+)\\"', DASHBOARD.read_text()))
    assert selected == jobs == {"triton"}


def test_pushgateway_is_scraped_keeping_the_pushed_jobs(objects):
    from components.core.metrics import MONITOR_JOB, PIPELINE_JOB

    monitor = objects[("ServiceMonitor", "pushgateway")]["spec"]
    (endpoint,) = monitor["endpoints"]
    assert endpoint["honorLabels"] is True and endpoint["port"] == "http"
    # The prometheus-pushgateway chart's Service: app.kubernetes.io/name=prometheus-pushgateway,
    # instance=<release>, port "http"; the release is modules/platform's.
    assert monitor["selector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus-pushgateway",
                                                  "app.kubernetes.io/instance": unq(platform_locals()["pushgateway_release"])}
    pushgateway = platform_resource("helm_release", "pushgateway")
    assert "enabled = false" in unq(pushgateway["values"][0])  # one ServiceMonitor, not two
    # The jobs the pushes carry (kept by honorLabels): the run log's and the monitor's.
    pushes = {path: Path(REPO / path).read_text() for path in ("components/core/runlog.py",
                                                               "components/monitoring/report.py")}
    assert "job=M.PIPELINE_JOB" in pushes["components/core/runlog.py"]
    assert "job=M.MONITOR_JOB" in pushes["components/monitoring/report.py"]
    assert MONITOR_JOB != PIPELINE_JOB


def used_metrics() -> dict[str, set[str]]:
    """{metric: where} for every metric name in a rule or a dashboard panel."""
    exprs = {r["alert"]: r["expr"] for r in rules()}
    dashboard = json.loads(DASHBOARD.read_text())

    def panels(node):
        for panel in node.get("panels", []):
            yield panel
            yield from panels(panel)

    for panel in panels(dashboard):
        for i, target in enumerate(panel.get("targets", [])):
            exprs[f"panel {panel.get('title')} #{i}"] = target["expr"]
    out: dict[str, set[str]] = {}
    for where, expr in exprs.items():
        stripped = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values are not metrics
        stripped = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", stripped)
        for name in re.findall(r"\b([a-z_][a-z0-9_]*)\b(?!\s*\()", stripped):
            if name not in PROMQL_WORDS and not re.fullmatch(r"[0-9smhd]+", name):
                out.setdefault(name, set()).add(where)
    return out


PROMQL_WORDS = {"by", "without", "and", "or", "unless", "on", "ignoring", "group_left", "group_right", "bool",
                "offset", "model", "challenger", "pipeline", "feature", "method", "gpu_uuid", "quantile", "instance", "job",
                "version", "target", "e",
                # aggregations, written `max by (x) (...)` (so not followed by a parenthesis)
                "sum", "max", "min", "avg", "count", "topk", "bottomk", "stddev"}


def test_every_metric_used_is_produced_by_something_installed():
    from components.core.metrics import EXTERNAL_METRICS, METRICS, TRITON_METRICS

    used = used_metrics()
    assert {"nv_inference_queue_duration_us", "flightdeck_drift_share", "up"} <= set(used)
    unproduced = {m: sorted(w) for m, w in used.items() if m not in set(METRICS) | TRITON_METRICS | EXTERNAL_METRICS}
    assert unproduced == {}
    # The producers are installed: Triton's series through the triton ServiceMonitor (above),
    # flightdeck_* through the Pushgateway's, kube_* by kube-state-metrics, which
    # kube-prometheus-stack installs unless told not to.
    stack = unq(platform_resource("helm_release", "kube_prometheus_stack")["values"][0])
    assert "kubeStateMetrics" not in stack and "kube-state-metrics" not in stack.replace("# ", "")


def test_dashboard_reaches_the_grafana_sidecar(objects):
    config_map = objects[("ConfigMap", "flightdeck-dashboard")]
    assert json.loads(config_map["data"]["flightdeck.json"]) == json.loads(DASHBOARD.read_text())
    stack = unq(platform_resource("helm_release", "kube_prometheus_stack")["values"][0])
    sidecar = re.search(r'label\s*=\s*"([^"]+)",\s*labelValue\s*=\s*"([^"]+)"', stack)
    assert sidecar and config_map["metadata"]["labels"][sidecar.group(1)] == sidecar.group(2)
    assert config_map["metadata"]["namespace"] == "monitoring"  # the sidecar's own namespace


def test_alertmanager_pages_on_page_and_posts_warnings_to_slack(objects):
    config = objects[("AlertmanagerConfig", "flightdeck")]["spec"]
    receivers = {r["name"]: r for r in config["receivers"]}
    routes = {m["value"]: route["receiver"] for route in config["route"]["routes"] for m in route["matchers"]
              if m["name"] == "severity" and m["matchType"] == "="}
    assert routes == {"page": "pagerduty", "warning": "slack"}
    assert config["route"]["receiver"] == "slack"  # nothing unrouted is dropped
    assert {r["labels"]["severity"] for r in rules()} <= set(routes)
    (pagerduty,) = receivers["pagerduty"]["pagerdutyConfigs"]
    (slack,) = receivers["slack"]["slackConfigs"]
    # Keys by reference to the Secret modules/platform creates, with the keys it writes.
    secret = platform_resource("kubernetes_secret_v1", "alertmanager_oncall")
    (meta,) = secret["metadata"]
    keys = {unq(k) for k in secret["data"]}
    assert pagerduty["routingKey"] == {"name": unq(meta["name"]), "key": "pagerduty-routing-key"}
    assert slack["apiURL"] == {"name": unq(meta["name"]), "key": "slack-webhook-url"}
    assert {pagerduty["routingKey"]["key"], slack["apiURL"]["key"]} == keys
    assert "runbook_url" in pagerduty["pagerDutyLinkConfigs"][0]["href"] and "runbook_url" in slack["titleLink"]
    # kube-prometheus-stack's Alertmanager takes this object as its whole configuration.
    stack = unq(platform_resource("helm_release", "kube_prometheus_stack")["values"][0])
    assert re.search(r'alertmanagerConfiguration\s*=\s*\{\s*name\s*=\s*"flightdeck"\s*\}', stack)
