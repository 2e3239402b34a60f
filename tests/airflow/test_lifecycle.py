"""The whole lifecycle through the DAGs with dag.test() and a real Triton server:
continuous_training deploys a first champion (its rollout goes to full directly); batch_prediction scores a day through Triton and
records the predictions asset event; monitoring on a drifted day recommends a retrain and, as
shipped (the action "warn"), queues nothing; with FLIGHTDECK_RETRAIN_ACTION=train its rerun records
the drift asset event that queues continuous_training (a quiet day does not); monitoring the drifted
day again records no second event; the queued continuous_training run (created as the
scheduler creates it, from the drift event) trains on the window ending at the drifted day."""

from __future__ import annotations

import json

import pytest

from components.contracts import signature
from components.core import partitions
from tests.airflow.test_dag_runs import run_dag, xcom
from tests.conftest import local_triton

pytestmark = pytest.mark.slow  # scheduled first (tests/conftest.py): the suite's long poles

TRAIN_DAY = "2013-04-01"  # trains on the DAG's default window_days (84) before it, as `make demo` does
QUIET_DAY = "2013-04-02"  # the day after the training window: same season
DRIFTED_DAY = "2013-07-15"  # summer: temperatures ~45 F above the training window's
ONLINE_DAY = "2013-07-16"  # not scored by the runs above: its outcomes are pushed by the demo's step alone


@pytest.fixture(scope="module")
def lifecycle_env(tmp_path_factory, airflow_db):
    # The retraining policy judges one scored day here (its default needs a week of them). One
    # day against a twelve-week reference always shows some drift (0.13 of the features on the quiet
    # day below; 0.31 on the July day, with temp and dewp), so the drift share that counts is raised
    # between the two.
    policy = {"FLIGHTDECK_RETRAIN_WINDOW_DAYS": "1", "FLIGHTDECK_RETRAIN_DRIFT_SHARE_THRESHOLD": "0.3",
              "FLIGHTDECK_RETRAIN_CONSECUTIVE_DAYS": "1", "FLIGHTDECK_RETRAIN_MIN_ROWS": "300",
              "FLIGHTDECK_RETRAIN_COOLDOWN_DAYS": "0"}
    with local_triton(tmp_path_factory.mktemp("fd-lifecycle"), policy) as env:
        yield {"home": env["home"], "triton": env["server"]}


