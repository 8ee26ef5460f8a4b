"""The guide's restore of a backup into a named database, never emptying it first (see `restore`),
and the database-level helpers around it. Checking and loading a dump live in loading; they are
importable from here as callers always have.
"""

import re
import subprocess
import tempfile
import dataclasses
import time
from pathlib import Path

import psycopg
from psycopg import sql

from . import backup as backups
from . import database_properties, objects, scratch
from .db import Target, client_program, connect, require_change, server_version, snapshot
from .errors import BackupError, ConfirmationRequired, PrepOpsError, first_line
from .loading import _first_error, check_contents, preflight, restore_into  # noqa: F401
from .manifest import backups_dir, identity, read_manifest, same_database
from .sqlfiles import load


_TARGET_LOCK = 7203  # with hashtext(<target's name>): the two-key advisory lock of a restore into it (scratch: 7201, 7202)


def _occupied(conn: psycopg.Connection, kind: str) -> str | None:
    """What a restore of a `kind` backup would replace in this database, in a word ("rows", "tables",
    "objects": views, routines, types, large objects ...), or None when it would replace nothing. A data
    backup goes into the target's own schema, so there only rows and large objects count."""
    others, large_objects = conn.execute(load("restore", "holdings")).fetchone()
    if kind == "data":
        return "rows" if _holding_rows(conn) or large_objects else None
    return "tables" if objects.tables(conn) else "objects" if others or large_objects else None


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


# --- the guide's restore: into a new database, names swapped only once it is complete ------------
RESTORING = "prep_ops_restore_"  # + run id + target: the new database while it loads
SAFETY_FOLDER = "safety"  # in backups/: a restore's safety backups, never taken for the newest backup
REPLACED = "_replaced_"  # target + this + run id: the database the restore replaced, kept until the next


def _restoring_comment(target: Target) -> str:
    return f"prep-ops restore into {target.database}"


_OWN_COMMENT = "; its own comment was: "  # after the marker, the replaced database's comment, as it was


def _replaced_comment(target: Target, own: str | None = None) -> str:
    """The comment that marks a database as the one a restore into `target` replaced, keeping the comment
    it had of its own (`own`, None: it had none) after the marker, word for word."""
    marker = f"prep-ops: {target.database} as it was before a restore"
    return marker if own is None else marker + _OWN_COMMENT + own


def _replaced_by_a_restore(target: Target, comment: str) -> bool:
    """Whether `comment` marks its database as one a restore into `target` replaced (see _replaced_comment)."""
    return comment == _replaced_comment(target) or comment.startswith(_replaced_comment(target, ""))


def _own_comment(target: Target, comment: str | None) -> str | None:
    """The target's own comment: `comment`, or, on a replaced database a DBA renamed back to the target,
    the one kept after the marker."""
    if comment == _replaced_comment(target):
        return None
    if comment is not None and comment.startswith(_replaced_comment(target, "")):
        return comment[len(_replaced_comment(target, "")):]
    return comment


def _create_beside(admin: psycopg.Connection, target: Target, name: str) -> None:
    """An empty database `name` with the target's owner, encoding, locale and default tablespace (a
    target kept on a disk of its own is restored onto that disk, not into pg_default's), commented as a
    restore's."""
    found = admin.execute(load("restore", "database"), {"name": target.database}).fetchone()
    if found is None:
        raise BackupError(f"there is no database {target.database} to restore into: create it first")
    owner, encoding, tablespace, info = found
    options = [sql.SQL("TEMPLATE template0 OWNER {} ENCODING {} LC_COLLATE {} LC_CTYPE {}").format(
        sql.Identifier(owner), sql.Literal(encoding), sql.Literal(info["datcollate"]), sql.Literal(info["datctype"]))]
    if tablespace != "pg_default":  # template0's; named, even pg_default takes CREATE on it, which few roles have
        options.append(sql.SQL("TABLESPACE {}").format(sql.Identifier(tablespace)))
    provider = {"i": "icu", "b": "builtin"}.get(info.get("datlocprovider"))
    if provider:
        locale = info.get("datlocale") or info.get("daticulocale")
        options.append(sql.SQL("LOCALE_PROVIDER {} {} {}").format(
            sql.SQL(provider), sql.SQL("ICU_LOCALE" if provider == "icu" else "BUILTIN_LOCALE"), sql.Literal(locale)))
    admin.execute(sql.SQL("CREATE DATABASE {} ").format(sql.Identifier(name)) + sql.SQL(" ").join(options))
    admin.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name),
                                                               sql.Literal(_restoring_comment(target))))
    database_properties.grant_as_on(admin, target.database, name)


