"""WAL streaming with pg_receivewal: committed work in the WAL archive within moments of its commit, not
at the next segment switch (archive_timeout, whole seconds at the least).

On the embedded server, `archive on --stream` runs the server's major's pg_receivewal (pg_binaries) into
the folder archive_command fills, wal_archive.archive_dir(<system identifier>), with --synchronous: each
write is flushed and the flush position reported at once, so pg_stat_replication's flush_lsn is what a
loss of the server would keep. It writes the segment in progress as `<segment>.partial` (padded to a
whole segment) and renames it to `<segment>` once complete. archive_command stays on and remains the
backstop for complete segments: the two write the same bytes under the same name, and archive_wal.py
takes a file already there with the same bytes as success, so whichever comes second changes nothing.
Recovery takes a `.partial` where the complete segment is missing (recovery_cluster's restore_command).

No replication slot: a slot keeps every WAL segment from its position on in pg_wal until its receiver
confirms it, so a slot left behind by a dead receiver (prep-ops killed, streaming turned off by hand)
would fill the embedded server's disk. Without one, WAL the receiver missed while it was down may be
gone from the server; archive_command has archived it meanwhile, and pg_receivewal starts again after
the newest complete segment in the folder (or at the start of its `.partial`), so only the recency of
the streamed tail is lost for that while, never a segment.

The receiver is a detached process (a session of its own, the server's system user as root) whose pid
file lives in `<data directory>-wal-stream/` beside the data directory (`.prep_ops/pg18-wal-stream/`),
with its log (the previous run's in `log.1`) and `on`, the recorded setting. `start` runs it unless the
pid file names a live pg_receivewal into the same folder (checked against the process's start time and
command line, under a lock: two starts never run two); one into another folder is stopped first, and
embedded.start stops any before starting a stopped server, so none follows a new cluster. It loops on a
lost connection (pg_receivewal's default: again every 5 s), so a restart of the server needs nothing;
every start of the embedded server (embedded._after_start) calls `resume`, which starts it where the
setting is on; `archive off`, `archive on` without --stream and `db stop` stop it.

On a server prep-ops does not run, `command_line` is the one pg_receivewal command to run as a service.
"""

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psycopg
from psycopg import conninfo

from . import embedded, pg_binaries, wal_archive
from .errors import TargetError
from .sqlfiles import load

APPLICATION = "prep-ops-wal-stream"  # the receiver's application_name: how pg_stat_replication names it
STOP_SECONDS = 10.0


def state_dir() -> Path:
    """The receiver's pid file, log and recorded setting: `<data directory>-wal-stream/` beside it."""
    data = embedded.data_dir()
    return data.parent / f"{data.name}-wal-stream"


def is_on() -> bool:
    """Whether streaming is recorded as on for the embedded server."""
    return (state_dir() / "on").is_file()


def record(on: bool) -> None:
    """Record streaming as on or off for the embedded server (what `resume` after each start reads)."""
    if on:
        state_dir().mkdir(parents=True, exist_ok=True, mode=0o700)
        (state_dir() / "on").write_text("pg_receivewal runs while the embedded server runs\n")
    else:
        (state_dir() / "on").unlink(missing_ok=True)


def command_line(folder: Path, dsn: str, program: str | Path = "pg_receivewal") -> list[str]:
    """pg_receivewal streaming into `folder` from the server of `dsn` (a libpq connection string),
    flushing each write, never asking for a password, looping on a lost connection."""
    return [str(program), "-D", str(folder), "--synchronous", "--no-password", "--verbose", "-d", dsn]


# the connection keys a printed pg_receivewal command may carry: where and how to connect, never a secret
# (password, sslpassword, an OAuth secret) nor a database; any other key of the URL is left out
DSN_KEYS = ("host", "hostaddr", "port", "user", "passfile", "service", "connect_timeout", "client_encoding",
            "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout",
            "sslmode", "sslnegotiation", "sslcompression", "sslcert", "sslkey", "sslcertmode", "sslrootcert",
            "sslcrl", "sslcrldir", "sslsni", "ssl_min_protocol_version", "ssl_max_protocol_version",
            "requirepeer", "require_auth", "channel_binding", "gssencmode", "krbsrvname", "gsslib",
            "target_session_attrs", "load_balance_hosts")


