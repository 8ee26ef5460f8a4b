"""An incident runbook's record and guard rails, and its report in runs/incidents/<id>.md.

Every runbook of the guide's emergency procedures opens one `Incident` and does its work in
numbered steps (`with incident.step(n, title, next_if_failed=...)`). The record keeps a timeline
with timestamps: what each step found, what it did, each statement it ran, or in live mode
without `confirm` would have run, and its checks. The Markdown report is written again after
every step, so a run that stops half way still leaves a report that says where it stopped.

Two modes: "drill" works on a scratch database the runbook made and damaged itself, so every
step runs for real; "live" works on the target, where a step that changes something only records
what it would run unless `confirm=True`.

A step that fails raises `StepFailed`, naming the step and what to do next, and saying whether the
application is still blocked (and how to undo that), so that nobody at 3 a.m. is left guessing; an
interrupted step (Ctrl-C, a stopped kernel) prints the same "STILL IN PLACE: ..." line.

A person in JupyterLab runs cells again and out of order: each step says what it works from, and a
step whose ground does not hold is refused in one line before it does anything (step_order.py).

The record is also kept as JSON beside the report (journal.py), written before each change: what is
held and the statements that undo it, read before the change. A re-run with the same incident_id
takes over what the earlier (perhaps killed) run still holds, with its undo statements, so that
resuming restores the original state. The record's target must be the same.

One connection per incident: `Incident.conn`, opened on first use, opened again when the server
dropped it, closed by `close()` (the runbooks' clean-up step). Other databases (restored copies,
drill servers) and other roles get connections of their own.
"""

from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import psycopg
from psycopg import sql

from .. import notebook
from ..db import Target, live, require_change
from ..errors import CheckFailed, ParameterError, StepFailed, database_error, first_line
from ..formatting import terminal
from . import journal, report
from .naming import MODES, check_id, check_mode, drill_server, incidents_dir, new_id  # noqa: F401 (the record's API)
from .step_order import StepOrder

SERVER_WIDE = "server-wide: roles are the same in every database of this server"



@dataclass
class Action:
    """One statement a step runs: `text` as shown and reported (never a password), and the statement
    with its bound parameters."""

    text: str
    statement: sql.Composable
    params: tuple | dict | None = None
    server_wide: bool = False  # ALTER ROLE and the like: it changes the role for every database of the server

    @property
    def shown(self) -> str:
        """The text, with a remark when the statement reaches beyond the incident's database."""
        return f"{self.text}  -- {SERVER_WIDE}" if self.server_wide else self.text


@dataclass
class Event:
    at: datetime
    step: int | None
    kind: str  # found, did, would, ran, check, note, failed
    text: str


@dataclass
class _Step:
    number: int
    title: str
    began: datetime
    ended: datetime | None = None
    failed: str = ""
    failed_message: str = ""


@dataclass
class Hold:
    """Something a step left in place on purpose (a blocked role) and the statements that undo it."""

    what: str
    undo: list[Action]
    since: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    state: dict = field(default_factory=dict)  # what was there before, as read (e.g. {"connection_limit": 7})


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _show(line: str) -> None:
    """Print one line of the run (in the notebook): the names in it never make another, nor act on the output."""
    print(terminal(line), flush=True)


