"""The private verification cluster (verify_cluster) and the compression backups use: verifications
restore into a cluster without durability, kept warm, made again after a crash, stopped with the
embedded server; a kept copy and --same-server restore elsewhere."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from prep_ops import backup, db, embedded, scratch, verify, verify_cluster
from prep_ops.errors import TargetError

from conftest import cli_env


def _restores_into(monkeypatch) -> list[str]:
    """The socket folder or host of every database verify restores into, from here on (the real
    restore still runs)."""
    seen = []
    real = verify.restore_into

    def spy(path, target, *args, **kwargs):
        seen.append(conninfo_to_dict(target.url).get("host"))
        return real(path, target, *args, **kwargs)

    monkeypatch.setattr(verify, "restore_into", spy)
    return seen


def _setting(target: db.Target, name: str) -> str:
    with db.connect(target) as conn:
        return conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0]


def test_verify_restores_into_the_private_cluster_without_durability(seeded, tmp_path, monkeypatch):
    seen = _restores_into(monkeypatch)
    made = backup.backup(seeded, "full", "custom", directory=tmp_path)
    result = verify.verify(made.path)
    assert result.ok, result.failures.to_string()
    assert seen == [str(verify_cluster.status().socket_dir)]
    assert verify_cluster.status().data_dir != embedded.data_dir()
    assert verify_cluster.status().running  # kept warm for the next verification
    server = verify.verify_server()
    for name, value in verify_cluster.SETTINGS.items():
        assert _setting(server, name) == value, name
    assert _setting(server, "data_checksums") == "off"
    assert scratch.existing(server, verify.PREFIX) == []  # the copy went with the verification


@pytest.mark.server_independent
def test_the_durability_settings_cannot_be_turned_back_on_with_alter_system(private_server):
    server = verify.verify_server()
    with db.connect(server, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET fsync = on")
    verify_cluster.stop()
    assert _setting(verify.verify_server(), "fsync") == "off"  # the command line wins


def test_same_server_and_kept_copies_restore_elsewhere(seeded, server, tmp_path, monkeypatch):
    """--same-server restores on the source's server; a copy kept for inspection on the embedded
    server itself (durable, where `prep-ops db url` points), never on the verification cluster."""
    seen = _restores_into(monkeypatch)
    made = backup.backup(seeded, "full", "custom", directory=tmp_path)
    assert verify.verify(made.path, server=server).ok
    kept = verify.verify(made.path, keep_scratch=True)
    try:
        assert kept.ok, kept.failures.to_string()
        assert seen[0] == conninfo_to_dict(server.url).get("host")
        assert seen[1] == str(embedded.status().socket_dir) != str(verify_cluster.status().socket_dir)
        assert kept.scratch_database in scratch.existing(verify.scratch_server(), verify.KEPT)
    finally:
        verify.drop_copy(verify.scratch_server().with_database(kept.scratch_database))


def test_a_crashed_verification_cluster_is_made_again(private_server, migrated, tmp_path):
    """fsync=off: a cluster that did not shut down cleanly may be corrupt; it holds only copies, so it
    is removed and made again, and the next verification passes on the new one."""
    with db.connect(verify.verify_server(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE prep_ops_crash_witness")
    os.kill(verify_cluster.status().pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while verify_cluster.status().running and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not verify_cluster.status().running
    assert verify_cluster._cluster_state(verify_cluster.data_dir()) != "shut down"

    assert verify_cluster.start().running
    assert scratch.existing(verify.verify_server(), "prep_ops_crash_witness") == []  # a new cluster
    made = backup.backup(migrated, "full", "custom", directory=tmp_path)
    result = verify.verify(made.path)
    assert result.ok, result.failures.to_string()


@pytest.mark.server_independent
def test_a_verification_cluster_that_will_not_start_is_made_again(private_server):
    verify_cluster.start()
    verify_cluster.stop()
    with (verify_cluster.data_dir() / "postgresql.conf").open("a") as conf:
        conf.write("this is not a setting\n")
    assert verify_cluster.start().running
    assert "this is not a setting" not in (verify_cluster.data_dir() / "postgresql.conf").read_text()


@pytest.mark.server_independent
def test_a_directory_prep_ops_did_not_make_is_never_removed(private_server):
    mine = verify_cluster.data_dir()
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("someone's own file")
    with pytest.raises(TargetError) as err:
        verify_cluster.start()
    assert "is not a verification cluster prep-ops made: move it aside" in str(err.value)
    assert (mine / "notes.txt").read_text() == "someone's own file"


@pytest.mark.server_independent
def test_db_stop_stops_the_verification_cluster_too(private_server):
    embedded.start()
    verify_cluster.start()
    env = cli_env(PREP_OPS_DATA_DIR=str(private_server))
    env.pop("DATABASE_URL", None)
    done = subprocess.run([sys.executable, "-m", "prep_ops", "db", "stop"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not embedded.status().running and not verify_cluster.status().running
    assert verify_cluster._cluster_state(verify_cluster.data_dir()) == "shut down"  # cleanly: reused next time


@pytest.mark.server_independent
def test_killed_verification_cluster_start_leaves_no_unmarked_directory(private_server):
    """A cluster is made under another name and renamed once marked: a half-made one (a killed initdb)
    is swept by the next start, and the cluster's folder always carries the marker."""
    half = verify_cluster.data_dir().with_name(verify_cluster.data_dir().name + ".new-abc123")
    half.mkdir(parents=True)
    (half / "PG_VERSION").write_text("18\n")
    assert verify_cluster.start().running
    assert not half.exists() and (verify_cluster.data_dir() / verify_cluster.MARKER).is_file()


