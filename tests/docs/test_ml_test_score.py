"""docs/ML_TEST_SCORE.md lists all 28 tests of the ML Test Score, names only things that exist, and adds up.

Test node ids are resolved by parsing the test files with ast (no collection, no imports); alert
names against infra/monitoring/alerts.yml; metric names against components.core.metrics.METRICS. Every
point claimed is backed by at least one test or alert; each status carries the paper's points for its
kind; the section scores are the sums, the table repeats them, the final score is the minimum.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
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
# The status of each test and the points the paper gives it: automated 1; automated but partial, or manual with the
# result documented, 0.5; nothing 0.
POINTS = {"automated": 1.0, "partial": 0.5, "manual": 0.5, "not covered yet": 0.0}
STATUS = re.compile(r"^Status: (automated|partial|manual|not covered yet) \((1|0\.5|0)\)", re.M)
SECTION_SCORE = re.compile(r"^Section score: (\d+(?:\.\d+)?)\.$", re.M)
# The score table's rows: section title -> the group of its tests.
TABLE_ROWS = {"features and data": "Data", "model development": "Model", "ML infrastructure": "Infrastructure",
              "monitoring": "Monitor"}
HEADING = re.compile(r"^### (Data|Model|Infrastructure|Monitor) (\d)\. (.+)$", re.M)
NODE = re.compile(r"`(tests/[\w/]+\.py)::([\w:\[\]\-.]+)`")
ALERT = re.compile(r"`alert:(\w+)`")
METRIC = re.compile(r"`metric:(\w+)`")


def sections(text: str | None = None) -> dict[tuple[str, int], tuple[str, str]]:
    text = DOC.read_text() if text is None else text
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


def points(text: str | None = None) -> dict[tuple[str, int], float]:
    """The points of each of the 28 tests, from its Status line (checked against its kind)."""
    out = {}
    for (group, number), (title, body) in sections(text).items():
        status = STATUS.search(body)
        assert status, f"{group} {number} ({title}) has no Status line of the form 'Status: <kind> (<points>)'"
        assert float(status.group(2)) == POINTS[status.group(1)], \
            f"{group} {number}: '{status.group(1)}' scores {POINTS[status.group(1)]}, not {status.group(2)}"
        out[(group, number)] = float(status.group(2))
    return out


def arithmetic_errors(text: str) -> list[str]:
    """What does not add up: section scores that are not the sums, a table that does not repeat them, a final
    score that is not the minimum."""
    sums: dict[str, float] = {}
    for (group, _), value in points(text).items():
        sums[group] = sums.get(group, 0.0) + value
    errors = []
    stated = {}
    for chunk in text.split("\n## ")[1:]:  # one chunk per H2 section: its tests and its "Section score"
        groups = {m.group(1) for m in HEADING.finditer("\n" + chunk)}
        if not groups:
            continue
        found = SECTION_SCORE.findall(chunk)
        if len(groups) != 1 or len(found) != 1:
            errors.append(f"section {chunk.splitlines()[0]!r}: one group and one 'Section score' line expected")
            continue
        stated[groups.pop()] = float(found[0])
    for group, total in sums.items():
        if stated.get(group) != total:
            errors.append(f"{group}: the section score says {stated.get(group)}, its tests add up to {total}")
    table = dict(re.findall(r"^\| (features and data|model development|ML infrastructure|monitoring) \| "
                            r"(\d+(?:\.\d+)?) \|", text, re.M))
    for row, group in TABLE_ROWS.items():
        if row not in table or float(table[row]) != sums.get(group):
            errors.append(f"the table's {row!r} row says {table.get(row)}, its tests add up to {sums.get(group)}")
    final = re.search(r"^\| \*\*final \(minimum\)\*\* \| \*\*(\d+(?:\.\d+)?)\*\* \|", text, re.M)
    if not final or float(final.group(1)) != min(sums.values()):
        errors.append(f"the final score says {final and final.group(1)}, the minimum of the sections is "
                      f"{min(sums.values())}")
    return errors


def test_each_test_names_its_coverage_or_says_it_has_none():
    scored = points()
    for (group, number), (title, body) in sections().items():
        backing = NODE.findall(body) + ALERT.findall(body)
        if scored[(group, number)] == 0:
            assert "Needed" in body, f"{group} {number}: say what would be needed"
        else:
            assert backing, f"{group} {number} ({title}) claims {scored[(group, number)]} but names no test or alert"
        if scored[(group, number)] < 1:
            assert "Needed" in body, f"{group} {number} ({title}): say what is missing for the full point"


def test_the_scores_add_up():
    assert arithmetic_errors(DOC.read_text()) == []


def test_the_arithmetic_check_catches_a_wrong_sum_a_wrong_table_and_a_wrong_final():
    text = DOC.read_text()
    first = SECTION_SCORE.search(text)
    wrong_sum = text[:first.start(1)] + "99" + text[first.end(1):]
    assert any("section score says 99" in e for e in arithmetic_errors(wrong_sum))
    wrong_final = re.sub(r"(\| \*\*final \(minimum\)\*\* \| \*\*)[\d.]+", r"\g<1>7", text)
    assert any("final score says 7" in e for e in arithmetic_errors(wrong_final))
    status = STATUS.search(text)
    inflated = text[:status.start()] + "Status: partial (1)" + text[status.end():]
    with pytest.raises(AssertionError, match="scores 0.5, not 1"):
        arithmetic_errors(inflated)


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
