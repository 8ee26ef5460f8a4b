"""The health check, PgHero style: one small query per check, a threshold, a plain-language status.

Every query reads catalog and statistics views only, never a table, so a full run takes
milliseconds whatever the size of the data. A run reads in one read-only snapshot with a statement
and lock timeout set for that transaction only, and leaves its own session out of every session it
reports. Connections and transaction-ID age are judged for the whole server, sessions, locks, cache
and sizes for the connection's database. Statuses are `ok`, `warn` and `critical`, and `unknown`
where a source is missing (no pg_stat_statements, no readable server log) or the sample is too small
to judge (the cache hit ratio needs enough block requests and enough time since its statistics
began): said in one line, never `ok` for what was not judged. A check whose query the server refuses is `warn`
with the reason, never an exception.

One module per subject: sessions (and the idle blockers an incident ends), tables, queries,
server_log, recovery_point (WAL archiving); what they share is in _check.
"""

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

import pandas as pd
import psycopg

from ..errors import ParameterError, first_line
from ._check import QUERY_WIDTH, STATUSES, HealthCheck, Run, reading
from .queries import _check_top_queries, top_queries
from .recovery_point import _check_recovery_point
from .server_log import _check_server_log, recent_errors
from .sessions import IDLE_IN_TRANSACTION, _check_blocked, _check_connections, _check_idle_in_transaction, \
    _check_long_queries, blocking, end_sessions, hidden_sessions, idle_blockers, sessions, unseen
from .tables import _check_cache_hit, _check_database_size, _check_wraparound, cache_hit_ratios, statistics_age, \
    table_sizes


@dataclass(frozen=True)
class Thresholds:
    """Where each check turns `warn` and `critical`; the defaults suit a production server.

    The database size thresholds are far above the school's (about 1 GB at a million students): a
    database past them has grown in a way someone should look at before backups, restores and
    VACUUM FULL (which need as much room again) stop fitting.
    """

    connections_warn: float = 0.70  # share of max_connections in use
    connections_critical: float = 0.90
    long_query_warn_seconds: float = 60.0  # a statement active this long
    long_query_critical_seconds: float = 300.0
    idle_in_transaction_warn_seconds: float = 60.0  # a transaction open and idle this long
    idle_in_transaction_critical_seconds: float = 600.0
    blocked_warn_seconds: float = 5.0  # a session waiting this long for a lock
    blocked_critical_seconds: float = 60.0
    cache_hit_warn: float = 0.99  # share of block requests served from shared buffers, below which...
    cache_hit_critical: float = 0.90
    cache_min_blocks: int = 10_000  # block requests before the cache hit ratio is judged at all
    cache_min_seconds: float = 3600.0  # ...and seconds of statistics (since reset, server start or creation)
    xid_age_warn: float = 1.0  # transaction-ID age as a multiple of autovacuum_freeze_max_age
    xid_age_critical: float = 0.5  # transaction-ID age as a share of the 2^31 wraparound limit
    slow_query_mean_ms: float = 100.0  # pg_stat_statements: mean time of a frequent statement
    slow_query_min_calls: int = 100  # calls that make a statement frequent
    log_window_minutes: float = 15.0  # how far back the server log is searched for errors
    log_errors_warn: int = 50  # ERROR and FATAL lines in that window (any PANIC is critical)
    database_size_warn_gb: float = 50.0  # the database's size on disk (GB of 1024³ bytes)
    database_size_critical_gb: float = 500.0
    recovery_point_warn_seconds: float = 300.0  # age of the newest archived WAL with work written since
    recovery_point_critical_seconds: float = 3600.0

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ParameterError(f"threshold {f.name} must be a number of 0 or more, not {value!r}")
        for name in ("connections_warn", "connections_critical", "cache_hit_warn", "cache_hit_critical",
                     "xid_age_critical"):
            if getattr(self, name) > 1:
                raise ParameterError(f"threshold {name} is a share between 0 and 1, not {getattr(self, name)!r}")
        for warn, critical in (("connections_warn", "connections_critical"),
                               ("long_query_warn_seconds", "long_query_critical_seconds"),
                               ("idle_in_transaction_warn_seconds", "idle_in_transaction_critical_seconds"),
                               ("blocked_warn_seconds", "blocked_critical_seconds"),
                               ("cache_hit_critical", "cache_hit_warn"),
                               ("database_size_warn_gb", "database_size_critical_gb"),
                               ("recovery_point_warn_seconds", "recovery_point_critical_seconds")):
            if getattr(self, warn) > getattr(self, critical):
                raise ParameterError(f"threshold {warn} ({getattr(self, warn)}) must not exceed "
                                     f"{critical} ({getattr(self, critical)})")

    @classmethod
    def pick(cls, values: dict) -> "Thresholds":
        """Thresholds taken by name from `values` (a notebook's parameters); names not there keep their default."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})


_CHECKS: tuple[tuple[str, Callable[[str, Run], HealthCheck]], ...] = (
    ("connections", _check_connections),
    ("long-running queries", _check_long_queries),
    ("idle in transaction", _check_idle_in_transaction),
    ("blocked sessions", _check_blocked),
    ("cache hit ratio", _check_cache_hit),
    ("transaction ID wraparound", _check_wraparound),
    ("database size", _check_database_size),
    ("top queries", _check_top_queries),
    ("server log errors", _check_server_log),
    ("recovery point", _check_recovery_point),
)
CHECK_NAMES = tuple(name for name, _ in _CHECKS)


def run_checks(conn: psycopg.Connection, thresholds: Thresholds = Thresholds()) -> list[HealthCheck]:
    """Every check, in checklist order, in one read-only snapshot; a check the server refuses is `warn`, not a crash."""
    results = []
    with reading(conn):
        run = Run(conn, thresholds)
        for name, check in _CHECKS:
            try:
                with conn.transaction():  # a savepoint: a refused check leaves the snapshot to the others
                    results.append(check(name, run))
            except psycopg.Error as exc:
                results.append(HealthCheck(name, "warn", None, "", f"could not check: {first_line(exc)}",
                                           "run the check as a superuser or a member of pg_monitor"))
    return results


def recovery_point(conn: psycopg.Connection, thresholds: Thresholds = Thresholds()) -> HealthCheck:
    """The recovery point check alone (runbook 04 shows it beside the backups): see recovery_point."""
    with reading(conn):
        return _check_recovery_point("recovery point", Run(conn, thresholds))


def as_frame(checks: list[HealthCheck]) -> pd.DataFrame:
    """The checks as a table: name, status, value, threshold, detail, and the fix only where the status
    is warn or critical (a fix beside `ok` or `unknown` reads as a problem that is not there)."""
    # object dtype: values of different kinds (shares, seconds, bytes) keep their own form
    frame = pd.DataFrame([asdict(c) for c in checks], columns=[f.name for f in fields(HealthCheck)], dtype=object)
    frame["fix"] = frame["fix"].where(frame["status"].isin(["warn", "critical"]), "")
    return frame


def worst(checks: list[HealthCheck]) -> str:
    """The most severe status among `checks`: critical, warn, ok (also when there are none), or unknown when none was judged."""
    return max((c.status for c in checks), key=STATUSES.index, default="ok")


__all__ = ["STATUSES", "QUERY_WIDTH", "CHECK_NAMES", "IDLE_IN_TRANSACTION", "Thresholds", "HealthCheck",
           "run_checks", "as_frame", "worst", "sessions", "hidden_sessions", "unseen", "blocking", "idle_blockers",
           "end_sessions", "table_sizes", "cache_hit_ratios", "statistics_age", "top_queries", "recent_errors"]
