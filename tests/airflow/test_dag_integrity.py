"""DAG integrity: the three DAGs load with no import errors, no cycles, and parse fast without
importing the heavy stage libraries (the DAG processor re-parses these files all the time)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.airflow.conftest import DAGS, REPO

DAG_IDS = {"continuous_training", "batch_prediction", "monitoring"}
HEAVY = ("torch", "feast", "great_expectations", "evidently")


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors_and_all_dags(dagbag):
    assert dagbag.import_errors == {}
    assert DAG_IDS <= set(dagbag.dags)


def test_no_cycles_and_every_task_is_guarded(dagbag):
    from components.airflow_notify import WebhookNotifier

    for dag_id in DAG_IDS:
        dag = dagbag.dags[dag_id]
        dag.check_cycle()
        assert dag.max_active_runs >= 1 and dag.catchup is False
        for task in dag.tasks:
            assert task.execution_timeout is not None, task.task_id
            assert any(isinstance(cb, WebhookNotifier) for cb in task.on_failure_callback), task.task_id
            assert task.retries >= 1 and task.retry_exponential_backoff > 1, task.task_id


def test_wiring_order(dagbag):
    ct = dagbag.dags["continuous_training"]
    chain = ["plan_window", "ingest", "validate", "features_build", "features_training_set", "train",
             "evaluate", "blessed"]
    for up, down in zip(chain, chain[1:], strict=False):
        assert down in ct.task_dict[up].downstream_task_ids, (up, down)
    assert ct.task_dict["blessed"].downstream_task_ids == {"register", "challenger_rejected"}
    assert ct.task_dict["register"].downstream_task_ids == {"deploy"}
    # Weekly and on the drift asset.
    assert type(ct.timetable).__name__ == "AssetOrTimeSchedule"
    assert ct.timetable.asset_condition.name == "flight_delay_drift"
    bp = dagbag.dags["batch_prediction"]
    assert [o.name for o in bp.task_dict["publish_predictions"].outlets] == ["flight_delay_predictions"]
    mon = dagbag.dags["monitoring"]
    assert [o.name for o in mon.task_dict["emit_drift"].outlets] == ["flight_delay_drift"]
    assert mon.task_dict["no_drift"].outlets == []


PARSE_PROBE = r"""
import importlib.util, json, sys, time
# What the DAG processor has loaded before it parses a file.
import airflow.sdk
from airflow.providers.standard.operators.python import PythonOperator
out = {}
for path in sys.argv[1:]:
    t0 = time.perf_counter()
    spec = importlib.util.spec_from_file_location("probe_" + path.rsplit("/", 1)[-1][:-3], path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    out[path] = time.perf_counter() - t0
heavy = [m for m in %r if m in sys.modules]
print(json.dumps({"seconds": out, "heavy": heavy}))
"""


def test_parse_fast_without_heavy_modules():
    files = sorted(str(p) for p in DAGS.glob("*.py"))
    proc = subprocess.run([sys.executable, "-c", PARSE_PROBE % (HEAVY,), *files], capture_output=True,
                          text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    print("DAG parse seconds:", report["seconds"])
    assert report["heavy"] == []
    # The first file pays for importing components.*; each must still be well under a second.
    assert max(report["seconds"].values()) < 1.0, report["seconds"]
