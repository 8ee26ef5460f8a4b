"""Query plans: run EXPLAIN (ANALYZE, BUFFERS, VERBOSE, FORMAT JSON), flatten the plan into a DataFrame
of nodes, compute findings the way PEV2, pgMustard and explain.depesz do, and compare two plans of the
same query node by node.

VERBOSE makes the plan name the schema of every table it reads ("Schema" beside "Relation Name"): each
node is matched to exactly one table (`plan_relations`), never to whichever table of that name the
search path finds.

Every EXPLAIN runs inside a transaction that is rolled back, so EXPLAIN ANALYZE of a statement
that changes data changes nothing. The query goes to the server through the extended protocol,
which accepts exactly one statement: a string with several is refused by the server itself.
"""

import json
import re
import time
from dataclasses import dataclass, field

import pandas as pd
import psycopg
from psycopg import sql

from .db import fetch_frame, is_scratch, server_version
from .errors import ConfirmationRequired, ParameterError, RoleError, first_line
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
# Outside a scratch database EXPLAIN ANALYZE runs only a SELECT, READ ONLY, rolled back, under this timeout
ANALYZE_TIMEOUT_MS = 30_000
GENERIC_PLAN_SINCE = 16  # EXPLAIN (GENERIC_PLAN) plans a statement with $1 parameters
_POSITIONAL = re.compile(r"\$(\d+)")
_READS = re.compile(r"^\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*(select|with|values|table)\b", re.IGNORECASE | re.DOTALL)

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
    relation_stats: pd.DataFrame = field(default_factory=pd.DataFrame)  # plan_relations() of its nodes
    wall_ms: float = 0.0
    mode: str = ""  # how it was planned: EXPLAIN ANALYZE (and how guarded), plain EXPLAIN, or a generic plan, and why
    as_role: str | None = None  # who wrote it (see explain: this role or a superuser), None: the DBA

    @property
    def rows(self) -> float:
        """Rows the query returned, or changed for INSERT/UPDATE/DELETE (NaN without ANALYZE)."""
        top = self.nodes.iloc[0]
        if top["node_type"] == "ModifyTable" and len(self.nodes) > 1:
            top = self.nodes.iloc[1]
        return top["actual_rows"]

    @property
    def kind(self) -> str:
        """How it was planned, in a word or two: "ANALYZE" (it ran), "generic plan" ($1 parameters: not
        run) or "plan only" (EXPLAIN without ANALYZE)."""
        return "ANALYZE" if self.analyzed else "generic plan" if self.mode.startswith("generic plan") else "plan only"

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
        "node_type": node["Node Type"], "relation": node.get("Relation Name"),
        # the relation's schema (EXPLAIN VERBOSE); a Function Scan's "Schema" is its function's, not a table's
        "schema": node.get("Schema") if node.get("Relation Name") else None, "alias": node.get("Alias"),
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
            settings: dict | None = None, hide_indexes: tuple[str, ...] = (), as_role: str | None = None) -> Plan:
    """EXPLAIN a query (a catalogue name or SQL with %(name)s parameters); ANALYZE runs it, in a
    transaction that is rolled back. `settings` are set for this transaction only (e.g. work_mem).

    `as_role`: the role that wrote the statement (pg_stat_statements' top statements are anybody's; ""
    for one that no longer exists). The functions a statement calls run as whoever runs it (EXPLAIN
    ANALYZE of a SELECT, READ ONLY, still runs a COPY TO in one), and planning alone runs an IMMUTABLE one
    with constant arguments; SET ROLE to the author would not hold them (a function takes it back). So a
    statement written by a role that is neither this connection's nor a superuser is not planned at all:
    RoleError says why, and the DBA who has read it can give it as query=.

    `hide_indexes` plans the query as if those indexes did not exist (what HypoPG's
    hypopg_hide_index does): they are dropped inside the same rolled-back transaction, which holds
    a lock on their tables while the query runs, so it is refused outside a scratch database.
    """
    _refuse_foreign_author(conn, as_role)
    text = resolve_query(query).strip().rstrip(";")
    if not text:
        raise ParameterError("the query is empty")
    if hide_indexes and not is_scratch(conn):
        raise ConfirmationRequired("hiding indexes drops them in a rolled-back transaction, which locks their tables: "
                                   "only on a scratch database")
    version = server_version(conn)
    positional = sorted({int(n) for n in _POSITIONAL.findall(_QUOTED.sub("''", text))}) if not params else []
    scratch = is_scratch(conn)
    read_only = analyze and not scratch
    if positional:  # a normalised statement (pg_stat_statements): its values are unknown, it cannot be run
        analyze, read_only = False, False
        mode = (f"generic plan: EXPLAIN (GENERIC_PLAN), ${positional[-1]} parameters unknown, not run"
                if version >= GENERIC_PLAN_SINCE else
                f"generic plan without ANALYZE (PREPARE, plan_cache_mode force_generic_plan: PostgreSQL {version} "
                f"has no EXPLAIN (GENERIC_PLAN)), ${positional[-1]} parameters unknown, not run")
    elif read_only and not _READS.match(text):
        analyze, read_only = False, False
        mode = "EXPLAIN without ANALYZE: not a SELECT, and this database is not scratch"
    elif read_only:
        mode = f"EXPLAIN ANALYZE in a READ ONLY transaction, rolled back, statement_timeout {ANALYZE_TIMEOUT_MS:,} ms"
    else:
        mode = ("EXPLAIN ANALYZE in a transaction that is rolled back (scratch database)" if analyze
                else "EXPLAIN without ANALYZE")
    options = "ANALYZE, BUFFERS, VERBOSE, FORMAT JSON" if analyze else "VERBOSE, FORMAT JSON"
    try:
        # settings are SET LOCAL and hidden indexes dropped in this transaction: rolling it back
        # leaves the connection and the database as they were
        with conn.transaction(force_rollback=True):
            if read_only:  # first in the transaction: nothing it runs may write
                conn.execute("SET TRANSACTION READ ONLY")
                conn.execute("SELECT set_config('statement_timeout', %s, true)", (str(ANALYZE_TIMEOUT_MS),))
            _validated_settings(conn, settings)
            _hidden(conn, tuple(hide_indexes))
            began = time.perf_counter()
            if positional:
                raw = _generic_plan(conn, text, positional[-1], version)
            else:
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
    mode += f", written by {as_role}" if as_role else ""
    return Plan(text, result, nodes, analyze, result.get("Planning Time"), result.get("Execution Time"),
                version, plan_relations(conn, nodes), wall, mode, as_role)


