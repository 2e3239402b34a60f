"""`make bench` keeps working: one area's quick run through the real runner writes its rows (numbers,
ratios against a baseline of the same run) and leaves the other areas' rows of an earlier run alone.
No timing is asserted: the figures themselves belong to make bench (docs/BENCHMARKS.md)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO


def test_a_quick_area_run_writes_its_rows_and_keeps_the_other_areas(tmp_path):
    earlier = {"area": "model", "name": "holdout ROC AUC: MLP", "value": 0.719, "unit": "AUC",
               "baseline_name": "LightGBM", "baseline_value": 0.721, "higher_is_better": True, "target": "",
               "notes": "from an earlier full run", "peak_rss_mb": 1758.0, "extra": {}, "ratio": 0.997,
               "run": {"quick": False, "at": "2026-12-01T11:21:00Z"}}
    (tmp_path / "bench.json").write_text(json.dumps([earlier]))
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--out", str(tmp_path), "monitor"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((tmp_path / "bench.json").read_text())
    assert [r["area"] for r in rows] == sorted(r["area"] for r in rows)
    assert [r for r in rows if r["area"] == "model"] == [earlier]
    measured = [r for r in rows if r["area"] == "monitor"]
    assert [r["name"] for r in measured] == [
        "monitor stage per 100k scored rows",
        "drift statistics, hot path (Evidently stat tests, no figures) per 100k rows",
        "drift statistics through Evidently's Report (figures built, the path before) per 100k rows",
        "HTML report on demand (flightdeck monitor-report) per 100k rows",
        "drift statistics, hot path, 1x year", "drift statistics, hot path, 3x year"]
    for r in measured:
        assert r["value"] > 0 and r["baseline_value"] > 0 and r["ratio"] == r["value"] / r["baseline_value"]
        assert r["run"]["quick"] is True
    # the monitor's drift scores (Evidently's stat tests) equal the same statistics computed with scipy,
    # and those Evidently's Report draws
    assert "max |Evidently - scipy| 0.0e+00" in measured[0]["notes"], measured[0]["notes"]
    assert "max |Report - hot path| 0.0e+00" in measured[2]["notes"], measured[2]["notes"]
    table = (tmp_path / "bench.md").read_text().splitlines()
    assert len(table) == 2 + len(rows)
    assert any("| model | holdout ROC AUC: MLP |" in line and "from an earlier full run" in line for line in table)
    assert all("quick run; " in line for line in table if line.startswith("| monitor |"))
