"""The value trigger's morning in the backtest: gather the evidence it reads, then decide.

On day D (labels through D-1 landed) the trigger policy reads, for its serving model:
  - the scored flights of the last perf_window_days (watch_window_days while drift is high) that this
    model scored, joined with their labels, holiday and storm days left out, pooled;
  - its holdout ROC AUC and the end of its training window (registry);
  - every drift_every_days, the monitor stage's drift share for D-1 (early warning only);
  - which of the guard_days before D were holiday or storm days.
The rule is components.monitoring.trigger.decide_trigger; this module only gathers its inputs, and
the day's record keeps them with the decision.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

import pandas as pd

from components.monitoring.trigger import guard_days


class TriggerMorning:
    """Evidence for one trigger policy, cached across the days of one process (resumes rebuild it)."""

    def __init__(self, run):  # a components.backtest.run.PolicyRun (not imported: it imports this module)
        from components.monitoring.trigger import TriggerPolicy

        self.run = run
        self.policy = TriggerPolicy(**run.spec.settings)
        self._frames: dict[date, pd.DataFrame | None] = {}
        self._history: dict[date, dict] | None = None

    # -- what earlier mornings left ----------------------------------------------------------------
    def history(self, day: date) -> dict[date, dict]:
        """This policy's published day records before `day` (read once, then kept up to date)."""
        from components.backtest.store import read_day

        if self._history is None:
            self._history = {}
            d = self.run.start
            while d < day:
                record = read_day(self.run.base, self.run.root, self.run.spec.namespace, d)
                if record is not None:
                    self._history[d] = record
                d += timedelta(days=1)
        return self._history

    def remember(self, record: dict) -> None:
        if self._history is not None:
            self._history[date.fromisoformat(record["date"])] = record

    def frame(self, day: date) -> pd.DataFrame | None:
        if day not in self._frames:
            # Days before the replay's start were never scored by this policy: no evidence. Any other
            # failure to read a scored day is a real error and propagates.
            self._frames[day] = self.run.scored_frame(day) if day >= self.run.start else None
        return self._frames[day]

    def unarrived_share(self, day: date) -> float | None:
        frame = self.frame(day)
        if frame is None or frame.empty:
            return None
        return float(1.0 - frame["arrived"].mean())

    # -- the morning -----------------------------------------------------------------------------
    def decide(self, day: date) -> dict:
        from components.monitoring.decision_log import refused_since_serving
        from components.monitoring.trigger import (
            decide_trigger,
            evidence_days,
            pool_evidence,
            recent_unusual,
        )

        p = self.policy
        history = self.history(day)
        champion = self.run.champion()
        entry = self.run.registry.get(champion)
        evaluation = json.loads(self.run.registry.read_file(champion, "evaluation.json"))
        holdout_auc = evaluation["model"]["overall"]["roc_auc"]
        model_since = date.fromisoformat((entry.get("window") or {})["end"])
        retrains = [d for d, r in history.items() if r.get("retrain") and r["retrain"]["reason"] != "initial model"]

        drift_share, drift_checked = self._drift(day, history)
        watching = drift_share is not None and drift_share >= p.drift_share_threshold
        labelled = {}
        for d in evidence_days(p, day, watching):
            frame = self.frame(d)
            if frame is not None and not frame.empty:
                labelled[d] = frame[frame["model_version"] == champion]
        seen = set(labelled) | set(guard_days(p, day))
        unarrived = {d: self.unarrived_share(d) for d in seen}
        evidence, skipped = pool_evidence(p, labelled, unarrived)
        refused = refused_since_serving(self.run.store, day - timedelta(days=1), champion, entry)
        decision = decide_trigger(p, day, evidence, holdout_auc, model_since, retrains,
                                  recent_unusual(p, day, unarrived), drift_share, refused=len(refused))
        decision.inputs["skipped_days"] = skipped
        decision.inputs["refused_runs"] = refused
        decision.inputs["model_version"] = champion
        return {"date": (day - timedelta(days=1)).isoformat(), "drift_share": drift_share if drift_checked else None,
                "last_drift_share": drift_share, "retrain": decision.retrain, "trigger": decision.trigger,
                "reasons": decision.reasons, "blocked_by": decision.blocked_by, "inputs": decision.inputs}

    def _drift(self, day: date, history: dict[date, dict]) -> tuple[float | None, bool]:
        """The latest drift share for the serving model: checked today when a check is due, else the last one."""
        if (day - self.run.start).days % self.policy.drift_every_days == 0:
            monitored = self.run.monitor(day - timedelta(days=1))
            if monitored.get("model_version") == self.run.champion():
                return monitored.get("drift_share"), True
            return None, True
        for d in sorted(history, reverse=True):
            mon = history[d].get("monitor") or {}
            if mon.get("drift_share") is not None or (history[d].get("retrain") or {}).get("promoted"):
                # a promotion brings a new reference: older drift belongs to another model
                return (mon.get("drift_share") if not (history[d].get("retrain") or {}).get("promoted") else None), False
        return None, False
