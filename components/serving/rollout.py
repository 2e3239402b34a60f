"""The rollout policy of a new champion and its one decision function (pure: no I/O).

A challenger goes shadow -> canary 10% -> canary 50% -> full. At each step the guardrails look at the
step's own evidence (the flights scored by both versions while the step was active) and say:
  rollback  serving health broke, predictions behave implausibly, the challenger is significantly worse
            on the flights whose labels landed, or the step waited MAX_DAYS_AT_STEP days without a verdict;
  advance   health and behaviour are fine and, on at least `required_n` labelled flights, the
            challenger's log loss is not worse than the champion's by the margin (upper 95% bound of the
            paired per-flight difference below it) and its ROC AUC not significantly worse;
  hold      anything else (most often: not enough labelled flights yet).
The sample-size rule, the bounds and why: docs/ROLLOUT.md. The stage that gathers the evidence, keeps the
state and deploys what a decision implies: components.serving.rollout_stage.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from statistics import NormalDist

import numpy as np

from components.model.gate import Policy, _auc, comparisons

# (mode, share of flights the challenger serves): the steps, in order; the last is the promotion.
STEPS: tuple[tuple[str, float], ...] = (("shadow", 0.0), ("canary", 0.1), ("canary", 0.5), ("full", 1.0))
ADVANCE, HOLD, ROLLBACK = "advance", "hold", "rollback"


def step_name(index: int) -> str:
    mode, share = STEPS[index]
    return f"canary {share:.0%}" if mode == "canary" else mode


@dataclass(frozen=True)
class RolloutPolicy:
    # Outcomes: the smallest log-loss difference the rollout must detect (and the non-inferiority margin),
    # at two-sided alpha with the given power. 0.02 is about a tenth of the gap between the champion and a
    # base-rate guess on this task, the smallest worsening worth stopping a retrain for.
    effect: float = 0.02
    alpha: float = 0.05
    power: float = 0.8
    min_labelled: int = 500  # floor: the variance estimate itself is unreliable on fewer flights
    auc_margin: float = 0.01  # advance only if the AUC difference's lower bound is above -auc_margin
    bootstrap: int = 400  # paired bootstrap resamples of the AUC difference
    # Health: any failed challenger request rolls back (the champion served those flights instead);
    # latency: challenger p99 above champion p99 x factor + slack, judged on enough requests, and only when
    # significantly more than 1 % of its requests are above that bound (alpha above).
    p99_factor: float = 1.5
    p99_slack_ms: float = 5.0
    min_requests: int = 100
    # Behaviour, on the same flights: a spread (std) below this share of the champion's is a collapsed
    # model (e.g. trained on shuffled labels: it predicts the base rate); a mean moved by more than this
    # (probability points) is beyond what a month of real drift moves the late share in a week.
    min_spread_ratio: float = 0.25
    max_mean_shift: float = 0.10
    min_scored: int = 200  # flights scored by both before behaviour is judged
    max_days_at_step: int = 7


@dataclass
class Evidence:
    """What the step saw. Scores are per flight, paired (same flights); labels only where landed."""

    champion_ms: np.ndarray  # per-request latency of the champion's requests
    challenger_ms: np.ndarray
    challenger_errors: int
    champion_scores: np.ndarray
    challenger_scores: np.ndarray
    labels: np.ndarray  # 0/1, for the labelled flights
    labelled_champion: np.ndarray  # the two versions' scores on those flights
    labelled_challenger: np.ndarray


@dataclass
class Check:
    name: str  # health | behaviour | outcomes | time
    verdict: str  # pass | fail | wait
    reason: str
    numbers: dict = field(default_factory=dict)


@dataclass
class Decision:
    action: str  # advance | hold | rollback
    reason: str
    checks: list[Check]

    def to_json(self) -> dict:
        return {"action": self.action, "reason": self.reason, "checks": [asdict(c) for c in self.checks]}


# -- the statistics --------------------------------------------------------------------------------
def required_n(diff_sd: float, policy: RolloutPolicy) -> int:
    """Labelled flights needed to detect a mean paired log-loss difference of `effect`:
    n = ((z_{1-alpha/2} + z_{power}) * sd / effect)^2 (normal approximation), never below the floor."""
    z = NormalDist().inv_cdf(1 - policy.alpha / 2) + NormalDist().inv_cdf(policy.power)
    return max(policy.min_labelled, math.ceil((z * diff_sd / policy.effect) ** 2))


def log_losses(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def paired_outcomes(y, champion, challenger, policy: RolloutPolicy, seed: int = 0) -> dict:
    """Challenger minus champion on the same flights: log loss (mean, CI, sd), ROC AUC (bootstrap CI)."""
    z = NormalDist().inv_cdf(1 - policy.alpha / 2)
    d = log_losses(y, challenger) - log_losses(y, champion)
    n = len(d)
    sd = float(d.std(ddof=1)) if n > 1 else float("nan")
    half = z * sd / math.sqrt(n) if n > 1 else float("nan")
    out = {"n": n, "log_loss": {"champion": float(log_losses(y, champion).mean()) if n else None,
                                "challenger": float(log_losses(y, challenger).mean()) if n else None,
                                "diff": float(d.mean()) if n else None, "ci": [float(d.mean() - half), float(d.mean() + half)]
                                if n > 1 else None, "diff_sd": sd}}
    # The ROC AUCs and the paired bootstrap interval of their difference: the blessing gate's own
    # (components.model.gate), on the same flights for both versions, seeded so a rerun gives the same interval.
    y = np.asarray(y, dtype=np.float64)
    a_ch, a_cp = (_auc(y, p) if n else float("nan") for p in (champion, challenger))
    out["roc_auc"] = {"champion": a_ch, "challenger": a_cp, "diff": a_cp - a_ch, "ci": None}
    if n > 1 and not math.isnan(a_ch):
        gate = Policy(resamples=policy.bootstrap, confidence=1 - policy.alpha, seed=seed)
        compared = comparisons(y, np.asarray(challenger), {"champion": np.asarray(champion)}, gate)["champion"]
        out["roc_auc"]["ci"] = [compared["lower"], compared["upper"]]
    return out


# -- the guardrails ------------------------------------------------------------------------------------
def health_check(ev: Evidence, p: RolloutPolicy) -> Check:
    n = {"challenger_errors": int(ev.challenger_errors), "challenger_requests": len(ev.challenger_ms),
         "champion_requests": len(ev.champion_ms)}
    if ev.challenger_errors > 0:
        return Check("health", "fail", f"{ev.challenger_errors} challenger request(s) failed "
                     "(the champion served those flights)", n)
    if len(ev.challenger_ms) < p.min_requests or len(ev.champion_ms) < p.min_requests:
        # Batch scoring sends a day in a few large requests: a p99 of so few says nothing, and waiting for
        # 100 would stall every rollout fed by batch alone. Errors still count; latency is judged once online
        # traffic (or smaller batches) gives enough requests.
        return Check("health", "pass", f"no errors; latency not judged ({min(len(ev.challenger_ms), len(ev.champion_ms))}"
                     f" of {p.min_requests} requests timed)", n)
    p99c, p99n = float(np.quantile(ev.champion_ms, 0.99)), float(np.quantile(ev.challenger_ms, 0.99))
    bound = p99c * p.p99_factor + p.p99_slack_ms
    # A p99 of ~100 requests is their top one or two: one scheduler pause fails a good challenger. So the
    # question is asked of all its requests: a challenger no slower than the champion has at most 1 % of them
    # above the champion's p99 (fewer still above the bound); more than that, significant at alpha
    # (one-sided binomial tail), is a slower model, not a stray pause. scipy is imported here, as in
    # monitoring.drift: `flightdeck status` loads this module but never runs this check.
    from scipy.stats import binom

    above = int((ev.challenger_ms > bound).sum())
    p_value = float(binom.sf(above - 1, len(ev.challenger_ms), 0.01))  # P(X >= above)
    n.update(champion_p99_ms=round(p99c, 3), challenger_p99_ms=round(p99n, 3), bound_ms=round(bound, 3),
             requests_above_bound=above, p_value=round(p_value, 6))
    if p99n > bound and p_value < p.alpha:
        return Check("health", "fail", f"challenger p99 {p99n:.1f} ms > champion p99 {p99c:.1f} ms x "
                     f"{p.p99_factor:g} + {p.p99_slack_ms:g} ms ({above} of {len(ev.challenger_ms)} requests "
                     f"above it, p={p_value:.2g} against 1 %)", n)
    if p99n > bound:
        return Check("health", "pass", f"no errors; challenger p99 {p99n:.1f} ms above {bound:.1f} ms from {above} "
                     f"request(s) of {len(ev.challenger_ms)}, not more than 1 % at alpha {p.alpha:g} (p={p_value:.2g})", n)
    return Check("health", "pass", f"no errors; challenger p99 {p99n:.1f} ms within {bound:.1f} ms", n)


def behaviour_check(ev: Evidence, p: RolloutPolicy) -> Check:
    a, b = ev.champion_scores.astype(np.float64), ev.challenger_scores.astype(np.float64)
    if len(a) < p.min_scored:
        return Check("behaviour", "wait", f"{len(a)} of {p.min_scored} flights scored by both", {"n": len(a)})
    shift = float(b.mean() - a.mean())
    ratio = float(b.std() / a.std()) if a.std() > 0 else float("inf")
    n = {"n": len(a), "mean_champion": float(a.mean()), "mean_challenger": float(b.mean()), "mean_shift": shift,
         "spread_ratio": ratio}
    if ratio < p.min_spread_ratio:
        return Check("behaviour", "fail", f"challenger score spread collapsed to {ratio:.2f} of the champion's "
                     f"(< {p.min_spread_ratio:g})", n)
    if abs(shift) > p.max_mean_shift:
        return Check("behaviour", "fail", f"mean score moved by {shift:+.3f} (beyond +/-{p.max_mean_shift:g})", n)
    return Check("behaviour", "pass", f"mean shift {shift:+.3f}, spread ratio {ratio:.2f}", n)


def outcomes_check(ev: Evidence, p: RolloutPolicy) -> Check:
    y = ev.labels.astype(np.float64)
    if len(y) < 2 or len(np.unique(y)) < 2:
        return Check("outcomes", "wait", f"{len(y)} labelled flights, not both classes yet",
                     {"n": len(y), "required_n": p.min_labelled})
    stats = paired_outcomes(y, ev.labelled_champion, ev.labelled_challenger, p)
    ll, ra = stats["log_loss"], stats["roc_auc"]
    need = required_n(ll["diff_sd"], p)
    stats["required_n"] = need
    lo, hi = ll["ci"]
    auc_hi = ra["ci"][1] if ra["ci"] else float("inf")
    auc_lo = ra["ci"][0] if ra["ci"] else float("-inf")
    # Worse is decided as soon as the interval says so: waiting for the full sample would keep serving it.
    if lo > 0 or auc_hi < 0:
        what = (f"log loss worse by {ll['diff']:+.4f} (95% CI {lo:+.4f}..{hi:+.4f})" if lo > 0 else
                f"ROC AUC worse by {ra['diff']:+.4f} (95% CI {auc_lo:+.4f}..{auc_hi:+.4f})")
        return Check("outcomes", "fail", f"challenger significantly worse on {len(y)} labelled flights: {what}", stats)
    if len(y) < need:
        return Check("outcomes", "wait", f"{len(y)} of {need} labelled flights needed", stats)
    if hi < p.effect and auc_lo > -p.auc_margin:
        return Check("outcomes", "pass", f"log loss diff {ll['diff']:+.4f} (95% CI {lo:+.4f}..{hi:+.4f}) below the "
                     f"margin {p.effect:g}; ROC AUC diff {ra['diff']:+.4f} (95% CI {auc_lo:+.4f}..{auc_hi:+.4f})",
                     stats)
    return Check("outcomes", "wait", f"not shown non-inferior: log loss diff 95% CI {lo:+.4f}..{hi:+.4f}, "
                 f"ROC AUC diff 95% CI {auc_lo:+.4f}..{auc_hi:+.4f}", stats)


def decide(ev: Evidence, days_at_step: int, policy: RolloutPolicy | None = None) -> Decision:
    """The rollout's one decision: rollback if any guardrail fails, advance if all pass, else hold
    (rolled back once the step has waited max_days_at_step days). The same for Airflow, KFP and the CLI."""
    p = policy or RolloutPolicy()
    checks = [health_check(ev, p), behaviour_check(ev, p), outcomes_check(ev, p)]
    failed = [c for c in checks if c.verdict == "fail"]
    if failed:
        return Decision(ROLLBACK, "; ".join(f"{c.name}: {c.reason}" for c in failed), checks)
    waiting = [c for c in checks if c.verdict == "wait"]
    if not waiting:
        return Decision(ADVANCE, "every guardrail passed: " + "; ".join(c.reason for c in checks), checks)
    if days_at_step >= p.max_days_at_step:
        checks.append(Check("time", "fail", f"{days_at_step} days at this step without a decision",
                            {"days_at_step": days_at_step}))
        return Decision(ROLLBACK, f"no decision after {days_at_step} days (limit {p.max_days_at_step}): "
                        + "; ".join(f"{c.name}: {c.reason}" for c in waiting), checks)
    return Decision(HOLD, "; ".join(f"{c.name}: {c.reason}" for c in waiting), checks)
