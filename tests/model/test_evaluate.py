"""evaluate: the blessing logic on constructed cases, and a real evaluation of the session's run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from components.contracts import layout
from components.contracts.results import EvaluateResult
from components.model.evaluate import expected_calibration_error, scores
from components.model.gate import Policy, decide
from components.model.network import ModelIntegrityError

pytestmark = pytest.mark.slow  # scheduled first (tests/conftest.py): the suite's long poles

GOOD_CHECKS = [{"name": "invariance", "passed": True}]


def model(auc: float = 0.70, ece: float = 0.02) -> dict:
    return {"roc_auc": auc, "ece": ece}


def ci(lower: float, upper: float | None = None) -> dict:
    """A comparison as comparisons() reports it: an AUC difference and its interval."""
    upper = lower + 0.01 if upper is None else upper
    return {"difference": (lower + upper) / 2, "lower": lower, "upper": upper, "resamples": 1000}


CLEAR = {"carrier_rate": ci(0.05), "logistic_regression": ci(-0.002), "lightgbm": ci(-0.004)}
CHAMPION = {"version": 3, "roc_auc": 0.70}


def sl(auc: float, lower: float, upper: float, rows: int = 1000) -> dict:
    """A slice as slice_intervals() reports it (what the floor reads)."""
    return {"rows": rows, "roc_auc": auc, "lower": lower, "upper": upper}


GOOD_SLICES = {"origin": {"EWR": sl(0.71, 0.69, 0.73), "LGA": sl(0.63, 0.60, 0.65)},
               "carrier": {"MQ": sl(0.58, 0.525, 0.64, rows=887)}}


@pytest.mark.parametrize("case, compared, champion, ece, checks, blessed, because", [
    ("first model, every interval clear", CLEAR, None, 0.02, GOOD_CHECKS, True, "there is no champion yet"),
    ("not worse than the champion", {**CLEAR, "champion": ci(-0.004)}, CHAMPION, 0.02, GOOD_CHECKS, True,
     "not worse than the champion (version 3) by more than 0.005"),
    ("may be worse than the champion", {**CLEAR, "champion": ci(-0.006)}, CHAMPION, 0.02, GOOD_CHECKS, False,
     "may be worse than the champion (version 3) by more than 0.005"),
    ("the interval over the heuristic includes 0", {**CLEAR, "carrier_rate": ci(-0.001)}, None, 0.02, GOOD_CHECKS,
     False, "not significantly better than carrier_rate"),
    ("may be worse than logistic regression", {**CLEAR, "logistic_regression": ci(-0.0051)}, None, 0.02,
     GOOD_CHECKS, False, "may be worse than logistic_regression by more than 0.005"),
    ("may be worse than LightGBM", {**CLEAR, "lightgbm": ci(-0.02)}, None, 0.02, GOOD_CHECKS, False,
     "may be worse than lightgbm"),
    ("LightGBM not fitted here", {k: v for k, v in CLEAR.items() if k != "lightgbm"}, None, 0.02, GOOD_CHECKS,
     True, "no comparison with lightgbm"),
    ("no logistic regression is no blessing", {"carrier_rate": ci(0.05)}, None, 0.02, GOOD_CHECKS, False,
     "no comparison with logistic_regression"),
    ("badly calibrated", CLEAR, None, 0.09, GOOD_CHECKS, False, "calibration error 0.09 exceeds 0.05"),
    ("failed behavioural check", CLEAR, None, 0.02, [{"name": "directional", "passed": False}], False,
     "behavioural check failed: directional"),
])
def test_blessing_decision(case, compared, champion, ece, checks, blessed, because):
    decision = decide(model(ece=ece), compared, champion, checks, Policy(), slices=GOOD_SLICES)
    assert decision["blessed"] is blessed, (case, decision)
    text = " ".join(decision["failed"] if not blessed else decision["reasons"])
    assert because in text, (case, text)
    assert decision["comparisons"] == compared and decision["policy"]["non_inferiority_margin"] == 0.005


def test_the_margin_is_the_policy_s():
    compared = {**CLEAR, "logistic_regression": ci(-0.008)}
    assert not decide(model(), compared, None, GOOD_CHECKS, Policy(), slices=GOOD_SLICES)["blessed"]
    assert decide(model(), compared, None, GOOD_CHECKS, Policy(non_inferiority_margin=0.01), slices=GOOD_SLICES)["blessed"]


def test_weighted_auc_of_a_resample_equals_sklearn_s():
    """The gate's resampled AUC (ranked once, multinomial weights, ties half) is sklearn's weighted AUC."""
    from sklearn.metrics import roc_auc_score

    from components.model.gate import _RankedScores

    rng = np.random.default_rng(3)
    y = (rng.random(3000) < 0.3).astype(float)
    p = np.round(rng.random(3000) * 0.5 + y * 0.2, 2)  # rounded: many ties
    weights = np.stack([np.bincount(rng.integers(0, 3000, 3000), minlength=3000) for _ in range(4)]).astype(float)
    ours = _RankedScores(p).auc(weights, y)
    for w, value in zip(weights, ours, strict=True):
        assert value == pytest.approx(roc_auc_score(y, p, sample_weight=w), abs=1e-12)


def test_paired_intervals_separate_a_better_model_from_a_copy():
    """Paired: a model compared with itself has a zero-width interval at 0; a clearly better one an interval
    above 0 that holds its observed difference; a slightly worse one an interval around its difference."""
    from components.model.gate import comparisons

    rng = np.random.default_rng(5)
    y = (rng.random(20000) < 0.25).astype(float)
    signal = y + rng.normal(0, 1.2, len(y))
    good, weak = signal + rng.normal(0, 0.3, len(y)), signal + rng.normal(0, 2.0, len(y))
    out = comparisons(y, good, {"copy": good.copy(), "weak": weak, "noisier": signal + rng.normal(0, 0.4, len(y))},
                      Policy(resamples=300))
    assert out["copy"]["lower"] == out["copy"]["upper"] == out["copy"]["difference"] == 0.0
    assert 0 < out["weak"]["lower"] < out["weak"]["difference"] < out["weak"]["upper"]
    assert out["noisier"]["lower"] < out["noisier"]["difference"] < out["noisier"]["upper"]
    assert out["noisier"]["upper"] - out["noisier"]["lower"] < 0.01  # paired: far narrower than two AUCs' noise


def test_calibration_error_and_scores_on_known_values():
    y = np.array([0, 0, 1, 1, 0, 1, 0, 0, 1, 1], dtype=float)
    assert expected_calibration_error(y, y) == 0.0  # perfect predictions
    p = np.full(10, 0.5)
    assert expected_calibration_error(y, p) == pytest.approx(0.0)  # 50% observed in the one bin
    assert expected_calibration_error(y, np.full(10, 0.9)) == pytest.approx(0.4)
    s = scores(y, np.array([0.1, 0.2, 0.8, 0.7, 0.3, 0.9, 0.4, 0.2, 0.6, 0.95]))
    assert s["roc_auc"] == 1.0 and s["pr_auc"] == 1.0 and 0 < s["log_loss"] < 0.5


def test_evaluation_of_a_real_run(evaluated):
    store, result = evaluated["store"], evaluated["evaluation"]
    assert set(result) == set(EvaluateResult.__annotations__)  # the declared result, no more, no less
    report = json.loads(store.read_published(layout.eval_run_prefix(result["eval_id"]), "evaluation.json"))
    overall = report["model"]["overall"]
    for key in ("roc_auc", "pr_auc", "log_loss", "brier", "ece"):
        assert overall[key] is not None and np.isfinite(overall[key]), key
    assert overall["roc_auc"] > 0.55 and overall["ece"] < 0.2
    assert set(report["baselines"]) == {"carrier_rate", "logistic_regression", "lightgbm"}
    for name, metrics in report["baselines"].items():
        assert 0.5 < metrics["roc_auc"] < 0.9, name
    slices = report["model"]["slices"]
    assert set(slices) == {"carrier", "origin", "hour_band", "month"}
    assert set(slices["origin"]) == {"EWR", "JFK", "LGA"}
    assert sum(m["rows"] for m in slices["origin"].values()) == report["holdout"]["rows"]
    for col, values in slices.items():
        for value, m in values.items():  # every reported slice has its interval, from the gate's resamples
            assert m["rows"] >= 200 and m["lower"] <= m["roc_auc"] <= m["upper"] and m["resamples"] > 900, (col, value)
    floor = [r for r in report["decision"]["reasons"] + report["decision"]["failed"] if "slice floor" in r]
    assert len(floor) == 1, report["decision"]  # the slice floor was judged, one way or the other
    parity = report["model"]["parity"]
    assert {g["value"] for g in parity["origin"]["groups"]} == {"EWR", "JFK", "LGA"}
    assert parity["origin"]["auc_spread"] == pytest.approx(
        max(m["roc_auc"] for m in slices["origin"].values()) - min(m["roc_auc"] for m in slices["origin"].values()))
    kinds = {c["kind"]: c for c in report["checks"]}
    assert set(kinds) == {"invariance", "directional"}
    assert all(c["passed"] for c in report["checks"] if c["kind"] == "invariance")
    assert report["champion"] is None  # nothing registered in this model yet
    assert report["decision"]["blessed"] == result["blessed"]
    md = store.read_published(layout.eval_run_prefix(result["eval_id"]), "report.md").decode()
    assert ("BLESSED" in md) and "| logistic_regression |" in md and "## Slices" in md
    lga = slices["origin"]["LGA"]
    assert f"| origin | LGA | {lga['rows']} |" in md and f"[{lga['lower']:.4f}, {lga['upper']:.4f}]" in md
    assert "## Parity across origins and carriers (reported, not gating)" in md
    assert set(report["decision"]["comparisons"]) == {"carrier_rate", "logistic_regression", "lightgbm"}
    for name, c in report["decision"]["comparisons"].items():
        assert c["lower"] <= c["difference"] <= c["upper"] and c["resamples"] == 1000, name
        assert f"| {name} | {c['difference']:+.4f} | {c['lower']:+.4f} |" in md


def test_evaluate_refuses_a_tampered_training_run(trained, tmp_path):
    from components.contracts.stages import EvaluateParams
    from components.core.store import LocalStore
    from components.model.evaluate import evaluate

    source, run_id = trained["store"], trained["result"]["run_id"]
    store = LocalStore(tmp_path / "artifacts")  # a copy of the run, so the session's stays intact
    for key in source.list(layout.train_run_prefix(run_id) + "/"):
        store.write_bytes(key, source.read_bytes(key))
    model_key = store.published_key(layout.train_run_prefix(run_id), "model.pt")
    data = bytearray(store.read_bytes(model_key))
    data[-100] ^= 0xFF
    store.write_bytes(model_key, bytes(data))
    with pytest.raises(ModelIntegrityError, match="sha256"):
        evaluate(EvaluateParams(run_id=run_id, model_name="tampered"), store)


def test_evaluate_runs_with_only_the_stage_image_packages(trained, evaluated, tmp_path):
    """containers/images.yaml runs evaluate in the `stage` image, whose lock has no LightGBM: the stage's
    import closure and a real run, in a process where only stage.lock's packages can be imported."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    repo = Path(__file__).resolve().parents[2]
    images = yaml.safe_load((repo / "containers" / "images.yaml").read_text())
    image = images["stages"]["evaluate"]
    lock = repo / images["images"][image]["lock"]
    assert "lightgbm==" not in lock.read_text()  # the premise: the image really lacks it
    import lightgbm  # noqa: F401  -- and this environment has it, so only the lock can refuse it

    home = tmp_path / "home"
    shutil.copytree(trained["home"] / "artifacts", home / "artifacts",
                    ignore=shutil.ignore_patterns("models"))  # no registry: no champion, as in `evaluated`
    run_id = trained["result"]["run_id"]
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "FLIGHTDECK_HOME": str(home),
           "FLIGHTDECK_PROFILE": "local"}
    out = subprocess.run(
        [sys.executable, "-m", "tests.infra.lock_closure", str(lock), "--entry", "components/model/evaluate.py",
         "--optional", "lightgbm", "--", "evaluate", "--run-id", run_id, "--model-name", "closure", "--threads", "1"],
        capture_output=True, text=True, timeout=600, cwd=repo, env=env,
    )
    assert out.stdout.strip(), out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert out.returncode == 0 and not result["errors"], (result["errors"], out.stderr[-3000:])
    assert "lightgbm" in result["refused"] and "lightgbm" in result["optional_refused"]
    assert {"sklearn.metrics", "torch", "components.model.registry"} <= set(result["modules"])
    stage = json.loads(result["stage"]["stdout"])
    assert stage["baselines_skipped"]["lightgbm"].startswith("lightgbm is not importable")
    assert set(stage["baselines_roc_auc"]) == {"carrier_rate", "logistic_regression"}

    from components.core.store import LocalStore

    report = json.loads(LocalStore(home / "artifacts").read_published(layout.eval_run_prefix(stage["eval_id"]), "evaluation.json"))
    lgb = report["baselines"]["lightgbm"]
    assert lgb["roc_auc"] is None and "dev/bench dependency" in lgb["skipped"]
    assert report["gap_to_lightgbm"] is None and report["gap_to_lightgbm_reason"] == lgb["skipped"]
    # The same run evaluated with LightGBM (the session's evaluation): the same decision, for the same reasons.
    full = json.loads(evaluated["store"].read_published(layout.eval_run_prefix(evaluated["evaluation"]["eval_id"]),
                                                         "evaluation.json"))
    assert full["baselines"]["lightgbm"]["roc_auc"] is not None
    # LightGBM gates only where it was fitted: without it, the same comparisons minus LightGBM's, the same
    # intervals (the same resamples), and the same verdict on everything else.
    assert set(full["decision"]["comparisons"]) - set(report["decision"]["comparisons"]) == {"lightgbm"}
    for name, c in report["decision"]["comparisons"].items():
        assert c == full["decision"]["comparisons"][name], name
    assert report["decision"]["failed"] == [f for f in full["decision"]["failed"] if "lightgbm" not in f]
    assert any("no comparison with lightgbm: lightgbm is not importable" in r for r in report["decision"]["reasons"])
    assert report["model"]["overall"] == full["model"]["overall"]
    md = LocalStore(home / "artifacts").read_published(layout.eval_run_prefix(stage["eval_id"]), "report.md").decode()
    assert "Baseline lightgbm skipped: lightgbm is not importable" in md
