"""Errors a stage raises to stop a run with a message meant for a person."""


class StageFailed(RuntimeError):
    """A stage refused its input or could not finish; the message says why in plain words."""


class BadInput(StageFailed):
    """The input data broke a rule; the batch was kept aside (quarantined) and nothing downstream changed."""


# Exit codes of the stage CLI (components.ops.cli), read by the Airflow runtime (components.orchestration.runtime).
EXIT_STAGE_FAILED = 1
EXIT_BAD_INPUT = 3  # the input was refused (quarantined): retrying the same data cannot help
# When set, the stage CLI also writes its JSON result to this file (KubernetesPodOperator's xcom sidecar reads it).
RESULT_PATH_ENV = "FLIGHTDECK_RESULT_PATH"


def exit_code(exc: StageFailed) -> int:
    """The CLI's exit code for a failed stage: bad input (no retry helps) or any other failure."""
    return EXIT_BAD_INPUT if isinstance(exc, BadInput) else EXIT_STAGE_FAILED
