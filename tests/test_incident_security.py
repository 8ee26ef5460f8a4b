"""Runbook 12 end to end: the drill locks the compromised role out and restores the baseline without
showing a password; live mode without confirm changes nothing; a failing step says what to do."""

import json
import time
import uuid
from pathlib import Path

import nbformat
import psycopg
import pytest
from psycopg import sql

from prep_ops import audit_log, backup, db, incident, roles, runner, scratch
from prep_ops.errors import ParameterError, StepOutOfOrder
from prep_ops.incident import breach, lockout, passwords, security_steps
from prep_ops.incident.drills import lifecycle
from prep_ops.incident.drills import security as security_drill

from conftest import incident_of, passes_of_what_was_not_looked_at, schema_dump

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "12_incident_security.ipynb"
STEPS = ("1. Isolate the system", "2. Assess the breach", "3. Fix the vulnerability", "4. Update security",
         "5. Monitor activity", "6. Document and clean up")
WEAK = "welcome1"  # the live test's suspect's password, in passwords.COMMON_PASSWORDS


def _executed(path: Path) -> str:
    """The executed notebook as stored: sources, outputs and metadata."""
    return json.dumps(nbformat.read(path, as_version=4))


def _server_roles(server: db.Target) -> list:
    with db.connect(server, autocommit=True) as conn:
        return conn.execute(
            "SELECT r.rolname, r.rolcanlogin, r.rolconnlimit, md5(coalesce(a.rolpassword, '')), "
            "       array(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
            "             WHERE m.member = r.oid ORDER BY 1) "
            "FROM pg_roles r JOIN pg_authid a ON a.oid = r.oid ORDER BY 1").fetchall()


def _drill_left(server: db.Target, incident_id: str) -> list[str]:
    """What of the drill of `incident_id` is still on the drill server: its database, its roles."""
    database, role_set, suspect = security_drill.names(incident_id)
    return security_drill.leftovers(incident.drill_server(server)[0], database, [*role_set.names.values(), suspect])


def test_drill_locks_the_role_out_restores_the_baseline_and_shows_no_password(runbook_run, server):
    result = runbook_run("12")  # the runbook's default run: the drill
    incident_id = incident_of(result)
    assert result.ok, result.error
    passed = {c["name"] for c in result.checks if c["passed"] and c["must_hold"]}
    assert {"compromised role locked out: no login, no session", "the drill's breach is found",
            "compromised role holds no privilege", "baseline restored: a second plan is empty",
            "passwords of the affected roles rotated", "the compromised role cannot log in",
            "baseline restored: roles.plan is empty", "no change by the role since step 1",
            "drill cleaned up: no drill database or role left"} <= passed
    assert not result.failed_checks and result.seconds < 60
    report = (incident.incidents_dir() / f"{incident_id}.md").read_text()
    for title in STEPS:
        assert f"## {title}" in report
    assert "outcome:** all must-hold checks passed" in report and "NOLOGIN" in report and "PASSWORD '***'" in report
    generated = json.loads((incident.incidents_dir() / f"{incident_id}.passwords").read_text())
    _, role_set, suspect = security_drill.names(incident_id)
    assert set(generated) == {suspect, role_set.reporter}
    shown = _executed(Path(result.output)) + report
    for password in [security_drill.LEAKED, *generated.values()]:
        assert password not in shown
    assert _drill_left(server, incident_id) == []


