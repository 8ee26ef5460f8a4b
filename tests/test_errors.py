"""The one place a database error becomes a user's one-line error."""

import psycopg
import pytest

from prep_ops import db
from prep_ops.errors import PrepOpsError, RoleError, database_error, first_line


def test_first_line_of_an_empty_message_is_the_type_name():
    assert first_line(ValueError("")) == "ValueError"
    assert first_line(ValueError("  one\ntwo  ")) == "one"


def test_database_error_says_what_failed_in_one_line(scratch):
    with db.connect(scratch, autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as failed:
            conn.execute("SELECT 'pw-secret-1'::int")
    error = database_error(failed.value, "reading the answer failed, nothing changed")
    assert type(error) is PrepOpsError
    assert str(error) == 'reading the answer failed, nothing changed: invalid input syntax for type integer: "pw-secret-1"'
    hidden = database_error(failed.value, "reading failed", RoleError, hidden=["pw-secret-1"])
    assert isinstance(hidden, RoleError) and "pw-secret-1" not in str(hidden) and '"***"' in str(hidden)


def test_database_error_adds_the_servers_detail_when_asked(scratch):
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE t (id int PRIMARY KEY)")
        conn.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(psycopg.Error) as failed:
            conn.execute("INSERT INTO t VALUES (1)")
    assert "\n" not in str(database_error(failed.value, "adding failed", detail=True))
    assert str(database_error(failed.value, "adding failed", detail=True)).endswith("Key (id)=(1) already exists.")
    assert "Key (id)" not in str(database_error(failed.value, "adding failed"))


def test_only_a_lost_session_is_explained_as_one_never_a_cancelled_statement_or_a_bad_query(scratch, server):
    """The CLI's line for a session the server ended says so; a statement_timeout (SQLSTATE 57014, the same
    class 57 as a shutdown) or an ordinary error gets no such words."""
    from prep_ops.cli import _connection_lost

    with db.connect(scratch, autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as cancelled:
            conn.execute("SET statement_timeout = '50ms'; SELECT pg_sleep(5)")
        with pytest.raises(psycopg.Error) as bad:
            conn.execute("SELECT 1/0")
        pid = conn.info.backend_pid
        with db.connect(server, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
        with pytest.raises(psycopg.Error) as ended:
            conn.execute("SELECT 1")
        with pytest.raises(psycopg.Error) as closed:  # psycopg's own: no SQLSTATE
            conn.execute("SELECT 1")
    assert cancelled.value.sqlstate == "57014" and _connection_lost(cancelled.value) == ""
    assert _connection_lost(bad.value) == ""
    assert ended.value.sqlstate == "57P01" and "the server ended the session" in _connection_lost(ended.value)
    assert closed.value.sqlstate is None and "the server ended the session" in _connection_lost(closed.value)
