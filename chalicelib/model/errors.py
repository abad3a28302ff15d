"""The failures a caller might handle. Small and flat on purpose.

Every `UserError` is a mistake the user can fix (bad config, bad job file, a
missing bucket). The CLI prints its message as one line and exits 2; nothing
else about it is ever shown as a traceback.
"""


class UserError(Exception):
    """A problem with the user's input or account; the message says what to fix."""

    exit_code = 2


class ConfigError(UserError):
    """config.json (or an equivalent dict) is not valid."""


class JobFileError(UserError):
    """A job file is not valid; nothing from it is submitted."""


class FleetFileError(UserError):
    """A spot fleet file is not valid."""


class PreflightError(UserError):
    """An account or resource check before start-cluster failed; nothing was created."""


class StartConflict(UserError):
    """start-cluster found the run claimed by another start-cluster, or still being torn down; nothing was
    created (or what this one created was cancelled again)."""


class RefusedRun(UserError):
    """The monitor will not act on a run it cannot prove is what its record says (monitor/ownership.py)."""

    exit_code = 1
