"""Runbook 11 and its drill: the drill slows a query down for real and the runbook brings it back under
its target; live mode without confirm changes nothing; a failing step says which and what next."""

import time
import uuid
from pathlib import Path

import pytest

from prep_ops import backup, db, health, incident, indexes, plans, runner, scratch
from prep_ops.incident import performance as incident_performance
from prep_ops.incident import performance_steps
from prep_ops.incident.drills import load as workload
from prep_ops.incident.drills import performance
from prep_ops.errors import ParameterError, StepFailed, StepOutOfOrder

from conftest import _create, _drop, check_statuses, held_exclusive, incident_of, notebook_outputs, passes_of_what_was_not_looked_at, schema_dump

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "11_incident_performance.ipynb"
STEPS = ("1. Identify the bottleneck", "2. Optimise", "3. Update indexes", "4. Monitor results",
         "5. Document changes", "6. Clean up")


def _drill_server() -> db.Target:
    return incident.drill_server(db.resolve_target())[0]


def _drill_sessions(server: db.Target) -> int:
    with db.connect(server, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s",
                            (workload.APPLICATION + "%",)).fetchone()[0]


def test_make_injects_the_incident_and_drop_leaves_nothing():
    name = f"prep_ops_drill_perf_{uuid.uuid4().hex[:8]}"
    drill = performance.make(db.resolve_target(), performance.MIN_STUDENTS, load_seconds=20, sessions=2, repeats=1, name=name)
    try:
        assert drill.target.database == name and performance.exists(drill.server, name)
        healthy = drill.baseline.plans[performance.QUERY].nodes
        assert healthy["index"].eq(performance.INDEX).any()  # the baseline was measured with the index
        with db.connect(drill.target, autocommit=True) as conn:
            assert performance.INDEX not in set(indexes.existing(conn)["index_name"])
            now = plans.explain(conn, performance.QUERY, drill.baseline.params).nodes
            assert (now["node_type"] == "Seq Scan").any() and not now["index"].eq(performance.INDEX).any()
            assert drill.load.running
            blocked = health.blocking(conn)
        assert list(blocked["blocking_pid"]) == [drill.lock.pid] and list(blocked["blocked_pid"]) == [drill.lock.writer_pid]
        assert "DROP INDEX idx_tuition_payments_student_id" in drill.summary
    finally:
        report = drill.drop()
    assert not drill.load.running and report.stopped_by == "stop" and report.queries > 0
    assert not performance.exists(drill.server, name)


def test_inject_drops_the_index_payment_history_needs(owner):
    assert performance.inject(owner) == 'DROP INDEX "idx_tuition_payments_student_id"'
    assert performance.INDEX not in set(indexes.existing(owner)["index_name"])


