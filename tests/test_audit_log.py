"""The audit log on a real server: real changes by real roles, recorded with old and new values,
and a log that the roles it watches cannot touch."""

import secrets
import uuid

import psycopg
import pytest
from conftest import judge_as_elsewhere
from psycopg import sql

from prep_ops import audit_log, db, roles
from prep_ops.errors import ConfirmationRequired, ParameterError

HOSTILE = 'we"ird; DROP TABLE users; --'


@pytest.fixture
def watched(migrated, owner):
    """A migrated database with a few rows, its own roles, and the audit log on the default tables."""
    rs = roles.RoleSet.with_prefix(f"t{uuid.uuid4().hex[:8]}_")
    passwords = {kind: secrets.token_urlsafe(16) for kind in roles.LOGIN_KINDS}
    with db.connect(migrated) as conn:
        conn.execute("INSERT INTO users (username, email, role, full_name) VALUES "
                     "('rosa.vigil', 'rosa.vigil@unm.edu', 'student', 'Rosa Vigil')")
        conn.execute("INSERT INTO students (user_id, level, instrument, start_date, guardian, audition_recording) "
                     "VALUES (1, 'beginner', 'violin', '2025-01-10', '{\"name\": \"Ana Vigil\"}', '\\x0102')")
        conn.execute("INSERT INTO tuition_payments (student_id, term, amount, method) VALUES (1, '2026-fall', 420.00, 'card')")
    roles.apply(owner, rs, passwords)
    audit_log.enable(owner, readers=[rs.dba])
    yield migrated, rs, passwords
    roles.drop(owner, rs)


def _login(watched, kind):
    target, rs, passwords = watched
    return roles.login(target, rs.names[kind], passwords.get(kind))


def test_an_update_is_recorded_with_who_old_and_new_values(watched, owner):
    target, rs, _ = watched
    with db.connect(_login(watched, "app")) as conn:
        conn.execute("UPDATE students SET level = 'intermediate' WHERE id = 1")
    [entry] = audit_log.entries(owner, "students").to_dict("records")
    assert entry["operation"] == "UPDATE" and entry["table_name"] == "students" and entry["schema_name"] == "public"
    assert entry["login_role"] == rs.app and entry["acting_role"] == rs.app
    assert entry["row_key"] == {"id": 1}
    assert entry["old_values"]["level"] == "beginner" and entry["new_values"]["level"] == "intermediate"
    assert entry["changed_columns"] == ["level"]
    assert entry["at"] is not None and entry["transaction_id"] > 0


def test_insert_update_delete_and_truncate_are_recorded(watched, owner):
    target, rs, _ = watched
    probe = audit_log.probe_change(_login(watched, "app"))
    trail = audit_log.probe_entries(owner, probe)
    assert list(trail["operation"]) == ["INSERT", "UPDATE", "DELETE"]
    insert, update, delete = trail.to_dict("records")
    assert insert["old_values"] is None and insert["new_values"]["username"] == probe
    assert update["old_values"]["full_name"] == "Audit Probe" and update["new_values"]["full_name"] == "Audit Probe (changed)"
    assert delete["new_values"] is None and delete["old_values"]["full_name"] == "Audit Probe (changed)"
    assert len({r["transaction_id"] for r in trail.to_dict("records")}) == 1
    with db.connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM users WHERE username = %s", (probe,)).fetchone()[0] == 0
        conn.execute("TRUNCATE tuition_payments")
    [truncate] = audit_log.entries(owner, "tuition_payments").to_dict("records")
    assert truncate["operation"] == "TRUNCATE" and truncate["row_key"] is None


def test_set_role_is_recorded_as_the_acting_role(watched, owner):
    target, rs, _ = watched
    with db.connect(target) as conn:
        me = conn.execute("SELECT current_user").fetchone()[0]
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(rs.app)))
        conn.execute("UPDATE users SET full_name = 'Rosa M. Vigil' WHERE id = 1")
    [entry] = audit_log.entries(owner, "users").to_dict("records")
    assert entry["login_role"] == me and entry["acting_role"] == rs.app


def test_binary_columns_are_left_out_but_their_change_shows(watched, owner):
    target, _, _ = watched
    with db.connect(_login(watched, "app")) as conn:
        conn.execute("UPDATE students SET audition_recording = '\\x0a0b0c' WHERE id = 1")
    [entry] = audit_log.entries(owner, "students").to_dict("records")
    assert entry["changed_columns"] == ["audition_recording"]
    assert "audition_recording" not in entry["old_values"] and "audition_recording" not in entry["new_values"]
    assert entry["new_values"]["guardian"] == {"name": "Ana Vigil"}


