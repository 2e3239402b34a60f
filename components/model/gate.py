"""The blessing gate: a decision judged with paired bootstrap confidence intervals on the holdout.

A point estimate of "ROC AUC beats the baseline" flips with the holdout's noise (on a 12-week window
the holdout has ~25k flights and a 95 % interval of an AUC difference is about +-0.006 wide), so the
gate asks the questions a statistician would sign instead (docs/MODEL.md, "The blessing gate"):

- superiority: the challenger is significantly better than the simple heuristic (carrier late rate):
  the lower bound of the interval of (challenger - heuristic) is above 0;
- non-inferiority: against each strong reference (logistic regression; LightGBM where it was fitted)
  and the champion, the lower bound of the interval of (challenger - reference) is above -margin;
- calibration: expected calibration error within max_ece;
- every behavioural check passes;
- slice floor: no slice (carrier, origin, hour band, month) with min_slice_rows holdout rows has a ROC AUC
  interval entirely below slice_auc_floor (the intervals: components.model.slices).

Paired: every resample draws the same flights for both models, so what the two share (an easy day, a
storm) cancels out of the difference. The resampling weights are multinomial counts, and the AUC of a
weighted sample is computed from each model's scores ranked once (O(rows) per resample).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

HEURISTIC = "carrier_rate"
REFERENCES = ("logistic_regression", "lightgbm")
# Resamples at a time: a [chunk, rows] weight matrix of float64 (25k rows: 20 MB).
CHUNK = 100


@dataclass(frozen=True)
class Policy:
    non_inferiority_margin: float = 0.005
    confidence: float = 0.95
    resamples: int = 1000
    max_ece: float = 0.05
    seed: int = 0
    metric: str = "roc_auc"
    slice_auc_floor: float = 0.55
    min_slice_rows: int = 200


class _RankedScores:
    """One model's holdout scores grouped into tied ranks, for weighted AUCs of many resamples."""

    def __init__(self, scores: np.ndarray):
        _, self.group = np.unique(np.asarray(scores, dtype=np.float64), return_inverse=True)
        self.groups = int(self.group.max()) + 1 if len(self.group) else 0

    def auc(self, weights: np.ndarray, y: np.ndarray) -> np.ndarray:
        """ROC AUC per row of weights [B, N] (ties count one half), as [B]; NaN for a resample that drew
        no positive or no negative row (a small slice's resample can)."""
        out = np.empty(len(weights))
        for b, w in enumerate(weights):
            pos = np.bincount(self.group, weights=w * y, minlength=self.groups)
            neg = np.bincount(self.group, weights=w * (1 - y), minlength=self.groups)
            below = np.cumsum(neg) - neg
            pairs = pos.sum() * neg.sum()
            out[b] = (pos * (below + 0.5 * neg)).sum() / pairs if pairs > 0 else np.nan
        return out


def resample_weights(n: int, resamples: int, seed: int):
    """The bootstrap resamples of n rows as multinomial count weights, CHUNK resamples at a time ([b, n] float64).
    One seed, one sequence: everything judged on "the same resamples" draws them from here."""
    rng = np.random.default_rng(seed)
    for start in range(0, resamples, CHUNK):
        b = min(CHUNK, resamples - start)
        yield np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(b)]).astype(np.float64)


def paired_auc_differences(y: np.ndarray, challenger: np.ndarray, others: dict[str, np.ndarray], resamples: int,
                           seed: int) -> dict[str, np.ndarray]:
    """For each other model, the bootstrap distribution of ROC AUC(challenger) - ROC AUC(other) on the same
    resampled flights: {name: [resamples]}."""
    y = np.asarray(y, dtype=np.float64)
    ranked = {"challenger": _RankedScores(challenger), **{k: _RankedScores(v) for k, v in others.items()}}
    diffs: dict[str, list[np.ndarray]] = {k: [] for k in others}
    for weights in resample_weights(len(y), resamples, seed):
        base = ranked["challenger"].auc(weights, y)
        for name in others:
            diffs[name].append(base - ranked[name].auc(weights, y))
    return {k: np.concatenate(v) for k, v in diffs.items()}


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(_RankedScores(p).auc(np.ones((1, len(y))), np.asarray(y, dtype=np.float64))[0])


def comparisons(y: np.ndarray, challenger: np.ndarray, others: dict[str, np.ndarray], policy: Policy) -> dict:
    """{name: {difference, lower, upper, resamples}}: the observed ROC AUC difference (challenger - other) and
    its two-sided paired bootstrap percentile interval at the policy's confidence."""
    if not 0 < y.sum() < len(y):
        return {}
    draws = paired_auc_differences(y, challenger, others, policy.resamples, policy.seed)
    tail = (1 - policy.confidence) / 2 * 100
    out = {}
    for name, d in draws.items():
        lower, upper = np.percentile(d, [tail, 100 - tail])
        out[name] = {"difference": _auc(y, challenger) - _auc(y, others[name]), "lower": float(lower),
                     "upper": float(upper), "resamples": int(len(d))}
    return out


