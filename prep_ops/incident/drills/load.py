"""Real load and real locks for a drill: what the performance drill injects. (Finding and ending the
idle sessions that block others is health's: `health.idle_blockers`, `health.end_sessions`.)

Load and locks go only to a scratch database (prep_ops_*) on a scratch server, and stop by
themselves: each load session after `seconds` or `max_queries`, whichever comes first; the lock
holder when the server ends it (idle_in_transaction_session_timeout); its blocked writer at
lock_timeout. Every session has its own connection and an application_name starting with
"prep_ops drill", so the health check shows whose they are.
"""

import random
import threading
import time
from dataclasses import dataclass, field

import pandas as pd
import psycopg
from psycopg import sql

from ... import plans
from ...db import Target, connect
from ...errors import ParameterError, first_line
from ...scratch import PREFIX
from ...sqlfiles import load

APPLICATION = "prep_ops drill"
PAUSE_SECONDS = 0.01  # between two queries of one load session: heavy load, not a denial of service
STATEMENT_TIMEOUT_MS = 5000  # so no load query outlives the load's time bound by more than this


def _require_scratch(target: Target, what: str) -> None:
    if not (target.scratch and target.database.startswith(PREFIX)):
        raise ParameterError(f"{what} runs only against a scratch database ({PREFIX}*) on a scratch server, "
                             f"not {target.masked_url}")


# --- load ----------------------------------------------------------------------------------------

@dataclass
class LoadReport:
    """What a load did; `samples` holds every query: session, seconds since the start, ms, phase."""

    sessions: int
    queries: int
    errors: int
    seconds: float
    stopped_by: str  # time, count, stop (asked to), or running
    samples: pd.DataFrame

    def phases(self) -> pd.DataFrame:
        """Queries and their median and 95th-percentile time (ms) per phase of the load."""
        grouped = self.samples.groupby("phase", sort=False)["ms"]
        return pd.DataFrame({"queries": grouped.size(), "median_ms": grouped.median(),
                             "p95_ms": grouped.quantile(0.95)})

    @property
    def summary(self) -> str:
        phases = "; ".join(f"{row.Index}: median {row.median_ms:.2f} ms over {row.queries:,} queries"
                           for row in self.phases().itertuples())
        state = "still running" if self.stopped_by == "running" else f"stopped by {self.stopped_by}"
        return (f"load: {self.sessions} session(s) ran {self.queries:,} queries in {self.seconds:.1f} s "
                f"({self.errors} errors, {state})" + (f"; {phases}" if phases else ""))


class Load:
    """Concurrent sessions, each running one query in a loop with its own connection until its time
    or its count runs out (or `stop()`)."""

    def __init__(self, target: Target, query: str, params: list[dict], *, sessions: int, seconds: float,
                 max_queries: int, pause: float):
        self.sessions, self.seconds, self.max_queries = sessions, float(seconds), int(max_queries)
        self._text, self._params, self._pause = plans.resolve_query(query), params, pause
        self._stop = threading.Event()
        self._samples: list[list[tuple]] = [[] for _ in range(sessions)]
        self._errors, self._why, self._ended = [0] * sessions, ["running"] * sessions, [None] * sessions
        self._began = time.perf_counter()
        self._marks = [(0.0, "start")]
        self._threads = [threading.Thread(target=self._session, args=(i, target), daemon=True,
                                          name=f"{APPLICATION} load {i + 1}") for i in range(sessions)]
        for thread in self._threads:
            thread.start()

    def _session(self, i: int, target: Target) -> None:
        deadline, rng, done, why = self._began + self.seconds, random.Random(i), 0, ""
        try:
            with psycopg.connect(target.url, autocommit=True, connect_timeout=10,
                                 application_name=f"{APPLICATION} load {i + 1}") as conn:
                conn.execute("SELECT set_config('statement_timeout', %s, false)", (str(STATEMENT_TIMEOUT_MS),))
                while True:
                    why = ("stop" if self._stop.is_set() else "count" if done >= self.max_queries
                           else "time" if time.perf_counter() >= deadline else "")
                    if why:
                        break
                    began, done = time.perf_counter(), done + 1
                    try:
                        conn.execute(self._text, rng.choice(self._params)).fetchall()
                    except psycopg.Error:
                        self._errors[i] += 1
                        if conn.broken:
                            why = "error"
                            break
                        continue
                    self._samples[i].append((began - self._began, (time.perf_counter() - began) * 1000))
                    self._stop.wait(self._pause)
        except psycopg.Error:  # could not connect, or the server ended the session
            self._errors[i] += 1
            why = "error"
        finally:
            self._why[i], self._ended[i] = why or "error", time.perf_counter()

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def mark(self, phase: str) -> None:
        """Start a new phase (e.g. "after the index"): queries from now on are counted under it."""
        self._marks.append((time.perf_counter() - self._began, phase))

    def report(self) -> LoadReport:
        """What the load did so far."""
        rows = [(i, at, ms) for i, samples in enumerate(self._samples) for at, ms in list(samples)]
        frame = pd.DataFrame(rows, columns=["session", "at_s", "ms"]).sort_values("at_s", ignore_index=True)
        starts = [at for at, _ in self._marks]
        frame["phase"] = [self._marks[max(0, sum(s <= at for s in starts) - 1)][1] for at in frame["at_s"]]
        ended = [e for e in self._ended if e is not None]
        seconds = (max(ended) if ended and not self.running else time.perf_counter()) - self._began
        why = "running" if self.running else ("stop" if "stop" in self._why else max(set(self._why), key=self._why.count))
        return LoadReport(len(self._threads), len(frame), sum(self._errors), seconds, why, frame)

    def wait(self, timeout: float | None = None) -> LoadReport:
        """Wait for every session to stop by itself; returns the report."""
        for thread in self._threads:
            thread.join(timeout)
        return self.report()

    def stop(self, timeout: float = 10.0) -> LoadReport:
        """Stop every session now; returns the report."""
        self._stop.set()
        return self.wait(timeout)


