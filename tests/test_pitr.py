"""recover --to: a database as it was at a moment, from a base backup and archived WAL, proven by checksums
the tests compute themselves. Every test runs on a private archiving cluster (pitr_fixtures), never on the
suite's shared server."""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psutil
import pytest
from psycopg import sql

import pitr_fixtures
from pitr_fixtures import make_source, stop_source
from prep_ops import base_backup, pitr, pitr_checks, recovery_cluster, recovery_copy
from prep_ops.incident import point_in_time
from prep_ops.scratch import run_id
from prep_ops.errors import BackupError, ParameterError, RecoveryError

independent = pytest.mark.server_independent  # every test but the last: a private cluster of their own
source_cluster = pitr_fixtures.source_cluster  # the fixture, used by name

# each table's content in one md5: every row's text, in primary-key order
CHECKSUM = "SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t.id), '')) FROM {} AS t"


def checksums(conn, tables=("lessons", "notes")) -> dict:
    present = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()}
    return {t: conn.execute(CHECKSUM.format(t)).fetchone()[0] if t in present else None for t in tables}


work = pitr_fixtures.work


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
def test_recover_to_an_lsn_inside_a_base_backup_names_the_backup_and_the_earliest_lsn_it_can_reach(source_cluster):
    """--to-lsn of a location between a base backup's start and end LSN (no consistent point: replay must
    pass the backup's end first) was refused as 'outside the recoverable window: the recoverable window is
    T1 to T2', times for a location given in LSN, which never said why. It names the base backup, its WAL
    span, and the earliest location that can be recovered to (its end); that location recovers."""
    conn = prepared(source_cluster)
    (made,) = base_backup.listing(source_cluster.system_identifier)
    start, end = made.manifest["start_lsn"], made.manifest["end_lsn"]
    assert base_backup.lsn_value(start) < base_backup.lsn_value(end)
    for inside in (start, base_backup.lsn_text(base_backup.lsn_value(end) - 1)):
        with pytest.raises(ParameterError) as caught:
            pitr.recover(conn, source_cluster.target, to_lsn=inside, controlled=True)
        assert str(caught.value) == (
            f"{inside} lies inside base backup {made.name} (WAL {start} to {end}): a base backup is consistent only "
            f"from its end LSN, so recovery cannot stop before {end}; the earliest location that can be recovered "
            f"to is {end}")
    done = pitr.recover(conn, source_cluster.target, to_lsn=end, as_name="at the backup's end", controlled=True)
    with source_cluster.connect(done["database"]) as copy:
        assert copy.execute("SELECT count(*) FROM lessons").fetchone()[0] == 500  # the base backup's rows only


@independent
def test_a_wal_segment_missing_after_an_older_base_backup_is_named_not_blamed_on_the_newer_backup(tmp_path):
    """--to-lsn inside a newer base backup, an older one ending before it, and a WAL segment between them
    missing from the archive: the refusal blamed the newer backup ("lies inside base backup ..., cannot stop
    before its end"), though the older one reaches that location once the segment is back; a moment was told
    it was "outside the recoverable window" while the window shown held it. Both name the missing segment."""
    size = 16 * 1024 * 1024
    lsn = base_backup.lsn_text

    def made(name, start, end, finished):
        return base_backup.BaseBackup(tmp_path / name, {"start_lsn": lsn(start), "end_lsn": lsn(end),
                                                        "timeline": 1, "finished": finished})

    older = made("older", 1 * size + 40, 1 * size + 400, "2026-12-01T10:00:00+00:00")
    newer = made("newer", 5 * size + 40, 5 * size + 4000, "2026-12-01T11:00:00+00:00")
    segments = {n: tmp_path / f"segment{n}" for n in (1, 2, 4, 5, 6)}  # 3 is missing
    for path in segments.values():
        path.write_bytes(b"")
    with pytest.raises(ParameterError) as caught:
        pitr.candidates([newer, older], segments, size, to_time=None, to_lsn=lsn(5 * size + 1000))
    assert str(caught.value).startswith(f"{lsn(5 * size + 1000)} cannot be reached: WAL segment "
                                        "000000010000000000000003 (on the base backup's timeline) is missing from "
                                        "the archive, and replay from base backup older (the newest ending before "
                                        "it) needs every segment from the backup's start to the one holding")
    at = datetime(2026, 12, 1, 10, 30, tzinfo=timezone.utc)
    with pytest.raises(ParameterError, match=r"000000010000000000000003 \(on the base backup.s timeline\) is missing "
                                             r"from the archive.*base backup older.*on to the newest archived"):
        pitr.candidates([newer, older], segments, size, to_time=at, to_lsn=None)
    segments[3] = tmp_path / "segment3"
    assert pitr.candidates([newer, older], segments, size, to_time=None, to_lsn=lsn(5 * size + 1000)) == [older]


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
        archive = pitr_fixtures.on_an_archiving_suite_server(conn, scratch, monkeypatch, tmp_path)
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


