"""Query-plan analysis at scale: does the catalogue analysis find a real problem in the schema as
migrated, and what does applying the proposed indexes gain, in measured time?

    python benchmarks/plans.py --students 100000 --repeat 15

Builds a fresh scratch database (prep_ops_bench_plans) on the target's server with the sample
data and VACUUMs it (so autovacuum does not wake up on the fresh tables half way through the
timings), times every catalogue query with EXPLAIN ANALYZE (median of --repeat runs after one
warm-up run) and keeps its plan, collects the index advice and the candidates for every query,
and creates the proposed indexes.

Then it times each query again in --repeat interleaved rounds, with the new indexes and without
them (hidden: dropped inside the rolled-back EXPLAIN transaction), alternating which goes first;
the speedup is the median of the rounds' ratios, so that both sides see the same load on a shared
machine. Two phases a few seconds apart do not: on two shared cores a burst of other work, or
autovacuum, lands on one phase only. Each query's plan before the
indexes existed is compared node by node with its plan after. Prints Markdown for
benchmarks/README.md.
"""

import argparse
import os
import statistics
import time

import pandas as pd

from prep_ops import db, indexes, plan_compare, plans, scratch

NAME = "prep_ops_bench_plans"


def median_plan(runs: list[plans.Plan]) -> plans.Plan:
    return sorted(runs, key=lambda plan: plan.total_ms)[len(runs) // 2]


def timed(conn, params, repeat: int) -> dict[str, plans.Plan]:
    """Per catalogue query, the run of median time (planning + execution) of `repeat` EXPLAIN
    ANALYZE runs after a warm-up run (caches, hint bits)."""
    result = {}
    for name in plans.catalogue():
        plans.explain(conn, name, params)
        result[name] = median_plan([plans.explain(conn, name, params) for _ in range(repeat)])
    return result


def interleaved(conn, params, hidden: tuple[str, ...], repeat: int) -> tuple[dict, dict, dict]:
    """Per query, the median runs with the new indexes and with them hidden, taken in `repeat`
    alternating rounds (after one warm-up each), and the median of the rounds' speedups: each
    round's pair ran within a second of each other, so the ratio of a pair is what load spares."""
    with_runs: dict[str, list] = {name: [] for name in plans.catalogue()}
    without_runs: dict[str, list] = {name: [] for name in plans.catalogue()}
    for name in plans.catalogue():
        plans.explain(conn, name, params)
        plans.explain(conn, name, params, hide_indexes=hidden)
    for round_ in range(repeat):
        for name in plans.catalogue():
            sides = [(with_runs, ()), (without_runs, hidden)]
            for runs, hide in sides if round_ % 2 == 0 else sides[::-1]:
                runs[name].append(plans.explain(conn, name, params, hide_indexes=hide))
    speedups = {name: statistics.median(b.total_ms / a.total_ms for a, b in zip(with_runs[name], without_runs[name]))
                for name in plans.catalogue()}
    return ({n: median_plan(r) for n, r in with_runs.items()}, {n: median_plan(r) for n, r in without_runs.items()},
            speedups)


def buffers(plan: plans.Plan) -> int:
    top = plan.nodes.iloc[0]
    return int(top["shared_hit"] + top["shared_read"])


def workers(plan: plans.Plan) -> str:
    gathers = plan.nodes[plan.nodes["workers_planned"].notna()]
    return ", ".join(f"{int(g.workers_launched)}/{int(g.workers_planned)}" for g in gathers.itertuples()) or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    server = db.resolve_target()
    began = time.perf_counter()
    lab = scratch.sample_database(server, args.students, name=NAME, progress=True)
    with db.connect(lab, autocommit=True) as conn:
        conn.execute("VACUUM")
    print(f"sample database with {args.students:,} students in {time.perf_counter() - began:.1f} s")
    conn = db.connect(lab, autocommit=True)  # the one connection every step below shares
    params = plans.catalogue_params(conn)
    before = timed(conn, params, args.repeat)

    advice = indexes.advice(conn)
    proposed = {}
    for name in plans.catalogue():
        for item in indexes.candidates(conn, plans.explain(conn, name, params)):
            proposed[(item.table, item.columns)] = item
    missing_fk = [a for a in advice if a.kind == "missing foreign-key index"]
    print("\nstanding advice:")
    print(indexes.as_frame(advice)[["kind", "table", "index"]].to_string(index=False))
    print("\nproposed for the catalogue:")
    for item in proposed.values():
        print(f"  {item.statement}  -- {item.why}")

    indexes.apply(conn, list(proposed.values()))
    created = tuple(item.index for item in proposed.values())
    after, without, speedups = interleaved(conn, params, created, args.repeat)
    version = conn.execute("SHOW server_version").fetchone()[0]
    conn.close()

    rows = {}
    for name in plans.catalogue():
        comparison = plan_compare.compare(before[name], after[name])
        rows[name] = {"before (ms)": before[name].total_ms, "without (ms)": without[name].total_ms,
                      "with (ms)": after[name].total_ms,
                      "speedup": speedups[name],
                      "plan before → after": plan_compare.changes(comparison)}
    table = pd.DataFrame.from_dict(rows, orient="index")
    print(f"\nPostgreSQL {version}, {args.students:,} students, median of {args.repeat} EXPLAIN ANALYZE runs, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    print(f"missing foreign-key indexes found: {', '.join(a.index for a in missing_fk) or 'none'}")
    print(f"indexes created: {', '.join(created) or 'none'}\n")
    print(table.round(2).to_markdown())

    print("\nplans before and after, per query: parallel workers launched/planned, shared buffers read")
    for name in plans.catalogue():
        print(f"  {name}: workers {workers(before[name])} → {workers(after[name])}, "
              f"buffers {buffers(before[name]):,} → {buffers(after[name]):,}")
    for name in plans.catalogue():
        comparison = plan_compare.compare(before[name], after[name])
        shown = comparison[["node", "change", "actual_rows_before", "actual_rows_after", "self_ms_before",
                            "self_ms_after", "workers_before", "workers_after"]]
        print(f"\n{name}, node by node (before: the first phase; after: with the new indexes)")
        print(shown.assign(node=shown["node"].str.replace("\u00a0", " ")).round(2).to_markdown(index=False))
    scratch.drop(server, NAME)


if __name__ == "__main__":
    main()
