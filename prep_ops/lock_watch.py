"""While a long statement runs (a REINDEX CONCURRENTLY waiting for other sessions' transactions, a VACUUM
behind a lock), say every few seconds which sessions it waits for: the DBA at a terminal sees why
nothing moves and whom to look at, rather than a silent prompt for as long as the holder runs.

`watching(target, pid, say)` is a context: a thread of its own, on a connection of its own to `target`,
asks every EVERY seconds whether session `pid` (or any session named `application_name`: a backup's
pg_dump and checksum connections) waits on a lock (health.blocking: pg_blocking_pids) and calls
`say(line)` for each session it waits for. It only reads pg_stat_activity and pg_locks; a failure of its
own (the server gone, no connection to spare) ends the watch quietly: the statement it watches reports
its own errors.

`exclusive_holders(conn)` names, after a wait gave up, which relations another session holds an ACCESS
EXCLUSIVE lock on, or waits for one on (a queued request blocks every later read too), and who that is
(`who` says it in one line): the waiting session is gone by then, so it is asked of the database, not of
the session.
"""

import contextlib
import threading
from dataclasses import dataclass, replace
from datetime import datetime, timezone

import psycopg

from .db import Target, connect
from .formatting import seconds, shorten
from .sqlfiles import load

EVERY = 5.0  # seconds between two looks
# how long a change's DDL (a migration step, the audit log's triggers, the masked views) waits for a lock
# another session holds, where the session sets no lock_timeout of its own: a CREATE INDEX, CREATE TRIGGER or ALTER TABLE
# queued behind a long transaction queues every later query (or write) of that table behind it, so the
# application stalls for as long as the change waits. It gives up instead, and `gave_up` says why.
DDL_LOCK_WAIT = "10s"


def describe(row) -> str:
    """One blocking session of health.blocking's frame, as the line says it."""
    if not row.blocking_pid:  # pid 0: a prepared transaction, with no session of its own
        return f"waiting {seconds(row.wait_seconds)} for a prepared transaction (pg_prepared_xacts)"
    state = row.blocking_state or "state not visible"
    if row.blocking_state and row.blocking_state.startswith("idle in transaction"):
        state = f"{row.blocking_state} for {seconds(row.blocking_idle_seconds)}"
    return (f"waiting {seconds(row.wait_seconds)} for pid {row.blocking_pid} ({row.blocking_user}, {state}: "
            f"{shorten(row.blocking_query or '', 80)}); end it with SELECT pg_terminate_backend({row.blocking_pid}) "
            "if it should not run")


