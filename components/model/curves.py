"""The holdout's ROC curve and confusion matrix, as evaluate records them for the places users look
(the KFP UI's ClassificationMetrics: pipelines/steps.py; the evaluation report).

The curve is thinned to at most MAX_POINTS thresholds (the KFP UI draws a few hundred points well; a
25,000-flight holdout has ~25,000 distinct scores). The confusion matrix flags a flight as late when its
predicted risk is above the holdout's mean prediction: the model is calibrated, so that mean is the
expected late rate, and "riskier than an average flight" is what an operations user acts on; 0.5
would flag almost nothing at a 20 % late rate.
"""

from __future__ import annotations

import numpy as np

MAX_POINTS = 200
CATEGORIES = ["on time", "late"]  # label 0, label 1 (15+ min departure delay)


def roc_points(y: np.ndarray, p: np.ndarray) -> dict:
    """{fpr, tpr, threshold}: the ROC curve at <= MAX_POINTS thresholds, first point (0, 0), last (1, 1)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, threshold = roc_curve(np.asarray(y), np.asarray(p, dtype=np.float64), drop_intermediate=True)
    if len(fpr) > MAX_POINTS:
        keep = np.unique(np.linspace(0, len(fpr) - 1, MAX_POINTS).round().astype(int))
        fpr, tpr, threshold = fpr[keep], tpr[keep], threshold[keep]
    threshold = np.minimum(threshold, 1.0)  # sklearn's first threshold is +inf: no flight flagged
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "threshold": threshold.tolist()}


def confusion(y: np.ndarray, p: np.ndarray) -> dict:
    """{threshold, categories, matrix}: rows are the true class, columns the predicted one."""
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=np.float64)
    threshold = float(p.mean())
    flagged = (p > threshold).astype(int)
    matrix = [[int(((y == t) & (flagged == f)).sum()) for f in (0, 1)] for t in (0, 1)]
    return {"threshold": threshold, "categories": CATEGORIES, "matrix": matrix}