# --- what the adversarial review found --------------------------------------------------------------
@independent
def test_recover_after_a_dropped_role_names_it_in_one_line_and_no_owner_restores_without_it(source_cluster):
    conn = prepared(source_cluster)
    conn.execute("CREATE ROLE clerk")
    conn.execute("CREATE TABLE owned (id int)")
    conn.execute("ALTER TABLE owned OWNER TO clerk")
    conn.execute("GRANT SELECT ON lessons TO clerk")
    t3 = moment(conn)
    at_t3 = checksums(conn)
    conn.execute("DROP OWNED BY clerk")
    conn.execute("DROP ROLE clerk")
    with pytest.raises(RecoveryError, match="refers to roles this server no longer has: clerk") as caught:
        pitr.recover(conn, source_cluster.target, to_time=t3, as_name="beforedrop", controlled=True)
    assert "\n" not in str(caught.value) and "--no-owner" in str(caught.value)
    names = {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}
    assert "beforedrop" not in names and not [n for n in names if n.startswith(pitr.PREFIX)]

    done = pitr.recover(conn, source_cluster.target, to_time=t3, as_name="beforedrop", no_owner=True)
    assert done["no_owner"] and done["lacking_roles"] == ["clerk"]
    with source_cluster.connect("beforedrop") as copy:
        assert checksums(copy) == at_t3
        assert copy.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'owned'").fetchone()[0] == "postgres"


def test_a_failed_pg_restore_is_reported_by_its_error_line():
    stderr = ('pg_restore: error: could not execute query: ERROR:  role "clerk" does not exist\n'
              "Command was: ALTER TABLE public.owned OWNER TO clerk;\n")
    assert pitr_checks.error_line(stderr) == ('ERROR: role "clerk" does not exist (Command was: ALTER TABLE '
                                             'public.owned OWNER TO clerk;)')


def _corrupt_hash(backup) -> None:
    manifest = base_backup.read(backup.path)
    manifest["files"]["base.tar.gz"]["sha256"] = "0" * 64
    (backup.path / base_backup.MANIFEST).write_text(json.dumps(manifest))


@independent
def test_recover_never_uses_a_base_backup_whose_files_do_not_match(source_cluster):
    conn = prepared(source_cluster)
    older = base_backup.listing(source_cluster.system_identifier)[0]
    work(conn, 901, 950)
    newer = base_backup.take(conn, source_cluster.target)
    t1 = moment(conn)
    at_t1 = checksums(conn)
    damage(conn)
    _corrupt_hash(newer)
    done = pitr.recover(conn, source_cluster.target, to_time=t1, as_name="app_older", controlled=True)
    assert done["base_backup"] == str(older.path)
    assert done["skipped"] == [f"{newer.name}: {newer.name}/base.tar.gz: its SHA-256 differs from the backup's manifest"]
    with source_cluster.connect("app_older") as copy:
        assert checksums(copy) == at_t1
    _corrupt_hash(older)  # none usable left: refused, naming each file
    with pytest.raises(BackupError, match=f"no usable base backup.*{older.name}/base.tar.gz") as caught:
        pitr.recover(conn, source_cluster.target, to_time=t1, as_name="app_none")
    assert "\n" not in str(caught.value)
    assert not [n for n, in conn.execute("SELECT datname FROM pg_database").fetchall()
                if n == "app_none" or n.startswith(pitr.PREFIX)]


