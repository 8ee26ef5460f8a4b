"""Indexes for one query's plan: candidates from its selective sequential scans and hash joins,
and creating them (`apply`), with the query timed and its plan compared before and after."""

import re
import statistics
from dataclasses import dataclass

import pandas as pd
import psycopg
from psycopg import sql

from . import plan_compare, plans
from .db import require_change, snapshot
from .indexes import CREATES, NOT_PROPOSED, Advice, _served, create_index, create_statement, existing, index_name
from .plans import Plan, findings, plan_relations

_QUOTED = re.compile(r"'(?:[^']|'')*'")
# a name as the server deparses it: quoted where quote_ident quotes ("Visitor ID", "ta""g", "user"), else bare
_NAME = r'"(?:[^"]|"")+"|[a-z_][a-z0-9_$]*'
_REFERENCE = re.compile(rf'(?<![\w"$])(?:({_NAME})\.)?({_NAME})(?![\w"$])'
                        r"(\)?(?:::[\w ]+)?\)?\s*(=|<>|<=|>=|<|>|~~|IN\b|= ANY))?")


def _unquoted(name: str) -> str:
    """A deparsed name as the catalog spells it."""
    return name[1:-1].replace('""', '"') if name.startswith('"') else name


def _columns_in(expression: str, alias: str | None, columns: set[str]) -> tuple[str, ...]:
    """Columns of one table named in a filter or join condition, equality comparisons first."""
    text = _QUOTED.sub("''", expression or "")
    equal, other = [], []
    for qualifier, name, _, operator in _REFERENCE.findall(text):
        qualifier, name = _unquoted(qualifier), _unquoted(name)
        if name not in columns or (qualifier and alias and qualifier != alias):
            continue
        bucket = equal if operator.strip() in ("=", "= ANY", "IN") else other
        if name not in equal and name not in other:
            bucket.append(name)
    return tuple(equal + other)


def _table_columns(conn: psycopg.Connection, scans: pd.DataFrame) -> dict[tuple[str, str], tuple[str | None, set[str], list[str]]]:
    """Each (schema as the plan names it, or "", relation) a plan's scans read: the schema of the one table
    it is (None when the plan names no schema and several schemas hold a table of that name), its columns
    (of every such table when unknown), and every user schema holding a table of its name."""
    rows = plan_relations(conn, scans)
    return {(row.plan_schema or "", row.relation): (row.schema_name, set(row.columns), list(row.schemas))
            for row in rows.itertuples(index=False)}


def _in_several_schemas(table: str, schemas: list[str], wanted: tuple[str, ...], why: str) -> Advice:
    """Advice of an index not proposed: `table` is a table in several schemas, and the plan names no schema
    (made without VERBOSE), so it does not say which the query read (an index on the other would change
    nothing, and lock a table for nothing)."""
    return Advice(NOT_PROPOSED, table, "", wanted,
                  f"{why}; {table} is a table in schemas {', '.join(schemas)} and the plan does not say which this "
                  "query reads: create the index by hand on that one", "", schema="")


def candidates(conn: psycopg.Connection, plan: Plan) -> list[Advice]:
    """Indexes that would serve a slow plan: the filter columns of its selective sequential scans
    and the join columns of sequential scans on the inner side of joins; none already served. Each on the
    table the scan read, in the schema the plan names; a plan that names none, for a table whose name is a
    table in several schemas, gets advice of kind NOT_PROPOSED instead (no statement)."""
    nodes = plan.nodes
    selective = {f.node_id for f in findings(plan) if f.kind in ("selective sequential scan", "nested loop with many loops")}
    scans = nodes[(nodes["node_type"] == "Seq Scan") & nodes["relation"].notna()]
    if scans.empty:
        return []
    with snapshot(conn):
        columns_of = _table_columns(conn, scans)
        indexes = existing(conn)
    proposals: dict[tuple, str] = {}
    ambiguous: dict[tuple, Advice] = {}
    for _, scan in scans.iterrows():
        table = scan["relation"]
        schema, known, schemas = columns_of.get((scan["schema"] if isinstance(scan["schema"], str) else "", table),
                                                (None, set(), []))
        wanted: tuple[str, ...] = ()
        if scan["id"] in selective:
            wanted = _columns_in(scan["filter"], scan["alias"], known)
        else:  # the inner side of a hash join reading a whole table for a join key
            parent = nodes[nodes["id"] == scan["parent"]]
            if len(parent) and parent.iloc[0]["node_type"] == "Hash":
                join = nodes[nodes["id"] == parent.iloc[0]["parent"]]
                if len(join) and (scan["rows_removed_by_filter"] or 0) > (scan["actual_rows"] or 0):
                    wanted = _columns_in(join.iloc[0]["hash_cond"], scan["alias"], known)
        if not wanted:
            continue
        why = f"{scan['node']} (node {scan['id']}) filters on {', '.join(wanted)}"
        if schema is None:
            if len(schemas) > 1:
                ambiguous.setdefault((table, wanted), _in_several_schemas(table, schemas, wanted, why))
            continue
        if _served(indexes, table, wanted[:1], schema):
            continue
        proposals.setdefault((schema, table, wanted), why)
    return [Advice("candidate for query", table, index_name(table, cols), cols, why,
                   create_statement(table, cols, schema), schema=schema)
            for (schema, table, cols), why in proposals.items()] + list(ambiguous.values())


def apply(conn: psycopg.Connection, items: list[Advice], *, confirm: bool = False) -> list[str]:
    """Create the proposed indexes (CONCURRENTLY, so on the autocommit connection, outside a
    transaction); returns the statements run. Drops are never applied here. Outside a scratch
    database, needs `confirm`."""
    creates = [i for i in items if i.kind in CREATES]
    if creates:
        require_change(conn, confirm, "creating indexes")
    done = []
    for item in creates:
        conn.execute(create_index(item.table, item.columns, item.index, item.schema))
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(item.schema, item.table)))
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
    # as `before` was planned: a top statement as its author (plans.explain)
    times = [before.total_ms] + [plans.explain(conn, query, params, as_role=before.as_role).total_ms
                                 for _ in range(runs - 1)]
    creates = [item for item in proposed if item.kind in CREATES]
    statements = apply(conn, creates, confirm=confirm) if create and creates else []
    if statements:
        status = f"created {', '.join(item.index for item in creates)}"
    elif creates:
        status = f"{len(creates)} proposed ({', '.join(item.index for item in creates)}), not created"
    else:
        status = "none proposed for this query"
    after_runs = [plans.explain(conn, query, params, as_role=before.as_role) for _ in range(runs)]
    after = sorted(after_runs, key=lambda plan: plan.total_ms)[len(after_runs) // 2]
    return Applied(statements, status, statistics.median(times), after.total_ms, after,
                   plan_compare.compare(before, after), bool(statements) or not creates)
