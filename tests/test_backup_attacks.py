"""Hostile backup files and URLs: a backup is data, never code, and never a path out of its folder."""

import json
import re
import uuid

import pytest
from psycopg.conninfo import conninfo_to_dict

from prep_ops import backup, db, plain_dump, restore, verify
from prep_ops.errors import BackupError

from conftest import rehash, table_checksum


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


def test_restore_of_a_truncated_dump_leaves_the_target_as_it_was(seeded, scratch, tmp_path):
    good = backup.backup(seeded, "full", "custom", directory=tmp_path / "good")
    restore.restore_into(good.path, scratch, good.manifest)
    before = {t: table_checksum(scratch, t) for t in ("students", "enrollments", "schema_version")}
    for fmt in ("custom", "plain"):
        made = backup.backup(seeded, "full", fmt, directory=tmp_path / fmt)
        made.path.write_bytes(made.path.read_bytes()[: made.path.stat().st_size // 2])
        with pytest.raises(BackupError, match="does not match its manifest: .* file size"):
            restore.restore(made.path, scratch, confirm=True, safety_dir=tmp_path / "safety")
        rehash(made.path)  # the attacker's (or a broken tool's) manifest agrees with the cut file
        if fmt == "plain":
            with pytest.raises(BackupError, match="is never closed: the dump is cut short"):
                restore.restore(made.path, scratch, confirm=True, safety_dir=tmp_path / "safety")
    assert {t: table_checksum(scratch, t) for t in before} == before


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
                        "actual": "leads out of the backup's folder: not read", "passed": False, "skipped": False}]
    manifest["files"]["/etc/hostname"] = manifest["files"].pop("link")
    mpath.write_text(json.dumps(manifest))
    with pytest.raises(BackupError, match="file '/etc/hostname' is not a name inside the backup's folder"):
        verify.verify(made.path)


def test_dbname_in_the_query_string_cannot_redirect_the_scratch_restore(server):
    target = db.resolve_target(server.url + ("&" if "?" in server.url else "?") + "dbname=the_real_database")
    assert target.database == "the_real_database"
    scratch = target.with_database("prep_ops_verify_x")
    assert conninfo_to_dict(scratch.url)["dbname"] == "prep_ops_verify_x"


def test_two_clusters_with_a_same_named_database_never_use_each_others_backups(server, private_server, tmp_path):
    """A second embedded cluster (PREP_OPS_DATA_DIR) holds a database of the same name as one on the
    server under test: keep, verify --latest and the recovery runbook's choice each stay with their own."""
    from psycopg import sql

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
