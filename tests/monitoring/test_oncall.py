"""`flightdeck status` and `flightdeck rollback` against a real Triton and the real registry and
deploy path; and the nv_* metrics a real tritonserver exports are the ones the alerts name."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from components.contracts.errors import StageFailed
from components.contracts.stages import DeployParams
from components.core import runlog
from components.core.metrics import TRITON_METRICS
from components.core.store import open_store
from components.model.card import register_unevaluated
from components.model.registry import Registry
from components.ops.cli import main as cli_main
from tests.conftest import local_triton
from tests.serving.fixture_models import scripted_bytes

# Versions registered by hand carry a model card saying so: deploy refuses a version without one.
HAND_MADE = "a hand-made model of the on-call tests (tests/monitoring), not evaluated"

pytestmark = pytest.mark.slow  # scheduled first (tests/conftest.py): the suite's long poles


@pytest.fixture(scope="module")
def triton_env(tmp_path_factory):
    # summary_latencies: the p99 alert reads nv_inference_request_summary_us.
    with local_triton(tmp_path_factory.mktemp("fd-oncall"),
                      extra_args=("--metrics-config=summary_latencies=true",)) as env:
        yield {"server": env["server"], "ports": env["ports"]}


@pytest.fixture(scope="module")
def two_champions(triton_env):
    """v1 promoted and deployed, then v2 promoted and deployed: v1 is the previous champion."""
    from components.serving.deploy import deploy

    registry = Registry(open_store(), "flight_delay")
    v1, v2 = (register_unevaluated(registry, {"model.pt": scripted_bytes(s)},
                                   {"blessed": True, "metrics": {"roc_auc": auc}}, HAND_MADE)
              for s, auc in ((1, 0.71), (2, 0.72)))
    registry.promote(v1)
    deploy(DeployParams())
    registry.promote(v2)
    deploy(DeployParams())
    return v1, v2


def test_status_shows_versions_health_runs_and_attention(triton_env, two_champions, capsys):
    from components.ops.oncall import gather, render

    v1, v2 = two_champions
    runlog.record_run("batch_prediction", "failed", {"error": "Triton unreachable"})
    status = gather()
    assert status["registry"]["champion"] == v2 and status["registry"]["previous"] == v1
    assert status["serving"]["state"]["serving"] == v2
    [replica] = status["serving"]["replicas"]
    assert replica["ready"] and replica["serving_ready"] and v2 in replica["loaded_versions"]
    assert any("last batch_prediction run failed" in line for line in status["attention"])
    assert any("no monitoring run yet" in line for line in status["attention"])
    screen = render(status)
    assert f"champion v{v2}" in screen and "READY" in screen and "NEEDS ATTENTION" in screen

    assert cli_main(["status"]) == 0
    assert f"serving      v{v2}" in capsys.readouterr().out


def test_real_triton_exports_the_documented_metrics(triton_env, two_champions):
    url = f"http://127.0.0.1:{triton_env['ports']['metrics']}/metrics"
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    families = {f.name for f in text_string_to_metric_families(text) if f.name.startswith("nv_")}
    assert families <= TRITON_METRICS, families - TRITON_METRICS
    # The deploys' parity checks ran inferences, so the per-model series the alerts use exist.
    for name in ("nv_inference_request_success", "nv_inference_request_failure", "nv_inference_queue_duration_us",
                 "nv_inference_request_duration_us", "nv_inference_request_summary_us"):
        assert name in families, name


def test_rollback_deploys_the_previous_champion_then_moves_the_aliases(triton_env, two_champions):
    from components.ops.oncall import gather, rollback

    v1, v2 = two_champions
    result = rollback()
    assert result["from"] == v2 and result["to"] == v1 and result["serving"] == v1
    assert result["parity_max_abs_diff"] <= 1e-5
    status = gather()
    assert status["registry"]["champion"] == v1
    assert status["serving"]["state"]["serving"] == v1
    assert status["serving"]["replicas"][0]["serving_ready"]
    assert runlog.last_runs()["rollback"]["latest"]["info"] == {"from": v2, "to": v1}
    # Nothing left to roll back to: a clear refusal, nothing changed.
    with pytest.raises(StageFailed, match="no previous champion"):
        rollback()
    assert gather()["serving"]["state"]["serving"] == v1