def test_live_changes_nothing_without_confirm_or_suspect_and_with_both_does_it_all(tmp_path, incident_id, server):
    target = scratch.sample_database(server, 200, 5, name=f"prep_ops_sec_live_{uuid.uuid4().hex[:6]}", confirm=True)
    prefix = f"prep_ops_seclive_{uuid.uuid4().hex[:4]}_"
    role_set = roles.RoleSet.with_prefix(prefix)
    suspect = f'live "sus"; pect {uuid.uuid4().hex[:4]}'
    try:
        with db.connect(target, autocommit=True) as conn:
            roles.apply(conn, role_set, confirm=True)
            audit_log.enable(conn, confirm=True)
        with db.connect(target) as conn:  # the incident: a suspect that writes, and drift on the baseline
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(suspect), sql.Literal(roles.scram_verifier(WEAK))))
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(role_set.app), sql.Identifier(suspect)))
            conn.execute(sql.SQL("GRANT UPDATE ON tuition_payments TO {}").format(sql.Identifier(role_set.reporter)))
            conn.commit()
        session = psycopg.connect(roles.login(target, suspect, WEAK).url, autocommit=True)
        session.execute("UPDATE tuition_payments SET amount = 0.01 WHERE id = 1")
        with db.connect(target) as conn:
            before = backup.table_checksums(conn)
        dump, cluster = schema_dump(target), _server_roles(server)
        result = runner.run_one(NOTEBOOK, tmp_path, {"database_url": target.url, "mode": "live", "incident_id": incident_id,
                                                   "suspect_role": suspect, "role_prefix": prefix})
        assert result.ok, result.error
        with db.connect(target) as conn:
            assert backup.table_checksums(conn) == before
        assert schema_dump(target) == dump and _server_roles(server) == cluster
        assert session.execute("SELECT 1").fetchone() == (1,)  # its session was not ended
        shown = _executed(tmp_path / NOTEBOOK.name)
        for statement in ("ALTER ROLE", f"REVOKE \\\"{role_set.app}\\\" FROM", "REVOKE UPDATE ON ALL TABLES"):
            assert "WOULD (confirm=True to run): " + statement in shown
        assert "NOLOGIN" in shown and "PASSWORD '***'" in shown
        assert WEAK not in shown and not (incident.incidents_dir() / f"{incident_id}.passwords").exists()
        report = (incident.incidents_dir() / f"{incident_id}.md").read_text()
        assert "1 change(s) by" in report and "the password is a common one" in report
        assert "mode:** live (confirm=False)" in report and "outcome:** all must-hold checks passed" in report
        warned = {c["name"] for c in result.checks if not c["passed"]}
        assert "the compromised role cannot log in" in warned and not result.failed_checks
        status = {c["name"]: c["status"] for c in result.checks}  # what live mode did not do is SKIP, never PASS
        for name in ("compromised role locked out: no login, no session", "compromised role holds no privilege",
                     "baseline restored: a second plan is empty", "passwords of the affected roles rotated"):
            assert status[name] == "SKIP", name
        assert status["the compromised role cannot log in"] == "WARN"  # looked at: it still can
        assert passes_of_what_was_not_looked_at([result]) == []

        for folder in ("assessed", "confirmed"):
            (tmp_path / folder).mkdir()
        assessed = runner.run_one(NOTEBOOK, tmp_path / "assessed", {  # no suspect: only assess, even with confirm
            "database_url": target.url, "mode": "live", "incident_id": incident_id + "-assessed", "confirm": True,
            "role_prefix": prefix})
        assert assessed.ok, assessed.error
        unjudged = {c["name"] for c in assessed.checks if c["status"] == "SKIP"}  # no suspect: nothing to judge it by
        assert {"compromised role locked out: no login, no session", "the compromised role cannot log in",
                "no change by the role since step 1", "passwords of the affected roles rotated"} <= unjudged
        with db.connect(target) as conn:
            assert backup.table_checksums(conn) == before
        assert schema_dump(target) == dump and _server_roles(server) == cluster

        confirmed = runner.run_one(NOTEBOOK, tmp_path / "confirmed", {  # and with confirm, the same run does it all
            "database_url": target.url, "mode": "live", "incident_id": incident_id + "-confirmed", "confirm": True,
            "suspect_role": suspect, "role_prefix": prefix})
        assert confirmed.ok, confirmed.error
        held = {c["name"] for c in confirmed.checks if c["must_hold"] and c["passed"]}
        assert {"the compromised role cannot log in", "baseline restored: roles.plan is empty"} <= held
        with db.connect(target, autocommit=True) as conn:
            assert breach.holdings(conn, suspect).empty and roles.plan(conn, role_set) == []
        with pytest.raises(psycopg.OperationalError):
            session.execute("SELECT 1")
    finally:
        scratch.drop(server, target.database)
        with db.connect(server) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(suspect)))
            conn.commit()
        with db.connect(server, autocommit=True) as conn:
            roles.drop(conn, role_set, confirm=True)


