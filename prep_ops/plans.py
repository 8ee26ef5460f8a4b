"""Query plans: run EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON), flatten the plan into a DataFrame of
nodes, compute findings the way PEV2, pgMustard and explain.depesz do, and compare two plans of the
same query node by node.

Every EXPLAIN runs inside a transaction that is rolled back, so EXPLAIN ANALYZE of a statement
that changes data changes nothing. The query goes to the server through the extended protocol,
which accepts exactly one statement: a string with several is refused by the server itself.
"""

import json
import time
from dataclasses import dataclass, field

import pandas as pd
import psycopg
from psycopg import sql

from .db import fetch_frame, is_scratch, server_version
from .errors import ConfirmationRequired, ParameterError, first_line
from .paths import PACKAGE_DIR
from .sqlfiles import load

# Thresholds of the findings, as the plan analysers use them.
MISESTIMATE_FACTOR = 10  # estimated vs actual rows, either way
MISESTIMATE_MIN_ROWS = 100  # ignore misestimates where both sides are tiny
LARGE_TABLE_ROWS = 10_000  # a sequential scan matters from this many rows
SEQ_SCAN_REMOVED_SHARE = 0.9  # ... when its filter throws away this share of what it reads
NESTED_LOOP_LOOPS = 1_000  # inner side executed this many times
HEAP_FETCH_SHARE = 0.1  # index-only scan visiting the heap for this share of rows
HEAP_FETCH_MIN = 1_000
STALE_STATS_SHARE = 0.1  # rows changed since the last ANALYZE, as a share of the table

CATALOGUE_DIR = PACKAGE_DIR / "sql" / "catalogue"


@dataclass
class Plan:
    """One EXPLAIN result: the raw JSON, its nodes as a DataFrame, and timing."""

    query: str
    raw: dict
    nodes: pd.DataFrame
    analyzed: bool
    planning_ms: float | None
    execution_ms: float | None
    server_version: int
    relation_stats: pd.DataFrame = field(default_factory=pd.DataFrame)
    wall_ms: float = 0.0

    @property
    def rows(self) -> float:
        """Rows the query returned, or changed for INSERT/UPDATE/DELETE (NaN without ANALYZE)."""
        top = self.nodes.iloc[0]
        if top["node_type"] == "ModifyTable" and len(self.nodes) > 1:
            top = self.nodes.iloc[1]
        return top["actual_rows"]

    @property
    def total_ms(self) -> float | None:
        if self.execution_ms is None:
            return None
        return (self.planning_ms or 0.0) + self.execution_ms


@dataclass(frozen=True)
class Finding:
    node_id: int
    node: str
    kind: str
    why: str
    what_to_try: str


def catalogue() -> dict[str, str]:
    """The named queries this database serves: name -> SQL with %(name)s parameters."""
    return {p.stem: p.read_text() for p in sorted(CATALOGUE_DIR.glob("*.sql"))}


def catalogue_params(conn: psycopg.Connection, term: str = "2026-fall") -> dict:
    """Parameter values for the catalogue queries that exist in the connection's database."""
    row = fetch_frame(conn, load("plans", "defaults"), {"term": term}).iloc[0].to_dict()
    params = {k: (int(v) if k.endswith("_id") and v is not None and not pd.isna(v) else v) for k, v in row.items()}
    return {"role": "student", "term": term, **params}


def resolve_query(query: str) -> str:
    """A catalogue name becomes its SQL; anything else is taken as SQL."""
    return catalogue().get(query, query)


def _node_label(node: dict) -> str:
    label = node["Node Type"] if node["Node Type"] != "ModifyTable" else node.get("Operation", "ModifyTable")
    if node.get("Join Type") and "Join" in label or label == "Nested Loop":
        label = f"{label} ({node.get('Join Type', '')})".replace(" ()", "")
    if node.get("Relation Name"):
        label += f" on {node['Relation Name']}"
    if node.get("Index Name"):
        label += f" using {node['Index Name']}"
    elif node["Node Type"] == "Bitmap Heap Scan":
        used = [child["Index Name"] for child in node.get("Plans", []) if child.get("Index Name")]
        label += f" using {', '.join(used)}" if used else ""
    return label


