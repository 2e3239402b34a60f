"""The value trigger: retrain when a retrain is expected to pay, judged from labelled performance.

The drift rule (components/monitoring/policy.py) answers "has the input changed?"; a year replayed
on the real data showed that a change of input is a poor predictor of what a retrain buys
(docs/BACKTEST.md). This rule answers "is the serving model losing what a fresh one would win?"
from the evidence the platform has each morning:

  - the serving model's labelled performance, pooled over the last `perf_window_days` labelled
    days (labels land the day after their flights), holiday and storm days left out:
      * ranking: ROC AUC below the model's own holdout AUC by >= auc_drop, or
      * calibration: |logit(observed late rate) - logit(predicted late rate)| >= calibration_gap
        (a model trained in another season misjudges the level of risk; that costs pooled AUC and
        log loss across days, and a retrain on recent days repairs it);
  - drift as early warning only: a drift share >= drift_share_threshold on the last drift check
    shortens the performance window to `watch_window_days`, so labels are read sooner, but never
    retrains by itself;
  - an age backstop (max_age_days; 0 = none).

A retrain is held back when
  - the serving model is younger than cooldown_days, or max_retrains happened within cap_window_days;
  - it comes less than the backed-off cooldown after a refused candidate: each candidate trained since
    the serving model that evaluate did not promote multiplies the cooldown by refusal_backoff (up to
    max_cooldown_days), and a promotion resets it. A refused candidate says a retrain on today's
    evidence does not pay (most refusals in Feb-Jul 2013 were of candidates the gate could not show
    to be as good as its baselines); the serving model's evidence against its own holdout AUC does not
    change with the refusal, so without the back-off the trigger fires again as soon as the cooldown
    ends, at close to the cap's rate (docs/BACKTEST.md);
  - the recency window is dominated by unusual days: guard_max_abnormal_days or more of its last
    guard_days are holidays (US federal, +- holiday_margin_days) or storm days (a share of flights
    that never arrived >= storm_unarrived_share). Its holdout would then judge the candidate on days
    unlike the ones it will serve. The retrain is re-examined the next day.

The candidate itself is trained on the last train_window_days and checked against the champion on
its holdout (the latest labelled days) by evaluate's blessing gate before it is promoted.
Settings are calibrated on Feb-Jul 2013 only (docs/BACKTEST.md, "The value trigger"); each one can be
overridden with FLIGHTDECK_TRIGGER_<SETTING>.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from datetime import date, timedelta
from functools import lru_cache

import pandas as pd

from components.monitoring.policy import Decision, held_back, settings_values


@dataclass(frozen=True)
class TriggerPolicy:
    perf_window_days: int = 14
    watch_window_days: int = 7
    min_labelled_rows: int = 3000
    auc_drop: float = 0.02
    calibration_gap: float = 0.15
    max_age_days: int = 0
    drift_every_days: int = 7
    drift_share_threshold: float = 0.2
    cooldown_days: int = 14
    refusal_backoff: float = 1.0
    max_cooldown_days: int = 56
    max_retrains: int = 2
    cap_window_days: int = 30
    holiday_margin_days: int = 2
    storm_unarrived_share: float = 0.10
    guard_days: int = 7
    guard_max_abnormal_days: int = 2
    train_window_days: int = 84

    def as_dict(self) -> dict:
        return asdict(self)


def load_trigger(env: dict[str, str] | None = None, **overrides) -> TriggerPolicy:
    """The shipped settings, with FLIGHTDECK_TRIGGER_* environment overrides, then explicit ones."""
    known = {f.name for f in fields(TriggerPolicy)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown trigger setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    values = settings_values(TriggerPolicy, "FLIGHTDECK_TRIGGER_", "trigger", env, overrides)
    policy = TriggerPolicy(**values)
    if min(policy.perf_window_days, policy.watch_window_days, policy.drift_every_days, policy.guard_days) < 1:
        raise ValueError("perf_window_days, watch_window_days, drift_every_days and guard_days must be >= 1")
    if policy.train_window_days < 7 or policy.max_retrains < 0 or policy.max_age_days < 0:
        raise ValueError("train_window_days must be >= 7, max_retrains and max_age_days >= 0")
    if policy.refusal_backoff < 1 or policy.max_cooldown_days < policy.cooldown_days:
        raise ValueError("refusal_backoff must be >= 1 (1 = no back-off) and max_cooldown_days >= cooldown_days")
    if not 0 < policy.storm_unarrived_share <= 1 or not 0 < policy.drift_share_threshold <= 1:
        raise ValueError("storm_unarrived_share and drift_share_threshold must be in (0, 1]")
    return policy


@lru_cache(maxsize=8)
def _holidays(year: int) -> frozenset[date]:
    from pandas.tseries.holiday import USFederalHolidayCalendar

    days = USFederalHolidayCalendar().holidays(f"{year - 1}-12-01", f"{year + 1}-01-31")
    return frozenset(d.date() for d in days)


def holiday_near(policy: TriggerPolicy, day: date) -> date | None:
    """The US federal holiday within holiday_margin_days of `day`, if any."""
    margin = policy.holiday_margin_days
    return next((h for h in sorted(_holidays(day.year)) if abs((h - day).days) <= margin), None)


def unusual_day(policy: TriggerPolicy, day: date, unarrived_share: float | None) -> str | None:
    """Why `day` is a holiday or storm day (left out of the evidence, counted by the guard), or None."""
    holiday = holiday_near(policy, day)
    if holiday is not None:
        return f"holiday ({holiday.isoformat()})"
    if unarrived_share is not None and unarrived_share >= policy.storm_unarrived_share:
        return f"storm ({unarrived_share:.1%} of flights never arrived)"
    return None


@dataclass(frozen=True)
class PooledPerformance:
    """The serving model's labelled performance pooled over the usual days of a window."""

    days: int
    rows: int
    auc: float | None
    observed_rate: float | None
    predicted_rate: float | None


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def calibration_offset(perf: PooledPerformance) -> float | None:
    if perf.observed_rate is None or perf.predicted_rate is None:
        return None
    return _logit(perf.observed_rate) - _logit(perf.predicted_rate)


