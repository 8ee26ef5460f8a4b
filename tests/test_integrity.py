"""Integrity with amcheck and data checksums, on a real server; corruption made by flipping bytes on disk."""

import json
import secrets
import subprocess
import sys

import psycopg
import pytest
from psycopg import sql

from prep_ops import db, embedded, integrity, roles
from prep_ops.errors import ParameterError

from conftest import cli_env, judge_as_elsewhere


def prep_ops(*args, env=None):
    return subprocess.run([sys.executable, "-m", "prep_ops", *args], capture_output=True, text=True, env=env)


def test_integrity_is_clean_on_sample_data(seeded):
    with db.connect(seeded, autocommit=True) as conn:
        report = integrity.check(conn, install=True)
    assert report.skipped == "" and report.outcome == "ok", report.summary
    checked = report.relations.set_index("relation")
    assert checked.loc["enrollments", "check"] == "verify_heapam"
    assert checked.loc["enrollments_pkey", "check"] == "bt_index_check"
    assert checked.loc["pg_class", "kind"] == "table"  # the catalogs are checked too
    assert (report.relations["status"] == "ok").all() and report.data_checksums in ("on", "off")


def test_integrity_of_named_tables_checks_them_and_their_indexes_only(seeded):
    with db.connect(seeded, autocommit=True) as conn:
        report = integrity.check(conn, ["public.students"], install=True)
        assert set(report.relations["table_name"]) == {"students"}
        assert {"students", "students_pkey"} <= set(report.relations["relation"])
        with pytest.raises(ParameterError, match="unknown table 'archive.nothing'"):
            integrity.check(conn, ["archive.nothing"])


def test_integrity_skips_where_amcheck_is_not_installed(scratch):
    with db.connect(scratch, autocommit=True) as conn:
        report = integrity.check(conn, install=False)
    assert report.outcome == "skipped" and report.relations.empty
    assert "amcheck is not installed in this database" in report.skipped
    assert report.summary.startswith("amcheck skipped: ")
    assert "no corruption found" not in report.summary  # nothing was looked at
    assert report.summary.endswith("nothing was checked" if report.data_checksums == "off"
                                   else "no data-checksum failure counted; no page was read to check")


