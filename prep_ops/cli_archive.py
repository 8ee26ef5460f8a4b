"""`prep-ops archive status|on|off`: WAL archiving for point-in-time recovery, registered on the group in cli.py."""

import json

import click

from .cli import _target, _with_conn, cli


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
    lines.append(f"recoverable window: {st.window}")
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
    click.echo(json.dumps(found.as_dict(), indent=2) if as_json else "\n".join(_lines(found)))


def _show(change, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"changed": change.changed, "settings": change.settings,
                               "instructions": change.instructions, "status": change.status.as_dict()}, indent=2))
        return
    if change.instructions:
        click.echo(change.instructions)
        return
    click.echo("settings changed and the server restarted" if change.changed else "already so: nothing changed")
    click.echo("\n".join(_lines(change.status)))


@archive_group.command("on")
@click.option("--timeout", "timeout", type=click.IntRange(min=0), default=60, show_default=True,
              help="archive_timeout in seconds: the longest committed work waits before its segment is archived.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.pass_context
def archive_on(ctx: click.Context, timeout: int, as_json: bool) -> None:
    """Turn archiving on: on the embedded server, set archive_mode, archive_command and archive_timeout and
    restart it; on another server, print what to set and where, changing nothing. Example: prep-ops archive on --timeout 30"""
    from . import archiving

    _show(archiving.on(_target(ctx.parent), timeout), as_json)


@archive_group.command("off")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.pass_context
def archive_off(ctx: click.Context, as_json: bool) -> None:
    """Turn archiving off: on the embedded server, reset the archive settings and restart it; on another
    server, print what to change, changing nothing. Example: prep-ops archive off"""
    from . import archiving

    _show(archiving.off(_target(ctx.parent)), as_json)
