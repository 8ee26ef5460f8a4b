"""Prove a backup restores: check its files against the manifest, restore it into an isolated
scratch database, and compare schema, row counts and content checksums object by object.

The restore target is a throwaway prep_ops_verify_* database, on the embedded server by default or
on a given server; it is refused, in code, when it is the database the backup was taken from.
"""

import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import psycopg
from psycopg import sql

from . import backup as backups
from . import checksums, embedded, migrate, objects, scratch
from .db import Target, connect, server_version
from .errors import BackupError, ParameterError
from .restore import check_contents, restore_into


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


def _row(rows: list, obj: str, check: str, expected, actual, passed: bool, *, skipped: bool = False) -> None:
    """One report row; `skipped`: not compared (the row says why), neither a pass nor a failure."""
    rows.append({"object": obj, "check": check, "expected": expected, "actual": actual, "passed": bool(passed),
                 "skipped": skipped})


_CAST = re.compile(r"::(character varying|timestamp without time zone|timestamp with time zone|"
                   r"time without time zone|double precision|bit varying|\"?[a-z_][a-z0-9_]*\"?)(\[\])?")


def _normal(definition: str | None) -> str | None:
    """A constraint or index definition without casts, parentheses and spaces: PostgreSQL deparses
    a CHECK (x IN (...)) differently after a dump and restore, with the same meaning. Never a proof
    of equality ((a+b)*c and a+(b*c) normalise alike): only the text compared, and a definition equal
    only after this is reported as not compared."""
    if definition is None:
        return None
    return re.sub(r"[()\s]", "", _CAST.sub("", definition))


def _same_table(want: dict, got: dict) -> bool:
    return want["columns"] == got["columns"] and all(
        {k: _normal(v) for k, v in want[kind].items()} == {k: _normal(v) for k, v in got[kind].items()}
        for kind in ("constraint", "index"))


def compare(restored: Target, manifest: dict, rows: list) -> None:
    """Schema, every other object the dump carries, row counts and checksums of the restored
    database against the manifest."""
    with connect(restored) as conn:
        summary = backups.schema_summary(conn)
        sums = backups.table_checksums(conn, checksums.method_of(manifest))
        found = objects.snapshot(conn)
        same_major = server_version(conn) == manifest.get("server_version")
        conn.rollback()
    if "objects" in manifest:
        for row in objects.compare(manifest["objects"], found, manifest["kind"], same_major=same_major):
            _row(rows, row["object"], row["check"], row["expected"], row["actual"], row["passed"], skipped=row["skipped"])
    else:
        _row(rows, "views, functions, triggers, sequences, privileges …", "objects", "compared",
             "not compared: this backup's manifest predates their recording", True, skipped=True)
    expected = manifest["schema"]
    for table in sorted(set(expected) | set(summary)):
        want, got = expected.get(table), summary.get(table)
        if want is None or got is None:
            _row(rows, table, "table present", "present" if want else "absent", "present" if got else "absent", False)
            continue
        for column in sorted(set(want["columns"]) | set(got["columns"])):
            a, b = want["columns"].get(column), got["columns"].get(column)
            if a != b:
                _row(rows, f"{table}.{column}", "column type", a or "absent", b or "absent", False)
        for kind in ("constraint", "index"):
            for name in sorted(set(want[kind]) | set(got[kind])):
                a, b = want[kind].get(name), got[kind].get(name)
                if a == b:
                    continue
                if a and b and _normal(a) == _normal(b):  # equal text is the only proof; this is not one
                    _row(rows, f"{table} {kind} {name}", kind, a, "not compared: deparsed differently after the "
                         "round trip, equal only without casts and parentheses", True, skipped=True)
                else:
                    _row(rows, f"{table} {kind} {name}", kind, a or "absent", b or "absent", False)
        _row(rows, table, "schema", f"{len(want['columns'])} columns", f"{len(got['columns'])} columns",
             _same_table(want, got))
    if manifest["kind"] == "schema":
        for table, got in sorted(sums.items()):
            _row(rows, table, "rows (schema-only: none)", 0, got["rows"], got["rows"] == 0)
        return
    for table, want in sorted(manifest["tables"].items()):
        got = sums.get(table)
        if got is None:
            continue  # reported as a missing table above
        _row(rows, table, "row count", want["rows"], got["rows"], want["rows"] == got["rows"])
        _row(rows, table, "content checksum", want["checksum"], got["checksum"], want["checksum"] == got["checksum"])


@dataclass
class DataComparison:
    """A database's tables against a backup's manifest: one report row per check, as in Verification."""

    ok: bool
    report: pd.DataFrame

    @property
    def differing(self) -> list[str]:
        """The tables with a failed check, in order."""
        return sorted(set(self.report.loc[~self.report["passed"], "object"]))

    @property
    def detail(self) -> str:
        """One line: how many tables are equal, or which differ and how."""
        if self.report.empty:
            return "no tables to compare"
        if self.ok:
            compared = int((self.report["check"] == "content checksum").sum())
            return f"{compared} tables equal the backup in row count and content checksum"
        failed = self.report[~self.report["passed"]]
        return "differ: " + "; ".join(f"{table} ({', '.join(group['check'])})" for table, group in failed.groupby("object"))


