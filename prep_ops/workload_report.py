"""Runbook 03's report of a workload (see workload_queries): each statement planned through
`plans.explain` and its guards, with the kind of plan it got (ANALYZE, generic plan, plan only); and
the one statement looked at closely, with what can be judged of a plan that did not run.

The statement looked at closely is `query` when it names a statement of the workload or is SQL itself;
otherwise (None, or a name not among them) the slowest of the report: by mean time in
pg_stat_statements for the top statements, else by EXPLAIN ANALYZE time, else (none ran) by estimated cost.
"""

from dataclasses import dataclass

import pandas as pd
import psycopg

from . import plans
from .errors import PrepOpsError, first_line
from .formatting import shorten
from .indexes import Applied, apply_and_compare
from .workload_queries import Workload, explainable, split_comments

NOT_PLANNED = "not planned"
COLUMNS = ["query", "plan", "ms", "rows", "cost", "calls", "mean ms", "slowest node", "findings", "kinds",
           "statement", "note"]
FORMATS = {"ms": "{:,.1f}", "rows": "{:,.0f}", "cost": "{:,.0f}", "calls": "{:,.0f}", "mean ms": "{:,.1f}",
           "findings": "{:,.0f}"}
ANALYSED_COLUMNS = ["id", "node", "estimated_rows", "actual_rows", "loops", "self_ms", "inclusive_ms", "shared_hit",
                    "shared_read", "temp_written"]
PLANNED_COLUMNS = ["id", "node", "estimated_rows", "cost", "filter"]
FINDING_COLUMNS = ["node_id", "node", "kind", "why", "what_to_try"]


def slowest_node(plan: plans.Plan) -> str:
    """The node where the time goes: most self time when the plan ran, else most estimated cost of its own."""
    nodes = plan.nodes
    if plan.analyzed:
        return nodes.loc[nodes["self_ms"].idxmax(), "node"]
    own = nodes["cost"] - nodes["id"].map(nodes.groupby("parent")["cost"].sum()).fillna(0)
    return f"{nodes.loc[own.idxmax(), 'node']} (by estimated cost)"


def _row(conn: psycopg.Connection, statement, params: dict | None) -> dict:
    row = {"query": statement.name, "calls": statement.calls, "mean ms": statement.mean_ms,
           "statement": shorten(split_comments(statement.text)[1], 80), "note": ""}
    try:
        plan = plans.explain(conn, statement.text, params or None, as_role=statement.author)
    except (PrepOpsError, psycopg.Error) as exc:  # one statement that fails is reported, the others still planned
        return {**row, "plan": NOT_PLANNED, "note": first_line(exc)}
    found = plans.findings(plan)
    return {**row, "plan": plan.kind, "ms": plan.total_ms, "rows": plan.rows if plan.analyzed else None,
            "cost": plan.nodes["cost"][0], "slowest node": slowest_node(plan), "findings": len(found),
            "kinds": ", ".join(sorted({f.kind for f in found}))}


def report(conn: psycopg.Connection, work: Workload, params: dict | None = None) -> pd.DataFrame:
    """Each statement of `work` planned: the kind of plan (ANALYZE, generic plan, plan only, or not planned
    and the note says why), time and rows where it ran, estimated cost, the slowest node, findings; and
    for pg_stat_statements' statements their calls and mean time."""
    frame = pd.DataFrame([_row(conn, s, params) for s in work.statements], columns=COLUMNS)
    return frame.astype({"ms": float, "rows": float, "cost": float, "mean ms": float, "findings": float})


def as_table(frame: pd.DataFrame):
    """The report styled for a notebook (numbers with units' precision, no 0..N index)."""
    from .formatting import table

    return table(frame, FORMATS)


def report_verdict(frame: pd.DataFrame, work: Workload) -> dict:
    """Step 2's check, as keyword arguments of prep_ops.check: every statement planned, and every one that
    ran returned rows (a plan over no rows is not the one real data gets); SKIP with no statements."""
    name = "every statement planned, and rows where it ran"
    if frame.empty:
        return {"name": name, "passed": False, "skipped": work.why_none or "no statements to plan"}
    unplanned = list(frame.loc[frame["plan"] == NOT_PLANNED, "query"])
    empty = list(frame.loc[(frame["plan"] == "ANALYZE") & (frame["rows"] == 0), "query"])
    kinds = ", ".join(f"{n} {kind}" for kind, n in frame["plan"].value_counts().items())
    fix = "; ".join(filter(None, [
        unplanned and f"not planned: {', '.join(unplanned)} (see the note column)",
        empty and f"no rows from {', '.join(empty)}: their plans are not the ones real data gets; "
                  "check the parameters"]))
    return {"name": name, "passed": not unplanned and not empty, "must_hold": False, "fix": fix,
            "detail": f"{len(frame)} statements ({kinds}), {frame['findings'].sum():,.0f} finding(s) among them"}


