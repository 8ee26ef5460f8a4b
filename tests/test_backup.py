"""Backups and their verification on a real server: a clean backup passes, and each injected fault
fails naming the object."""

import json
import re
import uuid
from pathlib import Path

import pytest
from psycopg import sql

from prep_ops import backup, checksums, db, restore, verify
from prep_ops.scratch import drop as drop_scratch, existing as scratch_names
from prep_ops.errors import BackupError, ConfirmationRequired, NoBackups, ParameterError

from conftest import rehash


@pytest.fixture(scope="module")
def backups_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("backups")


@pytest.mark.parametrize("kind, fmt", [("full", "plain"), ("full", "custom"), ("full", "directory"),
                                       ("schema", "plain"), ("data", "custom")])
def test_clean_backup_verifies(seeded, backups_folder, kind, fmt):
    made = backup.backup(seeded, kind, fmt, directory=backups_folder)
    manifest = made.manifest
    assert manifest["kind"] == kind and manifest["format"] == fmt and manifest["bytes"] > 0
    assert manifest["checksum_method"] == "column-hash-v4"
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
    with db.connect(seeded, autocommit=True) as conn, pytest.raises(ParameterError, match="source database; refusing"):
        verify.refuse_source(conn, made.manifest)
    with db.connect(seeded.with_database("postgres"), autocommit=True) as conn:
        verify.refuse_source(conn, made.manifest)  # another database: fine


def test_no_backups_is_one_error_type_from_verify_and_from_recovery(migrated, tmp_path):
    from prep_ops.incident import recovery

    with pytest.raises(NoBackups, match=f"no backup in {tmp_path}"):
        verify.verify_latest(tmp_path)
    with db.connect(migrated, autocommit=True) as conn:
        with pytest.raises(NoBackups, match=f"no full backup of {migrated.database} .* in {tmp_path}"):
            recovery.latest_backup(conn, tmp_path)
        source = backup.identity(conn)
    with pytest.raises(NoBackups, match=f"no backup of {migrated.database} "):
        verify.verify_latest(tmp_path, source=source)
    assert issubclass(NoBackups, BackupError)


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


def _edit_manifest(made: backup.Backup, change) -> None:
    manifest = json.loads(made.manifest_path.read_text())
    change(manifest)
    made.manifest_path.write_text(json.dumps(manifest))


def test_keep_never_prunes_a_backup_whose_cluster_is_unknown(seeded, tmp_path):
    """A backup taken where the system identifier was hidden (pg_control_system revoked, as on some managed
    servers) may be another cluster's same-named database behind the same address (an SSH tunnel): --keep
    cannot tell it is this one's, so it stays."""
    theirs = backup.backup(seeded, "full", "custom", directory=tmp_path)
    _edit_manifest(theirs, lambda m: m["source"].update(system_identifier=None))
    ours = backup.backup(seeded, "full", "custom", directory=tmp_path, keep=1)
    assert ours.path.exists() and theirs.path.exists() and theirs.manifest_path.exists()


def test_keep_removes_only_the_schema_dump_a_data_backup_made_never_another_backup(seeded, tmp_path):
    """A manifest is data: the schema dump it names is removed with it only when it is that backup's own."""
    other = backup.backup(seeded, "full", "custom", directory=tmp_path / "f")
    old = backup.backup(seeded, "data", "custom", directory=tmp_path / "f")
    _edit_manifest(old, lambda m: m["schema_dump"].update(file=other.path.name))
    backup.backup(seeded, "data", "custom", directory=tmp_path / "f", keep=1)
    assert not old.path.exists() and other.path.exists()
    assert backup.read_manifest(other.path)["kind"] == "full"


