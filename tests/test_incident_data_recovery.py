"""Runbook 10 end to end: the drill recovers every row; live mode without confirm changes nothing."""

import json
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from psycopg import sql

from prep_ops import backup, db, incident, migrate, roles, runner, scratch, seed, verify
from prep_ops.errors import ParameterError, StepFailed, StepOutOfOrder
from prep_ops.incident import lockout, recovery, recovery_steps
from prep_ops.incident.drills import recovery as recovery_drill

from conftest import _create, _drop, check_statuses, incident_of, notebook_outputs, passes_of_what_was_not_looked_at, schema_dump

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "10_incident_data_recovery.ipynb"


def _server_state(server: db.Target) -> list:
    with db.connect(server, autocommit=True) as conn:
        return conn.execute("SELECT rolname, rolcanlogin, rolconnlimit FROM pg_roles ORDER BY 1").fetchall()


def test_drill_recovers_every_row_and_leaves_nothing_behind(runbook_run, server):
    result = runbook_run("10")  # the runbook's default run: the drill
    incident_id = incident_of(result)
    assert result.ok, result.error
    passed = {c["name"] for c in result.checks if c["passed"]}
    assert {"application stopped", "damage found where it was done", "data equals the backup (zero rows lost)",
            "application can connect again"} <= passed
    report = (incident.incidents_dir() / f"{incident_id}.md").read_text()
    for title in ("1. Stop the application", "2. Assess the damage", "3. Restore", "4. Verify the data",
                  "5. Resume service", "6. Document and clean up"):
        assert f"## {title}" in report
    assert "CONNECTION LIMIT 0" in report and "outcome:** all must-hold checks passed" in report
    with db.connect(server, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'prep_ops_drill_recovery%%' "
                            "OR datname LIKE 'prep_ops_recovery_%%'").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname LIKE %s",
                            (recovery_drill.ROLE_PREFIX + "%",)).fetchone()[0] == 0
    drill_database = recovery_drill.names(incident_id)[0]
    assert not [p for p in (backup.backups_dir() / "drills").glob("*") if p.name.startswith(drill_database)]


def test_live_without_confirm_changes_nothing(tmp_path, incident_id, server):
    target = _create(server)
    try:
        with db.connect(target, autocommit=True) as conn:
            migrate.apply(conn)
            seed.seed(conn, students=300, seed=5)
            roles.apply(conn, roles.RoleSet.with_prefix("prep_ops_livetest_"), confirm=True)
        backup.backup(target, "full", "custom", directory=tmp_path)
        with db.connect(target) as conn:  # the incident: real damage, which live mode must only report
            conn.execute("DELETE FROM enrollments WHERE id % 4 = 0")
            conn.commit()
            before = backup.table_checksums(conn)
        dump, cluster = schema_dump(target), _server_state(server)
        result = runner.run_one(NOTEBOOK, tmp_path, {"database_url": target.url, "mode": "live", "incident_id": incident_id,
                                                   "app_role": "prep_ops_livetest_app", "backup_dir": str(tmp_path)})
        assert result.ok, result.error
        with db.connect(target) as conn:
            assert backup.table_checksums(conn) == before
        assert schema_dump(target) == dump and _server_state(server) == cluster
        outputs = notebook_outputs(tmp_path / NOTEBOOK.name)
        assert "WOULD (confirm=True to run): ALTER ROLE" in outputs and "WOULD (confirm=True to run): put back" in outputs
        report = (incident.incidents_dir() / f"{incident_id}.md").read_text()
        assert re.search(r"public\.enrollments: [1-9]\d* rows missing", report)
        status = {c["name"]: c["status"] for c in result.checks}  # what live mode did not do is SKIP, never PASS
        for name in ("application stopped", "data equals the backup (zero rows lost)", "application can connect again"):
            assert status[name] == "SKIP", name
            assert f"SKIP {name} — " in report
        assert passes_of_what_was_not_looked_at([result]) == []
    finally:
        with db.connect(target, autocommit=True) as conn:
            roles.drop(conn, roles.RoleSet.with_prefix("prep_ops_livetest_"), confirm=True)
        _drop(server, target)


def test_live_without_a_backup_stops_at_step_two_and_says_what_to_do(tmp_path, incident_id, migrated):
    result = runner.run_one(NOTEBOOK, tmp_path, {"database_url": migrated.url, "mode": "live", "incident_id": incident_id,
                                               "backup_dir": str(tmp_path / "none")})
    assert not result.ok
    assert "StepFailed: step 2 (Assess the damage) failed: no full backup of" in result.error
    assert "STOPPED at step 2" in (incident.incidents_dir() / f"{incident_id}.md").read_text()


# --- the runbook's steps, called as the notebook calls them ---------------------------------------
_CHECK_NAMES = ("application stopped", "backup verified by a restore", "damage found where it was done",
                "data equals the backup (zero rows lost)", "application can connect again")


def _checks(run) -> dict[str, str]:
    return check_statuses(run, _CHECK_NAMES)


