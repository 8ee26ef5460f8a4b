"""What runbook 03 analyses (issue 15): the school's catalogue, the target's own top statements from
pg_stat_statements, or a .sql file read as data; each statement's kind of plan; the one looked at
closely; and nothing left on a database that is not scratch."""

import re

import pandas as pd
import pytest
from conftest import judge_as_elsewhere, schema_dump

from prep_ops import db, indexes, plans, scratch, workload_queries, workload_report
from prep_ops.errors import ParameterError
from prep_ops.workload_queries import Statement, Workload


def _statements_preloaded(conn) -> bool:
    available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements'").fetchone()
    return bool(available) and "pg_stat_statements" in conn.execute("SHOW shared_preload_libraries").fetchone()[0]


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


FILE = """-- The DBA's own statements; the comment above a statement names it.
-- name: busy_rows
SELECT count(*) FROM w WHERE note = 'a;b' AND a > 10;

/* not a name */ SELECT $tag$ ; $tag$ AS dollar
;
-- name: by_parameter
UPDATE w SET a = a WHERE a = $1;
-- name: wipe
DELETE FROM w;
DROP TABLE w;
-- trailing comment, no statement
"""


@pytest.fixture
def w_table(scratch):
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute("CREATE TABLE w (a int, note text)")
        conn.execute("INSERT INTO w SELECT i, 'a;b' FROM generate_series(1, 1000) i")
        conn.execute("ANALYZE w")
    return scratch


def test_a_sql_file_is_cut_into_named_statements(tmp_path):
    work = workload_queries.from_file(_write(tmp_path / "mine.sql", FILE))
    assert work.kind == "file" and work.source == "statements of mine.sql"
    assert [s.name for s in work.statements] == ["busy_rows", "mine 2", "by_parameter", "wipe", "mine 5"]
    assert work.texts["busy_rows"] == "SELECT count(*) FROM w WHERE note = 'a;b' AND a > 10"
    assert work.texts["mine 2"] == "SELECT $tag$ ; $tag$ AS dollar"  # a semicolon in dollar quotes stays inside
    assert work.texts["mine 5"] == "DROP TABLE w"


def test_a_relative_sql_path_is_read_from_the_project_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("PREP_OPS_HOME", str(tmp_path))
    _write(tmp_path / "work.sql", "SELECT 1;\n-- name: two\nSELECT 2")
    assert list(workload_queries.from_file("work.sql").texts) == ["work 1", "two"]


def test_a_statement_named_with_spaces_keeps_its_whole_name(tmp_path):
    """`-- name: events in a day` was cut at its first space ('events'), so asking for it by its name fell back
    to the slowest statement, with a WARN."""
    _write(tmp_path / "work.sql", "-- name: events in a day  \nSELECT 1;\n--name:two\nSELECT 2")
    assert list(workload_queries.from_file(tmp_path / "work.sql").texts) == ["events in a day", "two"]


@pytest.mark.parametrize("value, message", [
    ("tpo", "queries must be one of auto, top, catalogue or a path to a .sql file, not 'tpo'"),
    ("", "queries must be one of"),
    ("/no/such/file.sql", "cannot read the statements of /no/such/file.sql"),
])
def test_queries_must_be_a_choice_or_a_readable_sql_file(value, message, scratch):
    with db.connect(scratch) as conn, pytest.raises(ParameterError, match=message.replace("(", r"\(").replace(".", r"\.")):
        workload_queries.choose(conn, value)


def test_a_sql_file_without_statements_is_refused(tmp_path):
    with pytest.raises(ParameterError, match="holds no SQL statement"):
        workload_queries.from_file(_write(tmp_path / "empty.sql", "-- nothing here\n;\n"))


def test_auto_is_the_catalogue_where_the_schools_schema_is_else_top(migrated, sample_db):
    with db.connect(migrated) as conn:
        school = workload_queries.choose(conn)
    with db.connect(sample_db("chinook")) as conn:
        chinook = workload_queries.choose(conn)
    assert school.kind == "catalogue" and list(school.texts) == list(plans.catalogue())
    assert school.chosen_by == "auto: the school's schema is here"
    assert chinook.kind == "top" and chinook.chosen_by == "auto: no school schema here"