def test_keep_after_a_restore_leaves_the_backups_from_before_it_and_says_how_many_with_their_oid(seeded, migrated,
                                                                                                 tmp_path):
    """A restore loads into a new database and swaps names: the restored one has another OID. --keep never
    removes the backups of the one it replaced (they may be all that is left of its data), and used to leave
    them without a word, to pile up for ever: it now names how many, their OID and the folder, on the line
    before the path (still the last line)."""
    import subprocess
    import sys

    from conftest import cli_env

    folder = tmp_path / "backups"
    older = [backup.backup(migrated, "full", "custom", directory=folder) for _ in range(2)]
    old_oid = older[0].manifest["source"]["database_oid"]
    done = restore.restore(backup.backup(seeded, "full", "custom", directory=tmp_path / "other").path, migrated,
                           confirm=True, safety_dir=tmp_path / "safety")
    try:
        first = backup.backup(migrated, "full", "custom", directory=folder, keep=1)
        new_oid = first.manifest["source"]["database_oid"]
        assert new_oid != old_oid and first.pruned.removed == []
        assert {oid: sorted(paths) for oid, paths in first.pruned.left.items()} == {old_oid: sorted(b.path for b in older)}
        ran = subprocess.run([sys.executable, "-m", "prep_ops", "backup", "--dir", str(folder), "--keep", "1"],
                             env=cli_env(migrated), capture_output=True, text=True)
        assert ran.returncode == 0, ran.stderr
        lines = ran.stdout.splitlines()
        assert len(lines) == 3 and Path(lines[-1]).exists() and not first.path.exists()  # this database's older one: removed
        assert lines[1] == (f"left 2 full backups of another database named {migrated.database} on this cluster "
                            f"(OID {old_oid}), from before a restore or a drop and create of that name: --keep removes "
                            f"only this database's (OID {new_oid}); remove them by hand from {folder} once they are "
                            "not needed")
        assert all(b.path.exists() and b.manifest_path.exists() for b in older)
        assert backup.backup(migrated, "schema", "plain", directory=folder, keep=1).pruned.note() is None  # another kind
    finally:
        drop_scratch(migrated.with_database("postgres"), done["replaced"])


def test_restore_refuses_a_non_empty_target_without_confirm(seeded, migrated, tmp_path):
    made = backup.backup(seeded, "full", "custom", directory=tmp_path)
    with pytest.raises(ConfirmationRequired, match="already holds tables"):
        restore.restore(made.path, migrated)
    done = restore.restore(made.path, migrated, confirm=True, safety_dir=tmp_path / "safety")
    assert done["safety_backup"] and backup.read_manifest(done["safety_backup"])["database"] == migrated.database
    with db.connect(migrated) as conn:
        assert conn.execute("SELECT count(*) FROM students").fetchone()[0] == 300
    drop_scratch(migrated.with_database("postgres"), done["replaced"])  # kept by the restore until the next


def test_a_restores_safety_backup_is_never_taken_for_the_newest_backup_of_its_database(seeded, tmp_path,
                                                                                         monkeypatch):
    """`prep-ops restore --confirm` wrote its safety backup (the target as it was before) into backups/,
    where `verify --latest`, `--keep` and runbook 10 take the newest backup of the database: after a DBA
    restored an older dump on purpose, runbook 10 measured the database against that safety backup and
    called every row the restore took back "lost". It goes to backups/safety/ now, as runbook 10's does."""
    from prep_ops import manifest

    monkeypatch.setenv("PREP_OPS_BACKUP_DIR", str(tmp_path / "backups"))
    older = backup.backup(seeded, "full", "custom")
    with db.connect(seeded) as conn:
        conn.execute("DELETE FROM enrollments WHERE id IN (SELECT id FROM enrollments ORDER BY id LIMIT 5)")
    done = restore.restore(older.path, seeded, confirm=True)
    safety = Path(done["safety_backup"])
    assert safety.parent == manifest.backups_dir() / "safety"
    assert manifest.latest(source=older.manifest["source"]).path == older.path
    drop_scratch(seeded.with_database("postgres"), done["replaced"])


