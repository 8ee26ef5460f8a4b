"""Index advice, PgHero-style: missing foreign-key indexes, unused, duplicate, redundant and invalid
indexes, and candidate indexes for a slow query from its plan.

Two indexes do the same job only when they match on method, key columns in order, operator
classes and predicate; a candidate is never proposed when a valid index already starts with its
columns (PgHero's suggestions can propose an index that is already there). Statements are
proposed, never run, unless `apply()` is called.
"""

import re
import statistics
from dataclasses import dataclass

import pandas as pd
import psycopg
from psycopg import sql

from . import plan_compare, plans
from .db import fetch_frame, require_change, snapshot
from .plans import Plan, findings
from .sqlfiles import load

CREATES = ("missing foreign-key index", "candidate for query")


@dataclass(frozen=True)
class Advice:
    kind: str
    table: str
    index: str
    columns: tuple[str, ...]
    why: str
    statement: str
    covered_by: str = ""  # for a duplicate or redundant index: the index that does its job


def existing(conn: psycopg.Connection) -> pd.DataFrame:
    """Every index of the public schema with columns, operator classes, predicate, validity, use."""
    return fetch_frame(conn, load("indexes", "indexes"))


def foreign_keys(conn: psycopg.Connection) -> pd.DataFrame:
    """Foreign keys of the public schema with their columns."""
    return fetch_frame(conn, load("indexes", "foreign_keys"))


def index_name(table: str, columns: tuple[str, ...]) -> str:
    """idx_<table>_<columns>, cut to PostgreSQL's 63-byte limit."""
    return f"idx_{table}_{'_'.join(columns)}"[:63]


def create_index(table: str, columns: tuple[str, ...], index: str | None = None) -> sql.Composed:
    """CREATE INDEX CONCURRENTLY IF NOT EXISTS `index` (default: index_name()) ON `table` (`columns`),
    every identifier quoted: the one builder of it. CONCURRENTLY cannot run inside a transaction."""
    return sql.SQL("CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {} ({})").format(
        sql.Identifier(index or index_name(table, columns)), sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, columns)))


def create_statement(table: str, columns: tuple[str, ...]) -> str:
    """create_index() as text."""
    return create_index(table, columns).as_string(None)


def _drop_statement(index: str) -> str:
    return sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(index)).as_string(None)


def _served(indexes: pd.DataFrame, table: str, columns: tuple[str, ...]) -> str | None:
    """The name of a valid, unconditional btree index of `table` that leads with `columns`, if any."""
    usable = indexes[(indexes["table_name"] == table) & indexes["is_valid"] & indexes["predicate"].isna()
                     & (indexes["method"] == "btree")]
    for _, row in usable.iterrows():
        if set(row["columns"][:len(columns)]) == set(columns):
            return row["index_name"]
    return None


def missing_foreign_key_indexes(conn: psycopg.Connection, indexes: pd.DataFrame | None = None) -> list[Advice]:
    """Foreign keys that no index leads with: joins and deletes on the parent scan the child table."""
    with snapshot(conn):
        return _missing_foreign_key_indexes(existing(conn) if indexes is None else indexes, foreign_keys(conn))


def _missing_foreign_key_indexes(indexes: pd.DataFrame, keys: pd.DataFrame) -> list[Advice]:
    advice = []
    for _, fk in keys.iterrows():
        columns = tuple(fk["columns"])
        if _served(indexes, fk["table_name"], columns) is None:
            advice.append(Advice("missing foreign-key index", fk["table_name"], index_name(fk["table_name"], columns),
                                 columns, f"{fk['constraint_name']} references {fk['references']} without an index: "
                                 "joins on it and deletes of the parent scan the whole table",
                                 create_statement(fk["table_name"], columns)))
    return advice


def unused(conn: psycopg.Connection, indexes: pd.DataFrame | None = None) -> list[Advice]:
    """Indexes never scanned since statistics were reset that back no constraint."""
    with snapshot(conn):
        indexes = existing(conn) if indexes is None else indexes
        return _unused(indexes, conn.execute(load("indexes", "stats_since")).fetchone())


def _unused(indexes: pd.DataFrame, since) -> list[Advice]:
    since_text = f"since {since[0]:%Y-%m-%d %H:%M}" if since and since[0] else "since statistics began"
    rows = indexes[(indexes["scans"] == 0) & ~indexes["is_unique"] & ~indexes["is_primary"] & ~indexes["backs_constraint"]]
    return [Advice("unused", r["table_name"], r["index_name"], tuple(r["columns"]),
                   f"0 scans {since_text}; costs {r['size_bytes'] / 1024:,.0f} kB and slows every write",
                   _drop_statement(r["index_name"])) for _, r in rows.iterrows()]


