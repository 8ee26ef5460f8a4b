"""The recovery point: how much committed work a loss of the server would take with it now.

With WAL archiving on, everything up to the newest archived segment can be replayed (point-in-time
recovery, `prep-ops recover`); what was written since waits in the current segment. The check's value
is the age of the newest archived segment when WAL was written after it (an upper bound of the work at
risk), and 0 when nothing was written since. Where pg_receivewal streams the WAL into the archive
(wal_stream: a receiver of that name in pg_stat_replication), the streamed partial segment counts too:
the value is then the receiver's lag (0 when it flushed all the server flushed). The name alone proves
nothing (a leftover receiver may write elsewhere): it counts only when the segment of its flush position
is in this cluster's archive folder (and, on the embedded server, a receiver here streams into it); else
the archive's age decides, at least warn, and the detail says why. Archiving that fails is
critical whatever the age, streaming or not: WAL piles up in pg_wal and no new complete segment becomes
recoverable. With archiving off there is no point-in-time
recovery: not judged (`unknown`), and the detail says what the recovery point is then (the newest
logical backup, runbook 04) and how to turn archiving on.
"""

from dataclasses import replace

import psycopg

from .. import wal_archive
from ..sqlfiles import load
from ._check import HealthCheck, Run, grade, seconds

FIX = "see the server log for the archive_command's error, then `prep-ops archive status`"


def _written_since(conn: psycopg.Connection, last_archived_wal: str) -> bool:
    """Whether WAL was written after segment `last_archived_wal` (on a standby: cannot tell, say yes)."""
    with conn.transaction():
        current = conn.execute(load("health", "current_wal_file")).fetchone()[0]
    return current is None or current > last_archived_wal[:24]


def _check_recovery_point(name: str, run: Run) -> HealthCheck:
    t = run.thresholds
    found = wal_archive.status(run.conn)
    threshold = f"warn ≥ {seconds(t.recovery_point_warn_seconds)}, critical ≥ {seconds(t.recovery_point_critical_seconds)}"
    if found.on is None:
        why = found.unknown.get("on") or found.unknown.get("archive_mode") or "archive_mode is unreadable"
        return HealthCheck(name, "unknown", None, threshold, f"WAL archiving: {why}")
    if not found.on and found.archive_mode not in (None, "off"):  # on, with nothing to archive with
        return HealthCheck(name, "critical", None, threshold,
                           f"archive_mode is {found.archive_mode} but neither archive_command nor archive_library "
                           "is set: WAL piles up in pg_wal and nothing is archived", FIX)
    if not found.on:
        return HealthCheck(name, "unknown", None, threshold,
                           "WAL archiving is off: no point-in-time recovery; a loss takes everything since the "
                           "newest logical backup (runbook 04 says its age); `prep-ops archive on` turns it on")
    failing = found.last_failed_time is not None and (found.last_archived_time is None
                                                      or found.last_failed_time > found.last_archived_time)
    if failing:
        return HealthCheck(name, "critical", found.last_archived_age, threshold,
                           f"archiving fails: {found.last_failed_wal} at {found.last_failed_time:%Y-%m-%d %H:%M:%S %z} "
                           f"({found.failed_count:,} failures); nothing newer is recoverable", FIX)
    unproven = _stream_problem(run.conn, found) if found.receiver is not None else None
    if found.receiver is not None and found.stream_lag is not None and unproven is None:
        lag = found.stream_lag
        return HealthCheck(
            name, grade(lag, t.recovery_point_warn_seconds, t.recovery_point_critical_seconds), lag, threshold,
            f"pg_receivewal streams the WAL (flushed up to {found.receiver['flush_lsn']}, "
            f"{found.receiver['lag_bytes']:,.0f} bytes behind the server): {seconds(lag)} of committed work "
            f"not streamed yet; archive_command archives each complete segment as well",
            "see the receiver's log (prep-ops archive status)")
    judged = _by_archive_age(name, run, found, threshold)
    if unproven is None:
        return judged
    status = judged.status if judged.status == "critical" else "warn"
    return replace(judged, status=status, detail=f"pg_receivewal not counted ({unproven}); {judged.detail}",
                   fix=judged.fix or "see the receiver's log (prep-ops archive status); prep-ops archive on --stream")


def _stream_problem(conn: psycopg.Connection, found) -> str | None:
    """Why the receiver the server names is not counted (wal_stream.streaming_problem: its flush position's
    segment is not in this cluster's archive folder, or, on the embedded server, no receiver here
    streams into it), or None."""
    from .. import embedded, wal_stream

    if found.archive_dir is None:
        return "the cluster's archive folder is unknown"
    here = embedded.status()
    local = here.running and here.socket_dir is not None and conn.info.host == str(here.socket_dir)
    return wal_stream.streaming_problem(conn, found.archive_dir, local)


def _by_archive_age(name: str, run: Run, found, threshold: str) -> HealthCheck:
    t = run.thresholds
    if found.last_archived_wal is None:
        return HealthCheck(name, "warn", None, threshold, "archiving is on but nothing was archived yet",
                           "SELECT pg_switch_wal() archives the current segment; then `prep-ops archive status`")
    if not _written_since(run.conn, found.last_archived_wal):
        return HealthCheck(name, "ok", 0.0, threshold,
                           f"nothing written since {found.last_archived_wal} was archived: no committed work at risk")
    age = float(found.last_archived_age or 0.0)
    return HealthCheck(
        name, grade(age, t.recovery_point_warn_seconds, t.recovery_point_critical_seconds), age, threshold,
        f"work since {found.last_archived_wal}, archived {seconds(age)} ago, is not archived yet "
        f"(archive_timeout {seconds(found.archive_timeout) if found.archive_timeout else 'off'})",
        "lower archive_timeout (prep-ops archive on --timeout 60), or stream WAL with pg_receivewal")
