"""Slices that gate: hour bands, per-slice bootstrap intervals, the slice floor of the blessing, parity.

The forced failure runs the gate's real functions (evaluate.slice_scores -> slices.slice_intervals ->
gate.decide) on a holdout-shaped frame whose model is good overall and useless on one origin.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.contracts.errors import StageFailed
from components.contracts.signature import LABEL
from components.model.evaluate import slice_scores
from components.model.gate import Policy, decide
from components.model.slices import HOUR_BANDS, hour_band, parity

CLEAR = {name: {"difference": d, "lower": d - 0.005, "upper": d + 0.005, "resamples": 1000}
         for name, d in (("carrier_rate", 0.08), ("logistic_regression", 0.01), ("lightgbm", 0.01))}
CHECKS = [{"name": "invariance", "passed": True}]
POLICY = Policy(resamples=300, seed=1)


def holdout(rows: int = 9000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A holdout with the slice columns and labels, and a model's scores that rank it well (AUC ~0.72)."""
    rng = np.random.default_rng(seed)
    risk = rng.normal(0, 1, rows)
    frame = pd.DataFrame({
        "carrier": rng.choice(["UA", "B6", "EV", "DL"], rows), "origin": rng.choice(["EWR", "JFK", "LGA"], rows),
        "sched_hour": rng.integers(5, 24, rows), "month": rng.choice([3, 4], rows),
        LABEL: (rng.random(rows) < 1 / (1 + np.exp(1.6 - risk))).astype("int64"),
    })
    p = 1 / (1 + np.exp(1.6 - risk - rng.normal(0, 0.8, rows)))
    return frame, p


def test_hour_bands_cover_the_day_and_refuse_a_bad_hour():
    bands = hour_band(pd.Series(range(24)))
    assert list(bands[:9]) == ["00-08"] * 9 and list(bands[9:13]) == ["09-12"] * 4
    assert list(bands[13:17]) == ["13-16"] * 4 and list(bands[17:21]) == ["17-20"] * 4 and list(bands[21:]) == ["21-23"] * 3
    assert [name for *_, name in HOUR_BANDS] == sorted(set(bands))
    for bad in (24, -1, 7.5, None):
        with pytest.raises(StageFailed, match="sched_hour must be a local hour 0-23"):
            hour_band(pd.Series([8, bad]))


