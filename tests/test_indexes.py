"""Index advice on crafted cases, and hostile names quoted."""

import time

import psycopg
import pytest
from conftest import judge_as_elsewhere, named_without_schemas

from prep_ops import db, indexes, plans
from prep_ops.errors import ConfirmationRequired


def run(target, *statements):
    with db.connect(target, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


@pytest.fixture
def conn(scratch):
    """An autocommit connection to `scratch`, as a notebook's or a CLI command's."""
    with db.connect(scratch, autocommit=True) as conn:
        yield conn


def by_kind(items, kind):
    return {i.index for i in items if i.kind == kind}


def test_schema_as_migrated_misses_the_enrollments_course_index(migrated):
    with db.connect(migrated, autocommit=True) as conn:
        missing = indexes.missing_foreign_key_indexes(conn)
    assert ("enrollments", ("course_id",)) in {(a.table, a.columns) for a in missing}
    assert not any(a.table == "enrollments" and a.columns == ("student_id",) for a in missing)  # the unique key leads with it


def test_guide_indexes_are_reported_as_duplicates_of_the_unique_constraints(migrated):
    with db.connect(migrated, autocommit=True) as conn:
        found = indexes.duplicates(conn)
    assert by_kind(found, "duplicate") == {"idx_users_email", "idx_users_username"}


def test_duplicate_and_redundant_indexes(scratch, conn):
    run(scratch, "CREATE TABLE t (a int, b int, c text, d int)",
        "CREATE INDEX t_a ON t (a)", "CREATE INDEX t_a_again ON t (a)", "CREATE INDEX t_a_b ON t (a, b)",
        "CREATE INDEX t_c ON t (c)", "CREATE INDEX t_c_pattern ON t (c text_pattern_ops)",
        "CREATE INDEX t_b_partial ON t (b) WHERE b > 0", "CREATE INDEX t_b ON t (b)",
        "CREATE UNIQUE INDEX t_d_unique ON t (d)", "CREATE INDEX t_d_a ON t (d, a)",
        "CREATE INDEX t_c_pattern_b ON t (c text_pattern_ops, b)")
    found = {(i.kind, i.index, i.covered_by) for i in indexes.duplicates(conn)}
    statements = [i.statement for i in indexes.duplicates(conn)]
    assert found == {
        ("duplicate", "t_a_again", "t_a"),  # same column twice: the longer name goes
        ("redundant", "t_a", "t_a_b"),  # (a) leads (a, b), same operator class, no predicate
        ("redundant", "t_c_pattern", "t_c_pattern_b"),  # leads it with the same operator class
    }
    # never flagged: another operator class (t_c against t_c_pattern_b), a predicate (t_b_partial
    # against t_b), a unique index that enforces something its longer twin cannot (t_d_unique)
    assert all(statement.startswith("DROP INDEX CONCURRENTLY IF EXISTS") for statement in statements)


def test_invalid_index_left_by_a_failed_concurrent_build(scratch, conn):
    run(scratch, "CREATE TABLE inv (id int, a int)", "INSERT INTO inv SELECT i, i % 1000 FROM generate_series(1, 30000) i",
        "CREATE INDEX inv_id ON inv (id)", "ANALYZE inv")
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("CREATE UNIQUE INDEX CONCURRENTLY inv_a ON inv (a)")  # duplicate values: fails half way
    found = indexes.invalid(conn)
    assert [(i.kind, i.table, i.index) for i in found] == [("invalid", "inv", "inv_a")]
    assert found[0].statement.startswith('DROP INDEX CONCURRENTLY IF EXISTS "public"."inv_a"')
    assert "then recreate: CREATE UNIQUE INDEX inv_a" in found[0].statement
    assert "inv_a" in {i.index for i in indexes.advice(conn) if i.kind == "invalid"}
    assert not {i.index for i in indexes.duplicates(conn)} & {"inv_a", "inv_id"}
    # an invalid index serves no query: the scan on `a` still gets a candidate
    plan = plans.explain(conn, "SELECT * FROM inv WHERE a = 3")
    assert [(c.table, c.columns) for c in indexes.candidates(conn, plan)] == [("inv", ("a",))]


def test_no_invalid_index_after_a_successful_concurrent_build(scratch, conn):
    run(scratch, "CREATE TABLE ok (id int)", "INSERT INTO ok SELECT generate_series(1, 1000)",
        "CREATE UNIQUE INDEX CONCURRENTLY ok_id ON ok (id)")
    assert indexes.invalid(conn) == []


def test_unused_index_is_found_and_a_used_one_is_not(scratch, conn):
    run(scratch, "CREATE TABLE u (id int PRIMARY KEY, a int, b int)",
        "INSERT INTO u SELECT i, i, i FROM generate_series(1, 20000) i",
        "CREATE INDEX u_a ON u (a)", "CREATE INDEX u_b ON u (b)", "ANALYZE u")
    with db.connect(scratch) as reader:
        reader.execute("SELECT * FROM u WHERE a = 5").fetchall()
    if db.server_version(conn) >= 15:
        conn.execute("SELECT pg_stat_force_next_flush()")
    assert indexes.unused(conn) == [] and indexes.too_soon(conn).startswith("too soon to tell")  # a new database
    unused = by_kind(indexes.unused(conn, min_days=0), "unused")
    assert "u_b" in unused and "u_a" not in unused and "u_pkey" not in unused


def test_candidate_is_not_proposed_again_once_an_index_serves_it(scratch, conn):
    run(scratch, "CREATE TABLE v (id int, a int)", "INSERT INTO v SELECT i, i % 1000 FROM generate_series(1, 50000) i",
        "ANALYZE v")
    first = indexes.candidates(conn, plans.explain(conn, "SELECT * FROM v WHERE a = 3"))
    assert [c.columns for c in first] == [("a",)]
    indexes.apply(conn, first)
    assert indexes.candidates(conn, plans.explain(conn, "SELECT * FROM v WHERE a = 3")) == []
    # and a seq scan forced despite the index proposes nothing new
    forced = plans.explain(conn, "SELECT * FROM v WHERE a = 3", settings={"enable_indexscan": "off",
                                                                              "enable_bitmapscan": "off"})
    assert indexes.candidates(conn, forced) == []


def test_a_table_named_in_several_schemas_gets_its_index_on_the_one_the_plan_read(scratch, conn):
    """EXPLAIN names a scan's table without its schema: a query of "Sales".v with an empty public.v on the
    search path would have got its index proposed, and created, on public.v. EXPLAIN VERBOSE names the
    schema: the index is proposed and created on "Sales".v, never on public.v."""
    run(scratch, 'CREATE SCHEMA "Sales"', 'CREATE TABLE "Sales".v (id int, a int)',
        'INSERT INTO "Sales".v SELECT i, i % 1000 FROM generate_series(1, 50000) i', 'ANALYZE "Sales".v',
        "CREATE TABLE public.v (id int, a int)")
    proposed = indexes.candidates(conn, plans.explain(conn, 'SELECT * FROM "Sales".v WHERE a = 3'))
    assert [(c.kind, c.schema, c.table, c.columns) for c in proposed] == [("candidate for query", "Sales", "v", ("a",))]
    indexes.apply(conn, proposed, confirm=True)
    assert conn.execute("SELECT schemaname, indexname FROM pg_indexes WHERE tablename = 'v'").fetchall() == [
        ("Sales", "idx_v_a")]


def test_a_plan_that_names_no_schema_gets_no_index_for_a_table_in_several_schemas(scratch, conn):
    """A plan without the scans' schemas (made without VERBOSE) does not say which "v" the query read:
    advice says why no index is proposed, with no statement; apply creates nothing. A name in one schema
    still gets its index."""
    run(scratch, 'CREATE SCHEMA "Sales"', 'CREATE TABLE "Sales".v (id int, a int)',
        'INSERT INTO "Sales".v SELECT i, i % 1000 FROM generate_series(1, 50000) i', 'ANALYZE "Sales".v',
        "CREATE TABLE public.v (id int, a int)")
    plan = named_without_schemas(conn, plans.explain(conn, 'SELECT * FROM "Sales".v WHERE a = 3'))
    proposed = indexes.candidates(conn, plan)
    assert [(c.kind, c.statement) for c in proposed] == [(indexes.NOT_PROPOSED, "")], proposed
    assert "v is a table in schemas Sales, public" in proposed[0].why
    assert indexes.apply(conn, proposed, confirm=True) == []
    assert conn.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'v'").fetchone()[0] == 0
    run(scratch, "DROP TABLE public.v")
    proposed = indexes.candidates(conn, named_without_schemas(conn, plan))
    assert [(c.kind, c.schema, c.columns) for c in proposed] == [("candidate for query", "Sales", ("a",))]


def test_hostile_table_name_is_quoted(scratch, conn):
    name = 'we"ird; DROP TABLE keep; --'
    run(scratch, "CREATE TABLE keep (id int)")
    from psycopg import sql

    conn.execute(sql.SQL("CREATE TABLE {} (id int, a int)").format(sql.Identifier(name)))
    conn.execute(sql.SQL("INSERT INTO {} SELECT i, i % 500 FROM generate_series(1, 30000) i").format(sql.Identifier(name)))
    conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(name)))
    query = sql.SQL("SELECT * FROM {} WHERE a = 4").format(sql.Identifier(name)).as_string(conn)
    proposed = indexes.candidates(conn, plans.explain(conn, query))
    assert len(proposed) == 1 and '"we""ird; DROP TABLE keep; --"' in proposed[0].statement
    indexes.apply(conn, proposed)
    assert conn.execute("SELECT to_regclass('keep')").fetchone()[0] == "keep"
    assert conn.execute("SELECT count(*) FROM pg_indexes WHERE tablename = %s", (name,)).fetchone()[0] == 1


