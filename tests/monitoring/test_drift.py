"""Drift on real data: July against a January-March reference drifts (weather first); February
against January does not. Evidently's numbers equal the same statistics computed with scipy."""

from __future__ import annotations

import pytest

from components import monitor_backtest as mb
from components.monitor import drift_statistics
from components.retrain_policy import load_policy


@pytest.fixture(scope="module")
def policy():
    return load_policy(env={})


def test_july_drifts_from_a_january_to_march_reference(frame, policy):
    reference = mb.reference_sample(frame, "2013-01-01", "2013-03-31", n=5000)
    july_week = mb.days(frame, "2013-07-08", "2013-07-14")
    stats = drift_statistics(reference, july_week, policy)
    assert stats["drift_share"] >= policy.drift_share_threshold
    drifted = {c for c, e in stats["features"].items() if e["drifted"]}
    assert {"temp", "dewp"} <= drifted, drifted
    assert stats["features"]["temp"]["method"] == "wasserstein"
    assert stats["features"]["carrier"]["method"] == "jensenshannon"
    # Evidently ran the report: its snapshot renders to HTML.
    assert "<html" in stats["snapshot"].get_html_str(as_iframe=False)[:2000].lower()

    same = drift_statistics(reference, july_week, policy, engine="scipy")
    for col, entry in stats["features"].items():
        assert same["features"][col]["score"] == pytest.approx(entry["score"], rel=1e-6, abs=1e-9), col


def test_february_does_not_drift_from_january(frame, policy):
    reference = mb.reference_sample(frame, "2013-01-01", "2013-01-31", n=5000)
    feb_week = mb.days(frame, "2013-02-15", "2013-02-21")
    stats = drift_statistics(reference, feb_week, policy)
    assert stats["drift_share"] < policy.drift_share_threshold, stats["features"]
    assert not stats["features"]["temp"]["drifted"]


def test_a_ks_test_would_flag_february_at_this_sample_size(frame):
    """Why distances: at ~6k rows a KS p-value calls February's temperature 'drifted' from January's."""
    from scipy import stats

    jan = mb.days(frame, "2013-01-01", "2013-01-31")["temp"].dropna()
    feb = mb.days(frame, "2013-02-15", "2013-02-21")["temp"].dropna()
    assert stats.ks_2samp(jan, feb).pvalue < 0.05


def test_prediction_drift_uses_psi_on_the_scores(frame, jan_mar_scorer, policy):
    reference = mb.reference_sample(frame, "2013-01-01", "2013-03-31", n=5000)
    reference["probability"] = jan_mar_scorer(reference)
    july = mb.days(frame, "2013-07-08", "2013-07-14").copy()
    july["probability"] = jan_mar_scorer(july)
    march = mb.days(frame, "2013-03-01", "2013-03-07").copy()
    march["probability"] = jan_mar_scorer(march)
    hot = drift_statistics(reference, july, policy, ["probability"])
    calm = drift_statistics(reference, march, policy, ["probability"])["prediction"]
    assert hot["prediction"]["method"] == "psi" and hot["prediction"]["drifted"]
    assert calm["score"] < hot["prediction"]["score"] and not calm["drifted"]
    # Evidently computed it (the PSI is in its report), and its number is the scipy one.
    [metric] = hot["snapshot"].dict()["metrics"]
    assert metric["config"]["column"] == "probability" and metric["config"]["method"] == "psi"
    for current, entry in ((july, hot["prediction"]), (march, calm)):
        same = drift_statistics(reference, current, policy, ["probability"], engine="scipy")["prediction"]
        assert same["score"] == pytest.approx(entry["score"], rel=1e-9, abs=1e-12)
    # Missing scores are dropped, not counted as a bin, by both: the monitor blanks out the scores of
    # other model versions in the same report.
    blanked = july.copy()
    blanked.loc[blanked.index[::2], "probability"] = float("nan")
    e = drift_statistics(reference, blanked, policy, ["probability"])["prediction"]
    s = drift_statistics(reference, july.iloc[1::2], policy, ["probability"], engine="scipy")["prediction"]
    assert e["n_current"] == len(july.iloc[1::2]) and e["score"] == pytest.approx(s["score"], rel=1e-9)
