"""evaluate: the blessing. Scores a training run's model on its held-out period and decides.

Everything is computed on the same holdout rows (the test period that train set aside, by time):
the model's metrics overall and per slice (carrier, origin, hour band, month; each slice's ROC AUC with a paired
bootstrap interval, components.model.slices) and the parity of origins and carriers; the baselines fitted on the same
training period (components.model.baselines; LightGBM reported, never gating); behavioural checks
(invariance to unseen categories and missing weather, heavy precipitation raising the risk); the
registry's champion, loaded sha256-checked; the permutation importance of every input and every feature view
(components.model.importance, reported, not gating). components.model.gate turns those numbers into blessed /
not blessed with the reasons, judging paired bootstrap intervals of the ROC AUC differences; it is a
pure function. What each check means: docs/ML_TEST_SCORE.md and docs/MODEL.md.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict

import numpy as np
import pandas as pd

from components.contracts import layout
from components.contracts.errors import StageFailed
from components.contracts.results import EvaluateResult
from components.contracts.signature import LABEL
from components.contracts.stages import EvaluateParams
from components.core.store import ArtifactStore, open_store, sha256_bytes
from components.model.baselines import baseline_fitters
from components.model.curves import confusion, roc_points
from components.model.gate import Policy, comparisons, decide
from components.model.importance import holdout_importance
from components.model.report import markdown_report
from components.model.slices import parity, slice_groups, slice_intervals, slice_values

log = logging.getLogger(__name__)

WEATHER = ["temp", "dewp", "humid", "wind_speed", "wind_gust", "precip", "pressure", "visib"]
PLANE = ["plane_year", "plane_seats"]
HEAVY_PRECIP_IN_PER_HOUR = 0.3  # the US National Weather Service's threshold for heavy rain
CHECK_ROWS = 2000


def latest_evaluation(store: ArtifactStore) -> str:
    try:
        return store.read_json(layout.EVAL_LATEST)["eval_id"]
    except KeyError:
        raise StageFailed(f"no evaluation has been published in {store.uri(layout.EVAL_RUNS)}; run `flightdeck evaluate` "
                          "first") from None


# -- metrics ------------------------------------------------------------------------------------
def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Row-weighted mean |observed rate - mean prediction| over equal-width probability bins."""
    which = np.minimum((p * bins).astype(int), bins - 1)
    count = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, weights=y, minlength=bins) - np.bincount(which, weights=p, minlength=bins))
    return float(gap.sum() / max(count.sum(), 1))


def scores(y: np.ndarray, p: np.ndarray) -> dict:
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    y = np.asarray(y, dtype=np.float64)
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    both = 0 < y.sum() < len(y)
    return {
        "rows": int(len(y)),
        "positive_rate": float(y.mean()) if len(y) else None,
        "mean_prediction": float(p.mean()) if len(y) else None,
        "roc_auc": float(roc_auc_score(y, p)) if both else None,
        "pr_auc": float(average_precision_score(y, p)) if both else None,
        "log_loss": float(log_loss(y, p, labels=[0, 1])) if len(y) else None,
        "brier": float(brier_score_loss(y, p)) if len(y) else None,
        "ece": expected_calibration_error(y, p) if len(y) else None,
    }


def lightgbm_unavailable() -> str | None:
    """Why the LightGBM reference cannot be fitted here, or None when it can (here, not in baselines: the
    import is the stage image's question, and tests/model/test_evaluate.py checks this module's imports)."""
    try:
        import lightgbm  # noqa: F401
    except ImportError as exc:  # the stage image does not ship it (containers/locks/stage.lock)
        return (f"lightgbm is not importable here ({exc}); it is a dev/bench dependency (requirements/dev.in), "
                "not part of the stage image, and it never gates the blessing")
    return None


def skipped_scores(reason: str) -> dict:
    """A baseline that was not fitted: every metric null, and why."""
    return {"rows": None, "positive_rate": None, "mean_prediction": None, "roc_auc": None, "pr_auc": None,
            "log_loss": None, "brier": None, "ece": None, "skipped": reason}


def slice_scores(frame: pd.DataFrame, p: np.ndarray, policy: Policy) -> tuple[dict, dict]:
    """({column: {value: metrics}}, the overall ROC AUC's interval): for every slice with policy.min_slice_rows
    holdout rows, scores() plus the ROC AUC interval (lower, upper), the paired interval against the overall
    AUC (vs_overall) and the calibration gap with its interval (components.model.slices.slice_intervals)."""
    y = frame[LABEL].to_numpy(dtype=np.float64)
    groups = slice_groups(slice_values(frame), policy.min_slice_rows)
    intervals, overall = slice_intervals(y, p, groups, policy)
    return {col: {value: {**intervals[col][value], **scores(y[idx], p[idx])} for value, idx in values.items()}
            for col, values in groups.items()}, overall