def test_a_failing_step_stops_the_runbook_and_says_what_next(tmp_path, incident_id, monkeypatch):
    # the new password "from the environment" is the leaked one: step 4 must refuse it and stop
    database, role_set, suspect = security_drill.names(incident_id)
    variable = passwords.password_variable(suspect, roles.RoleSet())
    monkeypatch.setenv(variable, security_drill.LEAKED)
    result = runner.run_one(NOTEBOOK, tmp_path, {"incident_id": incident_id})
    server = incident.drill_server(db.resolve_target())[0]
    try:
        assert not result.ok
        assert result.error.startswith("cell ") and (f"StepFailed: step 4 (Update security) failed: "
                                                     f"{variable} holds the password") in result.error
        report = (incident.incidents_dir() / f"{incident_id}.md").read_text()
        assert "STOPPED at step 4 (Update security)" in report
        assert "Next: set the passwords by hand" in report and f"STILL IN PLACE: role {suspect} locked out" in report
        assert security_drill.LEAKED not in _executed(tmp_path / NOTEBOOK.name) + report
    finally:
        _sweep_when_the_kernel_has_gone(server, incident_id)  # the run stopped before its clean-up: by hand
    assert _drill_left(server, incident_id) == []


def _sweep_when_the_kernel_has_gone(server: db.Target, incident_id: str, seconds: float = 30) -> None:
    """Sweep the dead drill of `incident_id`. The sweep leaves a drill whose sessions are still on the
    server, and the stopped kernel's backends can outlive it by a moment: sweep until nothing is left."""
    deadline = time.monotonic() + seconds
    while True:
        with db.connect(server, autocommit=True) as conn:
            lifecycle.sweep(conn, security_drill.DATABASE, security_drill.ROLE_PREFIX)
        if not _drill_left(server, incident_id) or time.monotonic() > deadline:
            return
        time.sleep(0.2)


# --- the runbook's steps, called as the notebook calls them ---------------------------------------
def _check_words(run) -> list[str]:
    """The checks of the run's incident as the timeline records them: "PASS name: detail", "SKIP name — why"."""
    return [e.text for e in run.inc.events if e.kind == "check"]


def test_each_step_is_one_call_and_the_drill_is_contained(incident_id, server):
    run = security_steps.start(server, "drill", incident_id=incident_id, drill_students=100)
    try:
        assert len(security_steps.isolate_system(run)) == 1 and "suspect" in run.inc.holds
        assessment = security_steps.assess_breach(run)
        assert run.drill.found_in(assessment)[0] and run.suspect in assessment.affected()
        assert set(security_steps.fix_vulnerability(run)["kind"]) <= {"owns"}
        rotated = security_steps.update_security(run)
        assert set(rotated["role"]) == set(assessment.affected()) and "not rotated" not in set(rotated["find it in"])
        watch = security_steps.monitor_activity(run)
        assert watch.cannot_log_in and watch.since.empty and not watch.plan
    finally:
        security_steps.clean_up(run)
    words = _check_words(run)
    assert len(words) == 9 and all(w.startswith("PASS ") for w in words), words
    assert _drill_left(server, incident_id) == []


