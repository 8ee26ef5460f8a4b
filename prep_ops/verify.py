"""Prove a backup restores: check its files against the manifest, restore it into an isolated
scratch database, and compare schema, row counts and content checksums object by object (see
comparison).

The restore target is a throwaway prep_ops_verify_<run id> database, by default on the private
verification cluster (verify_cluster: the embedded binaries with fsync, synchronous commit and full-page
writes off and wal_level=minimal, kept running between verifications; nothing it holds outlives the
verification), or on a given server (`--same-server`: the source's own); it is refused, in code, when
it is the database the backup was taken from. A copy kept for inspection (`keep_scratch`) is restored
on the embedded server itself, which is durable and where `prep-ops db url` points. One connection to
the restore server makes and drops the scratch database and the roles, and one to the scratch database
checks and compares it: the same comparison wherever the restore went.

Nothing left behind: the scratch database and the temporary roles a verification makes carry its run
id (the roles in their comment), and go when it ends; what a killed verification left (older than this
run, unused, its run's lock free) is removed when the next one starts (see scratch). A kept scratch
database (`keep_scratch`) is renamed prep_ops_kept_<run id>, which no cleanup touches: drop it (and
the roles made for it) with `drop_copy`. A data-only backup restores into the schema-only dump taken in
its snapshot (see backup), or, for older backups of the school's database, its migrations.
"""

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import psycopg
from psycopg import sql

from . import catalog, embedded, migrate, restore_role, scratch, verify_cluster
from ._report import flagged, row
from .comparison import DataComparison, compare, compare_data, rows_lost  # noqa: F401  (callers use verify.*)
from .db import Target, connect, server_version
from .errors import BackupError, ParameterError
from .manifest import check_files, identity, latest, read_manifest, same_database, schema_dump_path
from .restore import check_contents, clear, restore_into


@dataclass
class Verification:
    backup: Path
    ok: bool
    report: pd.DataFrame
    scratch_database: str | None
    seconds: float

    @property
    def failures(self) -> pd.DataFrame:
        return self.report[~self.report["passed"]]

    @property
    def skipped(self) -> pd.DataFrame:
        """Rows of what was not compared, each saying why (neither passed nor failed)."""
        return flagged(self.report, "skipped")

    @property
    def notes(self) -> pd.DataFrame:
        """Rows of housekeeping (leftovers removed, the restore's roles dropped): shown, never counted."""
        return flagged(self.report, "note")

    @property
    def counts(self) -> str:
        """`N checks, F failed, S not compared`: the checks that ran (what was not compared is no check,
        nor is housekeeping that could not fail), as the CLI, runbooks 04, 07 and 10 state a verdict."""
        checks = len(self.report) - len(self.skipped) - len(self.notes)
        return f"{checks} checks, {len(self.failures)} failed, {len(self.skipped)} not compared"

    @property
    def not_compared(self) -> list[tuple[str, str]]:
        """(what, why) of each thing not compared, for a SKIP line of its own."""
        return [(r.object if r.check in r.object else f"{r.object} {r.check}", r.actual)
                for r in self.skipped.itertuples()]

    @property
    def nothing_checked(self) -> str:
        """Why no check ran ("" when one did): a verification made of SKIPs only is no PASS."""
        return "" if len(self.skipped) + len(self.notes) < len(self.report) else "nothing was compared: " + "; ".join(
            why for _, why in self.not_compared)


PREFIX = "prep_ops_verify_"  # + run id: a verification's scratch database
KEPT = "prep_ops_kept_"  # + run id: one kept for inspection (keep_scratch)


def scratch_server() -> Target:
    """The embedded server's maintenance database: the home of restored copies kept for work
    (restored_copy, keep_scratch) and of drills."""
    return Target(embedded.server_url("postgres"), embedded=True)


def verify_server() -> Target:
    """The verification cluster's maintenance database (started, or made, if needed): the default home
    of verification restores, which are dropped when the verification ends."""
    return Target(verify_cluster.server_url("postgres"), embedded=True)


def refuse_source(conn: psycopg.Connection, manifest: dict) -> None:
    """Raise when the connection's database is the one the backup was taken from: a verification
    never restores over its source."""
    if same_database(identity(conn), manifest["source"]):
        raise ParameterError(f"{conn.info.dbname} is the backup's source database; refusing to restore into it")