def dsn_of(url: str) -> str:
    """The libpq connection string pg_receivewal needs for the server of `url`: the keys of DSN_KEYS only
    (no password or other secret: a ~/.pgpass or trust; no database), application_name APPLICATION."""
    params = {k: v for k, v in conninfo.conninfo_to_dict(url).items() if k in DSN_KEYS}
    return conninfo.make_conninfo(**params, application_name=APPLICATION)


# --- the receiver's process ------------------------------------------------------------------------
def _read_pid_file() -> dict | None:
    """What the pid file notes: the folder, written before the receiver runs, then its pid and start time."""
    try:
        found = json.loads((state_dir() / "pid").read_text())
        return found if isinstance(found, dict) else None
    except (OSError, ValueError):
        return None


def _receiver(noted: dict | None):
    """The live process the pid file notes, when it is that pg_receivewal (same start time, a command
    line streaming into the folder noted); else None."""
    import psutil

    if noted is None or not isinstance(noted.get("pid"), int):
        return None
    try:
        process = psutil.Process(noted["pid"])
        if process.status() == psutil.STATUS_ZOMBIE or process.name() != "pg_receivewal":
            return None
        if abs(process.create_time() - float(noted.get("created", 0))) > 0.5:
            return None
        cmdline = process.cmdline()
        return process if str(noted.get("folder")) in cmdline and "--synchronous" in cmdline else None
    except (psutil.Error, TypeError, ValueError):
        return None


def running_pid() -> int | None:
    """The pid of the embedded server's receiver when it runs, else None."""
    process = _receiver(_read_pid_file())
    return process.pid if process else None


@contextlib.contextmanager
def _locked():
    state_dir().mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(state_dir() / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def start(socket_dir: Path, folder: Path, user: "tuple[int, int] | None") -> int:
    """Run pg_receivewal of the embedded major into `folder` from the embedded server on `socket_dir`
    (as `user`, (uid, gid), when given), detached, unless it runs already into that folder; returns its
    pid. One streaming into another folder (a cluster since replaced) is stopped first."""
    with _locked():
        noted = _read_pid_file()
        process = _receiver(noted)
        if process is not None and str(noted.get("folder")) == str(folder):
            return process.pid
        _stop_locked()
        dsn = conninfo.make_conninfo(host=str(socket_dir), user="postgres", application_name=APPLICATION)
        command = command_line(folder, dsn, pg_binaries.program("pg_receivewal", embedded.VERSION))
        ids = {"user": user[0], "group": user[1], "extra_groups": []} if user else {}
        # the folder first: a receiver killed with us before its pid is noted is still found by stop()
        (state_dir() / "pid").write_text(json.dumps({"folder": str(folder)}))
        log = state_dir() / "log"
        if log.exists():  # --verbose writes a line per segment and reconnection: one earlier run kept
            log.replace(state_dir() / "log.1")
        with open(log, "wb") as out:
            child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd="/",
                                     start_new_session=True, env={**os.environ, "LC_ALL": "C"}, **ids)
        _note(child.pid, folder)
        return child.pid


def _note(pid: int, folder: Path) -> None:
    import psutil

    created = psutil.Process(pid).create_time()
    (state_dir() / "pid").write_text(json.dumps({"pid": pid, "created": created, "folder": str(folder)}))


def stop() -> bool:
    """Stop the embedded server's receiver (SIGINT: it flushes and exits; SIGKILL after STOP_SECONDS);
    False when none ran."""
    if not (state_dir() / "pid").exists():  # never started here: nothing made, nothing to stop
        return False
    with _locked():
        return _stop_locked()


def _stop_locked() -> bool:
    """stop(), under the lock: the receiver the pid file notes, or, when its pid was never noted (killed
    between starting it and noting it), the pg_receivewal streaming into the folder it notes."""
    import psutil

    noted = _read_pid_file()
    process = _receiver(noted)
    if process is None and noted is not None and "pid" not in noted and noted.get("folder"):
        with contextlib.suppress(psutil.Error):
            found = local_receiver(Path(str(noted["folder"])))
            process = psutil.Process(found) if found else None
    (state_dir() / "pid").unlink(missing_ok=True)
    if process is None:
        return False
    with contextlib.suppress(psutil.Error):
        process.send_signal(signal.SIGINT)
        try:
            process.wait(STOP_SECONDS)
        except psutil.TimeoutExpired:
            process.kill()
            process.wait(STOP_SECONDS)
    return True


