import shutil
import threading
import uuid

import pytest
from conftest import schema_dump, table_checksum

from prep_ops import db, migrate, seed
from prep_ops.errors import MigrationError


def test_latest_records_every_version(scratch):
    steps = migrate.apply(scratch)
    assert [s.version for s in steps] == [m.version for m in migrate.discover()]
    with db.connect(scratch) as conn:
        rows = conn.execute("SELECT version, description FROM schema_version ORDER BY version").fetchall()
    assert [r[0] for r in rows] == [s.version for s in steps]
    assert rows[0][1].startswith("The schema of the operations guide")
    assert migrate.apply(scratch) == []  # nothing left to do


def test_migration_1_is_the_guides_schema(scratch):
    migrate.apply(scratch, to=1)
    with db.connect(scratch) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name <> 'prep_ops_migrations' ORDER BY 1, ordinal_position"
        ).fetchall()
    assert ("teachers", "availability", "json") in columns
    assert ("schema_version", "description", "text") in columns
    assert {t for t, _, _ in columns} == {"users", "students", "teachers", "courses", "schema_version"}


def test_down_to_zero_and_up_again_gives_the_same_schema(scratch):
    migrate.apply(scratch)
    before = schema_dump(scratch)
    assert [s.direction for s in migrate.apply(scratch, to=0)] == ["down"] * len(migrate.discover())
    assert migrate.current_version(scratch) == 0
    migrate.apply(scratch)
    assert schema_dump(scratch) == before


def test_plan_changes_nothing(scratch):
    migrate.apply(scratch, to=2)
    before = schema_dump(scratch)
    steps = migrate.plan(scratch)
    assert [s.version for s in steps] == [3, 4, 5] and "CREATE TABLE enrollments" in steps[0].sql
    assert [s.direction for s in migrate.plan(scratch, to=0)] == ["down", "down"]
    assert schema_dump(scratch) == before


def test_unknown_version_is_refused(scratch):
    with pytest.raises(MigrationError, match="no migration 99"):
        migrate.plan(scratch, to=99)


@pytest.fixture
def migrations_copy(tmp_path):
    directory = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, directory)
    return directory


def test_broken_migration_leaves_no_trace(migrated, migrations_copy):
    seed.seed(migrated, students=50, seed=1)
    (migrations_copy / "0006_broken.up.sql").write_text(
        "-- half good, half broken\nALTER TABLE users ADD COLUMN nickname TEXT;\n"
        "UPDATE users SET nickname = 'x';\nSELECT no_such_function();\n")
    (migrations_copy / "0006_broken.down.sql").write_text("ALTER TABLE users DROP COLUMN nickname;\n")
    schema_before, users_before = schema_dump(migrated), table_checksum(migrated, "users")
    versions_before = table_checksum(migrated, "schema_version")
    with pytest.raises(MigrationError, match="0006_broken.*rolled back"):
        migrate.apply(migrated, directory=migrations_copy)
    assert schema_dump(migrated) == schema_before
    assert table_checksum(migrated, "users") == users_before
    assert table_checksum(migrated, "schema_version") == versions_before


def test_edited_applied_migration_is_refused_by_name(scratch, migrations_copy):
    migrate.apply(scratch, to=3, directory=migrations_copy)
    path = migrations_copy / "0002_guide_indexes.up.sql"
    path.write_text(path.read_text() + "\nCREATE INDEX sneaky ON users(role);\n")
    with pytest.raises(MigrationError, match="0002_guide_indexes was edited"):
        migrate.apply(scratch, directory=migrations_copy)
    assert migrate.current_version(scratch) == 3
    assert [s.changed for s in migrate.status(scratch, migrations_copy)][:3] == [False, True, False]


def test_concurrent_runs_do_not_interleave(scratch):
    results, errors = [], []

    def run():
        try:
            results.append(migrate.apply(scratch))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # each migration ran exactly once, in one of the runs
    assert sorted(s.version for steps in results for s in steps) == [m.version for m in migrate.discover()]
    assert migrate.current_version(scratch) == migrate.discover()[-1].version


def test_down_to_zero_works_after_masked_views_and_audit_triggers(migrated):
    from prep_ops import audit_log, masking, roles

    seed.seed(migrated, students=50, seed=2)
    role_set = roles.RoleSet.with_prefix(f"prep_ops_mig_{uuid.uuid4().hex[:6]}_")
    roles.apply(migrated, role_set)
    try:
        masking.apply(migrated, role_set)
        audit_log.enable(migrated)
        assert masking.views(migrated)
        migrate.apply(migrated, to=0)
        assert migrate.current_version(migrated) == 0 and masking.views(migrated) == []
        migrate.apply(migrated)
        assert migrate.current_version(migrated) == migrate.discover()[-1].version
    finally:
        roles.drop(migrated, role_set)


def test_a_down_step_that_fails_says_where_the_schema_stands(migrated, migrations_copy):
    with db.connect(migrated) as conn:  # something the down migrations do not know depends on a column
        conn.execute("CREATE VIEW private_recordings AS SELECT id, audition_recording FROM students")
        conn.commit()
    with pytest.raises(MigrationError) as failed:
        migrate.apply(migrated, to=0, directory=migrations_copy)
    message = str(failed.value)
    assert "0004_payments_profiles (down) failed" in message and "private_recordings depends on" in message
    assert "the 1 step(s) before it stayed done, so the schema is at version 4" in message
    assert migrate.current_version(migrated) == 4
