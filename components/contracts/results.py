"""The typed result of every stage entry function: what the CLI prints as JSON, what an Airflow task
pushes to XCom and what a KFP component reads, each by name.

TypedDicts, so a result stays a plain JSON-able dict on the wire (XCom, the pod's result file)
while its keys are declared and checked (mypy, and tests/core/test_results.py reads them back).
Each stage's section is kept by its layer.
"""

from __future__ import annotations

from typing import Any, TypedDict

# -- data: ingest, validate -----------------------------------------------------------------------
# (the data layer's results)


# -- features: build, training set, materialize ------------------------------------------------------
# (the features layer's results)


# -- model: train, evaluate, register ----------------------------------------------------------------
class TrainResult(TypedDict):
    """components.model.train.train: the published training run."""

    run_id: str  # <train_start>_<train_end>_<digest of params and data>: same inputs, same id
    prefix: str  # runs/train/<run-id>
    uri: str
    model_sha256: str
    val_auc: float  # validation ROC AUC after calibration, rounded to 5 places
    epochs_run: int
    best_epoch: int
    seconds_per_epoch: float
    rows: dict[str, int]  # train / val / test
    device: str  # cpu | cuda[:n]


class EvaluateResult(TypedDict):
    """components.model.evaluate.evaluate: the blessing, in brief (the full report: evaluation.json at uri)."""

    eval_id: str
    run_id: str
    uri: str
    blessed: bool
    failed: list[str]  # why not blessed; empty when blessed
    roc_auc: float | None
    baselines_roc_auc: dict[str, float | None]  # the baselines that were fitted
    baselines_skipped: dict[str, str]  # baseline -> why it was not fitted
    champion: dict[str, Any] | None  # {version, roc_auc} of the registry's champion on the same holdout


class RegisterResult(TypedDict):
    """components.model.register.register: the registry version of an evaluated run."""

    model_name: str
    version: int
    created: bool  # False: the run and evaluation were registered before (idempotent)
    blessed: bool
    promoted: bool  # this call made it champion
    champion: int | None
    uri: str
    roc_auc: float | None


# -- serving: deploy, predict batch, predict online ----------------------------------------------------
class DeployResult(TypedDict):
    """components.serving.deploy.deploy: what serves now (also recorded in the registry's deployment)."""

    model: str
    version: int
    sha256: str
    mode: str  # full | shadow | canary
    target: str  # cpu | gpu
    serving: int
    previous: int | None
    challenger: dict[str, Any] | None  # {version, mode, fraction} in shadow and canary
    loaded_versions: list[int]
    removed_versions: list[int]  # versions whose files left the model repository
    replicas: list[str]
    parity_max_abs_diff: float
    online_model: str  # "ready", or why the online model is not serving
    repository: str
    deployed_at: str  # ISO 8601, UTC
    seconds: float


class PredictBatchResult(TypedDict):
    """components.serving.batch_predict.predict_batch: the published prediction partition of a day."""

    date: str
    rows: int
    scored_by: str  # triton | in-process
    model_versions: list[int]  # the versions that served its rows
    uri: str
    flights_with_missing_features: int
    missing_by_feature: dict[str, int]  # only features with a missing value
    mean_probability: float
    challenger_scored: bool
    seconds: float


class PredictOnlineResult(TypedDict):
    """components.serving.triton.online.predict_online: the flight as asked, and its probability."""

    flight_id: str
    carrier: str
    origin: str
    dest: str
    tailnum: str | None
    distance: float
    sched_dep_utc: str
    probability: float
    model_version: int
    latency_ms: float


# -- monitoring: monitor ---------------------------------------------------------------------------------
# (the monitoring layer's results)


__all__ = ["Any", "TypedDict"]
