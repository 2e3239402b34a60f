"""Real DAG runs with dag.test() (in-process, no scheduler) and the real stages, local runtime.

- continuous_training on a one-week window: ingest -> validate -> features -> train -> evaluate
  -> the blessing branch; an impossible gate (max_ece=0) makes the rejection deterministic: the run
  ends cleanly with the reason in the rejecting task's XCom and log, nothing registered or deployed.
  (The blessed path, register -> rollout_start on a real Triton, is test_lifecycle.py.)
- A bad file source: validation fails the task and the run (no retry, nothing downstream runs),
  the failure notifier posts to a real HTTP server started here, and the run log pushes the failed
  run to a real Pushgateway, where a real Prometheus fires PipelineRunFailed.
- A stage process stopped right after writing a temporary object, before publishing it, and then
  killed with SIGKILL is retried by Airflow; the store then holds exactly what one clean run writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.airflow.conftest import DAGS

pytestmark = pytest.mark.slow  # scheduled first (tests/conftest.py): the suite's long poles


@pytest.fixture(scope="module")
def dags(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return bag.dags


def run_dag(dag, day: str, **kwargs):
    from components.orchestration.local import run_dag as run

    dr, tis, seconds = run(dag, day, **kwargs)
    print(f"dag.test {dag.dag_id} {day}: {dr.state} in {seconds:.1f} s; "
          + ", ".join(f"{t}={ti.state}" for t, ti in sorted(tis.items())))
    return dr, tis


def xcom(ti, task_id=None):
    from components.orchestration.local import xcom as read

    return read(ti, task_id)


def store_digest(store) -> dict[str, str]:
    """Every artifact's sha256; the run log (one event per DAG run, by design) is left out."""
    return {key: hashlib.sha256(store.read_bytes(key)).hexdigest() for key in store.list()
            if not key.startswith("runlog/")}


# -- continuous training, end to end, a rejected challenger -------------------------------------
def test_continuous_training_end_to_end_with_a_rejected_challenger(dags, home, capfd, caplog):
    from components.core.store import open_store

    # No model is calibrated to an ECE of exactly 0: the gate rejects every challenger.
    dr, tis = run_dag(dags["continuous_training"], "2013-03-01", run_conf={"window_days": 7, "max_ece": 0.0})
    assert dr.state == "success"  # a rejected challenger is not a failed run
    for task in ("plan_window", "ingest", "validate", "features_build", "features_training_set", "train",
                 "evaluate", "blessed", "challenger_rejected"):
        assert tis[task].state == "success", task
    assert tis["register"].state == "skipped" and tis["rollout_start"].state == "skipped"
    # Tuning is off by default: the branch skips it and train runs with its defaults, naming no tune run.
    assert tis["tune_or_not"].state == "success" and tis["tune"].state == "skipped"
    window = xcom(tis["plan_window"])
    assert window == {"day": "2013-03-01", "start": "2013-02-22", "end": "2013-02-28"}
    store = open_store()
    assert store.published("validated/flights/date=2013-02-28") is not None
    assert store.exists(f"training_sets/{window['start']}_{window['end']}.parquet")
    evaluation = xcom(tis["evaluate"])
    assert xcom(tis["evaluate"], "train")["run_id"] == evaluation["run_id"]
    assert evaluation["blessed"] is False
    ece = [f for f in evaluation["failed"] if f.startswith("expected calibration error")]
    assert len(ece) == 1 and ece[0].endswith("exceeds 0.0"), evaluation["failed"]
    # The gate used is recorded with the evaluation.
    recorded = json.loads(store.read_published(f"runs/evaluate/{evaluation['eval_id']}", "evaluation.json"))
    assert recorded["decision"]["policy"]["max_ece"] == 0.0 and recorded["decision"]["blessed"] is False
    # Why, where the UI shows it: the rejecting task's XCom (return value) and its log line.
    outcome = xcom(tis["challenger_rejected"])
    assert outcome == {"blessed": False, "reason": "; ".join(evaluation["failed"]),
                       "evaluation": evaluation["eval_id"], "run_id": evaluation["run_id"]}
    captured = capfd.readouterr()
    logged = caplog.text + captured.out + captured.err
    assert f"the champion stays: challenger {evaluation['run_id']} was not blessed: " in logged
    assert "exceeds 0.0" in logged
    assert not store.list("models/")  # the registry was not touched
    assert not (home / "triton" / "model_repository").exists()  # nothing was deployed


