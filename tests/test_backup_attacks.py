"""Hostile backup files and URLs: a backup is data, never code, and never a path out of its folder.
Faults of restores and verifications: a truncated, wrong or killed restore leaves the target as it was;
a killed verification's leftovers go with the next; two verifications never share a role."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from prep_ops import backup, db, migrate, plain_dump, restore, scratch, seed, verify
from prep_ops.errors import BackupError, ConfirmationRequired

from conftest import _create, _drop, cli_env, rehash, table_checksum


def _crafted(seeded, tmp_path, inject) -> tuple[backup.Backup, int]:
    """A real plain dump of `seeded` with `inject(lines, key)` applied and its hash remade (the attacker
    controls the manifest too); returns it and the number of the first injected line."""
    made = backup.backup(seeded, "full", "plain", directory=tmp_path)
    lines = made.path.read_text().splitlines(keepends=True)
    key = next(re.match(r"\\restrict (\w+)", line).group(1) for line in lines if line.startswith("\\restrict "))
    at = next(i for i, line in enumerate(lines) if line.startswith("CREATE TABLE"))
    lines[at:at] = inject(key)
    made.path.write_text("".join(lines))
    rehash(made.path)
    return made, at + 1


def _refused_with_nothing_run(result, expected: str, marker):
    assert not result.ok and result.scratch_database is None
    refused = result.failures.set_index("check").loc["readable as a dump", "actual"]
    assert expected in refused
    assert not marker.exists()


def test_verify_refuses_a_plain_dump_running_a_shell_command(seeded, tmp_path):
    marker = tmp_path / "pwned"
    made, line = _crafted(seeded, tmp_path, lambda key: [f"\\! id > {marker}\n"])
    _refused_with_nothing_run(verify.verify(made.path), f"line {line}: a psql command is not data", marker)


def test_verify_refuses_a_plain_dump_that_connects_to_the_real_database(seeded, tmp_path):
    before = table_checksum(seeded, "enrollments")
    made, line = _crafted(seeded, tmp_path, lambda key: [f"\\connect {seeded.database}\n", "DROP TABLE enrollments;\n"])
    _refused_with_nothing_run(verify.verify(made.path), f"line {line}: a psql command is not data", tmp_path / "x")
    assert table_checksum(seeded, "enrollments") == before


def test_verify_refuses_an_unrestrict_in_the_middle_of_a_plain_dump(seeded, tmp_path):
    marker = tmp_path / "pwned"
    made, line = _crafted(seeded, tmp_path, lambda key: [f"\\unrestrict {key}\n", f"\\! touch {marker}\n"])
    _refused_with_nothing_run(verify.verify(made.path),
                              f"line {line + 1}: text after pg_dump's closing \\unrestrict (line {line})", marker)


def test_a_psql_command_in_the_middle_of_a_line_is_refused_by_psql_itself(seeded, tmp_path):
    """The line check sees only commands that start a line; psql under prep-ops' own \\restrict refuses the rest."""
    marker = tmp_path / "pwned"
    made, _ = _crafted(seeded, tmp_path, lambda key: [f"SELECT 1; \\! touch {marker}\n"])
    plain_dump.check(made.path)  # not seen by the line check
    result = verify.verify(made.path)
    assert not result.ok and "backslash commands are restricted" in result.failures.set_index("check").loc["restore", "actual"]
    assert not marker.exists()


def test_a_copy_from_program_in_a_plain_dump_is_refused(seeded, tmp_path):
    made, line = _crafted(seeded, tmp_path, lambda key: ["CREATE TABLE x (a text);\n", "COPY x FROM PROGRAM 'id';\n"])
    with pytest.raises(BackupError, match=f"line {line + 1}: COPY … PROGRAM would run a program"):
        plain_dump.check(made.path)


def _server_writable_folder():
    """A folder the restore server's own system user may write in (not under pytest's private ones)."""
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp(prefix="prep-ops-marks-"))
    os.chmod(folder, 0o777)
    return folder


@pytest.mark.parametrize("how", ["copy over two lines", "do block", "check constraint"])
def test_a_plain_dump_whose_own_sql_runs_a_program_runs_nothing_on_the_verification_cluster(seeded, tmp_path, how):
    """A backup's SQL is run by the restore, and SQL can run programs too: `COPY … TO PROGRAM`, which the
    line check sees only on one line, and any function the dump creates and has run (a DO block, a CHECK
    constraint met by its own COPY data). Restored as a superuser of the verification cluster, all three
    ran a shell command as its system user, and verify said OK. The restore there now logs in as a role of
    its own that is not a superuser, so the server refuses the program, and verify fails."""
    import shutil

    folder = _server_writable_folder()
    marker = folder / "pwned"
    run = f"EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch {marker}'''"
    injected = {
        "copy over two lines": ["COPY (SELECT 1)\n", f"TO PROGRAM 'touch {marker}';\n"],
        "do block": [f"DO $$ BEGIN {run}; END $$;\n"],
        "check constraint": [
            "CREATE FUNCTION public.ran(integer) RETURNS boolean LANGUAGE plpgsql AS $$\n",
            f"BEGIN {run}; RETURN true; END $$;\n",
            "CREATE TABLE public.checked (a integer CHECK (public.ran(a)));\n",
            "COPY public.checked (a) FROM stdin;\n", "1\n", "\\.\n"],
    }[how]
    try:
        made, _ = _crafted(seeded, tmp_path, lambda key: injected)
        result = verify.verify(made.path)
        assert not marker.exists()
        assert not result.ok
        failed = result.failures.set_index("check").loc["restore", "actual"]
        assert "pg_execute_server_program" in failed or "permission denied" in failed, failed
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _runs_a_program_as_its_caller(marker) -> list[str]:
    """Plain dump lines: public.as_caller(), a function that takes back the session user's rights where it
    can (RESET ROLE, as a query) and runs `touch marker` on the server; a failure is only a notice."""
    return ["CREATE FUNCTION public.as_caller() RETURNS boolean LANGUAGE plpgsql AS $$\n",
            "BEGIN PERFORM pg_catalog.set_config('role', 'none', true);\n",
            f"EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch {marker}'''; RETURN true;\n",
            "EXCEPTION WHEN OTHERS THEN RAISE NOTICE '%', SQLERRM; RETURN true; END $$;\n"]


