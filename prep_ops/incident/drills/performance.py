"""The performance drill: a scratch database with sample data, its healthy query times measured, and
then the incident: the index the payment_history catalogue query needs is dropped, several sessions
hammer that query, and a session sits on a row lock in an open transaction with a writer stuck
behind it. Everything it starts stops by itself within `load_seconds`.

Its database carries the incident's id (prep_ops_drill_performance_<label>), so two runs at once never
share one; `drop` drops only its own, and `make` first removes what killed runs left (lifecycle.sweep).
"""

from dataclasses import dataclass

import psycopg
from psycopg import sql

from .. import naming, performance
from . import lifecycle
from ...catalog import database_exists
from . import load as workload
from ...db import Target, connect
from ...errors import ParameterError
from ...sqlfiles import load

DATABASE = "prep_ops_drill_performance"  # the prefix of the drill databases: <DATABASE>_<label>
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
    conn: psycopg.Connection | None = None  # the run's own, open on the drill database from its creation on
    swept: list[str] | None = None  # what killed drills had left, removed first

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
        if self.conn is not None and not self.conn.closed:
            self.conn.close()
        lifecycle.drop(self.server, self.target.database, [])
        return report


def inject(conn: psycopg.Connection) -> str:
    """The incident's cause: drop the index payment_history needs. Returns the statement run."""
    statement = sql.SQL("DROP INDEX {}").format(sql.Identifier(INDEX))
    conn.execute(statement)
    return statement.as_string(conn)


def database_name(incident_id: str) -> str:
    """The drill database of incident `incident_id`."""
    return lifecycle.database_name(DATABASE, naming.drill_label(incident_id))


def exists(server: Target, name: str) -> bool:
    """Whether the drill database `name` is on the server."""
    with connect(server, autocommit=True) as conn:
        return database_exists(conn, name)


def make(target: Target, students: int = 30_000, *, incident_id: str | None = None, load_seconds: float = 30.0,
         sessions: int = 4, repeats: int = 5, name: str | None = None) -> Drill:
    """Make the drill of `incident_id` (or in database `name`) on the server `naming.drill_server(target)`
    names: sample database, healthy baseline, then the injection, the load and the lock holder."""
    if students < MIN_STUDENTS:
        raise ParameterError(f"the performance drill needs at least {MIN_STUDENTS:,} students, or a missing index "
                             f"costs too little to see; not {students:,}")
    if name is None and incident_id is None:
        raise ParameterError("a performance drill is named after its incident: give incident_id")
    name = name or database_name(incident_id)
    server, note = naming.drill_server(target)
    label = name[len(DATABASE):].lstrip("_") if name.startswith(DATABASE) else None
    drill_db, conn, swept = lifecycle.make_database(server, name, students, 42, sweep_prefix=DATABASE, roles_prefix=None,
                                                    label=label)
    try:
        baseline = performance.query_times(conn, repeats=repeats)
        inject(conn)
        paying = [{"student_id": r[0]} for r in conn.execute(load("workload", "students_with_payments"),
                                                               {"limit": LOAD_PARAMETERS}).fetchall()]
        locked = conn.execute(load("workload", "payment_of_student"),
                              {"student_id": baseline.params["student_id"]}).fetchone()[0]
    except BaseException:
        conn.close()
        lifecycle.drop(server, name, [])
        raise
    load_ = workload.start_load(drill_db, QUERY, paying, sessions=sessions, seconds=load_seconds)
    try:
        lock = workload.hold_lock(drill_db, "tuition_payments", locked, seconds=load_seconds)
    except Exception:
        load_.stop()
        raise
    return Drill(drill_db, server, note, students, baseline, load_, lock, conn, swept)