def _walk(node: dict, parent: int | None, depth: int, rows: list, analyzed: bool, processes: int = 1) -> float:
    """Append node rows in pre-order; returns the node's inclusive time (all loops) in ms.

    Below a Gather, loops count the parallel processes too, and they run at the same time:
    time is divided by the number of processes, as explain.depesz and PEV2 do.
    """
    node_id = len(rows)
    loops = node.get("Actual Loops", 1) or 1
    if node["Node Type"] in ("Gather", "Gather Merge") and node.get("Workers Launched") is not None:
        child_processes = node["Workers Launched"] + 1
    else:
        child_processes = processes
    row = {
        "id": node_id, "parent": parent, "depth": depth, "node": _node_label(node),
        "node_type": node["Node Type"], "relation": node.get("Relation Name"), "alias": node.get("Alias"),
        "index": node.get("Index Name"), "estimated_rows": node.get("Plan Rows"),
        "actual_rows": node.get("Actual Rows", float("nan")) * loops if analyzed else float("nan"),
        "loops": loops if analyzed else float("nan"), "cost": node.get("Total Cost"),
        "rows_removed_by_filter": node.get("Rows Removed by Filter", 0) * loops if analyzed else 0,
        "filter": node.get("Filter") or node.get("Index Cond") or node.get("Hash Cond") or node.get("Join Filter"),
        "hash_cond": node.get("Hash Cond"), "join_filter": node.get("Join Filter"),
        "heap_fetches": node.get("Heap Fetches", 0),
        "shared_hit": node.get("Shared Hit Blocks", 0), "shared_read": node.get("Shared Read Blocks", 0),
        "temp_read": node.get("Temp Read Blocks", 0), "temp_written": node.get("Temp Written Blocks", 0),
        "sort_space_type": node.get("Sort Space Type"), "hash_batches": node.get("Hash Batches", 1),
        "hashagg_batches": node.get("HashAgg Batches", 1), "disk_usage_kb": node.get("Disk Usage", 0),
        "parent_relationship": node.get("Parent Relationship"), "join_type": node.get("Join Type"),
        "strategy": node.get("Strategy"), "partial_mode": node.get("Partial Mode"),
        "workers_planned": node.get("Workers Planned"), "workers_launched": node.get("Workers Launched"),
    }
    rows.append(row)
    inclusive = node.get("Actual Total Time", 0.0) * loops / processes if analyzed else 0.0
    children = sum(_walk(child, node_id, depth + 1, rows, analyzed, child_processes) for child in node.get("Plans", []))
    # buffer counts include the children's: what this node wrote itself is what is left
    children_wrote = sum(child.get("Temp Written Blocks", 0) for child in node.get("Plans", []))
    row["temp_written_self"] = max(row["temp_written"] - children_wrote, 0)
    row["inclusive_ms"] = inclusive if analyzed else float("nan")
    row["self_ms"] = max(inclusive - children, 0.0) if analyzed else float("nan")
    return inclusive


def nodes_frame(raw: dict, analyzed: bool) -> pd.DataFrame:
    """The plan's nodes in pre-order, one row each."""
    rows: list[dict] = []
    _walk(raw["Plan"], None, 0, rows, analyzed)
    return pd.DataFrame(rows)


def _validated_settings(conn: psycopg.Connection, settings: dict | None) -> None:
    for name, value in (settings or {}).items():
        known = conn.execute("SELECT 1 FROM pg_settings WHERE name = %s", (name,)).fetchone()
        if not known:
            raise ParameterError(f"unknown server setting {name!r}")
        conn.execute("SELECT set_config(%s, %s, true)", (name, str(value)))


def _hidden(conn: psycopg.Connection, indexes: tuple[str, ...]) -> None:
    """Drop `indexes` inside the caller's transaction, which is rolled back."""
    for name in indexes:
        try:
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        except (psycopg.errors.UndefinedObject, psycopg.errors.DependentObjectsStillExist) as exc:
            raise ParameterError(f"cannot hide index {name!r}: {first_line(exc)}") from None


