"""The incident record: steps, statements run or only shown, failures that say what to do, the report."""

import json
import os
import re
import stat

import psycopg
import pytest
from psycopg import sql

from prep_ops import db, incident, notebook
from prep_ops.errors import CheckFailed, ParameterError, RecoveryError
from prep_ops.incident import Action, Incident, StepFailed


def _comment_action(value: str) -> Action:
    statement = sql.SQL("COMMENT ON TABLE users IS {}").format(sql.Literal(value))
    return Action(f"COMMENT ON TABLE users IS '{value}'", statement)


def _comment(target) -> str | None:
    with db.connect(target, autocommit=True) as conn:
        return conn.execute("SELECT obj_description('users'::regclass, 'pg_class')").fetchone()[0]


@pytest.fixture
def record(migrated, tmp_path):
    def make(mode="drill", confirm=False):
        return Incident("test", "Test incident", migrated, incident_id="test-1", mode=mode, confirm=confirm, directory=tmp_path)
    return make


def test_drill_runs_statements_and_reports_them(record, migrated):
    inc = record()
    with inc.step(1, "Change something", next_if_failed="nothing"):
        assert inc.run([_comment_action("drilled")]) == ["COMMENT ON TABLE users IS 'drilled'"]
    assert _comment(migrated) == "drilled"
    report = inc.report_path.read_text()
    assert "## 1. Change something" in report and "COMMENT ON TABLE users IS 'drilled';" in report
    assert "outcome:** all must-hold checks passed" in report


def test_live_without_confirm_only_records_what_it_would_run(record, migrated, capsys):
    inc = record(mode="live")
    with inc.step(1, "Change something", next_if_failed="nothing"):
        assert inc.run([_comment_action("live")]) == []
    assert _comment(migrated) is None
    assert "WOULD (confirm=True to run): COMMENT ON TABLE users IS 'live'" in capsys.readouterr().out
    assert "Would run with confirm=True: COMMENT ON TABLE users IS 'live'" in inc.report_path.read_text()


def test_live_with_confirm_runs(record, migrated):
    inc = record(mode="live", confirm=True)
    with inc.step(1, "Change something", next_if_failed="nothing"):
        inc.run([_comment_action("confirmed")])
    assert _comment(migrated) == "confirmed"


def test_a_failing_statement_rolls_back_the_whole_step(record, migrated):
    inc = record()
    broken = Action("SELECT 1/0", sql.SQL("SELECT 1/0"))
    with pytest.raises(StepFailed, match=r"step 2 \(Two statements\) failed: `SELECT 1/0` failed, so none .* division by zero\. Next: call the DBA\."):
        with inc.step(2, "Two statements", next_if_failed="call the DBA"):
            inc.run([_comment_action("half"), broken])
    assert _comment(migrated) is None
    assert "STOPPED at step 2 (Two statements)" in inc.report_path.read_text()


def test_a_failed_step_says_what_is_still_blocked_and_how_to_undo_it(record):
    inc = record()
    undo = [Action('ALTER ROLE "app" CONNECTION LIMIT -1', sql.SQL("SELECT 1"))]
    inc.hold("application", "role app blocked", undo)
    with pytest.raises(StepFailed) as failed:
        with inc.step(3, "Restore", next_if_failed="re-run step 3"):
            raise RuntimeError("disk full")
    message = str(failed.value)
    assert message.startswith("step 3 (Restore) failed: disk full. Next: re-run step 3.")
    assert 'STILL IN PLACE: role app blocked' in message and 'to undo: ALTER ROLE "app" CONNECTION LIMIT -1' in message
    assert "still in place:** role app blocked" in inc.report_path.read_text()


def test_a_failed_check_stops_the_step_with_its_fix(record):
    inc = record()
    with pytest.raises(StepFailed, match=r"FAIL data back — restore again\. Next: keep the application blocked"):
        with inc.step(4, "Verify", next_if_failed="keep the application blocked"):
            inc.check("data back", False, fix="restore again")


@pytest.mark.parametrize("mode, incident_id, message", [
    ("rehearsal", "x", "mode must be one of drill, live"),
    ("drill", "../../etc/passwd", "incident_id must be"),
    ("drill", "a b", "incident_id must be"),
])
def test_bad_mode_or_id_is_refused(migrated, mode, incident_id, message):
    with pytest.raises(ParameterError, match=message):
        Incident("test", "Test", migrated, incident_id=incident_id, mode=mode)


def test_new_ids_name_the_kind():
    assert incident.new_id("data-recovery").endswith("-data-recovery")


