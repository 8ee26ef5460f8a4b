"""A private, throwaway cluster made from a base backup: the place where verify BASE and recover replay.

`recovered(...)` extracts a base backup (or combines an incremental chain with pg_combinebackup) into
`<project>/.prep_ops/recovery/<stamp>-<pid>-<hex>/data`, marked MARKER so only folders prep-ops made
are ever removed, then starts it with the binaries of the backup's major: a Unix socket of its own only
(`listen_addresses = ''`), a pg_hba.conf of its own (trust on that socket, nothing else), archiving OFF
(the source's archive_command is in the backup: it must never write into the source's archive), no
preloaded libraries, fsync off (nothing in it outlives the operation). With a recovery target it replays
WAL from one archive folder only (`restore_command` copies from it, a segment's streamed `.partial`
where the segment itself is missing: wal_stream), until the target, then promotes;
without one it replays the WAL the backup carries until consistent. Yielded once it accepts connections,
stopped (immediate: it is thrown away) and removed afterwards, also when the operation fails.

As root, PostgreSQL refuses to run: the cluster belongs to the WAL archive's owner (the archiving server
writes its segments 0600), else embedded.SYSTEM_USER, whatever the major.
A run killed meanwhile leaves its folder (and maybe its server): the next run stops that server (only a
postgres process whose data directory is that folder) and removes the folder (`remove_stale`), never a
path read from a file in it (private_cluster: what this and the drills' archiving cluster share).

A backup's manifest is not proof of its cluster: after extraction, pg_controldata's system identifier of
the data directory must be the manifest's (NotThisCluster otherwise: verify BASE fails it, recover passes
to an older backup). When replay stops on WAL that is not this cluster's or not WAL at all (another
cluster's segment under the same name, garbage), the error names the segment instead of "the archived WAL
ends before the target".
"""

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import psycopg

from . import embedded, pg_binaries
from .db import libpq_url
from .errors import BackupError, NotThisCluster, TargetError, WalEndedEarly, first_line  # noqa: F401 (NotThisCluster: callers use recovery_cluster.*)
from .pitr_checks import foreign_wal
from .private_cluster import (  # noqa: F401 (conf_string, hand_over, run_server_program: callers use them from here)
    alive, cluster_owner, conf_string, hand_over, new_folder, postmaster_pid, remove_socket_dir, run_or_fail,
    run_server_program, socket_dir, stale_folders, stop_server, system_identifier)

MARKER = "PREP_OPS_RECOVERY_CLUSTER"  # in the folder: prep-ops made it and may remove it
WAIT_SECONDS = 3600.0  # the longest replay waited for


@dataclass
class RecoveryCluster:
    folder: Path
    major: int
    superuser: str
    socket_dir: Path

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def url(self, database: str = "postgres") -> str:
        return libpq_url({"user": self.superuser, "dbname": database, "host": str(self.socket_dir)})

    def log_tail(self, lines: int = 3) -> str:
        """The last FATAL/PANIC/ERROR lines of the server's log (what went wrong), else its last lines."""
        log = self.folder / "log"
        text = log.read_text(errors="replace").splitlines() if log.exists() else []
        bad = [line for line in text if any(word in line for word in ("FATAL", "PANIC", "ERROR"))]
        return " | ".join((bad or text)[-lines:])


def home() -> Path:
    """Where recovery clusters live: `recovery/` beside the embedded server's data directory."""
    return embedded.data_dir().parent / "recovery"


# --- what killed runs left -------------------------------------------------------------------------
_SOCKET_PREFIX = "prep-ops-rc-"  # a short socket folder in the temporary folder: see private_cluster.socket_dir


def remove_stale() -> list[Path]:
    """Stop and remove the recovery clusters of runs that are gone; returns them."""
    removed = stale_folders(home(), MARKER)
    for folder in removed:
        _remove(folder)
    return removed


def _remove(folder: Path) -> None:
    stop_server(folder / "data")
    remove_socket_dir(folder, _SOCKET_PREFIX)
    shutil.rmtree(folder, ignore_errors=True)


