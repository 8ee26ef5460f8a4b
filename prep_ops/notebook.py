"""What a runbook calls: `setup()` to connect and make %sql ready, `check()` per step, `summary()` at the end.

SQLAlchemy and ipython-sql are imported on first use (`Session.engine`, the first `%sql`): a runbook
that uses neither starts its kernel without them.

Each check is shown as one line (`PASS ...`, `FAIL ... — fix`, `WARN ...`, `SKIP ... — why`) and
also emitted with the MIME type CHECK_MIME, which `prep-ops run` reads back from the executed
notebook to print a summary table for a whole run, even when the notebook stopped half way.
A PASS is only ever given for something that was looked at: what a run did not do or could not
see is a SKIP with the reason (`check(..., skipped=why)`), never a pass and never a failure.

In JupyterLab a person runs a cell again: its checks of the run before no longer stand (the cell may
fail before reaching them this time, or judge something else), so when a cell starts, the checks its
earlier run recorded are dropped; `checks()` and `summary()` hold each cell's latest run only. A cell
is known by the id JupyterLab sends with it, else by its text. A run refused before it did anything
(StepOutOfOrder, PlanChanged) keeps the earlier run's checks: its work is what stands.

An error of the server or a lost connection (psycopg.Error) shows in one line in a notebook, as the CLI
shows it ("error: database error: ..."), as prep_ops' own errors do (PrepOpsError._render_traceback_), not
as a traceback through prep_ops' insides; any other exception, a bug (a syntax error in SQL, a psycopg
client-side error among them), keeps its whole traceback. The kernel still
reports the cell as failed (papermill, nbval and `prep-ops run` see the error's name and message).
"""

import itertools
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

import pandas as pd
import psycopg

from .db import Target, connect, is_scratch, live, mask_url, resolve_target, server_version
from .errors import CheckFailed, first_line
from .formatting import terminal
from .verdicts import CHECK_MIME, STATUSES, SUMMARY_MIME, status, status_counts

NOTHING_CHANGED = "not a scratch database and confirm=False: nothing changed here"


_made = itertools.count()


@dataclass
class CheckResult:
    name: str
    passed: bool
    detail: str = ""
    must_hold: bool = True
    fix: str = ""
    skipped: bool = False  # not checked: `detail` says why; neither passed nor failed
    at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    cell: str = field(default="", repr=False, compare=False)  # the cell run that made it ("" outside IPython)
    made: int = field(default_factory=lambda: next(_made), repr=False, compare=False)  # the order checks were made in

    def _ipython_display_(self) -> None:
        """Shown once already by check(): a check as a cell's last line displays nothing more."""

    @property
    def record(self) -> dict:
        """The check as recorded in the executed notebook (CHECK_MIME): its fields but the cell."""
        return {k: v for k, v in asdict(self).items() if k not in ("cell", "made")}

    @property
    def status(self) -> str:
        """PASS, WARN, FAIL or SKIP."""
        return status(self.record)

    @property
    def line(self) -> str:
        """The check as one line (a name or query in it shown with its control characters written out:
        no name makes a second line, a carriage return over the word, or colours in the notebook)."""
        word = self.status
        if word == "SKIP":
            return terminal(f"SKIP {self.name} — {self.detail}")
        if word == "PASS":
            return terminal(f"PASS {self.name}" + (f": {self.detail}" if self.detail else ""))
        return terminal(f"{word} {self.name}" + (f": {self.detail}" if self.detail else "")
                        + (f" — {self.fix}" if self.fix else ""))


_checks: list[CheckResult] = []
_cell = {"key": ""}  # the cell running now (its id, else its text), set by _cell_started


_set_aside: list[CheckResult] = []  # the running cell's checks from its earlier run (see _cell_ended)


def _cell_started(info) -> None:
    """IPython's pre_run_cell: this cell's checks from its earlier run are dropped (see the module's doc)."""
    key = getattr(info, "cell_id", None) or f"text:{getattr(info, 'raw_cell', '')}"
    _cell["key"] = key
    _set_aside[:] = [c for c in _checks if c.cell == key]
    _checks[:] = [c for c in _checks if c.cell != key]


def _cell_ended(result) -> None:
    """IPython's post_run_cell: a cell refused before it did anything (a step out of order, a plan changed
    since it was shown) leaves its earlier run's checks standing, as that run's work stands: dropped, the
    summary and the incident's outcome lost the checks of a change still in place."""
    from .errors import PlanChanged, StepOutOfOrder

    if isinstance(getattr(result, "error_in_exec", None), (StepOutOfOrder, PlanChanged)) and _set_aside:
        _checks[:] = sorted(_checks + _set_aside, key=lambda c: c.made)  # in the order they were made
    _set_aside.clear()


