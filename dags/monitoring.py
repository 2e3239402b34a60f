"""monitoring: drift and quality of one day's predictions; ask for retraining when needed.

Scheduled on the predictions asset (one run per batch-prediction day). The monitor stage
writes its report and metrics and says, through the retraining policy, whether to retrain; as
shipped that is a warning (FLIGHTDECK_RETRAIN_ACTION=warn: `no_drift`, the decision and its metric);
with the action `train`, `emit_drift` records the drift asset event that schedules continuous_training.
Beside it, `rollout_advance` decides the active rollout (if any) from the day's evidence and labels:
advance, hold or roll back (components.serving.rollout_stage; the same function as KFP and the CLI).
Wiring only.
"""

from airflow.sdk import DAG, Param

from components.orchestration import steps as steps
from components.orchestration.runtime import (
    DRIFT,
    PREDICTIONS,
    START_DATE,
    default_args,
    run_callbacks,
    stage_task,
    step,
    xcom,
)

with DAG(
    dag_id="monitoring",
    description="data drift, prediction drift and model quality; triggers retraining on drift",
    schedule=PREDICTIONS,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,  # the retraining policy reads the previous days' results in order
    default_args=default_args(),
    **run_callbacks("monitoring"),
    params={"day": Param("", type="string", description="day to monitor (YYYY-MM-DD); empty: the asset event's")},
    tags=["flightdeck", "monitoring"],
    doc_md=__doc__,
) as dag:
    day = step(steps.plan_day)
    monitor = stage_task("monitor", date=xcom("plan_day"))
    decide = step(steps.retrain_branch, task_id="retrain", branch=True)
    drift = step(steps.emit_drift, outlets=[DRIFT])
    quiet = step(steps.no_drift)
    # Not after monitor: a day whose drift report fails still has its rollout evidence to decide on.
    rollout = stage_task("rollout-advance", date=xcom("plan_day"))

    day >> monitor >> decide >> [drift, quiet]
    day >> rollout
