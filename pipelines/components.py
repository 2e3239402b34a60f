"""KFP v2 components, one per stage. Each body calls the stage's entry function through
pipelines.steps.run_stage; the base image is the stage's image from containers/images.yaml,
which has flightdeck (and kfp) installed, so nothing is pip-installed at run time.

Steps are wired by what they hand on: a step takes its producer's Dataset/Model as an Input
(so the KFP UI draws the lineage, and run_stage checks it names a location in this step's
store), and the scalars a later step or the pipeline reads (run id, evaluation id, blessing,
version, retrain) come back as named outputs, read from the stage's result by key.
"""
# No `from __future__ import annotations`: KFP reads the annotations as types. Each body runs on its
# own in the step's container, so the NamedTuple output types are spelled in the signature, not shared.


from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from components.core.images import image_for_stage


def _image(stage: str) -> str:
    return image_for_stage(stage)


@dsl.component(base_image=_image("ingest"), install_kfp_package=False)
def ingest(start: str, end: str, source: str, raw: Output[Dataset]):
    from pipelines.steps import run_stage

    run_stage("ingest", {"start": start, "end": end, "source": source}, raw=raw)


@dsl.component(base_image=_image("validate"), install_kfp_package=False)
def validate(start: str, end: str, raw: Input[Dataset], validated: Output[Dataset]):
    from pipelines.steps import run_stage

    run_stage("validate", {"start": start, "end": end}, inputs={"raw": raw}, validated=validated)


@dsl.component(base_image=_image("features-build"), install_kfp_package=False)
def features_build(start: str, end: str, validated: Input[Dataset], tables: Output[Dataset]):
    from pipelines.steps import run_stage

    run_stage("features-build", {"start": start, "end": end}, inputs={"validated": validated}, tables=tables)


@dsl.component(base_image=_image("features-training-set"), install_kfp_package=False)
def training_set(start: str, end: str, tables: Input[Dataset], training_set: Output[Dataset]):
    from pipelines.steps import run_stage

    run_stage("features-training-set", {"start": start, "end": end}, inputs={"tables": tables},
              training_set=training_set)


@dsl.component(base_image=_image("features-materialize"), install_kfp_package=False)
def materialize(end: str, start: str, tables: Input[Dataset]):
    from pipelines.steps import run_stage

    # No start: the run's day alone, as the Airflow DAG materializes its logical date (an explicit interval).
    run_stage("features-materialize", {"start": start or end, "end": end}, inputs={"tables": tables})


@dsl.component(base_image=_image("tune"), install_kfp_package=False)
def tune(train_start: str, train_end: str, trials: int, training_set: Input[Dataset], chosen: Output[Dataset],
         metrics: Output[Metrics]):
    from pipelines.steps import no_tuning, run_stage

    if trials < 1:  # tuning off (the pipeline's default): train keeps its default parameters
        no_tuning(chosen)
        return
    run_stage("tune", {"train_start": train_start, "train_end": train_end, "trials": trials},
              inputs={"training_set": training_set}, metrics=metrics, chosen=chosen)


@dsl.component(base_image=_image("features-push-outcomes"), install_kfp_package=False)
def push_outcomes(date: str, end: str, until: str, tables: Input[Dataset], interval_end: str = ""):
    from pipelines.steps import last_prediction_time, run_stage

    # A range date..end: the days before `end` backfill the offline log; `end` is pushed online too.
    # With interval_end (batch prediction), `until` (the interval's start) becomes its last prediction time.
    until = last_prediction_time(until, interval_end)
    run_stage("features-push-outcomes", {"date": date, "end": end, "until": until}, inputs={"tables": tables})


