"""Index advice, PgHero-style: missing foreign-key indexes, unused, duplicate, redundant and invalid
indexes, and candidate indexes for a slow query from its plan; every user schema, not only public.

Two indexes do the same job only when they match on method, key columns in order, operator
classes and predicate; a candidate is never proposed when a valid index already starts with its
columns (PgHero's suggestions can propose an index that is already there). Statements are
proposed, never run, unless `apply()` is called.

The advice agrees with itself:
- an index that serves a foreign key (a valid btree leading with its columns) is never "unused":
  dropping it would bring back the "missing foreign-key index" advice;
- of a duplicate pair one is proposed, keeping the one that backs a constraint, else the older one
  (the lower OID); the one kept is never proposed as unused or redundant in the same advice;
- "unused" needs statistics counted for UNUSED_MIN_DAYS (since the latest of the statistics reset,
  the server's start and the database's creation); before that it is not judged: `too_soon()` says
  why ("too soon to tell"), and a runbook reports SKIP;
- an index of a partition attached to its parent's index is one with it: advice is given for the
  parent's index (scans and size summed over the partitions), never per partition.
"""

import os
from dataclasses import dataclass
from datetime import timedelta

import pandas as pd
import psycopg
from psycopg import sql

from . import index_builds
from .db import bounded_lock_wait, fetch_frame, snapshot
from .sqlfiles import load

CREATES = ("missing foreign-key index", "candidate for query")
DROPS = ("unused", "duplicate", "redundant", "invalid")
# advice without a statement about an INVALID index whose build runs now (see index_builds): never dropped
BUILDS = {index_builds.BUILDING: "build in progress", index_builds.MAYBE_BUILDING: "build maybe in progress"}
NOT_PROPOSED = "not proposed: table in several schemas"  # advice without a statement: why no index is proposed
# an index looks unused only after its scans were counted over a whole cycle of the workload (weekly
# jobs included); PREP_OPS_UNUSED_MIN_DAYS overrides it
UNUSED_MIN_DAYS = float(os.environ.get("PREP_OPS_UNUSED_MIN_DAYS", "7"))


@dataclass(frozen=True)
class Advice:
    kind: str
    table: str
    index: str
    columns: tuple[str, ...]
    why: str
    statement: str
    covered_by: str = ""  # for a duplicate or redundant index: the index that does its job
    schema: str = "public"

    @property
    def label(self) -> str:
        """schema.table as a person reads it (the table alone in public)."""
        return self.table if self.schema == "public" else f"{self.schema}.{self.table}"


def existing(conn: psycopg.Connection) -> pd.DataFrame:
    """Every index of every user schema with columns, operator classes, predicate, validity, use, and
    its place in a partition tree (see sql/indexes/indexes.sql).

    Deparsing an index and measuring it lock its table: behind a session holding a table ACCESS
    EXCLUSIVE (the blocker of an incident, a VACUUM FULL) the read would wait as long as it, so it
    waits db.LOCK_WAIT at most and says why (errors.LockBusy)."""
    with bounded_lock_wait(conn, "the indexes"):
        return fetch_frame(conn, load("indexes", "indexes"))


def foreign_keys(conn: psycopg.Connection) -> pd.DataFrame:
    """Foreign keys of every user schema with their columns (a partition's clone of its parent's key left out)."""
    return fetch_frame(conn, load("indexes", "foreign_keys"))


def index_name(table: str, columns: tuple[str, ...]) -> str:
    """idx_<table>_<columns>, cut as PostgreSQL cuts a name: to 63 bytes (UTF-8), at a character's end."""
    return f"idx_{table}_{'_'.join(columns)}".encode()[:63].decode(errors="ignore")


