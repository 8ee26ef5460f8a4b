"""The health check on a real server: real locks, real idle transactions, no mocks."""

import ast
import dataclasses
import json
import re
import subprocess
import sys
import threading
import time
import uuid

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from prep_ops import db, health, runner, wal_archive
from prep_ops.errors import ParameterError

from conftest import cli_env

# The server log is shared with everything else running on the server (other suites provoke
# errors on purpose), so tests that want a clean bill of health do not count its errors.
IGNORE_LOG = {"log_errors_warn": 10**9}


def _by_name(checks: list[health.HealthCheck]) -> dict[str, health.HealthCheck]:
    return {c.name: c for c in checks}


def _wait_for(target: db.Target, pid: int, condition: str, seconds: float = 10.0) -> None:
    """Poll pg_stat_activity until session `pid` meets `condition` (SQL over its row)."""
    query = sql.SQL("SELECT {} FROM pg_stat_activity WHERE pid = %s").format(sql.SQL(condition))
    deadline = time.monotonic() + seconds
    with db.connect(target, autocommit=True) as conn:
        while not conn.execute(query, (pid,)).fetchone()[0]:
            assert time.monotonic() < deadline, f"session {pid} never got to {condition}"
            time.sleep(0.05)


@pytest.fixture
def rooms(scratch):
    """A scratch database with a one-row table to lock."""
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute("CREATE TABLE lesson_rooms (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO lesson_rooms VALUES (1, 'Keller Hall')")
    return scratch


@pytest.mark.parametrize("hold", ["UPDATE lesson_rooms SET name = 'Room 101' WHERE id = 1",
                                  "LOCK TABLE lesson_rooms IN ACCESS EXCLUSIVE MODE"], ids=["row", "table"])
def test_blocked_session_is_reported_with_both_pids(rooms, hold):
    failures = []
    with db.connect(rooms) as holder, db.connect(rooms, autocommit=True) as waiter:
        blocked, blocker = waiter.info.backend_pid, holder.info.backend_pid
        holder.execute(hold)  # not autocommit: the transaction, and its lock, stay open
        waiter.execute("SET statement_timeout = '20s'")  # nothing hangs, whatever happens below

        def wait_for_the_lock():
            try:
                waiter.execute("UPDATE lesson_rooms SET name = 'Room 102' WHERE id = 1")
            except psycopg.Error as exc:
                failures.append(exc)

        thread = threading.Thread(target=wait_for_the_lock)
        thread.start()
        try:
            _wait_for(rooms, blocked, "wait_event_type = 'Lock'")
            with db.connect(rooms, autocommit=True) as conn:
                began = time.perf_counter()
                critical = _by_name(health.run_checks(conn, health.Thresholds(blocked_warn_seconds=0,
                                                                              blocked_critical_seconds=0)))
                seconds = time.perf_counter() - began
                warn = _by_name(health.run_checks(conn, health.Thresholds(blocked_warn_seconds=0)))
                pairs = health.blocking(conn)
        finally:
            holder.rollback()
            thread.join(30)
    check = critical["blocked sessions"]
    assert check.status == "critical" and f"pid {blocked} " in check.detail and f"pid {blocker} " in check.detail
    assert warn["blocked sessions"].status == "warn"
    assert pairs[["blocked_pid", "blocking_pid"]].values.tolist() == [[blocked, blocker]]
    assert "Room 102" in pairs["blocked_query"][0] and pairs["wait_seconds"][0] >= 0
    # measuring table sizes must not queue behind the ACCESS EXCLUSIVE lock
    assert seconds < 2 and critical["database size"].status == "ok", critical["database size"].detail
    assert not thread.is_alive() and not failures