def _refuse_foreign_author(conn: psycopg.Connection, author: str | None) -> None:
    """RoleError where `author` (who wrote the statement; None: the DBA) is neither this connection's role
    nor a superuser: nothing of it is planned. Planning runs an IMMUTABLE function on constants and EXPLAIN
    ANALYZE runs the rest, with this role's rights, and SET ROLE to the author cannot hold them: a function
    takes it back with set_config('role', 'none', true) or RESET ROLE."""
    if author is None:
        return
    me, trusted = conn.execute(load("plans", "author_trusted"), {"author": author}).fetchone()
    if not trusted:
        who = f"role {author}" if author else "a role that no longer exists"
        raise RoleError(f"not planned: written by {who}, neither {me} nor a superuser; planning or running it "
                        f"would run the functions it calls with {me}'s rights. Read it, then give it as query=… "
                        "to plan it as yourself")


def plan_relations(conn: psycopg.Connection, nodes: pd.DataFrame) -> pd.DataFrame:
    """Each (schema, relation) the plan's nodes read, matched to exactly one table: its schema, name for
    ANALYZE (`qualified`), columns and statistics. A node without a schema (a plan made without VERBOSE)
    is matched only when one user schema holds a table of that name; else `schema_name` and `qualified`
    are None and `schemas` lists every user schema holding one. See sql/plans/plan_relations.sql."""
    read = nodes.loc[nodes["relation"].notna(), ["schema", "relation"]] if len(nodes) else pd.DataFrame()
    pairs = sorted({(_text(s), r) for s, r in read.itertuples(index=False)})
    return fetch_frame(conn, load("plans", "plan_relations"),
                       {"schemas": [s or None for s, _ in pairs], "names": [r for _, r in pairs]})


def _text(value) -> str:
    return value if isinstance(value, str) else ""


_QUOTED = re.compile(r"'(?:[^']|'')*'")


def _generic_plan(conn: psycopg.Connection, text: str, count: int, version: int):
    """The generic plan (JSON) of a statement with $1..$count parameters, not run. PREPARE first, through
    the extended protocol, which takes exactly one statement (the server refuses a second one hidden in
    it) and infers the parameters' types; then EXPLAIN (GENERIC_PLAN) on 16+, before it EXPLAIN EXECUTE
    with NULLs under plan_cache_mode force_generic_plan, so the values play no part."""
    prepared = conn.pgconn.exec_params(b"PREPARE prep_ops_generic AS " + text.encode(conn.info.encoding), [])
    if prepared.status != psycopg.pq.ExecStatus.COMMAND_OK:
        raise psycopg.errors.error_from_result(prepared, encoding=conn.info.encoding)
    try:
        with conn.transaction():  # a savepoint: a failed EXPLAIN still lets DEALLOCATE run
            if version >= GENERIC_PLAN_SINCE:
                return conn.execute(f"EXPLAIN (GENERIC_PLAN, VERBOSE, FORMAT JSON) {text}").fetchone()[0]  # noqa: S608 (one statement: PREPARE took it)
            conn.execute("SELECT set_config('plan_cache_mode', 'force_generic_plan', true)")
            nulls = ", ".join(["NULL"] * count)
            return conn.execute(f"EXPLAIN (VERBOSE, FORMAT JSON) EXECUTE prep_ops_generic({nulls})").fetchone()[0]  # noqa: S608
    finally:
        conn.execute("DEALLOCATE prep_ops_generic")


# what a plan analyser points out: in plan_findings.py, re-exported here
from .plan_findings import findings, findings_frame, headline  # noqa: E402, F401