# -- behavioural checks -------------------------------------------------------------------------
def behavioural_checks(module, holdout: pd.DataFrame, seed: int) -> list[dict]:
    from components.model.network import predict

    n = min(CHECK_ROWS, len(holdout))
    sample = holdout.iloc[np.sort(np.random.default_rng(seed).choice(len(holdout), n, replace=False))].copy()
    base = predict(module, sample)

    def valid(p: np.ndarray) -> bool:
        return bool(np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all())

    checks = []
    unseen = sample.copy()
    unseen["tailnum"] = "N0UNSEEN"
    unseen[PLANE] = np.nan  # an unknown tail number has no plane attributes
    unseen["dest"] = "ZZZ"
    unseen["carrier"] = "Q9"
    p = predict(module, unseen)
    checks.append({"name": "invariance: unseen tail number, carrier and destination", "kind": "invariance",
                   "passed": valid(p), "mean_prediction": float(p.mean()), "mean_abs_change": float(np.abs(p - base).mean())})
    dry = sample.copy()
    dry[WEATHER] = np.nan
    p = predict(module, dry)
    checks.append({"name": "invariance: every weather value missing", "kind": "invariance", "passed": valid(p),
                   "mean_prediction": float(p.mean()), "mean_abs_change": float(np.abs(p - base).mean())})
    wet = sample.copy()
    wet["precip"] = HEAVY_PRECIP_IN_PER_HOUR
    p = predict(module, wet)
    checks.append({"name": f"directional: precipitation {HEAVY_PRECIP_IN_PER_HOUR} in/h at the origin raises "
                           "the mean predicted risk", "kind": "directional",
                   "passed": bool(valid(p) and p.mean() > base.mean()),
                   "mean_prediction_before": float(base.mean()), "mean_prediction_after": float(p.mean())})
    return checks


# -- the stage ----------------------------------------------------------------------------------
def evaluate(params: EvaluateParams, store: ArtifactStore | None = None) -> EvaluateResult:
    """Score a training run's model on its held-out period, against baselines and the champion; bless or not.

    Inputs:
      runs/train/<run-id>/ (default: runs/train/_latest.json): model.pt (sha256-checked against the
      run's pointer) and params.json (window, split, seed); the window's training set
      training_sets/<start>_<end>.parquet; the registry's champion models/<name>/ when there is one.
    Outputs:
      runs/evaluate/<eval-id>/, published at once: evaluation.json (every metric, slice, baseline,
      check and the decision) and report.md; runs/evaluate/_latest.json names it. The eval id
      depends on the run, the parameters and the champion's version: a rerun replaces its own.
    Returns:
      EvaluateResult: blessed or not and why not, the model's and the baselines' ROC AUC, the champion's.
    Failures:
      StageFailed: the run is not published, no training run or training set exists.
      ModelIntegrityError (a StageFailed): the run's or the champion's model.pt does not match its sha256.
      A baseline that cannot be imported (LightGBM outside the dev image) is skipped, never a failure.
    """
    from components.model import train as tr
    from components.model.network import predict

    store = store or open_store()
    run_id = params.run_id or tr.latest_run(store)
    run_params, model_sha, module = _training_run(store, run_id)
    train, val, holdout, set_sha = _periods(store, run_params)
    y = holdout[LABEL].to_numpy(dtype=np.float64)
    import torch

    torch.set_num_threads(max(1, params.threads))
    p = predict(module, holdout)
    seed = int(run_params["seed"])
    fitters = baseline_fitters(train, val, holdout, seed, int(run_params["min_category_count"]), params.threads)
    baselines, predicted = baseline_scores(fitters, y)
    champion, predicted["champion"] = champion_scores(params.model_name, store, holdout, y)
    checks = behavioural_checks(module, holdout, seed)
    overall = scores(y, p)
    policy = Policy(non_inferiority_margin=params.non_inferiority_margin, confidence=params.confidence,
                    resamples=params.resamples, max_ece=params.max_ece, seed=seed,
                    slice_auc_floor=params.slice_auc_floor, min_slice_rows=params.min_slice_rows)
    compared = comparisons(y, p, {k: v for k, v in predicted.items() if v is not None}, policy)
    slices, auc_interval = slice_scores(holdout, p, policy)
    lineage = json.loads(store.read_published(layout.train_run_prefix(run_id), "lineage.json"))
    importance = holdout_importance(module, holdout, lineage, params.importance_repeats, params.importance_resamples,
                                    policy.confidence, seed)
    decision = decide(overall, compared, champion, checks, policy,
                      skipped={k: v["skipped"] for k, v in baselines.items() if v.get("skipped")}, slices=slices)
    report = {
        "run_id": run_id,
        "model_sha256": model_sha,
        "holdout": {"start": run_params["split"]["test_start"], "end": run_params["train_end"], "rows": len(holdout),
                    "training_set_sha256": set_sha},
        "model": {"overall": overall, "roc_auc_interval": {**auc_interval, "confidence": policy.confidence},
                  "slices": slices, "parity": parity(slices)},
        "baselines": baselines,
        "gap_to_lightgbm": gap_to_lightgbm(overall, baselines),
        "gap_to_lightgbm_reason": baselines["lightgbm"].get("skipped"),
        "checks": checks,
        "importance": importance,
        "curves": {"roc": roc_points(y, p), "confusion": confusion(y, p)},
        "champion": champion,
        "decision": decision,
    }
    eval_id = _publish(store, report, params)
    log.info("evaluate %s: ROC AUC %.4f, blessed=%s", run_id, overall["roc_auc"] or float("nan"), decision["blessed"])
    return {
        "eval_id": eval_id,
        "run_id": run_id,
        "uri": store.uri(layout.eval_run_prefix(eval_id)),
        "blessed": decision["blessed"],
        "failed": decision["failed"],
        "roc_auc": overall["roc_auc"],
        "baselines_roc_auc": {k: v["roc_auc"] for k, v in baselines.items() if not v.get("skipped")},
        "baselines_skipped": {k: v["skipped"] for k, v in baselines.items() if v.get("skipped")},
        "champion": champion and {"version": champion["version"], "roc_auc": champion["roc_auc"]},
    }


