"""backup --kind base and verify BASE, on a private archiving cluster of the embedded binaries
(pitr_fixtures): never the suite's shared server."""

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import psutil
import psycopg
import pytest

import pitr_fixtures
from prep_ops import base_backup, base_verify, pg_binaries, pitr, recovery_cluster
from prep_ops.errors import BackupError, ParameterError
from prep_ops.manifest import sha256_of

pytestmark = pytest.mark.server_independent
source_cluster = pitr_fixtures.source_cluster  # the fixture, used by name


def _filled(source):
    conn = source.connect()
    conn.execute("CREATE TABLE lessons (id int PRIMARY KEY, title text)")
    conn.execute("INSERT INTO lessons SELECT g, 'lesson ' || g FROM generate_series(1, 2000) g")
    conn.execute("CREATE INDEX ON lessons (title)")
    return conn


def test_base_backup_manifest_carries_identity_lsns_and_hashes(source_cluster):
    conn = _filled(source_cluster)
    made = base_backup.take(conn, source_cluster.target)
    m = made.manifest
    assert made.path.parent == base_backup.root() / source_cluster.system_identifier
    assert sorted(os.listdir(made.path)) == sorted([*base_backup.TARS, "backup_manifest", base_backup.MANIFEST])
    assert m["system_identifier"] == source_cluster.system_identifier and m["timeline"] == 1
    assert base_backup.lsn_value(m["start_lsn"]) <= base_backup.lsn_value(m["end_lsn"])
    assert m["started"] <= m["finished"] and m["server_major"] == 18 and m["incremental_of"] is None
    assert m["files"]["base.tar.gz"]["sha256"] == sha256_of(made.path / "base.tar.gz")
    with gzip.open(made.path / "base.tar.gz") as tar:
        assert tar.read(2)  # gzip, as recorded
    assert base_backup.read(made.path) == m
    assert [b.path for b in base_backup.listing(source_cluster.system_identifier)] == [made.path]


def test_killed_base_backup_is_never_listed_and_removed_by_the_next(source_cluster):
    conn = _filled(source_cluster)
    folder = base_backup.root() / source_cluster.system_identifier
    folder.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    partial = folder / f".20260101T000000Z-abcdef.partial-{dead.pid}"
    partial.mkdir()
    (partial / "base.tar.gz").write_bytes(b"half")
    assert base_backup.listing(source_cluster.system_identifier) == []
    base_backup.take(conn, source_cluster.target)
    assert not partial.exists()
    assert len(base_backup.listing(source_cluster.system_identifier)) == 1


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(files={**m["files"], "../../etc/passwd": {"bytes": 1, "sha256": "x"}}), "lists"),
    (lambda m: m.update(system_identifier="../1"), "not digits"),
    (lambda m: m.update(timeline="1"), "'timeline' is a string"),
    (lambda m: m.update(end_lsn="0/1; rm -rf /"), "not an LSN"),
    (lambda m: m.update(incremental_of="../other"), "incremental_of"),
    (lambda m: m.update(kind="full"), "not 'base'"),
])
def test_base_manifest_is_data_validated_never_followed(source_cluster, change, message):
    made = base_backup.take(_filled(source_cluster), source_cluster.target)
    manifest = json.loads((made.path / base_backup.MANIFEST).read_text())
    change(manifest)
    (made.path / base_backup.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BackupError, match=message):
        base_backup.read(made.path)
    assert base_backup.listing(source_cluster.system_identifier) == []
    result = base_verify.verify_base(made.path)
    assert not result.ok


@pytest.mark.parametrize("how", ["link out of the folder", "huge file"])
def test_a_base_backup_manifest_linked_out_of_its_folder_or_huge_is_refused_without_being_read_whole(tmp_path, how):
    """A base backup's prep-ops-base.json was read whole (read_text): a link named so to a disk image or a
    log took all of it. It is read as a logical backup's manifest is: only inside its folder, at most the
    cap and one byte."""
    import tracemalloc

    from prep_ops import manifest

    folder = tmp_path / "base" / "20261201T000000Z-abcdef"
    folder.mkdir(parents=True)
    huge = (tmp_path / "elsewhere.json") if how == "link out of the folder" else folder / base_backup.MANIFEST
    with open(huge, "wb") as out:
        out.truncate(2 * manifest.MANIFEST_MAX_BYTES)  # sparse: costs no disk
    if how == "link out of the folder":
        (folder / base_backup.MANIFEST).symlink_to(huge)
    said = "is a link leading out of its backup's folder" if how == "link out of the folder" else "is larger than 64 MiB"
    tracemalloc.start()
    try:
        with pytest.raises(BackupError, match=f"^the manifest {folder / base_backup.MANIFEST} {said}"):
            base_backup.read(folder)
        assert tracemalloc.get_traced_memory()[1] < 8 << 20
    finally:
        tracemalloc.stop()


