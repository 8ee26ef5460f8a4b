"""Masked views on a real server: the analyst logs in, sees the shape of the data and none of the people."""

import hashlib
import re
import secrets
import time
import uuid

import psycopg
import pytest
from conftest import judge_as_elsewhere
from psycopg import sql

from prep_ops import db, masking, migrate, roles
from prep_ops.errors import ConfirmationRequired, ParameterError


@pytest.fixture(scope="module")
def masked(seeded):
    """The module's seeded database with its own roles and the masked views."""
    rs = roles.RoleSet.with_prefix(f"t{uuid.uuid4().hex[:8]}_")
    passwords = {kind: secrets.token_urlsafe(16) for kind in roles.LOGIN_KINDS}
    with db.connect(seeded, autocommit=True) as conn:
        roles.apply(conn, rs, passwords)
        masking.apply(conn, rs)
        yield conn, rs, passwords
        roles.drop(conn, rs)


@pytest.fixture(scope="module")
def analyst(seeded, masked):
    _, rs, passwords = masked
    return roles.login(seeded, rs.analyst, passwords["analyst"])


@pytest.fixture(scope="module")
def as_analyst(analyst):
    """The analyst's own connection."""
    with db.connect(analyst, autocommit=True) as conn:
        yield conn


def test_analyst_reads_every_masked_view(masked, analyst):
    owner, _, _ = masked
    assert masking.views(owner) == sorted(f"masked.{v}" for v in masking.VIEWS)
    with db.connect(analyst) as conn:
        for view in masking.VIEWS:
            rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("masked", view))).fetchone()[0]
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
    owner, _, _ = masked
    leaks = masking.leaks(owner)
    assert len(leaks) == 6 and leaks["unmasked"].sum() == 0, leaks.to_string()


def test_the_leak_check_behind_another_sessions_exclusive_lock_gives_up_naming_the_table_never_waits(masked, seeded):
    """Runbook 06's "masked views hide every personal value" reads the tables behind the views: behind another
    session's ACCESS EXCLUSIVE lock on one (a VACUUM FULL of users) it waited for as long as the lock was held.
    It gives up after db.LOCK_WAIT now, and `unmasked` says why (the runbook's SKIP), naming the table and holder."""
    owner, _, _ = masked
    with db.connect(seeded, application_name="holder-app") as holder:
        holder.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        leaks, why = masking.unmasked(owner)
        took = time.monotonic() - started
        pid = holder.info.backend_pid
    assert leaks is None and f"public.users by pid {pid} (application holder-app" in why, why
    assert why.startswith(f"the masked views' personal columns could not be read within {db.LOCK_WAIT}"), why
    assert took < 15
    leaks, why = masking.unmasked(owner)  # the lock gone: read, and judged
    assert why == "" and leaks["unmasked"].sum() == 0


def test_masks_keep_the_shape(masked, as_analyst):
    owner, _, _ = masked
    real = {r[0]: r for r in owner.execute("SELECT u.id, u.email, u.full_name, s.date_of_birth, s.guardian "
                                           "FROM users u LEFT JOIN students s ON s.user_id = u.id").fetchall()}
    users = masking.preview(as_analyst, "users", limit=1000)
    students = masking.preview(as_analyst, "students", limit=1000)
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


def test_pseudonyms_are_stable_and_salted(masked, as_analyst):
    owner, rs, _ = masked
    before = masking.preview(as_analyst, "users", limit=20)
    masking.apply(owner, rs)  # again: same salt, same pseudonyms
    after = masking.preview(as_analyst, "users", limit=20)
    assert before.equals(after)
    email = owner.execute("SELECT email FROM users WHERE id = %s", (int(before["id"][0]),)).fetchone()[0]
    unsalted = hashlib.sha256(email.split("@")[0].lower().encode()).hexdigest()[:12]
    assert not before["email"][0].startswith(unsalted)


