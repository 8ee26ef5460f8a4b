"""What a plan analyser (PEV2, pgMustard, explain.depesz) would point out in a plan, with the
thresholds written at the top of plans.py; and one headline line per plan."""

import pandas as pd

from .plans import (HEAP_FETCH_MIN, HEAP_FETCH_SHARE, LARGE_TABLE_ROWS, MISESTIMATE_FACTOR, MISESTIMATE_MIN_ROWS,
                    NESTED_LOOP_LOOPS, SEQ_SCAN_REMOVED_SHARE, STALE_STATS_SHARE, Finding, Plan)

STATS_NOT_CHECKED = "statistics not checked: table in several schemas"  # the plan does not say which table it read


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


def _relation_of(plan: Plan, node) -> pd.Series | None:
    """The plan_relations() row of the table a node reads, or None (a node that reads no table)."""
    stats = plan.relation_stats
    if not isinstance(node["relation"], str) or not len(stats):
        return None
    found = stats[(stats["relation"] == node["relation"]) & (stats["plan_schema"].map(_schema) == _schema(node["schema"]))]
    return found.iloc[0] if len(found) else None


def _schema(value) -> str:
    """A schema as a plan node or a plan_relations() row gives it: "" when the plan names none."""
    return value if isinstance(value, str) else ""


def _table_name(plan: Plan, node) -> str:
    """The table a node reads as a statement names it (schema-qualified, quoted where needed), or, where the
    plan does not say which table of that name it is, the name and the schemas holding one."""
    row = _relation_of(plan, node)
    if row is not None and isinstance(row["qualified"], str):
        return row["qualified"]
    schemas = list(row["schemas"]) if row is not None else []
    return f"{node['relation']} (schema unknown: in {', '.join(schemas)})" if len(schemas) > 1 else str(node["relation"])


def findings(plan: Plan) -> list[Finding]:
    """What a plan analyser would point out in this plan, each with why it matters and what to try. A
    table is named as the plan read it, schema-qualified; where the plan names no schema and several
    schemas hold a table of that name, its statistics are not checked (STATS_NOT_CHECKED says why)."""
    found: list[Finding] = []
    nodes = plan.nodes
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
                                      f"read {read:,.0f} rows of {_table_name(plan, row)} to keep {actual:,.0f} "
                                      f"({row['rows_removed_by_filter'] / read:.0%} thrown away by the filter)",
                                      f"an index on the filtered columns of {_table_name(plan, row)} ({row['filter']})"))
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
                                      f"VACUUM {_table_name(plan, row)} (and check autovacuum keeps up)"))
    for _, stat in plan.relation_stats.iterrows():
        node = _first_reading(nodes, stat)
        if not isinstance(stat["qualified"], str):  # the plan names no schema: which table it read is unknown
            if len(stat["schemas"]) > 1:
                found.append(_finding(node, STATS_NOT_CHECKED,
                                      f"{stat['relation']} is a table in schemas {', '.join(stat['schemas'])} and the "
                                      "plan names no schema: which one this query read is unknown",
                                      "EXPLAIN (VERBOSE) names each table's schema; ANALYZE the one this query reads"))
            continue
        live = max(_count(stat["n_live_tup"]), _count(stat["estimated_rows"]), 1)
        changed = _count(stat["n_mod_since_analyze"])
        never = pd.isna(stat["last_analyzed"])
        if (never and live >= LARGE_TABLE_ROWS) or changed / live >= STALE_STATS_SHARE and changed >= MISESTIMATE_MIN_ROWS:
            found.append(_finding(node, "stale statistics",
                                  f"{stat['qualified']}: {'never analyzed' if never else f'{changed:,} rows changed since the last ANALYZE'}",
                                  f"ANALYZE {stat['qualified']}"))
    return found


def _first_reading(nodes: pd.DataFrame, stat) -> pd.Series:
    """The first node that reads the table of a plan_relations() row (same name, same schema or none)."""
    return nodes[(nodes["relation"] == stat["relation"]) & (nodes["schema"].map(_schema) == _schema(stat["plan_schema"]))].iloc[0]


def _count(value) -> float:
    """A count that may be NULL (a table without statistics, a catalog's) as a number: 0 when missing."""
    return 0 if value is None or pd.isna(value) else value


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
