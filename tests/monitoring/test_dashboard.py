"""The Grafana dashboard: valid structure, the three sections, and queries that name real metrics."""

from __future__ import annotations

import json
from pathlib import Path

from components.core.metrics import EXTERNAL_METRICS, METRICS, TRITON_METRICS

from .promql import metric_names

DASHBOARD = Path(__file__).resolve().parents[2] / "infra/monitoring/grafana/flightdeck.json"


def test_dashboard_structure_and_metrics():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["title"] and isinstance(dash["schemaVersion"], int)
    assert {v["name"] for v in dash["templating"]["list"]} == {"datasource", "model"}
    panels = dash["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    rows = [p["title"] for p in panels if p["type"] == "row"]
    assert rows == ["Serving (Triton)", "Data quality", "Model quality"]
    known = set(METRICS) | TRITON_METRICS | EXTERNAL_METRICS
    used = set()
    for p in panels:
        grid = p["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, p["title"]
        if p["type"] == "row":
            continue
        assert p["type"] in ("timeseries", "stat", "table") and p["targets"], p["title"]
        assert p["datasource"]["uid"] == "${datasource}"
        for t in p["targets"]:
            names = metric_names(t["expr"])
            assert names and names <= known, (p["title"], names - known)
            used |= names
    # The dashboard covers the metrics the monitor exports (drift, AUC, freshness, version, runs).
    for name in ("flightdeck_drift_share", "flightdeck_feature_drift_score", "flightdeck_model_auc",
                 "flightdeck_feature_freshness_seconds", "flightdeck_serving_model_version",
                 "flightdeck_pipeline_last_success_timestamp_seconds", "nv_inference_request_summary_us"):
        assert name in used, name