def test_enrollment_figures_survive_masking(masked, as_analyst):
    owner, _, _ = masked
    seen = masking.by_instrument(as_analyst)
    real = dict(((i, lv), n) for i, lv, n in owner.execute(
        "SELECT s.instrument, s.level, count(DISTINCT s.id) FROM students s JOIN enrollments e ON e.student_id = s.id "
        "AND e.status IN ('enrolled', 'completed') GROUP BY 1, 2").fetchall())
    assert dict(zip(zip(seen["instrument"], seen["level"]), seen["students"])) == real


def test_preview_checks_its_view(as_analyst):
    with pytest.raises(ParameterError, match="no masked view"):
        masking.preview(as_analyst, "users; DROP TABLE users")


def test_seen_by_reads_as_the_logged_in_role(analyst, as_analyst):
    users, students, by_instrument = masking.seen_by(analyst)
    assert users.equals(masking.preview(as_analyst, "users")) and len(students) == 5
    assert list(by_instrument.columns) == list(masking.by_instrument(as_analyst).columns) and len(by_instrument) == 10


def test_apply_needs_the_analyst_role_and_confirm(owner, monkeypatch):
    with pytest.raises(ParameterError, match="apply the roles first"):
        masking.apply(owner, roles.RoleSet.with_prefix(f"t{uuid.uuid4().hex[:8]}_"))
    judge_as_elsewhere(monkeypatch)  # as on a server someone named by a URL
    with pytest.raises(ConfirmationRequired, match="creating the masked views"):
        masking.apply(owner)
    with pytest.raises(ConfirmationRequired, match="dropping the masked views"):
        masking.remove(owner)


def test_apply_without_the_masking_migration_says_migrate(owner):
    rs = roles.RoleSet.with_prefix(f"t{uuid.uuid4().hex[:8]}_")
    try:
        roles.apply(owner, rs)
        migrate.apply(owner, to=6)
        with pytest.raises(masking.MaskingError, match="no schema masked .* migrate to the latest version"):
            masking.apply(owner, rs)
    finally:
        roles.drop(owner, rs)


def test_migrating_down_drops_the_masked_views_and_remove_is_idempotent(owner):
    rs = roles.RoleSet.with_prefix(f"t{uuid.uuid4().hex[:8]}_")
    try:
        roles.apply(owner, rs)
        masking.apply(owner, rs)
        migrate.apply(owner, 6)  # the views go with their schema (0007 down)
        assert migrate.current_version(owner) == 6 and masking.views(owner) == []
        assert masking.remove(owner) is False
        migrate.apply(owner)
        masking.apply(owner, rs)
        migrate.apply(owner, 3)  # the views hold on to users.full_name: the down steps drop them first
        assert migrate.current_version(owner) == 3 and masking.views(owner) == []
        migrate.apply(owner)
        masking.apply(owner, rs)
        assert masking.remove(owner) is True and masking.views(owner) == []
        assert masking.remove(owner) is False
    finally:
        roles.drop(owner, rs)


