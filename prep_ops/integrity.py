"""Integrity: amcheck over every table and B-tree index, and the cluster's data-checksum state.

`verify_heapam` reads every page of a table (and its TOAST) and reports what it finds wrong, block by
block; `bt_index_check(index, heapallindexed => true)` checks each B-tree's structure and that every
row of its table is in it. Both take only AccessShareLock (the lock a SELECT takes): safe on a live
server, never blocking writes. With data checksums on, a page whose checksum does not match is an
error when read, which amcheck reports as corruption of that relation; the server also counts such
failures in `pg_stat_database`.

Where amcheck is not installed in the database, it is created only when the caller says so
(`install=True`; by default, on a scratch database only); otherwise the relation checks are
skipped with the reason, and only the checksum counters are read.
"""

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pandas as pd
import psycopg
from psycopg import errors, sql

from . import extensions
from .catalog import function_name_exists
from .db import LOCK_WAIT, bounded_lock_wait, fetch_frame, is_scratch
from .errors import LockBusy, ParameterError, first_line
from .schema import resolve_tables
from .sqlfiles import load

# SQLSTATE class XX: data_corrupted (XX001, also a checksum failure) and index_corrupted (XX002)
_CORRUPTION = (errors.DataCorrupted, errors.IndexCorrupted)
_BLOCK = re.compile(r"\bblock (\d+)|tid=\((\d+),")
_TOAST_FINDING = re.compile(r"toast value \d+ ")  # "... not found in toast table", "... index scan returned chunk ..."
COLUMNS = ["relation", "kind", "table_name", "check", "status", "block", "detail", "seconds"]


@dataclass
class IntegrityReport:
    """What `check()` found: one row per relation checked, and the cluster's checksum state."""

    relations: pd.DataFrame          # COLUMNS; status is ok, corrupt or error (could not be checked)
    data_checksums: str              # on, off
    checksum_failures: int | None    # failures counted in this database (None: checksums off)
    skipped: str = ""                # why amcheck did not run ("" when it did)
    notes: list[str] = field(default_factory=list)

    @property
    def corrupt(self) -> pd.DataFrame:
        """The relations amcheck found corrupt."""
        return self.relations[self.relations["status"] == "corrupt"]

    @property
    def errors(self) -> pd.DataFrame:
        """The relations that could not be checked (no privilege, lock timeout ...)."""
        return self.relations[self.relations["status"] == "error"]

    @property
    def outcome(self) -> str:
        """corrupt (amcheck or the checksums found damage), incomplete, skipped (amcheck did not run) or ok."""
        if len(self.corrupt) or (self.checksum_failures or 0) > 0:
            return "corrupt"
        if len(self.errors):
            return "incomplete"
        return "skipped" if self.skipped else "ok"

    @property
    def summary(self) -> str:
        """One line: what was checked and what was found."""
        tried = f"{len(self.relations) - len(self.errors):,} of {len(self.relations):,}" if len(self.errors) else f"{len(self.relations):,}"
        checked = f"{tried} relation(s) checked" if not self.skipped else f"amcheck skipped: {self.skipped}"
        found = []
        for row in self.corrupt.itertuples():
            where = f" block {row.block}" if pd.notna(row.block) else ""
            found.append(f"{row.kind} {row.relation}{where}: {row.detail}")
        if self.checksum_failures:
            found.append(f"{self.checksum_failures} data-checksum failure(s) counted in this database")
        if len(self.errors):
            found.append(f"{len(self.errors)} relation(s) could not be checked ({self.errors.iloc[0].detail})")
        checksums = f"data checksums {self.data_checksums}"
        if found:
            return "; ".join([checked, checksums, *found])
        if not self.skipped:
            clean = "no corruption found"
        elif self.data_checksums == "on":  # only the pages something read since the counters began
            clean = "no data-checksum failure counted; no page was read to check"
        else:
            clean = "nothing was checked"
        return "; ".join([checked, checksums, clean])



def _block(message: str) -> int | None:
    found = _BLOCK.search(message)
    return int(next(g for g in found.groups() if g is not None)) if found else None


def _table_oids(conn: psycopg.Connection, tables: Iterable[str] | None) -> list[int] | None:
    """The OIDs of `tables` (any user schema, named as schema.resolve_tables takes them: `archive.old_rentals`,
    `"Reporting"."Monthly Sales"`, or a name alone), a partitioned parent's partitions with it; None stays None."""
    if tables is None:
        return None
    names = [tables] if isinstance(tables, str) else list(tables)
    if not names:
        raise ParameterError("no tables named; pass None to check every table")
    found = resolve_tables(conn, names, materialized=True)
    return [oid for table in found for oid, in conn.execute(
        "SELECT %(t)s::regclass::oid UNION SELECT relid FROM pg_partition_tree(%(t)s::regclass)",
        {"t": table.qualified}).fetchall()]


