"""WAL streaming with pg_receivewal (issue 17's recovery point within a second): on a private embedded
server, a commit the receiver flushed survives the loss of the server where archive_timeout alone loses
it; the receiver follows the server's starts and stops; it and archive_wal.py agree on a complete
segment in both orders; recovery takes a `.partial` only where its segment is missing; a server prep-ops
does not run gets the one command line, nothing changed."""

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import psycopg
import pytest
from psycopg import sql
from test_wal_archive import _everything as _archive_everything

from prep_ops import archiving, base_backup, db, embedded, health, pitr, pitr_checks, recovery_cluster, wal_archive, wal_stream
from prep_ops.errors import ParameterError

SEGMENT = 16 * 1024 * 1024


@pytest.fixture
def streaming_server(private_server, monkeypatch):
    """A private embedded server with its own WAL archive and backups folders (archiving not yet on)."""
    monkeypatch.setenv("PREP_OPS_WAL_DIR", str(private_server.parent / "wal"))
    monkeypatch.setenv("PREP_OPS_BACKUP_DIR", str(private_server.parent / "backups"))
    yield db.resolve_target()
    embedded.stop()
    assert wal_stream.running_pid() is None


def _receivers(folder: Path) -> list[int]:
    """The pg_receivewal processes on this machine streaming into `folder`."""
    found = []
    for process in psutil.process_iter(["name", "cmdline", "status"]):
        if process.info["name"] == "pg_receivewal" and process.info["status"] != psutil.STATUS_ZOMBIE \
                and str(folder) in (process.info["cmdline"] or []):
            found.append(process.pid)
    return found


def _commit_row(conn) -> str:
    """Commit one row into `kept_work` (made if missing); the WAL location just after its commit."""
    conn.execute("CREATE TABLE IF NOT EXISTS kept_work (id int PRIMARY KEY, note text)")
    conn.execute("INSERT INTO kept_work VALUES (1, 'committed just before the loss')")
    return conn.execute("SELECT pg_current_wal_flush_lsn()::text").fetchone()[0]