def test_a_dump_operator_named_as_a_built_in_never_runs_in_the_verifiers_comparison(seeded, tmp_path):
    """The comparison's catalog queries run as the verification cluster's superuser with public on their
    search_path, and `nspname NOT LIKE 'pg_toast%'` looks for an exact !~~ (name, name) first, which
    pg_catalog lacks: the dump's own, in public, ran as the superuser (a program on the server), and the
    verification went on. Such a function or operator now fails the verification before any comparison."""
    import shutil

    folder = _server_writable_folder()
    marker = folder / "pwned"
    try:
        made, _ = _crafted(seeded, tmp_path, lambda key: [
            *_runs_a_program_as_its_caller(marker),
            "CREATE FUNCTION public.not_like(name, name) RETURNS boolean LANGUAGE plpgsql AS $$\n",
            "BEGIN PERFORM public.as_caller(); RETURN pg_catalog.textnlike($1::text, $2::text); END $$;\n",
            "CREATE OPERATOR public.!~~ (LEFTARG = name, RIGHTARG = name, FUNCTION = public.not_like);\n"])
        result = verify.verify(made.path)
        assert not marker.exists()
        assert not result.ok
        failed = result.failures.set_index("object")
        assert list(failed.index) == ["operator public.!~~(name,name)"], failed.to_string()
        assert failed.loc["operator public.!~~(name,name)", "check"] == "named as a built-in"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_check_definition_whose_function_resets_the_role_never_gets_the_verifiers_rights(seeded, tmp_path):
    """A CHECK definition of the manifest's is put on a probe table as the table's owner (SET ROLE), and
    planning it runs an IMMUTABLE function it names; in the verifier's session (a superuser's) that
    function's RESET ROLE gave back the superuser's rights and ran a program on the server. The probe now
    runs in a session of the restore's own role, where RESET ROLE gives back that role only."""
    import json
    import shutil

    folder = _server_writable_folder()
    marker = folder / "pwned"
    try:
        made, _ = _crafted(seeded, tmp_path, lambda key: [
            *_runs_a_program_as_its_caller(marker),
            "CREATE FUNCTION public.folded(integer) RETURNS integer LANGUAGE plpgsql IMMUTABLE AS $$\n",
            "BEGIN PERFORM public.as_caller(); RETURN $1; END $$;\n"])
        manifest_file = backup.manifest_path(made.path)
        manifest = json.loads(manifest_file.read_text())
        checks = manifest["schema"]["public.users"]["constraint"]
        checks["users_email_format_check"] = checks["users_email_format_check"][:-1] + " AND (public.folded(1) = 1))"
        manifest_file.write_text(json.dumps(manifest))
        result = verify.verify(made.path)
        assert not marker.exists()
        assert not result.ok
        decided = result.failures.set_index("object").loc["public.users constraint users_email_format_check", "actual"]
        assert "folded(1) = 1" in decided and not result.skipped["check"].eq("constraint").any()  # decided: differs
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_restore_refuses_a_crafted_dump_before_touching_the_target(seeded, scratch, tmp_path):
    good = backup.backup(seeded, "full", "custom", directory=tmp_path / "good")
    restore.restore_into(good.path, scratch, good.manifest)
    before = {t: table_checksum(scratch, t) for t in ("students", "enrollments", "schema_version")}
    marker = tmp_path / "pwned"
    made, line = _crafted(seeded, tmp_path, lambda key: [f"\\! touch {marker}\n"])
    with pytest.raises(BackupError, match=f"line {line}: a psql command is not data"):
        restore.restore(made.path, scratch, confirm=True, safety_dir=tmp_path / "safety")
    assert {t: table_checksum(scratch, t) for t in before} == before and not marker.exists()
    assert not (tmp_path / "safety").exists()  # refused before even the safety backup


def test_a_manifest_pointing_outside_its_folder_is_never_read(seeded, tmp_path):
    made = backup.backup(seeded, "full", "directory", directory=tmp_path)
    mpath = backup.manifest_path(made.path)
    manifest = json.loads(mpath.read_text())
    (made.path / "link").symlink_to("/etc/hostname")
    manifest["files"]["link"] = {"bytes": 1, "sha256": "00"}
    mpath.write_text(json.dumps(manifest))
    rows = backup.check_files(made.path, backup.read_manifest(made.path))
    outside = [r for r in rows if r["object"] == "link"]
    assert outside == [{"object": "link", "check": "file inside the backup", "expected": "inside",
                        "actual": "leads out of the backup's folder: not read", "passed": False, "skipped": False,
                        "note": False}]
    (made.path / "loop").symlink_to("loop")  # round a loop of links: a row, no RuntimeError traceback
    looped = backup.check_files(made.path, {**manifest, "files": {"loop": {"bytes": 1, "sha256": "00"}}})
    assert [(r["check"], r["actual"]) for r in looped] == [("file inside the backup",
                                                            "leads out of the backup's folder: not read")]
    manifest["files"]["/etc/hostname"] = manifest["files"].pop("link")
    mpath.write_text(json.dumps(manifest))
    with pytest.raises(BackupError, match="file '/etc/hostname' is not a name inside the backup's folder"):
        verify.verify(made.path)


