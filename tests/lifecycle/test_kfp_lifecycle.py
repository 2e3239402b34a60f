"""The lifecycle as Kubeflow pipelines run with kfp.local (real stages, real Triton), and the
batch-prediction guarantees: output rows == input rows, a rerun replaces instead of duplicating,
and an unreachable Triton fails clearly and writes nothing."""

from __future__ import annotations

import pytest

from components.contracts import layout, prediction_time, schema
from components.core import partitions
from tests.conftest import free_port, local_triton

pytestmark = pytest.mark.slow  # scheduled first (tests/conftest.py): the suite's long poles

TRAIN = {"start": "2013-01-07", "end": "2013-03-31"}  # the 12 weeks continuous_training plans for 2013-04-01
QUIET_DAY = "2013-04-01"
QUIET_WEEK = ("2013-04-01", "2013-04-07")  # the week after the training window
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

    # The pipeline's defaults and the gate as shipped, on the 12-week window whose model passes it
    # (docs/MODEL.md); the gate's logic itself is tested in tests/model. With the tune step on for one trial:
    # a new study's first trial is TrainParams' defaults, so the choice train takes through the step's Dataset
    # is the defaults, and the model is the one the defaults train (the search itself: tests/model/test_tune.py).
    run_local("training", {**TRAIN, "tune_trials": 1})
    from components.model.registry import open_registry

    return open_registry()


def test_training_pipeline_registers_and_deploys_a_champion(trained):
    champion = trained.resolve("champion")
    record = trained.get(champion)
    assert record["blessed"] is True
    _check_the_evaluation_the_kfp_ui_draws(record)
    assert record["window"]["start"] == TRAIN["start"] or TRAIN["start"] in str(record["window"])
    _check_the_tune_run_reached_train(record)
    deployed = trained.aliases()[0].get("deployed", {})
    assert any(d["version"] == champion for d in deployed.values()), deployed


def _check_the_tune_run_reached_train(record: dict) -> None:
    """The tune step's Dataset named its run; train read it and recorded it in the registered model's lineage."""
    import json

    from components.core.store import open_store
    from components.model.tune import defaults

    (chosen,) = _typed_outputs("training")["tune", "chosen"]
    store = open_store()
    lineage = json.loads(store.read_published(layout.train_run_prefix(record["run_id"]), "lineage.json"))
    assert lineage["tuning"]["tune_id"] == chosen["tune_id"] and chosen["store_uri"] == lineage["tuning"]["uri"]
    assert lineage["tuning"]["params"] == defaults() and lineage["tuning"]["best_trial"] == 0


@pytest.fixture(scope="module")
def quiet_day_scored(trained):
    from pipelines.cli import run_local

    run_local("batch_prediction", {"date": QUIET_DAY})
    return QUIET_DAY


def test_batch_prediction_pipeline_scores_every_flight_once(quiet_day_scored, trained):
    from components.core.store import open_store
    from components.data.validate import read_validated
    from components.serving.batch_predict import read_predictions

    store = open_store()
    day = schema.parse_day(quiet_day_scored)
    flights = read_validated(store, "flights", day)
    preds = read_predictions(day)
    assert len(preds) == len(flights) and preds["flight_id"].is_unique
    assert set(preds["flight_id"]) == set(flights["flight_id"])
    assert preds["probability"].between(0, 1).all()
    assert set(preds["model_version"]) == {trained.resolve("champion")}
    assert (preds["event_timestamp"] <= preds["sched_dep_utc"]).all()


def _check_the_evaluation_the_kfp_ui_draws(record: dict) -> None:
    """The kfp.local run's evaluate step wrote the ROC curve and confusion matrix (ClassificationMetrics) of
    the holdout the registry records, and the evaluation report as its Markdown artifact."""
    import json

    import numpy as np

    from components.core.settings import load_settings

    (run,) = sorted((load_settings().home_path / "kfp").glob("flightdeck-training-2*"))
    written = json.loads((run / "evaluate" / "executor_output.json").read_text())["artifacts"]
    (classification,) = written["classification"]["artifacts"]
    points = classification["metadata"]["confidenceMetrics"]
    fpr, tpr = (np.array([p[k] for p in points]) for k in ("falsePositiveRate", "recall"))
    assert len(points) > 50 and np.trapezoid(tpr, fpr) == pytest.approx(record["metrics"]["roc_auc"], abs=0.003)
    matrix = classification["metadata"]["confusionMatrix"]
    assert [c["displayName"] for c in matrix["annotationSpecs"]] == ["on time", "late"]
    assert sum(sum(row["row"]) for row in matrix["rows"]) == record["metrics"]["rows"]
    (summary,) = written["summary"]["artifacts"]
    text = open(summary["uri"].removeprefix("file://") if "://" in summary["uri"] else summary["uri"]).read()
    assert "**Decision: BLESSED**" in text and "The gate: paired bootstrap" in text


