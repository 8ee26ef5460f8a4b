"""Retention of base backups (`backup --kind base --keep N`): the newest N of one cluster stay, with every
backup an incremental one among them builds on, and the archived WAL none of them needs goes.

Only the cluster's own folders are ever read or changed: <backups dir>/base/<system identifier>/ and
wal_archive.archive_dir(<system identifier>). A folder there that is not a complete base backup of that
cluster (no valid manifest, another cluster's identity, a backup in progress) is never removed.

Order: backups first, oldest first, each renamed to a `.<name>.partial-<pid>` first (a killed removal
leaves a partial the next base backup removes, never a half backup that is listed), then the WAL. A kill
between the two leaves WAL nothing needs, removed by the next prune; never a kept backup without its WAL.

The WAL: pg_archivecleanup of the cluster's major on its archive folder, with the oldest kept backup's
start segment: the archive's `.backup` history file of that backup when it is there (PostgreSQL wrote the
segment's name into it), else the name computed from its start LSN on its start timeline.
pg_archivecleanup removes the segments before that one (of any timeline), never a `.history` file; the
older `.backup` history files go too (-b from PostgreSQL 17 on; before, by the same rule here).
"""

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from . import base_backup, pg_binaries, wal_archive
from .errors import BackupError, ParameterError
from .pitr import segment_name, wal_segment_bytes

_BACKUP_FILE = re.compile(r"[0-9A-F]{24}\.[0-9A-F]{8}\.backup")  # a backup history file
_START = re.compile(r"^START WAL LOCATION: ([0-9A-F]+/[0-9A-F]+) \(file ([0-9A-F]{24})\)$", re.M)


@dataclass
class Pruned:
    """What a prune kept and removed (folder names, WAL file names) and where the WAL cleanup started."""

    kept: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    wal_removed: list[str] = field(default_factory=list)
    oldest_wal_kept: str | None = None


def prune(conn: psycopg.Connection, keep: int, *, directory: Path | None = None) -> Pruned:
    """Keep the newest `keep` base backups of the cluster `conn` is on (and the backups their incremental
    chains need), remove the older ones and the archived WAL only they needed; returns what was done."""
    source = base_backup.source_of(conn)
    return prune_cluster(source["system_identifier"], keep, major=source["server_major"],
                         segment_bytes=wal_segment_bytes(conn), directory=directory)


def prune_cluster(system_identifier: str, keep: int, *, major: int, segment_bytes: int,
                  directory: Path | None = None) -> Pruned:
    """prune() for the cluster `system_identifier` (PostgreSQL `major`, WAL segments of `segment_bytes`)."""
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ParameterError(f"--keep must be a whole number of 1 or more, not {keep!r}")
    backups = base_backup.listing(system_identifier, directory)  # newest first, this cluster's only
    needed: dict[Path, base_backup.BaseBackup] = {}
    for kept in backups[:keep]:
        try:
            links = base_backup.chain(kept)
        except BackupError as exc:
            raise BackupError(f"nothing removed: {exc}") from None
        needed |= {link.path: link for link in links}
    done = Pruned(kept=sorted(p.name for p in needed))
    for old in reversed(backups):  # oldest first
        if old.path not in needed and _remove_backup(old.path):
            done.removed.append(old.name)
    if not needed:
        return done
    oldest = min(needed.values(), key=lambda b: base_backup.lsn_value(b.manifest["start_lsn"]))
    archive = wal_archive.archive_dir(system_identifier)
    if archive.is_dir():
        done.oldest_wal_kept = start_segment(oldest, archive, segment_bytes)
        done.wal_removed = _archive_cleanup(archive, done.oldest_wal_kept, major)
    return done


def _remove_backup(path: Path) -> bool:
    """Remove the backup folder `path`; False when it is already gone (another prune took it)."""
    doomed = path.parent / f".{path.name}.partial-{os.getpid()}"  # never listed again, whatever happens next
    try:
        path.rename(doomed)
    except FileNotFoundError:
        return False
    shutil.rmtree(doomed)
    return True


def start_segment(backup: "base_backup.BaseBackup", archive: Path, segment_bytes: int) -> str:
    """The name of the WAL segment `backup` starts in: from its `.backup` history file in `archive` when
    one records its start LSN, else computed from the start LSN on the backup's start timeline."""
    start = backup.manifest["start_lsn"]
    for history in sorted(archive.glob("*.backup")):
        try:
            found = _START.search(history.read_text(errors="replace"))
        except OSError:
            continue
        if found and base_backup.lsn_value(found.group(1)) == base_backup.lsn_value(start):
            return found.group(2)
    return segment_name(_start_timeline(backup), base_backup.lsn_value(start), segment_bytes)


def _start_timeline(backup: "base_backup.BaseBackup") -> int:
    """The timeline the backup started on: PostgreSQL's backup_manifest's first WAL range, else the manifest's."""
    try:
        ranges = json.loads((backup.path / "backup_manifest").read_text())["WAL-Ranges"]
        return int(ranges[0]["Timeline"])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return int(backup.manifest["timeline"])


def _archive_cleanup(archive: Path, oldest_kept: str, major: int) -> list[str]:
    """Run pg_archivecleanup on `archive` up to (not including) `oldest_kept`; the files it removed."""
    program = str(pg_binaries.program("pg_archivecleanup", major))
    flags = ["-b"] if major >= 17 else []  # older .backup history files too (PostgreSQL 17 and later)
    listed = subprocess.run([program, "-n", *flags, str(archive), oldest_kept], capture_output=True, text=True,
                            env={**os.environ, "LC_ALL": "C"})
    if listed.returncode == 0:
        done = subprocess.run([program, *flags, str(archive), oldest_kept], capture_output=True, text=True,
                              env={**os.environ, "LC_ALL": "C"})
    if listed.returncode != 0 or done.returncode != 0:
        said = ((listed if listed.returncode else done).stderr.strip().splitlines() or ["?"])[-1]
        raise BackupError(f"pg_archivecleanup on {archive} failed: {said}")
    removed = [Path(line).name for line in listed.stdout.splitlines() if line.strip()]
    if not flags:  # before 17 pg_archivecleanup keeps .backup history files: the same rule as its -b
        for history in archive.glob("*.backup"):
            if _BACKUP_FILE.fullmatch(history.name) and history.name[8:24] < oldest_kept[8:]:
                history.unlink(missing_ok=True)
                removed.append(history.name)
    return sorted(removed)
