"""Prove a backup restores: check its files against the manifest, restore it into an isolated
scratch database, and compare schema, row counts and content checksums object by object (see
comparison).

The restore target is a throwaway prep_ops_verify_* database, on the embedded server by default or
on a given server; it is refused, in code, when it is the database the backup was taken from. One
connection to the restore server makes and drops the scratch database and the roles, and one to the
scratch database checks and compares it.
"""

import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import psycopg
from psycopg import sql

from . import embedded, migrate, scratch
from ._report import row
from .comparison import DataComparison, compare, compare_data, rows_lost  # noqa: F401  (callers use verify.*)
from .db import Target, connect, server_version
from .errors import BackupError, ParameterError
from .manifest import check_files, identity, latest, read_manifest, same_database
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
        if "skipped" not in self.report:
            return self.report.iloc[0:0]
        return self.report[self.report["skipped"].fillna(False).astype(bool)]


def scratch_server() -> Target:
    """The embedded server's maintenance database: the default home of verification restores."""
    return Target(embedded.server_url("postgres"), embedded=True)


def refuse_source(conn: psycopg.Connection, manifest: dict) -> None:
    """Raise when the connection's database is the one the backup was taken from: a verification
    never restores over its source."""
    if same_database(identity(conn), manifest["source"]):
        raise ParameterError(f"{conn.info.dbname} is the backup's source database; refusing to restore into it")


def create_missing_roles(conn: psycopg.Connection, manifest: dict) -> list[str]:
    """Create, as NOLOGIN roles without privileges, the source's roles that the connection's server
    lacks, and return their names: a dump's GRANT and OWNER statements name them, and a restore fails
    on an unknown role. Roles are cluster-wide: `drop_roles` removes them once the restore is gone."""
    present = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles").fetchall()}
    created = [role for role in manifest.get("roles", []) if role not in present]
    with conn.transaction():
        for role in created:
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
    return created


def drop_roles(conn: psycopg.Connection, roles: list[str]) -> dict[str, str]:
    """Drop `roles` (those `create_missing_roles` made) from the connection's server; returns the ones
    that had to stay, with why (something outside the dropped scratch database still refers to them)."""
    kept = {}
    for role in roles:
        try:
            with conn.transaction():
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        except psycopg.errors.DependentObjectsStillExist as exc:
            kept[role] = str(exc).strip().splitlines()[0]
    return kept


def missing_extensions(conn: psycopg.Connection, manifest: dict, *, where: str) -> list[dict]:
    """Report rows, one for each extension the backup's database had that the connection's server
    (named `where`) does not offer; manifests from before objects were recorded need none."""
    needed = manifest.get("objects", {}).get("extension", {})
    offered = {r[0] for r in conn.execute("SELECT name FROM pg_available_extensions WHERE name = ANY(%s)",
                                          (list(needed),)).fetchall()} if needed else set()
    return [row(f"extension {name}", "offered by the restore server", "available",
                f"{where} does not offer {name}: verify on the source's own server with --same-server", False)
            for name in sorted(set(needed) - offered)]


def _prepare_for_data(conn: psycopg.Connection, manifest: dict) -> None:
    """A data-only dump needs the schema: migrate the scratch database to the backup's version, empty."""
    versions = [int(v) for v in manifest.get("schema_versions", {})]
    if not versions:
        raise ParameterError("a data-only backup without schema_version cannot be verified: "
                             "take a full backup, or restore the schema first")
    migrate.apply(conn, max(versions), confirm=True)  # the scratch database verify made for this
    clear(conn, "data", confirm=True)


def _restore_and_compare(path: Path, copy: Target, manifest: dict, *, major: int) -> list[dict]:
    """Report rows of the restore into the fresh scratch database `copy` (never the backup's source)
    and, when it restored, of the comparison with the manifest."""
    with connect(copy, autocommit=True) as conn:
        refuse_source(conn, manifest)
        if manifest["kind"] == "data":
            _prepare_for_data(conn, manifest)
        try:
            restore_into(path, copy, manifest, major=major)
        except BackupError as exc:
            return [row(path.name, "restore", "restored", str(exc), False)]
        return [row(path.name, "restore", "restored", "restored", True), *compare(conn, manifest)]