def test_a_huge_file_or_a_link_to_one_as_a_manifest_is_refused_without_being_read_whole(seeded, tmp_path):
    """A manifest was read whole into memory: a link named as a manifest to a disk image or a log (here a
    sparse file of twice the cap: 128 MiB, 256 MiB once decoded) took all of it. Now at most the cap and
    one byte are ever read, and a manifest that is a link out of its backup's folder is not read at all,
    as a backup's files are not (a loop of links is no traceback)."""
    import tracemalloc

    from prep_ops import manifest

    folder = tmp_path / "backups"
    made = backup.backup(seeded, "full", "custom", directory=folder)
    huge = folder / "huge.dump"
    huge.write_bytes(b"")
    with open(backup.manifest_path(huge), "wb") as out:
        out.truncate(2 * manifest.MANIFEST_MAX_BYTES)  # sparse: costs no disk
    outside = tmp_path / "elsewhere.manifest.json"
    outside.write_text(made.manifest_path.read_text())  # a valid manifest of the backup, out of its folder
    made.manifest_path.unlink()
    made.manifest_path.symlink_to(outside)
    looped = folder / "loop.dump"
    looped.write_bytes(b"")
    backup.manifest_path(looped).symlink_to(backup.manifest_path(looped))
    tracemalloc.start()
    try:
        with pytest.raises(BackupError, match=r"^the manifest .*huge\.dump\.manifest\.json is larger than 64 MiB, "
                                              r"the most a manifest may be: not read$"):
            backup.read_manifest(huge)
        with pytest.raises(BackupError, match=r"^the manifest .* is a link leading out of its backup's folder "
                                              r"\(or round a loop\): not read$"):
            backup.read_manifest(made.path)
        with pytest.raises(BackupError, match=r"^the manifest .*loop\.dump\.manifest\.json is a link leading out"):
            backup.read_manifest(looped)
        assert backup.listing(folder) == []
        assert tracemalloc.get_traced_memory()[1] < 8 << 20  # nothing near the file's size was held
    finally:
        tracemalloc.stop()
    with open(backup.manifest_path(huge), "r+b") as out:  # one byte over the cap is refused
        out.truncate(manifest.MANIFEST_MAX_BYTES)
        out.seek(manifest.MANIFEST_MAX_BYTES)
        out.write(b" ")
    with pytest.raises(BackupError, match="is larger than 64 MiB"):
        backup.read_manifest(huge)
    done = subprocess.run([sys.executable, "-m", "prep_ops", "verify", str(made.path)], env=cli_env(seeded),
                          capture_output=True, text=True)
    assert done.returncode == 1 and done.stdout == "" and done.stderr == (
        f"error: the manifest {made.manifest_path} is a link leading out of its backup's folder (or round a loop): "
        "not read\n")
    made.manifest_path.unlink()
    made.manifest_path.symlink_to("inside.json")  # a link that stays inside the folder is read as before
    os.rename(outside, folder / "inside.json")
    assert backup.read_manifest(made.path) == made.manifest


def test_a_manifest_too_large_to_be_read_back_is_never_written_and_its_backup_not_kept(seeded, tmp_path,
                                                                                          monkeypatch):
    """Reading is capped (MANIFEST_MAX_BYTES): a backup whose manifest would pass the cap would be one no
    verify or restore could read. It fails in one line and leaves nothing."""
    from prep_ops import manifest

    sizes = backup.backup(seeded, "full", "custom", directory=tmp_path / "sizes")
    monkeypatch.setattr(manifest, "MANIFEST_MAX_BYTES", sizes.manifest_path.stat().st_size - 1)
    folder = tmp_path / "backups"
    cap = manifest.MANIFEST_MAX_BYTES
    with pytest.raises(BackupError, match=rf"^the manifest of .*\.dump would be [\d,]+ bytes, more than the {cap:,} "
                                          r"prep-ops reads: the backup is not kept$"):
        backup.backup(seeded, "full", "custom", directory=folder)
    assert list(folder.iterdir()) == []


def test_dbname_in_the_query_string_cannot_redirect_the_scratch_restore(server):
    target = db.resolve_target(server.url + ("&" if "?" in server.url else "?") + "dbname=the_real_database")
    assert target.database == "the_real_database"
    scratch = target.with_database("prep_ops_verify_x")
    assert conninfo_to_dict(scratch.url)["dbname"] == "prep_ops_verify_x"


def test_two_clusters_with_a_same_named_database_never_use_each_others_backups(server, private_server, tmp_path):
    """A second embedded cluster (PREP_OPS_DATA_DIR) holds a database of the same name as one on the
    server under test: keep, verify --latest and the recovery runbook's choice each stay with their own."""
    from prep_ops.incident import recovery
    from prep_ops.scratch import drop as drop_scratch

    name = f"prep_ops_same_{uuid.uuid4().hex[:8]}"
    other_server = db.resolve_target()  # the private cluster (PREP_OPS_DATA_DIR set by the fixture)
    targets = []
    for where in (server, other_server):
        with db.connect(where, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        targets.append(where.with_database(name))
    ours, theirs = targets
    try:
        with db.connect(ours) as conn:
            conn.execute("CREATE TABLE marks (id int)")
            conn.commit()
        mine = backup.backup(ours, "full", "custom", directory=tmp_path)
        other = backup.backup(theirs, "full", "custom", directory=tmp_path)  # newer, same name
        assert mine.manifest["source"]["system_identifier"] != other.manifest["source"]["system_identifier"]
        with db.connect(ours, autocommit=True) as conn:
            identity = backup.identity(conn)
            assert recovery.latest_backup(conn, tmp_path).path == mine.path
        assert [b.path for b in backup.of_database(tmp_path, identity)] == [mine.path]
        assert verify.verify_latest(tmp_path, source=identity, server=server).backup == mine.path
        backup.backup(theirs, "full", "custom", directory=tmp_path, keep=1)  # prunes only the other cluster's
        assert mine.path.exists() and not other.path.exists()
    finally:
        drop_scratch(server, name)
        drop_scratch(other_server, name)


def test_backups_are_private_and_never_share_a_name(seeded, tmp_path):
    first = backup.backup(seeded, "full", "plain", directory=tmp_path / "new")
    second = backup.backup(seeded, "full", "plain", directory=tmp_path / "new")
    assert first.path != second.path and first.path.exists() and second.path.exists()
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o700
    for made in (first, second):
        assert made.path.stat().st_mode & 0o777 == 0o600
        assert backup.manifest_path(made.path).stat().st_mode & 0o777 == 0o600
    folder = backup.backup(seeded, "full", "directory", directory=tmp_path / "new")
    assert all((p.stat().st_mode & 0o777) == (0o700 if p.is_dir() else 0o600) for p in [folder.path, *folder.path.rglob("*")])


# --- restores never destroy first; nothing left behind -------------------------------------------
TABLES = ("students", "enrollments", "tuition_payments", "schema_version")


@pytest.fixture(scope="module")
def big(server, tmp_path_factory):
    """A database with 20,000 sample students and its full custom backup: a restore of it takes seconds."""
    target = _create(server)
    with db.connect(target, autocommit=True) as conn:
        migrate.apply(conn)
        seed.seed(conn, students=20000, seed=11)
    yield backup.backup(target, "full", "custom", directory=tmp_path_factory.mktemp("big"))
    _drop(server, target)


@pytest.fixture
def occupied(seeded, server, tmp_path):
    """A scratch database holding a restore of `seeded` (300 students); what restores replaced is dropped after."""
    target = _create(server)
    good = backup.backup(seeded, "full", "custom", directory=tmp_path / "good")
    restore.restore_into(good.path, target, good.manifest)
    yield target
    with db.connect(server, autocommit=True) as conn:
        for name, in conn.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s) "
                                  "OR starts_with(datname, 'prep_ops_restore_')", (target.database,)).fetchall():
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def _contents(target) -> dict:
    return {t: table_checksum(target, t) for t in TABLES}


