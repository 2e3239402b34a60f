"""On the aws profile the monitor publishes to S3 (moto server) and pushes its metrics to a real
Pushgateway (Debian's prometheus-pushgateway, started on a free localhost port)."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from components import monitor_backtest as mb
from components import schema
from components.errors import StageFailed
from components.monitor import monitor
from components.settings import load_settings
from components.stages import MonitorParams
from tests.conftest import free_port, wait_for_port

from .conftest import JAN_MAR

PUSHGATEWAY = shutil.which("prometheus-pushgateway")


@pytest.fixture
def pushgateway(tmp_path):
    if PUSHGATEWAY is None:
        pytest.skip("prometheus-pushgateway (Debian package) is not installed; scripts/bootstrap.sh installs it")
    port = free_port()
    proc = subprocess.Popen([PUSHGATEWAY, f"--web.listen-address=127.0.0.1:{port}",
                             f"--persistence.file={tmp_path / 'pgw.data'}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc=proc)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_monitor_on_aws_profile_pushes_to_the_pushgateway(s3_store, pushgateway, monkeypatch, frame, jan_mar_scorer):
    monkeypatch.setenv("FLIGHTDECK_PUSHGATEWAY_URL", pushgateway)
    assert load_settings().profile == "aws"
    version = mb.register_reference_model(s3_store, mb.reference_sample(frame, *JAN_MAR, n=2000), jan_mar_scorer,
                                          JAN_MAR, holdout_auc=0.7)
    mb.publish_predictions(s3_store, frame, "2013-07-14", version, jan_mar_scorer)
    result = monitor(MonitorParams(date="2013-07-14", window_days=1), s3_store)
    assert result["pushed"] == pushgateway
    assert result["uri"].startswith("s3://")

    text = urllib.request.urlopen(f"http://{pushgateway}/metrics", timeout=10).read().decode()
    pushed = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith("flightdeck_"):
                pushed.setdefault(s.name, []).append(s)
    [share] = pushed["flightdeck_drift_share"]
    assert share.labels["job"] == "flightdeck_monitor" and share.labels["model"] == "flight_delay"
    assert share.value == pytest.approx(result["drift_share"])
    published = s3_store.read_published(schema.monitoring_prefix(schema.parse_day("2013-07-14")), "metrics.prom")
    assert b"flightdeck_drift_share" in published

    # The gateway goes away: the report is still published, and the error says what to check.
    monkeypatch.setenv("FLIGHTDECK_PUSHGATEWAY_URL", f"127.0.0.1:{free_port()}")
    with pytest.raises(StageFailed, match="pushing its metrics to the Pushgateway"):
        monitor(MonitorParams(date="2013-07-14", window_days=1), s3_store)
