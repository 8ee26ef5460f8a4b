"""The copy out of a recovery cluster: a database there becomes a new database on the target server.

pg_dump in directory format with JOBS parallel jobs, uncompressed and not fsynced (the dump is
thrown away: it lives in `dump/` inside the recovery cluster's own folder and goes with it), then
pg_restore with JOBS jobs into a new database the caller names (pitr: `prep_ops_recover_<run id>`,
renamed only when complete). The target server keeps every guarantee of its own: nothing is set there.
Why this shape and not the pipe it replaced (pg_dump -Fc | pg_restore, one job): benchmarks/README.md,
"Point-in-time recovery".

Kill-safety: pg_dump and pg_restore die with this process (a parent-death signal; each forwards it to
its own worker processes); the dump folder is removed here when the copy ends, however it ends, and a
killed run's folder goes with its recovery cluster (the next run's recovery_cluster.remove_stale); the
half-made database is dropped here when anything fails, and a killed run's by the next run (pitr).
"""

import os
import shutil
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from . import orphans, pg_binaries, pitr_checks
from .backup import libpq_env
from .db import Target
from .errors import BackupError
from .sqlfiles import load

DUMP_FOLDER = "dump"  # inside the recovery cluster's folder
# one job per core, at least 2 (a dump job and the server that feeds it overlap even on one core), at
# most 8: each job is a connection to the target server, and more jobs than tables gain nothing
JOBS = min(max(os.cpu_count() or 2, 2), 8)


def copy_database(cluster, database: str, target: Target, conn: psycopg.Connection, into: str, major: int, *,
                  no_owner: bool = False, jobs: int = JOBS) -> None:
    """Copy `database` of the recovery `cluster` into a new database `into` on the server of `conn`
    (`target`: how client programs reach it) with the binaries of `major`; `no_owner`: --no-owner
    --no-privileges. BackupError naming the failing program's ERROR line; `into` is dropped and the dump
    folder removed when anything fails."""
    conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(into)))
    folder = Path(cluster.folder) / DUMP_FOLDER
    jobs = restore_jobs(conn, jobs)
    try:
        url, env = libpq_env(target.with_database(into))
        _run([pg_binaries.program("pg_dump", major), "--format=directory", f"--jobs={jobs}", "--compress=0",
              "--no-sync", "--no-password", "-f", folder, "-d", cluster.url(database)], database, os.environ)
        _run([pg_binaries.program("pg_restore", major), "--exit-on-error", f"--jobs={jobs}", "--no-password",
              *(["--no-owner", "--no-privileges"] if no_owner else []), "-d", url, folder], database, env)
    except BaseException:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(into)))
        raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def restore_jobs(conn: psycopg.Connection, jobs: int) -> int:
    """`jobs`, or fewer when the server or the connecting role has fewer connections to spare:
    pg_restore --jobs N opens N + 1 (its leader and N workers), and a copy that fails on "too many
    clients" where one job would have worked helps no one at 3 a.m. At least 1."""
    spare = conn.execute(load("pitr", "spare_connections")).fetchone()[0]
    return max(1, min(jobs, (spare if spare is not None else jobs + 1) - 1))


def _run(command: list, database: str, env: dict) -> None:
    """Run pg_dump or pg_restore (dying with this process); BackupError with its ERROR line if it fails."""
    process = subprocess.Popen([str(part) for part in command], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, env=env, preexec_fn=orphans.die_with_parent())
    try:
        _, stderr = process.communicate()
    except BaseException:  # interrupted: SIGTERM, which both pass to their workers (SIGKILL would orphan them)
        process.terminate()
        process.wait()
        raise
    if process.returncode:
        raise BackupError(f"copying {database} out of the recovery cluster failed: {Path(command[0]).name}: "
                          f"{pitr_checks.error_line(stderr)}")
