"""The rollout's pure decision function (components.serving.rollout.decide): fast, no server."""

from __future__ import annotations

import numpy as np
import pytest

from components.serving import rollout as R


def evidence(n_labelled=3000, champ_noise=0.5, chall_noise=0.3, errors=0, chall_ms=2.0, requests=200,
             collapse=False, seed=0) -> R.Evidence:
    """Flights whose true P(late) is sigmoid(x); each version sees x with noise (less noise: better)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(-1, 1.5, n_labelled)
    y = (rng.random(n_labelled) < 1 / (1 + np.exp(-x))).astype(float)
    champ = 1 / (1 + np.exp(-(x + rng.normal(0, champ_noise, n_labelled))))
    chall = (np.full(n_labelled, y.mean()) if collapse else
             1 / (1 + np.exp(-(x + rng.normal(0, chall_noise, n_labelled)))))
    return R.Evidence(rng.gamma(4, 0.5, requests), rng.gamma(4, 0.5, requests) * chall_ms / 2.0, errors,
                      champ, chall, y, champ, chall)


def test_sample_size_rule_matches_the_normal_approximation():
    p = R.RolloutPolicy()
    # (1.95996 + 0.84162)^2 * sd^2 / 0.02^2: sd 0.2 -> 785 (above the floor), sd 0.05 -> the floor
    assert R.required_n(0.2, p) == 785
    assert R.required_n(0.05, p) == 500


def test_a_better_challenger_advances_with_its_interval():
    d = R.decide(evidence(), days_at_step=1)
    assert d.action == R.ADVANCE, d.reason
    out = next(c for c in d.checks if c.name == "outcomes").numbers
    assert out["log_loss"]["diff"] < 0 and out["log_loss"]["ci"][1] < 0.02
    assert out["n"] >= out["required_n"]


def test_too_few_labels_hold_then_time_out():
    ev = evidence(n_labelled=300)
    assert R.decide(ev, days_at_step=1).action == R.HOLD
    late = R.decide(ev, days_at_step=7)
    assert late.action == R.ROLLBACK and "7 days" in late.reason


def test_a_worse_challenger_rolls_back_on_outcomes():
    d = R.decide(evidence(champ_noise=0.3, chall_noise=1.5, n_labelled=600), days_at_step=1)
    assert d.action == R.ROLLBACK and "outcomes" in d.reason


def test_a_collapsed_challenger_rolls_back_on_behaviour_before_labels():
    ev = evidence(collapse=True)
    ev.labels = ev.labels[:0]
    ev.labelled_champion, ev.labelled_challenger = ev.labelled_champion[:0], ev.labelled_challenger[:0]
    d = R.decide(ev, days_at_step=1)
    assert d.action == R.ROLLBACK and "spread collapsed" in d.reason


@pytest.mark.parametrize("kw, words", [({"errors": 1}, "failed"), ({"chall_ms": 40.0}, "p99")])
def test_health_guardrail_rolls_back(kw, words):
    d = R.decide(evidence(**kw), days_at_step=1)
    assert d.action == R.ROLLBACK and words in d.reason


@pytest.mark.parametrize("stray, action", [(2, R.ADVANCE), (8, R.ROLLBACK)])
def test_a_few_stray_slow_requests_are_not_a_slow_model(stray, action):
    """CI saw a good challenger rolled back: 1 scheduler pause in its 100 requests was their p99. As many
    requests as chance allows above the bound (2 of 100) pass and say so; 8 of 100 are a slower model."""
    ev = evidence(requests=100)
    ev.challenger_ms[:stray] = 60.0  # far above champion p99 x 1.5 + 5 ms (~15 ms)
    d = R.decide(ev, days_at_step=1)
    health = next(c for c in d.checks if c.name == "health")
    assert health.numbers["challenger_p99_ms"] > health.numbers["bound_ms"]
    assert health.numbers["requests_above_bound"] == stray
    assert d.action == action, d.reason
    assert ("not more than 1 %" in health.reason) == (action == R.ADVANCE), health.reason


def test_latency_is_judged_only_on_enough_requests():
    # a slow challenger on 50 requests (a few days of batch scoring): not judged, and not blocking either
    d = R.decide(evidence(chall_ms=40.0, requests=50), days_at_step=1)
    health = next(c for c in d.checks if c.name == "health")
    assert d.action == R.ADVANCE and "latency not judged (50 of 100 requests timed)" in health.reason


def test_the_decision_is_deterministic():
    assert R.decide(evidence(), 1).to_json() == R.decide(evidence(), 1).to_json()


def test_status_flags_a_champion_mismatch_only_outside_an_active_rollout():
    """During a rollout the registry's champion (the challenger register promoted) does not serve all traffic
    yet: `flightdeck status` says so as the rollout, not as a mismatch to fix; a rolled-back one it flags."""
    from datetime import UTC, datetime

    from components.ops.oncall import attention

    base = {"registry": {"champion": 5}, "serving": {"state": {"serving": 4}}, "runs": {},
            "monitoring": None, "freshness": {"materialized_until": "x"}}
    mismatch = "Triton serves v4 but the champion is v5"
    now = datetime.now(UTC)
    assert any(mismatch in line for line in attention(base, now))
    rolling = {**base, "rollout": {"status": "active", "challenger": 5}}
    assert not any(mismatch in line for line in attention(rolling, now))
    back = {**base, "rollout": {"status": "rolled_back", "challenger": 5}}
    assert any("was rolled back" in line for line in attention(back, now))
