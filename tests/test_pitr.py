"""recover --to: a database as it was at a moment, from a base backup and archived WAL, proven by checksums
the tests compute themselves. Every test runs on a private archiving cluster (pitr_fixtures), never on the
suite's shared server."""

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import psutil
import pytest
from psycopg import sql

import pitr_fixtures
from pitr_fixtures import make_source, stop_source
from prep_ops import base_backup, pitr, recovery_cluster, wal_archive
from prep_ops.scratch import run_id
from prep_ops.errors import ParameterError

independent = pytest.mark.server_independent  # every test but the last: a private cluster of their own
source_cluster = pitr_fixtures.source_cluster  # the fixture, used by name

# each table's content in one md5: every row's text, in primary-key order
CHECKSUM = "SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t.id), '')) FROM {} AS t"


def checksums(conn, tables=("lessons", "notes")) -> dict:
    present = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()}
    return {t: conn.execute(CHECKSUM.format(t)).fetchone()[0] if t in present else None for t in tables}


def work(conn, first: int, last: int) -> None:
    conn.execute("INSERT INTO lessons SELECT g, 'lesson ' || g, g * 1.5 FROM generate_series(%s::int, %s::int) g", (first, last))
    conn.execute("INSERT INTO notes SELECT g, md5(g::text) FROM generate_series(%s::int, %s::int) g", (first, last))


def prepared(source):
    """The source's `app` with two tables, a base backup, and work after it; returns the connection."""
    conn = source.connect()
    conn.execute("CREATE TABLE lessons (id int PRIMARY KEY, title text, fee numeric)")
    conn.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
    work(conn, 1, 500)
    base_backup.take(conn, source.target)
    work(conn, 501, 900)  # after the base backup: only the archived WAL has it
    conn.execute("UPDATE lessons SET fee = fee + 1 WHERE id % 7 = 0")
    return conn


def moment(conn) -> datetime:
    """The server's clock now; the next commit is stamped after it."""
    at = conn.execute("SELECT clock_timestamp()").fetchone()[0]
    time.sleep(0.05)
    return at


def damage(conn) -> None:
    conn.execute("DELETE FROM lessons WHERE id > 300")
    conn.execute("UPDATE notes SET body = 'overwritten'")
    conn.execute("DROP TABLE lessons")


@independent
def test_recover_to_t1_equals_t1_content_and_leaves_the_original_untouched(source_cluster):
    conn = prepared(source_cluster)
    t1 = moment(conn)
    at_t1 = checksums(conn)
    damage(conn)
    after = checksums(conn)
    assert after != at_t1 and after["lessons"] is None  # the damage is real

    done = pitr.recover(conn, source_cluster.target, to_time=t1, controlled=True)

    assert done["database"] == f"app_at_{t1.astimezone(timezone.utc):%Y%m%d_%H%M%S}"
    with source_cluster.connect(done["database"]) as copy:
        assert checksums(copy) == at_t1
        assert copy.execute("SELECT count(*) FROM lessons").fetchone()[0] == 900
    assert checksums(conn) == after  # the original: exactly as the damage left it
    assert not recovery_cluster.home().exists() or not list(recovery_cluster.home().iterdir())


@independent
def test_recover_to_lsn_stops_before_the_damaging_record(source_cluster):
    conn = prepared(source_cluster)
    lsn = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0]
    at_lsn = checksums(conn)
    damage(conn)
    done = pitr.recover(conn, source_cluster.target, to_lsn=lsn, as_name="before damage", controlled=True)
    assert done["database"] == "before damage"
    with source_cluster.connect("before damage") as copy:
        assert checksums(copy) == at_lsn


@independent
def test_recover_refuses_a_moment_outside_the_window(source_cluster):
    conn = prepared(source_cluster)
    backup_finished = base_backup.listing(source_cluster.system_identifier)[0].manifest["finished"]
    before = datetime.fromisoformat(backup_finished) - timedelta(minutes=5)
    with pytest.raises(ParameterError, match="outside the recoverable window: the recoverable window is") as caught:
        pitr.recover(conn, source_cluster.target, to_time=before, controlled=True)
    assert "\n" not in str(caught.value)
    assert backup_finished[:19] in str(caught.value)
    with pytest.raises(ParameterError, match="in the future"):
        pitr.recover(conn, source_cluster.target, to_time=datetime.now(timezone.utc) + timedelta(hours=1))
    names = {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}
    assert not [n for n in names if n.startswith(("app_at", pitr.PREFIX))]


@independent
def test_recover_refuses_an_existing_database_name(source_cluster):
    conn = prepared(source_cluster)
    with pytest.raises(ParameterError, match="already exists"):
        pitr.recover(conn, source_cluster.target, to_time=moment(conn), as_name="postgres", controlled=True)


