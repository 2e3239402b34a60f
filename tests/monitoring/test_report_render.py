"""Evidently's HTML report off the monitor's hot path (issue 17, item 5), on real July days.

The monitor publishes the rows its drift statistics compared; `flightdeck monitor-report` draws
Evidently's report from exactly those rows: every number in it equals the monitor's and scipy's on the
same rows. Rendering is idempotent, a stale report (the day monitored again) is redrawn, and a day
that cannot be drawn fails with a message naming it.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from types import SimpleNamespace

import pandas as pd
import pytest

from components.contracts import layout, schema
from components.contracts.errors import StageFailed
from components.contracts.stages import MonitorParams
from components.monitoring import calibration as mb
from components.monitoring.drift import SCORE, scipy_score
from components.monitoring.monitor import monitor
from components.monitoring.render import render_report

from .conftest import REPO_ROOT

DAY = "2013-07-14"
# Evidently's counter widget of one ValueDrift, as its HTML embeds it.
COUNTER = re.compile(r'"value": "Drift in column \'(\w+)\'", "label": "Data drift (not )?detected\. '
                     r'Drift detection method: ([^.]+)\. Drift score: ([0-9.]+)"')


@pytest.fixture
def monitored(local_store, frame, jan_mar_model, jan_mar_scorer):
    """July 8-14 scored by the January-March model (labels landed), July 14 monitored."""
    for day in pd.date_range("2013-07-08", DAY):
        mb.publish_predictions(local_store, frame, str(day.date()), jan_mar_model, jan_mar_scorer)
        mb.publish_labels(local_store, frame, str(day.date()))
    return monitor(MonitorParams(date=DAY), local_store)


def _summary_scores(store, day=DAY) -> dict[str, dict]:
    summary = json.loads(store.read_published(layout.monitoring_prefix(schema.parse_day(day)), "summary.json"))
    return {**summary["drift"]["features"], SCORE: summary["drift"]["prediction"]}


def _compared(store, day=DAY) -> tuple[pd.DataFrame, pd.DataFrame]:
    prefix = layout.monitoring_prefix(schema.parse_day(day))
    return (pd.read_parquet(io.BytesIO(store.read_published(prefix, "drift_reference.parquet"))),
            pd.read_parquet(io.BytesIO(store.read_published(prefix, "drift_current.parquet"))))


def test_the_published_compared_rows_give_the_monitors_numbers_with_scipy(local_store, monitored, frame):
    scores = _summary_scores(local_store)
    ref, cur = _compared(local_store)
    assert len(ref) == 5000 and len(cur) == len(mb.days(frame, "2013-07-08", DAY))  # a week: not sampled
    assert list(ref.columns) == list(cur.columns) and set(ref.columns) == set(scores) and len(scores) == 24
    for col, entry in scores.items():
        assert entry["score"] == pytest.approx(scipy_score(ref[col], cur[col], entry["method"]), rel=1e-9,
                                               abs=1e-12), col
    assert scores["temp"]["method"] == "wasserstein" and scores["dest"]["method"] == "jensenshannon"
    assert scores[SCORE]["method"] == "psi" and monitored["prediction_drift"] == scores[SCORE]["score"]


def test_the_rendered_report_draws_the_monitors_numbers_from_the_same_rows(local_store, monitored):
    day = schema.parse_day(DAY)
    before = local_store.published(layout.monitoring_prefix(day))
    result = render_report(DAY, local_store)
    assert result["rendered"] is True and result["monitoring_version"] == before["version"]
    assert local_store.published(layout.monitoring_prefix(day)) == before  # the monitoring results are untouched

    scores = _summary_scores(local_store)
    ref, cur = _compared(local_store)
    target = layout.monitoring_report_prefix(day)
    values = json.loads(local_store.read_published(target, "report_values.json"))
    assert values["monitoring_version"] == before["version"]
    assert values["rows"] == {"reference": len(ref), "current": len(cur)}
    assert set(values["columns"]) == set(scores)
    for col, drawn in values["columns"].items():
        assert drawn["score"] == scores[col]["score"], col  # Evidently's Report on the stored rows: the same float
        assert drawn["score"] == pytest.approx(scipy_score(ref[col], cur[col], drawn["method"]), rel=1e-9), col

    data = local_store.read_published(target, "report.html")
    page = data.decode()
    assert len(data) == result["bytes"] and "flightdeck monitoring: 2013-07-14" in page
    counters = {m.group(1): m for m in COUNTER.finditer(page)}
    assert set(counters) == set(scores), set(scores) ^ set(counters)
    for col, m in counters.items():  # what the page shows, to Evidently's three decimals
        assert float(m.group(4)) == pytest.approx(round(scores[col]["score"], 3), abs=1e-9), col
        assert (m.group(2) is None) == scores[col]["drifted"], col  # "Data drift detected" or "not detected"


def test_monitor_report_cli_renders_once_then_finds_it_and_force_redraws(local_store, monitored, tmp_path):
    def cli(*args):
        proc = subprocess.run([sys.executable, "-m", "components.ops.cli", "monitor-report", *args],
                              capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
        return proc

    missing = cli("--date", "2013-07-20")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "no monitoring results are published for 2013-07-20" in missing.stderr
    assert "flightdeck monitor --date 2013-07-20" in missing.stderr

    out = tmp_path / "copy" / "report.html"
    first = cli("--date", DAY, "--out", str(out))
    assert first.returncode == 0, first.stderr[-2000:]
    first = json.loads(first.stdout)
    target = layout.monitoring_report_prefix(schema.parse_day(DAY))
    published = local_store.published(target)
    assert first["rendered"] is True and first["report"].endswith(f"{published['version']}/report.html")
    assert out.read_bytes() == local_store.read_published(target, "report.html")

    again = json.loads(cli("--date", DAY).stdout)
    assert again["rendered"] is False and again["report"] == first["report"]
    assert local_store.published(target)["version"] == published["version"]  # nothing drawn or published

    forced = json.loads(cli("--date", DAY, "--force").stdout)
    assert forced["rendered"] is True and local_store.published(target)["version"] != published["version"]


def test_a_day_monitored_again_gets_its_report_redrawn(local_store, monitored, frame):
    first = render_report(DAY, local_store)
    mb.publish_labels(local_store, frame, DAY)
    monitor(MonitorParams(date=DAY), local_store)  # a new publication of the day's results
    redrawn = render_report(DAY, local_store)  # no --force: the report of the earlier run is stale
    now = local_store.published(layout.monitoring_prefix(schema.parse_day(DAY)))["version"]
    report = local_store.published(layout.monitoring_report_prefix(schema.parse_day(DAY)))
    assert now != first["monitoring_version"] and redrawn["rendered"] is True
    assert redrawn["monitoring_version"] == now and report["meta"]["monitoring_version"] == now
    assert render_report(DAY, local_store)["rendered"] is False  # and now it is current


def test_a_day_without_its_compared_rows_fails_naming_it(local_store, monitored):
    prefix = layout.monitoring_prefix(schema.parse_day(DAY))
    record = local_store.published(prefix)
    local_store.delete(f"{prefix}/{record['version']}/drift_current.parquet")  # what the backtest prunes
    with pytest.raises(StageFailed, match=r"the compared rows of 2013-07-14 are gone .*flightdeck monitor --date "
                                          r"2013-07-14"):
        render_report(DAY, local_store)
    assert local_store.published(layout.monitoring_report_prefix(schema.parse_day(DAY))) is None


def test_the_kfp_monitor_step_shows_the_report_drawn_from_the_runs_rows(local_store, monitored, tmp_path):
    from pipelines.steps import run_stage

    report = SimpleNamespace(path=str(tmp_path / "report.html"))  # where KFP hands a step its HTML output
    out = run_stage("monitor", {"date": DAY, "push": False}, report=report)
    page = (tmp_path / "report.html").read_text()
    assert page == local_store.read_published(layout.monitoring_report_prefix(schema.parse_day(DAY)),
                              "report.html").decode()
    values = json.loads(local_store.read_published(layout.monitoring_report_prefix(schema.parse_day(DAY)),
                                   "report_values.json"))
    assert values["columns"][SCORE]["score"] == out["prediction_drift"]
    assert values["monitoring_version"] == local_store.published(layout.monitoring_prefix(
        schema.parse_day(DAY)))["version"]
