"""Sessions: who is connected, who runs long, who sits idle in a transaction, who blocks whom, and
the idle blockers an incident may end."""

import pandas as pd
import psycopg
from psycopg import sql

from ..db import fetch_frame
from ..incident.record import Action
from ..sqlfiles import load
from ._check import QUERY_WIDTH, HealthCheck, Run, grade, plain, reading, seconds, short

IDLE_IN_TRANSACTION = ("idle in transaction", "idle in transaction (aborted)")


def _sessions(conn: psycopg.Connection) -> pd.DataFrame:
    return fetch_frame(conn, load("health", "sessions"), {"width": QUERY_WIDTH})


def _blocking(conn: psycopg.Connection) -> pd.DataFrame:
    return fetch_frame(conn, load("health", "blocking"), {"width": QUERY_WIDTH})


def hidden_sessions(conn: psycopg.Connection) -> tuple[int, int]:
    """Sessions of other roles whose state, statement and locks this role may not see (it lacks
    pg_read_all_stats and is no superuser): how many on the server, how many in this database."""
    on_server, here = conn.execute(load("health", "hidden_sessions")).fetchone()
    return int(on_server), int(here)


def unseen(hidden_here: int) -> str:
    """What a check of this database's sessions could not look at, for its detail ("" when nothing)."""
    return (f"{hidden_here} session(s) of other roles in this database not seen: their state, statements and "
            "locks need pg_read_all_stats (GRANT pg_read_all_stats TO this role) or a superuser"
            if hidden_here else "")


def _not_seen(status: str, detail: str, hidden_here: int) -> tuple[str, str]:
    """A sessions check's status and detail where other roles' sessions are hidden from this role: what
    it saw is judged, but an `ok` of the sessions it could see is not judged (unknown), saying why."""
    if not hidden_here:
        return status, detail
    return ("unknown" if status == "ok" else status), f"{detail} among this role's own sessions; {unseen(hidden_here)}"


def sessions(conn: psycopg.Connection) -> pd.DataFrame:
    """Client sessions in the connection's database (the asking one left out): state, waits, ages in seconds, query."""
    with reading(conn):
        return _sessions(conn)


def blocking(conn: psycopg.Connection) -> pd.DataFrame:
    """Who blocks whom: one row per waiting session and a session it waits for, with pids, queries and wait time."""
    with reading(conn):
        return _blocking(conn)


def idle_blockers(conn: psycopg.Connection) -> pd.DataFrame:
    """Sessions that block others while idle in an open transaction: pid, user, seconds the
    transaction has been open, seconds it has sat idle in it, sessions blocked. (A blocker running a
    statement may finish: not here.)"""
    blocked = blocking(conn)
    idle = blocked[blocked["blocking_state"].isin(IDLE_IN_TRANSACTION)]
    return (idle.groupby("blocking_pid", sort=False)
            .agg(user=("blocking_user", "first"), transaction_seconds=("blocking_xact_seconds", "max"),
                 idle_seconds=("blocking_idle_seconds", "min"), blocked=("blocked_pid", "nunique"))
            .rename_axis("pid").reset_index())


def end_sessions(pids: list[int], min_idle_seconds: float = 0.0) -> list[Action]:
    """The statements that end each of these sessions if it still blocks a session here while idle in a
    transaction, and has sat idle at least `min_idle_seconds` (an application between two statements of
    its transaction is left alone); for an incident record to run, or only record."""
    return [Action(f"SELECT pg_terminate_backend({int(pid)})", sql.SQL(load("health", "end_idle_blocker")),
                   {"pid": int(pid), "min_idle": float(min_idle_seconds)}) for pid in pids]


# --- the checks ----------------------------------------------------------------------------------

def _check_connections(name: str, run: Run) -> HealthCheck:
    t = run.thresholds
    used, maximum, active, idle, idle_in_tx = run.conn.execute(load("health", "connections")).fetchone()
    hidden, _here = run.once("hidden sessions", hidden_sessions)
    used += hidden  # counted, though their state is not to be seen: at most, with any workers among them
    share = used / maximum
    return HealthCheck(
        name, grade(share, t.connections_warn, t.connections_critical), share,
        f"warn ≥ {t.connections_warn:.0%}, critical ≥ {t.connections_critical:.0%} of max_connections",
        f"{used} of {maximum} connections in use ({share:.0%}): {active} active, {idle} idle, "
        f"{idle_in_tx} idle in transaction" + (f", {hidden} of other roles in a state this role may not see "
                                               "(pg_read_all_stats shows it)" if hidden else ""),
        "close idle sessions; put a connection pooler (PgBouncer) in front rather than raise max_connections")