def create_index(table: str, columns: tuple[str, ...], index: str | None = None, schema: str | None = None) -> sql.Composed:
    """CREATE INDEX CONCURRENTLY IF NOT EXISTS `index` (default: index_name()) ON `schema.table` (`columns`),
    every identifier quoted: the one builder of it. CONCURRENTLY cannot run inside a transaction."""
    on = sql.Identifier(schema, table) if schema else sql.Identifier(table)
    return sql.SQL("CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} ({})").format(
        sql.Identifier(index or index_name(table, columns)), on, sql.SQL(", ").join(map(sql.Identifier, columns)))


def create_statement(table: str, columns: tuple[str, ...], schema: str | None = None) -> str:
    """create_index() as text."""
    return create_index(table, columns, schema=schema).as_string(None)


def _drop_statement(row) -> str:
    # a partitioned parent's index cannot be dropped CONCURRENTLY (PostgreSQL refuses it)
    head = "DROP INDEX IF EXISTS {}" if row["is_partitioned"] else "DROP INDEX CONCURRENTLY IF EXISTS {}"
    return sql.SQL(head).format(sql.Identifier(row["schema_name"], row["index_name"])).as_string(None)


def _advice(kind: str, row, why: str, statement: str, covered_by: str = "") -> Advice:
    return Advice(kind, row["table_name"], row["index_name"], tuple(row["columns"]), why, statement, covered_by,
                  row["schema_name"])


def _on(indexes: pd.DataFrame, schema: str, table: str) -> pd.DataFrame:
    return indexes[(indexes["schema_name"] == schema) & (indexes["table_name"] == table)]


def _served(indexes: pd.DataFrame, table: str, columns: tuple[str, ...], schema: str = "public") -> str | None:
    """The name of a valid, unconditional btree index of `table` that leads with `columns`, if any."""
    on = _on(indexes, schema, table)
    usable = on[on["is_valid"] & on["predicate"].isna() & (on["method"] == "btree")]
    for _, row in usable.iterrows():
        if set(row["columns"][:len(columns)]) == set(columns):
            return row["index_name"]
    return None


def _serving_foreign_keys(indexes: pd.DataFrame, keys: pd.DataFrame) -> set[tuple[str, str]]:
    """(schema, index) of every index that serves a foreign key: every index that would, not only the first."""
    serving = set()
    for _, fk in keys.iterrows():
        on = _on(indexes, fk["schema_name"], fk["table_name"])
        for _, row in on[on["is_valid"] & on["predicate"].isna() & (on["method"] == "btree")].iterrows():
            if set(row["columns"][:len(fk["columns"])]) == set(fk["columns"]):
                serving.add((row["schema_name"], row["index_name"]))
    return serving


def missing_foreign_key_indexes(conn: psycopg.Connection, indexes: pd.DataFrame | None = None) -> list[Advice]:
    """Foreign keys that no index leads with: joins and deletes on the parent scan the child table."""
    with snapshot(conn):
        return _missing_foreign_key_indexes(existing(conn) if indexes is None else indexes, foreign_keys(conn))


def _missing_foreign_key_indexes(indexes: pd.DataFrame, keys: pd.DataFrame) -> list[Advice]:
    advice = []
    for _, fk in keys.iterrows():
        columns, table, schema = tuple(fk["columns"]), fk["table_name"], fk["schema_name"]
        if _served(indexes, table, columns, schema) is None:
            advice.append(Advice("missing foreign-key index", table, index_name(table, columns), columns,
                                 f"{fk['constraint_name']} references {fk['references']} without an index: "
                                 "joins on it and deletes of the parent scan the whole table",
                                 create_statement(table, columns, schema), schema=schema))
    return advice


@dataclass(frozen=True)
class StatsWindow:
    """How long index scans have been counted, and whether that is long enough to call an index unused."""

    since: object  # a datetime, or None when unknown
    collected: timedelta | None
    min_days: float

    @property
    def too_soon(self) -> str:
        """Why unused indexes cannot be judged yet ("" when they can)."""
        if self.min_days <= 0:
            return ""
        if self.collected is None:
            return "too soon to tell: the server does not say since when index scans are counted"
        if self.collected < timedelta(days=self.min_days):
            hours = self.collected.total_seconds() / 3600
            return (f"too soon to tell: index scans counted for {hours:,.1f} h (since {self.since:%Y-%m-%d %H:%M}), "
                    f"{self.min_days:g} days needed (PREP_OPS_UNUSED_MIN_DAYS)")
        return ""


