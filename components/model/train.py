"""train: the delay MLP on a time window of the Feast training set, exported as TorchScript.

The window is split by scheduled departure time (train, then validation, then the held-out test
period that evaluate scores), never at random: the model is always judged on flights later than
the ones it learnt from, as in production. Vocabularies and normalisation statistics come from
the training period only and ship inside the exported module (components.model.network).

The model is a seed ensemble of MLPs plus a linear head over shared preprocessing, each head
calibrated on the validation period (components.model.fitting; docs/MODEL.md says why);
evaluate reports the calibration it reaches.

Reproducible: one seed drives initialisation, shuffling and dropout; torch runs with deterministic
algorithms and a fixed thread count, so the same data and seed give bit-identical weights.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import asdict
from datetime import date

import numpy as np
import pandas as pd
import torch

from components import code_version
from components.contracts import layout, schema
from components.contracts.errors import StageFailed
from components.contracts.results import TrainResult
from components.contracts.signature import CATEGORICAL, KEYS, LABEL, NUMERIC, signature_json
from components.contracts.stages import TrainParams
from components.core.store import ArtifactStore, open_store, parquet_bytes, sha256_bytes
from components.model.fitting import fit
from components.model.network import DelayModel, export_bytes

log = logging.getLogger(__name__)


# -- data --------------------------------------------------------------------------------------
def load_training_set(store: ArtifactStore, start: str, end: str) -> tuple[pd.DataFrame, str, str]:
    """The training set of a window: (frame, store key, sha256 of its bytes)."""
    for day, what in ((start, "train-start"), (end, "train-end")):
        schema.parse_day(day, what)
    key = layout.training_set_key(start, end)
    if not store.exists(key):
        raise StageFailed(
            f"there is no training set for {start}..{end} at {store.uri(key)}. Build it first with "
            f"`flightdeck features training-set --start {start} --end {end}` (after ingest, validate and "
            "features build for those dates)."
        )
    data = store.read_bytes(key)
    frame = pd.read_parquet(io.BytesIO(data))
    missing = [c for c in KEYS + CATEGORICAL + NUMERIC + [LABEL] if c not in frame.columns]
    if missing:
        raise StageFailed(f"the training set {store.uri(key)} lacks the columns {', '.join(missing)} that "
                          "components.contracts.signature requires; rebuild it with the current features stage.")
    if frame[LABEL].isna().any():
        raise StageFailed(f"the training set {store.uri(key)} has {int(frame[LABEL].isna().sum())} rows without "
                          "a label; labels must be known for every training row.")
    frame = frame.sort_values(["sched_dep_utc", "flight_id"], kind="stable").reset_index(drop=True)
    return frame, key, sha256_bytes(data)


def time_split(times: pd.Series, val_fraction: float, test_fraction: float) -> dict[str, str]:
    """Boundaries (ISO UTC) that cut the window by time into train / validation / test shares."""
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise StageFailed(f"val_fraction={val_fraction} and test_fraction={test_fraction} must be in (0, 1) "
                          "and leave room for training")
    ns = np.sort(times.to_numpy(dtype="datetime64[ns]").astype("int64"))
    cut = [ns[int(len(ns) * (1 - val_fraction - test_fraction))], ns[int(len(ns) * (1 - test_fraction))]]
    val_start, test_start = (pd.Timestamp(c, tz="UTC") for c in cut)
    return {"val_start": val_start.isoformat(), "test_start": test_start.isoformat()}


def assign_split(frame: pd.DataFrame, bounds: dict[str, str]) -> np.ndarray:
    """'train' / 'val' / 'test' per row, from the boundaries of time_split."""
    t = frame["sched_dep_utc"]
    out = np.full(len(frame), "train", dtype=object)
    out[(t >= pd.Timestamp(bounds["val_start"])).to_numpy()] = "val"
    out[(t >= pd.Timestamp(bounds["test_start"])).to_numpy()] = "test"
    return out


# -- reproducibility ----------------------------------------------------------------------------
@contextmanager
def deterministic(seed: int, threads: int):
    """Seeded, deterministic torch for the duration of a run; restores the previous settings."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # required by deterministic cuBLAS
    before = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    torch.set_num_threads(max(1, threads))
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        torch.use_deterministic_algorithms(before[1])


def pick_device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise StageFailed("--device cuda was asked for, but torch sees no CUDA device on this machine")
    if choice not in ("cpu", "cuda"):
        raise StageFailed(f"--device {choice!r} is not one of auto, cpu, cuda")
    return torch.device(choice)