def _wait_flushed(conn, lsn: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    query = ("SELECT flush_lsn >= %s::pg_lsn FROM pg_stat_replication WHERE application_name = %s")
    while not (conn.execute(query, (lsn, wal_stream.APPLICATION)).fetchone() or [False])[0]:
        assert time.monotonic() < deadline, f"the receiver did not flush {lsn} within {seconds} s"
        time.sleep(0.05)


def _files(folder: Path) -> dict:
    """Each file of a folder with its size and modification time: what a writer into it would change."""
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


def _lose_the_server() -> None:
    """The server is lost: stopped at once, nothing flushed or archived on the way out."""
    embedded._pg_ctl(embedded.data_dir(), "-m", "immediate", "stop")


def _rows_recovered(backup, archive: Path) -> list:
    with recovery_cluster.recovered(base_backup.chain(backup), archive=archive) as cluster:
        with psycopg.connect(cluster.url(embedded.DATABASE)) as there:
            if not there.execute("SELECT to_regclass('kept_work')").fetchone()[0]:
                return []
            return there.execute("SELECT id, note FROM kept_work").fetchall()


# --- the recovery point ---------------------------------------------------------------------------------
@pytest.mark.server_independent
def test_a_commit_the_receiver_flushed_survives_the_loss_of_the_server(streaming_server):
    change = archiving.on(streaming_server, timeout=60, stream=True)
    assert change.stream == "started" and change.status.receiver is not None, change
    archive = change.status.archive_dir
    with db.connect(streaming_server, autocommit=True) as conn:
        backup = base_backup.take(conn, streaming_server)
        lsn = _commit_row(conn)
        _wait_flushed(conn, lsn)
        found = wal_archive.status(conn)
        point = health.recovery_point(conn)
    assert found.newest_partial and found.newest_partial.endswith(".partial") and found.stream_pid
    assert "(streamed, " in found.window
    assert point.status == "ok" and point.value < 1.0 and "pg_receivewal streams" in point.detail, point.detail
    _lose_the_server()  # archive_timeout is 60 s: the row's segment is not archived, only streamed
    assert not (archive / found.newest_partial[:24]).exists()
    assert _rows_recovered(backup, archive) == [(1, "committed just before the loss")]
    _a_location_past_the_streamed_wal_is_outside_the_window(backup, archive, lsn)


def _a_location_past_the_streamed_wal_is_outside_the_window(backup, archive: Path, flushed: str) -> None:
    """Where the newest WAL is a .partial, the window for --to-lsn ends where its written pages end: a
    location past that is refused in the window check, not found short in replay."""
    segments = pitr.archived_segments(archive, SEGMENT, partial=True)
    last = max(segments)
    assert segments[last].name.endswith(".partial")
    end = pitr_checks.written_end(segments[last], last, SEGMENT)
    assert base_backup.lsn_value(flushed) <= end < (last + 1) * SEGMENT
    assert pitr.candidates([backup], segments, SEGMENT, to_time=None, to_lsn=flushed) == [backup]
    beyond = end + 1
    with pytest.raises(ParameterError, match="outside the recoverable window.*the WAL streamed so far ends at"):
        pitr.candidates([backup], segments, SEGMENT, to_time=None, to_lsn=base_backup.lsn_text(beyond))


@pytest.mark.server_independent
def test_without_streaming_the_same_commit_is_lost_with_the_server(streaming_server):
    change = archiving.on(streaming_server, timeout=60)
    assert change.stream == "" and change.status.receiver is None
    archive = change.status.archive_dir
    with db.connect(streaming_server, autocommit=True) as conn:
        backup = base_backup.take(conn, streaming_server)
        _commit_row(conn)
        time.sleep(1)  # as long as a streamed commit was given above, and more
    _lose_the_server()
    assert not [p for p in archive.iterdir() if p.name.endswith(".partial")]
    assert _rows_recovered(backup, archive) == []


# --- the receiver's life ----------------------------------------------------------------------------------
@pytest.mark.server_independent
def test_the_receiver_outlives_a_restart_a_killed_one_is_started_again_and_db_stop_leaves_none(streaming_server):
    change = archiving.on(streaming_server, timeout=60, stream=True)
    archive = change.status.archive_dir
    killed = wal_stream.running_pid()
    assert _receivers(archive) == [killed]
    embedded.restart()  # the receiver loses its connection and makes it again by itself: the same process
    with db.connect(streaming_server, autocommit=True) as conn:
        assert wal_stream.wait_streaming(conn, 30)
    assert wal_stream.running_pid() == killed and _receivers(archive) == [killed]
    os.kill(killed, signal.SIGKILL)
    psutil.Process(killed).wait(10)
    assert wal_stream.running_pid() is None
    embedded.stop()
    embedded.start()  # the recorded setting decides: streaming is on
    again = wal_stream.running_pid()
    assert again is not None and again != killed and _receivers(archive) == [again]
    with db.connect(streaming_server, autocommit=True) as conn:
        assert wal_stream.wait_streaming(conn)
    done = subprocess.run([sys.executable, "-m", "prep_ops", "db", "stop"], capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"})
    assert done.returncode == 0 and done.stdout.strip() == "stopped", done.stderr
    assert _receivers(archive) == [] and wal_stream.running_pid() is None


@pytest.mark.server_independent
def test_two_starts_at_once_run_one_receiver(streaming_server):
    change = archiving.on(streaming_server, timeout=60, stream=True)
    archive = change.status.archive_dir
    wal_stream.stop()
    socket_dir = embedded.status().socket_dir
    pids = []
    starts = [threading.Thread(target=lambda: pids.append(wal_stream.resume(socket_dir))) for _ in range(3)]
    for thread in starts:
        thread.start()
    for thread in starts:
        thread.join()
    assert len(set(pids)) == 1 and pids[0] is not None
    assert _receivers(archive) == pids[:1]
    assert wal_stream.resume(socket_dir) == pids[0]  # a start while it runs: the same one
    with db.connect(streaming_server, autocommit=True) as conn:
        assert wal_stream.wait_streaming(conn)
        _wait_flushed(conn, _commit_row(conn))  # something streamed: a .partial in the folder
    shown = subprocess.run([sys.executable, "-m", "prep_ops", "archive", "status"], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert f"streaming: pg_receivewal running here (pid {pids[0]}); receiver streaming" in shown.stdout, shown.stdout
    assert "newest streamed partial: 0000000" in shown.stdout and ".partial (" in shown.stdout


@pytest.mark.server_independent
def test_archive_on_without_stream_and_archive_off_stop_the_receiver(streaming_server):
    archive = archiving.on(streaming_server, timeout=60, stream=True).status.archive_dir
    assert len(_receivers(archive)) == 1
    without = archiving.on(streaming_server, timeout=60)
    assert without.stream == "stopped" and not without.changed and _receivers(archive) == []
    assert not wal_stream.is_on()
    embedded.restart()
    assert _receivers(archive) == []  # the setting is off: a start starts none
    assert archiving.on(streaming_server, timeout=60, stream=True).stream == "started"
    off = archiving.off(streaming_server)
    assert off.stream == "stopped" and off.changed and _receivers(archive) == []
    embedded.restart()
    assert _receivers(archive) == []


# --- pg_receivewal and archive_wal.py on the same segment -------------------------------------------------------
def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _archiver(conn) -> tuple:
    return conn.execute("SELECT archived_count, last_archived_wal, failed_count FROM pg_stat_archiver").fetchone()


def _wait(condition, seconds: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.1)


@pytest.mark.server_independent
def test_the_receiver_first_then_archive_command_on_the_same_segment_is_success(streaming_server):
    change = archiving.on(streaming_server, timeout=60, stream=True)
    archive = change.status.archive_dir
    with db.connect(streaming_server, autocommit=True) as conn:
        command = conn.execute("SHOW archive_command").fetchone()[0]
        slower = sql.SQL("ALTER SYSTEM SET archive_command = {}").format(sql.Literal(f"sleep 3; {command}"))
        conn.execute(slower)  # the archiver waits: the receiver completes the segment first
        conn.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)
        before = _archiver(conn)
        conn.execute("CREATE TABLE switched (id int)")
        name = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]
        _wait(lambda: (archive / name).exists(), what=f"the receiver's {name}")
        streamed = _digest(archive / name)  # the archiver still sleeps: the receiver's file
        _wait(lambda: _archiver(conn)[0] > before[0] or _archiver(conn)[2] > before[2], what="the archiver")
        after = _archiver(conn)
    assert after[1] == name and after[2] == before[2], after  # archived, no failure
    assert _digest(archive / name) == streamed and not (archive / f"{name}.partial").exists()


@pytest.mark.server_independent
def test_archive_command_first_then_the_receiver_on_the_same_segment_keeps_the_same_bytes(streaming_server):
    change = archiving.on(streaming_server, timeout=60, stream=True)
    archive = change.status.archive_dir
    receiver = psutil.Process(wal_stream.running_pid())
    with db.connect(streaming_server, autocommit=True) as conn:
        conn.execute("CREATE TABLE switched (id int)")
        _wait_flushed(conn, conn.execute("SELECT pg_current_wal_flush_lsn()::text").fetchone()[0])
        receiver.suspend()  # the receiver holds <segment>.partial while archive_command archives the segment
        try:
            before = _archiver(conn)
            name = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]
            _wait(lambda: _archiver(conn)[0] > before[0], what=f"archive_command's {name}")
            assert (archive / f"{name}.partial").exists()
            archived = _digest(archive / name)
        finally:
            receiver.resume()
        _wait(lambda: not (archive / f"{name}.partial").exists(), what="the receiver's rename")
        assert _digest(archive / name) == archived  # renamed over it: the same bytes
        conn.execute("INSERT INTO switched VALUES (1)")
        later = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]
        _wait(lambda: _archiver(conn)[1] == later, what=f"{later} archived")
        assert _archiver(conn)[2] == before[2]  # no failure in pg_stat_archiver


