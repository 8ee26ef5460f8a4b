"""What a backup is and where it lives: the JSON manifest beside each dump (read, checked, written),
the identity of the database a backup was taken from, and the backups of one database in a folder.

A manifest holds versions, times, size, the SHA-256 of every file, per-table row counts and content
checksums, and the objects of the database. Nothing here runs pg_dump (see backup) or restores.
"""

import hashlib
import json
import os
import re
import secrets
import stat
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath

import psycopg

from . import checksums, objects
from ._report import row
from .errors import BackupError, NoBackups
from .paths import project_dir
from .sqlfiles import load

KINDS = {"full": [], "schema": ["--schema-only"], "data": ["--data-only"]}  # with the pg_dump options of each
FORMATS = {"plain": ("p", ".sql"), "custom": ("c", ".dump"), "directory": ("d", ".dir")}
MANIFEST_SUFFIX = ".manifest.json"
# The most of a manifest ever read (and written). Measured: about 700 bytes a table (2,000 tables with a
# key, an index and a CHECK: 1.3 MiB; pagila, 71 tables and its functions: 92 KiB); 64 MiB holds some
# 90,000 such tables. A bigger "manifest" (a link to a disk image, a log that grew there) is refused
# after reading at most this much plus one byte, never loaded whole.
MANIFEST_MAX_BYTES = 64 << 20
_LSN = re.compile(r"[0-9A-F]{1,8}/[0-9A-F]{1,8}")
_XIDS = re.compile(r"\d+:\d+:(\d+(,\d+)*)?")  # pg_snapshot's text: xmin:xmax:in-progress,...


@dataclass
class Pruned:
    """What `backup --keep` did in a folder: the backups of this database (same cluster, name and OID) and
    kind it removed, and those of a database of the same name on the same cluster under another OID that it
    left ("left": their paths by OID; None where the manifest recorded none). Those come from before a
    restore (which swaps in a new database) or a DROP and CREATE of that name: the backups of a dropped
    database may be all that is left of its data, so only a person removes them."""

    directory: Path
    database: str
    kind: str
    oid: int | None
    removed: list[Path] = field(default_factory=list)
    left: dict[int | None, list[Path]] = field(default_factory=dict)

    def note(self) -> str | None:
        """The backups left, in one line for the DBA (None: none left)."""
        count = sum(len(paths) for paths in self.left.values())
        if not count:
            return None
        known = sorted(oid for oid in self.left if oid is not None)
        oids = "; ".join(([f"OID{'s' if len(known) > 1 else ''} {', '.join(map(str, known))}"] if known else [])
                         + (["no OID recorded"] if None in self.left else []))
        return (f"left {count} {self.kind} backup{'s' if count != 1 else ''} of "
                f"{'another database' if len(self.left) == 1 else 'other databases'} named "
                f"{self.database} on this cluster ({oids}), from before a restore or a drop and create of that "
                f"name: --keep removes only this database's (OID {self.oid}); remove {'it' if count == 1 else 'them'} "
                f"by hand from {self.directory} once {'it is' if count == 1 else 'they are'} not needed")


@dataclass
class Backup:
    path: Path
    manifest: dict
    pruned: Pruned | None = None  # what --keep did after this backup was made (None: no --keep)

    @property
    def manifest_path(self) -> Path:
        return manifest_path(self.path)


def backups_dir() -> Path:
    """Where backups go by default: $PREP_OPS_BACKUP_DIR, else backups/ in the project (git-ignored)."""
    return Path(os.environ.get("PREP_OPS_BACKUP_DIR") or project_dir() / "backups")


def manifest_path(path: Path) -> Path:
    """The manifest that sits beside a backup file or directory."""
    return path.with_name(path.name + MANIFEST_SUFFIX)


