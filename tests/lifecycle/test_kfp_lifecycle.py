"""The lifecycle as Kubeflow pipelines run with kfp.local (real stages, real Triton), and the
batch-prediction guarantees: output rows == input rows, a rerun replaces instead of duplicating,
and an unreachable Triton fails clearly and writes nothing."""

from __future__ import annotations

import pytest

from components import schema
from tests.conftest import free_port, local_triton

pytestmark = pytest.mark.slow  # scheduled first (tests/conftest.py): the suite's long poles

TRAIN = {"start": "2013-01-01", "end": "2013-02-10"}
QUIET_DAY = "2013-02-11"
QUIET_WEEK = ("2013-02-11", "2013-02-17")  # the week after the training window
DRIFTED_WEEK = ("2013-07-09", "2013-07-15")  # summer: ~45 F warmer than the training window


@pytest.fixture(scope="module")
def kfp_env(tmp_path_factory):
    # The default policy (7-day windows, docs/MONITORING.md), except that one drifted window
    # is enough here: the default asks for 3 in a row, which would need 9 scored July days.
    with local_triton(tmp_path_factory.mktemp("fd-kfp"), {"FLIGHTDECK_RETRAIN_CONSECUTIVE_DAYS": "1"}) as env:
        yield env["home"]


@pytest.fixture(scope="module")
def trained(kfp_env):
    from pipelines.cli import run_local

    # A short window and few epochs: the blessing bars are loosened for so little data; the
    # blessing itself is tested in tests/model. This tests the wiring around it.
    run_local("training", {**TRAIN, "max_epochs": 4, "max_ece": 0.15, "baseline_margin": -0.05})
    from components.registry import open_registry

    return open_registry()


def test_training_pipeline_registers_and_deploys_a_champion(trained):
    champion = trained.resolve("champion")
    record = trained.get(champion)
    assert record["blessed"] is True
    assert record["window"]["start"] == TRAIN["start"] or TRAIN["start"] in str(record["window"])
    deployed = trained.aliases()[0].get("deployed", {})
    assert any(d["version"] == champion for d in deployed.values()), deployed


@pytest.fixture(scope="module")
def quiet_day_scored(trained):
    from pipelines.cli import run_local

    run_local("batch_prediction", {"date": QUIET_DAY})
    return QUIET_DAY


def test_batch_prediction_pipeline_scores_every_flight_once(quiet_day_scored, trained):
    from components.batch_predict import read_predictions
    from components.store import open_store
    from components.validate import read_validated

    store = open_store()
    day = schema.parse_day(quiet_day_scored)
    flights = read_validated(store, "flights", day)
    preds = read_predictions(day)
    assert len(preds) == len(flights) and preds["flight_id"].is_unique
    assert set(preds["flight_id"]) == set(flights["flight_id"])
    assert preds["probability"].between(0, 1).all()
    assert set(preds["model_version"]) == {trained.resolve("champion")}
    assert (preds["event_timestamp"] <= preds["sched_dep_utc"]).all()


def test_rerun_replaces_the_partition(quiet_day_scored):
    from components.batch_predict import read_predictions
    from components.stages import STAGES
    from components.store import open_store

    store = open_store()
    prefix = schema.predictions_prefix(schema.parse_day(quiet_day_scored))
    first = read_predictions(quiet_day_scored)
    STAGES["predict-batch"].run(date=quiet_day_scored)
    second = read_predictions(quiet_day_scored)
    assert len(second) == len(first)
    assert (second["probability"].to_numpy() == first["probability"].to_numpy()).all()
    # Readers see one partition: the pointer's. The version it replaced stays on disk until the next
    # publish (a reader that read the old pointer can still finish), never longer.
    def versions():
        return {k.split("/")[2] for k in store.list(prefix + "/") if k.endswith(".parquet")}

    current = store.published(prefix)["version"]
    assert current in versions() and len(versions()) <= 2, versions()
    STAGES["predict-batch"].run(date=quiet_day_scored)
    assert len(versions()) == 2 and current in versions(), versions()
    assert len(read_predictions(quiet_day_scored)) == len(first)


def test_unreachable_triton_fails_clearly_and_writes_nothing(quiet_day_scored, monkeypatch):
    from components.errors import StageFailed
    from components.stages import STAGES
    from components.store import open_store

    store = open_store()
    prefix = schema.predictions_prefix(schema.parse_day(quiet_day_scored))
    before = store.published(prefix)
    monkeypatch.setenv("FLIGHTDECK_TRITON_URL", f"127.0.0.1:{free_port()}")
    with pytest.raises(StageFailed, match="(?i)triton"):
        STAGES["predict-batch"].run(date=quiet_day_scored)
    assert store.published(prefix) == before


def _score_week(first: str, last: str, through_kfp: str | None = None) -> None:
    """Ingest, validate and build features for a week, and score each day (one through KFP)."""
    from components.stages import STAGES
    from pipelines.cli import run_local

    STAGES["ingest"].run(start=first, end=last)
    STAGES["validate"].run(start=first, end=last)
    STAGES["features-build"].run(start=first, end=last)
    for day in schema.day_range(first, last):
        if day.isoformat() == through_kfp:
            run_local("batch_prediction", {"date": through_kfp, "materialize_from": through_kfp})
        elif not _scored(day):
            STAGES["predict-batch"].run(date=day.isoformat())


def _scored(day) -> bool:
    from components.store import open_store

    return open_store().published(schema.predictions_prefix(day)) is not None


def test_monitoring_pipeline_says_retrain_on_a_drifted_week_only(quiet_day_scored):
    import json

    from components.store import open_store
    from pipelines.cli import run_local

    _score_week(*QUIET_WEEK)
    _score_week(*DRIFTED_WEEK, through_kfp=DRIFTED_WEEK[1])
    quiet = run_local("monitoring", {"date": QUIET_WEEK[1]})
    drifted = run_local("monitoring", {"date": DRIFTED_WEEK[1]})
    assert quiet.output is False
    assert drifted.output is True

    store = open_store()
    summary = {d: json.loads(store.read_published(schema.monitoring_prefix(schema.parse_day(d)), "summary.json"))
               for d in (QUIET_WEEK[1], DRIFTED_WEEK[1])}
    assert summary[QUIET_WEEK[1]]["decision"]["retrain"] is False
    assert summary[DRIFTED_WEEK[1]]["decision"]["trigger"] == "drift"
    drifted_features = {c for c, e in summary[DRIFTED_WEEK[1]]["drift"]["features"].items() if e["drifted"]}
    assert {"temp", "dewp"} <= drifted_features, drifted_features