def _keep_first(a, b) -> bool:
    """Whether index `a` is the one to keep of two that do the same job."""
    return (a["is_primary"], a["backs_constraint"], a["is_unique"], -len(a["index_name"])) >= \
           (b["is_primary"], b["backs_constraint"], b["is_unique"], -len(b["index_name"]))


def _text(value) -> str:
    return "" if value is None or pd.isna(value) else str(value)


def duplicates(conn: psycopg.Connection, indexes: pd.DataFrame | None = None) -> list[Advice]:
    """Duplicate indexes (same method, columns, operator classes, predicate) and redundant ones
    (their columns a leading prefix of another's, with the same operator classes and predicate)."""
    indexes = existing(conn) if indexes is None else indexes
    valid = indexes[indexes["is_valid"]]
    advice, reported = [], set()
    for _, a in valid.iterrows():
        for _, b in valid.iterrows():
            if a["index_name"] == b["index_name"] or a["table_name"] != b["table_name"] or a["method"] != b["method"]:
                continue
            if _text(a["predicate"]) != _text(b["predicate"]):
                continue
            n = len(a["columns"])
            same_prefix = list(a["columns"]) == list(b["columns"][:n]) and list(a["opclasses"]) == list(b["opclasses"][:n])
            if not same_prefix or a["index_name"] in reported:
                continue
            if len(b["columns"]) == n:  # exact duplicates: drop the weaker one
                if _keep_first(a, b) or a["is_primary"] or (a["backs_constraint"] and b["backs_constraint"]):
                    continue
                kind, why = "duplicate", f"same columns {tuple(a['columns'])} as {b['index_name']}"
            elif not a["is_unique"] and not a["backs_constraint"] and a["method"] == "btree":
                kind, why = "redundant", f"its columns {tuple(a['columns'])} lead {b['index_name']} {tuple(b['columns'])}"
            else:
                continue
            reported.add(a["index_name"])
            advice.append(Advice(kind, a["table_name"], a["index_name"], tuple(a["columns"]),
                                 why + "; every write pays for both", _drop_statement(a["index_name"]),
                                 b["index_name"]))
    return advice


def invalid(conn: psycopg.Connection, indexes: pd.DataFrame | None = None) -> list[Advice]:
    """Indexes left invalid by a failed CREATE INDEX CONCURRENTLY: never used, still maintained."""
    indexes = existing(conn) if indexes is None else indexes
    rows = indexes[~indexes["is_valid"]]
    return [Advice("invalid", r["table_name"], r["index_name"], tuple(r["columns"]),
                   "left invalid (a failed CREATE INDEX CONCURRENTLY?): not used, still maintained",
                   _drop_statement(r["index_name"]) + f"; -- then recreate: {r['definition']}")
            for _, r in rows.iterrows()]


def advice(conn: psycopg.Connection) -> list[Advice]:
    """All standing advice for the database: missing FK indexes, invalid, duplicate, unused; read in one snapshot."""
    with snapshot(conn):
        indexes, keys = existing(conn), foreign_keys(conn)
        since = conn.execute(load("indexes", "stats_since")).fetchone()
    doubled = duplicates(conn, indexes)
    reported = {a.index for a in doubled}
    return (_missing_foreign_key_indexes(indexes, keys) + invalid(conn, indexes) + doubled
            + [a for a in _unused(indexes, since) if a.index not in reported])


_QUOTED = re.compile(r"'(?:[^']|'')*'")
_REFERENCE = re.compile(r"(?:\b(\w+)\.)?\b([a-z_][a-z0-9_]*)\b(\)?(?:::[\w ]+)?\)?\s*(=|<>|<=|>=|<|>|~~|IN\b|= ANY))?")


def _columns_in(expression: str, alias: str | None, columns: set[str]) -> tuple[str, ...]:
    """Columns of one table named in a filter or join condition, equality comparisons first."""
    text = _QUOTED.sub("''", expression or "")
    equal, other = [], []
    for qualifier, name, _, operator in _REFERENCE.findall(text):
        if name not in columns or (qualifier and alias and qualifier != alias):
            continue
        bucket = equal if operator.strip() in ("=", "= ANY", "IN") else other
        if name not in equal and name not in other:
            bucket.append(name)
    return tuple(equal + other)


def _table_columns(conn: psycopg.Connection, tables: set[str]) -> dict[str, set[str]]:
    rows = conn.execute("SELECT table_name, column_name FROM information_schema.columns "
                            "WHERE table_schema = 'public' AND table_name = ANY(%s)", (sorted(tables),)).fetchall()
    found: dict[str, set[str]] = {}
    for table, column in rows:
        found.setdefault(table, set()).add(column)
    return found


