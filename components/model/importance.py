"""Permutation importance on the holdout: what each feature and each feature view contributes to ROC AUC.

Model-agnostic: the model is a `predict(frame) -> P(late)` callable, so the same code measures the project's
TorchScript ensemble, a scikit-learn model in a test, or anything else that scores a frame.

For a group of columns (one feature, or every feature of one Feast view), repeat r shuffles the group's
columns together with one permutation of the rows (the same permutation for every group in repeat r, drawn
from the seed), scores the shuffled frame and takes the drop ROC AUC(original) - ROC AUC(shuffled). Shuffling
a group together keeps the relations inside it (temperature and dew point move together) and breaks its
relation to the label and to the other columns: the drop is what the model loses without the group's
information, with its values' distribution unchanged.

Reported per feature and per group: the mean drop over the repeats, their spread (standard deviation, min and
max) and a paired bootstrap interval of the mean drop over the holdout's flights: each resample (the gate's
resampling, components.model.gate.resample_weights, and its ROC AUC, _RankedScores) draws the same flights
for the original and the shuffled scores, so the interval carries the holdout's noise, which the repeats'
spread alone does not see.

The rule "costs AUC nothing" (`costs_nothing`): the lower bound of that two-sided interval is <= 0, i.e. the
holdout gives no evidence, at the chosen confidence, that losing the group's information costs any ROC AUC.
A group whose mean drop is negative (shuffling it helped) is flagged too. The rule reports; it does not gate
the blessing (docs/MODEL.md, "Feature importance").
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from components.model.gate import _auc, _RankedScores, resample_weights

RULE = ("costs AUC nothing: the lower bound of the paired bootstrap interval of the mean ROC AUC drop "
        "(original - shuffled) over the holdout is <= 0")


def permutation_importance(predict: Callable[[pd.DataFrame], np.ndarray], frame: pd.DataFrame, y,
                           groups: dict[str, list[str]] | None = None, features: list[str] | None = None, *,
                           repeats: int = 3, resamples: int = 200, confidence: float = 0.95,
                           seed: int = 0) -> dict:
    """Permutation importance of each feature and each group of features, measured as ROC AUC drop.

    predict: scores a frame with frame's columns, returns one probability per row.
    frame, y: the holdout rows and their 0/1 labels.
    groups: {name: columns} shuffled together (e.g. the features of each feature view); features: the columns
      shuffled one at a time (default: every column named in groups).
    Returns {"metric", "baseline_roc_auc", "repeats", "resamples", "confidence", "seed", "rule", "seconds",
      "features": {name: entry}, "groups": {name: {**entry, "features": columns}}, "costs_nothing":
      {"features": [...], "groups": [...]}}, where entry = {"drop": mean drop, "std", "min", "max", "drops": one per
      repeat, "lower", "upper": the paired bootstrap interval of the mean drop, "costs_nothing": lower <= 0}.
    Raises ValueError on input it cannot measure: no rows, one class only, unknown columns, a predict that does not
    return one finite probability per row, repeats < 1, resamples < 10, confidence outside (0, 1).
    """
    t0 = time.perf_counter()
    groups = {str(k): list(v) for k, v in (groups or {}).items()}
    if features is None:
        features = list(dict.fromkeys(c for cols in groups.values() for c in cols))
    y = np.asarray(y, dtype=np.float64)
    _check(frame, y, groups, features, repeats, resamples, confidence)
    base = _scores(predict, frame)
    base_auc = _auc(y, base)
    perms = [np.random.default_rng([seed, r]).permutation(len(frame)) for r in range(repeats)]
    work = frame.copy()
    measured: dict[tuple[str, str], list[np.ndarray]] = {}
    for kind, items in (("features", {f: [f] for f in features}), ("groups", groups)):
        for name, cols in items.items():
            shuffled = []
            for perm in perms:
                for c in cols:
                    work[c] = frame[c].to_numpy()[perm]
                shuffled.append(_scores(predict, work))
                for c in cols:
                    work[c] = frame[c]
            measured[kind, name] = shuffled
    lower_upper = _paired_intervals(y, base, measured, resamples, confidence, seed)
    out: dict = {"metric": "roc_auc", "baseline_roc_auc": base_auc, "repeats": repeats, "resamples": resamples,
                 "confidence": confidence, "seed": seed, "rule": RULE, "features": {}, "groups": {},
                 "costs_nothing": {"features": [], "groups": []}}
    for (kind, name), shuffled in measured.items():
        drops = np.array([base_auc - _auc(y, p) for p in shuffled])
        lower, upper = lower_upper[kind, name]
        entry = {"drop": float(drops.mean()), "std": float(drops.std(ddof=1)) if repeats > 1 else 0.0,
                 "min": float(drops.min()), "max": float(drops.max()), "drops": [float(d) for d in drops],
                 "lower": lower, "upper": upper, "costs_nothing": bool(lower <= 0)}
        if kind == "groups":
            entry["features"] = groups[name]
        out[kind][name] = entry
        if entry["costs_nothing"]:
            out["costs_nothing"][kind].append(name)
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out


def _check(frame: pd.DataFrame, y: np.ndarray, groups: dict[str, list[str]], features: list[str], repeats: int,
           resamples: int, confidence: float) -> None:
    if len(frame) == 0:
        raise ValueError("permutation importance needs holdout rows; the frame is empty")
    if len(y) != len(frame):
        raise ValueError(f"permutation importance: {len(y)} labels for {len(frame)} rows")
    if not np.isin(y, (0.0, 1.0)).all() or not 0 < y.sum() < len(y):
        raise ValueError("permutation importance measures ROC AUC: the labels must be 0/1 with both classes present")
    if not features and not groups:
        raise ValueError("permutation importance: no feature and no group to shuffle")
    named = set(features).union(*groups.values()) if groups else set(features)
    unknown = sorted(c for c in named if c not in frame.columns)
    if unknown:
        raise ValueError(f"permutation importance: the frame has no column {', '.join(unknown)}")
    empty = [g for g, cols in groups.items() if not cols]
    if empty:
        raise ValueError(f"permutation importance: the group {empty[0]} names no column")
    if repeats < 1:
        raise ValueError(f"permutation importance needs repeats >= 1, got {repeats}")
    if resamples < 10:
        raise ValueError(f"permutation importance needs resamples >= 10 for an interval, got {resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def _scores(predict: Callable[[pd.DataFrame], np.ndarray], frame: pd.DataFrame) -> np.ndarray:
    p = np.asarray(predict(frame), dtype=np.float64).reshape(-1)
    if len(p) != len(frame) or not np.isfinite(p).all():
        raise ValueError(f"predict must return one finite score per row: got {len(p)} scores for {len(frame)} rows"
                         + ("" if np.isfinite(p).all() else ", some not finite"))
    return p


def _paired_intervals(y: np.ndarray, base: np.ndarray, measured: dict[tuple[str, str], list[np.ndarray]],
                      resamples: int, confidence: float, seed: int) -> dict[tuple[str, str], tuple[float, float]]:
    """Per group, the percentile interval of AUC_b(original) - mean_r AUC_b(shuffled_r) over the resamples b
    (the same flights drawn for both sides)."""
    ranked_base = _RankedScores(base)
    ranked = {key: [_RankedScores(p) for p in shuffled] for key, shuffled in measured.items()}
    draws: dict[tuple[str, str], list[np.ndarray]] = {key: [] for key in measured}
    for weights in resample_weights(len(y), resamples, seed):
        original = ranked_base.auc(weights, y)
        for key, runs in ranked.items():
            draws[key].append(original - np.mean([r.auc(weights, y) for r in runs], axis=0))
    tail = (1 - confidence) / 2 * 100
    out = {}
    for key, d in draws.items():
        d = np.concatenate(d)
        d = d[np.isfinite(d)]
        lower, upper = np.percentile(d, [tail, 100 - tail]) if len(d) else (np.nan, np.nan)
        out[key] = (float(lower), float(upper))
    return out


# -- the evaluate stage's use ---------------------------------------------------------------------
FLIGHT_ROW = "flight_row"  # the model inputs no feature view serves: the flight's own schedule fields


def view_groups(lineage: dict, inputs: list[str]) -> dict[str, list[str]]:
    """{view: the model inputs it serves} from a training run's lineage (train records the feature service's views
    and their features), plus FLIGHT_ROW: the inputs no view serves (carrier, origin, dest, hour, weekday,
    distance come with the flight). A lineage without views (train ran without Feast) gives FLIGHT_ROW alone."""
    views = ((lineage.get("feature_service") or {}).get("views")) or {}
    groups = {name: [f for f in view.get("features") or [] if f in inputs] for name, view in views.items()}
    groups = {k: v for k, v in groups.items() if v}
    served = {f for cols in groups.values() for f in cols}
    rest = [f for f in inputs if f not in served]
    return {**groups, **({FLIGHT_ROW: rest} if rest else {})}


def holdout_importance(module, holdout: pd.DataFrame, lineage: dict, repeats: int, resamples: int,
                       confidence: float, seed: int) -> dict:
    """evaluate's permutation importance of the model's inputs, one by one and per feature view, on the holdout;
    {"measured": False, "why": ...} when repeats is 0 (turned off) or the holdout has one class only."""
    from components.contracts.errors import StageFailed
    from components.contracts.signature import CATEGORICAL, LABEL, NUMERIC
    from components.model.network import predict

    if repeats == 0:
        return {"measured": False, "why": "turned off (importance_repeats=0)"}
    if repeats < 0 or resamples < 10:
        raise StageFailed(f"importance_repeats must be >= 0 (0: not measured) and importance_resamples >= 10; got "
                          f"{repeats} and {resamples}")
    y = holdout[LABEL].to_numpy(dtype=np.float64)
    if not 0 < y.sum() < len(y):
        return {"measured": False, "why": "the holdout has one class only: ROC AUC is undefined"}
    import torch

    inputs = NUMERIC + CATEGORICAL
    groups = view_groups(lineage, inputs)
    # One torch thread for its ~100 forward passes: on a shared 2-core machine two threads made them 6x slower
    # (the demo window: 250 s against 43 s at one thread, under load; 7 s at one thread without).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        found = permutation_importance(lambda frame: predict(module, frame), holdout, y, groups, inputs,
                                       repeats=repeats, resamples=resamples, confidence=confidence, seed=seed)
    finally:
        torch.set_num_threads(threads)
    return {"measured": True, **found}
