"""Load and locks against a real server: bounded load, a lock that really blocks, idle blockers ended."""

import time

import pytest

from prep_ops import db, health, incident
from prep_ops.incident.drills import load as workload
from prep_ops.errors import ParameterError


def _payment_students(target: db.Target, n: int = 20) -> list[dict]:
    with db.connect(target, autocommit=True) as conn:
        rows = conn.execute("SELECT DISTINCT student_id FROM tuition_payments ORDER BY 1 LIMIT %s", (n,)).fetchall()
    return [{"student_id": r[0]} for r in rows]


def _first_payment(target: db.Target) -> int:
    with db.connect(target, autocommit=True) as conn:
        return conn.execute("SELECT min(id) FROM tuition_payments").fetchone()[0]


def _drill_sessions(target: db.Target) -> int:
    with db.connect(target, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name LIKE %s",
                            (target.database, workload.APPLICATION + "%")).fetchone()[0]


def _until_no_drill_sessions(target: db.Target, seconds: float = 10.0) -> int:
    deadline = time.monotonic() + seconds
    while (left := _drill_sessions(target)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def test_load_stops_by_itself_at_its_time_bound(seeded):
    load = workload.start_load(seeded, "payment_history", _payment_students(seeded), sessions=3, seconds=1.0,
                               max_queries=1_000_000)
    assert load.running
    report = load.wait(timeout=10)
    assert not load.running and report.stopped_by == "time"
    assert 1.0 <= report.seconds < 4.0
    assert report.queries > 3 and report.errors == 0
    assert set(report.samples["session"]) == {0, 1, 2} and (report.samples["ms"] > 0).all()
    assert _until_no_drill_sessions(seeded) == 0


def test_load_stops_by_itself_at_its_count_bound(seeded):
    load = workload.start_load(seeded, "payment_history", _payment_students(seeded), sessions=2, seconds=60,
                               max_queries=15)
    report = load.wait(timeout=20)
    assert report.stopped_by == "count" and report.queries == 30 and report.seconds < 20


def test_load_stopped_early_reports_each_phase(seeded):
    load = workload.start_load(seeded, "user_by_email", [{"email": "nobody@example.org"}], sessions=2, seconds=60)
    time.sleep(0.5)
    load.mark("second half")
    time.sleep(0.5)
    report = load.stop()
    assert report.stopped_by == "stop" and not load.running and report.seconds < 10
    phases = report.phases()
    assert list(phases.index) == ["start", "second half"] and (phases["queries"] > 0).all()
    assert "stopped by stop" in report.summary and "second half: median" in report.summary


def test_load_sessions_ended_by_the_server_stop_with_an_error(seeded):
    load = workload.start_load(seeded, "payment_history", _payment_students(seeded), sessions=2, seconds=60)
    time.sleep(0.3)
    with db.connect(seeded, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE application_name LIKE %s",
                     (workload.APPLICATION + " load%",))
    report = load.wait(timeout=10)
    assert not load.running and report.stopped_by == "error" and report.errors == 2 and report.seconds < 10


def test_load_and_locks_refuse_a_database_that_is_not_a_scratch_one(server):
    real = db.Target(server.with_database("music_school").url, embedded=True)
    with pytest.raises(ParameterError, match="only against a scratch database"):
        workload.start_load(real, "payment_history", [{"student_id": 1}])
    with pytest.raises(ParameterError, match="only against a scratch database"):
        workload.hold_lock(real, "tuition_payments", 1)


def test_lock_holder_blocks_a_writer_and_health_sees_it(seeded, tmp_path):
    key = _first_payment(seeded)
    conn = db.connect(seeded, autocommit=True)
    assert health.idle_blockers(conn).empty and health.end_sessions([]) == []
    holder = workload.hold_lock(seeded, "tuition_payments", key, seconds=30)
    try:
        blocked = health.blocking(conn)
        row = blocked[blocked["blocked_pid"] == holder.writer_pid]
        assert len(row) == 1 and row.iloc[0]["blocking_pid"] == holder.pid
        assert row.iloc[0]["blocking_state"] == "idle in transaction" and holder.writer_outcome == "waiting"
        idle = health.idle_blockers(conn)
        assert list(idle["pid"]) == [holder.pid] and idle.iloc[0]["blocked"] == 1

        live = incident.Incident("performance", "test", seeded, mode="live", directory=tmp_path)
        assert live.run(health.end_sessions([holder.pid])) == []  # live without confirm: only recorded
        assert not health.blocking(conn).empty

        drill = incident.Incident("performance", "test", seeded, mode="drill", directory=tmp_path)
        assert drill.run(health.end_sessions([holder.pid])) == [f"SELECT pg_terminate_backend({holder.pid})"]
        assert health.blocking(conn).empty
    finally:
        conn.close()
        outcome = holder.release()
    assert outcome.startswith("got the lock after")
    assert _until_no_drill_sessions(seeded) == 0


def test_lock_holder_and_writer_end_by_themselves(seeded):
    holder = workload.hold_lock(seeded, "tuition_payments", _first_payment(seeded), seconds=1)
    assert _drill_sessions(seeded) == 2
    assert _until_no_drill_sessions(seeded) == 0  # the server ends the holder; then the writer is done
    assert holder.writer_outcome != "waiting"
    holder.release()


def test_lock_holder_needs_the_row(seeded):
    with pytest.raises(ParameterError, match="no row with id -1"):
        workload.hold_lock(seeded, "tuition_payments", -1)