def test_an_idle_blocker_that_no_longer_blocks_is_not_ended(rooms):
    """Runbook 11 lists the idle blockers, then ends them: a session that committed meanwhile and sits idle
    in a new transaction blocking nobody (a pooled connection of the application, say) is left alone."""
    with db.connect(rooms) as holder, db.connect(rooms, autocommit=True) as waiter, \
            db.connect(rooms, autocommit=True) as conn:
        holder.execute("UPDATE lesson_rooms SET name = 'Room 101' WHERE id = 1")
        waiter.execute("SET statement_timeout = '20s'")
        thread = threading.Thread(target=waiter.execute, args=("UPDATE lesson_rooms SET name = 'Room 102' WHERE id = 1",))
        thread.start()
        try:
            _wait_for(rooms, waiter.info.backend_pid, "wait_event_type = 'Lock'")
            ending = health.end_sessions(list(health.idle_blockers(conn)["pid"]))
            assert [a.params["pid"] for a in ending] == [holder.info.backend_pid]
        finally:
            holder.commit()
            thread.join(30)
        holder.execute("SELECT 1")  # a new transaction, idle, holding nothing anyone waits for
        _wait_for(rooms, holder.info.backend_pid, "state = 'idle in transaction'")
        for action in ending:
            conn.execute(action.statement, action.params)
        assert holder.execute("SELECT 'still here'").fetchone()[0] == "still here"
        holder.rollback()


def test_idle_transaction_past_its_threshold_warns_with_its_pid(scratch):
    thresholds = health.Thresholds(idle_in_transaction_warn_seconds=1, idle_in_transaction_critical_seconds=60)
    with db.connect(scratch) as idle:
        idle.execute("SELECT 'left open' AS lesson")  # opens a transaction and leaves it open
        time.sleep(1.3)
        with db.connect(scratch, autocommit=True) as conn:
            check = _by_name(health.run_checks(conn, thresholds))["idle in transaction"]
            found = health.sessions(conn)
        pid = idle.info.backend_pid
    assert check.status == "warn" and f"pid {pid} " in check.detail and check.value >= 1
    assert found.loc[found["pid"] == pid, "state"].tolist() == ["idle in transaction"]


def test_long_running_statement_past_its_threshold_warns(scratch):
    thresholds = health.Thresholds(long_query_warn_seconds=1, long_query_critical_seconds=600)
    with db.connect(scratch, autocommit=True) as busy:
        busy.execute("SET statement_timeout = '20s'")
        pid = busy.info.backend_pid
        outcome = []

        def run_long():
            try:
                busy.execute("SELECT pg_sleep(15) AS long_lesson")
            except psycopg.Error as exc:
                outcome.append(exc)

        thread = threading.Thread(target=run_long)
        thread.start()
        try:
            _wait_for(scratch, pid, "state = 'active' AND now() - query_start > interval '1.2 s'")
            with db.connect(scratch, autocommit=True) as conn:
                check = _by_name(health.run_checks(conn, thresholds))["long-running queries"]
        finally:
            with db.connect(scratch, autocommit=True) as admin:
                admin.execute("SELECT pg_cancel_backend(%s)", (pid,))
            thread.join(30)
    assert check.status == "warn" and f"pid {pid} " in check.detail and "long_lesson" in check.detail
    assert [type(exc) for exc in outcome] == [psycopg.errors.QueryCanceled]  # cancelled by us, not finished


def test_the_checking_session_never_reports_itself(scratch):
    zero = health.Thresholds(long_query_warn_seconds=0, long_query_critical_seconds=0,
                             idle_in_transaction_warn_seconds=0, idle_in_transaction_critical_seconds=0,
                             blocked_warn_seconds=0, blocked_critical_seconds=0)
    with db.connect(scratch, autocommit=True) as conn:
        checks = _by_name(health.run_checks(conn, zero))
        for name in ("long-running queries", "idle in transaction", "blocked sessions"):
            assert checks[name].status == "ok", checks[name].detail
        assert health.sessions(conn).empty  # nobody else uses a fresh scratch database


