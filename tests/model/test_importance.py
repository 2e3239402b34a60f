"""Permutation importance (components.model.importance): a pure-noise feature costs AUC nothing and is flagged,
a strong one is not; a real feature view of the real model costs AUC on the real holdout; evaluate reports it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from components.contracts import layout
from components.contracts.signature import CATEGORICAL, LABEL, NUMERIC
from components.model.importance import FLIGHT_ROW, permutation_importance, view_groups


def _noisy_problem(rows: int = 6000, seed: int = 3):
    """A label driven by `strong` (plus a weaker `medium`), and `noise` drawn independently of everything."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"strong": rng.normal(size=rows), "medium": rng.normal(size=rows),
                          "noise": rng.normal(size=rows)})
    logit = 1.5 * frame["strong"] + 0.4 * frame["medium"] - 1.0
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(float)
    half = rows // 2
    model = LogisticRegression().fit(frame.iloc[:half], y[:half])
    assert model.coef_[0][2] != 0  # the noise column is in the model: it gets a (small) weight

    def predict(f: pd.DataFrame) -> np.ndarray:
        return model.predict_proba(f[["strong", "medium", "noise"]])[:, 1]

    return predict, frame.iloc[half:].reset_index(drop=True), y[half:]


def test_a_pure_noise_feature_is_flagged_and_a_strong_one_is_not():
    predict, holdout, y = _noisy_problem()
    imp = permutation_importance(predict, holdout, y, groups={"signal": ["strong", "medium"], "junk": ["noise"]},
                                 repeats=5, resamples=300, seed=7)
    strong, noise = imp["features"]["strong"], imp["features"]["noise"]
    assert imp["baseline_roc_auc"] == pytest.approx(roc_auc_score(y, predict(holdout)))
    assert strong["drop"] > 0.1 and strong["lower"] > 0.05 and not strong["costs_nothing"]
    assert noise["costs_nothing"] and noise["lower"] <= 0 <= noise["upper"] and abs(noise["drop"]) < 0.005
    assert imp["costs_nothing"] == {"features": ["noise"], "groups": ["junk"]}
    assert not imp["groups"]["signal"]["costs_nothing"] and imp["groups"]["signal"]["drop"] > strong["drop"]
    for name, e in {**imp["features"], **imp["groups"]}.items():  # the repeats' spread is reported with them
        assert len(e["drops"]) == 5 and e["min"] <= e["drop"] <= e["max"], name
        assert e["std"] == pytest.approx(np.std(e["drops"], ddof=1)), name
    # each repeat's drop is the sklearn AUC lost by shuffling the column with that repeat's permutation
    perm = np.random.default_rng([7, 0]).permutation(len(holdout))
    shuffled = holdout.assign(strong=holdout["strong"].to_numpy()[perm])
    assert strong["drops"][0] == pytest.approx(roc_auc_score(y, predict(holdout)) - roc_auc_score(y, predict(shuffled)))
    # same seed, same numbers
    again = permutation_importance(predict, holdout, y, groups={"signal": ["strong", "medium"], "junk": ["noise"]},
                                   repeats=5, resamples=300, seed=7)
    assert {k: v for k, v in again.items() if k != "seconds"} == {k: v for k, v in imp.items() if k != "seconds"}


def test_bad_input_is_refused_with_a_clear_error():
    predict, holdout, y = _noisy_problem(rows=400)
    with pytest.raises(ValueError, match="no column nope"):
        permutation_importance(predict, holdout, y, features=["strong", "nope"])
    with pytest.raises(ValueError, match="both classes"):
        permutation_importance(predict, holdout, np.zeros(len(holdout)), features=["strong"])
    with pytest.raises(ValueError, match="200 labels for 200 rows|labels for"):
        permutation_importance(predict, holdout, y[:-1], features=["strong"])
    with pytest.raises(ValueError, match="repeats >= 1"):
        permutation_importance(predict, holdout, y, features=["strong"], repeats=0)
    with pytest.raises(ValueError, match="one finite score per row"):
        permutation_importance(lambda f: np.full(len(f), np.nan), holdout, y, features=["strong"])


