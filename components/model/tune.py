"""tune: the MLP's hyperparameters searched with Optuna on the training window's validation period.

The study is persistent and resumable: it lives in an Optuna storage (SQLite under FLIGHTDECK_HOME
locally; the RDS PostgreSQL on aws, whose URL is the secret setting FLIGHTDECK_TUNING_STORAGE_URL),
named after the window, its training set's hash and the search space, so a rerun on the same data
adds trials to the same study instead of starting over. A trial that died with its process (no
heartbeat for 2 minutes) is marked failed when the study is next opened.

Each trial trains one MLP head (TrainParams with members=1, no linear head) on the same split as
train (components.model.train.time_split: train, then validation, then the untouched holdout) and
reports its validation ROC AUC after every epoch; a median pruner stops trials that fall behind the
others at the same epoch. The first trial of a new study is TrainParams' defaults, so the study
always says what tuning bought over them. The best trial's parameters are published as
best_params.json; `flightdeck train --tuned <tune-id>` reads them and records them in its lineage.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from dataclasses import asdict, fields
from datetime import date
from pathlib import Path

from components import code_version
from components.contracts import layout
from components.contracts.errors import StageFailed
from components.contracts.results import TuneResult
from components.contracts.signature import LABEL
from components.contracts.stages import TrainParams, TuneParams
from components.core.store import ArtifactStore, open_store, sha256_bytes

log = logging.getLogger(__name__)

# Bump when the search space changes: a new space is a new study (the old trials are not comparable).
SEARCH_SPACE_VERSION = 1
HIDDEN_CHOICES = ("64", "128,64", "256,128", "128,64,32")
SEARCH_SPACE = {
    "learning_rate": {"low": 3e-4, "high": 1e-2, "log": True},
    "weight_decay": {"low": 1e-5, "high": 1e-2, "log": True},
    "hidden": {"choices": list(HIDDEN_CHOICES)},
    "embedding_dim": {"choices": [4, 8, 16]},
    "dropout": {"low": 0.0, "high": 0.5, "log": False},
    "batch_size": {"choices": [512, 1024, 2048]},
}
SEARCHED = tuple(SEARCH_SPACE)
# Seconds between a running trial's heartbeats, and how long without one before it counts as dead.
HEARTBEAT_S, GRACE_S = 30, 120


def suggest(trial) -> dict:
    """One point of the search space (SEARCH_SPACE), from an Optuna trial."""
    out = {}
    for name, space in SEARCH_SPACE.items():
        if "choices" in space:
            out[name] = trial.suggest_categorical(name, space["choices"])
        else:
            out[name] = trial.suggest_float(name, space["low"], space["high"], log=space["log"])
    return out


def defaults() -> dict:
    """TrainParams' defaults of the searched parameters (the first trial of every new study)."""
    return {f.name: f.default for f in fields(TrainParams) if f.name in SEARCHED}


def storage_url(settings) -> tuple[str, str]:
    """(SQLAlchemy URL, its kind) of the study storage: the setting, else SQLite under the home (local only)."""
    if settings.tuning_storage_url:
        url = settings.tuning_storage_url
        return url, url.split(":", 1)[0].split("+", 1)[0]
    if settings.profile != "local":
        raise StageFailed("tune on the aws profile needs FLIGHTDECK_TUNING_STORAGE_URL (the RDS PostgreSQL's "
                          "SQLAlchemy URL, a secret setting: the flightdeck-tuning-db Secret on the cluster)")
    folder = settings.home_path / "tuning"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(folder) / 'optuna.db'}", "sqlite"


