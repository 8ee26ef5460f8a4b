"""Restore a prep-ops backup into a database, and the guide's restores into a named target.

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
from psycopg import sql

from . import backup as backups
from . import objects, plain_dump
from .db import Target, client_program, connect, require_change, server_version, snapshot
from .errors import BackupError, ConfirmationRequired
from .manifest import check_files, identity, read_manifest, same_database

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
        process = subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr)
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
    lines = [line for line in stderr.strip().splitlines() if "ERROR" in line or "error" in line]
    return (lines[0] if lines else stderr.strip().splitlines()[-1] if stderr.strip() else "unknown error")[:300]


def _restore_archive(path: Path, target: Target, major: int, jobs: int) -> None:
    url, env = backups.libpq_env(target)
    pg_restore = client_program("pg_restore", target, major)  # the newest: older ones cannot read newer dumps
    command = [str(pg_restore), "--no-owner", "--dbname", url, str(path)]
    if jobs > 1:
        command[1:1] = ["--jobs", str(jobs)]
    if major >= 17:
        command.insert(1, "--exit-on-error")
    result = subprocess.run(command, env=env, capture_output=True, text=True)
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
    raise BackupError(f"restore of {path.name} failed: {_first_error(result.stderr)}")


def _major(target: Target, major: int | None) -> int:
    """The target server's major version: `major` when the caller has read it from its connection."""
    if major is not None:
        return major
    with connect(target) as conn:
        return server_version(conn)


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


def restore_into(path: Path, target: Target, manifest: dict, *, major: int | None = None, jobs: int = 2) -> None:
    """Restore the backup at `path` into `target` (schema must already exist for data-only dumps);
    `major`: the target server's major version, when the caller has a connection open."""
    major = _major(target, major)
    if manifest["format"] == "plain":
        _restore_plain(path, target, major)
    else:
        # a data-only restore must load tables in foreign-key order: no parallel jobs
        _restore_archive(path, target, major, 1 if manifest["kind"] == "data" else jobs)


def is_empty(conn: psycopg.Connection) -> bool:
    """Whether the database holds no user tables at all."""
    return not objects.tables(conn)


def _holding_rows(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """(schema, table) of the user tables that hold at least one row."""
    return [(s, t) for s, t in objects.tables(conn)
            if conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(s, t))).fetchone()[0]]


def clear(conn: psycopg.Connection, kind: str, *, confirm: bool = False) -> None:
    """Empty the database for a restore of a `kind` backup, in one transaction: every table's rows for
    data (only tables that hold any: an append-only one, such as the audit log, refuses even an empty
    TRUNCATE), else every schema (public made again, empty)."""
    require_change(conn, confirm, "clearing it for a restore")
    with conn.transaction():
        if kind == "data":
            names = [sql.Identifier(s, t) for s, t in _holding_rows(conn)]
            if names:
                conn.execute(sql.SQL("TRUNCATE {} CASCADE").format(sql.SQL(", ").join(names)))
            return
        schemas = [r[0] for r in conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND nspname NOT LIKE 'pg_%'").fetchall()]
        for schema in schemas:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        conn.execute("CREATE SCHEMA IF NOT EXISTS public")


def restore(path: Path, target: Target, *, confirm: bool = False, safety_dir: Path | None = None) -> dict:
    """The guide's restore of a backup (full, schema or data) into the named `target`.

    A target that holds tables (full/schema) or rows (data) is only touched with `confirm=True`,
    and then a safety backup of it is taken first. Returns what was done.
    """
    path = Path(path)
    manifest = read_manifest(path)
    with connect(target, autocommit=True) as conn:
        major = server_version(conn)
        preflight(path, manifest, target, major=major)  # before anything is touched
        with snapshot(conn):
            its_source = same_database(identity(conn), manifest["source"])
            occupied = bool(_holding_rows(conn)) if manifest["kind"] == "data" else not is_empty(conn)
        if its_source and not confirm:
            raise ConfirmationRequired(f"{target.database} is the database this backup was taken from; "
                                       "restoring over it needs confirm=True")
        safety = None
        if occupied:
            if not confirm:
                what = "rows" if manifest["kind"] == "data" else "tables"
                raise ConfirmationRequired(f"{target.database} already holds {what}; restoring replaces them: "
                                           "pass confirm=True (a safety backup is taken first)")
            safety = backups.backup(target, "full", "custom", directory=safety_dir)
            clear(conn, manifest["kind"], confirm=confirm)
        restore_into(path, target, manifest, major=major)
    return {"restored": str(path), "into": target.masked_url, "kind": manifest["kind"],
            "safety_backup": str(safety.path) if safety else None}