def test_a_quiet_migrated_database_is_healthy(migrated):
    with db.connect(migrated, autocommit=True) as conn:
        checks = health.run_checks(conn, health.Thresholds(**IGNORE_LOG))
    assert [c.name for c in checks] == list(health.CHECK_NAMES)
    judged = {c.name: c.detail for c in checks if c.status != "unknown"}
    assert {name: detail for name, detail in judged.items() if _by_name(checks)[name].status != "ok"} == {}
    # only a missing source or a too small sample is skipped: a fresh database has no
    # pg_stat_statements of its own, and statistics only as old as itself
    assert set(_by_name(checks)) - set(judged) <= {"top queries", "server log errors", "cache hit ratio", "recovery point"}
    assert "cache hit ratio" in judged or "sample too small" in _by_name(checks)["cache hit ratio"].detail
    assert health.worst(checks) == "ok"


def test_recovery_point_is_judged_only_where_wal_is_archived(server):
    # CI's PostgreSQL 15 cluster archives its WAL, the suite's embedded server does not: each pass takes one side
    with db.connect(server, autocommit=True) as conn:
        archiving = wal_archive.status(conn).on
        point = health.recovery_point(conn)
    if archiving:
        assert point.status in ("ok", "warn") and point.value is not None and point.value >= 0, point.detail
    else:
        assert point.status == "unknown" and point.skipped.startswith("WAL archiving is off: no point-in-time recovery")


def test_thresholds_decide_the_status(scratch):
    strict = health.Thresholds(connections_warn=0, connections_critical=0, xid_age_warn=0, **IGNORE_LOG)
    with db.connect(scratch, autocommit=True) as conn:
        checks = _by_name(health.run_checks(conn, strict))
    assert checks["connections"].status == "critical"  # the checking session is one connection
    assert checks["transaction ID wraparound"].status == "warn"
    assert checks["transaction ID wraparound"].value >= 0


def test_run_checks_on_the_seeded_database_is_quick_and_tabulates(seeded):
    with db.connect(seeded, autocommit=True) as conn:
        began = time.perf_counter()
        checks = health.run_checks(conn)
    assert time.perf_counter() - began < 2  # the real speed target (1M students) is a benchmark
    frame = health.as_frame(checks)
    assert list(frame.columns) == ["name", "status", "value", "threshold", "detail", "fix"]
    assert list(frame["name"]) == list(health.CHECK_NAMES)
    assert frame["status"].isin(health.STATUSES).all() and (frame["detail"].str.len() > 0).all()
    assert "largest: " in _by_name(checks)["database size"].detail


def test_table_sizes_list_the_school_tables_largest_first(seeded):
    with db.connect(seeded, autocommit=True) as conn:
        sizes = health.table_sizes(conn, limit=20)
        assert len(health.table_sizes(conn, limit=2)) == 2
    assert {"students", "enrollments", "tuition_payments"} <= set(sizes["table_name"])
    assert sizes["total_bytes"].is_monotonic_decreasing and (sizes["total_bytes"] > 0).all()


def test_the_largest_tables_are_named_with_their_schemas_where_two_schemas_share_a_table_name(scratch):
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute('CREATE SCHEMA "Archive"; CREATE SCHEMA live')
        for schema, rows in (('"Archive"', 20000), ("live", 10000)):
            conn.execute(f"CREATE TABLE {schema}.lessons AS SELECT g AS id FROM generate_series(1, {rows}) g")
        detail = _by_name(health.run_checks(conn))["database size"].detail
    assert re.search(r"largest: Archive\.lessons \S+ kB, live\.lessons ", detail), detail


def test_cache_hit_ratio_waits_for_enough_reads(seeded):
    with db.connect(seeded) as conn:
        conn.execute("SELECT count(*) FROM students").fetchone()
    with db.connect(seeded, autocommit=True) as conn:
        ratios = health.cache_hit_ratios(conn)
        check = _by_name(health.run_checks(conn, health.Thresholds(cache_min_blocks=10**12, cache_min_seconds=0)))
    assert ratios["table_hit_ratio"].between(0, 1).any()
    cache = check["cache hit ratio"]
    assert cache.status == "unknown" and cache.skipped == cache.detail
    assert "fewer than 1,000,000,000,000" in cache.detail and "sample too small" in cache.detail


