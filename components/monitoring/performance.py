"""Performance of the scored days whose labels have landed: ROC AUC, log loss, calibration.

A flight's label (late: arrived 15+ minutes late, or never arrived) is known once its day is
validated; days still waiting for labels are listed as pending, never guessed.
"""

from __future__ import annotations

import io
from datetime import date

import numpy as np
import pandas as pd

from components.contracts import layout
from components.core.store import ArtifactStore
from components.monitoring.drift import SCORE
from components.monitoring.policy import RetrainPolicy
from components.monitoring.window import DAY


def performance(y: np.ndarray, p: np.ndarray, bins: int = 10) -> dict:
    """ROC AUC, log loss, Brier, expected calibration error and the reliability table."""
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    y = np.asarray(y, dtype=int)
    p = np.clip(np.asarray(p, dtype=float), 1e-7, 1 - 1e-7)
    out = {"rows": int(len(y)), "observed_late_rate": float(y.mean()) if len(y) else None,
           "predicted_late_rate": float(p.mean()) if len(y) else None}
    if len(y) == 0:
        return out
    both = 0 < y.sum() < len(y)
    out["roc_auc"] = float(roc_auc_score(y, p)) if both else None
    out["log_loss"] = float(log_loss(y, p, labels=[0, 1]))
    out["brier"] = float(brier_score_loss(y, p))
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            gap = abs(p[mask].mean() - y[mask].mean())
            ece += mask.mean() * gap
            table.append({"bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}", "rows": int(mask.sum()),
                          "predicted": float(p[mask].mean()), "observed": float(y[mask].mean())})
    out["calibration_error"] = float(ece)
    out["calibration"] = table
    return out


def labels_for_day(store: ArtifactStore, day: date) -> pd.DataFrame | None:
    """flight_id -> label (and arrived: whether it ever arrived) for a day whose flights have landed
    (validated), else None."""
    prefix = layout.validated_prefix("flights", day)
    record = store.published(prefix)
    if record is None:
        return None
    name = next((n for n in record["files"] if n.endswith(".parquet")), None)
    if name is None:
        return None
    flights = pd.read_parquet(io.BytesIO(store.read_published(prefix, name)), columns=["flight_id", "arr_delay"])
    arr = flights["arr_delay"].astype("float64")
    return pd.DataFrame({"flight_id": flights["flight_id"], "label": ((arr >= 15) | arr.isna()).astype(int),
                         "arrived": arr.notna()})



def performance_section(store: ArtifactStore, scored: pd.DataFrame, window: list[date], policy: RetrainPolicy) -> dict:
    """Pooled over the days (scored by this version) whose labels have landed; the others are listed as pending."""
    labelled, pending, per_day = [], [], {}
    for d in window:
        rows = scored[scored[DAY] == d]
        if rows.empty:
            continue
        labels = labels_for_day(store, d)
        if labels is None:
            pending.append(d.isoformat())
            continue
        joined = rows.merge(labels, on="flight_id", how="inner")
        if joined.empty:
            pending.append(d.isoformat())
            continue
        labelled.append(joined)
        day_perf = performance(joined["label"].to_numpy(), joined[SCORE].to_numpy())
        per_day[d.isoformat()] = {k: day_perf.get(k) for k in ("rows", "roc_auc", "observed_late_rate",
                                                               "predicted_late_rate")}
    out = {"labelled_days": sorted(per_day), "pending_days": pending, "per_day": per_day}
    if not labelled:
        out["status"] = "labels_pending"
        return out
    pooled = pd.concat(labelled, ignore_index=True)
    out.update(performance(pooled["label"].to_numpy(), pooled[SCORE].to_numpy()))
    out["status"] = "ok" if len(pooled) >= policy.min_labelled_rows else "few_labels"
    return out
