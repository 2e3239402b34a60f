"""The value trigger's rule (components/monitoring/trigger.py), without a store: what fires, what holds it back."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from components.monitoring.trigger import (
    PooledPerformance,
    backed_off_cooldown,
    decide_trigger,
    guard_days,
    load_trigger,
    refused_candidates,
    unusual_day,
)

POLICY = load_trigger(env={})
TODAY = date(2013, 6, 20)
SINCE = date(2013, 5, 1)  # serving model trained on data up to here: 50 days old, out of its cooldown


def perf(auc=0.735, observed=0.25, predicted=0.25, rows=10_000):
    return PooledPerformance(days=14, rows=rows, auc=auc, observed_rate=observed, predicted_rate=predicted)


def decide(p=None, *, policy=POLICY, holdout=0.74, since=SINCE, retrains=(), unusual=None, drift=None, refused=0):
    return decide_trigger(policy, TODAY, p or perf(), holdout, since, list(retrains), unusual or {}, drift, refused)


def test_a_model_that_ranks_and_judges_risk_as_well_as_on_its_holdout_is_kept():
    d = decide(perf(auc=0.74 - POLICY.auc_drop / 2))
    assert not d.retrain and d.trigger is None and d.blocked_by is None
    assert any("pooled AUC" in r for r in d.reasons) and any("logit gap" in r for r in d.reasons)


def test_a_ranking_loss_of_auc_drop_fires_the_performance_trigger():
    d = decide(perf(auc=0.74 - POLICY.auc_drop - 1e-9))
    assert d.retrain and d.trigger == "performance"
    assert d.inputs["pooled"]["auc"] == pytest.approx(0.74 - POLICY.auc_drop) and d.inputs["holdout_auc"] == 0.74


def test_a_misjudged_level_of_risk_fires_the_calibration_trigger():
    # logit(0.32) - logit(0.25) = +0.345 > 0.25: a summer served by a winter model
    d = decide(perf(observed=0.32, predicted=0.25))
    assert d.retrain and d.trigger == "calibration"
    assert d.inputs["calibration_offset"] == pytest.approx(0.3448, abs=1e-3)
    assert not decide(perf(observed=0.27, predicted=0.25)).retrain  # +0.10: kept


def test_too_few_labels_judge_nothing():
    d = decide(perf(auc=0.5, observed=0.5, rows=POLICY.min_labelled_rows - 1))
    assert not d.retrain and d.trigger is None and "performance not judged" in d.reasons[0]


def test_drift_alone_never_retrains_it_only_shortens_the_window():
    d = decide(drift=0.9)
    assert not d.retrain and d.trigger is None and d.inputs["watching"]
    assert "watching" in d.reasons[0]


def test_cooldown_cap_and_the_holiday_storm_guard_hold_a_fired_trigger_back():
    bad = perf(auc=0.60)
    young = decide(bad, since=TODAY - timedelta(days=POLICY.cooldown_days - 1))
    assert not young.retrain and young.trigger == "performance" and young.blocked_by == "cooldown"
    capped = decide(bad, retrains=[TODAY - timedelta(days=20), TODAY - timedelta(days=25)], since=date(2013, 1, 1))
    assert capped.blocked_by == "cap" and not capped.retrain
    unusual = {TODAY - timedelta(days=i): "storm" for i in range(1, POLICY.guard_max_abnormal_days + 1)}
    guarded = decide(bad, unusual=unusual)
    assert guarded.blocked_by == "guard" and not guarded.retrain and "re-examined tomorrow" in guarded.reasons[-1]
    assert decide(bad, unusual=dict(list(unusual.items())[:-1])).retrain


def test_each_refused_candidate_backs_the_cooldown_off_until_a_promotion_resets_it():
    backoff = load_trigger(env={"FLIGHTDECK_TRIGGER_REFUSAL_BACKOFF": "2"})
    assert [backed_off_cooldown(backoff, n) for n in range(5)] == [14, 28, 56, 56, 56]
    bad = perf(auc=0.60)
    last = TODAY - timedelta(days=20)  # a candidate trained 20 days ago was refused
    once = decide(bad, retrains=[last], refused=1, policy=backoff)
    assert not once.retrain and once.blocked_by == "cooldown" and once.inputs["cooldown_days"] == 28
    assert "cooldown 28 days (backed off after 1 refused candidate(s)" in once.reasons[-1]
    assert decide(bad, retrains=[last], refused=0, policy=backoff).retrain  # after a promotion: fires
    assert decide(bad, retrains=[TODAY - timedelta(days=28)], refused=1, policy=backoff).retrain  # backed-off cooldown over
    # as shipped there is no back-off (docs/BACKTEST.md: it cost pooled AUC on the calibration months)
    assert POLICY.refusal_backoff == 1 and decide(bad, retrains=[last], refused=3).retrain
    with pytest.raises(ValueError, match="refusal_backoff must be >= 1"):
        load_trigger(env={}, refusal_backoff="0.5")
    with pytest.raises(ValueError, match="max_cooldown_days >= cooldown_days"):
        load_trigger(env={}, max_cooldown_days="7")


def test_refused_candidates_are_the_serving_version_s_refusals_trained_before_the_morning():
    def evaluation(run, champion, blessed, end):
        return {"run_id": run, "champion": champion, "blessed": blessed, "holdout_end": end}

    evaluations = [evaluation("a", 2, False, "2013-05-20"), evaluation("b", 2, False, "2013-06-10"),
                   evaluation("c", 2, True, "2013-06-12"),  # blessed (it would have replaced version 2)
                   evaluation("d", 1, False, "2013-05-25"),  # compared with another version
                   evaluation("e", 2, False, "2013-06-25"),  # trained on data after this morning (a backfill)
                   evaluation("f", 2, False, "2013-04-20")]  # trained before the serving model's window ended
    assert refused_candidates(evaluations, 2, date(2013, 4, 30), TODAY) == ["a", "b"]
    assert refused_candidates(evaluations, 3, date(2013, 6, 12), TODAY) == []
    assert refused_candidates(evaluations, None, None, TODAY) == []


def test_the_age_backstop_is_off_by_default_and_fires_when_set():
    old = date(2013, 1, 31)
    assert not decide(since=old).retrain
    aged = decide(since=old, policy=load_trigger(env={}, max_age_days=90))
    assert aged.retrain and aged.trigger == "age" and "140 days old" in aged.reasons[-1]


def test_holidays_and_storm_days_are_named():
    assert unusual_day(POLICY, date(2013, 11, 29), 0.0) == "holiday (2013-11-28)"  # the day after Thanksgiving
    assert unusual_day(POLICY, date(2013, 12, 24), None) == "holiday (2013-12-25)"
    assert unusual_day(POLICY, date(2013, 2, 8), 0.30).startswith("storm (30.0%")  # the Nemo blizzard
    assert unusual_day(POLICY, date(2013, 6, 12), POLICY.storm_unarrived_share / 2) is None
    assert guard_days(POLICY, TODAY) == [TODAY - timedelta(days=i) for i in range(POLICY.guard_days, 0, -1)]


def test_settings_come_from_the_environment_and_bad_ones_are_named():
    assert load_trigger(env={"FLIGHTDECK_TRIGGER_AUC_DROP": "0.05"}).auc_drop == 0.05
    with pytest.raises(ValueError, match="unknown trigger setting.*auc_dorp"):
        load_trigger(env={}, auc_dorp="0.1")
    with pytest.raises(ValueError, match="calibration_gap='x'.*FLIGHTDECK_TRIGGER_CALIBRATION_GAP"):
        load_trigger(env={"FLIGHTDECK_TRIGGER_CALIBRATION_GAP": "x"})