def test_drill_server_is_the_target_only_when_it_is_a_scratch_server(migrated, monkeypatch):
    server, note = incident.drill_server(migrated)
    assert server == migrated and "target's server" in note
    monkeypatch.delenv("PREP_OPS_SCRATCH", raising=False)
    external = db.Target(migrated.url, embedded=False)
    server, note = incident.drill_server(external)
    assert server.embedded and "left alone" in note


def test_statements_run_against_a_stopped_server_fail_in_one_line(record, tmp_path):
    inc = Incident("test", "Test", db.Target("postgresql://nobody:secret@127.0.0.1:1/x", False), incident_id="t",
                   directory=tmp_path)
    with pytest.raises(StepFailed) as failed:
        with inc.step(1, "Block", next_if_failed="check the server"):
            inc.run([_comment_action("x")])
    assert "cannot connect" in str(failed.value) and "secret" not in str(failed.value)
    assert not isinstance(failed.value, psycopg.Error)


def test_a_skipped_check_is_kept_in_the_timeline_and_never_passes(record):
    inc = record(mode="live")
    with inc.step(1, "Stop the application", next_if_failed="nothing"):
        skipped = inc.check("application stopped", True, "ignored", skipped="live without confirm=True")
        checked = inc.check("backup verified", True, "3 checks")
    assert skipped.status == "SKIP" and not skipped.passed and checked.status == "PASS"
    report = inc.report_path.read_text()
    assert "SKIP application stopped — live without confirm=True" in report and "PASS backup verified" in report


# --- one connection, the record on disk, drill names (issue 14) -----------------------------------
def test_one_connection_per_incident_reopened_when_the_server_drops_it(record, server):
    inc = record()
    first = inc.conn
    assert inc.conn is first  # the same connection for every step
    with db.connect(server, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (first.info.backend_pid,))
    again = inc.conn
    assert again is not first and again.execute("SELECT 1").fetchone() == (1,)
    inc.close()
    assert again.closed


def test_the_record_is_on_disk_before_the_change_and_a_rerun_keeps_the_original_undo(record, migrated):
    inc = record()
    original = [Action("COMMENT ON TABLE users IS NULL", sql.SQL("COMMENT ON TABLE users IS NULL"))]
    with inc.step(1, "Change", next_if_failed="nothing"):
        inc.change("comment", "a comment on users", [_comment_action("held")], original, state={"comment": None})
    assert _comment(migrated) == "held"
    again = record()  # the same incident_id: the earlier run was killed
    assert again.taken_over("comment") and "STILL IN PLACE: a comment on users" in again.events[0].text
    later = [Action("COMMENT ON TABLE users IS 'held'", sql.SQL("COMMENT ON TABLE users IS 'held'"))]
    with again.step(1, "Change", next_if_failed="nothing"):
        again.change("comment", "a comment on users", [_comment_action("held")], later)
    assert [a.text for a in again.holds["comment"].undo] == ["COMMENT ON TABLE users IS NULL"]
    with again.step(2, "Undo", next_if_failed="nothing"):
        again.run(again.holds["comment"].undo)
        again.release("comment")
    assert _comment(migrated) is None and record().holds == {}


def test_a_change_that_fails_holds_nothing(record, migrated):
    inc = record()
    with pytest.raises(StepFailed) as failed:
        with inc.step(1, "Change", next_if_failed="nothing"):
            inc.change("broken", "nothing really", [Action("SELECT 1/0", sql.SQL("SELECT 1/0"))], [])
    assert "STILL IN PLACE" not in str(failed.value) and record().holds == {}


def test_an_interrupted_step_says_what_is_still_in_place(record, capsys):
    inc = record()
    inc.hold("application", "role app blocked", [Action('ALTER ROLE "app" CONNECTION LIMIT 7', sql.SQL("SELECT 1"))])
    with pytest.raises(KeyboardInterrupt):
        with inc.step(2, "Assess", next_if_failed="nothing"):
            raise KeyboardInterrupt
    shown = capsys.readouterr().out
    assert 'step 2 (Assess) interrupted. STILL IN PLACE: role app blocked' in shown
    assert 'to undo: ALTER ROLE "app" CONNECTION LIMIT 7' in shown


def test_the_record_holding_undo_sql_is_written_for_its_owner_only(record):
    inc = record()
    inc.hold("application", "role app blocked", [Action("SELECT 1", sql.SQL("SELECT 1"))])
    assert stat.S_IMODE(inc.record_path.stat().st_mode) == 0o600


