"""Backups with pg_dump (full, schema-only, data-only; plain, custom or directory format), each
with a JSON manifest beside it (see manifest): versions, times, size, SHA-256 of every file, and
per-table row counts and content checksums taken in the same snapshot as the dump.

Consistency: one REPEATABLE READ transaction exports its snapshot, pg_dump runs with
`--snapshot` on it, and the same transaction computes the checksums while pg_dump works, so the
manifest describes exactly the data in the dump.

Where that snapshot is in the WAL ("snapshot" in the manifest, for verify --chain: see chain_verify):
the WAL insert position read in the snapshot's own first statement, right after the snapshot is taken
("lsn"), one read just before it ("lsn_before"), the time, and the snapshot's transactions ("xids":
xmin:xmax:in-progress). A transaction's commit record is written before it becomes visible, so every
commit the snapshot sees lies before "lsn": replaying the WAL up to it holds all of the snapshot, plus
any commit that wrote its record but was not yet visible when the snapshot was taken, or that came in
the microseconds between the two (chain_verify finds those and cuts before them). On a standby, which
writes no WAL of its own, nothing is recorded.

A data-only backup carries a schema-only dump (custom format, `<name>.schema.dump` beside it, hashed
in the manifest's "schema_dump") taken by a second pg_dump on the same snapshot: used only to verify it
on any server (the schema's pre-data, the data, then its post-data), never by a restore into a named
database, which keeps that database's own schema.

Compression (custom and directory archives): pg_dump's default, gzip at level 6, keeps pg_dump busy
on zlib (20 of a dump's 26 CPU-s at 1,000,000 students); gzip at level 1 dumps the same data in a
third of the time for a file 29 % larger (benchmarks/README.md). zstd:1 and lz4 (pg_dump 16 and newer,
when built with them) compress faster still at sizes near gzip's, and come first in COMPRESSIONS, but
only when the embedded build (whose pg_restore restores every verification, and which is built without
them today) reads them too. The manifest records the one used ("compression").

Behind another session's lock (LOCK_WAIT): pg_dump takes an ACCESS SHARE lock on every table it dumps,
and the checksums read every table, so an ACCESS EXCLUSIVE lock held by another session (VACUUM FULL,
REINDEX, LOCK TABLE, most ALTER TABLE, or a transaction left open after one) stops the backup until it
ends. Waiting for ever was the old way, silently: a nightly job sat for hours, held its snapshot open (so
vacuum could remove nothing anywhere) and its ACCESS SHARE locks on the tables it had locked (so the next
ALTER TABLE queued behind it, and every query behind that), and reported nothing until the holder ended.
The decision, a DBA's: wait `lock_wait` seconds (LOCK_WAIT, 120, by default: a short DDL or REINDEX of a
small table ends in that time; a VACUUM FULL of a large one, or a session left idle in its transaction,
does not) for any one lock (pg_dump's --lock-wait-timeout; lock_timeout on the snapshot's connection,
which the checksums' connections take too), then fail: the dump begun is removed, nothing is reported
made, and one BackupError line names the table(s) and the session holding them (pid, application, user,
state, since when its transaction is open), exit non-zero for cron. A backup that waited would be one
that did not finish; a failed one is seen by morning and taken again once the lock is gone. `lock_wait=0`
waits as long as it takes (for a known long VACUUM FULL). With `say` (the CLI at a terminal), every
lock_watch.EVERY seconds of waiting says which session the backup waits for.
"""

import contextlib
import functools
import os
import re
import secrets
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import psycopg

from . import checksums, embedded, lock_watch, objects, orphans
from .db import Target, client_program, conninfo, connect, libpq_url, server_version, snapshot, tagged
from .errors import BackupError, ParameterError, PrepOpsError, program_error
from .sqlfiles import load
# the backup layer's names, importable from here as callers always have
from .manifest import (FORMATS, KINDS, Backup, Pruned, backups_dir, check_files, file_hashes, identity, latest,  # noqa: F401
                       listing, manifest_path, of_database, read_manifest, same_database, schema_dump_path,
                       sha256_of, surely_same_database, whose, write_manifest)

SCHEMA_SUFFIX = ".schema.dump"  # beside a data-only backup: its schema, from the same snapshot
# (manifest name, pg_dump --compress value), the preferred first; a bare level is gzip on every pg_dump
COMPRESSIONS = (("zstd:1", "zstd:1"), ("lz4", "lz4"), ("gzip:1", "1"))
LOCK_WAIT = 120.0  # seconds a backup waits for any one lock another session holds (see the module's docstring)

table_checksums = checksums.table_checksums  # {"schema.table": {"rows": n, "checksum": "..."}}


