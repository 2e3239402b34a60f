"""Running the DAGs in-process on the local profile: an Airflow home with a SQLite metadata DB,
`dag.test()` runs, and reads of what they recorded (XComs, asset events, queued runs).

Used by `make demo` and the tests; `make airflow` serves the same DAGs in the UI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def configure(airflow_home: Path) -> None:
    """Point Airflow at a home folder and this repo's dags/. Call before importing airflow."""
    airflow_home.mkdir(parents=True, exist_ok=True)
    os.environ.update({
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),  # the report pages behind the tasks' links
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home}/airflow.db",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(airflow_home / "logs"),
    })
    if not (airflow_home / "airflow.db").exists():
        proc = subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{proc.stderr[-3000:]}")


def load_dags() -> dict:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    return bag.dags


def run_dag(dag, day: str, **kwargs):
    """One dag.test() run for a logical date; returns (dag run, {task_id: task instance}, seconds)."""
    t0 = time.perf_counter()
    dr = dag.test(logical_date=datetime.fromisoformat(day).replace(tzinfo=UTC), **kwargs)
    tis = {ti.task_id: ti for ti in dr.get_task_instances()}
    return dr, tis, time.perf_counter() - t0


def xcom(ti, task_id: str | None = None):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter_by(dag_id=ti.dag_id, run_id=ti.run_id, task_id=task_id or ti.task_id,
                                                 key="return_value").one_or_none()
        value = row.value if row else None
    return json.loads(value) if isinstance(value, str) else value


def asset_rows(asset_name: str) -> tuple[list, list]:
    """The asset's events and the DAG runs they queued (AssetDagRunQueue) in the metadata DB."""
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        asset = session.query(AssetModel).filter_by(name=asset_name).one_or_none()
        if asset is None:
            return [], []
        events = [(e.id, e.extra) for e in session.query(AssetEvent).filter_by(asset_id=asset.id)]
        queued = [q.target_dag_id for q in session.query(AssetDagRunQueue).filter_by(asset_id=asset.id)]
    return events, queued


def clear_queue(dag_id: str) -> None:
    """Drop queued asset-triggered runs of a DAG (the demo runs the queued run itself)."""
    from airflow.models.asset import AssetDagRunQueue
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(AssetDagRunQueue).filter_by(target_dag_id=dag_id).delete()


def unpause(*dag_ids: str) -> None:
    """What the platform engineer does in the UI: asset events queue runs of unpaused DAGs only."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(DagModel).filter(DagModel.dag_id.in_(dag_ids)).update({"is_paused": False})


def create_asset_triggered_runs(dag_id: str) -> list[str]:
    """What the scheduler does for an asset-scheduled DAG with queued asset events: create its
    asset-triggered DAG run (the scheduler's own code: no logical date, the queued asset events
    attached as the run's consumed events, the queue emptied). Returns the new runs' run_ids."""
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunType

    runner = SchedulerJobRunner(job=Job(), num_runs=1)
    with create_session() as session:
        before = {r.run_id for r in session.query(DagRun).filter_by(dag_id=dag_id)}
        runner._create_dag_runs_asset_triggered(dag_models=[session.get(DagModel, dag_id)], session=session)
        session.flush()
        return [r.run_id for r in session.query(DagRun).filter_by(dag_id=dag_id, run_type=DagRunType.ASSET_TRIGGERED)
                if r.run_id not in before]


def run_existing(dag_id: str, run_id: str, mark_success_pattern: str | None = None):
    """Run an existing (e.g. asset-triggered) DAG run in-process, the way dag.test() runs the run it
    creates: the same loop over schedulable task instances, tasks run by Airflow's in-process
    supervisor, DAG callbacks included; task ids matching `mark_success_pattern` are marked done
    instead. Returns (dag run, {task_id: task instance}, seconds).

    The DAG is parsed afresh from dags/, as a worker would: in-process runs resolve a run's params
    into the task objects they run, so a DAG object that already ran with a run conf would hand that
    conf to this run (an asset-triggered run has none: it gets the DAG's defaults)."""
    import logging
    import re

    from airflow import settings
    from airflow.models.dagrun import DagRun
    from airflow.sdk import timezone
    from airflow.sdk.definitions.dag import _run_task
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.utils.state import DagRunState, State, TaskInstanceState

    t0 = time.perf_counter()
    dag = load_dags()[dag_id]
    # As dag.test(): the scheduler's view of the DAG, with the DAG file's callbacks (lost in serialization).
    scheduler_dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    scheduler_dag.on_success_callback = dag.on_success_callback
    scheduler_dag.on_failure_callback = dag.on_failure_callback
    session = settings.Session()
    dr = session.query(DagRun).filter_by(dag_id=dag.dag_id, run_id=run_id).one()
    dr.dag = scheduler_dag
    dr.state, dr.start_date = DagRunState.RUNNING, timezone.utcnow()
    session.commit()
    while dr.state == DagRunState.RUNNING:
        session.expire_all()
        schedulable, _ = dr.update_state(session=session)
        for ti in schedulable:
            if ti.state != TaskInstanceState.UP_FOR_RESCHEDULE:
                ti.try_number += 1
            ti.state, ti.scheduled_dttm = TaskInstanceState.SCHEDULED, timezone.utcnow()
        session.commit()
        tis = set(dr.get_task_instances(session=session))
        scheduled = [ti for ti in tis if ti.state == TaskInstanceState.SCHEDULED]
        if not scheduled and any(ti.state not in State.finished for ti in tis):
            time.sleep(1)  # a task waits for its retry delay
        for ti in scheduled:
            if mark_success_pattern and re.fullmatch(mark_success_pattern, ti.task_id):
                ti.set_state(TaskInstanceState.SUCCESS)
                continue
            try:
                _run_task(ti=ti, task=dag.task_dict[ti.task_id], run_triggerer=True)
            except Exception:
                logging.getLogger(__name__).exception("task failed: %s", ti)
    tis = {ti.task_id: ti for ti in dr.get_task_instances(session=session)}
    return dr, tis, time.perf_counter() - t0