def _target_schema(target: Target, major: int, folder: Path) -> Path:
    """A schema-only custom archive of the target as it is now: what a data-only backup is loaded into."""
    url, env = backups.libpq_env(target)
    path = folder / "target-schema.dump"
    result = subprocess.run([str(client_program("pg_dump", target, major)), "--format", "c", "--schema-only",
                             "--no-password", "--file", str(path), "--dbname", url], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise BackupError(f"pg_dump of {target.database}'s schema failed: {_first_error(result.stderr)}")
    return path


def _loaded_as_recorded(conn: psycopg.Connection, manifest: dict, loaded: Target, owners: bool) -> list[str]:
    """What keeps a freshly restored database (`loaded`, `conn`'s) from being the backup, as 'object: check':
    a full or schema backup's every table, column, constraint, index and object (views, functions, triggers,
    policies, grants, sequences ...) and, for a full one, row counts and checksums, as verify compares them;
    a data backup's (its schema is the target's own) row counts and checksums. An extension is compared by
    presence: CREATE EXTENSION installs the server's default version, which a restore cannot choose; owners
    where the restore gave them (`owners`)."""
    from .comparison import compare, compare_data

    if manifest["kind"] == "data":
        failed = compare_data(conn, manifest).report.query("~passed").to_dict("records")
    else:
        failed = [r for r in compare(conn, manifest, target=loaded, extension_versions=False, owners=owners) if not r["passed"]]
    return [f"{r['object']}: {r['check']}" for r in failed]


def _carry_properties(admin: psycopg.Connection, source: str, name: str, own_comment: str | None) -> None:
    """Give database `name` the connection limit, ALLOW_CONNECTIONS and settings of database `source`,
    with the comment `own_comment` (see database_properties), in the caller's transaction."""
    properties = database_properties.read(admin, source)
    database_properties.carry(admin, dataclasses.replace(properties, comment=own_comment), name)


def _rehearse_properties(admin: psycopg.Connection, target: Target, new: str) -> None:
    """Carry the target's properties to `new` and roll them back: a setting prep-ops may not make (a
    superuser's, another role's) stops the restore before the load, not at the swap after it."""
    try:
        with admin.transaction(force_rollback=True):
            _carry_properties(admin, target.database, new, None)
    except psycopg.Error as exc:
        raise BackupError(f"{target.database}'s settings cannot be given to the restored database: "
                          f"{first_line(exc)}") from exc


def _swap(admin: psycopg.Connection, target: Target, new: str, replaced: str, *, confirm: bool) -> None:
    """Rename target → replaced and new → target in one transaction, ending the target's sessions first
    (with confirm); a session that slips in between is ended again, three times at most. In the same
    transaction the new one gets the target's privileges, comment, connection limit, ALLOW_CONNECTIONS and
    settings as they are at the rename (none of them could block the load or prep-ops' checks before it), and
    the replaced one the marker comment, its own comment kept after it."""
    for attempt in range(3):
        sessions = admin.execute(load("restore", "sessions"), {"name": target.database, "end": confirm}).fetchall()
        if sessions and not confirm:
            raise ConfirmationRequired(f"{len(sessions)} session(s) are connected to {target.database}; swapping in the "
                                       "restored database ends them: pass --confirm (confirm=True in a notebook)")
        try:
            with admin.transaction():
                for old, name in ((target.database, replaced), (new, target.database)):
                    admin.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(old), sql.Identifier(name)))
                # read after the rename, whose lock keeps them from changing until this transaction ends
                own = _own_comment(target, database_properties.read(admin, replaced).comment)
                _carry_properties(admin, replaced, target.database, own)
                # who may connect, as at the rename too: a REVOKE made while the new one loaded must hold
                database_properties.grant_as_on(admin, replaced, target.database)
                admin.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(replaced),
                                                                           sql.Literal(_replaced_comment(target, own))))
                admin.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE false").format(sql.Identifier(replaced)))
            return
        except psycopg.errors.ObjectInUse:
            if attempt == 2:
                raise BackupError(f"{target.database} kept getting new sessions; the names were not swapped") from None
            time.sleep(0.2)