@dsl.component(base_image=_image("train"), install_kfp_package=False)
def train(train_start: str, train_end: str, seed: int, max_epochs: int, training_set: Input[Dataset],
          tuned: Input[Dataset], model: Output[Model], metrics: Output[Metrics]) -> NamedTuple(
        "TrainOutputs", [("run_id", str)]):
    from pipelines.steps import run_stage

    # The tune step's artifact names its run (metadata tune_id), or none when tuning was off.
    tune_id = str(tuned.metadata.get("tune_id") or "")
    params = {"train_start": train_start, "train_end": train_end, "seed": seed, "max_epochs": max_epochs,
              "tuned": tune_id}
    inputs = {"training_set": training_set, **({"tuned": tuned} if tune_id else {})}
    result = run_stage("train", params, inputs=inputs, metrics=metrics, model=model)
    return (result["run_id"],)


@dsl.component(base_image=_image("evaluate"), install_kfp_package=False)
def evaluate(run_id: str, model: Input[Model], non_inferiority_margin: float, max_ece: float, metrics: Output[Metrics],
             report: Output[HTML], classification: Output[ClassificationMetrics],
             summary: Output[Markdown]) -> NamedTuple("EvaluateOutputs",
                                                      [("eval_id", str), ("blessed", bool), ("failed", list)]):
    from pipelines.steps import log_evaluation, run_stage

    params = {"run_id": run_id, "non_inferiority_margin": non_inferiority_margin, "max_ece": max_ece}
    result = run_stage("evaluate", params, inputs={"model": model}, metrics=metrics, report=report)
    log_evaluation(result["eval_id"], classification, summary)
    return result["eval_id"], bool(result["blessed"]), list(result["failed"])


@dsl.component(base_image=_image("register"), install_kfp_package=False)
def register(eval_id: str, trained: Input[Model], model: Output[Model]) -> NamedTuple(
        "RegisterOutputs", [("version", int)]):
    from pipelines.steps import run_stage

    result = run_stage("register", {"evaluation": eval_id}, inputs={"trained": trained}, model=model)
    return (int(result["version"]),)


@dsl.component(base_image=_image("rollout-start"), install_kfp_package=False)
def rollout_start(model: Input[Model], version: int, blessed: bool, failed: list, target: str) -> NamedTuple(
        "RolloutStartOutputs", [("started", bool), ("reason", str)]):
    from pipelines.steps import run_stage

    if not blessed:
        # The blessing gate (see definitions.training): an unblessed version is registered, never served.
        return False, "not blessed: " + "; ".join(failed)
    # Shadow beside the champion (the first champion: full); monitoring's rollout_advance takes it further.
    result = run_stage("rollout-start", {"version": str(version), "target": target}, inputs={"model": model})
    return True, result["reason"]


@dsl.component(base_image=_image("rollout-advance"), install_kfp_package=False)
def rollout_advance(date: str, report: Output[HTML]) -> NamedTuple("RolloutAdvanceOutputs", [("action", str)]):
    from pipelines.steps import run_stage

    # The same entry function as the Airflow task: advance, hold or roll back the active rollout.
    return (run_stage("rollout-advance", {"date": date}, report=report)["action"],)


@dsl.component(base_image=_image("predict-batch"), install_kfp_package=False)
def predict_batch(date: str, start: str, end: str, tables: Input[Dataset], predictions: Output[Dataset]):
    from pipelines.steps import run_stage

    # The same entry function as the Airflow task: the interval [start, end), or the whole day as one interval.
    params = {"date": "", "start": start, "end": end} if start else {"date": date}
    run_stage("predict-batch", params, inputs={"tables": tables}, predictions=predictions)


@dsl.component(base_image=_image("monitor"), install_kfp_package=False)
def monitor(date: str, metrics: Output[Metrics], report: Output[HTML]) -> NamedTuple(
        "MonitorOutputs", [("retrain", bool), ("trigger", str)]):
    from components.monitoring.policy import starts_training
    from pipelines.steps import run_stage

    result = run_stage("monitor", {"date": date}, metrics=metrics, report=report)
    # True only under FLIGHTDECK_RETRAIN_ACTION=train (as shipped a retrain is recommended in the summary and
    # metrics, not started); a rerun of a day that already asked for one says False: one day, one training run.
    return starts_training(result), result["trigger"] or ""
