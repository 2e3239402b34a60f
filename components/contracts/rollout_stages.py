"""The rollout's stage specs (start, advance, abort, status): registered in components.contracts.stages.STAGES.

Cheap to import, like stages.py. The policy: components.serving.rollout; the stage:
components.serving.rollout_stage; the operator's view: docs/ROLLOUT.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.contracts.spec import StageSpec, param

DATE = "YYYY-MM-DD"
_STATE = "serving/<model>/rollout.json"
_REPORT = "serving/<model>/rollouts/v<champion>-vs-v<challenger>/ (report.json, report.md, metrics.prom)"


@dataclass(frozen=True)
class RolloutStartParams:
    version: str = param("champion", help="registry version number, or an alias (champion: the version register "
                                          "just promoted)")
    target: str = param("", help="cpu or gpu; default: the target that serves now (DeployParams.target)")
    online: bool = param(True, help="each step's deploy also publishes the online model")
    timeout_s: float = param(120.0, help="seconds each step's load may take on each replica")


@dataclass(frozen=True)
class RolloutAdvanceParams:
    date: str = param(help=f"the monitored day ({DATE}): one decision per day; a rerun of a decided day "
                           "re-applies that decision's deploy if it was interrupted, and decides nothing new")


@dataclass(frozen=True)
class RolloutAbortParams:
    reason: str = param("aborted by an operator", help="why: recorded with the decision")


@dataclass(frozen=True)
class RolloutStatusParams:
    pass


_DEPLOYS = {"deploy": "the Triton model repository and serving/<model>/state.json, through the deploy stage"}

ROLLOUT_START = StageSpec(
    name="rollout-start",
    command=("rollout", "start"),
    help="start the rollout of a new champion: shadow first (nothing serving yet: straight to full)",
    params=RolloutStartParams,
    entry="components.serving.rollout_stage:rollout_start",
    inputs={"version": "models/<name>/versions/<N>/", "serving": "serving/<model>/state.json"},
    outputs={"rollout": _STATE, **_DEPLOYS},
)
ROLLOUT_ADVANCE = StageSpec(
    name="rollout-advance",
    command=("rollout", "advance"),
    help="decide the active rollout's step from its evidence (health, behaviour, labelled outcomes): "
         "advance, hold or roll back, and deploy what the decision implies",
    params=RolloutAdvanceParams,
    entry="components.serving.rollout_stage:rollout_advance",
    inputs={"records": "serving/<model>/challenger/v<champion>-vs-v<challenger>/ (scores, health/)",
            "labels": "validated/flights/date=<date>/", "rollout": _STATE},
    outputs={"rollout": _STATE, "report": _REPORT, **_DEPLOYS},
)
ROLLOUT_ABORT = StageSpec(
    name="rollout-abort",
    command=("rollout", "abort"),
    help="stop the active rollout: the champion serves all traffic again, the challenger is unloaded",
    params=RolloutAbortParams,
    entry="components.serving.rollout_stage:rollout_abort",
    inputs={"rollout": _STATE},
    outputs={"rollout": _STATE, **_DEPLOYS},
)
ROLLOUT_STATUS = StageSpec(
    name="rollout-status",
    command=("rollout", "status"),
    help="where the rollout stands: step, the last decision and its reason, the report",
    params=RolloutStatusParams,
    entry="components.serving.rollout_stage:rollout_status",
    inputs={"rollout": _STATE},
    outputs={},
)
ROLLOUT_STAGES = (ROLLOUT_START, ROLLOUT_ADVANCE, ROLLOUT_ABORT, ROLLOUT_STATUS)