def _bulk_load(target: db.Target) -> None:
    """What `pgbench -i` does to the statistics: a table created, 500k rows copied in (COPY writes through
    a small ring of buffers), its primary key built, vacuumed, then read once."""
    with db.connect(target, autocommit=True) as conn:
        conn.execute("CREATE TABLE practice_log (id bigint, student int, minutes int, note text)")
        with conn.cursor().copy("COPY practice_log FROM STDIN") as copy:
            for n in range(1, 500_001):
                copy.write_row((n, n % 3000, n % 90, "scales " * 4))
        conn.execute("ALTER TABLE practice_log ADD PRIMARY KEY (id)")
        conn.execute("VACUUM ANALYZE practice_log")
        conn.execute("SELECT sum(minutes) FROM practice_log").fetchone()


def test_cache_hit_right_after_a_bulk_load_is_unknown(scratch):
    _bulk_load(scratch)
    with db.connect(scratch, autocommit=True) as conn:
        age, since = health.statistics_age(conn)
        default = _by_name(health.run_checks(conn, health.Thresholds(**IGNORE_LOG)))["cache hit ratio"]
        # the same sample without the minimum time: the block count alone would have judged it
        by_blocks_only = _by_name(health.run_checks(conn, health.Thresholds(cache_min_seconds=0)))["cache hit ratio"]
    assert since == "the database was created" and 0 <= age < health.Thresholds().cache_min_seconds
    assert by_blocks_only.status in ("warn", "critical"), by_blocks_only.detail  # what it used to say
    assert by_blocks_only.value < health.Thresholds().cache_hit_warn
    assert default.status == "unknown" and default.skipped == default.detail
    assert "not judged: statistics only" in default.detail and "the database was created" in default.detail
    assert "sample too small" in default.detail and default.value == pytest.approx(by_blocks_only.value, abs=0.01)


def test_cache_hit_with_enough_sample_is_judged(scratch):
    _bulk_load(scratch)
    enough = {"cache_min_blocks": 1000, "cache_min_seconds": 0}
    with db.connect(scratch, autocommit=True) as conn:
        for _ in range(3):
            conn.execute("SELECT sum(minutes) FROM practice_log").fetchone()
        strict = _by_name(health.run_checks(conn, health.Thresholds(cache_hit_warn=1.0, cache_hit_critical=1.0,
                                                                    **enough)))["cache hit ratio"]
        lenient = _by_name(health.run_checks(conn, health.Thresholds(cache_hit_warn=0.0, cache_hit_critical=0.0,
                                                                     **enough)))["cache hit ratio"]
        middle = _by_name(health.run_checks(conn, health.Thresholds(cache_hit_warn=1.0, cache_hit_critical=0.0,
                                                                    **enough)))["cache hit ratio"]
    assert (strict.status, middle.status, lenient.status) == ("critical", "warn", "ok")
    assert 0 < strict.value < 1 and "block requests served from memory over" in lenient.detail
    assert not lenient.skipped


def test_database_size_is_judged_against_its_thresholds(migrated):
    with db.connect(migrated, autocommit=True) as conn:
        total = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        gb = total / 1024**3

        def size_check(**thresholds):
            return _by_name(health.run_checks(conn, health.Thresholds(**thresholds)))["database size"]

        below = size_check()
        warn = size_check(database_size_warn_gb=gb * 0.5, database_size_critical_gb=gb * 2)
        critical = size_check(database_size_warn_gb=gb * 0.5, database_size_critical_gb=gb * 0.9)
        just_under = size_check(database_size_warn_gb=gb * 1.1, database_size_critical_gb=gb * 2)
    assert (below.status, warn.status, critical.status, just_under.status) == ("ok", "warn", "critical", "ok")
    assert below.value == pytest.approx(total, rel=0.05) and below.threshold == "warn ≥ 50 GB, critical ≥ 500 GB"
    with pytest.raises(ParameterError, match="database_size_warn_gb"):
        health.Thresholds(database_size_warn_gb=10, database_size_critical_gb=1)