def test_each_step_is_one_call_and_the_drill_recovers_every_row(tmp_path, incident_id):
    run = recovery_steps.start(db.resolve_target(), "drill", incident_id=incident_id,
                               backup_dir=tmp_path / "backups", drill_students=200)
    try:
        assert len(recovery_steps.stop_application(run)) == 1 and "application" in run.inc.holds
        found = recovery_steps.assess_damage(run)
        assert set(found.damaged) == set(run.drill.damage) and found is run.found
        repaired = recovery_steps.restore(run).set_index("table")
        assert repaired.loc["public.enrollments", "inserted"] == run.drill.damage["public.enrollments"]
        assert not recovery.damaged_tables(recovery_steps.verify_data(run))
        recovery_steps.resume_service(run)
        assert set(run.inc.holds) == {"copies"}  # the restored copy stays until step 6
    finally:
        recovery_steps.clean_up(run)
    checks = _checks(run)
    assert {name: checks.pop(name, None) for name in _CHECK_NAMES if name in checks} == {
        "application stopped": "PASS", "backup verified by a restore": "PASS", "damage found where it was done": "PASS",
        "data equals the backup (zero rows lost)": "PASS", "application can connect again": "PASS"}
    # what the verification could not compare (a PostgreSQL 15 backup restored on 18: the deparsed kinds),
    # each a SKIP line of its own, never folded into the PASS above
    assert set(checks.values()) <= {"SKIP"}, checks
    assert run.drill.target.database.startswith(recovery_drill.DATABASE + "_")
    with db.connect(run.drill.server, autocommit=True) as conn:
        assert not scratch.existing(conn, run.drill.target.database)
        assert not scratch.existing(conn, run.copy_prefix)
    assert run.drill.conn.closed and not run.inc.holds  # the one connection, closed by step 6


def test_live_steps_without_an_app_role_or_a_backup_say_so_and_stop_at_step_two(migrated, tmp_path, incident_id):
    run = recovery_steps.start(migrated, "live", incident_id=incident_id, backup_dir=tmp_path)
    assert recovery_steps.stop_application(run).empty and not run.inc.holds
    assert [e.text for e in run.inc.events if e.kind == "note"][0].startswith("no app_role given")
    with pytest.raises(StepFailed, match=r"step 2 \(Assess the damage\) failed: no full backup of"):
        recovery_steps.assess_damage(run)


def test_start_refuses_a_bad_mode_or_scope_before_making_anything(server):
    with pytest.raises(ParameterError, match="mode must be one of drill, live"):
        recovery_steps.start(server, "rehearsal")
    with pytest.raises(ParameterError, match="scope must be one of rows, database"):
        recovery_steps.start(server, "drill", scope="everything")
    with db.connect(server, autocommit=True) as conn:
        assert not scratch.existing(conn, recovery_drill.DATABASE)


# --- killed runs and nothing damaged (issue 14) ---------------------------------------------------
@pytest.fixture
def app_database(server, tmp_path):
    """A seeded scratch database with a full backup in tmp_path and an application login role at
    CONNECTION LIMIT 7; yields (target, role, its login target). All dropped afterwards."""
    target = _create(server)
    role, password = f"prep_ops_test_app_{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    with db.connect(target, autocommit=True) as conn:
        migrate.apply(conn)
        seed.seed(conn, students=100, seed=3)
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CONNECTION LIMIT 7 PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(password)))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(target.database), sql.Identifier(role)))
    backup.backup(target, "full", "custom", directory=tmp_path)
    yield target, role, roles.login(target, role, password)
    _drop(server, target)
    with db.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _limit(server, role) -> int:
    with db.connect(server, autocommit=True) as conn:
        return conn.execute("SELECT rolconnlimit FROM pg_roles WHERE rolname = %s", (role,)).fetchone()[0]


def _copies_left(server) -> list[str]:
    with db.connect(server, autocommit=True) as conn:
        return scratch.existing(conn, recovery.COPY_PREFIX)


