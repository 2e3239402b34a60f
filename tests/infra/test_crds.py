"""Every object the charts of infra/k8s render, in every environment, matches a schema: built-in
kinds the Kubernetes 1.33 schemas, custom resources (PrometheusRule, ServiceMonitor,
AlertmanagerConfig) the openAPIV3Schema of their CRD, as prometheus-operator v0.85.0 publishes it:
the operator version of the kube-prometheus-stack chart modules/platform pins, whose CRDs these
are (tests/infra/data/crds/prometheus-operator, with its LICENSE, README and BLOBS). A kind with
no schema fails (tests/infra/crd_schema.py has the rules)."""

from __future__ import annotations

import copy
import shutil

import pytest
import yaml

from tests.infra.crd_schema import CRDS, NoSchema, is_builtin, kept_schemas, problems, read_crds
from tests.infra.helm import documents, helm_template
from tests.infra.test_k8s import ENVS, environment_values
from tests.infra.test_monitoring_wiring import FILES
from tests.infra.test_terraform import PLATFORM, TF, parse, unq
from tests.infra.vendored import blob_mismatches, read_blobs

K8S = TF.parents[0] / "k8s"
PROMETHEUS_OPERATOR = CRDS / "prometheus-operator"
# kube-prometheus-stack 77.6.0 (modules/platform chart_versions) has appVersion v0.85.0; its crds
# subchart carries these three files unchanged (compared 2026-12-04 at tag kube-prometheus-stack-77.6.0).
KUBE_PROMETHEUS_STACK = "77.6.0"
OPERATOR_VERSION = "0.85.0"
OPERATOR_COMMIT = "2ed4172b180213b6082025237bb0c155b74b6080"  # 'v0.85.0^{}'


def runbook_base_url(env: str) -> str:
    return unq(parse(TF / "environments" / env / "terraform.tfvars")["runbook_base_url"])


def rendered(env: str) -> dict[str, list[dict]]:
    """{chart: its objects} for every chart of infra/k8s, with the values environments/<env> gives it."""
    charts = {
        "triton": helm_template(K8S / "triton", namespace="flightdeck", overrides=environment_values(env)),
        "monitoring": helm_template(K8S / "monitoring", namespace="monitoring", release="flightdeck-monitoring",
                                    files=FILES, overrides={"runbookBaseUrl": runbook_base_url(env)}),
    }
    assert set(charts) == {p.parent.name for p in K8S.glob("*/Chart.yaml")}, "a chart that is not rendered here"
    return {chart: documents(text) for chart, text in charts.items()}


@pytest.fixture(scope="module")
def objects() -> dict[str, dict[str, list[dict]]]:
    return {env: rendered(env) for env in ENVS}


def monitoring_object(objects, kind: str, name: str) -> dict:
    (obj,) = [o for o in objects["dev"]["monitoring"] if (o["kind"], o["metadata"]["name"]) == (kind, name)]
    return copy.deepcopy(obj)


# -- the kept CRDs ------------------------------------------------------------------------------------


def test_kept_crds_are_prometheus_operators_files_of_the_pinned_chart():
    assert blob_mismatches(PROMETHEUS_OPERATOR) == []
    assert "Apache License" in (PROMETHEUS_OPERATOR / "LICENSE").read_text()
    readme = (PROMETHEUS_OPERATOR / "README.md").read_text()
    assert OPERATOR_COMMIT in readme and f"v{OPERATOR_VERSION}" in readme and KUBE_PROMETHEUS_STACK in readme
    assert OPERATOR_COMMIT in (PROMETHEUS_OPERATOR / "BLOBS").read_text()
    # Moving the chart means moving these CRDs with it (README: how to update).
    variables = {unq(k): b for v in parse(PLATFORM / "variables.tf")["variable"] for k, b in v.items()}
    assert unq(variables["chart_versions"]["default"]["kube_prometheus_stack"]) == KUBE_PROMETHEUS_STACK
    crds = read_crds(sorted(PROMETHEUS_OPERATOR.rglob("*.yaml")))
    assert len(crds) == len([p for p in read_blobs(PROMETHEUS_OPERATOR) if p.endswith(".yaml")]) == 3
    for crd in crds:
        assert crd["metadata"]["annotations"]["operator.prometheus.io/version"] == OPERATOR_VERSION


def test_the_blob_check_finds_an_edited_missing_or_added_file(tmp_path):
    copy_ = tmp_path / "prometheus-operator"
    shutil.copytree(PROMETHEUS_OPERATOR, copy_)
    crd_dir = copy_ / "example" / "prometheus-operator-crd"
    rules = crd_dir / "monitoring.coreos.com_prometheusrules.yaml"
    rules.write_text(rules.read_text().replace("type: string", "type: integer", 1))
    (crd_dir / "monitoring.coreos.com_servicemonitors.yaml").unlink()
    (crd_dir / "monitoring.coreos.com_podmonitors.yaml").write_text("---\n")
    found = blob_mismatches(copy_)
    assert len(found) == 3, found
    assert any("prometheusrules.yaml: changed" in p for p in found)
    assert any("servicemonitors.yaml: missing" in p for p in found)
    assert any("podmonitors.yaml: not upstream's" in p for p in found)


def test_kept_crds_are_exactly_the_custom_kinds_rendered(objects):
    custom = {(o["apiVersion"], o["kind"]) for charts in objects.values() for objs in charts.values()
              for o in objs if not is_builtin(o)}
    assert custom == set(kept_schemas()) == {("monitoring.coreos.com/v1", "PrometheusRule"),
                                             ("monitoring.coreos.com/v1", "ServiceMonitor"),
                                             ("monitoring.coreos.com/v1alpha1", "AlertmanagerConfig")}