def test_integrity_skips_where_amcheck_cannot_be_created(scratch):
    """A role that may not create the (untrusted) extension gets SKIP with the server's reason."""
    name, password = f"prep_ops_nosuper_{secrets.token_hex(3)}", secrets.token_hex(12)
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password)))
        conn.execute(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(sql.Identifier(scratch.database), sql.Identifier(name)))
    try:
        with db.connect(roles.login(scratch, name, password), autocommit=True) as conn:
            report = integrity.check(conn, install=True)
        assert report.outcome == "skipped" and "amcheck could not be created: permission denied" in report.skipped
    finally:
        with db.connect(scratch, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def test_integrity_skips_where_amcheck_is_installed_but_its_functions_are_not_the_roles_to_run(scratch):
    """A superuser installed amcheck; the database's owner, not a superuser, may not execute its functions
    (amcheck revokes them from PUBLIC). Every relation was tried and failed, and the verdict read "245
    relation(s) checked; ...; 245 relation(s) could not be checked": nothing was checked, so SKIP, saying
    what to grant; with bt_index_check granted, the indexes are checked and the tables said not to be."""
    name, password = f"prep_ops_owner_{secrets.token_hex(3)}", secrets.token_hex(12)
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck; CREATE TABLE kept (id int PRIMARY KEY)")
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password)))
        conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(scratch.database), sql.Identifier(name)))
        conn.execute(sql.SQL("ALTER TABLE kept OWNER TO {}").format(sql.Identifier(name)))
    try:
        with db.connect(roles.login(scratch, name, password), autocommit=True) as conn:
            report = integrity.check(conn, install=True)
        assert report.outcome == "skipped" and report.relations.empty, report.summary
        assert "may grant it EXECUTE" in report.skipped and "bt_index_check" in report.skipped, report.skipped
        with db.connect(scratch, autocommit=True) as conn:
            schema = conn.execute("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'amcheck'").fetchone()[0]
            conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION {}(regclass, boolean) TO {}").format(
                sql.Identifier(schema, "bt_index_check"), sql.Identifier(name)))
        with db.connect(roles.login(scratch, name, password), autocommit=True) as conn:
            report = integrity.check(conn, ["kept"], install=True)
        assert report.outcome == "ok" and list(report.relations["relation"]) == ["kept_pkey"], report.summary
        assert any("verify_heapam" in note and "tables not checked" in note for note in report.notes), report.notes
    finally:
        with db.connect(scratch, autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO CURRENT_USER").format(sql.Identifier(scratch.database)))
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def _flip(path, block: int) -> None:
    """Invert 16 bytes in the middle of page `block` of a relation file."""
    data = bytearray(path.read_bytes())
    start = block * 8192 + 4000
    data[start:start + 16] = bytes(b ^ 0xFF for b in data[start:start + 16])
    path.write_bytes(bytes(data))


def test_integrity_finds_flipped_bytes_in_an_index_and_names_it(private_server):
    target = db.resolve_target()
    with db.connect(target, autocommit=True) as conn:
        conn.execute("CREATE TABLE marks (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO marks SELECT g, md5(g::text) FROM generate_series(1, 20000) g")
        conn.execute("CHECKPOINT")
        index_file = conn.execute("SELECT pg_relation_filepath('marks_pkey')").fetchone()[0]
        assert integrity.check(conn, install=True).outcome == "ok"
    embedded.stop()  # the server is stopped before its files are touched
    _flip(private_server / index_file, block=3)
    with db.connect(db.resolve_target(), autocommit=True) as conn:
        report = integrity.check(conn)
    assert report.outcome == "corrupt"
    bad = report.corrupt.set_index("relation")
    assert list(bad.index) == ["marks_pkey"] and bad.loc["marks_pkey", "block"] == 3
    assert "marks_pkey block 3" in report.summary

    result = prep_ops("integrity", env=cli_env())
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL integrity" in result.stdout and "marks_pkey block 3" in result.stdout
    as_json = json.loads(prep_ops("integrity", "--json", env=cli_env()).stdout)
    assert as_json["outcome"] == "corrupt"
    assert [r["relation"] for r in as_json["relations"] if r["status"] == "corrupt"] == ["marks_pkey"]


def _zero(path) -> None:
    """Every page of a relation file all zeros (PostgreSQL reads such a page as new and empty)."""
    path.write_bytes(bytes(path.stat().st_size))


@pytest.mark.server_independent
def test_missing_toast_of_a_live_row_is_corruption_of_a_deleted_version_only_a_note(private_server):
    """verify_heapam follows the TOAST of a row version deleted after the oldest transaction still running
    (in any database); where that TOAST is gone (VACUUM, whose horizon leaves other databases out, removed
    it: seen while other databases were created and dropped) no new query can read the row: a note. A row
    a new query sees, with its TOAST gone, is corruption. Here the TOAST pages are zeroed on disk."""
    target = db.resolve_target()
    files = {}
    with db.connect(target, autocommit=True) as conn:
        for table in ("live_notes", "deleted_notes"):
            conn.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, body text)").format(sql.Identifier(table)))
            conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN body SET STORAGE EXTERNAL").format(sql.Identifier(table)))
            conn.execute(sql.SQL("INSERT INTO {} SELECT 1, string_agg(md5(g::text), '') FROM generate_series(1, 1000) g")
                         .format(sql.Identifier(table)))
            files[table] = conn.execute("SELECT pg_relation_filepath(reltoastrelid) FROM pg_class WHERE oid = %s::regclass",
                                        (table,)).fetchone()[0]
        conn.execute("CHECKPOINT")
    embedded.stop()  # the server is stopped before its files are touched
    for path in files.values():
        _zero(private_server / path)
    with db.connect(db.resolve_target(), autocommit=True) as holder, \
            db.connect(db.resolve_target(), autocommit=True) as conn:
        holder.execute("BEGIN")
        holder.execute("SELECT pg_current_xact_id()").fetchone()  # a transaction running from before the DELETE
        conn.execute("DELETE FROM deleted_notes")
        report = integrity.check(conn, install=True)
        holder.execute("ROLLBACK")
    by = report.relations.set_index("relation")
    assert by.loc["live_notes", "status"] == "corrupt" and "not found in toast table" in by.loc["live_notes", "detail"]
    assert by.loc["deleted_notes", "status"] == "ok", by.loc["deleted_notes", "detail"]
    assert "only on deleted row versions" in by.loc["deleted_notes", "detail"]
    assert any(n.startswith("deleted_notes: 1 TOAST finding(s) only on deleted row versions") for n in report.notes)
    assert report.outcome == "corrupt" and "live_notes" in report.summary and "deleted_notes" not in report.summary


