"""The Prometheus alert rules: promtool checks them and runs their unit tests (each alert fires on
synthetic series, and does not fire on the healthy ones); every alert is complete and links to a
RUNBOOK.md section; every metric a rule names exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from components.core.metrics import EXTERNAL_METRICS, METRICS, TRITON_METRICS

from .promql import metric_names
from .servers import RULES, required_tool

ROOT = Path(__file__).resolve().parents[2]
RULE_TESTS = ROOT / "infra/monitoring/alerts_test.yml"


def alerts() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r]


def test_promtool_check_rules():
    proc = subprocess.run([required_tool("promtool"), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{len(alerts())} rules found" in proc.stdout


def test_promtool_unit_tests_fire_and_do_not_fire_each_alert():
    proc = subprocess.run([required_tool("promtool"), "test", "rules", str(RULE_TESTS)], capture_output=True, text=True, timeout=120,
                          cwd=RULE_TESTS.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cases = [c for t in yaml.safe_load(RULE_TESTS.read_text())["tests"] for c in t["alert_rule_test"]]
    fired = {c["alertname"] for c in cases if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    names = {a["alert"] for a in alerts()}
    assert fired == names and quiet == names, (names - fired, names - quiet)


def test_every_alert_has_severity_summary_description_and_a_runbook_section():
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).strip().replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", (ROOT / "RUNBOOK.md").read_text(), re.M)}
    for rule in alerts():
        assert rule["labels"]["severity"] in ("page", "warning"), rule["alert"]
        for key in ("summary", "description", "runbook_url"):
            assert rule["annotations"].get(key), (rule["alert"], key)
        url = rule["annotations"]["runbook_url"]
        assert url.startswith("RUNBOOK.md#") and url.split("#", 1)[1] in anchors, (rule["alert"], url)


def test_rules_name_only_metrics_that_exist():
    known = set(METRICS) | TRITON_METRICS | EXTERNAL_METRICS
    for rule in alerts():
        names = metric_names(rule["expr"])
        assert names and names <= known, (rule["alert"], names - known)


def test_the_promql_name_extractor():
    expr = 'sum by (model) (rate(nv_inference_request_failure{model=~"a|b"}[5m])) / up{job="x"} > 0.01 and on(model) foo'
    assert metric_names(expr) == {"nv_inference_request_failure", "up", "foo"}


RUNBOOK_PARTS = ("Meaning", "Confirm", "Mitigate", "Roll back")


def runbook_sections() -> dict[str, str]:
    """'## Title' -> the section's text, up to the next '## ' heading."""
    text = (ROOT / "RUNBOOK.md").read_text()
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


def test_every_alert_section_of_the_runbook_says_what_it_means_how_to_confirm_mitigate_and_roll_back():
    sections = runbook_sections()
    for rule in alerts():
        body = sections.get(rule["alert"])
        assert body is not None, f"RUNBOOK.md has no '## {rule['alert']}' section"
        found = [(m.start(), m.group(1)) for m in re.finditer(r"^\*\*(.+?)\.\*\*", body, re.M)]
        names = [name for _, name in found]
        assert names == list(RUNBOOK_PARTS), (rule["alert"], names)
        # Each part says something: the text up to the next part is not empty.
        ends = [start for start, _ in found[1:]] + [len(body)]
        for (start, name), end in zip(found, ends, strict=True):
            content = body[start:end].split(".**", 1)[1].strip()
            assert len(content) >= 20, (rule["alert"], name, content)


def test_drift_and_performance_alerts_use_the_policy_thresholds_not_copies():
    """The thresholds come from the policy gauges the monitor exports; no number is copied into the rules."""
    from dataclasses import fields

    from components.monitoring.policy import RetrainPolicy
    from components.monitoring.report import POLICY_GAUGES

    assert set(POLICY_GAUGES.values()) <= {f.name for f in fields(RetrainPolicy)}
    assert set(POLICY_GAUGES) <= set(METRICS)
    uses = {"DataDriftDetected": {"flightdeck_policy_drift_share_threshold"},
            "ModelPerformanceDrop": {"flightdeck_policy_auc_drop", "flightdeck_policy_min_labelled_rows"}}
    by_name = {a["alert"]: a for a in alerts()}
    for name, gauges in uses.items():
        expr = by_name[name]["expr"]
        assert gauges <= metric_names(expr), (name, expr)
        numbers = re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])", re.sub(r'"[^"]*"', "", expr))
        assert numbers == [], (name, numbers)
        texts = " ".join(by_name[name]["annotations"].values())
        for value in ("0.2", "20%", "0.10", "1000", "14 days", " 3 "):
            assert value not in texts, (name, value)