def test_each_slice_has_its_auc_an_interval_and_its_calibration_gap():
    from sklearn.metrics import roc_auc_score

    frame, p = holdout()
    slices = slice_scores(frame, p, POLICY)[0]
    assert set(slices) == {"carrier", "origin", "hour_band", "month"}
    assert set(slices["hour_band"]) == {"00-08", "09-12", "13-16", "17-20", "21-23"}
    y = frame[LABEL].to_numpy()
    for col, values in slices.items():
        assert sum(m["rows"] for m in values.values()) == len(frame), col
        for value, m in values.items():
            mask = (frame[col].astype(str) if col != "hour_band" else pd.Series(hour_band(frame["sched_hour"]))) == value
            assert m["rows"] == mask.sum()
            assert m["roc_auc"] == pytest.approx(roc_auc_score(y[mask], p[mask]), abs=1e-12)
            assert m["lower"] < m["roc_auc"] < m["upper"] and m["upper"] - m["lower"] < 0.15, (col, value, m)
            assert m["calibration_gap"] == pytest.approx(p[mask].mean() - y[mask].mean())
            assert m["gap_lower"] < m["calibration_gap"] < m["gap_upper"]
            vs = m["vs_overall"]
            assert vs["lower"] <= vs["difference"] <= vs["upper"] and m["resamples"] == 300
    # a slice as large as the holdout is the holdout: paired with itself, its difference is exactly 0
    frame["month"] = 3
    slices, overall = slice_scores(frame, p, POLICY)
    month = slices["month"]["3"]
    assert month["vs_overall"] == {"difference": 0.0, "lower": 0.0, "upper": 0.0}
    # and the overall AUC's interval, from the same resamples, is that slice's
    assert (overall["lower"], overall["upper"], overall["resamples"]) == (month["lower"], month["upper"], 300)
    assert overall["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert overall["lower"] < overall["roc_auc"] < overall["upper"]


def test_a_model_useless_on_one_origin_is_refused_naming_the_slice():
    frame, p = holdout()
    slices, _ = slice_scores(frame, p, POLICY)
    good = decide({"roc_auc": 0.72, "ece": 0.02}, CLEAR, None, CHECKS, POLICY, slices=slices)
    assert good["blessed"], good["failed"]
    assert any("every slice with 200+ holdout rows (14)" in r for r in good["reasons"]), good["reasons"]

    useless = p.copy()
    lga = (frame["origin"] == "LGA").to_numpy()
    useless[lga] = 0.2  # the same score for every LaGuardia flight: no ranking there at all
    from sklearn.metrics import roc_auc_score

    overall = roc_auc_score(frame[LABEL], useless)
    assert overall > 0.62  # still good overall (0.64; 0.72 before)
    slices = slice_scores(frame, useless, POLICY)[0]
    assert (slices["origin"]["LGA"]["lower"], slices["origin"]["LGA"]["upper"]) == (0.5, 0.5)
    assert all(m["lower"] > 0.6 for v, m in slices["origin"].items() if v != "LGA")
    decision = decide({"roc_auc": overall, "ece": 0.02}, CLEAR, None, CHECKS, POLICY, slices=slices)
    assert not decision["blessed"]
    assert len(decision["failed"]) == 1 and "useless on the slice origin=LGA" in decision["failed"][0], decision["failed"]
    assert "below the slice floor 0.55" in decision["failed"][0] and f"({lga.sum()} holdout flights)" in decision["failed"][0]

    # the same uselessness on a slice smaller than min_slice_rows is not judged (too few flights to tell)
    assert not decide({"roc_auc": 0.68, "ece": 0.02}, CLEAR, None, CHECKS,
                      Policy(resamples=300, seed=1, min_slice_rows=lga.sum() + 1), slices=slices)["failed"]


def sl(auc, lower, upper, rows=1000):
    return {"rows": rows, "roc_auc": auc, "lower": lower, "upper": upper}


@pytest.mark.parametrize("case, slices, policy, blessed, because", [
    ("interval below the floor", {"carrier": {"MQ": sl(0.52, 0.49, 0.549)}}, Policy(), False,
     "useless on the slice carrier=MQ: ROC AUC 0.5200, 95% interval [0.4900, 0.5490] lies below the slice floor 0.55"),
    ("interval reaching the floor: not significant", {"carrier": {"MQ": sl(0.58, 0.525, 0.64)}}, Policy(), True,
     "interval reaching below it, not significantly: carrier=MQ"),
    ("a small slice is not judged", {"carrier": {"OO": sl(0.40, 0.30, 0.50, rows=199)}, "origin": {"EWR": sl(0.7, 0.68, 0.72)}},
     Policy(), True, "every slice with 200+ holdout rows (1)"),
    ("a one-class slice is not judged", {"carrier": {"HA": {"rows": 300, "roc_auc": None, "lower": None, "upper": None}}},
     Policy(), True, "the slice floor judged none"),
    ("the floor is the policy's", {"origin": {"LGA": sl(0.63, 0.60, 0.65)}}, Policy(slice_auc_floor=0.66), False,
     "useless on the slice origin=LGA"),
    ("no slice metrics at all", None, Policy(), False, "no slice metrics: the slice floor cannot be judged"),
])
def test_slice_floor(case, slices, policy, blessed, because):
    decision = decide({"roc_auc": 0.7, "ece": 0.02}, CLEAR, None, CHECKS, policy, slices=slices)
    assert decision["blessed"] is blessed, (case, decision["failed"])
    assert because in " ".join(decision["failed"] + decision["reasons"]), (case, decision)


def test_parity_reports_the_spread_of_origins_and_carriers_with_counts():
    frame, p = holdout()
    worse = p.copy()
    jfk = (frame["origin"] == "JFK").to_numpy()
    worse[jfk] = worse[jfk] * 0.3 + 0.15 * np.random.default_rng(2).random(jfk.sum())  # noisier and too low at JFK
    slices = slice_scores(frame, worse, POLICY)[0]
    par = parity(slices)
    assert set(par) == {"origin", "carrier"}
    origin = par["origin"]
    assert {g["value"]: g["rows"] for g in origin["groups"]} == frame["origin"].value_counts().to_dict()
    aucs = {v: m["roc_auc"] for v, m in slices["origin"].items()}
    assert origin["auc_lowest"]["value"] == "JFK" == min(aucs, key=aucs.get)
    assert origin["auc_spread"] == pytest.approx(max(aucs.values()) - min(aucs.values()))
    gaps = {v: m["calibration_gap"] for v, m in slices["origin"].items()}
    assert origin["calibration_gap_spread"] == pytest.approx(max(gaps.values()) - min(gaps.values()))
    assert origin["largest_calibration_gap"]["value"] == "JFK" == max(gaps, key=lambda v: abs(gaps[v]))
    assert gaps["JFK"] < -0.05 < 0 < max(gaps.values())  # the largest gap by size is a negative one
    assert len(par["carrier"]["groups"]) == 4
