"""`make demo`: the whole lifecycle on the local profile, through the Airflow DAGs (dag.test())
with a real Triton server, on the real 2013 data.

  1. continuous_training for 2013-04-01: ingest and validate the 12 weeks before, build the
     Feast features, train, evaluate against the baselines, register, promote, roll out (the first: full)
  2. batch_prediction + monitoring for three quiet April days; the last of them again, scored run by run
     (each run's window, its flights' prediction times and count), and how many rows the old 04:00 rule
     scored with weather observed after the run
  3. the same for three July days: the summer weather drifts and, once labels land, the AUC
     drops; the retraining policy recommends a retrain, and as shipped (FLIGHTDECK_RETRAIN_ACTION=warn)
     warns without queueing continuous_training (no drift asset event: the 2013 replay showed the drift
     rule's retrains refused by the gate, docs/BACKTEST.md)
  4. the on-call's answer to the warning: continuous_training triggered for the drifted day (its calendar
     runs it monthly, on the 1st): a new model on the latest 12 weeks, judged by the same
     gate against the baselines and the champion on the same holdout: rolled out if blessed, else
     rejected with its reasons while the champion keeps serving (on 2013 the summer window is
     rejected: LightGBM beats it by more than the margin, docs/MODEL.md)
  5. a rollout: continuous_training for 2013-04-01 on 90 days starts one (shadow); the next days' runs advance it
     (components/ops/demo_rollout.py, docs/ROLLOUT.md)
  6. one online prediction through Triton's online model (Feast online store + the served version) for an
     afternoon flight of the day after the July days, at its prediction time: with the day pushed up to local
     midnight, and after the morning's outcomes were pushed (the day-so-far features and the probability,
     side by side)
  7. `flightdeck status`

Artifacts stay under FLIGHTDECK_HOME (default ./.flightdeck); the demo's Airflow metadata DB is
made anew each run (FLIGHTDECK_HOME/airflow-demo). Stages are idempotent, so a rerun is safe.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import sys
import time

from components.contracts import layout
from components.ops import demo_rollout
from components.ops.demo_day import interval_by_interval, online_before_after, say, step
from components.ops.demo_day import task_logs_to as _task_logs_to

TRAIN_DAY = "2013-04-01"
QUIET_DAYS = ["2013-04-01", "2013-04-02", "2013-04-03"]
DRIFTED_DAYS = ["2013-07-13", "2013-07-14", "2013-07-15"]
ONLINE_DAY = "2013-07-16"  # the day after: its outcomes not yet pushed when step 5 starts


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ports() -> dict:
    """Triton's usual ports when they are free, else free ones."""
    wanted = {"http": 8000, "grpc": 8001, "metrics": 8002}
    if all(_port_free(p) for p in wanted.values()):
        return wanted
    return {k: _free_port() for k in wanted}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m components.ops.demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--window-days", type=int, default=84, help="training window in days (default 84)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("FLIGHTDECK_PROFILE", "local")
    from components.core.settings import load_settings

    settings = load_settings()
    home = settings.home_path
    t_start = time.perf_counter()
    say(f"flightdeck demo: the lifecycle on real 2013 data, local profile, FLIGHTDECK_HOME={home}")

    from components.orchestration import local as af
    global LOG_PATH
    LOG_PATH = home / "demo-task-logs.txt"
    LOG_PATH.unlink(missing_ok=True)
    say(f"(task logs go to {LOG_PATH})")
    airflow_home = home / "airflow-demo"
    shutil.rmtree(airflow_home, ignore_errors=True)
    af.configure(airflow_home)
    ports = _ports()
    os.environ["FLIGHTDECK_TRITON_URL"] = f"127.0.0.1:{ports['grpc']}"
    os.environ["FLIGHTDECK_TRITON_HTTP_URL"] = f"127.0.0.1:{ports['http']}"
    from components.serving.triton import repository
    from components.serving.triton.server import TritonServer, admin_key

    key = admin_key(create=True)
    os.environ["FLIGHTDECK_TRITON_ADMIN_KEY"] = key
    _, repo_uri = repository.repository_location()
    with TritonServer(repo_uri, http_port=ports["http"], grpc_port=ports["grpc"], metrics_port=ports["metrics"],
                      admin_key=key):
        say(f"Triton is up: HTTP 127.0.0.1:{ports['http']}  gRPC 127.0.0.1:{ports['grpc']}  "
            f"metrics http://127.0.0.1:{ports['metrics']}/metrics")
        dags = af.load_dags()
        ok = _lifecycle(af, dags, args.window_days)
        step("flightdeck status")
        from components.ops import oncall
        say(oncall.render(oncall.gather()))
    say(f"\ndemo {'finished' if ok else 'FAILED'} in {time.perf_counter() - t_start:.0f} s. Where to look:")
    say(f"  artifacts         {home / 'artifacts'}  (raw/ validated/ quarantine/ features/ runs/ models/ predictions/ monitoring/)")
    say(f"  drift reports     flightdeck monitor-report --date {DRIFTED_DAYS[-1]} (Evidently's HTML, drawn on demand into "
        f"{home / 'artifacts' / 'monitoring' / 'reports'}/date=*/v-*/report.html)")
    say(f"  task logs         {LOG_PATH}")
    say("  the Airflow UI    make airflow      the registry   flightdeck registry list")
    return 0 if ok else 1