@pytest.fixture(scope="module")
def dags(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    from tests.airflow.conftest import DAGS

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return bag.dags


from components.orchestration.local import asset_rows, create_asset_triggered_runs, run_existing, unpause  # noqa: E402


def test_lifecycle(lifecycle_env, dags, monkeypatch):
    from components.core.store import open_store

    # 1. continuous training -> a blessed champion, deployed on Triton: the DAG's defaults and the gate as
    # shipped (docs/MODEL.md: the 12-week window's model passes it).
    dr, tis = run_dag(dags["continuous_training"], TRAIN_DAY)
    assert dr.state == "success"
    evaluation = xcom(tis["evaluate"])
    assert evaluation["blessed"], evaluation["failed"]
    assert xcom(tis["plan_window"]) == {"day": TRAIN_DAY, "start": "2013-01-07", "end": "2013-03-31"}
    assert tis["register"].state == tis["rollout_start"].state == "success"
    deployed = xcom(tis["rollout_start"])
    print("rollout started:", deployed)
    # Nothing served yet: the first champion goes to all traffic directly (no champion to compare with).
    assert (deployed["action"], deployed["status"], deployed["step"]) == ("start", "promoted", "full"), deployed
    store = open_store()
    # What `make demo` prints of such a run (components/ops/demo.py) comes from these XComs and the evaluation.
    from components.ops import demo
    from components.orchestration import local as airflow_local
    summary = demo._data_summary(airflow_local, tis)
    assert "None" not in " ".join(summary) and "84 daily partitions" in summary[0], summary
    table = demo._metrics_table(evaluation["eval_id"])
    assert table[1].startswith("model (MLP)") and f"{evaluation['roc_auc']:.4f}" in table[1], table
    assert {row.split()[0] for row in table[2:]} >= {"carrier_rate", "logistic_regression"}, table

    # 2. batch prediction of a quiet and a drifted day, through Triton.
    unpause("monitoring", "continuous_training")
    for day in (QUIET_DAY, DRIFTED_DAY):
        dr, tis = run_dag(dags["batch_prediction"], day, run_conf={"day": day})  # the whole day as one interval
        assert dr.state == "success"
        assert partitions.parts(store, f"predictions/date={day}")  # the interval's part of the day's partition
        assert xcom(tis["publish_predictions"])["date"] == day
        scored, line = xcom(tis["predict_batch"]), demo._scored_line(airflow_local, tis)
        worst = max(scored["missing_by_feature"], key=scored["missing_by_feature"].get)
        assert f"scored {scored['rows']} flights through triton" in line and f"({worst} " in line, line
    events, queued = asset_rows("flight_delay_predictions")
    assert sorted(e[1]["date"] for e in events) == [QUIET_DAY, DRIFTED_DAY]
    assert set(queued) == {"monitoring"}  # each predictions event schedules monitoring

    # 3. monitoring: a quiet day records no drift event ...
    dr, tis = run_dag(dags["monitoring"], QUIET_DAY)
    result = xcom(tis["monitor"])
    print("quiet day:", {k: result[k] for k in ("drift_share", "drifted_features", "retrain", "reasons")})
    assert dr.state == "success" and result["retrain"] is False, result
    assert tis["no_drift"].state == "success" and tis["emit_drift"].state == "skipped"
    assert xcom(tis["rollout_advance"])["action"] == "none"  # the champion is not rolling out: nothing to decide
    assert asset_rows("flight_delay_drift") == ([], [])
    # ... a drifted day, as shipped (FLIGHTDECK_RETRAIN_ACTION=warn), recommends a retrain and queues nothing:
    dr, tis = run_dag(dags["monitoring"], DRIFTED_DAY)
    result = xcom(tis["monitor"])
    print("drifted day:", {k: result[k] for k in ("drift_share", "drifted_features", "retrain", "reasons")})
    assert dr.state == "success" and result["retrain"] is True and result["requested"] is False, result
    assert tis["no_drift"].state == "success" and tis["emit_drift"].state == "skipped"
    assert xcom(tis["no_drift"])["recommended"] is True
    assert "retrain recommended, not started" in xcom(tis["no_drift"])["reason"]
    assert asset_rows("flight_delay_drift") == ([], [])
    # ... and with the action turned on, the day's rerun records the drift event that queues continuous_training.
    monkeypatch.setenv("FLIGHTDECK_RETRAIN_ACTION", "train")
    dr, tis = run_dag(dags["monitoring"], DRIFTED_DAY)
    result = xcom(tis["monitor"])
    assert dr.state == "success" and result["retrain"] is True and result["requested"] is True, result
    assert tis["emit_drift"].state == "success" and tis["no_drift"].state == "skipped"
    events, queued = asset_rows("flight_delay_drift")
    assert len(events) == 1 and events[0][1]["date"] == DRIFTED_DAY
    assert queued == ["continuous_training"]

    # 4. The drifted day monitored again (a cleared run, a backfill): the day's decision is replaced,
    # it still says retrain, but the retrain was requested already: no second drift event.
    from components.monitoring.decision_log import decisions

    dr, tis = run_dag(dags["monitoring"], DRIFTED_DAY)
    again = xcom(tis["monitor"])
    assert dr.state == "success" and again["retrain"] is True and again["already_requested"], again
    assert tis["no_drift"].state == "success" and tis["emit_drift"].state == "skipped"
    assert "already requested" in xcom(tis["no_drift"])["reason"]
    assert asset_rows("flight_delay_drift") == (events, ["continuous_training"])
    assert [d["date"] for d in decisions(store)].count(DRIFTED_DAY) == 1

    # 5. The continuous_training run the drift event queued, created as the scheduler creates it (no
    # logical date, the drift event attached as its trigger) and run in-process with the DAG's own
    # defaults: its day is the one the event names, so it trains on the window_days (84) before it.
    [run_id] = create_asset_triggered_runs("continuous_training")
    assert asset_rows("flight_delay_drift")[1] == []  # the queue was consumed
    dr, tis, seconds = run_existing("continuous_training", run_id)
    print(f"asset-triggered continuous_training: {dr.state} in {seconds:.0f} s; "
          + ", ".join(f"{t}={ti.state}" for t, ti in sorted(tis.items())))
    assert dr.state == "success"
    assert _triggering_dates(run_id) == [DRIFTED_DAY]
    window = xcom(tis["plan_window"])
    assert window == {"day": DRIFTED_DAY, "start": "2013-04-22", "end": "2013-07-14"}
    trained = xcom(tis["train"])
    lineage = json.loads(store.read_published(trained["prefix"], "lineage.json"))
    assert (lineage["window"]["start"], lineage["window"]["end"]) == ("2013-04-22", "2013-07-14")
    assert store.published("validated/flights/date=2013-07-14") is not None
    assert {tis["evaluate"].state, tis["blessed"].state} == {"success"}
    # Whichever way evaluate decided, the run took one branch and ended cleanly.
    assert sorted(t for t in ("register", "challenger_rejected") if tis[t].state == "success") in (
        ["register"], ["challenger_rejected"])
    if tis["register"].state == "success":  # a new champion is a shadow beside the one serving, not served
        assert xcom(tis["rollout_start"])["step"] == "shadow"

    # 6. What `make demo` shows last: an afternoon flight of the next day, online at its prediction time, before
    # the morning's outcomes were pushed (the day pushed up to local midnight: the hourly airport views have no
    # row for the prediction's hour, the aircraft's view its reset row) and after; the values read online
    # equal the departures counted here from the validated flights.
    from components.ops.demo_day import online_before_after

    seen = online_before_after(ONLINE_DAY, lifecycle_env["home"] / "demo-day-logs.txt")
    assert seen is not None
    before, after, at = seen["before"], seen["after"], seen["prediction_time"]
    hourly = [c for c in signature.DAY_SO_FAR if not c.startswith("plane_")]
    assert all(before["features"][c] != before["features"][c] for c in hourly), before  # NaN: not known yet
    assert before["features"]["plane_deps_so_far"] == 0, before  # the midnight reset, not yesterday's count
    deps = _departures_by(store, ONLINE_DAY, seen["flight"]["origin"], at)
    assert after["features"]["origin_deps_so_far"] == len(deps) > 50, (after["features"], len(deps))
    assert after["features"]["origin_dep_delay_so_far"] == pytest.approx(deps["dep_delay"].mean(), abs=1e-6)
    assert after["probability"] != before["probability"] and after["model_version"] == before["model_version"]

    # Every finished run is in the run log that `flightdeck status` and the pipeline alerts read.
    from components.core import runlog
    runs = runlog.last_runs(store)
    for pipeline in ("continuous_training", "batch_prediction", "monitoring"):
        assert runs[pipeline]["last_success"] is not None, runs.get(pipeline)


def _triggering_dates(run_id: str) -> list[str]:
    """The run's type, logical date and the asset events it consumed, from the metadata DB."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        dr = session.query(DagRun).filter_by(run_id=run_id).one()
        assert dr.run_type == "asset_triggered" and dr.logical_date is None
        return [str(e.extra["date"]) for e in dr.consumed_asset_events]


def _departures_by(store, day: str, origin: str, at):
    """The departures from `origin` between the local midnight starting `day` and `at` (inclusive), counted
    from the validated flights of the day and the day before (its late departures happen on the day)."""
    import pandas as pd

    from components.contracts import schema
    from components.features.validated import read_days

    d = schema.parse_day(day)
    flights = read_days(store, "flights", [d - pd.Timedelta(days=1), d], required=True)
    flights = flights[(flights["origin"] == origin) & flights["dep_delay"].notna()]
    departed = pd.to_datetime(flights["sched_dep_utc"], utc=True) + pd.to_timedelta(flights["dep_delay"], unit="min")
    midnight = pd.Timestamp(day, tz=schema.LOCAL_TZ).tz_convert("UTC")
    return flights[(departed >= midnight) & (departed <= at)]
