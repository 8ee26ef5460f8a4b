"""Runbook 11, slow catalogue queries, one call per step: identify the bottleneck, optimise, update
indexes, monitor results, document changes, clean up.

`start` makes the drill (mode="drill": a scratch database slowed down on purpose, under load, with a
session sitting on a row lock) or takes the target (mode="live") and opens the incident; each step
then takes what `start` returned, works on the incident's one connection (`inc.conn`), records what it found and
did, makes its checks (a SKIP with the reason for what this mode does not check) and returns what
the notebook shows.
"""

from dataclasses import dataclass

import pandas as pd

from .. import health, lock_watch
from ..db import Target
from . import journal, naming, performance
from .drills import performance as performance_drill
from .record import Incident, check_mode
from ..errors import LockBusy, ParameterError

LIVE_MIN_IDLE_SECONDS = 5.0  # live: how long a blocker must have sat idle in its transaction to be ended


@dataclass
class SlowQueries:
    """One run of the runbook: its incident, the database it works on, the drill (None live), the
    parameters, and what the steps found on the way."""

    inc: Incident
    target: Target
    drill: performance_drill.Drill | None
    query: str | None           # the query reported slow; None: step 1 finds it
    target_ms: float
    repeats: int
    min_idle_seconds: float = 0.0  # a blocker idle in its transaction less long is left alone
    seen: performance.Identification | None = None
    fix: performance.Optimisation | None = None
    after: performance.QueryTimes | None = None

    def _repr_markdown_(self) -> str:
        return f"`{self.inc!r}`"


def start(target: Target, mode: str = "drill", *, incident_id: str | None = None, confirm: bool = False,
          query: str | None = None, target_ms: float = 1.0, repeats: int = 5, drill_students: int = 30_000,
          load_seconds: float = 30, sessions: int = 4, min_idle_seconds: float | None = None) -> SlowQueries:
    """The drill made (mode="drill") or the target taken (live), and the incident opened. `min_idle_seconds`:
    live, a session blocking others is ended only once it has sat idle in its transaction this long (None:
    LIVE_MIN_IDLE_SECONDS), so an application between two statements of a transaction is left alone; the
    drill's own lock holder is ended at once (None: 0)."""
    parameters = dict(mode=mode, incident_id=incident_id, confirm=confirm, query=query, target_ms=target_ms,  # as given
                      repeats=repeats, drill_students=drill_students, load_seconds=load_seconds, sessions=sessions,
                      min_idle_seconds=min_idle_seconds)
    check_mode(mode)
    if min_idle_seconds is None:
        min_idle_seconds = 0.0 if mode == "drill" else LIVE_MIN_IDLE_SECONDS
    if not isinstance(min_idle_seconds, (int, float)) or isinstance(min_idle_seconds, bool) or not 0 <= min_idle_seconds <= 86400:
        raise ParameterError(f"min_idle_seconds must be a number of seconds from 0 to 86400, not {min_idle_seconds!r}")
    incident_id = naming.check_id(incident_id or naming.new_id("performance"))
    journal.claim(naming.incidents_dir(), incident_id)  # before its drill is made: a re-run drops the drill of its id
    drill = performance_drill.make(target, drill_students, incident_id=incident_id, load_seconds=load_seconds,
                                   sessions=sessions, repeats=repeats) if mode == "drill" else None
    work_on = drill.target if drill else target
    inc = Incident("performance", "Catalogue queries slow", work_on, incident_id=incident_id, mode=mode, confirm=confirm,
                   conn=drill.conn if drill else None)
    if drill and drill.swept:
        inc.note(f"removed what killed drills had left: {', '.join(drill.swept)}")
    inc.given(**parameters)  # a step refuses to run once one of them is changed in the notebook (setup not run again)
    inc.fact("drill" if drill else "live", drill.summary if drill else "observing the target; changes only with confirm=True")
    return SlowQueries(inc, work_on, drill, query, float(target_ms), int(repeats), float(min_idle_seconds))


def identify_bottleneck(run: SlowQueries) -> pd.DataFrame:
    """Step 1: health, blocked sessions and every catalogue query timed; the bottleneck is the query
    given, else (drill) the one slowed down most against the healthy baseline, else (live) the
    slowest that reads a whole table to keep a few rows. Returns the queries, slowest first."""
    inc = run.inc
    with inc.step(1, "Identify the bottleneck", next_if_failed="read the health checks and blocked sessions below; "
                                                                "name the slow query with query=... and run again"):
        run.seen = seen = performance.identify(inc.conn, run.drill.baseline if run.drill else None,
                                               reported=run.query, repeats=run.repeats)
        for line in seen.lines():
            inc.found(line)
        inc.check("bottleneck identified", seen.bottleneck is not None, seen.headline(), must_hold=inc.mode == "drill",
                  fix="no query stands out: compare with a healthy run of 03_query_plan_analysis",
                  skipped=seen.times.why_none)
        inc.check("incident reproduced: the bottleneck is over its target time", seen.times.ms(seen.bottleneck) > run.target_ms,
                  f"target {run.target_ms:g} ms", must_hold=False, skipped="" if seen.bottleneck else "no bottleneck identified")
    return seen.table


