"""recovery_copy: the copy out of a recovery cluster (pg_dump -Fd --jobs into the cluster's folder, pg_restore
--jobs into a new database). Here the suite's server plays both sides (a folder of the test's own stands for
the recovery cluster's); recover's own tests (test_pitr.py) run it out of real recovery clusters, killed too."""

import secrets
import uuid
from types import SimpleNamespace

import pytest
from psycopg import sql

from prep_ops import db, recovery_copy
from prep_ops.errors import BackupError

CHECKSUM = "SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t.v), '')) FROM fees AS t"


@pytest.fixture
def source(server, tmp_path):
    """A database `fees` with a check that calls a function reading another table unqualified (a restore
    runs with an empty search_path: that check fails there), a stand-in recovery cluster whose folder is
    the test's own, and the name for the copy; the copy is dropped after."""
    name, into = f"prep_ops_test_src_{uuid.uuid4().hex[:8]}", f"prep_ops_test_into_{uuid.uuid4().hex[:8]}"
    with db.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    cluster = SimpleNamespace(folder=tmp_path, url=lambda database: server.with_database(database).url)
    yield server.with_database(name), cluster, into
    with db.connect(server, autocommit=True) as conn:
        for gone in (name, into):
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(gone)))


def _copy(server, cluster, database: str, into: str) -> str:
    with db.connect(server, autocommit=True) as conn:
        major = conn.info.server_version // 10000
        recovery_copy.copy_database(cluster, database, server, conn, into, major, jobs=2)
    return into


def _databases(server) -> set[str]:
    with db.connect(server, autocommit=True) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}


def test_a_parallel_copy_equals_its_source_and_leaves_no_dump_folder(server, source):
    target, cluster, into = source
    with db.connect(target, autocommit=True) as conn:
        conn.execute("CREATE TABLE fees (v int PRIMARY KEY, note text)")
        conn.execute("CREATE TABLE payers (id int PRIMARY KEY, fee int REFERENCES fees)")
        conn.execute("INSERT INTO fees SELECT g, md5(g::text) FROM generate_series(1, 20000) g")
        conn.execute("INSERT INTO payers SELECT g, g FROM generate_series(1, 20000) g")
        conn.execute("CREATE INDEX ON fees (note)")
        wanted = conn.execute(CHECKSUM).fetchone()[0]
    _copy(server, cluster, target.database, into)
    with db.connect(server.with_database(into), autocommit=True) as copy:
        assert copy.execute(CHECKSUM).fetchone()[0] == wanted
        assert copy.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'fees'").fetchone()[0] == 2
        assert copy.execute("SELECT count(*) FROM pg_constraint WHERE contype = 'f'").fetchone()[0] == 1
    assert not (cluster.folder / recovery_copy.DUMP_FOLDER).exists()


def test_a_failed_parallel_pg_restore_is_reported_by_its_error_line_and_leaves_no_copy_or_dump_folder(server, source):
    target, cluster, into = source
    with db.connect(target, autocommit=True) as conn:
        conn.execute("CREATE TABLE limits (n int)")
        conn.execute("INSERT INTO limits VALUES (10)")
        conn.execute("CREATE FUNCTION under_limit(v int) RETURNS bool LANGUAGE sql AS "
                     "'SELECT v < (SELECT max(n) FROM limits)'")
        conn.execute("CREATE TABLE fees (v int CHECK (under_limit(v)))")
        conn.execute("INSERT INTO fees SELECT g FROM generate_series(1, 5) g")
    with pytest.raises(BackupError) as caught:
        _copy(server, cluster, target.database, into)
    said = str(caught.value)
    assert said.startswith(f"copying {target.database} out of the recovery cluster failed: pg_restore: "
                           'ERROR: relation "limits" does not exist'), said
    assert "\n" not in said and "worker" not in said  # its own error, not the leader's word on a dead worker
    assert into not in _databases(server)
    assert not (cluster.folder / recovery_copy.DUMP_FOLDER).exists()


def test_a_failed_pg_dump_is_reported_in_one_line_and_leaves_no_copy_or_dump_folder(server, source):
    _, cluster, into = source
    with pytest.raises(BackupError) as caught:
        _copy(server, cluster, "prep_ops_test_no_such_db", into)
    said = str(caught.value)
    assert said.startswith("copying prep_ops_test_no_such_db out of the recovery cluster failed: pg_dump: "), said
    assert 'database "prep_ops_test_no_such_db" does not exist' in said and "\n" not in said
    assert into not in _databases(server)
    assert not (cluster.folder / recovery_copy.DUMP_FOLDER).exists()


def test_a_role_with_connections_to_spare_for_one_job_only_copies_with_one(server):
    """pg_restore --jobs N opens N + 1 connections: a role under a CONNECTION LIMIT (or a server near
    max_connections) gets the jobs it can open, never a copy failing on "too many clients"."""
    role, password = f"rc_limited_{uuid.uuid4().hex[:8]}", secrets.token_hex(12)
    with db.connect(server, autocommit=True) as conn:
        assert recovery_copy.restore_jobs(conn, 2) == 2  # the suite's role has slots to spare
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} CONNECTION LIMIT 2").format(
            sql.Identifier(role), sql.Literal(password)))
    try:
        with db.connect(server.with_user(role, password), autocommit=True) as limited:
            assert recovery_copy.restore_jobs(limited, 4) == 1  # one slot left: pg_restore's leader alone
    finally:
        with db.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
