"""Runbook 03 run headless through the runner: with apply=True it creates the proposed indexes in
its scratch database and the before/after check passes; by default it changes nothing. On public sample
databases that are not the school's (issue 15) it analyses the database's own workload, once each:
chinook with a `query` and no pg_stat_statements, pagila with queries="auto" after some workload."""

import pytest
from conftest import notebook_outputs, schema_dump, table_checksum

from prep_ops import db, runner, scratch

LABS = "prep_ops_plans_"  # the runbook's own scratch databases: prep_ops_plans_<run id>, dropped at its end


@pytest.fixture
def runbook(server):
    notebook = runner.find("03")
    # the parameters this test sets must be the notebook's (a renamed one would be silently ignored)
    assert {"queries", "query", "scale", "apply", "confirm"} <= set(runner.parameters(notebook))
    yield notebook
    for name in scratch.existing(server, LABS):  # what a failed run left
        scratch.drop(server, name)


def _outputs_of_cell_with(run, text: str) -> list:
    import nbformat

    cells = nbformat.read(run.output, as_version=4).cells
    (cell,) = [c for c in cells if c.cell_type == "code" and text in c.source]
    return cell.outputs


def checks_by_name(run) -> dict[str, dict]:
    return {c["name"]: c for c in run.checks}


def test_apply_creates_the_proposed_index_and_the_query_gets_faster(runbook, server, tmp_path):
    # 20,000 students: enrollments large enough that the roster's scan is a finding, small enough for CI
    run = runner.run_one(runbook, tmp_path, {"queries": "catalogue", "query": "course_roster", "scale": 20000, "apply": True})
    assert run.ok, run.error
    checks = checks_by_name(run)
    assert checks["proposed indexes in place"]["passed"]
    assert checks["proposed indexes in place"]["detail"] == "created idx_enrollments_course_id_term"
    faster = checks["query faster with the new indexes"]
    assert faster["passed"] and faster["must_hold"]
    assert "changed access method: Seq Scan → " in faster["detail"] and "on enrollments" in faster["detail"]
    assert any("image/png" in out.get("data", {}) for out in _outputs_of_cell_with(run, "applied.statements"))
    assert scratch.existing(server, LABS) == []  # the run's lab is dropped at its end


def test_default_run_proposes_but_creates_nothing(runbook, server, tmp_path):
    run = runner.run_one(runbook, tmp_path, {"queries": "catalogue", "query": "course_roster", "scale": 20000})
    assert run.ok, run.error
    checks = checks_by_name(run)
    assert checks["proposed indexes in place"]["status"] == "WARN"  # proposed, not created
    # nothing created: no before/after to show, and the comparison is SKIP, not a pass
    compared = checks["query faster with the new indexes"]
    assert compared["status"] == "SKIP" and compared["detail"] == "no index created: nothing to compare"
    assert not any("image/png" in out.get("data", {}) for out in _outputs_of_cell_with(run, "applied.statements"))
    # every step ends in a check: one per numbered step
    assert len(run.checks) == 7
    assert scratch.existing(server, LABS) == []


def test_a_killed_runs_lab_is_dropped_by_the_next_and_a_live_one_is_kept(server):
    old = f"{LABS}{scratch.run_id()}"
    with db.connect(server, autocommit=True) as conn:
        scratch.create(conn, old, confirm=True)  # as a killed run leaves it: nobody connected
    live = scratch.lab_database(server, 10, confirm=True)
    with db.connect(live, autocommit=True):  # a run at work on its lab
        newer = scratch.lab_database(server, 10, confirm=True)
        assert old not in scratch.existing(server, LABS)
        assert {live.database, newer.database} <= set(scratch.existing(server, LABS))
    for name in (live.database, newer.database):
        scratch.drop(server, name)


def _statements_preloaded(target) -> bool:
    with db.connect(target) as conn:
        available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements'").fetchone()
        return bool(available) and "pg_stat_statements" in conn.execute("SHOW shared_preload_libraries").fetchone()[0]


GENRES = "SELECT g.name, count(*) AS tracks FROM track t JOIN genre g ON g.genre_id = t.genre_id GROUP BY g.name"


