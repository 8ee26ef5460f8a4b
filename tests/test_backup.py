"""Backups and their verification on a real server: a clean backup passes, and each injected fault
fails naming the object."""

import json
import re

import pytest

from prep_ops import backup, db, restore, verify
from prep_ops.errors import ConfirmationRequired, ParameterError


@pytest.fixture(scope="module")
def backups_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("backups")


def rehash(path):
    """Rewrite the manifest's file hashes after a fault was injected, so only the restore and the
    content comparison can catch it (as when the dump itself was wrong)."""
    mpath = backup.manifest_path(path)
    manifest = json.loads(mpath.read_text())
    manifest["files"] = backup.file_hashes(path)
    mpath.write_text(json.dumps(manifest))


@pytest.mark.parametrize("kind, fmt", [("full", "plain"), ("full", "custom"), ("full", "directory"),
                                       ("schema", "plain"), ("data", "custom")])
def test_clean_backup_verifies(seeded, backups_folder, kind, fmt):
    made = backup.backup(seeded, kind, fmt, directory=backups_folder)
    manifest = made.manifest
    assert manifest["kind"] == kind and manifest["format"] == fmt and manifest["bytes"] > 0
    assert manifest["tables"]["public.students"]["rows"] == 300
    assert all(len(f["sha256"]) == 64 for f in manifest["files"].values())
    result = verify.verify(made.path)
    assert result.ok, result.failures.to_string()
    assert "public.students" in set(result.report["object"])


def test_verification_on_the_source_server_too(seeded, backups_folder, server):
    """Restores into a scratch database on the server under test (PostgreSQL 15 in CI: the
    pg_dump 18 dump carries SET transaction_timeout, which that server rejects)."""
    for fmt in ("plain", "custom"):
        made = backup.backup(seeded, "full", fmt, directory=backups_folder)
        result = verify.verify(made.path, server=server)
        assert result.ok, result.failures.to_string()


