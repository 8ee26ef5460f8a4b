import time

import pandas as pd
import psycopg
import pytest
from conftest import judge_as_elsewhere
from psycopg import sql
from psycopg.conninfo import make_conninfo

from prep_ops import db, maintenance
from prep_ops.errors import ConfirmationRequired, LockBusy, ParameterError, PlanChanged, PrepOpsError

HOSTILE = "users; DROP TABLE students; --"
ODD = 'Odd "name"; here'


def _execute(target, *statements):
    """Run `statements` on one autocommit connection, make its statistics visible to other sessions,
    and let older snapshots in the database end (see `_settle`)."""
    with db.connect(target, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)
        if db.server_version(conn) >= 15:
            # counts reach shared statistics when the session goes idle, at most once a second; force it
            conn.execute("SELECT pg_stat_force_next_flush()")
        else:
            time.sleep(1)  # the statistics collector reports every 500 ms
        _settle(conn)


def _settle(conn, seconds=10):
    """Wait until no other session in the database holds a snapshot older than now: an autovacuum
    worker analysing the catalogs of a new database may, and VACUUM and REINDEX keep the rows it may see."""
    now = conn.execute("SELECT pg_current_xact_id()::text").fetchone()[0]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND age(backend_xmin) > age(%s::xid)", (now,)).fetchone()[0]:
        time.sleep(0.1)


def _scalar(target, query, *params):
    with db.connect(target) as conn:
        return conn.execute(query, params).fetchone()[0]


def _scores(target, table="scores", rows=10_000):
    """A table of `rows` rows with a primary key, autovacuum off so that only the test vacuums it."""
    name = sql.Identifier(table)
    _execute(target,
             sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, points int, label text) "
                     "WITH (autovacuum_enabled = false)").format(name),
             sql.SQL("INSERT INTO {} SELECT g, g % 100, 'row ' || g FROM generate_series(1, {}) g")
             .format(name, sql.Literal(rows)))


@pytest.fixture
def conn(scratch):
    """An autocommit connection to `scratch`, as a notebook's or a CLI command's."""
    with db.connect(scratch, autocommit=True) as conn:
        yield conn


def _status(target, table="scores"):
    with db.connect(target, autocommit=True) as conn:
        status = maintenance.table_status(conn)
    return status.set_index("table_name").loc[table]


def _index_file(target, index):
    return _scalar(target, "SELECT pg_relation_filenode(%s::regclass)", index)


def test_table_status_counts_dead_tuples(scratch):
    _scores(scratch)
    _execute(scratch, "UPDATE scores SET points = points + 1", "DELETE FROM scores WHERE id <= 2000")
    row = _status(scratch)
    assert row["live_tuples"] == 8000
    assert row["dead_tuples"] >= 2000 and 0 < row["dead_ratio"] < 1
    assert row["table_bytes"] > 0 and row["index_bytes"] > 0 and row["total_bytes"] >= row["table_bytes"] + row["index_bytes"]
    assert row["modified_since_analyze"] >= 12_000 and row["vacuum_count"] == 0
    assert row[["last_vacuum", "last_autovacuum", "last_analyze"]].isna().all()


def test_maintain_removes_dead_tuples_and_sets_last_vacuum(scratch, conn):
    _scores(scratch)
    _execute(scratch, "DELETE FROM scores WHERE id % 2 = 0")
    progress = []
    result = maintenance.maintain(conn, ["scores"], on_progress=lambda *args: progress.append(args))
    changes = maintenance.before_after(result).set_index("table_name").loc["scores"]
    assert changes["dead_tuples_before"] >= 5000 and changes["dead_tuples_after"] == 0
    assert pd.notna(changes["last_vacuum"]) and pd.notna(changes["last_analyze"])
    assert result.not_vacuumed == [] and result.dead_tuples_grew == []
    assert [step.statement for step in result.statements] == ['VACUUM (ANALYZE) "public"."scores"']
    assert [(done, total) for _, done, total in progress] == [(1, 1)] and progress[0][0].seconds > 0
    assert _status(scratch)["vacuum_count"] == 1