def test_worst_is_the_most_severe_status():
    def check(status):
        return health.HealthCheck("example", status, None, "", "")

    assert health.worst([]) == "ok"
    assert health.worst([check("ok"), check("warn")]) == "warn"
    assert health.worst([check("warn"), check("critical"), check("ok")]) == "critical"
    assert health.worst([check("unknown"), check("ok")]) == "ok" and health.worst([check("unknown")]) == "unknown"
    assert health.as_frame([]).empty and list(health.as_frame([check("ok")])["status"]) == ["ok"]


def test_a_fix_is_shown_only_where_the_status_asks_for_one():
    checks = [health.HealthCheck(status, status, None, "", f"{status} detail", f"fix for {status}")
              for status in health.STATUSES]
    frame = health.as_frame(checks).set_index("name")
    assert frame["fix"].to_dict() == {"unknown": "", "ok": "", "warn": "fix for warn", "critical": "fix for critical"}
    assert [c.fix for c in checks] == [f"fix for {s}" for s in health.STATUSES]  # the data keeps it (--json)


def test_thresholds_refuse_nonsense_and_pick_notebook_parameters():
    with pytest.raises(ParameterError, match="connections_warn"):
        health.Thresholds(connections_warn=1.5)
    with pytest.raises(ParameterError, match="must not exceed"):
        health.Thresholds(long_query_warn_seconds=600, long_query_critical_seconds=60)
    with pytest.raises(ParameterError, match="blocked_warn_seconds"):
        health.Thresholds(blocked_warn_seconds="soon")
    picked = health.Thresholds.pick({"database_url": None, "blocked_warn_seconds": 1.0, "cache_min_blocks": 5})
    assert picked == health.Thresholds(blocked_warn_seconds=1.0, cache_min_blocks=5)


def test_the_runbook_parameters_default_to_the_thresholds_in_code():
    notebook = runner.find("08_health_check")
    defaults = {name: ast.literal_eval(p["default"]) for name, p in runner.parameters(notebook).items()}
    assert defaults.pop("database_url") is None
    assert health.Thresholds(**defaults) == health.Thresholds()
    assert set(defaults) == {f.name for f in dataclasses.fields(health.Thresholds)}


def _pg_stat_statements(target: db.Target) -> tuple[bool, bool]:
    """Whether the server offers pg_stat_statements, and whether it is preloaded (so its view answers)."""
    with db.connect(target) as conn:
        available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements'").fetchone()
        preloaded = "pg_stat_statements" in conn.execute("SHOW shared_preload_libraries").fetchone()[0]
    return bool(available), preloaded


def test_top_queries_fall_back_to_active_statements_without_pg_stat_statements(scratch):
    with db.connect(scratch, autocommit=True) as conn:
        check = _by_name(health.run_checks(conn))["top queries"]
        frame = health.top_queries(conn)
    assert check.status == "unknown" and check.value is None and check.skipped == check.detail
    assert "pg_stat_statements unavailable (not installed in this database)" in check.detail
    assert "pg_stat_activity" in check.detail
    assert frame.attrs["source"] == "pg_stat_activity" and "unavailable" in frame.attrs["note"]


def test_installed_but_not_preloaded_pg_stat_statements_falls_back(scratch):
    available, preloaded = _pg_stat_statements(scratch)
    if not available or preloaded:
        pytest.skip("needs pg_stat_statements available but not in shared_preload_libraries")
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        check = _by_name(health.run_checks(conn))["top queries"]
        assert check.status == "unknown" and "shared_preload_libraries" in check.detail
        assert health.top_queries(conn).attrs["source"] == "pg_stat_activity"


def test_top_queries_come_from_pg_stat_statements_when_it_is_loaded(scratch):
    available, preloaded = _pg_stat_statements(scratch)
    if not (available and preloaded):
        pytest.skip("needs pg_stat_statements in shared_preload_libraries")
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        for n in range(5):
            conn.execute("SELECT count(*) AS practice_minutes FROM generate_series(1, %s)", (1000 + n,))
        frame = health.top_queries(conn)
        slow = _by_name(health.run_checks(conn, health.Thresholds(slow_query_mean_ms=0, slow_query_min_calls=5)))
    assert frame.attrs["source"] == "pg_stat_statements" and not frame.attrs["note"]
    assert frame["query"].str.contains("practice_minutes").any() and (frame["total_ms"] >= 0).all()
    assert slow["top queries"].status == "warn" and "frequent statement" in slow["top queries"].detail