_KILLED_AFTER_STEP_1 = """
import os, signal, sys
from prep_ops import db
from prep_ops.incident import recovery_steps
run = recovery_steps.start(db.Target(sys.argv[1], True), "live", incident_id=sys.argv[2], confirm=True,
                           app_role=sys.argv[3], backup_dir=sys.argv[4])
recovery_steps.stop_application(run)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_killed_live_recovery_restores_original_connection_limit(app_database, incident_id, server, tmp_path):
    target, role, login = app_database
    killed = subprocess.run([sys.executable, "-c", _KILLED_AFTER_STEP_1, target.url, incident_id, role, str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _limit(server, role) == 0 and not lockout.can_connect(login)[0]  # blocked, and the run gone
    record = json.loads((incident.incidents_dir() / f"{incident_id}.json").read_text())
    assert record["holds"]["application"]["state"]["connection_limit"] == 7
    assert record["holds"]["application"]["undo"][0]["text"].endswith("CONNECTION LIMIT 7")

    run = recovery_steps.start(target, "live", incident_id=incident_id, confirm=True, app_role=role, backup_dir=tmp_path)
    assert "STILL IN PLACE: role " in run.inc.events[0].text  # said before anything runs
    recovery_steps.stop_application(run)  # blocks again: the original limit is the one kept, never 0
    assert run.inc.holds["application"].state["connection_limit"] == 7
    recovery_steps.assess_damage(run)
    recovery_steps.restore(run)
    recovery_steps.verify_data(run)
    recovery_steps.resume_service(run)
    recovery_steps.clean_up(run)
    assert _limit(server, role) == 7
    assert lockout.can_connect(login) == (True, "connected")
    assert json.loads((incident.incidents_dir() / f"{incident_id}.json").read_text())["holds"] == {}


def test_a_rerun_naming_another_app_role_than_the_killed_run_blocked_is_refused(app_database, incident_id, server,
                                                                                 tmp_path):
    """Killed after step 1 blocked role A, re-run with app_role B: step 1 blocked B, step 5 put back A's
    limit and dropped the hold, and B stayed at CONNECTION LIMIT 0 after a run that said ok."""
    target, role, login = app_database
    killed = subprocess.run([sys.executable, "-c", _KILLED_AFTER_STEP_1, target.url, incident_id, role, str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    other = f"prep_ops_test_other_{uuid.uuid4().hex[:6]}"
    with db.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CONNECTION LIMIT 5").format(sql.Identifier(other)))
    try:
        run = recovery_steps.start(target, "live", incident_id=incident_id, confirm=True, app_role=other,
                                   backup_dir=tmp_path)
        with pytest.raises(StepFailed, match=f"its earlier run blocked role '{role}', not '{other}': re-run with app_role"):
            recovery_steps.stop_application(run)
        assert _limit(server, other) == 5 and _limit(server, role) == 0  # nothing changed by the refused run
        run.inc.close()
        again = recovery_steps.start(target, "live", incident_id=incident_id, confirm=True, app_role=role,
                                     backup_dir=tmp_path)
        recovery_steps.stop_application(again)
        recovery_steps.resume_service(again)
        again.inc.close()
        assert _limit(server, role) == 7
    finally:
        with db.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(other)))


def test_a_failing_step_after_the_block_says_what_is_still_in_place(app_database, incident_id, tmp_path):
    target, role, login = app_database
    run = recovery_steps.start(target, "live", incident_id=incident_id, confirm=True, app_role=role,
                               backup_dir=tmp_path / "none")
    try:
        recovery_steps.stop_application(run)
        with pytest.raises(StepFailed) as failed:
            recovery_steps.assess_damage(run)
        assert f'STILL IN PLACE: role {role} blocked' in str(failed.value)
        assert f'to undo: ALTER ROLE "{role}" CONNECTION LIMIT 7' in str(failed.value)
    finally:
        recovery_steps.resume_service(run)
    assert lockout.can_connect(login)[0]


@pytest.mark.parametrize("confirm", [True, False])
def test_live_recovery_with_nothing_damaged_completes(app_database, incident_id, server, tmp_path, confirm):
    target, role, login = app_database
    result = runner.run_one(NOTEBOOK, tmp_path, {"database_url": target.url, "mode": "live", "incident_id": incident_id,
                                               "confirm": confirm, "app_role": role, "backup_dir": str(tmp_path)})
    assert result.ok, result.error
    assert "no table differs from the backup" in (incident.incidents_dir() / f"{incident_id}.md").read_text()
    assert _copies_left(server) == []
    assert _limit(server, role) == 7 and lockout.can_connect(login)[0]
    status = {c["name"]: c["status"] for c in result.checks}
    assert status["application stopped"] == ("PASS" if confirm else "SKIP")
    assert status["data equals the backup (zero rows lost)"] == "PASS"  # compared, and equal


def test_two_runs_at_once(tmp_path, server):
    """Two `prep-ops run 10` started together, each with an incident id of its own (none given): both
    pass, in drill databases of their own, and neither drops the other's."""
    command = [sys.executable, "-m", "prep_ops", "run", "10", "-p", "drill_students", "200", "-p", "backup_dir"]
    runs = [subprocess.Popen([*command, str(tmp_path / f"backups-{n}")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for n in (1, 2)]
    outputs = [run.communicate(timeout=900) for run in runs]
    for run, (out, err) in zip(runs, outputs):
        failed = [line for line in out.splitlines() if " FAIL " in line or line.startswith(("FAIL", "error"))]
        assert run.returncode == 0, "\n".join(failed) + "\n" + out[-1500:] + err[-2000:]
    folders = [Path(re.search(r"summary\.json in (\S+)", out).group(1)) for out, _ in outputs]
    reports = [(folder / json.loads((folder / "summary.json").read_text())["notebooks"][0]["report"]).resolve()
               for folder in folders]
    databases = [re.search(r"target:\*\* `[^`]*/(prep_ops_drill_recovery_\w+)", r.read_text()).group(1) for r in reports]
    assert folders[0] != folders[1] and reports[0] != reports[1] and databases[0] != databases[1]
    with db.connect(server, autocommit=True) as conn:
        assert scratch.existing(conn, recovery_drill.DATABASE) == [] and scratch.existing(conn, recovery.COPY_PREFIX) == []


@pytest.fixture
def shop(scratch, tmp_path):
    """A database that is not the school's: two tables in schema app, a full backup of it in tmp_path."""
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA app; CREATE TABLE app.items (id int PRIMARY KEY, name text); "
                     "CREATE TABLE app.orders (id int PRIMARY KEY, item int); "
                     "INSERT INTO app.items SELECT g, 'item ' || g FROM generate_series(1, 50) g; "
                     "INSERT INTO app.orders SELECT g, g % 50 + 1 FROM generate_series(1, 80) g")
    backup.backup(scratch, "full", "custom", directory=tmp_path)
    return scratch


def _recover(target, incident_id, tmp_path, scope: str = "rows"):
    run = recovery_steps.start(target, "live", incident_id=incident_id, confirm=True, backup_dir=tmp_path, scope=scope)
    try:
        recovery_steps.stop_application(run)
        recovery_steps.assess_damage(run)
        recovery_steps.restore(run)
        recovery_steps.verify_data(run)
    finally:
        recovery_steps.clean_up(run)
    return run


def test_a_dropped_table_is_never_zero_rows_lost(shop, incident_id, tmp_path):
    """DROP TABLE app.orders (80 rows): step 2 said 'no table differs from the backup' and step 4 PASSed
    'data equals the backup (zero rows lost): 0 table(s) checked'."""
    with db.connect(shop, autocommit=True) as conn:
        conn.execute("DROP TABLE app.orders")
    with pytest.raises(StepFailed, match=r"FAIL data equals the backup \(zero rows lost\).*gone, with all their rows: app.orders"):
        _recover(shop, incident_id, tmp_path)
    report = (incident.incidents_dir() / f"{incident_id}.md").read_text()
    assert "app.orders: the table is gone (80 rows in the backup)" in report


def test_a_dropped_table_with_scope_point_in_time_is_never_zero_rows_lost(shop, incident_id, tmp_path):
    """pagila live, archive.old_rentals (3,000 rows) dropped beside deleted payments: scope='point-in-time'
    put the payments back and step 4 PASSed 'zero rows lost' (outcome: all must-hold checks passed); with
    the table dropped alone it PASSed 'no table differs from the backup'."""
    with db.connect(shop, autocommit=True) as conn:
        conn.execute("DROP TABLE app.orders")
    with pytest.raises(StepFailed, match=r"FAIL zero rows lost, including the work after the last logical backup: "
                                         r"gone, with all their rows: app.orders"):
        _recover(shop, incident_id, tmp_path, scope="point-in-time")


def test_a_dropped_table_is_restored_by_scope_database_and_then_zero_rows_lost_passes(shop, incident_id, tmp_path):
    """With only a table dropped, step 3 said "nothing damaged: nothing to put back" and skipped the database
    restore that scope='database' asked for, the one scope that brings a table back; step 4 then failed."""
    with db.connect(shop, autocommit=True) as conn:
        conn.execute("DROP TABLE app.orders")
    run = _recover(shop, incident_id, tmp_path, scope="database")
    checks = [e.text for e in run.inc.events if e.kind == "check"]
    assert any(c.startswith("PASS data equals the backup (zero rows lost)") for c in checks), checks
    with db.connect(shop, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM app.orders").fetchone() == (80,)


def test_a_dropped_table_with_scope_rows_is_named_in_step_3_not_called_nothing_damaged(shop, incident_id, tmp_path):
    with db.connect(shop, autocommit=True) as conn:
        conn.execute("DROP TABLE app.orders")
    with pytest.raises(StepFailed):
        _recover(shop, incident_id, tmp_path)
    report = (incident.incidents_dir() / f"{incident_id}.md").read_text()
    assert "no rows to put back; gone, with all their rows: app.orders (only scope='database' restores a table)" in report
    assert "nothing damaged" not in report


def test_rows_added_since_the_backup_are_kept_and_zero_rows_lost_still_passes(shop, incident_id, tmp_path):
    """Work done after the backup (a row added) beside the damage: the repair keeps it, as it should, and step 4
    FAILed 'zero rows lost' with '0 rows still missing or changed', the table differing from the backup by it."""
    with db.connect(shop, autocommit=True) as conn:
        conn.execute("INSERT INTO app.items VALUES (1000, 'new work'); DELETE FROM app.items WHERE id <= 5")
    run = _recover(shop, incident_id, tmp_path)
    checks = {e.text.split(":")[0]: e.text for e in run.inc.events if e.kind == "check"}
    assert checks["PASS data equals the backup (zero rows lost)"].endswith(
        "1 table(s) checked, 0 rows still missing or changed, 1 rows added since the backup kept")
    with db.connect(shop, autocommit=True) as conn:
        assert conn.execute("SELECT count(*), max(id) FROM app.items").fetchone() == (51, 1000)


def test_rows_put_back_under_a_trigger_stamping_them_are_zero_rows_lost(shop, incident_id, tmp_path):
    """pagila's film stamps `last_update` in a BEFORE UPDATE trigger: the rows step 3 put back were stamped
    again on the way in, so step 4 FAILed 'zero rows lost' on the very rows it had repaired and told the
    DBA the backup or the moment was wrong. Step 3 now holds BEFORE triggers off while it writes, and says so."""
    with db.connect(shop, autocommit=True) as conn:
        conn.execute("CREATE FUNCTION app.stamp() RETURNS trigger LANGUAGE plpgsql AS "
                     "$$ BEGIN NEW.name = NEW.name || ' (edited ' || clock_timestamp() || ')'; RETURN NEW; END $$; "
                     "CREATE TRIGGER stamp BEFORE INSERT OR UPDATE ON app.items FOR EACH ROW EXECUTE FUNCTION app.stamp(); "
                     "UPDATE app.items SET name = 'damaged' WHERE id <= 5")
    run = _recover(shop, incident_id, tmp_path)
    checks = {e.text.split(":")[0]: e.text for e in run.inc.events if e.kind == "check"}
    assert checks["PASS data equals the backup (zero rows lost)"].endswith("1 table(s) checked, 0 rows still missing or changed")
    report = (incident.incidents_dir() / f"{incident_id}.md").read_text()
    assert "app.items: 0 rows inserted, 5 updated (BEFORE triggers held off while writing: stamp)" in report
    with db.connect(shop, autocommit=True) as conn:
        assert conn.execute("SELECT name FROM app.items WHERE id = 3").fetchone() == ("item 3",)
        assert conn.execute("SELECT tgenabled FROM pg_trigger WHERE tgname = 'stamp'").fetchone() == ("O",)


_FROZEN = ("CREATE FUNCTION app.frozen() RETURNS event_trigger LANGUAGE plpgsql AS "
           "$$ BEGIN RAISE EXCEPTION 'DDL is frozen'; END $$; "
           "CREATE EVENT TRIGGER frozen ON ddl_command_start WHEN TAG IN ('ALTER TABLE') EXECUTE FUNCTION app.frozen(); ")


def _step_4_failure(shop, incident_id, tmp_path, after_step_3: str) -> str:
    """Steps 1 to 4 (scope rows, live, confirmed) with `after_step_3` run between the repair and its check;
    the line step 4 failed with."""
    run = recovery_steps.start(shop, "live", incident_id=incident_id, confirm=True, backup_dir=tmp_path)
    try:
        recovery_steps.stop_application(run)
        recovery_steps.assess_damage(run)
        recovery_steps.restore(run)
        with db.connect(shop, autocommit=True) as conn:
            conn.execute(after_step_3)
        with pytest.raises(StepFailed) as failed:
            recovery_steps.verify_data(run)
    finally:
        recovery_steps.clean_up(run)
    return str(failed.value)


def test_step_4_blames_the_before_triggers_only_when_rows_are_left_in_a_table_where_they_fired(shop, incident_id,
                                                                                               tmp_path):
    """A BEFORE trigger fired on app.items (a DDL freeze refused holding it off) but changed nothing there,
    and the rows left over are in app.orders, deleted again after step 3: step 4's fix blamed the triggers
    whenever one had fired. It now gives the generic next step; a trigger that did rewrite the rows put back
    is still named, with its table."""
    with db.connect(shop, autocommit=True) as conn:
        conn.execute("CREATE FUNCTION app.same() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$; "
                     "CREATE TRIGGER same BEFORE INSERT OR UPDATE ON app.items FOR EACH ROW EXECUTE FUNCTION app.same(); "
                     + _FROZEN + "UPDATE app.items SET name = 'damaged' WHERE id <= 5; DELETE FROM app.orders WHERE id <= 3")
    line = _step_4_failure(shop, incident_id, tmp_path, "DELETE FROM app.orders WHERE id = 10")
    assert "FAIL data equals the backup (zero rows lost): 2 table(s) checked, 1 rows still missing or changed" in line
    assert "trigger" not in line and "Next: keep the application blocked; compare the tables listed above" in line
    report = (incident.incidents_dir() / f"{incident_id}.md").read_text()
    assert "(BEFORE triggers fired, not held off: same (holding it off was refused: DDL is frozen))" in report


def test_step_4_blames_the_before_triggers_that_rewrote_the_rows_put_back_naming_their_table(shop, incident_id,
                                                                                             tmp_path):
    with db.connect(shop, autocommit=True) as conn:
        conn.execute("CREATE FUNCTION app.stamp() RETURNS trigger LANGUAGE plpgsql AS "
                     "$$ BEGIN NEW.name = NEW.name || ' (edited)'; RETURN NEW; END $$; "
                     "CREATE TRIGGER stamp BEFORE INSERT OR UPDATE ON app.items FOR EACH ROW EXECUTE FUNCTION app.stamp(); "
                     + _FROZEN + "UPDATE app.items SET name = 'damaged' WHERE id <= 5; DELETE FROM app.orders WHERE id <= 3")
    line = _step_4_failure(shop, incident_id, tmp_path, "DELETE FROM app.orders WHERE id = 10")
    assert "2 table(s) checked, 6 rows still missing or changed" in line
    assert ("the tables' BEFORE triggers rewrote the rows put back (app.items: stamp (holding it off was refused: DDL "
            "is frozen)): re-run step 3 as the tables' owner or a superuser") in line
    assert line.split(" — ", 1)[1].split(". Next:")[0].endswith(
        "; rows are left in app.orders too, where no BEFORE trigger fired")


def test_a_rerun_without_confirm_after_a_killed_block_says_the_application_is_still_blocked(app_database, incident_id,
                                                                                            server, tmp_path):
    """Killed after step 1 (confirmed) blocked the role, re-run live without confirm: it said 'the role was not
    blocked', SKIPped 'application can connect again' and ended ok, the role still at CONNECTION LIMIT 0."""
    target, role, login = app_database
    killed = subprocess.run([sys.executable, "-c", _KILLED_AFTER_STEP_1, target.url, incident_id, role, str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run = recovery_steps.start(target, "live", incident_id=incident_id, app_role=role, backup_dir=tmp_path)
    recovery_steps.stop_application(run)
    assert any(e.text.startswith("SKIP application stopped — live without confirm=True: this run did not block it; an "
                                 "earlier run's block is still in place") for e in run.inc.events if e.kind == "check")
    with pytest.raises(StepFailed, match=f"FAIL application can connect again: role {role} blocked since .* by an earlier "
                                         f"run of this incident; to undo: ALTER ROLE \"{role}\" CONNECTION LIMIT 7"):
        recovery_steps.resume_service(run)
    run.inc.close()
    assert _limit(server, role) == 0
    again = recovery_steps.start(target, "live", incident_id=incident_id, confirm=True, app_role=role, backup_dir=tmp_path)
    recovery_steps.resume_service(again)
    again.inc.close()
    assert _limit(server, role) == 7


# --- scope='database' killed, and its drill (attacks on 'a killed operation leaves things as they were') -----
def _contents(target) -> dict:
    from prep_ops import checksums

    with db.connect(target, autocommit=True) as conn:
        return checksums.table_checksums(conn)


_KILLED_AFTER_THE_SAFETY_BACKUP = """
import os, signal, sys
from prep_ops import db, restore
from prep_ops.incident import recovery_steps
def killed(*args, **kwargs):  # the safety backup is taken; the run dies before the restored database is made
    os.kill(os.getpid(), signal.SIGKILL)
restore._create_beside = killed
run = recovery_steps.start(db.Target(sys.argv[1], True), "live", incident_id=sys.argv[2], confirm=True, scope="database")
recovery_steps.stop_application(run)
recovery_steps.assess_damage(run)
recovery_steps.restore(run)
"""


def test_a_database_restore_killed_after_its_safety_backup_is_not_taken_for_the_backup_by_the_rerun(
        shop, incident_id, tmp_path, monkeypatch):
    """scope='database' live, killed in step 3 after the safety backup of the damaged database: that backup
    was the newest full backup in backups/, so the re-run measured the damage against the damage itself,
    found 'no table differs from the backup', put nothing back and PASSed 'zero rows lost'."""
    monkeypatch.setenv("PREP_OPS_BACKUP_DIR", str(tmp_path))  # the default backups/ folder, where `shop`'s backup is
    before = _contents(shop)
    with db.connect(shop, autocommit=True) as conn:
        conn.execute("DELETE FROM app.items WHERE id <= 10; UPDATE app.orders SET item = 1")
    killed = subprocess.run([sys.executable, "-c", _KILLED_AFTER_THE_SAFETY_BACKUP, shop.url, incident_id],
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    record = json.loads((incident.incidents_dir() / f"{incident_id}.json").read_text())
    assert record["running"] and "safety backup into" in record["running"][0]  # what it was doing, on disk
    run = _recover(shop, incident_id, tmp_path, scope="database")
    assert any(e.text.startswith("the earlier run stopped while running: restore ") for e in run.inc.events)
    assert set(run.found.damaged) == {"app.items", "app.orders"}
    assert _contents(shop) == before
    assert backup.latest(tmp_path, kind="full").manifest["started"] < record["opened"]  # still the backup before the damage


def test_a_drill_with_scope_database_ends_ok_and_leaves_no_database_role_or_backup(server, incident_id, tmp_path,
                                                                                  monkeypatch):
    """The drill with scope='database' failed at step 6 ('role ... cannot be dropped because some objects depend
    on it'): the database the restore replaced stayed, with the drill's roles owning it, and its safety backup
    stayed in backups/."""
    monkeypatch.setenv("PREP_OPS_BACKUP_DIR", str(tmp_path))
    run = recovery_steps.start(server, "drill", incident_id=incident_id, scope="database", drill_students=100)
    for step in (recovery_steps.stop_application, recovery_steps.assess_damage, recovery_steps.restore,
                 recovery_steps.verify_data, recovery_steps.resume_service, recovery_steps.clean_up):
        step(run)
    assert run.replaced is not None  # the restore ran and replaced the drill's database
    with db.connect(server, autocommit=True) as conn:
        assert scratch.existing(conn, recovery_drill.DATABASE) == []
        assert conn.execute("SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)",
                            (recovery_drill.ROLE_PREFIX,)).fetchall() == []
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


# --- cells run again and out of order, as a DBA does in JupyterLab ----------------------------------------------
def test_a_repair_run_again_after_service_resumed_is_refused_and_never_writes_over_the_applications_new_work(
        app_database, incident_id, tmp_path):
    """Runbook 10 in JupyterLab: steps 1 to 5 run, the application back at work, then step 3's cell run again. It
    put the backup's version of every row step 2 had found changed back over what the application had written
    since ('1 updated', a payment's new amount gone), with the application unblocked. It is now refused in one
    line, and runs again only once the application is blocked (step 1) and the damage assessed anew (step 2)."""
    target, role, login = app_database
    with db.connect(target, autocommit=True) as conn:
        conn.execute("UPDATE tuition_payments SET amount = amount + 100 WHERE id <= 10")
        conn.execute(sql.SQL("GRANT UPDATE, SELECT ON tuition_payments TO {}").format(sql.Identifier(role)))
    run = recovery_steps.start(target, "live", incident_id=incident_id, confirm=True, app_role=role, backup_dir=tmp_path)
    try:
        recovery_steps.stop_application(run)
        recovery_steps.assess_damage(run)
        assert recovery_steps.restore(run).set_index("table").loc["public.tuition_payments", "updated"] == 10
        recovery_steps.verify_data(run)
        recovery_steps.resume_service(run)
        with db.connect(login, autocommit=True) as app:  # the application's work after the incident
            amount = app.execute("UPDATE tuition_payments SET amount = amount + 1 WHERE id = 1 RETURNING amount").fetchone()
        with pytest.raises(StepOutOfOrder, match=r"^step 3 \(Restore\) not run: step 5 \(Resume service, .* UTC\) undid "
                                                 r"step 1 \(Stop the application\): run step 1 again first$"):
            recovery_steps.restore(run)
        recovery_steps.stop_application(run)
        with pytest.raises(StepOutOfOrder, match=r"^step 3 \(Restore\) not run again: it already ran at .* UTC on what "
                                                 r"step\(s\) 2 found before it, which may no longer hold; run step\(s\) 2 "
                                                 r"again first, then this one$"):
            recovery_steps.restore(run)
        with db.connect(target, autocommit=True) as conn:
            assert conn.execute("SELECT amount FROM tuition_payments WHERE id = 1").fetchone() == amount
        assert not [s for s in run.inc.steps if s.failed]  # a refusal is no failed step
        recovery_steps.assess_damage(run)  # assessed anew: the application's change is what step 2 now shows
        assert run.found.differences.set_index("table").loc["public.tuition_payments", "changed"] == 1
        recovery_steps.restore(run)  # allowed: the DBA saw it, with the application blocked
    finally:
        recovery_steps.clean_up(run)


def test_a_database_restore_run_again_is_refused_not_restored_twice(shop, incident_id, tmp_path):
    """scope='database', step 3's cell run a second time: the whole database was restored from the backup again,
    the rows written since the first restore gone, and the database the first restore replaced no longer named
    in the run (run.replaced taken by the second)."""
    with db.connect(shop, autocommit=True) as conn:
        conn.execute("DELETE FROM app.items WHERE id <= 5")
    run = recovery_steps.start(shop, "live", incident_id=incident_id, confirm=True, backup_dir=tmp_path, scope="database")
    try:
        recovery_steps.stop_application(run)
        recovery_steps.assess_damage(run)
        recovery_steps.restore(run)
        first = run.replaced
        with db.connect(shop, autocommit=True) as conn:
            conn.execute("INSERT INTO app.items VALUES (1000, 'written after the restore')")
        with pytest.raises(StepOutOfOrder, match=r"step 3 \(Restore\) not run again"):
            recovery_steps.restore(run)
        assert run.replaced == first
        with db.connect(shop, autocommit=True) as conn:
            assert conn.execute("SELECT count(*), max(id) FROM app.items").fetchone() == (51, 1000)
    finally:
        recovery_steps.clean_up(run)
        with db.connect(db.resolve_target(), autocommit=True) as conn:
            for name in scratch.existing(conn, shop.database + "_"):
                conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_steps_run_out_of_order_say_which_step_to_run_first_and_none_runs_after_the_clean_up(shop, incident_id, tmp_path):
    """Step 3's cell before step 2's: "step 3 (Restore) failed: 'NoneType' object has no attribute 'assessment'",
    and the incident's report said STOPPED at step 3. Step 3 after step 6: the copy it reads from was dropped."""
    with db.connect(shop, autocommit=True) as conn:
        conn.execute("DELETE FROM app.items WHERE id <= 5")
    run = recovery_steps.start(shop, "live", incident_id=incident_id, confirm=True, backup_dir=tmp_path)
    recovery_steps.stop_application(run)
    with pytest.raises(StepOutOfOrder, match=r"^step 3 \(Restore\) not run: it works from what step 2 finds, and step 2 "
                                             r"has not ended well in this run: run step 2's cell first$"):
        recovery_steps.restore(run)
    with pytest.raises(StepOutOfOrder, match=r"step 4 \(Verify the data\) not run: .* run step 2's cell first"):
        recovery_steps.verify_data(run)
    assert [s.number for s in run.inc.steps] == [1] and "STOPPED" not in run.inc.outcome()
    recovery_steps.assess_damage(run)
    recovery_steps.clean_up(run)
    with pytest.raises(StepOutOfOrder, match=r"^step 3 \(Restore\) not run: this run of incident .* was ended by step 6 "
                                             r"\(Document and clean up\) at .* UTC; run the runbook's setup cell again"):
        recovery_steps.restore(run)
    with db.connect(shop, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM app.items").fetchone() == (45,)


def test_assessing_again_after_the_repair_drops_the_copy_the_first_assessment_made(shop, incident_id, tmp_path, server):
    """Step 2's cell run again after step 3 (nothing differs any more): the restored copy of the first assessment
    was left on the embedded server for good, step 6 dropping only the second's (none) and the hold released."""
    with db.connect(shop, autocommit=True) as conn:
        conn.execute("DELETE FROM app.items WHERE id <= 5")
    run = recovery_steps.start(shop, "live", incident_id=incident_id, confirm=True, backup_dir=tmp_path)
    try:
        recovery_steps.stop_application(run)
        recovery_steps.assess_damage(run)
        recovery_steps.restore(run)
        assert recovery_steps.assess_damage(run).copy is None  # nothing damaged now
    finally:
        recovery_steps.clean_up(run)
    with db.connect(verify.scratch_server(), autocommit=True) as conn:
        assert scratch.existing(conn, run.copy_prefix) == []


def test_a_restarted_kernel_with_a_new_incident_never_takes_the_block_for_the_roles_own_limit(app_database, incident_id,
                                                                                               server, tmp_path):
    """Runbook 10 live, confirmed, incident_id=None: step 1 blocked the application, then 'Restart Kernel and Run
    All' opened a new incident, whose step 1 read CONNECTION LIMIT 0 as the role's own and whose step 5 'resumed
    service' with ALTER ROLE ... CONNECTION LIMIT 0: the application stayed blocked, the run ending with a SKIP.
    Step 1 now refuses, naming the incident that holds the block; carried on under that id, step 5 puts 7 back."""
    target, role, login = app_database
    first = recovery_steps.start(target, "live", incident_id=incident_id, confirm=True, app_role=role, backup_dir=tmp_path)
    recovery_steps.stop_application(first)
    first.inc.close()  # the kernel restarted: the first run is gone, its record stays
    restarted = recovery_steps.start(target, "live", incident_id=f"{incident_id}-restarted", confirm=True, app_role=role,
                                     backup_dir=tmp_path)
    with pytest.raises(ParameterError, match=rf"^role {role} is still blocked by incident {incident_id} \(since .* UTC, "
                                             rf"connection limit 7 before it\); .* carry on that incident with "
                                             rf"incident_id='{incident_id}' \(its step 5 unblocks it\), or undo it "
                                             rf'\(ALTER ROLE "{role}" CONNECTION LIMIT 7\) and run again$'):
        recovery_steps.stop_application(restarted)
    assert not restarted.inc.steps and _limit(server, role) == 0
    restarted.inc.close()
    unconfirmed = recovery_steps.start(target, "live", incident_id=f"{incident_id}-look", app_role=role, backup_dir=tmp_path)
    recovery_steps.stop_application(unconfirmed)  # changes nothing here: it says so and goes on
    assert any(e.text.startswith(f"role {role} is still blocked by incident {incident_id}") for e in unconfirmed.inc.events)
    unconfirmed.inc.close()
    again = recovery_steps.start(target, "live", incident_id=incident_id, confirm=True, app_role=role, backup_dir=tmp_path)
    recovery_steps.stop_application(again)
    recovery_steps.resume_service(again)
    again.inc.close()
    assert _limit(server, role) == 7


def test_a_step_run_after_its_parameter_changed_without_the_setup_cell_is_refused(shop, incident_id, tmp_path, lab_kernel):
    """Runbook 10 in JupyterLab, live: steps 1 and 2 run with confirm=True, then the DBA set confirm=False (to see
    what step 3 would do first) and ran the parameter cell and step 3's cell only: the run had been set up with
    confirm=True, so step 3 put the rows back. A step now refuses while a parameter in the notebook differs from
    the one its run was set up with."""
    with db.connect(shop, autocommit=True) as conn:
        conn.execute("DELETE FROM app.items WHERE id <= 5")
    cells = {n: c for n, c in enumerate(json.loads(NOTEBOOK.read_text())["cells"])}

    def run_cell(number: int) -> list[str]:
        return lab_kernel.run(cells[number]["id"], "".join(cells[number]["source"]))

    setup, step_1, step_2, step_3 = (next(n for n, c in cells.items() if "".join(c["source"]).startswith(start))
                                     for start in ("import prep_ops", "steps.stop_application", "found = steps.assess_damage",
                                                   "steps.restore"))
    run_cell(1)
    given = f"database_url, mode, confirm, incident_id, backup_dir = {shop.url!r}, 'live', True, {incident_id!r}, {str(tmp_path)!r}"
    lab_kernel.run("injected-parameters", given)
    for number in (setup, step_1, step_2):
        assert not [line for line in run_cell(number) if line.startswith("error:")]
    lab_kernel.run("injected-parameters", given.replace("'live', True", "'live', False"))
    shown = run_cell(step_3)
    assert shown == ["error: step 3 (Restore) not run: confirm is False in the notebook now, and this run was set up with "
                     "True: run the setup cell again (then the steps from step 1) for the change to take effect, or put "
                     "the parameter back"], shown
    with db.connect(shop, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM app.items").fetchone() == (45,)
    lab_kernel.run("injected-parameters", given)  # put back: step 3 runs
    assert any(line.startswith("did: app.items: 5 rows inserted") for line in "".join(run_cell(step_3)).splitlines())
    lab_kernel.run("clean-up", "steps.clean_up(run)")
