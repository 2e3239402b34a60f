"""What every KFP component body calls: run the stage's entry function and fill the KFP outputs.

Component bodies stay one line (no copy of stage logic); this module checks the upstream
artifacts a step consumes, and turns the stage's result into KFP artifacts the UI shows: a
Dataset/Model pointing at the artifact-store URI, Metrics for every number, and HTML for reports.
"""

from __future__ import annotations

import html
import json
import numbers

from components.contracts import layout


def run_stage(stage: str, params: dict, inputs: dict | None = None, metrics=None, report=None,
              **artifacts) -> dict:
    """Run the stage's entry function (the one the CLI and Airflow run) with `params`, and return its result.

    inputs: the upstream Dataset/Model artifacts the step consumes, by name; each must name (metadata
    `store_uri`, written here by its producer) a location in this step's artifact store that exists,
    else StageFailed before the stage runs. artifacts: the step's Dataset/Model outputs, each given
    the result's `uri` as `store_uri`, its scalars as metadata, and the result as JSON content.
    """
    from components.contracts.stages import STAGES

    if inputs:
        check_inputs(stage, inputs)
    out = STAGES[stage].run(**params)
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
    return out


def last_prediction_time(start: str, end: str) -> str:
    """The last prediction time of the scoring interval [start, end) (one scoring interval before its end,
    not before its start): what batch prediction pushes the day's outcomes up to. Without an interval
    (the whole day), `start` as given ("" = the day's end)."""
    if not (start and end):
        return start
    from components.contracts import prediction_time as pt
    from components.core.settings import load_settings

    return pt.last_prediction_time(pt.parse_instant(start, "start"), pt.parse_instant(end, "end"),
                                   load_settings().scoring_interval_minutes).isoformat()


def no_tuning(chosen) -> None:
    """The tune step's artifact when tuning is off: it names no tune run, so train keeps its defaults."""
    chosen.metadata.update({"stage": "tune", "tune_id": "", "tuned": False})
    with open(chosen.path, "w") as fh:
        json.dump({"tuned": False}, fh)


def log_evaluation(eval_id: str, classification, summary) -> None:
    """What the KFP UI draws for an evaluation: the holdout's ROC curve and confusion matrix
    (ClassificationMetrics) and the evaluation report (Markdown), from the published evaluation."""
    from components.core.store import open_store

    store = open_store()
    prefix = layout.eval_run_prefix(eval_id)
    curves = json.loads(store.read_published(prefix, "evaluation.json"))["curves"]
    roc = curves["roc"]
    classification.log_roc_curve(roc["fpr"], roc["tpr"], roc["threshold"])
    classification.log_confusion_matrix(curves["confusion"]["categories"], curves["confusion"]["matrix"])
    classification.metadata["confusion_threshold"] = curves["confusion"]["threshold"]
    with open(summary.path, "w") as fh:
        fh.write(store.read_published(prefix, "report.md").decode())


def check_inputs(stage: str, inputs: dict) -> None:
    """Each consumed artifact names an existing location in this step's store: a step whose settings name
    another store than its producer's (profile, bucket, prefix) stops here, saying so, not inside the stage."""
    from components.contracts.errors import StageFailed
    from components.core.store import open_store

    store = open_store()
    root = store.uri().rstrip("/") + "/"
    for name, artifact in inputs.items():
        uri = str(artifact.metadata.get("store_uri") or "")
        producer = artifact.metadata.get("stage", "its producer")
        if not uri.startswith(root):
            raise StageFailed(f"{stage}: input {name!r} from {producer} names {uri or 'no store location'}, "
                              f"not a location in this step's artifact store {root}: both steps must run with "
                              "the same settings (FLIGHTDECK_PROFILE, FLIGHTDECK_HOME, FLIGHTDECK_S3_BUCKET/_PREFIX)")
        key = uri[len(root):]
        if not (store.exists(key) or store.list(key + "/")):
            raise StageFailed(f"{stage}: input {name!r} from {producer} names {uri}, which holds nothing: "
                              "it was removed after that step wrote it; rerun the pipeline from there")


def _scalars(out: dict) -> dict:
    return {k: v for k, v in out.items() if isinstance(v, (str, int, float, bool)) and v is not None}


def _report_html(stage: str, out: dict) -> str:
    """The stage's own report: Evidently's HTML for monitor (drawn from the rows the run compared, as
    `flightdeck monitor-report` draws it, and published there too), the evaluation's markdown, else the result."""
    from components.core.store import open_store

    store = open_store()
    if stage == "monitor":
        from components.monitoring.render import render_page

        return render_page(out["date"], store)[1].decode()
    if stage == "evaluate":

        markdown = store.read_published(layout.eval_run_prefix(out["eval_id"]), "report.md").decode()
        return f"<html><body><pre>{html.escape(markdown)}</pre></body></html>"
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(json.dumps(v, default=str))}</td></tr>"
                   for k, v in sorted(out.items()))
    return f"<html><body><h2>{html.escape(stage)}</h2><table>{rows}</table></body></html>"
