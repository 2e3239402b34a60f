"""Slices of the holdout: the model's ROC AUC per carrier, origin, departure hour band and month with paired
bootstrap intervals, and the parity of origins and carriers (docs/MODEL.md, "Slices").

Every slice is resampled with the gate's resamples (components.model.gate.resample_weights: the same
flights drawn for the slice and for the whole holdout), so each resample gives the slice's ROC AUC, the
slice's AUC minus the overall AUC on the same draw, and the slice's calibration gap (mean prediction minus
observed late rate). The gate judges the slice floor on those intervals (gate.slice_floor); the parity
summary is reported beside the blessing and does not gate (docs/MODEL.md says why).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from components.contracts.errors import StageFailed
from components.model.gate import Policy, _RankedScores, resample_weights

SLICES = ("carrier", "origin", "hour_band", "month")
PARITY = ("origin", "carrier")
# Local scheduled departure hour (the training set's sched_hour) -> band: [start, end) and its name.
HOUR_BANDS = ((0, 9, "00-08"), (9, 13, "09-12"), (13, 17, "13-16"), (17, 21, "17-20"), (21, 24, "21-23"))


def hour_band(sched_hour: pd.Series) -> np.ndarray:
    """The band of each flight's local scheduled departure hour (0-23), as HOUR_BANDS names it."""
    hours = pd.to_numeric(sched_hour, errors="coerce")
    bad = hours.isna() | (hours < 0) | (hours > 23) | (hours % 1 != 0)
    if bad.any():
        raise StageFailed(f"sched_hour must be a local hour 0-23 to slice by hour band; {int(bad.sum())} rows are "
                          f"not (e.g. {sched_hour[bad].iloc[0]!r})")
    edges = np.array([end for _, end, _ in HOUR_BANDS[:-1]])
    names = np.array([name for _, _, name in HOUR_BANDS])
    return names[np.searchsorted(edges, hours.to_numpy(dtype=np.int64), side="right")]


def slice_values(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each slice column's value per holdout row (hour_band derived from sched_hour)."""
    missing = [c for c in ("carrier", "origin", "sched_hour", "month") if c not in frame.columns]
    if missing:
        raise StageFailed(f"the holdout lacks the slice columns {', '.join(missing)} (slices: {', '.join(SLICES)})")
    out = {c: frame[c].astype(str).to_numpy() for c in ("carrier", "origin", "month")}
    out["hour_band"] = hour_band(frame["sched_hour"])
    return {c: out[c] for c in SLICES}


def slice_groups(values: dict[str, np.ndarray], min_rows: int) -> dict[str, dict[str, np.ndarray]]:
    """{column: {value: row indices}} for the slices with at least min_rows rows, values sorted."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for col, v in values.items():
        uniques, inverse = np.unique(v, return_inverse=True)
        out[col] = {}
        for i, value in enumerate(uniques):
            idx = np.flatnonzero(inverse == i)
            if len(idx) >= min_rows:
                out[col][str(value)] = idx
    return out


def slice_intervals(y: np.ndarray, p: np.ndarray, groups: dict[str, dict[str, np.ndarray]],
                    policy: Policy) -> tuple[dict[str, dict[str, dict]], dict]:
    """For each slice: its ROC AUC with a percentile interval, the paired interval of (slice AUC - overall AUC)
    and of its calibration gap (mean prediction - late rate), over the policy's resamples of the holdout;
    and the overall ROC AUC's interval from the same resamples ({roc_auc, lower, upper, resamples}).

    A resample that draws no late (or no on-time) flight of a slice has no AUC there; those are left out
    and `resamples` counts the ones that had both. A slice with only one class has no AUC at all (None)."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    overall = _RankedScores(p)
    ranked = {(c, v): _RankedScores(p[idx]) for c, vs in groups.items() for v, idx in vs.items()}
    draws: dict[tuple, dict[str, list]] = {k: {"auc": [], "diff": [], "gap": []} for k in ranked}
    bases = []
    for weights in resample_weights(len(y), policy.resamples, policy.seed):
        base = overall.auc(weights, y)
        bases.append(base)
        for (col, value), r in ranked.items():
            idx = groups[col][value]
            w = weights[:, idx]
            auc = r.auc(w, y[idx])
            draws[(col, value)]["auc"].append(auc)
            draws[(col, value)]["diff"].append(auc - base)
            draws[(col, value)]["gap"].append(w @ (p[idx] - y[idx]) / w.sum(axis=1))
    tail = (1 - policy.confidence) / 2 * 100
    whole = _auc(overall, y)
    base = np.concatenate(bases) if bases else np.array([np.nan])
    ok = np.isfinite(base)
    whole_interval = {"roc_auc": whole, "lower": None, "upper": None, "resamples": int(ok.sum())}
    if whole is not None and ok.any():
        lower, upper = np.percentile(base[ok], [tail, 100 - tail])
        whole_interval.update(lower=float(lower), upper=float(upper))
    out: dict[str, dict[str, dict]] = {c: {} for c in groups}
    for (col, value), d in draws.items():
        idx = groups[col][value]
        auc, diff, gap = (np.concatenate(d[k]) for k in ("auc", "diff", "gap"))
        ok = np.isfinite(auc)
        point = _auc(ranked[(col, value)], y[idx])
        entry = {"rows": int(len(idx)), "roc_auc": point, "resamples": int(ok.sum()),
                 "calibration_gap": float(p[idx].mean() - y[idx].mean())}
        entry["gap_lower"], entry["gap_upper"] = (float(x) for x in np.percentile(gap, [tail, 100 - tail]))
        if point is None or not ok.any():
            entry.update(lower=None, upper=None, vs_overall=None)
        else:
            lower, upper = np.percentile(auc[ok], [tail, 100 - tail])
            dl, du = np.percentile(diff[ok], [tail, 100 - tail])
            entry.update(lower=float(lower), upper=float(upper),
                         vs_overall={"difference": point - whole, "lower": float(dl), "upper": float(du)})
        out[col][value] = entry
    return out, whole_interval


def _auc(ranked: _RankedScores, y: np.ndarray) -> float | None:
    if not 0 < y.sum() < len(y):
        return None
    return float(ranked.auc(np.ones((1, len(y))), y)[0])


def parity(slices: dict[str, dict[str, dict]]) -> dict[str, dict]:
    """Per origin and per carrier (the slices with enough rows): rows, ROC AUC and calibration gap of each,
    the spread of each (max - min) and the groups at either end."""
    out = {}
    for col in PARITY:
        groups = [{"value": v, "rows": m["rows"], "roc_auc": m["roc_auc"], "calibration_gap": m["calibration_gap"]}
                  for v, m in slices.get(col, {}).items()]
        with_auc = [g for g in groups if g["roc_auc"] is not None]
        entry: dict = {"groups": groups, "auc_spread": None, "auc_lowest": None, "auc_highest": None,
                       "calibration_gap_spread": None, "largest_calibration_gap": None}
        if with_auc:
            low, high = min(with_auc, key=lambda g: g["roc_auc"]), max(with_auc, key=lambda g: g["roc_auc"])
            entry.update(auc_spread=high["roc_auc"] - low["roc_auc"], auc_lowest=low, auc_highest=high)
        if groups:
            gaps = [g["calibration_gap"] for g in groups]
            entry.update(calibration_gap_spread=max(gaps) - min(gaps),
                         largest_calibration_gap=max(groups, key=lambda g: abs(g["calibration_gap"])))
        out[col] = entry
    return out
