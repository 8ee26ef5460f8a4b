"""A database against a backup's manifest: schema, every other object, row counts and content
checksums. `compare` is what a verification checks in its restored copy; `compare_data` and
`rows_lost` what a deployment checks in a live database or a rolled-back copy.

Each reads the database through the caller's connection, in one snapshot, and returns report rows
(object, check, expected, actual, passed, skipped) or a summary of them.
"""

from dataclasses import dataclass

import pandas as pd
import psycopg

from . import checksums, deparse, objects
from ._report import row
from .db import Target, connect, server_version, snapshot
from .labels import as_labelled

VERSION_TABLES = ("public.schema_version", "public.prep_ops_migrations")  # they record the migrations run


def _table_data(table: str, want: dict, got: dict) -> list[dict]:
    """Row count and content checksum of one table, then and now."""
    return [row(table, "row count", want["rows"], got["rows"], want["rows"] == got["rows"]),
            row(table, "content checksum", want["checksum"], got["checksum"], want["checksum"] == got["checksum"])]


def _checks_decided(conn: psycopg.Connection, table: str, want: dict, got: dict,
                    probe_as: Target | None = None) -> dict[str, deparse.Decision]:
    """The CHECK constraints of `table` whose text changed in the round trip, decided by the restore
    server (see deparse): {name: decision}; on a session of `probe_as` where given (see compare)."""
    pairs = {name: (a, got["constraint"][name]) for name, a in want["constraint"].items()
             if a != got["constraint"].get(name) and deparse.is_check(a) and deparse.is_check(got["constraint"].get(name))}
    if not pairs:
        return {}
    if probe_as is None:
        return deparse.decide(conn, table, pairs)
    with connect(probe_as, autocommit=True) as probing:
        return deparse.decide(probing, table, pairs)


def _definition_row(table: str, kind: str, name: str, a: str | None, b: str | None,
                    decided: deparse.Decision | None) -> dict | None:
    """The report row of a constraint or index whose text differs (None: equal as the server deparses it)."""
    what = f"{table} {kind} {name}"
    if decided is not None:
        if decided.equal:
            return None
        return row(what, kind, a, decided.why, not decided.decided, skipped=not decided.decided)
    if a and b and objects.without_casts(a) == objects.without_casts(b):  # equal text is the only proof; this is not one
        return row(what, kind, a, "not compared: deparsed differently after the round trip, equal only without "
                   "casts and parentheses", True, skipped=True)
    return row(what, kind, a or "absent", b or "absent", False)


def _table_schema(table: str, want: dict, got: dict, decided: dict[str, deparse.Decision]) -> list[dict]:
    """Columns, constraints and indexes of one table, then and now: a row per difference (or per
    definition not compared), then one for the table, passed when none differs."""
    rows = []
    for column in sorted(set(want["columns"]) | set(got["columns"])):
        a, b = want["columns"].get(column), got["columns"].get(column)
        if a != b:
            rows.append(row(f"{table}.{column}", "column type", a or "absent", b or "absent", False))
    for kind in ("constraint", "index"):
        for name in sorted(set(want[kind]) | set(got[kind])):
            a, b = want[kind].get(name), got[kind].get(name)
            if a != b:
                found = _definition_row(table, kind, name, a, b, decided.get(name) if kind == "constraint" else None)
                rows += [found] if found else []
    differing = sum(not r["passed"] for r in rows)
    unsure = sum(r["skipped"] for r in rows)
    rows.append(row(table, "schema", f"{len(want['columns'])} columns", f"{len(got['columns'])} columns"
                    + (f", {differing} difference(s)" if differing else "")
                    + (f", {unsure} definition(s) not compared" if unsure else ""), differing == 0))
    return rows


