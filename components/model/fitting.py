"""Fitting the delay model: each head of the ensemble trained on its own seed, then calibrated.

Head k is initialised, shuffled and dropped out from seed + k alone, so member k of an ensemble is
bit-identical to a one-head model trained with that seed (tests/model/test_train.py checks it), and
adding members never changes the ones before. Every head early-stops on its own validation loss and
gets its own calibration a * logit + b; the model averages calibrated probabilities
(components.model.network.DelayModel).

Class imbalance: positives are weighted by negatives/positives, which inflates the predicted odds by
that factor; the calibration (two numbers per head, stored in the module) brings them back. Its
slope a is Platt's, fitted on the validation period, which the head never trained on (the train
period's logits are overconfident); its intercept b makes the mean predicted probability over the
train and validation periods equal their late rate. Why not Platt's intercept: the validation period
is the window's last ~2 weeks alone, and a stormy fortnight (2013-03-13..03-24: 34 % late against 26 %
over the window and 20 % in the holdout after it) would set the base rate of every prediction after
it (ECE 0.054 on that window's holdout with Platt's intercept, 0.012 with this one; docs/MODEL.md).
"""

from __future__ import annotations

import copy
import logging
import math
import time

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from components.contracts.errors import StageFailed
from components.contracts.signature import CATEGORICAL, LABEL, to_tensors
from components.contracts.stages import TrainParams
from components.model.network import DelayModel, Head, build_vocabularies, numeric_statistics

log = logging.getLogger(__name__)

# Each categorical value is swapped for "unknown" this often while training, so the unknown slot
# learns an average category instead of staying at its random initialisation.
UNKNOWN_RATE = 0.01
EVAL_BATCH = 65536


def hidden_widths(spec: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in spec.split(",") if w.strip())
    except ValueError:
        widths = ()
    if not widths or min(widths) < 1:
        raise StageFailed(f"--hidden {spec!r} must be comma-separated positive layer widths, e.g. 128,64")
    return widths


def auc(y: np.ndarray, score: np.ndarray) -> float:
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


def calibrate(val_logits: torch.Tensor, y_val: torch.Tensor, window_logits: torch.Tensor,
              window_rate: float) -> tuple[float, float]:
    """(a, b): Platt's slope on the validation period, and the intercept that makes the mean probability over
    the window's train and validation rows equal their late rate (bisection: the mean rises with b)."""
    a, _ = fit_platt(val_logits, y_val)
    z = window_logits.detach().double().cpu() * a
    lo, hi = -30.0, 30.0
    for _ in range(60):  # 60 halvings of 60: far below float precision
        mid = (lo + hi) / 2
        if float(torch.sigmoid(z + mid).mean()) < window_rate:
            lo = mid
        else:
            hi = mid
    return a, (lo + hi) / 2


