"""The exceptions prep_ops raises for things a user can fix: one sentence each, no traceback."""

from collections.abc import Iterable


class PrepOpsError(Exception):
    """Base class: the CLI prints `error: <message>` and exits non-zero; a notebook shows the same line."""

    def _render_traceback_(self) -> list[str]:
        """What IPython shows for it in a notebook (JupyterLab, an executed runbook): the CLI's one line,
        not a stack trace through prep_ops for a wrong parameter, URL or password."""
        from .formatting import terminal  # a name quoted in the message never colours or moves the output

        return [f"error: {terminal(self)}"]


class TargetError(PrepOpsError):
    """The database cannot be reached: bad URL, wrong password, stopped server."""


class WalEndedEarly(TargetError):
    """Replay stopped before its recovery target: the archived WAL ends (or is damaged) before it.
    `last_restored`: the last segment replay took from the archive (None when it took none)."""

    def __init__(self, message: str, last_restored: str | None = None):
        super().__init__(message)
        self.last_restored = last_restored


class LockBusy(PrepOpsError):
    """A read gave up waiting for a lock another session holds (ACCESS EXCLUSIVE: VACUUM FULL, REINDEX,
    LOCK TABLE, most ALTER TABLE) rather than wait behind it for as long as that session runs. `what`:
    what could not be read ("the indexes"), for a SKIP that says so (lock_watch.not_read)."""

    def __init__(self, message: str, what: str = ""):
        super().__init__(message)
        self.what = what


class MigrationError(PrepOpsError):
    """A migration failed, was edited after it was applied, or cannot be found."""


class ParameterError(PrepOpsError):
    """A parameter has the wrong name, type or value."""


class ConfirmationRequired(PrepOpsError):
    """A step would change or destroy data and was not confirmed."""


class BackupError(PrepOpsError):
    """pg_dump or pg_restore failed, a backup is not where it should be, or its file is not a dump."""


class NotThisCluster(BackupError):
    """An extracted base backup's data directory is of another cluster than its manifest says."""


class NoBackups(BackupError):
    """There is no backup (of that database and kind) in the folder: nothing to verify, restore or recover from."""


class SampleDataError(PrepOpsError):
    """Generating the sample data failed: a worker process died or made more than was planned."""


class CheckFailed(PrepOpsError):
    """A must-hold check in a runbook failed."""


class RoleError(PrepOpsError):
    """Planning, applying or dropping the roles failed in the database; the message never holds a password."""


class RotationError(PrepOpsError):
    """New passwords cannot be set as asked: one given would not change the role's password."""


class AuditLogError(PrepOpsError):
    """The audit log could not be installed, enabled, disabled or read, or is not there yet."""


class MaskingError(PrepOpsError):
    """The masked views could not be made."""


class RecoveryError(PrepOpsError):
    """A data-recovery step cannot go on: a table without primary key, a failed repair (no backup is NoBackups)."""


class StepFailed(PrepOpsError):
    """An incident runbook step failed: the message names the step, the cause and what to do next."""


class PlanChanged(PrepOpsError):
    """What a change would run now is not the plan that was shown, backed up for or tested (a parameter changed
    since, an interrupted run left something, another session changed the database): nothing ran."""


class StepOutOfOrder(PrepOpsError):
    """An incident runbook step was run (a notebook cell run again, or out of order) where what it works
    from does not hold: a step it needs has not ended well in this run, was undone since, or it changed
    something already on what those steps found. Refused before anything runs; nothing is recorded as failed."""


class ForeignTriggerError(PrepOpsError):
    """A write would fire a trigger (or run a default, CHECK or index function) whose function a role owns
    that is neither the writer nor a superuser: it would run that role's code with the writer's privileges."""


def first_text_line(text) -> str:
    """The first line of `text` that is not blank, stripped ("" when there is none)."""
    return next((line.strip() for line in str(text or "").splitlines() if line.strip()), "")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none): one line for a user."""
    return first_text_line(exc) or type(exc).__name__


def program_error(stderr: str) -> str:
    """What a client program (pg_dump, pg_restore, psql) says went wrong, in one line: its first error line
    with the HINT after it, else its last line; "unknown error" when it said nothing. At most 300 characters.
    Not the last line alone: pg_dump ends with the query it ran ("detail: Query was: COPY ..."), not why."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    at = next((i for i, line in enumerate(lines) if "ERROR" in line or "error" in line), None)
    if at is None:
        return (lines[-1] if lines else "unknown error")[:300]
    hint = next((line for line in lines[at + 1:at + 3] if line.startswith("HINT:")), None)
    return (lines[at] + (f" ({hint})" if hint else ""))[:300]


def masked(text: str, hidden: Iterable[str]) -> str:
    """`text` with each of `hidden` (passwords, verifiers) shown as ***, the longest first."""
    for value in sorted(filter(None, hidden), key=len, reverse=True):
        text = text.replace(value, "***")
    return text


def database_error(exc: Exception, doing: str, kind: type[PrepOpsError] = PrepOpsError, *,
                   detail: bool = False, hidden: Iterable[str] = ()) -> PrepOpsError:
    """The `kind` error to raise for a psycopg error `exc`: "<doing>: <first line of the server's message>".

    `doing` says what failed and what that left, e.g. "enabling the audit log failed, nothing changed".
    With `detail`, the first line of the server's DETAIL follows; each of `hidden` shows as ***.
    Raise it `from None`: the traceback would repeat the statement, and with it any password.
    """
    text = f"{doing}: {first_line(exc)}"
    more = (getattr(getattr(exc, "diag", None), "message_detail", None) or "").strip() if detail else ""
    if more:
        text += " " + more.splitlines()[0]
    return kind(masked(text, hidden))
