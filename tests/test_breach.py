"""A compromised role on a real server: what it did and holds, taking it all away, new passwords that
are never shown, and the security drill that stages it all. Role names are hostile on purpose."""

import json
from re import escape as re_escape
import stat
import uuid

import psycopg
import pytest
from psycopg import sql

from prep_ops import audit_log, db, roles, seed
from prep_ops.incident import breach, breach_response, lockout, passwords
from prep_ops.incident.drills import security as security_drill
from prep_ops.errors import ParameterError, RoleError
from prep_ops.incident import Incident

HOSTILE = 'con"tractor; DROP TABLE users; --'
WEAK = "letmein"  # in passwords.COMMON_PASSWORDS


def _as_superuser(target, *statements):
    with db.connect(target) as conn:
        for statement in statements:
            conn.execute(statement)
        conn.commit()


@pytest.fixture
def school(migrated, owner):
    """A migrated database with a little sample data and the audit log on."""
    seed.seed(owner, students=20, seed=3)
    audit_log.enable(owner)
    return migrated


@pytest.fixture
def conn(school, owner):
    """An autocommit connection to `school`, as a runbook step opens it."""
    return owner


@pytest.fixture
def suspect(school, server):
    """A login role with a hostile name and a common password, holding one of every kind of thing;
    dropped afterwards with everything it holds."""
    uid = uuid.uuid4().hex[:6]
    name, group = f"{HOSTILE} {uid}", f'gr"oup; {uid}'
    who, table = sql.Identifier(name), sql.Identifier("public", f'own"ed; {uid}')
    _as_superuser(
        school,
        sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(group)),
        sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(who, sql.Literal(roles.scram_verifier(WEAK))),
        sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), who),
        sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(sql.Identifier(school.database), who),
        sql.SQL("GRANT USAGE, CREATE ON SCHEMA public TO {}").format(who),
        sql.SQL("GRANT SELECT, UPDATE, DELETE ON public.tuition_payments, public.users, public.students TO {}").format(who),
        sql.SQL("GRANT UPDATE (email) ON public.users TO {}").format(who),
        sql.SQL("GRANT USAGE ON SEQUENCE public.users_id_seq TO {}").format(who),
        sql.SQL("CREATE FUNCTION public.school_year() RETURNS int LANGUAGE sql AS 'SELECT 2026'"),
        sql.SQL("GRANT EXECUTE ON FUNCTION public.school_year() TO {}").format(who),
        sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {}").format(who),
        sql.SQL("CREATE TABLE {} (id int)").format(table),
        sql.SQL("ALTER TABLE {} OWNER TO {}").format(table, who),
    )
    yield name
    with db.connect(school) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (name,))
        conn.execute(sql.SQL("DROP OWNED BY {}").format(who))
        conn.commit()
    with db.connect(server) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(who))
        conn.execute(sql.SQL("DROP ROLE {}").format(who))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(group)))
        conn.commit()


@pytest.fixture
def baseline(conn):
    role_set = roles.RoleSet.with_prefix(f'b"l; {uuid.uuid4().hex[:6]} ')
    roles.apply(conn, role_set, {kind: uuid.uuid4().hex for kind in roles.LOGIN_KINDS})
    yield role_set
    roles.drop(conn, role_set)


def _incident(target, tmp_path, mode="drill", confirm=False):
    return Incident("security", "Test security incident", target, incident_id=f"t-{uuid.uuid4().hex[:8]}",
                    mode=mode, confirm=confirm, directory=tmp_path)


def _kinds(frame):
    return set(frame["kind"])


def test_holdings_name_every_kind_of_thing_the_role_holds(school, conn, suspect):
    held = breach.holdings(conn, suspect)
    assert _kinds(held) == {"attribute", "member of", "database", "schema", "table", "column", "sequence", "routine",
                            "default privileges", "owns"}
    assert {("public.tuition_payments", "UPDATE"), ("public.tuition_payments", "DELETE"), ("public.users.email", "UPDATE"),
            ("role attribute", "CREATEDB"), ("public.school_year()", "EXECUTE")} <= set(zip(held["what"], held["privilege"]))
    assert "member of gr\"oup;" in breach.held_text(held)