def _logits_in_batches(head: Head, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    head.eval()
    with torch.no_grad():
        return torch.cat([head(x[i : i + EVAL_BATCH], rows[i : i + EVAL_BATCH]) for i in range(0, len(x), EVAL_BATCH)])


def _fit_head(head: Head, params: TrainParams, seed: int, train: tuple, val: tuple, unknown_rows: torch.Tensor,
              pos_weight: torch.Tensor, label: str, on_epoch=None) -> tuple[list[dict], float]:
    """Adam with early stopping on the validation loss; leaves the head at its best epoch.
    on_epoch(epoch, val_auc), when given, sees each epoch's validation AUC (tune prunes through it: it may raise).
    Returns (per-epoch history, seconds spent in training epochs)."""
    (x_tr, rows_tr, y_tr), (x_va, rows_va, y_va) = train, val
    opt = torch.optim.Adam(head.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    device = x_tr.device
    history, best, best_loss, stale, seconds_total = [], None, float("inf"), 0, 0.0
    for epoch in range(1, params.max_epochs + 1):
        t0 = time.perf_counter()
        head.train()
        order = torch.randperm(len(y_tr), generator=gen).to(device)
        total = 0.0
        for i in range(0, len(order), params.batch_size):
            idx = order[i : i + params.batch_size]
            rb = rows_tr[idx]
            drop = (torch.rand(rb.shape, generator=gen) < UNKNOWN_RATE).to(device)
            rb = torch.where(drop, unknown_rows.expand_as(rb), rb)
            loss = F.binary_cross_entropy_with_logits(head(x_tr[idx], rb), y_tr[idx], pos_weight=pos_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        seconds = time.perf_counter() - t0
        seconds_total += seconds
        val_logits = _logits_in_batches(head, x_va, rows_va)
        val_loss = float(F.binary_cross_entropy_with_logits(val_logits, y_va, pos_weight=pos_weight))
        val_auc = auc(y_va.cpu().numpy(), val_logits.cpu().numpy())
        history.append({"head": label, "epoch": epoch, "train_loss": total / len(y_tr), "val_loss": val_loss,
                        "val_auc": val_auc, "seconds": round(seconds, 4)})
        log.info("%s epoch %d: train loss %.4f, val loss %.4f, val AUC %.4f (%.1f s)", label, epoch,
                 total / len(y_tr), val_loss, val_auc, seconds)
        if on_epoch is not None:
            on_epoch(epoch, val_auc)
        if val_loss < best_loss - 1e-5:
            best_loss, best, stale = val_loss, copy.deepcopy(head.state_dict()), 0
        else:
            stale += 1
            if stale >= params.patience:
                break
    head.load_state_dict(best)
    return history, seconds_total


def fit(params: TrainParams, frame: pd.DataFrame, split: np.ndarray, device: torch.device,
        on_epoch=None) -> tuple[DelayModel, dict]:
    """Train every head of a DelayModel on the rows marked 'train', calibrate each on 'val'.
    on_epoch(epoch, val_auc): called after each epoch of each head (components.model.tune reports it to Optuna).
    Returns the model (CPU, eval mode) and the training metrics (per head and for the ensemble)."""
    numeric, categorical = (torch.from_numpy(a) for a in to_tensors(frame))
    y = torch.from_numpy(frame[LABEL].to_numpy(dtype=np.float32))
    tr, va = torch.from_numpy(split == "train"), torch.from_numpy(split == "val")
    vocabs = build_vocabularies(categorical[tr], params.min_category_count)
    mean, std = numeric_statistics(numeric[tr])
    model = DelayModel(vocabs, mean, std, hidden_widths(params.hidden), params.embedding_dim, params.dropout,
                       params.members, params.linear_weight).to(device)
    with torch.no_grad():  # preprocessing is fixed: run it once over every row, in bulk
        x, rows = model.preprocess(numeric.to(device), categorical.to(device))
    train = (x[tr.to(device)], rows[tr.to(device)], y[tr].to(device))
    val = (x[va.to(device)], rows[va.to(device)], y[va].to(device))
    window_rate = float(torch.cat([train[2], val[2]]).mean())
    positives = float(train[2].sum())
    ratio = (len(train[2]) - positives) / positives if params.balance_classes and positives > 0 else 1.0
    pos_weight = torch.tensor(ratio, device=device)
    history, heads, train_seconds = [], [], 0.0
    for k, kind in enumerate(model.kinds):
        torch.manual_seed(params.seed + k)  # head k depends on seed + k alone (see the module docstring)
        model.heads[k] = model.new_head(kind).to(device)
        label = f"{kind}-{k}"
        head_history, seconds = _fit_head(model.heads[k], params, params.seed + k, train, val,
                                          model.offsets.unsqueeze(0), pos_weight, label, on_epoch)
        history += head_history
        train_seconds += seconds
        val_logits = _logits_in_batches(model.heads[k], val[0], val[1])
        window_logits = torch.cat([_logits_in_batches(model.heads[k], train[0], train[1]), val_logits])
        a, b = calibrate(val_logits, val[2], window_logits, window_rate)
        model.calibration[k] = torch.tensor([a, b], device=device)
        heads.append({"head": label, "seed": params.seed + k, "weight": float(model.weights[k]),
                      "epochs_run": len(head_history), "best_epoch": min(head_history, key=lambda h: h["val_loss"])["epoch"],
                      "calibration": {"a": a, "b": b},
                      "val_auc": auc(val[2].cpu().numpy(), val_logits.cpu().numpy())})
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model.raw_logits(val[0][i : i + EVAL_BATCH], val[1][i : i + EVAL_BATCH])
                            for i in range(0, len(val[2]), EVAL_BATCH)])
        val_prob = (torch.sigmoid(logits * model.calibration[:, 0] + model.calibration[:, 1]) @ model.weights)
    val_prob, yv = val_prob.cpu().numpy(), val[2].cpu().numpy()
    epochs = len(history)
    metrics = {
        "rows": {"train": int(tr.sum()), "val": int(va.sum()), "test": int((split == "test").sum())},
        "positive_rate_train": positives / len(train[2]),
        "pos_weight": ratio,
        "heads": heads,
        "epochs_run": max(h["epochs_run"] for h in heads),
        "best_epoch": heads[0]["best_epoch"],
        "val_auc": auc(yv, val_prob),
        "val_log_loss": float(F.binary_cross_entropy(torch.from_numpy(val_prob).double().clamp(1e-7, 1 - 1e-7),
                                                     torch.from_numpy(yv).double())),
        "seconds_per_epoch": train_seconds / epochs,
        "train_rows_per_second": len(train[2]) * epochs / train_seconds if train_seconds else None,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "vocab_sizes": {c: int(n) for c, n in zip(CATEGORICAL, model.vocab_sizes.tolist(), strict=True)},
        "history": history,
    }
    return model.cpu().eval(), metrics