@contextlib.contextmanager
def watching(target: Target, pid: int | None, say, every: float = EVERY, *, application_name: str | None = None):
    """Call `say(line)` every `every` seconds, while the block runs, for each session `pid` (or a session
    whose application_name is `application_name`) waits for; a session waited for by several of them once."""
    from .health import blocking

    stop = threading.Event()

    def watch() -> None:
        try:
            with connect(target, autocommit=True) as conn:
                while not stop.wait(every):
                    frame = blocking(conn)
                    ours = frame["blocked_pid"] == pid
                    if application_name is not None:
                        ours |= frame["blocked_application"] == application_name
                    said = set()
                    for row in frame[ours].itertuples():  # the longest wait first
                        if not stop.is_set() and row.blocking_pid not in said:
                            said.add(row.blocking_pid)
                            say(describe(row))
        except Exception:  # noqa: BLE001 (a watch that cannot look says nothing; the statement speaks for itself)
            return

    thread = threading.Thread(target=watch, name="prep-ops lock watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every + 5)


@dataclass(frozen=True)
class Holder:
    """A relation another session holds an ACCESS EXCLUSIVE lock on, and that session (pid None: a
    prepared transaction); not `granted`: a session waiting for that lock, `behind` the sessions it waits for."""

    relation: str
    pid: int | None
    application_name: str | None
    user_name: str | None
    state: str | None
    xact_start: datetime | None
    xact_seconds: float | None
    granted: bool = True
    behind: list[int] | None = None


def exclusive_holders(conn: psycopg.Connection) -> list[Holder]:
    """The relations of `conn`'s database another session holds an ACCESS EXCLUSIVE lock on, with who holds
    each, the oldest transaction first. Never waits on those locks (catalogs and pg_locks only)."""
    return [Holder(*row) for row in conn.execute(load("lock_watch", "exclusive_holders")).fetchall()]


def held(holders: list[Holder]) -> str:
    """The holders in one line: which relations, by which session, in what state, since when."""
    by_session: dict[int | None, list[Holder]] = {}
    for holder in holders:
        by_session.setdefault(holder.pid, []).append(holder)
    parts = []
    for pid, locks in by_session.items():
        relations = ", ".join(h.relation for h in locks)
        first = locks[0]
        if pid is None:
            parts.append(f"{relations} by a prepared transaction (see pg_prepared_xacts)")
            continue
        since = (f", transaction open since {first.xact_start.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC, "
                 f"{seconds(first.xact_seconds)} ago"
                 if first.xact_start is not None else "")
        parts.append(f"{relations} by pid {pid} (application {first.application_name or 'unnamed'!s}, user "
                     f"{first.user_name or 'unknown'}, {first.state or 'state not visible'}{since})")
    return "; ".join(parts)


def who(holders: list[Holder]) -> str:
    """Who keeps a table from being read, in one clause: the sessions holding an ACCESS EXCLUSIVE lock, then
    those queued for one (and whom they wait for: a read queues behind such a request, though no one holds
    the lock yet); when there are none any more, that the lock was released since."""
    granted = [h for h in holders if h.granted]
    queued = [h for h in holders if not h.granted]
    parts = [f"{held(granted)} holds an ACCESS EXCLUSIVE lock"] * bool(granted)
    if queued:
        waits_for = sorted({pid for h in queued for pid in (h.behind or [])})
        behind = (f" behind pid{'s' * (len(waits_for) > 1)} {', '.join(map(str, waits_for))}" if waits_for
                  else "")
        parts.append(f"{held(queued)} waits for an ACCESS EXCLUSIVE lock{behind}, and every read of "
                     f"{'that table' if len({h.relation for h in queued}) == 1 else 'those tables'} queues behind "
                     "that request")
    return "; ".join(parts) or "a table was locked by another session (ACCESS EXCLUSIVE), released since"


def not_read(conn: psycopg.Connection, busy, waited: str | None = None, done: str = "read") -> str:
    """Why a read gave up behind another session's lock (an errors.LockBusy), in one line for a SKIP or an
    error: what could not be read (`done`), which relation is locked and by whom (asked now: the read is
    over). `waited`: how long it waited (db.LOCK_WAIT unless said)."""
    from .db import LOCK_WAIT

    return (f"{busy.what or 'a table'} could not be {done} within {waited or LOCK_WAIT}: "
            f"{who(exclusive_holders(conn))}; try again when that ends")


class DdlWait:
    """A bound on how long a change's DDL waits for a lock, in the transaction under way (limit_ddl_wait)."""

    def __init__(self, conn: psycopg.Connection):
        self.since, own = conn.execute("SELECT clock_timestamp(), current_setting('lock_timeout')").fetchone()
        self.ours = own == "0"  # the session's own lock_timeout, where it has one, stands
        if self.ours:
            conn.execute("SELECT set_config('lock_timeout', %s, true)", (DDL_LOCK_WAIT,))

    def done(self, conn: psycopg.Connection) -> None:
        """The change went through: the session's lock_timeout as it was (SET LOCAL would last to the end
        of a caller's own transaction, where this one is a savepoint in it)."""
        if self.ours:
            conn.execute("SELECT set_config('lock_timeout', '0', true)")


def limit_ddl_wait(conn: psycopg.Connection) -> DdlWait:
    """In the transaction under way on `conn`: its statements wait DDL_LOCK_WAIT at most for a lock
    (lock_timeout), unless the session has a lock_timeout of its own; call `done` at the transaction's end."""
    return DdlWait(conn)


def gave_up(conn: psycopg.Connection, wait: "DdlWait | None") -> str:
    """Why a change gave up on a lock (after limit_ddl_wait; its transaction rolled back), in words: how long
    it waited, and the sessions holding locks on tables here in transactions older than the change, the
    likely holders (sql/lock_watch/lock_holders.sql); the session to end only where there is one."""
    try:
        own = conn.execute("SELECT current_setting('lock_timeout')").fetchone()[0]
        since = wait.since if wait else conn.execute("SELECT clock_timestamp()").fetchone()[0]
        rows = conn.execute(load("lock_watch", "lock_holders"), {"since": since}).fetchall()
    except psycopg.Error as exc:  # the reason stays the lock; who holds it could not be read
        return f"it gave up waiting for a lock another session holds (who holds it could not be read: {exc.sqlstate or exc})"
    waited = DDL_LOCK_WAIT if wait is not None and wait.ours else own
    how = f"it waited {waited} for a lock" if waited != "0" else "it could not take a lock"  # NOWAIT
    by_session: dict[int, list[Holder]] = {}
    for holder in (Holder(*row) for row in rows):
        by_session.setdefault(holder.pid, []).append(holder)
    shown = []  # a session's first three tables (a pg_dump holds every table)
    for holders in by_session.values():
        more = f" and {len(holders) - 3} more" if len(holders) > 3 else ""
        shown.append(replace(holders[0], relation=", ".join(h.relation for h in holders[:3]) + more))
    holding = (f"sessions holding locks on tables here since before it: {held(shown)}" if shown
               else "the session holding it has ended since")
    # a session to end only where it is the one candidate and its transaction is known to be older
    sure = len(shown) == 1 and shown[0].xact_start is not None
    end = f", or end that session (SELECT pg_terminate_backend({shown[0].pid}))" if sure else ""
    return (f"{how} another session holds (lock_timeout: waiting longer would queue "
            f"the application's queries of that table behind it); {holding}; run it again when that ends{end}")