def resume(socket_dir: Path) -> int | None:
    """After a start of the embedded server on `socket_dir`: start the receiver where streaming is
    recorded as on (and archiving is on); its pid, or None. A failure is written to its log, never
    raised: the server's start stands."""
    if not is_on():
        return None
    try:
        with psycopg.connect(conninfo.make_conninfo(host=str(socket_dir), user="postgres", dbname="postgres"),
                             autocommit=True) as conn:
            if conn.execute("SHOW archive_mode").fetchone()[0] == "off":
                return None
            folder = wal_archive.archive_dir(wal_archive.system_identifier(conn))
        if not folder.is_dir():
            raise TargetError(f"the archive folder {folder} is missing: run `prep-ops archive on --stream` again")
        owner = embedded.data_dir().stat()
        return start(socket_dir, folder, (owner.st_uid, owner.st_gid) if os.geteuid() == 0 else None)
    except (psycopg.Error, OSError, TargetError) as exc:
        with contextlib.suppress(OSError), open(state_dir() / "log", "a") as log:
            log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} prep-ops: the receiver was not started: {exc}\n")
        return None


def log_tail() -> str:
    """The last line of the receiver's log ("" when there is none)."""
    try:
        lines = (state_dir() / "log").read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""


def wait_streaming(conn: psycopg.Connection, seconds: float = 15.0) -> bool:
    """Whether the embedded server's receiver streams the WAL of the server of `conn` into its cluster's
    archive folder within `seconds` (streaming_problem, with the local process)."""
    with conn.transaction():
        folder = wal_archive.archive_dir(wal_archive.system_identifier(conn))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if streaming_problem(conn, folder, local=True) is None:
            return True
        time.sleep(0.2)
    return False


def streaming_problem(conn: psycopg.Connection, folder: Path, local: bool) -> str | None:
    """Why no receiver named APPLICATION is seen streaming the WAL of the server of `conn` into `folder`, or
    None when one is: the segment of its flush position (pg_walfile_name), or that segment's `.partial`,
    is in `folder`, and, with `local` (the embedded server), a pg_receivewal here streams into `folder`.
    A name in pg_stat_replication alone proves nothing: a leftover receiver may write elsewhere."""
    with conn.transaction():
        segments = [row[0] for row in conn.execute(load("wal_archive", "receiver_segment"),
                                                   {"application": APPLICATION})]
    if not segments:
        return f"no receiver named {APPLICATION} is streaming from the server"
    if all(name is None for name in segments):
        return ("the receiver's flush position is unreadable (pg_read_all_stats), or the server is a standby: "
                f"cannot tell that it writes into {folder}")
    if not any((folder / name).exists() or (folder / f"{name}.partial").exists() for name in segments if name):
        return (f"the segment of the receiver's flush position ({', '.join(filter(None, segments))}) is not in "
                f"{folder}: it writes elsewhere")
    if local and local_receiver(folder) is None:
        return f"no pg_receivewal on this machine streams into {folder}"
    return None


# --- what status shows ---------------------------------------------------------------------------------
def receiver_row(conn: psycopg.Connection) -> dict | None:
    """The server's view of the receiver named APPLICATION (pg_stat_replication): pid, state, sent and
    flush LSN, how far behind in bytes and seconds; None when none is connected. The LSNs and lag are
    None for a role without pg_read_all_stats."""
    with conn.transaction():
        row = conn.execute(load("wal_archive", "receiver"), {"application": APPLICATION}).fetchone()
    if row is None:
        return None
    keys = ("pid", "state", "sent_lsn", "flush_lsn", "lag_bytes", "flush_lag_seconds", "reply_age_seconds")
    return dict(zip(keys, row))


def lag_seconds(row: dict) -> float | None:
    """The committed work the receiver does not hold yet, in seconds: 0 when it flushed all the server
    flushed, else its flush lag (or, when the server has not measured one, the age of its last reply)."""
    if row.get("lag_bytes") is None:
        return None
    if row["lag_bytes"] <= 0:
        return 0.0
    measured = row.get("flush_lag_seconds")
    return float(measured if measured is not None else row.get("reply_age_seconds") or 0.0)


def local_receiver(folder: Path) -> int | None:
    """The pid of a pg_receivewal on this machine streaming into `folder` (prep-ops' or one run by hand)."""
    import psutil

    wanted = str(folder)
    for process in psutil.process_iter(["name", "cmdline", "status"]):
        cmdline = process.info["cmdline"] or []
        if process.info["name"] == "pg_receivewal" and process.info["status"] != psutil.STATUS_ZOMBIE and \
                any(arg in (wanted, f"--directory={wanted}", f"-D{wanted}") for arg in cmdline):
            return process.pid
    return None