# --- whose backup -------------------------------------------------------------------------------
def identity(conn: psycopg.Connection) -> dict:
    """What tells this database apart from every other: cluster system identifier and name."""
    try:
        with conn.transaction():
            found = conn.execute(load("manifest", "identity")).fetchone()
    except psycopg.errors.InsufficientPrivilege:
        found = (None, *conn.execute("SELECT current_database(), (SELECT oid FROM pg_database WHERE datname = "
                                     "current_database())::bigint, inet_server_addr()::text, inet_server_port()").fetchone())
    return {"system_identifier": found[0], "database": found[1], "database_oid": found[2], "address": found[3],
            "port": found[4]}


def whose(source: dict) -> str:
    """A backup's source in words: database, cluster and server."""
    where = f"{source.get('address')}:{source.get('port')}" if source.get("address") else "a local socket"
    return f"database {source.get('database')} of cluster {source.get('system_identifier') or 'unknown'} ({where})"


def same_database(a: dict, b: dict) -> bool:
    """Whether two identities name the same database of the same cluster."""
    if a["database"] != b["database"]:
        return False
    if a.get("system_identifier") and b.get("system_identifier"):
        return a["system_identifier"] == b["system_identifier"]
    return (a.get("address"), a.get("port")) == (b.get("address"), b.get("port"))


def surely_same_database(a: dict, b: dict) -> bool:
    """Whether two identities name the same database of the same cluster beyond doubt, as deleting a
    backup needs (`same_database` gives a refusal the benefit of the doubt): both carry the cluster's
    system identifier and they are equal; where neither carries one, both were reached at one TCP address
    and port. An identity without one beside an identity with one, or two reached over Unix sockets, may
    be another cluster's database of the same name: not surely the same."""
    if a["database"] != b["database"]:
        return False
    if a.get("system_identifier") or b.get("system_identifier"):
        return a.get("system_identifier") == b.get("system_identifier")
    return a.get("address") is not None and (a.get("address"), a.get("port")) == (b.get("address"), b.get("port"))


# --- the backups in a folder ----------------------------------------------------------------------
def listing(directory: Path | None = None) -> list[Backup]:
    """Backups in `directory` that have a valid manifest, newest first."""
    directory = Path(directory) if directory else backups_dir()
    found = []
    for mpath in directory.glob(f"*{MANIFEST_SUFFIX}"):
        path = mpath.with_name(mpath.name[: -len(MANIFEST_SUFFIX)])
        try:  # anything that is not a readable manifest file is no backup, and keeps no other from being listed
            manifest = json.loads(_manifest_text(mpath))
        except (BackupError, json.JSONDecodeError):
            continue
        if manifest_problem(manifest, path) is None:
            found.append(Backup(path, manifest))
    return sorted(found, key=lambda b: b.manifest.get("started", ""), reverse=True)


def of_database(directory: Path | None, source: dict, kind: str | None = None) -> list[Backup]:
    """The backups in `directory` of the database `source` identifies (same cluster and name), newest first."""
    return [b for b in listing(directory)
            if same_database(b.manifest["source"], source) and (kind is None or b.manifest.get("kind") == kind)]


def latest(directory: Path | None = None, source: dict | None = None, kind: str | None = None) -> Backup:
    """The newest backup in `directory` (default backups/) of the database `source` identifies (None: of
    any) and of `kind` (None: any); NoBackups when there is none: the one place that says so."""
    found = of_database(directory, source, kind) if source else \
        [b for b in listing(directory) if kind is None or b.manifest.get("kind") == kind]
    if found:
        return found[0]
    what = f"no {kind} backup" if kind else "no backup"
    of = (f" of {source.get('database')} (cluster {source.get('system_identifier') or 'unknown'})" if source else "")
    raise NoBackups(f"{what}{of} in {directory or backups_dir()}: there is nothing to verify, restore or recover from "
                    "(take one with `prep-ops backup` once the data is safe)")


# --- the files of a backup ------------------------------------------------------------------------
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


def schema_dump_path(path: Path, manifest: dict) -> Path | None:
    """The schema-only dump a data-only backup carries (a custom archive beside it, taken in the same
    snapshot: see backup), or None (other kinds; data-only backups made before they carried one)."""
    entry = manifest.get("schema_dump")
    return None if entry is None else _inside(Path(path).parent, entry["file"])