def test_continuous_training_with_the_optional_tune_step(dags, home):
    """tune=true: the tune task runs a real (small) study on the window and train takes its choice, recorded in
    the training run's lineage; the rest of the run is the same."""
    from components.core.store import open_store

    dr, tis = run_dag(dags["continuous_training"], "2013-03-01",
                      run_conf={"window_days": 7, "max_ece": 0.0, "tune": True, "tune_trials": 2})
    assert dr.state == "success"
    for task in ("tune_or_not", "tune", "train", "evaluate", "challenger_rejected"):
        assert tis[task].state == "success", task
    tuned = xcom(tis["tune"])
    assert tuned["trials_added"] == 2 and tuned["tune_id"]
    lineage = json.loads(open_store().read_published(xcom(tis["train"])["prefix"], "lineage.json"))
    assert lineage["tuning"]["tune_id"] == tuned["tune_id"] and lineage["params"]["tuned"] == tuned["tune_id"]
    for name, value in tuned["best_params"].items():
        assert lineage["params"][name] == value, name


# -- validation failure + failure notifier --------------------------------------------------------
class AlertSink(ThreadingHTTPServer):
    """A real HTTP server that records what webhooks POST to it."""

    def __init__(self):
        self.received: list[dict] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                sink.received.append({"path": self.path, "json": json.loads(body),
                                      "content_type": self.headers["Content-Type"]})
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


@pytest.fixture
def alert_sink(monkeypatch):
    sink = AlertSink()
    monkeypatch.setenv("AIRFLOW_CONN_FLIGHTDECK_ALERTS", json.dumps(
        {"conn_type": "http", "host": "127.0.0.1", "port": sink.server_port, "schema": "hooks/flightdeck"}))
    yield sink
    sink.shutdown()


def bad_source(folder, day: str, last: str | None = None):
    """The packaged data for day..last (default: day alone), with 40 flights of `day` from an airport the
    contract does not know."""
    import pandas as pd

    from components.data.sources import nycflights13

    folder.mkdir(parents=True)
    first, last = pd.Timestamp(day), pd.Timestamp(last or day)
    for table in ("flights", "weather", "planes", "airlines"):
        df = nycflights13.load(table)
        if table in ("flights", "weather"):
            when = pd.to_datetime(df[["year", "month", "day"]])
            df = df[(when >= first) & (when <= last)]
        if table == "flights":
            df = df.copy()
            df.loc[df.index[:40], "origin"] = "XXX"  # the first rows: all of `day`
        df.to_csv(folder / f"{table}.csv", index=False)
    return folder


@pytest.fixture
def prometheus_stack(tmp_path, monkeypatch):
    """A real Pushgateway the run log pushes to, and a real Prometheus scraping it with alerts.yml."""
    from tests.monitoring import servers

    with servers.pushgateway(tmp_path) as gateway, servers.prometheus(tmp_path, gateway) as prom:
        monkeypatch.setenv("FLIGHTDECK_PUSHGATEWAY_URL", gateway)
        yield gateway, prom


def test_validation_failure_fails_the_run_and_alerts(dags, home, tmp_path, alert_sink, prometheus_stack):
    from components.core import runlog
    from components.core.store import open_store
    from tests.monitoring import servers

    source = bad_source(home / "landing" / "bad-source", "2013-03-05")  # in the landing location
    dr, tis = run_dag(dags["batch_prediction"], "2013-03-05", run_conf={"source": str(source), "day": "2013-03-05"})
    assert dr.state == "failed"
    assert tis["ingest"].state == "success"
    assert tis["validate"].state == "failed" and tis["validate"].try_number == 1  # refused input: no retry
    for task in ("features_build", "features_materialize", "predict_batch", "publish_predictions"):
        assert tis[task].state == "upstream_failed", task
    store = open_store()
    assert store.published("validated/flights/date=2013-03-05") is None
    assert store.list("quarantine/schedule/date=2013-03-05/")  # the schedule refused
    # The notifier posted one Slack-format alert naming the task, with the validation message.
    alerts = [a for a in alert_sink.received if "validate" in a["json"]["text"]]
    assert len(alerts) == 1, alert_sink.received
    alert = alerts[0]
    assert alert["path"] == "/hooks/flightdeck" and alert["content_type"] == "application/json"
    assert "batch_prediction.validate failed" in alert["json"]["text"] and "origin" in alert["json"]["text"]
    assert alert["json"]["blocks"][0]["type"] == "section"

    # No predictions were published, so monitoring never runs for the day; the DAG's failure callback
    # recorded the run, and the run log pushed it: PipelineRunFailed fires on what was pushed.
    gateway, prom = prometheus_stack
    latest = runlog.last_runs(store)["batch_prediction"]["latest"]
    assert latest["status"] == "failed" and latest["info"]["run_id"] == dr.run_id
    [failed] = servers.pushed_samples(gateway)["flightdeck_pipeline_last_run_failed"]
    assert (failed.labels["job"], failed.labels["pipeline"], failed.value) == ("flightdeck_pipeline",
                                                                             "batch_prediction", 1)
    [hit] = prom.wait_for(servers.alert_rule("PipelineRunFailed")["expr"])
    assert hit["metric"] == {"pipeline": "batch_prediction"}
    [alert] = prom.wait_for('ALERTS{alertname="PipelineRunFailed",alertstate="firing"}')
    assert alert["metric"]["pipeline"] == "batch_prediction" and alert["metric"]["severity"] == "warning"


