"""Runbook 03 run headless through the runner: with apply=True it creates the proposed indexes in
its scratch database and the before/after check passes; by default it changes nothing."""

import pytest

from prep_ops import db, runner, scratch

LABS = "prep_ops_plans_"  # the runbook's own scratch databases: prep_ops_plans_<run id>, dropped at its end


@pytest.fixture
def runbook(server):
    notebook = runner.find("03")
    # the parameters this test sets must be the notebook's (a renamed one would be silently ignored)
    assert {"query", "scale", "apply"} <= set(runner.parameters(notebook))
    yield notebook
    for name in scratch.existing(server, LABS):  # what a failed run left
        scratch.drop(server, name)


def _outputs_of_cell_with(run, text: str) -> list:
    import nbformat

    cells = nbformat.read(run.output, as_version=4).cells
    (cell,) = [c for c in cells if c.cell_type == "code" and text in c.source]
    return cell.outputs


def checks_by_name(run) -> dict[str, dict]:
    return {c["name"]: c for c in run.checks}


def test_apply_creates_the_proposed_index_and_the_query_gets_faster(runbook, server, tmp_path):
    # 20,000 students: enrollments large enough that the roster's scan is a finding, small enough for CI
    run = runner.run_one(runbook, tmp_path, {"query": "course_roster", "scale": 20000, "apply": True})
    assert run.ok, run.error
    checks = checks_by_name(run)
    assert checks["proposed indexes in place"]["passed"]
    assert checks["proposed indexes in place"]["detail"] == "created idx_enrollments_course_id_term"
    faster = checks["query faster with the new indexes"]
    assert faster["passed"] and faster["must_hold"]
    assert "changed access method: Seq Scan → " in faster["detail"] and "on enrollments" in faster["detail"]
    assert any("image/png" in out.get("data", {}) for out in _outputs_of_cell_with(run, "applied.statements"))
    assert scratch.existing(server, LABS) == []  # the run's lab is dropped at its end


def test_default_run_proposes_but_creates_nothing(runbook, server, tmp_path):
    run = runner.run_one(runbook, tmp_path, {"scale": 20000})
    assert run.ok, run.error
    checks = checks_by_name(run)
    assert not checks["proposed indexes in place"]["passed"] and not checks["proposed indexes in place"]["must_hold"]
    # nothing created: no before/after to show, and the comparison is SKIP, not a pass
    compared = checks["query faster with the new indexes"]
    assert compared["status"] == "SKIP" and compared["detail"] == "no index created: nothing to compare"
    assert not any("image/png" in out.get("data", {}) for out in _outputs_of_cell_with(run, "applied.statements"))
    # every step ends in a check: one per numbered step
    assert len(run.checks) == 7
    assert scratch.existing(server, LABS) == []


def test_a_killed_runs_lab_is_dropped_by_the_next_and_a_live_one_is_kept(server):
    old = f"{LABS}{scratch.run_id()}"
    with db.connect(server, autocommit=True) as conn:
        scratch.create(conn, old, confirm=True)  # as a killed run leaves it: nobody connected
    live = scratch.lab_database(server, 10, confirm=True)
    with db.connect(live, autocommit=True):  # a run at work on its lab
        newer = scratch.lab_database(server, 10, confirm=True)
        assert old not in scratch.existing(server, LABS)
        assert {live.database, newer.database} <= set(scratch.existing(server, LABS))
    for name in (live.database, newer.database):
        scratch.drop(server, name)
