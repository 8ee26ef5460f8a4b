"""backup --kind base --keep N: the oldest base backups of the same cluster go, never one a kept incremental
builds on, and the archived WAL only they needed goes with them (pg_archivecleanup). On private archiving
clusters of the embedded binaries (pitr_fixtures), never the suite's shared server."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

import pitr_fixtures
from pitr_fixtures import make_source, stop_source
from prep_ops import base_backup, base_retention, embedded, pitr, wal_archive
from prep_ops.errors import BackupError, ParameterError

pytestmark = pytest.mark.server_independent
source_cluster = pitr_fixtures.source_cluster  # the fixture, used by name
SEGMENT = 16 * 2**20  # initdb's default, which the fixture's clusters keep


def segments(archive) -> list[str]:
    return sorted(p.name for p in archive.iterdir() if wal_archive.SEGMENT.fullmatch(p.name))


def backup_after_work(conn, source, first: int, **kwargs) -> base_backup.BaseBackup:
    """Some work, then a base backup, then its WAL archived (a commit and a segment switch, waited for)."""
    conn.execute("INSERT INTO lessons SELECT g, 'lesson ' || g FROM generate_series(%s::int, %s::int) g",
                 (first, first + 499))
    time.sleep(0.05)  # the work's commit well before the backup's "started" (a test recovers to 1 ms before it)
    made = base_backup.take(conn, source.target, **kwargs)
    pitr.archive_now(conn, source.archive)
    return made


def start_wal(made: base_backup.BaseBackup) -> str:
    return base_retention.segment_name(1, base_backup.lsn_value(made.manifest["start_lsn"]), SEGMENT)


def snapshot(*folders) -> dict:
    """Every file under `folders`: path -> (size, mtime)."""
    found = {}
    for folder in folders:
        for dirpath, _, files in os.walk(folder):
            for name in files:
                stat = os.stat(os.path.join(dirpath, name))
                found[os.path.join(dirpath, name)] = (stat.st_size, stat.st_mtime_ns)
    return found


def test_keep_removes_the_oldest_base_backups_and_only_the_wal_they_needed(source_cluster):
    conn = source_cluster.connect()
    conn.execute("CREATE TABLE lessons (id int PRIMARY KEY, title text)")
    first = backup_after_work(conn, source_cluster, 1)
    second = backup_after_work(conn, source_cluster, 501)
    third = backup_after_work(conn, source_cluster, 1001)
    foreign = base_backup.root() / source_cluster.system_identifier / "20000101T000000Z-abcdef"
    foreign.mkdir()  # not a complete backup of this cluster (no manifest): never removed
    (foreign / "note").write_text("someone else's")
    before = segments(source_cluster.archive)
    assert before[0] < start_wal(first) < start_wal(second) < start_wal(third)

    done = base_retention.prune(conn, 2)

    assert done.removed == [first.name] and done.kept == sorted([second.name, third.name])
    assert not first.path.exists() and second.path.is_dir() and third.path.is_dir() and foreign.is_dir()
    assert [b.path for b in base_backup.listing(source_cluster.system_identifier)] == [third.path, second.path]
    assert done.oldest_wal_kept == start_wal(second)
    after = segments(source_cluster.archive)
    assert after == [s for s in before if s >= start_wal(second)]
    assert sorted(set(before) - set(after)) == [w for w in done.wal_removed if wal_archive.SEGMENT.fullmatch(w)]
    backups_left = sorted(p.name for p in source_cluster.archive.glob("*.backup"))
    assert backups_left and all(name[:24] >= start_wal(second) for name in backups_left)
    # what stays is still recoverable; what went is outside the window
    between = datetime.fromisoformat(third.manifest["started"]) - timedelta(milliseconds=1)
    assert datetime.fromisoformat(second.manifest["finished"]) < between
    copy = pitr.recover(conn, source_cluster.target, to_time=between, as_name="app_between", controlled=True)
    with source_cluster.connect(copy["database"]) as there:
        # rows 1001-1500 came after the second backup: only its WAL, which was kept, holds them
        assert there.execute("SELECT count(*), max(id) FROM lessons").fetchone() == (1500, 1500)
    with pytest.raises(ParameterError, match="outside the recoverable window"):
        pitr.recover(conn, source_cluster.target, to_time=datetime.fromisoformat(second.manifest["started"]),
                     controlled=True)


def test_keep_never_removes_a_backup_a_kept_incremental_builds_on(monkeypatch):
    folder = Path(tempfile.mkdtemp(prefix="prep-ops-retention-"))  # as pitr_fixtures: outside pytest's tmp_path
    monkeypatch.setenv("PREP_OPS_WAL_DIR", str(folder / "wal"))
    monkeypatch.setenv("PREP_OPS_BACKUP_DIR", str(folder / "backups"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    source = make_source(folder / "one", {"summarize_wal": "on"})
    try:
        conn = source.connect()
        conn.execute("CREATE TABLE lessons (id int PRIMARY KEY, title text)")
        full = backup_after_work(conn, source, 1)
        incremental = backup_after_work(conn, source, 501, incremental=True)
        assert incremental.manifest["incremental_of"] == full.name
        before = segments(source.archive)

        done = base_retention.prune(conn, 1)

        assert done.removed == [] and done.kept == sorted([full.name, incremental.name])
        assert full.path.is_dir() and incremental.path.is_dir()
        assert done.oldest_wal_kept == start_wal(full)
        assert segments(source.archive) == [s for s in before if s >= start_wal(full)]
        # a new full backup frees both: the chain goes as a whole
        newest = backup_after_work(conn, source, 1001)
        done = base_retention.prune(conn, 1)
        assert done.removed == [full.name, incremental.name] and done.kept == [newest.name]
        assert segments(source.archive)[0] == start_wal(newest)
        # a kept incremental whose full backup is missing: nothing is removed, and it is said why
        second = backup_after_work(conn, source, 1501, incremental=True)
        newest.path.rename(newest.path.parent / "gone")
        with pytest.raises(BackupError, match=f"nothing removed: {second.name} is incremental to {newest.name}"):
            base_retention.prune(conn, 1)
        assert second.path.is_dir()
    finally:
        stop_source(source)
        shutil.rmtree(folder, ignore_errors=True)


def test_keep_never_touches_another_clusters_backups_or_wal(source_cluster):
    conn = source_cluster.connect()
    conn.execute("CREATE TABLE lessons (id int PRIMARY KEY, title text)")
    other = make_source(source_cluster.folder.parent / "two")  # same WAL root and backups folder
    try:
        with other.connect() as theirs:
            theirs.execute("CREATE TABLE lessons (id int PRIMARY KEY, title text)")
            for first in (1, 501, 1001):  # their backups are OLDER than ours and more than --keep
                backup_after_work(theirs, other, first)
        theirs_before = snapshot(other.archive, base_backup.root() / other.system_identifier)
        assert len(segments(other.archive)) >= 3
        ours = [backup_after_work(conn, source_cluster, first) for first in (1, 501)]
        # one of theirs copied into our folder is not ours: never listed, so never kept or removed for us
        copied = base_backup.root() / source_cluster.system_identifier / "20000101T000000Z-abcdef"
        subprocess.run(["cp", "-a", str(base_backup.listing(other.system_identifier)[-1].path), str(copied)], check=True)

        done = base_retention.prune(conn, 1)

        assert done.removed == [ours[0].name] and done.kept == [ours[1].name]
        assert segments(source_cluster.archive)[0] == start_wal(ours[1])
        assert snapshot(other.archive, base_backup.root() / other.system_identifier) == theirs_before
        assert json.loads((copied / base_backup.MANIFEST).read_text())["system_identifier"] == other.system_identifier
    finally:
        stop_source(other)


def test_cli_backup_base_keep_prunes_after_the_backup(source_cluster):
    conn = source_cluster.connect()
    conn.execute("CREATE TABLE lessons (id int PRIMARY KEY, title text)")
    old = backup_after_work(conn, source_cluster, 1)
    env = {**os.environ, "DATABASE_URL": source_cluster.url()}
    done = subprocess.run([sys.executable, "-m", "prep_ops", "backup", "--kind", "base", "--keep", "1"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    newest = base_backup.listing(source_cluster.system_identifier)
    assert [b.path for b in newest] == [Path(lines[-1])]
    assert lines[-2].startswith(f"kept 1 base backup(s), removed 1 ({old.name}) and ")
    assert lines[-2].endswith(f"archived WAL file(s) before {start_wal(newest[0])}")
    assert not old.path.exists()
    refused = subprocess.run([sys.executable, "-m", "prep_ops", "backup", "--kind", "base", "--keep", "0"], env=env,
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "--keep" in refused.stderr
    assert len(base_backup.listing(source_cluster.system_identifier)) == 1  # refused before any backup


def test_cli_keep_that_cannot_prune_names_the_backup_it_made_and_removes_nothing(source_cluster):
    conn = source_cluster.connect()
    conn.execute("CREATE TABLE lessons (id int PRIMARY KEY, title text)")
    old = backup_after_work(conn, source_cluster, 1)
    # a backup listed as the newest, incremental to one that is gone: its chain cannot be kept whole
    broken = old.path.parent / "20990101T000000Z-abcdef"
    shutil.copytree(old.path, broken)
    manifest = json.loads((broken / base_backup.MANIFEST).read_text())
    manifest.update(finished="2099-01-01T00:00:00+00:00", incremental_of="20000101T000000Z-000000")
    (broken / base_backup.MANIFEST).write_text(json.dumps(manifest))
    archived = segments(source_cluster.archive)
    env = {**os.environ, "DATABASE_URL": source_cluster.url()}
    done = subprocess.run([sys.executable, "-m", "prep_ops", "backup", "--kind", "base", "--keep", "1"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    made = [b for b in base_backup.listing(source_cluster.system_identifier) if b.path not in (old.path, broken)]
    assert len(made) == 1 and old.path.is_dir() and broken.is_dir()
    assert done.stderr.strip() == (f"error: base backup {made[0].path} was made, but --keep failed: nothing removed: "
                                   f"{broken.name} is incremental to 20000101T000000Z-000000, which is missing")
    assert set(archived) <= set(segments(source_cluster.archive))


@pytest.mark.server_independent
def test_wal_cleanup_removes_older_streamed_partials_and_keeps_newer_ones(tmp_path):
    """pg_archivecleanup (of the embedded major and of 15, where the machine has it) treats a streamed
    `<segment>.partial` (wal_stream) as its segment: one before the oldest kept segment goes, a newer one stays."""
    majors = [embedded.VERSION] + ([15] if Path("/usr/lib/postgresql/15/bin/pg_archivecleanup").exists() else [])
    for major in majors:
        archive = tmp_path / str(major)
        archive.mkdir()
        names = ["000000010000000000000002", "000000010000000000000002.partial", "000000010000000000000003",
                 "000000010000000000000004.partial"]
        for name in names:
            (archive / name).write_bytes(b"x")
        removed = base_retention._archive_cleanup(archive, "000000010000000000000003", major)
        assert removed == ["000000010000000000000002", "000000010000000000000002.partial"]
        assert sorted(p.name for p in archive.iterdir()) == names[2:]