def pick(work: Workload, frame: pd.DataFrame, query: str | None = None) -> tuple[str, str, str] | None:
    """The statement to look at closely, as (name, SQL, why this one); None when there is none."""
    if query in work.texts:
        return query, work.texts[query], "named by query"
    if query and explainable(query):
        return "query", query, "given as query"
    planned = frame[frame["plan"] != NOT_PLANNED]
    if planned.empty:
        return None
    if planned["mean ms"].notna().any():
        best, by = planned["mean ms"].idxmax(), "slowest by mean time in pg_stat_statements"
    elif planned["ms"].notna().any():
        best, by = planned["ms"].idxmax(), "slowest by EXPLAIN ANALYZE time"
    else:
        best, by = planned["cost"].idxmax(), "costliest by estimate (none ran)"
    name = planned.at[best, "query"]
    if query:
        by = f"{query!r} is not among the statements of step 2: {by}"
    return name, work.texts[name], by


@dataclass
class CloserLook:
    """Step 3's statement: its name, SQL, why it was chosen, and its plan (None: nothing to look at)."""

    name: str
    text: str
    why: str
    plan: plans.Plan | None = None

    @property
    def unrun(self) -> str:
        """Why the plan has no times and rows ("" when it ran)."""
        if self.plan is None:
            return self.why
        return "" if self.plan.analyzed else f"{self.name} not run: {self.plan.mode}"

    def chart(self):
        """Self time per plan node (None when the plan did not run)."""
        from . import charts

        if self.unrun:
            return None
        title = f"{shorten(self.name, 40)}: self time per plan node ({self.plan.total_ms:,.1f} ms in all)"
        return charts.plan_self_time(self.plan.nodes, title)

    def nodes(self) -> pd.DataFrame:
        """The plan's nodes: times, rows and buffers where it ran, estimates otherwise."""
        if self.plan is None:
            return pd.DataFrame(columns=PLANNED_COLUMNS)
        return self.plan.nodes[ANALYSED_COLUMNS if self.plan.analyzed else PLANNED_COLUMNS]

    def rows_verdict(self) -> dict:
        """Step 3's check: the statement returns rows (WARN if not: the plan is not the one that matters)."""
        name = "query returns rows"
        if self.unrun:
            return {"name": name, "passed": False, "skipped": self.unrun}
        return {"name": name, "passed": self.plan.rows > 0, "must_hold": False, "fix": "check the parameters",
                "detail": f"{self.name} ({self.why}): {plans.headline(self.plan)}"}

    def findings(self) -> pd.DataFrame:
        """What a plan analyser would point out (empty without a plan)."""
        return plans.findings_frame(self.plan) if self.plan is not None else pd.DataFrame(columns=FINDING_COLUMNS)

    def findings_verdict(self, found: pd.DataFrame) -> dict:
        """Step 4's check: no findings (WARN otherwise); SKIP for a plan that did not run and shows none,
        since misestimates, spills and loops show only when it runs."""
        name = "plan has no findings"
        if self.plan is None or (self.unrun and found.empty):
            return {"name": name, "passed": False, "skipped": self.unrun + (
                "; misestimates, spills and loops show only when it runs" if self.plan is not None else "")}
        return {"name": name, "passed": found.empty, "detail": f"{len(found)} finding(s) in the plan of the statement looked at", "must_hold": False,
                "fix": "see the table below"}

    def apply_and_compare(self, conn: psycopg.Connection, params: dict | None, proposed: list, *,
                          create: bool = False, confirm: bool = False) -> Applied:
        """Step 6: index_candidates.apply_and_compare for a plan that ran; for one that did not, nothing
        is created or timed (an Applied that says why)."""
        if self.unrun:
            return Applied([], f"nothing timed or created: {self.unrun}", float("nan"), float("nan"), self.plan,
                           pd.DataFrame(), not proposed)
        return apply_and_compare(conn, self.text, params or None, self.plan, proposed, create=create, confirm=confirm)


def closer_look(conn: psycopg.Connection, work: Workload, frame: pd.DataFrame, query: str | None = None,
                params: dict | None = None) -> CloserLook:
    """The statement to look at closely (see `pick`), planned through plans.explain and its guards."""
    picked = pick(work, frame, query)
    if picked is None:
        why = f"({work.why_none})" if work.why_none else "(none planned in step 2): name one with query=…"
        return CloserLook("", "", f"no statement to look at {why}")
    name, text, why = picked
    return CloserLook(name, text, why, plans.explain(conn, text, params or None, as_role=work.authors.get(name)))