def _databases(server, prefix: str) -> list[str]:
    return scratch.existing(server, prefix)


def _oid(server, name: str) -> int | None:
    with db.connect(server) as conn:
        found = conn.execute("SELECT oid FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return found and found[0]


def test_truncated_backup_leaves_target_unchanged(seeded, occupied, server, tmp_path):
    before = _contents(occupied)
    for fmt in ("custom", "plain"):
        made = backup.backup(seeded, "full", fmt, directory=tmp_path / fmt)
        made.path.write_bytes(made.path.read_bytes()[: made.path.stat().st_size // 2])
        with pytest.raises(BackupError, match="does not match its manifest: .* file size"):
            restore.restore(made.path, occupied, confirm=True, safety_dir=tmp_path / "safety")
        rehash(made.path)  # the attacker's (or a broken tool's) manifest agrees with the cut file
        cut = {"plain": "is never closed: the dump is cut short",  # refused before anything is made
               "custom": rf"{occupied.database} is unchanged \(safety backup: .*\.dump\)"}[fmt]
        with pytest.raises(BackupError, match=cut):
            restore.restore(made.path, occupied, confirm=True, safety_dir=tmp_path / "safety")
    assert _contents(occupied) == before
    assert _databases(server, "prep_ops_restore_") == []


def test_restore_swaps_only_after_a_complete_load(seeded, occupied, server, tmp_path):
    """A dump that loads but whose content is not what its manifest recorded never replaces the target;
    a good one does, and the replaced database is kept until the next restore."""
    made = backup.backup(seeded, "full", "plain", directory=tmp_path)
    good = made.path.read_text()
    start = good.index("\n", good.index("COPY public.tuition_payments")) + 1
    line = good[start:good.index("\n", start)]
    changed = re.sub(r"\t(\d+)\.(\d\d)\t", lambda m: f"\t{int(m[1]) + 1}.{m[2]}\t", line, count=1)
    assert changed != line
    made.path.write_text(good.replace(line, changed, 1))  # an amount changed: it loads
    rehash(made.path)
    before, oid = _contents(occupied), _oid(server, occupied.database)
    with pytest.raises(BackupError, match=rf"differs from the manifest: public.tuition_payments: content checksum.*"
                                          rf"{occupied.database} is unchanged \(safety backup: .*\.dump\)"):
        restore.restore(made.path, occupied, confirm=True, safety_dir=tmp_path / "safety")
    assert _contents(occupied) == before and _oid(server, occupied.database) == oid
    assert _databases(server, "prep_ops_restore_") == []

    made.path.write_text(good)
    rehash(made.path)
    done = restore.restore(made.path, occupied, confirm=True, safety_dir=tmp_path / "safety")
    assert done["safety_backup"] and done["replaced"].startswith(f"{occupied.database}_replaced_")
    assert _oid(server, done["replaced"]) == oid and _oid(server, occupied.database) != oid
    assert _contents(done and server.with_database(done["replaced"])) == before
    again = restore.restore(made.path, occupied, confirm=True, safety_dir=tmp_path / "safety")
    assert done["replaced"] in again["removed"] and _oid(server, done["replaced"]) is None


def test_restore_over_a_database_without_tables_but_with_views_routines_and_large_objects_needs_confirm(
        seeded, server, tmp_path):
    """No table is not nothing: a view, a function, a materialized view's rows and a large object are data a
    restore would throw away, so the target needs confirm, gets a safety backup and is kept as replaced."""
    target = _create(server)
    try:
        with db.connect(target, autocommit=True) as conn:
            conn.execute("CREATE SCHEMA \"Reports Q1\"")
            conn.execute("CREATE FUNCTION \"Reports Q1\".answer() RETURNS int LANGUAGE sql AS 'SELECT 42'")
            conn.execute("CREATE MATERIALIZED VIEW \"Reports Q1\".totals AS SELECT 1234.5 AS amount")
            conn.execute("SELECT lo_from_bytea(0, 'an audition recording')")
        made = backup.backup(seeded, "full", "custom", directory=tmp_path)
        with pytest.raises(ConfirmationRequired, match="already holds"):
            restore.restore(made.path, target)
        assert _databases(server, "prep_ops_restore_") == []
        done = restore.restore(made.path, target, confirm=True, safety_dir=tmp_path / "safety")
        assert done["safety_backup"] and done["replaced"] and _oid(server, done["replaced"]) is not None
        with db.connect(server.with_database(done["replaced"])) as kept:
            assert kept.execute("SELECT \"Reports Q1\".answer(), (SELECT count(*) FROM pg_largeobject_metadata)"
                                ).fetchone() == (42, 1)
    finally:
        with db.connect(server, autocommit=True) as conn:
            for name, in conn.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)",
                                      (target.database,)).fetchall():
                conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_restore_over_a_database_holding_only_a_foreign_server_and_its_user_mapping_needs_confirm(seeded, server, tmp_path):
    """A foreign server with a user mapping (its password) is no table either, and as much the database's."""
    target = _create(server)
    try:
        with db.connect(target, autocommit=True) as conn:
            conn.execute("CREATE FOREIGN DATA WRAPPER \"ledger wrapper\"")
            conn.execute("CREATE SERVER \"old ledger\" FOREIGN DATA WRAPPER \"ledger wrapper\"")
            conn.execute("CREATE USER MAPPING FOR PUBLIC SERVER \"old ledger\" OPTIONS (password 'not in any dump file')")
        made = backup.backup(seeded, "schema", "custom", directory=tmp_path)
        with pytest.raises(ConfirmationRequired, match="already holds objects"):
            restore.restore(made.path, target)
        assert _databases(server, "prep_ops_restore_") == []
    finally:
        _drop(server, target)


def test_restore_drops_only_what_earlier_restores_replaced_under_their_own_name(seeded, occupied, server, tmp_path):
    """A DBA keeps a replaced database by renaming it: the next restore into the target leaves it alone."""
    made = backup.backup(seeded, "full", "custom", directory=tmp_path)
    done = restore.restore(made.path, occupied, confirm=True, safety_dir=tmp_path / "safety")
    kept = f"{occupied.database}_before_term"
    with db.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(done["replaced"]), sql.Identifier(kept)))
    again = restore.restore(made.path, occupied, confirm=True, safety_dir=tmp_path / "safety")
    assert kept not in again["removed"] and _oid(server, kept) is not None