def _created(conn: psycopg.Connection):
    """When this database was created (its PG_VERSION file's mtime), where this role may read it; else None."""
    if not conn.execute("SELECT has_function_privilege('pg_stat_file(text, boolean)', 'execute')").fetchone()[0]:
        return None
    return conn.execute("SELECT (pg_stat_file(format('base/%s/PG_VERSION', d.oid), true)).modification "
                        "FROM pg_database d WHERE d.datname = current_database()").fetchone()[0]


def stats_window(conn: psycopg.Connection, min_days: float | None = None) -> StatsWindow:
    """Since when index scans are counted, and whether `min_days` (default UNUSED_MIN_DAYS) have passed."""
    since, collected = conn.execute(load("indexes", "stats_since"), {"created": _created(conn)}).fetchone()
    return StatsWindow(since, collected, UNUSED_MIN_DAYS if min_days is None else min_days)


def too_soon(conn: psycopg.Connection, min_days: float | None = None) -> str:
    """Why unused indexes are not judged yet ("too soon to tell: ..."), or "" when they are."""
    return stats_window(conn, min_days).too_soon


def unused(conn: psycopg.Connection, indexes: pd.DataFrame | None = None, *, min_days: float | None = None) -> list[Advice]:
    """Indexes never scanned since statistics began that back no constraint and serve no foreign key;
    none while statistics are younger than `min_days` (see too_soon())."""
    with snapshot(conn):
        indexes = existing(conn) if indexes is None else indexes
        return _unused(indexes, foreign_keys(conn), stats_window(conn, min_days))


def _standalone(indexes: pd.DataFrame) -> pd.DataFrame:
    """The indexes advice is given for: not those attached to a parent's index (the parent speaks for them)."""
    return indexes[indexes["parent_index"].isna()]


def _unused(indexes: pd.DataFrame, keys: pd.DataFrame, window: StatsWindow, keep: set = frozenset()) -> list[Advice]:
    if window.too_soon:
        return []
    serving = _serving_foreign_keys(indexes, keys)
    since = f"since {window.since:%Y-%m-%d %H:%M}" if window.since else "since statistics began"
    rows = _standalone(indexes)
    rows = rows[(rows["scans"] == 0) & ~rows["is_unique"] & ~rows["is_primary"] & ~rows["backs_constraint"]]
    return [_advice("unused", r, f"0 scans {since}; costs {r['size_bytes'] / 1024:,.0f} kB and slows every write",
                    _drop_statement(r)) for _, r in rows.iterrows()
            if (r["schema_name"], r["index_name"]) not in serving | set(keep)]


def _keep_first(a, b) -> bool:
    """Whether index `a` is the one to keep of two that do the same job: the primary key, else the one
    backing a constraint, else a unique one, else the older (lower OID)."""
    return (a["is_primary"], a["backs_constraint"], a["is_unique"], -a["index_oid"]) >= \
           (b["is_primary"], b["backs_constraint"], b["is_unique"], -b["index_oid"])


def _text(value) -> str:
    return "" if value is None or pd.isna(value) else str(value)


