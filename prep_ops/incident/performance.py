"""The performance runbook's measurements and steps: the time each catalogue query takes, the
bottleneck among them, what to change (plan findings, indexes, idle blockers to end), and creating
the indexes.

Times are the server's own: the median "Execution Time" of EXPLAIN ANALYZE over a few runs, so a
busy client machine does not count as a slow query.
"""

import contextlib
import statistics
from dataclasses import dataclass

import pandas as pd
import psycopg
from psycopg import sql

from .. import health, index_builds, indexes, lock_watch, plans, workload_queries
from ..db import LOCK_WAIT
from ..errors import LockBusy, ParameterError
from .record import Action, Incident
from ..health import end_sessions, idle_blockers

SLOWDOWN_FACTOR = 3.0  # a query this many times slower than its baseline is the bottleneck


def _short_statement(text, width: int = 60) -> str:
    """A statement as one short line, its comment lines left out."""
    code = " ".join(" ".join(line.split()) for line in str(text or "").splitlines() if not line.strip().startswith("--"))
    return code if len(code) <= width else code[:width - 1] + "…"


# --- query times ---------------------------------------------------------------------------------

@dataclass
class QueryTimes:
    """Per catalogue query: median, fastest and slowest execution time over `runs`, the plan's
    slowest node and findings (`frame`, indexed by query), and one plan of each."""

    frame: pd.DataFrame
    plans: dict[str, plans.Plan]
    params: dict
    why_none: str = ""  # why no query was timed ("" when some were)

    def ms(self, query: str | None) -> float:
        return float(self.frame.loc[query, "median_ms"]) if query in self.frame.index else float("nan")


@contextlib.contextmanager
def _lock_wait_bounded(conn: psycopg.Connection, what: str):
    """The session's lock waits bounded by db.LOCK_WAIT while the block runs (a session setting: the
    statements run in transactions of their own, EXPLAIN ANALYZE's rolled back), put back after; a wait
    that gives up raises errors.LockBusy naming the locked table and the session holding it."""
    saved = conn.execute("SELECT current_setting('lock_timeout')").fetchone()[0]
    conn.execute("SELECT set_config('lock_timeout', %s, false)", (LOCK_WAIT,))
    try:
        yield
    except psycopg.errors.LockNotAvailable:
        raise LockBusy(lock_watch.not_read(conn, LockBusy("", what), done="run"), what) from None
    finally:
        conn.execute("SELECT set_config('lock_timeout', %s, false)", (saved,))


def query_times(conn: psycopg.Connection, params: dict | None = None, *, queries: list[str] | None = None,
                repeats: int = 5) -> QueryTimes:
    """Each catalogue query (or `queries`) run `repeats` times with EXPLAIN ANALYZE, in rounds so that
    a passing burst of load is shared out; the median of the server's execution time counts. Behind
    another session's ACCESS EXCLUSIVE lock on a table they read (a VACUUM FULL, a session left idle
    after LOCK TABLE) they would wait for as long as it is held, silently: a lock is waited for
    db.LOCK_WAIT at most, then errors.LockBusy names the table and its holder (a slow query is not cut
    short: only its wait for a lock is bounded)."""
    if repeats < 1:
        raise ParameterError(f"repeats must be at least 1, not {repeats}")
    names = list(queries) if queries is not None else list(plans.catalogue())
    runs: dict[str, list[plans.Plan]] = {name: [] for name in names}
    with _lock_wait_bounded(conn, "the queries to time"):
        if params is None:
            params = plans.catalogue_params(conn) if set(names) & set(plans.catalogue()) else {}
        for _ in range(repeats):
            for name in names:
                runs[name].append(plans.explain(conn, name, params))
    rows, last = [], {}
    for name, done in runs.items():
        ms = [p.execution_ms for p in done]
        if None in ms:  # not run (EXPLAIN without ANALYZE): there is no time to compare
            raise ParameterError(f"{_short_statement(name)} cannot be timed here ({done[0].mode}): name a SELECT")
        last[name] = done[-1]
        rows.append({"query": name, "median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms),
                     "runs": len(ms), "slowest_node": done[-1].nodes.sort_values("self_ms").iloc[-1]["node"],
                     "findings": ", ".join(sorted({f.kind for f in plans.findings(done[-1])}))})
    columns = ["query", "median_ms", "min_ms", "max_ms", "runs", "slowest_node", "findings"]
    return QueryTimes(pd.DataFrame(rows, columns=columns).set_index("query"), last, params)


def workload(conn: psycopg.Connection, reported: str | None = None) -> tuple[list[str], dict | None, str]:
    """The queries step 1 times, their parameters (None: the catalogue's, read from its data), and why there
    are none: the statement `reported` when it is not a catalogue name (SQL: the target's own slow query),
    else the school's catalogue where the school's tables are; on any other database none, until one is named."""
    catalogue = plans.catalogue()
    if reported and reported not in catalogue:
        return [reported], {}, ""
    if reported or workload_queries.school_schema_present(conn):
        return list(catalogue), None, ""
    return [], {}, (f"{conn.info.dbname} has none of the school's tables its catalogue queries read: name the "
                    "slow statement with query='SELECT …'")