def test_the_catalogue_on_a_database_without_the_schools_tables_fails_step_one(sample_db):
    work = workload_queries.catalogue()
    with db.connect(sample_db("chinook"), autocommit=True) as conn:
        params = workload_queries.parameters(conn, work)
        verdict = work.verdict(conn, params)
    assert params is None and verdict["passed"] is False and "skipped" not in verdict
    assert "needs the school's tables" in verdict["detail"] and "queries='top'" in verdict["fix"]


def test_catalogue_report_gives_every_query_its_kind_of_plan(seeded):
    with db.connect(seeded, autocommit=True) as conn:
        work = workload_queries.choose(conn, "catalogue")
        params = workload_queries.parameters(conn, work)
        report = workload_report.report(conn, work, params)
        verdict = work.verdict(conn, params)
    assert list(report["query"]) == list(plans.catalogue())
    assert set(report["plan"]) == {"ANALYZE"} and (report["ms"] > 0).all() and (report["rows"] > 0).all()
    assert verdict["passed"] and verdict["detail"].startswith("6 queries of the school's catalogue, on prep_ops_test_")
    assert workload_report.report_verdict(report, work)["passed"]


def test_a_file_is_data_its_statements_never_run_as_a_script(w_table, tmp_path):
    """On a scratch database EXPLAIN ANALYZE runs a DELETE, rolled back; a DROP is no statement EXPLAIN
    takes: each goes alone to plans.explain, and the table and its rows are still there."""
    work = workload_queries.from_file(_write(tmp_path / "mine.sql", FILE))
    with db.connect(w_table, autocommit=True) as conn:
        report = workload_report.report(conn, work).set_index("query")
        assert conn.execute("SELECT count(*) FROM w").fetchone()[0] == 1000
        assert conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0] == 0
    assert report.loc["busy_rows", "plan"] == "ANALYZE" and report.loc["busy_rows", "rows"] == 1
    assert report.loc["wipe", "plan"] == "ANALYZE"  # ran, and was rolled back
    assert report.loc["by_parameter", "plan"] == "generic plan" and pd.isna(report.loc["by_parameter", "ms"])
    assert report.loc["mine 5", "plan"] == "not planned" and "DROP" in report.loc["mine 5", "note"]
    verdict = workload_report.report_verdict(report.reset_index(), work)
    assert not verdict["passed"] and "not planned: mine 5" in verdict["fix"]


def test_nothing_is_left_on_a_database_that_is_not_scratch(w_table, tmp_path, server, monkeypatch):
    """As on a DBA's server named by a URL: statements that write are planned only, a SELECT runs READ ONLY
    and rolled back, and the school's sample is never made there without confirm."""
    with db.connect(w_table, autocommit=True) as conn:
        conn.execute("CREATE SEQUENCE s")
    dump = schema_dump(w_table)
    judge_as_elsewhere(monkeypatch)
    text = FILE + "INSERT INTO w VALUES (1);\nSELECT nextval('s');\nCREATE TABLE copied AS SELECT * FROM w;\n"
    work = workload_queries.from_file(_write(tmp_path / "mine.sql", text))
    with db.connect(w_table, autocommit=True) as conn:
        report = workload_report.report(conn, work).set_index("query")
        look = workload_report.closer_look(conn, work, report.reset_index(), "wipe")
        applied = look.apply_and_compare(conn, {}, [], create=True, confirm=False)
        assert conn.execute("SELECT count(*) FROM w").fetchone()[0] == 1000
        assert conn.execute("SELECT last_value, is_called FROM s").fetchone() == (1, False)
        assert conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0] == 0
    assert report.loc["busy_rows", "plan"] == "ANALYZE"  # READ ONLY, rolled back
    assert {report.loc[n, "plan"] for n in ("wipe", "mine 6", "mine 8")} == {"plan only"}
    assert report.loc["mine 7", "plan"] == "not planned" and "read-only transaction" in report.loc["mine 7", "note"]
    assert look.plan.kind == "plan only" and look.rows_verdict()["skipped"].startswith("wipe not run: EXPLAIN without ANALYZE")
    assert applied.statements == [] and applied.status.startswith("nothing timed or created")
    elsewhere = db.Target(w_table.url, embedded=False)  # a URL someone named: not scratch
    catalogue = workload_queries.catalogue()
    assert workload_queries.lab_for(elsewhere, catalogue, 20000) is None
    assert "needs a scratch server or confirm=True" in catalogue.runs_on
    assert schema_dump(w_table) == dump
    assert scratch.existing(server, "prep_ops_plans_") == []