def _toasted_table(conn, table: sql.Identifier) -> str:
    """`table` (id, tenant, body) with one row whose body lives in TOAST; the TOAST table's file path."""
    conn.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, tenant text, body text)").format(table))
    conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN body SET STORAGE EXTERNAL").format(table))
    conn.execute(sql.SQL("INSERT INTO {} SELECT 1, 'acme', string_agg(md5(g::text), '') FROM generate_series(1, 1000) g")
                 .format(table))
    return conn.execute("SELECT pg_relation_filepath(reltoastrelid) FROM pg_class WHERE oid = %s::regclass",
                        (table.as_string(conn),)).fetchone()[0]


def _unreadable(target, table: sql.Identifier) -> bool:
    """Whether reading the table's TOASTed column fails, as the server's superuser."""
    with db.connect(target, autocommit=True) as conn:
        try:
            conn.execute(sql.SQL("SELECT length(body) FROM {}").format(table)).fetchall()
        except psycopg.Error as exc:
            return "missing chunk" in str(exc) or "unexpected chunk" in str(exc)
    return False


@pytest.mark.server_independent
def test_row_level_security_cannot_hide_a_live_rows_missing_toast_as_a_deleted_version(private_server):
    """A policy hides the live row from the checking role: the "is it deleted?" look must not take that for
    deleted (it runs with row_security off, which fails instead of filtering), so the finding stands."""
    table = sql.Identifier("Tenant Data", 'odd "notes"')
    with db.connect(db.resolve_target(), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION amcheck")
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier("Tenant Data")))
        path = _toasted_table(conn, table)
        conn.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(table))
        conn.execute(sql.SQL("CREATE POLICY own_tenant ON {} USING (tenant = current_user)").format(table))
        conn.execute("CREATE ROLE monitor LOGIN")
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO monitor").format(sql.Identifier("Tenant Data")))
        conn.execute(sql.SQL("GRANT SELECT ON {} TO monitor").format(table))
        conn.execute("GRANT EXECUTE ON FUNCTION verify_heapam(regclass, boolean, boolean, text, bigint, bigint) TO monitor")
        conn.execute("CHECKPOINT")
    embedded.stop()
    _zero(private_server / path)
    target = db.resolve_target()
    with psycopg.connect(target.url, user="monitor", autocommit=True) as conn:
        report = integrity.check(conn, ['"Tenant Data"."odd ""notes"""'], install=False)
    assert _unreadable(target, table)  # the row is live, and its TOAST gone
    by = report.relations.set_index("relation")
    assert by.loc['"Tenant Data"."odd ""notes"""', "status"] == "corrupt", report.notes
    assert report.outcome == "corrupt" and not any("deleted row versions" in n for n in report.notes)


@pytest.mark.server_independent
def test_an_update_between_verify_heapam_and_the_deleted_look_cannot_hide_a_live_rows_missing_toast(
        private_server, monkeypatch):
    """The row is updated (another column) after verify_heapam read it: the version it named is gone, the
    new one carries the same broken TOAST pointer. The second look finds it there: corruption, even when
    the row moves again before that look too."""
    table = sql.Identifier("public", "live_notes")
    with db.connect(db.resolve_target(), autocommit=True) as conn:
        path = _toasted_table(conn, table)
        conn.execute("CHECKPOINT")
    embedded.stop()
    _zero(private_server / path)
    looked = integrity._on_deleted_versions
    updates = []

    def after_an_update(conn, relation, problems):  # a client updates the row before each look
        with db.connect(db.resolve_target(), autocommit=True) as other:
            other.execute("UPDATE live_notes SET tenant = %s WHERE id = 1", (f"globex {len(updates)}",))
        updates.append(relation)
        return looked(conn, relation, problems)

    monkeypatch.setattr(integrity, "_on_deleted_versions", after_an_update)
    with db.connect(db.resolve_target(), autocommit=True) as conn:
        report = integrity.check(conn, ["public.live_notes"], install=True)
    assert len(updates) == 2 and len(set(updates)) == 1  # the first look took it for deleted: a second one ran
    assert _unreadable(db.resolve_target(), table)
    by = report.relations.set_index("relation")
    assert by.loc["live_notes", "status"] == "corrupt", report.notes
    assert "not found in toast table" in by.loc["live_notes", "detail"]