def _amcheck(conn: psycopg.Connection, install: bool) -> tuple[str | None, set[str], str, list[str]]:
    """amcheck's schema (None: not usable), the kinds of relation (table, index) this role may check with it,
    why it is not usable, and notes on the kind it may not check. amcheck revokes its functions from
    PUBLIC: a database owner that is not a superuser would otherwise see every relation tried and refused."""
    schema, why = extensions.find(conn, "amcheck", install=install)
    if schema is None:
        return None, set(), why, []
    role = sql.Identifier(conn.execute("SELECT current_user").fetchone()[0]).as_string(None)
    grant = "a superuser may grant it EXECUTE on {} (each signature), or run the check as a superuser"
    function = {"index": "bt_index_check", "table": "verify_heapam"}
    named = {kind: sql.Identifier(schema, name).as_string(None) for kind, name in function.items()}
    if not function_name_exists(conn, "verify_heapam", schema):
        kinds, notes = {"index"}, ["this amcheck has no verify_heapam (PostgreSQL 14+): tables not checked, indexes only"]
    else:
        kinds, notes = {"index", "table"}, []
    refused = {kind for kind in kinds if not _may_execute(conn, schema, function[kind])}
    if refused == kinds:
        return None, set(), f"amcheck's functions may not be run by {role}: " + grant.format(
            " and ".join(named[k] for k in sorted(refused))), []
    for kind in sorted(refused):
        notes.append(f"{function[kind]} may not be run by {role}: {kind}s not checked ({grant.format(named[kind])})")
    return schema, kinds - refused, "", notes


def _may_execute(conn: psycopg.Connection, schema: str, name: str) -> bool:
    """Whether this role may execute some function `schema.name` (whatever its arguments)."""
    return conn.execute(load("integrity", "may_execute"),
                        {"name": name, "schema": sql.Identifier(schema).as_string(None)}).fetchone()[0]


def _checksums(conn: psycopg.Connection) -> tuple[str, int | None]:
    state, failures, _last = conn.execute(load("integrity", "checksums")).fetchone()
    return state, (int(failures) if failures is not None else None)


def _check_one(conn: psycopg.Connection, schema: str, row) -> tuple[str, int | None, str]:
    """Status (ok, corrupt, error), block and detail of one relation."""
    if row.kind == "index":
        query = sql.SQL("SELECT {}(%s::oid::regclass, true)").format(sql.Identifier(schema, "bt_index_check"))
    else:
        query = sql.SQL("SELECT blkno, offnum, attnum, msg FROM {}(%s::oid::regclass, check_toast => true)").format(
            sql.Identifier(schema, "verify_heapam"))
    try:
        # amcheck's AccessShareLock queues behind an ACCESS EXCLUSIVE one: wait LOCK_WAIT, then say not checked
        with bounded_lock_wait(conn, row.relation):
            problems = conn.execute(query, (row.relation_oid,)).fetchall()
        if row.kind != "table":  # bt_index_check: an error when it finds damage, else one empty row
            return "ok", None, ""
        problems, gone = _on_deleted_versions(conn, row.relation_oid, problems) if problems else ([], [])
        if gone and not problems:  # a second look: what stands then, or moved to another row version, stands
            with conn.transaction():
                again = conn.execute(query, (row.relation_oid,)).fetchall()
            seen = {(block, offset) for block, offset, _column, _message in gone}
            problems, gone_again = _on_deleted_versions(conn, row.relation_oid, again)
            problems += [p for p in gone_again if (p[0], p[1]) not in seen]
    except _CORRUPTION as exc:
        message = first_line(exc)
        return "corrupt", _block(message), message
    except LockBusy:
        return "error", None, (f"not checked: locked by another session (ACCESS EXCLUSIVE: VACUUM FULL, REINDEX, "
                               f"LOCK TABLE, ALTER TABLE; gave up after {LOCK_WAIT})")
    except psycopg.Error as exc:
        return "error", None, first_line(exc)
    if problems:
        block, offset, column, message = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return "corrupt", block, f"offset {offset}" + (f", column {column}" if column is not None else "") + f": {message}{more}"
    if gone:
        block, offset, _column, message = gone[0]
        return "ok", None, (f"{len(gone)} TOAST finding(s) only on deleted row versions that no new query sees, "
                            f"e.g. block {block} offset {offset}: {message}")
    return "ok", None, ""


