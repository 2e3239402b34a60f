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
    from components.orchestration.notify import WebhookNotifier

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
    chain = ["plan_window", "ingest", "validate", "features_build", "features_training_set", "tune_or_not", "train",
             "evaluate", "blessed"]
    for up, down in zip(chain, chain[1:], strict=False):
        assert down in ct.task_dict[up].downstream_task_ids, (up, down)
    assert "features_push_outcomes" in ct.task_dict["features_build"].downstream_task_ids
    assert "features_training_set" in ct.task_dict["features_push_outcomes"].downstream_task_ids
    assert ct.task_dict["blessed"].downstream_task_ids == {"register", "challenger_rejected"}
    # A blessed model starts a rollout (shadow first), never a deploy to all traffic.
    assert ct.task_dict["register"].downstream_task_ids == {"rollout_start"}
    assert "deploy" not in ct.task_dict
    # Weekly and on the drift asset.
    assert type(ct.timetable).__name__ == "AssetOrTimeSchedule"
    assert ct.timetable.asset_condition.name == "flight_delay_drift"
    bp = dagbag.dags["batch_prediction"]
    assert [o.name for o in bp.task_dict["publish_predictions"].outlets] == ["flight_delay_predictions"]
    mon = dagbag.dags["monitoring"]
    assert [o.name for o in mon.task_dict["emit_drift"].outlets] == ["flight_delay_drift"]
    assert mon.task_dict["no_drift"].outlets == []
    # The daily run advances the rollout, whatever the monitor concluded (or whether it failed).
    assert mon.task_dict["rollout_advance"].upstream_task_ids == {"plan_day"}


def test_tuning_is_an_optional_step_off_by_default(dagbag):
    """tune_or_not -> [tune, train], tune -> train: with the `tune` param off (the default) the branch returns
    train alone, so tune is skipped and train runs after the branch with no --tuned, as before tuning existed;
    on, tune runs and train takes its tune_id. train's trigger rule lets a skipped tune through, not a failed one."""
    from components.orchestration import steps

    ct = dagbag.dags["continuous_training"]
    assert ct.task_dict["tune_or_not"].downstream_task_ids == {"tune", "train"}
    assert ct.task_dict["tune"].downstream_task_ids == {"train"}
    assert ct.task_dict["train"].upstream_task_ids == {"tune_or_not", "tune"}
    assert ct.task_dict["train"].trigger_rule == "none_failed_min_one_success"
    assert ct.task_dict["evaluate"].trigger_rule == "all_success"  # only train's rule changed
    assert ct.params["tune"] is False and ct.params["tune_trials"] >= 1
    assert steps.tune_branch(params={"tune": False}) == ["train"]
    assert steps.tune_branch(params={}) == ["train"]
    assert steps.tune_branch(params={"tune": True, "tune_trials": 5}) == ["tune", "train"]
    tune, train = ct.task_dict["tune"], ct.task_dict["train"]
    assert tune.op_kwargs["spec_name"] == "tune"
    assert tune.op_kwargs["params"]["trials"] == "{{ params.tune_trials }}"
    # train's --tuned: the tune task's result when it ran, empty when it was skipped (in the DAG's own template env)
    template = ct.get_template_env().from_string(train.op_kwargs["params"]["tuned"])

    class TI:
        def __init__(self, value):
            self.value = value

        def xcom_pull(self, task_ids):
            assert task_ids == "tune"
            return self.value

    assert template.render(ti=TI(None)) == ""
    assert template.render(ti=TI({"tune_id": "study-0020"})) == "study-0020"


def test_the_schedules_follow_the_data_clock(dagbag):
    """continuous_training and batch_prediction are scheduled over the days the data holds and no later
    (schema.NYCFLIGHTS13_DAYS): the scheduler's next run, computed now (after 2013), is none, so unpausing
    them starts nothing; the last day's scheduled run is still inside."""
    import pendulum
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.timetables.base import DagRunInfo, TimeRestriction

    from components.contracts.schema import NYCFLIGHTS13_DAYS

    first, last = NYCFLIGHTS13_DAYS
    # batch_prediction runs every scoring interval (hourly by default): its last run starts the data's last
    # UTC hour; continuous_training runs monthly, on the 1st at 06:00.
    for dag_id, hour in (("batch_prediction", 23), ("continuous_training", 6)):
        dag = dagbag.dags[dag_id]
        assert dag.start_date == pendulum.datetime(first.year, first.month, first.day), dag_id
        assert dag.end_date.date() == last and dag.end_date >= pendulum.datetime(last.year, last.month, last.day, 23, 59)
        scheduler_dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
        assert scheduler_dag.next_dagrun_info(last_automated_run_info=None) is None, dag_id
        # Replayed over the year (a backfill, catchup): the last scheduled run is on the data's last day or,
        # for the monthly training, Dec 1 (the run before it: Nov 1).
        year = TimeRestriction(earliest=dag.start_date, latest=dag.end_date, catchup=True)
        last_run = pendulum.datetime(2013, 12, 31 if dag_id == "batch_prediction" else 1, hour)
        step = pendulum.duration(hours=1) if dag_id == "batch_prediction" else pendulum.duration(days=30)
        timetable = scheduler_dag.timetable
        info = timetable.next_dagrun_info(last_automated_data_interval=DagRunInfo.exact(last_run - step).data_interval,
                                          restriction=year)
        assert info is not None and info.logical_date == last_run, (dag_id, info)
        assert timetable.next_dagrun_info(last_automated_data_interval=DagRunInfo.exact(last_run).data_interval,
                                          restriction=year) is None, dag_id


