"""WAL archiving: the archive command (atomic, never replacing), `archive on|off|status` on a private
embedded server, and a server prep-ops does not run (CI's PostgreSQL 15, which archives with cp)."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from psycopg import sql

from prep_ops import archiving, db, embedded, health, wal_archive
from prep_ops.archive_wal import __file__ as SCRIPT

SEGMENT = 16 * 1024 * 1024


def _archive(source: Path, final: Path) -> subprocess.CompletedProcess:
    """The archive command as PostgreSQL runs it: an isolated Python, %p and <dir>/%f."""
    return subprocess.run([sys.executable, "-I", SCRIPT, str(source), str(final)], capture_output=True, text=True)


def _segment(folder: Path, byte: bytes) -> Path:
    path = folder / "pg_wal_source"
    path.write_bytes(byte * SEGMENT)
    return path


# --- the archive command ------------------------------------------------------------------------
@pytest.mark.server_independent
def test_archive_copies_the_whole_segment_and_leaves_no_temporary_file(tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    source = _segment(tmp_path, b"\x01")
    done = _archive(source, archive / "000000010000000000000007")
    assert done.returncode == 0, done.stderr
    assert [p.name for p in archive.iterdir()] == ["000000010000000000000007"]
    assert (archive / "000000010000000000000007").read_bytes() == source.read_bytes()


@pytest.mark.server_independent
def test_archive_never_replaces_a_different_segment(tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    kept = archive / "000000010000000000000007"
    kept.write_bytes(b"\x02" * SEGMENT)  # another cluster's (or timeline's) segment under the same name
    before = kept.stat()
    done = _archive(_segment(tmp_path, b"\x01"), kept)
    assert done.returncode == 1
    assert "already exists with different content: not replaced" in done.stderr
    assert kept.read_bytes() == b"\x02" * SEGMENT
    assert (kept.stat().st_ino, kept.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert [p.name for p in archive.iterdir()] == [kept.name]  # no temporary copy left beside it


@pytest.mark.server_independent
def test_archive_of_the_same_bytes_again_is_success_and_changes_nothing(tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    source = _segment(tmp_path, b"\x03")
    assert _archive(source, archive / "000000010000000000000008").returncode == 0
    first = (archive / "000000010000000000000008").stat()
    again = _archive(source, archive / "000000010000000000000008")
    assert again.returncode == 0, again.stderr
    assert (archive / "000000010000000000000008").stat().st_ino == first.st_ino
    assert [p.name for p in archive.iterdir()] == ["000000010000000000000008"]


@pytest.mark.server_independent
def test_a_killed_copy_leaves_no_file_under_the_final_name(tmp_path):
    """The source is a pipe that yields half a segment and then nothing: the copy is killed mid-way."""
    archive = tmp_path / "archive"
    archive.mkdir()
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    final = archive / "000000010000000000000009"
    copying = subprocess.Popen([sys.executable, "-I", SCRIPT, str(pipe), str(final)])
    with open(pipe, "wb") as writer:
        writer.write(b"\x04" * (SEGMENT // 2))
        writer.flush()
        deadline = time.monotonic() + 10
        while not any(p.stat().st_size > 0 for p in archive.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(p.name.startswith(f".{final.name}.tmp-") for p in archive.iterdir())  # half-way in its copy
        copying.send_signal(signal.SIGKILL)
        copying.wait()
    assert not final.exists()
    source = _segment(tmp_path, b"\x04")  # PostgreSQL asks again: the whole segment arrives, the leftover goes
    assert _archive(source, final).returncode == 0
    assert [p.name for p in archive.iterdir()] == [final.name]
    assert final.read_bytes() == source.read_bytes()


@pytest.mark.server_independent
def test_the_archive_command_survives_spaces_quotes_and_percent_signs_in_the_folder(tmp_path):
    folder = tmp_path / "it's a 100% folder; $(touch hacked)"
    folder.mkdir()
    command = archiving.command_line(folder, Path(sys.executable))
    source = _segment(tmp_path, b"\x05")
    run = archiving.render(command, str(source), "00000001000000000000000A")  # as PostgreSQL substitutes
    done = subprocess.run(["/bin/sh", "-c", run], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (folder / "00000001000000000000000A").read_bytes() == source.read_bytes()
    assert not (tmp_path / "hacked").exists()


# --- status on the server under test ----------------------------------------------------------------
def _settings(conn) -> dict:
    return dict(conn.execute("SELECT name, setting FROM pg_settings WHERE name LIKE 'archive%'").fetchall())


def test_status_reads_the_servers_archiving_as_it_runs(server):
    with db.connect(server) as conn:
        expected = _settings(conn)
        sysid = conn.execute("SELECT system_identifier::text FROM pg_control_system()").fetchone()[0]
        archived = conn.execute("SELECT archived_count, failed_count FROM pg_stat_archiver").fetchone()
        found = wal_archive.status(conn)
    assert found.archive_mode == expected["archive_mode"]
    assert found.on is (expected["archive_mode"] != "off" and expected["archive_command"] not in ("", "(disabled)"))
    assert found.system_identifier == sysid and found.archive_dir == wal_archive.archive_dir(sysid)
    assert found.archived_count >= archived[0] and found.failed_count >= archived[1]
    if not server.embedded:  # CI's PostgreSQL 15 archives with cp into PREP_OPS_WAL_DIR/<sysid>
        assert found.on is True and found.segments is not None, found


def _base_manifest(folder: Path, sysid: str, finished: str) -> None:
    folder.mkdir(parents=True)
    files = {name: {"bytes": 1, "sha256": "0" * 64} for name in ("backup_manifest", "base.tar.gz", "pg_wal.tar.gz")}
    (folder / wal_archive.BASE_MANIFEST).write_text(json.dumps({
        "kind": "base", "system_identifier": sysid, "timeline": 1, "start_lsn": "0/2000028", "end_lsn": "0/2000100",
        "started": finished, "finished": finished, "server_major": 18, "files": files}))


def test_status_window_runs_from_the_oldest_base_backup_to_the_newest_archived_wal(server, tmp_path, monkeypatch):
    """The window recover would use: listed base backups only (no partial copy, no other cluster's manifest)
    to the newest segment file in the archive folder (not pg_stat_archiver's word)."""
    monkeypatch.setenv("PREP_OPS_BACKUP_DIR", str(tmp_path))
    monkeypatch.setenv("PREP_OPS_WAL_DIR", str(tmp_path / "wal"))
    with db.connect(server) as conn:
        sysid = wal_archive.status(conn).system_identifier
        assert wal_archive.status(conn).window.startswith("no base backup")
        mine = wal_archive.base_backups_dir(sysid)
        _base_manifest(mine / "20260302T100000Z-aaaaaa", sysid, "2026-03-02T10:00:00+00:00")
        _base_manifest(mine / "20260301T093000Z-bbbbbb", sysid, "2026-03-01T09:30:00.250000+00:00")
        _base_manifest(mine / ".20200101T000000Z-cccccc.partial-1", sysid, "2001-01-01T00:00:00+00:00")
        _base_manifest(mine / "20200101T000000Z-dddddd", "1234567", "2001-01-01T00:00:00+00:00")  # a foreign copy
        _base_manifest(tmp_path / "base" / "1234567" / "20200101T000000Z-eeeeee", "1234567", "2001-01-01T00:00:00+00:00")
        assert "no WAL in" in wal_archive.status(conn).window
        archive = wal_archive.archive_dir(sysid)
        archive.mkdir(parents=True)
        for name, at in [("000000010000000000000003", 1788000000.5), ("000000010000000000000002", 1788000100.25)]:
            (archive / name).write_bytes(b"x")
            os.utime(archive / name, (at, at))
        found = wal_archive.status(conn)
    assert found.oldest_base_backup.isoformat() == "2026-03-01T09:30:00.250000+00:00"
    assert found.newest_segment_time.timestamp() == 1788000100.25
    assert found.window.startswith("2026-03-01T09:30:00.250000+00:00 to 2026-08-29T")
    assert found.window.split(" to ")[1][:32] == found.newest_segment_time.isoformat()[:32]


@pytest.mark.server_independent
def test_status_flags_an_archive_command_that_does_not_write_into_the_archive_folder(tmp_path):
    folder = tmp_path / "wal dir" / "123"
    ours = archiving.command_line(folder, Path(sys.executable))
    assert wal_archive._names_folder(ours, folder)
    assert wal_archive._names_folder(f"cp %p {folder}/%f", folder)
    assert not wal_archive._names_folder("cp %p /mnt/elsewhere/%f", folder)
    found = wal_archive.ArchiveStatus(system_identifier="123", archive_dir=folder, command_writes_elsewhere=True)
    assert wal_archive._window(found) == (f"no base backup; the archive_command does not write into {folder}, "
                                          "the only folder recovery reads")


@pytest.mark.server_independent
def test_archive_probe_accepts_a_folder_with_a_space_and_runs_nothing_from_its_name(tmp_path):
    folder = tmp_path / "wal dir $(touch hacked)" / "123"
    folder.mkdir(parents=True)
    archiving._probe(archiving.command_line(folder, Path(sys.executable)), folder, None)  # no TargetError
    assert not (tmp_path / "hacked").exists() and not any(tmp_path.rglob("hacked"))
    assert list(folder.iterdir()) == []  # the probe's files removed


@pytest.mark.server_independent
def test_archive_on_refused_removes_the_folder_it_made(private_server, monkeypatch):
    monkeypatch.setenv("PREP_OPS_WAL_DIR", str(private_server.parent / "wal root"))
    monkeypatch.setattr(archiving, "command_line", lambda folder, python: "exit 3")
    target = db.resolve_target()
    with pytest.raises(archiving.TargetError, match="does not work as the server's user"):
        archiving.on(target, timeout=30)
    assert not (private_server.parent / "wal root").exists()
    with db.connect(target) as conn:
        assert wal_archive.status(conn).on is False


def test_status_says_unknown_for_what_a_role_may_not_read(server, scratch):
    role = f"prep_ops_test_archive_{uuid.uuid4().hex[:8]}"
    with db.connect(scratch, autocommit=True) as conn:  # function and view grants are the database's own
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'archive-test-pw'").format(sql.Identifier(role)))
        conn.execute("REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC")
        conn.execute("REVOKE SELECT ON pg_stat_archiver FROM PUBLIC")
    try:
        with db.connect(scratch.with_user(role, "archive-test-pw")) as conn:
            found = wal_archive.status(conn)
        assert found.archive_mode in ("on", "off", "always")
        assert found.unknown["config_file"] == "unknown: reading it needs pg_read_all_settings (or superuser)"
        assert found.unknown["system_identifier"].startswith("unknown: permission denied")
        assert found.unknown["archived_count"].startswith("unknown: permission denied")
        assert found.system_identifier is None and found.archived_count is None
        assert found.window == "unknown: the cluster's system identifier is unreadable"
    finally:  # the database and its grants go with the scratch fixture
        with db.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


# --- a server prep-ops does not run: say what to set, change nothing ---------------------------------
def _everything(conn) -> tuple:
    """What `archive on` or `off` could have changed on a server: every setting, what waits for a
    restart, the ALTER SYSTEM file and the start time."""
    return (conn.execute("SELECT name, setting, pending_restart FROM pg_settings ORDER BY name").fetchall(),
            conn.execute("SELECT pg_read_file('postgresql.auto.conf')").fetchone()[0],
            conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0])


def test_archive_on_elsewhere_prints_the_lines_and_changes_nothing(server):
    elsewhere = db.Target(server.url, embedded=False)  # a server named by URL: prep-ops does not run it
    with db.connect(elsewhere) as conn:
        before = _everything(conn)
        sysid = conn.execute("SELECT system_identifier::text FROM pg_control_system()").fetchone()[0]
        config_file = conn.execute("SHOW config_file").fetchone()[0]
    change = archiving.on(elsewhere, timeout=30)
    off = archiving.off(elsewhere)
    with db.connect(elsewhere) as conn:
        assert _everything(conn) == before
    assert not change.changed and not off.changed
    folder = wal_archive.archive_dir(sysid)
    assert f"set these in {config_file}" in change.instructions
    assert "\narchive_mode = on\n" in change.instructions and "\narchive_timeout = 30\n" in change.instructions
    command = change.settings["archive_command"]
    assert f"\narchive_command = '{command}'\n" in change.instructions  # no quote in these paths to double
    assert command.endswith(f"{folder}/%f") and " -I " in command and "archive_wal.py %p " in command
    assert "\narchive_mode = off\n" in off.instructions


def test_cli_archive_on_elsewhere_exits_0_with_the_lines(server):
    from conftest import cli_env

    done = subprocess.run([sys.executable, "-m", "prep_ops", "archive", "on"], capture_output=True, text=True,
                          env=cli_env(server))  # DATABASE_URL: a server named by URL
    assert done.returncode == 0, done.stderr
    assert "prep-ops changes nothing on a server it does not run" in done.stdout
    assert "\narchive_mode = on\narchive_command = '" in done.stdout
    status = subprocess.run([sys.executable, "-m", "prep_ops", "archive", "status", "--json"], capture_output=True,
                            text=True, env=cli_env(server))
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["system_identifier"].isdigit()


# --- the embedded server: on, a segment archived, off --------------------------------------------
def _wait_for(path: Path, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return path.exists()


@pytest.mark.server_independent
def test_archive_on_archives_each_switched_segment_and_off_restores(private_server, monkeypatch):
    monkeypatch.setenv("PREP_OPS_WAL_DIR", str(private_server.parent / "wal"))
    monkeypatch.setenv("PREP_OPS_BACKUP_DIR", str(private_server.parent / "backups"))
    target = db.resolve_target()
    with db.connect(target) as conn:
        assert wal_archive.status(conn).on is False
    change = archiving.on(target, timeout=30)
    assert change.changed and change.status.on and change.status.archive_timeout == 30
    folder = wal_archive.archive_dir(change.status.system_identifier)
    assert change.status.archive_command.endswith(f"{folder}/%f")
    with db.connect(target, autocommit=True) as conn:
        started = conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0]
        conn.execute("CREATE TABLE archived_work (id int)")
        conn.execute("INSERT INTO archived_work VALUES (1)")
        name = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]
    assert _wait_for(folder / name), f"{name} not archived into {folder}"
    time.sleep(0.5)  # pg_stat_archiver counts it just after the command returns
    again = archiving.on(target, timeout=30)  # idempotent: already in effect, no restart
    assert not again.changed
    with db.connect(target) as conn:
        assert conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0] == started
        found = wal_archive.status(conn)
    assert found.last_archived_wal == name and found.failed_count == 0
    assert found.newest_segment == name and found.segments >= 1 and found.last_archived_age < 60
    assert (folder / name).stat().st_size == SEGMENT and not [p for p in folder.iterdir() if p.name.startswith(".")]
    if os.geteuid() == 0:  # the server's system user owns the folder it writes
        assert folder.stat().st_uid == embedded.data_dir().stat().st_uid
    with db.connect(target, autocommit=True) as conn:  # health's recovery point: nothing unarchived to speak of
        point = health.recovery_point(conn)
        assert point.status == "ok" and point.value is not None and point.value < 60, point.detail
        conn.execute("ALTER SYSTEM SET archive_command = 'false'")  # archiving that fails: critical at once
        conn.execute("SELECT pg_reload_conf()")
        conn.execute("INSERT INTO archived_work VALUES (2)")
        conn.execute("SELECT pg_switch_wal()")
        deadline = time.monotonic() + 30
        while not conn.execute("SELECT failed_count FROM pg_stat_archiver").fetchone()[0] and time.monotonic() < deadline:
            time.sleep(0.2)
        point = health.recovery_point(conn)
        assert point.status == "critical" and "archiving fails" in point.detail, point.detail
        conn.execute("ALTER SYSTEM SET archive_command = ''")  # on, with nothing to archive with: critical too
        conn.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + 10
        while conn.execute("SHOW archive_command").fetchone()[0] not in ("", "(disabled)") and time.monotonic() < deadline:
            time.sleep(0.1)
        point = health.recovery_point(conn)
    assert point.status == "critical" and "neither archive_command nor archive_library" in point.detail, point.detail
    off = archiving.off(target)
    assert off.changed and off.status.archive_mode == "off" and off.status.on is False
    with db.connect(target) as conn:
        assert _settings(conn)["archive_timeout"] == "0"
        auto = conn.execute("SELECT pg_read_file('postgresql.auto.conf')").fetchone()[0]
    assert "archive_" not in auto
    assert not archiving.off(target).changed  # off twice: nothing to do