def _check_long_queries(name: str, run: Run) -> HealthCheck:
    t = run.thresholds
    frame = run.once("sessions", _sessions)
    active = frame[frame["state"] == "active"].sort_values("query_seconds", ascending=False)
    longest = plain(active["query_seconds"].max()) if len(active) else None
    over = active[active["query_seconds"] >= t.long_query_warn_seconds]
    if over.empty:
        detail = f"no statement active for {seconds(t.long_query_warn_seconds)} or more" + (
            f" (longest {seconds(longest)})" if longest is not None else "")
    else:
        detail = f"{len(over)} statement(s) active too long: " + "; ".join(
            f"pid {r.pid} for {seconds(r.query_seconds)} ({short(r.query)})" for r in over.head(3).itertuples())
    status, detail = _not_seen(grade(longest, t.long_query_warn_seconds, t.long_query_critical_seconds), detail,
                               run.once("hidden sessions", hidden_sessions)[1])
    return HealthCheck(
        name, status, longest,
        f"warn ≥ {seconds(t.long_query_warn_seconds)}, critical ≥ {seconds(t.long_query_critical_seconds)}",
        detail, "look at the statement and its plan; stop it with SELECT pg_cancel_backend(pid) if it should not run")


def _check_idle_in_transaction(name: str, run: Run) -> HealthCheck:
    t = run.thresholds
    frame = run.once("sessions", _sessions)
    idle = frame[frame["state"].isin(IDLE_IN_TRANSACTION)].sort_values("state_seconds", ascending=False)
    longest = plain(idle["state_seconds"].max()) if len(idle) else None
    over = idle[idle["state_seconds"] >= t.idle_in_transaction_warn_seconds]
    if over.empty:
        detail = f"no transaction idle for {seconds(t.idle_in_transaction_warn_seconds)} or more" + (
            f" (longest {seconds(longest)})" if longest is not None else "")
    else:
        detail = f"{len(over)} session(s) idle in an open transaction: " + "; ".join(
            f"pid {r.pid} ({r.user_name}, {r.application_name or 'no application name'}) idle "
            f"{seconds(r.state_seconds)} after {short(r.query)}" for r in over.head(3).itertuples())
    status, detail = _not_seen(grade(longest, t.idle_in_transaction_warn_seconds, t.idle_in_transaction_critical_seconds),
                               detail, run.once("hidden sessions", hidden_sessions)[1])
    return HealthCheck(
        name, status, longest,
        f"warn ≥ {seconds(t.idle_in_transaction_warn_seconds)}, "
        f"critical ≥ {seconds(t.idle_in_transaction_critical_seconds)}",
        detail, "the application must commit or roll back; end the session with SELECT pg_terminate_backend(pid) "
                "and set idle_in_transaction_session_timeout")


def _check_blocked(name: str, run: Run) -> HealthCheck:
    t = run.thresholds
    frame = run.once("blocking", _blocking)
    longest = plain(frame["wait_seconds"].max()) if len(frame) else None
    if frame.empty:
        detail = "no session waits for a lock"
    else:
        waits = []
        for pid, rows in frame.groupby("blocked_pid", sort=False):
            first = rows.iloc[0]
            blockers = ", ".join(
                f"pid {r.blocking_pid} ({r.blocking_state or 'prepared transaction'}: {short(r.blocking_query)})"
                for r in rows.itertuples())
            waits.append(f"pid {pid} ({short(first.blocked_query)}) has waited {seconds(first.wait_seconds)} "
                         f"for {blockers}")
        detail = f"{frame['blocked_pid'].nunique()} session(s) blocked: " + "; ".join(waits[:3])
    status, detail = _not_seen(grade(longest, t.blocked_warn_seconds, t.blocked_critical_seconds), detail,
                               run.once("hidden sessions", hidden_sessions)[1])
    return HealthCheck(
        name, status, longest,
        f"warn ≥ {seconds(t.blocked_warn_seconds)}, critical ≥ {seconds(t.blocked_critical_seconds)} waiting",
        detail, "end the blocking transaction (commit it, or SELECT pg_terminate_backend(blocking pid)); "
                "keep transactions short")
