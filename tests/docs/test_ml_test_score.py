"""docs/ML_TEST_SCORE.md lists all 28 tests of the ML Test Score and names only things that exist.

Test node ids are resolved by parsing the test files with ast (no collection, no imports); alert
names against infra/monitoring/alerts.yml; metric names against components.core.metrics.METRICS.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "ML_TEST_SCORE.md"

# Breck et al. 2017, Tables I-IV, in order.
RUBRIC = {
    "Data": [
        "Feature expectations are captured in a schema.",
        "All features are beneficial.",
        "No feature's cost is too much.",
        "Features adhere to meta-level requirements.",
        "The data pipeline has appropriate privacy controls.",
        "New features can be added quickly.",
        "All input feature code is tested.",
    ],
    "Model": [
        "Model specs are reviewed and submitted.",
        "Offline and online metrics correlate.",
        "All hyperparameters have been tuned.",
        "The impact of model staleness is known.",
        "A simpler model is not better.",
        "Model quality is sufficient on important data slices.",
        "The model is tested for considerations of inclusion.",
    ],
    "Infrastructure": [
        "Training is reproducible.",
        "Model specs are unit tested.",
        "The ML pipeline is integration tested.",
        "Model quality is validated before serving.",
        "The model is debuggable.",
        "Models are canaried before serving.",
        "Serving models can be rolled back.",
    ],
    "Monitor": [
        "Dependency changes result in notification.",
        "Data invariants hold for training and serving inputs.",
        "Training and serving features compute the same values.",
        "Models are not too stale.",
        "Models are numerically stable.",
        "Computing performance has not regressed.",
        "Prediction quality has not regressed.",
    ],
}
HEADING = re.compile(r"^### (Data|Model|Infrastructure|Monitor) (\d)\. (.+)$", re.M)
NODE = re.compile(r"`(tests/[\w/]+\.py)::([\w:\[\]\-.]+)`")
ALERT = re.compile(r"`alert:(\w+)`")
METRIC = re.compile(r"`metric:(\w+)`")


def sections() -> dict[tuple[str, int], tuple[str, str]]:
    text = DOC.read_text()
    found = list(HEADING.finditer(text))
    out = {}
    for i, m in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(text)
        body = text[m.end():end].split("\n## ")[0]
        out[(m.group(1), int(m.group(2)))] = (m.group(3).strip(), body)
    return out


def defined_tests(path: Path) -> set[str]:
    """'test_x' and 'TestClass::test_x' for every test function the file defines."""
    tree = ast.parse(path.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.update(f"{node.name}::{f.name}" for f in node.body
                         if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and f.name.startswith("test"))
    return names


def test_all_28_tests_are_listed_with_the_papers_titles():
    got = sections()
    expected = {(group, i + 1): title for group, titles in RUBRIC.items() for i, title in enumerate(titles)}
    assert len(expected) == 28
    assert {k: v[0] for k, v in got.items()} == expected


def test_each_test_names_its_coverage_or_says_it_has_none():
    for (group, number), (title, body) in sections().items():
        refs = NODE.findall(body) + ALERT.findall(body) + METRIC.findall(body)
        status = re.search(r"^Status: (automated|partial|not covered yet)", body, re.M)
        assert status, f"{group} {number} ({title}) has no Status line"
        if status.group(1) == "not covered yet":
            assert "Needed" in body, f"{group} {number}: say what would be needed"
        else:
            assert refs, f"{group} {number} ({title}) is marked {status.group(1)} but names no test, alert or metric"


def test_every_named_test_alert_and_metric_exists():
    from components.core.metrics import METRICS

    text = DOC.read_text()
    alerts = {rule["alert"] for group in yaml.safe_load((REPO / "infra/monitoring/alerts.yml").read_text())["groups"]
              for rule in group["rules"] if "alert" in rule}
    cache: dict[str, set[str]] = {}
    missing = []
    for path, name in NODE.findall(text):
        file = REPO / path
        if not file.is_file():
            missing.append(f"{path} (no such file)")
            continue
        defined = cache.setdefault(path, defined_tests(file))
        if name.split("[")[0] not in defined:
            missing.append(f"{path}::{name}")
    missing += [f"alert:{a}" for a in ALERT.findall(text) if a not in alerts]
    missing += [f"metric:{m}" for m in METRIC.findall(text) if m not in METRICS]
    assert NODE.findall(text) and ALERT.findall(text) and METRIC.findall(text)
    assert not missing, "docs/ML_TEST_SCORE.md names things that do not exist: " + ", ".join(missing)


def test_the_checker_catches_a_renamed_test(tmp_path):
    """The resolver is not vacuous: a name that is not defined is not found."""
    sample = tmp_path / "test_sample.py"
    sample.write_text("def test_a():\n    pass\n\nclass TestB:\n    def test_c(self):\n        pass\n")
    assert defined_tests(sample) == {"test_a", "TestB::test_c"}