def test_flipped_byte_fails_the_hash(seeded, tmp_path):
    made = backup.backup(seeded, "full", "custom", directory=tmp_path)
    data = bytearray(made.path.read_bytes())
    data[len(data) // 2] ^= 0x01
    made.path.write_bytes(bytes(data))
    result = verify.verify(made.path)
    assert not result.ok
    assert set(result.failures["check"]) == {"sha256", "restore"}


def test_truncated_file_fails(seeded, tmp_path):
    made = backup.backup(seeded, "full", "plain", directory=tmp_path)
    made.path.write_bytes(made.path.read_bytes()[:2000])
    result = verify.verify(made.path)
    assert not result.ok and "file size" in set(result.failures["check"])
    rehash(made.path)  # even with matching hashes, the restore itself fails
    again = verify.verify(made.path)
    assert not again.ok and "restore" in set(again.failures["check"])


def _edit_plain(path, edit):
    path.write_text(edit(path.read_text()))
    rehash(path)


def test_missing_table_fails_naming_it(seeded, tmp_path):
    made = backup.backup(seeded, "full", "plain", directory=tmp_path)

    def drop_payments(text):
        # remove the table, its data and everything that refers to it
        kept = [block for block in text.split("\n\n") if "tuition_payments" not in block]
        return "\n\n".join(kept)

    _edit_plain(made.path, drop_payments)
    result = verify.verify(made.path)
    failed = result.failures
    assert not result.ok
    assert ("public.tuition_payments", "table present") in set(zip(failed["object"], failed["check"]))


def test_missing_row_fails_naming_the_table(seeded, tmp_path):
    made = backup.backup(seeded, "full", "plain", directory=tmp_path)

    def drop_one_enrollment(text):
        start = text.index("COPY public.enrollments")
        first_row = text.index("\n", start) + 1
        return text[:first_row] + text[text.index("\n", first_row) + 1:]

    _edit_plain(made.path, drop_one_enrollment)
    failed = verify.verify(made.path).failures
    assert set(failed["object"]) == {"public.enrollments"}
    assert set(failed["check"]) == {"row count", "content checksum"}


def test_changed_row_fails_on_the_checksum_only(seeded, tmp_path):
    made = backup.backup(seeded, "full", "plain", directory=tmp_path)

    def change_an_amount(text):
        start = text.index("COPY public.tuition_payments")
        line_end = text.index("\n", text.index("\n", start) + 1)
        line = text[text.index("\n", start) + 1:line_end]
        changed = re.sub(r"\t(\d+)\.(\d\d)\t", lambda m: f"\t{int(m[1]) + 1}.{m[2]}\t", line, count=1)
        assert changed != line
        return text.replace(line, changed, 1)

    _edit_plain(made.path, change_an_amount)
    failed = verify.verify(made.path).failures
    assert list(zip(failed["object"], failed["check"])) == [("public.tuition_payments", "content checksum")]


def test_changed_column_type_fails_naming_the_column(seeded, tmp_path):
    made = backup.backup(seeded, "full", "plain", directory=tmp_path)
    _edit_plain(made.path, lambda text: text.replace("    term character varying(20) NOT NULL,\n    status",
                                                     "    term text NOT NULL,\n    status", 1))
    failed = verify.verify(made.path).failures
    assert ("public.enrollments.term", "column type") in set(zip(failed["object"], failed["check"]))


def test_the_source_is_never_a_restore_target(seeded, tmp_path):
    made = backup.backup(seeded, "schema", "plain", directory=tmp_path)
    with pytest.raises(ParameterError, match="source database; refusing"):
        verify.refuse_source(seeded, made.manifest)
    verify.refuse_source(seeded.with_database("postgres"), made.manifest)  # another database: fine


def test_latest_fails_when_too_old_or_too_small(seeded, tmp_path):
    backup.backup(seeded, "full", "custom", directory=tmp_path)
    assert verify.verify_latest(tmp_path, max_age_hours=1).ok
    too_small = verify.verify_latest(tmp_path, min_bytes=10**12)
    assert not too_small.ok and list(too_small.failures["check"]) == ["size"]
    too_old = verify.verify_latest(tmp_path, max_age_hours=0)
    assert not too_old.ok and list(too_old.failures["check"]) == ["age"]


def test_keep_removes_older_backups(seeded, tmp_path):
    for _ in range(3):
        made = backup.backup(seeded, "schema", "plain", directory=tmp_path, keep=2)
        import time

        time.sleep(1.1)  # names carry the second
    assert len(backup.listing(tmp_path)) == 2 and made.path.exists()


def test_restore_refuses_a_non_empty_target_without_confirm(seeded, migrated, tmp_path):
    made = backup.backup(seeded, "full", "custom", directory=tmp_path)
    with pytest.raises(ConfirmationRequired, match="already holds tables"):
        restore.restore(made.path, migrated)
    done = restore.restore(made.path, migrated, confirm=True, safety_dir=tmp_path / "safety")
    assert done["safety_backup"] and backup.read_manifest(done["safety_backup"])["database"] == migrated.database
    with db.connect(migrated) as conn:
        assert conn.execute("SELECT count(*) FROM students").fetchone()[0] == 300


def test_data_restore_into_a_migrated_database(seeded, migrated, tmp_path):
    made = backup.backup(seeded, "data", "plain", directory=tmp_path)
    with pytest.raises(ConfirmationRequired, match="holds rows"):  # schema_version has rows
        restore.restore(made.path, migrated)
    restore.restore(made.path, migrated, confirm=True, safety_dir=tmp_path / "safety")
    with db.connect(migrated) as conn:
        assert conn.execute("SELECT count(*) FROM enrollments").fetchone()[0] == \
            made.manifest["tables"]["public.enrollments"]["rows"]


@pytest.mark.parametrize("kwargs, message", [({"kind": "everything"}, "kind must be"), ({"fmt": "zip"}, "format must be"),
                                             ({"keep": 0}, "keep must be")])
def test_bad_backup_options(seeded, tmp_path, kwargs, message):
    with pytest.raises(ParameterError, match=message):
        backup.backup(seeded, directory=tmp_path, **kwargs)


def test_verify_creates_roles_the_dump_grants_to(seeded, tmp_path, server):
    import uuid

    from psycopg import sql

    role = f"prep_ops_test_role_{uuid.uuid4().hex[:6]}"
    with db.connect(seeded, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT SELECT ON students TO {}").format(sql.Identifier(role)))
    try:
        made = backup.backup(seeded, "full", "plain", directory=tmp_path)
        assert role in made.manifest["roles"]
        # against a DATABASE_URL server (CI's PostgreSQL 15) the embedded restore server lacks the role
        result = verify.verify(made.path)
        assert result.ok, result.failures.to_string()
    finally:
        with db.connect(seeded, autocommit=True) as conn:
            conn.execute(sql.SQL("REVOKE ALL ON students FROM {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
        with db.connect(verify.scratch_server(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