def test_verify_base_passes_a_sound_backup(source_cluster):
    made = base_backup.take(_filled(source_cluster), source_cluster.target)
    result = base_verify.verify_base(made.path)
    checks = dict(zip(result.report["check"], result.report["passed"]))
    assert result.ok, result.report.to_string()
    assert checks["pg_verifybackup"] and checks["restore until consistent"]
    assert checks["amcheck --heapallindexed, every database"]
    assert len(result.skipped) == 0
    assert not recovery_cluster.home().exists() or not list(recovery_cluster.home().iterdir())


def test_verify_base_fails_a_tampered_tar(source_cluster):
    made = base_backup.take(_filled(source_cluster), source_cluster.target)
    with (made.path / "base.tar.gz").open("r+b") as tar:
        tar.seek(1000)
        tar.write(b"tampered")
    result = base_verify.verify_base(made.path)
    assert not result.ok
    assert "sha256" in set(result.failures["check"])
    assert {"pg_verifybackup", "amcheck"} & set(result.skipped["check"])


def test_verify_base_fails_when_pg_verifybackup_finds_a_changed_file(source_cluster):
    """The prep-ops hashes are rewritten to match: only PostgreSQL's backup_manifest can catch it."""
    made = base_backup.take(_filled(source_cluster), source_cluster.target)
    work = made.path.parent / "x"
    work.mkdir()
    subprocess.run(["tar", "-xzf", made.path / "base.tar.gz", "-C", work], check=True)
    (work / "PG_VERSION").write_text("18\n\n")
    subprocess.run(["tar", "-czf", made.path / "base.tar.gz", "-C", work, "."], check=True)
    shutil.rmtree(work)
    _rehash(made, "base.tar.gz")
    result = base_verify.verify_base(made.path)
    assert not result.ok
    assert list(result.failures["check"]) == ["pg_verifybackup"]


def test_incremental_base_backup_recovers_through_pg_combinebackup(source_cluster):
    conn = _filled(source_cluster)
    conn.execute("ALTER SYSTEM SET summarize_wal = on")
    conn.execute("SELECT pg_reload_conf()")
    base_backup.take(conn, source_cluster.target)
    conn.execute("INSERT INTO lessons SELECT g, 'later ' || g FROM generate_series(2001, 3000) g")
    made = base_backup.take(conn, source_cluster.target, incremental=True)
    assert made.manifest["incremental_of"] == base_backup.listing(source_cluster.system_identifier)[1].name
    assert [b.name for b in base_backup.chain(made)][-1] == made.name and len(base_backup.chain(made)) == 2
    checked = base_verify.verify_base(made.path)
    assert checked.ok, checked.report[["check", "actual"]].to_string()
    conn.execute("INSERT INTO lessons VALUES (5000, 'after incremental')")
    expected = conn.execute("SELECT count(*), md5(string_agg(title, ',' ORDER BY id)) FROM lessons").fetchone()
    at = conn.execute("SELECT clock_timestamp()").fetchone()[0]
    conn.execute("DELETE FROM lessons")
    done = pitr.recover(conn, source_cluster.target, to_time=at, as_name="app_incremental", controlled=True)
    assert done["base_backup"] == str(made.path)
    with source_cluster.connect("app_incremental") as copy:
        assert copy.execute("SELECT count(*), md5(string_agg(title, ',' ORDER BY id)) FROM lessons").fetchone() == expected


def test_incremental_refused_without_summarize_wal(source_cluster):
    conn = _filled(source_cluster)
    with pytest.raises(ParameterError, match="summarize_wal"):
        base_backup.take(conn, source_cluster.target, incremental=True)