def _watch_cells() -> None:
    """Have IPython (a kernel, JupyterLab) tell `_cell_started` when a cell starts; once per shell."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and _cell_started not in shell.events.callbacks["pre_run_cell"]:
        shell.events.register("pre_run_cell", _cell_started)
        shell.events.register("post_run_cell", _cell_ended)
    if shell is not None:
        _one_line_errors(shell)


def _one_line_errors(shell) -> None:
    """Have IPython show database errors in one line (_database_error_in_one_line): psycopg's, and where %sql
    is loaded SQLAlchemy's (what a failing %sql raises). IPython keeps one such handler: both in one call."""
    if not hasattr(shell, "set_custom_exc"):
        return
    kinds: tuple = (psycopg.Error,)
    if "sqlalchemy" in sys.modules:
        kinds += (sys.modules["sqlalchemy"].exc.DBAPIError,)
    shell.set_custom_exc(kinds, _database_error_in_one_line)


CLOSED_HINT = ("a later cell closed it (runbook 07's step 8 closes its copy's); run the runbook again from "
               "the cell that opened it")


def _database_error_in_one_line(shell, etype, value, tb, tb_offset=None) -> None:
    """IPython's handler for psycopg.Error: the server's errors and a closed connection shown in one line,
    "database error: ...", the way IPython shows an exception that renders its own traceback (as PrepOpsError
    does); a client-side error or a server's syntax/undefined-object error (a bug) with its traceback."""
    yours = not isinstance(value, psycopg.Error)  # SQLAlchemy's, of a %sql statement: the notebook's own SQL
    error = getattr(value, "orig", None) if yours else value
    if not isinstance(error, psycopg.Error):  # SQLAlchemy's own (a bad URL, a driver missing): as it is
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
        return
    text = first_line(error)
    closed = isinstance(error, psycopg.OperationalError) and text == "the connection is closed"
    sqlstate = getattr(error, "sqlstate", None) or ""
    if closed:
        text += f": {CLOSED_HINT}"
    # the server's own errors and a lost connection (an OperationalError, with or without a code), but not
    # class 42 (a syntax error, an undefined column: prep_ops' SQL is wrong; a permission denied, 42501, is
    # the server's answer) nor psycopg's client-side ones (a placeholder count, a closed cursor): those are
    # bugs, shown with their traceback. Of a %sql statement, every error the server gave: the SQL is the cell's
    server = sqlstate and (yours or not sqlstate.startswith("42") or sqlstate == "42501")
    if closed or server or (isinstance(error, psycopg.OperationalError) and not sqlstate):
        value._render_traceback_ = lambda: [f"error: database error: {terminal(text)}"]
    shell.showtraceback((etype, value, tb), tb_offset=tb_offset)


@dataclass
class Session:
    """What a runbook works with after `setup()`."""

    target: Target
    server_version: int
    sql_writes: bool = False  # whether %sql and query() may change the database (else read-only)

    _conn: psycopg.Connection | None = None
    _engine: "sqlalchemy.Engine | None" = None  # noqa: F821 (imported on first use)

    @property
    def engine(self) -> "sqlalchemy.Engine":  # noqa: F821
        """A SQLAlchemy engine for the target (read-only unless `sql_writes`), made on first use."""
        if self._engine is None:
            import sqlalchemy

            target = self.target if self.sql_writes else self.target.read_only()
            self._engine = sqlalchemy.create_engine(target.sqlalchemy_url, pool_pre_ping=True)
        return self._engine

    @property
    def conn(self) -> psycopg.Connection:
        """One autocommit connection to the target for the whole runbook, opened on first use: capability
        functions take it, and each reads what belongs together in one transaction of its own.

        A connection the server dropped is opened again (`db.live`)."""
        self._conn = live(self._conn, self.target)
        return self._conn

    def read_only(self, confirm: bool) -> str:
        """Why this run must change nothing on the target, for `check(..., skipped=...)` of the steps
        it leaves out; "" when it may change it (a scratch database, or `confirm`)."""
        return "" if confirm or is_scratch(self.conn) else NOTHING_CHANGED

    def query(self, sql: str, **params) -> pd.DataFrame:
        """The result of one SQL statement with bound parameters, as a DataFrame."""
        import sqlalchemy

        with self.engine.connect() as conn:
            return pd.read_sql_query(sqlalchemy.text(sql), conn, params=params)

    def __repr__(self) -> str:
        kind = "embedded" if self.target.embedded else "external"
        return f"<prep-ops session: {self.target.masked_url} (PostgreSQL {self.server_version}, {kind})>"


def _load_sql_magic(target: Target) -> None:
    """Make `%sql` / `%%sql` ready in the running IPython for `target`: a stand-in magic that, on its
    first use, loads ipython-sql (connected to `target`, failing loudly) and hands over to it."""
    try:
        from IPython import get_ipython
        from IPython.core.magic import needs_local_scope
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return

    @needs_local_scope
    def sql(line: str = "", cell: str | None = None, local_ns: dict | None = None):
        return _ipython_sql(shell, target.sqlalchemy_url)(line, cell or "", local_ns)

    shell.register_magic_function(sql, "line_cell", "sql")  # over ipython-sql's after an earlier setup()


