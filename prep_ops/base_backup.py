"""Base backups: pg_basebackup of the whole cluster, in tar format (gzip level 1) with PostgreSQL's
backup_manifest and the WAL needed to make it consistent (-X stream), plus prep-ops' own manifest.

Layout: `<backups dir>/base/<system identifier>/<UTC stamp>-<6 hex>/` holding base.tar.gz,
pg_wal.tar.gz, backup_manifest and MANIFEST (prep-ops-base.json): the source's identity (system
identifier, timeline), start and end LSN (from backup_manifest's WAL-Ranges), times taken around
pg_basebackup, the server's major, the backup it is incremental to (or null), and the size and SHA-256
of every file. A backup is written under a dot-name (`.<name>.partial-<pid>`) and renamed when complete,
so a killed one is never listed; the next backup removes what a dead process left. pg_basebackup gets
a parent-death signal (a killed take leaves no WAL streamer holding a slot); one still running on a
dead process's folder anyway is ended by the next take before the folder is removed.

A manifest is data: `manifest_problem` checks every field's type, and no file name may lead out of the
backup's folder. Restoring a base backup is recovery_cluster's; `--incremental` (PostgreSQL 17 and later)
takes only what changed since the previous base backup (summarize_wal must be on).
"""

import json
import os
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

import psycopg

from . import orphans, pg_binaries
from .backup import libpq_env
from .db import Target, server_version
from .errors import BackupError, ParameterError, program_error
from .manifest import _LSN, _check_file, _json_type, _manifest_text, backups_dir, file_hashes
from .private_cluster import alive
from .sqlfiles import load

MANIFEST = "prep-ops-base.json"
TARS = ("base.tar.gz", "pg_wal.tar.gz")  # what pg_basebackup -Ft -z writes without tablespaces
_NAME = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{6}")
_FIELDS = {"kind": str, "system_identifier": str, "timeline": int, "start_lsn": str, "end_lsn": str,
           "started": str, "finished": str, "server_major": int, "files": dict}


@dataclass
class BaseBackup:
    path: Path
    manifest: dict

    @property
    def name(self) -> str:
        return self.path.name


def root(directory: Path | None = None) -> Path:
    """The folder of every cluster's base backups: <backups dir>/base."""
    return (Path(directory) if directory else backups_dir()) / "base"


def source_of(conn: psycopg.Connection) -> dict:
    """The cluster the connection is on: system identifier (digits), timeline, major, bootstrap superuser."""
    sysid, timeline, superuser = conn.execute(load("pitr", "cluster_identity")).fetchone()
    if isinstance(superuser, bytes):  # a SQL_ASCII cluster's names come as bytes
        superuser = superuser.decode("utf-8", "replace")
    return {"system_identifier": str(sysid), "timeline": int(timeline), "server_major": server_version(conn),
            "superuser": superuser}


def lsn_value(text: str) -> int:
    """An LSN ('16/B374D848') as a number; ParameterError for anything else."""
    if not isinstance(text, str) or not _LSN.fullmatch(text.upper()):
        raise ParameterError(f"not a WAL location (LSN) like 0/1A2B3C4D: {str(text)[:40]!r}")
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def lsn_text(value: int) -> str:
    """A WAL location as PostgreSQL writes it ('16/B374D848'); lsn_value's inverse."""
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