def slice_floor(slices: dict[str, dict[str, dict]], policy: Policy) -> tuple[list[str], list[str]]:
    """(reasons, failures) of the slice floor: a slice (carrier, origin, hour band, month) with at least
    min_slice_rows holdout rows whose ROC AUC interval lies entirely below slice_auc_floor refuses the blessing.

    Within a slice the model can only rank that slice's flights against each other (what separates slices is
    gone), so the floor is absolute: better than a coin by a useful amount, not "as good as overall"
    (docs/MODEL.md, "Slices"). Only a significant shortfall refuses: a slice too small to tell passes."""
    floor, pct = policy.slice_auc_floor, f"{policy.confidence:.0%}"
    judged, below, failed = 0, [], []
    for col, values in slices.items():
        for value, m in values.items():
            if m.get("rows", 0) < policy.min_slice_rows or m.get("upper") is None:
                continue
            judged += 1
            if m["upper"] < floor:
                failed.append(f"useless on the slice {col}={value}: ROC AUC {m['roc_auc']:.4f}, {pct} interval "
                              f"[{m['lower']:.4f}, {m['upper']:.4f}] lies below the slice floor {floor} "
                              f"({m['rows']} holdout flights)")
            elif m["lower"] < floor:
                below.append(f"{col}={value}")
    if not judged:
        return [f"no slice has {policy.min_slice_rows}+ holdout rows of both classes: the slice floor judged none"], []
    note = f" (interval reaching below it, not significantly: {', '.join(below)})" if below else ""
    reasons = [] if failed else [f"every slice with {policy.min_slice_rows}+ holdout rows ({judged}) has a ROC AUC "
                                 f"interval reaching above the slice floor {floor}{note}"]
    return reasons, failed


def decide(model: dict, compared: dict[str, dict], champion: dict | None, checks: list[dict], policy: Policy,
           skipped: dict[str, str] | None = None, slices: dict[str, dict[str, dict]] | None = None) -> dict:
    """Blessed or not, with the reasons, from the model's holdout scores, the comparisons (name -> interval
    of the AUC difference, the champion's under "champion"), the behavioural checks, the slices (column ->
    value -> rows, roc_auc and its interval lower/upper; None: no slice was computed, which fails) and the
    policy."""
    m, margin, pct = policy.metric, policy.non_inferiority_margin, f"{policy.confidence:.0%}"
    reasons, failed = [], []
    if model.get(m) is None or not math.isfinite(model[m]):
        failed.append(f"the model's {m} could not be computed on the holdout")

    def interval(c: dict) -> str:
        return f"{c['difference']:+.4f}, {pct} interval [{c['lower']:+.4f}, {c['upper']:+.4f}]"

    heuristic = compared.get(HEURISTIC)
    if heuristic is None:
        failed.append(f"no comparison with the heuristic baseline {HEURISTIC}")
    elif heuristic["lower"] > 0:
        reasons.append(f"significantly better than {HEURISTIC}: {m} difference {interval(heuristic)} is above 0")
    else:
        failed.append(f"not significantly better than {HEURISTIC}: {m} difference {interval(heuristic)} "
                      "does not exclude 0")
    for name in (*REFERENCES, "champion"):
        c = compared.get(name)
        if c is None:
            why = (skipped or {}).get(name) or ("there is no champion yet" if name == "champion" else "not fitted")
            if name == "logistic_regression":
                failed.append(f"no comparison with {name} ({why})")
            else:
                reasons.append(f"no comparison with {name}: {why}")
            continue
        label = f"the champion (version {champion['version']})" if name == "champion" and champion else name
        if c["lower"] > -margin:
            reasons.append(f"not worse than {label} by more than {margin}: {m} difference {interval(c)}")
        else:
            failed.append(f"may be worse than {label} by more than {margin}: {m} difference {interval(c)}")
    ece = model.get("ece")
    if ece is None or ece > policy.max_ece:
        failed.append(f"expected calibration error {ece} exceeds {policy.max_ece}")
    else:
        reasons.append(f"expected calibration error {ece:.4f} is within {policy.max_ece}")
    for check in checks:
        if not check["passed"]:
            failed.append(f"behavioural check failed: {check['name']}")
    if slices is None:
        failed.append("no slice metrics: the slice floor cannot be judged")
    else:
        ok, bad = slice_floor(slices, policy)
        reasons += ok
        failed += bad
    return {"blessed": not failed, "reasons": reasons, "failed": failed, "policy": asdict(policy),
            "comparisons": compared}