def test_reindex_default_is_not_users(seeded, scratch, conn):
    """Without named tables REINDEX rebuilds what has measured index bloat, never the guide's `users` by
    default; with nothing bloated it runs nothing and says so."""
    with db.connect(seeded, autocommit=True) as school:
        assert maintenance.plan(school, reindex=True) == ["VACUUM (ANALYZE)"]
        chosen, note = maintenance.reindex_choice(school)
        assert chosen == [] and note.startswith("nothing to REINDEX: no index has measured bloat over 30% and 1 MiB")
        users_email = _index_file(seeded, "idx_users_email")
        result = maintenance.maintain(school, reindex=True)
        assert [step.statement for step in result.statements] == ["VACUUM (ANALYZE)"] and result.note == note
        assert maintenance.reindex(school) == []
    assert _index_file(seeded, "idx_users_email") == users_email and result.not_vacuumed == []
    assert set(result.tables) >= {"users", "students", "enrollments", "tuition_payments"}
    # a table whose primary key is measured half empty is chosen
    _scores(scratch, rows=100_000)
    _execute(scratch, "UPDATE scores SET points = points + 1", "VACUUM scores")
    chosen, note = maintenance.reindex_choice(conn)
    if "not measured" in note:
        pytest.skip(note)
    assert [t.qualified for t in chosen] == ['"public"."scores"'] and note.startswith("reindexing scores: ")
    assert maintenance.plan(conn, reindex=True)[1:] == ['REINDEX TABLE CONCURRENTLY "public"."scores"',
                                                        'ANALYZE "public"."scores"']


@pytest.mark.parametrize("concurrently", [True, False])
def test_reindex_rebuilds_a_bloated_index(scratch, conn, concurrently):
    _scores(scratch)
    # every row moves to a new page (no room on full pages for a HOT update): the primary key doubles
    _execute(scratch, "UPDATE scores SET points = points + 1")
    size, file = _scalar(scratch, "SELECT pg_relation_size('scores_pkey')"), _index_file(scratch, "scores_pkey")
    executed = maintenance.reindex(conn, ["scores"], concurrently=concurrently)
    assert [step.statement for step in executed] == [
        f'REINDEX TABLE {"CONCURRENTLY " if concurrently else ""}"public"."scores"']
    assert _scalar(scratch, "SELECT pg_relation_size('scores_pkey')") < 0.75 * size
    assert _index_file(scratch, "scores_pkey") != file


def test_reindex_is_concurrent_by_default_where_the_server_has_it(scratch, conn):
    _scores(scratch)
    statements = maintenance.plan(conn, "scores", reindex=True)
    assert statements[1] == 'REINDEX TABLE CONCURRENTLY "public"."scores"'
    assert maintenance.plan(conn, "scores", reindex=True, concurrently=False)[1] == 'REINDEX TABLE "public"."scores"'


def test_vacuum_and_analyze_run_what_they_are_asked(scratch, conn):
    _scores(scratch)
    assert [s.statement for s in maintenance.analyze(conn, "scores")] == ['ANALYZE "public"."scores"']
    assert pd.notna(_status(scratch)["last_analyze"]) and pd.isna(_status(scratch)["last_vacuum"])
    assert [s.statement for s in maintenance.vacuum(conn, ["scores"], analyze=False)] == ['VACUUM "public"."scores"']
    assert [s.statement for s in maintenance.vacuum(conn)] == ["VACUUM (ANALYZE)"]
    row = _status(scratch)
    assert row["vacuum_count"] == 2 and row["analyze_count"] == 2


def test_hostile_table_name_is_refused_and_nothing_runs(migrated):
    calls = [maintenance.plan, maintenance.vacuum, maintenance.analyze, maintenance.reindex, maintenance.maintain]
    with db.connect(migrated, autocommit=True) as conn:
        for call in calls:
            with pytest.raises(ParameterError, match=r"unknown table .*students.*users"):
                call(conn, [HOSTILE])
    assert _scalar(migrated, "SELECT to_regclass('public.students') IS NOT NULL")
    assert _status(migrated, "students")["vacuum_count"] == 0


def test_table_name_with_quotes_and_spaces_is_quoted(scratch, conn):
    _scores(scratch, ODD, rows=2000)
    _execute(scratch, sql.SQL("DELETE FROM {} WHERE id <= 1000").format(sql.Identifier(ODD)))
    quoted = '"public"."Odd ""name""; here"'
    assert maintenance.plan(conn, [ODD], reindex=True) == [
        f"VACUUM (ANALYZE) {quoted}", f"REINDEX TABLE CONCURRENTLY {quoted}", f"ANALYZE {quoted}"]
    result = maintenance.maintain(conn, [ODD], reindex=True)
    assert result.tables == [ODD] and result.not_vacuumed == []
    assert result.after.set_index("table_name").loc[ODD, "dead_tuples"] == 0
    assert len(maintenance.reindex(conn, ODD, concurrently=False) + maintenance.analyze(conn, ODD)) == 2