def _inside(base: Path, name: str) -> Path | None:
    """The file `name` of a backup under `base`, or None when it would lead out of that folder (or round a
    loop of links, which Python 3.11 raises RuntimeError for)."""
    try:
        file = (base / name).resolve()
        return file if file.is_relative_to(base.resolve()) else None
    except (OSError, RuntimeError):
        return None


def check_files(path: Path, manifest: dict) -> list[dict]:
    """Report rows (object, check, expected, actual, passed, skipped): every file of the manifest present
    inside the backup's folder, of the recorded size and SHA-256. Nothing outside that folder is ever read."""
    directory = manifest["format"] == "directory"
    if not (path.is_dir() if directory else path.is_file()):
        return [row(path.name, "backup present", "present", "missing", False)]
    base = path if directory else path.parent
    rows = []
    for name, recorded in manifest["files"].items():
        rows += _check_file(base, name, recorded)
    schema = manifest.get("schema_dump")
    if schema is not None:
        rows += _check_file(Path(path).parent, schema["file"], schema, "schema dump ")
    return rows


def _check_file(base: Path, name: str, recorded: dict, what: str = "") -> list[dict]:
    """Report rows of one file of a backup against its recorded size and SHA-256 (none read outside `base`)."""
    file = _inside(base, name)
    if file is None:
        return [row(name, f"{what}file inside the backup", "inside", "leads out of the backup's folder: not read", False)]
    if not file.is_file():
        return [row(name, f"{what}file present", "present", "missing", False)]
    if file.stat().st_size != recorded["bytes"]:
        return [row(name, f"{what}file size", recorded["bytes"], file.stat().st_size, False)]
    digest = sha256_of(file)
    return [row(name, f"{what}sha256", recorded["sha256"][:16], digest[:16], digest == recorded["sha256"])]