def duplicates(conn: psycopg.Connection, indexes: pd.DataFrame | None = None) -> list[Advice]:
    """Duplicate indexes (same method, columns, operator classes, predicate) and redundant ones
    (their columns a leading prefix of another's, with the same operator classes and predicate);
    one of each pair, never both: every index proposed leaves one that does its job."""
    indexes = existing(conn) if indexes is None else indexes
    valid = _standalone(indexes)
    valid = valid[valid["is_valid"].astype(bool)]  # astype: an empty object column would select columns, not rows
    advice, reported = [], set()
    for (_schema, _table), group in valid.groupby(["schema_name", "table_name"], sort=True):
        for _, a in group.sort_values("index_oid", ascending=False).iterrows():  # the newer first
            for _, b in group.iterrows():
                if a["index_name"] == b["index_name"] or a["method"] != b["method"] or b["index_name"] in reported:
                    continue
                if a["index_name"] in reported or _text(a["predicate"]) != _text(b["predicate"]):
                    continue
                n = len(a["columns"])
                if not (list(a["columns"]) == list(b["columns"][:n]) and list(a["opclasses"]) == list(b["opclasses"][:n])):
                    continue
                if len(b["columns"]) == n:  # exact duplicates: drop the weaker one
                    if _keep_first(a, b) or a["is_primary"] or (a["backs_constraint"] and b["backs_constraint"]):
                        continue
                    kind, why = "duplicate", f"same columns {tuple(a['columns'])} as {b['index_name']}"
                elif not a["is_unique"] and not a["backs_constraint"] and a["method"] == "btree":
                    kind, why = "redundant", f"its columns {tuple(a['columns'])} lead {b['index_name']} {tuple(b['columns'])}"
                else:
                    continue
                reported.add(a["index_name"])  # its partner b is never reported after: one of a pair
                advice.append(_advice(kind, a, why + "; every write pays for both", _drop_statement(a), b["index_name"]))
    return sorted(advice, key=lambda item: (item.schema, item.table, item.index))


def invalid(conn: psycopg.Connection, indexes: pd.DataFrame | None = None,
            builds: pd.DataFrame | None = None) -> list[Advice]:
    """Indexes left invalid by a failed or killed CREATE INDEX CONCURRENTLY, whoever made them: never used,
    still maintained, a DROP proposed. An INVALID index whose build runs now (another session's too) gets
    advice of kind BUILDS[state] instead, with no statement: it is left alone (see index_builds)."""
    indexes = existing(conn) if indexes is None else indexes
    builds = index_builds.leftover_builds(conn) if builds is None else builds
    rows = indexes[~indexes["is_valid"] & ~indexes["is_partitioned"]]  # a parent's index is invalid until every partition has one
    # an index valid again by the time builds are read was a build that has ended: not advised
    rows = rows.merge(builds[["schema_name", "index_name", "state", "pid", "built_by", "command", "phase", "owner",
                              "may_drop"]], on=["schema_name", "index_name"])
    return [_advice("invalid", r, index_builds.why(r), _drop_statement(r) + f"; -- then recreate: {r['definition']}")
            if r["state"] == index_builds.LEFTOVER else _advice(BUILDS[r["state"]], r, index_builds.why(r), "")
            for _, r in rows.iterrows()]


def advice(conn: psycopg.Connection, *, min_days: float | None = None) -> list[Advice]:
    """All standing advice for the database: missing FK indexes, invalid, duplicate, unused; read in one
    snapshot. Unused indexes only once statistics are old enough (see too_soon())."""
    with snapshot(conn):
        indexes, keys, window = existing(conn), foreign_keys(conn), stats_window(conn, min_days)
        builds = index_builds.leftover_builds(conn)
    doubled = duplicates(conn, indexes)
    involved = {(a.schema, a.index) for a in doubled} | {(a.schema, a.covered_by) for a in doubled}
    return (_missing_foreign_key_indexes(indexes, keys) + invalid(conn, indexes, builds) + doubled
            + _unused(indexes, keys, window, involved))


def as_frame(items: list[Advice]) -> pd.DataFrame:
    """Advice as a DataFrame, one row each."""
    return pd.DataFrame([{**i.__dict__, "table": i.label} for i in items],
                        columns=["kind", "table", "index", "columns", "why", "statement"])


# candidates for a query's plan, and creating them: in index_candidates.py, re-exported here
from .index_candidates import Applied, apply, apply_and_compare, candidates  # noqa: E402, F401
