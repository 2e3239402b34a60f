"""The monitor stage's planning, without a store: which days it loads and compares, which rows count
for prediction drift and performance, when there is no drift verdict, and the result it returns."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd

from components.contracts.results import MonitorResult
from components.monitoring.drift import SCORE, columns_and_sample, no_verdict
from components.monitoring.monitor import stage_result
from components.monitoring.policy import load_policy
from components.monitoring.window import mode_version, plan_window, select_rows

DAY = date(2013, 7, 14)


def _scored(version, rows: int, score: float = 0.3) -> pd.DataFrame:
    return pd.DataFrame({"flight_id": [f"f{i}" for i in range(rows)], SCORE: [score] * rows,
                         "model_version": [version] * rows, "temp": [70.0] * rows})


def test_the_plan_loads_the_longer_window_once_and_compares_the_last_days_of_it():
    plan = plan_window(DAY, load_policy(env={}, window_days=7, auc_window_days=14))
    assert plan.load_days == [DAY - timedelta(days=i) for i in range(13, -1, -1)]
    assert plan.drift_days == plan.load_days[-7:] and plan.drift_days[-1] == DAY
    assert plan.auc_days == plan.load_days

    wide = plan_window(DAY, load_policy(env={}, window_days=10, auc_window_days=3))
    assert len(wide.load_days) == 10 and wide.drift_days == wide.load_days
    assert wide.auc_days == [DAY - timedelta(days=2), DAY - timedelta(days=1), DAY]


def test_rows_split_by_window_and_by_the_scoring_version():
    plan = plan_window(DAY, load_policy(env={}, window_days=3, auc_window_days=5))
    loaded = {d: None for d in plan.load_days}
    loaded[DAY] = pd.concat([_scored(2, 30), _scored(1, 10)], ignore_index=True)
    loaded[DAY - timedelta(days=1)] = _scored(1, 20)  # scored by the previous version
    loaded[DAY - timedelta(days=2)] = _scored(2, 0)  # published but empty: missing all the same
    loaded[DAY - timedelta(days=4)] = _scored(2, 50)  # outside the drift window, inside the AUC window

    version = mode_version(loaded[DAY])
    rows = select_rows(plan, loaded, version)
    assert version == 2
    assert len(rows.current) == 60 and len(rows.same_model) == 30
    assert len(rows.auc_rows) == 80  # this version's rows of the five days
    assert rows.missing_days == [(DAY - timedelta(days=2)).isoformat()]

    unknown = select_rows(plan, loaded, None)  # predictions that name no version: every row counts
    assert len(unknown.same_model) == len(unknown.current) == 60


def test_no_verdict_below_the_reference_or_the_window_minimum():
    policy = load_policy(env={}, min_rows=500, min_reference_rows=1000)
    first = DAY - timedelta(days=6)
    small_reference = no_verdict(999, 10_000, policy, first, DAY)
    assert small_reference["status"] == "insufficient_reference" and "fewer than 1000" in small_reference["message"]
    small_window = no_verdict(5000, 499, policy, first, DAY)
    assert small_window["status"] == "insufficient_sample"
    assert f"{first}..{DAY} holds 499 scored rows" in small_window["message"]
    assert no_verdict(1000, 500, policy, first, DAY) is None


def test_prediction_drift_reads_only_the_scoring_versions_scores():
    policy = load_policy(env={}, min_rows=20)
    reference = _scored(2, 100)
    current = pd.concat([_scored(2, 30, score=0.2), _scored(1, 10, score=0.9)], ignore_index=True)
    of_version = current["model_version"] == 2

    columns, sample = columns_and_sample(reference, current, of_version, policy)
    assert columns[-1] == SCORE and SCORE not in columns[:-1]
    assert sample[SCORE].notna().sum() == 30 and set(sample[SCORE].dropna()) == {0.2}
    assert current[SCORE].notna().all()  # the caller's frame is left as it was

    few, same = columns_and_sample(reference, current, of_version, load_policy(env={}, min_rows=31))
    assert SCORE not in few and same is current  # too few of this version's scores: no prediction drift
    no_score, _ = columns_and_sample(reference.drop(columns=[SCORE]), current, of_version, policy)
    assert SCORE not in no_score  # an old reference without scores


def test_the_stage_result_has_exactly_the_declared_keys():
    summary = {
        "date": DAY.isoformat(), "model_version": 2, "holdout_auc": 0.7, "seconds": 1.5,
        "drift": {"status": "ok", "drift_share": 0.25, "prediction": {"score": 0.3},
                  "features": {"temp": {"drifted": True}, "dewp": {"drifted": False}, "wind": {"drifted": True}}},
        "performance": {"roc_auc": 0.66, "pending_days": ["2013-07-14"]},
        "decision": {"retrain": True, "trigger": "drift", "reasons": ["three days"], "blocked_by": None,
                     "already_requested": None, "requested": False, "inputs": {}},
    }
    result = stage_result(summary, "file:///a/monitoring/date=2013-07-14", None)
    assert set(result) == set(MonitorResult.__annotations__)
    assert result["drifted_features"] == ["temp", "wind"] and result["prediction_drift"] == 0.3
    assert (result["retrain"], result["trigger"], result["auc"]) == (True, "drift", 0.66)