def _on_deleted_versions(conn: psycopg.Connection, relation: int, problems: list) -> tuple[list, list]:
    """`problems` split into those that stand and the TOAST findings of row versions a new snapshot does not
    see (deleted or updated away, and committed).

    verify_heapam follows the TOAST of a row version deleted after its own snapshot's xmin, the oldest
    transaction then running in any database of the server; VACUUM's horizon in this database leaves the
    other databases' transactions out, so it may already have removed that TOAST. Seen as "toast value ...
    not found in toast table" on old pg_statistic rows after an ANALYZE while another database was being
    created (1 check in 8, reproduced on purpose), or, with VACUUM removing it while verify_heapam read,
    "toast value ... index scan returned chunk 1 when expecting chunk 0". What no new query can read is
    not damage to the data; a row a new query sees whose TOAST is missing or broken is, and stays a finding.

    The row is looked for in the table itself (ONLY: not in an inheritance child at the same ctid) with
    row_security off, so that a policy cannot hide a live row from the checking role: where one would,
    the query fails and the finding stands, as it does where the role may not read the table. A row
    updated after verify_heapam read it has a new version that carries the same broken TOAST pointer: the
    caller looks a second time (`_check_one`), and what stands then, or shows at another row version, is
    corruption."""
    schema, name = conn.execute("SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                                "WHERE c.oid = %s::oid", (relation,)).fetchone()
    visible = sql.SQL("SELECT EXISTS (SELECT FROM ONLY {} WHERE ctid = %s::tid)").format(sql.Identifier(schema, name))
    stand, gone = [], []
    for problem in problems:
        block, offset, _column, message = problem
        deleted = False
        if block is not None and offset is not None and _TOAST_FINDING.match(message or ""):
            try:
                with conn.transaction():  # a snapshot of its own, taken now
                    # a policy makes this fail, not filter; the caller's value back after (in its transaction)
                    saved = conn.execute("SELECT current_setting('row_security')").fetchone()[0]
                    conn.execute("SELECT set_config('row_security', 'off', true)")
                    deleted = not conn.execute(visible, (f"({block},{offset})",)).fetchone()[0]
                    conn.execute("SELECT set_config('row_security', %s, true)", (saved,))
            except psycopg.Error:  # not readable here (privileges, a policy): the finding stands
                deleted = False
        (gone if deleted else stand).append(problem)
    return stand, gone


def check(conn: psycopg.Connection, tables: Iterable[str] | None = None, *, install: bool | None = None,
          on_progress: Callable[[int, int], None] | None = None) -> IntegrityReport:
    """Check every table and B-tree index (or `tables` and their indexes) with amcheck, and read the
    data-checksum state and failure count; returns the report (nothing is changed, except creating
    amcheck when `install` is true and it is missing; None: on a scratch database).

    Each relation is checked in a transaction of its own: one snapshot for the whole run would hold
    back VACUUM for as long as amcheck reads, and would hide the checksum failures it provokes.
    `on_progress(done, total)` is called after each relation.
    """
    oids = _table_oids(conn, tables)
    state, failures = _checksums(conn)
    schema, kinds, skipped, limits = _amcheck(conn, is_scratch(conn) if install is None else install)
    rows = []
    notes = [] if state == "on" else ["data checksums are off: a damaged page is only found by amcheck's own checks"]
    if schema is not None:
        relations = fetch_frame(conn, load("integrity", "relations"), {"tables": oids})
        notes += limits
        relations = relations[relations["kind"].isin(kinds)]
        for done, row in enumerate(relations.itertuples(), start=1):
            began = time.perf_counter()
            status, block, detail = _check_one(conn, schema, row)
            if status == "ok" and detail:
                notes.append(f"{row.relation}: {detail}")
            rows.append((row.relation, row.kind, row.table_name, "bt_index_check" if row.kind == "index" else "verify_heapam",
                         status, block, detail, round(time.perf_counter() - began, 3)))
            if on_progress:
                on_progress(done, len(relations))
        state, failures = _checksums(conn)  # failures found while amcheck read the pages count too
    frame = pd.DataFrame(rows, columns=COLUMNS).astype({"block": "Int64"})
    return IntegrityReport(frame, state, failures, skipped, notes)


__all__ = ["IntegrityReport", "check", "COLUMNS"]