# --- the manifest ---------------------------------------------------------------------------------
def write_manifest(path: Path, manifest: dict) -> Path:
    """Write `manifest` beside the backup at `path`, readable by its owner only; returns where. It is
    written whole under a temporary dot-name, flushed, then renamed: a full disk or a crash midway never
    leaves a cut manifest under the final name (OSError then, the temporary file removed). One larger than
    MANIFEST_MAX_BYTES, which no reader would load, is a BackupError, and nothing is written."""
    mpath = manifest_path(path)
    text = json.dumps(manifest, indent=2, default=str).encode()
    if len(text) > MANIFEST_MAX_BYTES:  # none is written that no prep-ops would read back
        raise BackupError(f"the manifest of {path.name} would be {len(text):,} bytes, more than the "
                          f"{MANIFEST_MAX_BYTES:,} prep-ops reads: the backup is not kept")
    temporary = mpath.with_name(f".{mpath.name}.tmp-{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # new: never through a link put there
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.rename(temporary, mpath)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return mpath


def _manifest_text(mpath: Path) -> str:
    """The text of the manifest file `mpath`: BackupError when it leads out of its folder (a link
    elsewhere: a manifest is read only where its backup is, as a backup's files are), is no regular file
    (a FIFO would block the reader for ever, a folder is no manifest), is larger than MANIFEST_MAX_BYTES
    (at most that and one byte are read) or is no UTF-8 text."""
    inside = _inside(mpath.parent, mpath.name)
    if inside is None:
        raise BackupError(f"the manifest {mpath} is a link leading out of its backup's folder (or round a loop): "
                          "not read")
    try:  # O_NONBLOCK: opening a FIFO returns at once, and fstat tells it from a file
        fd = os.open(inside, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise BackupError(f"the manifest {mpath} cannot be read: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BackupError(f"the manifest {mpath} is not a file")
    too_large = BackupError(f"the manifest {mpath} is larger than {MANIFEST_MAX_BYTES >> 20} MiB, the most a "
                            "manifest may be: not read")
    if os.fstat(fd).st_size > MANIFEST_MAX_BYTES:
        os.close(fd)
        raise too_large
    with os.fdopen(fd, "rb") as handle:  # the size told may be wrong (a file still growing): read no more
        data = handle.read(MANIFEST_MAX_BYTES + 1)
    if len(data) > MANIFEST_MAX_BYTES:
        raise too_large
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise BackupError(f"the manifest {mpath} is not UTF-8 text") from None


def read_manifest(path: Path) -> dict:
    """The manifest of the backup at `path`, or BackupError naming what is missing."""
    path = Path(path)
    if path.name.endswith(MANIFEST_SUFFIX):
        path = path.with_name(path.name[: -len(MANIFEST_SUFFIX)])
    mpath = manifest_path(path)
    if not mpath.exists() and not mpath.is_symlink():  # a link to nothing, or round a loop: said by _manifest_text
        if not path.exists():
            raise BackupError(f"no backup at {path}: no such file or folder (nor its manifest {mpath.name})")
        raise BackupError(f"no manifest beside {path} (expected {mpath.name}); was it made by prep-ops backup?")
    try:
        manifest = json.loads(_manifest_text(mpath))
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
    pinned = manifest.get("deparse_settings", {})  # set in the verifier's session: those names only, text values
    if not (isinstance(pinned, dict) and set(pinned) <= set(objects.DEPARSE_SETTINGS)
            and all(isinstance(v, str) and len(v) <= 64 for v in pinned.values())):
        return f"its 'deparse_settings' names settings other than {', '.join(objects.DEPARSE_SETTINGS)}"
    for key in ("started", "finished"):
        try:
            datetime.fromisoformat(manifest[key])
        except ValueError:
            return f"its {key!r} is not a date and time: {manifest[key][:40]!r}"
    return _files_problem(manifest, path) or _tables_problem(manifest) or _snapshot_problem(manifest)


def _files_problem(manifest: dict, path: Path | None) -> str | None:
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
    schema = manifest.get("schema_dump")
    if schema is not None:
        if manifest["kind"] != "data":
            return "only a data-only backup carries a schema dump"
        if not (isinstance(schema, dict) and isinstance(schema.get("file"), str) and isinstance(schema.get("bytes"), int)
                and isinstance(schema.get("sha256"), str)):
            return "its 'schema_dump' has no file, bytes and sha256"
        if len(PurePosixPath(schema["file"]).parts) != 1 or schema["file"] in ("..", ".") or "\\" in schema["file"] \
                or schema["file"].startswith("/"):
            return f"schema dump {schema['file'][:60]!r} is not a file beside the backup"
    return None


def _tables_problem(manifest: dict) -> str | None:
    for name, entry in manifest["tables"].items():
        if not (isinstance(entry, dict) and isinstance(entry.get("rows"), int) and isinstance(entry.get("checksum"), str)):
            return f"table {name!r} has no rows and checksum"
    for name, entry in manifest["schema"].items():
        if not (isinstance(entry, dict) and all(isinstance(entry.get(k), dict) for k in ("columns", "constraint", "index"))):
            return f"the schema of table {name!r} has no columns, constraints and indexes"
    return None


def _snapshot_problem(manifest: dict) -> str | None:
    """The snapshot's place in the WAL (backups from before it was recorded have none: still valid)."""
    snap = manifest.get("snapshot")
    if snap is None:
        return None
    def lsn(value) -> bool:
        return isinstance(value, str) and _LSN.fullmatch(value) is not None

    if not (isinstance(snap, dict) and lsn(snap.get("lsn")) and isinstance(snap.get("xids"), str)
            and _XIDS.fullmatch(snap["xids"]) and (snap.get("lsn_before") is None or lsn(snap["lsn_before"]))):
        return "its 'snapshot' has no WAL location (lsn) and transactions (xids)"
    try:
        datetime.fromisoformat(snap.get("time"))
    except (TypeError, ValueError):
        return f"its snapshot's 'time' is not a date and time: {str(snap.get('time'))[:40]!r}"
    return None
