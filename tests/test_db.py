import os

import psycopg
import pytest

from prep_ops import db, embedded
from prep_ops.errors import ConfirmationRequired, TargetError


@pytest.mark.parametrize("url, masked", [
    ("postgresql://alice:s3cret@db.example:5432/unm_prep", "postgresql://alice:***@db.example:5432/unm_prep"),
    ("postgresql+psycopg://alice:p%40ss@h/d", "postgresql+psycopg://alice:***@h/d"),
    ("host=h dbname=d password=s3cret user=u", "host=h dbname=d password=*** user=u"),
    ("postgresql://alice@h/d?password=s3cret&sslmode=require", "postgresql://alice@h/d?password=***&sslmode=require"),
    ("postgresql://postgres@/unm_prep?host=/tmp/x", "postgresql://postgres@/unm_prep?host=/tmp/x"),
    ("mysql://admin:se/cret@h/db", "mysql://admin:***@h/db"),
    ("postgresql://admin:se@cret@h:5432/db", "postgresql://admin:***@h:5432/db"),
    ("postgres://admin:pw@h/db", "postgres://admin:***@h/db"),
    ("postgresql://admin:p@ss w0rd@h/db", "postgresql://admin:***@h/db"),  # a space in the password
    ("error: postgresql://admin:se cret@h:1/d: refused", "error: postgresql://admin:***@h:1/d: refused"),
    ("host=h password='p ss\\'x' user=u", "host=h password=*** user=u"),
])
def test_mask_url_hides_every_password(url, masked):
    assert db.mask_url(url) == masked


def test_postgres_scheme_is_accepted_like_libpq_does():
    target = db.resolve_target("postgres://alice:pw@h:5433/school")
    assert target.database == "school" and target.url.startswith("postgresql://")


def test_explicit_url_wins_over_environment(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://env@envhost/envdb")
    target = db.resolve_target("postgresql://given@givenhost/givendb")
    assert target.database == "givendb" and not target.embedded


def test_environment_url_is_used_when_none_given(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://env:pw@envhost:6543/envdb")
    target = db.resolve_target()
    assert target.url == "postgresql://env:pw@envhost:6543/envdb"
    assert target.masked_url == "postgresql://env:***@envhost:6543/envdb"
    assert target.sqlalchemy_url.startswith("postgresql+psycopg://")


def test_embedded_is_the_default_and_scratch(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    target = db.resolve_target()
    assert target.embedded and target.scratch
    with db.connect(target) as conn:
        assert db.server_version(conn) == embedded.VERSION


def test_external_target_is_not_scratch_unless_declared(monkeypatch):
    monkeypatch.delenv("PREP_OPS_SCRATCH", raising=False)
    assert not db.resolve_target("postgresql://u@h/d").scratch
    monkeypatch.setenv("PREP_OPS_SCRATCH", "1")
    assert db.resolve_target("postgresql://u@h/d").scratch


@pytest.mark.parametrize("url", ["nonsense", "mysql://u:pw@h/d", "postgresql://u:pw@h:notaport/d"])
def test_bad_url_is_one_clear_error_without_password(url):
    with pytest.raises(TargetError) as err:
        db.connect(db.resolve_target(url))
    assert "pw" not in str(err.value).replace("password", "")
    assert "\n" not in str(err.value)


def test_stopped_server_is_one_clear_error_without_password():
    target = db.resolve_target("postgresql://alice:topsecret@127.0.0.1:1/unm_prep")
    with pytest.raises(TargetError) as err:
        db.connect(target, connect_timeout=2)
    message = str(err.value)
    assert "topsecret" not in message and "alice:***@127.0.0.1:1" in message and "\n" not in message


def test_wrong_password_is_one_clear_error(server):
    if db.mask_url(server.url) == server.url:
        pytest.skip("the server under test trusts its clients (no password to get wrong)")
    from sqlalchemy.engine import make_url

    wrong = make_url(server.url).set(password="wrong-pass-123").render_as_string(hide_password=False)
    with pytest.raises(TargetError) as err:
        db.connect(db.resolve_target(wrong))
    assert "password authentication failed" in str(err.value)
    assert "wrong-pass-123" not in str(err.value)


def test_with_database_keeps_server_and_credentials(server):
    other = server.with_database("some_other_db")
    assert other.database == "some_other_db"
    from psycopg.conninfo import conninfo_to_dict

    theirs, ours = conninfo_to_dict(other.url), conninfo_to_dict(server.url)
    assert theirs.pop("dbname") == "some_other_db"
    ours.pop("dbname")
    assert theirs == ours


def test_client_program_matches_the_server(server):
    with db.connect(server) as conn:
        major = db.server_version(conn)
    pg_dump = db.client_program("pg_dump", server, major)
    assert pg_dump.exists() and os.access(pg_dump, os.X_OK)


def test_a_connection_is_scratch_only_when_opened_for_a_scratch_target(server, monkeypatch):
    monkeypatch.delenv("PREP_OPS_SCRATCH", raising=False)
    named = db.Target(server.url, embedded=False)  # the same server, named by a URL: someone's database
    with db.connect(server) as default, db.connect(named) as by_url:
        assert db.is_scratch(default) == server.embedded
        assert not db.is_scratch(by_url)
        with pytest.raises(ConfirmationRequired, match="not a scratch database and a test changes it"):
            db.require_change(by_url, False, "a test")
        db.require_change(by_url, True, "a test")
        monkeypatch.setenv("PREP_OPS_SCRATCH", "1")
        assert db.is_scratch(by_url)


def test_snapshot_reads_one_state_and_refuses_writes(scratch):
    with db.connect(scratch, autocommit=True) as conn, db.connect(scratch, autocommit=True) as other:
        conn.execute("CREATE TABLE t (n int)")
        with db.snapshot(conn):
            assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 0
            other.execute("INSERT INTO t VALUES (1)")
            assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 0  # the same snapshot
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 1
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction), db.snapshot(conn):
            conn.execute("INSERT INTO t VALUES (2)")
