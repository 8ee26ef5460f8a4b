"""Tables and the database they make up: sizes, the share of reads served from memory, and how
close the oldest database is to transaction-ID wraparound."""

import pandas as pd
import psycopg

from ..db import fetch_frame
from ..sqlfiles import load
from ._check import HealthCheck, Run, reading, size

WRAPAROUND = 2**31  # transaction IDs: the server stops before their age reaches this


def _table_sizes(conn: psycopg.Connection, limit: int) -> pd.DataFrame:
    frame = fetch_frame(conn, load("health", "table_sizes"), {"limit": limit})
    frame["estimated_rows"] = frame["estimated_rows"].astype("Int64")  # NULL: never analysed
    return frame


def _cache_hit_ratios(conn: psycopg.Connection) -> pd.DataFrame:
    frame = fetch_frame(conn, load("health", "cache_hits"))
    for part in ("table", "index"):
        hits, reads = frame[f"{part}_hits"].astype(float), frame[f"{part}_reads"].astype(float)
        frame[f"{part}_hit_ratio"] = hits / (hits + reads).where(hits + reads > 0)
    return frame


def table_sizes(conn: psycopg.Connection, limit: int = 10) -> pd.DataFrame:
    """The largest tables on disk (bytes: total, table, indexes) with the planner's row estimate."""
    with reading(conn):
        return _table_sizes(conn, limit)


def cache_hit_ratios(conn: psycopg.Connection) -> pd.DataFrame:
    """Per table: block requests served from shared buffers (hits) or read, and the hit ratio of table and indexes."""
    with reading(conn):
        return _cache_hit_ratios(conn)


# --- the checks ----------------------------------------------------------------------------------

def _check_cache_hit(name: str, run: Run) -> HealthCheck:
    t = run.thresholds
    frame = _cache_hit_ratios(run.conn)
    hits = int(frame["table_hits"].sum() + frame["index_hits"].sum())
    requests = hits + int(frame["table_reads"].sum() + frame["index_reads"].sum())
    ratio = hits / requests if requests else None
    if ratio is None:
        status, detail = "ok", "no table or index blocks requested yet"
    elif requests < t.cache_min_blocks:
        status, detail = "ok", f"{ratio:.2%} from memory, but only {requests:,} block requests: too few to judge"
    else:
        status = "critical" if ratio < t.cache_hit_critical else "warn" if ratio < t.cache_hit_warn else "ok"
        detail = f"{ratio:.2%} of {requests:,} block requests served from memory"
    return HealthCheck(
        name, status, ratio,
        f"warn < {t.cache_hit_warn:.0%}, critical < {t.cache_hit_critical:.0%} (after {t.cache_min_blocks:,} requests)",
        detail, "the data in use outgrows shared_buffers: raise it (about 25% of RAM) or add memory; "
                "look for sequential scans of large tables")


def _check_wraparound(name: str, run: Run) -> HealthCheck:
    t = run.thresholds
    oldest, age, freeze_max_age = run.conn.execute(load("health", "wraparound")).fetchone()
    warn_at, critical_at = t.xid_age_warn * freeze_max_age, t.xid_age_critical * WRAPAROUND
    status = "critical" if age >= critical_at else "warn" if age >= warn_at else "ok"
    return HealthCheck(
        name, status, age,
        f"warn ≥ {warn_at:,.0f} (autovacuum_freeze_max_age × {t.xid_age_warn:g}), "
        f"critical ≥ {critical_at:,.0f} ({t.xid_age_critical:.0%} of 2^31)",
        f"oldest: {oldest} at {age:,} transactions ({age / WRAPAROUND:.2%} of the way to wraparound)",
        f"VACUUM (FREEZE, VERBOSE) the largest tables of {oldest}; look for long or prepared transactions "
        "and replication slots holding back the oldest transaction")


def _check_database_size(name: str, run: Run) -> HealthCheck:
    database, total = run.conn.execute(load("health", "database_size")).fetchone()
    largest = _table_sizes(run.conn, 3)
    tables = ", ".join(f"{r.table_name} {size(r.total_bytes)}" for r in largest.itertuples())
    return HealthCheck(
        name, "ok", total, "informational",
        f"{database}: {size(total)}" + (f"; largest: {tables}" if tables else "; no tables"),
        "watch the trend; the maintenance runbook finds bloat worth a VACUUM FULL")
