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
application is still blocked (and how to undo that), so that nobody at 3 a.m. is left guessing.
"""

import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import psycopg
from psycopg import sql

from .. import notebook
from ..db import Target, connect
from ..errors import CheckFailed, ParameterError, StepFailed, database_error, first_line
from ..paths import runs_dir

MODES = ("drill", "live")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}")


@dataclass
class Action:
    """One statement a step runs: `text` as shown and reported (never a password), and the statement
    with its bound parameters."""

    text: str
    statement: sql.Composable
    params: tuple | dict | None = None


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


@dataclass
class Hold:
    """Something a step left in place on purpose (a blocked role) and the statements that undo it."""

    what: str
    undo: list[Action]
    since: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


def drill_server(target: Target) -> tuple[Target, str]:
    """Where a drill makes its scratch database: the target's server when it is a scratch server
    (embedded, or $PREP_OPS_SCRATCH=1), else the embedded server; and a one-line note saying which."""
    if target.scratch:
        return target, f"drill on the target's server ({target.masked_url})"
    from ..verify import scratch_server

    return scratch_server(), "drill on the embedded server: the target is not a scratch server, so it is left alone"


def check_mode(mode) -> str:
    """`mode` when it is one of MODES, else ParameterError."""
    if mode not in MODES:
        raise ParameterError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


def incidents_dir() -> Path:
    """Where incident reports and their executed notebooks go: runs/incidents/."""
    return runs_dir() / "incidents"


def check_id(incident_id) -> str:
    """`incident_id` when it is a name (letters, digits, '.', '_', '-'; at most 80; never a path), else ParameterError."""
    if not isinstance(incident_id, str) or not _ID.fullmatch(incident_id):
        raise ParameterError(f"incident_id must be letters, digits, '.', '_' or '-' (at most 80, "
                             f"starting with a letter or digit), not {str(incident_id)[:100]!r}")
    return incident_id


def new_id(kind: str) -> str:
    """A fresh incident id: the time and the kind, e.g. 20261126-031502-data-recovery."""
    return f"{datetime.now():%Y%m%d-%H%M%S}-{kind}"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _show(line: str) -> None:
    print(line, flush=True)


class Incident:
    """The record of one incident runbook run."""

    def __init__(self, kind: str, title: str, target: Target, *, incident_id: str | None = None,
                 mode: str = "drill", confirm: bool = False, directory: Path | None = None):
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
        self._current: _Step | None = None

    # --- what a step may do ---------------------------------------------------------------------
    @property
    def may_change(self) -> bool:
        """Whether steps that change something run: always in a drill, in live mode only with confirm."""
        return self.mode == "drill" or self.confirm

    @property
    def report_path(self) -> Path:
        return self.directory / f"{self.id}.md"

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
        """Run `actions` on `conn` (an autocommit connection; default: one opened to the incident's target)
        in one transaction, or only record them when changes are not allowed. Returns the texts of the
        statements run ([] when not).

        `autocommit` runs each statement on its own, for those that cannot run inside a transaction
        (CREATE INDEX CONCURRENTLY); a failure then names the statements that did take effect."""
        if not actions:
            return []
        if not self.may_change:
            for action in actions:
                self.would(action.text)
            return []
        if conn is None:
            with connect(self.target, autocommit=True) as own:
                return self.run(actions, own, autocommit=autocommit)
        done = []
        try:
            if autocommit:
                for action in actions:
                    conn.execute(action.statement, action.params)
                    done.append(action.text)
                    self._ran(action.text)
            else:
                with conn.transaction():
                    for action in actions:
                        conn.execute(action.statement, action.params)
                        done.append(action.text)
        except psycopg.Error as exc:
            failed = actions[len(done)].text
            kept = (f"the {len(done)} before it took effect" if done else "none took effect") if autocommit else \
                f"none of this step's {len(actions)} statement(s) took effect"
            raise database_error(exc, f"`{failed}` failed, so {kept}") from None
        if not autocommit:
            for text in done:
                self._ran(text)
        return done

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
            return notebook.check(name, passed, detail, must_hold=must_hold, fix=fix, skipped=skipped)
        word = "PASS" if passed else ("FAIL" if must_hold else "WARN")
        self._record("check", f"{word} {name}" + (f": {detail}" if detail else ""))
        return notebook.check(name, passed, detail, must_hold=must_hold, fix=fix)

    # --- what stays in place between steps ------------------------------------------------------
    def hold(self, key: str, what: str, undo: list[Action]) -> None:
        """Remember that `what` stays in place (e.g. a role blocked) until `release(key)`."""
        self.holds[key] = Hold(what, undo)

    def release(self, key: str) -> None:
        self.holds.pop(key, None)

    def _holds_sentence(self) -> str:
        if not self.holds:
            return ""
        parts = []
        for hold in self.holds.values():
            undo = "; ".join(a.text for a in hold.undo)
            parts.append(f"{hold.what} (since {hold.since:%H:%M:%S} UTC; to undo: {undo})")
        return " STILL IN PLACE: " + " and ".join(parts) + "."

    # --- steps ----------------------------------------------------------------------------------
    @contextmanager
    def step(self, number: int, title: str, *, next_if_failed: str):
        """A numbered step: timed and recorded; on failure, StepFailed says which step, why, and what next."""
        current = _Step(number, title, _now())
        self.steps.append(current)
        self._current = current
        _show(f"== step {number}: {title}")
        try:
            yield self
        except Exception as exc:  # any failure of the step becomes one message that says what to do
            cause = first_line(exc) if not isinstance(exc, CheckFailed) else str(exc)
            current.failed = cause
            message = f"step {number} ({title}) failed: {cause}. Next: {next_if_failed}.{self._holds_sentence()}"
            self._record("failed", message)
            current.ended = _now()
            self._current = None
            self.write()
            raise StepFailed(message) from None
        current.ended = _now()
        self._current = None
        self.write()

    # --- the report -----------------------------------------------------------------------------
    def outcome(self) -> str:
        failed = [s for s in self.steps if s.failed]
        if failed:
            return f"STOPPED at step {failed[0].number} ({failed[0].title})"
        frame = notebook.checks()
        bad = frame[~frame["passed"] & frame["must_hold"]] if len(frame) else frame
        return "all must-hold checks passed" if len(bad) == 0 else f"{len(bad)} must-hold check(s) failed"

    def markdown(self) -> str:
        """The report: header, the steps with what each found and did, statements, checks, timeline."""
        mode = self.mode + ("" if self.mode == "drill" else f" (confirm={self.confirm})")
        lines = [f"# Incident {self.id}: {self.title}", "",
                 f"- **mode:** {mode}",
                 f"- **target:** `{self.target.masked_url}`",
                 f"- **opened:** {self.opened:%Y-%m-%d %H:%M:%S} UTC",
                 f"- **written:** {_now():%Y-%m-%d %H:%M:%S} UTC",
                 f"- **outcome:** {self.outcome()}"]
        lines += [f"- **{name}:** {value}" for name, value in self.facts.items()]
        if self.holds:
            lines.append(f"- **still in place:**{self._holds_sentence().removeprefix(' STILL IN PLACE:')}")
        for step in self.steps:
            took = f", {(step.ended - step.began).total_seconds():.1f} s" if step.ended else ""
            lines += ["", f"## {step.number}. {step.title}", "",
                      f"_{step.began:%H:%M:%S} UTC{took}_" + (" — **FAILED**" if step.failed else ""), ""]
            events = [e for e in self.events if e.step == step.number]
            for kind, label in (("found", "Found"), ("did", "Did"), ("note", "Note"), ("would", "Would run with confirm=True"),
                                ("check", "Check"), ("failed", "Failed")):
                lines += [f"- {label}: {e.text}" for e in events if e.kind == kind]
            ran = [e.text for e in events if e.kind == "ran"]
            if ran:
                lines += ["", "Statements executed:", "", "```sql", *[t.rstrip(";") + ";" for t in ran], "```"]
        lines += ["", "## Timeline", "", "| time (UTC) | step | event |", "|---|---|---|"]
        for event in self.events:
            text = event.text.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {event.at:%H:%M:%S} | {event.step or ''} | {event.kind}: {text} |")
        return "\n".join(lines) + "\n"

    def write(self) -> Path:
        """Write (or rewrite) the report; returns its path."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.report_path.write_text(self.markdown())
        return self.report_path

    def __repr__(self) -> str:
        return f"<incident {self.id}: {self.title}, {self.mode}, report {self.report_path}>"