def backed_off_cooldown(policy: TriggerPolicy, refused: int) -> int:
    """The cooldown after `refused` candidates in a row were not promoted: cooldown_days x refusal_backoff
    per refusal, at most max_cooldown_days."""
    return int(min(policy.cooldown_days * policy.refusal_backoff ** max(refused, 0), policy.max_cooldown_days))


def refused_candidates(evaluations: list[dict], serving_version: int | None, model_since: date | None,
                       today: date) -> list[str]:
    """The training runs whose candidates evaluate refused against the serving version: `evaluations`
    (run_id, champion: the version it was compared with, blessed, holdout_end) compared with the serving
    version, not blessed, trained on data after the serving model's window and before `today` (a
    backfilled morning does not count candidates trained on later data). Refused candidates are not
    registered, so the evaluations are their only trace."""
    if serving_version is None or model_since is None:
        return []
    return sorted(e["run_id"] for e in evaluations
                  if e["champion"] == serving_version and not e["blessed"]
                  and model_since < date.fromisoformat(str(e["holdout_end"])[:10]) < today)


def decide_trigger(policy: TriggerPolicy, today: date, perf: PooledPerformance, holdout_auc: float | None,
                   model_since: date | None, retrains: list[date], recent_unusual: dict[date, str],
                   drift_share: float | None, refused: int = 0) -> Decision:
    """Apply the value trigger on the morning of `today` (labels through today - 1).

    perf: the serving model's pooled performance (over watch_window_days when drift_share is at or
      above the threshold, else perf_window_days), unusual days left out; holdout_auc: its evaluation's;
    model_since: the end of its training window; retrains: days a retrain was triggered before;
    recent_unusual: unusual days among the guard_days before today, with why; drift_share: the last
    drift check's share of drifted inputs (None: none yet); refused: candidates trained since the serving
    model that evaluate refused (refused_candidates), which back the cooldown off.
    """
    watching = drift_share is not None and drift_share >= policy.drift_share_threshold
    offset = calibration_offset(perf)
    age = (today - model_since).days if model_since else None
    inputs = {"today": today.isoformat(), "holdout_auc": holdout_auc, "pooled": asdict(perf),
              "calibration_offset": offset, "drift_share": drift_share, "watching": watching,
              "model_since": model_since.isoformat() if model_since else None, "model_age_days": age,
              "previous_retrains": sorted(d.isoformat() for d in retrains),
              "refused_candidates": refused, "cooldown_days": backed_off_cooldown(policy, refused),
              "recent_unusual_days": {d.isoformat(): why for d, why in sorted(recent_unusual.items())},
              "policy": policy.as_dict()}
    reasons: list[str] = []
    if watching:
        reasons.append(f"drift share {drift_share:.2f} >= {policy.drift_share_threshold:.2f}: watching "
                       f"(performance read over {policy.watch_window_days} days)")
    trigger = None
    if perf.rows < policy.min_labelled_rows:
        reasons.append(f"{perf.rows} labelled rows on {perf.days} usual days (< {policy.min_labelled_rows}): "
                       "performance not judged")
    else:
        if perf.auc is not None and holdout_auc is not None:
            drop = holdout_auc - perf.auc
            if drop >= policy.auc_drop:
                trigger = "performance"
            reasons.append(f"pooled AUC {perf.auc:.3f} on {perf.rows} rows vs holdout {holdout_auc:.3f} "
                           f"(drop {drop:+.3f}, limit {policy.auc_drop:.3f})")
        if offset is not None:
            if abs(offset) >= policy.calibration_gap:
                trigger = trigger or "calibration"
            reasons.append(f"observed late rate {perf.observed_rate:.3f} vs predicted {perf.predicted_rate:.3f} "
                           f"(logit gap {offset:+.2f}, limit {policy.calibration_gap:.2f})")
    if trigger is None and policy.max_age_days and age is not None and age >= policy.max_age_days:
        trigger = "age"
        reasons.append(f"model trained on data up to {model_since} is {age} days old (limit {policy.max_age_days})")
    decision = Decision(retrain=False, trigger=trigger, reasons=reasons, inputs=inputs)
    if trigger is None:
        return decision
    cooldown = backed_off_cooldown(policy, refused)
    why = f" (backed off after {refused} refused candidate(s) since the serving model)" if refused else ""
    if held_back(decision, policy, today, retrains, model_since, cooldown, why):
        return decision
    if len(recent_unusual) >= policy.guard_max_abnormal_days:
        decision.blocked_by = "guard"
        decision.reasons.append(f"held back: {len(recent_unusual)} of the last {policy.guard_days} days are holiday "
                                f"or storm days (limit {policy.guard_max_abnormal_days}): the candidate's window and "
                                "holdout would be dominated by them; re-examined tomorrow")
        return decision
    decision.retrain = True
    return decision


