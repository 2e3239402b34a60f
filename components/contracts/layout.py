"""Where every artifact lives in the artifact store: one home for every key and prefix.

Stages, the backtest, on-call tools and the IAM policies (infra/terraform, checked by
tests/infra) all name store locations through these functions, so a layout change is made here
once. Keys are relative to the store's root (`file://<FLIGHTDECK_HOME>/artifacts` locally,
`s3://<bucket>/<prefix>` on aws). A *prefix* names a published directory (components.core.store:
written to a temporary key, then published atomically); a *key* names one object.
"""

from __future__ import annotations

from datetime import date


# -- data: raw, validated, quarantined partitions ---------------------------------------------
def raw_key(table: str, day: date | None = None) -> str:
    """Ingest's output: one parquet per daily partition (flights, weather) or per reference table."""
    return f"raw/{table}/date={day.isoformat()}/part.parquet" if day else f"raw/{table}/{table}.parquet"


def validated_prefix(table: str, day: date | None = None) -> str:
    """A partition that passed validation (published): part.parquet."""
    return f"validated/{table}/date={day.isoformat()}" if day else f"validated/{table}/reference"


def quarantine_prefix(table: str, day: date | None, batch: str) -> str:
    """A refused batch, kept aside: part.parquet, report.json, report.md."""
    where = f"date={day.isoformat()}" if day else "reference"
    return f"quarantine/{table}/{where}/{batch}"


# -- features -----------------------------------------------------------------------------------
FEATURE_TABLES = "features"
# Where each feature view's online materialization stopped (views -> intervals materialized).
MATERIALIZATION_PROGRESS = f"{FEATURE_TABLES}/materialization.json"
# The latest features build's seconds per view (computing its rows, writing its table): the feature report's build cost.
FEATURE_BUILD_TIMINGS = f"{FEATURE_TABLES}/build_timings.json"
# The lease that serializes writes of Feast's registry and materializations (components.features.store_lease).
FEAST_REGISTRY_LEASE = "feast/registry.lease"


def feature_table_key(view: str) -> str:
    """The offline table of one feature view (the FileSource Feast reads)."""
    return f"{FEATURE_TABLES}/{view}.parquet"


def training_set_key(start: str, end: str) -> str:
    """The point-in-time training set of a window (features training-set's output)."""
    return f"training_sets/{start}_{end}.parquet"


# -- model: training and evaluation runs, the registry ----------------------------------------
TRAIN_RUNS = "runs/train"
TRAIN_LATEST = f"{TRAIN_RUNS}/_latest.json"
TUNE_RUNS = "runs/tune"
TUNE_LATEST = f"{TUNE_RUNS}/_latest.json"
EVAL_RUNS = "runs/evaluate"
EVAL_LATEST = f"{EVAL_RUNS}/_latest.json"


def train_run_prefix(run_id: str) -> str:
    """A training run (published): model.pt, signature.json, metrics.json, params.json, lineage.json..."""
    return f"{TRAIN_RUNS}/{run_id}"


def tune_run_prefix(tune_id: str) -> str:
    """A tune run (published): best_params.json (what train --tuned reads), trials.json, lineage.json."""
    return f"{TUNE_RUNS}/{tune_id}"


def eval_run_prefix(eval_id: str) -> str:
    """An evaluation (published): evaluation.json, report.md."""
    return f"{EVAL_RUNS}/{eval_id}"


def model_prefix(name: str) -> str:
    """A registry model: versions/<N>/ and aliases.json."""
    return f"models/{name}"


# -- serving -------------------------------------------------------------------------------------
def serving_state_key(model: str) -> str:
    """What each Triton model serves now (the version, shadow/canary challenger), updated by CAS."""
    return f"serving/{model}/state.json"


def deploy_lock_key(model: str) -> str:
    """The deploy lease: one deploy of a model at a time."""
    return f"serving/{model}/deploy.lock"


def challenger_records_prefix(model: str, champion: int, challenger: int) -> str:
    """Online shadow/canary records: both versions' scores per request."""
    return f"serving/{model}/challenger/v{champion}-vs-v{challenger}"


def rollout_key(model: str) -> str:
    """The rollout of the latest challenger (step, every decision, the deploy a decision implies), updated by CAS."""
    return f"serving/{model}/rollout.json"


def rollout_report_prefix(model: str, champion: int, challenger: int) -> str:
    """A rollout's statistical report (report.json, report.md, metrics.prom), rewritten at every decision."""
    return f"serving/{model}/rollouts/v{champion}-vs-v{challenger}"


def predictions_prefix(day: date) -> str:
    """The predictions of the flights scheduled on a local day, made of one published part per scoring
    interval (components.core.partitions): <prefix>/interval=<start>_<end>/predictions.parquet with the
    signature KEYS, every feature the model scored (so monitoring sees what the model saw),
    prediction_time (data time: the moment the prediction is made for), probability, model_version,
    feature_service, scored_by, scored_at (the machine's clock when it ran). Read it whole with
    components.core.partitions.read_parts."""
    return f"predictions/date={day.isoformat()}"


# -- monitoring ------------------------------------------------------------------------------------
MONITORING_DECISIONS = "monitoring/decisions"


def monitoring_prefix(day: date) -> str:
    """Published by monitor: summary.json, metrics.prom and the rows its drift statistics compared
    (drift_reference.parquet, drift_current.parquet)."""
    return f"monitoring/date={day.isoformat()}"


def monitoring_report_prefix(day: date) -> str:
    """Published by `flightdeck monitor-report` (off the monitor's hot path): report.html, Evidently's
    drift report drawn from the monitored day's compared rows, and report_values.json, its numbers."""
    return f"monitoring/reports/date={day.isoformat()}"


def decision_key(day: date) -> str:
    """The retraining decision of a monitored day (the latest; every decision also goes to log/)."""
    return f"{MONITORING_DECISIONS}/date={day.isoformat()}.json"


def runlog_prefix(pipeline: str) -> str:
    """The run log of one pipeline: events/, latest.json, last_success.json, metrics.prom."""
    return f"runlog/{pipeline}"