@independent
def test_a_base_backup_of_another_cluster_relabelled_is_refused(source_cluster):
    from prep_ops import base_verify

    conn = prepared(source_cluster)
    genuine = base_backup.listing(source_cluster.system_identifier)[0]
    other = make_source(source_cluster.folder.parent / "two")
    try:
        with other.connect() as theirs:
            theirs.execute("CREATE TABLE lessons (id int PRIMARY KEY, title text, fee numeric)")
            theirs_backup = base_backup.take(theirs, other.target)
    finally:
        stop_source(other)
    t1 = moment(conn)
    at_t1 = checksums(conn)
    # cluster B's backup in A's folder, newer, its JSON relabelled A's (hashes of its files still valid)
    fake = genuine.path.parent / "20260101T000000Z-abcdef"
    newest = max(b.manifest["finished"] for b in base_backup.listing(source_cluster.system_identifier))
    shutil.copytree(theirs_backup.path, fake)
    manifest = base_backup.read(fake)
    manifest.update(system_identifier=source_cluster.system_identifier, start_lsn=genuine.manifest["start_lsn"],
                    end_lsn=genuine.manifest["end_lsn"])
    manifest["finished"] = (datetime.fromisoformat(newest) + timedelta(microseconds=1)).isoformat()
    (fake / base_backup.MANIFEST).write_text(json.dumps(manifest))
    assert base_backup.listing(source_cluster.system_identifier)[0].path == fake  # it would be chosen first

    verified = base_verify.verify_base(fake)
    assert not verified.ok
    failed = dict(zip(verified.failures["check"], verified.failures["actual"]))
    assert f"its pg_control says {other.system_identifier}" in failed["cluster identity (pg_control)"]

    damage(conn)
    done = pitr.recover(conn, source_cluster.target, to_time=t1, as_name="app_genuine", controlled=True)
    assert done["base_backup"] == str(genuine.path)
    assert len(done["skipped"]) == 1 and "is not a backup of cluster" in done["skipped"][0]
    with source_cluster.connect("app_genuine") as copy:
        assert checksums(copy) == at_t1


@independent
@pytest.mark.parametrize("kind", ["garbage", "foreign"])
def test_foreign_or_garbage_wal_is_named_not_waited_for(source_cluster, kind):
    conn = prepared(source_cluster)
    conn.execute("SELECT pg_switch_wal()")
    work(conn, 901, 950)
    conn.execute("SELECT pg_switch_wal()")
    work(conn, 951, 999)
    t1 = moment(conn)
    pitr.archive_now(conn, source_cluster.archive)
    backup = base_backup.listing(source_cluster.system_identifier)[0]
    first = base_backup.lsn_value(backup.manifest["start_lsn"]) // (16 * 1024 * 1024)
    segments = pitr.archived_segments(source_cluster.archive, 16 * 1024 * 1024)
    victim = segments[first + 1]
    if kind == "garbage":
        victim.write_bytes(os.urandom(16 * 1024 * 1024))
        said = "it has no WAL segment header"
    else:
        other = make_source(source_cluster.folder.parent / "two")
        try:
            theirs = pitr.archived_segments(other.archive, 16 * 1024 * 1024)
            if not theirs:
                with other.connect() as c:
                    pitr.archive_now(c, other.archive)
                theirs = pitr.archived_segments(other.archive, 16 * 1024 * 1024)
            victim.write_bytes(next(iter(theirs.values())).read_bytes())
        finally:
            stop_source(other)
        said = f"it is from another cluster (system identifier {other.system_identifier})"
    with pytest.raises(BackupError) as caught:
        pitr.recover(conn, source_cluster.target, to_time=t1, as_name="app_x")
    message = str(caught.value)
    assert f"archived WAL segment {victim.name} in {source_cluster.archive} is not this cluster's WAL: {said}" in message
    assert "pg_switch_wal" not in message and "\n" not in message
    assert not recovery_cluster.home().exists() or not list(recovery_cluster.home().iterdir())