# --- taking one ------------------------------------------------------------------------------------
def take(conn: psycopg.Connection, target: Target, *, directory: Path | None = None,
         incremental: bool = False) -> BaseBackup:
    """A base backup of the cluster `conn` is on (pg_basebackup of its major, connecting as `target`'s
    user); with `incremental`, only what changed since the newest base backup of the cluster."""
    source = source_of(conn)
    major = source["server_major"]
    previous = None
    if incremental:
        if major < 17:
            raise ParameterError(f"an incremental base backup needs PostgreSQL 17 or later; this server is {major}")
        if conn.execute("SHOW summarize_wal").fetchone()[0] != "on":
            raise ParameterError("an incremental base backup needs summarize_wal = on on the server "
                                 "(ALTER SYSTEM SET summarize_wal = on; SELECT pg_reload_conf()), then a full base backup")
        found = listing(source["system_identifier"], directory)
        if not found:
            raise ParameterError("no base backup of this cluster to be incremental to: take a full one first")
        previous = found[0]
    folder = root(directory) / source["system_identifier"]
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    remove_partial(folder)
    started = datetime.now(timezone.utc)
    name = f"{started:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
    work = folder / f".{name}.partial-{os.getpid()}"
    url, env = libpq_env(target)
    command = [str(pg_binaries.program("pg_basebackup", major)), "-D", str(work), "-Ft", "--compress=gzip:1",
               "-X", "stream", "--checkpoint=fast", "--no-password", "-d", url]
    if previous is not None:
        command.append(f"--incremental={previous.path / 'backup_manifest'}")
    try:
        # a killed take leaves no pg_basebackup, nor the WAL streamer it forks (its own process group)
        done = subprocess.run(orphans.as_group(command), env={**env, "LC_ALL": "C"}, capture_output=True, text=True,
                              start_new_session=True, preexec_fn=orphans.die_with_parent())
        if done.returncode != 0:  # its error line: the last one says only that it removes the folder
            raise BackupError(f"pg_basebackup failed: {program_error(done.stderr)}")
        finished = datetime.now(timezone.utc)
        extra = sorted({p.name for p in work.iterdir()} - {"backup_manifest", *TARS})
        if extra:  # <oid>.tar.gz: a tablespace, which recovery_cluster cannot place
            raise BackupError(f"the cluster has tablespaces ({', '.join(extra)[:80]}): base backups of "
                              "clusters with tablespaces are not supported")
        ranges = json.loads((work / "backup_manifest").read_text())["WAL-Ranges"]
        manifest = {"kind": "base", "system_identifier": source["system_identifier"],
                    "timeline": int(ranges[-1]["Timeline"]), "start_lsn": ranges[0]["Start-LSN"],
                    "end_lsn": ranges[-1]["End-LSN"], "started": started.isoformat(),
                    "finished": finished.isoformat(), "server_major": major, "superuser": source["superuser"],
                    "incremental_of": previous.name if previous else None, "files": file_hashes(work)}
        for item in [work, *work.iterdir()]:
            item.chmod(0o700 if item.is_dir() else 0o600)
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2))
        (work / MANIFEST).chmod(0o600)
        work.rename(folder / name)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return BaseBackup(folder / name, manifest)


def remove_partial(folder: Path) -> list[Path]:
    """Remove the unfinished backups in `folder` whose process is gone (a killed backup), ending first any
    pg_basebackup still writing there (its -D is that folder); returns them."""
    removed = []
    for stale in folder.glob(".*.partial-*"):
        pid = stale.name.rpartition("-")[2]
        if pid.isdigit() and not alive(int(pid)):
            orphans.terminate("pg_basebackup", stale)
            shutil.rmtree(stale, ignore_errors=True)
            removed.append(stale)
    return removed


# --- reading them ----------------------------------------------------------------------------------
def is_base_backup(path: Path) -> bool:
    """Whether `path` is a folder holding a prep-ops base backup manifest."""
    return Path(path).is_dir() and (Path(path) / MANIFEST).is_file()


def read(path: Path) -> dict:
    """The validated prep-ops manifest of the base backup folder `path`; BackupError saying what is wrong."""
    path = Path(path)
    file = path / MANIFEST
    if not file.is_file() and not file.is_symlink():
        raise BackupError(f"{path} is not a base backup: it holds no {MANIFEST}")
    try:  # as a logical backup's: only inside its folder, and at most MANIFEST_MAX_BYTES of it
        manifest = json.loads(_manifest_text(file))
    except json.JSONDecodeError as exc:
        raise BackupError(f"{file} is not valid JSON ({exc})") from None
    problem = manifest_problem(manifest)
    if problem:
        raise BackupError(f"{file} is not a prep-ops base backup manifest: {problem}")
    return manifest