def test_health_on_the_default_embedded_server_shows_real_top_queries():
    """The embedded server preloads pg_stat_statements and prep-ops installs it in unm_prep."""
    env = cli_env()
    env.pop("DATABASE_URL", None)
    result = subprocess.run([sys.executable, "-m", "prep_ops", "health", "--json"], capture_output=True, text=True, env=env)
    assert result.returncode in (0, 2), result.stderr
    top = next(c for c in json.loads(result.stdout)["checks"] if c["name"] == "top queries")
    assert top["status"] in ("ok", "warn") and "unavailable" not in top["detail"], top["detail"]
    assert "top statement takes" in top["detail"] or "frequent statement(s) average" in top["detail"]


def test_recent_errors_come_from_the_server_log_when_readable(scratch):
    with psycopg.connect(scratch.url, autocommit=True, application_name="music-school-app") as app:
        with pytest.raises(psycopg.errors.DivisionByZero):  # the application's error: it counts
            app.execute("SELECT 1 / 0 AS lessons_per_teacher")
    with db.connect(scratch, autocommit=True) as conn:
        errors = health.recent_errors(conn, minutes=5)
        check = _by_name(health.run_checks(conn, health.Thresholds(log_errors_warn=1)))["server log errors"]
    if errors.attrs["note"].startswith("server log not readable") and not scratch.embedded:
        pytest.skip(f"this server's log cannot be read: {errors.attrs['note']}")
    assert errors["message"].str.contains("division by zero").any()
    assert check.status == "warn" and check.value >= 1


def test_log_errors_of_prep_ops_own_sessions_are_reported_apart(scratch):
    """prep-ops' sessions name themselves (db.connect); the embedded server's log_line_prefix writes the
    name (%a), so an error of a drill or a test is not counted against the application."""
    marker = uuid.uuid4().hex[:10]
    with db.connect(scratch, autocommit=True) as ours:
        assert ours.execute("SHOW application_name").fetchone()[0] == "prep-ops"
        with pytest.raises(psycopg.errors.UndefinedTable):
            ours.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(f"ours_{marker}")))
    with psycopg.connect(scratch.url, autocommit=True, application_name="music-school-app") as app:
        with pytest.raises(psycopg.errors.UndefinedTable):
            app.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(f"theirs_{marker}")))
    with db.connect(scratch, autocommit=True) as conn:
        prefix = conn.execute("SHOW log_line_prefix").fetchone()[0]
        check = _by_name(health.run_checks(conn, health.Thresholds(log_errors_warn=1, log_window_minutes=600)))
        errors = health.recent_errors(conn, minutes=600)
    if errors.attrs["note"].startswith("server log not readable") and not scratch.embedded:
        pytest.skip(f"this server's log cannot be read: {errors.attrs['note']}")
    if "%a" not in prefix:
        assert not scratch.embedded, "the embedded server's log_line_prefix must name the application"
        assert "not split by application" in errors.attrs["note"] and "not split" in check["server log errors"].detail
        return
    ours = errors[errors["message"].str.contains(f"ours_{marker}")]
    theirs = errors[errors["message"].str.contains(f"theirs_{marker}")]
    assert ours[["application", "prep_ops"]].values.tolist() == [["prep-ops", True]]
    assert theirs[["application", "prep_ops"]].values.tolist() == [["music-school-app", False]]
    log = check["server log errors"]
    assert log.status == "warn" and "from the application" in log.detail
    assert "more from prep-ops' own sessions, reported apart" in log.detail
    # what counts is the application's errors only (the log read a moment later holds at least those)
    assert 1 <= log.value <= int((~errors["prep_ops"].astype(bool)).sum()) < len(errors)


