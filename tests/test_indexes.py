"""Index advice on crafted cases, and hostile names quoted."""

import pytest

from prep_ops import db, indexes, plans
from prep_ops.errors import ConfirmationRequired


def run(target, *statements):
    with db.connect(target, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def by_kind(items, kind):
    return {i.index for i in items if i.kind == kind}


def test_schema_as_migrated_misses_the_enrollments_course_index(migrated):
    missing = indexes.missing_foreign_key_indexes(migrated)
    assert ("enrollments", ("course_id",)) in {(a.table, a.columns) for a in missing}
    assert not any(a.table == "enrollments" and a.columns == ("student_id",) for a in missing)  # the unique key leads with it


def test_guide_indexes_are_reported_as_duplicates_of_the_unique_constraints(migrated):
    found = indexes.duplicates(migrated)
    assert by_kind(found, "duplicate") == {"idx_users_email", "idx_users_username"}


def test_duplicate_and_redundant_indexes(scratch):
    run(scratch, "CREATE TABLE t (a int, b int, c text)",
        "CREATE INDEX t_a ON t (a)", "CREATE INDEX t_a_again ON t (a)", "CREATE INDEX t_a_b ON t (a, b)",
        "CREATE INDEX t_c ON t (c)", "CREATE INDEX t_c_pattern ON t (c text_pattern_ops)",
        "CREATE INDEX t_b_partial ON t (b) WHERE b > 0", "CREATE INDEX t_b ON t (b)")
    found = indexes.duplicates(scratch)
    flagged = by_kind(found, "duplicate") | by_kind(found, "redundant")
    assert len(flagged & {"t_a", "t_a_again"}) == 2 or ({"t_a", "t_a_again"} & flagged)
    assert "t_a_b" not in flagged
    # other operator class, or a predicate: a different job, never flagged
    assert not {"t_c", "t_c_pattern", "t_b_partial", "t_b"} & flagged


def test_unused_index_is_found_and_a_used_one_is_not(scratch):
    run(scratch, "CREATE TABLE u (id int PRIMARY KEY, a int, b int)",
        "INSERT INTO u SELECT i, i, i FROM generate_series(1, 20000) i",
        "CREATE INDEX u_a ON u (a)", "CREATE INDEX u_b ON u (b)", "ANALYZE u")
    with db.connect(scratch) as conn:
        conn.execute("SELECT * FROM u WHERE a = 5").fetchall()
    with db.connect(scratch, autocommit=True) as conn:
        if db.server_version(conn) >= 15:
            conn.execute("SELECT pg_stat_force_next_flush()")
    unused = by_kind(indexes.unused(scratch), "unused")
    assert "u_b" in unused and "u_a" not in unused and "u_pkey" not in unused


def test_candidate_is_not_proposed_again_once_an_index_serves_it(scratch):
    run(scratch, "CREATE TABLE v (id int, a int)", "INSERT INTO v SELECT i, i % 1000 FROM generate_series(1, 50000) i",
        "ANALYZE v")
    first = indexes.candidates(scratch, plans.explain(scratch, "SELECT * FROM v WHERE a = 3"))
    assert [c.columns for c in first] == [("a",)]
    indexes.apply(scratch, first)
    assert indexes.candidates(scratch, plans.explain(scratch, "SELECT * FROM v WHERE a = 3")) == []
    # and a seq scan forced despite the index proposes nothing new
    forced = plans.explain(scratch, "SELECT * FROM v WHERE a = 3", settings={"enable_indexscan": "off",
                                                                              "enable_bitmapscan": "off"})
    assert indexes.candidates(scratch, forced) == []


def test_hostile_table_name_is_quoted(scratch):
    name = 'we"ird; DROP TABLE keep; --'
    run(scratch, "CREATE TABLE keep (id int)")
    with db.connect(scratch, autocommit=True) as conn:
        from psycopg import sql

        conn.execute(sql.SQL("CREATE TABLE {} (id int, a int)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("INSERT INTO {} SELECT i, i % 500 FROM generate_series(1, 30000) i").format(sql.Identifier(name)))
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(name)))
        query = sql.SQL("SELECT * FROM {} WHERE a = 4").format(sql.Identifier(name)).as_string(conn)
    proposed = indexes.candidates(scratch, plans.explain(scratch, query))
    assert len(proposed) == 1 and '"we""ird; DROP TABLE keep; --"' in proposed[0].statement
    indexes.apply(scratch, proposed)
    with db.connect(scratch) as conn:
        assert conn.execute("SELECT to_regclass('keep')").fetchone()[0] == "keep"
        assert conn.execute("SELECT count(*) FROM pg_indexes WHERE tablename = %s", (name,)).fetchone()[0] == 1


def test_apply_outside_a_scratch_database_needs_confirm(migrated, monkeypatch):
    monkeypatch.delenv("PREP_OPS_SCRATCH", raising=False)
    external = db.Target(migrated.url, embedded=False)
    with pytest.raises(ConfirmationRequired):
        indexes.apply(external, indexes.missing_foreign_key_indexes(external))