# --- making one ------------------------------------------------------------------------------------
def _extract(tar: Path, into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        with tarfile.open(tar, "r:*") as archive:
            archive.extractall(into, filter="data")  # nothing outside `into`: no such path, link or device
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise BackupError(f"{tar.parent.name}/{tar.name} cannot be extracted: {first_line(exc)}") from None


def _unpack(chain: list, folder: Path) -> None:
    """The data directory at folder/data: the base backup extracted, or an incremental chain combined."""
    data = folder / "data"
    if len(chain) == 1:
        _extract(chain[0].path / "base.tar.gz", data)
    else:
        parts = []
        for link in chain:
            part = folder / "parts" / link.path.name
            _extract(link.path / "base.tar.gz", part)
            shutil.copy(link.path / "backup_manifest", part / "backup_manifest")  # -Ft keeps it beside the tar
            parts.append(part)
        major = chain[-1].manifest["server_major"]
        done = subprocess.run([str(pg_binaries.program("pg_combinebackup", major)), "-o", str(data), *map(str, parts)],
                              capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
        shutil.rmtree(folder / "parts", ignore_errors=True)
        if done.returncode != 0:
            said = [line for line in done.stderr.splitlines() if "error" in line] or done.stderr.splitlines() or ["?"]
            raise TargetError(f"pg_combinebackup failed: {said[0]}")
    _extract(chain[-1].path / "pg_wal.tar.gz", data / "pg_wal")
    data.chmod(0o700)


def _check_identity(chain: list, data: Path) -> None:
    wanted = chain[-1].manifest["system_identifier"]
    found = system_identifier(data, chain[-1].manifest["server_major"])
    if found != wanted:
        raise NotThisCluster(f"{chain[-1].name} is not a backup of cluster {wanted}: its pg_control says "
                             f"{found or 'nothing readable'}")


COPY_FAILED = 128  # restore_command's exit code when a file the archive holds cannot be copied


def restore_command(archive: Path) -> str:
    """The restore_command that copies each WAL file from `archive`: the segment itself, else the
    `<segment>.partial` pg_receivewal is streaming (wal_stream: zeros after its last record, where replay
    ends); with neither (or a symbolic link in its place) the command fails (exit 1), and the archive ends
    there. A file the archive holds that cannot be copied (the recovery cluster's disk is full) is exit
    COPY_FAILED: above 125, PostgreSQL stops the recovery on it (FATAL) instead of taking it for the end of
    the archive, which would blame the archived WAL (see _failed_copy)."""
    source = shlex.quote(str(archive).replace("%", "%%"))  # %-escapes are its own: a % in the name is doubled
    # a symbolic link is never followed: only files written into the archive are WAL of it
    return (f"if [ -f {source}/%f ] && [ ! -L {source}/%f ]; then cp {source}/%f %p || exit {COPY_FAILED}; "
            f"elif [ -f {source}/%f.partial ] && [ ! -L {source}/%f.partial ]; then cp {source}/%f.partial %p "
            f"|| {{ [ -f {source}/%f ] && [ ! -L {source}/%f ] && cp {source}/%f %p; }} "  # renamed meanwhile: complete
            f"|| exit {COPY_FAILED}; else exit 1; fi")


def _configure(cluster: RecoveryCluster, archive: Path | None, target_time: str | None, target_lsn: str | None) -> None:
    """Settings appended to postgresql.auto.conf (read last: they win over the source's)."""
    (cluster.folder / "pg_hba.conf").write_text("local all all trust\n")
    settings = {"listen_addresses": "", "unix_socket_directories": str(cluster.socket_dir), "port": "5432",
                "hba_file": str(cluster.folder / "pg_hba.conf"), "archive_mode": "off", "archive_command": "",
                "shared_preload_libraries": "", "fsync": "off", "synchronous_commit": "off", "ssl": "off",
                "logging_collector": "off", "shared_buffers": "128MB", "autovacuum": "off", "hot_standby": "on"}
    if archive is not None:
        settings["restore_command"] = restore_command(archive)
        settings["recovery_target_action"] = "promote"
        if target_time is not None:
            # "as it was at T": every transaction committed up to and including T (microseconds), none after
            settings |= {"recovery_target_time": target_time, "recovery_target_inclusive": "on"}
        elif target_lsn is not None:
            # "before WAL location L": nothing from L on is replayed (L: the damaging record's, pg_walinspect)
            settings |= {"recovery_target_lsn": target_lsn, "recovery_target_inclusive": "off"}
        (cluster.data / "recovery.signal").touch()
    if not (cluster.data / "postgresql.conf").exists():  # Debian keeps it in /etc: not in the backup
        (cluster.data / "postgresql.conf").touch()
    with (cluster.data / "postgresql.auto.conf").open("a") as conf:
        conf.write("\n# prep-ops recovery cluster\n" + "".join(f"{k} = {conf_string(v)}\n" for k, v in settings.items()))


def _wait(cluster: RecoveryCluster, seconds: float) -> None:
    """Return once the cluster accepts connections and is out of recovery (target reached, promoted)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pid = postmaster_pid(cluster.data)
        started = pid is not None
        if started and not alive(pid) or not started and (cluster.folder / "log").exists() and \
                "FATAL" in (cluster.folder / "log").read_text(errors="replace"):
            foreign = foreign_wal(cluster.folder / "log")
            if foreign:
                raise TargetError(foreign)
            failed = _failed_copy(cluster.folder / "log")
            if failed:
                raise TargetError(failed)
            if "before configured recovery target was reached" in cluster.log_tail():
                raise WalEndedEarly("the archived WAL ends before the target: no commit after it is archived yet "
                                    "(wait for the next segment, see archive_timeout, or run SELECT pg_switch_wal())",
                                    _last_restored(cluster.folder / "log"))
            raise TargetError(f"the recovery cluster stopped: {cluster.log_tail()}")
        with contextlib.suppress(psycopg.OperationalError):
            with psycopg.connect(cluster.url(), connect_timeout=5, autocommit=True) as conn:
                if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    return
        time.sleep(0.2)
    raise TargetError(f"the recovery cluster did not finish replaying within {seconds:.0f} s: {cluster.log_tail()}")


def _failed_copy(log: Path) -> str | None:
    """Why replay stopped on a WAL file the archive holds but restore_command could not copy (exit
    COPY_FAILED: a full disk, say), from the server's `log`: the file and cp's own line; else None."""
    text = log.read_text(errors="replace")
    name = re.search(rf'could not restore file "([^"]+)" from archive: child process exited with exit code '
                     rf'{COPY_FAILED}', text)
    if name is None:
        return None
    said = [line.strip() for line in text.splitlines() if line.startswith("cp: ")]
    return (f"WAL file {name.group(1)} could not be copied from the archive into the recovery cluster in "
            f"{log.parent.parent}: {said[-1] if said else 'cp failed'}")


def _last_restored(log: Path) -> str | None:
    """The last WAL segment the server's `log` says replay restored from the archive, or None."""
    names = re.findall(r'restored log file "([0-9A-F]{24})" from archive', log.read_text(errors="replace"))
    return names[-1] if names else None


@contextlib.contextmanager
def recovered(chain: list, *, archive: Path | None = None, target_time: str | None = None,
              target_lsn: str | None = None, before_start=None, wait_seconds: float = WAIT_SECONDS):
    """A started recovery cluster of the base backup chain `chain` (oldest first; see base_backup.chain),
    replayed to `target_time`/`target_lsn` with WAL from `archive` only, or to consistency with the
    backup's own WAL; `before_start(cluster)` runs on the extracted data directory (pg_verifybackup).
    Stopped and removed when the block ends, however it ends."""
    last = chain[-1].manifest
    major = last["server_major"]
    remove_stale()
    folder = new_folder(home())
    try:
        (folder / MARKER).write_text("a prep-ops recovery cluster: thrown away when its run ends\n")
        cluster = RecoveryCluster(folder, major, last.get("superuser") or "postgres",
                                  socket_dir(folder, _SOCKET_PREFIX))
        _unpack(chain, folder)
        _check_identity(chain, cluster.data)
        if before_start is not None:
            before_start(cluster)
        _configure(cluster, archive, target_time, target_lsn)
        owner = cluster_owner(archive)
        hand_over(folder, owner)
        hand_over(cluster.socket_dir, owner)
        run_or_fail([pg_binaries.program("pg_ctl", major), "-D", cluster.data, "-l", folder / "log", "-W", "start"],
                    "starting the recovery cluster", owner=owner)
        _wait(cluster, wait_seconds)
        yield cluster
    finally:
        _remove(folder)