def test_revoke_leaves_the_role_with_nothing_but_what_it_owns(school, conn, suspect, tmp_path):
    actions = breach.revoke_actions(conn, suspect)
    quoted = sql.Identifier(suspect).as_string(None)
    assert all(quoted in a.text for a in actions) and not any("owned" in a.text for a in actions)
    _incident(school, tmp_path).run(actions)
    left = breach.holdings(conn, suspect)
    assert _kinds(left) == {"owns"} and len(left) == 1
    assert breach.revoke_actions(conn, suspect) == []
    # the role is kept (evidence); nothing else was dropped
    assert conn.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (suspect,)).fetchone() == (True,)
    assert conn.execute("SELECT count(*) FROM users").fetchone()[0] > 0


def test_weak_password_is_detected_and_never_named(school, conn, suspect, baseline):
    found = passwords.weak_passwords(conn, [suspect, baseline.reporter, baseline.readonly])
    by_role = dict(zip(found["role"], found["common_password"]))
    assert by_role == {suspect: True, baseline.reporter: False, baseline.readonly: None}
    assert WEAK not in found.to_string()


def test_md5_and_role_name_passwords_count_as_common(school, conn, server):
    name = f"md5 {uuid.uuid4().hex[:6]}"
    with db.connect(server, autocommit=True) as admin:
        admin.execute("SET password_encryption = 'md5'")
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(name + "123")))
    try:
        found = passwords.weak_passwords(conn, [name])
        assert found.to_dict("records") == [{"role": name, "login": True, "stored_as": "md5", "common_password": True}]
    finally:
        with db.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def test_timeline_shows_the_suspicious_changes_of_that_role_only(school, conn, suspect, baseline):
    with db.connect(roles.login(school, suspect, WEAK)) as theirs:
        theirs.execute("UPDATE tuition_payments SET amount = 0.01 WHERE id IN (1, 2)")
        theirs.execute("DELETE FROM tuition_payments WHERE id = 3")
        theirs.commit()
    mark = breach.log_position(conn)
    conn.execute("UPDATE users SET full_name = 'Someone Else' WHERE id = 1")  # someone else's: not in the suspect's timeline
    line = breach.timeline(conn, suspect)
    assert list(zip(line["operation"], line["table_name"])) == [("UPDATE", "tuition_payments")] * 2 + [("DELETE", "tuition_payments")]
    assert set(line["login_role"]) == {suspect} and line["old_values"].iloc[0]["amount"] != 0.01
    assert breach.changes_per_table(line).to_dict() == {"DELETE": {"tuition_payments": 1}, "UPDATE": {"tuition_payments": 2}}
    assert breach.timeline(conn, suspect, after=mark).empty
    assert list(breach.timeline(conn, after=mark)["table_name"]) == ["users"]
    lines = breach_response.assess(conn, suspect, baseline).lines()
    assert lines[0].startswith(f"3 change(s) by {suspect} between") and "1 DELETE, 2 UPDATE on tuition_payments" in lines[0]


def test_timeline_without_an_audit_log_is_empty(owner):
    assert breach.timeline(owner, "anyone").empty and breach.log_position(owner) == 0


def test_isolate_ends_sessions_and_monitor_proves_the_role_cannot_log_in(school, conn, suspect, baseline, tmp_path):
    session = psycopg.connect(roles.login(school, suspect, WEAK).url, autocommit=True)
    inc = _incident(school, tmp_path)
    isolation = breach_response.isolate(inc, conn, suspect)
    assert isolation.locked_out and len(isolation.sessions_before) == 1 and "suspect" in inc.holds
    with pytest.raises(psycopg.OperationalError):
        session.execute("SELECT 1")
    watch = breach_response.monitor(inc, conn, suspect, baseline, after=isolation.log_position, leaked=roles.Secret(WEAK))
    assert watch.cannot_log_in and "not permitted to log in" in watch.login_detail
    assert watch.since.empty and not watch.plan
    assert WEAK not in watch.login_detail


