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

REPO = Path(__file__).resolve().parents[1]


def configure(airflow_home: Path) -> None:
    """Point Airflow at a home folder and this repo's dags/. Call before importing airflow."""
    airflow_home.mkdir(parents=True, exist_ok=True)
    os.environ.update({
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
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