def test_runbook_03_analyses_chinook_given_a_query_instead_of_stopping_on_users(runbook, server, sample_copy, tmp_path,
                                                                                 monkeypatch):
    """Issue 15: runbook 03 stopped with `relation "users" does not exist` even when given a query. On chinook,
    named by a URL (not scratch) and without pg_stat_statements, the top statements are SKIP with how to
    enable them, and the query is planned and run READ ONLY; nothing changes."""
    chinook = sample_copy("chinook")
    dump = schema_dump(chinook)
    monkeypatch.delenv("PREP_OPS_SCRATCH", raising=False)  # someone's database: the kernel inherits this
    run = runner.run_one(runbook, tmp_path, {"database_url": chinook.url, "query": GENRES})
    assert run.ok, (run.error, [c for c in run.checks if c["status"] == "FAIL"])
    checks = checks_by_name(run)
    chosen = checks["statements to analyse"]
    assert chosen["status"] == "SKIP" and "pg_stat_statements unavailable (not installed in this database)" in chosen["detail"]
    assert "shared_preload_libraries = 'pg_stat_statements', restart, CREATE EXTENSION pg_stat_statements" in chosen["detail"]
    assert checks["every statement planned, and rows where it ran"]["status"] == "SKIP"
    looked = checks["query returns rows"]
    assert looked["status"] == "PASS" and looked["detail"].startswith("query (given as query): 25 rows in ")
    assert checks["proposed indexes in place"]["status"] == "SKIP"  # 3,503 tracks: no selective scan to serve
    assert "does not exist" not in notebook_outputs(run.output)  # no relation "users" (nor any other) missing
    assert schema_dump(chinook) == dump and scratch.existing(server, LABS) == []


REVENUE = ("SELECT c.customer_id, sum(p.amount) AS paid, count(r.rental_id) AS rentals FROM customer c "
           "JOIN payment p ON p.customer_id = c.customer_id JOIN rental r ON r.rental_id = p.rental_id "
           "GROUP BY c.customer_id ORDER BY paid DESC")
FILM = "SELECT title FROM film WHERE film_id = $1"
LATE = "UPDATE rental SET return_date = return_date WHERE return_date < rental_date"


def test_runbook_03_analyses_pagilas_own_workload_and_leaves_no_sample_even_with_confirm(runbook, server, sample_copy,
                                                                                          tmp_path, monkeypatch):
    """Issue 15: with confirm=True runbook 03 reported on a music-school sample it left on the DBA's server.
    On pagila (no school schema), queries="auto" is its own top statements: the aggregate without constants
    runs READ ONLY, the normalised lookup gets a generic plan, the UPDATE is planned only; no sample is made."""
    pagila = sample_copy("pagila")
    if not _statements_preloaded(pagila):
        pytest.skip("needs pg_stat_statements in shared_preload_libraries")
    with db.connect(pagila, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    dump, rentals = schema_dump(pagila), table_checksum(pagila, "rental")
    with db.connect(pagila, autocommit=True) as conn:
        # this database's statements only (the checksum above among them): the workload below is all it holds
        conn.execute("SELECT pg_stat_statements_reset(0, oid, 0) FROM pg_database WHERE datname = current_database()")
        for n in range(1, 4):
            conn.execute(REVENUE)
            conn.execute(FILM.replace("$1", "%s"), (n,))
        conn.execute(LATE)  # changes no row: none was returned before it was rented
    monkeypatch.delenv("PREP_OPS_SCRATCH", raising=False)  # someone's database: the kernel inherits this
    run = runner.run_one(runbook, tmp_path, {"database_url": pagila.url, "confirm": True})
    assert run.ok, (run.error, [c for c in run.checks if c["status"] == "FAIL"])
    checks = checks_by_name(run)
    chosen = checks["statements to analyse"]
    assert chosen["status"] == "PASS" and chosen["detail"].startswith(
        "3 statements taking the most time in pg_stat_statements (auto: no school schema here), on prep_ops_test_")
    planned = checks["every statement planned, and rows where it ran"]
    assert planned["status"] == "PASS"
    assert planned["detail"].startswith("3 statements (") and all(
        kind in planned["detail"] for kind in ("1 ANALYZE", "1 generic plan", "1 plan only"))
    looked = checks["query returns rows"]
    assert looked["status"] == "PASS"  # the aggregate ran (READ ONLY): a generic plan or the UPDATE would be SKIP
    assert looked["detail"].startswith("top 1 (slowest by mean time in pg_stat_statements): ")
    outputs = notebook_outputs(run.output)
    assert all(text in outputs for text in ("SELECT title FROM film WHERE film_id = $1", "generic plan", "plan only",
                                            "UPDATE rental SET return_date = return_date", "SELECT c.customer_id"))
    assert scratch.existing(server, LABS) == []  # no sample of the school's, confirm or not
    assert schema_dump(pagila) == dump and table_checksum(pagila, "rental") == rentals
