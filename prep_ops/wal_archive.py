"""The WAL archive: where each WAL segment of a cluster is kept for point-in-time recovery.

Layout (the contract every part of point-in-time recovery follows): `<root>/<system identifier>/`, one
file per archived segment (and timeline history file) under PostgreSQL's own name, where <root> is
$PREP_OPS_WAL_DIR, else `wal/` in the backups folder. A cluster's WAL never goes into another's folder.

`status`'s recoverable window is the one recover uses: from the oldest listed base backup's end
(base_backup.listing: complete backups of this cluster only) to the newest segment file in the folder
(not pg_stat_archiver's last archived, which may have gone elsewhere), or the newest `<segment>.partial`
pg_receivewal streams (wal_stream) whose complete segment is not there yet; an archive_command that does
not name the folder is said in the window. With streaming, status also shows the receiver as the server
sees it (pg_stat_replication) and the pg_receivewal process on this machine writing into the folder.
"""

import os
import re
import shlex
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import psycopg

from .errors import first_line
from .manifest import backups_dir
from .sqlfiles import load


def root() -> Path:
    """The folder holding every cluster's WAL archive: $PREP_OPS_WAL_DIR, else backups/wal."""
    return Path(os.environ.get("PREP_OPS_WAL_DIR") or backups_dir() / "wal")


def archive_dir(system_identifier: str | int) -> Path:
    """The WAL archive of the cluster `system_identifier` (digits only: never a path out of root())."""
    text = str(system_identifier)
    if not text.isdigit():
        from .errors import ParameterError

        raise ParameterError(f"not a cluster system identifier: {text[:40]!r}")
    return root() / text


def system_identifier(conn: psycopg.Connection) -> str:
    """The system identifier of the cluster `conn` is connected to (pg_control_system), as text: the name
    of its folder in the archive (archive_dir)."""
    return conn.execute("SELECT system_identifier::text FROM pg_control_system()").fetchone()[0]


# --- status -------------------------------------------------------------------------------------
SEGMENT = re.compile(r"[0-9A-F]{24}")  # a WAL segment's file name: timeline, log, segment (hex)
PARTIAL = re.compile(r"[0-9A-F]{24}\.partial")  # the segment pg_receivewal is streaming into
BASE_MANIFEST = "prep-ops-base.json"  # in each base backup's folder: <backups dir>/base/<sysid>/<name>/


@dataclass
class ArchiveStatus:
    """Whether and how a server archives its WAL, and what prep-ops' archive of it holds.

    A value the connecting role may not read is None, with the reason in `unknown[<field>]`
    ("unknown: <why>"), never a guess.
    """

    archive_mode: str | None = None
    archive_command: str | None = None
    archive_library: str | None = None  # None on PostgreSQL 14 and older, which have no archive_library
    archive_timeout: int | None = None  # seconds; 0: no forced switch
    pending_restart: bool = False  # a setting was changed and needs a restart to take effect
    on: bool | None = None
    archived_count: int | None = None
    last_archived_wal: str | None = None
    last_archived_time: datetime | None = None
    last_archived_age: float | None = None  # seconds, by the server's clock
    failed_count: int | None = None
    last_failed_wal: str | None = None
    last_failed_time: datetime | None = None
    system_identifier: str | None = None
    archive_dir: Path | None = None
    segments: int | None = None  # WAL segment files in archive_dir (None: the folder is not on this machine)
    newest_segment: str | None = None
    newest_segment_time: datetime | None = None  # when the newest segment file in archive_dir was written
    command_writes_elsewhere: bool | None = None  # archiving on with a command that does not name archive_dir
    oldest_base_backup: datetime | None = None  # when the oldest base backup of this cluster finished
    newest_partial: str | None = None  # the newest streamed `<segment>.partial` whose segment is not archived
    newest_partial_time: datetime | None = None  # when it was last written
    stream_pid: int | None = None  # a pg_receivewal on this machine streaming into archive_dir
    receiver: dict | None = None  # the server's view of prep-ops' receiver (wal_stream.receiver_row), None: none
    stream_lag: float | None = None  # seconds of committed work the receiver does not hold yet (0: none)
    window: str = ""  # the recoverable window, in words
    config_file: str | None = None
    unknown: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """The status as JSON-ready values (times in ISO 8601, the system identifier a decimal string)."""
        out = {}
        for key, value in asdict(self).items():
            out[key] = value.isoformat() if isinstance(value, datetime) else str(value) if isinstance(value, Path) else value
        return out


def _unknown(exc: Exception) -> str:
    return f"unknown: {first_line(exc)}"


def status(conn: psycopg.Connection) -> ArchiveStatus:
    """The archiving status of the server `conn` is connected to: settings, pg_stat_archiver, the archive
    folder prep-ops keeps for the cluster and the recoverable window (oldest base backup to newest
    archived WAL). Reads only; what the role may not read is "unknown: <why>"."""
    found = ArchiveStatus()
    _read_settings(conn, found)
    _read_archiver(conn, found)
    try:
        with conn.transaction():
            found.system_identifier = system_identifier(conn)
    except psycopg.Error as exc:
        found.unknown["system_identifier"] = _unknown(exc)
    if found.system_identifier is not None:
        found.archive_dir = archive_dir(found.system_identifier)
        try:
            files = {p.name: p for p in found.archive_dir.iterdir()}
        except FileNotFoundError:
            found.unknown["segments"] = "unknown: no such folder on this machine"
        except OSError as exc:
            found.unknown["segments"] = f"unknown: {found.archive_dir}: {exc.strerror}"
        else:
            _read_folder(files, found)
        found.oldest_base_backup = oldest_base_backup(found.system_identifier)
        if found.on and found.archive_command:
            found.command_writes_elsewhere = not _names_folder(found.archive_command, found.archive_dir)
        from . import wal_stream  # not at the top: wal_stream reaches back here

        found.stream_pid = wal_stream.local_receiver(found.archive_dir)
    _read_receiver(conn, found)
    found.window = _window(found)
    return found