def start_load(target: Target, query: str, params: list[dict], *, sessions: int = 4, seconds: float = 30.0,
               max_queries: int = 10_000, pause: float = PAUSE_SECONDS) -> Load:
    """Start `sessions` concurrent sessions running `query` (a catalogue name or SQL) with parameters
    drawn from `params`; each stops after `seconds` or `max_queries` queries, whichever comes first."""
    _require_scratch(target, "load")
    if sessions < 1 or seconds <= 0 or max_queries < 1 or not params:
        raise ParameterError("load needs at least one session, a positive time, a positive count and parameters")
    return Load(target, query, params, sessions=sessions, seconds=seconds, max_queries=max_queries, pause=pause)


# --- a lock held open, and a writer blocked behind it --------------------------------------------

@dataclass
class LockHolder:
    """A session holding a row lock in an open transaction, idle, and a writer waiting for that row."""

    table: str
    key: int
    seconds: float
    pid: int
    writer_pid: int | None = None
    writer_outcome: str = "not started"
    _conn: psycopg.Connection | None = field(default=None, repr=False)
    _writer: threading.Thread | None = field(default=None, repr=False)

    def _write(self, target: Target, ready: threading.Event) -> None:
        statement = sql.SQL(load("workload", "touch_row")).format(table=sql.Identifier(self.table))
        began = time.perf_counter()
        try:
            with psycopg.connect(target.url, connect_timeout=10, application_name=f"{APPLICATION} blocked writer") as conn:
                conn.execute("SELECT set_config('lock_timeout', %s, false)", (str(int(self.seconds * 1000)),))
                self.writer_pid, self.writer_outcome = conn.info.backend_pid, "waiting"
                ready.set()
                conn.execute(statement, {"key": self.key})
                conn.rollback()
                self.writer_outcome = f"got the lock after {time.perf_counter() - began:.1f} s (rolled back)"
        except psycopg.errors.LockNotAvailable:
            self.writer_outcome = f"gave up after {time.perf_counter() - began:.1f} s (lock_timeout)"
        except psycopg.Error as exc:
            self.writer_outcome = f"ended: {first_line(exc)}"
        finally:
            ready.set()

    def release(self, timeout: float = 10.0) -> str:
        """End the holder's transaction (if the server has not already) and wait for the writer;
        returns what became of the writer."""
        if self._conn is not None:
            try:
                self._conn.rollback()
            except psycopg.Error:
                pass  # already ended by the server: that is what the runbook does
            self._conn.close()
        if self._writer is not None:
            self._writer.join(timeout)
        return self.writer_outcome


def hold_lock(target: Target, table: str, key: int, *, seconds: float = 30.0, writer: bool = True) -> LockHolder:
    """Lock row `key` of `table` in a transaction left open and idle (the server ends it after
    `seconds`), and, with `writer`, start a writer that waits for the row (giving up after `seconds`).
    Returns once the writer is seen waiting."""
    _require_scratch(target, "holding a lock")
    conn = psycopg.connect(target.url, connect_timeout=10, application_name=f"{APPLICATION} lock holder")
    try:
        conn.execute("SELECT set_config('idle_in_transaction_session_timeout', %s, false)", (str(int(seconds * 1000)),))
        locked = conn.execute(sql.SQL(load("workload", "lock_row")).format(table=sql.Identifier(table)),
                              {"key": key}).fetchone()
        if locked is None:
            raise ParameterError(f"{table} has no row with id {key} to lock")
    except Exception:
        conn.close()
        raise
    holder = LockHolder(table, key, seconds, conn.info.backend_pid, _conn=conn)
    if writer:
        ready = threading.Event()
        holder._writer = threading.Thread(target=holder._write, args=(target, ready), daemon=True,
                                          name=f"{APPLICATION} blocked writer")
        holder._writer.start()
        ready.wait(10)
        _wait_until_waiting(target, holder.writer_pid, min(seconds, 10.0))
    return holder


def _wait_until_waiting(target: Target, pid: int | None, seconds: float) -> None:
    if pid is None:
        return
    deadline = time.perf_counter() + seconds
    with connect(target, autocommit=True) as conn:
        while time.perf_counter() < deadline:
            row = conn.execute(load("workload", "wait_event"), {"pid": pid}).fetchone()
            if row is None or row[0] == "Lock":
                return
            time.sleep(0.05)