def test_steps_without_a_suspect_only_assess_and_say_why(incident_id, server):
    target = scratch.sample_database(server, 50, 5, name=f"prep_ops_sec_steps_{uuid.uuid4().hex[:6]}", confirm=True)
    try:
        run = security_steps.start(target, "live", incident_id=incident_id, confirm=True,  # a baseline never applied
                                   role_prefix=f"prep_ops_nosus_{uuid.uuid4().hex[:4]}_")
        assert run.suspect is None and not run.changing and run.unchanged.startswith("no suspect role given")
        assert security_steps.isolate_system(run).empty
        assert security_steps.assess_breach(run).affected() == []
        security_steps.fix_vulnerability(run)
        assert security_steps.update_security(run).empty
        security_steps.monitor_activity(run)
        skipped = [w for w in _check_words(run) if w.startswith("SKIP ")]
        assert [w.split(" — ")[0] for w in skipped] == [
            "SKIP compromised role locked out: no login, no session", "SKIP compromised role holds no privilege",
            "SKIP baseline restored: a second plan is empty", "SKIP passwords of the affected roles rotated",
            "SKIP the compromised role cannot log in", "SKIP baseline restored: roles.plan is empty",
            "SKIP no change by the role since step 1"]
        assert not [e for e in run.inc.events if e.kind == "ran"]
    finally:
        scratch.drop(server, target.database)


def test_start_refuses_a_suspect_that_would_lock_the_runbook_out(migrated, owner, incident_id):
    me = owner.execute("SELECT current_user").fetchone()[0]
    with pytest.raises(ParameterError, match="lock you out"):
        security_steps.start(migrated, "live", incident_id=incident_id, suspect_role=me)


# --- scope, password variables and killed drills (issue 14) ----------------------------------------
def _verifiers(server: db.Target, names: list[str]) -> dict:
    with db.connect(server, autocommit=True) as conn:
        return dict(conn.execute("SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY(%s)", (names,)).fetchall())


def test_security_live_rotates_only_suspect_and_drifted_roles(incident_id, server):
    """The baseline's roles lack every grant in the attacked database (they are used in another): that
    is no drift to rotate for. Only the suspect and the reporter, granted more here, get new passwords."""
    real = scratch.sample_database(server, 30, 5, name=f"prep_ops_sec_real_{uuid.uuid4().hex[:6]}", confirm=True)
    target = scratch.sample_database(server, 30, 5, name=f"prep_ops_sec_scope_{uuid.uuid4().hex[:6]}", confirm=True)
    role_set = roles.RoleSet.with_prefix(f"prep_ops_secscope_{uuid.uuid4().hex[:4]}_")
    given = {kind: uuid.uuid4().hex for kind in roles.LOGIN_KINDS}
    suspect = f"prep_ops_secscope_suspect_{uuid.uuid4().hex[:4]}"
    try:
        with db.connect(real, autocommit=True) as conn:
            roles.apply(conn, role_set, given, confirm=True)
        with db.connect(target, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(suspect), sql.Literal(WEAK)))
            conn.execute(sql.SQL("GRANT UPDATE ON tuition_payments TO {}").format(sql.Identifier(role_set.reporter)))
        untouched = [role_set.app, role_set.analyst, role_set.dba]
        before = _verifiers(server, untouched)
        run = security_steps.start(target, "live", incident_id=incident_id, confirm=True, suspect_role=suspect,
                                   role_prefix=role_set.names["app"].removesuffix("app"))
        security_steps.isolate_system(run)
        assert run.assessment is None and security_steps.assess_breach(run).affected() == [suspect, role_set.reporter]
        security_steps.fix_vulnerability(run)
        rotated = security_steps.update_security(run)
        assert list(rotated["role"]) == [suspect, role_set.reporter] and run.rotation.rotated == [suspect, role_set.reporter]
        security_steps.monitor_activity(run)
        security_steps.clean_up(run)
        assert _verifiers(server, untouched) == before
        app_login = roles.login(real, role_set.app, given["app"])
        assert lockout.can_connect(app_login) == (True, "connected")  # the application still logs into its database
        report = run.inc.report_path.read_text()
        assert "**server-wide changes made** (" in report
        assert f"`ALTER ROLE \"{role_set.reporter}\" PASSWORD '***'`" in report and f'`ALTER ROLE "{suspect}" NOLOGIN`' in report
        assert f"ALTER ROLE \"{role_set.app}\" PASSWORD" not in report
    finally:
        for database in (real, target):
            scratch.drop(server, database.database)
        with db.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(suspect)))
            roles.drop(conn, role_set, confirm=True)