def test_top_statements_are_the_databases_own_by_total_time(scratch):
    with db.connect(scratch, autocommit=True) as conn:
        if not _statements_preloaded(conn):
            pytest.skip("needs pg_stat_statements in shared_preload_libraries")
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("CREATE TABLE lessons (id int PRIMARY KEY, minutes int, room text)")
        conn.execute("INSERT INTO lessons SELECT i, i % 90, 'room ' || i % 7 FROM generate_series(1, 20000) i")
        for n in range(3):
            conn.execute("SELECT room, sum(minutes) AS practice FROM lessons GROUP BY room ORDER BY room")
            conn.execute("SELECT * FROM lessons WHERE minutes = %s", (n,))
        conn.execute("UPDATE lessons SET room = room WHERE minutes IS NULL")
        conn.execute('CREATE SCHEMA app; CREATE TABLE app.pg_class (id int, kind text)')  # a user's, named like a catalog
        for _ in range(2):
            conn.execute("SELECT kind, count(*) FROM app.pg_class GROUP BY kind")
        for _ in range(20):  # a tool's catalog reads and settings: not the workload
            conn.execute("SELECT count(*) FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid")
            conn.execute("SET work_mem = '8MB'")
            conn.execute("SELECT 1")
        work = workload_queries.choose(conn, "top")
        report = workload_report.report(conn, work).set_index("query")
    texts = {s.name: s.text for s in work.statements}
    assert work.kind == "top" and not work.why_none
    assert list(texts) == ["top 1", "top 2", "top 3", "top 4", "top 5"]  # the INSERT that loaded it too
    assert "SELECT kind, count(*) FROM app.pg_class GROUP BY kind" in texts.values()  # judged by its schema
    assert not any("pg_class c" in t or "work_mem" in t or t == "SELECT $1" for t in texts.values())
    assert any(t.startswith("INSERT INTO lessons SELECT") for t in texts.values())
    by_text = {t: n for n, t in texts.items()}
    grouped = by_text["SELECT room, sum(minutes) AS practice FROM lessons GROUP BY room ORDER BY room"]
    filtered = by_text["SELECT * FROM lessons WHERE minutes = $1"]
    assert report.loc[grouped, "plan"] == "ANALYZE" and report.loc[grouped, "rows"] == 7
    assert report.loc[grouped, "calls"] == 3 and report.loc[grouped, "mean ms"] > 0
    assert report.loc[filtered, "plan"] == "generic plan"
    assert report.loc[by_text["UPDATE lessons SET room = room WHERE minutes IS NULL"], "plan"] == "ANALYZE"  # scratch


def test_missing_pg_stat_statements_makes_top_a_skip_that_says_how_to_enable_it(scratch):
    with db.connect(scratch, autocommit=True) as conn:
        work = workload_queries.choose(conn, "top")
        report = workload_report.report(conn, work)
        look = workload_report.closer_look(conn, work, report)
        applied = look.apply_and_compare(conn, {}, [])
        advice = indexes.advice(conn)
        verdicts = [work.verdict(conn, {}), workload_report.report_verdict(report, work), look.rows_verdict(),
                    look.findings_verdict(look.findings())]
    assert work.statements == [] and "not installed in this database" in work.why_none
    assert "shared_preload_libraries = 'pg_stat_statements', restart, CREATE EXTENSION pg_stat_statements" in work.why_none
    assert all(v["skipped"] and work.why_none in v["skipped"] for v in verdicts)
    assert look.plan is None and look.chart() is None and applied.statements == []
    assert advice == []  # step 5 on a database without a single index