@pytest.mark.parametrize("prefix, line, app", [
    ("%m [%p] %q%u@%d app=%a ", "2026-01-05 10:00:00.123 UTC [42] bob@unm_prep app=prep-ops health ERROR:  boom",
     "prep-ops health"),
    ("%m [%p] %q%u@%d app=%a ", "2026-01-05 10:00:00.123 UTC [42] bob@unm_prep app= FATAL:  boom", ""),
    ("%m [%p] %q%u@%d app=%a ", "2026-01-05 10:00:00.123 UTC [42] PANIC:  could not write", None),
    ("%t [%p]: [%l-1] user=%u,db=%d,app=%-12a,client=%h ",
     "2026-01-05 10:00:00 UTC [42]: [3-1] user=bob,db=x,app=psql        ,client=[local] ERROR:  boom", "psql        "),
])
def test_log_line_prefix_names_the_application_where_it_has_a(prefix, line, app):
    from prep_ops.health import server_log

    found = server_log.prefix_pattern(prefix).match(line)
    assert found is not None and found.group("app") == app and found.group("severity") in ("ERROR", "FATAL", "PANIC")
    assert server_log.prefix_pattern("%m [%p] ") is None  # no %a: the split is unknown, not guessed
    assert server_log.is_own("prep-ops:restore") and server_log.is_own("prep_ops drill load 1")
    assert not server_log.is_own("music-school-app") and not server_log.is_own(None) and not server_log.is_own("")


@pytest.mark.server_independent
def test_a_drills_locked_out_role_failing_to_log_in_to_its_own_database_is_not_the_applications_error():
    """Seen: after `run --all`, "5 error(s) from the application": the security drill's contractor refused at
    login (the log cannot know an application_name yet: app=[unknown]) and its psql ended, in the drill's own
    database. Each run added five; ten runs in 15 minutes would have warned of the application."""
    from prep_ops.health import server_log

    pattern = server_log.prefix_pattern("%m [%p] %q%u@%d app=%a ")
    drill = ('2026-12-01 18:16:01.613 UTC [28852] prep_ops_security_x_contractor@prep_ops_drill_security_x '
             'app=[unknown] FATAL:  role "prep_ops_security_x_contractor" is not permitted to log in')
    found = pattern.match(drill)
    assert found.group("db") == "prep_ops_drill_security_x" and server_log.is_own(found.group("app"), found.group("db"))
    theirs = pattern.match(drill.replace("@prep_ops_drill_security_x", "@unm_prep"))
    assert theirs.group("db") == "unm_prep" and not server_log.is_own(theirs.group("app"), theirs.group("db"))


@pytest.fixture
def unprivileged(scratch):
    """The scratch database reached as a new login role without any privilege beyond CONNECT."""
    role, password = f"prep_ops_test_{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
    url = make_url(scratch.url).set(username=role, password=password).render_as_string(hide_password=False)
    yield db.Target(url, scratch.embedded)
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_an_unprivileged_role_gets_every_check_and_a_reason_for_the_log(unprivileged):
    with db.connect(unprivileged, autocommit=True) as conn:
        checks = _by_name(health.run_checks(conn))
        note = health.recent_errors(conn).attrs["note"]
    assert list(checks) == list(health.CHECK_NAMES)
    log = checks["server log errors"]
    assert log.status == "unknown" and log.value is None and log.detail.startswith("server log not readable: ")
    assert note.startswith("server log not readable")


