"""An incident's record on disk, runs/incidents/<id>.json, so that a killed run can be undone or resumed.

The record (`Incident.save`) is written before each change the incident makes: what it holds (a role
blocked, a restored copy kept) with the statements that undo it, read BEFORE the change (the role's
original connection limit), and the statements about to run. It is replaced atomically (a temporary
file, then a rename), so a kill leaves the old record or the new one, never half of one.

A re-run with the same incident_id reads it back (`load`): what the earlier run held is still held,
with the earlier run's undo statements, so the original state is what gets restored, never the
blocked one read again.

Those undo statements are SQL that a re-run executes, so the record is trusted the way ssh trusts a
key file: it is written readable and writable by its owner only (0600), and `load` refuses, in one
line, a record that is a symbolic link, is owned by another user, or that group or others may write
(anyone who could edit it could make the next run execute their SQL as the incident's role).
"""

import fcntl
import json
import os
import stat
from datetime import datetime
from pathlib import Path

from psycopg import sql

from ..errors import ParameterError


_CLAIMED: dict[str, int] = {}  # the lock files this process holds, open for its lifetime: a POSIX lock is the
# process's, and closing any descriptor of the file would release it


def claim(directory: Path, incident_id: str) -> None:
    """Hold `incident_id` for this process until it ends; ParameterError, in one line, while another process
    runs it. Two runs of one incident at once each took over, wrote and undid what the other held (a role's
    limit read while blocked became its undo), and a drill's re-run drops the drill of its id. The lock ends
    with the process, killed too, so a re-run after a kill takes over as before."""
    file = Path(directory) / f".{incident_id}.lock"
    key = os.path.abspath(file)
    if key in _CLAIMED:
        return
    file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 20, 0).decode(errors="replace").strip()
        os.close(fd)
        raise ParameterError(f"incident {incident_id} is being run by another process (pid {holder or 'unknown'}): "
                             "wait for it to end or stop it, then re-run (it takes over what that run holds)") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _CLAIMED[key] = fd


def path(directory: Path, incident_id: str) -> Path:
    """Where an incident's record is: runs/incidents/<id>.json."""
    return Path(directory) / f"{incident_id}.json"


def statement_text(statement: sql.Composable) -> str:
    """A statement as SQL text, rendered without a connection (identifiers and literals quoted)."""
    return statement.as_string(None)


def action_data(action) -> dict:
    """An Action as JSON data: its shown text and the statement (one without bound parameters)."""
    if action.params:
        raise ParameterError(f"an undo statement is stored as SQL text, so it takes no parameters: {action.text}")
    return {"text": action.text, "sql": statement_text(action.statement), "server_wide": action.server_wide}


def action_of(data: dict):
    """The Action stored by `action_data`."""
    from .record import Action

    return Action(data["text"], sql.SQL(data["sql"]), server_wide=data.get("server_wide", False))


def write(file: Path, data: dict) -> Path:
    """Write `data` as JSON to `file` atomically: a temporary file beside it, flushed, then renamed over it."""
    file.parent.mkdir(parents=True, exist_ok=True)
    pending = file.with_name(f".{file.name}.{os.getpid()}.pending")
    fd = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)  # also when a killed run left this pending file with other modes
        json.dump(data, out, indent=1, default=str)
        out.flush()
        os.fsync(out.fileno())
    os.replace(pending, file)
    return file


def load(directory: Path, incident_id: str) -> dict | None:
    """The record an earlier run of `incident_id` left, or None."""
    return read_private(path(directory, incident_id), "an incident record",
                        "a re-run executes the undo statements in it")


def _server(url: str) -> dict:
    """The server part of a (masked) database URL: what names the server, not the database on it."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        found = conninfo_to_dict(url)
    except Exception:  # a record written by hand or by another version: its server is not known
        return {"unknown": url}
    return {k: v for k, v in found.items() if k not in ("dbname", "password")}


def held_elsewhere(directory: Path, incident_id: str, key: str, role: str, target_url: str) -> list[tuple[str, dict]]:
    """The other incidents (their id and record) whose record says they hold `key` for `role` on the server of
    `target_url`: a block an earlier run left in place, under an incident_id this run was not given (a kernel
    restarted with incident_id=None makes a new one). Records that cannot be trusted or read are passed over:
    nothing of them runs here."""
    found = []
    for file in sorted(Path(directory).glob("*.json")):
        other = file.stem
        if other == incident_id:
            continue
        try:
            record = load(directory, other)
        except ParameterError:
            continue
        hold = (record or {}).get("holds", {}).get(key)
        if hold and hold.get("state", {}).get("role") == role and _server(record.get("target", "")) == _server(target_url):
            found.append((other, record))
    return found


def read_private(file: Path, what: str, use: str) -> dict | None:
    """The JSON object in `file`, one of prep-ops' private files (`what`, used so: `use`), or None where
    there is none; ParameterError, in one line, for a file it may not trust (see _trusted) or not JSON."""
    if not os.path.lexists(file):
        return None
    _trusted(file, use)
    try:
        data = json.loads(file.read_text())
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ParameterError(f"{file} is not {what} (not a JSON object): move it aside to start the incident afresh")
    return data


def _trusted(file: Path, use: str) -> None:
    """Raise ParameterError unless `file` may be trusted (`use`: what prep-ops does with it): a regular file
    (not a symbolic link), owned by the user running prep-ops, that neither group nor others may write."""
    info = file.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISREG(info.st_mode):
        why = "is a symbolic link" if stat.S_ISLNK(info.st_mode) else "is not a regular file"
    elif info.st_uid != os.geteuid():
        why = f"is owned by user id {info.st_uid}, not by the user running prep-ops ({os.geteuid()})"
    elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        why = f"may be written by others than its owner (mode {stat.S_IMODE(info.st_mode):o})"
    else:
        return
    raise ParameterError(f"{file} {why}: {use}, so it is not used; check it, then make it yours with mode 600 "
                         "(or move it aside to start the incident afresh)")


def holds_of(record: dict) -> dict:
    """The holds of a loaded record: key -> Hold, with their undo statements and since when."""
    from .record import Hold

    return {key: Hold(h["what"], [action_of(a) for a in h["undo"]], datetime.fromisoformat(h["since"]), h.get("state", {}))
            for key, h in record.get("holds", {}).items()}


def hold_data(hold) -> dict:
    return {"what": hold.what, "since": hold.since.isoformat(), "undo": [action_data(a) for a in hold.undo],
            "state": hold.state}


def record_of(inc, running: list[str]) -> dict:
    """What the record of Incident `inc` holds: the incident, its steps, what is held with its undo
    statements, and the statements about to run."""
    return {"id": inc.id, "kind": inc.kind, "title": inc.title, "mode": inc.mode, "confirm": inc.confirm,
            "target": inc.target.masked_url, "opened": inc.opened.isoformat(), "written": datetime.now().astimezone().isoformat(),
            "outcome": inc.outcome(),
            "steps": [{"number": s.number, "title": s.title, "began": s.began.isoformat(),
                       "ended": s.ended.isoformat() if s.ended else None, "failed": s.failed} for s in inc.steps],
            "holds": {key: hold_data(h) for key, h in inc.holds.items()},
            "running": running}