def test_replay_stopping_on_foreign_wal_names_the_segment(tmp_path):
    log = tmp_path / "log"
    log.write_text('LOG:  restored log file "000000010000000000000004" from archive\n'
                   'LOG:  restored log file "000000010000000000000005" from archive\n'
                   "LOG:  WAL file is from different database system: WAL file database system identifier is 1, "
                   "pg_control database system identifier is 2\n"
                   "FATAL:  recovery ended before configured recovery target was reached\n")
    said = pitr_checks.foreign_wal(log)
    assert said.startswith("archived WAL segment 000000010000000000000005 is not this cluster's WAL (WAL file is from")
    log.write_text('LOG:  restored log file "000000010000000000000005" from archive\n'
                   "LOG:  invalid magic number 0000 in WAL segment 000000010000000000000006, LSN 0/6000000, offset 0\n")
    assert pitr_checks.foreign_wal(log) is None  # a zeroed page: the ordinary end of WAL


@independent
@pytest.mark.parametrize("program", ["pg_dump", "pg_restore"])
def test_killed_during_the_copy_leaves_no_pg_dump_or_pg_restore_and_the_next_run_drops_the_half_copy(source_cluster,
                                                                                                      program):
    conn = prepared(source_cluster)
    conn.execute("CREATE TABLE bulk AS SELECT g AS id, repeat(md5(g::text), 8) AS pad FROM generate_series(1, 1200000) g")
    t1 = moment(conn)
    pitr.archive_now(conn, source_cluster.archive)
    run = _cli(source_cluster, "--to", t1.isoformat(), "--as", "app_killed_copy")
    deadline, copiers = time.monotonic() + 180, {}
    # the program and at least one of its --jobs workers (forked once it has read the catalog)
    while time.monotonic() < deadline and run.poll() is None and list(copiers.values()).count(program) < 2:
        copiers = _copiers(run.pid)
        time.sleep(0.02)
    assert list(copiers.values()).count(program) >= 2, (copiers, run.poll() is None or run.communicate())
    copying = conn.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (pitr.PREFIX,)).fetchone()
    dumps = list(recovery_cluster.home().glob(f"*/{recovery_copy.DUMP_FOLDER}"))
    assert copying is not None and len(dumps) == 1  # what the kill leaves: a half copy, the dump's folder
    os.kill(run.pid, signal.SIGKILL)  # the python process only: its children must not outlive it
    run.wait()
    deadline = time.monotonic() + 1.5  # SIGTERM at once: far less than the rest of the copy takes
    while time.monotonic() < deadline and _running(copiers):
        time.sleep(0.2)
    assert not _running(copiers)
    assert dumps[0].is_dir()  # left behind by the kill, for the next run to remove
    done = pitr.recover(conn, source_cluster.target, to_time=t1, as_name="app_after_kill")
    assert done["database"] == "app_after_kill"
    names = {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}
    assert not [n for n in names if n.startswith(pitr.PREFIX)] and "app_killed_copy" not in names
    assert not list(recovery_cluster.home().iterdir()) and not dumps[0].exists()


def _copiers(pid: int) -> dict:
    """{process: its name} of the pg_dump and pg_restore processes under `pid`, their --jobs workers included."""
    found = {}
    try:
        for process in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                if process.name() in ("pg_dump", "pg_restore"):
                    found[process] = process.name()
    except psutil.NoSuchProcess:  # recover ended meanwhile
        pass
    return found


def _running(processes: list) -> list:
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            pass
    return alive


