"""Tables and the database they make up: sizes, the share of reads served from memory, and how
close the oldest database is to transaction-ID wraparound."""

import pandas as pd
import psycopg

from ..db import fetch_frame
from ..sqlfiles import load
from ..formatting import percent
from ._check import HealthCheck, Run, minutes, reading, size

WRAPAROUND = 2**31  # transaction IDs: the server stops before their age reaches this
GB = 1024**3  # as pg_size_pretty counts


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

def statistics_age(conn: psycopg.Connection) -> tuple[float, str]:
    """Seconds this database's statistics have been collecting, and since what: their last reset; else
    the later of the server's start and the database's creation (a database made after the server
    started has statistics only as old as itself; its creation is read where the session may)."""
    reset, started, now, may_stat = conn.execute(load("health", "stats_age")).fetchone()
    if reset is not None:
        return (now - reset).total_seconds(), "the statistics were reset"
    created = conn.execute(load("health", "database_created")).fetchone()[0] if may_stat else None
    if created is not None and created > started:
        return (now - created).total_seconds(), "the database was created"
    return (now - started).total_seconds(), "the server started"


def _check_cache_hit(name: str, run: Run) -> HealthCheck:
    """Judged only over a sample large enough to mean something: enough block requests AND enough time
    since the statistics began. Right after a bulk load (pgbench -i) nearly every request was a read of
    a block just written: the ratio says nothing about the cache yet, so it is unknown, never critical."""
    t = run.thresholds
    frame = _cache_hit_ratios(run.conn)
    hits = int(frame["table_hits"].sum() + frame["index_hits"].sum())
    requests = hits + int(frame["table_reads"].sum() + frame["index_reads"].sum())
    ratio = hits / requests if requests else None
    age, since = statistics_age(run.conn)
    threshold = (f"warn < {t.cache_hit_warn:.0%}, critical < {t.cache_hit_critical:.0%}, judged after "
                 f"{t.cache_min_blocks:,} block requests and {minutes(t.cache_min_seconds)} of statistics")
    too_small = [why for why, short_of in (
        (f"only {requests:,} block requests (fewer than {t.cache_min_blocks:,})", requests < t.cache_min_blocks),
        (f"statistics only {minutes(age)} old ({since}; fewer than {minutes(t.cache_min_seconds)})",
         age < t.cache_min_seconds)) if short_of]
    if ratio is None:
        status, detail = "unknown", "no table or index blocks requested yet: nothing to judge"
    elif too_small:
        status, detail = "unknown", (f"{percent(ratio, 2)} of {requests:,} block requests served from memory, "
                                     f"not judged: {' and '.join(too_small)}; sample too small")
    else:
        status = "critical" if ratio < t.cache_hit_critical else "warn" if ratio < t.cache_hit_warn else "ok"
        detail = (f"{percent(ratio, 2)} of {requests:,} block requests served from memory "
                  f"over {minutes(age)} of statistics")
    return HealthCheck(
        name, status, ratio, threshold, detail,
        "the data in use outgrows shared_buffers: raise it (about 25% of RAM) or add memory; "
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
    t = run.thresholds
    database, total = run.conn.execute(load("health", "database_size")).fetchone()
    largest = _table_sizes(run.conn, 3)
    tables = ", ".join(f"{r.schema_name}.{r.table_name} {size(r.total_bytes)}" for r in largest.itertuples())
    warn_at, critical_at = t.database_size_warn_gb * GB, t.database_size_critical_gb * GB
    status = "critical" if total >= critical_at else "warn" if total >= warn_at else "ok"
    return HealthCheck(
        name, status, total, f"warn ≥ {size(warn_at)}, critical ≥ {size(critical_at)}",
        f"{database}: {size(total)}" + (f"; largest: {tables}" if tables else "; no tables"),
        "make room before the disk fills (backups, restores and VACUUM FULL need as much again): "
        "drop or archive old data, and the maintenance runbook finds bloat worth a VACUUM FULL")