def test_live_without_confirm_changes_nothing_and_shows_what_it_would_run(school, conn, suspect, baseline, tmp_path, capsys):
    _as_superuser(school, sql.SQL("GRANT UPDATE ON public.tuition_payments TO {}").format(sql.Identifier(baseline.reporter)))
    before = breach.holdings(conn, suspect)
    inc = _incident(school, tmp_path, mode="live")
    assert not breach_response.isolate(inc, conn, suspect).locked_out
    assessment = breach_response.assess(conn, suspect, baseline)
    assert assessment.affected() == [suspect, baseline.reporter]
    fixed = breach_response.fix(inc, conn, suspect, baseline)
    rotation = passwords.rotate(inc, conn, assessment.affected(), baseline)
    assert breach.holdings(conn, suspect).equals(before) and len(fixed.plan) == 1 and not fixed.holds_nothing
    assert rotation.rotated == [] and rotation.file is None and not list(tmp_path.glob("*.passwords"))
    assert passwords.weak_passwords(conn, [suspect])["common_password"].tolist() == [True]
    shown = capsys.readouterr().out
    assert "WOULD (confirm=True to run): ALTER ROLE" in shown and "NOLOGIN" in shown and "REVOKE ALL ON TABLE" in shown


def test_fix_never_strips_the_role_running_the_runbook_of_its_superuser(school, conn, suspect, baseline, tmp_path):
    """Live, confirmed, run by a superuser that the baseline names (the DBA's superuser called dba): resetting
    the baseline would take SUPERUSER from the runbook's own role; refused before anything is revoked."""
    dba = sql.Identifier(baseline.dba)
    _as_superuser(school, sql.SQL("ALTER ROLE {} SUPERUSER PASSWORD {}").format(dba, sql.Literal(roles.scram_verifier(WEAK))))
    before = breach.holdings(conn, suspect)
    try:
        with db.connect(roles.login(school, baseline.dba, WEAK), autocommit=True) as as_dba:
            with pytest.raises(RoleError, match="the role this session runs as"):
                breach_response.fix(_incident(school, tmp_path, mode="live", confirm=True), as_dba, suspect, baseline)
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (baseline.dba,)).fetchone()[0]
        assert breach.holdings(conn, suspect).equals(before)
    finally:
        _as_superuser(school, sql.SQL("ALTER ROLE {} NOSUPERUSER").format(dba))


def test_a_suspect_named_like_a_kind_of_role_never_gets_that_kind_of_role_s_password(school, conn, baseline, tmp_path,
                                                                                   monkeypatch):
    """A suspect role called "Dba!" reads as PREP_OPS_DBA_PASSWORD, the real dba's password: its new one is
    generated instead, so the compromised role never shares a password with the dba (nor is handed it)."""
    real = f"the real dba password {uuid.uuid4().hex[:6]}"
    monkeypatch.setenv(roles.password_variable("dba"), real)
    crafted = "Dba!"
    assert passwords.password_variable(crafted, baseline) == "PREP_OPS_DBA_PASSWORD"
    _as_superuser(school, sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(crafted)))
    try:
        rotation = passwords.rotate(_incident(school, tmp_path), conn, [crafted], baseline)
        assert rotation.sources == {crafted: "generated"} and rotation.rotated == [crafted]
        stored = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (crafted,)).fetchone()[0]
        assert not roles.verifier_matches(roles.Secret(real), stored)
    finally:
        _as_superuser(school, sql.SQL("DROP ROLE {}").format(sql.Identifier(crafted)))