@independent
def test_window_text_shows_microseconds_so_a_moment_it_shows_is_inside(source_cluster):
    conn = prepared(source_cluster)
    finished = base_backup.listing(source_cluster.system_identifier)[0].manifest["finished"]
    with pytest.raises(ParameterError) as caught:
        pitr.recover(conn, source_cluster.target, to_time=datetime.fromisoformat(finished), controlled=True)
    assert f"the recoverable window is {datetime.fromisoformat(finished).isoformat()} to " in str(caught.value)
    with pytest.raises(ParameterError, match="--as needs a name"):
        pitr.recover(conn, source_cluster.target, to_time=moment(conn), as_name="")


@pytest.mark.parametrize("naive, said", [("2026-10-25T02:30:00", "happened twice"),
                                         ("2026-03-29T02:30:00", "never happened")])
def test_a_naive_time_a_clock_change_makes_ambiguous_is_refused_naming_both_offsets(monkeypatch, naive, said):
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        with pytest.raises(ParameterError, match=said) as caught:
            pitr.parse_moment(naive)
        assert "+01:00" in str(caught.value) and "+02:00" in str(caught.value)
        assert pitr.parse_moment("2026-07-01T12:00:00").utcoffset() == timedelta(hours=2)
    finally:
        monkeypatch.undo()
        time.tzset()


# --- the second review ---------------------------------------------------------------------------------
def _dead_pid() -> int:
    gone = subprocess.Popen(["true"])
    gone.wait()
    return gone.pid


@independent
def test_removing_a_killed_runs_folder_never_follows_a_path_written_into_it(tmp_path, monkeypatch):
    """As root the server's system user owns the folder and may write into it: a note naming another
    folder must not make the next run remove that folder."""
    from prep_ops import private_cluster
    from prep_ops.incident.drills import pitr_cluster

    monkeypatch.setenv("PREP_OPS_WAL_DIR", str(tmp_path / "wal"))
    victims = [tmp_path / "precious", tmp_path / "12345"]  # 12345: named like an archive, outside the WAL root
    for victim in victims:
        victim.mkdir()
        (victim / "keep").write_text("mine")
    pid = _dead_pid()
    for home_dir, marker in ((tmp_path / "rc", recovery_cluster.MARKER), (tmp_path / "drills", pitr_cluster.MARKER)):
        folder = home_dir / f"20260101T000000-{pid}-abcdef"
        folder.mkdir(parents=True)
        (folder / marker).write_text("")
        (folder / "socket_dir").write_text(str(victims[0]))
        (folder / "archive").write_text(str(victims[1]))
        (folder / "system_identifier").write_text(f"../{victims[1].name}")
        assert private_cluster.stale_folders(home_dir, marker) == [folder]
    recovery_cluster._remove(tmp_path / "rc" / f"20260101T000000-{pid}-abcdef")
    pitr_cluster.remove_folder(tmp_path / "drills" / f"20260101T000000-{pid}-abcdef")
    assert all((victim / "keep").read_text() == "mine" for victim in victims)
    assert not list((tmp_path / "rc").iterdir()) and not list((tmp_path / "drills").iterdir())

    # a folder too deep for a socket path gets a short one, named from its own path, and it goes with it
    deep = tmp_path / ("d" * 120)
    deep.mkdir()
    short = private_cluster.socket_dir(deep, "prep-ops-rc-")
    assert short.parent == Path(tempfile.gettempdir()) and short.name.startswith("prep-ops-rc-")
    near = Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp"))  # short wherever TMPDIR (and tmp_path) is
    try:
        assert private_cluster.socket_dir(near, "prep-ops-rc-") == near / "sock"
    finally:
        shutil.rmtree(near)
    private_cluster.remove_socket_dir(deep, "prep-ops-rc-")
    assert not short.exists()


@independent
def test_a_recovery_cluster_pg_ctl_cannot_start_is_one_line_not_a_traceback(source_cluster):
    from prep_ops.errors import TargetError

    conn = prepared(source_cluster)
    made = base_backup.listing(source_cluster.system_identifier)[0]
    with pytest.raises(TargetError, match="starting the recovery cluster failed: .*is not a database cluster "
                                          "directory") as caught:
        with recovery_cluster.recovered(base_backup.chain(made), before_start=lambda c: (c.data / "PG_VERSION").unlink()):
            pass
    assert "\n" not in str(caught.value)
    assert not list(recovery_cluster.home().iterdir())
    conn.close()