def test_unknown_stage_name_fails_the_parse_naming_the_stages():
    """A typo in a DAG file's stage name is a wiring mistake: the file must not load."""
    from components.orchestration.runtime import stage_task

    with pytest.raises(KeyError, match="no stage named 'injest'.*known: .*ingest"):
        stage_task("injest")


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
    # How fast is a benchmark (`make bench`: benchmarks/bench_airflow.py, parse per file against a minimal
    # DAG), not a timed assertion a loaded CI machine can flake; here only the limit past which Airflow
    # refuses the file.
    assert max(report["seconds"].values()) < import_timeout(), report["seconds"]


def import_timeout() -> float:
    """[core] dagbag_import_timeout: a DAG file whose parse takes longer is an import error in Airflow."""
    from airflow.configuration import conf

    return conf.getfloat("core", "dagbag_import_timeout")


# The kubernetes runtime's stage tasks need the cncf-kubernetes provider, whose import alone takes
# seconds (kubernetes and kubernetes_asyncio load every API model: docs/BENCHMARKS.md, Figures the
# code relies on). The cluster's Airflow imports it once per
# process in airflow_local_settings.py (infra/k8s/airflow, the chart's airflowLocalSettings); the
# DAG processor then forks one child per DAG file parse, which inherits it. This probe does the
# same: a fresh interpreter imports what the processor has loaded, runs that file (timed on its
# own), then forks one child per DAG file and times its parse there.
K8S_PARSE_PROBE = r"""
import importlib.util, json, os, runpy, sys, time
import airflow.sdk
from airflow.providers.standard.operators.python import PythonOperator
t0 = time.perf_counter()
runpy.run_path(sys.argv[1])  # airflow_local_settings.py
preload = time.perf_counter() - t0
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
out = {}
for path in sys.argv[2:]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # one parse per child, as the DAG processor does
        os.close(read)
        before = set(sys.modules)
        t0 = time.perf_counter()
        spec = importlib.util.spec_from_file_location("probe_dag", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        seconds = time.perf_counter() - t0
        new = sorted(set(sys.modules) - before)
        result = {"seconds": seconds,
                  "pods": [t.task_id for t in module.dag.tasks if isinstance(t, KubernetesPodOperator)],
                  "new_provider_modules": [m for m in new if m.startswith(("kubernetes", "airflow.providers.cncf"))],
                  "heavy": [m for m in %r if m in sys.modules]}
        os.write(write, json.dumps(result).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as fh:
        data = fh.read()
    os.waitpid(pid, 0)
    out[path.rsplit("/", 1)[-1]] = json.loads(data)
print(json.dumps({"preload": preload, "files": out}))
"""
AIRFLOW_LOCAL_SETTINGS = REPO / "infra" / "k8s" / "airflow" / "airflow_local_settings.py"


@pytest.fixture(scope="module")
def k8s_parse_report() -> dict:
    import os

    env = {**os.environ, "FLIGHTDECK_RUNTIME": "kubernetes", "FLIGHTDECK_PROFILE": "aws",
           "FLIGHTDECK_S3_BUCKET": "flightdeck-artifacts"}
    files = sorted(str(p) for p in DAGS.glob("*.py"))
    proc = subprocess.run([sys.executable, "-c", K8S_PARSE_PROBE % (HEAVY,), str(AIRFLOW_LOCAL_SETTINGS), *files],
                          capture_output=True, text=True, cwd=REPO, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("dag_file", sorted(p.name for p in DAGS.glob("*.py")))
def test_parse_fast_in_kubernetes_mode(k8s_parse_report, dag_file):
    import warnings

    preload, report = k8s_parse_report["preload"], k8s_parse_report["files"][dag_file]
    print(f"{dag_file}: parse {report['seconds']:.3f} s after the provider preload ({preload:.2f} s)")
    # Not silent: the provider import itself takes seconds (docs/BENCHMARKS.md), paid once per Airflow process.
    if preload > 1.0:
        warnings.warn(f"importing the cncf-kubernetes provider took {preload:.1f} s in a fresh interpreter "
                      "(airflow_local_settings.py: once per Airflow process, not per DAG file parse)", stacklevel=1)
    assert report["pods"], "no KubernetesPodOperator: the kubernetes runtime was not used"
    assert report["heavy"] == []
    # The preload covers everything the kubernetes runtime imports from the provider's side.
    assert report["new_provider_modules"] == [], report["new_provider_modules"][:10]
    assert report["seconds"] < import_timeout(), report