LOG_PATH = None  # set by main: FLIGHTDECK_HOME/demo-task-logs.txt


def _run(af, dag, day: str, conf: dict | None = None):
    with _task_logs_to(LOG_PATH):
        dr, tis, seconds = af.run_dag(dag, day, run_conf=conf or {})
    states = ", ".join(f"{t}={ti.state}" for t, ti in tis.items() if ti.state != "success")
    say(f"   {dag.dag_id} {day}: {dr.state} in {seconds:.0f} s" + (f" (not success: {states})" if states else ""))
    return dr, tis


def _training(af, dags, day: str, window_days: int) -> bool | None:
    """Run continuous_training for a day under the shipped gate: True blessed (and rolled out), False rejected,
    None when the run itself failed."""
    dr, tis = _run(af, dags["continuous_training"], day, {"window_days": window_days, "day": day})
    if dr.state != "success":
        return None
    window = af.xcom(tis["plan_window"])
    trained = af.xcom(tis["train"]) or {}
    evaluation = af.xcom(tis["evaluate"]) or {}
    say(f"   window {window['start']} .. {window['end']}")
    for line in _data_summary(af, tis):
        say(f"   {line}")
    say(f"   trained: {trained.get('rows')} rows, {trained.get('epochs_run')} epochs, "
        f"{trained.get('seconds_per_epoch')} s/epoch on {trained.get('device')}")
    for line in _metrics_table(evaluation.get("eval_id")):
        say(f"   {line}")
    say(f"   blessed: {evaluation.get('blessed')}" + (f"  ({'; '.join(evaluation.get('failed') or [])})"
                                                       if not evaluation.get("blessed") else ""))
    if evaluation.get("blessed"):
        registered = af.xcom(tis["register"]) or {}
        rollout = af.xcom(tis["rollout_start"]) or {}
        say(f"   registered version {registered.get('version')}, champion {registered.get('champion')}; "
            f"rollout_start: v{rollout.get('challenger')} {rollout.get('step')} ({rollout.get('reason')})")
    return bool(evaluation.get("blessed"))


def _data_summary(af, tis) -> list[str]:
    """Rows per data stage, partitions, the training set's shape (what the run's XComs say)."""
    ingested = (af.xcom(tis["ingest"]) or {}).get("tables", {})
    validated = af.xcom(tis["validate"]) or {}
    built = af.xcom(tis["features_build"]) or {}
    tset = af.xcom(tis["features_training_set"]) or {}
    pushed = (af.xcom(tis["features_push_outcomes"]) if "features_push_outcomes" in tis else None) or {}
    flights, weather = ingested.get("schedule", {}), ingested.get("weather", {})
    outcomes = ingested.get("outcomes", {})
    return [
        f"ingest: {flights.get('rows')} scheduled flights, {outcomes.get('rows')} outcomes and {weather.get('rows')} "
        f"weather rows in {flights.get('partitions')} daily partitions each",
        f"validate: {validated.get('passed')} partitions passed, {validated.get('failed')} quarantined "
        f"({(validated.get('rows') or {}).get('flights')} flights validated)",
        "features: " + ", ".join(f"{view} {rows}" for view, rows in sorted((built.get("table_rows") or {}).items()))
        + " rows",
        f"day so far: {pushed.get('events')} outcome events of {pushed.get('date')}..{pushed.get('end')} replayed "
        "in event-time order: " + ", ".join(f"{view} {rows}" for view, rows in sorted((pushed.get("rows") or {}).items()))
        + f" rows in the offline log, the last day pushed online ({pushed.get('seconds')} s)",
        f"training set: {tset.get('shape')} (rows x columns), late rate {tset.get('label_rate')}",
    ]


def _metrics_table(eval_id: str | None) -> list[str]:
    """The holdout metrics of the model and the baselines, from the evaluation the run published."""
    if not eval_id:
        return []
    from components.core.store import open_store

    store = open_store()
    report = json.loads(store.read_published(layout.eval_run_prefix(eval_id), "evaluation.json"))
    cols = ("roc_auc", "pr_auc", "log_loss", "brier", "ece")
    rows = [("model (MLP)", report["model"]["overall"])] + [
        (name, m) for name, m in report["baselines"].items() if not m.get("skipped")]
    if report.get("champion"):
        rows.append((f"champion v{report['champion']['version']}", report["champion"]))
    out = [f"holdout ({report['holdout']['rows']} flights)".ljust(24) + "".join(c.rjust(10) for c in cols)]
    for name, m in rows:
        out.append(name.ljust(24) + "".join(
            (f"{m[c]:.4f}" if isinstance(m.get(c), float) else "-").rjust(10) for c in cols))
    return out