# -- outputs ------------------------------------------------------------------------------------
def curves_png(history: list[dict], title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for head in dict.fromkeys(h.get("head", "model") for h in history):  # one line per head, in fitting order
        rows = [h for h in history if h.get("head", "model") == head]
        epochs = [h["epoch"] for h in rows]
        ax1.plot(epochs, [h["train_loss"] for h in rows], marker="o", linestyle=":", label=f"{head} train")
        ax1.plot(epochs, [h["val_loss"] for h in rows], marker="o", label=f"{head} validation")
        ax2.plot(epochs, [h["val_auc"] for h in rows], marker="o", label=head)
    ax1.set(xlabel="epoch", ylabel="weighted log loss", title="loss")
    ax1.legend(fontsize=6)
    ax2.set(xlabel="epoch", ylabel="ROC AUC", title="validation ROC AUC per head")
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def validated_partitions(store: ArtifactStore, start: str, end: str) -> list[dict]:
    """The validated partitions the window's training set was built from, with their content hashes."""
    from components.data.validate import validated_partitions as listing

    return listing(store, start, end, tables=tuple(schema.TABLE_COLUMNS))


def feature_service() -> dict:
    """The Feast feature service the training set came from: its name, views and their features."""
    inputs = {"numeric": NUMERIC, "categorical": CATEGORICAL}
    try:
        from components.features.feast_repo import definitions_module
        from components.features.retrieval import SCHEDULE_FIELDS

        repo = definitions_module()
    except ImportError as exc:  # an image without Feast: the model inputs are still recorded
        return {"name": None, "error": f"feature repo not importable: {exc}", "model_inputs": inputs}
    views = {name: {"join_key": view.entity, "features": view.feature_names, "ttl": str(view.ttl)}
             for name, view in {**repo.VIEWS, **getattr(repo, "PUSHED_VIEWS", {})}.items()}
    return {"name": repo.FEATURE_SERVICE, "views": views, "flight_row_fields": list(SCHEDULE_FIELDS),
            "model_inputs": inputs}


def train(params: TrainParams, store: ArtifactStore | None = None) -> TrainResult:
    """Train the delay MLP on a window of the training set and publish it as a training run.

    Inputs:
      training_sets/<train_start>_<train_end>.parquet (layout.training_set_key), built by
      `flightdeck features training-set`; the validated partitions it came from (for the lineage);
      with --tuned, a tune run's runs/tune/<tune-id>/best_params.json (its values replace the searched ones).
    Outputs:
      runs/train/<run-id>/, published at once: model.pt (TorchScript, preprocessing inside),
      signature.json, metrics.json, params.json, lineage.json, curves.png, reference.parquet;
      runs/train/_latest.json (layout.TRAIN_LATEST) names the run. The run id depends only on the
      parameters and the training set's bytes: a rerun replaces its own run.
    Returns:
      TrainResult: the run id, where it is, the model's sha256 and the headline training figures.
    Failures:
      StageFailed: no training set for the window, columns or labels missing, a window too short
      for three periods of 50 rows with both outcomes, bad --hidden / --device or split fractions,
      a --tuned run that is not published.
    """
    store = store or open_store()
    tuning = None
    if params.tuned:
        from components.model.tuning import apply_tuned, load_tuned

        tuning = load_tuned(store, params.tuned)
        params = apply_tuned(params, tuning)
        log.info("train with tune run %s (trial %d): %s", tuning["tune_id"], tuning["best_trial"], tuning["params"])
    if date.fromisoformat(params.train_end) < date.fromisoformat(params.train_start):
        raise StageFailed(f"--train-end {params.train_end} is before --train-start {params.train_start}")
    frame, set_key, set_sha = load_training_set(store, params.train_start, params.train_end)
    bounds = time_split(frame["sched_dep_utc"], params.val_fraction, params.test_fraction)
    split = assign_split(frame, bounds)
    for part in ("train", "val", "test"):
        labels = frame.loc[split == part, LABEL]
        if len(labels) < 50 or labels.nunique() < 2:
            raise StageFailed(f"the {part} period of {params.train_start}..{params.train_end} has {len(labels)} "
                              "rows and needs at least 50 with both outcomes; use a longer window.")
    device = pick_device(params.device)
    t0 = time.perf_counter()
    with deterministic(params.seed, params.threads):
        model, metrics = fit(params, frame, split, device)
        model_bytes = export_bytes(model)
        reference = _reference_sample(frame, split, model, params)
    metrics["seconds_total"] = time.perf_counter() - t0
    run_id = _run_id(params, set_sha)
    model_sha = sha256_bytes(model_bytes)
    lineage = {
        "run_id": run_id,
        "window": {"start": params.train_start, "end": params.train_end, **bounds},
        "prediction_time": {"lead_time_hours": _lead_time_hours(frame)},
        "training_set": {"key": set_key, "sha256": set_sha, "rows": len(frame)},
        "validated_partitions": validated_partitions(store, params.train_start, params.train_end),
        "feature_service": feature_service(),
        "code_version": code_version(),
        "params": asdict(params),
        "tuning": tuning,  # the tune run whose chosen parameters these are (None: TrainParams as given)
        "seed": params.seed,
        "torch": torch.__version__,
        "device": str(device),
    }
    signature = {**signature_json(), "vocab_sizes": metrics["vocab_sizes"], "model_sha256": model_sha}
    files = {
        "model.pt": model_bytes,
        "signature.json": _json(signature),
        "metrics.json": _json({k: v for k, v in metrics.items()}),
        "params.json": _json({**asdict(params), "split": bounds, "pos_weight": metrics["pos_weight"]}),
        "lineage.json": _json(lineage),
        "curves.png": curves_png(metrics["history"], f"{run_id}"),
        "reference.parquet": parquet_bytes(reference),
    }
    prefix = layout.train_run_prefix(run_id)
    store.publish(prefix, files, meta={"stage": "train", "run_id": run_id, "model_sha256": model_sha})
    store.write_json(layout.TRAIN_LATEST, {"run_id": run_id, "prefix": prefix})
    log.info("train %s: best epoch %d of %d, val AUC %.4f -> %s", run_id, metrics["best_epoch"],
             metrics["epochs_run"], metrics["val_auc"], store.uri(prefix))
    return {
        "run_id": run_id,
        "prefix": prefix,
        "uri": store.uri(prefix),
        "model_sha256": model_sha,
        "val_auc": round(metrics["val_auc"], 5),
        "epochs_run": metrics["epochs_run"],
        "best_epoch": metrics["best_epoch"],
        "seconds_per_epoch": round(metrics["seconds_per_epoch"], 3),
        "rows": metrics["rows"],
        "device": str(device),
    }


def _reference_sample(frame: pd.DataFrame, split: np.ndarray, model: DelayModel, params: TrainParams) -> pd.DataFrame:
    """Training-period rows (features, label and the model's prediction) for drift monitoring."""
    train_rows = np.flatnonzero(split == "train")
    n = min(params.reference_rows, len(train_rows))
    pick = np.sort(np.random.default_rng(params.seed).choice(train_rows, size=n, replace=False))
    sample = frame.iloc[pick][KEYS + CATEGORICAL + NUMERIC + [LABEL]].reset_index(drop=True)
    from components.model.network import predict

    sample["prediction"] = predict(model, sample)
    return sample


def _lead_time_hours(frame: pd.DataFrame) -> float | None:
    """How long before the scheduled departure the training set's features were taken (its event_timestamp),
    in hours: the lead time of the prediction time the model was trained for (the model card states it). The
    smallest gap: prediction times are floored to the scoring interval, so the lead is lead_time..+interval."""
    if not {"sched_dep_utc", "event_timestamp"} <= set(frame.columns) or frame.empty:
        return None
    lead = (pd.to_datetime(frame["sched_dep_utc"], utc=True) - pd.to_datetime(frame["event_timestamp"], utc=True))
    return round(float(lead.dt.total_seconds().min()) / 3600, 4)


def _run_id(params: TrainParams, set_sha: str) -> str:
    """Same window, data and parameters -> same run id (a re-run replaces its own outputs, no duplicates)."""
    fixed = asdict(params)
    if not fixed["tuned"]:  # untuned runs keep the ids they had before --tuned existed
        del fixed["tuned"]
    digest = sha256_bytes(json.dumps({"params": fixed, "data": set_sha}, sort_keys=True).encode())[:10]
    return f"{params.train_start}_{params.train_end}_{digest}"


def _json(obj) -> bytes:
    return json.dumps(obj, indent=2, sort_keys=True, default=str, allow_nan=True).encode()


def latest_run(store: ArtifactStore) -> str:
    try:
        return store.read_json(layout.TRAIN_LATEST)["run_id"]
    except KeyError:
        raise StageFailed(f"no training run has been published in {store.uri(layout.TRAIN_RUNS)}; run `flightdeck train` "
                          "first") from None