@pytest.mark.parametrize("tamper", ["group_writable", "others_writable", "another_owner", "symbolic_link"])
def test_an_incident_record_others_could_edit_is_refused_and_its_undo_sql_never_runs(record, migrated, tmp_path, tamper):
    """A re-run executes the undo statements of the record it finds: one that someone else could have
    written is refused in one line, before anything of it runs."""
    inc = record()
    planted = [Action("COMMENT ON TABLE users IS 'planted'", sql.SQL("COMMENT ON TABLE users IS 'planted'"))]
    inc.hold("comment", "a comment on users", planted)
    file = inc.record_path
    if tamper == "group_writable":
        file.chmod(0o620)
    elif tamper == "others_writable":
        file.chmod(0o602)
    elif tamper == "another_owner":
        if os.geteuid() != 0:
            pytest.skip("giving a file to another user needs root")
        os.chown(file, 65534, -1)  # nobody: the suite runs as root, which may give a file away
    else:
        moved = file.with_name("elsewhere.json")
        file.rename(moved)
        file.symlink_to(moved)
    with pytest.raises(ParameterError, match=r"a re-run executes the undo statements in it, so it is not used"):
        record()
    assert _comment(migrated) is None


def test_a_record_of_another_target_is_refused(record, migrated, tmp_path, server):
    record().save()
    with pytest.raises(ParameterError, match="give this run another incident_id"):
        Incident("test", "Test", server, incident_id="test-1", directory=tmp_path)


@pytest.mark.parametrize("incident_id", ["a", "Data.Recovery-1", "x" * 80, "20261126-031502-a3f9-data-recovery"])
def test_drill_labels_are_identifiers_that_differ_per_id(incident_id):
    label = incident.drill_label(incident_id)
    assert re.fullmatch(r"[a-z0-9_]{1,34}", label)
    other = incident_id[:-1] + ("y" if incident_id[-1] != "y" else "z")
    assert label != incident.drill_label(other) and label != incident.drill_label(incident_id.upper()[:79] + "-")


@pytest.mark.server_independent
@pytest.mark.parametrize("planted", ["symbolic_link", "group_writable", "not_json", "a_list"])
def test_a_passwords_file_planted_or_spoilt_is_refused_in_one_line_and_never_read(tmp_path, planted):
    """The security runbook adds the passwords it generates to runs/incidents/<id>.passwords, reading the
    file already there first: it read it through a symbolic link (another file's contents merged into the
    passwords file), from a file others could write, and gave a traceback for one that is not JSON."""
    from prep_ops.incident import passwords
    from prep_ops.scram import Secret

    file = tmp_path / "inc.passwords"
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text('{"planted": "known to someone else"}')
    if planted == "symbolic_link":
        file.symlink_to(elsewhere)
    else:
        file.write_text({"not_json": "{oops", "a_list": "[1, 2]"}.get(planted, '{"kept": "x"}'))
        file.chmod(0o620 if planted == "group_writable" else 0o600)
    with pytest.raises(ParameterError, match=rf"^{re.escape(str(file))} (is a symbolic link|may be written by others|is not an incident's passwords file)"):
        passwords._write_private(file, {"app": Secret("new one")})
    assert elsewhere.read_text() == '{"planted": "known to someone else"}'


@pytest.mark.server_independent
def test_a_passwords_file_of_our_own_keeps_its_passwords_and_gets_the_new_ones(tmp_path):
    from prep_ops.incident import passwords
    from prep_ops.scram import Secret

    file = tmp_path / "inc.passwords"
    passwords._write_private(file, {"app": Secret("first")})
    passwords._write_private(file, {"dba": Secret("second")})
    assert json.loads(file.read_text()) == {"app": "first", "dba": "second"}
    assert stat.S_IMODE(file.stat().st_mode) == 0o600


_HOLDS_THE_INCIDENT = """
import sys, time
from prep_ops import db
from prep_ops.incident import Incident
Incident("test", "Test incident", db.Target(sys.argv[1], True), incident_id="test-1", directory=sys.argv[2])
print("ready", flush=True)
time.sleep(300)
"""