def compare(conn: psycopg.Connection, manifest: dict, *, target: Target | None = None,
            probe_as: Target | None = None, extension_versions: bool = True, owners: bool = True) -> list[dict]:
    """Report rows: schema, every other object the dump carries, row counts and checksums of the
    (restored) database against the manifest; the checksums on several connections when `target`
    (`conn`'s database) is given (see checksums.each_table). `probe_as`: the restore's own role (see
    restore_role), whose sessions put a CHECK definition on a probe table (deparse): a function the
    definition names may RESET ROLE, which in a superuser's session, as the table's owner, gave it back
    the superuser's rights. Without `extension_versions`, extensions are compared by presence only;
    `owners`: whether the restore gave objects their owners (objects.compare). Definitions are read under
    the settings the manifest records (objects.DEPARSE_SETTINGS); one written before, under the session's."""
    settings = manifest.get("deparse_settings", {})  # one written before they were pinned: the session's, as then
    with snapshot(conn):
        summary = objects.schema_summary(conn, settings)
        sums = checksums.table_checksums(conn, checksums.method_of(manifest), target=target)
        found = objects.snapshot(conn, settings=settings)
    rows = []
    if "objects" in manifest:
        restored_on, taken_on = server_version(conn), manifest.get("server_version")
        same_major = restored_on == taken_on
        maintain = not isinstance(taken_on, int) or (restored_on >= 17) == (taken_on >= 17)  # MAINTAIN: 17 and later
        restorer = None if owners else conn.execute("SELECT current_user").fetchone()[0]  # it restored, as the owner
        rows += objects.compare(manifest["objects"], found, manifest["kind"], same_major=same_major,
                                extension_versions=extension_versions, owners=owners, restorer=restorer,
                                maintain=maintain)
    else:
        rows.append(row("views, functions, triggers, sequences, privileges …", "objects", "compared",
                        "not compared: this backup's manifest predates their recording", True, skipped=True))
    expected = as_labelled(manifest["schema"], summary)  # an older manifest's labels, where each names one table
    for table in sorted(set(expected) | set(summary)):
        want, got = expected.get(table), summary.get(table)
        if want is None or got is None:
            rows.append(row(table, "table present", "present" if want else "absent", "present" if got else "absent", False))
        else:
            rows += _table_schema(table, want, got, _checks_decided(conn, table, want, got, probe_as))
    if manifest["kind"] == "schema":
        return rows + [row(table, "rows (schema-only: none)", 0, got["rows"], got["rows"] == 0)
                       for table, got in sorted(sums.items())]
    for table, want in sorted(as_labelled(manifest["tables"], sums).items()):
        if table in sums:  # a missing table is reported above
            rows += _table_data(table, want, sums[table])
    return rows


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
    def not_compared(self) -> str:
        """Why nothing was compared, for a SKIP ('' where a table was, or where a check failed): the backup
        held no table (an empty database's), so an equal count of none proves nothing."""
        if not self.ok or (not self.report.empty and (self.report["check"] == "content checksum").any()):
            return ""
        return "the backup holds no table to compare with: nothing was compared"

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


def compare_data(conn: psycopg.Connection, manifest: dict, *, exact: bool = True) -> DataComparison:
    """Row counts and content checksums of the database's tables against the manifest, by its method.

    With `exact`, every table of the backup must be there with the same rows. Without, only the
    tables the database has are compared (a rollback below the backup's version drops some), leaving
    out the migration bookkeeping, which records that very rollback. A table the backup lacks must
    be empty: no data that was not there before.
    """
    with snapshot(conn):
        now = checksums.table_checksums(conn, checksums.method_of(manifest))
    then = as_labelled(manifest["tables"], now)
    rows: list[dict] = []
    for table in sorted(set(then) | set(now) if exact else set(now) - set(VERSION_TABLES)):
        want, got = then.get(table), now.get(table)
        if want is None:  # e.g. prep_ops_migrations, which a rollback to version 0 leaves behind, empty
            rows.append(row(table, "rows of a table not in the backup", 0, got["rows"], got["rows"] == 0))
        elif got is None:
            rows.append(row(table, "table present", "present", "absent", False))
        else:
            rows += _table_data(table, want, got)
    report = pd.DataFrame(rows, columns=["object", "check", "expected", "actual", "passed"])
    return DataComparison(bool(report["passed"].all()), report)


def rows_lost(conn: psycopg.Connection, manifest: dict) -> dict[str, tuple[int, int | None]]:
    """Tables of the backup that now hold fewer rows in the database (or are gone): {table: (then, now)}."""
    with snapshot(conn):
        now = checksums.row_counts(conn, checksums.method_of(manifest))
    return {table: (then["rows"], now.get(table)) for table, then in as_labelled(manifest["tables"], now).items()
            if now.get(table, -1) < then["rows"]}