@independent
def test_an_archiving_cluster_initdb_cannot_make_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    from prep_ops.errors import TargetError

    monkeypatch.setenv("PREP_OPS_WAL_DIR", str(tmp_path / "wal"))
    folder = tmp_path / "cluster"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "someone's file").write_text("")
    with pytest.raises(TargetError, match="initdb of the archiving cluster failed: initdb: error: directory .* exists "
                                          "but is not empty") as caught:
        make_source(folder)
    assert "\n" not in str(caught.value)
    assert not folder.exists() and not (tmp_path / "wal").exists()


def test_an_as_name_with_the_mark_of_prep_ops_leftovers_is_refused_before_anything(server):
    """A later run would take `prep_ops_recover_<old run id>` for a killed run's half copy and drop it (and
    end the sessions in it): such a name, given or made from the database's own, is refused up front."""
    from prep_ops import db

    with db.connect(server, autocommit=True) as conn:
        for as_name, database in ((pitr.PREFIX + "20000101000000000_abcdef", None),
                                  ("prep_ops_copy_20000101000000000_abcdef_x", None),
                                  (None, "prep_ops_recover_20000101000000000_abcdef")):
            with pytest.raises(ParameterError, match="the shape of prep-ops' own throwaway databases .* choose another"):
                pitr.recover(conn, server, to_time="2026-01-01T00:00:00+00:00", as_name=as_name, database=database)


@independent
def test_two_recovers_connected_to_different_databases_never_take_each_others_copy(source_cluster):
    """Run locks live in one database, the maintenance one, whatever database each run connects to: a
    run started from another database sees the first run alive, and leaves its half-made copy and the
    pg_restore session in it alone."""
    from prep_ops import scratch

    conn = prepared(source_cluster)
    conn.execute("CREATE DATABASE other")
    run1 = scratch.run_id()
    with scratch.coordinating(conn, source_cluster.target) as first:  # run 1, from `app`: alive, copying
        scratch.claim(first, run1)
        copy = pitr.PREFIX + run1
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(copy)))
        with source_cluster.connect(copy) as restoring, source_cluster.connect("other") as conn2:
            done = pitr.recover(conn2, source_cluster.target.with_database("other"), to_time=moment(conn2),
                                database="app", controlled=True)
            assert restoring.execute("SELECT 1").fetchone() == (1,)  # its session was not ended
            assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (copy,)).fetchone()[0] == 1
            assert done["database"].startswith("app_at_")
    # run 1 gone (killed, its lock free): the next run removes what it left
    pitr.recover(conn, source_cluster.target, to_time=moment(conn), as_name="app_later", controlled=True)
    assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (copy,)).fetchone()[0] == 0


@pytest.mark.parametrize("moment", ["0001-01-01", "9999-12-31", "9999-12-31T23:59:59-05:00",
                                    "0001-01-01T00:00:00+14:00"])
def test_recover_to_at_the_calendars_end_is_one_parameter_error_not_a_traceback(server, moment):
    """`prep-ops recover --to 0001-01-01` ended in "ValueError: year 0 is out of range" (a naive time made
    local), and 9999-12-31T23:59:59-05:00 in "OverflowError: date value out of range" (the default name in UTC)."""
    from prep_ops import db

    with db.connect(server, autocommit=True) as conn:
        with pytest.raises(ParameterError, match="too near the calendar's ends"):
            pitr.recover(conn, server, to_time=moment)
    with pytest.raises(ParameterError, match="too near the calendar's ends"):
        point_in_time.given(moment)


