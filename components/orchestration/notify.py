"""On-failure notifier: POST a JSON alert to a webhook named by an Airflow connection.

The connection (default id `flightdeck_alerts`) holds the target, and its `format` extra picks
the payload: `slack` (default, an incoming-webhook message) or `pagerduty` (Events API v2, the
routing key is the connection's password); the DAGs hold no URL and no key. Examples:
docs/AIRFLOW.md, "Failures". A missing connection is logged and ignored: alerting must never
fail the task a second time.

The webhook URL (a Slack URL's path is its key) and the connection's password never reach a log
line: the notifier logs only scheme and host, and installs components.core.redact in the process
(every log record: URL passwords, webhook paths and token parameters masked).
"""

from __future__ import annotations

import json
import logging
import urllib.request

from airflow.sdk import BaseNotifier

from components.core import redact

log = logging.getLogger(__name__)
redact.install()  # imported by every DAG file: the scheduler, the workers and the processors all redact

DEFAULT_CONN_ID = "flightdeck_alerts"


class WebhookNotifier(BaseNotifier):
    def __init__(self, conn_id: str = DEFAULT_CONN_ID, timeout_s: float = 10.0):
        super().__init__()
        self.conn_id = conn_id
        self.timeout_s = timeout_s

    def notify(self, context) -> None:
        try:
            from airflow.sdk import Connection

            conn = Connection.get(self.conn_id)
        except Exception as exc:  # the connection is optional; say so and carry on
            log.warning("no alert sent: connection %r is not defined (%s)", self.conn_id, exc)
            return
        extra = conn.extra_dejson or {}
        fmt = extra.get("format", "slack")
        body = build_payload(fmt, alert_fields(context), routing_key=conn.password or "")
        url = webhook_url(conn)
        request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        target = redact.safe_target(url)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:
                log.info("alert sent to %s (%s): HTTP %s", target, fmt, resp.status)
        except Exception as exc:
            log.error("could not send the alert to %s: %s", target, redact.redact(str(exc)))


def webhook_url(conn) -> str:
    if conn.extra_dejson.get("url"):
        return conn.extra_dejson["url"]
    host = conn.host or ""
    if "://" in host:
        return host
    scheme = "https" if conn.conn_type in ("https", "slack", "pagerduty") else "http"
    port = f":{conn.port}" if conn.port else ""
    path = f"/{conn.schema.lstrip('/')}" if conn.schema else ""
    return f"{scheme}://{host}{port}{path}"


def alert_fields(context) -> dict:
    ti = context.get("ti") or context.get("task_instance")
    dag_id = getattr(ti, "dag_id", None) or context["dag"].dag_id
    exc = context.get("exception")
    reason = (str(exc).strip() or type(exc).__name__) if exc is not None else "unknown error"
    try:
        log_url = ti.log_url
    except Exception:
        log_url = ""
    return {
        "dag_id": dag_id,
        "task_id": getattr(ti, "task_id", ""),
        "run_id": getattr(ti, "run_id", context.get("run_id", "")),
        "logical_date": str(context.get("logical_date", "")),
        "try_number": getattr(ti, "try_number", None),
        "max_tries": getattr(ti, "max_tries", None),
        "error_type": type(exc).__name__ if exc is not None else "",
        "reason": reason[:1500],
        "log_url": log_url,
    }


def build_payload(fmt: str, f: dict, routing_key: str = "") -> dict:
    summary = f"flightdeck: {f['dag_id']}.{f['task_id']} failed for {f['logical_date']} (run {f['run_id']})"
    if fmt == "pagerduty":
        body = {
            "routing_key": routing_key,
            "event_action": "trigger",
            "dedup_key": f"{f['dag_id']}/{f['task_id']}/{f['run_id']}",
            "payload": {
                "summary": summary[:1024],
                "source": "airflow",
                "severity": "error",
                "component": f["dag_id"],
                "group": f["task_id"],
                "class": f["error_type"],
                "custom_details": f,
            },
        }
        if f["log_url"]:
            body["links"] = [{"href": f["log_url"], "text": "task log"}]
        return body
    if fmt != "slack":
        raise ValueError(f"alert format {fmt!r} is not one of slack, pagerduty")
    detail = f"*{summary}*\n{f['reason']}"
    if f["log_url"]:
        detail += f"\n<{f['log_url']}|task log>"
    return {"text": f"{summary}: {f['reason']}"[:3000],
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": detail[:3000]}}]}
