"""Backups with pg_dump (full, schema-only, data-only; plain, custom or directory format), each
with a JSON manifest beside it: versions, times, size, SHA-256 of every file, and per-table row
counts and content checksums taken in the same snapshot as the dump.

Consistency: one REPEATABLE READ transaction exports its snapshot, pg_dump runs with
`--snapshot` on it, and the same transaction computes the checksums while pg_dump works, so the
manifest describes exactly the data in the dump.
"""

import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

import psycopg
from sqlalchemy.engine import make_url

from . import checksums, objects
from .db import Target, client_program, connect, render, server_version
from .errors import BackupError, ParameterError
from .paths import project_dir
from .sqlfiles import load

KINDS = {"full": [], "schema": ["--schema-only"], "data": ["--data-only"]}
FORMATS = {"plain": ("p", ".sql"), "custom": ("c", ".dump"), "directory": ("d", ".dir")}
MANIFEST_SUFFIX = ".manifest.json"


@dataclass
class Backup:
    path: Path
    manifest: dict

    @property
    def manifest_path(self) -> Path:
        return manifest_path(self.path)


def backups_dir() -> Path:
    """Where backups go by default: $PREP_OPS_BACKUP_DIR, else backups/ in the project (git-ignored)."""
    return Path(os.environ.get("PREP_OPS_BACKUP_DIR") or project_dir() / "backups")


def manifest_path(path: Path) -> Path:
    """The manifest that sits beside a backup file or directory."""
    return path.with_name(path.name + MANIFEST_SUFFIX)


