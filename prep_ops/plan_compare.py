"""Two plans of one query compared node by node: what the plan analysers' users ask for and do not
have. Nodes are aligned by what they read, not by their type, so a Seq Scan that became an Index
Scan of the same table is one node with a changed access method."""

import pandas as pd

from .plans import Plan


# Node types that read one relation: replacing one by another is a change of access method.
SCANS = ("Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan", "Tid Scan", "Tid Range Scan", "Sample Scan")
JOINS = ("Hash Join", "Merge Join", "Nested Loop")
COMPARISON_COLUMNS = [
    "node", "change", "type_before", "type_after", "relation", "index_before", "index_after",
    "estimated_rows_before", "estimated_rows_after", "actual_rows_before", "actual_rows_after",
    "loops_before", "loops_after", "self_ms_before", "self_ms_after", "workers_before", "workers_after",
    "id_before", "id_after"]


def _aligned_nodes(plan: Plan) -> pd.DataFrame:
    """The plan's nodes with what aligns them across plans: the relations each reads (itself or
    below), its inputs' relations, and a key that ignores how a relation is read or joined."""
    nodes = plan.nodes.copy()
    below = {i: set() for i in nodes["id"]}
    for i in reversed(range(len(nodes))):  # pre-order: every child comes after its parent
        node = nodes.iloc[i]
        if _text(node["relation"]):
            below[i].add(f"{node['relation']} {_text(node['alias'])}".strip())
        if not pd.isna(node["parent"]):
            below[int(node["parent"])] |= below[i]
    children = nodes.groupby("parent")["id"].apply(list).to_dict()
    nodes["relations"] = [frozenset(below[i]) for i in nodes["id"]]
    # what a reader is shown: the tables a node reads; a Bitmap Index Scan, its heap scan's table
    nodes["shown_relation"] = [", ".join(sorted(r.split(" ")[0] for r in below[i])) for i in nodes["id"]]
    for i in nodes.index[nodes["node_type"] == "Bitmap Index Scan"]:
        parent = nodes.at[i, "parent"]
        while not pd.isna(parent) and not nodes.at[int(parent), "shown_relation"]:
            parent = nodes.at[int(parent), "parent"]
        nodes.at[i, "shown_relation"] = "" if pd.isna(parent) else nodes.at[int(parent), "shown_relation"]
    nodes["inputs"] = [tuple(frozenset(below[c]) for c in children.get(i, [])) for i in nodes["id"]]  # outer, inner
    # a Bitmap Heap Scan reads through the index of its Bitmap Index Scan child
    nodes["indexes"] = [_text(node["index"]) or (", ".join(sorted(
        nodes.loc[nodes["id"].isin(children.get(node["id"], [])), "index"].dropna()))
        if node["node_type"] == "Bitmap Heap Scan" else "") for _, node in nodes.iterrows()]

    def key(node) -> tuple:
        if node["node_type"] in SCANS:
            return ("scan", node["relations"])
        if node["node_type"] == "Bitmap Index Scan":
            return ("bitmap index", node["index"])
        if node["node_type"] in JOINS:
            return ("join", node["relations"])
        if node["node_type"] in ("Gather", "Gather Merge"):
            return ("gather", node["relations"])
        return (node["node_type"], node["relations"])

    nodes["key"] = [key(node) for _, node in nodes.iterrows()]
    return nodes


def _change(b, a) -> str:
    if b["node_type"] in JOINS or a["node_type"] in JOINS:
        if (b["node_type"], b["join_type"]) != (a["node_type"], a["join_type"]):
            return "changed join method"
        return "changed join order" if b["inputs"] != a["inputs"] else "same"
    if b["node_type"] != a["node_type"] or _text(b["indexes"]) != _text(a["indexes"]):
        return "changed access method" if b["key"][0] == "scan" else "changed strategy"
    if (_text(b["strategy"]), _text(b["partial_mode"])) != (_text(a["strategy"]), _text(a["partial_mode"])):
        return "changed strategy"
    if any(_text(b[c]) != _text(a[c]) for c in ("workers_planned", "workers_launched")):
        return "changed workers"
    return "same"


def _text(value) -> str:
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def compare(before: Plan, after: Plan) -> pd.DataFrame:
    """Two plans of the same query node by node, in the order of `after`'s tree (a removed node
    where it stood in `before`): each node's type, index, rows, loops and self time before and
    after, and its change: same, changed access method (a Seq Scan that became an Index Scan of
    the same relation), changed join method or join order, changed strategy or workers, added or
    removed.

    Nodes are aligned by what they read, not by their type: a scan by its relation, a join by the
    relations of its inputs, any other node (Sort, Hash, Aggregate, Gather...) by its type and the
    relations below it; several nodes with the same key pair up in tree order.
    """
    left, right = _aligned_nodes(before), _aligned_nodes(after)
    pairs: dict[int, int] = {}  # after id -> before id
    waiting: dict[tuple, list[int]] = {}
    for _, b in left.iterrows():
        waiting.setdefault(b["key"], []).append(int(b["id"]))
    for _, a in right.iterrows():
        if waiting.get(a["key"]):
            pairs[int(a["id"])] = waiting[a["key"]].pop(0)
    removed = sorted(set(left["id"]) - set(pairs.values()))
    rows: list[dict] = []

    def row(b, a) -> dict:
        shown = a if a is not None else b
        out = {"node": "\u00a0\u00a0" * int(shown["depth"]) + shown["node"],
               "change": "added" if b is None else "removed" if a is None else _change(b, a),
               "relation": shown["shown_relation"] or None}
        for side, node in (("before", b), ("after", a)):
            out[f"type_{side}"] = node["node_type"] if node is not None else None
            out[f"index_{side}"] = (node["indexes"] or None) if node is not None else None
            for column in ("estimated_rows", "actual_rows", "loops", "self_ms"):
                out[f"{column}_{side}"] = node[column] if node is not None else float("nan")
            launched = _text(node["workers_launched"]) if node is not None else ""
            out[f"workers_{side}"] = int(float(launched)) if launched else None
            out[f"id_{side}"] = int(node["id"]) if node is not None else None
        return out

    for _, a in right.iterrows():
        b_id = pairs.get(int(a["id"]))
        while removed and b_id is not None and removed[0] < b_id:
            rows.append(row(left.iloc[removed.pop(0)], None))
        rows.append(row(left.iloc[b_id] if b_id is not None else None, a))
    rows += [row(left.iloc[i], None) for i in removed]
    frame = pd.DataFrame(rows, columns=COMPARISON_COLUMNS, dtype=object)  # absent labels and ids stay None
    numbers = [c for c in COMPARISON_COLUMNS if c.startswith(("estimated_rows", "actual_rows", "loops", "self_ms"))]
    frame[numbers] = frame[numbers].astype(float)
    return frame


def changes(comparison: pd.DataFrame) -> str:
    """One line saying what `compare()` found: how many nodes are the same, and each change."""
    same = comparison["change"].eq("same").sum()
    described = []
    for _, row in comparison[comparison["change"] != "same"].iterrows():
        what = {"added": f"added {row['type_after']}", "removed": f"removed {row['type_before']}"}.get(
            row["change"], f"{row['change']}: {row['type_before']} → {row['type_after']}")
        index = row["index_after"] if row["change"] != "removed" else row["index_before"]
        described.append(what + (f" on {row['relation']}" if _text(row["relation"]) else "")
                         + (f" using {index}" if _text(index) else ""))
    return f"{same} of {len(comparison)} nodes the same" + ("; " + "; ".join(described) if described else "")