def test_cli_backup_base_then_verify(source_cluster):
    _filled(source_cluster).close()
    env = {**os.environ, "DATABASE_URL": source_cluster.url()}
    made = subprocess.run([sys.executable, "-m", "prep_ops", "backup", "--kind", "base"], env=env, capture_output=True,
                          text=True, timeout=300)
    path = made.stdout.strip().splitlines()[-1]
    assert made.returncode == 0 and base_backup.is_base_backup(path), made.stderr
    checked = subprocess.run([sys.executable, "-m", "prep_ops", "verify", path], env=env, capture_output=True,
                             text=True, timeout=300)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith("PASS ")
    with psycopg.connect(source_cluster.url()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_verify_base_never_extracts_outside_its_folder(source_cluster, tmp_path):
    """A tar member leading out (hashes rewritten to match, as an attacker would) is refused, not written."""
    import io
    import tarfile

    made = base_backup.take(_filled(source_cluster), source_cluster.target)
    escaped = recovery_cluster.home().parent / "escaped-by-tar"
    with tarfile.open(made.path / "base.tar.gz", "w:gz") as tar:
        member = tarfile.TarInfo(f"../../{escaped.name}")
        member.size = 4
        tar.addfile(member, io.BytesIO(b"evil"))
    _rehash(made, "base.tar.gz")
    result = base_verify.verify_base(made.path)
    assert not result.ok
    assert "restore until consistent" in set(result.failures["check"])
    assert not escaped.exists() and not (recovery_cluster.home() / escaped.name).exists()
    assert not list(recovery_cluster.home().iterdir())


def _rehash(made, name: str) -> None:
    """The manifest's size and SHA-256 of file `name` made to match its tampered content (an attacker would)."""
    manifest = base_backup.read(made.path)
    manifest["files"][name] = {"bytes": (made.path / name).stat().st_size, "sha256": sha256_of(made.path / name)}
    (made.path / base_backup.MANIFEST).write_text(json.dumps(manifest))


def _streamers(folder) -> list:
    return [p for p in psutil.process_iter(["name", "cmdline", "status"]) if p.info["name"] == "pg_basebackup"
            and str(folder) in (p.info["cmdline"] or []) and p.info["status"] != psutil.STATUS_ZOMBIE]


def test_a_killed_base_backup_leaves_no_wal_streamer(source_cluster):
    conn = _filled(source_cluster)
    conn.execute("CREATE TABLE bulk AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS pad "
                 "FROM generate_series(1, 2500000) g")
    folder = base_backup.root() / source_cluster.system_identifier
    env = {**os.environ, "DATABASE_URL": source_cluster.url()}
    run = subprocess.Popen([sys.executable, "-m", "prep_ops", "backup", "--kind", "base"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline, partial = time.monotonic() + 60, None
    while time.monotonic() < deadline and partial is None and run.poll() is None:
        partial = next(iter(folder.glob(f".*.partial-{run.pid}")), None) if folder.is_dir() else None
        time.sleep(0.01)
    assert partial is not None, run.communicate()
    deadline = time.monotonic() + 10
    while not _streamers(partial) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _streamers(partial), "pg_basebackup ended before the kill: nothing to prove"
    os.kill(run.pid, signal.SIGKILL)  # python only: pg_basebackup must not outlive it
    run.wait()
    deadline = time.monotonic() + 1.5  # SIGTERM at once: far less than the rest of the backup takes
    while _streamers(partial) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _streamers(partial)
    deadline = time.monotonic() + 10
    while conn.execute("SELECT count(*) FROM pg_stat_replication").fetchone()[0] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert conn.execute("SELECT count(*) FROM pg_replication_slots").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM pg_stat_replication").fetchone()[0] == 0


def test_remove_partial_ends_a_pg_basebackup_still_writing_a_dead_runs_folder(source_cluster):
    conn = _filled(source_cluster)
    conn.execute("CREATE TABLE bulk AS SELECT g AS id, md5(g::text) AS pad FROM generate_series(1, 300000) g")
    folder = base_backup.root() / source_cluster.system_identifier
    folder.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = folder / f".20260101T000000Z-abcdef.partial-{dead.pid}"
    orphan = subprocess.Popen([str(pg_binaries.program("pg_basebackup", 18)), "-D", str(stale), "-Ft", "-X", "stream",
                               "--max-rate=32", "-d", source_cluster.url()], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # another system's, slow: no parent-death signal
    deadline = time.monotonic() + 20
    while not stale.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert orphan.poll() is None and stale.exists()
    assert base_backup.remove_partial(folder) == [stale]
    assert orphan.wait(15) is not None and not stale.exists() and not _streamers(stale)


def test_cli_verify_of_a_base_backup_needs_no_server(source_cluster):
    made = base_backup.take(_filled(source_cluster), source_cluster.target)
    env = {**os.environ, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nowhere", "PREP_OPS_SCRATCH": "0"}
    checked = subprocess.run([sys.executable, "-m", "prep_ops", "verify", str(made.path)], env=env,
                             capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith("PASS ") and "cluster identity" not in checked.stdout