def test_restore_into_a_database_named_in_several_bytes_per_letter_names_what_it_replaced_as_it_is(
        seeded, server, tmp_path):
    """PostgreSQL cuts names at 63 bytes, not letters: the replaced database is reported, kept and later
    dropped under the name the server gave it."""
    target = server.with_database(f"prep_ops_test_música_{uuid.uuid4().hex[:10]}")
    with db.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target.database)))
    try:
        made = backup.backup(seeded, "full", "custom", directory=tmp_path)
        restore.restore_into(made.path, target, made.manifest)
        done = restore.restore(made.path, target, confirm=True, safety_dir=tmp_path / "safety")
        assert len(done["replaced"].encode()) <= 63 and _oid(server, done["replaced"]) is not None
        again = restore.restore(made.path, target, confirm=True, safety_dir=tmp_path / "safety")
        assert done["replaced"] in again["removed"] and _oid(server, done["replaced"]) is None
    finally:
        with db.connect(server, autocommit=True) as conn:
            for name, in conn.execute("SELECT datname FROM pg_database WHERE starts_with(datname, 'prep_ops_test_música_')"
                                      ).fetchall():
                conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def _database_grants(server, name: str) -> set[tuple]:
    with db.connect(server) as conn:
        return set(conn.execute("SELECT coalesce(nullif(a.grantee, 0)::regrole::text, 'PUBLIC'), a.privilege_type "
                                "FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a "
                                "WHERE d.datname = %s AND a.grantee <> d.datdba", (name,)).fetchall())


def test_restore_keeps_who_may_connect_to_the_target(seeded, occupied, server, tmp_path):
    """pg_dump leaves database privileges out: a target that PUBLIC may not connect to must not come back
    from a restore with CONNECT and TEMPORARY for every role of the server."""
    reader = f"prep_ops_test_reader_{uuid.uuid4().hex[:6]}"
    with db.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(reader)))
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(occupied.database)))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(occupied.database),
                                                                        sql.Identifier(reader)))
    try:
        before = _database_grants(server, occupied.database)
        assert before == {(reader, "CONNECT")}
        made = backup.backup(seeded, "full", "custom", directory=tmp_path)
        restore.restore(made.path, occupied, confirm=True, safety_dir=tmp_path / "safety")
        assert _database_grants(server, occupied.database) == before
    finally:
        with db.connect(server, autocommit=True) as conn:
            for name, in conn.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)",
                                      (occupied.database,)).fetchall():
                conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(reader)))


def test_restore_with_sessions_on_the_target_needs_confirm(seeded, server, tmp_path):
    target = _create(server)
    try:
        made = backup.backup(seeded, "schema", "custom", directory=tmp_path)
        with db.connect(target) as held:
            with pytest.raises(ConfirmationRequired, match=r"1 session\(s\) are connected .* pass --confirm "
                                                           r"\(confirm=True in a notebook\)"):
                restore.restore(made.path, target)
            assert _databases(server, "prep_ops_restore_") == []
            done = restore.restore(made.path, target, confirm=True, safety_dir=tmp_path / "safety")
            with pytest.raises(psycopg.OperationalError, match="terminat"):  # ended by the confirmed restore
                held.execute("SELECT 1")
        assert done["replaced"] is None  # the target held nothing: nothing worth keeping
        with db.connect(target) as conn:
            assert conn.execute("SELECT count(*) FROM students").fetchone()[0] == 0
    finally:
        _drop(server, target)