# -- every rendered object ----------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_every_rendered_object_matches_its_schema(objects, env):
    checked = {}
    for chart, objs in objects[env].items():
        for obj in objs:
            assert problems(obj) == [], f"{env} {chart} {obj['kind']} {obj['metadata']['name']}"
            checked[obj["kind"]] = checked.get(obj["kind"], 0) + 1
    assert checked["PrometheusRule"] == 1 and checked["ServiceMonitor"] == 2 and checked["AlertmanagerConfig"] == 1
    assert checked["Deployment"] == 1


@pytest.mark.parametrize("obj", [
    {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "triton"}, "spec": {}},
    {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor", "metadata": {"name": "x"}, "spec": {}},
    {"apiVersion": "monitoring.coreos.com/v2", "kind": "PrometheusRule", "metadata": {"name": "x"}, "spec": {}},
], ids=["ScaledObject", "PodMonitor-no-crd-kept", "PrometheusRule-unserved-version"])
def test_a_kind_without_a_schema_is_refused(obj):
    with pytest.raises(NoSchema, match="no CRD kept"):
        problems(obj)


def _rule(objects):
    return monitoring_object(objects, "PrometheusRule", "flightdeck")


def _break_rule_for(objects):
    obj = _rule(objects)
    obj["spec"]["groups"][0]["rules"][0]["for"] = 5  # an integer where a duration string goes
    return obj, "spec.groups.0.rules.0.for: 5 is not of type 'string'"


def _break_rule_duration(objects):
    obj = _rule(objects)
    obj["spec"]["groups"][0]["rules"][0]["for"] = "5 minutes"
    return obj, "spec.groups.0.rules.0.for: '5 minutes' does not match"


def _break_rule_label(objects):
    obj = _rule(objects)
    obj["spec"]["groups"][0]["rules"][0]["labels"]["severity"] = 1
    return obj, "spec.groups.0.rules.0.labels.severity: 1 is not of type 'string'"


def _break_rule_expr(objects):
    obj = _rule(objects)
    del obj["spec"]["groups"][0]["rules"][0]["expr"]
    return obj, "spec.groups.0.rules.0: 'expr' is a required property"


def _break_monitor_field(objects):
    # A misspelt field: the API server would drop it (pruning) and the scrape interval be the default.
    obj = monitoring_object(objects, "ServiceMonitor", "triton")
    obj["spec"]["endpoints"][0]["scrapeInterval"] = obj["spec"]["endpoints"][0].pop("interval")
    return obj, "spec.endpoints.0: Additional properties are not allowed ('scrapeInterval' was unexpected)"


def _break_monitor_port(objects):
    obj = monitoring_object(objects, "ServiceMonitor", "triton")
    obj["spec"]["endpoints"][0]["targetPort"] = 8002.5  # int-or-string: neither
    return obj, "spec.endpoints.0.targetPort: 8002.5 is not valid under any of the given schemas"


def _break_child_route(objects):
    obj = monitoring_object(objects, "AlertmanagerConfig", "flightdeck")
    obj["spec"]["route"]["routes"][0]["matchers"][0]["matchType"] = "=="
    return obj, "spec.route.routes.0.matchers.0.matchType: '==' is not one of"


def _break_receiver(objects):
    obj = monitoring_object(objects, "AlertmanagerConfig", "flightdeck")
    obj["spec"]["receivers"][0]["pagerdutyConfigs"][0]["sendResolved"] = "yes"
    return obj, "spec.receivers.0.pagerdutyConfigs.0.sendResolved: 'yes' is not of type 'boolean'"


def _break_metadata(objects):
    obj = _rule(objects)
    del obj["metadata"]["name"]
    return obj, "metadata: 'name' is a required property"


@pytest.mark.parametrize("breaker", [_break_rule_for, _break_rule_duration, _break_rule_label, _break_rule_expr,
                                     _break_monitor_field, _break_monitor_port, _break_child_route, _break_receiver,
                                     _break_metadata], ids=lambda f: f.__name__[len("_break_"):])
def test_a_broken_custom_resource_is_rejected(objects, breaker):
    obj, expected = breaker(objects)
    found = problems(obj)
    assert any(p.startswith(expected) for p in found), found


def test_int_or_string_takes_both(objects):
    for port in (8002, "metrics"):
        obj = monitoring_object(objects, "ServiceMonitor", "triton")
        obj["spec"]["endpoints"][0]["targetPort"] = port
        assert problems(obj) == []


def test_a_broken_builtin_object_is_rejected(objects):
    (config_map,) = [copy.deepcopy(o) for o in objects["prod"]["monitoring"] if o["kind"] == "ConfigMap"]
    config_map["data"]["flightdeck.json"] = {"not": "a string"}
    assert problems(config_map), "a ConfigMap value that is not a string passed"


def test_kept_crd_files_parse_as_the_api_server_reads_them():
    # A bare `=` is a string to the API server (YAML 1.2); crd_schema reads it so.
    crd = [c for c in read_crds(sorted(PROMETHEUS_OPERATOR.rglob("*.yaml"))) if c["spec"]["names"]["kind"] == "AlertmanagerConfig"]
    matcher = crd[0]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["route"]
    assert "=" in matcher["properties"]["matchers"]["items"]["properties"]["matchType"]["enum"]
    with pytest.raises(yaml.YAMLError):  # what plain safe_load makes of the same file
        list(yaml.safe_load_all((PROMETHEUS_OPERATOR / "example" / "prometheus-operator-crd" /
                                 "monitoring.coreos.com_alertmanagerconfigs.yaml").read_text()))