def compare_times(before: QueryTimes, after: QueryTimes) -> pd.DataFrame:
    """Median ms per query before and after, and `factor` = after / before (above 1: slower now)."""
    frame = pd.DataFrame({"before_ms": before.frame["median_ms"], "after_ms": after.frame["median_ms"]})
    frame["factor"] = frame["after_ms"] / frame["before_ms"].where(frame["before_ms"] > 0)
    return frame


def bottleneck(now: QueryTimes, baseline: QueryTimes | None = None, *, reported: str | None = None) -> str | None:
    """The query to fix: `reported` when given; else, against a baseline, the one that slowed down
    most (at least SLOWDOWN_FACTOR times); without one, the slowest whose plan reads a whole table
    to keep a few rows (what an index fixes). None when nothing stands out."""
    if reported:
        if reported not in now.frame.index:
            raise ParameterError(f"{reported!r} is not a catalogue query; known: {', '.join(now.frame.index)}")
        return reported
    if baseline is not None:
        factors = compare_times(baseline, now)["factor"].dropna().sort_values(ascending=False)
        return factors.index[0] if len(factors) and factors.iloc[0] >= SLOWDOWN_FACTOR else None
    scans = now.frame[now.frame["findings"].str.contains("selective sequential scan")]
    return scans["median_ms"].idxmax() if len(scans) else None


# --- the runbook's steps -------------------------------------------------------------------------

@dataclass
class Identification:
    """What step 1 sees: the health checks, who blocks whom, every query's time, and the bottleneck."""

    checks: list[health.HealthCheck]
    blocked: pd.DataFrame
    times: QueryTimes
    baseline: QueryTimes | None
    bottleneck: str | None

    @property
    def table(self) -> pd.DataFrame:
        """The queries slowest first, with their baseline and slowdown when there is a baseline."""
        frame = self.times.frame.copy()
        if self.baseline is not None:
            compared = compare_times(self.baseline, self.times)
            frame.insert(1, "baseline_ms", compared["before_ms"])
            frame.insert(2, "slowdown", compared["factor"])
        return frame.sort_values("slowdown" if self.baseline is not None else "median_ms", ascending=False)

    def headline(self, after: QueryTimes | None = None) -> str:
        """The bottleneck and its median time (and in `after`, step 4's), or that no query stands out."""
        if self.bottleneck is None:
            return "no query stands out"
        text = f"{self.bottleneck}: median {self.times.ms(self.bottleneck):.2f} ms"
        return text + (f" in step 1, {after.ms(self.bottleneck):.2f} ms in step 4" if after is not None else "")

    def lines(self) -> list[str]:
        """What was found, one sentence each."""
        bad = [c for c in self.checks if not c.passed]
        found = [f"health: {health.worst(self.checks)} ({len(self.checks)} checks)"
                 + "".join(f"; {c.name} ({c.status}): {c.detail}" for c in bad)]
        for pid, rows in self.blocked.groupby("blocked_pid", sort=False):
            first = rows.iloc[0]
            found.append(f"pid {pid} has waited {first.wait_seconds:.1f} s ({_short_statement(first.blocked_query)}) for "
                         f"pid {first.blocking_pid}, {first.blocking_state} ({_short_statement(first.blocking_query)})")
        table = self.table
        shown = list(dict.fromkeys([*table.index[:3], *([self.bottleneck] if self.bottleneck else [])]))
        for query, row in table.loc[shown].iterrows():
            against = f" (baseline {row.baseline_ms:.2f} ms, {row.slowdown:.1f}× that)" if self.baseline is not None else ""
            found.append(f"{query}: median {row.median_ms:.2f} ms{against}; slowest node {row.slowest_node}"
                         + (f"; findings: {row.findings}" if row.findings else ""))
        if self.times.why_none:
            found.append(f"no query timed: {self.times.why_none}")
        found.append(f"bottleneck: {self.bottleneck}" if self.bottleneck else "no query stands out")
        return found


def identify(conn: psycopg.Connection, baseline: QueryTimes | None = None, *, reported: str | None = None,
             repeats: int = 5) -> Identification:
    """Step 1: the health check, blocked sessions, and every catalogue query timed with its plan."""
    checks, blocked = health.run_checks(conn), health.blocking(conn)
    names, params, why_none = (list(baseline.frame.index), baseline.params, "") if baseline is not None else \
        workload(conn, reported)
    now = query_times(conn, params, queries=names, repeats=repeats)
    now.why_none = why_none
    return Identification(checks, blocked, now, baseline, bottleneck(now, baseline, reported=reported))