def test_a_second_run_of_the_same_incident_at_once_is_refused_and_a_killed_one_is_taken_over(record, migrated, tmp_path):
    """Two runs of one incident_id at once: the second took over the first's holds while it still ran, wrote the
    record under it (a role's limit read while blocked became its undo), and undid what the first still used."""
    import subprocess
    import sys

    first = subprocess.Popen([sys.executable, "-c", _HOLDS_THE_INCIDENT, migrated.url, str(tmp_path)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "ready"
        with pytest.raises(ParameterError, match=rf"incident test-1 is being run by another process \(pid {first.pid}\)"):
            record()
    finally:
        first.kill()
        first.wait()
    assert record().id == "test-1"  # the killed run's lock went with it


def test_an_incident_id_of_another_runbook_is_refused_before_its_report_is_replaced(migrated, incident_id):
    """`prep-ops run 12 -p incident_id <a runbook 10 incident>`: the security run took over the record and
    wrote its report and executed notebook over the data recovery's."""
    from pathlib import Path

    from prep_ops import runner

    recovery = Incident("data-recovery", "Data recovery", migrated, incident_id=incident_id, mode="live")
    report = recovery.write().read_text()
    with pytest.raises(ParameterError, match=f"incident {incident_id} is a data-recovery incident, not security"):
        Incident("security", "Security incident", migrated, incident_id=incident_id, mode="live")
    security = Path(__file__).parent.parent / "notebooks" / "12_incident_security.ipynb"
    with pytest.raises(ParameterError, match=f"12_incident_security: incident {incident_id} is a data-recovery incident"):
        runner.incident_values(security, {"incident_id": incident_id})
    assert recovery.report_path.read_text() == report


def test_a_step_that_failed_and_then_ended_well_when_run_again_does_not_stop_the_report(record, migrated):
    """In JupyterLab a step failed (a lock, a trigger), the cause was fixed and its cell run again, ending well, and
    every later step too: the report still said 'outcome: STOPPED at step 1' for an incident that went through."""
    notebook._checks.clear()
    inc = record()
    with pytest.raises(StepFailed):
        with inc.step(1, "Change something", next_if_failed="fix it and run this step again"):
            raise RecoveryError("the table is locked")
    assert inc.outcome() == "STOPPED at step 1 (Change something)"
    with inc.step(1, "Change something", next_if_failed="fix it and run this step again"):
        inc.run([_comment_action("second try")])
    with inc.step(2, "Check it", next_if_failed="nothing"):
        inc.check("comment set", _comment(migrated) == "second try")
    assert inc.outcome() == "all must-hold checks passed"
    assert "outcome:** all must-hold checks passed" in inc.write().read_text()


def test_an_incidents_outcome_counts_its_own_checks_only(record, migrated):
    """The outcome counted every must-hold FAIL the process had recorded: after another runbook's (or, in pytest,
    another test's) failed check, an incident whose every check passed said '1 must-hold check(s) failed'
    (test_drill_runs_statements_and_reports_them failed when run after test_incident_data_recovery.py)."""
    with pytest.raises(CheckFailed):
        notebook.check("a check of something else", False)
    inc = record()
    with inc.step(1, "Check it", next_if_failed="nothing"):
        inc.check("comment unset", _comment(migrated) is None)
    assert inc.outcome() == "all must-hold checks passed"
    with pytest.raises(StepFailed):
        with inc.step(2, "Check it again", next_if_failed="nothing"):
            inc.check("comment set", _comment(migrated) is not None)
    assert inc.outcome() == "STOPPED at step 2 (Check it again)"


def test_a_nan_parameter_is_the_same_parameter_not_a_changed_one():
    """`prep-ops run 11 -p target_ms NaN`: papermill gives the notebook the very float start() was given, and
    NaN equals nothing, itself neither: each step was refused as if the parameter had been changed."""
    from prep_ops.incident.step_order import StepOrder, _same

    nan = float("nan")
    assert _same(nan, nan) and _same(None, None) and not _same(1.0, 2.0)
    order = StepOrder("perf-1", given={"target_ms": nan})
    order.refuse(1, "Identify the bottleneck")  # outside IPython no notebook: nothing compared, nothing raised


def test_a_notebook_variable_that_was_not_the_runs_parameter_never_refuses_a_step():
    """A notebook of one's own driving the steps, `start(target, "live", confirm=True)` with a literal, and a
    variable `query` of its own for something else: every step was refused ("query is '...' in the notebook
    now, and this run was set up with None"). Only what the notebook's variables held at the start is
    watched; a parameter cell edited after the start is still refused."""
    from prep_ops.incident.step_order import StepOrder

    notebook = {"query": "SELECT my own report", "confirm": False, "mode": "live"}
    order = StepOrder("perf-2")
    order.watch({"mode": "live", "confirm": True, "query": None, "repeats": 5}, names=notebook)
    assert order.given == {"mode": "live"}
    notebook.update(query="SELECT another report of mine", confirm=True)
    assert order.changed_parameters(names=notebook) == []
    notebook["mode"] = "drill"  # the parameter cell the run came from, edited
    assert order.changed_parameters(names=notebook) == [
        "mode is 'drill' in the notebook now, and this run was set up with 'live'"]