@independent
def test_recover_never_uses_another_clusters_wal(source_cluster):
    conn = prepared(source_cluster)
    other = make_source(source_cluster.folder.parent / "two")  # same WAL root and backups folder
    try:
        with other.connect() as theirs:
            theirs.execute("CREATE TABLE lessons (id int PRIMARY KEY, title text, fee numeric)")
            base_backup.take(theirs, other.target)
            theirs.execute("INSERT INTO lessons VALUES (1, 'theirs', 1)")
            pitr.archive_now(theirs, other.archive)
        t1 = moment(conn)
        pitr.archive_now(conn, source_cluster.archive)
        # this cluster's archive loses the WAL after its backup; the other's holds segments of the same names
        ours = {p.name for p in source_cluster.archive.iterdir()}
        theirs_names = {p.name for p in other.archive.iterdir()}
        shared = sorted(ours & theirs_names)
        assert shared  # a wrong folder would offer WAL under the very names recovery asks for
        for name in shared[1:]:
            (source_cluster.archive / name).unlink()
        before = {p.name: p.stat().st_mtime for p in other.archive.iterdir()}
        with pytest.raises(ParameterError, match="outside the recoverable window"):
            pitr.recover(conn, source_cluster.target, to_time=t1)
        assert {p.name: p.stat().st_mtime for p in other.archive.iterdir()} == before
        # the other cluster's base backup, copied into this cluster's folder, is never listed for it
        theirs_backup = base_backup.listing(other.system_identifier)[0]
        shutil.copytree(theirs_backup.path, base_backup.root() / source_cluster.system_identifier / "20990101T000000Z-abcdef")
        assert all(b.manifest["system_identifier"] == source_cluster.system_identifier
                   for b in base_backup.listing(source_cluster.system_identifier))
    finally:
        stop_source(other)


def _cli(source, *args):
    env = {**os.environ, "DATABASE_URL": source.url()}
    return subprocess.Popen([sys.executable, "-m", "prep_ops", "recover", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


@independent
def test_cli_recover_prints_the_new_name_last(source_cluster):
    conn = prepared(source_cluster)
    t1 = moment(conn)
    at_t1 = checksums(conn)
    damage(conn)
    pitr.archive_now(conn, source_cluster.archive)  # not the embedded server: the CLI does not switch WAL here
    out, err = _cli(source_cluster, "--to", t1.isoformat(), "--as", "app_restored").communicate(timeout=300)
    assert out.strip().splitlines()[-1] == "app_restored", err
    with source_cluster.connect("app_restored") as copy:
        assert checksums(copy) == at_t1


@independent
def test_killed_recovery_leaves_no_cluster_database_or_process(source_cluster):
    conn = prepared(source_cluster)
    conn.execute("CREATE TABLE bulk AS SELECT g AS id, repeat(md5(g::text), 8) AS pad FROM generate_series(1, 400000) g")
    t1 = moment(conn)
    damage(conn)
    pitr.archive_now(conn, source_cluster.archive)
    run = _cli(source_cluster, "--to", t1.isoformat(), "--as", "app_killed")
    deadline, pidfile = time.monotonic() + 120, None
    while time.monotonic() < deadline and pidfile is None:
        pidfile = next(iter(recovery_cluster.home().glob("*/data/postmaster.pid")), None) \
            if recovery_cluster.home().exists() else None
        time.sleep(0.02)
    assert pidfile is not None, run.stderr.read()
    os.killpg(run.pid, signal.SIGKILL)  # the CLI and nothing else it started: the server runs detached
    run.wait()
    left = [p for p in psutil.process_iter(["name", "cmdline"]) if "postgres" in (p.info["name"] or "")
            and str(recovery_cluster.home()) in " ".join(p.info["cmdline"] or [])]
    assert left, "the kill came after the recovery cluster stopped: nothing for the next run to clean"

    # and a half-copied database of a run killed during the copy (older run id, no session, no lock)
    half = pitr.PREFIX + run_id(datetime.now(timezone.utc) - timedelta(minutes=1))
    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(half)))

    done = pitr.recover(conn, source_cluster.target, to_time=t1, as_name="app_next")
    assert done["database"] == "app_next"
    assert not list(recovery_cluster.home().iterdir())
    assert not [p for p in left if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    names = {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}
    assert not [n for n in names if n.startswith(pitr.PREFIX)] and "app_killed" not in names


def test_suite_server_base_backup_verify_and_recover_with_its_own_binaries(scratch, monkeypatch, tmp_path):
    """CI's PostgreSQL 15 pass (archiving on, PREP_OPS_WAL_DIR exported): the server's own major's
    pg_basebackup, pg_verifybackup, postgres and pg_amcheck. Not server_independent: it runs per server."""
    from prep_ops import base_verify
    from prep_ops.db import connect

    with connect(scratch, autocommit=True) as conn:
        archiving = conn.execute("SHOW archive_mode").fetchone()[0]
        archive = wal_archive.archive_dir(base_backup.source_of(conn)["system_identifier"])
        if scratch.embedded or archiving == "off" or not archive.is_dir():
            pytest.skip(f"the server under test does not archive into {archive} (archive_mode {archiving})")
        monkeypatch.setenv("PREP_OPS_WAL_DIR", str(wal_archive.root()))  # kept while the backups go elsewhere
        monkeypatch.setenv("PREP_OPS_BACKUP_DIR", str(tmp_path / "backups"))
        conn.execute("CREATE TABLE lessons (id int PRIMARY KEY, title text, fee numeric)")
        conn.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
        work(conn, 1, 300)
        made = base_backup.take(conn, scratch)
        verified = base_verify.verify_base(made.path)
        assert verified.ok and len(verified.skipped) == 0, verified.report.to_string()
        work(conn, 301, 700)
        t1 = moment(conn)
        at_t1 = checksums(conn)
        damage(conn)
        pitr.archive_now(conn, archive)  # the test's own throwaway server: it may switch WAL
        done = pitr.recover(conn, scratch, to_time=t1, as_name=f"{scratch.database}_pitr")
        try:
            with connect(scratch.with_database(done["database"]), autocommit=True) as copy:
                assert checksums(copy) == at_t1
                major = copy.execute("SHOW server_version_num").fetchone()[0][:2]
            assert str(made.manifest["server_major"]) == major
        finally:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(done["database"])))
