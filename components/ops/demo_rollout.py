"""The rollout part of `make demo` (components/ops/demo.py): a new champion trained by continuous_training
starts its rollout (shadow), and the following days' batch_prediction + monitoring runs advance it as their
labels land, each decision printed with its evidence. Kept apart so demo.py stays one screen of steps."""

from __future__ import annotations

from collections.abc import Callable

# The challenger: continuous_training for the first champion's day on a longer window (90 days, from the data's
# first day). Measured 2026-12-06 under the shipped gate: blessed; the 84-day window ending 2013-04-07 and the
# summer window (step 4) are not, so a rollout needs this one.
ROLLOUT_TRAIN_DAY, ROLLOUT_WINDOW_DAYS = "2013-04-01", 90
ROLLOUT_DAYS = ["2013-04-04", "2013-04-05", "2013-04-06", "2013-04-07", "2013-04-08"]  # after step 2's days


def decision_line(result: dict) -> str:
    """One line for a rollout_advance result (the monitoring DAG's task)."""
    return (f"   rollout v{result.get('challenger')} vs champion v{result.get('champion')}: "
            f"{str(result.get('action')).upper()} -> {result.get('step')} ({result.get('status')}): "
            f"{str(result.get('reason'))[:240]}")


def run(af, dags, say: Callable[[str], None], training: Callable, score_and_monitor: Callable) -> bool:
    """continuous_training for ROLLOUT_TRAIN_DAY (ends with rollout_start), then daily runs until the rollout
    is promoted or rolled back. Returns whether a rollout ran to a decision."""
    from components.contracts.rollout_stages import RolloutStatusParams
    from components.serving.rollout_stage import rollout_status

    blessed = training(af, dags, ROLLOUT_TRAIN_DAY, ROLLOUT_WINDOW_DAYS)
    if not blessed:
        say("   the new model was not blessed: no rollout (the champion keeps serving)")
        return False
    status = rollout_status(RolloutStatusParams())
    say(f"   rollout_start: v{status['challenger']} is a {status['step']} beside champion v{status['champion']}")
    for day in ROLLOUT_DAYS:
        score_and_monitor(af, dags, day)  # its monitoring run's rollout_advance decides, and prints the line
        status = rollout_status(RolloutStatusParams())
        if status["status"] != "active":
            break
    say(f"   rollout {status['status']} at {status['step']}; report: {status['report'] or 'none yet'} "
        f"(in the UI: the Rollout report link of rollout_advance; `flightdeck rollout status`)")
    return status["status"] != "active"