def test_data_restore_into_a_migrated_database(seeded, migrated, tmp_path):
    made = backup.backup(seeded, "data", "plain", directory=tmp_path)
    with pytest.raises(ConfirmationRequired, match="holds rows"):  # schema_version has rows
        restore.restore(made.path, migrated)
    done = restore.restore(made.path, migrated, confirm=True, safety_dir=tmp_path / "safety")
    with db.connect(migrated) as conn:
        assert conn.execute("SELECT count(*) FROM enrollments").fetchone()[0] == \
            made.manifest["tables"]["public.enrollments"]["rows"]
    drop_scratch(migrated.with_database("postgres"), done["replaced"])


@pytest.mark.parametrize("kwargs, message", [({"kind": "everything"}, "kind must be"), ({"fmt": "zip"}, "format must be"),
                                             ({"keep": 0}, "keep must be")])
def test_bad_backup_options(seeded, tmp_path, kwargs, message):
    with pytest.raises(ParameterError, match=message):
        backup.backup(seeded, directory=tmp_path, **kwargs)


def _roles(target) -> set[str]:
    with db.connect(target, autocommit=True) as conn:
        return {r[0] for r in conn.execute("SELECT rolname FROM pg_roles").fetchall()}


def test_verify_creates_roles_the_dump_grants_to(seeded, tmp_path, server):
    role = f"prep_ops_test_role_{uuid.uuid4().hex[:6]}"
    with db.connect(seeded, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT SELECT ON students TO {}").format(sql.Identifier(role)))
    try:
        made = backup.backup(seeded, "full", "plain", directory=tmp_path)
        assert role in made.manifest["roles"]
        # the verification cluster (the default restore server) lacks the role
        assert role not in _roles(verify.verify_server())
        result = verify.verify(made.path)
        assert result.ok, result.failures.to_string()
        assert role not in _roles(verify.verify_server())  # made for the restore, then dropped
    finally:
        with db.connect(seeded, autocommit=True) as conn:
            conn.execute(sql.SQL("REVOKE ALL ON students FROM {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
        with db.connect(verify.verify_server(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_verify_drops_the_roles_it_made_and_only_those(seeded, tmp_path):
    """Roles are cluster-wide: a role made on the restore server for a dump's GRANT goes when the
    scratch database goes (not while it is kept), and a role that was there before always stays. A
    verification restores on the verification cluster; a kept copy on the embedded server."""
    made_for, was_there = (f"prep_ops_test_role_{uuid.uuid4().hex[:6]}" for _ in range(2))
    servers = (verify.verify_server(), verify.scratch_server())
    with db.connect(seeded, autocommit=True) as conn:
        for role in (made_for, was_there):
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
            conn.execute(sql.SQL("GRANT SELECT ON students TO {}").format(sql.Identifier(role)))
    kept_scratch = None
    try:
        made = backup.backup(seeded, "full", "plain", directory=tmp_path)
        with db.connect(seeded, autocommit=True) as conn:  # the restore servers must lack this one
            conn.execute(sql.SQL("REVOKE ALL ON students FROM {}").format(sql.Identifier(made_for)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(made_for)))
        for restore_server in servers:  # and have this one (the embedded server: unless it is the source's)
            with db.connect(restore_server, autocommit=True) as conn:
                if was_there not in _roles(restore_server):
                    conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(was_there)))
            assert made_for not in _roles(restore_server)
        result = verify.verify(made.path)
        assert result.ok, result.failures.to_string()
        assert made_for not in _roles(servers[0]) and was_there in _roles(servers[0])

        kept = verify.verify(made.path, keep_scratch=True)
        kept_scratch = kept.scratch_database
        assert kept.ok and made_for in _roles(servers[1])  # the kept database's grants need it
        assert kept_scratch in scratch_names(servers[1]) and kept_scratch not in scratch_names(servers[0])
    finally:
        if kept_scratch:
            drop_scratch(servers[1], kept_scratch)
        with db.connect(seeded, autocommit=True) as conn:
            conn.execute(sql.SQL("REVOKE ALL ON students FROM {}").format(sql.Identifier(was_there)))
        for role in (made_for, was_there):
            for where in (seeded, *servers):
                with db.connect(where, autocommit=True) as conn:
                    conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _rewrite_manifest(path, change):
    mpath = backup.manifest_path(path)
    manifest = json.loads(mpath.read_text())
    change(manifest)
    mpath.write_text(json.dumps(manifest))


def test_a_manifest_without_a_method_is_verified_with_the_text_method(seeded, tmp_path):
    """Backups made before manifests named their method hold row-text checksums."""
    made = backup.backup(seeded, "full", "custom", directory=tmp_path)
    with db.connect(seeded) as conn:
        text_sums = backup.table_checksums(conn, checksums.ROW_TEXT)
    assert text_sums != made.manifest["tables"]

    def as_old_backup(manifest):
        del manifest["checksum_method"]
        manifest["tables"] = text_sums

    _rewrite_manifest(made.path, as_old_backup)
    result = verify.verify(made.path)
    assert result.ok, result.failures.to_string()
    assert set(result.report.loc[result.report["check"] == "content checksum", "object"]) == set(text_sums)

    _rewrite_manifest(made.path, lambda m: m.update(tables=made.manifest["tables"]))  # new sums, no method
    failed = verify.verify(made.path).failures
    differing = {t for t, sums in text_sums.items() if sums != made.manifest["tables"][t]}
    assert differing == set(text_sums) - {"audit.log"}  # the audit log is empty: 0 rows sum to "0" either way
    assert set(failed["check"]) == {"content checksum"} and set(failed["object"]) == differing


def _valid_manifest() -> dict:
    return {"prep_ops_manifest": 1, "kind": "full", "format": "plain", "database": "d",
            "source": {"database": "d"}, "started": "2026-01-01T00:00:00+00:00",
            "finished": "2026-01-01T00:00:01+00:00", "bytes": 3, "files": {"d.sql": {"bytes": 3, "sha256": "ab"}},
            "checksum_method": "column-hash-v1", "tables": {"public.t": {"rows": 1, "checksum": "7"}},
            "schema": {"public.t": {"columns": {"id": "integer"}, "constraint": {}, "index": {}}}}


@pytest.mark.parametrize("change, problem", [
    (lambda m: [1], "it holds an array, not an object"),
    (lambda m: {}, "it has no 'kind'"),
    (lambda m: "backup", "it holds a string, not an object"),
    (lambda m: {**m, "tables": [1]}, "its 'tables' is an array, not an object"),
    (lambda m: {**m, "bytes": "3"}, "its 'bytes' is a string, not a number"),
    (lambda m: {**m, "kind": "everything"}, "kind 'everything' or format 'plain' is not one prep-ops makes"),
    (lambda m: {**m, "checksum_method": "md5-v9"}, "checksum method 'md5-v9' is unknown"),
    (lambda m: {**m, "tables": {"public.t": {"rows": 1}}}, "table 'public.t' has no rows and checksum"),
    (lambda m: {**m, "files": {"d.sql": "ab"}}, "file 'd.sql' has no bytes and sha256"),
    (lambda m: {**m, "source": {}}, "its 'source' names no database"),
    (lambda m: {**m, "finished": "not-a-date"}, "its 'finished' is not a date and time: 'not-a-date'"),
    (lambda m: {**m, "files": {"/etc/shadow": {"bytes": 3, "sha256": "ab"}}}, "file '/etc/shadow' is not a name inside"),
    (lambda m: {**m, "files": {"../d.sql": {"bytes": 3, "sha256": "ab"}}}, "file '../d.sql' is not a name inside"),
    (lambda m: {**m, "files": {"x.sql": {"bytes": 3, "sha256": "ab"}}}, "it describes 'x.sql', not 'd.sql'"),
    (lambda m: {**m, "objects": {"extension": {"citext": 1}}}, "its 'objects' is not an object of definitions by kind"),
    # set in the verifier's session: a hostile manifest must not choose its role or anything else
    (lambda m: {**m, "deparse_settings": {"role": "postgres"}}, "its 'deparse_settings' names settings other than"),
    (lambda m: {**m, "deparse_settings": {"TimeZone": 5}}, "its 'deparse_settings' names settings other than"),
])
def test_a_manifest_of_the_wrong_shape_is_refused_in_one_sentence(tmp_path, change, problem):
    path = tmp_path / "d.sql"
    mpath = backup.manifest_path(path)
    mpath.write_text(json.dumps(_valid_manifest()))
    assert backup.read_manifest(path) == _valid_manifest()
    old = {k: v for k, v in _valid_manifest().items() if k != "checksum_method"}
    mpath.write_text(json.dumps(old))
    assert backup.read_manifest(path) == old  # a manifest from before checksum methods had names
    mpath.write_text(json.dumps(change(_valid_manifest())))
    with pytest.raises(backup.BackupError) as raised:
        backup.read_manifest(path)
    message = str(raised.value)
    assert message.startswith(f"{mpath} is not a prep-ops backup manifest: {problem}") and "\n" not in message
    assert backup.listing(tmp_path) == []  # and listing passes over it


# --- the data of a database against a manifest (the rollback rehearsal of runbook 07) -------------
def test_compare_data_names_the_tables_that_differ(seeded, scratch, tmp_path):
    made = backup.backup(seeded, "full", "custom", directory=tmp_path)
    restore.restore_into(made.path, scratch, made.manifest)
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute("CREATE TABLE leftover (id integer)")  # empty: no data that was not there before
        same = verify.compare_data(conn, made.manifest)
        assert same.ok and same.differing == []
        assert same.detail == f"{len(made.manifest['tables'])} tables equal the backup in row count and content checksum"

        conn.execute("UPDATE tuition_payments SET amount = amount + 1 WHERE id = (SELECT min(id) FROM tuition_payments)")
        conn.execute("DROP TABLE enrollments")
        conn.execute("INSERT INTO leftover VALUES (1)")
        exact = verify.compare_data(conn, made.manifest)
        assert not exact.ok and exact.differing == ["public.enrollments", "public.leftover", "public.tuition_payments"]
        assert exact.detail == ("differ: public.enrollments (table present); public.leftover (rows of a table not in the "
                                "backup); public.tuition_payments (content checksum)")
        # what a rollback records about itself
        conn.execute("DELETE FROM schema_version WHERE version = (SELECT max(version) FROM schema_version)")
        below = verify.compare_data(conn, made.manifest, exact=False)  # a table dropped by a rollback: not compared
        assert below.differing == ["public.leftover", "public.tuition_payments"]
        assert not {"public.enrollments", "public.schema_version"} & set(below.report["object"])
        assert "public.schema_version" in verify.compare_data(conn, made.manifest).differing


def _with_extensions(target, names) -> list[str]:
    """Create `names` where the server offers them, with a table and an index using each; returns those made."""
    made = []
    with db.connect(target, autocommit=True) as conn:
        offered = {r[0] for r in conn.execute("SELECT name FROM pg_available_extensions").fetchall()}
        for name in names:
            if name in offered:
                conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(name)))
                made.append(name)
        if {"citext", "hstore"} <= set(made):
            conn.execute("CREATE TABLE instruments (name citext PRIMARY KEY, specs hstore)")
            conn.execute("INSERT INTO instruments VALUES ('Cello', 'strings=>4'), ('Oboe', 'reed=>double')")
        if "pg_trgm" in made:
            conn.execute("CREATE INDEX instruments_name_trgm ON instruments USING gin ((name::text) gin_trgm_ops)")
    return made


def test_a_citext_and_hstore_database_verifies_on_the_default_server(scratch, tmp_path):
    made = _with_extensions(scratch, ["citext", "hstore", "pg_trgm"])
    if not {"citext", "hstore"} <= set(made):
        pytest.skip("the server under test does not offer citext and hstore")
    taken = backup.backup(scratch, "full", "custom", directory=tmp_path)
    assert {"citext", "hstore"} <= set(taken.manifest["objects"]["extension"])
    result = verify.verify(taken.path)  # the embedded server restores it
    assert result.ok, result.failures.to_string()
    assert "public.instruments" in set(result.report["object"])


def test_a_backup_needing_an_extension_the_restore_server_lacks_names_it(seeded, tmp_path):
    taken = backup.backup(seeded, "full", "custom", directory=tmp_path)
    mpath = backup.manifest_path(taken.path)
    manifest = json.loads(mpath.read_text())
    manifest["objects"]["extension"] = {**manifest["objects"].get("extension", {}), "prep_ops_no_such_extension": "1.0"}
    mpath.write_text(json.dumps(manifest))
    result = verify.verify(taken.path)
    assert not result.ok and result.scratch_database is None
    missing = result.failures.set_index("object").loc["extension prep_ops_no_such_extension"]
    assert "does not offer prep_ops_no_such_extension" in missing["actual"] and "--same-server" in missing["actual"]
    assert "not tried" in result.failures.set_index("check").loc["restore", "actual"]


def test_pgcrypto_which_the_embedded_server_lacks_is_named(scratch, tmp_path):
    if scratch.embedded or _with_extensions(scratch, ["pgcrypto"]) != ["pgcrypto"]:
        pytest.skip("needs a server other than the embedded one that offers pgcrypto (CI's PostgreSQL 15)")
    taken = backup.backup(scratch, "full", "custom", directory=tmp_path)
    result = verify.verify(taken.path)
    assert not result.ok
    assert "the embedded server does not offer pgcrypto" in " ".join(result.failures["actual"])


@pytest.mark.server_independent
def test_a_backup_that_does_not_exist_is_named_as_missing_not_as_lacking_a_manifest(tmp_path):
    from prep_ops.errors import BackupError
    from prep_ops.manifest import read_manifest

    with pytest.raises(BackupError, match=r"no backup at .*nothing\.dump: no such file or folder"):
        read_manifest(tmp_path / "nothing.dump")
    (tmp_path / "bare.dump").write_bytes(b"PGDMP")
    with pytest.raises(BackupError, match="no manifest beside .*was it made by prep-ops backup"):
        read_manifest(tmp_path / "bare.dump")


@pytest.mark.server_independent
def test_an_age_is_shown_with_the_digits_that_tell_it_from_its_limit():
    from prep_ops.verify import _hours

    assert _hours(0.0034, 0.0001) == "0.0034 h"  # not "0.0 h" against "≤ 0.0001 h"
    assert _hours(26.04, 26) == "26.04 h" and _hours(25.96, 26) == "25.96 h"
    assert _hours(3.2, 26) == "3.2 h"


def test_a_search_path_without_public_or_naming_another_schema_version_first_is_not_followed(migrated, tmp_path):
    """The migrations' bookkeeping is public.schema_version: a database whose search_path lacks public
    (or names another schema's schema_version first) still backs up, recording public's versions."""
    with db.connect(migrated, autocommit=True) as conn:
        want = {str(v): d for v, d in conn.execute("SELECT version, description FROM public.schema_version")}
        conn.execute("CREATE SCHEMA app; CREATE TABLE app.schema_version (version integer, description text)")
        conn.execute("INSERT INTO app.schema_version VALUES (999, 'not the migrations')")
        conn.execute(sql.SQL("ALTER DATABASE {} SET search_path = app").format(sql.Identifier(conn.info.dbname)))
    taken = backup.backup(migrated, "full", "custom", directory=tmp_path)
    assert want and taken.manifest["schema_versions"] == want


def test_another_tools_schema_version_table_is_not_read_as_the_migrations(scratch, tmp_path):
    """An old Flyway's public.schema_version (its versions are text, such as '1.1'; a baseline's is NULL)
    is a table like any other, not read as prep-ops' migrations; one without those columns failed the backup."""
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.schema_version (installed_rank integer PRIMARY KEY, version varchar(50),"
                     " description varchar(200) NOT NULL, script varchar(1000) NOT NULL)")
        conn.execute("INSERT INTO public.schema_version VALUES (1, NULL, '<< Flyway Baseline >>', 'baseline'),"
                     " (2, '1.1', 'init', 'V1_1__init.sql')")
    taken = backup.backup(scratch, "full", "custom", directory=tmp_path)
    assert taken.manifest["schema_versions"] == {} and taken.manifest["tables"]["public.schema_version"]["rows"] == 2
    assert verify.verify(taken.path).ok


@pytest.mark.parametrize("path", ["app", "''"])
def test_a_database_search_path_does_not_make_its_own_definitions_differ_after_restore(scratch, tmp_path, path):
    """The manifest's definitions are deparsed under the source session's search_path, and the restored
    copy's under another (a restored database has no setting of its own): a foreign key to app.items read
    `REFERENCES items(id)` on a database whose search_path is app, and failed the verification of its own
    clean backup (a public table's key alike under an empty search_path)."""
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA app; CREATE TABLE app.items (id int PRIMARY KEY, name text);"
                     " CREATE TABLE app.orders (id int PRIMARY KEY, item_id int REFERENCES app.items (id));"
                     " CREATE TABLE public.lines (id int PRIMARY KEY, order_id int REFERENCES app.orders (id),"
                     " line_id int REFERENCES public.lines (id));"
                     " INSERT INTO app.items VALUES (1, 'a'); INSERT INTO app.orders VALUES (1, 1);")
        conn.execute(sql.SQL("ALTER DATABASE {} SET search_path = " + path).format(sql.Identifier(scratch.database)))
    taken = backup.backup(scratch, "full", "custom", directory=tmp_path)
    result = verify.verify(taken.path)
    assert result.ok, result.failures.to_string()
    assert "app.orders" in set(result.report["object"])


