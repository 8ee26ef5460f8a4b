"""Which step of an incident runbook may run now, as a person runs the cells in JupyterLab: again, out of
order, after changing a parameter cell without running the setup cell again.

Each step names the steps whose results it works from (`after`), whether it changes something once on
them (`once`), which steps' effects it takes back (`undoes`: resuming service undoes the block) and
whether it ends the run (`closes`). `StepOrder.refuse` raises StepOutOfOrder, in one line and before the
step does anything, where its ground does not hold: a repair run a second time on an assessment made
before the application came back would write the backup's rows over the application's new work; a
step run with confirm=True after the notebook's confirm was set to False would change what the DBA
meant only to see.
"""

from dataclasses import dataclass, field
from datetime import datetime

from ..errors import StepOutOfOrder


@dataclass
class _Ended:
    """A step that ended well in this run: when, in which order, and what undid it since (if anything)."""

    title: str
    at: datetime
    order: int
    undone_by: str = ""


def _same(now, given) -> bool:
    """Whether a parameter's value in the notebook is the one given (a value that cannot be compared is taken as
    the same: the check is there to catch an edited parameter cell, not to judge odd objects)."""
    if now is given:  # the very object (NaN included, which equals nothing, itself neither)
        return True
    try:
        return bool(now == given)
    except Exception:
        return True


def _notebook_names() -> dict | None:
    """The running IPython's namespace (the notebook's variables), or None outside IPython."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return shell.user_ns if shell is not None else None


@dataclass
class StepOrder:
    """What an incident's run has done so far, step by step, and the parameters it was set up with."""

    incident_id: str
    given: dict = field(default_factory=dict)  # the runbook's parameters as `start` was given them
    _ended: dict[int, _Ended] = field(default_factory=dict)  # each step's last good end in this run
    _count: int = 0
    _closed_by: str = ""  # the step that ended the run (its clean-up), once it ended well

    def watch(self, parameters: dict, names: dict | None = None) -> None:
        """The parameters this run was set up with that came from the notebook's variables of the same name
        (`names`: the notebook's namespace, IPython's by default): those equal to that variable when the run
        starts. A parameter given otherwise (a literal in the call, a notebook of one's own whose `query` or
        `confirm` is a variable for something else) is not watched: a later change of that variable is no
        change of this run's parameters. Outside IPython, every parameter is kept (nothing is compared)."""
        names = _notebook_names() if names is None else names
        self.given = {name: value for name, value in parameters.items()
                      if names is None or (name in names and _same(names[name], value))}

    def changed_parameters(self, names: dict | None = None) -> list[str]:
        """The parameters whose value in the notebook (`names`, IPython's by default) is not the one this run
        was set up with."""
        names = _notebook_names() if names is None else names
        if names is None:
            return []
        return [f"{name} is {names[name]!r} in the notebook now, and this run was set up with {value!r}"
                for name, value in self.given.items() if name in names and not _same(names[name], value)]

    def refuse(self, number: int, title: str, after: tuple[int, ...] = (), once: bool = False) -> None:
        """StepOutOfOrder when step `number` may not start now; nothing recorded, nothing run."""
        this = f"step {number} ({title})"
        changed = self.changed_parameters()
        if changed:
            raise StepOutOfOrder(f"{this} not run: {'; '.join(changed)}: run the setup cell again (then the steps "
                                 "from step 1) for the change to take effect, or put the parameter back")
        if self._closed_by:
            raise StepOutOfOrder(f"{this} not run: this run of incident {self.incident_id} was ended by "
                                 f"{self._closed_by}; run the runbook's setup cell again for a new run (the same "
                                 "incident_id takes over what is still held)")
        for needed in after:
            ended = self._ended.get(needed)
            if ended is None:
                raise StepOutOfOrder(f"{this} not run: it works from what step {needed} finds, and step {needed} has "
                                     f"not ended well in this run: run step {needed}'s cell first")
            if ended.undone_by:
                raise StepOutOfOrder(f"{this} not run: {ended.undone_by} undid step {needed} ({ended.title}): "
                                     f"run step {needed} again first")
        done = self._ended.get(number)
        if not once or done is None:
            return
        stale = [n for n in after if self._ended[n].order < done.order]
        if not after:
            raise StepOutOfOrder(f"{this} not run again: it already ran at {done.at:%H:%M:%S} UTC in this run")
        if stale:
            steps = ", ".join(map(str, stale))
            raise StepOutOfOrder(f"{this} not run again: it already ran at {done.at:%H:%M:%S} UTC on what step(s) "
                                 f"{steps} found before it, which may no longer hold; run step(s) {steps} again "
                                 "first, then this one")

    def ended_well(self, number: int, title: str, at: datetime, *, undoes: tuple[int, ...] = (),
                   closes: bool = False) -> None:
        """Step `number` ended well: the steps after it may work from it."""
        self._count += 1
        self._ended[number] = _Ended(title, at, self._count)
        for undone in undoes:
            if undone in self._ended:
                self._ended[undone].undone_by = f"step {number} ({title}, {at:%H:%M:%S} UTC)"
        if closes:
            self._closed_by = f"step {number} ({title}) at {at:%H:%M:%S} UTC"

    def failed(self, number: int) -> None:
        """Step `number` failed or was interrupted: what it found or did before is no ground for the steps after it."""
        self._ended.pop(number, None)