def manifest_problem(manifest) -> str | None:
    """What keeps `manifest` (parsed JSON) from being a base backup manifest, or None."""
    if not isinstance(manifest, dict):
        return f"it holds {_json_type(manifest)}, not an object"
    for key, kind in _FIELDS.items():
        if not isinstance(manifest.get(key), kind) or isinstance(manifest.get(key), bool):
            return f"its {key!r} is {_json_type(manifest.get(key))}, not {kind.__name__}"
    if manifest["kind"] != "base":
        return f"its kind is {manifest['kind'][:20]!r}, not 'base'"
    if not manifest["system_identifier"].isdigit():
        return "its system_identifier is not digits"
    for key in ("start_lsn", "end_lsn"):
        if not _LSN.fullmatch(manifest[key]):
            return f"its {key!r} is not an LSN"
    for key in ("started", "finished"):
        try:
            if datetime.fromisoformat(manifest[key]).tzinfo is None:
                return f"its {key!r} has no time zone"
        except ValueError:
            return f"its {key!r} is not a date and time"
    previous = manifest.get("incremental_of")
    if previous is not None and not (isinstance(previous, str) and _NAME.fullmatch(previous)):
        return "its 'incremental_of' is not the name of a base backup folder"
    if not isinstance(manifest.get("superuser", ""), str):
        return "its 'superuser' is not a string"
    if set(manifest["files"]) != {"backup_manifest", *TARS}:
        return f"it lists {sorted(manifest['files'])[:5]}, not backup_manifest and {' and '.join(TARS)}"
    for name, entry in manifest["files"].items():
        if len(PurePosixPath(name).parts) != 1 or not (
                isinstance(entry, dict) and isinstance(entry.get("bytes"), int) and isinstance(entry.get("sha256"), str)):
            return f"file {name[:40]!r} has no bytes and sha256"
    return None


def listing(system_identifier: str, directory: Path | None = None) -> list[BaseBackup]:
    """The complete base backups of cluster `system_identifier` with a valid manifest, newest first.
    Only its own folder is read: another cluster's backups are never listed."""
    folder = root(directory) / str(int(system_identifier))
    found = []
    for path in folder.iterdir() if folder.is_dir() else []:
        if not _NAME.fullmatch(path.name) or path.is_symlink() or not path.is_dir():  # a link leads out of the folder
            continue
        try:
            manifest = read(path)
        except BackupError:
            continue
        if manifest["system_identifier"] == folder.name:
            found.append(BaseBackup(path, manifest))
    return sorted(found, key=lambda b: b.manifest["finished"], reverse=True)


def chain(backup: BaseBackup) -> list[BaseBackup]:
    """The backups a restore of `backup` needs, oldest (the full one) first: itself, or for an
    incremental backup the ones it builds on, from the same cluster's folder only."""
    links = [backup]
    while links[0].manifest.get("incremental_of"):
        previous = links[0].path.parent / links[0].manifest["incremental_of"]
        if any(link.path.name == previous.name for link in links):  # a manifest is data: it may loop
            raise BackupError(f"{backup.name}'s chain of incremental backups loops at {previous.name}")
        if not is_base_backup(previous):
            raise BackupError(f"{backup.name} is incremental to {previous.name}, which is missing")
        manifest = read(previous)
        if manifest["system_identifier"] != backup.manifest["system_identifier"]:
            raise BackupError(f"{previous.name} is of another cluster")
        links.insert(0, BaseBackup(previous, manifest))
    return links


def check_files(path: Path, manifest: dict) -> list[dict]:
    """Report rows: each file of the manifest present in the folder with its recorded size and SHA-256."""
    rows = []
    for name, recorded in manifest["files"].items():
        rows += _check_file(Path(path), name, recorded)
    return rows
