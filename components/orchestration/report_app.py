"""The flightdeck Airflow plugin's web app: the report pages behind the stage tasks' extra links.

plugins/flightdeck_reports.py mounts `create_app()` in Airflow's API server at report_links.MOUNT, so the
pages share the UI's origin and login: every route requires an Airflow user who may read task instances
(of the `dag_id` the link names, when it names one), through Airflow's own auth dependency and its
session cookie. Routes (under MOUNT):

  GET /reports/evaluation/{eval_id}                 report_pages.evaluation_page
  GET /reports/model-card/{eval_id}?model=NAME      report_pages.model_card_page
  GET /reports/monitoring/{YYYY-MM-DD}              report_pages.monitoring_page (drawn on demand)
  GET /reports/quarantine?start=...&end=...         report_pages.quarantine_page
  GET /reports/rollout/{champion}/{challenger}      report_pages.rollout_page

A missing report is a 404 page naming what is missing and the command that produces it; a malformed id
or date a 400. Pages are built from the artifact store's contents, so they are served with a Content
Security Policy: no scripts at all for the Markdown pages; Evidently's report (its own scripts) in a
sandbox, an opaque origin with no access to Airflow's cookies or API.
Imported only when the API server builds its apps (FastAPI and Airflow's auth are loaded here).
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Callable

from components.orchestration import report_pages as pages

log = logging.getLogger(__name__)

MARKDOWN_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
# Evidently's page runs its own inline scripts; the sandbox gives it an opaque origin.
EVIDENTLY_CSP = "sandbox allow-scripts"


def create_app():
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag
    from fastapi import Depends, FastAPI

    app = FastAPI(title="flightdeck reports", docs_url=None, redoc_url=None, openapi_url=None)
    guard = [Depends(requires_access_dag("GET", DagAccessEntity.TASK_INSTANCE))]

    @app.get("/reports/evaluation/{eval_id}", dependencies=guard)
    def evaluation(eval_id: str):
        return respond(lambda: pages.evaluation_page(eval_id))

    @app.get("/reports/model-card/{eval_id}", dependencies=guard)
    def model_card(eval_id: str, model: str = ""):
        return respond(lambda: pages.model_card_page(eval_id, model))

    @app.get("/reports/monitoring/{day}", dependencies=guard)
    def monitoring(day: str):
        return respond(lambda: pages.monitoring_page(day))

    @app.get("/reports/quarantine", dependencies=guard)
    def quarantine(start: str, end: str):
        return respond(lambda: pages.quarantine_page(start, end))

    @app.get("/reports/rollout/{champion}/{challenger}", dependencies=guard)
    def rollout(champion: str, challenger: str, model: str = ""):
        return respond(lambda: pages.rollout_page(champion, challenger, model))

    return app


def respond(build: Callable[[], pages.Page]):
    """The page as an HTML response: 200, or 404 naming what is missing, or 400 for a malformed request."""
    from fastapi.responses import Response

    t0 = time.perf_counter()
    status, csp = 200, MARKDOWN_CSP
    try:
        page = build()
        if page.document is not None:
            content, csp = page.document, EVIDENTLY_CSP
        else:
            content = pages.document(page.title, page.body)
    except pages.Missing as missing:
        status, content = 404, pages.missing_document(missing)
    except ValueError as exc:
        status, content = 400, pages.document("Bad request", f"<h1>Bad request</h1><p>{html.escape(str(exc))}</p>")
    log.info("flightdeck report page: %d, %d bytes in %.2f s", status, len(content), time.perf_counter() - t0)
    return Response(content, status_code=status, media_type="text/html; charset=utf-8",
                    headers={"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff",
                             "Cache-Control": "no-store"})
