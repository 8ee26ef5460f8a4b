"""The exceptions prep_ops raises for things a user can fix: one sentence each, no traceback."""


class PrepOpsError(Exception):
    """Base class: the CLI prints `error: <message>` and exits non-zero."""


class TargetError(PrepOpsError):
    """The database cannot be reached: bad URL, wrong password, stopped server."""


class MigrationError(PrepOpsError):
    """A migration failed, was edited after it was applied, or cannot be found."""


class ParameterError(PrepOpsError):
    """A parameter has the wrong name, type or value."""


class ConfirmationRequired(PrepOpsError):
    """A step would change or destroy data and was not confirmed."""


class BackupError(PrepOpsError):
    """pg_dump or pg_restore failed, a backup is not where it should be, or its file is not a dump."""


class CheckFailed(PrepOpsError):
    """A must-hold check in a runbook failed."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none): one line for a user."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