@dataclass
class Optimisation:
    """What step 2 proposes: the bottleneck's plan findings, indexes for it, and blockers to end."""

    findings: pd.DataFrame
    proposed: list[indexes.Advice]
    blockers: pd.DataFrame  # see idle_blockers: every one found
    min_idle_seconds: float = 0.0  # a blocker idle less long is left alone (an application between two statements)
    not_read: str = ""  # why no index could be proposed: the indexes could not be read (behind another session's lock)

    @property
    def to_end(self) -> pd.DataFrame:
        """The blockers idle at least min_idle_seconds: those step 2 ends."""
        return self.blockers[self.blockers["idle_seconds"] >= self.min_idle_seconds]

    @property
    def end_blockers(self) -> list[Action]:
        return end_sessions(list(self.to_end["pid"]), self.min_idle_seconds)

    def lines(self) -> list[str]:
        found = [f"{r.node}: {r.kind}: {r.why}" for r in self.findings.itertuples()]
        found += [f"index proposed: {a.statement} ({a.why})" if a.statement else f"no index proposed: {a.why}"
                  for a in self.proposed] or [f"no index proposed: {self.not_read}" if self.not_read else "no index proposed"]
        found += [f"pid {r.pid} ({r.user}) blocks {r.blocked} session(s), idle {r.idle_seconds:.1f} s in a transaction open "
                  f"{r.transaction_seconds:.0f} s: " + ("to be ended" if r.idle_seconds >= self.min_idle_seconds else
                                                       f"left alone (idle under min_idle_seconds = {self.min_idle_seconds:g})")
                  for r in self.blockers.itertuples()] or ["no session blocks another while idle in a transaction"]
        return found


def optimise(conn: psycopg.Connection, seen: Identification, min_idle_seconds: float = 0.0) -> Optimisation:
    """Step 2: the bottleneck's findings and candidate indexes, and the statements that end the blockers
    idle at least `min_idle_seconds`."""
    plan = seen.times.plans.get(seen.bottleneck) if seen.bottleneck else None
    found = plans.findings_frame(plan) if plan else pd.DataFrame(columns=["node_id", "node", "kind", "why", "what_to_try"])
    try:  # the indexes are deparsed, which locks their tables: behind another session's lock, not for long
        proposed, not_read = (indexes.candidates(conn, plan) if plan else []), ""
    except LockBusy as busy:
        proposed, not_read = [], lock_watch.not_read(conn, busy)
    return Optimisation(found, proposed, idle_blockers(conn), float(min_idle_seconds), not_read)


def creates(proposed: list[indexes.Advice]) -> list[indexes.Advice]:
    """The proposed indexes that have a statement to create them (not advice of why none is proposed)."""
    return [a for a in proposed if a.kind in indexes.CREATES]


def index_actions(proposed: list[indexes.Advice]) -> list[Action]:
    """CREATE INDEX CONCURRENTLY for each proposed index, then ANALYZE of each table it is on, each table
    named in its own schema."""
    actions = [Action(a.statement, indexes.create_index(a.table, a.columns, a.index, a.schema)) for a in creates(proposed)]
    for schema, table in dict.fromkeys((a.schema, a.table) for a in creates(proposed)):
        statement = sql.SQL("ANALYZE {}").format(sql.Identifier(schema, table))
        actions.append(Action(statement.as_string(None), statement))
    return actions


def leftover_drops(conn: psycopg.Connection, proposed: list[indexes.Advice]) -> list[Action]:
    """DROP INDEX CONCURRENTLY of each proposed index that a killed build left INVALID under its name:
    CREATE INDEX ... IF NOT EXISTS would keep the leftover, never valid. Only a leftover: an index whose
    build runs now, another role's too (see index_builds), is left alone."""
    made = {(a.schema, a.index) for a in creates(proposed)}
    builds = index_builds.leftover_builds(conn)
    left = [(schema, name) for schema, name, state in zip(builds["schema_name"], builds["index_name"], builds["state"])
            if state == index_builds.LEFTOVER and (schema, name) in made]
    statements = [sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(schema, name))
                  for schema, name in left]
    return [Action(statement.as_string(None), statement) for statement in statements]


def create_indexes(incident: Incident, conn: psycopg.Connection, proposed: list[indexes.Advice]) -> list[str]:
    """Step 3: create the proposed indexes CONCURRENTLY and ANALYZE their tables, each statement on
    its own (CONCURRENTLY cannot run inside a transaction), or only record them in live mode without
    confirm; a proposed index that a killed run left INVALID is dropped first, so the step resumes.
    Returns the statements run."""
    return incident.run(leftover_drops(conn, proposed) + index_actions(proposed), conn, autocommit=True)


def missing_indexes(conn: psycopg.Connection, proposed: list[indexes.Advice]) -> list[str]:
    """The proposed indexes that do not exist, or exist but are not valid (errors.LockBusy when the indexes
    cannot be read behind another session's lock)."""
    if not creates(proposed):
        return []
    existing = indexes.existing(conn)
    valid = existing[existing["is_valid"].astype(bool)]
    valid = set(zip(valid["schema_name"], valid["index_name"]))  # an index of that name in another schema is not it
    return [a.index for a in creates(proposed) if (a.schema, a.index) not in valid]