def _typed_outputs(pipeline: str) -> dict[tuple[str, str], list[dict]]:
    """{(step, output): [metadata per kfp.local run]} of every Dataset and Model output the compiled
    pipeline declares, read from the executor_output.json each step of each run wrote under the
    pipeline root (run_local's: FLIGHTDECK_HOME/kfp/<pipeline>-<time>/<step>/)."""
    import json

    import yaml

    from components.core.settings import load_settings
    from pipelines.cli import COMPILED_DIR

    spec = next(yaml.safe_load_all((COMPILED_DIR / f"{pipeline}.yaml").read_text()))
    declared = {(comp.removeprefix("comp-"), output)
                for comp, body in spec["components"].items()
                for output, art in body.get("outputDefinitions", {}).get("artifacts", {}).items()
                if art["artifactType"]["schemaTitle"] in ("system.Dataset", "system.Model")}
    runs = sorted((load_settings().home_path / "kfp").glob(spec["pipelineInfo"]["name"] + "-2*"))
    assert runs, f"no kfp.local run of {pipeline}"
    found: dict[tuple[str, str], list[dict]] = {key: [] for key in declared}
    for run in runs:
        for step, output in declared:
            written = json.loads((run / step / "executor_output.json").read_text())
            (artifact,) = written["artifacts"][output]["artifacts"]
            found[step, output].append(artifact["metadata"])
    return found


def _in_store(store, uri: str) -> bool:
    """The store URI names an object, or a prefix with objects under it."""
    root = store.uri().rstrip("/") + "/"
    assert uri.startswith(root), f"{uri} is not in the artifact store {root}"
    key = uri[len(root):]
    return store.exists(key) or bool(store.list(key + "/"))


def test_every_dataset_and_model_output_points_into_the_store(quiet_day_scored, trained):
    """What the KFP UI links a step's Dataset/Model to: store_uri, the stage result's `uri`."""
    from components.core.store import open_store

    store = open_store()
    expected = {
        "training": {("ingest", "raw"), ("validate", "validated"), ("features-build", "tables"),
                     ("training-set", "training_set"), ("tune", "chosen"), ("train", "model"), ("register", "model")},
        "batch_prediction": {("ingest", "raw"), ("validate", "validated"), ("features-build", "tables"),
                             ("predict-batch", "predictions")},
    }
    for pipeline, outputs in expected.items():
        found = _typed_outputs(pipeline)
        assert set(found) == outputs, pipeline
        for (step, output), runs in found.items():
            for meta in runs:
                uri = meta["store_uri"]
                assert uri and _in_store(store, uri), (pipeline, step, output, meta)
                if step in ("ingest", "validate"):  # the area holding the run's date range
                    area = "raw" if step == "ingest" else "validated"
                    assert uri == store.uri(area)
                    day = schema.parse_day(meta["start"])
                    key = layout.raw_key("schedule", day) if step == "ingest" else layout.validated_prefix("flights", day)
                    assert store.uri(key).startswith(uri + "/") and _in_store(store, store.uri(key))
    (training_set,) = _typed_outputs("training")["training-set", "training_set"]
    assert training_set["store_uri"] == training_set["out"]
    assert training_set["store_uri"].endswith(f"training_sets/{TRAIN['start']}_{TRAIN['end']}.parquet")
    (model,) = _typed_outputs("training")["train", "model"]
    assert model["store_uri"] == store.uri(model["prefix"])