def test_apply_outside_a_scratch_database_needs_confirm(migrated, monkeypatch):
    judge_as_elsewhere(monkeypatch)  # as on a server someone named by a URL
    with db.connect(migrated, autocommit=True) as conn:
        proposed = indexes.missing_foreign_key_indexes(conn)
        with pytest.raises(ConfirmationRequired, match="creating indexes changes it"):
            indexes.apply(conn, proposed)
        assert len(indexes.apply(conn, proposed, confirm=True)) == len(proposed) > 0


@pytest.fixture
def slow_lookup(scratch):
    """A 50,000-row table whose lookup by `a` is a selective sequential scan until indexed."""
    run(scratch, "CREATE TABLE w (id int, a int, pad text)",
        "INSERT INTO w SELECT i, i % 1000, md5(i::text) FROM generate_series(1, 50000) i", "ANALYZE w")
    return scratch


QUERY = "SELECT * FROM w WHERE a = %(a)s"


def test_apply_and_compare_creates_the_index_and_shows_the_gain(slow_lookup, conn):
    before = plans.explain(conn, QUERY, {"a": 3})
    proposed = indexes.candidates(conn, before)
    applied = indexes.apply_and_compare(conn, QUERY, {"a": 3}, before, proposed, create=True)
    assert applied.statements == [proposed[0].statement] and applied.in_place and applied.status == "created idx_w_a"
    scan = applied.comparison[applied.comparison["relation"].eq("w") & applied.comparison["type_before"].notna()].iloc[0]
    assert (scan["type_before"], scan["change"], scan["index_after"]) == ("Seq Scan", "changed access method", "idx_w_a")
    verdict = applied.verdict()
    assert verdict["name"] == "query faster with the new indexes" and verdict["passed"] and "must_hold" not in verdict
    assert applied.before_ms > applied.after_ms and "Seq Scan → " in verdict["detail"]


