"""`prep-ops archive status|on|off`: WAL archiving for point-in-time recovery, registered on the group in cli.py."""

import json
from datetime import datetime, timezone

import click

from .cli import _target, _with_conn, cli, echo_line, echo_text
from .formatting import terminal


def _when(value) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S %z}" if value else "never"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return ""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f", {seconds / size:.1f} {unit} ago"
    return f", {seconds:.0f} s ago"


def _lines(st) -> list[str]:
    """A few readable lines about an ArchiveStatus; what could not be read says so."""
    unknown = st.unknown
    if st.on is None:
        state = unknown.get("on") or unknown.get("archive_mode", "unknown")
    else:
        how = st.archive_command or (f"archive_library {st.archive_library}" if st.archive_library else "no command")
        state = (f"on (archive_mode {st.archive_mode}, {how}, archive_timeout {st.archive_timeout} s)" if st.on
                 else f"off (archive_mode {st.archive_mode}" + (", no archive_command)" if st.archive_mode != "off" else ")"))
    lines = [f"archiving: {state}" + (" (a change waits for a restart)" if st.pending_restart else "")]
    if "archived_count" in unknown:
        lines.append(f"last archived: {unknown['archived_count']}")
    else:
        lines.append(f"last archived: {st.last_archived_wal or 'none'} ({_when(st.last_archived_time)}"
                     f"{_age(st.last_archived_age)}); {st.archived_count:,} archived since the statistics reset")
        lines.append(f"failures: {st.failed_count:,}" + (f", last {st.last_failed_wal} at {_when(st.last_failed_time)}"
                                                         if st.failed_count else ""))
    if st.archive_dir is not None:
        held = unknown.get("segments") or f"{st.segments:,} segment{'' if st.segments == 1 else 's'}, newest {st.newest_segment or 'none'}"
        lines.append(f"archive folder: {st.archive_dir} ({held})")
    else:
        lines.append(f"archive folder: {unknown.get('system_identifier', 'unknown')}")
    lines += _stream_lines(st)
    lines.append(f"recoverable window: {st.window}")
    return [terminal(line) for line in lines]  # each one line: a setting's value never makes another


def _stream_lines(st) -> list[str]:
    """What status knows of WAL streaming (pg_receivewal): the process here, the receiver the server sees,
    the newest streamed partial segment; nothing when none of them is there."""
    if st.stream_pid is None and st.receiver is None and st.newest_partial is None and "receiver" not in st.unknown:
        return []
    process = f"pg_receivewal running here (pid {st.stream_pid})" if st.stream_pid else "no pg_receivewal running here"
    if "receiver" in st.unknown:
        seen = f"receiver: {st.unknown['receiver']}"
    elif st.receiver is None:
        seen = "no receiver connected to the server"
    else:
        r = st.receiver
        lag = "unknown (needs pg_read_all_stats)" if st.stream_lag is None else f"{st.stream_lag:.2f} s"
        behind = f", {r['lag_bytes']:,.0f} bytes behind" if r.get("lag_bytes") is not None else ""
        seen = (f"receiver {r['state']} (server pid {r['pid']}): sent up to {r['sent_lsn'] or 'unknown'}, "
                f"flushed up to {r['flush_lsn'] or 'unknown'}{behind}; lag {lag}")
    lines = [f"streaming: {process}; {seen}"]
    if st.newest_partial:
        lines.append(f"newest streamed partial: {st.newest_partial} ({_when(st.newest_partial_time)}"
                     f"{_age((datetime.now(timezone.utc) - st.newest_partial_time).total_seconds())})")
    return lines


@cli.group("archive")
def archive_group() -> None:
    """WAL archiving for point-in-time recovery: each WAL segment copied into backups/wal/<system identifier>/."""


@archive_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_context
def archive_status(ctx: click.Context, as_json: bool) -> None:
    """Show whether the target's server archives WAL, the last archived segment and its age, failures and
    the recoverable window (oldest base backup to newest archived WAL). Example: prep-ops archive status"""
    from . import wal_archive

    found = _with_conn(ctx.parent, wal_archive.status)
    echo_text(json.dumps(found.as_dict(), indent=2) if as_json else "\n".join(_lines(found)))


def _show(change, as_json: bool) -> None:
    if as_json:
        echo_text(json.dumps({"changed": change.changed, "settings": change.settings, "stream": change.stream,
                               "instructions": change.instructions, "status": change.status.as_dict()}, indent=2))
        return
    if change.instructions:
        echo_text(change.instructions)
        return
    echo_line("settings changed and the server restarted" if change.changed else "already so: nothing changed")
    if change.stream:
        echo_line(f"WAL streaming (pg_receivewal): {change.stream}")
    echo_text("\n".join(_lines(change.status)))


@archive_group.command("on")
@click.option("--timeout", "timeout", type=click.IntRange(min=0), default=60, show_default=True,
              help="archive_timeout in seconds: the longest committed work waits before its segment is archived.")
@click.option("--stream", is_flag=True, help="Also stream WAL with pg_receivewal into the archive folder (recovery "
              "point: the receiver's lag); without it, the embedded server's receiver is stopped.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.pass_context
def archive_on(ctx: click.Context, timeout: int, stream: bool, as_json: bool) -> None:
    """Turn archiving on: on the embedded server, set archive_mode, archive_command and archive_timeout and
    restart it, and with --stream run pg_receivewal into the same folder (again after every start of the
    server); on another server, print what to set and where (with --stream, the pg_receivewal command to run
    as a service), changing nothing. Example: prep-ops archive on --timeout 30 --stream"""
    from . import archiving

    _show(archiving.on(_target(ctx.parent), timeout, stream), as_json)


@archive_group.command("off")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.pass_context
def archive_off(ctx: click.Context, as_json: bool) -> None:
    """Turn archiving off: on the embedded server, stop WAL streaming, reset the archive settings and restart
    it; on another server, print what to change, changing nothing. Example: prep-ops archive off"""
    from . import archiving

    _show(archiving.off(_target(ctx.parent)), as_json)
