"""tune: a small real Optuna study on the model tests' two-week window, end to end.

The study resumes (a rerun adds trials to the same study in the same SQLite storage), the median
pruner stops a trial that falls behind at an epoch, every trial is published, and the chosen
parameters reach train: its parameters, params.json and lineage.json name the tune run.
"""

from __future__ import annotations

import json

import pytest

from components.contracts import layout
from components.contracts.errors import StageFailed
from components.contracts.results import TuneResult
from components.contracts.stages import TrainParams, TuneParams
from tests.model.conftest import TEST_TRAIN, WINDOW

# Few trials, few epochs: the first run is the defaults' trial and two sampled ones; the second run adds two.
SMALL = dict(max_epochs=3, patience=2, startup_trials=1, warmup_epochs=0, threads=1, device="cpu")
# A point that learns slowly (smallest learning rate, largest batch, most dropout): far behind at epoch 1.
SLOW = {"learning_rate": 3e-4, "weight_decay": 1e-2, "hidden": "64", "embedding_dim": 4, "dropout": 0.5,
        "batch_size": 2048}


@pytest.fixture(scope="module")
def tune_home(model_home, tmp_path_factory):
    """A home of its own (its study database, its runs) holding the session's training set."""
    from components.core.store import LocalStore

    home = tmp_path_factory.mktemp("tune-home")
    store = LocalStore(home / "artifacts")
    key = layout.training_set_key(*WINDOW)
    store.write_bytes(key, model_home["store"].read_bytes(key))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLIGHTDECK_HOME", str(home))
        mp.setenv("FLIGHTDECK_PROFILE", "local")
        mp.delenv("FLIGHTDECK_TUNING_STORAGE_URL", raising=False)
        yield {"home": home, "store": store}


@pytest.fixture(scope="module")
def studied(tune_home):
    import optuna

    from components.model.tune import tune

    store = tune_home["store"]
    first = tune(TuneParams(train_start=WINDOW[0], train_end=WINDOW[1], trials=3, **SMALL), store)
    url = f"sqlite:///{tune_home['home'] / 'tuning' / 'optuna.db'}"
    optuna.load_study(study_name=first["study"], storage=url).enqueue_trial(SLOW, user_attrs={"slow": True})
    second = tune(TuneParams(train_start=WINDOW[0], train_end=WINDOW[1], trials=2, **SMALL), store)
    return {**tune_home, "first": first, "second": second, "url": url}


def test_the_study_is_persistent_and_resumes(studied):
    import optuna

    first, second = studied["first"], studied["second"]
    assert set(first) == set(TuneResult.__annotations__)
    assert first["storage"] == "sqlite" and (studied["home"] / "tuning" / "optuna.db").is_file()
    assert (first["trials_added"], first["trials_total"]) == (3, 3)
    # the rerun added to the same study: same name, numbering continues, the first run's trials kept
    assert second["study"] == first["study"] and (second["trials_added"], second["trials_total"]) == (2, 5)
    assert second["tune_id"] != first["tune_id"]
    study = optuna.load_study(study_name=first["study"], storage=studied["url"])
    assert [t.number for t in study.trials] == [0, 1, 2, 3, 4]
    published = json.loads(studied["store"].read_published(second["prefix"], "trials.json"))
    earlier = json.loads(studied["store"].read_published(first["prefix"], "trials.json"))
    assert [t["params"] for t in published[:3]] == [t["params"] for t in earlier]
    lineage = json.loads(studied["store"].read_published(second["prefix"], "lineage.json"))
    assert lineage["study"]["resumed_from_trials"] == 3 and lineage["study"]["trials_added"] == 2
    assert lineage["training_set"]["key"] == layout.training_set_key(*WINDOW)


def test_the_defaults_are_trial_zero_and_a_slow_trial_is_pruned(studied):
    from components.model.tune import defaults

    trials = json.loads(studied["store"].read_published(studied["second"]["prefix"], "trials.json"))
    assert trials[0]["params"] == defaults() and trials[0]["state"] == "COMPLETE"
    assert studied["second"]["default_val_auc"] == round(trials[0]["value"], 5)
    slow = next(t for t in trials if t["user_attrs"].get("slow"))
    assert slow["state"] == "PRUNED", slow
    # pruned after reporting fewer epochs than the trials that finished
    assert len(slow["val_auc_per_epoch"]) < SMALL["max_epochs"]
    assert studied["second"]["pruned"] >= 1 and studied["second"]["complete"] >= 2
    for t in trials:  # every trial reported its validation AUC per epoch
        assert t["val_auc_per_epoch"] and all(0.0 < v < 1.0 for v in t["val_auc_per_epoch"].values())


def test_the_chosen_parameters_reach_train_and_its_lineage(studied, monkeypatch):
    from components.model.train import train

    second, store = studied["second"], studied["store"]
    choice = json.loads(store.read_published(second["prefix"], "best_params.json"))
    assert choice["params"] == second["best_params"] and choice["best_val_auc"] == pytest.approx(second["best_val_auc"], abs=5e-6)  # the result rounds to 5 places
    base = TrainParams(train_start=WINDOW[0], train_end=WINDOW[1], **{**TEST_TRAIN, "members": 1})
    monkeypatch.setenv("FLIGHTDECK_HOME", str(studied["home"]))
    result = train(TrainParams(**{**base.__dict__, "tuned": second["tune_id"]}), store)
    lineage = json.loads(store.read_published(result["prefix"], "lineage.json"))
    params = json.loads(store.read_published(result["prefix"], "params.json"))
    assert lineage["tuning"]["tune_id"] == second["tune_id"] and lineage["tuning"]["params"] == choice["params"]
    assert lineage["tuning"]["sha256"] and lineage["tuning"]["uri"].endswith(second["prefix"])
    for name, value in choice["params"].items():
        assert lineage["params"][name] == value == params[name], name
    # an untuned run keeps its id scheme and records no tuning
    with pytest.raises(StageFailed, match="no published tune run"):
        train(TrainParams(**{**base.__dict__, "tuned": "no-such-tune-run"}), store)


def test_the_storage_is_a_secret_setting_and_refusals_name_no_password(tmp_path):
    """On aws the study storage must be set (the RDS PostgreSQL); an unreachable one refuses before any data is
    read, and the refusal carries neither the URL nor its password (both are a secret setting)."""
    from components.core.settings import SECRET_SETTINGS, load_settings
    from components.model.tune import open_storage, storage_url

    assert "tuning_storage_url" in SECRET_SETTINGS
    local = load_settings({"FLIGHTDECK_HOME": str(tmp_path)})
    assert storage_url(local) == (f"sqlite:///{tmp_path.resolve() / 'tuning' / 'optuna.db'}", "sqlite")
    aws = {"FLIGHTDECK_PROFILE": "aws", "FLIGHTDECK_S3_BUCKET": "b"}
    with pytest.raises(StageFailed, match="FLIGHTDECK_TUNING_STORAGE_URL"):
        storage_url(load_settings(aws))
    url = "postgresql://tuner:pw-tuning-secret@127.0.0.1:9/optuna"  # nothing listens on port 9
    settings = load_settings({**aws, "FLIGHTDECK_TUNING_STORAGE_URL": url})
    assert "pw-tuning-secret" not in repr(settings)
    with pytest.raises(StageFailed, match=r"the tuning storage \(postgresql\) cannot be opened") as refused:
        open_storage(settings)
    assert "pw-tuning-secret" not in str(refused.value) and url not in str(refused.value)