VERSION_TABLES = ("public.schema_version", "public.prep_ops_migrations")  # they record the migrations run


def compare_data(target: Target, manifest: dict, *, exact: bool = True) -> DataComparison:
    """Row counts and content checksums of `target`'s tables against the manifest, by its method.

    With `exact`, every table of the backup must be there with the same rows. Without, only the
    tables `target` has are compared (a rollback below the backup's version drops some), leaving
    out the migration bookkeeping, which records that very rollback. A table the backup lacks must
    be empty: no data that was not there before.
    """
    with connect(target) as conn:
        now = backups.table_checksums(conn, checksums.method_of(manifest))
        conn.rollback()
    then = manifest["tables"]
    rows: list[dict] = []
    for table in sorted(set(then) | set(now) if exact else set(now) - set(VERSION_TABLES)):
        want, got = then.get(table), now.get(table)
        if want is None:  # e.g. prep_ops_migrations, which a rollback to version 0 leaves behind, empty
            _row(rows, table, "rows of a table not in the backup", 0, got["rows"], got["rows"] == 0)
            continue
        if got is None:
            _row(rows, table, "table present", "present", "absent", False)
            continue
        _row(rows, table, "row count", want["rows"], got["rows"], want["rows"] == got["rows"])
        _row(rows, table, "content checksum", want["checksum"], got["checksum"], want["checksum"] == got["checksum"])
    report = pd.DataFrame(rows, columns=["object", "check", "expected", "actual", "passed"])
    return DataComparison(bool(report["passed"].all()), report)


def _prepare_for_data(target: Target, manifest: dict) -> None:
    """A data-only dump needs the schema: migrate the scratch database to the backup's version."""
    versions = [int(v) for v in manifest.get("schema_versions", {})]
    if not versions:
        raise ParameterError("a data-only backup without schema_version cannot be verified: "
                             "take a full backup, or restore the schema first")
    migrate.apply(target, max(versions))
    with connect(target, autocommit=True) as conn:
        names = [f'"{s}"."{t}"' for s, t in backups.tables(conn)]
    from .restore import _clear

    if names:
        _clear(target, "data")


def refuse_source(target: Target, manifest: dict) -> None:
    """Raise when `target` is the database the backup was taken from: a verification never
    restores over its source."""
    with connect(target) as conn:
        if backups.same_database(backups.identity(conn), manifest["source"]):
            raise ParameterError(f"{target.database} is the backup's source database; refusing to restore into it")


def create_missing_roles(server: Target, manifest: dict) -> list[str]:
    """Create, as NOLOGIN roles without privileges, the source's roles that the restore server lacks,
    and return their names: a dump's GRANT and OWNER statements name them, and a restore fails on
    an unknown role. Roles are cluster-wide: `drop_roles` removes them once the restore is gone."""
    created = []
    with connect(server, autocommit=True) as conn:
        present = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles").fetchall()}
        for role in manifest.get("roles", []):
            if role not in present:
                conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
                created.append(role)
    return created


def drop_roles(server: Target, roles: list[str]) -> dict[str, str]:
    """Drop `roles` (those `create_missing_roles` made) from the server; returns the ones that had to
    stay, with why (something outside the dropped scratch database still refers to them)."""
    kept = {}
    with connect(server, autocommit=True) as conn:
        for role in roles:
            try:
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
            except psycopg.errors.DependentObjectsStillExist as exc:
                kept[role] = str(exc).strip().splitlines()[0]
    return kept


def restored_copy(path: Path, manifest: dict, *, prefix: str = "prep_ops_copy_",
                  server: Target | None = None) -> tuple[Target, list[str]]:
    """A backup restored into a fresh scratch database (on the embedded server unless `server`), for
    work on a copy; and the roles that had to be made on that server for it. Drop both with `drop_copy`."""
    server = server or scratch_server()
    copy = scratch.recreate(server, f"{prefix}{uuid.uuid4().hex[:10]}", confirm=True)
    created: list[str] = []
    try:
        refuse_source(copy, manifest)
        created = create_missing_roles(server, manifest)
        restore_into(path, copy, manifest)
    except Exception:
        drop_copy(copy, created)
        raise
    return copy, created


def drop_copy(copy: Target, roles: list[str] = ()) -> dict[str, str]:
    """Drop a copy made by `restored_copy`, then the roles made for it; returns roles that had to stay."""
    server = copy.with_database("postgres")
    scratch.drop(server, copy.database)
    return drop_roles(server, list(roles)) if roles else {}