@pytest.mark.server_independent
def test_a_deleted_parent_rows_toast_is_not_matched_to_an_inheritance_childs_row_at_the_same_ctid(private_server):
    """The deleted look reads the table ONLY: a child's live row at the same ctid is another row."""
    with db.connect(db.resolve_target(), autocommit=True) as conn:
        path = _toasted_table(conn, sql.Identifier("public", "parent_notes"))
        conn.execute("CREATE TABLE child_notes () INHERITS (parent_notes)")
        conn.execute("INSERT INTO child_notes VALUES (2, 'acme', 'short')")  # at (0,1) of the child
        conn.execute("CHECKPOINT")
    embedded.stop()
    _zero(private_server / path)
    with db.connect(db.resolve_target(), autocommit=True) as holder, \
            db.connect(db.resolve_target(), autocommit=True) as conn:
        holder.execute("BEGIN")
        holder.execute("SELECT pg_current_xact_id()").fetchone()  # keeps the deleted version's TOAST checked
        conn.execute("DELETE FROM ONLY parent_notes")
        report = integrity.check(conn, ["public.parent_notes"], install=True)
        holder.execute("ROLLBACK")
    by = report.relations.set_index("relation")
    assert by.loc["parent_notes", "status"] == "ok", by.loc["parent_notes", "detail"]
    assert "only on deleted row versions" in by.loc["parent_notes", "detail"]


def test_integrity_command_passes_on_a_clean_database(migrated):
    result = prep_ops("integrity", "--tables", "public.users", env=cli_env(migrated))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith(("PASS integrity: ", "SKIP integrity: "))
    if not migrated.scratch:
        assert "SKIP integrity: amcheck skipped" in result.stdout


def test_amcheck_is_created_by_default_on_a_scratch_database_only(scratch, monkeypatch):
    with db.connect(scratch, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'amcheck'").fetchone():
            pytest.skip("this server does not offer amcheck")
        judge_as_elsewhere(monkeypatch)  # as on a server someone named by a URL
        elsewhere = integrity.check(conn)
        monkeypatch.setenv("PREP_OPS_SCRATCH", "1")
        scratch_report = integrity.check(conn)
    assert "amcheck is not installed in this database" in elsewhere.skipped
    assert scratch_report.skipped == "" and scratch_report.outcome == "ok"


def test_relations_are_named_with_their_schema_whatever_the_search_path_and_checked_by_oid(scratch):
    """regclass text leaves out a schema the session's search_path holds: app.items read "items", the name
    of public.items too. Named as the rest of prep-ops names tables, and each checked by its oid."""
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute('CREATE SCHEMA app; CREATE TABLE app.items (id int PRIMARY KEY); CREATE TABLE public.items (id int PRIMARY KEY);'
                     ' CREATE SCHEMA "Odd Schema"; CREATE TABLE "Odd Schema"."My Items" (id int PRIMARY KEY)')
        conn.execute('SET search_path = app, "Odd Schema", public')
        report = integrity.check(conn, ["app.items", "public.items", '"Odd Schema"."My Items"'], install=True)
    if report.skipped:
        pytest.skip(report.skipped)
    checked = report.relations.set_index("relation")
    assert set(checked.index) == {"app.items", "app.items_pkey", "items", "items_pkey", '"Odd Schema"."My Items"',
                                  '"Odd Schema"."My Items_pkey"'}
    assert checked.loc["app.items_pkey", "table_name"] == "app.items" and (checked["status"] == "ok").all()


def test_integrity_behind_a_table_locked_access_exclusive_says_it_was_not_checked_instead_of_waiting(scratch):
    """amcheck's AccessShareLock queues behind an ACCESS EXCLUSIVE lock (VACUUM FULL, LOCK TABLE): the
    integrity command, and runbooks 05 and 08, waited for as long as that session held it. Each relation
    waits db.LOCK_WAIT now, and is listed as not checked, saying why."""
    import time

    with db.connect(scratch, autocommit=True) as conn, db.connect(scratch) as holder:
        conn.execute("CREATE TABLE lesson_rooms (id int PRIMARY KEY); CREATE TABLE scores (id int)")
        conn.execute("SET statement_timeout = '20s'")  # the old code waits this long on each, then fails otherwise
        holder.execute("LOCK TABLE lesson_rooms IN ACCESS EXCLUSIVE MODE")
        began = time.monotonic()
        try:
            report = integrity.check(conn, ["lesson_rooms", "scores"], install=True)
        finally:
            holder.rollback()
        waited = time.monotonic() - began
        assert conn.execute("SELECT current_setting('lock_timeout')").fetchone()[0] == "0"  # as it was
    assert report.outcome == "incomplete" and waited < 30
    assert set(report.errors["relation"]) == {"lesson_rooms", "lesson_rooms_pkey"}
    assert report.errors["detail"].str.startswith("not checked: locked by another session").all()
    assert report.relations.set_index("relation").loc["scores", "status"] == "ok"