def restore(path: Path, target: Target, *, confirm: bool = False, safety_dir: Path | None = None) -> dict:
    """The guide's restore of a backup (full, schema or data) into the named `target`, which is never
    emptied first. Returns what was done: restored, into, kind, safety_backup, replaced, removed.

    1. The backup is checked against its manifest and its table of contents before anything is touched.
    2. A target that holds anything (full, schema: tables, views, routines, types, large objects ...)
       or rows or large objects (data), or is the backup's source, is replaced only with `confirm`, and a
       safety backup of it (full, custom format, in `safety_dir`) comes first.
    3. The backup is restored into a new database beside the target, prep_ops_restore_<run id>_<target>,
       with the target's owner, encoding and locale (a data backup into the target's own schema, dumped
       now). Its row counts and checksums (a schema backup: its objects) must equal the manifest.
    4. Only then are the names swapped, in one transaction: target → <target>_replaced_<run id>, the new
       one → target. That needs no session on the target: with `confirm` the others are ended
       (pg_terminate_backend), without it the restore stops before it starts, saying how many there are.
    5. What pg_dump leaves out comes from the target to the new one. Who may connect to it (its
       privileges) when the new one is made, and again in the swap's transaction; there, read at the
       rename, also its comment, connection limit, ALLOW_CONNECTIONS and settings: ALTER DATABASE ... SET and ALTER ROLE
       ... IN DATABASE ... SET, each reading back in pg_db_role_setting as it was (a connection limit,
       a closed database or a statement_timeout on the new one earlier could have stopped the load or
       prep-ops' checks). They are tried on the new one, and rolled back, before the load: a setting
       prep-ops' role may not make stops the restore there. IS_TEMPLATE too: a template target is
       restored as a template, and the replaced one stops being one (so that the next restore can drop
       it, and no new database is made from the old copy by mistake). The new database is made in the
       target's default tablespace.
    6. The replaced database is kept as it was, settings included: the quickest way back (rename it)
       and the writes made after the safety backup. Its comment becomes prep-ops' marker
       ("prep-ops: <target> as it was before a restore"), by which the next successful restore into
       the same target knows to drop it; its own comment, if it had one, follows the marker word for
       word ("; its own comment was: ..."). A restore into a target that carries such a marker (one
       renamed back) gives the new one the comment after the marker.
    A failure at any step drops the new database and leaves the target as it was, comment and settings
    included; a killed restore leaves its new database, which the next restore into that target drops.
    Every outcome, failures included, names the safety backup.
    """
    path = Path(path)
    manifest = read_manifest(path)
    run = scratch.run_id()
    new, replaced = _cut(f"{RESTORING}{run}_{target.database}", 63), _replaced_prefix(target) + run
    with connect(target, autocommit=True) as conn:
        major = server_version(conn)
        preflight(path, manifest, target, major=major)  # before anything is touched
    _what_it_replaces(target, manifest, confirm)  # refused early, before the server's lock is asked for
    require_change(target, confirm, f"restoring {path.name} into it")
    admin_db = "postgres" if target.database != "postgres" else "template1"
    with connect(target.with_database(admin_db), autocommit=True) as admin:
        scratch.claim(admin, run)
        _one_restore_at_a_time(admin, target)
        # read again under the lock: another restore into the target may have ended while this one checked
        # the file (the target then holds its copy, which needs confirm and a safety backup like any data)
        its_source, occupied = _what_it_replaces(target, manifest, confirm)
        removed = scratch.remove_stale(admin, RESTORING, run, comment=_restoring_comment(target))
        if not confirm and admin.execute(load("restore", "sessions"), {"name": target.database, "end": False}).fetchall():
            _swap(admin, target, new, replaced, confirm=False)  # raises, naming the sessions: nothing done yet
        # never beside the backups (backups/): the newest backup of the database is looked for there
        # (verify --latest, --keep, runbook 10), and the target as it was before is not that
        safety = backups.backup(target, "full", "custom", directory=safety_dir or backups_dir() / SAFETY_FOLDER) \
            if occupied or its_source else None
        kept = f"safety backup: {safety.path}" if safety else "no safety backup: the target held nothing"
        try:
            _create_beside(admin, target, new)  # may be refused (no CREATEDB): the failure names the safety backup
            _rehearse_properties(admin, target, new)
            with tempfile.TemporaryDirectory() as folder:
                schema = _target_schema(target, major, Path(folder)) if manifest["kind"] == "data" else None
                owners = restore_into(path, target.with_database(new), manifest, major=major, schema=schema)
            with connect(target.with_database(new), autocommit=True) as loaded:
                differing = _loaded_as_recorded(loaded, manifest, target.with_database(new), owners)
            if differing:
                raise BackupError(f"the restored copy differs from the manifest: {'; '.join(differing[:5])}")
            _swap(admin, target, new, replaced, confirm=confirm)
        except BaseException as exc:  # Ctrl-C too; a kill -9 leaves `new` to the next restore
            left = _drop_new(admin, new)
            if isinstance(exc, (PrepOpsError, psycopg.Error)):
                raise BackupError(f"{first_line(exc)}; {target.database} is unchanged ({kept}){left}") from exc
            raise
        earlier = admin.execute(load("scratch", "unused_databases"), {"prefix": _replaced_prefix(target)}).fetchall()
        removed += [name for name, said in earlier  # what earlier restores into this target replaced, under the
                    if _replaced_by_a_restore(target, said) and name != replaced  # name they gave it: one a DBA
                    and _replaced_name(target, name) and _drop_old(admin, name)]  # renamed to keep it stays
        if not occupied and not its_source:
            _drop_old(admin, replaced)
            replaced = None
    return {"restored": str(path), "into": target.masked_url, "kind": manifest["kind"],
            "safety_backup": str(safety.path) if safety else None, "replaced": replaced, "removed": removed}