def _work(*pairs) -> Workload:
    return Workload("file", "statements", [Statement(n, t) for n, t in pairs])


def test_the_statement_looked_at_is_query_else_the_slowest(w_table):
    work = _work(("quick", "SELECT 1 FROM w LIMIT 1"), ("slow", "SELECT count(*) FROM w a, w b WHERE a.a < b.a"))
    with db.connect(w_table, autocommit=True) as conn:
        report = workload_report.report(conn, work)
        slowest = workload_report.closer_look(conn, work, report)
        named = workload_report.closer_look(conn, work, report, "quick")
        given = workload_report.closer_look(conn, work, report, "SELECT max(a) FROM w")
    assert (slowest.name, slowest.why) == ("slow", "slowest by EXPLAIN ANALYZE time")
    assert slowest.plan.analyzed and slowest.rows_verdict()["detail"].startswith("slow (slowest by EXPLAIN ANALYZE time): 1 rows")
    assert (named.name, named.why) == ("quick", "named by query")
    assert (given.name, given.why, given.plan.rows) == ("query", "given as query", 1)
    # a name that is not among them (a catalogue name while analysing a file): the slowest, and why
    assert workload_report.pick(work, report, "course_roster")[::2] == (
        "slow", "'course_roster' is not among the statements of step 2: slowest by EXPLAIN ANALYZE time")


def test_the_slowest_top_statement_is_by_mean_time_in_pg_stat_statements():
    work = Workload("top", "top", [Statement("top 1", "SELECT 1", 900, 1.0, 900.0),
                                   Statement("top 2", "SELECT 2", 2, 300.0, 600.0)])
    report = pd.DataFrame({"query": ["top 1", "top 2"], "plan": ["ANALYZE", "generic plan"], "ms": [5.0, None],
                           "mean ms": [1.0, 300.0], "cost": [1.0, 1.0]})
    assert workload_report.pick(work, report) == ("top 2", "SELECT 2", "slowest by mean time in pg_stat_statements")
    unrun = report.assign(**{"ms": [None, None], "mean ms": [None, None], "cost": [10.0, 99.0]})
    assert workload_report.pick(work, unrun)[2] == "costliest by estimate (none ran)"


