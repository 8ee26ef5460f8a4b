"""Damage assessment against a real backup, row differences, and putting rows back."""

import pytest

from prep_ops import backup, db, migrate, recovery, seed
from prep_ops.errors import ParameterError

from conftest import _create, _drop, table_checksum


@pytest.fixture
def damaged(server, tmp_path):
    """A seeded scratch database, its full backup, and then the damage; dropped afterwards."""
    target = _create(server)
    migrate.apply(target)
    seed.seed(target, students=300, seed=11)
    before = {t: table_checksum(target, t) for t in ("enrollments", "tuition_payments", "users")}
    taken = backup.backup(target, "full", "custom", directory=tmp_path)
    with db.connect(target) as conn:
        conn.execute("DELETE FROM enrollments WHERE id % 5 = 0")
        conn.execute("UPDATE tuition_payments SET amount = 1.00, method = 'cash' WHERE id % 3 = 0")
        conn.commit()
    yield target, taken, before
    _drop(server, target)


def test_assessment_names_the_damaged_tables_only(damaged):
    target, taken, _ = damaged
    found = recovery.assess(target, taken.manifest)
    states = dict(zip(found["table"], found["state"]))
    assert states["public.enrollments"] == states["public.tuition_payments"] == "damaged"
    assert states["public.users"] == states["public.students"] == "intact"
    assert recovery.damaged_tables(found) == ["public.enrollments", "public.tuition_payments"]


def test_row_differences_count_missing_and_changed_rows(damaged):
    target, taken, _ = damaged
    found = recovery.investigate(target, taken)
    try:
        rows = found.differences.set_index("table")
        deleted = taken.manifest["tables"]["public.enrollments"]["rows"] - recovery.assess(target, taken.manifest).set_index("table").loc["public.enrollments", "rows_now"]
        assert rows.loc["public.enrollments", "missing"] == deleted > 0
        assert rows.loc["public.enrollments", "changed"] == 0
        assert rows.loc["public.tuition_payments", "changed"] > 0 and rows.loc["public.tuition_payments", "missing"] == 0
        assert rows.loc["public.enrollments", "missing_keys"].startswith("5, 10")
        assert any("public.enrollments" in line and "missing" in line for line in found.lines())
    finally:
        found.drop()


def test_repair_puts_every_row_back_and_keeps_rows_added_since(damaged):
    target, taken, before = damaged
    with db.connect(target) as conn:  # real work after the backup: must survive the repair
        conn.execute("INSERT INTO enrollments (student_id, course_id, term, status) "
                     "SELECT student_id, course_id, '2027-spring', 'enrolled' FROM enrollments ORDER BY id LIMIT 1")
        conn.commit()
    found = recovery.investigate(target, taken)
    try:
        counts = recovery.repair_rows(target, found.copy, found.damaged).set_index("table")
        assert counts.loc["public.enrollments", "inserted"] == found.differences.set_index("table").loc["public.enrollments", "missing"]
        assert counts.loc["public.tuition_payments", "updated"] == found.differences.set_index("table").loc["public.tuition_payments", "changed"]
        assert table_checksum(target, "tuition_payments") == before["tuition_payments"]
        after = recovery.row_differences(target, found.copy, found.damaged).set_index("table")
        assert after[["missing", "changed"]].sum().sum() == 0
        assert after.loc["public.enrollments", "added"] == 1
    finally:
        found.drop()


def test_a_failing_repair_changes_no_table(damaged):
    target, taken, _ = damaged
    found = recovery.investigate(target, taken)
    try:
        with db.connect(target) as conn:  # a constraint the backup's rows now break: the repair must roll back whole
            conn.execute("ALTER TABLE tuition_payments ADD CONSTRAINT no_cash CHECK (method <> 'cash') NOT VALID")
            conn.execute("ALTER TABLE enrollments ADD CONSTRAINT tiny CHECK (id < 0) NOT VALID")
            conn.commit()
        payments = table_checksum(target, "tuition_payments")
        with pytest.raises(recovery.RecoveryError, match="no table was changed"):
            recovery.repair_rows(target, found.copy, found.damaged)
        assert table_checksum(target, "tuition_payments") == payments
        assert recovery.row_differences(target, found.copy, ["public.enrollments"])["missing"].iloc[0] > 0
    finally:
        found.drop()


def test_no_backup_is_one_clear_error(migrated, tmp_path):
    with pytest.raises(recovery.RecoveryError, match=f"no full backup of {migrated.database}"):
        recovery.latest_backup(migrated, tmp_path)


def test_latest_backup_is_the_newest_full_one(damaged, tmp_path):
    target, taken, _ = damaged
    backup.backup(target, "schema", "plain", directory=tmp_path)
    assert recovery.latest_backup(target, tmp_path).path == taken.path


def test_scope_is_checked():
    assert recovery.check_scope("rows") == "rows"
    with pytest.raises(ParameterError, match="scope must be one of rows, database"):
        recovery.check_scope("everything")


def test_assessment_uses_the_manifests_own_checksum_method(damaged):
    target, taken, _ = damaged
    with db.connect(target) as conn:  # an older backup's manifest: checksums of the row text, no method named
        old = {k: v for k, v in taken.manifest.items() if k != "checksum_method"}
        old["tables"] = backup.table_checksums(conn, "row-text")
    found = recovery.assess(target, old)
    assert set(found["state"]) == {"intact"}