def test_a_failed_archive_restore_into_a_server_before_17_names_its_own_error_not_transaction_timeout(scratch, server,
                                                                                                     tmp_path):
    """Into PostgreSQL 15, pg_restore reports pg_dump 18's `SET transaction_timeout` (tolerated) before the
    error that failed the restore: a database owner that is not a superuser, restoring a dump holding an
    extension only a superuser may create, was told `unrecognized configuration parameter
    "transaction_timeout"`, not why."""
    import secrets

    with db.connect(scratch, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements; CREATE TABLE kept (id int PRIMARY KEY)")
    taken = backup.backup(scratch, "full", "custom", directory=tmp_path)
    owner, password = f"prep_ops_test_owner_{uuid.uuid4().hex[:6]}", secrets.token_urlsafe(12)
    target = server.with_database(f"prep_ops_test_{uuid.uuid4().hex[:10]}")
    with db.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(owner), sql.Literal(password)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(target.database), sql.Identifier(owner)))
    try:
        with pytest.raises(BackupError) as raised:
            restore.restore_into(taken.path, target.with_user(owner, password), taken.manifest)
        assert 'permission denied to create extension "pg_stat_statements"' in str(raised.value), str(raised.value)
        assert "transaction_timeout" not in str(raised.value)
    finally:
        with db.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(target.database)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(owner)))


@pytest.mark.parametrize("fmt", ["plain", "custom"])
def test_a_database_without_a_public_schema_is_restored_without_one(scratch, server, tmp_path, fmt):
    """pg_dump does not record that public was dropped, and a new database has one: the copy of a database
    without public had it back, and the verification of its own clean backup failed ("schema public:
    absent / PUBLIC:USAGE"); a restore gave the target a schema it did not have."""
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public; CREATE SCHEMA app; CREATE TABLE app.items (id int PRIMARY KEY);"
                     " INSERT INTO app.items VALUES (1)")
        conn.execute(sql.SQL("ALTER DATABASE {} SET search_path = app").format(sql.Identifier(scratch.database)))
    taken = backup.backup(scratch, "full", fmt, directory=tmp_path)
    result = verify.verify(taken.path, server=server)
    assert result.ok, result.failures.to_string()
    assert "schema public" not in set(result.report["object"])
