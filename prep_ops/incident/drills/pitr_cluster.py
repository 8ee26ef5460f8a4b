"""A private cluster of the embedded binaries with WAL archiving on: where the point-in-time drill runs
(and the tests of base backups and recovery), so neither CI nor a user's server needs any setting.

`make(folder)` runs initdb in `folder` (marked MARKER, so only folders prep-ops made are ever removed),
archives with prep-ops' own archive command (archive_wal.py: atomic, never over a different file) into
wal_archive.archive_dir(<its system identifier>), listens on a Unix socket of its own only, and starts it
with one database (`app` unless told). `remove` stops it at once and removes its folder and its WAL
archive. A drill's cluster lives in `home()/<stamp>-<pid>-<hex>`: when its run is killed, the next one
stops and removes it (`remove_stale`), archive included: the folder notes the cluster's system
identifier (digits, nothing else is accepted), so the archive removed is always wal_archive.root()/<digits>,
never a path read from the folder (as root, the server's system user owns it and could rewrite a note).
"""

import contextlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import psycopg

from ... import archiving, embedded, private_cluster, wal_archive
from ...db import Target, libpq_url
from ...errors import TargetError
from ...private_cluster import cluster_owner, conf_string, hand_over, run_or_fail, run_server_program

MARKER = "PREP_OPS_PITR_CLUSTER"  # in the folder: prep-ops made it and may remove it
_SYSID_NOTE = "system_identifier"  # in the folder: its cluster's, whose WAL archive goes with it
_SOCKET_PREFIX = "prep-ops-pitr-"  # a short socket folder in the temporary folder: see private_cluster.socket_dir


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
    return private_cluster.new_folder(home())


def make(folder: Path, extra: dict | None = None, database: str = "app", *, scratch: bool = False) -> SourceCluster:
    """initdb in `folder`/data, archiving into wal_archive.archive_dir(<its system identifier>), started,
    with database `database`; `scratch`: its targets count as prep-ops' own throwaway server, as the
    embedded one does (a drill's). When anything fails, what was made is removed again."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    (folder / MARKER).write_text("a prep-ops archiving cluster: removed when its run ends\n")
    data = folder / "data"
    try:
        socket_dir = private_cluster.socket_dir(folder, _SOCKET_PREFIX)
        owner = cluster_owner()
        hand_over(folder, owner)
        hand_over(socket_dir, owner)
        bins = embedded.bin_dir()
        run_or_fail([bins / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-sync"],
                    "initdb of the archiving cluster")
        sysid = private_cluster.system_identifier(data, embedded.VERSION)
        if sysid is None:
            raise TargetError(f"pg_controldata reads no system identifier from {data}: initdb left no cluster there")
        (folder / _SYSID_NOTE).write_text(sysid)
        archive = wal_archive.archive_dir(sysid)
        archive.mkdir(parents=True)
        hand_over(archive, owner)
        command = archiving.command_line(archive, archiving.interpreter(owner is not None))
        settings = {"archive_mode": "on", "archive_command": command, "listen_addresses": "",
                    "unix_socket_directories": str(socket_dir), "fsync": "off", "synchronous_commit": "off",
                    "shared_preload_libraries": "", **(extra or {})}
        with (data / "postgresql.conf").open("a") as conf:
            conf.write("".join(f"{k} = {conf_string(str(v))}\n" for k, v in settings.items()))  # quotes doubled
        run_or_fail([bins / "pg_ctl", "-D", data, "-l", folder / "log", "-w", "start"], "starting the archiving cluster")
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
    archive (wal_archive.root()/<the system identifier noted>), its socket folder and the folder."""
    if folder.is_symlink() or not (folder / MARKER).is_file():
        return
    private_cluster.stop_server(folder / "data")
    note = folder / _SYSID_NOTE
    sysid = note.read_text().strip() if note.is_file() and not note.is_symlink() else ""
    if sysid.isdigit() and sysid.isascii():
        archive = wal_archive.archive_dir(sysid)
        if not archive.is_symlink():
            shutil.rmtree(archive, ignore_errors=True)
        with contextlib.suppress(OSError):  # the archive root, when nothing else is in it
            archive.parent.rmdir()
    private_cluster.remove_socket_dir(folder, _SOCKET_PREFIX)
    shutil.rmtree(folder, ignore_errors=True)


def remove(cluster: SourceCluster) -> None:
    """Stop the cluster and remove it with its WAL archive (safe to call twice)."""
    if cluster.folder.exists():
        stop(cluster)
        remove_folder(cluster.folder)


def remove_stale() -> list[Path]:
    """Stop and remove the drill clusters of runs that are gone (their pid is in the name); returns them."""
    removed = private_cluster.stale_folders(home(), MARKER)
    for folder in removed:
        if (folder / MARKER).is_file():
            remove_folder(folder)
        else:  # killed before it was marked: still empty
            with contextlib.suppress(OSError):
                folder.rmdir()
    return removed