def test_view_groups_come_from_the_lineage_and_the_rest_is_the_flight_row():
    lineage = {"feature_service": {"views": {"weather_hourly": {"features": ["temp", "precip"]},
                                             "plane_attributes": {"features": ["plane_year", "not_an_input"]}}}}
    groups = view_groups(lineage, NUMERIC + CATEGORICAL)
    assert groups["weather_hourly"] == ["temp", "precip"] and groups["plane_attributes"] == ["plane_year"]
    assert set(groups[FLIGHT_ROW]) == set(NUMERIC + CATEGORICAL) - {"temp", "precip", "plane_year"}
    assert view_groups({}, ["carrier"]) == {FLIGHT_ROW: ["carrier"]}


def test_evaluate_reports_what_each_real_view_costs(evaluated):
    """On the real two-week run: every input and every view has its drop and interval; the origin's day so far,
    the view that matters most on this fortnight (measured: drop 0.015, interval [0.006, 0.022]; route daily
    stats 0.011 [0.002, 0.020]; weather 0.012 [0.005, 0.020]), costs AUC in every shuffle, with an interval
    that excludes 0; the route daily stats' interval excludes 0 too."""
    from components.model.network import load_scripted, predict

    store, result = evaluated["store"], evaluated["evaluation"]
    prefix = layout.eval_run_prefix(result["eval_id"])
    report = json.loads(store.read_published(prefix, "evaluation.json"))
    imp = report["importance"]
    assert imp["measured"] and imp["repeats"] == 3 and imp["resamples"] == 200
    assert set(imp["features"]) == set(NUMERIC + CATEGORICAL)
    lineage = json.loads(store.read_published(layout.train_run_prefix(result["run_id"]), "lineage.json"))
    # every view of the service that serves a model input is a group (a view whose features the model does not
    # read, such as a day-so-far view not in the signature, has nothing to shuffle)
    serving = {name for name, view in lineage["feature_service"]["views"].items()
               if set(view["features"]) & set(NUMERIC + CATEGORICAL)}
    assert {"route_daily_stats", "weather_hourly"} <= serving
    assert set(imp["groups"]) == serving | {FLIGHT_ROW}
    top = imp["groups"]["origin_day_so_far"]
    assert top["drop"] > 0.005 and top["min"] > 0 and top["lower"] > 0 and not top["costs_nothing"], top
    assert top["drop"] == max(e["drop"] for name, e in imp["groups"].items() if name != FLIGHT_ROW)
    route = imp["groups"]["route_daily_stats"]
    assert route["drop"] > 0.005 and route["lower"] > 0 and not route["costs_nothing"], route
    assert imp["baseline_roc_auc"] == pytest.approx(report["model"]["overall"]["roc_auc"])
    # the reported drop is real: shuffle the view's columns with repeat 0's permutation and score the real model
    run = store.published(layout.train_run_prefix(result["run_id"]))
    module = load_scripted(store.read_bytes(store.published_key(layout.train_run_prefix(result["run_id"]), "model.pt",
                                                                run)), run["meta"]["model_sha256"], "run")
    from components.model import evaluate as ev

    run_params = json.loads(store.read_published(layout.train_run_prefix(result["run_id"]), "params.json"))
    _, _, holdout, _ = ev._periods(store, run_params)
    perm = np.random.default_rng([int(run_params["seed"]), 0]).permutation(len(holdout))
    shuffled = holdout.copy()
    for c in route["features"]:
        shuffled[c] = holdout[c].to_numpy()[perm]
    y = holdout[LABEL].to_numpy()
    assert route["drops"][0] == pytest.approx(roc_auc_score(y, predict(module, holdout))
                                                - roc_auc_score(y, predict(module, shuffled)), abs=1e-6)
    md = store.read_published(prefix, "report.md").decode()
    assert "## Feature importance (permutation, holdout)" in md
    assert f"| route_daily_stats ({', '.join(route['features'])}) | {route['drop']:+.4f} |" in md
