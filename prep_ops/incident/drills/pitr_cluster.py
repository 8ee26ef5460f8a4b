"""A private cluster of the embedded binaries with WAL archiving on: where the point-in-time drill runs
(and the tests of base backups and recovery), so neither CI nor a user's server needs any setting.

`make(folder)` runs initdb in `folder` (marked MARKER, so only folders prep-ops made are ever removed),
archives with prep-ops' own archive command (archive_wal.py: atomic, never over a different file) into
wal_archive.archive_dir(<its system identifier>), listens on a Unix socket of its own only, and starts it
with one database (`app` unless told). `remove` stops it at once and removes its folder and its WAL
archive. A drill's cluster lives in `home()/<stamp>-<pid>-<hex>`: when its run is killed, the next one
stops and removes it (`remove_stale`), archive included (the folder says where that is).
"""

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import psycopg

from ... import archiving, embedded, wal_archive
from ...db import Target, libpq_url
from ...recovery_cluster import _alive, _owner, _stop_server, conf_string, hand_over, run_server_program

MARKER = "PREP_OPS_PITR_CLUSTER"  # in the folder: prep-ops made it and may remove it
_ARCHIVE_NOTE = "archive"  # in the folder: the path of its WAL archive, removed with it
_SOCKET_NOTE = "socket_dir"  # in the folder: a socket folder in /tmp when folder/sock is too long a path


@dataclass
class SourceCluster:
    folder: Path
    data: Path
    system_identifier: str
    archive: Path
    target: Target  # its database (`app` unless told)
    socket_dir: Path

    def url(self, database: str | None = None) -> str:
        return libpq_url({"user": "postgres", "dbname": database or self.database, "host": str(self.socket_dir)})

    @property
    def database(self) -> str:
        return psycopg.conninfo.conninfo_to_dict(self.target.url)["dbname"]

    @property
    def server(self) -> Target:
        """Its maintenance database, `postgres`."""
        return self.target.with_database("postgres")

    def connect(self, database: str | None = None) -> psycopg.Connection:
        return psycopg.connect(self.url(database), autocommit=True)


def home() -> Path:
    """Where drills' archiving clusters live: `pitr-drills/` beside the embedded server's data directory."""
    return embedded.data_dir().parent / "pitr-drills"


def new_folder() -> Path:
    """A fresh folder for one cluster under home(), named after this process (see remove_stale)."""
    home().mkdir(parents=True, exist_ok=True, mode=0o700)
    folder = home() / f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{os.getpid()}-{secrets.token_hex(3)}"
    folder.mkdir(mode=0o700)
    return folder


def _socket_dir(folder: Path) -> Path:
    if len(str(folder / "sock" / ".s.PGSQL.5432")) < 100:
        (folder / "sock").mkdir(mode=0o700)
        return folder / "sock"
    short = Path(tempfile.mkdtemp(prefix="prep-ops-pitr-"))
    (folder / _SOCKET_NOTE).write_text(str(short))
    return short


def make(folder: Path, extra: dict | None = None, database: str = "app", *, scratch: bool = False) -> SourceCluster:
    """initdb in `folder`/data, archiving into wal_archive.archive_dir(<its system identifier>), started,
    with database `database`; `scratch`: its targets count as prep-ops' own throwaway server, as the
    embedded one does (a drill's). When anything fails, what was made is removed again."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    (folder / MARKER).write_text("a prep-ops archiving cluster: removed when its run ends\n")
    data = folder / "data"
    try:
        socket_dir = _socket_dir(folder)
        owner = _owner()
        hand_over(folder, owner)
        hand_over(socket_dir, owner)
        bins = embedded.bin_dir()
        run_server_program([bins / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-sync"])
        out = subprocess.run([bins / "pg_controldata", "-D", data], capture_output=True, text=True, check=True,
                             env={"LC_ALL": "C"}).stdout
        sysid = next(line.split(":")[1].strip() for line in out.splitlines()
                     if line.startswith("Database system identifier"))
        archive = wal_archive.archive_dir(sysid)
        (folder / _ARCHIVE_NOTE).write_text(str(archive))
        archive.mkdir(parents=True)
        hand_over(archive, owner)
        command = archiving.command_line(archive, archiving.interpreter(owner is not None))
        settings = {"archive_mode": "on", "archive_command": command, "listen_addresses": "",
                    "unix_socket_directories": str(socket_dir), "fsync": "off", "synchronous_commit": "off",
                    "shared_preload_libraries": "", **(extra or {})}
        with (data / "postgresql.conf").open("a") as conf:
            conf.write("".join(f"{k} = {conf_string(str(v))}\n" for k, v in settings.items()))  # quotes doubled
        run_server_program([bins / "pg_ctl", "-D", data, "-l", folder / "log", "-w", "start"])
        url = libpq_url({"user": "postgres", "dbname": database, "host": str(socket_dir)})
        cluster = SourceCluster(folder, data, sysid, archive, Target(url, scratch), socket_dir)
        with cluster.connect("postgres") as conn:
            conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(database)))
    except BaseException:
        remove_folder(folder)
        raise
    return cluster


def stop(cluster: SourceCluster) -> None:
    """Stop the cluster at once (nothing in it is kept)."""
    run_server_program([embedded.bin_dir() / "pg_ctl", "-D", cluster.data, "-m", "immediate", "stop"], check=False)


def remove_folder(folder: Path) -> None:
    """Stop the server of `folder` (only a postgres whose data directory it is), then remove its WAL
    archive (a cluster folder under wal_archive.root() as noted), its socket folder and the folder."""
    if not (folder / MARKER).is_file():
        return
    _stop_server(folder / "data")
    for note in (_ARCHIVE_NOTE, _SOCKET_NOTE):
        path = folder / note
        if path.is_file():
            where = Path(path.read_text().strip())
            if note == _SOCKET_NOTE or where.name.isdigit():  # an archive is always <root>/<system identifier>
                shutil.rmtree(where, ignore_errors=True)
            if note == _ARCHIVE_NOTE:
                with contextlib.suppress(OSError):  # the archive root, when nothing else is in it
                    where.parent.rmdir()
    shutil.rmtree(folder, ignore_errors=True)


def remove(cluster: SourceCluster) -> None:
    """Stop the cluster and remove it with its WAL archive (safe to call twice)."""
    if cluster.folder.exists():
        stop(cluster)
        remove_folder(cluster.folder)


def remove_stale() -> list[Path]:
    """Stop and remove the drill clusters of runs that are gone (their pid is in the name); returns them."""
    removed = []
    for folder in sorted(home().glob("*-*-*")) if home().is_dir() else []:
        pid = folder.name.split("-")[1]
        if pid.isdigit() and not _alive(int(pid)) and (folder / MARKER).is_file():
            remove_folder(folder)
            removed.append(folder)
    return removed