def test_apply_and_compare_without_create_changes_nothing_and_checks_plan_stability(slow_lookup, conn):
    before = plans.explain(conn, QUERY, {"a": 3})
    proposed = indexes.candidates(conn, before)
    applied = indexes.apply_and_compare(conn, QUERY, {"a": 3}, before, proposed)
    assert applied.statements == [] and not applied.in_place and applied.status == "1 proposed (idx_w_a), not created"
    assert indexes.existing(conn).empty
    assert (applied.comparison["change"] == "same").all()
    verdict = applied.verdict()
    assert (verdict["name"], verdict["passed"], verdict["must_hold"]) == ("plan stable on a re-run", True, False)
    nothing = indexes.apply_and_compare(conn, "SELECT 1", None, plans.explain(conn, "SELECT 1"), [],
                                        create=True)
    assert nothing.in_place and nothing.status == "none proposed for this query" and nothing.statements == []


def test_the_statements_are_composed_without_a_connection():
    assert indexes.create_statement("lessons", ("room", "starts_at")) == \
        'CREATE INDEX CONCURRENTLY IF NOT EXISTS "idx_lessons_room_starts_at" ON "lessons" ("room", "starts_at")'
    assert indexes.create_index("lessons", ("room",), "by_room").as_string(None) == \
        'CREATE INDEX CONCURRENTLY IF NOT EXISTS "by_room" ON "lessons" ("room")'