def test_health_as_a_role_that_cannot_see_other_roles_sessions_does_not_call_them_ok(rooms, unprivileged):
    """A role without pg_read_all_stats sees other roles' sessions in pg_stat_activity with every detail
    empty: health said "ok" to long-running statements, idle transactions and blocked sessions it could
    not see, and counted only its own connections. Those checks are unknown now, saying why."""
    failures = []
    zero = health.Thresholds(long_query_warn_seconds=0, idle_in_transaction_warn_seconds=0, blocked_warn_seconds=0,
                             **IGNORE_LOG)
    names = ("long-running queries", "idle in transaction", "blocked sessions")
    with db.connect(rooms) as holder, db.connect(rooms, autocommit=True) as waiter:
        holder.execute("LOCK TABLE lesson_rooms IN ACCESS EXCLUSIVE MODE")  # idle in its transaction, blocking
        waiter.execute("SET statement_timeout = '20s'")

        def wait_for_the_lock():
            try:
                waiter.execute("SELECT * FROM lesson_rooms")
            except psycopg.Error as exc:
                failures.append(exc)

        thread = threading.Thread(target=wait_for_the_lock)
        thread.start()
        try:
            _wait_for(rooms, waiter.info.backend_pid, "wait_event_type = 'Lock'")
            with db.connect(rooms, autocommit=True) as conn:
                seen = _by_name(health.run_checks(conn, zero))
            with db.connect(unprivileged, autocommit=True) as conn:
                blind = _by_name(health.run_checks(conn, zero))
        finally:
            holder.rollback()
            thread.join(30)
    assert not thread.is_alive() and not failures
    assert [seen[name].status for name in names] == ["warn"] * 3  # the superuser sees all three
    for name in names:
        assert blind[name].status == "unknown", (name, blind[name].detail)
        hidden = re.search(r"(\d+) session\(s\) of other roles in this database not seen", blind[name].detail)
        assert hidden and int(hidden.group(1)) >= 2 and "pg_read_all_stats" in blind[name].skipped
    hidden = re.search(r", (\d+) of other roles in a state this role may not see", blind["connections"].detail)
    assert hidden and int(hidden.group(1)) >= 2  # the holder and the waiter counted, though not seen


def test_a_mistyped_password_statement_is_never_quoted_from_the_log(scratch):
    secret = "Tops3cret" + uuid.uuid4().hex[:8]
    with db.connect(scratch, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.SyntaxError) as raised:
            conn.execute(f"ALTER ROLE nobody_at_all PASSWORD {secret} VALID")  # the password left unquoted
        errors = health.recent_errors(conn, minutes=5)
        check = _by_name(health.run_checks(conn, health.Thresholds(log_errors_warn=1)))["server log errors"]
    assert secret in str(raised.value)  # the server's own message quotes it, and so does its log line
    if errors.attrs["note"].startswith("server log not readable") and not scratch.embedded:
        pytest.skip(f"this server's log cannot be read: {errors.attrs['note']}")
    assert errors["message"].str.contains("syntax error at or near").any()
    assert not errors["message"].str.contains(secret).any()
    assert secret not in check.detail


def test_a_run_leaves_the_shared_connection_as_it_found_it(scratch):
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute("SET statement_timeout = '42s'")
        settings = "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'), " \
                   "current_setting('application_name')"
        before = conn.execute(settings).fetchone()
        checks = health.run_checks(conn, health.Thresholds(**IGNORE_LOG))
        health.sessions(conn), health.top_queries(conn), health.recent_errors(conn)
        assert conn.execute(settings).fetchone() == before == ("42s", "0", before[2])
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        with db.snapshot(conn):  # inside the caller's own snapshot, a savepoint of it
            inside = health.run_checks(conn, health.Thresholds(**IGNORE_LOG))
            assert conn.execute("SELECT 1").fetchone() == (1,)  # the caller's transaction still usable
    assert [c.status for c in inside] == [c.status for c in checks] and health.worst(checks) != "warn"


def test_a_run_reads_in_one_read_only_snapshot_and_reads_the_sessions_once(scratch):
    available, preloaded = _pg_stat_statements(scratch)
    if not (available and preloaded):
        pytest.skip("needs pg_stat_statements in shared_preload_libraries")
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        conn.execute("SELECT pg_stat_statements_reset()")
        health.run_checks(conn, health.Thresholds(**IGNORE_LOG))
        calls = dict(conn.execute("SELECT query, calls FROM pg_stat_statements "
                                  "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"))
    snapshots = {q: n for q, n in calls.items() if "REPEATABLE READ, READ ONLY" in q}
    assert list(snapshots.values()) == [1], calls
    sessions = {q: n for q, n in calls.items() if "FROM pg_stat_activity" in q and "state_change" in q
                and "blocked_pid" not in q}  # the blocking query reads state_change too (how long a blocker sits idle)
    assert list(sessions.values()) == [1], sessions  # long-running, idle in transaction and the fallback share it
