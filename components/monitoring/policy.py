"""When to retrain: the one place where the monitoring thresholds and the retraining rule live.

Rule (evaluated by the monitor stage once per monitored day, recorded with its inputs):
  retrain when
    - the share of drifted features is >= drift_share_threshold on `consecutive_days` consecutive
      calendar days (a day that was not monitored, or had too small a sample, breaks the streak), or
      - the ROC AUC pooled over the labelled days of the last auc_window_days is lower than the
      serving model's holdout AUC by >= auc_drop (with at least min_labelled_rows labels);
  but never within cooldown_days of the last retrain (or of the serving model's registration),
  and at most max_retrains within any cap_window_days (no retrain storms).

Only days monitored against the serving model's own reference sample count: a new model brings
a new reference, so the drift that caused a retrain cannot make the new model retrain itself.

The defaults are calibrated on the real 2013 data (docs/MONITORING.md has the measurements).
Every field can be overridden with an environment variable FLIGHTDECK_RETRAIN_<FIELD> (upper case).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from datetime import date, timedelta


@dataclass(frozen=True)
class RetrainPolicy:
    # -- what one monitoring run compares -------------------------------------------------------
    # The current sample is the scored flights of the last `window_days` days: one day of weather
    # is one draw of a strongly autocorrelated process (a single day drifts on temperature against a
    # 3-month reference even within a season: docs/BENCHMARKS.md, Figures the code relies on), a week is not.
    window_days: int = 7
    min_rows: int = 500  # fewer scored rows in the window: no drift verdict ("insufficient sample")
    min_reference_rows: int = 1000
    min_column_values: int = 100  # a feature with fewer non-missing values on either side is skipped
    # A window with more scored rows is compared through a seeded uniform sample of this many (0: all).
    # With a 5,000-row reference the reference's own sampling error dominates long before 100k current
    # rows (the sample gives the same verdicts and nearly the same scores as all rows;
    # tests/monitoring/test_drift.py), and the cost stops growing with traffic (Evidently on a busy
    # week's every row takes minutes and gigabytes). Figures: docs/BENCHMARKS.md, Figures the code relies on.
    max_current_rows: int = 100_000
    # Distances, not p-values: at 5k+ rows every test's p-value is ~0 for shifts nobody cares about.
    # Normed Wasserstein = distance in units of the reference standard deviation (scale-free).
    numeric_method: str = "wasserstein"
    numeric_threshold: float = 1.0
    # Jensen-Shannon distance (0..1), bounded and stable with many small categories (dest has 100+),
    # where PSI blows up on near-empty bins.
    categorical_method: str = "jensenshannon"
    categorical_threshold: float = 0.1
    # Prediction drift: PSI of the score distribution, the usual scorecard statistic (0.2 = "major shift").
    prediction_method: str = "psi"
    prediction_threshold: float = 0.2
    # -- the retraining rule -------------------------------------------------------------------
    # Which rule decides: "drift" (below: drift streak or AUC drop) or "trigger" (the value trigger,
    # components/monitoring/trigger.py, with its own FLIGHTDECK_TRIGGER_* settings; drift is then an
    # early warning only). docs/MONITORING.md says which is shipped and why.
    rule: str = "drift"
    # What a decision to retrain does: "warn" records and exports it (flightdeck_retrain_recommended,
    # the DataDriftDetected / ModelPerformanceDrop alerts) and continuous_training keeps its monthly
    # calendar; "train" also queues continuous_training (the Airflow drift event, the KFP `retrain` output).
    # Shipped: warn. Replayed on 2013 the drift rule's 9 extra retrains were all refused by the gate, for
    # the same scores and +57 % compute (docs/BACKTEST.md, "The shipped default").
    action: str = "warn"
    drift_share_threshold: float = 0.2
    consecutive_days: int = 3
    # AUC is pooled over the labelled days of a longer window: weekly AUC swings below the holdout AUC
    # by more than auc_drop inside the model's own training period (a blizzard week), 14-day AUC stays
    # well inside it, so a drop of auc_drop is a signal, not weather (docs/BENCHMARKS.md, Figures the
    # code relies on).
    auc_window_days: int = 14
    auc_drop: float = 0.10
    min_labelled_rows: int = 1000
    cooldown_days: int = 7
    max_retrains: int = 2
    cap_window_days: int = 30

    def as_dict(self) -> dict:
        return asdict(self)


def settings_values(cls, prefix: str, what: str, env: dict[str, str] | None, overrides: dict) -> dict:
    """The fields of settings dataclass `cls` given by `prefix`<FIELD> environment variables, then by
    explicit overrides, converted to their types; a value that does not convert is named."""
    env = dict(os.environ if env is None else env)
    values: dict = {}
    for f in fields(cls):
        key = f"{prefix}{f.name.upper()}"
        raw = overrides.get(f.name, env.get(key))
        if raw is None or raw == "":
            continue
        kind = {"int": int, "float": float}.get(f.type, str)
        try:
            values[f.name] = kind(raw)
        except ValueError:
            raise ValueError(f"{what} setting {f.name}={raw!r} ({key}) is not a {kind.__name__}") from None
    return values


def load_policy(env: dict[str, str] | None = None, **overrides) -> RetrainPolicy:
    """The default policy, with FLIGHTDECK_RETRAIN_* environment overrides, then explicit ones."""
    values = settings_values(RetrainPolicy, "FLIGHTDECK_RETRAIN_", "retraining policy", env, overrides)
    policy = RetrainPolicy(**values)
    if policy.rule not in ("drift", "trigger"):
        raise ValueError(f"retraining rule {policy.rule!r} (FLIGHTDECK_RETRAIN_RULE) is not drift or trigger")
    if policy.action not in ("warn", "train"):
        raise ValueError(f"retraining action {policy.action!r} (FLIGHTDECK_RETRAIN_ACTION) is not warn or train")
    if not 0 < policy.drift_share_threshold <= 1:
        raise ValueError("drift_share_threshold must be in (0, 1]")
    if policy.max_current_rows and policy.max_current_rows < policy.min_rows:
        raise ValueError(f"max_current_rows {policy.max_current_rows} is below min_rows {policy.min_rows} (0 = no cap)")
    if min(policy.window_days, policy.auc_window_days, policy.consecutive_days) < 1 or policy.max_retrains < 0:
        raise ValueError("window_days, auc_window_days and consecutive_days must be >= 1, max_retrains >= 0")
    return policy


@dataclass(frozen=True)
class DayEvidence:
    """What one monitored day contributes: its drift share and (pooled) AUC, for one model version."""

    day: date
    model_version: int | None
    drift_share: float | None  # None: no verdict (sample too small)
    auc: float | None = None
    labelled_rows: int = 0


@dataclass
class Decision:
    retrain: bool
    trigger: str | None  # "drift" | "performance" | None
    reasons: list[str] = field(default_factory=list)
    blocked_by: str | None = None  # "cooldown" | "cap" when a trigger fired but was held back
    inputs: dict = field(default_factory=dict)
    # When an earlier run for the same day already requested this retrain (ISO time of that request):
    # a rerun of the day keeps the day's decision but must not request the retrain a second time.
    already_requested: str | None = None
    # Whether this decision asks for a training run (retrain, under the action "train"); under "warn" a
    # retrain is recommended only.
    requested: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def drift_streak(policy: RetrainPolicy, today: date, history: list[DayEvidence], model_version: int | None) -> int:
    """Consecutive calendar days up to `today` whose drift share for this model reached the threshold."""
    by_day = {e.day: e for e in history if e.model_version == model_version}
    streak, day = 0, today
    while True:
        e = by_day.get(day)
        if e is None or e.drift_share is None or e.drift_share < policy.drift_share_threshold:
            return streak
        streak += 1
        day -= timedelta(days=1)


def decide(policy: RetrainPolicy, today: date, history: list[DayEvidence], model_version: int | None,
           holdout_auc: float | None, retrains: list[date], model_since: date | None = None) -> Decision:
    """Apply the rule to the evidence. `retrains`: days on which a retrain was triggered before."""
    today_ev = next((e for e in history if e.day == today and e.model_version == model_version), None)
    streak = drift_streak(policy, today, history, model_version)
    inputs = {
        "today": today.isoformat(), "model_version": model_version, "holdout_auc": holdout_auc,
        "drift_share": today_ev.drift_share if today_ev else None, "drift_streak_days": streak,
        "auc": today_ev.auc if today_ev else None, "labelled_rows": today_ev.labelled_rows if today_ev else 0,
        "previous_retrains": sorted(d.isoformat() for d in retrains),
        "model_since": model_since.isoformat() if model_since else None, "policy": policy.as_dict(),
    }
    reasons: list[str] = []
    trigger = None
    if streak >= policy.consecutive_days:
        trigger = "drift"
        reasons.append(f"drift share >= {policy.drift_share_threshold:.2f} on {streak} consecutive days "
                       f"(needs {policy.consecutive_days})")
    elif today_ev and today_ev.drift_share is not None:
        reasons.append(f"drift share {today_ev.drift_share:.2f} (threshold {policy.drift_share_threshold:.2f}), "
                       f"streak {streak}/{policy.consecutive_days} days")
    else:
        reasons.append("no drift verdict today (no monitored sample for the serving model)")
    if today_ev and today_ev.auc is not None and holdout_auc is not None:
        drop = holdout_auc - today_ev.auc
        if today_ev.labelled_rows < policy.min_labelled_rows:
            reasons.append(f"AUC {today_ev.auc:.3f} on only {today_ev.labelled_rows} labelled rows "
                           f"(< {policy.min_labelled_rows}): not used")
        elif drop >= policy.auc_drop:
            trigger = trigger or "performance"
            reasons.append(f"AUC {today_ev.auc:.3f} is {drop:.3f} below the holdout AUC {holdout_auc:.3f} "
                           f"(limit {policy.auc_drop:.3f})")
        else:
            reasons.append(f"AUC {today_ev.auc:.3f} vs holdout {holdout_auc:.3f} (drop {drop:.3f} < {policy.auc_drop:.3f})")
    else:
        reasons.append("no AUC yet (labels not landed) or no holdout AUC for the serving model")

    decision = Decision(retrain=False, trigger=trigger, reasons=reasons, inputs=inputs)
    if trigger is None or held_back(decision, policy, today, retrains, model_since):
        return decision
    decision.retrain = True
    return decision


def held_back(decision: Decision, policy, today: date, retrains: list[date], model_since: date | None,
              cooldown_days: int | None = None, why_cooldown: str = "") -> bool:
    """Whether a fired trigger is held back by the cooldown or the cap (`policy`: any rule with
    cooldown_days, max_retrains and cap_window_days; `cooldown_days` replaces the policy's, with
    `why_cooldown` saying why); says why in the decision."""
    cooldown = policy.cooldown_days if cooldown_days is None else cooldown_days
    last = max([d for d in retrains if d <= today] + ([model_since] if model_since else []), default=None)
    if last is not None and (today - last).days < cooldown:
        decision.blocked_by = "cooldown"
        decision.reasons.append(f"held back: last retrain/new model on {last}, cooldown {cooldown} days{why_cooldown}")
        return True
    recent = [d for d in retrains if 0 <= (today - d).days < policy.cap_window_days]
    if len(recent) >= policy.max_retrains:
        decision.blocked_by = "cap"
        decision.reasons.append(f"held back: {len(recent)} retrains in the last {policy.cap_window_days} days "
                                f"(cap {policy.max_retrains})")
        return True
    return False


def apply_action(decision: Decision, policy: RetrainPolicy) -> None:
    """Whether the decision requests training (the policy's action), and says so when it only warns."""
    decision.requested = bool(decision.retrain) and policy.action == "train"
    if decision.retrain and not decision.requested:
        decision.reasons.append(f"retrain recommended, not started: the retraining action is {policy.action} "
                                "(continuous_training keeps its calendar; FLIGHTDECK_RETRAIN_ACTION=train would queue it)")


def starts_training(result: dict) -> bool:
    """Whether a monitor stage result should start a training run (the Airflow drift event, the KFP
    `retrain` output): the policy said retrain under the action "train" (`requested`), and no earlier run
    of the same day already asked for it (a rerun of a day reports `already_requested`), so one drifted
    day starts one retrain."""
    return bool(result.get("retrain")) and bool(result.get("requested")) and not result.get("already_requested")
