"""Load a checked backup into a database: plain dumps through psql under prep-ops' own `\\restrict`
(see plain_dump), archives through pg_restore, after `preflight` has checked the files against the
manifest and the archive's table of contents. Nothing here decides where a restore goes (see restore,
verify).

pg_dump 17 and newer write `SET transaction_timeout = 0;`, which servers before 17 reject. Into
such a server, that one line (and nothing else) is dropped from plain dumps before psql reads
them, and for custom/directory dumps pg_restore's errors are read: the restore passes only when
every error it reports is that line.
"""

import re
import subprocess
import tempfile
from pathlib import Path

import psycopg

from . import backup as backups
from . import orphans, plain_dump
from .db import Target, client_program, connect, server_version
from .errors import BackupError, program_error
from .manifest import check_files

TRANSACTION_TIMEOUT = "SET transaction_timeout = 0;"
_ERROR = re.compile(r"^pg_restore: error: (.*)$", re.MULTILINE)
_COMMAND = re.compile(r"^Command was: (.*)$", re.MULTILINE)
_IGNORED = re.compile(r"errors ignored on restore: (\d+)")


def _restore_plain(path: Path, target: Target, major: int) -> None:
    """Feed the checked dump to psql under prep-ops' own `\\restrict` (see plain_dump), in one transaction."""
    plain_dump.check(path)
    url, env = backups.libpq_env(target)
    psql = client_program("psql", target, major)
    command = [str(psql), "--no-psqlrc", "--quiet", "-v", "ON_ERROR_STOP=1", "--single-transaction",
               "--dbname", url, "--output", "/dev/null"]
    drop = (TRANSACTION_TIMEOUT.encode(),) if major < 17 else ()
    # stderr into a file: a pipe nobody reads while stdin is written fills up with notices and stalls psql
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr,
                                   preexec_fn=orphans.die_with_parent())  # never loading on after a kill -9 of ours
        try:
            for line in plain_dump.psql_input(path, drop_lines=drop):
                process.stdin.write(line)
        except BrokenPipeError:
            pass  # psql stopped on an error: its stderr says which
        finally:
            try:
                process.stdin.close()
            except BrokenPipeError:
                pass
        returncode = process.wait()
        stderr.seek(0)
        err = stderr.read().decode(errors="replace")
    if returncode != 0:
        raise BackupError(f"restore of {path.name} failed: {_first_error(err)}")


def _first_error(stderr: str) -> str:
    return program_error(stderr)


def _restore_archive(path: Path, target: Target, major: int, jobs: int, options: tuple[str, ...] = (), *,
                     owners: bool = True) -> None:
    url, env = backups.libpq_env(target)
    pg_restore = client_program("pg_restore", target, major)  # the newest: older ones cannot read newer dumps
    command = [str(pg_restore), *([] if owners else ["--no-owner"]), *options, "--dbname", url, str(path)]
    if jobs > 1:
        command[1:1] = ["--jobs", str(jobs)]
    if major >= 17:
        command.insert(1, "--exit-on-error")
    # it dies with us (kill -9 too): an orphan went on loading, and kept its database from the next restore's cleanup
    result = subprocess.run(command, env=env, capture_output=True, text=True, preexec_fn=orphans.die_with_parent())
    if result.returncode == 0:
        return
    errors = _ERROR.findall(result.stderr)
    commands = _COMMAND.findall(result.stderr)
    ignored = _IGNORED.search(result.stderr)
    # pg_restore prints "could not execute query: ERROR: unrecognized ... transaction_timeout" and
    # "Command was: SET transaction_timeout = 0;" (once per parallel worker, while its count of
    # ignored errors may be lower): accept only when every error and every command is that one
    if (major < 17 and ignored and errors and all("transaction_timeout" in e for e in errors)
            and commands and all(c.strip() == TRANSACTION_TIMEOUT for c in commands)):
        return
    # the tolerated line's error comes first (pg_restore's first statement): name the one that failed it
    told = _without_transaction_timeout(result.stderr) if major < 17 else result.stderr
    raise BackupError(f"restore of {path.name} failed: {_first_error(told)}")