def _scored_line(af, tis) -> str:
    """What a batch-prediction run scored, as the demo prints it."""
    scored = af.xcom(tis["predict_batch"]) if "predict_batch" in tis else af.xcom(tis["publish_predictions"])
    scored = scored or {}
    by_feature = sorted((scored.get("missing_by_feature") or {}).items(), key=lambda kv: -kv[1])
    # wind_gust is missing in most of the source's hours (no gust reported): name the features, so a
    # high count reads as what it is.
    which = f" ({', '.join(f'{k} {n}' for k, n in by_feature[:4])})" if by_feature else ""
    return (f"   scored {scored.get('rows')} flights through {scored.get('scored_by', 'triton')}, mean P(late) "
            f"{scored.get('mean_probability')}, {scored.get('flights_with_missing_features')} with a missing "
            f"feature{which}")


def _score_and_monitor(af, dags, day: str) -> dict:
    dr, tis = _run(af, dags["batch_prediction"], day, conf={"day": day})  # the whole day as one interval
    if dr.state != "success":
        return {}
    say(_scored_line(af, tis))
    dr, tis = _run(af, dags["monitoring"], day)
    result = af.xcom(tis["monitor"]) or {}
    drifted = ", ".join(result.get("drifted_features") or []) or "none"
    say(f"   drift share {result.get('drift_share')}: drifted {drifted}; retrain: {result.get('retrain')}")
    rollout = af.xcom(tis["rollout_advance"]) or {}
    if rollout.get("action") not in (None, "none"):
        say(demo_rollout.decision_line(rollout))
    for reason in result.get("reasons") or []:
        say(f"     - {reason}")
    return result


def _backfill_history(first_day: str, days: int) -> None:
    """The daily runs between April and July are skipped to keep the demo short; the trailing
    28-day carrier and route statistics of a July day need those weeks, so ingest, validate and
    build them here as the daily batch_prediction runs would have."""
    from datetime import date, timedelta

    from components.contracts.stages import STAGES

    end = date.fromisoformat(first_day) - timedelta(days=1)
    start = (end - timedelta(days=days - 1)).isoformat()
    t0 = time.perf_counter()
    with _task_logs_to(LOG_PATH):
        for stage in ("ingest", "validate", "features-build"):
            STAGES[stage].run(start=start, end=end.isoformat())
    say(f"   (backfilled ingest/validate/features for {start} .. {end}, as the skipped daily runs would have: "
        f"{time.perf_counter() - t0:.0f} s)")


def _lifecycle(af, dags, window_days: int) -> bool:
    step(f"1. continuous_training for {TRAIN_DAY} (train on the {window_days} days before)")
    say("   the blessing gate as shipped: paired bootstrap 95 % intervals of the ROC AUC difference on the holdout "
        "(significantly above the carrier heuristic; not below logistic regression, LightGBM or the champion by "
        "more than 0.005) and ECE <= 0.05")
    if not _training(af, dags, TRAIN_DAY, window_days):
        say("   the first model was not blessed, so nothing serves; see the reasons above")
        return False
    # What the platform engineer does in the UI: asset events queue runs of unpaused DAGs only
    # (the DAGs exist in the metadata DB once a run of them has been synced).
    af.unpause("batch_prediction", "monitoring", "continuous_training")
    step("2. batch_prediction + monitoring, quiet April days")
    for day in QUIET_DAYS:
        _score_and_monitor(af, dags, day)
    events, _ = af.asset_rows("flight_delay_drift")
    say(f"   drift asset events so far: {len(events)}")
    interval_by_interval(QUIET_DAYS[-1], LOG_PATH)
    step("3. batch_prediction + monitoring, July days (summer weather)")
    _backfill_history(DRIFTED_DAYS[0], days=28)
    af.unpause("batch_prediction", "monitoring", "continuous_training")
    results = {day: _score_and_monitor(af, dags, day) for day in DRIFTED_DAYS}
    recommended = [d for d in DRIFTED_DAYS if results[d].get("retrain")]
    events, queued = af.asset_rows("flight_delay_drift")
    say(f"   retrain recommended on {recommended or 'no day'}; drift asset events: {[e[1] for e in events]}, runs "
        f"queued by them: {queued} (the shipped action warns: DataDriftDetected / flightdeck status tell the on-call)")
    if not recommended:
        say("   no retraining was recommended")
        return False
    day = recommended[-1]  # trains on the window_days before it, as the drift event's run would
    step(f"4. the on-call triggers continuous_training for {day} (the calendar's next run: the 1st of the month)")
    af.clear_queue("continuous_training")  # nothing is queued as shipped; with FLIGHTDECK_RETRAIN_ACTION=train, run it now
    retrained = _training(af, dags, day, window_days)
    if retrained is None:
        say("   the retraining run failed; see the task logs")
        return False
    if not retrained:
        say("   the challenger was not blessed: challenger_rejected logged the reasons, register and rollout_start were "
            "skipped, and the champion keeps serving")
    step(f"5. a new champion's rollout: continuous_training for {demo_rollout.ROLLOUT_TRAIN_DAY} on "
         f"{demo_rollout.ROLLOUT_WINDOW_DAYS} days, then daily runs")
    demo_rollout.run(af, dags, say, _training, _score_and_monitor)
    return online_before_after(ONLINE_DAY, LOG_PATH, number=6) is not None

if __name__ == "__main__":
    sys.exit(main())