@pytest.mark.server_independent
def test_archive_timeout_switches_segments_right_after_a_start(private_server, monkeypatch):
    # the checkpointer ignores archive_timeout until it first wakes after a start (up to checkpoint_timeout,
    # 5 min): without the reload embedded.restart/start do, no segment would be archived within the wait
    monkeypatch.setenv("PREP_OPS_WAL_DIR", str(private_server.parent / "wal"))
    monkeypatch.setenv("PREP_OPS_BACKUP_DIR", str(private_server.parent / "backups"))
    target = db.resolve_target()
    change = archiving.on(target, timeout=1)  # restarts the server
    assert change.changed and change.status.archive_timeout == 1
    with db.connect(target, autocommit=True) as conn:
        conn.execute("CREATE TABLE timed_work (id int)")
        conn.execute("INSERT INTO timed_work VALUES (1)")
        deadline = time.monotonic() + 20
        while not conn.execute("SELECT archived_count FROM pg_stat_archiver").fetchone()[0]:
            assert time.monotonic() < deadline, "no segment archived 20 s after a write with archive_timeout = 1 s"
            time.sleep(0.2)
    archiving.off(target)


@pytest.mark.server_independent
def test_status_window_ends_at_a_streamed_partial_newer_than_the_newest_segment(tmp_path):
    """recover takes a `.partial` where its segment is missing (wal_stream): the window shown ends there."""
    from datetime import datetime, timezone

    backup, segment, partial = (datetime(2026, 3, 1, 9, 0, s, tzinfo=timezone.utc) for s in (0, 10, 20))
    found = wal_archive.ArchiveStatus(system_identifier="123", archive_dir=tmp_path, oldest_base_backup=backup,
                                      newest_segment_time=segment, newest_partial_time=partial,
                                      newest_partial="000000010000000000000004.partial")
    assert wal_archive._window(found) == (f"{backup.isoformat()} to {partial.isoformat()} "
                                          "(streamed, 000000010000000000000004.partial)")
    found.newest_partial_time = None
    assert wal_archive._window(found) == f"{backup.isoformat()} to {segment.isoformat()}"