def _run_all_steps(run) -> None:
    try:
        security_steps.isolate_system(run)
        security_steps.assess_breach(run)
        security_steps.fix_vulnerability(run)
        security_steps.update_security(run)
        security_steps.monitor_activity(run)
    finally:
        security_steps.clean_up(run)


def test_security_drill_works_with_password_variables_set(incident_id, server, monkeypatch):
    for kind in (*roles.LOGIN_KINDS, "readonly"):  # the README's way of giving the real roles their passwords
        monkeypatch.setenv(passwords.password_variable(kind), f"real {kind} password {uuid.uuid4().hex[:6]}")
    run = security_steps.start(server, "drill", incident_id=incident_id, drill_students=50)
    _run_all_steps(run)
    words = _check_words(run)
    assert len(words) == 9 and all(w.startswith("PASS ") for w in words), words
    assert set(run.rotation.sources.values()) == {"generated"}  # never a real role's variable
    assert _drill_left(server, incident_id) == []


def _wait_gone(server: db.Target, pids: list[int], seconds: float = 30) -> None:
    """Until the server's backends `pids` have exited (a closed connection's backend exits a moment later,
    and a loaded CI machine makes that moment long: the run lock it held is free only then)."""
    deadline = time.monotonic() + seconds
    with db.connect(server, autocommit=True) as conn:
        while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)).fetchone()[0]:
            assert time.monotonic() < deadline, f"backends {pids} still there after {seconds} s"
            time.sleep(0.05)


def test_killed_security_drill_contractor_is_removed_next_run(incident_id, server):
    killed_id = f"{incident_id}-killed"
    killed = security_drill.prepare(server, students=30, incident_id=killed_id)
    backends = [killed.session.info.backend_pid, killed.conn.info.backend_pid]
    killed.session.close()  # the run's process is gone: so are its sessions
    killed.conn.close()
    _wait_gone(incident.drill_server(server)[0], backends)  # as a killed process's: their locks end only when the backends exit
    legacy = security_drill.ROLE_PREFIX + "contractor"  # as a killed run of an earlier version left it
    with db.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(legacy),
                                                                        sql.Literal(security_drill.LEAKED)))
    assert killed.suspect in _drill_left(server, killed_id)
    run = security_steps.start(server, "drill", incident_id=incident_id, drill_students=50)
    try:
        left = _drill_left(server, killed_id)
        if left:  # what kept them, for the next person reading a failure here
            database, role_set, suspect = security_drill.names(killed_id)
            with db.connect(incident.drill_server(server)[0], autocommit=True) as conn:
                left.append(conn.execute(
                    "SELECT array_agg(concat_ws(' ', pid, backend_type, datname, usename, application_name, state)) "
                    "FROM pg_stat_activity WHERE datname = %s OR usename = ANY(%s)",
                    (database, [*role_set.names.values(), suspect])).fetchone()[0])
        assert left == []
        with db.connect(server, autocommit=True) as conn:
            assert not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (legacy,)).fetchone()
        swept = [e.text for e in run.inc.events if e.text.startswith("removed what killed drills had left")]
        assert swept and f"role {killed.suspect}" in swept[0] and f"database {killed.target.database}" in swept[0]
    finally:
        _run_all_steps(run)
    assert _drill_left(server, incident_id) == []