def libpq_env(target: Target) -> tuple[str, dict]:
    """A URL without the password, and an environment carrying it (PGPASSWORD), for client programs:
    a password on a command line shows in the process list."""
    params = conninfo(target.url)
    password = params.pop("password", None)
    env = dict(os.environ) | ({"PGPASSWORD": password} if password else {})
    return libpq_url(params), env


def _is_ours(conn: psycopg.Connection) -> bool:
    """Whether public.schema_version has the migrations' columns (another tool's table of that name, such
    as an old Flyway's, may not: it is then left out, not read)."""
    return conn.execute(load("backup", "schema_version_columns")).fetchone()[0]


def _contents(conn: psycopg.Connection, target: Target, sequences: dict[str, str],
              application_name: str = checksums.HELPER_NAME) -> dict:
    """The manifest's description of the database, read in the caller's snapshot: per-table checksums
    (on several connections to `target` importing that snapshot, named `application_name`), schema,
    applied migrations, roles and every other object, with `sequences` (read before the dump started)."""
    versions = {}
    if ("public", "schema_version") in objects.tables(conn) and _is_ours(conn):
        # qualified: the session's search_path may lack public, or name another schema's schema_version first
        versions = {str(k): v for k, v in conn.execute("SELECT version, description FROM public.schema_version")}
    roles = [r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname !~ '^pg_' ORDER BY 1").fetchall()]
    return {"schema_versions": versions, "roles": roles, "checksum_method": checksums.COLUMN_HASH,
            "tables": checksums.table_checksums(conn, target=target, application_name=application_name),
            "deparse_settings": objects.DEPARSE_SETTINGS,
            "schema": objects.schema_summary(conn),
            "objects": {**objects.snapshot(conn, sequences=False), "sequence": sequences}}


def _tool_version(program: Path) -> str:
    out = subprocess.run([str(program), "--version"], capture_output=True, text=True, check=True).stdout
    return out.strip().split()[-1]


@functools.cache
def _supports(pg_dump: Path, option: str) -> bool:
    """Whether `pg_dump` takes `--compress option`: pg_dump checks the compression before it connects, so
    it is asked to dump from a socket folder that does not exist and its complaint, if any, is read."""
    probe = subprocess.run([str(pg_dump), "--format", "c", "--compress", option, "--file", os.devnull, "--no-password",
                            "--dbname", "host=/nonexistent/prep-ops-probe dbname=probe"],
                           capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
    return "compress" not in probe.stderr


def compression(pg_dump: Path) -> tuple[str, str] | None:
    """(name for the manifest, --compress value) of the first of COMPRESSIONS that `pg_dump` and the
    embedded build (whose pg_restore restores verifications) both take; None: pg_dump's default."""
    restorer = embedded.bin_dir() / "pg_dump"
    for name, option in COMPRESSIONS:
        if _supports(Path(pg_dump), option) and (not restorer.exists() or _supports(restorer, option)):
            return name, option
    return None


def _name(database: str, kind: str, fmt: str, at: datetime) -> str:
    """A backup's file name: database, time, kind and a random part (two backups in one second never collide)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", database)
    return f"{safe}-{at:%Y%m%d-%H%M%S}-{kind}-{secrets.token_hex(3)}{FORMATS[fmt][1]}"


def _private(path: Path) -> None:
    """Backups hold the data: files 0600, folders 0700."""
    for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
        item.chmod(0o700 if item.is_dir() else 0o600)


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def _check_options(kind: str, fmt: str, keep: int | None, lock_wait: float = LOCK_WAIT) -> None:
    if kind not in KINDS:
        raise ParameterError(f"backup kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if fmt not in FORMATS:
        raise ParameterError(f"backup format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if keep is not None and keep < 1:
        raise ParameterError(f"keep must be 1 or more, not {keep}")
    if not isinstance(lock_wait, (int, float)) or isinstance(lock_wait, bool) or not 0 <= lock_wait < 86400:
        raise ParameterError(f"lock_wait must be seconds from 0 (no limit) to a day, not {lock_wait!r}")


def backup(target: Target, kind: str = "full", fmt: str = "custom", *, directory: Path | None = None,
           jobs: int = 2, keep: int | None = None, lock_wait: float = LOCK_WAIT, say=None) -> Backup:
    """Dump the target with pg_dump and write the manifest beside the dump; returns both.

    `jobs` parallel dump jobs apply to the directory format. `keep` removes all but the newest
    `keep` backups of this database (same cluster, name and OID) and kind from the folder afterwards; the
    returned Backup's `pruned` says what it removed and which backups of a same-named database under
    another OID it left (see prune). Behind another session's lock the backup waits `lock_wait` seconds
    (0: no limit) for any one lock, then raises BackupError naming the table and the session holding it,
    and keeps nothing (see the module's docstring); with `say`, it says every few seconds meanwhile which
    session it waits for.
    """
    _check_options(kind, fmt, keep, lock_wait)
    directory = Path(directory) if directory else backups_dir()
    if not directory.exists():
        directory.mkdir(parents=True, mode=0o700)
    started = datetime.now(timezone.utc)
    path = directory / _name(target.database, kind, fmt, started.astimezone())
    schema = path.with_name(path.name + SCHEMA_SUFFIX)
    try:  # whatever stops it (a full disk, the server going away, Ctrl-C) leaves no dump without its manifest
        manifest, source = _dump(target, kind, fmt, path, schema, started, jobs, lock_wait, say)
    except BaseException as exc:
        _remove(path)
        _remove(schema)
        if isinstance(exc, OSError):  # a full disk says neither which file nor what was being done
            raise BackupError(f"backing up {target.database} into {directory} failed: {exc.strerror or exc}; "
                              "nothing of it is kept") from None
        raise
    pruned = prune(directory, source, kind, keep) if keep else None
    return Backup(path, manifest, pruned)


def _dump(target: Target, kind: str, fmt: str, path: Path, schema: Path, started: datetime,
          jobs: int, lock_wait: float = LOCK_WAIT, say=None) -> tuple[dict, dict]:
    """pg_dump of the target into `path` (a data backup's schema into `schema`) and its manifest beside
    it; returns the manifest and the source's identity."""
    url, env = libpq_env(target)
    # every session of this backup carries one name (its pg_dump's by PGAPPNAME): the lock watch finds them all
    name = f"prep-ops:backup {secrets.token_hex(3)}"
    env["PGAPPNAME"] = tagged(name)
    wait_ms = round(lock_wait * 1000)
    with connect(target, autocommit=True, application_name=name) as conn:
        major = server_version(conn)
        pg_dump = client_program("pg_dump", target, major)
        source = identity(conn)
        before = conn.execute("SELECT CASE WHEN pg_is_in_recovery() THEN NULL "
                              "ELSE pg_current_wal_insert_lsn()::text END").fetchone()[0]
        watch = (lock_watch.watching(target, conn.info.backend_pid, say, lock_watch.EVERY,
                                     application_name=tagged(name)) if say else contextlib.nullcontext())
        try:
            with snapshot(conn), watch:
                exported, lsn, taken, xids = conn.execute(load("manifest", "snapshot_position")).fetchone()
                # after the snapshot's first statement (it takes the snapshot); the checksums' connections take it too
                conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{wait_ms}ms",))
                before_dump = objects.sequences(conn)  # and again after it: the dump's values lie between (objects.MOVED)
                waits = ["--lock-wait-timeout", str(wait_ms)] if wait_ms else []
                command = [str(pg_dump), "--format", FORMATS[fmt][0], "--file", str(path), "--snapshot", exported,
                           "--no-password", *waits, *KINDS[kind], "--dbname", url]
                if fmt == "directory" and jobs > 1:
                    command += ["--jobs", str(jobs)]
                packed = compression(pg_dump) if fmt != "plain" else None  # a plain dump stays text psql reads
                if packed:
                    command[1:1] = ["--compress", packed[1]]
                # pg_dump dies with us (kill -9 too), never writing on into a file no manifest will describe
                dumps = [subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                          text=True, preexec_fn=orphans.die_with_parent())]
                if kind == "data":  # the schema it goes into, from the same snapshot
                    dumps.append(subprocess.Popen([str(pg_dump), "--format", "c", "--file", str(schema), "--snapshot",
                                                   exported, "--no-password", *waits, "--schema-only", "--dbname", url],
                                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                                  preexec_fn=orphans.die_with_parent()))
                try:  # the checksums read the same snapshot while pg_dump works
                    contents = _contents(conn, target, before_dump, name)
                    errors = [dump.communicate()[1] for dump in dumps]
                    moved = {seq: state for seq, state in objects.sequences(conn).items() if state != before_dump.get(seq)}
                    if moved:
                        contents["objects"][objects.MOVED] = moved
                except BaseException:  # failed or interrupted (Ctrl-C, SIGTERM): pg_dump is stopped, never waited for
                    for dump in dumps:  # (it may wait on another session's lock for as long as that runs)
                        dump.terminate()
                    for dump in dumps:
                        dump.communicate()
                    raise
        except psycopg.errors.LockNotAvailable:  # the checksums' or the definitions' read gave up (the snapshot ended)
            raise BackupError(_locked(conn, target, lock_wait)) from None
        except PrepOpsError as exc:  # the checksums could not read every row (row-level security): a backup's error
            if isinstance(exc, BackupError):
                raise
            raise BackupError(str(exc)) from None
        failed = [(dump, err) for dump, err in zip(dumps, errors) if dump.returncode != 0]
        if failed:
            _remove(path)
            _remove(schema)
            dump, err = failed[0]
            if any(_gave_up_on_a_lock(err) for _, err in failed):
                raise BackupError(_locked(conn, target, lock_wait))
            raise BackupError(f"pg_dump failed: {program_error(err) if err.strip() else dump.returncode}")
    files = file_hashes(path)
    manifest = {
        "prep_ops_manifest": 1, "kind": kind, "format": fmt, "database": target.database,
        "source": source, "source_url": target.masked_url, "server_version": major,
        "pg_dump": str(pg_dump), "pg_dump_version": _tool_version(pg_dump),
        "compression": packed[0] if packed else ("none" if fmt == "plain" else "pg_dump's default"),
        "started": started.isoformat(), "finished": datetime.now(timezone.utc).isoformat(),
        "schema_versions": contents["schema_versions"], "roles": contents["roles"], "files": files,
        "checksum_method": contents["checksum_method"], "tables": contents["tables"],
        "schema": contents["schema"], "objects": contents["objects"], "deparse_settings": contents["deparse_settings"],
        "bytes": sum(f["bytes"] for f in files.values()),
    }
    if lsn is not None:  # where the snapshot is in the WAL (see the module's docstring): verify --chain
        manifest["snapshot"] = {"lsn": lsn, "lsn_before": before, "time": taken.isoformat(), "xids": xids}
    if kind == "data":
        manifest["schema_dump"] = {"file": schema.name, "bytes": schema.stat().st_size, "sha256": sha256_of(schema)}
        _private(schema)
    _private(path)
    write_manifest(path, manifest)
    return manifest, source


def _gave_up_on_a_lock(stderr: str) -> bool:
    """Whether pg_dump ended because its --lock-wait-timeout ran out while it locked the tables (its
    statement_timeout cancelled a LOCK TABLE)."""
    return "statement timeout" in stderr and "LOCK TABLE" in stderr


def _locked(conn: psycopg.Connection, target: Target, lock_wait: float) -> str:
    """The one line of a backup that gave up behind another session's lock: which tables, who holds them."""
    holders = lock_watch.exclusive_holders(conn)
    who = lock_watch.who(holders)
    first = next((h.pid for h in holders if h.pid is not None and h.granted), None)  # a holder's, never a queued one's
    end = f", or end that session (SELECT pg_terminate_backend({first}))" if first is not None else ""
    return (f"backup of {target.database} stopped after waiting {lock_wait:g} s for a lock (--lock-wait): {who}; "
            f"no backup was made and nothing of it is kept: take it again when that ends{end}")


def prune(directory: Path, source: dict, kind: str, keep: int) -> Pruned:
    """Remove all but the newest `keep` backups of the database `source` identifies (surely the same
    cluster and name: see manifest.surely_same_database, and the same database OID) and `kind`; returns
    what was removed, and what was left that a person must decide on.

    Another server's backups of a same-named database stay, and so does one whose cluster is unknown, and
    one of a database of that name on this cluster under another OID: one dropped and made again since, or
    the one a restore swapped out (a restore loads into a new database and swaps names, so the restored
    database has a new OID). Its backups may be all that is left of its data, so --keep never removes them;
    it counts them by OID in `Pruned.left` (the CLI and runbook 04 say so in one line, naming the folder),
    so that they do not pile up unseen. A data backup's schema dump goes with it only under the name
    backup() gave it (a manifest is data: the file it names may be another backup)."""
    oid = source.get("database_oid")
    done = Pruned(directory, source["database"], kind, oid)
    ours = []
    for found in of_database(directory, source, kind):
        if not surely_same_database(found.manifest["source"], source):
            continue  # another server's, or one whose cluster is unknown: neither removed nor counted
        if oid is not None and found.manifest["source"].get("database_oid") == oid:
            ours.append(found)
        else:
            done.left.setdefault(found.manifest["source"].get("database_oid"), []).append(found.path)
    for old in ours[keep:]:
        _remove(old.path)
        companion = schema_dump_path(old.path, old.manifest)
        if companion is not None and companion == old.path.with_name(old.path.name + SCHEMA_SUFFIX).resolve():  # beside it only
            _remove(companion)
        old.manifest_path.unlink(missing_ok=True)
        done.removed.append(old.path)
    return done


def holds(manifest: dict) -> str:
    """What a backup holds, in words: rows and tables for full and data backups (a partitioned table's
    rows counted once, in its partitions), tables only for a schema backup, which holds no rows."""
    tables = manifest["tables"]
    if manifest["kind"] == "schema":
        return f"{len(tables)} tables, schema only: no rows"
    return f"{sum(t['rows'] for t in tables.values()):,} rows in {len(tables)} tables"
