"""Data drift and prediction drift of a scored window against a model's reference sample.

One distance per column, chosen for large samples (normed Wasserstein for numeric features,
Jensen-Shannon for categorical ones, PSI for the predicted probability; components.monitoring.policy
says why). A window larger than the policy's cap is compared through a seeded sample of it.
docs/MONITORING.md has the calibration behind the thresholds.

Engines (the same numbers from each; tests/monitoring/test_drift.py checks it):
  evidently         the hot path: Evidently's own registered stat tests, called on the cleaned columns
                    exactly as its ValueDrift metric calls them, without building the report's figures
  evidently-report  Evidently's Report with one ValueDrift per column (plotly figures included): what
                    components.monitoring.render runs, off the hot path, to draw report.html
  scipy             the same math written with scipy: the cross-check and the benchmark baseline
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from components.contracts.signature import CATEGORICAL, DAY_SO_FAR, NUMERIC
from components.monitoring.policy import RetrainPolicy, load_policy

SCORE = "probability"  # the scored column: its drift is prediction drift


def drift_tests(policy: RetrainPolicy, columns: list[str]) -> dict[str, tuple[str, float]]:
    """column -> (Evidently stat test name, threshold): the deliberate choice per column type."""
    tests = {}
    for col in columns:
        if col == SCORE:
            tests[col] = (policy.prediction_method, policy.prediction_threshold)
        elif col in CATEGORICAL:
            tests[col] = (policy.categorical_method, policy.categorical_threshold)
        else:
            tests[col] = (policy.numeric_method, policy.numeric_threshold)
    return tests


def _usable_columns(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str], policy: RetrainPolicy):
    usable, skipped = [], {}
    for col in columns:
        if col not in reference.columns or col not in current.columns:
            skipped[col] = "missing from the reference or the scored data"
            continue
        n_ref, n_cur = int(reference[col].notna().sum()), int(current[col].notna().sum())
        if min(n_ref, n_cur) < policy.min_column_values:
            skipped[col] = f"too few values to compare ({n_ref} reference, {n_cur} current; need {policy.min_column_values})"
            continue
        usable.append(col)
    return usable, skipped


def _prepared(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    out = pd.DataFrame(index=range(len(df)))
    for col in columns:
        s = df[col].reset_index(drop=True)
        if col in CATEGORICAL:
            out[col] = s.astype(object).where(s.notna(), None).astype(str).where(s.notna(), None)
        else:
            out[col] = pd.to_numeric(s, errors="coerce").astype("float64").replace([np.inf, -np.inf], np.nan)
    return out


ENGINES = ("evidently", "evidently-report", "scipy")


def drift_statistics(reference: pd.DataFrame, current: pd.DataFrame, policy: RetrainPolicy | None = None,
                     columns: list[str] | None = None, engine: str = "evidently") -> dict:
    """Per-column drift scores and the share of drifted features, with Evidently (or scipy, same math).

    Returns {"features": {col: {...}}, "prediction": {...} or None, "drift_share", "n_drifted",
    "n_tested" (the share's: the features outside signature.DAY_SO_FAR), "skipped": {col: reason},
    "compared": (reference rows, current rows) exactly as the
    tests saw them (typed, sampled, only the tested columns), "snapshot": Evidently's report snapshot
    (engine="evidently-report" only, else None)}.
    """
    policy = policy or load_policy()
    columns = list(columns or (NUMERIC + CATEGORICAL + ([SCORE] if SCORE in reference.columns else [])))
    current_rows = len(current)
    current = capped_sample(current, policy.max_current_rows)
    usable, skipped = _usable_columns(reference, current, columns, policy)
    tests = drift_tests(policy, usable)
    ref, cur = _prepared(reference, usable), _prepared(current, usable)
    snapshot = None
    if engine == "evidently":
        scores = evidently_scores(ref, cur, tests)
    elif engine == "evidently-report":
        snapshot = evidently_report(ref, cur, tests)
        scores = report_scores(snapshot)
    elif engine == "scipy":
        scores = {c: scipy_score(ref[c], cur[c], *tests[c]) for c in usable}
    else:
        raise ValueError(f"drift engine {engine!r} is not one of {', '.join(ENGINES)}")
    features, prediction = {}, None
    for col in usable:
        method, threshold = tests[col]
        entry = {"method": method, "threshold": threshold, "score": float(scores[col]),
                 "drifted": bool(scores[col] >= threshold),
                 "n_reference": int(ref[col].notna().sum()), "n_current": int(cur[col].notna().sum())}
        if col == SCORE:
            prediction = entry
        else:
            features[col] = entry
    # The share counts the calibrated inputs only: the day-so-far ones are tested and reported per column,
    # but they are ten readings of one intraday process and the threshold was calibrated without them
    # (docs/MONITORING.md, "Which columns the share counts").
    counted = [e for c, e in features.items() if c not in DAY_SO_FAR]
    n_drifted = sum(e["drifted"] for e in counted)
    return {"features": features, "prediction": prediction, "skipped": skipped, "n_tested": len(counted),
            "n_drifted": n_drifted, "drift_share": n_drifted / len(counted) if counted else None,
            "current_rows": current_rows, "sampled_rows": len(current) if len(current) < current_rows else None,
            "compared": (ref, cur), "snapshot": snapshot}


SAMPLE_SEED = 0  # fixed: the same window always gives the same sample, so a rerun gives the same verdict


def capped_sample(current: pd.DataFrame, max_rows: int) -> pd.DataFrame:
    """At most max_rows rows of current (0: all): a seeded uniform sample without replacement, in row order."""
    if not max_rows or len(current) <= max_rows:
        return current
    rng = np.random.default_rng(SAMPLE_SEED)
    return current.iloc[np.sort(rng.choice(len(current), max_rows, replace=False))]


def _column_type(col: str):
    from evidently.legacy.core import ColumnType

    return ColumnType.Categorical if col in CATEGORICAL else ColumnType.Numerical


def _finite(s: pd.Series) -> pd.Series:
    # What Evidently's get_one_column_drift does to a column before its stat test (replace +-inf by NaN, drop
    # NaN): _prepared has already turned infinities into NaN (numeric) or the column holds strings.
    return s.dropna()


def evidently_scores(ref: pd.DataFrame, cur: pd.DataFrame, tests: dict[str, tuple[str, float]]) -> dict[str, float]:
    """The hot path: each column's drift score from Evidently's registered stat test (the function its
    ValueDrift metric calls, on the same cleaned values), without the report's histograms and figures,
    which cost several times the statistics (docs/BENCHMARKS.md, monitor)."""
    from evidently.legacy.calculations.stattests.registry import get_stattest

    scores = {}
    for col, (method, threshold) in tests.items():
        kind = _column_type(col)
        r, c = _finite(ref[col]), _finite(cur[col])
        scores[col] = float(get_stattest(r, c, kind, method)(r, c, kind, threshold).drift_score)
    return scores


def evidently_report(ref: pd.DataFrame, cur: pd.DataFrame, tests: dict[str, tuple[str, float]]):
    """Evidently's Report with one ValueDrift per column, run on these rows: its snapshot renders report.html."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    definition = DataDefinition(numerical_columns=[c for c in tests if c not in CATEGORICAL],
                                categorical_columns=[c for c in tests if c in CATEGORICAL])
    metrics = [ValueDrift(column=c, method=m, threshold=t) for c, (m, t) in tests.items()]
    return Report(metrics).run(Dataset.from_pandas(cur, data_definition=definition),
                               Dataset.from_pandas(ref, data_definition=definition))


