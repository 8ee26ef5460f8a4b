"""A database of hostile shapes nobody here designed (tests/fixtures/odd_shapes.sql): several schemas
with spaces, dots, quotes and unicode in their names, two-level partitions (one in another schema),
extensions in a schema of their own, a view and a materialized view, an enum, domains, identity and
generated columns, inheritance, an unlogged table, row-level security forced on the owner, reserved
words as columns, tables without primary keys, 1,200 columns, an empty table. Loaded once per module."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from prep_ops import backup, db, objects, verify

from conftest import _create, _drop, drop_line, edited_copy

FIXTURE = Path(__file__).parent / "fixtures" / "odd_shapes.sql"


@pytest.fixture(scope="module")
def odd(server):
    """A scratch database holding odd_shapes.sql, dropped at the end of the module. Read it only."""
    target = _create(server)
    with db.connect(server) as conn:
        psql = db.client_program("psql", server, db.server_version(conn))
    subprocess.run([str(psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", "--dbname", target.url, "-f", str(FIXTURE)],
                   check=True, capture_output=True, text=True)
    yield target
    _drop(server, target)


@pytest.fixture(scope="module")
def taken(odd, tmp_path_factory):
    """taken(kind, fmt): the backup of the odd database, taken once per module."""
    made: dict[tuple, backup.Backup] = {}
    folder = tmp_path_factory.mktemp("odd")

    def get(kind: str, fmt: str) -> backup.Backup:
        if (kind, fmt) not in made:
            made[kind, fmt] = backup.backup(odd, kind, fmt, directory=folder)
        return made[kind, fmt]

    return get


# a fault that leaves every row and column in place, and what verification must name
SCHEMA_FAULTS = {
    "row security no longer enabled": (drop_line('ALTER TABLE "Sales"."Secret" ENABLE ROW LEVEL SECURITY'),
                                       'row security "Sales"."Secret"'),
    "row security no longer forced": (drop_line('ALTER TABLE ONLY "Sales"."Secret" FORCE ROW LEVEL SECURITY'),
                                      'row security "Sales"."Secret"'),
    "policy opened to every row": (lambda t: t.replace("USING ((owner_name = CURRENT_USER))", "USING (true)"),
                                   'policy "Sales"."Secret"."only mine"'),
    "domain check loosened": (lambda t: re.sub(r"CHECK \(\(VALUE > \(0\)::numeric\)\)", "CHECK ((VALUE >= (0)::numeric))", t),
                              'domain "my schema"."positive amount"'),
    "unlogged table made logged": (lambda t: t.replace('CREATE UNLOGGED TABLE "Sales"."Cache"', 'CREATE TABLE "Sales"."Cache"'),
                                   'unlogged table "Sales"."Cache"'),
}


@pytest.mark.parametrize("kind", ["full", "schema"])
@pytest.mark.parametrize("fault", list(SCHEMA_FAULTS))
def test_a_dump_losing_row_security_a_policy_a_domain_check_or_unlogged_fails_verification(taken, server, tmp_path,
                                                                                          fault, kind):
    edit, named = SCHEMA_FAULTS[fault]
    result = verify.verify(edited_copy(taken(kind, "plain"), tmp_path, edit), server=server)
    assert not result.ok, f"{fault}: verification passed"
    assert named in set(result.failures["object"]), result.failures[["object", "check"]].to_string()


@pytest.mark.parametrize("fmt", ["plain", "custom", "directory"])
@pytest.mark.parametrize("kind", ["full", "schema", "data"])
def test_an_odd_shapes_backup_verifies_clean_comparing_every_table(taken, kind, fmt):
    made = taken(kind, fmt)
    result = verify.verify(made.path)
    assert result.ok, result.failures.to_string()
    report = result.report
    tables = set(made.manifest["tables"])
    assert {"Sales.Wide", "Sales.Secret", "Sales.Cache", "Sales.Empty", '"quo""te"."ta""ble"',
            "my schema.Events 2026-02 all"} <= tables
    compared = "rows (schema-only: none)" if kind == "schema" else "content checksum"
    assert set(report.loc[report["check"] == compared, "object"]) == tables
    if kind != "data":  # the kinds a data-only dump does not carry
        assert {"row security", "policy", "domain", "unlogged table", "inheritance"} <= set(report["check"])


def test_a_manifest_from_before_row_security_was_recorded_is_not_a_false_alarm(taken, tmp_path):
    made = taken("full", "plain")
    path = tmp_path / made.path.name
    shutil.copyfile(made.path, path)
    manifest = json.loads(backup.manifest_path(made.path).read_text())
    for kind in objects.LATER_KINDS:
        del manifest["objects"][kind]
    backup.manifest_path(path).write_text(json.dumps(manifest))
    result = verify.verify(path)
    assert result.ok, result.failures.to_string()
    skipped = result.skipped
    assert {"row security", "policy", "domain"} <= set(skipped["check"])
    assert all("predates" in actual for actual in skipped.loc[skipped["check"] == "policy", "actual"])


@pytest.mark.parametrize("spelling, table", [
    ('"Sales".animal', ("Sales", "animal")),  # as regclass prints it, and integrity's report shows it
    ('ünïcødé."Ünïcødé Tåble"', ("ünïcødé", "Ünïcødé Tåble")),
    ('"my schema"."line item"', ("my schema", "line item")),
    ('"quo""te"."ta""ble"', ('quo"te', 'ta"ble')),
    ('"dotted.schema"."dotted.table"', ("dotted.schema", "dotted.table")),
    ("Sales.Order", ("Sales", "Order")),  # schema.name unquoted, as the listing shows it
    ("per%cent {brace}", ("public", "per%cent {brace}")),
])
def test_a_table_named_in_any_sql_spelling_resolves(odd, spelling, table):
    from prep_ops import schema

    with db.connect(odd, autocommit=True) as conn:
        assert [(t.schema, t.name) for t in schema.resolve_tables(conn, [spelling])] == [table]


def test_an_unquoted_sql_name_folds_to_lower_case_as_postgresql_does(odd):
    from prep_ops import schema
    from prep_ops.errors import ParameterError

    with db.connect(odd, autocommit=True) as conn:
        with pytest.raises(ParameterError, match="unknown table"):
            schema.resolve_tables(conn, ['"Sales".ANIMAL_X'])
        assert [t.name for t in schema.resolve_tables(conn, ['"Sales".ANIMAL'])] == ["animal"]


@pytest.mark.parametrize("where, columns", [
    ('"Visitor ID" = 42', ("Visitor ID",)),
    ('"user" = \'u7\' AND "ta""g" > \'t5\'', ("user", 'ta"g')),
])
def test_a_selective_scan_filtering_on_quoted_columns_gets_an_index_proposed(odd, where, columns):
    from psycopg import sql

    from prep_ops import indexes, plans

    with db.connect(odd, autocommit=True) as conn:
        plan = plans.explain(conn, f'SELECT * FROM "Sales"."Visits" WHERE {where}')
        proposed = indexes.candidates(conn, plan)
    assert [(a.schema, a.table, a.columns) for a in proposed] == [("Sales", "Visits", columns)]
    quoted = sql.SQL(", ").join(map(sql.Identifier, columns)).as_string(None)
    assert proposed[0].statement.endswith(f'ON "Sales"."Visits" ({quoted})')


def test_a_row_text_checksum_sees_every_column_of_a_table_with_a_column_named_t(odd):
    """The row-text method (manifests made before methods had names) hashes the row `t`; a column
    named t would be hashed instead of the row, and a change in any other column pass unseen."""
    from prep_ops import checksums

    with db.connect(odd) as conn:
        before = checksums.table_checksums(conn, checksums.ROW_TEXT)["Sales.Pairs"]
        conn.execute('UPDATE "Sales"."Pairs" SET "T" = "T" + 10')
        after = checksums.table_checksums(conn, checksums.ROW_TEXT)["Sales.Pairs"]
        conn.rollback()
    assert before["rows"] == after["rows"] == 2 and before["checksum"] != after["checksum"]


def test_a_changed_row_of_a_table_with_a_column_named_t_is_found_by_its_row_hash(odd):
    from prep_ops.incident import recovery

    with db.connect(odd) as conn:
        before = recovery.row_hashes(conn, "Sales.Pairs", ["id"])
        conn.execute('UPDATE "Sales"."Pairs" SET "T" = "T" + 10 WHERE id = 1')
        after = recovery.row_hashes(conn, "Sales.Pairs", ["id"])
        conn.rollback()
    before, after = before.set_index("id")["row_hash"], after.set_index("id")["row_hash"]
    assert before[1] != before[2]  # the same t, different rows
    assert before[1] != after[1] and before[2] == after[2]


def test_stale_statistics_of_a_table_outside_public_are_found_with_an_analyze_that_names_it(odd):
    from prep_ops import plans

    with db.connect(odd, autocommit=True) as conn:
        plan = plans.explain(conn, 'SELECT count(*) FROM "Sales"."Stale Stats"')
    stale = [f for f in plans.findings(plan) if f.kind == "stale statistics"]
    assert [f.what_to_try for f in stale] == ['ANALYZE "Sales"."Stale Stats"']


def test_an_index_proposed_on_a_long_unicode_column_is_found_in_place_once_created(server, odd):
    """PostgreSQL cuts a name at 63 bytes, not 63 characters: the proposal's name must be the one the
    catalog keeps, or the index just made is reported missing."""
    from psycopg import sql

    from prep_ops import indexes, plans
    from prep_ops.incident import performance

    copy = server.with_database(f"{odd.database}_idx")
    with db.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(copy.database),
                                                                      sql.Identifier(odd.database)))
    try:
        with db.connect(copy, autocommit=True) as conn:
            plan = plans.explain(conn, 'SELECT * FROM "Sales"."Visits" WHERE "ключ посещения клиента магазина" = 7')
            proposed = indexes.candidates(conn, plan)
            assert [a.columns for a in proposed] == [("ключ посещения клиента магазина",)]
            indexes.apply(conn, proposed, confirm=True)
            assert performance.missing_indexes(conn, proposed) == []
    finally:
        _drop(server, copy)


def test_the_password_fix_for_a_role_with_spaces_and_quotes_names_it_quoted(server, odd):
    """psql's \\password reads its argument as SQL names it: unquoted, it would stop at the space."""
    import uuid

    from psycopg import sql

    from prep_ops import security_audit

    name = f'Odd "Role" ü {uuid.uuid4().hex[:6]}'
    with db.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    try:
        with db.connect(odd, autocommit=True) as conn:
            [finding] = [f for f in security_audit.findings(conn)
                         if f.check == "login without a password" and f.subject == name]
    finally:
        with db.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
    quoted = sql.Identifier(name).as_string(None)
    assert finding.fix.startswith(f"set one: \\password {quoted} in psql")