@pytest.mark.parametrize("as_name, database", [("new\nline", None), ("tab\there", None), (None, "odd\ndb")])
def test_recover_refuses_a_new_name_with_a_control_character_before_anything(server, as_name, database):
    """`--as $'new\\nline'` made database "new<LF>line" and printed `new\\nline` on the last line, the line a
    script takes as the name: another database's, or none."""
    from prep_ops import db

    with db.connect(server, autocommit=True) as conn:
        with pytest.raises(ParameterError, match="holds a control character .* choose another with --as"):
            pitr.recover(conn, server, to_time="2026-01-01T00:00:00+00:00", as_name=as_name, database=database)


def test_recover_refuses_an_empty_database_name_rather_than_taking_the_targets(server):
    """`--database "$DB"` with DB unset recovered the target's database, as if no --database was given, while
    `--as ""` is refused."""
    from prep_ops import db

    with db.connect(server, autocommit=True) as conn:
        with pytest.raises(ParameterError, match="--database needs a name"):
            pitr.recover(conn, server, to_time="2026-01-01T00:00:00+00:00", database="")


@independent
def test_a_moment_whose_wal_is_not_archived_yet_says_how_to_have_it_archived(source_cluster):
    """On a server prep-ops does not run (no switch of its own), a moment after the newest archived WAL was
    refused as 'outside the recoverable window: the recoverable window is T1 to T0', an end before its start
    (the newest segment was written just before the base backup's finish was stamped): the DBA could not
    tell that waiting for the next segment switch, or pg_switch_wal(), was all it took."""
    conn = prepared(source_cluster)
    conn.execute("INSERT INTO lessons VALUES (901, 'after the archive', 1)")
    t1 = moment(conn)
    with pytest.raises(ParameterError, match=r"outside the recoverable window, past its end: the WAL holding it is not "
                                             r"in the archive \(yet\).*SELECT pg_switch_wal\(\)") as caught:
        pitr.recover(conn, source_cluster.target, to_time=t1, controlled=False)
    assert "\n" not in str(caught.value)
    pitr.archive_now(conn, source_cluster.archive)  # what the message says to do
    done = pitr.recover(conn, source_cluster.target, to_time=t1, controlled=False)
    with source_cluster.connect(done["database"]) as copy:
        assert copy.execute("SELECT title FROM lessons WHERE id = 901").fetchone() == ("after the archive",)


@independent
def test_a_wal_location_the_server_has_not_written_yet_is_never_said_to_be_waiting_for_a_segment_switch(source_cluster):
    """--to-lsn past the end of the server's WAL (a typo, a location of another cluster) was answered 'the WAL
    holding it is not in the archive (yet) ... run SELECT pg_switch_wal() on the server and try again': no
    switch ever archives a location the server has not written. It is refused as a moment in the future is."""
    conn = prepared(source_cluster)
    with pytest.raises(ParameterError, match=r"7F/0 is past the end of this server's WAL \([0-9A-F]+/[0-9A-F]+\): "
                                             r"nothing was written there yet") as caught:
        pitr.recover(conn, source_cluster.target, to_lsn="7F/0", controlled=False)
    assert "pg_switch_wal" not in str(caught.value) and "\n" not in str(caught.value)
    names = {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}
    assert not [n for n in names if n.startswith(("app_at", pitr.PREFIX))]


@independent
def test_a_moment_past_the_archive_never_shows_a_window_ending_before_it_starts(source_cluster):
    """f1b2189 gave a moment past the newest archived WAL its own message, but still ended it with the window,
    '(the recoverable window is T1 to T0)', T0 before T1 where the newest segment was written just before the
    base backup's finish was stamped: the very text it meant to end. It names when the newest archived WAL
    was written instead."""
    conn = prepared(source_cluster)
    conn.execute("INSERT INTO lessons VALUES (901, 'after the archive', 1)")
    with pytest.raises(ParameterError, match=r"not in the archive \(yet\)") as caught:
        pitr.recover(conn, source_cluster.target, to_time=moment(conn), controlled=False)
    said = str(caught.value)
    assert "recoverable window is" not in said
    assert re.search(r"\(the newest archived WAL was written at 20\d\d-\d\d-\d\dT[\d:.]+\+00:00\)$", said), said