def restored_copy(path: Path, manifest: dict, *, prefix: str = "prep_ops_copy_",
                  server: Target | None = None) -> tuple[Target, list[str]]:
    """A backup restored into a fresh scratch database (on the embedded server unless `server`), for
    work on a copy; and the roles that had to be made on that server for it. Drop both with `drop_copy`."""
    server = server or scratch_server()
    copy = server.with_database(f"{prefix}{uuid.uuid4().hex[:10]}")
    with connect(server, autocommit=True) as admin:
        scratch.create(admin, copy.database, confirm=True)
        created: list[str] = []
        try:
            with connect(copy, autocommit=True) as conn:
                refuse_source(conn, manifest)
            created = create_missing_roles(admin, manifest)
            restore_into(path, copy, manifest, major=server_version(admin))
        except Exception:
            _drop_with_roles(admin, copy.database, created)
            raise
    return copy, created


def _drop_with_roles(admin: psycopg.Connection, name: str, roles: list[str]) -> dict[str, str]:
    scratch.drop(admin, name)
    return drop_roles(admin, list(roles)) if roles else {}


def drop_copy(copy: Target, roles: list[str] = ()) -> dict[str, str]:
    """Drop a copy made by `restored_copy`, then the roles made for it; returns roles that had to stay."""
    with connect(copy.with_database("postgres"), autocommit=True) as admin:
        return _drop_with_roles(admin, copy.database, roles)


def _why_not_restored(path: Path, manifest: dict, server: Target, admin: psycopg.Connection) -> list[dict]:
    """Report rows of why a backup whose files match its manifest is not even restored (not a dump,
    an extension the restore server lacks); none when it can be."""
    try:
        check_contents(path, manifest, server, major=server_version(admin))
    except BackupError as exc:
        return [row(path.name, "readable as a dump", "readable", str(exc), False),
                row(path.name, "restore", "restored", "not tried: the file is not a dump prep-ops restores", False)]
    lacking = missing_extensions(admin, manifest, where="the embedded server" if server.embedded else "the restore server")
    if lacking:
        return lacking + [row(path.name, "restore", "restored",
                              "not tried: the restore server lacks an extension the backup needs", False)]
    return []


def verify(path: Path, *, server: Target | None = None, keep_scratch: bool = False) -> Verification:
    """Check, restore into a scratch database and compare one backup; returns the report."""
    began = time.perf_counter()
    path = Path(path)
    manifest = read_manifest(path)
    server = server or scratch_server()
    name = f"prep_ops_verify_{uuid.uuid4().hex[:10]}"
    rows = check_files(path, manifest)
    if not all(r["passed"] for r in rows):
        rows.append(row(path.name, "restore", "restored", "not tried: the files do not match the manifest", False))
        return Verification(path, False, pd.DataFrame(rows), None, time.perf_counter() - began)
    with connect(server, autocommit=True) as admin:
        refused = _why_not_restored(path, manifest, server, admin)
        if refused:
            return Verification(path, False, pd.DataFrame(rows + refused), None, time.perf_counter() - began)
        scratch.create(admin, name, confirm=True)
        created: list[str] = []
        try:
            created = create_missing_roles(admin, manifest)
            rows += _restore_and_compare(path, server.with_database(name), manifest, major=server_version(admin))
        finally:
            if not keep_scratch:  # a kept scratch database still needs its roles
                for role, why in _drop_with_roles(admin, name, created).items():
                    rows.append(row(role, "role made for the restore dropped", "dropped", f"kept: {why}", True))
    report = pd.DataFrame(rows)
    return Verification(path, bool(report["passed"].all()), report, name if keep_scratch else None,
                        time.perf_counter() - began)


def verify_latest(directory: Path | None = None, *, source: dict | None = None, max_age_hours: float = 26,
                  min_bytes: int = 1, server: Target | None = None, keep_scratch: bool = False) -> Verification:
    """Verify the newest backup in `directory` (of the database `source` identifies: same cluster and
    name; None: any); also fail when it is older than `max_age_hours` or smaller than `min_bytes` (as
    Barman's check does), so backups that silently stopped are noticed. NoBackups when there is none."""
    newest = latest(directory, source)
    result = verify(newest.path, server=server, keep_scratch=keep_scratch)
    age = (datetime.now(timezone.utc) - datetime.fromisoformat(newest.manifest["finished"])).total_seconds() / 3600
    extra = [row(newest.path.name, "age", f"≤ {max_age_hours} h", f"{age:.1f} h", age <= max_age_hours),
             row(newest.path.name, "size", f"≥ {min_bytes:,} bytes", f"{newest.manifest['bytes']:,} bytes",
                 newest.manifest["bytes"] >= min_bytes)]
    report = pd.concat([pd.DataFrame(extra), result.report], ignore_index=True)
    return Verification(result.backup, bool(report["passed"].all()), report, result.scratch_database, result.seconds)
