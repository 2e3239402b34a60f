"""Drift on real data: July against a January-March reference drifts (weather first); February
against January does not. Evidently's numbers equal the same statistics computed with scipy."""

from __future__ import annotations

import pytest

from components.monitoring import calibration as mb
from components.monitoring.drift import drift_statistics
from components.monitoring.policy import load_policy


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


def test_a_large_window_is_compared_through_a_seeded_sample_with_the_same_verdicts(frame, policy):
    """Above max_current_rows the current data is a fixed uniform sample: cost stops growing with traffic,
    the scores stay those of all rows (within sampling error far below the thresholds), reruns agree."""
    reference = mb.reference_sample(frame, "2013-01-01", "2013-03-31", n=5000)
    year = mb.days(frame, "2013-01-01", "2013-12-30")
    assert len(year) > 3 * policy.max_current_rows
    capped = drift_statistics(reference, year, policy)
    assert capped["sampled_rows"] == policy.max_current_rows and capped["current_rows"] == len(year)
    assert all(e["n_current"] <= policy.max_current_rows for e in capped["features"].values())
    every_row = drift_statistics(reference, year, load_policy(env={}, max_current_rows=0), engine="scipy")
    assert every_row["sampled_rows"] is None
    for col, entry in capped["features"].items():
        assert entry["score"] == pytest.approx(every_row["features"][col]["score"], abs=0.01), col
        assert entry["drifted"] == every_row["features"][col]["drifted"], col
    again = drift_statistics(reference, year, policy, engine="scipy")
    assert {c: e["score"] for c, e in again["features"].items()} == pytest.approx(
        {c: e["score"] for c, e in capped["features"].items()}, rel=1e-6, abs=1e-9)