def test_a_backup_refused_by_row_level_security_says_why(server, tmp_path):
    """pg_dump run by a table's owner under FORCE ROW LEVEL SECURITY stops; its last line of output is
    only the query it ran ("detail: Query was: COPY ..."), the reason is on the error line before it."""
    import secrets
    import uuid

    from psycopg import sql

    from prep_ops.errors import BackupError

    role, password = f"prep_ops_rls_{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(12)
    with db.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
    target = _create(server)
    try:
        with db.connect(target, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE TABLE secret (id int, body text); ALTER TABLE secret OWNER TO {}; "
                                 "ALTER TABLE secret ENABLE ROW LEVEL SECURITY; ALTER TABLE secret FORCE ROW LEVEL SECURITY; "
                                 "GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(role), sql.Identifier(target.database), sql.Identifier(role)))
        with pytest.raises(BackupError) as error:
            backup.backup(target.with_user(role, password), "full", "custom", directory=tmp_path)
        assert "row-level security" in str(error.value) and "NO FORCE ROW LEVEL SECURITY" in str(error.value)
        assert "Query was" not in str(error.value)
    finally:
        _drop(server, target)
        with db.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_runbook_11_index_actions_create_and_analyze_in_the_tables_own_schema(odd):
    """The statements run are those shown: both name "Sales"."Visits", not a Visits the search path finds."""
    from prep_ops import indexes, plans
    from prep_ops.incident import performance

    with db.connect(odd, autocommit=True) as conn:
        plan = plans.explain(conn, 'SELECT * FROM "Sales"."Visits" WHERE "Visitor ID" = 42')
        actions = performance.index_actions(indexes.candidates(conn, plan))
    assert [a.statement.as_string(None) for a in actions] == [
        'CREATE INDEX CONCURRENTLY IF NOT EXISTS "idx_Visits_Visitor ID" ON "Sales"."Visits" ("Visitor ID")',
        'ANALYZE "Sales"."Visits"']
    assert [a.text for a in actions] == [a.statement.as_string(None) for a in actions]