def report_scores(snapshot) -> dict[str, float]:
    """column -> drift score, as the report's snapshot holds them."""
    return {item["config"]["column"]: float(item["value"]) for item in snapshot.dict()["metrics"]}


def scipy_score(ref: pd.Series, cur: pd.Series, method: str, threshold: float = 0.0) -> float:
    """The same statistics computed directly (the benchmark baseline, and a cross-check of Evidently)."""
    from scipy import stats
    from scipy.spatial import distance

    r, c = ref.dropna(), cur.dropna()
    if method == "wasserstein":
        return float(stats.wasserstein_distance(r, c) / max(float(np.std(r)), 0.001))
    if method in ("jensenshannon", "psi"):
        if method == "psi" and r.nunique() > 20 and pd.api.types.is_numeric_dtype(r):
            edges = np.histogram_bin_edges(np.concatenate([r.to_numpy(), c.to_numpy()]), bins="sturges")
            p, q = np.histogram(r, edges)[0] / len(r), np.histogram(c, edges)[0] / len(c)
        else:
            keys = list(set(r.unique()) | set(c.unique()))
            p = r.value_counts().reindex(keys, fill_value=0).to_numpy() / len(r)
            q = c.value_counts().reindex(keys, fill_value=0).to_numpy() / len(c)
        if method == "jensenshannon":
            return float(distance.jensenshannon(p, q))
        p, q = _fill_zeroes(p), _fill_zeroes(q)
        return float(np.sum((p - q) * np.log(p / q)))
    raise ValueError(f"no scipy implementation of drift method {method!r}")


def _fill_zeroes(p: np.ndarray) -> np.ndarray:
    # As Evidently does: empty bins get a tiny share so the log stays finite.
    p = p.astype(float).copy()
    smallest = p[p > 0].min()
    p[p == 0] = smallest / 1e6 if smallest <= 1e-4 else 1e-4
    return p



# -- the verdict of a window ----------------------------------------------------------------------
def no_verdict(reference_rows: int, window_rows: int, policy: RetrainPolicy, first_day, last_day) -> dict | None:
    """The drift section of a window too small (or a reference too small) to judge, else None."""
    if reference_rows < policy.min_reference_rows:
        return {"status": "insufficient_reference", "message": (
            f"the reference sample has {reference_rows} rows, fewer than {policy.min_reference_rows}: no drift verdict")}
    if window_rows < policy.min_rows:
        return {"status": "insufficient_sample", "message": (
            f"the window {first_day}..{last_day} holds {window_rows} scored rows, fewer than {policy.min_rows}: "
            "too few to judge drift; no verdict for this day (it breaks a drift streak)")}
    return None


def columns_and_sample(reference: pd.DataFrame, current: pd.DataFrame, of_version: pd.Series | None,
                       policy: RetrainPolicy) -> tuple[list[str], pd.DataFrame]:
    """The columns to compare and the window's rows to compare them on.

    Feature drift is measured over every row of the window; prediction drift (PSI of the scores) only
    on the scores of the monitored day's version, in the same Evidently report: `of_version` marks those
    rows (None: the version is unknown, every score counts) and the other versions' scores are blanked
    out (Evidently drops missing values before its test, as the scipy cross-check does). Prediction
    drift is left out when that version scored fewer than policy.min_rows rows of the window.
    """
    columns, sample = NUMERIC + CATEGORICAL, current
    scored_by_version = len(current) if of_version is None else int(of_version.sum())
    if SCORE in reference.columns and scored_by_version >= policy.min_rows:
        columns = columns + [SCORE]
        if of_version is not None:
            sample = current.copy()
            sample[SCORE] = sample[SCORE].where(of_version)
    return columns, sample
