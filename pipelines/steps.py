"""What every KFP component body calls: run the stage's entry function and fill the KFP outputs.

Component bodies stay one line (no copy of stage logic); this module turns the stage's JSON
result into KFP artifacts the UI shows: a Dataset/Model pointing at the artifact-store URI,
Metrics for every number, and HTML for reports.
"""

from __future__ import annotations

import html
import json
import numbers

from components.contracts import layout


def run_stage(stage: str, params: dict, result=None, metrics=None, report=None, **artifacts) -> str:
    from components.contracts.stages import STAGES

    out = STAGES[stage].run(**params)
    if result is not None:
        result.metadata.update({"stage": stage, "uri": out.get("uri", ""), **_scalars(out)})
        with open(result.path, "w") as fh:
            json.dump(out, fh, indent=2, sort_keys=True, default=str)
    for artifact in artifacts.values():
        artifact.metadata.update({"stage": stage, "store_uri": out.get("uri", ""), **_scalars(out)})
        with open(artifact.path, "w") as fh:
            json.dump(out, fh, default=str)
    if metrics is not None:
        for key, value in _scalars(out).items():
            if isinstance(value, numbers.Number) and not isinstance(value, bool):
                metrics.log_metric(key, float(value))
    if report is not None:
        with open(report.path, "w") as fh:
            fh.write(_report_html(stage, out))
    return json.dumps(out, sort_keys=True, default=str)


def _scalars(out: dict) -> dict:
    return {k: v for k, v in out.items() if isinstance(v, (str, int, float, bool)) and v is not None}


def _report_html(stage: str, out: dict) -> str:
    """The stage's own report: Evidently's HTML for monitor, the evaluation's markdown, else the result."""
    from components.contracts import schema
    from components.core.store import open_store

    store = open_store()
    if stage == "monitor":
        return store.read_published(layout.monitoring_prefix(schema.parse_day(out["date"])), "report.html").decode()
    if stage == "evaluate":

        markdown = store.read_published(layout.eval_run_prefix(out["eval_id"]), "report.md").decode()
        return f"<html><body><pre>{html.escape(markdown)}</pre></body></html>"
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(json.dumps(v, default=str))}</td></tr>"
                   for k, v in sorted(out.items()))
    return f"<html><body><h2>{html.escape(stage)}</h2><table>{rows}</table></body></html>"