def test_partition_indexes_and_their_parents_index_are_one(scratch, conn):
    run(scratch, "CREATE TABLE pt (id int, a int, b int) PARTITION BY RANGE (id)",
        "CREATE TABLE pt_1 PARTITION OF pt FOR VALUES FROM (0) TO (1000)",
        "CREATE TABLE pt_2 PARTITION OF pt FOR VALUES FROM (1000) TO (2000)",
        "INSERT INTO pt SELECT i, i % 10, i FROM generate_series(0, 1999) i",
        "CREATE INDEX pt_a ON pt (a)", "CREATE INDEX pt_a_again ON pt (a)", "CREATE INDEX pt_b ON pt (b)")
    found = indexes.advice(conn, min_days=0)
    assert {(i.kind, i.table, i.index, i.covered_by) for i in found} == {
        ("duplicate", "pt", "pt_a_again", "pt_a"),  # once, on the parent: not once per partition
        ("unused", "pt", "pt_b", "")}  # pt_a is kept for the pair: never proposed as unused too
    # a parent's index cannot be dropped CONCURRENTLY
    assert all(i.statement.startswith('DROP INDEX IF EXISTS "public"."pt_') for i in found)
    partitions = indexes.existing(conn).query("table_name != 'pt'")
    assert len(partitions) == 6 and partitions["parent_index"].notna().all()
    with db.connect(scratch, autocommit=True) as reader:
        reader.execute("SET enable_seqscan = off")
        reader.execute("SELECT * FROM pt WHERE b = 1500").fetchall()
    # a scan of one partition's index counts; the reader's statistics reach the server when its backend
    # flushes them (at exit, or within a second): wait for them rather than race them
    deadline = time.monotonic() + 15
    while "pt_b" in by_kind(indexes.advice(conn, min_days=0), "unused"):
        assert time.monotonic() < deadline, "the partition index scan never showed in the statistics"
        conn.execute("SELECT pg_stat_clear_snapshot()")
        time.sleep(0.2)


def test_an_index_serving_a_foreign_key_is_never_unused(scratch, conn):
    run(scratch, "CREATE TABLE parent (id int PRIMARY KEY)", "CREATE TABLE child (id int, parent_id int REFERENCES parent)",
        "CREATE INDEX child_parent ON child (parent_id)", "CREATE INDEX child_id ON child (id)")
    assert by_kind(indexes.advice(conn, min_days=0), "unused") == {"child_id"}
    assert indexes.advice(conn) == [] and indexes.too_soon(conn)  # default: statistics too young to judge


def test_a_foreign_key_advice_names_the_referenced_tables_schema_whatever_the_search_path(scratch):
    """The advice said "references items" for app.items where the session's search_path found app first,
    while a table named alone is public's everywhere else in the advice (Advice.label)."""
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA app; CREATE TABLE app.items (id int PRIMARY KEY); CREATE TABLE public.items (id int PRIMARY KEY);"
                     " CREATE TABLE orders (id int, app_item int REFERENCES app.items, item int REFERENCES public.items)")
        conn.execute("SET search_path = app, public")
        why = sorted(a.why.split(" without")[0] for a in indexes.missing_foreign_key_indexes(conn))
    assert why == ["orders_app_item_fkey references app.items", "orders_item_fkey references items"]


def test_index_advice_behind_a_table_locked_access_exclusive_gives_up_in_one_line_instead_of_waiting(scratch, conn):
    """Reading the indexes deparses them, which locks their tables: behind a session holding one ACCESS
    EXCLUSIVE, `prep-ops indexes` and runbook 11 waited as long as that session (forever at 3 a.m.).
    It gives up after db.LOCK_WAIT now, in one line saying why."""
    from prep_ops.errors import LockBusy

    conn.execute("CREATE TABLE lesson_rooms (id int PRIMARY KEY)")
    conn.execute("SET statement_timeout = '30s'")  # the old code waits this long, then fails otherwise
    with db.connect(scratch) as holder:
        holder.execute("LOCK TABLE lesson_rooms IN ACCESS EXCLUSIVE MODE")
        began = time.monotonic()
        with pytest.raises(LockBusy, match="a table is locked by another session"):
            indexes.advice(conn)
        waited = time.monotonic() - began
        holder.rollback()
    assert waited < 20
    assert conn.execute("SELECT current_setting('lock_timeout')").fetchone()[0] == "0"  # the caller's, as it was
    assert [a.kind for a in indexes.advice(conn)] == []  # the lock gone, it reads
