"""Every runbook's default run on the server under test, judged as `prep-ops run --all` judges it.

The run is the nbval pass's (the suite runs the runbooks first, so each executes once per server; see
`runbook_run` in conftest.py). What `run --all` itself adds (the order, side by side, the summary) is
tested on stand-in runbooks in test_cli.py.
"""

import pytest
from conftest import passes_of_what_was_not_looked_at

from prep_ops import runner

RUNBOOKS = [notebook.stem for notebook in runner.available()]


@pytest.mark.parametrize("name", RUNBOOKS)
def test_runbook_passes_and_passes_only_what_it_looked_at(runbook_run, name):
    run = runbook_run(name)
    assert run.ok, run.error or [c for c in run.checks if c["status"] == "FAIL"]
    assert run.checks, "a runbook with no check proves nothing"
    assert passes_of_what_was_not_looked_at([run]) == []


def test_every_runbook_has_a_schedule_for_run_all():
    """A runbook without one runs alone (safe, but slow): each of ours says how it may run."""
    import json

    for notebook in runner.available():
        metadata = json.loads(notebook.read_text())["metadata"]
        assert metadata.get("prep_ops", {}).get("schedule") in runner.SCHEDULES, notebook.stem