def test_unknown_table_error_lists_the_valid_tables(migrated):
    with db.connect(migrated, autocommit=True) as conn:
        with pytest.raises(ParameterError) as error:
            maintenance.maintain(conn, ["pupils"])
        with pytest.raises(ParameterError, match="None for the whole database"):
            maintenance.vacuum(conn, [])
    message = str(error.value)
    assert message.startswith("unknown table 'pupils'; tables of every schema are: ") and "enrollments" in message
    assert "audit.log" in message and "\n" not in message  # another schema's table is listed, schema-qualified


def test_a_refused_statement_is_one_clear_error(scratch):
    _scores(scratch)
    impatient = db.Target(make_conninfo(scratch.url, options="-c lock_timeout=100"), scratch.embedded)
    with db.connect(scratch) as holder, db.connect(impatient, autocommit=True) as conn:
        holder.execute("LOCK TABLE scores IN SHARE UPDATE EXCLUSIVE MODE")  # as another VACUUM would
        with pytest.raises(PrepOpsError, match=r'^VACUUM \(ANALYZE\) "public"."scores" failed after 0 of 1 statements ran: '
                                               r'canceling statement due to lock timeout$'):
            maintenance.maintain(conn, "scores")


def test_confirm_is_required_on_a_database_that_is_not_scratch(scratch, monkeypatch):
    judge_as_elsewhere(monkeypatch)  # as on a server someone named by a URL
    production = db.Target(scratch.url, embedded=False)
    _scores(production)
    with db.connect(production, autocommit=True) as conn:
        with pytest.raises(ConfirmationRequired, match="not a scratch database and maintenance changes it: pass --confirm"):
            maintenance.maintain(conn, reindex=True)
        assert _status(production)["vacuum_count"] == 0
        assert maintenance.plan(conn, "scores")  # the dry run needs no confirm
        result = maintenance.maintain(conn, "scores", confirm=True)
    assert result.not_vacuumed == [] and _status(production)["vacuum_count"] == 1


def test_bloat_estimate_finds_a_mass_update_and_vacuum_full_gives_it_back(scratch, conn):
    _scores(scratch)
    _execute(scratch, "ANALYZE scores")
    fresh = maintenance.bloat(conn, install=False)
    _execute(scratch, "UPDATE scores SET points = points + 1", "ANALYZE scores")
    bloated = maintenance.bloat(conn, install=False)
    for frame in (fresh, bloated):
        assert (frame["method"] == "estimate").all() and "pgstattuple is not installed" in frame.attrs["note"]
        assert (frame["wasted_bytes"] >= 0).all() and frame["bloat_pct"].between(0, 100).all()
    table = bloated.set_index("kind").loc["table"]
    index = bloated.set_index("index_name").loc["scores_pkey"]
    assert table["bloat_pct"] > 30 > fresh.set_index("kind").loc["table", "bloat_pct"]
    assert index["wasted_bytes"] > 0
    executed = maintenance.vacuum(conn, "scores", full=True)
    assert executed[0].statement == 'VACUUM (FULL, ANALYZE) "public"."scores"'
    assert maintenance.bloat(conn, install=False).set_index("kind").loc["table", "bloat_pct"] < 30


def test_estimate_and_measure_both_see_dead_rows_since_the_last_vacuum(scratch, conn):
    """The estimate works from the table's current size and live rows, not relpages as of the last
    VACUUM/ANALYZE (which missed every row that died since); pgstattuple reads the pages."""
    _scores(scratch, rows=20_000)
    _execute(scratch, "ANALYZE scores", "UPDATE scores SET points = points + 1")
    estimate = maintenance.bloat(conn, install=False).set_index("kind").loc["table"]
    assert estimate["method"] == "estimate" and estimate["bloat_pct"] > 30 and estimate["dead_rows"] >= 18_000
    measured = maintenance.bloat(conn, install=True)
    if measured.attrs["note"]:
        pytest.skip(measured.attrs["note"])
    table = measured.set_index("kind").loc["table"]
    assert table["method"] == "measured" and table["note"] == "measured"
    assert table["measured_dead_rows"] >= 18_000 and table["bloat_pct"] > 30  # every old version (pruning may take a few)
    assert table["dead_rows"] >= 18_000  # the server's count, shown beside the measure
    index = measured.set_index("index_name").loc["scores_pkey"]
    assert index["method"] == "measured" and pd.isna(index["dead_rows"])


