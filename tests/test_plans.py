"""Plan findings on crafted cases that must trigger them, and on cases that must not."""

import pytest

from prep_ops import db, plans
from prep_ops.errors import ParameterError


def run(target, *statements):
    with db.connect(target, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


@pytest.fixture
def lab(scratch):
    """A scratch database with a 50,000-row table of correlated columns, analysed, no indexes."""
    run(scratch,
        "CREATE TABLE lab (id int PRIMARY KEY, a int, b int, pad text)",
        "INSERT INTO lab SELECT i, i % 100, i % 100, md5(i::text) FROM generate_series(1, 50000) i")
    flush_statistics(scratch)
    run(scratch, "ANALYZE lab")
    return scratch


def flush_statistics(target):
    """Table statistics reach the views asynchronously; on PostgreSQL 15+ this makes them current."""
    with db.connect(target, autocommit=True) as conn:
        if db.server_version(conn) >= 15:
            conn.execute("SELECT pg_stat_force_next_flush()")
            conn.execute("SELECT 1")


def kinds(plan):
    return {f.kind for f in plans.findings(plan)}


def test_nodes_carry_rows_loops_times_and_buffers(lab):
    plan = plans.explain(lab, "SELECT count(*) FROM lab WHERE a = 1")
    scan = plan.nodes[plan.nodes["relation"] == "lab"].iloc[0]
    assert scan["actual_rows"] == 500 and scan["estimated_rows"] > 0
    assert scan["inclusive_ms"] >= scan["self_ms"] >= 0
    assert scan["shared_hit"] + scan["shared_read"] > 0
    assert plan.execution_ms > 0 and plan.server_version >= 15


def test_misestimate_on_correlated_columns(lab):
    plan = plans.explain(lab, "SELECT * FROM lab WHERE a = 1 AND b = 1")
    assert "row misestimate" in kinds(plan)


def test_no_misestimate_on_a_single_column(lab):
    assert "row misestimate" not in kinds(plans.explain(lab, "SELECT * FROM lab WHERE a = 1"))


def test_selective_seq_scan_and_its_index_candidate(lab):
    from prep_ops import indexes

    plan = plans.explain(lab, "SELECT * FROM lab WHERE a = %(a)s", {"a": 7})
    assert "selective sequential scan" in kinds(plan)
    proposed = indexes.candidates(lab, plan)
    assert [(c.table, c.columns) for c in proposed] == [("lab", ("a",))]


def test_no_selective_seq_scan_when_the_filter_keeps_most_rows(lab):
    assert "selective sequential scan" not in kinds(plans.explain(lab, "SELECT * FROM lab WHERE a > 1"))


def test_sort_spilling_to_disk_with_small_work_mem(lab):
    plan = plans.explain(lab, "SELECT * FROM lab ORDER BY pad", settings={"work_mem": "64kB"})
    assert "spill to disk" in kinds(plan)


def test_no_spill_with_enough_work_mem(lab):
    plan = plans.explain(lab, "SELECT * FROM lab ORDER BY pad", settings={"work_mem": "256MB"})
    assert "spill to disk" not in kinds(plan)


def test_nested_loop_with_many_loops(lab):
    # a second table: PostgreSQL 18 removes a join of a table with itself on its key
    run(lab, "CREATE TABLE lab_ref AS SELECT id, a FROM lab", "ANALYZE lab_ref")
    plan = plans.explain(lab, "SELECT count(*) FROM lab_ref x JOIN lab y ON y.id = x.id WHERE x.a < 10",
                         settings={"enable_hashjoin": "off", "enable_mergejoin": "off"})
    assert "nested loop with many loops" in kinds(plan)


def test_stale_statistics_after_many_changes(lab):
    with db.connect(lab, autocommit=True) as conn:
        conn.execute("UPDATE lab SET b = b + 1 WHERE id <= 20000")
        if db.server_version(conn) >= 15:
            conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("SELECT 1")
    plan = plans.explain(lab, "SELECT * FROM lab WHERE id = 1")
    assert "stale statistics" in kinds(plan)
    run(lab, "ANALYZE lab")
    assert "stale statistics" not in kinds(plans.explain(lab, "SELECT * FROM lab WHERE id = 1"))


def test_explain_analyze_of_a_delete_changes_nothing(lab):
    plan = plans.explain(lab, "DELETE FROM lab WHERE a = 1")
    assert plan.nodes["node"][0] == "Delete on lab"
    with db.connect(lab) as conn:
        assert conn.execute("SELECT count(*) FROM lab").fetchone()[0] == 50000


def test_plain_explain_does_not_run_the_query(lab):
    plan = plans.explain(lab, "DELETE FROM lab", analyze=False)
    assert plan.execution_ms is None and plan.nodes["actual_rows"].isna().all()


def test_several_statements_are_refused_and_none_runs(lab):
    with pytest.raises(ParameterError, match="more than one statement"):
        plans.explain(lab, "SELECT 1; DROP TABLE lab")
    with db.connect(lab) as conn:
        assert conn.execute("SELECT to_regclass('lab')").fetchone()[0] == "lab"


@pytest.mark.parametrize("query, message", [
    ("SELEC * FROM lab", "not valid SQL"), ("SELECT * FROM no_such_table", "cannot run"), ("  ", "empty")])
def test_bad_queries_are_one_clear_error(lab, query, message):
    with pytest.raises(ParameterError, match=message):
        plans.explain(lab, query)


def test_unknown_setting_is_refused(lab):
    with pytest.raises(ParameterError, match="unknown server setting"):
        plans.explain(lab, "SELECT 1", settings={"work_mem; DROP TABLE lab": "1"})


def test_compare_shows_the_gain_of_an_index(lab):
    before = plans.explain(lab, "SELECT * FROM lab WHERE a = 7")
    run(lab, "CREATE INDEX lab_a ON lab (a)", "ANALYZE lab")
    after = plans.explain(lab, "SELECT * FROM lab WHERE a = 7")
    table = plans.compare(before, after)
    assert "Seq Scan" in table.loc["lab", "access_before"] and "using lab_a" in table.loc["lab", "access_after"]
    assert table.loc["lab", "rows_before"] == table.loc["lab", "rows_after"] == 500
    assert table.loc["(whole query)", "speedup"] > 1


def test_catalogue_runs_on_sample_data(seeded):
    report = plans.catalogue_report(seeded)
    assert set(report["query"]) == set(plans.catalogue())
    assert (report["ms"] > 0).all()
