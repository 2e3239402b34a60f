"""Drift on real data: July against a January-March reference drifts (weather first); February
against January does not. The hot path's numbers (Evidently's stat tests) equal the same statistics
computed with scipy and those of Evidently's full report, which the hot path does not build."""

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
    assert stats["snapshot"] is None  # the hot path builds no report

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
    # Evidently's report draws the same PSI (its ValueDrift metric), and its number is the scipy one.
    drawn = drift_statistics(reference, july, policy, ["probability"], engine="evidently-report")
    [metric] = drawn["snapshot"].dict()["metrics"]
    assert metric["config"]["column"] == "probability" and metric["config"]["method"] == "psi"
    assert float(metric["value"]) == hot["prediction"]["score"]
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


def test_the_hot_path_equals_scipy_and_evidently_report_per_column_without_building_figures(frame, jan_mar_scorer,
                                                                                           policy):
    """Issue 17 item 5: the monitor's drift numbers come from Evidently's stat tests without its report.
    Per column, on the same rows: hot path == scipy (the test the policy chose: normed Wasserstein,
    Jensen-Shannon, PSI) and == Evidently's full Report; profiled, only the Report builds plotly figures."""
    import cProfile
    import pstats

    reference = mb.reference_sample(frame, "2013-01-01", "2013-03-31", n=5000)
    reference["probability"] = jan_mar_scorer(reference)
    july = mb.days(frame, "2013-07-01", "2013-07-14").copy()
    july["probability"] = jan_mar_scorer(july)

    def plotly_calls(engine):
        profile = cProfile.Profile()
        stats = profile.runcall(drift_statistics, reference, july, policy, engine=engine)
        calls = sum(v[1] for k, v in pstats.Stats(profile).stats.items() if "/plotly/" in k[0])
        return stats, calls

    hot, hot_plotly = plotly_calls("evidently")
    report, report_plotly = plotly_calls("evidently-report")
    scipy = drift_statistics(reference, july, policy, engine="scipy")
    assert hot_plotly == 0 and report_plotly > 1000, (hot_plotly, report_plotly)
    assert hot["n_tested"] == 23 and hot["prediction"] is not None
    methods = {e["method"] for e in hot["features"].values()} | {hot["prediction"]["method"]}
    assert methods == {"wasserstein", "jensenshannon", "psi"}
    def scores(stats):
        return {**stats["features"], "probability": stats["prediction"]}

    for col, entry in scores(hot).items():
        assert entry["score"] == scores(report)[col]["score"], col  # the very number Evidently's report draws
        assert entry["score"] == pytest.approx(scores(scipy)[col]["score"], rel=1e-9, abs=1e-12), col
        assert (entry["method"], entry["drifted"]) == (scores(scipy)[col]["method"], scores(scipy)[col]["drifted"])
    # What the statistics were computed on travels with them: the same rows give the same numbers.
    ref_rows, cur_rows = hot["compared"]
    assert list(ref_rows.columns) == list(cur_rows.columns) and len(ref_rows) == 5000 and len(cur_rows) == len(july)
    again = drift_statistics(ref_rows, cur_rows, policy, engine="scipy")
    assert {c: e["score"] for c, e in again["features"].items()} == pytest.approx(
        {c: e["score"] for c, e in hot["features"].items()}, rel=1e-9, abs=1e-12)


def test_the_share_counts_the_calibrated_inputs_and_reports_the_day_so_far_per_column(frame, policy):
    """The day-so-far inputs are tested and reported, but the drift share (the retrain rule's) counts only
    the inputs it was calibrated on (docs/MONITORING.md, "Which columns the share counts"): here every one
    of them is made to drift (a constructed shift of ten columns), and the share is the one without them."""
    import numpy as np

    from components.contracts.signature import DAY_SO_FAR

    reference = mb.reference_sample(frame, "2013-01-01", "2013-01-31", n=5000)
    feb_week = mb.days(frame, "2013-02-15", "2013-02-21")
    without = drift_statistics(reference, feb_week, policy)
    rng = np.random.default_rng(13)
    ref, cur = reference.copy(), feb_week.copy()
    for col in DAY_SO_FAR:
        ref[col] = rng.normal(0.0, 1.0, len(ref))
        cur[col] = rng.normal(5.0, 1.0, len(cur))
    stats = drift_statistics(ref, cur, policy)
    assert all(stats["features"][c]["drifted"] for c in DAY_SO_FAR)
    assert (stats["drift_share"], stats["n_drifted"], stats["n_tested"]) == (
        without["drift_share"], without["n_drifted"], without["n_tested"])
    assert stats["drift_share"] < policy.drift_share_threshold