# --- recovery reads a .partial only where its segment is missing -------------------------------------------
@pytest.mark.server_independent
def test_restore_command_takes_the_segment_else_its_partial_else_fails(tmp_path):
    archive = tmp_path / "it's a 100% archive"
    archive.mkdir()
    (archive / "000000010000000000000003").write_bytes(b"complete")
    (archive / "000000010000000000000003.partial").write_bytes(b"stale partial")
    (archive / "000000010000000000000004.partial").write_bytes(b"streaming")
    command = recovery_cluster.restore_command(archive)

    def restore(name: str) -> tuple[int, bytes | None]:
        out = tmp_path / "RECOVERYXLOG"
        out.unlink(missing_ok=True)
        run = archiving.render(command, str(out), name)  # as PostgreSQL substitutes %f and %p
        done = subprocess.run(["/bin/sh", "-c", run], capture_output=True)
        return done.returncode, out.read_bytes() if out.exists() else None

    assert restore("000000010000000000000003") == (0, b"complete")
    assert restore("000000010000000000000004") == (0, b"streaming")
    assert restore("000000010000000000000005")[0] != 0
    assert restore("00000002.history")[0] != 0
    outside = tmp_path / "outside"
    outside.write_bytes(b"not of the archive")
    (archive / "000000010000000000000006").symlink_to(outside)
    (archive / "000000010000000000000007.partial").symlink_to(outside)
    assert restore("000000010000000000000006")[0] != 0  # a link is never followed
    assert restore("000000010000000000000007")[0] != 0


