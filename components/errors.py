"""Errors a stage raises to stop a run with a message meant for a person."""


class StageFailed(RuntimeError):
    """A stage refused its input or could not finish; the message says why in plain words."""


class BadInput(StageFailed):
    """The input data broke a rule; the batch was kept aside (quarantined) and nothing downstream changed."""
