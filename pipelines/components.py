"""KFP v2 components, one per stage. Each body calls the stage's entry function through
pipelines.steps.run_stage; the base image is the stage's image from containers/images.yaml,
which has flightdeck (and kfp) installed, so nothing is pip-installed at run time.
"""
# No `from __future__ import annotations`: KFP reads the annotations as types.


from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Dataset, Metrics, Model, Output

from components.core.images import image_for_stage


def _image(stage: str) -> str:
    return image_for_stage(stage)


@dsl.component(base_image=_image("ingest"), install_kfp_package=False)
def ingest(start: str, end: str, source: str, raw: Output[Dataset]) -> str:
    from pipelines.steps import run_stage

    return run_stage("ingest", {"start": start, "end": end, "source": source}, raw=raw)


@dsl.component(base_image=_image("validate"), install_kfp_package=False)
def validate(start: str, end: str, raw_ready: str, validated: Output[Dataset]) -> str:
    # raw_ready orders this step after ingest (KFP runs steps by data dependency).
    from pipelines.steps import run_stage

    return run_stage("validate", {"start": start, "end": end}, validated=validated)


@dsl.component(base_image=_image("features-build"), install_kfp_package=False)
def features_build(start: str, end: str, validated_ready: str, tables: Output[Dataset]) -> str:
    from pipelines.steps import run_stage

    return run_stage("features-build", {"start": start, "end": end}, tables=tables)


@dsl.component(base_image=_image("features-training-set"), install_kfp_package=False)
def training_set(start: str, end: str, tables_ready: str, training_set: Output[Dataset]) -> str:
    from pipelines.steps import run_stage

    return run_stage("features-training-set", {"start": start, "end": end}, training_set=training_set)


@dsl.component(base_image=_image("features-materialize"), install_kfp_package=False)
def materialize(end: str, start: str, tables_ready: str) -> str:
    from pipelines.steps import run_stage

    # No start: the run's day alone, as the Airflow DAG materializes its logical date (an explicit interval).
    return run_stage("features-materialize", {"start": start or end, "end": end})


@dsl.component(base_image=_image("train"), install_kfp_package=False)
def train(train_start: str, train_end: str, seed: int, max_epochs: int, training_set_ready: str,
          model: Output[Model], metrics: Output[Metrics]) -> str:
    from pipelines.steps import run_stage

    params = {"train_start": train_start, "train_end": train_end, "seed": seed, "max_epochs": max_epochs}
    return run_stage("train", params, metrics=metrics, model=model)


@dsl.component(base_image=_image("evaluate"), install_kfp_package=False)
def evaluate(run_id_json: str, baseline_margin: float, max_ece: float, metrics: Output[Metrics],
             report: Output[HTML]) -> NamedTuple("EvaluateOutputs", [("result", str), ("blessed", bool)]):
    import json
    from collections import namedtuple

    from pipelines.steps import run_stage

    params = {"run_id": json.loads(run_id_json)["run_id"], "baseline_margin": baseline_margin, "max_ece": max_ece}
    out = run_stage("evaluate", params, metrics=metrics, report=report)
    return namedtuple("EvaluateOutputs", ["result", "blessed"])(out, bool(json.loads(out)["blessed"]))


@dsl.component(base_image=_image("register"), install_kfp_package=False)
def register(evaluation_json: str, model: Output[Model]) -> str:
    import json

    from pipelines.steps import run_stage

    return run_stage("register", {"evaluation": json.loads(evaluation_json)["eval_id"]}, model=model)


@dsl.component(base_image=_image("deploy"), install_kfp_package=False)
def deploy(registered_json: str, evaluation_json: str, mode: str, target: str) -> str:
    import json

    from pipelines.steps import run_stage

    evaluation = json.loads(evaluation_json)
    if not evaluation["blessed"]:
        # The blessing gate (see definitions.training): an unblessed version is registered, never served.
        return json.dumps({"skipped": True, "reason": "not blessed: " + "; ".join(evaluation.get("failed", []))})
    version = str(json.loads(registered_json)["version"])
    return run_stage("deploy", {"version": version, "mode": mode, "target": target})


@dsl.component(base_image=_image("predict-batch"), install_kfp_package=False)
def predict_batch(date: str, online_ready: str, predictions: Output[Dataset]) -> str:
    from pipelines.steps import run_stage

    return run_stage("predict-batch", {"date": date}, predictions=predictions)


@dsl.component(base_image=_image("monitor"), install_kfp_package=False)
def monitor(date: str, predictions_ready: str, metrics: Output[Metrics], report: Output[HTML]) -> NamedTuple(
        "MonitorOutputs", [("result", str), ("retrain", bool)]):
    import json
    from collections import namedtuple

    from components.monitoring.policy import starts_training
    from pipelines.steps import run_stage

    out = run_stage("monitor", {"date": date}, metrics=metrics, report=report)
    # A rerun of a day that already asked for a retrain says retrain=False here: one day, one training run.
    return namedtuple("MonitorOutputs", ["result", "retrain"])(out, starts_training(json.loads(out)))