def _training_run(store: ArtifactStore, run_id: str) -> tuple[dict, str, object]:
    """A published training run's params.json, its model's sha256 and the model (sha256-checked)."""
    from components.model.network import load_scripted

    prefix = layout.train_run_prefix(run_id)
    pointer = store.published(prefix)
    if pointer is None:
        raise StageFailed(f"training run {run_id} is not published at {store.uri(prefix)}")
    run_params = json.loads(store.read_published(prefix, "params.json"))
    model_sha = pointer["meta"]["model_sha256"]
    module = load_scripted(store.read_bytes(store.published_key(prefix, "model.pt", pointer)), model_sha,
                           store.uri(prefix))
    return run_params, model_sha, module


def _periods(store: ArtifactStore, run_params: dict) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, str]:
    """The run's training, validation and held-out rows (train's own split) and the training set's sha256."""
    from components.model import train as tr

    frame, _, set_sha = tr.load_training_set(store, run_params["train_start"], run_params["train_end"])
    split = tr.assign_split(frame, run_params["split"])
    train, val, holdout = (frame[split == s].reset_index(drop=True) for s in ("train", "val", "test"))
    return train, val, holdout, set_sha


def baseline_scores(fitters: dict[str, Callable[[], np.ndarray]], y: np.ndarray) -> tuple[dict[str, dict], dict]:
    """Each baseline's holdout scores and fit time, and its holdout predictions (None when skipped); one that
    cannot be fitted here is skipped, with why."""
    out, predictions = {}, {}
    unavailable = {"lightgbm": lightgbm_unavailable()}
    for name, fit_and_predict in fitters.items():
        if unavailable.get(name):
            log.warning("evaluate: baseline %s skipped: %s", name, unavailable[name])
            out[name], predictions[name] = skipped_scores(unavailable[name]), None
            continue
        t0 = time.perf_counter()
        predictions[name] = fit_and_predict()
        out[name] = {**scores(y, predictions[name]), "fit_seconds": round(time.perf_counter() - t0, 3)}
    return out, predictions


def champion_scores(model_name: str, store: ArtifactStore, holdout: pd.DataFrame,
                    y: np.ndarray) -> tuple[dict | None, np.ndarray | None]:
    """The registry champion's version and scores on the same holdout, and its predictions; (None, None)
    while there is no champion."""
    from components.model.network import predict
    from components.model.registry import VersionNotFound, open_registry

    registry = open_registry(model_name, store)
    try:
        module = registry.load_model("champion")
        version = registry.resolve("champion")
    except VersionNotFound:
        return None, None
    p = predict(module, holdout)
    return {"version": version, **scores(y, p)}, p


def gap_to_lightgbm(overall: dict, baselines: dict[str, dict]) -> float | None:
    """The model's ROC AUC minus LightGBM's, when both exist."""
    reference = baselines["lightgbm"]["roc_auc"]
    return overall["roc_auc"] - reference if overall["roc_auc"] is not None and reference is not None else None


def _publish(store: ArtifactStore, report: dict, params: EvaluateParams) -> str:
    """Publish evaluation.json and report.md under the evaluation's id (set in the report); returns the id."""
    run_id, champion = report["run_id"], report["champion"]
    key = json.dumps({"run": run_id, "params": asdict(params), "champion": champion and champion["version"]},
                     sort_keys=True)
    eval_id = f"{run_id}__{sha256_bytes(key.encode())[:8]}"
    report["eval_id"] = eval_id
    files = {"evaluation.json": json.dumps(report, indent=2, sort_keys=True, default=str).encode(),
             "report.md": markdown_report(report).encode()}
    store.publish(layout.eval_run_prefix(eval_id), files, meta={"stage": "evaluate", "run_id": run_id,
                                                               "blessed": report["decision"]["blessed"]})
    store.write_json(layout.EVAL_LATEST, {"eval_id": eval_id, "run_id": run_id})
    return eval_id