def test_rotation_saves_generated_passwords_privately_and_never_shows_them(school, conn, suspect, baseline, tmp_path, capsys, monkeypatch):
    given = f"given-{uuid.uuid4().hex}"
    monkeypatch.setenv(roles.password_variable("reporter"), given)
    inc = _incident(school, tmp_path)
    rotation = passwords.rotate(inc, conn, [suspect, baseline.reporter], baseline)
    assert rotation.rotated == [suspect, baseline.reporter]
    assert rotation.sources == {suspect: "generated", baseline.reporter: "PREP_OPS_REPORTER_PASSWORD"}
    saved = json.loads(rotation.file.read_text())
    assert list(saved) == [suspect] and stat.S_IMODE(rotation.file.stat().st_mode) == 0o600
    assert passwords.weak_passwords(conn, [suspect])["common_password"].tolist() == [False]
    with db.connect(roles.login(school, suspect, saved[suspect])) as theirs:
        assert theirs.execute("SELECT current_user").fetchone()[0] == suspect
    shown = capsys.readouterr().out + inc.write().read_text() + rotation.table().to_string() + repr(rotation)
    assert saved[suspect] not in shown and given not in shown and "PASSWORD '***'" in shown
    assert not passwords.weak_passwords(conn, [baseline.reporter])["common_password"].any()
    assert roles.plan(conn, baseline) == []  # the baseline wants the password from the environment: it has it


def test_a_new_password_that_is_the_old_one_is_refused(school, conn, suspect, baseline, tmp_path, monkeypatch):
    monkeypatch.setenv(passwords.password_variable(suspect, baseline), WEAK)
    with pytest.raises(passwords.RotationError, match=r"PREP_OPS_CON_TRACTOR_DROP_TABLE_USERS_\w+_PASSWORD holds the password"):
        passwords.rotate(_incident(school, tmp_path), conn, [suspect], baseline)
    assert passwords.weak_passwords(conn, [suspect])["common_password"].tolist() == [True]


def test_check_suspect_refuses_what_would_backfire(school, conn, suspect, baseline):
    assert breach.check_suspect(conn, suspect, baseline) == suspect
    assert breach.check_suspect(conn, None, baseline) is None
    with pytest.raises(ParameterError, match="no role"):
        breach.check_suspect(conn, "nobody " + uuid.uuid4().hex, baseline)
    with pytest.raises(ParameterError, match="roles-as-code baseline"):
        breach.check_suspect(conn, baseline.app, baseline)
    me = conn.execute("SELECT current_user").fetchone()[0]
    with pytest.raises(ParameterError, match="lock you out"):
        breach.check_suspect(conn, me, baseline)


def test_check_suspect_refuses_the_role_that_logged_in_even_acting_as_another(school, suspect, baseline):
    """A DBA who logs in as themself and acts as a group role (ALTER ROLE me SET role = admins, or SET ROLE):
    current_user is the group, but locking out the login role would end the runbook's other sessions and
    refuse its next connections."""
    with db.connect(school, autocommit=True) as acting:
        me = acting.execute("SELECT session_user").fetchone()[0]
        acting.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(baseline.dba)))
        assert acting.execute("SELECT current_user").fetchone()[0] == baseline.dba
        with pytest.raises(ParameterError, match="lock you out"):
            breach.check_suspect(acting, me, baseline)
        assert breach.check_suspect(acting, suspect, baseline) == suspect


def test_drifted_names_only_the_roles_a_plan_changes(school, conn, baseline):
    _as_superuser(school, sql.SQL("GRANT DELETE ON public.users TO {}").format(sql.Identifier(baseline.analyst)))
    assert breach.drifted(roles.plan(conn, baseline), baseline) == [baseline.analyst]