def test_drill_brings_the_query_back_under_its_target(runbook_run):
    result = runbook_run("11")  # the runbook's default run: the drill
    incident_id = incident_of(result)
    assert result.ok, result.error
    checks = {c["name"]: c for c in result.checks}
    for name in ("bottleneck identified", "an index is proposed for the bottleneck", "no session blocks another",
                 "proposed indexes exist and are valid", "query back under its target time",
                 "nothing of the drill left"):
        assert checks[name]["passed"] and checks[name]["must_hold"], name
    assert "payment_history" in checks["query back under its target time"]["detail"]
    report = (incident.incidents_dir() / f"{incident_id}.md").read_text()
    for title in STEPS:
        assert f"## {title}" in report
    assert "outcome:** all must-hold checks passed" in report
    assert "SELECT pg_terminate_backend(" in report and "CREATE INDEX CONCURRENTLY" in report
    assert not performance.exists(_drill_server(), performance.database_name(incident_id))
    deadline = time.monotonic() + 10
    while _drill_sessions(_drill_server()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _drill_sessions(_drill_server()) == 0


def _blocking(target: db.Target):
    with db.connect(target, autocommit=True) as conn:
        return health.blocking(conn)


@pytest.fixture
def slowed_down(server):
    """A sample database with the incident: the payment index dropped and a session sitting on a row
    lock (ended after the test); dropped afterwards."""
    target = _create(server)
    holder = None
    try:
        with db.connect(target, autocommit=True) as conn:
            scratch.migrate.apply(conn)
            scratch.seed.seed(conn, students=8000, seed=3)
            performance.inject(conn)
            key = conn.execute("SELECT min(id) FROM tuition_payments").fetchone()[0]
        holder = workload.hold_lock(target, "tuition_payments", key, seconds=300)
        yield target, holder
    finally:
        if holder is not None:
            holder.release()
        _drop(server, target)


def test_live_without_confirm_changes_nothing(tmp_path, incident_id, slowed_down):
    target, holder = slowed_down
    with db.connect(target) as conn:
        before = backup.table_checksums(conn)
    dump = schema_dump(target)
    result = runner.run_one(NOTEBOOK, tmp_path, {"database_url": target.url, "mode": "live", "incident_id": incident_id,
                                                 "min_idle_seconds": 0})
    assert result.ok, result.error
    with db.connect(target) as conn:
        assert backup.table_checksums(conn) == before
    assert schema_dump(target) == dump
    assert list(_blocking(target)["blocking_pid"]) == [holder.pid]  # the blocker was left alone
    outputs = notebook_outputs(tmp_path / NOTEBOOK.name)
    assert "WOULD (confirm=True to run): CREATE INDEX CONCURRENTLY" in outputs
    assert f"WOULD (confirm=True to run): SELECT pg_terminate_backend({holder.pid})" in outputs
    warned = {c["name"] for c in result.checks if not c["passed"]}
    assert {"no session blocks another", "proposed indexes exist and are valid"} <= warned
    assert all(not c["must_hold"] for c in result.checks if not c["passed"])
    report = (incident.incidents_dir() / f"{incident_id}.md").read_text()
    assert "- **mode:** live (confirm=False)" in report and "Statements executed" not in report
    status = {c["name"]: c["status"] for c in result.checks}  # what live mode did not do is SKIP, never PASS
    assert status["proposed indexes exist and are valid"] == status["nothing of the drill left"] == "SKIP"
    assert status["no session blocks another"] == "WARN"  # looked at: the blocker is still there
    assert passes_of_what_was_not_looked_at([result]) == []


def test_live_without_confirm_behind_an_exclusive_lock_skips_what_it_could_not_read_and_completes(
        tmp_path, incident_id, slowed_down):
    """Runbook 11 live without confirm while another session holds a table ACCESS EXCLUSIVE (one the slow
    query does not read: a VACUUM FULL or ALTER TABLE elsewhere): reading the indexes to propose one (step 2)
    and to check them (step 3) gave up after db.LOCK_WAIT with a LockBusy error that failed the step and
    stopped the runbook. Those checks are SKIP now, naming the table and its holder, and the runbook completes."""
    target, _ = slowed_down
    with db.connect(target, application_name="holder-app") as holder:
        holder.execute("LOCK TABLE schema_version IN ACCESS EXCLUSIVE MODE")
        result = runner.run_one(NOTEBOOK, tmp_path, {"database_url": target.url, "mode": "live", "incident_id": incident_id,
                                                     "query": "payment_history", "repeats": 1, "min_idle_seconds": 0})
        holder_pid = holder.info.backend_pid
    assert result.ok, result.error
    checks = {c["name"]: c for c in result.checks}
    proposed, valid = checks["an index is proposed for the bottleneck"], checks["proposed indexes exist and are valid"]
    assert proposed["status"] == valid["status"] == "SKIP", (proposed, valid)
    for check in (proposed, valid):
        assert f"the indexes could not be read within {db.LOCK_WAIT}: public.schema_version by pid {holder_pid} " \
               "(application holder-app" in check["detail"], check
    assert passes_of_what_was_not_looked_at([result]) == []


def test_live_step_1_behind_an_exclusive_lock_on_the_slow_querys_table_stops_in_one_line_naming_it(
        incident_id, slowed_down):
    """Step 1 times the queries with EXPLAIN ANALYZE: behind another session's ACCESS EXCLUSIVE lock on a table
    they read (a VACUUM FULL of tuition_payments, a session left idle after LOCK TABLE) it waited, silently, for
    as long as the lock was held. It gives up after db.LOCK_WAIT now: the step fails in one line naming the
    table and the session holding it (whom to end), never a hang."""
    target, row_holder = slowed_down
    row_holder.release()  # its row lock would hold LOCK TABLE back for as long as it runs
    with held_exclusive(target, "tuition_payments", at_most=40) as pid:  # a bound for a step that waits
        run = performance_steps.start(target, "live", incident_id=incident_id, query="payment_history", repeats=1,
                                      min_idle_seconds=0)
        started = time.monotonic()
        with pytest.raises(StepFailed, match=rf"step 1 \(Identify the bottleneck\) failed: the queries to time could "
                                             rf"not be run within {db.LOCK_WAIT}: public.tuition_payments by pid {pid} "
                                             r"\(application holder-app, user \S+, idle in transaction"):
            performance_steps.identify_bottleneck(run)
        took = time.monotonic() - started
        run.inc.close()
    assert took < 30, f"{took:.0f} s"
    with db.connect(target, autocommit=True) as conn:  # the incident's session keeps no bound of its own after
        assert conn.execute("SHOW lock_timeout").fetchone()[0] == "0"


def test_live_with_confirm_ends_the_blocker_and_creates_the_index(tmp_path, incident_id, slowed_down):
    target, holder = slowed_down
    result = runner.run_one(NOTEBOOK, tmp_path, {"database_url": target.url, "mode": "live", "confirm": True,
                                               "query": "payment_history", "incident_id": incident_id,
                                               "min_idle_seconds": 0})
    assert result.ok, result.error
    assert _blocking(target).empty and holder.release().startswith("got the lock")
    with db.connect(target, autocommit=True) as conn:
        assert performance.INDEX in set(indexes.existing(conn)["index_name"])
    passed = {c["name"] for c in result.checks if c["passed"] and c["must_hold"]}
    assert {"no session blocks another", "proposed indexes exist and are valid", "query back under its target time"} <= passed
    report = (incident.incidents_dir() / f"{incident_id}.md").read_text()
    assert f"SELECT pg_terminate_backend({holder.pid});" in report and "Would run" not in report


def test_live_never_ends_an_application_between_two_statements_of_its_transaction(slowed_down, incident_id):
    """A session that has just gone idle in its transaction while another waits on its row is an
    application between two statements: live with confirm, it is listed and left alone (5 s by default),
    and the server checks that again as the statement ends it; once idle longer than min_idle_seconds it is ended."""
    target, holder = slowed_down
    holder._conn.execute("SELECT 1")  # the application's next statement, in its open transaction: idle again from now
    run = performance_steps.start(target, "live", incident_id=incident_id, confirm=True, query="payment_history",
                                  repeats=1)
    try:
        assert run.min_idle_seconds == performance_steps.LIVE_MIN_IDLE_SECONDS == 5
        run.seen = incident_performance.identify(run.inc.conn, None, reported="payment_history", repeats=1)
        fix = incident_performance.optimise(run.inc.conn, run.seen, run.min_idle_seconds)
        assert list(fix.blockers["pid"]) == [holder.pid] and fix.to_end.empty and fix.end_blockers == []
        assert any("left alone (idle under min_idle_seconds = 5)" in line for line in fix.lines())
        run.inc.run(health.end_sessions([holder.pid], 5))  # as if listed: the server checks the idle time again
        assert list(_blocking(target)["blocking_pid"]) == [holder.pid]
        time.sleep(1.2)
        longer = incident_performance.optimise(run.inc.conn, run.seen, 1.0)
        assert list(longer.to_end["pid"]) == [holder.pid]
        run.inc.run(longer.end_blockers)
        assert _blocking(target).empty
    finally:
        run.inc.close()


def test_min_idle_seconds_that_is_not_a_number_of_seconds_is_refused(server):
    for wrong in ("5", -1, True, 10 ** 6):
        with pytest.raises(ParameterError, match="min_idle_seconds must be a number of seconds"):
            performance_steps.start(server, "live", min_idle_seconds=wrong)


def test_a_failing_step_stops_the_runbook_and_says_what_next(tmp_path, incident_id):
    result = runner.run_one(NOTEBOOK, tmp_path, {"incident_id": incident_id, "drill_students": 10000, "query": "user_by_email"})
    try:
        assert not result.ok
        assert "StepFailed: step 2 (Optimise) failed: FAIL an index is proposed for the bottleneck" in result.error
        assert "Next: EXPLAIN the query by hand" in result.error
        assert "STOPPED at step 2 (Optimise)" in (incident.incidents_dir() / f"{incident_id}.md").read_text()
    finally:
        scratch.drop(_drill_server(), performance.database_name(incident_id))


def test_a_drill_too_small_to_show_the_incident_is_refused(server):
    with pytest.raises(ParameterError, match="needs at least 10,000 students"):
        performance.make(server, 300)


# --- the runbook's steps, called as the notebook calls them ---------------------------------------
_CHECK_NAMES = ("bottleneck identified", "incident reproduced: the bottleneck is over its target time",
                "an index is proposed for the bottleneck", "no session blocks another", "proposed indexes exist and are valid",
                "query back under its target time", "nothing of the drill left")


def _statuses(run) -> dict[str, str]:
    return check_statuses(run, _CHECK_NAMES)


def test_live_steps_with_confirm_end_the_blocker_and_bring_the_query_back(slowed_down, incident_id):
    target, holder = slowed_down
    run = performance_steps.start(target, "live", incident_id=incident_id, confirm=True, query="payment_history",
                                  target_ms=1000.0, repeats=1, min_idle_seconds=0)
    table = performance_steps.identify_bottleneck(run)
    assert run.seen.bottleneck == "payment_history" and "payment_history" in table.index
    assert "selective sequential scan" in performance_steps.optimise(run)["kind"].tolist()
    assert list(run.fix.blockers["pid"]) == [holder.pid]
    ran = performance_steps.update_indexes(run)
    assert ran[0].startswith("CREATE INDEX CONCURRENTLY") and ran[-1].startswith("ANALYZE")
    change = performance_steps.monitor_results(run)
    assert change.loc["payment_history", "after_ms"] < change.loc["payment_history", "before_ms"]
    performance_steps.document_changes(run)
    performance_steps.clean_up(run)
    assert run.inc.facts["changes"].startswith(f"{len(ran) + 1} statement(s) executed")  # the blocker ended, then ran
    assert _statuses(run) == {"bottleneck identified": "PASS",
                              "incident reproduced: the bottleneck is over its target time": "WARN",
                              "an index is proposed for the bottleneck": "PASS", "no session blocks another": "PASS",
                              "proposed indexes exist and are valid": "PASS", "query back under its target time": "PASS",
                              "nothing of the drill left": "SKIP"}


def test_live_steps_without_confirm_only_show_and_skip_what_they_did_not_do(slowed_down, incident_id):
    target, holder = slowed_down
    run = performance_steps.start(target, "live", incident_id=incident_id, query="payment_history", repeats=1,
                                  min_idle_seconds=0)
    performance_steps.identify_bottleneck(run)
    performance_steps.optimise(run)
    assert performance_steps.update_indexes(run) == []
    assert _blocking(target)["blocking_pid"].tolist() == [holder.pid]
    statuses = _statuses(run)
    assert statuses["no session blocks another"] == "WARN"
    assert statuses["proposed indexes exist and are valid"] == "SKIP"
    assert any(e.text.startswith("CREATE INDEX CONCURRENTLY") for e in run.inc.events if e.kind == "would")


def test_start_refuses_an_unknown_mode_before_making_anything(server):
    with pytest.raises(ParameterError, match="mode must be one of drill, live"):
        performance_steps.start(server, "dril")
    assert scratch.existing(_drill_server(), performance.DATABASE) == []


def _all_steps(run) -> None:
    performance_steps.identify_bottleneck(run)
    performance_steps.optimise(run)
    performance_steps.update_indexes(run)
    performance_steps.monitor_results(run)
    performance_steps.document_changes(run)
    performance_steps.clean_up(run)


def test_live_on_a_database_that_is_not_the_school_s_skips_the_catalogue_and_fixes_the_query_named(scratch, incident_id):
    """Runbook 11 live on any database stopped at step 1 with 'relation "users" does not exist': it timed
    only the school's catalogue. Now the catalogue is SKIP with why, and a query named as SQL is the one
    timed, indexed (in its quoted schema) and timed again."""
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute('CREATE SCHEMA "Odd Schema"; CREATE TABLE "Odd Schema"."Big Log" (id bigserial PRIMARY KEY, '
                     '"Cust Name" text); INSERT INTO "Odd Schema"."Big Log" ("Cust Name") SELECT md5(g::text) '
                     'FROM generate_series(1, 100000) g; ANALYZE "Odd Schema"."Big Log"')
    run = performance_steps.start(scratch, "live", incident_id=incident_id, repeats=1)
    _all_steps(run)
    statuses = _statuses(run)
    assert statuses["bottleneck identified"] == "SKIP" and statuses["an index is proposed for the bottleneck"] == "SKIP"
    assert any("has none of the school's tables" in e.text for e in run.inc.events if e.kind == "check")
    query = 'SELECT * FROM "Odd Schema"."Big Log" WHERE "Cust Name" = \'abc\''
    named = performance_steps.start(scratch, "live", incident_id=f"{incident_id}-q", confirm=True, query=query,
                                    target_ms=1000.0, repeats=1)
    _all_steps(named)
    assert named.seen.bottleneck == query
    assert _statuses(named) | {"incident reproduced: the bottleneck is over its target time": "-"} == {
        "bottleneck identified": "PASS", "incident reproduced: the bottleneck is over its target time": "-",
        "an index is proposed for the bottleneck": "PASS", "no session blocks another": "PASS",
        "proposed indexes exist and are valid": "PASS", "query back under its target time": "PASS",
        "nothing of the drill left": "SKIP"}
    with db.connect(scratch, autocommit=True) as conn:
        made = conn.execute("SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = "
                            "'\"Odd Schema\".\"Big Log\"'::regclass AND NOT indisprimary").fetchall()
    assert len(made) == 1


def test_live_as_a_role_that_cannot_see_other_roles_sessions_does_not_pass_no_session_blocks_another(scratch, incident_id):
    """Step 2 said PASS "0 session(s) blocked now" to a role without pg_read_all_stats while another
    role's session waited behind a third's lock: pg_stat_activity hides both from it. SKIP now, saying why."""
    import threading

    from psycopg import sql
    from sqlalchemy.engine import make_url

    role, password = f"prep_ops_test_{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute("CREATE TABLE lesson_rooms (id int); INSERT INTO lesson_rooms VALUES (1)")
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
    unprivileged = db.Target(make_url(scratch.url).set(username=role, password=password).render_as_string(hide_password=False),
                             scratch.embedded)
    try:
        with db.connect(scratch) as holder, db.connect(scratch, autocommit=True) as waiter:
            holder.execute("SELECT * FROM lesson_rooms FOR UPDATE")  # a row lock, as an application holds one
            waiter.execute("SET statement_timeout = '30s'")
            thread = threading.Thread(target=lambda: waiter.execute("UPDATE lesson_rooms SET id = 2"))
            thread.start()
            try:
                with db.connect(scratch, autocommit=True) as conn:
                    deadline = time.monotonic() + 10
                    while not conn.execute("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s",
                                           (waiter.info.backend_pid,)).fetchone()[0]:
                        assert time.monotonic() < deadline
                        time.sleep(0.05)
                run = performance_steps.start(unprivileged, "live", incident_id=incident_id, repeats=1)
                performance_steps.identify_bottleneck(run)
                performance_steps.optimise(run)
            finally:
                holder.rollback()
                thread.join(30)
        performance_steps.clean_up(run)
        assert _statuses(run)["no session blocks another"] == "SKIP"
        skipped = next(e.text for e in run.inc.events if e.kind == "check" and "no session blocks another" in e.text)
        assert "session(s) of other roles in this database not seen" in skipped and "pg_read_all_stats" in skipped
    finally:
        with db.connect(scratch, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}; DROP ROLE {}").format(sql.Identifier(role), sql.Identifier(role)))


def test_runbook_11_live_on_a_database_without_the_school_s_tables_and_no_query_draws_its_chart_instead_of_failing(
        scratch, incident_id, tmp_path):
    """With nothing timed (no school tables, no `query`), step 4's chart failed the runbook with pandas'
    "TypeError: no numeric data to plot" after every check had said SKIP. The chart says nothing was timed."""
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute("CREATE TABLE lesson_rooms (id int PRIMARY KEY)")
    result = runner.run_one(NOTEBOOK, tmp_path, {"database_url": scratch.url, "mode": "live", "incident_id": incident_id})
    assert result.ok, result.error
    assert {c["name"]: c["status"] for c in result.checks}["bottleneck identified"] == "SKIP"


def test_optimise_run_again_after_the_fix_asks_for_the_bottleneck_to_be_identified_again(slowed_down, incident_id):
    """Runbook 11 in JupyterLab: steps 1 to 3 run (the index made), then step 2's cell run again: it judged the plan,
    fixed now, of the bottleneck step 1 had found before the fix, and in a drill FAILed 'an index is proposed for the
    bottleneck: 0 proposed — the plan has no scan an index would fix', stopping a run that had worked."""
    target, holder = slowed_down
    run = performance_steps.start(target, "live", incident_id=incident_id, confirm=True, query="payment_history",
                                  target_ms=1000.0, repeats=1, min_idle_seconds=0)
    try:
        performance_steps.identify_bottleneck(run)
        performance_steps.optimise(run)
        performance_steps.update_indexes(run)
        with pytest.raises(StepOutOfOrder, match=r"^step 2 \(Optimise\) not run again: it already ran at .* UTC on what "
                                                 r"step\(s\) 1 found before it, which may no longer hold; run step\(s\) 1 "
                                                 r"again first, then this one$"):
            performance_steps.optimise(run)
        with pytest.raises(StepOutOfOrder, match=r"^step 3 \(Update indexes\) not run again"):
            performance_steps.update_indexes(run)
        performance_steps.identify_bottleneck(run)  # identified again, on the fixed database: step 2 may run
        performance_steps.optimise(run)
        assert incident_performance.creates(run.fix.proposed) == []  # the index is there: nothing more proposed
    finally:
        performance_steps.clean_up(run)