def create_missing_roles(conn: psycopg.Connection, manifest: dict, run: str) -> list[str]:
    """The source's roles that the connection's server lacks, made for run `run` as NOLOGIN roles without
    privileges (a dump's GRANT and OWNER statements name them; a restore fails on an unknown role), never
    shared with another run: see scratch.temporary_roles. `drop_roles` removes them."""
    return scratch.temporary_roles(conn, manifest.get("roles", []), run)


def drop_roles(conn: psycopg.Connection, roles: list[str]) -> dict[str, str]:
    """Drop `roles` (those `create_missing_roles` made) from the connection's server; returns the ones
    that had to stay, with why (something outside the dropped scratch database still refers to them)."""
    return scratch.drop_temporary_roles(conn, list(roles))


def missing_extensions(conn: psycopg.Connection, manifest: dict, *, where: str) -> list[dict]:
    """Report rows, one for each extension the backup's database had that the connection's server
    (named `where`) does not offer; manifests from before objects were recorded need none."""
    needed = manifest.get("objects", {}).get("extension", {})
    return [row(f"extension {name}", "offered by the restore server", "available",
                f"{where} does not offer {name}: verify on the source's own server with --same-server", False)
            for name in sorted(needed) if not catalog.extension_available(conn, name)]


def _prepare_for_data(conn: psycopg.Connection, manifest: dict) -> None:
    """A data-only backup without a schema dump (made before they carried one) needs the school's schema:
    migrate the scratch database to the backup's version, empty."""
    versions = [int(v) for v in manifest.get("schema_versions", {})]
    if not versions:
        raise ParameterError("a data-only backup without a schema dump or schema_version cannot be verified: "
                             "take it again with this prep-ops (it adds the schema), or take a full backup")
    migrate.apply(conn, max(versions), confirm=True)  # the scratch database verify made for this
    clear(conn, "data", confirm=True)


def _restore_and_compare(path: Path, copy: Target, manifest: dict, *, major: int,
                         restore_as: Target | None = None) -> list[dict]:
    """Report rows of the restore into the fresh scratch database `copy` (never the backup's source),
    logged in as `restore_as` where given (restore_role), and, when it restored, of the comparison with
    the manifest."""
    with connect(copy, autocommit=True) as conn:
        refuse_source(conn, manifest)
        schema = schema_dump_path(path, manifest)
        if manifest["kind"] == "data" and schema is None:
            _prepare_for_data(conn, manifest)
        try:
            # the restore role may give objects to the dump's roles: owners as the backup has them
            owners = restore_into(path, restore_as or copy, manifest, major=major, schema=schema,
                                  owners=True if restore_as is not None else None)
        except BackupError as exc:
            return [row(path.name, "restore", "restored", str(exc) + (_NOT_A_SUPERUSER if restore_as is not None
                                                                      and _needs_a_superuser(str(exc)) else ""), False)]
        restored = row(path.name, "restore", "restored", "restored", True)
        if restore_as is not None:
            restore_role.settings_undone(conn, copy.database)
            shadowing = restore_role.shadowing_builtins(conn)
            if shadowing:  # the comparison's own queries could run them as the superuser: none is run
                return [restored, *[row(what, "named as a built-in", "none of the backup's",
                                        "not compared: the comparison's queries, a superuser's, could run it in "
                                        "place of the built-in", False) for what in shadowing]]
        return [restored, *compare(conn, manifest, target=copy, probe_as=restore_as, owners=owners)]


# the server's words for what the sandbox's role may not do: what only a superuser may (an event trigger, a FOR
# ALL TABLES publication, an untrusted extension in a schema of the dump's, a GRANT made by another role: SET
# SESSION AUTHORIZATION), and what a dump does in an order only a superuser can follow (an object given to a
# role before the dump's GRANT CREATE on its schema; a foreign server of a wrapper it may not use)
_SUPERUSER_ONLY = ("must be superuser", "permission denied")
_NOT_A_SUPERUSER = ("; the verification cluster restores a backup as a role that is no superuser (a backup's SQL is "
                    "not trusted to run as one): a backup you trust that it cannot restore is verified with "
                    "--same-server, which restores it as you")


def _needs_a_superuser(error: str) -> bool:
    return any(words in error.lower() for words in _SUPERUSER_ONLY)


_MADE: dict[str, tuple[str, Target, list[str]]] = {}  # copies restored_copy made in this process and drop_copy has not
# dropped, by database: (prefix, copy, its roles)