# --- the drill ------------------------------------------------------------------------------------
def test_drill_stages_the_breach_and_cleans_up_even_after_a_crash(server):
    prefix, run_id = f'sec "d"; {uuid.uuid4().hex[:4]} ', f"test-crash-{uuid.uuid4().hex[:6]}"
    first = security_drill.prepare(server, students=30, incident_id=run_id, prefix=prefix)
    first.session.close()  # as if the run had crashed here: prepare again must clean up first
    first.conn.close()
    drill = security_drill.prepare(server, students=30, incident_id=run_id, prefix=prefix)
    database = security_drill.names(run_id)[0]
    try:
        assert drill.suspect == prefix + "contractor" and drill.target.database == database
        assert database.startswith(security_drill.DATABASE + "_") and len(database) <= 63
        with db.connect(drill.target, autocommit=True) as conn:
            assert len(lockout.sessions(conn, drill.suspect)) == 1
            assessment = breach_response.assess(conn, drill.suspect, drill.role_set)
        assert drill.found_in(assessment) == (True, "its changes, grants, the reporter's drift and the common password")
        assert security_drill.LEAKED not in repr(drill) + " ".join(assessment.lines())
        everything = {database, *drill.role_names}
        assert set(security_drill.leftovers(drill.server, database, drill.role_names)) == everything
    finally:
        said = security_drill.cleanup(drill)
    assert said.startswith(f"dropped database {database} and 6 drill role(s)")
    assert security_drill.leftovers(drill.server, database, drill.role_names) == []


def test_drill_refuses_an_unknown_mode_before_making_anything(server):
    with pytest.raises(ParameterError, match="mode must be one of drill, live"):
        security_drill.for_mode(server, "dril", incident_id="x")
    assert security_drill.for_mode(server, "live", incident_id="x") is None



def test_passwords_rotated_by_a_role_that_may_not_read_pg_authid_are_not_reported_unrotated(school, tmp_path, server):
    """Runbook 12 live as a CREATEROLE role that is no superuser (a database owner): the new passwords were
    set, but pg_authid could not be read back, and step 4 FAILed '0 of 1 rotated' and stopped the runbook."""
    uid = uuid.uuid4().hex[:6]
    admin, victim, password = f"prep_ops_test_admin_{uid}", f'vic"tim {uid}', uuid.uuid4().hex
    _as_superuser(school, sql.SQL("CREATE ROLE {} LOGIN CREATEROLE PASSWORD {}").format(sql.Identifier(admin), sql.Literal(password)),
                  sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(school.database), sql.Identifier(admin)))
    try:
        with db.connect(roles.login(school, admin, password), autocommit=True) as theirs:
            theirs.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(victim)))  # CREATEROLE: it may set its password
            rotation = passwords.rotate(_incident(school, tmp_path), theirs, [victim], roles.RoleSet())
        assert rotation.rotated == [victim] and "not read back" in rotation.unread
        new = json.loads(rotation.file.read_text())[victim]
        with db.connect(school) as conn:
            stored = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (victim,)).fetchone()[0]
        assert roles.verifier_matches(roles.Secret(new), stored)
    finally:
        _as_superuser(school, sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(victim)),
                      sql.SQL("REVOKE CONNECT ON DATABASE {} FROM {}").format(sql.Identifier(school.database), sql.Identifier(admin)),
                      sql.SQL("DROP ROLE {}").format(sql.Identifier(admin)))


def test_a_rerun_naming_another_suspect_than_the_one_locked_out_is_refused(school, conn, suspect, tmp_path, server):
    """The earlier run of the incident locked out role A; a re-run named B: A's hold (with A's undo) was kept as
    'suspect', B was locked out too and its LOGIN and connection limit, read before, were recorded nowhere."""
    inc = Incident("security", "Test", school, incident_id="t-sus", directory=tmp_path)
    breach_response.isolate(inc, conn, suspect)
    other = f"other suspect {uuid.uuid4().hex[:6]}"
    _as_superuser(school, sql.SQL("CREATE ROLE {} LOGIN CONNECTION LIMIT 3").format(sql.Identifier(other)))
    try:
        again = Incident("security", "Test", school, incident_id="t-sus", directory=tmp_path)
        with pytest.raises(ParameterError, match=f"its earlier run locked out role '{re_escape(suspect)}', not '{other}'"):
            breach_response.isolate(again, conn, other)
        assert conn.execute("SELECT rolcanlogin, rolconnlimit FROM pg_roles WHERE rolname = %s", (other,)).fetchone() == (True, 3)
    finally:
        _as_superuser(school, sql.SQL("DROP ROLE {}").format(sql.Identifier(other)))