def libpq_env(target: Target) -> tuple[str, dict]:
    """A URL without the password, and an environment carrying it (PGPASSWORD), for client programs:
    a password on a command line shows in the process list."""
    parsed = make_url(target.url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = parsed.password
    return render(parsed.set(password=None)), env


def tables(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """(schema, table) of every user table."""
    return [tuple(r) for r in conn.execute(load("backup", "tables")).fetchall()]


def table_checksums(conn: psycopg.Connection, method: str = checksums.COLUMN_HASH) -> dict[str, dict]:
    """{"schema.table": {"rows": n, "checksum": "..."}} for every user table, in the current snapshot,
    by `method` (see prep_ops.checksums)."""
    return checksums.table_checksums(conn, method)


def schema_summary(conn: psycopg.Connection) -> dict:
    """Tables with their columns and types, constraints and indexes by name: what a restore must recreate."""
    summary: dict[str, dict] = {f"{s}.{t}": {"columns": {}, "constraint": {}, "index": {}} for s, t in tables(conn)}
    for table, column, data_type, not_null in conn.execute(load("backup", "columns")).fetchall():
        summary.setdefault(table, {"columns": {}, "constraint": {}, "index": {}})["columns"][column] = \
            data_type + (" not null" if not_null else "")
    for table, kind, name, definition in conn.execute(load("backup", "constraints")).fetchall():
        summary.setdefault(table, {"columns": {}, "constraint": {}, "index": {}})[kind][name] = definition
    return summary


def identity(conn: psycopg.Connection) -> dict:
    """What tells this database apart from every other: cluster system identifier and name."""
    try:
        with conn.transaction():
            row = conn.execute(load("backup", "identity")).fetchone()
    except psycopg.errors.InsufficientPrivilege:
        row = (None, *conn.execute("SELECT current_database(), (SELECT oid FROM pg_database WHERE datname = "
                                   "current_database())::bigint, inet_server_addr()::text, inet_server_port()").fetchone())
    return {"system_identifier": row[0], "database": row[1], "database_oid": row[2], "address": row[3], "port": row[4]}


def whose(source: dict) -> str:
    """A backup's source in words: database, cluster and server."""
    where = f"{source.get('address')}:{source.get('port')}" if source.get("address") else "a local socket"
    return f"database {source.get('database')} of cluster {source.get('system_identifier') or 'unknown'} ({where})"


def of_database(directory: Path | None, source: dict, kind: str | None = None) -> list["Backup"]:
    """The backups in `directory` of the database `source` identifies (same cluster and name), newest first."""
    return [b for b in listing(directory)
            if same_database(b.manifest["source"], source) and (kind is None or b.manifest.get("kind") == kind)]


def same_database(a: dict, b: dict) -> bool:
    """Whether two identities name the same database of the same cluster."""
    if a["database"] != b["database"]:
        return False
    if a.get("system_identifier") and b.get("system_identifier"):
        return a["system_identifier"] == b["system_identifier"]
    return (a.get("address"), a.get("port")) == (b.get("address"), b.get("port"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_hashes(path: Path) -> dict[str, dict]:
    """{relative name: {"bytes": n, "sha256": hex}} of a backup file or every file of a directory."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    base = path if path.is_dir() else path.parent
    return {str(p.relative_to(base)): {"bytes": p.stat().st_size, "sha256": sha256_of(p)} for p in files}


def _inside(base: Path, name: str) -> Path | None:
    """The file `name` of a backup under `base`, or None when it would lead out of that folder."""
    file = (base / name).resolve()
    return file if file.is_relative_to(base.resolve()) else None


def check_files(path: Path, manifest: dict) -> list[dict]:
    """Report rows (object, check, expected, actual, passed): every file of the manifest present inside
    the backup's folder, of the recorded size and SHA-256. Nothing outside that folder is ever read."""
    base = path if manifest["format"] == "directory" else path.parent
    rows = []

    def row(obj, check, expected, actual, passed):
        rows.append({"object": obj, "check": check, "expected": expected, "actual": actual, "passed": bool(passed)})

    if manifest["format"] == "directory" and not path.is_dir() or manifest["format"] != "directory" and not path.is_file():
        row(path.name, "backup present", "present", "missing", False)
        return rows
    for name, recorded in manifest["files"].items():
        file = _inside(base, name)
        if file is None:
            row(name, "file inside the backup", "inside", "leads out of the backup's folder: not read", False)
            continue
        if not file.is_file():
            row(name, "file present", "present", "missing", False)
            continue
        size = file.stat().st_size
        if size != recorded["bytes"]:
            row(name, "file size", recorded["bytes"], size, False)
            continue
        digest = sha256_of(file)
        row(name, "sha256", recorded["sha256"][:16], digest[:16], digest == recorded["sha256"])
    return rows


def _tool_version(program: Path) -> str:
    out = subprocess.run([str(program), "--version"], capture_output=True, text=True, check=True).stdout
    return out.strip().split()[-1]


def _name(database: str, kind: str, fmt: str, at: datetime) -> str:
    """A backup's file name: database, time, kind and a random part (two backups in one second never collide)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", database)
    return f"{safe}-{at:%Y%m%d-%H%M%S}-{kind}-{secrets.token_hex(3)}{FORMATS[fmt][1]}"


def _private(path: Path) -> None:
    """Backups hold the data: files 0600, folders 0700."""
    for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
        item.chmod(0o700 if item.is_dir() else 0o600)


def backup(target: Target, kind: str = "full", fmt: str = "custom", *, directory: Path | None = None,
           jobs: int = 2, keep: int | None = None) -> Backup:
    """Dump the target with pg_dump and write the manifest beside the dump; returns both.

    `jobs` parallel dump jobs apply to the directory format. `keep` removes all but the newest
    `keep` backups of this database and kind from the folder afterwards.
    """
    if kind not in KINDS:
        raise ParameterError(f"backup kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if fmt not in FORMATS:
        raise ParameterError(f"backup format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if keep is not None and keep < 1:
        raise ParameterError(f"keep must be 1 or more, not {keep}")
    directory = Path(directory) if directory else backups_dir()
    if not directory.exists():
        directory.mkdir(parents=True, mode=0o700)
    started = datetime.now(timezone.utc)
    path = directory / _name(target.database, kind, fmt, started.astimezone())
    url, env = libpq_env(target)
    with connect(target) as conn:
        major = server_version(conn)
        pg_dump = client_program("pg_dump", target, major)
        source = identity(conn)
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        command = [str(pg_dump), "--format", FORMATS[fmt][0], "--file", str(path), "--snapshot", snapshot,
                   "--no-password", *KINDS[kind], "--dbname", url]
        if fmt == "directory" and jobs > 1:
            command += ["--jobs", str(jobs)]
        dump = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:  # the checksums read the same snapshot while pg_dump works
            table_sums = table_checksums(conn)
            summary = schema_summary(conn)
            versions = dict(conn.execute("SELECT version, description FROM schema_version").fetchall()) \
                if any(t == ("public", "schema_version") for t in tables(conn)) else {}
            roles = [r[0] for r in conn.execute(
                "SELECT rolname FROM pg_roles WHERE rolname !~ '^pg_' ORDER BY 1").fetchall()]
            catalog_objects = objects.snapshot(conn)
        finally:
            _, stderr = dump.communicate()
            conn.rollback()
    if dump.returncode != 0:
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        raise BackupError(f"pg_dump failed: {stderr.strip().splitlines()[-1] if stderr.strip() else dump.returncode}")
    manifest = {
        "prep_ops_manifest": 1, "kind": kind, "format": fmt, "database": target.database,
        "source": source, "source_url": target.masked_url, "server_version": major,
        "pg_dump": str(pg_dump), "pg_dump_version": _tool_version(pg_dump),
        "started": started.isoformat(), "finished": datetime.now(timezone.utc).isoformat(),
        "schema_versions": {str(k): v for k, v in versions.items()}, "roles": roles,
        "files": file_hashes(path), "checksum_method": checksums.COLUMN_HASH, "tables": table_sums,
        "schema": summary, "objects": catalog_objects,
    }
    manifest["bytes"] = sum(f["bytes"] for f in manifest["files"].values())
    _private(path)
    mpath = manifest_path(path)
    mpath.touch(mode=0o600)
    mpath.write_text(json.dumps(manifest, indent=2, default=str))
    if keep:
        prune(directory, source, kind, keep)
    return Backup(path, manifest)


def read_manifest(path: Path) -> dict:
    """The manifest of the backup at `path`, or BackupError naming what is missing."""
    path = Path(path)
    if path.name.endswith(MANIFEST_SUFFIX):
        path = path.with_name(path.name[: -len(MANIFEST_SUFFIX)])
    mpath = manifest_path(path)
    if not mpath.exists():
        raise BackupError(f"no manifest beside {path} (expected {mpath.name}); was it made by prep-ops backup?")
    try:
        manifest = json.loads(mpath.read_text())
    except json.JSONDecodeError as exc:
        raise BackupError(f"the manifest {mpath} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    problem = manifest_problem(manifest, path)
    if problem:
        raise BackupError(f"{mpath} is not a prep-ops backup manifest: {problem}")
    return manifest


_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "true or false", type(None): "null"}
# what verify, restore and listing read from a manifest, and the JSON type each must have
_MANIFEST_FIELDS = {"kind": str, "format": str, "database": str, "source": dict, "started": str, "finished": str,
                    "bytes": int, "files": dict, "tables": dict, "schema": dict}


def _json_type(value) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def manifest_problem(manifest, path: Path | None = None) -> str | None:
    """What keeps `manifest` (parsed JSON) from being a prep-ops backup manifest (of the backup at
    `path`, when given), or None."""
    if not isinstance(manifest, dict):
        return f"it holds {_json_type(manifest)}, not an object"
    for key, kind in _MANIFEST_FIELDS.items():
        if key not in manifest:
            return f"it has no {key!r}"
        if not isinstance(manifest[key], kind) or isinstance(manifest[key], bool):
            return f"its {key!r} is {_json_type(manifest[key])}, not {_JSON_TYPES[kind]}"
    if manifest["kind"] not in KINDS or manifest["format"] not in FORMATS:
        return f"kind {manifest['kind']!r} or format {manifest['format']!r} is not one prep-ops makes"
    if not isinstance(manifest["source"].get("database"), str):
        return "its 'source' names no database"
    if manifest.get("checksum_method", checksums.UNNAMED_METHOD) not in checksums.METHODS:
        return (f"checksum method {manifest['checksum_method']!r} is unknown to this prep-ops "
                f"(it knows {', '.join(checksums.METHODS)})")
    recorded = manifest.get("objects", {})
    if not (isinstance(recorded, dict) and all(isinstance(v, dict) and all(isinstance(d, str) for d in v.values())
                                               for v in recorded.values())):
        return "its 'objects' is not an object of definitions by kind"
    for key in ("started", "finished"):
        try:
            datetime.fromisoformat(manifest[key])
        except ValueError:
            return f"its {key!r} is not a date and time: {manifest[key][:40]!r}"
    if not manifest["files"]:
        return "it lists no files"
    for name, entry in manifest["files"].items():
        parts = PurePosixPath(name).parts
        if not name or name.startswith(("/", "\\")) or ".." in parts or "\\" in name or ":" in name:
            return f"file {name[:60]!r} is not a name inside the backup's folder"
        if manifest["format"] != "directory" and len(parts) != 1:
            return f"file {name[:60]!r} of a single-file backup is in a subfolder"
        if not (isinstance(entry, dict) and isinstance(entry.get("bytes"), int) and isinstance(entry.get("sha256"), str)):
            return f"file {name!r} has no bytes and sha256"
    if path is not None and manifest["format"] != "directory" and list(manifest["files"]) != [path.name]:
        return f"it describes {', '.join(list(manifest['files'])[:3])[:80]!r}, not {path.name!r}"
    for name, entry in manifest["tables"].items():
        if not (isinstance(entry, dict) and isinstance(entry.get("rows"), int) and isinstance(entry.get("checksum"), str)):
            return f"table {name!r} has no rows and checksum"
    for name, entry in manifest["schema"].items():
        if not (isinstance(entry, dict) and all(isinstance(entry.get(k), dict) for k in ("columns", "constraint", "index"))):
            return f"the schema of table {name!r} has no columns, constraints and indexes"
    return None


def listing(directory: Path | None = None) -> list[Backup]:
    """Backups in `directory` that have a valid manifest, newest first."""
    directory = Path(directory) if directory else backups_dir()
    found = []
    for mpath in directory.glob(f"*{MANIFEST_SUFFIX}"):
        path = mpath.with_name(mpath.name[: -len(MANIFEST_SUFFIX)])
        try:
            manifest = json.loads(mpath.read_text())
        except json.JSONDecodeError:
            continue
        if manifest_problem(manifest, path) is None:
            found.append(Backup(path, manifest))
    return sorted(found, key=lambda b: b.manifest.get("started", ""), reverse=True)


def prune(directory: Path, source: dict, kind: str, keep: int) -> list[Path]:
    """Remove all but the newest `keep` backups of the database `source` identifies (same cluster and
    name) and `kind`; returns what was removed. Another server's backups of a same-named database stay."""
    mine = of_database(directory, source, kind)
    removed = []
    for old in mine[keep:]:
        if old.path.is_dir():
            shutil.rmtree(old.path)
        else:
            old.path.unlink(missing_ok=True)
        old.manifest_path.unlink(missing_ok=True)
        removed.append(old.path)
    return removed