def test_bloat_with_many_dead_rows_is_not_no_bloat(scratch, conn):
    """The issue's table (500k live, 1.17M dead rows, 214 MB) scaled down: 50,000 live rows, about 117,000
    dead since the last ANALYZE. The estimate must not say "no large bloat"."""
    _execute(scratch, "CREATE TABLE wide (id int PRIMARY KEY, n int, pad text) WITH (autovacuum_enabled = false)",
             "INSERT INTO wide SELECT g, 0, repeat('x', 200) FROM generate_series(1, 50000) g", "ANALYZE wide",
             "UPDATE wide SET n = n + 1", "UPDATE wide SET n = n + 1", "UPDATE wide SET n = n + 1 WHERE id % 3 <> 0")
    space = maintenance.bloat(conn, install=False)
    table = space.set_index("kind").loc["table"]
    assert table["method"] == "estimate" and table["dead_rows"] >= 110_000
    # sizes as of the ANALYZE would say about 0%; HOT pruning reused some of the dead rows' space
    assert table["bloat_pct"] > 30 and table["wasted_bytes"] > 5 * 2**20
    verdict = maintenance.bloat_check(space)
    assert not verdict["passed"] and verdict["detail"].startswith("1 of 2 tables and indexes: wide ")
    assert f"{int(table['dead_rows']):,} dead rows (pg_stat_user_tables)" in verdict["detail"]


def test_bloat_says_when_there_are_no_statistics(scratch, conn):
    _scores(scratch, rows=1000)
    row = maintenance.bloat(conn, install=False).set_index("kind").loc["table"]
    assert row["note"] == "no statistics: run ANALYZE" and row.isna()["bloat_pct"]


def test_an_empty_database_has_little_to_do(scratch, conn):
    assert maintenance.table_status(conn).empty and maintenance.bloat(conn).empty
    assert maintenance.plan(conn, reindex=True) == ["VACUUM (ANALYZE)"]
    result = maintenance.maintain(conn, reindex=True)
    assert result.tables == [] and len(result.statements) == 1
    assert maintenance.before_after(result).empty and result.not_vacuumed == []


def test_maintenance_leaves_the_shared_connection_as_it_found_it(scratch, conn):
    _scores(scratch)
    handlers = list(conn._notice_handlers)
    maintenance.maintain(conn, "scores", reindex=True)
    maintenance.vacuum(conn, "scores")
    with pytest.raises(ParameterError):
        maintenance.analyze(conn, ["pupils"])
    assert conn._notice_handlers == handlers and conn.autocommit
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_runbook_checks_of_bloat_and_of_a_maintenance_run(scratch, conn):
    _scores(scratch)
    _execute(scratch, "UPDATE scores SET points = points + 1", "ANALYZE scores")
    space = maintenance.bloat(conn, install=False)
    verdict = maintenance.bloat_check(space)
    # over 30% bloated, but a 10,000-row table wastes far less than 10 MiB: not large
    assert verdict["passed"] and not verdict["skipped"] and verdict["detail"].startswith("0 of 2 tables and indexes")
    large = maintenance.bloat_check(space.assign(wasted_bytes=2**30, bloat_pct=90.0))
    assert not large["passed"] and large["detail"].startswith("2 of 2") and large["must_hold"] is False
    assert maintenance.bloat_check(space.assign(bloat_pct=float("nan")))["skipped"].startswith("nothing measured")
    result = maintenance.maintain(conn, "scores")
    assert [(c["name"], c["passed"]) for c in maintenance.result_checks(result)] == [
        ("last vacuum set on every chosen table", True), ("dead rows did not grow", True), ("no invalid index left", True)]
    skipped = maintenance.result_checks(None, "not a scratch database")
    assert [(c["passed"], c["skipped"]) for c in skipped] == [(False, "not a scratch database")] * 3