def explain(conn: psycopg.Connection, query: str, params: dict | None = None, *, analyze: bool = True,
            settings: dict | None = None, hide_indexes: tuple[str, ...] = ()) -> Plan:
    """EXPLAIN a query (a catalogue name or SQL with %(name)s parameters); ANALYZE runs it, in a
    transaction that is rolled back. `settings` are set for this transaction only (e.g. work_mem).

    `hide_indexes` plans the query as if those indexes did not exist (what HypoPG's
    hypopg_hide_index does): they are dropped inside the same rolled-back transaction, which holds
    a lock on their tables while the query runs, so it is refused outside a scratch database.
    """
    text = resolve_query(query).strip().rstrip(";")
    if not text:
        raise ParameterError("the query is empty")
    options = "ANALYZE, BUFFERS, FORMAT JSON" if analyze else "FORMAT JSON"
    if hide_indexes and not is_scratch(conn):
        raise ConfirmationRequired("hiding indexes drops them in a rolled-back transaction, which locks their tables: "
                                   "only on a scratch database")
    version = server_version(conn)
    try:
        # settings are SET LOCAL and hidden indexes dropped in this transaction: rolling it back
        # leaves the connection and the database as they were
        with conn.transaction(force_rollback=True):
            _validated_settings(conn, settings)
            _hidden(conn, tuple(hide_indexes))
            began = time.perf_counter()
            # the query is the payload being analysed; prepared (extended protocol, bound
            # parameters), so the server itself refuses a second statement hidden in it
            cur = conn.execute(f"EXPLAIN ({options}) {text}", params or None, prepare=True)  # noqa: S608
            raw = cur.fetchone()[0]
            wall = (time.perf_counter() - began) * 1000
    except psycopg.errors.SyntaxError as exc:
        if "multiple commands" in str(exc):
            raise ParameterError("the query holds more than one statement; EXPLAIN takes exactly one") from None
        raise ParameterError(f"the query is not valid SQL: {first_line(exc)}") from None
    except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn, psycopg.errors.UndefinedFunction,
            psycopg.ProgrammingError) as exc:
        raise ParameterError(f"the query cannot run: {first_line(exc)}") from None
    result = raw[0] if isinstance(raw, list) else json.loads(raw)[0]
    nodes = nodes_frame(result, analyze)
    relations = sorted({r for r in nodes["relation"].dropna()})
    stats = fetch_frame(conn, load("plans", "relation_stats"), {"relations": relations})
    return Plan(text, result, nodes, analyze, result.get("Planning Time"), result.get("Execution Time"),
                version, stats, wall)


def _finding(row, kind: str, why: str, what: str) -> Finding:
    return Finding(int(row["id"]), row["node"], kind, why, what)


def _spill(row) -> str:
    """How this node itself spilled to disk, or "" if it did not. A hash join's spill is its Hash
    node's, and a parent's temp blocks include its children's: only the node that spilled counts."""
    written = f"{row['temp_written_self']:,} temp blocks written"
    if row["sort_space_type"] == "Disk":
        return f"sorted on disk, {written}"
    if (row["hash_batches"] or 1) > 1:
        return f"hash table split into {row['hash_batches']} batches, {written}"
    if (row["hashagg_batches"] or 1) > 1 or (row["disk_usage_kb"] or 0) > 0:
        return f"hash aggregate in {row['hashagg_batches']} batches, {row['disk_usage_kb']:,} kB on disk"
    if row["temp_written_self"] > 0 and row["node_type"] not in ("Hash Join", "Merge Join", "Nested Loop"):
        return written
    return ""


