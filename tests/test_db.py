import os
import uuid

import psycopg
import pytest
import sqlalchemy
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from prep_ops import access, backup, db, embedded
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
    ("host=h port=5 password='s3cret PW dbname=d", "host=h port=5 password=***"),  # a quote never closed
    ("postgresql://admin@myserver:S3cret@h:5432/db", "postgresql://admin@myserver:***@h:5432/db"),  # an @ in the user
])
def test_mask_url_hides_every_password(url, masked):
    assert db.mask_url(url) == masked


def test_postgres_scheme_is_accepted_like_libpq_does():
    target = db.resolve_target("postgres://alice:pw@h:5433/school")
    assert target.database == "school" and target.url.startswith("postgresql://")


def test_a_conninfo_string_as_database_url_works(server, monkeypatch):
    """libpq's key=value form is a DATABASE_URL like any other: prep-ops connects with it and shows a URL."""
    keywords = make_conninfo(**conninfo_to_dict(server.url))  # host=... dbname=... (password=...)
    assert "://" not in keywords
    monkeypatch.setenv("DATABASE_URL", keywords)
    target = db.resolve_target()
    assert target.url.startswith("postgresql://") and not target.embedded
    assert conninfo_to_dict(target.url) == conninfo_to_dict(server.url)
    with db.connect(target) as conn:
        assert conn.info.dbname == server.database


def test_the_embedded_url_form_reads_back(server):
    url = "postgresql://postgres@/unm_prep?host=/tmp/prep%20ops%26x"
    target = db.resolve_target(url)
    assert target.url == url and target.database == "unm_prep"
    assert conninfo_to_dict(target.with_database("other").url) == {"user": "postgres", "dbname": "other",
                                                                   "host": "/tmp/prep ops&x"}
    engine = sqlalchemy.create_engine(target.sqlalchemy_url)
    assert engine.dialect.create_connect_args(engine.url)[1]["host"] == "/tmp/prep ops&x"


def test_dbname_in_the_query_string_cannot_steer_with_database():
    target = db.resolve_target("postgresql://u:pw@h/mine?dbname=the_real_database&dbname=another")
    assert target.database == "another"  # libpq's reading: the last dbname given
    for moved in (target.with_database("prep_ops_x"), target.with_user("someone", "pw2").with_database("prep_ops_x")):
        assert conninfo_to_dict(moved.url)["dbname"] == "prep_ops_x" and "dbname=" not in moved.url
        assert sqlalchemy.engine.make_url(moved.sqlalchemy_url).database == "prep_ops_x"
        assert conninfo_to_dict(backup.libpq_env(moved)[0])["dbname"] == "prep_ops_x"


def test_a_service_or_options_in_the_url_cannot_redirect_with_database(scratch, tmp_path, monkeypatch):
    """A service whose file names another database, and options, do not move a connection off the database
    with_database names: libpq takes a service's values only for what the URL leaves unset."""
    (tmp_path / "pg_service.conf").write_text("[elsewhere]\ndbname=postgres\n")
    monkeypatch.setenv("PGSERVICEFILE", str(tmp_path / "pg_service.conf"))
    params = conninfo_to_dict(scratch.url) | {"service": "elsewhere", "options": "-c search_path=elsewhere"}
    without_dbname = db.Target(db.libpq_url({k: v for k, v in params.items() if k != "dbname"}), False)
    with db.connect(without_dbname) as conn:
        assert conn.info.dbname == "postgres"  # the service's file is read: its dbname fills the gap
    sneaky = db.resolve_target(db.libpq_url(params))
    with db.connect(sneaky.with_database(scratch.database)) as conn:
        assert conn.info.dbname == scratch.database


HARD_PASSWORD = "p/a@s:s w%o'r\"d#?&=+"  # every character a URL or a conninfo string treats specially