def check_extensions(server: Target, manifest: dict, rows: list) -> bool:
    """Whether the restore server offers every extension the backup's database had (one row for each
    it lacks, naming it); manifests from before objects were recorded pass."""
    needed = manifest.get("objects", {}).get("extension", {})
    if not needed:
        return True
    with connect(server) as conn:
        offered = {r[0] for r in conn.execute("SELECT name FROM pg_available_extensions WHERE name = ANY(%s)",
                                              (list(needed),)).fetchall()}
    where = "the embedded server" if server.embedded else "the restore server"
    for name in sorted(set(needed) - offered):
        _row(rows, f"extension {name}", "offered by the restore server", "available",
             f"{where} does not offer {name}: verify on the source's own server with --same-server", False)
    return offered == set(needed)


def scratch_server() -> Target:
    """The embedded server's maintenance database: the default home of verification restores."""
    return Target(embedded.server_url("postgres"), embedded=True)


def verify(path: Path, *, server: Target | None = None, keep_scratch: bool = False) -> Verification:
    """Check, restore into a scratch database and compare one backup; returns the report."""
    began = time.perf_counter()
    path = Path(path)
    manifest = backups.read_manifest(path)
    rows: list[dict] = []
    server = server or scratch_server()
    name = f"prep_ops_verify_{uuid.uuid4().hex[:10]}"
    file_rows = backups.check_files(path, manifest)
    rows.extend(file_rows)
    if not all(r["passed"] for r in file_rows):
        _row(rows, path.name, "restore", "restored", "not tried: the files do not match the manifest", False)
        return Verification(path, False, pd.DataFrame(rows), None, time.perf_counter() - began)
    try:
        check_contents(path, manifest, server)
    except BackupError as exc:
        _row(rows, path.name, "readable as a dump", "readable", str(exc), False)
        _row(rows, path.name, "restore", "restored", "not tried: the file is not a dump prep-ops restores", False)
        return Verification(path, False, pd.DataFrame(rows), None, time.perf_counter() - began)
    if not check_extensions(server, manifest, rows):
        _row(rows, path.name, "restore", "restored", "not tried: the restore server lacks an extension the backup needs", False)
        return Verification(path, False, pd.DataFrame(rows), None, time.perf_counter() - began)
    target = scratch.recreate(server, name, confirm=True)
    created: list[str] = []
    try:
        refuse_source(target, manifest)
        created = create_missing_roles(server, manifest)
        if manifest["kind"] == "data":
            _prepare_for_data(target, manifest)
        try:
            restore_into(path, target, manifest)
            _row(rows, path.name, "restore", "restored", "restored", True)
            compare(target, manifest, rows)
        except backups.BackupError as exc:
            _row(rows, path.name, "restore", "restored", str(exc), False)
    finally:
        if not keep_scratch:  # a kept scratch database still needs its roles
            scratch.drop(server, name)
            for role, why in drop_roles(server, created).items():
                _row(rows, role, "role made for the restore dropped", "dropped", f"kept: {why}", True)
    report = pd.DataFrame(rows)
    return Verification(path, bool(report["passed"].all()), report, name if keep_scratch else None,
                        time.perf_counter() - began)


def verify_latest(directory: Path | None = None, *, source: dict | None = None, max_age_hours: float = 26,
                  min_bytes: int = 1, server: Target | None = None, keep_scratch: bool = False) -> Verification:
    """Verify the newest backup in `directory` (of the database `source` identifies: same cluster and
    name; None: any); also fail when it is older than `max_age_hours` or smaller than `min_bytes` (as
    Barman's check does), so backups that silently stopped are noticed."""
    found = backups.of_database(directory, source) if source else backups.listing(directory)
    if not found:
        raise BackupError(f"no backups in {directory or backups.backups_dir()}"
                          + (f" of {backups.whose(source)}" if source else ""))
    newest = found[0]
    result = verify(newest.path, server=server, keep_scratch=keep_scratch)
    age = (datetime.now(timezone.utc) - datetime.fromisoformat(newest.manifest["finished"])).total_seconds() / 3600
    extra = [{"object": newest.path.name, "check": "age", "expected": f"≤ {max_age_hours} h", "actual": f"{age:.1f} h",
              "passed": age <= max_age_hours},
             {"object": newest.path.name, "check": "size", "expected": f"≥ {min_bytes:,} bytes",
              "actual": f"{newest.manifest['bytes']:,} bytes", "passed": newest.manifest["bytes"] >= min_bytes}]
    report = pd.concat([pd.DataFrame(extra), result.report], ignore_index=True)
    return Verification(result.backup, bool(report["passed"].all()), report, result.scratch_database, result.seconds)


def rows_lost(target: Target, manifest: dict) -> dict[str, tuple[int, int | None]]:
    """Tables of the backup that now hold fewer rows in `target` (or are gone): {table: (then, now)}."""
    with connect(target) as conn:
        now = checksums.row_counts(conn)
        conn.rollback()
    return {table: (then["rows"], now.get(table)) for table, then in manifest["tables"].items()
            if now.get(table, -1) < then["rows"]}