def guard_days(policy: TriggerPolicy, today: date) -> list[date]:
    """The days the guard inspects: the last guard_days before `today` (the end of the candidate's window)."""
    return [today - timedelta(days=i) for i in range(policy.guard_days, 0, -1)]


def evidence_days(policy: TriggerPolicy, today: date, watching: bool) -> list[date]:
    """The days whose labels the performance evidence pools (before `today`, oldest first)."""
    span = policy.watch_window_days if watching else policy.perf_window_days
    return [today - timedelta(days=i) for i in range(span, 0, -1)]


def pool_evidence(policy: TriggerPolicy, labelled: dict[date, pd.DataFrame],
                  unarrived: dict[date, float | None]) -> tuple[PooledPerformance, dict[str, str]]:
    """Pool the serving model's labelled rows (columns label, probability) over the given days, leaving out
    holiday and storm days (`unarrived`: each day's share of flights that never arrived, over all its flights).
    Returns the pooled performance and the days left out, with why."""
    from components.monitoring.performance import performance

    used, skipped = [], {}
    for d in sorted(labelled):
        why = unusual_day(policy, d, unarrived.get(d))
        if why:
            skipped[d.isoformat()] = why
        elif labelled[d] is not None and not labelled[d].empty:
            used.append(labelled[d])
    if not used:
        return PooledPerformance(days=0, rows=0, auc=None, observed_rate=None, predicted_rate=None), skipped
    pooled = pd.concat(used, ignore_index=True)
    perf = performance(pooled["label"].to_numpy(), pooled["probability"].to_numpy())
    return PooledPerformance(days=len(used), rows=perf["rows"], auc=perf.get("roc_auc"),
                             observed_rate=perf["observed_late_rate"],
                             predicted_rate=perf["predicted_late_rate"]), skipped


def recent_unusual(policy: TriggerPolicy, today: date, unarrived: dict[date, float | None]) -> dict[date, str]:
    """The guard's unusual days among the guard_days before `today`."""
    return {d: why for d in guard_days(policy, today) if (why := unusual_day(policy, d, unarrived.get(d)))}
