"""Airflow wiring costs: DAG parse time and the orchestration overhead of a dag.test() run.

Each part runs in a fresh subprocess with its own AIRFLOW_HOME (SQLite), as the DAG processor
and a local run would. Baselines, measured in the same run:
- parse: a one-task DAG file that imports only airflow.sdk (the least a DAG file can cost).
- dag.test: the ingest stage called directly; the DAG run does the same ingest through
  continuous_training (every other task marked done), so the ratio is Airflow's overhead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.harness import Context, Result

AREA = "airflow"
REPO = Path(__file__).resolve().parents[1]

MINIMAL_DAG = '''
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator
with DAG(dag_id="minimal", schedule=None):
    EmptyOperator(task_id="noop")
'''

# One file per process, with Airflow already imported: what a DAG-processor parse costs
# (it parses each file in a fresh child of a process that has Airflow loaded).
PARSE = r'''
import importlib.util, json, sys, time
import airflow.sdk
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.python import PythonOperator
t0 = time.perf_counter()
spec = importlib.util.spec_from_file_location("parsed_dag", sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))
seconds = time.perf_counter() - t0
heavy = [m for m in ("torch", "feast", "great_expectations", "evidently") if m in sys.modules]
print(json.dumps({"seconds": seconds, "heavy": heavy}))
'''

RUN = r'''
import json, sys, time
from datetime import datetime, timezone
start, end = sys.argv[1], sys.argv[2]
from components.contracts.stages import STAGES
t0 = time.perf_counter()
STAGES["ingest"].run(start=start, end=end)
direct = time.perf_counter() - t0
from airflow.dag_processing.dagbag import DagBag
dag = DagBag(dag_folder=sys.argv[3]).dags["continuous_training"]
day = datetime.fromisoformat(sys.argv[4]).replace(tzinfo=timezone.utc)
t0 = time.perf_counter()
dr = dag.test(logical_date=day, run_conf={"window_days": int(sys.argv[5])},
              mark_success_pattern=r"(?!plan_window$|ingest$).*")
print(json.dumps({"direct": direct, "dag_test": time.perf_counter() - t0, "state": str(dr.state)}))
'''


def airflow_env(home: Path, ctx: Context) -> dict:
    return {**ctx.env(), "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db"}


def run(ctx: Context) -> list[Result]:
    home = Path(tempfile.mkdtemp(prefix="fd-bench-airflow-"))
    env = airflow_env(home, ctx)
    minimal = home / "minimal_dag.py"
    minimal.write_text(MINIMAL_DAG)
    def parse(path) -> dict:
        proc = subprocess.run([sys.executable, "-c", PARSE, str(path)], env=env, cwd=REPO,
                              capture_output=True, text=True, check=True)
        return json.loads(proc.stdout.strip().splitlines()[-1])

    base = parse(minimal)["seconds"]
    results = []
    for path in (REPO / "dags").glob("*.py"):
        parsed = parse(path)
        results.append(Result(AREA, f"parse dags/{path.name}", parsed["seconds"], "s",
                              baseline_name="one-task DAG file", baseline_value=base, higher_is_better=False,
                              target="< 1 s, no torch/feast/GX/evidently import",
                              notes=f"heavy modules imported: {', '.join(parsed['heavy']) or 'none'}"))

    subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], env=env, cwd=REPO,
                   capture_output=True, check=True)
    days = 7 if ctx.quick else 28
    proc = subprocess.run([sys.executable, "-c", RUN, "2013-05-04", "2013-05-31" if not ctx.quick else "2013-05-10",
                           str(REPO / "dags"), "2013-06-01" if not ctx.quick else "2013-05-11", str(days)],
                          env={**env, "FLIGHTDECK_HOME": str(home / "fd")}, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    run_ = json.loads(proc.stdout.strip().splitlines()[-1])
    results.append(Result(AREA, f"dag.test continuous_training, ingest of {days} days (rest marked done)",
                          run_["dag_test"], "s", baseline_name="the same ingest called directly",
                          baseline_value=run_["direct"], higher_is_better=False,
                          notes=f"run state {run_['state']}; includes syncing the DAG folder to the metadata DB"))
    os.environ.pop("AIRFLOW_HOME", None)
    return results