def test_watched_roles_cannot_change_the_log(watched, owner):
    target, rs, _ = watched
    with db.connect(_login(watched, "app")) as conn:
        conn.execute("UPDATE users SET role = 'staff' WHERE id = 1")  # something to delete
    for kind in ("app", "reporter", "analyst", "dba"):
        with db.connect(_login(watched, kind)) as conn:
            for statement in ("DELETE FROM audit.log", "UPDATE audit.log SET operation = 'INSERT'", "TRUNCATE audit.log",
                              "INSERT INTO audit.log (acting_role, schema_name, table_name, operation) "
                              "VALUES ('x', 'public', 'users', 'INSERT')",
                              "DROP TABLE audit.log", "DROP TRIGGER audit_log_row ON users",
                              "ALTER TABLE users DISABLE TRIGGER audit_log_row"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    with conn.transaction():
                        conn.execute(statement)
    assert not roles.try_access(_login(watched, "app"), "log", schema="audit")["allowed"].any()
    with db.connect(_login(watched, "dba")) as conn:  # the reader reads
        assert conn.execute("SELECT count(*) FROM audit.log").fetchone()[0] == 1
    with db.connect(target) as conn:  # and even the owner cannot rewrite it: append-only
        for statement in ("DELETE FROM audit.log", "UPDATE audit.log SET operation = 'INSERT'", "TRUNCATE audit.log"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                with conn.transaction():
                    conn.execute(statement)
    assert len(audit_log.entries(owner)) == 1


def test_enable_and_disable_are_idempotent(watched, owner):
    target, rs, _ = watched
    assert audit_log.enabled(owner) == sorted(audit_log.DEFAULT_TABLES)
    assert audit_log.enable(owner, readers=[rs.dba]) == []
    assert audit_log.disable(owner, "tuition_payments") == ["tuition_payments"]
    assert audit_log.disable(owner, "tuition_payments") == []
    with db.connect(target) as conn:
        conn.execute("UPDATE tuition_payments SET amount = 400")
    assert audit_log.entries(owner, "tuition_payments").empty
    assert audit_log.enable(owner, "tuition_payments") == ["tuition_payments"]
    assert audit_log.enable(owner, "tuition_payments") == []
    with db.connect(target) as conn:
        conn.execute("UPDATE tuition_payments SET amount = 410")
    assert list(audit_log.entries(owner, "tuition_payments")["operation"]) == ["UPDATE"]


def test_hostile_table_name(migrated, owner):
    with db.connect(migrated) as conn:
        conn.execute(sql.SQL('CREATE TABLE {} ({} serial PRIMARY KEY, note text, clip bytea)').format(
            sql.Identifier(HOSTILE), sql.Identifier('key "a", b')))
    assert audit_log.enable(owner, HOSTILE) == [HOSTILE]
    assert audit_log.enable(owner, HOSTILE) == []
    with db.connect(migrated) as conn:
        conn.execute(sql.SQL("INSERT INTO {} (note, clip) VALUES ('hello', '\\x00')").format(sql.Identifier(HOSTILE)))
        assert conn.execute("SELECT to_regclass('public.users')").fetchone()[0] is not None
    [entry] = audit_log.entries(owner, HOSTILE).to_dict("records")
    assert entry["table_name"] == HOSTILE and entry["row_key"] == {'key "a", b': 1}
    assert entry["new_values"] == {'key "a", b': 1, "note": "hello"}
    assert HOSTILE in audit_log.enabled(owner)
    assert audit_log.disable(owner, HOSTILE) == [HOSTILE]


def test_unknown_tables_and_bad_limits_are_refused(migrated, owner):
    with pytest.raises(ParameterError, match="no table"):
        audit_log.enable(owner, "no_such_table")
    with pytest.raises(ParameterError):
        audit_log.enable(owner, [])
    assert audit_log.entries(owner).empty  # migrated: the log is there, empty until something is logged
    audit_log.enable(owner, "users")
    with pytest.raises(ParameterError, match="limit"):
        audit_log.entries(owner, limit=0)


def test_changes_outside_a_scratch_database_need_confirm(migrated, owner, monkeypatch):
    judge_as_elsewhere(monkeypatch)  # as on a server someone named by a URL
    with pytest.raises(ConfirmationRequired, match="enabling the audit log"):
        audit_log.enable(owner)
    assert audit_log.enabled(owner) == []
    with pytest.raises(ConfirmationRequired, match="disabling the audit log"):
        audit_log.disable(owner)
    assert audit_log.enable(owner, confirm=True) == list(audit_log.DEFAULT_TABLES)


def test_without_the_migration_the_log_is_missing_and_enable_says_what_to_do(scratch, owner):
    from prep_ops import migrate

    migrate.apply(owner, to=5)
    with pytest.raises(audit_log.AuditLogError, match="no audit log .* migrate to the latest version"):
        audit_log.enable(owner)
    with pytest.raises(audit_log.AuditLogError, match="no audit log"):
        audit_log.entries(owner)
    assert audit_log.enabled(owner) == []


def test_a_table_owners_cast_to_json_never_runs_with_the_audit_logs_rights(migrated, owner, app_author):
    """The audit function runs as its owner (SECURITY DEFINER: a superuser where the migrations ran as
    one), and to_jsonb() of a row takes a column type's own cast to json where its owner made one. The
    owner of an audited table, writing to it, had their cast function run with the log owner's rights.
    Where such a cast exists the row is recorded by its text form instead."""
    author, password = app_author
    with db.connect(migrated.with_user(author, password), autocommit=True) as conn:
        conn.execute("CREATE TYPE app.mood AS ENUM ('sad', 'happy')")
        conn.execute(sql.SQL("""CREATE FUNCTION app.spoken(app.mood) RETURNS json LANGUAGE plpgsql AS $f$
            BEGIN
                IF current_user <> {} THEN
                    PERFORM pg_advisory_lock(464646);  -- a mark that outlives the transaction
                END IF;
                RETURN to_json($1::text);
            END $f$""").format(sql.Literal(author)))
        conn.execute("CREATE CAST (app.mood AS json) WITH FUNCTION app.spoken(app.mood)")  # what to_jsonb takes
        conn.execute("CREATE TABLE app.feelings (id int PRIMARY KEY, m app.mood)")
    audit_log.enable(owner, ["app.feelings"], confirm=True)
    with db.connect(migrated.with_user(author, password), autocommit=True) as conn:
        conn.execute("INSERT INTO app.feelings VALUES (1, 'happy')")
        marked = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 464646"
                              ).fetchone()[0]
    assert marked == 0
    logged = owner.execute("SELECT new_values FROM audit.log WHERE schema_name = 'app' AND table_name = 'feelings'"
                           ).fetchall()
    assert len(logged) == 1 and "happy" in str(logged[0][0]), logged


def test_an_audit_log_installed_before_its_cast_guard_gets_it_from_install(scratch):
    """On a database without prep-ops' migrations the log comes from install(); one installed with 0006's
    function alone (before 0009) is given 0009's function by the next install, not left as it was."""
    from prep_ops.migrate import discover

    [old] = [m for m in discover() if m.name == "audit_log"]
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute(old.up_sql)  # as an earlier prep-ops installed it
        assert audit_log.install(conn, confirm=True) is True
        assert "(migration 0009)" in conn.execute("SELECT obj_description('audit.log_change()'::regprocedure)"
                                                  ).fetchone()[0]
        assert audit_log.install(conn, confirm=True) is False


def test_enabling_or_disabling_the_log_behind_a_long_transaction_gives_up_naming_the_session_instead_of_stalling_writers(
        migrated, owner, monkeypatch):
    """CREATE TRIGGER on a table an application's transaction has open waited for as long as it lasted, and
    every later write to that table queued behind it: runbook 06 with confirm stalled the application. It
    waits lock_watch.DDL_LOCK_WAIT at most now, changes nothing and names the session holding the table."""
    from prep_ops import lock_watch
    from prep_ops.errors import AuditLogError

    monkeypatch.setattr(lock_watch, "DDL_LOCK_WAIT", "1s")
    with db.connect(migrated, application_name="long-writer") as writer:
        writer.execute("INSERT INTO users (username, email, role) VALUES ('a', 'a@example.org', 'student')")
        pid = writer.info.backend_pid
        with pytest.raises(AuditLogError) as caught:
            audit_log.enable(owner, ["users"])
        assert audit_log.enabled(owner) == []
        writer.rollback()
    text = str(caught.value)
    assert text.startswith("enabling the audit log failed, nothing changed: it waited 1s for a lock"), text
    assert f"public.users by pid {pid} (application long-writer" in text, text
    assert audit_log.enable(owner, ["users"]) == ["users"]  # the transaction over, it goes through
    with db.connect(migrated, application_name="long-writer") as writer:  # and disabling it behind one
        writer.execute("INSERT INTO users (username, email, role) VALUES ('b', 'b@example.org', 'student')")
        with pytest.raises(AuditLogError, match=r"^disabling the audit log failed, nothing changed: it waited 1s "
                                                r".*public\.users.* by pid \d+ \(application long-writer"):
            audit_log.disable(owner, ["users"])
        writer.rollback()
    assert audit_log.enabled(owner) == ["users"]
    with db.connect(migrated) as in_a_transaction:  # a caller's own transaction: the bound ends with the change
        assert audit_log.enable(in_a_transaction, ["students"]) == ["students"]
        assert in_a_transaction.execute("SHOW lock_timeout").fetchone()[0] == "0"