def test_a_password_with_url_characters_logs_in_and_is_never_shown(scratch):
    role = f"prep_ops_test_{uuid.uuid4().hex[:8]}"
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(HARD_PASSWORD)))
    try:
        given = access.login(scratch, role, HARD_PASSWORD)
        assert conninfo_to_dict(given.url)["password"] == HARD_PASSWORD
        target = db.resolve_target(given.url)  # as a DATABASE_URL, percent-encoded as libpq asks
        assert target.url == given.url and target.database == scratch.database
        assert sqlalchemy.engine.make_url(target.sqlalchemy_url).password == HARD_PASSWORD
        assert " " not in target.sqlalchemy_url  # the %sql magic splits its line at spaces
        url, env = backup.libpq_env(target)
        assert env["PGPASSWORD"] == HARD_PASSWORD and "password" not in conninfo_to_dict(url)
        with db.connect(target) as conn:
            assert conn.execute("SELECT current_user").fetchone()[0] == role
        shown = target.masked_url + target.with_database("x").masked_url + db.mask_url(target.sqlalchemy_url)
        assert "***" in shown and not any(piece in shown for piece in ("p/a", "s:s", "w%o", "%2Fa", "w%25o"))
        try:  # a server that checks passwords refuses a wrong one, in a message without either
            db.connect(given.with_user(role, "x" + HARD_PASSWORD), connect_timeout=5).close()
        except TargetError as err:
            assert "password authentication failed" in str(err) and "p/a@s" not in str(err)
    finally:
        with db.connect(scratch, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.mark.parametrize("url", ["postgresql://admin:p@ss w0rd@h/db", "postgresql://admin:se/cret@h:5432/db",
                                 "postgresql://admin:50%zz@h/db"])
def test_a_password_not_percent_encoded_is_one_clear_error_without_it(url):
    with pytest.raises(TargetError) as err:
        db.resolve_target(url)
    message = str(err.value)
    assert "percent-encode" in message and "\n" not in message
    assert not any(piece in message for piece in ("ss w0rd", "cret", "50%zz"))


@pytest.mark.parametrize("url", ["postgresql://admin@myserver:S3cretPass@h:5432/unm_prep",
                                 "postgresql://admin:S3@cretPass@h/db", "postgresql://admin:S3@cret/Pa@ss@h:5432/db"])
def test_a_url_with_an_unencoded_at_is_one_error_line_without_the_password(url):
    """libpq ends user and password at the first @: the rest of a password (or all of it, after a user name
    like admin@server) would be read into the host or database name, and shown there."""
    with pytest.raises(TargetError) as err:
        db.resolve_target(url)
    message = str(err.value)
    assert "percent-encode" in message and "\n" not in message
    assert not any(piece in message for piece in ("S3", "cret", "Pass", "Pa@ss"))


@pytest.mark.parametrize("given", [5, [1], {"host": "h", "password": "S3cret"}, 0])
def test_a_database_url_that_is_not_text_is_one_error_line(given):
    """`-p database_url 5` (JSON: a number) stopped the runbook with "TypeError: expected string or bytes-like
    object, got 'int'"; a 0 or [] fell back to the embedded server without a word."""
    with pytest.raises(TargetError, match=f"^database_url must be text .*, not {type(given).__name__}$") as err:
        db.resolve_target(given)
    assert "S3cret" not in str(err.value)


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
    wrong = db.libpq_url(conninfo_to_dict(server.url) | {"password": "wrong-pass-123"})
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


@pytest.mark.parametrize("autocommit", [True, False])
def test_a_search_path_naming_pg_catalog_after_the_owners_schema_does_not_run_the_owners_functions(scratch, autocommit):
    """`ALTER DATABASE x SET search_path = app, pg_catalog` (the owner may) put app's functions before the
    built-in ones in every prep-ops session: app.pg_total_relation_size(regclass) ran, as the superuser
    that runs health or backup, inside their queries. pg_catalog comes first; tables still resolve as the
    database's search_path says."""
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA app; CREATE TABLE app.items (id int); "
                     "CREATE FUNCTION app.pg_total_relation_size(regclass) RETURNS bigint LANGUAGE sql AS 'SELECT -1::bigint'")
        conn.execute(sql.SQL("ALTER DATABASE {} SET search_path = app, pg_catalog").format(sql.Identifier(scratch.database)))
    with db.connect(scratch, autocommit=autocommit) as conn:
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE  # no transaction left open
        assert conn.execute("SELECT pg_total_relation_size('items')").fetchone()[0] == 0  # app's says -1
        assert conn.execute("SELECT to_regclass('items') = 'app.items'::regclass").fetchone()[0]  # still app's table