def restored_copy(path: Path, manifest: dict, *, prefix: str = "prep_ops_copy_",
                  server: Target | None = None) -> tuple[Target, list[str]]:
    """A backup restored into a fresh scratch database `prefix`<run id> (on the embedded server unless
    `server`), for work on a copy; and the roles that had to be made on that server for it (they carry
    the run id: see scratch). Drop both with `drop_copy`. The copies of `prefix` that killed runs left (no
    session on them, their run's lock free) and their roles go first: nothing else would ever drop them."""
    server = server or scratch_server()
    run = scratch.run_id()
    copy = server.with_database(f"{prefix}{run}")
    with connect(server, autocommit=True) as admin:
        scratch.claim(admin, run)
        if scratch.remove_stale(admin, prefix, run):
            scratch.remove_stale_roles(admin, run)
        scratch.create(admin, copy.database, confirm=True)
        created: list[str] = []
        try:
            with connect(copy, autocommit=True) as conn:
                refuse_source(conn, manifest)
            created = create_missing_roles(admin, manifest, run)
            restore_into(path, copy, manifest, major=server_version(admin), schema=schema_dump_path(path, manifest))
        except BaseException:
            _drop_with_roles(admin, copy.database, created)
            raise
    _MADE[copy.database] = (prefix, copy, created)
    return copy, created


def _drop_with_roles(admin: psycopg.Connection, name: str, roles: list[str]) -> dict[str, str]:
    scratch.drop(admin, name)
    return drop_roles(admin, list(roles)) if roles else {}


def drop_copy(copy: Target, roles: list[str] = ()) -> dict[str, str]:
    """Drop a copy made by `restored_copy` (or kept by `verify`), then the roles made for it; returns roles
    that had to stay. The copies of the same prefix this process made before it and never dropped go too:
    a notebook cell that makes a copy, run twice, replaced the first copy's variable, so only the second
    ever reached drop_copy and runbook 07's 'scratch copy and its roles dropped' PASSed with the first left."""
    made = _MADE.pop(copy.database, None)
    earlier = [(other, other_roles) for name, (prefix, other, other_roles) in sorted(_MADE.items())
               if made is not None and prefix == made[0] and name < copy.database]  # run ids sort by time
    with connect(copy.with_database("postgres"), autocommit=True) as admin:
        kept = _drop_with_roles(admin, copy.database, roles)
        for other, other_roles in earlier:
            del _MADE[other.database]
            kept.update(_drop_with_roles(admin, other.database, other_roles))
    return kept


def _why_not_restored(path: Path, manifest: dict, server: Target, admin: psycopg.Connection) -> list[dict]:
    """Report rows of why a backup whose files match its manifest is not even restored (not a dump,
    an extension the restore server lacks); none when it can be."""
    try:
        check_contents(path, manifest, server, major=server_version(admin))
        schema = schema_dump_path(path, manifest)
        if schema is not None:
            check_contents(schema, {**manifest, "format": "custom"}, server, major=server_version(admin))
    except BackupError as exc:
        return [row(path.name, "readable as a dump", "readable", str(exc), False),
                row(path.name, "restore", "restored", "not tried: the file is not a dump prep-ops restores", False)]
    lacking = missing_extensions(admin, manifest, where="the embedded server" if server.embedded else "the restore server")
    if lacking:
        return lacking + [row(path.name, "restore", "restored",
                              "not tried: the restore server lacks an extension the backup needs", False)]
    return []


def _leftovers(admin: psycopg.Connection, run: str) -> list[dict]:
    """Remove what killed verifications left on the restore server; a report row for each thing removed."""
    return [row(name, f"{what} left by a killed verification", "removed", "removed", True, note=True)
            for what, names in (("scratch database", scratch.remove_stale(admin, PREFIX, run)),
                                ("temporary role", scratch.remove_stale_roles(admin, run))) for name in names]


def _keep(admin: psycopg.Connection, name: str, run: str) -> str:
    """The scratch database `name` renamed prep_ops_kept_<run>, out of every cleanup's way."""
    kept = f"{KEPT}{run}"
    admin.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(name), sql.Identifier(kept)))
    return kept


