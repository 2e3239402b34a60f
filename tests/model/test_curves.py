"""The holdout's ROC curve and confusion matrix evaluate records (components/model/curves.py)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from components.model.curves import MAX_POINTS, confusion, roc_points


def _holdout(n: int = 30000, seed: int = 1):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    return y, 1 / (1 + np.exp(-(y * 1.1 + rng.normal(-1.6, 1.0, n))))


def test_the_thinned_roc_curve_keeps_the_area():
    y, p = _holdout()
    roc = roc_points(y, p)
    fpr, tpr, threshold = (np.array(roc[k]) for k in ("fpr", "tpr", "threshold"))
    assert len(fpr) == len(tpr) == len(threshold) <= MAX_POINTS
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert (np.diff(fpr) >= 0).all() and (np.diff(tpr) >= 0).all() and (np.diff(threshold) <= 0).all()
    assert threshold.max() <= 1.0  # no +inf for the KFP UI
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc_score(y, p), abs=0.002)


def test_confusion_flags_flights_riskier_than_the_mean_prediction():
    y = np.array([0, 0, 0, 1, 1, 0, 1, 0])
    p = np.array([0.1, 0.2, 0.6, 0.7, 0.3, 0.1, 0.9, 0.2])  # mean 0.3875
    out = confusion(y, p)
    assert out["threshold"] == pytest.approx(0.3875) and out["categories"] == ["on time", "late"]
    # true on time: 4 below the mean, 1 above (0.6); true late: 1 below (0.3), 2 above
    assert out["matrix"] == [[4, 1], [1, 2]]
    y, p = _holdout()
    assert sum(map(sum, confusion(y, p)["matrix"])) == len(y)
