"""The whole lifecycle through the DAGs with dag.test() and a real Triton server:
continuous_training deploys a champion; batch_prediction scores a day through Triton and
records the predictions asset event; monitoring on a drifted day records the drift asset
event that queues continuous_training, and on a quiet day does not."""

from __future__ import annotations

import pytest

from tests.airflow.test_dag_runs import run_dag, xcom
from tests.conftest import local_triton

TRAIN_DAY = "2013-03-01"  # trains on the window_days before it
QUIET_DAY = "2013-03-02"  # the day after the training window: same season
DRIFTED_DAY = "2013-07-15"  # summer: temperatures ~45 F above the training window's


@pytest.fixture(scope="module")
def lifecycle_env(tmp_path_factory, airflow_db):
    # The retraining policy judges one scored day here (its default needs a week of them). One
    # day against a four-week reference always shows some drift (day_of_week, dest, pressure:
    # 0.22 of the features on the quiet day below; 0.35 on the July day, with temp and dewp), so
    # the drift share that counts is raised between the two.
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


from components.airflow_local import asset_rows, unpause  # noqa: E402


def test_lifecycle(lifecycle_env, dags):
    from components.store import open_store

    # 1. continuous training -> a blessed champion, deployed on Triton. Four weeks of data train a
    # model that lands near the logistic-regression baseline; the run's gates say how near is enough.
    dr, tis = run_dag(dags["continuous_training"], TRAIN_DAY,
                      run_conf={"window_days": 28, "max_ece": 0.1, "baseline_margin": -0.02})
    assert dr.state == "success"
    evaluation = xcom(tis["evaluate"])
    assert evaluation["blessed"], evaluation["failed"]
    assert tis["register"].state == tis["deploy"].state == "success"
    deployed = xcom(tis["deploy"])
    print("deployed:", deployed)
    store = open_store()

    # 2. batch prediction of a quiet and a drifted day, through Triton.
    unpause("monitoring", "continuous_training")
    for day in (QUIET_DAY, DRIFTED_DAY):
        dr, tis = run_dag(dags["batch_prediction"], day)
        assert dr.state == "success"
        assert store.published(f"predictions/date={day}") is not None
        assert xcom(tis["publish_predictions"])["date"] == day
    events, queued = asset_rows("flight_delay_predictions")
    assert sorted(e[1]["date"] for e in events) == [QUIET_DAY, DRIFTED_DAY]
    assert set(queued) == {"monitoring"}  # each predictions event schedules monitoring

    # 3. monitoring: a quiet day records no drift event ...
    dr, tis = run_dag(dags["monitoring"], QUIET_DAY)
    result = xcom(tis["monitor"])
    print("quiet day:", {k: result[k] for k in ("drift_share", "drifted_features", "retrain", "reasons")})
    assert dr.state == "success" and result["retrain"] is False, result
    assert tis["no_drift"].state == "success" and tis["emit_drift"].state == "skipped"
    assert asset_rows("flight_delay_drift") == ([], [])
    # ... a drifted day does, and that queues a continuous_training run.
    dr, tis = run_dag(dags["monitoring"], DRIFTED_DAY)
    result = xcom(tis["monitor"])
    print("drifted day:", {k: result[k] for k in ("drift_share", "drifted_features", "retrain", "reasons")})
    assert dr.state == "success" and result["retrain"] is True, result
    assert tis["emit_drift"].state == "success" and tis["no_drift"].state == "skipped"
    events, queued = asset_rows("flight_delay_drift")
    assert len(events) == 1 and events[0][1]["date"] == DRIFTED_DAY
    assert queued == ["continuous_training"]

    # Every finished run is in the run log that `flightdeck status` and the pipeline alerts read.
    from components import runlog

    runs = runlog.last_runs(store)
    for pipeline in ("continuous_training", "batch_prediction", "monitoring"):
        assert runs[pipeline]["last_success"] is not None, runs.get(pipeline)