def _what_it_replaces(target: Target, manifest: dict, confirm: bool) -> tuple[bool, bool]:
    """(whether the target is the backup's source, whether it holds anything the restore would replace),
    read in one snapshot; ConfirmationRequired for either without `confirm`."""
    with connect(target, autocommit=True) as conn, snapshot(conn):
        now = identity(conn)
        its_source = same_database(now, manifest["source"])
        held = _occupied(conn, manifest["kind"])
    if its_source and not confirm:
        then = manifest["source"].get("database_oid")  # a database of that name made again since: another OID
        which = ("is the database this backup was taken from" if then in (None, now.get("database_oid")) else
                 f"has the name of the database this backup was taken from (OID {then}; this one is OID "
                 f"{now.get('database_oid')}, made since)")
        raise ConfirmationRequired(f"{target.database} {which}; restoring over it replaces it: pass --confirm "
                                   "(confirm=True in a notebook)")
    if held is not None and not confirm:
        raise ConfirmationRequired(f"{target.database} already holds {held}; restoring replaces them: pass --confirm "
                                   "(confirm=True in a notebook); a safety backup is taken first")
    return its_source, held is not None


def _one_restore_at_a_time(admin: psycopg.Connection, target: Target) -> None:
    """Hold, for as long as `admin`'s session lasts, the lock a restore into `target` takes; BackupError
    naming the session of the restore that has it, before anything is done. Two restores into one target
    at once would each swap its copy in, the second replacing the first's without a word, and the second's
    clean-up would drop what the first replaced, with the writes made after the safety backups were taken."""
    if admin.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (_TARGET_LOCK, target.database)).fetchone()[0]:
        return
    other = admin.execute(load("restore", "other_restore"), {"key": _TARGET_LOCK, "name": target.database}).fetchone()
    who = (f" (session {other[0]} of {other[1]}, connected since {other[2]:%Y-%m-%d %H:%M:%S %Z})" if other else "")
    raise BackupError(f"another restore into {target.database} is running{who}; nothing was done: wait for it to "
                      "end, then restore again if you still need to")


def _drop_new(admin: psycopg.Connection, name: str) -> str:
    """Drop the new database of a failed restore: "" when it went, else why it stays until the next restore
    into the target drops it (the server ended this session, or went down: the failure is still told)."""
    try:
        scratch.drop(admin, name)
        return ""
    except (PrepOpsError, psycopg.Error) as exc:
        return f"; {name} stays until the next restore into it ({first_line(exc)})"


def _cut(name: str, size: int) -> str:
    """`name` cut to at most `size` bytes between two letters: PostgreSQL cuts names at 63 bytes, not letters,
    and a name cut here is the name the server keeps."""
    return name.encode()[:size].decode(errors="ignore")


def _replaced_prefix(target: Target) -> str:
    """The name of the database a restore into `target` replaced, before the run id (63 bytes in all)."""
    return f"{_cut(target.database, 63 - 34)}{REPLACED}"


def _replaced_name(target: Target, name: str) -> bool:
    """Whether `name` is the name a restore into `target` gives the database it replaced (a run id after
    the prefix: scratch.run_id)."""
    return re.fullmatch(re.escape(_replaced_prefix(target)) + r"\d{17}_[0-9a-f]{6}", name) is not None


def _drop_old(admin: psycopg.Connection, name: str) -> bool:
    """Drop a database a restore replaced, unless a session uses it; whether it was dropped."""
    try:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        return True
    except psycopg.errors.ObjectInUse:
        return False
