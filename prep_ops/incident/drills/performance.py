"""The performance drill: a scratch database with sample data, its healthy query times measured, and
then the incident: the index the payment_history catalogue query needs is dropped, several sessions
hammer that query, and a session sits on a row lock in an open transaction with a writer stuck
behind it. Everything it starts stops by itself within `load_seconds`.
"""

from dataclasses import dataclass

import psycopg
from psycopg import sql

from ... import scratch
from .. import performance, record
from . import load as workload
from ...db import Target, connect
from ...errors import ParameterError
from ...sqlfiles import load

DATABASE = "prep_ops_drill_performance"
INDEX = "idx_tuition_payments_student_id"  # payment_history looks payments up by student with it
QUERY = "payment_history"
MIN_STUDENTS = 10_000  # below this a sequential scan of the payments is about as fast as the index
LOAD_PARAMETERS = 500  # students the load's payment_history calls are spread over


@dataclass
class Drill:
    target: Target  # the drill's scratch database
    server: Target  # a database on the same server, to drop the drill database from
    note: str  # where the drill runs, one line
    students: int
    baseline: performance.QueryTimes  # the healthy times, before the injection
    load: workload.Load
    lock: workload.LockHolder

    @property
    def summary(self) -> str:
        return (f"{self.note}; {self.students:,} sample students in {self.target.database}; healthy {QUERY} "
                f"{self.baseline.ms(QUERY):.2f} ms; injected: DROP INDEX {INDEX}; {self.load.sessions} load "
                f"session(s) running {QUERY} for at most {self.load.seconds:g} s; pid {self.lock.pid} holds a row lock "
                f"of {self.lock.table} idle in a transaction (at most {self.lock.seconds:g} s), pid "
                f"{self.lock.writer_pid} waits for it")

    def stop(self) -> workload.LoadReport:
        """Stop the load and end the lock holder (if still there); returns the load's report."""
        report = self.load.stop()
        self.lock.release()
        return report

    def drop(self) -> workload.LoadReport:
        """Stop everything and drop the drill database; returns the load's report."""
        report = self.stop()
        scratch.drop(self.server, self.target.database)
        return report


def inject(conn: psycopg.Connection) -> str:
    """The incident's cause: drop the index payment_history needs. Returns the statement run."""
    statement = sql.SQL("DROP INDEX {}").format(sql.Identifier(INDEX))
    conn.execute(statement)
    return statement.as_string(conn)


def exists(server: Target, name: str = DATABASE) -> bool:
    """Whether the drill database is on the server."""
    with connect(server, autocommit=True) as conn:
        return conn.execute(load("workload", "database_exists"), {"name": name}).fetchone()[0]


def make(target: Target, students: int = 50_000, *, load_seconds: float = 30.0, sessions: int = 4,
         repeats: int = 5, name: str = DATABASE) -> Drill:
    """Make the drill on the server `record.drill_server(target)` names: sample database, healthy
    baseline, then the injection, the load and the lock holder."""
    if students < MIN_STUDENTS:
        raise ParameterError(f"the performance drill needs at least {MIN_STUDENTS:,} students, or a missing index "
                             f"costs too little to see; not {students:,}")
    server, note = record.drill_server(target)
    drill_db = scratch.sample_database(server, students, name=name)
    with connect(drill_db, autocommit=True) as conn:
        baseline = performance.query_times(conn, repeats=repeats)
        inject(conn)
        paying = [{"student_id": r[0]} for r in conn.execute(load("workload", "students_with_payments"),
                                                               {"limit": LOAD_PARAMETERS}).fetchall()]
        locked = conn.execute(load("workload", "payment_of_student"),
                              {"student_id": baseline.params["student_id"]}).fetchone()[0]
    load_ = workload.start_load(drill_db, QUERY, paying, sessions=sessions, seconds=load_seconds)
    try:
        lock = workload.hold_lock(drill_db, "tuition_payments", locked, seconds=load_seconds)
    except Exception:
        load_.stop()
        raise
    return Drill(drill_db, server, note, students, baseline, load_, lock)