@pytest.mark.server_independent
def test_archived_segments_count_a_partial_only_for_recover_and_only_where_the_segment_is_missing(tmp_path):
    for name in ("000000010000000000000003", "000000010000000000000003.partial", "000000010000000000000004.partial",
                 ".000000010000000000000005.tmp-1", "000000010000000000000005.partial.gz"):
        (tmp_path / name).write_bytes(b"x")
    complete = pitr.archived_segments(tmp_path, SEGMENT)
    assert {n: p.name for n, p in complete.items()} == {3: "000000010000000000000003"}
    (tmp_path / "000000010000000000000006").symlink_to(tmp_path / "000000010000000000000003")  # leads elsewhere
    (tmp_path / "000000010000000000000007").mkdir()
    streamed = pitr.archived_segments(tmp_path, SEGMENT, partial=True)
    assert {n: p.name for n, p in streamed.items()} == {3: "000000010000000000000003",
                                                        4: "000000010000000000000004.partial"}


# --- a server prep-ops does not run ---------------------------------------------------------------------------
def _everything(conn) -> tuple:
    """What `archive on` could have changed (test_wal_archive's), and the receivers the server has."""
    return (*_archive_everything(conn), conn.execute("SELECT count(*) FROM pg_stat_replication").fetchone()[0])


def test_archive_on_stream_elsewhere_prints_the_receivewal_command_and_changes_nothing(server):
    elsewhere = db.Target(server.url, embedded=False)  # a server named by URL: prep-ops does not run it
    with db.connect(elsewhere) as conn:
        before = _everything(conn)
        sysid = conn.execute("SELECT system_identifier::text FROM pg_control_system()").fetchone()[0]
    folder = wal_archive.archive_dir(sysid)
    change = archiving.on(elsewhere, timeout=30, stream=True)
    with db.connect(elsewhere) as conn:
        assert _everything(conn) == before
    assert not change.changed and change.stream == "" and _receivers(folder) == []
    lines = change.instructions.splitlines()
    commands = [line for line in lines if line.startswith("pg_receivewal ")]
    assert len(commands) == 1, change.instructions
    assert commands[0].startswith(f"pg_receivewal -D {folder} --synchronous --no-password ")
    assert f"application_name={wal_stream.APPLICATION}" in commands[0] and " -S " not in commands[0]
    assert "password=" not in commands[0] and "dbname" not in commands[0]
    assert "\narchive_mode = on\n" in change.instructions  # archiving stays the backstop


