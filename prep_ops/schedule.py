"""When each runbook may run in `prep-ops run -j N`: its notebook metadata `prep_ops.schedule`, and the
dispatcher that starts runbooks as slots free up.

The kinds, by what a runbook touches:
- "first": makes the data the others read (01). Alone among the target's runbooks, before them.
- "parallel": reads the target (02, 03, 04). Beside each other, after the "first" ones.
- "target": changes the target, nothing else (05 maintains it, 07 migrates it). One at a time, after
  the "parallel" ones, with no other runbook of the target beside it.
- "drill": works only in scratch databases and roles of its own, never the target (10, 11, 12).
  Beside any runbook except an "alone" one; it fills the slots the target's runbooks leave free. Asked
  to work on the target instead (`mode` other than drill), it is scheduled "alone".
- "alone" (the default: a runbook that says nothing): changes or watches the whole server (06 grants
  server-wide roles and audits them, 08 reports every session and lock). Last, one by one, with nothing
  beside it. Metadata that is not an object naming a known kind counts as saying nothing.

The target's runbooks keep that order (first, parallel, target, alone; within a kind, the order
given), and they go before a drill when both could take a free slot: they are the longer chain.
"""

import json
from pathlib import Path

SCHEDULES = ("first", "parallel", "target", "drill", "alone")
_PHASES = ("first", "parallel", "target", "alone")  # the target's runbooks, in this order


def schedule(notebook: Path) -> str:
    """A runbook's kind (see the module's docstring); "alone" when its metadata names none it knows."""
    document = json.loads(Path(notebook).read_text(encoding="utf-8"))
    metadata = document.get("metadata") if isinstance(document, dict) else None
    ours = metadata.get("prep_ops") if isinstance(metadata, dict) else None
    value = ours.get("schedule") if isinstance(ours, dict) else None
    return value if isinstance(value, str) and value in SCHEDULES else "alone"


class Dispatch:
    """Which runbooks to start next, for up to `jobs` at once; pure bookkeeping (no processes): call
    `ready()` for what to start now, `done(notebook)` when one ends, until `finished`."""

    def __init__(self, notebooks: list[Path], jobs: int, alone: set[Path] | frozenset = frozenset()):
        """`alone`: runbooks scheduled "alone" whatever their metadata says (a drill asked to work on the
        target, runner._live_drills)."""
        kinds = {nb: "alone" if nb in alone else schedule(nb) for nb in notebooks}
        self.jobs = jobs
        # phases of the target's runbooks: each "parallel" runbook shares one phase, the others one each
        self._phases: list[tuple[str, list[Path]]] = []
        for kind in _PHASES:
            chosen = [nb for nb in notebooks if kinds[nb] == kind]
            if kind == "parallel" and chosen:
                self._phases.append((kind, chosen))
            else:
                self._phases += [(kind, [nb]) for nb in chosen]
        self._drills = [nb for nb in notebooks if kinds[nb] == "drill"]
        self._kinds = kinds
        self.running: set[Path] = set()
        self._phase_running: set[Path] = set()  # the target's runbooks running, all of the first phase

    @property
    def finished(self) -> bool:
        return not (self._phases or self._drills or self.running)

    def ready(self) -> list[Path]:
        """The runbooks to start now (counted as running from here)."""
        started = []
        while len(self.running) < self.jobs and (notebook := self._next()) is not None:
            self.running.add(notebook)
            started.append(notebook)
        return started

    def done(self, notebook: Path) -> None:
        self.running.discard(notebook)
        self._phase_running.discard(notebook)
        while self._phases and not self._phases[0][1] and not self._phase_running:
            self._phases.pop(0)  # that phase is over: the next may begin

    def _next(self) -> Path | None:
        if any(self._kinds[nb] == "alone" for nb in self.running):
            return None  # nothing beside an "alone" runbook
        if self._phases:
            kind, waiting = self._phases[0]
            starts = waiting and (kind == "parallel" or not self._phase_running) \
                and (kind != "alone" or not (self.running or self._drills))
            if starts:
                notebook = waiting.pop(0)
                self._phase_running.add(notebook)
                return notebook
        if self._drills:
            return self._drills.pop(0)
        return None