def candidates(conn: psycopg.Connection, plan: Plan) -> list[Advice]:
    """Indexes that would serve a slow plan: the filter columns of its selective sequential scans
    and the join columns of sequential scans on the inner side of joins; none already served."""
    nodes = plan.nodes
    selective = {f.node_id for f in findings(plan) if f.kind in ("selective sequential scan", "nested loop with many loops")}
    scans = nodes[(nodes["node_type"] == "Seq Scan") & nodes["relation"].notna()]
    if scans.empty:
        return []
    with snapshot(conn):
        columns_of = _table_columns(conn, set(scans["relation"]))
        indexes = existing(conn)
    proposals: dict[tuple, str] = {}
    for _, scan in scans.iterrows():
        table, known = scan["relation"], columns_of.get(scan["relation"], set())
        wanted: tuple[str, ...] = ()
        if scan["id"] in selective:
            wanted = _columns_in(scan["filter"], scan["alias"], known)
        else:  # the inner side of a hash join reading a whole table for a join key
            parent = nodes[nodes["id"] == scan["parent"]]
            if len(parent) and parent.iloc[0]["node_type"] == "Hash":
                join = nodes[nodes["id"] == parent.iloc[0]["parent"]]
                if len(join) and (scan["rows_removed_by_filter"] or 0) > (scan["actual_rows"] or 0):
                    wanted = _columns_in(join.iloc[0]["hash_cond"], scan["alias"], known)
        if not wanted or _served(indexes, table, wanted[:1]):
            continue
        proposals.setdefault((table, wanted), f"{scan['node']} (node {scan['id']}) filters on {', '.join(wanted)}")
    return [Advice("candidate for query", table, index_name(table, cols), cols, why, create_statement(table, cols))
            for (table, cols), why in proposals.items()]


def as_frame(items: list[Advice]) -> pd.DataFrame:
    """Advice as a DataFrame, one row each."""
    return pd.DataFrame([i.__dict__ for i in items], columns=["kind", "table", "index", "columns", "why", "statement"])


def apply(conn: psycopg.Connection, items: list[Advice], *, confirm: bool = False) -> list[str]:
    """Create the proposed indexes (CONCURRENTLY, so on the autocommit connection, outside a
    transaction); returns the statements run. Drops are never applied here. Outside a scratch
    database, needs `confirm`."""
    creates = [i for i in items if i.kind in CREATES]
    if creates:
        require_change(conn, confirm, "creating indexes")
    done = []
    for item in creates:
        conn.execute(create_index(item.table, item.columns, item.index))
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(item.table)))
        done.append(item.statement)
    return done


@dataclass
class Applied:
    """Runbook 03's apply step: the indexes created for a query (if any), and the query's plan and
    median time before and after, compared node by node. With nothing created, "after" is the
    same query run again, which shows whether its plan is stable."""

    statements: list[str]
    status: str
    before_ms: float
    after_ms: float
    after: Plan
    comparison: pd.DataFrame
    in_place: bool  # every proposed index exists now (or none was proposed)

    @property
    def faster(self) -> bool:
        return self.after_ms < self.before_ms

    def verdict(self) -> dict:
        """The compare step's check, as keyword arguments of prep_ops.check: with new indexes the
        query must be faster; without, a plan that changes on a re-run is a warning."""
        timing = f"{self.before_ms:.1f} ms → {self.after_ms:.1f} ms (median); {plan_compare.changes(self.comparison)}"
        if self.statements:
            return {"name": "query faster with the new indexes", "passed": self.faster, "detail": timing,
                    "fix": "the new index does not serve this query: look at the plan, drop the index if unused"}
        return {"name": "plan stable on a re-run", "passed": self.comparison["change"].eq("same").all(),
                "detail": timing, "must_hold": False,
                "fix": "the plan changes from run to run: ANALYZE its tables, check parameter-sensitive estimates"}


def apply_and_compare(conn: psycopg.Connection, query: str, params: dict | None, before: Plan, proposed: list[Advice], *,
                      create: bool = False, confirm: bool = False, runs: int = 3) -> Applied:
    """With `create`, create the `proposed` indexes (see apply()) and EXPLAIN ANALYZE the query again;
    either way, time it `runs` times before and after (median) and compare the plans node by node."""
    times = [before.total_ms] + [plans.explain(conn, query, params).total_ms for _ in range(runs - 1)]
    creates = [item for item in proposed if item.kind in CREATES]
    statements = apply(conn, creates, confirm=confirm) if create and creates else []
    if statements:
        status = f"created {', '.join(item.index for item in creates)}"
    elif creates:
        status = f"{len(creates)} proposed ({', '.join(item.index for item in creates)}), not created"
    else:
        status = "none proposed for this query"
    after_runs = [plans.explain(conn, query, params) for _ in range(runs)]
    after = sorted(after_runs, key=lambda plan: plan.total_ms)[len(after_runs) // 2]
    return Applied(statements, status, statistics.median(times), after.total_ms, after,
                   plan_compare.compare(before, after), bool(statements) or not creates)