def modified(path: Path) -> float | None:
    """When the file `path` was last written, or None when it is gone: a `.partial` pg_receivewal renamed
    to its segment after the folder was listed."""
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


def _read_folder(files: dict[str, Path], found: ArchiveStatus) -> None:
    """The segments and the newest streamed `.partial` among the archive folder's `files` (name: path)."""
    names = sorted(n for n in files if SEGMENT.fullmatch(n))
    found.segments, found.newest_segment = len(names), (names[-1] if names else None)
    times = [t for t in map(modified, (files[n] for n in names)) if t is not None]
    if times:  # what recover reads: the folder's newest file, not pg_stat_archiver's word
        found.newest_segment_time = datetime.fromtimestamp(max(times), timezone.utc)
    partials = sorted(n for n in files if PARTIAL.fullmatch(n) and n[:24] not in files)  # else superseded
    for name in reversed(partials):  # the newest one still there
        written = modified(files[name])
        if written is not None:
            found.newest_partial, found.newest_partial_time = name, datetime.fromtimestamp(written, timezone.utc)
            break


def _read_settings(conn: psycopg.Connection, found: ArchiveStatus) -> None:
    with conn.transaction():
        rows = {name: (setting, pending) for name, setting, pending in conn.execute(load("wal_archive", "settings"))}
    why = "unknown: reading it needs pg_read_all_settings (or superuser)"
    for name in ("archive_mode", "archive_command", "archive_library", "archive_timeout", "config_file"):
        if name in rows:
            setting, pending = rows[name]
            setattr(found, name, int(setting) if name == "archive_timeout" else setting)
            found.pending_restart |= bool(pending)
        elif name != "archive_library" or conn.info.server_version >= 150000:
            found.unknown[name] = why
    if found.archive_mode is None:
        return
    if found.archive_mode == "off":
        found.on = False
    elif "archive_command" in found.unknown:
        found.unknown["on"] = f"unknown: archive_mode is {found.archive_mode}, the command is unreadable ({why[9:]})"
    else:  # archive_mode on with neither a command nor a library set archives nothing (WAL piles up)
        found.on = bool(found.archive_command or found.archive_library)


def _read_archiver(conn: psycopg.Connection, found: ArchiveStatus) -> None:
    try:
        with conn.transaction():
            row = conn.execute(load("wal_archive", "archiver")).fetchone()
    except psycopg.Error as exc:
        for name in ("archived_count", "last_archived_wal", "failed_count"):
            found.unknown[name] = _unknown(exc)
        return
    (found.archived_count, found.last_archived_wal, found.last_archived_time, found.last_archived_age,
     found.failed_count, found.last_failed_wal, found.last_failed_time) = row


def _read_receiver(conn: psycopg.Connection, found: ArchiveStatus) -> None:
    from . import wal_stream

    try:
        found.receiver = wal_stream.receiver_row(conn)
    except psycopg.Error as exc:
        found.unknown["receiver"] = _unknown(exc)
        return
    if found.receiver is not None:
        found.stream_lag = wal_stream.lag_seconds(found.receiver)


def base_backups_dir(system_identifier: str | int) -> Path:
    """The folder of the base backups of cluster `system_identifier`: <backups dir>/base/<sysid>/."""
    return backups_dir() / "base" / archive_dir(system_identifier).name  # archive_dir checks the digits


def oldest_base_backup(system_identifier: str | int) -> datetime | None:
    """When the oldest base backup of cluster `system_identifier` finished, or None when there is none:
    the complete backups with a valid manifest of that cluster only (base_backup.listing), as recover
    reads them (no partial copy, no other cluster's manifest)."""
    from . import base_backup  # not at the top: base_backup's imports reach back here

    backups = base_backup.listing(archive_dir(system_identifier).name)
    return min((datetime.fromisoformat(b.manifest["finished"]) for b in backups), default=None)


def _names_folder(command: str, folder: Path) -> bool:
    """Whether the archive command writes into `folder`: its path (plain, or quoted as prep-ops writes it)."""
    quoted = shlex.quote(str(folder) + "/").replace("%", "%%")
    return f"{folder}/" in command or quoted in command or f"{folder}/".replace("%", "%%") in command


def _window(found: ArchiveStatus) -> str:
    """From the oldest base backup's end to the newest segment in the archive folder (what recover reads)."""
    if found.system_identifier is None:
        return "unknown: the cluster's system identifier is unreadable"
    elsewhere = (f"; the archive_command does not write into {found.archive_dir}, the only folder recovery "
                 "reads" if found.command_writes_elsewhere else "")
    if found.oldest_base_backup is None:
        return "no base backup" + elsewhere
    oldest = found.oldest_base_backup.isoformat()
    newest = max(filter(None, (found.newest_segment_time, found.newest_partial_time)), default=None)
    if newest is None:
        return f"no WAL in {found.archive_dir} (oldest base backup {oldest})" + elsewhere
    if newest < found.oldest_base_backup:
        return (f"no WAL archived since the oldest base backup ({oldest}): recovery reaches the backup's end "
                "only" + elsewhere)
    streamed = f" (streamed, {found.newest_partial})" if newest == found.newest_partial_time else ""
    return f"{oldest} to {newest.isoformat()}{streamed}" + elsewhere