# --- the reviewer's findings ------------------------------------------------------------------------------------
def _owner() -> "tuple[int, int] | None":
    """The (uid, gid) the embedded server runs as when we are root (what resume hands the receiver)."""
    owner = embedded.data_dir().stat()
    return (owner.st_uid, owner.st_gid) if os.geteuid() == 0 else None


@pytest.mark.server_independent
def test_a_leftover_receiver_does_not_follow_a_new_cluster_into_the_old_clusters_folder(streaming_server,
                                                                                        private_server):
    old = archiving.on(streaming_server, timeout=60, stream=True).status.archive_dir
    leftover = wal_stream.running_pid()
    _lose_the_server()  # the receiver of the lost server keeps running, trying to reconnect
    private_server.rename(private_server.parent / "pgdata.lost")
    embedded.start()  # a new cluster in the same data directory
    assert not psutil.pid_exists(leftover) or psutil.Process(leftover).status() == psutil.STATUS_ZOMBIE
    assert _receivers(old) == [] and wal_stream.running_pid() is None
    before = _files(old)  # the lost cluster's folder, as its killed receiver left it
    change = archiving.on(db.resolve_target(), timeout=60, stream=True)
    new = change.status.archive_dir
    assert new != old and change.stream in ("started", "running")  # running: the restart's resume started it
    assert _receivers(new) == [wal_stream.running_pid()] and _receivers(old) == []
    with db.connect(db.resolve_target(), autocommit=True) as conn:
        _wait_flushed(conn, _commit_row(conn))
        assert health.recovery_point(conn).status == "ok"
    assert _files(old) == before  # nothing of the new cluster was written into the old cluster's folder


@pytest.mark.server_independent
def test_a_receiver_named_prep_ops_streaming_into_another_folder_is_not_an_ok_recovery_point(streaming_server):
    archive = archiving.on(streaming_server, timeout=60, stream=True).status.archive_dir
    first = wal_stream.running_pid()
    elsewhere = archive.parent / "elsewhere"
    elsewhere.mkdir()
    if _owner():
        os.chown(elsewhere, *_owner())
    with db.connect(streaming_server, autocommit=True) as conn:
        conn.execute("SELECT pg_switch_wal()")  # the first receiver's .partial is a whole segment behind
        other = wal_stream.start(embedded.status().socket_dir, elsewhere, _owner())
        assert other != first and not psutil.pid_exists(first) and _receivers(archive) == []  # folder differs
        _wait_flushed(conn, _commit_row(conn))
        assert conn.execute("SELECT count(*) FROM pg_stat_replication WHERE application_name = %s",
                            (wal_stream.APPLICATION,)).fetchone()[0] == 1
        point = health.recovery_point(conn)
        assert point.status in ("warn", "critical") and "pg_receivewal not counted" in point.detail, point
        assert "it writes elsewhere" in point.detail and "pg_receivewal streams the WAL" not in point.detail
        assert not wal_stream.wait_streaming(conn, 2)
        assert wal_stream.start(embedded.status().socket_dir, archive, _owner()) != other  # back: streams here
        assert not psutil.pid_exists(other) and _receivers(elsewhere) == []
        assert wal_stream.wait_streaming(conn)
        _wait_flushed(conn, conn.execute("SELECT pg_current_wal_flush_lsn()::text").fetchone()[0])
        assert health.recovery_point(conn).status == "ok"


