"""Faults around backups other than a kill: a full disk, the server ending the backup's sessions midway,
files in the backups folder that are not what their names say. What fails says so in one line and leaves
nothing that a later verify --latest, backup --keep or restore could take for a backup."""

import contextlib
import json
import os
import shutil
import tarfile
import tempfile
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from psycopg import sql

import pitr_fixtures
from prep_ops import backup, base_backup, db, loading, pitr, recovery_cluster, recovery_copy, restore, verify
from prep_ops.errors import BackupError, ConfirmationRequired, TargetError

from conftest import cli_env, held_exclusive, notebook_outputs

source_cluster = pitr_fixtures.source_cluster  # the fixture, used by name


@contextlib.contextmanager
def _tmpfs(folder: Path, size: int, mode: str = "0700"):
    """A tmpfs of `size` bytes mounted on `folder` while the block runs; the test is skipped where mount
    is not permitted (not root, a container without the capability)."""
    folder.mkdir(exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode={mode}", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of 4 MiB mounted at tmp_path/disk, unmounted after."""
    with _tmpfs(tmp_path / "disk", 4 << 20) as disk:
        yield disk


def _leave_free(disk: Path, free: int) -> None:
    """Fill `disk` so that about `free` bytes (whole pages) stay free."""
    stats = os.statvfs(disk)
    filler = (stats.f_bavail * stats.f_frsize - free) // stats.f_frsize * stats.f_frsize
    with open(disk / "filler", "wb") as out:
        out.write(b"\0" * filler)


def test_a_backup_whose_manifest_does_not_fit_on_the_disk_leaves_no_dump_and_no_cut_manifest(seeded, tmp_path,
                                                                                             small_disk):
    sizes = backup.backup(seeded, "full", "plain", directory=tmp_path / "sizes")
    dump = sizes.path.stat().st_size
    assert sizes.manifest_path.stat().st_size > 3 * 4096  # more than the slack below
    folder = small_disk / "backups"
    folder.mkdir()
    _leave_free(small_disk, (dump // 4096 + 2) * 4096)  # room for the dump, not for the manifest after it
    done = subprocess.run([sys.executable, "-m", "prep_ops", "backup", "--format", "plain", "--dir", str(folder)],
                          env=cli_env(seeded), capture_output=True, text=True)
    assert done.returncode == 1 and done.stdout == "" and len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith(f"error: backing up {seeded.database} into {folder} failed: No space left on device")
    assert sorted(os.listdir(folder)) == []  # no dump without a manifest, no manifest cut short
    os.unlink(small_disk / "filler")
    made = backup.backup(seeded, "full", "plain", directory=folder, keep=1)
    assert sorted(os.listdir(folder)) == sorted([made.path.name, made.manifest_path.name])
    assert verify.verify_latest(folder, source=made.manifest["source"]).ok


def _waiting_on(server, lock_holder: int, count: int) -> bool:
    with db.connect(server) as conn:
        return conn.execute("SELECT count(*) >= %s FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                            (count, lock_holder)).fetchone()[0]


def test_a_backup_whose_sessions_the_server_ends_midway_leaves_no_dump_file(seeded, server, tmp_path):
    """pg_dump and the checksums wait on a lock; then the server ends every session of the backup, as a
    `pg_ctl stop -m fast` or an administrator does: the dump pg_dump had begun is not left behind."""
    folder = tmp_path / "backups"
    with db.connect(seeded) as holder:
        holder.execute("LOCK TABLE students IN ACCESS EXCLUSIVE MODE")
        holder_pid = holder.info.backend_pid
        process = subprocess.Popen([sys.executable, "-m", "prep_ops", "backup", "--dir", str(folder)],
                                   env=cli_env(seeded), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not _waiting_on(server, holder_pid, 2):  # pg_dump and prep-ops' own snapshot
            assert time.monotonic() < deadline and process.poll() is None, process.stderr.read() if process.poll() else ""
            time.sleep(0.05)
        assert [p.name for p in folder.iterdir()]  # pg_dump has begun its archive (custom: opened first)
        with db.connect(server, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> %s",
                          (seeded.database, holder_pid))
    out, err = process.communicate(timeout=120)
    assert process.returncode == 1 and out == "" and len(err.splitlines()) == 1, err
    # the line names the command that failed and what the lost session means (the server's own words alone
    # said neither: "error: database error: terminating connection due to administrator command")
    assert err.startswith("error: prep-ops backup failed: database error: terminating connection due to "
                          "administrator command (the server ended the session: "), err
    assert "the command stopped at that point" in err
    assert sorted(os.listdir(folder)) == []


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGINT"])
def test_a_backup_stopped_with_sigterm_or_ctrl_c_ends_at_once_and_leaves_no_dump_file(seeded, server, tmp_path, stop):
    """`kill`, `timeout` or systemd stop a job with SIGTERM, whose default action ended Python on the spot: the
    cleanup that removes a stopped backup's dump never ran, and the half-written dump stayed (0644, no
    manifest). SIGTERM is taken as Ctrl-C now. And Ctrl-C while pg_dump waited on another session's lock
    hung: the interrupted backup waited for pg_dump to finish, for as long as the lock was held; pg_dump
    is stopped now."""
    import signal

    folder = tmp_path / "backups"
    with db.connect(seeded) as holder:
        holder.execute("LOCK TABLE students IN ACCESS EXCLUSIVE MODE")
        holder_pid = holder.info.backend_pid
        # Ctrl-C as at a terminal: a background job (CI runs pytest as one) ignores SIGINT, and so would the CLI
        process = subprocess.Popen([sys.executable, "-m", "prep_ops", "backup", "--dir", str(folder)],
                                   env=cli_env(seeded), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 60
        while not _waiting_on(server, holder_pid, 2):  # pg_dump and prep-ops' own snapshot
            assert time.monotonic() < deadline and process.poll() is None, process.stderr.read() if process.poll() else ""
            time.sleep(0.05)
        assert [p.name for p in folder.iterdir()]  # pg_dump has begun its archive
        process.send_signal(getattr(signal, stop))
        out, err = process.communicate(timeout=30)  # the lock is still held: it ends without waiting for it
    assert process.returncode == 130 and err.strip() == "aborted", (process.returncode, out, err)
    assert sorted(os.listdir(folder)) == []
    with db.connect(server, autocommit=True) as admin:  # and its pg_dump is gone with it: every session but the holder
        assert admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> %s",
                             (seeded.database, holder_pid)).fetchone()[0] == 0


# Behind another session's ACCESS EXCLUSIVE lock: a bounded wait, then one line naming the table and its holder
LOCKS = {"a table the checksums read too": ("CREATE TABLE ledger (id int)", "LOCK TABLE ledger", "public.ledger"),
         "a partitioned table only pg_dump locks": (
             "CREATE TABLE parted (id int) PARTITION BY RANGE (id); "
             "CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (10)",
             "LOCK TABLE ONLY parted", "public.parted")}


@contextlib.contextmanager
def _held(target, made: str, lock: str):
    """A session named holder-app holding `lock` IN ACCESS EXCLUSIVE MODE on what `made` made, in an open
    transaction (as a VACUUM FULL, a REINDEX or a session left idle after an ALTER TABLE holds it); yields its pid."""
    with db.connect(target, autocommit=True) as conn:
        conn.execute(made)
    with db.connect(target, application_name="holder-app") as holder:
        holder.execute(f"{lock} IN ACCESS EXCLUSIVE MODE")
        yield holder.info.backend_pid


@pytest.mark.parametrize("lock", list(LOCKS))
def test_a_backup_behind_another_sessions_exclusive_lock_gives_up_after_lock_wait_naming_the_table_and_its_holder(
        migrated, server, tmp_path, lock):
    """`prep-ops backup` waited silently for as long as another session held a table locked: pg_dump and the
    checksums blocked on it, for hours behind a VACUUM FULL or a session left idle in its transaction. It
    waits --lock-wait seconds now, then fails with one line naming the table and the session holding it,
    keeps nothing and leaves no session of its own behind."""
    made, statement, table = LOCKS[lock]
    folder = tmp_path / "backups"
    with _held(migrated, made, statement) as holder_pid:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "prep_ops", "backup", "--dir", str(folder), "--lock-wait", "2"],
                              env=cli_env(migrated), capture_output=True, text=True, timeout=90)
        took = time.monotonic() - started
        with db.connect(server, autocommit=True) as admin:
            left = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> %s",
                                 (migrated.database, holder_pid)).fetchone()[0]
    assert done.returncode == 1 and done.stdout == "" and len(done.stderr.splitlines()) == 1, done
    line = done.stderr
    assert line.startswith(f"error: backup of {migrated.database} stopped after waiting 2 s for a lock"), line
    assert f"{table} by pid {holder_pid} (application holder-app" in line and "idle in transaction" in line, line
    assert "transaction open since" in line and "no backup was made" in line, line
    assert took < 45, f"{took:.1f} s"
    assert not folder.exists() or os.listdir(folder) == []
    assert left == 0


def test_a_backup_behind_an_alter_table_queued_for_its_lock_names_the_queued_session_and_whom_it_waits_for(
        migrated, tmp_path):
    """An ALTER TABLE (here LOCK TABLE ... ACCESS EXCLUSIVE) queued behind a long transaction's read: no one holds
    the table exclusively, yet pg_dump's read queues behind that request. The backup gave up saying the lock was
    "released since", while both sessions were still there. It names the queued session and whom it waits for."""
    with db.connect(migrated, autocommit=True) as conn:
        conn.execute("CREATE TABLE ledger (id int)")
    with db.connect(migrated, application_name="long-reader") as reader, \
            db.connect(migrated, application_name="queued-alter") as alter:
        reader.execute("SELECT count(*) FROM ledger")  # ACCESS SHARE held, idle in transaction
        alter.execute("SET lock_timeout = '60s'")  # the bound of a failed test
        reader_pid, alter_pid = reader.info.backend_pid, alter.info.backend_pid
        def lock() -> None:
            with contextlib.suppress(Exception):  # the test's asserts say what went wrong
                alter.execute("LOCK TABLE ledger")

        queued = threading.Thread(target=lock)
        queued.start()
        try:
            deadline = time.monotonic() + 30
            while not reader.execute("SELECT count(*) FROM pg_locks WHERE pid = %s AND NOT granted",
                                     (alter_pid,)).fetchone()[0]:
                assert time.monotonic() < deadline, "the LOCK TABLE never queued"
                time.sleep(0.05)
            done = subprocess.run([sys.executable, "-m", "prep_ops", "backup", "--dir", str(tmp_path / "b"), "--lock-wait", "2"],
                                  env=cli_env(migrated), capture_output=True, text=True, timeout=90)
        finally:
            reader.rollback()  # the ALTER gets its lock and ends
            queued.join(timeout=30)
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1, done
    line = done.stderr
    assert "released since" not in line, line
    assert (f"public.ledger by pid {alter_pid} (application queued-alter" in line
            and f"waits for an ACCESS EXCLUSIVE lock behind pid {reader_pid}, and every read of that "
                "table queues behind that request" in line), line
    assert "pg_terminate_backend" not in line, line  # the queued session is not the one to end, nor always its blocker


def test_runbook_04_behind_another_sessions_exclusive_lock_stops_after_its_lock_wait_naming_the_holder(
        migrated, tmp_path, monkeypatch):
    """Runbook 04 had no lock_wait: behind a VACUUM FULL it waited the library's 120 s, saying nothing. Its
    `lock_wait` parameter bounds the wait; meanwhile it says whom it waits for, then stops in one line naming
    the table and the session holding it."""
    from prep_ops import runner

    monkeypatch.setenv("PREP_OPS_BACKUP_DIR", str(tmp_path / "backups"))
    with db.connect(migrated, autocommit=True) as conn:
        conn.execute("CREATE TABLE ledger (id int)")
    with held_exclusive(migrated, "ledger", at_most=60) as holder_pid:
        # 12 s: the watch says whom it waits for every 5 s, from a connection of its own (slow on a busy machine)
        run = runner.run_one(runner.find("04"), tmp_path, {"database_url": migrated.url, "lock_wait": 12})
    assert not run.ok
    assert "stopped after waiting 12 s for a lock" in run.error and f"public.ledger by pid {holder_pid}" in run.error, run.error
    shown = notebook_outputs(run.output)
    assert "waiting" in shown and f"for pid {holder_pid}" in shown, shown[-2000:]
    assert "Traceback" not in shown


def test_a_backup_waiting_on_a_lock_says_whom_it_waits_for_then_gives_up(migrated, tmp_path, monkeypatch):
    """At a terminal the backup says, every few seconds while it waits, which session it waits for (as
    `maintain` does): the DBA sees why nothing moves, rather than a silent prompt."""
    from prep_ops import lock_watch
    from prep_ops.errors import BackupError

    monkeypatch.setattr(lock_watch, "EVERY", 0.3)
    said: list[str] = []
    folder = tmp_path / "backups"
    made, statement, table = LOCKS["a table the checksums read too"]
    with _held(migrated, made, statement) as holder_pid:
        with pytest.raises(BackupError, match=f"{table} by pid {holder_pid}"):
            backup.backup(migrated, directory=folder, lock_wait=3, say=said.append)
    assert said and all(f"for pid {holder_pid} (" in line for line in said), said
    assert os.listdir(folder) == []


def test_a_fifo_named_as_a_manifest_never_blocks_listing_and_a_folder_or_binary_one_is_passed_over(seeded, tmp_path):
    made = backup.backup(seeded, "full", "custom", directory=tmp_path)
    os.mkfifo(tmp_path / "fifo.dump.manifest.json")
    (tmp_path / "folder.dump.manifest.json").mkdir()
    (tmp_path / "binary.dump.manifest.json").write_bytes(b"\xff\xfe{")
    found = []
    reader = threading.Thread(target=lambda: found.append(backup.listing(tmp_path)), daemon=True)
    reader.start()
    reader.join(30)
    if reader.is_alive():  # free the blocked reader, then fail
        with open(tmp_path / "fifo.dump.manifest.json", "w"):
            pass
        pytest.fail("listing the backups blocks on a FIFO named as a manifest")
    assert [b.path for b in found[0]] == [made.path]
    done = subprocess.run([sys.executable, "-m", "prep_ops", "verify", "--latest", "--dir", str(tmp_path)],
                          env=cli_env(seeded), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith(f"PASS {made.path}"), done.stdout + done.stderr
    for name in ("fifo", "folder", "binary"):
        with pytest.raises(BackupError, match=r"^the manifest .* is not (a file|UTF-8 text)$"):
            backup.read_manifest(tmp_path / f"{name}.dump")
    assert json.loads(made.manifest_path.read_text()) == made.manifest


def _unpacked_bytes(tar: Path) -> int:
    """What the members of `tar` take on a tmpfs (whole pages each)."""
    with tarfile.open(tar) as archive:
        return sum(-(-max(member.size, 1) // 4096) * 4096 for member in archive.getmembers())


@pytest.mark.server_independent
def test_replay_on_a_full_disk_names_the_disk_never_the_archived_wal(source_cluster, monkeypatch):
    """The recovery cluster's disk holds the base backup but not the first WAL segment replay copies from
    the archive: restore_command's cp fails, and recover says so, where it used to say the archived WAL
    ends before the target (wait for the next segment; verify --chain: SKIP for that reason, exit 0)."""
    folder = Path(tempfile.mkdtemp(prefix="prep-ops-full-"))
    monkeypatch.setenv("PREP_OPS_DATA_DIR", str(folder / "pg18"))  # recovery clusters go beside it
    conn = source_cluster.connect()
    conn.execute("CREATE TABLE lessons (id int PRIMARY KEY, title text)")
    conn.execute("INSERT INTO lessons SELECT g, 'lesson ' || g FROM generate_series(1, 500) g")
    made = base_backup.take(conn, source_cluster.target)
    conn.execute("INSERT INTO lessons SELECT g, 'lesson ' || g FROM generate_series(501, 900) g")
    at = conn.execute("SELECT clock_timestamp()").fetchone()[0]
    room = sum(_unpacked_bytes(made.path / tar) for tar in base_backup.TARS) + (8 << 20)  # half a segment more
    try:
        with _tmpfs(recovery_cluster.home(), room, "0755") as home:
            with pytest.raises(TargetError) as caught:
                pitr.recover(conn, source_cluster.target, to_time=at, controlled=True)
            assert os.listdir(home) == []
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    said = str(caught.value)
    assert said.startswith("WAL file 0000000100000000000000") and "\n" not in said, said
    assert f"could not be copied from the archive into the recovery cluster in {home}: cp: " in said
    assert said.endswith("No space left on device") and "ends before the target" not in said
    names = [r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()]
    assert not [n for n in names if n.startswith(("app_at", pitr.PREFIX))]


@pytest.mark.server_independent
def test_a_base_backup_on_a_full_disk_says_the_disk_is_full_and_leaves_nothing(source_cluster, tmp_path):
    """pg_basebackup's last line only says that it removes its folder: the error line is its error."""
    conn = source_cluster.connect()
    with _tmpfs(tmp_path / "disk", 2 << 20) as disk:  # the cluster's base.tar.gz is larger
        done = subprocess.run([sys.executable, "-m", "prep_ops", "backup", "--kind", "base", "--dir", str(disk)],
                              env=cli_env(source_cluster.target), capture_output=True, text=True)
        assert done.returncode == 1 and done.stdout == "" and len(done.stderr.splitlines()) == 1, done.stderr
        assert done.stderr.startswith("error: pg_basebackup failed: pg_basebackup: error: could not write to ")
        assert done.stderr.rstrip().endswith("No space left on device")
        assert [p.name for p in disk.rglob("*")] == ["base", source_cluster.system_identifier]  # its folder, empty
        assert base_backup.listing(source_cluster.system_identifier, disk) == []
    assert conn.execute("SELECT count(*) FROM pg_stat_replication").fetchone()[0] == 0


def test_a_database_dropped_and_made_again_under_its_name_keeps_the_old_ones_backups_and_fails_verify_latest(
        server, tmp_path):
    """Same cluster, same name, another OID: the backups of the database that was dropped may be all that is
    left of its data. backup --keep 1 of the new one used to remove them, and verify --latest to PASS on
    them as the new one's."""
    name = f"prep_ops_test_{uuid.uuid4().hex[:10]}"
    target, folder = server.with_database(name), tmp_path / "backups"
    with db.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            with db.connect(target, autocommit=True) as conn:
                conn.execute("CREATE TABLE lessons AS SELECT g AS id FROM generate_series(1, 100) g")
            old = backup.backup(target, "full", "custom", directory=folder)
            admin.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            with db.connect(target) as conn:
                now = backup.identity(conn)
            assert now["database_oid"] != old.manifest["source"]["database_oid"]
            # a restore asks for --confirm, and no longer calls the new one the backup's own database
            with pytest.raises(ConfirmationRequired, match=rf"{name} has the name of the database this backup was taken "
                                                           rf"from \(OID {old.manifest['source']['database_oid']}; this "
                                                           rf"one is OID {now['database_oid']}, made since\)"):
                restore.restore(old.path, target)

            stale = verify.verify_latest(folder, source=now)
            assert not stale.ok and list(stale.failures["check"]) == ["of this database"]
            assert stale.failures["actual"].iloc[0].startswith(f"OID {old.manifest['source']['database_oid']}: another "
                                                               f"database named {name}")

            new = backup.backup(target, "full", "custom", directory=folder, keep=1)
            assert old.path.exists() and old.manifest_path.exists()
            again = backup.backup(target, "full", "custom", directory=folder, keep=1)
            assert not new.path.exists() and again.path.exists() and old.path.exists()  # this one's older one only
            fresh = verify.verify_latest(folder, source=now)
            assert fresh.ok and fresh.backup == again.path
            assert fresh.report.set_index("check").loc["of this database", "passed"]
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.mark.server_independent
def test_a_recovery_copy_on_a_full_disk_names_the_disk_not_a_dead_worker(source_cluster):
    """recover's pg_dump -Fd into the recovery cluster's folder runs out of room: its last line says only
    that a worker process died; the error is its first one, the full disk."""
    conn = source_cluster.connect()
    conn.execute("CREATE TABLE lessons AS SELECT g AS id, repeat('x', 200) AS body FROM generate_series(1, 20000) g")
    made = base_backup.take(conn, source_cluster.target)
    into = f"prep_ops_test_{uuid.uuid4().hex[:10]}"
    with recovery_cluster.recovered(base_backup.chain(made)) as cluster:  # its own WAL: consistent
        with _tmpfs(cluster.folder / recovery_copy.DUMP_FOLDER, 1 << 20, "0755"):  # the table is 4 MiB
            with pytest.raises(BackupError) as caught:
                recovery_copy.copy_database(cluster, source_cluster.database, source_cluster.target, conn, into,
                                            made.manifest["server_major"], jobs=2)
    said = str(caught.value)
    assert said.startswith(f"copying {source_cluster.database} out of the recovery cluster failed: pg_dump: "), said
    assert "No space left on device" in said and "worker process died" not in said
    assert not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (into,)).fetchone()


@pytest.mark.server_independent
def test_a_restore_into_postgresql_15_whose_server_goes_away_never_names_transaction_timeout_as_the_failure():
    """pg_restore --jobs 2 into PostgreSQL 15 stopped with -m immediate midway: its workers' lines ran into
    one another, and the tolerated SET transaction_timeout error, garbled, was the line the restore named
    ('restore of X failed: pg_restore:pg_restore: error: ... "transaction_timeout"'). Two workers writing at
    once cannot be made to interleave at will, so the stderr below is built in the shape such runs wrote
    (pg_restore 18 into PostgreSQL 15, the server stopped): tolerated errors, one of them garbled so, then
    the real one; no server is needed to read it."""
    stderr = ('pg_restore: error: could not execute query: ERROR:  unrecognized configuration parameter '
              '"transaction_timeout"\nCommand was: SET transaction_timeout = 0;\n'
              'pg_restore:pg_restore: error: could not execute query: ERROR:  unrecognized configuration parameter '
              '"transaction_timeout"\nCommand was: SET transaction_timeout = 0;\n'
              'pg_restore: error: could not execute query: server closed the connection unexpectedly\n'
              '\tThis probably means the server terminated abnormally\n'
              '\tbefore or while processing the request.\n'
              'Command was: ALTER TABLE ONLY public.students\n    ADD CONSTRAINT students_pkey PRIMARY KEY (id);\n')
    said = loading._first_error(loading._without_transaction_timeout(stderr))
    assert said == "pg_restore: error: could not execute query: server closed the connection unexpectedly"