def findings(plan: Plan) -> list[Finding]:
    """What a plan analyser would point out in this plan, each with why it matters and what to try."""
    found: list[Finding] = []
    nodes = plan.nodes
    stats = plan.relation_stats.set_index("relation") if len(plan.relation_stats) else pd.DataFrame()
    for _, row in nodes.iterrows():
        est, actual = row["estimated_rows"] or 0, row["actual_rows"]
        loops = row["loops"] if plan.analyzed else 1
        if plan.analyzed and max(est * loops, actual) >= MISESTIMATE_MIN_ROWS:
            ratio = max(actual, 1) / max(est * loops, 1)
            if ratio >= MISESTIMATE_FACTOR or ratio <= 1 / MISESTIMATE_FACTOR:
                found.append(_finding(row, "row misestimate",
                                      f"estimated {est * loops:,.0f} rows, got {actual:,.0f} ({max(ratio, 1 / ratio):,.0f}× "
                                      f"{'under' if ratio > 1 else 'over'}): the planner chose joins and scans for the wrong size",
                                      "ANALYZE the table; for correlated columns CREATE STATISTICS; raise the column's statistics target"))
        if row["node_type"] == "Seq Scan" and plan.analyzed:
            read = actual + row["rows_removed_by_filter"]
            if read >= LARGE_TABLE_ROWS and row["rows_removed_by_filter"] / max(read, 1) >= SEQ_SCAN_REMOVED_SHARE:
                found.append(_finding(row, "selective sequential scan",
                                      f"read {read:,.0f} rows of {row['relation']} to keep {actual:,.0f} "
                                      f"({row['rows_removed_by_filter'] / read:.0%} thrown away by the filter)",
                                      f"an index on the filtered columns of {row['relation']} ({row['filter']})"))
        spill = _spill(row)
        if spill:
            found.append(_finding(row, "spill to disk", f"{spill}: it did not fit in work_mem",
                                  "raise work_mem for this query (SET LOCAL work_mem) or sort/hash fewer rows"))
        if row["node_type"] == "Nested Loop" and plan.analyzed:
            inner = nodes[(nodes["parent"] == row["id"]) & (nodes["parent_relationship"] == "Inner")]
            if len(inner) and inner["loops"].max() >= NESTED_LOOP_LOOPS:
                found.append(_finding(row, "nested loop with many loops",
                                      f"the inner side ran {inner['loops'].max():,.0f} times",
                                      "an index for the inner side's join condition, or let a hash join do it (check estimates)"))
        if row["node_type"] == "Index Only Scan" and plan.analyzed:
            fetches = row["heap_fetches"] or 0
            if fetches >= HEAP_FETCH_MIN and fetches >= HEAP_FETCH_SHARE * max(actual, 1):
                found.append(_finding(row, "index-only scan visiting the heap",
                                      f"{fetches:,} heap fetches for {actual:,.0f} rows: the visibility map is behind",
                                      f"VACUUM {row['relation']} (and check autovacuum keeps up)"))
    for relation, stat in stats.iterrows() if len(stats) else []:
        live = max(stat["n_live_tup"] or 0, stat["estimated_rows"] or 0, 1)
        changed = stat["n_mod_since_analyze"] or 0
        never = pd.isna(stat["last_analyzed"])
        if (never and live >= LARGE_TABLE_ROWS) or changed / live >= STALE_STATS_SHARE and changed >= MISESTIMATE_MIN_ROWS:
            node = nodes[nodes["relation"] == relation].iloc[0]
            found.append(_finding(node, "stale statistics",
                                  f"{relation}: {'never analyzed' if never else f'{changed:,} rows changed since the last ANALYZE'}",
                                  f"ANALYZE {relation}"))
    return found


def headline(plan: Plan) -> str:
    """One line about a plan: rows, time, number of nodes, and the node where the time goes."""
    if not plan.analyzed:
        return f"{len(plan.nodes)} nodes, estimated cost {plan.nodes['cost'][0]:,.0f} (plain EXPLAIN: not run)"
    slowest = plan.nodes.sort_values("self_ms", ascending=False).iloc[0]
    share = slowest["self_ms"] / max(plan.nodes["self_ms"].sum(), 1e-9)
    return (f"{plan.rows:,.0f} rows in {plan.total_ms:.1f} ms, {len(plan.nodes)} nodes; "
            f"{share:.0%} of the time in {slowest['node']} (node {slowest['id']})")


def findings_frame(plan: Plan) -> pd.DataFrame:
    """`findings(plan)` as a DataFrame."""
    return pd.DataFrame([f.__dict__ for f in findings(plan)], columns=["node_id", "node", "kind", "why", "what_to_try"])


def catalogue_report(conn: psycopg.Connection, params: dict | None = None) -> pd.DataFrame:
    """EXPLAIN ANALYZE every catalogue query: time, top node and findings per query."""
    params = params or catalogue_params(conn)
    rows = []
    for name in catalogue():
        plan = explain(conn, name, params)
        kinds = [f.kind for f in findings(plan)]
        slowest = plan.nodes.sort_values("self_ms", ascending=False).iloc[0]["node"]
        rows.append({"query": name, "ms": plan.total_ms, "rows": plan.nodes["actual_rows"][0],
                     "slowest node": slowest, "findings": len(kinds), "kinds": ", ".join(sorted(set(kinds)))})
    return pd.DataFrame(rows)