def test_masking_functions_resist_search_path_hijack(scratch):
    """Where a role may CREATE in public (PUBLIC may, up to PostgreSQL 14), the analyst puts its own
    convert_to(), sha256() and || first on its search_path: against the functions of 0007 they are handed
    the salt; after 0008 (schema-qualified calls, a fixed search_path) they are never called."""
    rs = roles.RoleSet.with_prefix(f"t{uuid.uuid4().hex[:8]}_")
    passwords = {kind: secrets.token_urlsafe(16) for kind in roles.LOGIN_KINDS}
    hijack = ["CREATE FUNCTION public.convert_to(t text, e name) RETURNS bytea LANGUAGE plpgsql AS "
              "$$ BEGIN RAISE NOTICE 'stolen %', t; RETURN pg_catalog.convert_to(t, e); END $$",
              "CREATE FUNCTION public.sha256(b bytea) RETURNS bytea LANGUAGE plpgsql AS "
              "$$ BEGIN RAISE NOTICE 'stolen %', pg_catalog.encode(b, 'escape'); RETURN pg_catalog.sha256(b); END $$",
              "CREATE FUNCTION public.steal_cat(a text, b text) RETURNS text LANGUAGE plpgsql AS "
              "$$ BEGIN RAISE NOTICE 'stolen %', a; RETURN pg_catalog.textcat(a, b); END $$",
              "CREATE OPERATOR public.|| (LEFTARG = text, RIGHTARG = text, FUNCTION = public.steal_cat)"]

    def read_as_analyst() -> tuple[list[str], list]:
        heard = []
        with db.connect(roles.login(scratch, rs.analyst, passwords["analyst"]), autocommit=True) as conn:
            conn.add_notice_handler(lambda diag: heard.append(diag.message_primary or ""))
            conn.execute("SET search_path = public, pg_catalog")
            rows = conn.execute("SELECT email, username, full_name FROM masked.users ORDER BY id").fetchall()
            rows += conn.execute("SELECT guardian::text FROM masked.students ORDER BY id").fetchall()
        return heard, rows

    with db.connect(scratch, autocommit=True) as owner:
        migrate.apply(owner, to=7)
        owner.execute("INSERT INTO users (username, email, role, full_name) VALUES "
                      "('mateo.tsosie', 'mateo.tsosie@yahoo.com', 'student', 'Mateo Tsosie') RETURNING id")
        try:
            roles.apply(owner, rs, passwords)
            masking.apply(owner, rs)
            owner.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(rs.analyst)))
            with db.connect(roles.login(scratch, rs.analyst, passwords["analyst"]), autocommit=True) as conn:
                for statement in hijack:
                    conn.execute(statement)
            salt = owner.execute("SELECT value FROM masking_private.salt").fetchone()[0]
            heard, before = read_as_analyst()
            assert any(salt in line for line in heard), heard  # the attack works on 0007's functions
            migrate.apply(owner)
            heard, after = read_as_analyst()
            assert heard == [] and after == before and len(after) == 1  # never called; the same pseudonyms
            assert not any("mateo" in str(row).lower() or salt in str(row) for row in after)
            configs = owner.execute("SELECT proname, proconfig FROM pg_proc "
                                    "WHERE pronamespace = 'masking_private'::regnamespace ORDER BY 1").fetchall()
            assert configs == [(name, ["search_path=pg_catalog, pg_temp"])
                               for name in ("email", "initials", "phone", "pseudonym")]
        finally:
            roles.drop(owner, rs)


def test_replacing_the_masked_views_behind_another_sessions_lock_gives_up_naming_it_and_changes_nothing(
        masked, seeded, monkeypatch):
    """Runbook 06 with confirm replaces the masked views: behind a VACUUM FULL of users (or an analyst's long
    read of a view) it waited for as long as that lasted, and every later read of those views queued behind
    it. It waits lock_watch.DDL_LOCK_WAIT at most now, changes nothing and names the session."""
    from prep_ops import lock_watch
    from prep_ops.errors import MaskingError

    owner, rs, _ = masked
    monkeypatch.setattr(lock_watch, "DDL_LOCK_WAIT", "1s")
    before = owner.execute("SELECT pg_get_viewdef('masked.users'::regclass)").fetchone()[0]
    with db.connect(seeded, application_name="holder-app") as holder:
        holder.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        pid = holder.info.backend_pid
        with pytest.raises(MaskingError, match=r"^creating the masked views failed, nothing changed: it waited 1s"
                                               rf".*public\.users by pid {pid} \(application holder-app"):
            masking.apply(owner, rs)
    assert owner.execute("SELECT pg_get_viewdef('masked.users'::regclass)").fetchone()[0] == before
    assert owner.execute("SHOW lock_timeout").fetchone()[0] == "0"
    assert masking.apply(owner, rs)  # the lock gone, it goes through