class Incident:
    """The record of one incident runbook run."""

    SERVER_WIDE = SERVER_WIDE

    def __init__(self, kind: str, title: str, target: Target, *, incident_id: str | None = None,
                 mode: str = "drill", confirm: bool = False, directory: Path | None = None,
                 conn: psycopg.Connection | None = None):
        check_mode(mode)
        incident_id = incident_id or new_id(kind)
        check_id(incident_id)
        self.kind, self.title, self.target = kind, title, target
        self.id, self.mode, self.confirm = incident_id, mode, bool(confirm)
        self.directory = Path(directory) if directory else incidents_dir()
        self.opened = _now()
        self.events: list[Event] = []
        self.steps: list[_Step] = []
        self.holds: dict[str, Hold] = {}
        self.facts: dict[str, str] = {}
        self._checks: list[notebook.CheckResult] = []  # this incident's checks (the notebook's list holds others too)
        self._current: _Step | None = None
        self.order = StepOrder(incident_id)  # which step may run now (see `step`)
        self._conn = conn  # one already open to the target (a drill's, from its creation on), else opened on first use
        journal.claim(self.directory, incident_id)  # one run of an incident at a time
        self._resume(journal.load(self.directory, incident_id))

    def _resume(self, earlier: dict | None) -> None:
        """Take over what an earlier run of this incident still holds (see journal.py)."""
        if earlier is None:
            return
        if earlier.get("kind") != self.kind:  # its report and notebook would be replaced by another runbook's
            raise ParameterError(f"incident {self.id} is a {earlier.get('kind')} incident, not {self.kind}: give this "
                                 "run another incident_id")
        if earlier.get("target") != self.target.masked_url:
            raise ParameterError(f"incident {self.id} was opened on {earlier.get('target')}, not on "
                                 f"{self.target.masked_url}: give this run another incident_id")
        self.holds = journal.holds_of(earlier)
        self.fact("re-run of", f"the run opened {earlier.get('opened', '?')} UTC, outcome: {earlier.get('outcome', '?')}")
        if self.holds:
            self._record("note", f"taken over from the earlier run:{self.holds_sentence()}")
            _show(f"note: the earlier run of incident {self.id} left this in place, and this run restores it"
                  f"{self.holds_sentence()}")
        if earlier.get("running"):  # it stopped while these ran: done or not, the steps below look again
            self.note(f"the earlier run stopped while running: {'; '.join(map(str, earlier['running']))}")

    # --- the one connection -----------------------------------------------------------------------
    @property
    def conn(self) -> psycopg.Connection:
        """One autocommit connection to the incident's target for the whole runbook, opened on first use,
        opened again when it was closed or the server dropped it (`db.live`)."""
        self._conn = live(self._conn, self.target)
        return self._conn

    def close(self) -> None:
        """Close the incident's connection (the clean-up step's last act; safe to call twice)."""
        if self._conn is not None and not self._conn.closed:
            self._conn.close()

    # --- what a step may do ---------------------------------------------------------------------
    @property
    def may_change(self) -> bool:
        """Whether steps that change something run: always in a drill, in live mode only with confirm."""
        return self.mode == "drill" or self.confirm

    @property
    def report_path(self) -> Path:
        return self.directory / f"{self.id}.md"

    @property
    def record_path(self) -> Path:
        """The JSON record beside the report (journal.py)."""
        return journal.path(self.directory, self.id)

    def _record(self, kind: str, text: str) -> None:
        self.events.append(Event(_now(), self._current.number if self._current else None, kind, text))

    def found(self, text: str) -> None:
        """Record (and show) what a step found."""
        self._record("found", text)
        _show(f"found: {text}")

    def did(self, text: str) -> None:
        """Record (and show) what a step did."""
        self._record("did", text)
        _show(f"did: {text}")

    def note(self, text: str) -> None:
        """Record (and show) a remark: a fallback taken, a step skipped."""
        self._record("note", text)
        _show(f"note: {text}")

    def fact(self, name: str, value) -> None:
        """A line of the report's header (e.g. the backup used)."""
        self.facts[name] = str(value)

    def would(self, text: str) -> None:
        """Record what a step would do with confirm=True (live mode)."""
        self._record("would", text)
        _show(f"WOULD (confirm=True to run): {text}")

    def run(self, actions: list[Action], conn: psycopg.Connection | None = None, *, autocommit: bool = False) -> list[str]:
        """Run `actions` on `conn` (an autocommit connection; default: the incident's, `self.conn`) in
        one transaction, or only record them when changes are not allowed. Returns the texts of the
        statements run ([] when not). The record is written first, naming the statements about to run,
        and the one guard (db.require_change) is passed.

        `autocommit` runs each statement on its own, for those that cannot run inside a transaction
        (CREATE INDEX CONCURRENTLY); a failure then names the statements that did take effect."""
        if not actions:
            return []
        if not self.may_change:
            for action in actions:
                self.would(action.shown)
            return []
        conn = conn if conn is not None else self.conn
        require_change(conn, self.confirm, f"incident {self.id}")
        self.save(running=[a.text for a in actions])
        done = []
        try:
            if autocommit:
                for action in actions:
                    conn.execute(action.statement, action.params)
                    done.append(action)
                    self._ran(action.shown)
            else:
                with conn.transaction():
                    for action in actions:
                        conn.execute(action.statement, action.params)
                        done.append(action)
        except psycopg.Error as exc:
            failed = actions[len(done)].text
            kept = (f"the {len(done)} before it took effect" if done else "none took effect") if autocommit else \
                f"none of this step's {len(actions)} statement(s) took effect"
            raise database_error(exc, f"`{failed}` failed, so {kept}") from None
        if not autocommit:
            for action in done:
                self._ran(action.shown)
        self.save()
        return [a.text for a in done]

    def change(self, key: str, what: str, actions: list[Action], undo: list[Action], conn: psycopg.Connection | None = None,
               *, state: dict | None = None) -> list[str]:
        """Run `actions`, which leave `what` in place until `undo` runs (a role blocked), as `run` does;
        the hold is recorded on disk BEFORE they run, and dropped again when they fail (the transaction
        rolled back). Live without confirm, only shown and nothing held. Returns the texts run."""
        if not actions or not self.may_change:
            return self.run(actions, conn)
        self.hold(key, what, undo, state=state)
        try:
            return self.run(actions, conn)
        except BaseException:
            if not self.taken_over(key):  # an earlier run's hold stays: its change may still be in place
                self.release(key)
            raise

    def taken_over(self, key: str) -> bool:
        """Whether what `key` holds was left by an earlier run of this incident (read from its record)."""
        return key in self.holds and self.holds[key].since < self.opened

    def _ran(self, text: str) -> None:
        self._record("ran", text)
        _show(f"ran: {text}")

    def ran(self, texts: list[str]) -> None:
        """Record statements that a prep_ops function ran itself (e.g. roles.apply's steps)."""
        for text in texts:
            self._ran(text)

    def check(self, name: str, passed: bool, detail: str = "", *, must_hold: bool = True, fix: str = "",
              skipped: str = ""):
        """A runbook check (see prep_ops.check), also kept in the incident's timeline; with `skipped`
        (why it was not checked), SKIP: neither passed nor failed."""
        if skipped:
            self._record("check", f"SKIP {name} — {skipped}")
        else:
            word = "PASS" if passed else ("FAIL" if must_hold else "WARN")
            self._record("check", f"{word} {name}" + (f": {detail}" if detail else ""))
        made = len(notebook._checks)
        try:  # a failed must-hold check raises, after it is recorded
            return notebook.check(name, passed, detail, must_hold=must_hold, fix=fix, skipped=skipped)
        finally:
            self._checks.extend(notebook._checks[made:])

    # --- what stays in place between steps ------------------------------------------------------
    def hold(self, key: str, what: str, undo: list[Action], *, state: dict | None = None) -> None:
        """Remember, on disk at once, that `what` stays in place (e.g. a role blocked) until `release(key)`.

        A hold already there (an earlier run's, taken over) is kept as it is: its undo statements were
        read before the first change, and reading them again would take the blocked state for the original."""
        if key not in self.holds:
            self.holds[key] = Hold(what, undo, state=dict(state or {}))
        self.save()

    def release(self, key: str) -> None:
        """What `key` held is undone: forget it, on disk at once."""
        self.holds.pop(key, None)
        self.save()

    def holds_sentence(self) -> str:
        """" STILL IN PLACE: <what> (since ...; to undo: <statements>) and ...", or "" when nothing is held."""
        if not self.holds:
            return ""
        parts = []
        for hold in self.holds.values():
            undo = "; ".join(a.text for a in hold.undo)
            parts.append(f"{hold.what} (since {hold.since:%H:%M:%S} UTC; to undo: {undo})")
        return " STILL IN PLACE: " + " and ".join(parts) + "."

    # --- steps ----------------------------------------------------------------------------------
    def given(self, **parameters) -> None:
        """The runbook's parameters as this run was set up with them (`start`), by their names in the notebook:
        a step refuses to run while one of them differs there (the parameter cell changed, setup not run again).
        Only those the notebook's variables of that name held at the start are watched (StepOrder.watch)."""
        self.order.watch(parameters)

    @contextmanager
    def step(self, number: int, title: str, *, next_if_failed: str, after: tuple[int, ...] = (), once: bool = False,
             undoes: tuple[int, ...] = (), closes: bool = False):
        """A numbered step: timed and recorded; on failure, StepFailed says which step, why, and what next.

        `after`: the steps whose results this one works from; each must have ended well in this run and not
        been undone since. `once`: the step changes something on those results, so it runs again only after
        each of them ran again (it would act on what they found before it, which may no longer hold).
        `undoes`: the steps whose effect this one takes back when it ends well (resuming service undoes the
        block). `closes`: the run's clean-up; after it ends well, no step runs in this run. A step refused
        raises StepOutOfOrder before anything runs. A step that fails or is interrupted no longer counts as
        ended well."""
        self.order.refuse(number, title, tuple(after), once)
        current = _Step(number, title, _now())
        self.steps.append(current)
        self._current = current
        _show(f"== step {number}: {title}")
        try:
            yield self
        except Exception as exc:  # any failure of the step becomes one message that says what to do
            cause = first_line(exc) if not isinstance(exc, CheckFailed) else str(exc)
            self._end(current, cause, f"step {number} ({title}) failed: {cause}. Next: {next_if_failed}.{self.holds_sentence()}")
            raise StepFailed(current.failed_message) from None
        except BaseException:  # interrupted (Ctrl-C, the kernel stopped): say what stays, then stop
            self._end(current, "interrupted",
                      f"step {number} ({title}) interrupted.{self.holds_sentence() or ' Nothing is held.'}")
            _show(current.failed_message)
            raise
        self._end(current)
        self.order.ended_well(number, title, current.ended, undoes=tuple(undoes), closes=closes)

    def _end(self, current: _Step, failed: str = "", message: str = "") -> None:
        current.failed, current.failed_message, current.ended = failed, message, _now()
        if failed:
            self.order.failed(current.number)
        if message:
            self._record("failed", message)
        self._current = None
        self.write()

    # --- the report -----------------------------------------------------------------------------
    def outcome(self) -> str:
        """STOPPED at the first step whose latest attempt failed (a step that failed, then was run again and
        ended well, in JupyterLab, did not stop the run), else what the checks say."""
        latest = {s.number: s for s in self.steps}
        failed = sorted((s for s in latest.values() if s.failed), key=lambda s: s.number)
        if failed:
            return f"STOPPED at step {failed[0].number} ({failed[0].title})"
        standing = {id(c) for c in notebook._checks}  # a cell run again drops its earlier run's checks
        bad = [c for c in self._checks if id(c) in standing and c.status == "FAIL"]
        return "all must-hold checks passed" if not bad else f"{len(bad)} must-hold check(s) failed"

    def markdown(self) -> str:
        """The report: header, the steps with what each found and did, statements, checks, timeline."""
        return report.markdown(self)

    def save(self, *, running: list[str] | None = None) -> Path:
        """Write the JSON record (journal.py): the incident, its steps, what is held with its undo
        statements, and the statements about to run (`running`). Returns its path."""
        return journal.write(self.record_path, journal.record_of(self, running or []))

    def write(self) -> Path:
        """Write (or rewrite) the report and the record; returns the report's path."""
        self.save()
        self.report_path.write_text(self.markdown())
        return self.report_path

    def __repr__(self) -> str:
        return f"<incident {self.id}: {self.title}, {self.mode}, report {self.report_path}>"