def test_security_live_on_a_database_without_the_baseline_creates_no_role_and_passes_nothing_unchecked(scratch, server,
                                                                                                      incident_id):
    """Runbook 12 live, confirmed, on a database that is not the school's, where the roles-as-code baseline was
    never applied: step 3's 'reset' created its login roles (app, dba, ...) server-wide, each granted every
    table, during a breach; step 5 PASSed 'no change by the role since step 1' with no audit log to read."""
    role_set = roles.RoleSet.with_prefix(f"prep_ops_nobase_{uuid.uuid4().hex[:4]}_")
    suspect = f'sus"pect {uuid.uuid4().hex[:4]}'
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA app; CREATE TABLE app.items (id int PRIMARY KEY)")
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(suspect), sql.Literal(WEAK)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA app TO {0}; GRANT SELECT, DELETE ON app.items TO {0}").format(
            sql.Identifier(suspect)))
    try:
        run = security_steps.start(scratch, "live", incident_id=incident_id, confirm=True, suspect_role=suspect,
                                   role_prefix=role_set.names["app"].removesuffix("app"))
        _run_all_steps(run)
        with db.connect(server, autocommit=True) as conn:
            made = conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (list(role_set.names.values()),))
            assert made.fetchall() == []
        words = _check_words(run)
        for expected in ("SKIP baseline restored: a second plan is empty — no roles-as-code baseline",
                         "SKIP baseline restored: roles.plan is empty — no roles-as-code baseline",
                         "SKIP no change by the role since step 1 — no audit log", "PASS compromised role holds no privilege"):
            assert any(w.startswith(expected) for w in words), (expected, words)
    finally:
        with db.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(suspect)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(suspect)))
            roles.drop(conn, role_set, confirm=True)


def test_update_security_run_again_never_rotates_the_passwords_a_second_time(incident_id, server):
    """Runbook 12 in JupyterLab, step 4's cell run a second time: every affected role got another new password,
    the ones in runs/incidents/<id>.passwords replaced, so a password already handed on to the application's
    owners stopped working. It is now refused in one line, the passwords as the first run set them."""
    run = security_steps.start(server, "drill", incident_id=incident_id, drill_students=50)
    try:
        security_steps.isolate_system(run)
        affected = security_steps.assess_breach(run).affected()
        security_steps.fix_vulnerability(run)
        security_steps.update_security(run)
        file = passwords.passwords_file(run.inc)
        handed_on = json.loads(file.read_text())

        def stored() -> list:
            return run.inc.conn.execute("SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY(%s) ORDER BY 1",
                                        (affected,)).fetchall()

        first = stored()
        with pytest.raises(StepOutOfOrder, match=r"^step 4 \(Update security\) not run again: it already ran at .* UTC "
                                                 r"on what step\(s\) 2 found before it"):
            security_steps.update_security(run)
        assert stored() == first and json.loads(file.read_text()) == handed_on
        security_steps.monitor_activity(run)
    finally:
        security_steps.clean_up(run)
    assert _drill_left(server, incident_id) == []


def test_a_restarted_kernel_with_a_new_incident_keeps_the_suspects_own_state_to_undo(scratch, incident_id):
    """Runbook 12 live, confirmed, incident_id=None: step 1 locked the suspect out, then 'Restart Kernel and Run All'
    opened a new incident, whose step 1 read NOLOGIN and CONNECTION LIMIT 0 as the role's own: its report's 'to undo'
    was 'ALTER ROLE ... NOLOGIN; ... CONNECTION LIMIT 0', which lets nobody back in. It keeps the first's now."""
    suspect = f"prep_ops_test_suspect_{uuid.uuid4().hex[:6]}"
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CONNECTION LIMIT 3").format(sql.Identifier(suspect)))
    try:
        runs = []
        for number, name in enumerate((incident_id, f"{incident_id}-restarted")):
            run = security_steps.start(scratch, "live", incident_id=name, confirm=True, suspect_role=suspect)
            security_steps.isolate_system(run)
            run.inc.close()
            runs.append(run)
        undo = [a.text for a in runs[1].inc.holds["suspect"].undo]
        assert undo == [f'ALTER ROLE "{suspect}" LOGIN', f'ALTER ROLE "{suspect}" CONNECTION LIMIT 3'], undo
        assert runs[1].inc.holds["suspect"].state["connection_limit"] == 3
        assert any(e.text.startswith(f"role {suspect} is locked out already by incident {incident_id}")
                   for e in runs[1].inc.events)
    finally:
        with db.connect(scratch, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(suspect)))
