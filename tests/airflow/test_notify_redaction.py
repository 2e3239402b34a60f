"""Secrets stay out of log lines: the failure notifier's webhook URL, connection passwords anywhere."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Imported at collection, as a DAG file imports it: Airflow sets its logging up (structlog, on the real
# stdout, which capfd captures by file descriptor) once, and the redaction is installed.
from components.orchestration.notify import WebhookNotifier
from tests.conftest import free_port

SLACK_KEY = "B0000000/XXXXsuper" + "secretXXXX"  # (split: a traceback quoting this line shows no key)


class TI:  # the fields of a task instance the notifier reads
    dag_id, task_id, run_id, try_number, max_tries = "batch_prediction", "validate", "manual__x", 1, 0
    log_url = ""


def _sink():
    received: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            received.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received


def _logged(caplog, capfd) -> str:
    """Everything logged: caplog's records, and what Airflow's logging (structlog, once airflow.sdk is
    imported) rendered to the terminal."""
    out, err = capfd.readouterr()
    return caplog.text + "".join(r.exc_text or "" for r in caplog.records) + out + err


def test_webhook_url_stored_as_the_connection_host_is_never_logged(monkeypatch, caplog, capfd):
    server, received = _sink()
    try:
        # A Slack-style incoming webhook (the path is the key) held as the connection's host, delivered...
        url = f"http://127.0.0.1:{server.server_port}/services/T0000000/{SLACK_KEY}"
        monkeypatch.setenv("AIRFLOW_CONN_SLACK_OK", json.dumps({"conn_type": "http", "host": url}))
        # ... and one that cannot be delivered (nothing listens), which logs the error.
        dead = f"http://127.0.0.1:{free_port()}/services/T0000000/{SLACK_KEY}"
        monkeypatch.setenv("AIRFLOW_CONN_SLACK_DEAD", json.dumps({"conn_type": "http", "host": dead}))
        with caplog.at_level(logging.INFO):
            WebhookNotifier(conn_id="slack_ok").notify({"ti": TI(), "exception": RuntimeError("boom")})
            WebhookNotifier(conn_id="slack_dead", timeout_s=2).notify({"ti": TI(), "exception": RuntimeError("x")})
    finally:
        server.shutdown()
    assert received == [f"/services/T0000000/{SLACK_KEY}"]  # the alert itself went to the full URL
    text = _logged(caplog, capfd)
    assert "alert sent to http://127.0.0.1" in text and "could not send the alert" in text
    assert "supersecret" not in text and "T0000000" not in text, text


def test_every_log_line_of_the_process_is_redacted(caplog, capfd):
    other = logging.getLogger("some.library")
    with caplog.at_level(logging.INFO):
        other.info("connecting to %s", "redis://:r3dis-" + "pass@127.0.0.1:6379/0")
        other.warning("airflow db postgresql://airflow:pg-" + "pass@db:5432/airflow unreachable")
        other.info("posting to https://hooks.slack.com/services/T0000000/%s", SLACK_KEY)
        other.info("signed https://bucket.s3.amazonaws.com/x?X-Amz-Signature=abc&token=tok-" + "value")
        password = "-".join(("r3dis", "pass"))  # (secrets split in this file: a traceback quotes source lines)
        try:
            raise ConnectionError(f"cannot reach rediss://default:{password}@cache:6380")
        except ConnectionError:
            other.exception("feature lookup failed")
        other.info("s3://bucket/validated/flights/date=2013-01-01/part.parquet and 127.0.0.1:8001")
    text = _logged(caplog, capfd)
    assert "feature lookup failed" in text and "ConnectionError: cannot reach rediss://default:***@cache" in text
    for secret in ("r3dis-pass", "pg-pass", "supersecret", "T0000000", "tok-value"):
        assert secret not in text, (secret, text)
    assert "redis://:***@127.0.0.1:6379/0" in text and "postgresql://airflow:***@db:5432/airflow" in text
    assert "https://hooks.slack.com/***" in text
    # Ordinary URIs and keys are left alone.
    assert "s3://bucket/validated/flights/date=2013-01-01/part.parquet and 127.0.0.1:8001" in text