def _wait_for(condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _loading(server, prefix: str) -> bool:
    with db.connect(server) as conn:
        return conn.execute("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE starts_with(datname, %s) "
                            "AND application_name IN ('pg_restore', 'psql'))", (prefix,)).fetchone()[0]


def _kill(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)  # kill -9 of the command and the pg_restore it runs
    process.wait()


def test_killed_restore_leaves_target_unchanged(big, occupied, server, tmp_path):
    before = _contents(occupied)
    process = subprocess.Popen([sys.executable, "-m", "prep_ops", "restore", str(big.path), "--confirm"],
                               env=cli_env(occupied, PREP_OPS_BACKUP_DIR=str(tmp_path / "safety")),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    _wait_for(lambda: _loading(server, "prep_ops_restore_"))
    _kill(process)
    left = _databases(server, "prep_ops_restore_")
    assert len(left) == 1 and occupied.database.startswith(left[0][42:]) and len(left[0]) == 63  # run id, then target
    assert _contents(occupied) == before
    done = restore.restore(big.path, occupied, confirm=True, safety_dir=tmp_path / "safety")
    assert done["removed"] == left and _databases(server, "prep_ops_restore_") == []
    with db.connect(occupied) as conn:
        assert conn.execute("SELECT count(*) FROM students").fetchone()[0] == 20000


def test_restore_whose_sessions_the_server_ends_says_the_target_is_unchanged(big, occupied, server, tmp_path):
    """The server ends the restore's sessions half way (a restart, an administrator): the one line still says
    the target is unchanged and names the safety backup; the half-loaded copy goes with the next restore."""
    before, tag = _contents(occupied), uuid.uuid4().hex[:12]
    process = subprocess.Popen([sys.executable, "-m", "prep_ops", "restore", str(big.path), "--confirm"],
                               env=cli_env(occupied, PREP_OPS_BACKUP_DIR=str(tmp_path / "safety"), PREP_OPS_RUN_TAG=tag),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for(lambda: _loading(server, "prep_ops_restore_"))
    with db.connect(server, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s "
                     "OR starts_with(datname, 'prep_ops_restore_')", (f"prep-ops run {tag}",))
    out, err = process.communicate(timeout=120)
    assert process.returncode == 1 and out == "" and len(err.splitlines()) == 1, err
    assert f"{occupied.database} is unchanged (safety backup: {tmp_path / 'safety'}" in err
    assert _contents(occupied) == before
    left = _databases(server, "prep_ops_restore_")
    done = restore.restore(big.path, occupied, confirm=True, safety_dir=tmp_path / "safety")
    assert done["removed"] == left and _databases(server, "prep_ops_restore_") == []


def _role_granted(target, tmp_path, role: str) -> backup.Backup:
    """A backup of `target` whose dump grants to `role`, which the server no longer has afterwards."""
    with db.connect(target, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT SELECT ON students TO {}").format(sql.Identifier(role)))
    made = backup.backup(target, "full", "custom", directory=tmp_path)
    with db.connect(target, autocommit=True) as conn:
        conn.execute(sql.SQL("REVOKE ALL ON students FROM {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    assert role in made.manifest["roles"]
    return made


def _has_role(server, role: str) -> bool:
    with db.connect(server) as conn:
        return conn.execute("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %s)", (role,)).fetchone()[0]


def test_killed_verify_leftovers_are_removed_by_the_next(server, tmp_path):
    role = f"prep_ops_test_role_{uuid.uuid4().hex[:6]}"
    source = _create(server)
    restore_server = verify.verify_server()
    try:
        with db.connect(source, autocommit=True) as conn:
            migrate.apply(conn)
            seed.seed(conn, students=20000, seed=5)
        made = _role_granted(source, tmp_path, role)
        process = subprocess.Popen([sys.executable, "-m", "prep_ops", "verify", str(made.path)], env=cli_env(),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        _wait_for(lambda: _loading(restore_server, "prep_ops_verify_") and _has_role(restore_server, role))
        _kill(process)
        left = _databases(restore_server, "prep_ops_verify_")
        assert len(left) == 1 and _has_role(restore_server, role)
        with db.connect(restore_server) as conn:
            comment = conn.execute("SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = %s",
                                   (role,)).fetchone()[0]
        assert comment == f"{scratch.ROLE_MARKER}{left[0].removeprefix('prep_ops_verify_')}"  # the run's id
        with db.connect(restore_server) as conn:  # every role the killed run made: the dump grants to more
            made_by_it = {r[0] for r in conn.execute(  # than `role` where the verification cluster lacks them
                "SELECT rolname FROM pg_roles WHERE shobj_description(oid, 'pg_authid') = %s", (comment,))}

        result = verify.verify(made.path)
        assert result.ok, result.failures.to_string()
        removed = result.report[result.report["check"].str.endswith("left by a killed verification")]
        assert role in made_by_it and set(removed["object"]) == {left[0]} | made_by_it
        # removing them could not fail: shown as notes, never counted as checks
        assert set(result.notes["object"]) == set(removed["object"])
        checks = len(result.report) - len(result.skipped) - len(removed)
        assert result.counts.startswith(f"{checks} checks, 0 failed")
        assert _databases(restore_server, "prep_ops_verify_") == [] and not _has_role(restore_server, role)
    finally:
        _drop(server, source)
        with db.connect(restore_server, autocommit=True) as conn:
            for name in _databases(restore_server, "prep_ops_verify_"):
                conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_two_verifications_never_share_a_role(seeded, tmp_path):
    """Each makes the role it needs and drops it; the second waits for the first's to go, so neither
    loses its role to the other nor leaves one behind."""
    role = f"prep_ops_test_role_{uuid.uuid4().hex[:6]}"
    restore_server = verify.verify_server()
    made = _role_granted(seeded, tmp_path, role)
    results, owners = [], set()

    def run():
        results.append(verify.verify(made.path))

    def watch():  # the run id in the role's comment, while any verification holds it
        while len(results) < 2:
            with db.connect(restore_server) as conn:
                found = conn.execute("SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = %s",
                                     (role,)).fetchone()
            if found:
                owners.add(found[0])
            time.sleep(0.02)

    threads = [threading.Thread(target=run), threading.Thread(target=run), threading.Thread(target=watch)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert len(results) == 2 and all(r.ok for r in results), [r.failures.to_string() for r in results]
        assert not _has_role(restore_server, role)
        assert len(owners) == 2 and all(o.startswith(scratch.ROLE_MARKER) for o in owners)  # two runs, one after the other
    finally:
        with db.connect(restore_server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_a_plain_dump_cannot_leave_settings_for_the_verifiers_next_connections(seeded, tmp_path, monkeypatch):
    """The restore's role may ALTER DATABASE … SET (it belongs to the scratch database's owner): the
    comparison's next connections, the superuser's, would start with what the dump chose. They are taken
    back once the restore ends."""
    from prep_ops import comparison

    made, _ = _crafted(seeded, tmp_path, lambda key: [
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET application_name = %L', current_database(), "
        "'set by the dump'); END $$;\n"])
    seen = []
    real = comparison.compare

    def spy(conn, manifest, **kwargs):
        target = kwargs.get("target")
        with db.connect(target) as fresh:
            seen.append(fresh.execute("SELECT setconfig FROM pg_db_role_setting s JOIN pg_database d "
                                      "ON d.oid = s.setdatabase WHERE d.datname = current_database()").fetchall())
        return real(conn, manifest, **kwargs)

    monkeypatch.setattr(verify, "compare", spy)
    verify.verify(made.path)
    assert seen == [[]], seen  # the comparison ran, with no setting of the dump's left


_KILLED_WITH_A_COPY = """
import os, signal, sys
from pathlib import Path
from prep_ops import verify
from prep_ops.manifest import read_manifest
path = Path(sys.argv[1])
verify.restored_copy(path, read_manifest(path), prefix="prep_ops_deploy_copy_")  # as runbook 07 makes it
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_runbook_07_copy_left_by_a_killed_run_is_dropped_by_the_next(seeded, tmp_path):
    """Runbook 07 killed between making its restored copy and step 8 (which drops it): the copy, a whole copy of
    the target's data, stayed on the embedded server for good; the next run made its own beside it."""
    made = backup.backup(seeded, "full", "custom", directory=tmp_path)
    killed = subprocess.run([sys.executable, "-c", _KILLED_WITH_A_COPY, str(made.path)], capture_output=True,
                            text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    server = verify.scratch_server()
    [left] = scratch.existing(server, "prep_ops_deploy_copy_")
    copy, roles = verify.restored_copy(made.path, made.manifest, prefix="prep_ops_deploy_copy_")
    try:
        assert scratch.existing(server, "prep_ops_deploy_copy_") == [copy.database] != [left]
    finally:
        verify.drop_copy(copy, roles)


def test_runbook_07_step_3_run_twice_leaves_no_copy_once_step_8_dropped_the_second(seeded, tmp_path):
    """Runbook 07 in JupyterLab, step 3's cell run twice: each run restored a copy, the second replacing the first's
    `copy` and `on_copy`; step 8 dropped the second and PASSed 'scratch copy and its roles dropped' with the first,
    a whole copy of the target's data, still on the embedded server (its session still open in the kernel)."""
    made = backup.backup(seeded, "full", "custom", directory=tmp_path)
    server = verify.scratch_server()
    first, first_roles = verify.restored_copy(made.path, made.manifest, prefix="prep_ops_deploy_copy_")
    on_first = db.connect(first, autocommit=True)  # as step 3's first run left it open
    try:
        copy, roles = verify.restored_copy(made.path, made.manifest, prefix="prep_ops_deploy_copy_")
        other, other_roles = verify.restored_copy(made.path, made.manifest, prefix="prep_ops_copy_")  # another job's
        assert verify.drop_copy(copy, roles) == {}
        assert scratch.existing(server, "prep_ops_deploy_copy_") == []
        assert scratch.existing(server, "prep_ops_copy_") == [other.database]
        verify.drop_copy(other, other_roles)
    finally:
        on_first.close()
        for name in scratch.existing(server, "prep_ops_deploy_copy_"):
            scratch.drop(server, name)


@pytest.fixture
def slow_to_load(scratch, tmp_path):
    """A database whose one table's CHECK waits 50 ms a row where the session sets prep_ops_test.slow (PGOPTIONS),
    and its full backup: a restore of its 200 rows takes 10 s then, and none otherwise. What restores left is
    dropped after."""
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute("CREATE FUNCTION public.slow_check(int) RETURNS boolean LANGUAGE sql AS $$ SELECT "
                     "pg_catalog.current_setting('prep_ops_test.slow', true) IS DISTINCT FROM 'on' "
                     "OR pg_catalog.pg_sleep(0.05) IS NOT NULL $$")
        conn.execute("CREATE TABLE slow (id int PRIMARY KEY CHECK (public.slow_check(id))); "
                     "INSERT INTO slow SELECT generate_series(1, 200)")
    yield backup.backup(scratch, "full", "custom", directory=tmp_path / "made")
    with db.connect(scratch.with_database("postgres"), autocommit=True) as conn:
        for name, in conn.execute("SELECT datname FROM pg_database WHERE datname <> %s AND (starts_with(datname, %s) "
                                  "OR starts_with(datname, 'prep_ops_restore_'))", (scratch.database, scratch.database)).fetchall():
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_a_restore_killed_alone_leaves_no_pg_restore_loading_and_the_next_restore_drops_its_database(
        slow_to_load, scratch, server, tmp_path):
    """kill -9 of the restoring process alone (as a notebook's kernel ends when papermill is killed: the kernel
    has a process group of its own): its pg_restore went on loading the new database, and the next restore found
    that database in use, kept it and said nothing of it."""
    process = subprocess.Popen([sys.executable, "-m", "prep_ops", "restore", str(slow_to_load.path), "--confirm"],
                               env=cli_env(scratch, PREP_OPS_BACKUP_DIR=str(tmp_path / "safety"),
                                           PGOPTIONS="-c prep_ops_test.slow=on"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    _wait_for(lambda: _loading(server, "prep_ops_restore_"))
    process.kill()  # the process only, not its group
    process.wait()
    _wait_for(lambda: not _loading(server, "prep_ops_restore_"), seconds=3)
    left = _databases(server, "prep_ops_restore_")
    assert len(left) == 1
    done = restore.restore(slow_to_load.path, scratch, confirm=True, safety_dir=tmp_path / "safety")
    assert done["removed"] == left and _databases(server, "prep_ops_restore_") == []


@pytest.mark.parametrize("fmt", ["custom", "directory", "plain"])
def test_a_restore_as_a_superuser_gives_objects_their_owners_so_a_security_definer_function_keeps_its_rights(
        scratch, server, tmp_path, fmt, app_author):
    """pg_restore ran with --no-owner: every object of a custom or directory archive came back owned by the
    restoring role. An application role's SECURITY DEFINER function then ran with that role's rights, a
    superuser's, for everyone allowed to call it (PUBLIC by default), and the application no longer owned its
    tables. A superuser's restore now gives each object its owner, as a plain dump's always did."""
    author, _ = app_author
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(author)))
        conn.execute("CREATE FUNCTION app.whoami() RETURNS text LANGUAGE sql SECURITY DEFINER AS 'SELECT current_user::text'")
        conn.execute("CREATE TABLE app.t (a int)")
        conn.execute("RESET ROLE")
    made = backup.backup(scratch, "full", fmt, directory=tmp_path)
    target = _create(server)
    try:
        restore.restore(made.path, target, confirm=True, safety_dir=tmp_path / "safety")
        with db.connect(target, autocommit=True) as conn:
            assert conn.execute("SELECT app.whoami(), pg_get_userbyid(relowner) FROM pg_class "
                                "WHERE oid = 'app.t'::regclass").fetchone() == (author, author)
    finally:
        _drop(server, target)


def test_a_second_restore_into_a_target_another_restore_is_loading_is_refused_and_changes_nothing(
        seeded, occupied, server, tmp_path):
    """Two restores into one target at once: the second would swap its copy in over the first's without a
    word, and its clean-up would drop the database the first replaced (the writes made after the safety
    backups). The first here waits in its safety backup behind a lock; the second is refused at once,
    naming the first's session, before any safety backup, new database or swap; the first then ends well."""
    made = backup.backup(seeded, "full", "custom", directory=tmp_path / "made")
    with db.connect(occupied, autocommit=True) as conn:  # the target's own writes: unlike the backup
        conn.execute("DELETE FROM tuition_payments WHERE id IN (SELECT id FROM tuition_payments ORDER BY id LIMIT 3)")
    before, oid = _contents(occupied), _oid(server, occupied.database)
    assert before != _contents(seeded)
    env = cli_env(occupied, PREP_OPS_BACKUP_DIR=str(tmp_path / "backups"))
    with db.connect(occupied) as holder:
        holder.execute("LOCK TABLE students IN ACCESS EXCLUSIVE MODE")
        first = subprocess.Popen([sys.executable, "-m", "prep_ops", "restore", str(made.path), "--confirm"],
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            with db.connect(server, autocommit=True) as watch:  # the first's safety backup waits on the lock
                while not watch.execute("SELECT EXISTS (SELECT FROM pg_stat_activity WHERE datname = %s AND "
                                        "wait_event_type = 'Lock' AND pid <> %s)",
                                        (occupied.database, holder.info.backend_pid)).fetchone()[0]:
                    assert time.monotonic() < deadline and first.poll() is None, first.communicate()
                    time.sleep(0.05)
            safety_files = sorted((tmp_path / "backups").rglob("*"))
            # without the guard it would wait behind the same lock in its own safety backup: 60 s, then fail
            second = subprocess.run([sys.executable, "-m", "prep_ops", "restore", str(made.path), "--confirm"],
                                    env=cli_env(occupied, PREP_OPS_BACKUP_DIR=str(tmp_path / "second")),
                                    capture_output=True, text=True, timeout=60)
            assert second.returncode == 1 and second.stdout == "", second.stdout + second.stderr
            assert re.fullmatch(rf"error: another restore into {occupied.database} is running \(session \d+ of "
                                r"\w+, connected since [^)]+\); nothing was done: wait for it to end, then restore "
                                r"again if you still need to\n", second.stderr), second.stderr
            assert not (tmp_path / "second").exists()  # no safety backup begun
            assert sorted((tmp_path / "backups").rglob("*")) == safety_files
            assert len(_databases(server, "prep_ops_restore_")) == 0  # the first has not made its copy yet
            assert _oid(server, occupied.database) == oid
        finally:
            holder.rollback()
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, out + err
    assert _oid(server, occupied.database) != oid and _contents(occupied) == _contents(seeded)
    (replaced,) = _databases(server, f"{occupied.database}_replaced_")
    assert _oid(server, replaced) == oid and _contents(server.with_database(replaced)) == before


def test_a_restore_that_found_its_target_empty_reads_it_again_under_the_lock_once_another_restore_filled_it(
        seeded, server, tmp_path, monkeypatch):
    """Restore B finds the target empty, and before it takes the one-restore-per-target lock, restore A fills
    the target and ends. B used to go on with what it had read before the lock: no confirm asked, no safety
    backup, A's copy swapped out and dropped as 'nothing'. Now what the target holds is read again under the
    lock: B is refused for want of confirm, and A's restore stays in place. (A runs, whole and real, at the
    moment B asks whether the target may be changed: between its first read and the lock.)"""
    made = backup.backup(seeded, "full", "custom", directory=tmp_path / "made")
    target = _create(server)
    try:
        real_require_change = restore.require_change
        a_done = {}

        def require_change_while_a_restores(*args, **kwargs):
            real_require_change(*args, **kwargs)
            monkeypatch.setattr(restore, "require_change", real_require_change)
            a_done.update(restore.restore(made.path, target, confirm=True, safety_dir=tmp_path / "a-safety"))

        monkeypatch.setattr(restore, "require_change", require_change_while_a_restores)
        with pytest.raises(ConfirmationRequired, match=rf"^{target.database} already holds "):
            restore.restore(made.path, target, safety_dir=tmp_path / "b-safety")
        assert a_done["into"] and a_done["safety_backup"] is None  # A found it empty, as B had
        assert _contents(target) == _contents(seeded)  # A's restore is in place, not swapped out by B
        assert not (tmp_path / "b-safety").exists() and _databases(server, "prep_ops_restore_") == []
    finally:
        _drop(server, target)
