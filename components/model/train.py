"""train: the delay MLP on a time window of the Feast training set, exported as TorchScript.

The window is split by scheduled departure time (train, then validation, then the held-out test
period that evaluate scores), never at random: the model is always judged on flights later than
the ones it learnt from, as in production. Vocabularies and normalisation statistics come from
the training period only and ship inside the exported module (components.model.network).

Class imbalance: positives are weighted by negatives/positives, which inflates the predicted
odds by that factor; a Platt scaling fitted on the validation period (two numbers, stored in the
module) brings the probabilities back, and evaluate reports the calibration it reaches.

Reproducible: one seed drives initialisation, shuffling and dropout; torch runs with deterministic
algorithms and a fixed thread count, so the same data and seed give bit-identical weights.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import math
import os
import time
from contextlib import contextmanager
from dataclasses import asdict
from datetime import date

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from components import code_version
from components.contracts import layout, schema
from components.contracts.errors import StageFailed
from components.contracts.results import TrainResult
from components.contracts.signature import CATEGORICAL, KEYS, LABEL, NUMERIC, signature_json, to_tensors
from components.contracts.stages import TrainParams
from components.core.store import ArtifactStore, open_store, parquet_bytes, sha256_bytes
from components.model.network import DelayModel, build_vocabularies, export_bytes, numeric_statistics

log = logging.getLogger(__name__)

# Each categorical value is swapped for "unknown" this often while training, so the unknown slot
# learns an average category instead of staying at its random initialisation.
UNKNOWN_RATE = 0.01
EVAL_BATCH = 65536


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


# -- fitting ------------------------------------------------------------------------------------
def _hidden(spec: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in spec.split(",") if w.strip())
    except ValueError:
        widths = ()
    if not widths or min(widths) < 1:
        raise StageFailed(f"--hidden {spec!r} must be comma-separated positive layer widths, e.g. 128,64")
    return widths


def _loss_in_batches(model: DelayModel, x, rows, y, pos_weight) -> tuple[float, torch.Tensor]:
    """Mean weighted BCE and the raw logits over a whole split, without gradients."""
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model.raw_logit(x[i : i + EVAL_BATCH], rows[i : i + EVAL_BATCH])
                            for i in range(0, len(x), EVAL_BATCH)])
        loss = F.binary_cross_entropy_with_logits(logits, y, pos_weight=pos_weight)
    return float(loss), logits


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, score)) if 0 < y.sum() < len(y) else float("nan")


def fit_platt(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Calibration a*logit + b minimising the plain log loss on the validation period."""
    z, t = logits.detach().double().cpu(), y.double().cpu()
    ab = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([ab], lr=0.5, max_iter=200, tolerance_grad=1e-10, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(z * ab[0] + ab[1], t)
        loss.backward()
        return loss

    opt.step(closure)
    a, b = (float(v) for v in ab.detach())
    if not (math.isfinite(a) and math.isfinite(b)) or a <= 0:
        return 1.0, 0.0  # degenerate validation data: keep the network's own scale
    return a, b


def fit(params: TrainParams, frame: pd.DataFrame, split: np.ndarray, device: torch.device) -> tuple[DelayModel, dict]:
    numeric, categorical = (torch.from_numpy(a) for a in to_tensors(frame))
    y = torch.from_numpy(frame[LABEL].to_numpy(dtype=np.float32))
    tr, va = torch.from_numpy(split == "train"), torch.from_numpy(split == "val")
    vocabs = build_vocabularies(categorical[tr], params.min_category_count)
    mean, std = numeric_statistics(numeric[tr])
    model = DelayModel(vocabs, mean, std, _hidden(params.hidden), params.embedding_dim, params.dropout).to(device)
    with torch.no_grad():  # preprocessing is fixed: run it once over every row, in bulk
        x, rows = model.preprocess(numeric.to(device), categorical.to(device))
    x_tr, rows_tr, y_tr = x[tr.to(device)], rows[tr.to(device)], y[tr].to(device)
    x_va, rows_va, y_va = x[va.to(device)], rows[va.to(device)], y[va].to(device)
    positives = float(y_tr.sum())
    ratio = (len(y_tr) - positives) / positives if params.balance_classes and positives > 0 else 1.0
    pos_weight = torch.tensor(ratio, device=device)
    opt = torch.optim.Adam(model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)
    gen = torch.Generator().manual_seed(params.seed)
    unknown_rows = model.offsets.unsqueeze(0)
    history, best, best_loss, stale, train_seconds = [], None, float("inf"), 0, 0.0
    for epoch in range(1, params.max_epochs + 1):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(y_tr), generator=gen).to(device)
        total = 0.0
        for i in range(0, len(order), params.batch_size):
            idx = order[i : i + params.batch_size]
            rb = rows_tr[idx]
            drop = (torch.rand(rb.shape, generator=gen) < UNKNOWN_RATE).to(device)
            rb = torch.where(drop, unknown_rows.expand_as(rb), rb)
            loss = F.binary_cross_entropy_with_logits(model.raw_logit(x_tr[idx], rb), y_tr[idx], pos_weight=pos_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        seconds = time.perf_counter() - t0
        train_seconds += seconds
        val_loss, val_logits = _loss_in_batches(model, x_va, rows_va, y_va, pos_weight)
        val_auc = _auc(y_va.cpu().numpy(), val_logits.cpu().numpy())
        history.append({"epoch": epoch, "train_loss": total / len(y_tr), "val_loss": val_loss, "val_auc": val_auc,
                        "seconds": round(seconds, 4)})
        log.info("epoch %d: train loss %.4f, val loss %.4f, val AUC %.4f (%.1f s)", epoch, total / len(y_tr),
                 val_loss, val_auc, seconds)
        if val_loss < best_loss - 1e-5:
            best_loss, best, stale = val_loss, copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
            if stale >= params.patience:
                break
    model.load_state_dict(best)
    _, val_logits = _loss_in_batches(model, x_va, rows_va, y_va, pos_weight)
    a, b = fit_platt(val_logits, y_va)
    model.calibration.copy_(torch.tensor([a, b], device=device))
    with torch.no_grad():
        val_prob = torch.sigmoid(val_logits * a + b).cpu().numpy()
    yv = y_va.cpu().numpy()
    best_epoch = min(history, key=lambda h: h["val_loss"])["epoch"]
    metrics = {
        "rows": {"train": int(tr.sum()), "val": int(va.sum()), "test": int((split == "test").sum())},
        "positive_rate_train": positives / len(y_tr),
        "pos_weight": ratio,
        "calibration": {"a": a, "b": b},
        "epochs_run": len(history),
        "best_epoch": best_epoch,
        "best_val_loss": best_loss,
        "val_auc": _auc(yv, val_prob),
        "val_log_loss": float(F.binary_cross_entropy(torch.from_numpy(val_prob).double().clamp(1e-7, 1 - 1e-7),
                                                     torch.from_numpy(yv).double())),
        "seconds_per_epoch": train_seconds / len(history),
        "train_rows_per_second": len(y_tr) * len(history) / train_seconds if train_seconds else None,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "vocab_sizes": {c: int(n) for c, n in zip(CATEGORICAL, model.vocab_sizes.tolist(), strict=True)},
        "history": history,
    }
    return model.cpu().eval(), metrics


# -- outputs ------------------------------------------------------------------------------------
def curves_png(history: list[dict], title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    ax1.plot(epochs, [h["val_loss"] for h in history], marker="o", label="validation")
    ax1.set(xlabel="epoch", ylabel="weighted log loss", title="loss")
    ax1.legend()
    ax2.plot(epochs, [h["val_auc"] for h in history], marker="o", color="tab:green")
    ax2.set(xlabel="epoch", ylabel="ROC AUC", title="validation ROC AUC")
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
             for name, view in repo.VIEWS.items()}
    return {"name": repo.FEATURE_SERVICE, "views": views, "flight_row_fields": list(SCHEDULE_FIELDS),
            "model_inputs": inputs}


def train(params: TrainParams, store: ArtifactStore | None = None) -> TrainResult:
    """Train the delay MLP on a window of the training set and publish it as a training run.

    Inputs:
      training_sets/<train_start>_<train_end>.parquet (layout.training_set_key), built by
      `flightdeck features training-set`; the validated partitions it came from (for the lineage).
    Outputs:
      runs/train/<run-id>/, published at once: model.pt (TorchScript, preprocessing inside),
      signature.json, metrics.json, params.json, lineage.json, curves.png, reference.parquet;
      runs/train/_latest.json (layout.TRAIN_LATEST) names the run. The run id depends only on the
      parameters and the training set's bytes: a rerun replaces its own run.
    Returns:
      TrainResult: the run id, where it is, the model's sha256 and the headline training figures.
    Failures:
      StageFailed: no training set for the window, columns or labels missing, a window too short
      for three periods of 50 rows with both outcomes, bad --hidden / --device or split fractions.
    """
    store = store or open_store()
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
        "training_set": {"key": set_key, "sha256": set_sha, "rows": len(frame)},
        "validated_partitions": validated_partitions(store, params.train_start, params.train_end),
        "feature_service": feature_service(),
        "code_version": code_version(),
        "params": asdict(params),
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


def _run_id(params: TrainParams, set_sha: str) -> str:
    """Same window, data and parameters -> same run id (a re-run replaces its own outputs, no duplicates)."""
    digest = sha256_bytes(json.dumps({"params": asdict(params), "data": set_sha}, sort_keys=True).encode())[:10]
    return f"{params.train_start}_{params.train_end}_{digest}"


def _json(obj) -> bytes:
    return json.dumps(obj, indent=2, sort_keys=True, default=str, allow_nan=True).encode()


def latest_run(store: ArtifactStore) -> str:
    try:
        return store.read_json(layout.TRAIN_LATEST)["run_id"]
    except KeyError:
        raise StageFailed(f"no training run has been published in {store.uri(layout.TRAIN_RUNS)}; run `flightdeck train` "
                          "first") from None