def test_rerun_replaces_the_partition(quiet_day_scored):
    from components.contracts.stages import STAGES
    from components.core.store import open_store
    from components.serving.batch_predict import read_predictions

    store = open_store()
    day = schema.parse_day(quiet_day_scored)
    # The whole-day run's own part of the day's partition (components.core.partitions).
    prefix = f"{layout.predictions_prefix(day)}/{prediction_time.part_name(*prediction_time.day_bounds(day))}"
    first = read_predictions(quiet_day_scored)
    STAGES["predict-batch"].run(date=quiet_day_scored)
    second = read_predictions(quiet_day_scored)
    assert len(second) == len(first)
    assert (second["probability"].to_numpy() == first["probability"].to_numpy()).all()
    # Readers see one partition: the pointer's. The version it replaced stays on disk until the next
    # publish (a reader that read the old pointer can still finish), never longer.
    def versions():
        return {k.split("/")[3] for k in store.list(prefix + "/") if k.endswith(".parquet")}

    current = store.published(prefix)["version"]
    assert current in versions() and len(versions()) <= 2, versions()
    STAGES["predict-batch"].run(date=quiet_day_scored)
    assert len(versions()) == 2 and current in versions(), versions()
    assert len(read_predictions(quiet_day_scored)) == len(first)


def test_unreachable_triton_fails_clearly_and_writes_nothing(quiet_day_scored, monkeypatch):
    from components.contracts.errors import StageFailed
    from components.contracts.stages import STAGES
    from components.core.store import open_store

    store = open_store()
    prefix = layout.predictions_prefix(schema.parse_day(quiet_day_scored))
    before = partitions.parts(store, prefix)
    monkeypatch.setenv("FLIGHTDECK_TRITON_URL", f"127.0.0.1:{free_port()}")
    with pytest.raises(StageFailed, match="(?i)triton"):
        STAGES["predict-batch"].run(date=quiet_day_scored)
    assert partitions.parts(store, prefix) == before


def _score_week(first: str, last: str, through_kfp: str | None = None) -> None:
    """Ingest, validate, build features and push outcomes for a week, and score each day (one through KFP)."""
    from components.contracts.stages import STAGES
    from pipelines.cli import run_local

    STAGES["ingest"].run(start=first, end=last)
    STAGES["validate"].run(start=first, end=last)
    STAGES["features-build"].run(start=first, end=last)
    # The week's outcomes (the day-so-far inputs' offline log), as batch prediction pushes each day's; the
    # point-in-time join gives each flight only what was known at its prediction time.
    STAGES["features-push-outcomes"].run(date=first, end=last)
    for day in schema.day_range(first, last):
        if day.isoformat() == through_kfp:
            run_local("batch_prediction", {"date": through_kfp, "materialize_from": through_kfp})
        elif not _scored(day):
            STAGES["predict-batch"].run(date=day.isoformat())


def _scored(day) -> bool:
    from components.core.store import open_store

    # The day's own whole-day run, not merely a part: the previous day's run leaves an (often empty) part
    # here for this day's first departures, whose prediction time falls on the previous day.
    return prediction_time.part_name(*prediction_time.day_bounds(day)) in partitions.parts(
        open_store(), layout.predictions_prefix(day))


def test_monitoring_pipeline_says_retrain_on_a_drifted_week_only(quiet_day_scored, monkeypatch):
    import json

    from components.core.store import open_store
    from pipelines.cli import run_local

    _score_week(*QUIET_WEEK)
    _score_week(*DRIFTED_WEEK, through_kfp=DRIFTED_WEEK[1])
    quiet = run_local("monitoring", {"date": QUIET_WEEK[1]})
    warned = run_local("monitoring", {"date": DRIFTED_WEEK[1]})  # as shipped: recommended, not requested
    monkeypatch.setenv("FLIGHTDECK_RETRAIN_ACTION", "train")
    drifted = run_local("monitoring", {"date": DRIFTED_WEEK[1]})
    assert quiet.output is False
    assert warned.output is False
    assert drifted.output is True

    store = open_store()
    summary = {d: json.loads(store.read_published(layout.monitoring_prefix(schema.parse_day(d)), "summary.json"))
               for d in (QUIET_WEEK[1], DRIFTED_WEEK[1])}
    assert summary[QUIET_WEEK[1]]["decision"]["retrain"] is False
    assert summary[DRIFTED_WEEK[1]]["decision"]["trigger"] == "drift"
    assert summary[DRIFTED_WEEK[1]]["decision"]["retrain"] is True
    assert summary[DRIFTED_WEEK[1]]["decision"]["requested"] is True
    drifted_features = {c for c, e in summary[DRIFTED_WEEK[1]]["drift"]["features"].items() if e["drifted"]}
    assert {"temp", "dewp"} <= drifted_features, drifted_features
