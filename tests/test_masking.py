"""Masked views on a real server: the analyst logs in, sees the shape of the data and none of the people."""

import hashlib
import re
import secrets
import uuid

import psycopg
import pytest
from psycopg import sql

from prep_ops import db, masking, migrate, roles
from prep_ops.errors import ConfirmationRequired, ParameterError


@pytest.fixture(scope="module")
def masked(seeded):
    """The module's seeded database with its own roles and the masked views."""
    rs = roles.RoleSet.with_prefix(f"t{uuid.uuid4().hex[:8]}_")
    passwords = {kind: secrets.token_urlsafe(16) for kind in roles.LOGIN_KINDS}
    roles.apply(seeded, rs, passwords)
    masking.apply(seeded, rs)
    yield seeded, rs, passwords
    roles.drop(seeded, rs)


@pytest.fixture(scope="module")
def analyst(masked):
    target, rs, passwords = masked
    return roles.login(target, rs.analyst, passwords["analyst"])


def test_analyst_reads_every_masked_view(masked, analyst):
    target, _, _ = masked
    assert masking.views(target) == sorted(f"masked.{v}" for v in masking.VIEWS)
    with db.connect(analyst) as conn:
        for view in masking.VIEWS:
            table_rows = None
            rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("masked", view))).fetchone()[0]
            with db.connect(target) as owner:
                table_rows = owner.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(view))).fetchone()[0]
            assert rows == table_rows > 0, view


@pytest.mark.parametrize("table, column", [("users", "email"), ("users", "full_name"), ("users", "username"),
                                           ("students", "date_of_birth"), ("students", "guardian"),
                                           ("students", "audition_recording"), ("tuition_payments", "amount")])
def test_analyst_cannot_read_personal_columns(analyst, table, column):
    attempts = roles.try_access(analyst, table, column=column)
    assert not attempts["allowed"].any(), attempts.to_string()


def test_analyst_cannot_read_the_salt_or_call_the_masking_functions(analyst):
    with db.connect(analyst) as conn:
        for statement in ("SELECT value FROM masking_private.salt",
                          "SELECT masking_private.pseudonym('mateo', 'guess')"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                with conn.transaction():
                    conn.execute(statement)


def test_no_personal_value_shows_unchanged(masked):
    target, _, _ = masked
    leaks = masking.leaks(target)
    assert len(leaks) == 6 and leaks["unmasked"].sum() == 0, leaks.to_string()


def test_masks_keep_the_shape(masked, analyst):
    target, _, _ = masked
    with db.connect(target) as owner:
        real = {r[0]: r for r in owner.execute("SELECT u.id, u.email, u.full_name, s.date_of_birth, s.guardian "
                                               "FROM users u LEFT JOIN students s ON s.user_id = u.id").fetchall()}
    users = masking.preview(analyst, "users", limit=1000)
    students = masking.preview(analyst, "students", limit=1000)
    for row in users.itertuples():
        email, full_name = real[row.id][1], real[row.id][2]
        assert row.email.split("@")[1] == email.split("@")[1]  # the domain stays
        assert re.fullmatch(r"[0-9a-f]{12}", row.email.split("@")[0])  # the person goes
        assert row.full_name == " ".join(w[0] + "." for w in full_name.split())
        assert row.username.startswith("user-") and row.created_month.day == 1
    by_user = {r[0]: r for r in real.values()}
    for row in students.itertuples():
        born, guardian = by_user[row.user_id][3], by_user[row.user_id][4]
        assert row.birth_year == born.year
        assert row.guardian["phone"][:4] == guardian["phone"][:4] and "X" in row.guardian["phone"]
        assert row.guardian["email"].split("@")[1] == guardian["email"].split("@")[1]
    assert "date_of_birth" not in students.columns and "audition_recording" not in students.columns


def test_pseudonyms_are_stable_and_salted(masked, analyst):
    target, rs, _ = masked
    before = masking.preview(analyst, "users", limit=20)
    masking.apply(target, rs)  # again: same salt, same pseudonyms
    after = masking.preview(analyst, "users", limit=20)
    assert before.equals(after)
    with db.connect(target) as owner:
        email = owner.execute("SELECT email FROM users WHERE id = %s", (int(before["id"][0]),)).fetchone()[0]
    unsalted = hashlib.sha256(email.split("@")[0].lower().encode()).hexdigest()[:12]
    assert not before["email"][0].startswith(unsalted)


def test_enrollment_figures_survive_masking(masked, analyst):
    target, _, _ = masked
    seen = masking.by_instrument(analyst)
    with db.connect(target) as owner:
        real = dict(((i, lv), n) for i, lv, n in owner.execute(
            "SELECT s.instrument, s.level, count(DISTINCT s.id) FROM students s JOIN enrollments e ON e.student_id = s.id "
            "AND e.status IN ('enrolled', 'completed') GROUP BY 1, 2").fetchall())
    assert dict(zip(zip(seen["instrument"], seen["level"]), seen["students"])) == real


def test_preview_checks_its_view(analyst):
    with pytest.raises(ParameterError, match="no masked view"):
        masking.preview(analyst, "users; DROP TABLE users")


def test_apply_needs_the_analyst_role_and_confirm(migrated, monkeypatch):
    with pytest.raises(ParameterError, match="apply the roles first"):
        masking.apply(migrated, roles.RoleSet.with_prefix(f"t{uuid.uuid4().hex[:8]}_"))
    monkeypatch.delenv("PREP_OPS_SCRATCH", raising=False)
    with pytest.raises(ConfirmationRequired):
        masking.apply(db.Target(migrated.url, embedded=False))
    with pytest.raises(ConfirmationRequired):
        masking.remove(db.Target(migrated.url, embedded=False))


def test_migrating_down_drops_the_masked_views_and_remove_is_idempotent(migrated):
    rs = roles.RoleSet.with_prefix(f"t{uuid.uuid4().hex[:8]}_")
    try:
        roles.apply(migrated, rs)
        masking.apply(migrated, rs)
        migrate.apply(migrated, 3)  # the views hold on to users.full_name: the down step drops them first
        assert migrate.current_version(migrated) == 3 and masking.views(migrated) == []
        assert masking.remove(migrated) is False
        migrate.apply(migrated)
        masking.apply(migrated, rs)
        assert masking.remove(migrated) is True and masking.views(migrated) == []
    finally:
        roles.drop(migrated, rs)
