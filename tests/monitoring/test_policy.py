"""The retraining rule on constructed evidence: streaks, AUC drop, cooldown, cap, other models."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from components.monitoring.policy import DayEvidence, decide, load_policy

D = date(2013, 7, 20)
POLICY = load_policy(env={})


def days_of(shares, version=1, end=D, auc=None, rows=0):
    """Evidence for consecutive days ending at `end`; None in shares = day not monitored."""
    out = []
    for i, share in enumerate(reversed(shares)):
        if share is not None:
            out.append(DayEvidence(end - timedelta(days=i), version, share, auc if i == 0 else None, rows))
    return out


def test_k_consecutive_drifted_days_trigger():
    assert decide(POLICY, D, days_of([0.3, 0.3]), 1, 0.7, []).retrain is False
    decision = decide(POLICY, D, days_of([0.3, 0.3, 0.3]), 1, 0.7, [])
    assert decision.retrain and decision.trigger == "drift"
    assert decision.inputs["drift_streak_days"] == 3


def test_a_missing_or_quiet_day_breaks_the_streak():
    assert decide(POLICY, D, days_of([0.3, None, 0.3, 0.3]), 1, 0.7, []).retrain is False
    assert decide(POLICY, D, days_of([0.3, 0.1, 0.3, 0.3]), 1, 0.7, []).retrain is False


def test_evidence_of_another_model_version_does_not_count():
    history = days_of([0.3, 0.3], version=1, end=D - timedelta(days=1)) + days_of([0.3], version=2)
    assert decide(POLICY, D, history, 2, 0.7, []).retrain is False


def test_auc_drop_triggers_only_with_enough_labels():
    drop = decide(POLICY, D, days_of([0.0], auc=0.58, rows=5000), 1, 0.70, [])
    assert drop.retrain and drop.trigger == "performance"
    few = decide(POLICY, D, days_of([0.0], auc=0.58, rows=200), 1, 0.70, [])
    assert few.retrain is False and any("not used" in r for r in few.reasons)
    small = decide(POLICY, D, days_of([0.0], auc=0.65, rows=5000), 1, 0.70, [])
    assert small.retrain is False


def test_cooldown_after_a_retrain_or_a_new_model():
    drifted = days_of([0.3, 0.3, 0.3])
    held = decide(POLICY, D, drifted, 1, 0.7, [D - timedelta(days=3)])
    assert held.retrain is False and held.trigger == "drift" and held.blocked_by == "cooldown"
    fresh_model = decide(POLICY, D, drifted, 1, 0.7, [], model_since=D - timedelta(days=2))
    assert fresh_model.blocked_by == "cooldown"
    later = decide(POLICY, D, drifted, 1, 0.7, [D - timedelta(days=POLICY.cooldown_days)])
    assert later.retrain is True


def test_at_most_n_retrains_per_window():
    drifted = days_of([0.3, 0.3, 0.3])
    recent = [D - timedelta(days=8), D - timedelta(days=20)]  # both outside the cooldown, inside 30 days
    capped = decide(POLICY, D, drifted, 1, 0.7, recent)
    assert capped.retrain is False and capped.blocked_by == "cap"
    old = [D - timedelta(days=8), D - timedelta(days=40)]
    assert decide(POLICY, D, drifted, 1, 0.7, old).retrain is True


def test_overrides_from_the_environment_and_bad_values():
    policy = load_policy(env={"FLIGHTDECK_RETRAIN_CONSECUTIVE_DAYS": "1", "FLIGHTDECK_RETRAIN_AUC_DROP": "0.02"})
    assert policy.consecutive_days == 1 and policy.auc_drop == 0.02
    assert decide(policy, D, days_of([0.3]), 1, 0.7, []).retrain is True
    with pytest.raises(ValueError, match="CONSECUTIVE_DAYS"):
        load_policy(env={"FLIGHTDECK_RETRAIN_CONSECUTIVE_DAYS": "three"})
    with pytest.raises(ValueError, match="drift_share_threshold"):
        load_policy(env={"FLIGHTDECK_RETRAIN_DRIFT_SHARE_THRESHOLD": "1.5"})


def test_one_drifted_day_starts_one_training_run():
    """The rule both orchestrators use (Airflow's drift event, KFP's `retrain` output)."""
    from components.monitoring.policy import starts_training

    assert starts_training({"retrain": True, "requested": True, "already_requested": None}) is True
    assert starts_training({"retrain": True, "requested": True,
                            "already_requested": "2013-07-14T06:00:00+00:00"}) is False
    assert starts_training({"retrain": False}) is False and starts_training({}) is False
    # As shipped (the action "warn") a retrain is recommended, not requested: no training run.
    assert starts_training({"retrain": True, "requested": False, "already_requested": None}) is False


def test_the_shipped_action_warns_and_train_requests():
    from components.monitoring.policy import Decision, apply_action

    assert load_policy(env={}).action == "warn"
    warned = Decision(retrain=True, trigger="drift", reasons=["drift share >= 0.20 on 3 consecutive days"])
    apply_action(warned, load_policy(env={}))
    assert warned.requested is False and warned.retrain is True
    assert "retrain recommended, not started: the retraining action is warn" in warned.reasons[-1]
    trained = Decision(retrain=True, trigger="drift")
    apply_action(trained, load_policy(env={"FLIGHTDECK_RETRAIN_ACTION": "train"}))
    assert trained.requested is True and trained.reasons == []
    quiet = Decision(retrain=False, trigger=None)
    apply_action(quiet, load_policy(env={"FLIGHTDECK_RETRAIN_ACTION": "train"}))
    assert quiet.requested is False and quiet.reasons == []
    with pytest.raises(ValueError, match="retraining action 'retrian' .FLIGHTDECK_RETRAIN_ACTION. is not warn or train"):
        load_policy(env={"FLIGHTDECK_RETRAIN_ACTION": "retrian"})