def open_storage(settings) -> tuple:
    """(Optuna RDBStorage, its kind), opened before any data is read: a wrong or unreachable storage fails fast.
    StageFailed when it cannot be opened, its message redacted (the URL is a secret setting)."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    url, kind = storage_url(settings)
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5.1, and what makes resuming safe
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S), kind
    except (ImportError, SQLAlchemyError) as exc:  # no driver in the image, no such host, refused, bad password
        message = settings.redact(f"the tuning storage ({kind}) cannot be opened: {type(exc).__name__}: {exc}")
        raise StageFailed(message.replace(url, "***")) from None


def _study_name(params: TuneParams, set_sha: str) -> str:
    fixed = {"space": SEARCH_SPACE_VERSION, "data": set_sha, "max_epochs": params.max_epochs,
             "patience": params.patience, "seed": params.seed}
    digest = sha256_bytes(json.dumps(fixed, sort_keys=True).encode())[:10]
    return params.study or f"delay-mlp-v{SEARCH_SPACE_VERSION}_{params.train_start}_{params.train_end}_{digest}"


def trial_params(params: TuneParams, chosen: dict) -> TrainParams:
    """The TrainParams of one trial: one MLP head, the trial's point, train's split and defaults otherwise."""
    return TrainParams(train_start=params.train_start, train_end=params.train_end, seed=params.seed,
                       max_epochs=params.max_epochs, patience=params.patience, members=1, linear_weight=0.0,
                       threads=params.threads, device=params.device, **chosen)


def tune(params: TuneParams, store: ArtifactStore | None = None) -> TuneResult:
    """Search the MLP's hyperparameters on the window's validation period; publish every trial and the choice.

    Inputs:
      training_sets/<train_start>_<train_end>.parquet (as train); the study in the Optuna storage
      (components.core.settings tuning_storage_url; SQLite under <home>/tuning locally), resumed if it exists.
    Outputs:
      `trials` more trials in the study; runs/tune/<tune-id>/, published: best_params.json (the chosen
      parameters, what `train --tuned` reads), trials.json (every trial of the study: state, parameters,
      per-epoch validation AUC, seconds), lineage.json (window, training set, study, sampler, pruner,
      search space, code version); runs/tune/_latest.json names the run.
    Returns:
      TuneResult: the run and study, trial counts by state, the best and the default trial's validation AUC.
    Failures:
      StageFailed: no training set or too short a window (as train), trials < 1, no storage URL on aws,
      a storage that cannot be opened, a study with no finished trial.
    """
    import optuna
    import torch

    from components.core.settings import load_settings
    from components.model.fitting import fit
    from components.model.train import assign_split, deterministic, load_training_set, pick_device, time_split

    store = store or open_store()
    storage, kind = open_storage(load_settings())
    if params.trials < 1:
        raise StageFailed(f"--trials {params.trials}: a tune run adds at least one trial")
    if date.fromisoformat(params.train_end) < date.fromisoformat(params.train_start):
        raise StageFailed(f"--train-end {params.train_end} is before --train-start {params.train_start}")
    frame, set_key, set_sha = load_training_set(store, params.train_start, params.train_end)
    base = TrainParams(train_start=params.train_start, train_end=params.train_end)
    bounds = time_split(frame["sched_dep_utc"], base.val_fraction, base.test_fraction)
    split = assign_split(frame, bounds)
    for part in ("train", "val"):
        labels = frame.loc[split == part, LABEL]
        if len(labels) < 50 or labels.nunique() < 2:
            raise StageFailed(f"the {part} period of {params.train_start}..{params.train_end} has {len(labels)} "
                              "rows and needs at least 50 with both outcomes; use a longer window.")
    device = pick_device(params.device)
    name = _study_name(params, set_sha)
    # Seeded by the trials so far: a rerun proposes new points, and the same study state the same ones.
    resumed = len(optuna.load_study(study_name=name, storage=storage).trials) \
        if name in optuna.get_all_study_names(storage) else 0
    study = optuna.create_study(
        study_name=name, storage=storage, direction="maximize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=params.seed + resumed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=params.startup_trials,
                                           n_warmup_steps=params.warmup_epochs))
    # Trials that ran before this run (a trial enqueued by hand and not yet run is this run's to run).
    before = sum(t.state != optuna.trial.TrialState.WAITING for t in study.trials)
    if not study.trials:
        study.enqueue_trial(defaults(), user_attrs={"defaults": True})

    def objective(trial) -> float:
        chosen = suggest(trial)
        t0 = time.perf_counter()

        def on_epoch(epoch: int, val_auc: float) -> None:
            trial.report(val_auc, epoch)
            trial.set_user_attr("seconds", round(time.perf_counter() - t0, 3))
            if trial.should_prune():
                raise optuna.TrialPruned(f"validation AUC {val_auc:.4f} at epoch {epoch} is below the median")

        with deterministic(params.seed, params.threads):
            _, metrics = fit(trial_params(params, chosen), frame, split, device, on_epoch)
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 3))
        trial.set_user_attr("epochs_run", metrics["epochs_run"])
        trial.set_user_attr("best_epoch", metrics["best_epoch"])
        return float(metrics["val_auc"])

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t0 = time.perf_counter()
    study.optimize(objective, n_trials=params.trials, gc_after_trial=True)
    seconds = time.perf_counter() - t0
    trials = [_trial_record(t) for t in study.trials]
    finished = [t for t in trials if t["state"] == "COMPLETE"]
    if not finished:
        raise StageFailed(f"study {name} has no finished trial ({len(trials)} pruned or failed): add trials, or "
                          "give --startup-trials / --warmup-epochs more room")
    best = study.best_trial
    default = next((t for t in trials if t["user_attrs"].get("defaults")), None)
    default_auc = default["value"] if default and default["state"] == "COMPLETE" else None
    counts = {s: sum(t["state"] == s for t in trials) for s in ("COMPLETE", "PRUNED", "FAIL")}
    tune_id = f"{name}-{len(trials):04d}"
    chosen = {k: best.params[k] for k in SEARCHED}
    choice = {"tune_id": tune_id, "study": name, "best_trial": best.number, "best_val_auc": best.value,
              "default_val_auc": default_auc, "params": chosen, "defaults": defaults(),
              "trial_train_params": {k: v for k, v in asdict(trial_params(params, chosen)).items() if k not in chosen}}
    lineage = {
        "tune_id": tune_id, "window": {"start": params.train_start, "end": params.train_end, **bounds},
        "training_set": {"key": set_key, "sha256": set_sha, "rows": len(frame)},
        "study": {"name": name, "storage": kind, "resumed_from_trials": before, "trials_added": len(trials) - before,
                  "direction": "maximize", "objective": "validation ROC AUC of one MLP head at its best epoch"},
        "sampler": {"name": "TPESampler", "seed": params.seed + resumed},
        "pruner": {"name": "MedianPruner", "n_startup_trials": params.startup_trials,
                   "n_warmup_steps": params.warmup_epochs, "step": "epoch"},
        "search_space": {"version": SEARCH_SPACE_VERSION, **SEARCH_SPACE},
        "params": asdict(params), "code_version": code_version(), "optuna": optuna.__version__,
        "torch": torch.__version__, "device": str(device),
    }
    prefix = layout.tune_run_prefix(tune_id)
    store.publish(prefix, {"best_params.json": _json(choice), "trials.json": _json(trials),
                           "lineage.json": _json(lineage)}, meta={"stage": "tune", "tune_id": tune_id})
    store.write_json(layout.TUNE_LATEST, {"tune_id": tune_id, "prefix": prefix})
    log.info("tune %s: %d trials (%d complete, %d pruned), best #%d val AUC %.4f (defaults %s) -> %s", tune_id,
             len(trials), counts["COMPLETE"], counts["PRUNED"], best.number, best.value, default_auc, store.uri(prefix))
    return {"tune_id": tune_id, "prefix": prefix, "uri": store.uri(prefix), "study": name, "storage": kind,
            "trials_added": len(trials) - before, "trials_total": len(trials), "complete": counts["COMPLETE"],
            "pruned": counts["PRUNED"], "failed": counts["FAIL"], "best_trial": best.number,
            "best_val_auc": round(best.value, 5),
            "default_val_auc": None if default_auc is None else round(default_auc, 5),
            "best_params": chosen, "seconds": round(seconds, 2)}


def _trial_record(t) -> dict:
    return {"number": t.number, "state": t.state.name, "params": t.params, "value": t.value,
            "val_auc_per_epoch": {str(k): v for k, v in sorted(t.intermediate_values.items())},
            "started": t.datetime_start, "finished": t.datetime_complete, "user_attrs": t.user_attrs}


def _json(obj) -> bytes:
    return json.dumps(obj, indent=2, sort_keys=True, default=str, allow_nan=True).encode()