def test_pagerduty_payload_through_a_real_server(monkeypatch, alert_sink):
    from components.orchestration.notify import WebhookNotifier

    monkeypatch.setenv("AIRFLOW_CONN_PAGER", json.dumps(
        {"conn_type": "http", "host": "127.0.0.1", "port": alert_sink.server_port, "schema": "v2/enqueue",
         "password": "routing-key-from-the-connection", "extra": {"format": "pagerduty"}}))

    class TI:  # the fields of a task instance the notifier reads
        dag_id, task_id, run_id, try_number, max_tries = "monitoring", "monitor", "manual__x", 3, 2
        log_url = "http://localhost:8080/log"

    WebhookNotifier(conn_id="pager").notify({"ti": TI(), "logical_date": "2013-07-01",
                                             "exception": RuntimeError("Triton is unreachable")})
    (alert,) = alert_sink.received
    body = alert["json"]
    assert alert["path"] == "/v2/enqueue"
    assert body["routing_key"] == "routing-key-from-the-connection" and body["event_action"] == "trigger"
    assert body["dedup_key"] == "monitoring/monitor/manual__x"
    assert body["payload"]["severity"] == "error" and "monitoring.monitor failed" in body["payload"]["summary"]
    assert body["payload"]["custom_details"]["reason"] == "Triton is unreachable"


# -- SIGKILL mid-write, retried ------------------------------------------------------------------
# Loaded by the stage's child process only (PYTHONPATH points at a folder holding it as
# sitecustomize.py): nothing in the production code knows about it. The store writes a temporary
# file, then renames it into place (os.replace); this stops the process right after the temporary
# file of the third raw flights partition is written and before its rename, so the kill always lands
# between "written" and "published", never before or after by luck.
STOP_BEFORE_PUBLISH = """
import os
import signal

_marker = os.environ.get("FD_STOP_MARKER")
if _marker and not os.path.exists(_marker):
    _replace = os.replace
    _partitions = []

    def _stopping_replace(src, dst, *args, **kwargs):
        if "/raw/schedule/" in os.fspath(dst) and os.fspath(dst).endswith("/part.parquet"):
            _partitions.append(os.fspath(dst))
            if len(_partitions) == 3 and not os.path.exists(_marker):
                with open(_marker, "w") as fh:
                    fh.write(f"{os.getpid()}\\n{os.fspath(src)}\\n{os.fspath(dst)}\\n")
                os.kill(os.getpid(), signal.SIGSTOP)
        return _replace(src, dst, *args, **kwargs)

    os.replace = _stopping_replace
"""


def kill_when_stopped(marker, seen: dict, stop: threading.Event):
    """Once the stage has stopped itself mid-write, look at the store and SIGKILL it."""
    import psutil

    while not stop.is_set():
        if marker.exists() and len(marker.read_text().splitlines()) == 3:
            pid, tmp, dst = marker.read_text().splitlines()
            proc = psutil.Process(int(pid))
            while proc.status() != psutil.STATUS_STOPPED:
                time.sleep(0.01)
            seen.update(pid=int(pid), tmp=tmp, dst=dst, tmp_bytes=os.path.getsize(tmp),
                        dst_existed=os.path.exists(dst))
            os.kill(int(pid), signal.SIGKILL)  # the task's subprocess.run() reaps it
            seen["killed"] = True
            return
        time.sleep(0.01)