def test_bloat_that_pgstattuple_may_not_measure_is_not_said_to_be_measured_with_it(scratch):
    """pgstattuple installed (by a superuser) but the database's owner, not a superuser, holds no
    pg_stat_scan_tables: every relation fell back to the estimate, and runbook 05's verdict still read
    "... 2 estimate; measured with pgstattuple", and `maintain --reindex` said "no pgstattuple"."""
    import secrets

    name, password = f"prep_ops_owner_{secrets.token_hex(3)}", secrets.token_hex(12)
    _scores(scratch)
    _execute(scratch, "CREATE EXTENSION IF NOT EXISTS pgstattuple", "ANALYZE scores",
             sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password)),
             sql.SQL("ALTER TABLE scores OWNER TO {}").format(sql.Identifier(name)))
    try:
        with db.connect(scratch.with_user(name, password), autocommit=True) as conn:
            space = maintenance.bloat(conn, install=False)
            chosen, why = maintenance.reindex_choice(conn, space=space)
        assert set(space["method"]) == {"estimate"} and len(space) == 2
        detail = maintenance.bloat_check(space)["detail"]
        assert "measured with pgstattuple" not in detail, detail
        assert "pgstattuple could not measure any relation: permission denied" in detail, detail
        assert chosen == [] and "no pgstattuple" not in why and "pgstattuple could not measure" in why, why
    finally:
        _execute(scratch, "DROP TABLE scores", sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


# --- a REINDEX CONCURRENTLY killed midway ------------------------------------------------------------
def _invalid(target) -> list[str]:
    with db.connect(target) as conn:
        return [r[0] for r in conn.execute("SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                                           "WHERE NOT i.indisvalid ORDER BY 1").fetchall()]


def _reindex_interrupted(target) -> None:
    """`prep-ops maintain --reindex --confirm` whose REINDEX CONCURRENTLY is ended midway (its backend
    terminated, as a server restart or a DBA's pg_terminate_backend ends it) while it waits for a writer's
    transaction to end before it builds: `scores_pkey_ccnew` is made, INVALID, and stays. (A SIGINT to the
    CLI did the same, but psycopg's cancel of the query, then its wait for it, once hung past 60 s in CI.)"""
    import subprocess
    import sys

    from conftest import cli_env

    with db.connect(target) as holder:  # a writer's open transaction: the reindex waits for it to end
        holder.execute("UPDATE scores SET points = points WHERE id = 1")
        run = subprocess.Popen([sys.executable, "-m", "prep_ops", "maintain", "--tables", "scores", "--reindex",
                                "--confirm"], env=cli_env(target), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while "scores_pkey_ccnew" not in _invalid(target) and time.monotonic() < deadline:
            time.sleep(0.05)
        with db.connect(target, autocommit=True) as dba:
            ended = dba.execute("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                                "WHERE datname = current_database() AND query ILIKE 'REINDEX%%'").fetchone()[0]
        out, err = run.communicate(timeout=60)
    assert ended == 1 and run.returncode != 0, out + err
    assert [name for name in _invalid(target) if not name.startswith("pg_toast_")] == ["scores_pkey_ccnew"]  # and its TOAST index's


def test_a_reindex_killed_midway_leaves_no_invalid_index_reported_as_pass(scratch, conn):
    """The next `maintain --reindex` skipped the invalid scores_pkey_ccnew a killed REINDEX CONCURRENTLY left (the
    server only warns), kept it, maintained on every write and never used, and every check PASSed."""
    _scores(scratch, rows=2000)
    _reindex_interrupted(scratch)
    result = maintenance.maintain(conn, "scores", reindex=True, confirm=True)
    assert 'DROP INDEX CONCURRENTLY IF EXISTS "public"."scores_pkey_ccnew"' in [s.statement for s in result.statements]
    assert _invalid(scratch) == []
    assert maintenance.invalid_check(result)["passed"]


def test_an_invalid_index_maintain_does_not_drop_fails_its_check_and_the_cli(scratch, conn):
    """An invalid index that is not a REINDEX's leftover (a failed CREATE UNIQUE INDEX CONCURRENTLY) is not
    dropped, but named: FAIL, and `prep-ops maintain` exits 1."""
    import subprocess
    import sys

    from conftest import cli_env

    _scores(scratch, rows=200)  # points repeat
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("CREATE UNIQUE INDEX CONCURRENTLY scores_points ON scores (points)")
    check = maintenance.invalid_check(maintenance.maintain(conn, "scores", reindex=True, confirm=True))
    assert not check["passed"] and check["detail"] == 'invalid: "public"."scores_points"'
    done = subprocess.run([sys.executable, "-m", "prep_ops", "maintain", "--tables", "scores", "--confirm"],
                          env=cli_env(scratch), capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and 'FAIL no invalid index left: invalid: "public"."scores_points"' in done.stdout
    assert _invalid(scratch) == ["scores_points"]


def test_bloat_check_does_not_count_a_table_it_could_not_estimate_as_looked_at(scratch, conn):
    """Runbook 05 said PASS "0 of 30 tables and indexes" where 8 of them had neither a measure nor an
    estimate (no statistics the role may read, or never analysed): they were counted as judged. The
    detail counts only what was judged and names the rest."""
    _scores(scratch, rows=1000)  # never analysed, autovacuum off: no column statistics
    _scores(scratch, table="judged", rows=1000)
    _execute(scratch, "ANALYZE judged")
    space = maintenance.bloat(conn, install=False)
    verdict = maintenance.bloat_check(space)
    unjudged = space[space["bloat_pct"].isna()]
    assert "scores" in set(unjudged["table_name"]) and "judged" not in set(unjudged["table_name"])
    assert verdict["detail"].startswith(f"0 of {len(space) - len(unjudged)} tables and indexes; "
                                        f"{len(unjudged)} not judged, neither measured nor estimated")
    assert "scores" in verdict["detail"].split("not judged")[1]


def test_bloat_behind_a_table_locked_access_exclusive_gives_up_in_one_line_instead_of_waiting(scratch, conn):
    """Sizing a relation locks it: behind a session holding a table ACCESS EXCLUSIVE (VACUUM FULL, LOCK
    TABLE), `maintain --reindex` without tables and runbook 05's bloat step waited as long as that
    session. They give up after db.LOCK_WAIT now, in one line saying why."""
    _scores(scratch, rows=100)
    conn.execute("SET statement_timeout = '30s'")  # the old code waits this long, then fails otherwise
    with db.connect(scratch) as holder:
        holder.execute("LOCK TABLE scores IN ACCESS EXCLUSIVE MODE")
        began = time.monotonic()
        try:
            with pytest.raises(LockBusy, match="a table is locked by another session"):
                maintenance.bloat(conn, install=False)
        finally:
            holder.rollback()
    assert time.monotonic() - began < 20
    assert "scores" in set(maintenance.bloat(conn, install=False)["table_name"])  # the lock gone, it reads


def test_table_status_behind_a_table_locked_access_exclusive_gives_up_in_one_line_instead_of_waiting(scratch, conn):
    """Runbook 05's first step sizes every table: behind a session holding one ACCESS EXCLUSIVE it waited
    as long as that session (the runbook hung). It gives up after db.LOCK_WAIT now, saying why."""
    _scores(scratch, rows=100)
    conn.execute("SET statement_timeout = '30s'")  # the old code waits this long, then fails otherwise
    with db.connect(scratch) as holder:
        holder.execute("LOCK TABLE scores IN ACCESS EXCLUSIVE MODE")
        began = time.monotonic()
        try:
            with pytest.raises(LockBusy, match="the tables' status could not be read: a table is locked"):
                maintenance.table_status(conn)
        finally:
            holder.rollback()
    assert time.monotonic() - began < 20
    assert list(maintenance.table_status(conn)["table_name"]) == ["scores"]


def _rest_of_terminal(parent: int) -> bytes:
    """What a pseudo-terminal's other end wrote, up to its close (the program under test has ended)."""
    import os

    said = b""
    while True:
        try:
            chunk = os.read(parent, 4096)
        except OSError:  # the other end is closed: all read
            return said
        if not chunk:
            return said
        said += chunk


def test_maintain_at_a_terminal_says_each_statement_as_it_starts(scratch, conn):
    """`maintain --reindex --confirm` printed nothing until every statement had run: a REINDEX CONCURRENTLY
    waiting for another session's transaction showed a silent terminal for 576 s (the sweep of stop 29). At
    a terminal, each statement is named on stderr as it starts; piped, the output is as before."""
    import os
    import pty
    import subprocess
    import sys

    from conftest import cli_env

    _scores(scratch, rows=500)
    started = []
    result = maintenance.maintain(conn, "scores", reindex=True, confirm=True,
                                  on_start=lambda text, number, total: started.append((number, total, text)))
    assert [text for _, _, text in started] == [s.statement for s in result.statements]  # each, in order
    assert [number for number, _, _ in started] == list(range(1, len(started) + 1))
    parent, child = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "prep_ops", "maintain", "--tables", "scores", "--confirm"],
                              env=cli_env(scratch), stdout=subprocess.PIPE, stderr=child, text=True, timeout=120)
        os.close(child)
        child = None
        said = _rest_of_terminal(parent)
    finally:
        if child is not None:
            os.close(child)
        os.close(parent)
    assert done.returncode == 0, done.stdout
    assert '[1/1] running VACUUM (ANALYZE) "public"."scores"' in said.decode(), said
    piped = subprocess.run([sys.executable, "-m", "prep_ops", "maintain", "--tables", "scores", "--confirm"],
                           env=cli_env(scratch), capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0 and "running" not in piped.stderr, piped.stderr


def test_a_reindex_waiting_at_a_terminal_names_the_session_it_waits_for(scratch):
    """REINDEX CONCURRENTLY waits for every transaction that could see the table to end. At a terminal,
    `maintain` now says every few seconds which session it waits for, and how to end it."""
    import os
    import pty
    import select
    import subprocess
    import sys

    from conftest import cli_env

    _scores(scratch, rows=500)
    parent, child = pty.openpty()
    said = b""
    with db.connect(scratch) as holder:  # an open transaction that has written the table
        holder.execute("UPDATE scores SET points = points WHERE id = 1")
        holder_pid = holder.info.backend_pid
        run = subprocess.Popen([sys.executable, "-m", "prep_ops", "maintain", "--tables", "scores", "--reindex",
                                "--confirm"], env=cli_env(scratch), stdout=subprocess.PIPE, stderr=child, text=True)
        os.close(child)
        try:
            deadline = time.monotonic() + 60
            while f"for pid {holder_pid} ".encode() not in said and time.monotonic() < deadline:
                if select.select([parent], [], [], 1)[0]:  # never blocks past the deadline
                    said += os.read(parent, 4096)
        finally:
            holder.rollback()  # the reindex goes on and ends
        out, _ = run.communicate(timeout=120)
    said += _rest_of_terminal(parent)  # the rest of what it said, up to its end
    os.close(parent)
    text = said.decode()
    assert run.returncode == 0, out + text
    assert "running REINDEX TABLE CONCURRENTLY" in text, text
    line = next(l for l in text.splitlines() if f"for pid {holder_pid} " in l)
    assert "idle in transaction for" in line and f"SELECT pg_terminate_backend({holder_pid})" in line, line



def test_maintain_runs_only_the_plan_shown_never_one_a_changed_parameter_or_an_interrupted_reindex_made(scratch, conn):
    """Runbook 05 in JupyterLab: step 4's cell interrupted in its REINDEX CONCURRENTLY, then run again, ran two DROP
    INDEX statements step 3 never showed (and FAILed 'plan ran' after them); with `tables` changed and only step 4's
    cell run again it maintained tables no plan had named. Given the plan shown, maintain now runs it or nothing."""
    _scores(scratch, rows=2000)
    _execute(scratch, "CREATE TABLE other (id int PRIMARY KEY)")
    shown = maintenance.plan(conn, "scores", reindex=True)
    with pytest.raises(PlanChanged, match=r'^the maintenance to run now is not the plan shown \(3 statement\(s\)\): now also '
                                          r'VACUUM \(ANALYZE\) "public"."other", REINDEX TABLE CONCURRENTLY "public"."other", '
                                          r'ANALYZE "public"."other"; nothing ran: show the plan again'):
        maintenance.maintain(conn, ["scores", "other"], reindex=True, planned=shown)
    assert _scalar(scratch, "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'other'") == 0
    _reindex_interrupted(scratch)
    with pytest.raises(PlanChanged, match=r'now also DROP INDEX CONCURRENTLY IF EXISTS "pg_toast"."pg_toast_\d+_index_ccnew", '
                                          r'DROP INDEX CONCURRENTLY IF EXISTS "public"."scores_pkey_ccnew"; nothing ran'):
        maintenance.maintain(conn, "scores", reindex=True, planned=shown)
    assert "scores_pkey_ccnew" in _invalid(scratch)
    shown = maintenance.plan(conn, "scores", reindex=True)  # shown again: the leftover's drop is in it
    result = maintenance.maintain(conn, "scores", reindex=True, planned=shown)
    assert [s.statement for s in result.statements] == shown and _invalid(scratch) == []