def optimise(run: SlowQueries) -> pd.DataFrame:
    """Step 2: the bottleneck's plan findings and the indexes proposed for it; sessions that block
    others while idle in a transaction are ended (live without confirm, only shown). Returns the findings."""
    inc = run.inc
    with inc.step(2, "Optimise", next_if_failed="EXPLAIN the query by hand (03_query_plan_analysis); end a blocking "
                                                 "session yourself with SELECT pg_terminate_backend(pid)", after=(1,), once=True):
        # once on step 1's bottleneck: run again after step 3, it judged the fixed plan by the query identified
        # before the fix ("FAIL an index is proposed: 0 proposed" in a drill), and ended sessions on that ground
        run.fix = fix = performance.optimise(inc.conn, run.seen, run.min_idle_seconds)
        for line in fix.lines():
            inc.found(line)
        inc.run(fix.end_blockers, autocommit=True)  # each checked again in a statement of its own: fresh pg_stat_activity
        inc.check("an index is proposed for the bottleneck", bool(performance.creates(fix.proposed)),
                  f"{len(performance.creates(fix.proposed))} proposed",
                  must_hold=inc.mode == "drill", fix="the plan has no scan an index would fix: see its findings",
                  skipped=fix.not_read if run.seen.bottleneck else "no bottleneck identified")
        blocked, hidden = health.blocking(inc.conn), health.hidden_sessions(inc.conn)[1]
        inc.check("no session blocks another", blocked.empty,  # the detail says what was checked
                  f"{blocked['blocked_pid'].nunique()} session(s) blocked now; {len(fix.blockers)} idle blocker(s) found before, "
                  f"{len(fix.to_end)} idle at least {run.min_idle_seconds:g} s",
                  must_hold=inc.may_change,
                  fix="end the blocking sessions (confirm=True); one left alone as idle under min_idle_seconds: run step 2 again",
                  skipped=health.unseen(hidden) if blocked.empty else "")  # other roles' locks: not looked at
    return fix.findings


def update_indexes(run: SlowQueries) -> list[str]:
    """Step 3: the proposed indexes created CONCURRENTLY and their tables analysed (live without
    confirm, only shown). Returns the statements run."""
    inc, proposed = run.inc, performance.creates(run.fix.proposed)
    with inc.step(3, "Update indexes", next_if_failed="drop an index left INVALID (DROP INDEX CONCURRENTLY name), "
                                                       "then run the CREATE INDEX CONCURRENTLY above by hand", after=(2,), once=True):
        ran = performance.create_indexes(inc, inc.conn, proposed)
        if run.drill:
            run.drill.load.mark("after the index")
        skipped = (f"no index proposed: {run.fix.not_read}" if run.fix.not_read else "no index proposed") if not proposed \
            else "" if inc.may_change else \
            "live without confirm=True: not created (statements above)"
        try:  # deparsing the indexes locks their tables: behind another session's lock, a SKIP saying so
            missing = performance.missing_indexes(inc.conn, proposed) if not skipped else []
        except LockBusy as busy:
            missing, skipped = [], lock_watch.not_read(inc.conn, busy)
        inc.check("proposed indexes exist and are valid", not missing, ", ".join(missing) or f"{len(proposed)} index(es)",
                  fix="create them by hand (statements above)", skipped=skipped)
    return ran


def monitor_results(run: SlowQueries) -> pd.DataFrame:
    """Step 4: every catalogue query timed again as in step 1; the bottleneck must be under its target
    (must hold whenever an index was created). Returns median ms per query before and after."""
    inc, seen = run.inc, run.seen
    with inc.step(4, "Monitor results", next_if_failed="look at the plan again (03_query_plan_analysis): "
                                                        "the index may not be used; keep the incident open", after=(1, 2)):
        run.after = after = performance.query_times(inc.conn, seen.times.params, queries=list(seen.times.frame.index),
                                                    repeats=run.repeats)
        inc.found(seen.headline(after))
        if run.drill:
            inc.found(run.drill.load.report().summary)
        inc.check("query back under its target time", after.ms(seen.bottleneck) < run.target_ms,
                  f"{seen.headline(after)}; target {run.target_ms:g} ms", must_hold=inc.may_change and bool(performance.creates(run.fix.proposed)),
                  fix="the fix is not enough: see step 2's findings", skipped="" if seen.bottleneck else "no bottleneck identified")
    return performance.compare_times(seen.times, after)


def document_changes(run: SlowQueries) -> None:
    """Step 5: the bottleneck and the statements executed written into the report's header."""
    inc = run.inc
    with inc.step(5, "Document changes", next_if_failed="copy the timeline above into the incident ticket by hand",
                  after=(1,)):
        ran = [e.text for e in inc.events if e.kind == "ran"]
        inc.fact("bottleneck", f"{run.seen.headline(run.after)} (target {run.target_ms:g} ms)")
        inc.fact("changes", f"{len(ran)} statement(s) executed, listed under their steps" if ran else "none")
        inc.did(f"report: {inc.write()}")


def clean_up(run: SlowQueries) -> None:
    """Step 6: in a drill, the load stopped, the lock holder ended and the drill database dropped (its
    own only); the incident's connection closed."""
    inc, drill = run.inc, run.drill
    name = drill.target.database if drill else ""
    with inc.step(6, "Clean up", next_if_failed=f"drop the drill database by hand: DROP DATABASE {name} WITH (FORCE)",
                  closes=True):
        inc.close()
        if drill:
            stopped = drill.drop()
            inc.did(f"stopped the load ({stopped.queries:,} queries, {stopped.errors} errors) and the lock holder; "
                    f"dropped {drill.target.database}")
        inc.check("nothing of the drill left",
                  drill is not None and not (drill.load.running or performance_drill.exists(drill.server, drill.target.database)),
                  drill.target.database if drill else "", skipped="" if drill else "live: no drill to clean up")