def verify(path: Path, *, server: Target | None = None, keep_scratch: bool = False) -> Verification:
    """Check, restore into a scratch database and compare one backup; returns the report.

    The restore goes to `server` when given; else, with `keep_scratch`, to the embedded server
    (scratch_server: a kept copy needs a durable home); else to the verification cluster (verify_server)."""
    began = time.perf_counter()
    path = Path(path)
    manifest = read_manifest(path)
    run = scratch.run_id()
    name = f"{PREFIX}{run}"
    rows = check_files(path, manifest)
    if not all(r["passed"] for r in rows):
        rows.append(row(path.name, "restore", "restored", "not tried: the files do not match the manifest", False))
        return Verification(path, False, pd.DataFrame(rows), None, time.perf_counter() - began)
    # the verification cluster's restores log in as a role that is not a superuser (restore_role); a copy
    # kept on the embedded server and a server given restore as the connecting role
    sandboxed = server is None and not keep_scratch
    server = server or (scratch_server() if keep_scratch else verify_server())
    with connect(server, autocommit=True) as admin:
        scratch.claim(admin, run)  # alive: no other verification takes this run's database or roles for leftovers
        rows += _leftovers(admin, run)
        refused = _why_not_restored(path, manifest, server, admin)
        if refused:
            return Verification(path, False, pd.DataFrame(rows + refused), None, time.perf_counter() - began)
        scratch.create(admin, name, confirm=True)
        created: list[str] = []
        try:
            created = create_missing_roles(admin, manifest, run)
            restore_as = None
            if sandboxed:
                restore_as, made = restore_role.restorer(admin, server.with_database(name), manifest, path, run,
                                                         server_version(admin), created)
                created += made
            rows += _restore_and_compare(path, server.with_database(name), manifest, major=server_version(admin),
                                         restore_as=restore_as)
        finally:
            if keep_scratch:  # a kept scratch database still needs its roles
                name = _keep(admin, name, run)
            else:
                for role, why in _drop_with_roles(admin, name, created).items():
                    rows.append(row(role, "role made for the restore dropped", "dropped", f"kept: {why}", True, note=True))
    report = pd.DataFrame(rows)
    return Verification(path, bool(report["passed"].all()), report, name if keep_scratch else None,
                        time.perf_counter() - began)


def _hours(age: float, limit: float) -> str:
    """An age in hours, with the digits that tell it from `limit` (0.0 h against ≤ 0.0001 h says nothing)."""
    digits = 1
    while digits < 6 and round(age, digits) == round(limit, digits) and age != limit:
        digits += 1
    while digits < 6 and limit < 10 ** -digits:
        digits += 1
    return f"{age:.{digits}f} h"


def _same_oid(newest, source: dict) -> dict:
    """The report row: the newest backup of the database's name was taken from this very database (its
    OID), not from one of that name dropped (or swapped out by a restore) since, whose backups prove
    nothing about this one's."""
    taken = newest.manifest["source"].get("database_oid")
    if taken is None:
        return row(newest.path.name, "of this database", f"OID {source['database_oid']}",
                   "not compared: the manifest records no database OID", True, skipped=True)
    same = taken == source["database_oid"]
    return row(newest.path.name, "of this database", f"OID {source['database_oid']}", f"OID {taken}" + (
        "" if same else f": another database named {source['database']}, dropped or replaced (by a restore, say) "
        "since; back this one up"), same)


def verify_latest(directory: Path | None = None, *, source: dict | None = None, max_age_hours: float = 26,
                  min_bytes: int = 1, server: Target | None = None, keep_scratch: bool = False) -> Verification:
    """Verify the newest backup in `directory` (of the database `source` identifies: same cluster and
    name; None: any); also fail when it is older than `max_age_hours` or smaller than `min_bytes` (as
    Barman's check does), so backups that silently stopped are noticed, or when it was taken from another
    database of that name (another OID: dropped and made again since). NoBackups when there is none."""
    newest = latest(directory, source)
    result = verify(newest.path, server=server, keep_scratch=keep_scratch)
    age = (datetime.now(timezone.utc) - datetime.fromisoformat(newest.manifest["finished"])).total_seconds() / 3600
    extra = [row(newest.path.name, "age", f"≤ {max_age_hours:g} h", _hours(age, max_age_hours), age <= max_age_hours),
             row(newest.path.name, "size", f"≥ {min_bytes:,} bytes", f"{newest.manifest['bytes']:,} bytes",
                 newest.manifest["bytes"] >= min_bytes)]
    if source is not None and source.get("database_oid") is not None:
        extra.append(_same_oid(newest, source))
    report = pd.concat([pd.DataFrame(extra), result.report], ignore_index=True)
    return Verification(result.backup, bool(report["passed"].all()), report, result.scratch_database, result.seconds)