# --- compression -----------------------------------------------------------------------------------
def _default_dump_size(target: db.Target, tmp_path: Path) -> int:
    with db.connect(target) as conn:
        pg_dump = db.client_program("pg_dump", target, db.server_version(conn))
    url, env = backup.libpq_env(target)
    out = tmp_path / "default.dump"
    subprocess.run([str(pg_dump), "--format", "c", "--file", str(out), "--dbname", url], env=env, check=True)
    return out.stat().st_size


def test_archives_are_compressed_at_gzip_level_1_where_zstd_and_lz4_are_missing(seeded, tmp_path):
    """The embedded build has neither zstd nor lz4: gzip at level 1 (faster than pg_dump's default
    level, a larger file), recorded in the manifest; plain dumps stay text."""
    if backup._supports(embedded.bin_dir() / "pg_dump", "zstd:1") or backup._supports(embedded.bin_dir() / "pg_dump", "lz4"):
        pytest.skip("this embedded build reads zstd or lz4: see test_zstd_or_lz4_only_when_the_embedded_build_reads_them")
    custom = backup.backup(seeded, "full", "custom", directory=tmp_path)
    directory = backup.backup(seeded, "full", "directory", directory=tmp_path)
    plain = backup.backup(seeded, "full", "plain", directory=tmp_path)
    assert custom.manifest["compression"] == directory.manifest["compression"] == "gzip:1"
    assert plain.manifest["compression"] == "none" and "COPY public.students" in plain.path.read_text()
    assert custom.manifest["bytes"] > _default_dump_size(seeded, tmp_path)  # level 1 packs less than the default 6
    listed = subprocess.run([str(embedded.bin_dir() / "pg_restore"), "--list", str(custom.path)],
                            capture_output=True, text=True, check=True).stdout
    assert "Compression: gzip" in listed


@pytest.mark.server_independent
def test_zstd_or_lz4_only_when_the_embedded_build_reads_them(tmp_path):
    """A pg_dump that takes every --compress value (a stand-in for one built with zstd and lz4) still
    gets gzip:1 while the embedded build, whose pg_restore restores every verification, lacks them."""
    anything = tmp_path / "pg_dump"
    anything.write_text("#!/bin/sh\necho 'pg_dump: error: connection to server failed' >&2\nexit 1\n")
    anything.chmod(0o755)
    embedded_has = [name for name, option in backup.COMPRESSIONS
                    if backup._supports(embedded.bin_dir() / "pg_dump", option)]
    assert backup.compression(anything)[0] == embedded_has[0]
    assert backup.compression(embedded.bin_dir() / "pg_dump")[0] == embedded_has[0]
    if "zstd:1" not in embedded_has and "lz4" not in embedded_has:
        assert embedded_has[0] == "gzip:1"


@pytest.mark.server_independent
def test_pg15_pg_dump_takes_a_gzip_level_only(tmp_path):
    pg_dump = Path("/usr/lib/postgresql/15/bin/pg_dump")
    if not pg_dump.exists():
        pytest.skip("no PostgreSQL 15 client programs on this machine")
    assert backup._supports(pg_dump, "1")
    assert not backup._supports(pg_dump, "lz4") and not backup._supports(pg_dump, "zstd:1")


def test_a_verification_cluster_of_the_older_layout_is_made_again_with_its_superuser_not_named_postgres(
        private_server, migrated, tmp_path):
    """The verification cluster's superuser was `postgres`, the role that owns the objects of most dumps:
    the restore's own role (not a superuser, see restore_role) could not give them to it. A running
    cluster made before (its marker without LAYOUT) is stopped and made again on first use."""
    with db.connect(verify.verify_server(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE prep_ops_layout_witness")
        assert conn.execute("SELECT current_user").fetchone()[0] == verify_cluster.ADMIN
    marker = verify_cluster.data_dir() / verify_cluster.MARKER
    marker.write_text(marker.read_text().replace(verify_cluster.LAYOUT, ""))  # as an older prep-ops made it
    assert verify_cluster.status().running
    server = verify.verify_server()
    assert scratch.existing(server, "prep_ops_layout_witness") == []  # a new cluster
    with db.connect(server, autocommit=True) as conn:
        users = {r[0]: r[1] for r in conn.execute("SELECT rolname, rolsuper FROM pg_roles WHERE rolname !~ '^pg_'")}
    assert users == {verify_cluster.ADMIN: True}
    made = backup.backup(migrated, "full", "plain", directory=tmp_path)
    result = verify.verify(made.path)
    assert result.ok, result.failures.to_string()


def test_an_untrusted_extension_in_a_schema_of_the_dumps_own_fails_the_verification_with_the_servers_reason(
        scratch, tmp_path):
    """Only a superuser may create pgstattuple; the restore's role is not one. Where the dump creates it in
    `public` it is made first for that role; in a schema the dump itself makes, it cannot be, and the
    verification fails naming the server's reason rather than restoring it as a superuser."""
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA tools; CREATE EXTENSION pgstattuple SCHEMA tools; CREATE TABLE kept (id int)")
    made = backup.backup(scratch, "full", "plain", directory=tmp_path)
    result = verify.verify(made.path)
    assert not result.ok
    failed = result.failures.set_index("check").loc["restore", "actual"]
    assert 'permission denied to create extension "pgstattuple"' in failed, failed
