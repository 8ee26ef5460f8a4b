"""INVALID indexes, whoever made them, and index builds of other roles' sessions: seen as running by
every role that asks, never proposed for a DROP, never dropped."""

import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass

import psycopg
import pytest
from conftest import cli_env
from psycopg import sql

from prep_ops import db, index_builds, indexes
from prep_ops.incident import performance


@dataclass
class Roles:
    builder: db.Target  # owns the tables and builds their indexes
    helper: db.Target  # a DBA's helper: neither superuser nor pg_read_all_stats
    builder_name: str
    helper_name: str


@pytest.fixture
def roles(server, scratch):
    """Two login roles on `scratch`: one that may create tables in public, one with no special rights;
    their objects and the roles dropped after."""
    tag, password = uuid.uuid4().hex[:8], f"pw-{uuid.uuid4().hex}"
    builder, helper = f"prep_ops_builder_{tag}", f"prep_ops_helper_{tag}"
    with db.connect(server, autocommit=True) as admin:
        for role in (builder, helper):
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
    with db.connect(scratch, autocommit=True) as admin:
        admin.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(builder)))
    yield Roles(scratch.with_user(builder, password), scratch.with_user(helper, password), builder, helper)
    with db.connect(scratch, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ANY (%s)", ([builder, helper],))
        admin.execute(sql.SQL("DROP OWNED BY {}, {}").format(sql.Identifier(builder), sql.Identifier(helper)))
    with db.connect(server, autocommit=True) as admin:
        for role in (builder, helper):
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


class Running:
    """A statement run by `target` in a thread of its own, that waits on the open transaction of `blocker`."""

    def __init__(self, target: db.Target, statement: str):
        self.conn = db.connect(target, autocommit=True)
        self.pid, self.error = self.conn.info.backend_pid, None
        self.thread = threading.Thread(target=self._run, args=(statement,))
        self.thread.start()

    def _run(self, statement: str) -> None:
        try:
            self.conn.execute(statement)
        except psycopg.Error as exc:
            self.error = exc

    def join(self) -> None:
        self.thread.join(30)
        self.conn.close()
        assert self.error is None, self.error


def wait_for_build(conn, pid: int) -> None:
    """Until the session `pid` builds an index and waits (its index in the catalog, INVALID)."""
    for _ in range(300):
        if conn.execute("SELECT index_relid <> 0 AND phase LIKE 'waiting%%' FROM pg_stat_progress_create_index "
                        "WHERE pid = %s", (pid,)).fetchone() == (True,):
            return
        time.sleep(0.1)
    raise AssertionError(f"session {pid} is not building an index")


def states(conn) -> list[tuple]:
    found = index_builds.leftover_builds(conn)
    return [(r.index_name, r.state, r.built_by if isinstance(r.built_by, str) else None, bool(r.may_drop))
            for r in found.itertuples()]


def proposal(table: str, index: str) -> indexes.Advice:
    return indexes.Advice("candidate for query", table, index, ("a",), "", indexes.create_statement(table, ("a",)))


def test_a_leftover_of_another_role_is_seen_and_its_running_build_is_never_dropped(scratch, roles):
    """pg_stat_progress_create_index shows which index a session builds only to superusers, that session's
    role and pg_read_all_stats: to another role, another role's running build looked like no build at all,
    and its INVALID index like a leftover to drop (DROP INDEX CONCURRENTLY would wait for the build, then
    drop the index it just made). Every role sees every INVALID index; a build runs: in progress, or maybe
    in progress for a role that may not look into it, never a DROP."""
    with db.connect(roles.builder, autocommit=True) as mine:
        mine.execute("CREATE TABLE u (a int)")
        mine.execute("INSERT INTO u SELECT i % 10 FROM generate_series(1, 100) i")
        with pytest.raises(psycopg.errors.UniqueViolation):
            mine.execute("CREATE UNIQUE INDEX CONCURRENTLY u_a ON u (a)")  # duplicates: INVALID, a leftover
        mine.execute("CREATE TABLE w (a int)")
        mine.execute("INSERT INTO w SELECT generate_series(1, 100)")
    with db.connect(scratch, autocommit=True) as admin, db.connect(scratch) as blocker:
        blocker.execute("INSERT INTO w VALUES (0)")  # an open transaction: the build waits for it
        build = Running(roles.builder, "CREATE INDEX CONCURRENTLY w_a ON w (a)")
        try:
            wait_for_build(admin, build.pid)
            builder = roles.builder_name
            assert states(admin) == [("u_a", "leftover", None, True), ("w_a", "in progress", builder, True)]
            advice = indexes.invalid(admin)
            assert [(a.kind, a.index, a.statement[:34]) for a in advice] == [
                ("invalid", "u_a", 'DROP INDEX CONCURRENTLY IF EXISTS '), ("build in progress", "w_a", "")]
            assert f"CREATE INDEX CONCURRENTLY in progress (pid {build.pid}, role {builder}" in advice[1].why
            proposed = [proposal("u", "u_a"), proposal("w", "w_a")]
            assert [d.text for d in performance.leftover_drops(admin, proposed)] == [
                'DROP INDEX CONCURRENTLY IF EXISTS "public"."u_a"']
            shown = subprocess.run([sys.executable, "-m", "prep_ops", "indexes"], capture_output=True, text=True,
                                   env=cli_env(scratch), timeout=120)
            statements = shown.stdout.partition("-- statements (not run):")[2].strip().splitlines()
            assert "build in progress" in shown.stdout and "w_a" in shown.stdout, shown.stdout + shown.stderr
            assert len(statements) == 1 and statements[0].startswith('DROP INDEX CONCURRENTLY IF EXISTS "public"."u_a";')
            with db.connect(roles.helper, autocommit=True) as helper:
                assert helper.execute("SELECT index_relid FROM pg_stat_progress_create_index WHERE pid = %s",
                                      (build.pid,)).fetchone() == (None,)  # what hid the build
                assert states(helper) == [("u_a", "leftover", None, False), ("w_a", "maybe in progress", builder, False)]
                advice = indexes.invalid(helper)
                assert [(a.kind, a.index, bool(a.statement)) for a in advice] == [
                    ("invalid", "u_a", True), ("build maybe in progress", "w_a", False)]
                assert f"owned by {builder}: only that role or a superuser can drop it" in advice[0].why
                assert f"a build by pid {build.pid} (role {builder}) runs on w" in advice[1].why
                assert [d.text for d in performance.leftover_drops(helper, proposed)] == [
                    'DROP INDEX CONCURRENTLY IF EXISTS "public"."u_a"']
            admin.execute(sql.SQL("GRANT pg_read_all_stats TO {}").format(sql.Identifier(roles.helper_name)))
            with db.connect(roles.helper, autocommit=True) as helper:  # a monitoring role sees the build itself
                assert states(helper) == [("u_a", "leftover", None, False), ("w_a", "in progress", builder, False)]
        finally:
            blocker.rollback()
            build.join()
        assert admin.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'w_a'::regclass").fetchone() == (True,)
        assert states(admin) == [("u_a", "leftover", None, True)]


def test_the_new_index_of_a_running_reindex_concurrently_is_in_progress(scratch, roles):
    """REINDEX CONCURRENTLY builds an INVALID copy (<name>_ccnew) while its progress names the index it
    replaces: the copy is known by the lock its session holds on it, and is in progress, not a leftover."""
    with db.connect(roles.builder, autocommit=True) as mine:
        mine.execute("CREATE TABLE r (a int)")
        mine.execute("CREATE INDEX r_a ON r (a)")
    with db.connect(scratch, autocommit=True) as admin, db.connect(scratch) as blocker:
        blocker.execute("INSERT INTO r VALUES (0)")
        build = Running(roles.builder, "REINDEX INDEX CONCURRENTLY r_a")
        try:
            wait_for_build(admin, build.pid)
            builder = roles.builder_name
            assert states(admin) == [("r_a_ccnew", "in progress", builder, True)]
            assert [(a.kind, a.statement) for a in indexes.invalid(admin)] == [("build in progress", "")]
        finally:
            blocker.rollback()
            build.join()
        assert states(admin) == []
