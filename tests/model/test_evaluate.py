"""evaluate: the blessing logic on constructed cases, and a real evaluation of the session's run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from components.contracts import layout
from components.contracts.results import EvaluateResult
from components.model.evaluate import Policy, decide, expected_calibration_error, scores
from components.model.network import ModelIntegrityError

pytestmark = pytest.mark.slow  # scheduled first (tests/conftest.py): the suite's long poles

GOOD_CHECKS = [{"name": "invariance", "passed": True}]
BASELINES = {"carrier_rate": {"roc_auc": 0.62}, "logistic_regression": {"roc_auc": 0.68}, "lightgbm": {"roc_auc": 0.71}}


def model(auc: float, ece: float = 0.02) -> dict:
    return {"roc_auc": auc, "ece": ece}


@pytest.mark.parametrize("case, challenger, champion, checks, blessed, because", [
    ("better than champion", model(0.72), model(0.70), GOOD_CHECKS, True, "within"),
    ("first model, no champion", model(0.70), None, GOOD_CHECKS, True, "no champion"),
    ("tie with champion", model(0.70), model(0.70), GOOD_CHECKS, True, "within"),
    ("worse than champion, inside tolerance", model(0.697), model(0.70), GOOD_CHECKS, True, "within"),
    ("worse than champion, beyond tolerance", model(0.69), model(0.70), GOOD_CHECKS, False, "worse than the champion"),
    ("tie with a baseline is not beating it", model(0.68), None, GOOD_CHECKS, False, "does not beat logistic_regression"),
    ("below the carrier heuristic", model(0.60), None, GOOD_CHECKS, False, "does not beat carrier_rate"),
    ("badly calibrated", model(0.72, ece=0.09), None, GOOD_CHECKS, False, "calibration error"),
    ("failed behavioural check", model(0.72), None, [{"name": "directional", "passed": False}], False,
     "behavioural check failed: directional"),
])
def test_blessing_decision(case, challenger, champion, checks, blessed, because):
    decision = decide(challenger, BASELINES, champion, checks, Policy(baseline_margin=0.0, champion_tolerance=0.005))
    assert decision["blessed"] is blessed, case
    text = " ".join(decision["failed"] if not blessed else decision["reasons"])
    assert because in text


def test_baseline_margin_is_configurable():
    policy = Policy(baseline_margin=0.01)
    assert not decide(model(0.685), BASELINES, None, GOOD_CHECKS, policy)["blessed"]
    assert decide(model(0.695), BASELINES, None, GOOD_CHECKS, policy)["blessed"]


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
    assert set(slices) == {"carrier", "origin", "month"}
    assert set(slices["origin"]) == {"EWR", "JFK", "LGA"}
    assert sum(m["rows"] for m in slices["origin"].values()) == report["holdout"]["rows"]
    kinds = {c["kind"]: c for c in report["checks"]}
    assert set(kinds) == {"invariance", "directional"}
    assert all(c["passed"] for c in report["checks"] if c["kind"] == "invariance")
    assert report["champion"] is None  # nothing registered in this model yet
    assert report["decision"]["blessed"] == result["blessed"]
    md = store.read_published(layout.eval_run_prefix(result["eval_id"]), "report.md").decode()
    assert ("BLESSED" in md) and "| logistic_regression |" in md and "## Slices" in md


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


def test_lightgbm_never_gates_the_blessing():
    """The decision is the same with the LightGBM reference fitted, skipped, or missing."""
    from components.model.evaluate import skipped_scores

    for challenger in (model(0.70), model(0.60), model(0.72, ece=0.09)):
        with_lgb = decide(challenger, BASELINES, None, GOOD_CHECKS, Policy())
        skipped = {**BASELINES, "lightgbm": skipped_scores("not installed")}
        assert decide(challenger, skipped, None, GOOD_CHECKS, Policy()) == with_lgb
        assert decide(challenger, {k: v for k, v in BASELINES.items() if k != "lightgbm"}, None, GOOD_CHECKS,
                      Policy()) == with_lgb


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
    assert report["decision"] == full["decision"]
    assert report["model"]["overall"] == full["model"]["overall"]
    md = LocalStore(home / "artifacts").read_published(layout.eval_run_prefix(stage["eval_id"]), "report.md").decode()
    assert "Baseline lightgbm skipped: lightgbm is not importable" in md