def test_the_printed_receivewal_command_never_carries_sslpassword_or_password(tmp_path):
    url = ("postgresql://ops:pw-SECRET-1@db.example:5433/app?sslmode=verify-full&sslrootcert=/etc/ca.pem"
           "&sslcert=/etc/c.pem&sslkey=/etc/k.pem&sslpassword=ssl-SECRET-2&connect_timeout=5&options=-c%20x%3Dy")
    command = archiving._stream_instructions(tmp_path, url)[-1]  # the command line, after the comments
    assert command.startswith("pg_receivewal ")
    assert "SECRET" not in command and "password=" not in command and "options" not in command
    for kept in ("host=db.example", "port=5433", "user=ops", "sslmode=verify-full", "sslrootcert=/etc/ca.pem",
                 "sslkey=/etc/k.pem", "connect_timeout=5", f"application_name={wal_stream.APPLICATION}"):
        assert kept in command, (kept, command)
    assert "dbname" not in wal_stream.dsn_of(url)


def test_a_partial_renamed_between_listing_and_stat_is_skipped_not_a_missing_folder(tmp_path):
    sysid = "7123456789012345678"
    gone = tmp_path / "000000010000000000000004.partial"  # listed, then renamed to its segment
    (tmp_path / "000000010000000000000003").write_bytes(b"x")
    found = wal_archive.ArchiveStatus(system_identifier=sysid)
    wal_archive._read_folder({p.name: p for p in [tmp_path / "000000010000000000000003", gone]}, found)
    assert found.segments == 1 and found.newest_segment_time is not None and found.newest_partial is None
    assert "segments" not in found.unknown
    # pitr's window and candidates read the same dict: a vanished file is skipped, never FileNotFoundError
    assert pitr._window_text([], {4: gone}) .startswith("no base backup of this cluster")
    with pytest.raises(pitr.ParameterError):
        pitr.candidates([], {4: gone}, SEGMENT, to_time=pitr.datetime.now(pitr.timezone.utc), to_lsn=None)
    # the segment check reads the completed segment the .partial became
    from prep_ops import pitr_checks

    header = pitr_checks._LONG_HEADER.pack(0xD118, pitr_checks._XLP_LONG_HEADER, 1, 4 * SEGMENT, 0, int(sysid),
                                           SEGMENT, 8192)
    with open(tmp_path / "000000010000000000000004", "wb") as segment:
        segment.write(header)
        segment.truncate(SEGMENT)
    assert pitr_checks.segment_problem(gone, 4, SEGMENT, sysid) is None


@pytest.mark.server_independent
def test_a_receiver_killed_with_us_before_its_pid_was_noted_is_stopped_by_db_stop(streaming_server, monkeypatch):
    archive = archiving.on(streaming_server, timeout=60).status.archive_dir
    wal_stream.record(True)

    def killed(pid, folder):
        raise KeyboardInterrupt("killed between Popen and the pid file's write")

    with monkeypatch.context() as patched, pytest.raises(KeyboardInterrupt):
        patched.setattr(wal_stream, "_note", killed)
        wal_stream.start(embedded.status().socket_dir, archive, _owner())
    orphan = _receivers(archive)
    assert len(orphan) == 1 and wal_stream.running_pid() is None
    done = subprocess.run([sys.executable, "-m", "prep_ops", "db", "stop"], capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"})
    assert done.returncode == 0, done.stderr
    assert _receivers(archive) == [] and not (wal_stream.state_dir() / "pid").exists()


@pytest.mark.server_independent
def test_the_receivers_log_is_rotated_at_each_start_not_grown_without_bound(streaming_server):
    archiving.on(streaming_server, timeout=60, stream=True)
    log = wal_stream.state_dir() / "log"
    with open(log, "a") as out:
        out.write("x" * 100_000 + " an earlier run's lines\n")
    wal_stream.stop()
    embedded.restart()  # resume starts it again
    assert wal_stream.running_pid() is not None
    assert "an earlier run's lines" not in log.read_text() and log.stat().st_size < 10_000
    assert "an earlier run's lines" in (wal_stream.state_dir() / "log.1").read_text()
