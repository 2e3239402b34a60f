"""What reaches Prometheus: the monitor (aws profile: S3 on a moto server) and the run log push to a
real Pushgateway (Debian's prometheus-pushgateway), a real Prometheus scrapes it and evaluates
infra/monitoring/alerts.yml, and the alerts fire (or not) on what was pushed."""

from __future__ import annotations

import pytest

from components.contracts import layout, schema
from components.contracts.errors import StageFailed
from components.contracts.stages import MonitorParams
from components.core import runlog
from components.core.settings import load_settings
from components.monitoring import calibration as mb
from components.monitoring.monitor import monitor
from tests.conftest import free_port

from . import servers
from .conftest import JAN_MAR


@pytest.fixture
def pushgateway(tmp_path):
    with servers.pushgateway(tmp_path) as address:
        yield address


@pytest.fixture
def prometheus(tmp_path, pushgateway):
    with servers.prometheus(tmp_path, pushgateway) as prom:
        yield prom


def test_monitor_pushes_its_metrics_and_the_drift_alert_follows_the_policy(s3_store, pushgateway, prometheus,
                                                                            monkeypatch, frame, jan_mar_scorer):
    monkeypatch.setenv("FLIGHTDECK_PUSHGATEWAY_URL", pushgateway)
    assert load_settings().profile == "aws"
    version = mb.register_reference_model(s3_store, mb.reference_sample(frame, *JAN_MAR, n=2000), jan_mar_scorer,
                                          JAN_MAR, holdout_auc=0.7)
    mb.publish_predictions(s3_store, frame, "2013-07-14", version, jan_mar_scorer)
    result = monitor(MonitorParams(date="2013-07-14", window_days=1), s3_store)
    assert result["pushed"] == pushgateway
    assert result["uri"].startswith("s3://")

    pushed = servers.pushed_samples(pushgateway)
    [share] = pushed["flightdeck_drift_share"]
    assert share.labels["job"] == "flightdeck_monitor" and share.labels["model"] == "flight_delay"
    assert share.value == pytest.approx(result["drift_share"])
    [threshold] = pushed["flightdeck_policy_drift_share_threshold"]
    assert threshold.value == 0.2  # the policy default, exported with the share
    assert not any(name.startswith("flightdeck_pipeline_") for name in pushed)  # the run log's job, not this one
    published = s3_store.read_published(layout.monitoring_prefix(schema.parse_day("2013-07-14")), "metrics.prom")
    assert b"flightdeck_drift_share" in published and b"flightdeck_policy_drift_share_threshold" in published

    # Prometheus scrapes the gateway and evaluates the rule: a July day against a winter model drifts.
    assert result["drift_share"] >= 0.2
    drift_expr = servers.alert_rule("DataDriftDetected")["expr"]
    [fired] = prometheus.wait_for(drift_expr)
    assert fired["metric"] == {"model": "flight_delay"} and fired["value"] == pytest.approx(result["drift_share"])
    assert prometheus.wait_for('ALERTS{alertname="DataDriftDetected",alertstate="firing"}')

    # The policy is overridden (FLIGHTDECK_RETRAIN_*): the same day, re-monitored, no longer drifts by the
    # policy's measure, and the alert moves with it.
    monkeypatch.setenv("FLIGHTDECK_RETRAIN_DRIFT_SHARE_THRESHOLD", "0.95")
    again = monitor(MonitorParams(date="2013-07-14", window_days=1), s3_store)
    assert again["drift_share"] == pytest.approx(result["drift_share"])
    assert prometheus.wait_for("flightdeck_policy_drift_share_threshold == 0.95")
    assert prometheus.query(drift_expr) == []

    # The gateway goes away: the report is still published, and the error says what to check.
    monkeypatch.setenv("FLIGHTDECK_PUSHGATEWAY_URL", f"127.0.0.1:{free_port()}")
    with pytest.raises(StageFailed, match="pushing its metrics to the Pushgateway"):
        monitor(MonitorParams(date="2013-07-14", window_days=1), s3_store)


def test_every_recorded_run_pushes_its_pipeline_gauges_and_a_failure_fires_the_alert(local_store, pushgateway,
                                                                                       prometheus, monkeypatch):
    monkeypatch.setenv("FLIGHTDECK_PUSHGATEWAY_URL", pushgateway)
    failed = runlog.record_run("batch_prediction", "failed", {"reason": "validation"}, store=local_store)
    ok = runlog.record_run("monitoring", "success", {}, store=local_store)
    assert failed["pushed"] == ok["pushed"] == pushgateway and failed["push_error"] is None

    # One group per pipeline: the monitoring push did not replace batch_prediction's series.
    pushed = servers.pushed_samples(pushgateway)
    state = {(s.labels["job"], s.labels["pipeline"]): s.value for s in pushed["flightdeck_pipeline_last_run_failed"]}
    assert state == {("flightdeck_pipeline", "batch_prediction"): 1.0, ("flightdeck_pipeline", "monitoring"): 0.0}
    success = {s.labels["pipeline"]: s.value for s in pushed["flightdeck_pipeline_last_success_timestamp_seconds"]}
    assert success == {"monitoring": pytest.approx(ok["ts"])}  # batch_prediction has never succeeded
    # The same gauges are in the store, as text (the local profile has no gateway).
    text = local_store.read_bytes("runlog/batch_prediction/metrics.prom").decode()
    assert 'flightdeck_pipeline_last_run_failed{pipeline="batch_prediction"} 1.0' in text

    expr = servers.alert_rule("PipelineRunFailed")["expr"]
    [hit] = prometheus.wait_for(expr)
    assert hit["metric"] == {"pipeline": "batch_prediction"}
    [alert] = prometheus.wait_for('ALERTS{alertname="PipelineRunFailed",alertstate="firing"}')
    assert alert["metric"]["pipeline"] == "batch_prediction"

    # The next run succeeds: its push replaces the group and the alert's expression is false again.
    runlog.record_run("batch_prediction", "success", {}, store=local_store)
    assert prometheus.wait_for('flightdeck_pipeline_last_run_failed{pipeline="batch_prediction"} == 0')
    assert prometheus.query(expr) == []

    # No gateway: the run is still recorded, the push error is reported, nothing is raised.
    monkeypatch.setenv("FLIGHTDECK_PUSHGATEWAY_URL", f"127.0.0.1:{free_port()}")
    down = runlog.record_run("batch_prediction", "failed", {}, store=local_store)
    assert down["pushed"] is None and down["push_error"]
    assert runlog.last_runs(local_store)["batch_prediction"]["latest"]["status"] == "failed"