def test_sigkilled_stage_is_retried_and_leaves_one_clean_run(dags, home, tmp_path, monkeypatch):
    from components.contracts.stages import STAGES
    from components.core.store import LocalStore, open_store

    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(STOP_BEFORE_PUBLISH)
    marker = tmp_path / "stopped-mid-write"
    monkeypatch.setenv("FLIGHTDECK_LOCAL_TASKS", "subprocess")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("FD_STOP_MARKER", str(marker))
    store = open_store()
    seen: dict = {}
    stop = threading.Event()
    watcher = threading.Thread(target=kill_when_stopped, args=(marker, seen, stop), daemon=True)
    watcher.start()
    try:
        # Only ingest runs for real; the rest of the DAG is marked done (it is not under test here).
        dr, tis = run_dag(dags["continuous_training"], "2013-06-01", run_conf={"window_days": 30},
                          mark_success_pattern=r"(?!plan_window$|ingest$).*")
    finally:
        stop.set()
        watcher.join(5)
    # Killed in the middle of a write: the partition's bytes were on disk under the temporary name,
    # not yet under the name readers use.
    assert seen.get("killed"), "the ingest process never reached the third partition's write"
    assert seen["tmp_bytes"] > 0 and not seen["dst_existed"]
    assert Path(seen["tmp"]).name.startswith(".part.parquet.tmp-")
    assert dr.state == "success"
    assert tis["ingest"].state == "success" and tis["ingest"].try_number == 2
    # The killed write left its temporary file behind, invisible to every reader of the store.
    assert Path(seen["tmp"]).exists() and not any(".tmp-" in k for k in store.list())
    # A clean, uninterrupted run of the same stage and window in another home.
    clean = LocalStore(tmp_path / "clean")
    STAGES["ingest"].load_entry()(STAGES["ingest"].make_params(start="2013-05-02", end="2013-05-31"), store=clean)
    assert store_digest(store) == store_digest(clean)
    assert len(store.list("raw/schedule/")) == len(store.list("raw/outcomes/")) == 30


# -- the data's clock (docs/AIRFLOW.md): days outside the 2013 data land nothing -----------------
def artifacts(store) -> list[str]:
    """What the store holds besides the run log (a failed run is recorded there, by design)."""
    return [k for k in store.list() if not k.startswith("runlog/")]


def test_a_day_outside_the_data_fails_at_ingest_and_lands_nothing(dags, home, capfd):
    """batch_prediction asked to score 2026-05-01 (the `day` a person types in the trigger form): ingest
    refuses it with OutsideSourceRange, without retries; nothing downstream runs and nothing lands."""
    from components.core.store import open_store

    dr, tis = run_dag(dags["batch_prediction"], "2013-03-01", run_conf={"day": "2026-05-01", "source": "nycflights13"})
    assert dr.state == "failed"
    assert tis["plan_interval"].state == "success"
    assert tis["ingest"].state == "failed" and tis["ingest"].try_number == 1  # refused input: no retry
    for task in ("validate", "features_build", "features_materialize", "predict_batch", "publish_predictions"):
        assert tis[task].state == "upstream_failed", task
    captured = capfd.readouterr()
    assert ("day 2026-05-01 is outside the nycflights13 data, which holds 2013-01-01..2013-12-31: refused before "
            "anything was written") in captured.out + captured.err
    store = open_store()
    assert artifacts(store) == []  # no raw partition, no quarantine batch, no reference table
    assert store.read_json("runlog/batch_prediction/latest.json")["status"] == "failed"  # the on-call sees it


def test_a_logical_date_after_the_data_runs_no_task_and_lands_nothing(dags, home):
    """Airflow's end_date: a run dated after the source's last day gets no task instance, so nothing runs,
    nothing lands, and the run log does not count it as a run (a green run that did nothing must not
    hide a late pipeline)."""
    from components.core.store import open_store

    dr, tis = run_dag(dags["batch_prediction"], "2026-05-01", run_conf={"day": "", "source": "nycflights13"})
    assert tis == {}
    assert open_store().list() == [] and [p for p in home.rglob("*") if p.is_file()] == []


def test_continuous_training_in_the_data_first_days(dags, home):
    """The 84-day window of a run in early January reaches before the data: with fewer than 7 days of data
    left the run is refused by plan_window (no retry, nothing lands); with more, the window starts on
    2013-01-01 and ingest loads just those days (the stages after ingest are not under test here)."""
    from components.core.store import open_store

    store = open_store()
    dr, tis = run_dag(dags["continuous_training"], "2013-01-05", run_conf={"window_days": 84})
    assert dr.state == "failed"
    assert tis["plan_window"].state == "failed" and tis["plan_window"].try_number == 1
    assert tis["ingest"].state == "upstream_failed"
    assert artifacts(store) == []

    dr, tis = run_dag(dags["continuous_training"], "2013-01-10", run_conf={"window_days": 84},
                      mark_success_pattern=r"(?!plan_window$|ingest$).*")
    assert dr.state == "success"
    assert xcom(tis["plan_window"]) == {"day": "2013-01-10", "start": "2013-01-01", "end": "2013-01-09",
                                        "requested_start": "2012-10-18"}
    assert xcom(tis["ingest"])["tables"]["schedule"]["partitions"] == 9
    assert [k.split("/")[2] for k in store.list("raw/schedule/")] == [f"date=2013-01-0{d}" for d in range(1, 10)]
    assert not store.list("quarantine/")