def test_the_schools_sample_is_dropped_when_the_run_stops_before_its_last_cell(server):
    """A runbook stopped by a failed check or an error never reaches the cell that drops its sample: the
    process that made it drops it as it exits (here a Python process that fails right after making it)."""
    import subprocess
    import sys

    from conftest import cli_env

    code = ("from prep_ops import db, workload_queries as w\n"
            "lab = w.lab_for(db.resolve_target(), w.catalogue(), 10, confirm=True)\n"
            "print(lab.database, flush=True)\n"
            "raise SystemExit('stopped half way')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=cli_env(server))
    made = done.stdout.strip()
    assert done.returncode == 1 and "stopped half way" in done.stderr and made.startswith("prep_ops_plans_")
    assert made not in scratch.existing(server, "prep_ops_plans_")


def test_top_statements_say_how_many_of_another_roles_they_could_not_see(scratch, server):
    """As the database's owner, not a superuser (nor pg_read_all_stats), pg_stat_statements shows another
    role's statements as `<insufficient privilege>`: the one taking the most time was left out without a
    word, under a PASS reading "10 statements taking the most time"."""
    import secrets

    from psycopg import sql

    owner, app, password = (f"prep_ops_test_{kind}_{secrets.token_hex(3)}" for kind in ("owner", "app", "pw"))
    with db.connect(scratch, autocommit=True) as conn:
        if not _statements_preloaded(conn):
            pytest.skip("needs pg_stat_statements in shared_preload_libraries")
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("CREATE TABLE lessons (id int PRIMARY KEY, minutes int)")
        conn.execute("INSERT INTO lessons SELECT i, i % 90 FROM generate_series(1, 2000) i")
        for role in (owner, app):
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
        conn.execute(sql.SQL("GRANT SELECT ON lessons TO {}").format(sql.Identifier(app)))
        conn.execute(sql.SQL("ALTER TABLE lessons OWNER TO {}").format(sql.Identifier(owner)))
    try:
        with db.connect(scratch.with_user(app, password), autocommit=True) as conn:
            for _ in range(3):
                conn.execute("SELECT count(*) FROM lessons a JOIN lessons b ON a.minutes < b.minutes")
        with db.connect(scratch.with_user(owner, password), autocommit=True) as conn:
            conn.execute("SELECT minutes FROM lessons WHERE id = 7")
            work = workload_queries.choose(conn, "top")
            verdict = work.verdict(conn, {})
        assert not any("JOIN lessons b" in s.text for s in work.statements)  # its text is hidden from the owner
        assert re.search(r"\(\d+ statement\(s\) of other roles not shown, [\d,]+ ms in all: their text needs "
                         r"pg_read_all_stats or a superuser\)", verdict["detail"]), verdict
    finally:
        with db.connect(scratch, autocommit=True) as conn:
            conn.execute("DROP TABLE lessons")
            for role in (owner, app):
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


RAN = """CREATE FUNCTION app.ran() RETURNS int LANGUAGE plpgsql AS $f$
BEGIN
    PERFORM set_config('role', 'none', true);  -- takes back a SET ROLE to its author, were there one
    EXECUTE format('COPY (SELECT current_user) TO %L', {path});
    RETURN 1;
EXCEPTION WHEN insufficient_privilege THEN
    RETURN 0;  -- as its own author: may not write a server file
END $f$"""
FOLDED = """CREATE FUNCTION app.folded() RETURNS int LANGUAGE plpgsql IMMUTABLE AS $f$
BEGIN
    PERFORM set_config('role', 'none', true);  -- takes back a SET ROLE to its author, were there one
    IF current_user <> {author} THEN
        PERFORM pg_advisory_lock(424242);  -- a mark that outlives the rolled-back transaction
    END IF;
    RETURN 1;
END $f$"""


def test_another_roles_top_statement_never_runs_its_functions_as_the_role_running_runbook_03(scratch, app_author):
    """Runbook 03 plans the target's own top statements, whoever wrote them. A role that may create a
    function (here: write a server file, which only a superuser or pg_write_server_files may) and call it
    from a statement often enough to be in pg_stat_statements' top had it run by whoever ran runbook 03:
    by EXPLAIN ANALYZE of a SELECT (READ ONLY does not stop COPY TO), and by planning alone for an
    IMMUTABLE one (the planner folds a constant call). SET ROLE to the author would not hold: each function
    here takes it back first. Its statements are listed, and not planned at all."""
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from psycopg import sql

    folder = Path(tempfile.mkdtemp(prefix="prep-ops-marks-"))  # not under pytest's private folders
    os.chmod(folder, 0o777)  # the server's own user may write here
    author, password = app_author
    with db.connect(scratch, autocommit=True) as conn:
        if not _statements_preloaded(conn):
            pytest.skip("needs pg_stat_statements in shared_preload_libraries")
        if not conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]:
            pytest.skip("needs a superuser to run runbook 03 as")
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    try:
        with db.connect(scratch.with_user(author, password), autocommit=True) as conn:
            conn.execute("CREATE TABLE app.lessons (id int PRIMARY KEY, minutes int)")
            conn.execute("INSERT INTO app.lessons SELECT i, i % 90 FROM generate_series(1, 50) i")
            conn.execute(RAN.format(path=sql.Literal(str(folder / "ran")).as_string(conn)))
            conn.execute(FOLDED.format(author=sql.Literal(author).as_string(conn)))
            for _ in range(20):
                conn.execute("SELECT app.ran() FROM app.lessons")
                conn.execute("SELECT count(*) FROM app.lessons WHERE minutes < app.folded()")
        assert list(folder.iterdir()) == []  # the author itself may not write there
        with db.connect(scratch, autocommit=True) as conn:
            work = workload_queries.choose(conn, "top")
            report = workload_report.report(conn, work).set_index("statement")
            marked = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 424242"
                                  ).fetchone()[0]
        texts = [s.text for s in work.statements]
        assert "SELECT app.ran() FROM app.lessons" in texts  # they are the workload, listed
        assert report.loc["SELECT app.ran() FROM app.lessons", "plan"] == workload_report.NOT_PLANNED
        assert f"written by role {author}, neither" in report.loc["SELECT app.ran() FROM app.lessons", "note"]
        assert "SELECT count(*) FROM app.lessons WHERE minutes < app.folded()" in texts
        assert sorted(p.name for p in folder.iterdir()) == [] and marked == 0  # but never with the runbook's rights
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_top_statement_of_another_role_is_not_planned_and_says_why(scratch):
    """Run by a role that is not a superuser (it reads every statement through pg_read_all_stats), another
    role's statement is listed, not planned, and the note says why and what to do: planned with the reader's
    rights, the author's functions would run as the reader."""
    import secrets

    from psycopg import sql

    author, reader, password = (f"prep_ops_test_{kind}_{secrets.token_hex(3)}" for kind in ("author", "reader", "pw"))
    with db.connect(scratch, autocommit=True) as conn:
        if not _statements_preloaded(conn):
            pytest.skip("needs pg_stat_statements in shared_preload_libraries")
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("CREATE TABLE lessons (id int PRIMARY KEY, minutes int)")
        conn.execute("INSERT INTO lessons SELECT i, i % 90 FROM generate_series(1, 200) i")
        for role in (author, reader):
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
            conn.execute(sql.SQL("GRANT SELECT ON lessons TO {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT pg_read_all_stats TO {}").format(sql.Identifier(reader)))
    try:
        with db.connect(scratch.with_user(author, password), autocommit=True) as conn:
            for _ in range(5):
                conn.execute("SELECT count(*) FROM lessons a JOIN lessons b ON a.minutes < b.minutes")
        with db.connect(scratch.with_user(reader, password), autocommit=True) as conn:
            work = workload_queries.choose(conn, "top")
            report = workload_report.report(conn, work).set_index("statement")
            verdict = workload_report.report_verdict(report.reset_index(), work)
        joined = "SELECT count(*) FROM lessons a JOIN lessons b ON a.minutes < b.minutes"
        assert joined in [s.text for s in work.statements]
        assert report.loc[joined, "plan"] == workload_report.NOT_PLANNED
        assert f"written by role {author}, neither {reader} nor a superuser" in report.loc[joined, "note"]
        assert "query=" in report.loc[joined, "note"] and not verdict["passed"]
    finally:
        with db.connect(scratch, autocommit=True) as conn:
            conn.execute("DROP TABLE lessons")
            for role in (author, reader):
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_the_school_schema_check_does_not_wait_behind_a_table_locked_access_exclusive(scratch):
    """Runbook 03's and 11's first question, whether the school's tables are here, measured every table
    of public: behind a session holding one ACCESS EXCLUSIVE (an incident's blocker) runbook 11 live
    hung in step 1 for as long as that session ran. It reads names from the catalog only now."""
    with db.connect(scratch, autocommit=True) as conn, db.connect(scratch) as holder:
        conn.execute("CREATE TABLE lesson_rooms (id int)")
        holder.execute("LOCK TABLE lesson_rooms IN ACCESS EXCLUSIVE MODE")
        try:
            conn.execute("SET statement_timeout = '5s'")  # the old code waits this long, then fails
            assert workload_queries.school_schema_present(conn) is False
        finally:
            holder.rollback()
