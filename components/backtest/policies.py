"""The backtest's retraining policies, named on the command line.

    static            never retrain (the first model serves the whole period)
    scheduled         retrain every --retrain-every days
    scheduled:N       retrain every N days (several calendars can run side by side: scheduled:30,scheduled:7)
    drift             the monitor stage's drift/AUC-drop rule (components/monitoring/policy.py), run daily
    scheduled:N+drift the calendar and the drift rule together, as production ships them (continuous_training
                      monthly and queued by the monitor's drift events): monitored daily, retrained on the
                      calendar's days and on the days the drift rule asks for
    trigger           the value trigger (components/monitoring/trigger.py) with its shipped settings
    trigger:k=v/k=v   the value trigger with some settings changed (calibration runs; see docs/BACKTEST.md)

Each policy has its own namespace (registry, runs, predictions) under backtests/<id>/policies/<namespace>/.
A trigger's namespace carries a digest of its settings, so two names for the same settings share
their results and a changed setting never resumes another setting's days.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

KINDS = ("static", "scheduled", "drift", "trigger", "scheduled+drift")


@dataclass(frozen=True)
class PolicySpec:
    name: str  # as given (the report's label)
    kind: str
    every: int | None = None  # scheduled: days between retrains
    settings: dict = field(default_factory=dict)  # trigger: its settings (all fields, after overrides)

    @property
    def namespace(self) -> str:
        if self.kind == "scheduled" and self.name != "scheduled":
            return f"scheduled-{self.every}d"
        if self.kind == "scheduled+drift":
            return f"scheduled-{self.every}d-drift"
        if self.kind == "trigger":
            digest = hashlib.sha256(json.dumps(self.settings, sort_keys=True).encode()).hexdigest()[:8]
            return f"trigger-{digest}"
        return self.kind


def parse_policy(text: str, retrain_every: int) -> PolicySpec:
    """One policy name -> its spec; a clear ValueError for anything else."""
    kind, _, arg = text.partition(":")
    if (kind == "scheduled" and arg.endswith("+drift")) or kind == "scheduled+drift":
        kind, arg = "scheduled+drift", arg.removesuffix("+drift")
    if kind not in KINDS:
        raise ValueError(f"policy {text!r}: must be one of static, scheduled, scheduled:N, drift, "
                         "scheduled:N+drift, trigger, trigger:setting=value/setting=value")
    if kind in ("scheduled", "scheduled+drift"):
        if not arg:
            return PolicySpec(text, kind, every=retrain_every)
        if not arg.isdigit() or int(arg) < 1:
            raise ValueError(f"policy {text!r}: scheduled:N needs a whole number of days N >= 1")
        return PolicySpec(text, kind, every=int(arg))
    if kind == "trigger":
        from components.monitoring.trigger import load_trigger

        overrides = {}
        for item in filter(None, arg.split("/")):
            key, eq, value = item.partition("=")
            if not eq:
                raise ValueError(f"policy {text!r}: {item!r} is not setting=value")
            overrides[key] = value
        return PolicySpec(text, kind, settings=load_trigger(env={}, **overrides).as_dict())
    if arg:
        raise ValueError(f"policy {text!r}: {kind} takes no argument")
    return PolicySpec(text, kind)


def parse_policies(text: str, retrain_every: int) -> list[PolicySpec]:
    specs = [parse_policy(p.strip(), retrain_every) for p in text.split(",") if p.strip()]
    if not specs:
        raise ValueError("--policies is empty")
    unique = {s.namespace: s for s in specs}
    if len(unique) != len(specs):
        raise ValueError(f"--policies {text!r} names the same policy twice")
    return specs
