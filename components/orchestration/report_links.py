"""Operator extra links from the stage tasks to their reports, in the Airflow UI.

`evaluate` links to its evaluation report and to the model card of the registry version made from it,
`monitor` to the day's Evidently drift report, `rollout_start` and `rollout_advance` to the rollout's
statistical report, `validate` (when it refused data) to the quarantine
report of its date range. The reports are pages of the flightdeck Airflow plugin
(plugins/flightdeck_reports.py, components/orchestration/report_app.py), mounted in Airflow's API server
at MOUNT and read from the artifact store.

How Airflow 3 shows such a link: when a task ends (success or failure), the task runner calls each of the
operator's links' `get_link(operator, ti_key=...)` *in the worker* and stores the URL in XCom under the
link's `xcom_key`; the serialized DAG records only the link names, and the API server reads the URLs back
from XCom for the UI (an empty URL hides the button). So the links are attached to the stage tasks by
`runtime.stage_task`, in both runtimes: the local PythonOperator and the kubernetes StagePodOperator
(whose execute, and so finalize, runs in the worker too); the URL is computed from the task's rendered
parameters (`op_kwargs` locally, the pod's CLI `arguments` on kubernetes) and its XCom result.

Imported at DAG parse time: only airflow.sdk and the standard library here.
"""

from __future__ import annotations

import logging
from urllib.parse import quote, urlencode, urlparse

from airflow.sdk import BaseOperatorLink

log = logging.getLogger(__name__)

MOUNT = "/flightdeck"  # the plugin's FastAPI app, under Airflow's API server root
REPORTS = f"{MOUNT}/reports"


# -- the report URLs (paths under the API server's root) -----------------------------------------
def _url(path: str, **query: str) -> str:
    query = {k: v for k, v in query.items() if v}
    return path + (f"?{urlencode(query)}" if query else "")


def evaluation_url(eval_id: str, dag_id: str = "") -> str:
    return _url(f"{REPORTS}/evaluation/{quote(eval_id, safe='')}", dag_id=dag_id)


def model_card_url(eval_id: str, model: str = "", dag_id: str = "") -> str:
    return _url(f"{REPORTS}/model-card/{quote(eval_id, safe='')}", model=model, dag_id=dag_id)


def monitoring_url(day: str, dag_id: str = "") -> str:
    return _url(f"{REPORTS}/monitoring/{quote(day, safe='')}", dag_id=dag_id)


def quarantine_url(start: str, end: str, dag_id: str = "") -> str:
    return _url(f"{REPORTS}/quarantine", start=start, end=end, dag_id=dag_id)


def rollout_url(champion: int | str, challenger: int | str, dag_id: str = "") -> str:
    return _url(f"{REPORTS}/rollout/{quote(str(champion), safe='')}/{quote(str(challenger), safe='')}", dag_id=dag_id)


def api_root() -> str:
    """The path Airflow's API server is served under ([api] base_url, e.g. behind an ingress), '' at the root."""
    from airflow.sdk import conf

    return urlparse(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")


# -- what a task tells its link ------------------------------------------------------------------
def stage_params(operator) -> dict[str, str]:
    """A stage task's rendered parameters in either runtime: the PythonOperator's op_kwargs['params'],
    or the `--name value` pairs of the stage pod's CLI arguments."""
    kwargs = getattr(operator, "op_kwargs", None)
    if isinstance(kwargs, dict) and isinstance(kwargs.get("params"), dict):
        return {k: str(v) for k, v in kwargs["params"].items() if v is not None}
    args = [str(a) for a in getattr(operator, "arguments", None) or []]
    return {flag[2:].replace("-", "_"): value for flag, value in zip(args, args[1:], strict=False)
            if flag.startswith("--") and not value.startswith("--")}


def task_result(ti_key) -> dict | None:
    """The task's XCom result (the stage's JSON result), None when it has none (it failed)."""
    from airflow.sdk.execution_time.xcom import XCom  # the configured XCom backend

    value = XCom.get_value(ti_key=ti_key, key="return_value")
    return value if isinstance(value, dict) else None


class ReportLink(BaseOperatorLink):
    """A link to a flightdeck report; `target` names the report's URL, or '' when the task has none."""

    name = "report"

    def target(self, operator, ti_key) -> str:
        raise NotImplementedError

    def get_link(self, operator, *, ti_key) -> str:
        url = self.target(operator, ti_key)
        return api_root() + url if url else ""


class EvaluationReportLink(ReportLink):
    """evaluate: runs/evaluate/<eval-id>/report.md, with the blessing decision."""

    name = "Evaluation report"

    def target(self, operator, ti_key) -> str:
        result = task_result(ti_key)
        return evaluation_url(result["eval_id"], ti_key.dag_id) if result and result.get("eval_id") else ""


class ModelCardLink(ReportLink):
    """evaluate: the model card of the registry version registered from this evaluation (the page says so
    plainly when it was not registered, or the version has no card)."""

    name = "Model card"

    def target(self, operator, ti_key) -> str:
        result = task_result(ti_key)
        if not result or not result.get("eval_id"):
            return ""
        return model_card_url(result["eval_id"], stage_params(operator).get("model_name", ""), ti_key.dag_id)


class DriftReportLink(ReportLink):
    """monitor: Evidently's drift report of the day (drawn on demand from the rows the monitor compared)."""

    name = "Drift report"

    def target(self, operator, ti_key) -> str:
        result = task_result(ti_key)
        day = (result or {}).get("date")
        return monitoring_url(day, ti_key.dag_id) if day else ""


class QuarantineReportLink(ReportLink):
    """validate: the quarantine reports of its date range, when it refused data (no result: it failed)."""

    name = "Quarantine report"

    def target(self, operator, ti_key) -> str:
        result = task_result(ti_key)
        if result is not None and not result.get("failed"):
            return ""  # validate passed: nothing was quarantined
        params = stage_params(operator)
        if not params.get("start") or not params.get("end"):
            return ""
        return quarantine_url(params["start"], params["end"], ti_key.dag_id)


class RolloutReportLink(ReportLink):
    """rollout-start, rollout-advance: the rollout's report (challenger vs champion, every decision)."""

    name = "Rollout report"

    def target(self, operator, ti_key) -> str:
        result = task_result(ti_key)
        if not result or not result.get("report"):
            return ""  # no rollout, or none with a report yet
        return rollout_url(result["champion"], result["challenger"], ti_key.dag_id)


STAGE_LINKS: dict[str, tuple[type[ReportLink], ...]] = {
    "rollout-start": (RolloutReportLink,),
    "rollout-advance": (RolloutReportLink,),
    "evaluate": (EvaluationReportLink, ModelCardLink),
    "monitor": (DriftReportLink,),
    "validate": (QuarantineReportLink,),
}


def attach(task, spec_name: str):
    """Give a stage task its report links (none for stages without a report)."""
    links = STAGE_LINKS.get(spec_name, ())
    if links:
        task.operator_extra_links = (*task.operator_extra_links, *(cls() for cls in links))
    return task
