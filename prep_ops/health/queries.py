"""Top queries: the statements taking the most time, from pg_stat_statements where it can be read,
else the statements active now."""

from collections.abc import Callable

import pandas as pd
import psycopg
from psycopg import sql

from ..catalog import columns, extension
from ..db import fetch_frame
from ..errors import first_line
from ..sqlfiles import load
from ._check import QUERY_WIDTH, HealthCheck, Run, plain, reading, short
from .sessions import _sessions

HOW_TO_ENABLE = ("to rank statements by time: shared_preload_libraries = 'pg_stat_statements', restart, "
                 "CREATE EXTENSION pg_stat_statements")


def _statements(conn: psycopg.Connection, limit: int,
                read_sessions: Callable[[psycopg.Connection], pd.DataFrame] = _sessions,
                width: int = QUERY_WIDTH) -> tuple[pd.DataFrame, str, str]:
    """Top statements by total time, the source they came from, and why pg_stat_statements was not it."""
    installed = extension(conn, "pg_stat_statements")
    if installed is None:
        why = "not installed in this database"
    else:
        schema, version = installed
        # total_time was renamed total_exec_time in 1.8 (PostgreSQL 13)
        suffix = "exec_time" if "total_exec_time" in columns(conn, "pg_stat_statements", schema) else "time"
        query = sql.SQL(load("health", "top_statements")).format(
            view=sql.Identifier(schema, "pg_stat_statements"),
            total=sql.Identifier(f"total_{suffix}"), mean=sql.Identifier(f"mean_{suffix}"))
        try:
            with conn.transaction():  # a savepoint: a refusal leaves the snapshot usable
                return fetch_frame(conn, query, {"width": width, "limit": limit}), "pg_stat_statements", ""
        except psycopg.Error as exc:  # most often: installed but not in shared_preload_libraries
            why = f"version {version} is installed but cannot be read: {first_line(exc)}"
    active = read_sessions(conn)
    active = active[active["state"] == "active"].sort_values("query_seconds", ascending=False).head(limit)
    return active.reset_index(drop=True), "pg_stat_activity", why


def top_queries(conn: psycopg.Connection, limit: int = 10, *, width: int = QUERY_WIDTH) -> pd.DataFrame:
    """The statements taking the most total time, from pg_stat_statements when it can be read (each
    statement's first `width` characters).

    Otherwise the statements active right now, from pg_stat_activity. `frame.attrs["source"]`
    names the view used, `frame.attrs["why"]` why pg_stat_statements was not, and `frame.attrs["note"]`
    says both in one line.
    """
    with reading(conn):
        frame, source, why = _statements(conn, limit, width=width)
    frame.attrs.update(source=source, why=why, note=why and f"pg_stat_statements unavailable ({why}); "
                                                  "showing the statements active now from pg_stat_activity")
    return frame


def _check_top_queries(name: str, run: Run) -> HealthCheck:
    t = run.thresholds
    frame, source, why = _statements(run.conn, 20, lambda conn: run.once("sessions", _sessions))
    threshold = f"warn: mean ≥ {t.slow_query_mean_ms:g} ms over ≥ {t.slow_query_min_calls:,} calls"
    if source != "pg_stat_statements":
        return HealthCheck(
            name, "unknown", None, threshold,
            f"pg_stat_statements unavailable ({why}); fallback: {len(frame)} statement(s) active now "
            "from pg_stat_activity",
            HOW_TO_ENABLE)
    slow = frame[(frame["calls"] >= t.slow_query_min_calls) & (frame["mean_ms"] >= t.slow_query_mean_ms)]
    if len(slow):
        top = slow.sort_values("mean_ms", ascending=False).iloc[0]
        detail = (f"{len(slow)} frequent statement(s) average ≥ {t.slow_query_mean_ms:g} ms; slowest "
                  f"{top.mean_ms:,.1f} ms over {top.calls:,} calls: {short(top.query)}")
    elif len(frame):
        top = frame.iloc[0]
        detail = (f"top statement takes {top.share_pct or 0:.0f}% of the time ({top.calls:,} call(s), "
                  f"mean {top.mean_ms:,.1f} ms): {short(top.query)}")
    else:
        detail = "pg_stat_statements has no statements for this database yet"
    slowest = plain(slow["mean_ms"].max()) if len(slow) else None
    return HealthCheck(name, "warn" if len(slow) else "ok", slowest, threshold, detail,
                       "EXPLAIN ANALYZE the slow statement (the query-plan runbook) and add the index it lacks")