def _ipython_sql(shell, url: str):
    """ipython-sql's magic (its `execute`), registered in `shell` and connected to `url`."""
    import prettytable
    from sql.magic import SqlMagic

    shell.extension_manager.load_extension("sql")  # quietly a no-op when an earlier setup() loaded it
    if not isinstance(getattr(shell.find_line_magic("sql"), "__self__", None), SqlMagic):
        shell.register_magics(SqlMagic)  # a later setup()'s stand-in had taken its place
    # ipython-sql 0.5 looks the style up by name; prettytable 3.12 renamed DEFAULT
    style = "DEFAULT" if "DEFAULT" in vars(prettytable) else "_DEPRECATED_DEFAULT"
    shell.run_line_magic("config", f"SqlMagic.style = '{style}'")
    # by default a failing %sql only prints, and the cell passes: make it raise
    shell.run_line_magic("config", "SqlMagic.short_errors = False")
    # the connection string is never shown (it may carry a password)
    shell.run_line_magic("config", "SqlMagic.displaycon = False")
    shell.run_line_magic("config", "SqlMagic.feedback = False")
    _one_line_errors(shell)  # SQLAlchemy is loaded now: a failing %sql statement in one line too
    _use_connection(url)
    return shell.find_line_magic("sql")


def _use_connection(url: str) -> None:
    """ipython-sql's current connection: its own for exactly `url`, made when there is none. Not `%sql URL`:
    that takes any connection whose URL holds the pieces of this one around its @ (`rough_dict_get`), so a
    writable setup() after a read-only one (the same URL without the read-only option) got the read-only one."""
    from sqlalchemy.engine import make_url
    from sql.connection import Connection

    wanted = make_url(url)
    Connection.current = next((c for c in Connection.connections.values() if c.url == wanted), None) or Connection(url)


def setup(database_url: str | None = None, *, sql_magic: bool = True, sql_writes: bool = False) -> Session:
    """Connect to the target (checking it answers), make the %sql magic ready, and return a Session.

    `%sql` and `Session.query` are read-only unless `sql_writes`: an analyst's statement changes nothing
    (a guard against a slip, not a permission: a superuser may still SET default_transaction_read_only
    off). The runbooks' own steps work through `Session.conn` and prep_ops, not through them."""
    _checks.clear()
    _watch_cells()
    target = resolve_target(database_url)
    with connect(target) as conn:
        version = server_version(conn)
    if sql_magic:
        _load_sql_magic(target if sql_writes else target.read_only())
    return Session(target, version, sql_writes)


def _emit(result: CheckResult) -> None:
    try:
        from IPython.display import display
    except ImportError:
        print(result.line)
        return
    display({"text/plain": result.line, CHECK_MIME: result.record}, raw=True)


def check(name: str, passed: bool, detail: str = "", *, must_hold: bool = True, fix: str = "",
          skipped: str = "") -> CheckResult:
    """Record and show one check; a failed must-hold check raises CheckFailed, stopping the run.

    `skipped` (why it was not checked) records SKIP instead: neither a pass nor a failure.
    """
    if skipped:
        return skip(name, skipped)
    result = CheckResult(name, bool(passed), str(detail), must_hold, fix, cell=_cell["key"])
    _checks.append(result)
    _emit(result)
    if must_hold and not result.passed:
        raise CheckFailed(result.line)
    return result


def skip(name: str, why: str) -> CheckResult:
    """Record and show a check that was not made, with the reason: `SKIP name — why`."""
    result = CheckResult(name, False, str(why), must_hold=False, skipped=True, cell=_cell["key"])
    _checks.append(result)
    _emit(result)
    return result


def checks() -> pd.DataFrame:
    """The checks recorded since `setup()`."""
    return pd.DataFrame([c.record for c in _checks],
                        columns=["name", "passed", "detail", "must_hold", "fix", "skipped", "at"])


def summary(title: str = "") -> pd.DataFrame:
    """The closing summary: every check of this run by name with its status (the fix only where it
    failed or warned), also recorded in the executed notebook."""
    frame = checks()
    frame.insert(1, "status", [c.status for c in _checks])
    frame["fix"] = frame["fix"].where(frame["status"].isin(["FAIL", "WARN"]), "")
    frame = frame.set_index("name")
    counts = status_counts([c.record for c in _checks])
    failed = counts["FAIL"]
    payload = {"title": title, "checks": len(frame), "failed": failed, "skipped": counts["SKIP"],
               "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    shown = ", ".join(f"{n} {word}" for word, n in counts.items() if n)
    try:
        from IPython.display import display

        display({"text/plain": f"{title}: {len(frame)} checks" + (f" ({shown})" if shown else ""), SUMMARY_MIME: payload},
                raw=True)
    except ImportError:
        pass
    return frame


__all__ = ["setup", "check", "skip", "checks", "summary", "status", "status_counts", "Session",
           "CheckResult", "mask_url", "STATUSES", "NOTHING_CHANGED"]
