"""Blocking a role during an incident, and undoing it, on a real server with real sessions."""

import uuid

import psycopg
import pytest
from psycopg import sql

from prep_ops import db, roles
from prep_ops.incident import lockout
from prep_ops.errors import ParameterError


def _run(target, actions):
    with db.connect(target) as conn:
        for action in actions:
            conn.execute(action.statement, action.params)
        conn.commit()


@pytest.fixture
def app_role(migrated, server):
    """A login role with a password (hostile name), dropped afterwards."""
    name = f'app "x"; drop {uuid.uuid4().hex[:6]}'
    password = uuid.uuid4().hex
    with db.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CONNECTION LIMIT 7 PASSWORD {}").format(
            sql.Identifier(name), sql.Literal(password)))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(migrated.database), sql.Identifier(name)))
    yield name, roles.login(migrated, name, password)
    with db.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = {}").format(sql.Literal(name)))
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
    with db.connect(migrated, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
    with db.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def _limit_and_login(target, role):
    with db.connect(target, autocommit=True) as conn:
        return conn.execute("SELECT rolconnlimit, rolcanlogin FROM pg_roles WHERE rolname = %s", (role,)).fetchone()


@pytest.fixture
def conn(migrated):
    with db.connect(migrated, autocommit=True) as conn:
        yield conn


def test_block_ends_sessions_refuses_new_ones_and_undo_restores_the_old_limit(migrated, app_role, conn):
    name, login = app_role
    session = psycopg.connect(login.url, autocommit=True)
    assert len(lockout.sessions(conn, name)) == 1
    actions, undo = lockout.block(conn, name)
    _run(migrated, actions)
    assert lockout.sessions(conn, name).empty
    with pytest.raises(psycopg.OperationalError):
        session.execute("SELECT 1")
    allowed, answer = lockout.can_connect(login)
    assert not allowed and "too many connections" in answer
    _run(migrated, undo)
    assert _limit_and_login(migrated, name) == (7, True)
    assert lockout.can_connect(login) == (True, "connected")


def test_lock_out_also_takes_login_away_and_undo_gives_it_back(migrated, app_role, conn):
    name, login = app_role
    actions, undo = lockout.lock_out(conn, name)
    _run(migrated, actions)
    allowed, answer = lockout.can_connect(login)
    assert not allowed and "not permitted to log in" in answer
    assert _limit_and_login(migrated, name) == (0, False)
    _run(migrated, undo)
    assert _limit_and_login(migrated, name) == (7, True)


def test_statement_texts_quote_the_role_name(app_role, conn):
    name, _ = app_role
    actions, _ = lockout.block(conn, name)
    assert actions[0].text == 'ALTER ROLE "app ""x""; drop ' + name.split()[-1] + '" CONNECTION LIMIT 0'
    assert "usename = 'app \"x\"; drop" in actions[1].text


def test_unknown_and_superuser_roles_are_refused(conn):
    with pytest.raises(ParameterError, match="no role 'nobody_here'"):
        lockout.block(conn, "nobody_here")
    me = conn.execute("SELECT current_user").fetchone()[0]
    with pytest.raises(ParameterError, match="superuser"):
        lockout.block(conn, me)


def test_blocking_the_role_running_the_runbook_is_refused_before_anything_runs(migrated, app_role, conn):
    """app_role (or suspect_role) naming the role the runbook connects as: its connection limit 0 locked
    the DBA out ('too many connections for role'), so even the undo needed a superuser."""
    name, login = app_role
    with psycopg.connect(login.url, autocommit=True) as own:
        for make in (lockout.block, lockout.lock_out):
            with pytest.raises(ParameterError, match="role running this runbook: blocking it would lock you out"):
                make(own, name)
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(name)))  # acting as it is running as it too
    try:
        with pytest.raises(ParameterError, match="role running this runbook"):
            lockout.block(conn, name)
    finally:
        conn.execute("RESET ROLE")
    assert _limit_and_login(migrated, name) == (7, True)