def _without_transaction_timeout(stderr: str) -> str:
    """pg_restore's stderr without its errors about SET transaction_timeout and their `Command was:` lines,
    also where two parallel workers' lines ran into one ("pg_restore:pg_restore: error: ... transaction_timeout":
    all of them fail at once when the server goes away)."""
    return "\n".join(line for line in stderr.splitlines()
                     if not ("transaction_timeout" in line and ("error: " in line or _COMMAND.match(line))))


def _major(target: Target, major: int | None) -> int:
    """The target server's major version: `major` when the caller has read it from its connection."""
    if major is not None:
        return major
    with connect(target) as conn:
        return server_version(conn)


def _without_public(target: Target) -> None:
    """Drop the (empty) public schema a new database comes with: the backup's database had none, and pg_dump
    does not record that it was dropped. Left in place where it holds something or may not be dropped:
    the comparison then reports it."""
    with connect(target, autocommit=True) as conn:
        try:
            conn.execute("DROP SCHEMA IF EXISTS public RESTRICT")
        except psycopg.Error:
            pass


def preflight(path: Path, manifest: dict, target: Target, *, major: int | None = None) -> None:
    """Check a backup before anything is touched: its files against the manifest, then a plain dump's
    lines (no psql command, see plain_dump) or an archive's table of contents (`pg_restore --list`).
    Raises BackupError naming what is wrong."""
    bad = [r for r in check_files(path, manifest) if not r["passed"]]
    if bad:
        first = bad[0]
        raise BackupError(f"{path.name} does not match its manifest: {first['object']}: {first['check']} "
                          f"{first['actual']} (expected {first['expected']})")
    check_contents(path, manifest, target, major=major)


def check_contents(path: Path, manifest: dict, target: Target, *, major: int | None = None) -> None:
    """A plain dump's lines hold no psql command (plain_dump.check); an archive's table of contents
    reads (`pg_restore --list`, of the version that restores into `target`, whose server's major
    version is `major`). Raises BackupError naming what is wrong."""
    if manifest["format"] == "plain":
        plain_dump.check(path)
        return
    pg_restore = client_program("pg_restore", target, _major(target, major))
    listed = subprocess.run([str(pg_restore), "--list", str(path)], capture_output=True, text=True)
    if listed.returncode != 0:
        raise BackupError(f"{path.name} is not an archive pg_restore can read: {_first_error(listed.stderr)}")


def restore_into(path: Path, target: Target, manifest: dict, *, major: int | None = None, jobs: int = 2,
                 schema: Path | None = None, owners: bool | None = None) -> bool:
    """Restore the backup at `path` into `target`, and return whether its objects got their owners back;
    `major`: the target server's major version, when the caller has a connection open. A data-only backup goes into the schema already there, or, with
    `schema` (a schema-only custom archive), into an empty database in pg_restore's order: the schema's
    pre-data (types, tables, functions), the data, then its post-data (constraints, indexes, triggers),
    so no foreign key or trigger acts while the rows load.

    `owners`: whether an archive's objects get their owners back (a plain dump always gives them: its
    ALTER … OWNER TO lines). None: where the restoring role is a superuser. Without them every object is
    the restoring role's, and a SECURITY DEFINER function of an application's role would run with the
    restoring role's rights, a superuser's perhaps; a role that is no superuser cannot give objects to
    others, and gets them all (--no-owner)."""
    major = _major(target, major)
    if owners is None:
        owners = _superuser(target)
    if manifest["kind"] != "data" and "public" not in manifest.get("objects", {}).get("schema", {"public": ""}):
        _without_public(target)
    if schema is not None:
        _restore_archive(schema, target, major, 1, ("--section", "pre-data"), owners=owners)
    if manifest["format"] == "plain":
        _restore_plain(path, target, major)
    else:
        # a data-only restore must load tables in foreign-key order: no parallel jobs
        _restore_archive(path, target, major, 1 if manifest["kind"] == "data" else jobs, owners=owners)
    if schema is not None:
        _restore_archive(schema, target, major, jobs, ("--section", "post-data"), owners=owners)
    return owners or manifest["format"] == "plain"


def _superuser(target: Target) -> bool:
    with connect(target, autocommit=True) as conn:
        return conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]
