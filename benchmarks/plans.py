"""Query-plan analysis at scale: does the catalogue analysis find a real problem in the schema as
migrated, and what does applying the proposed indexes gain, in measured time?

    python benchmarks/plans.py --students 100000 --repeat 5

Builds a fresh scratch database (prep_ops_bench_plans) on the target's server with the sample
data, times every catalogue query with EXPLAIN ANALYZE (median of --repeat runs, after one warm-up
run), collects the index advice and the candidates for every query, creates the proposed indexes,
times everything again the same way, and prints a Markdown table for benchmarks/README.md.
"""

import argparse
import statistics
import time

import pandas as pd

from prep_ops import db, indexes, plans, scratch


def timed(target, params, repeat: int) -> dict[str, float]:
    """Median EXPLAIN ANALYZE time (planning + execution, ms) of each catalogue query."""
    result = {}
    for name in plans.catalogue():
        plans.explain(target, name, params)  # warm-up: caches and statistics
        result[name] = statistics.median(plans.explain(target, name, params).total_ms for _ in range(repeat))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    server = db.resolve_target()
    began = time.perf_counter()
    lab = scratch.sample_database(server, args.students, name="prep_ops_bench_plans", progress=True)
    print(f"sample database with {args.students:,} students in {time.perf_counter() - began:.1f} s")
    params = plans.catalogue_params(lab)
    before = timed(lab, params, args.repeat)

    advice = indexes.advice(lab)
    proposed = {}
    for name in plans.catalogue():
        for item in indexes.candidates(lab, plans.explain(lab, name, params)):
            proposed[(item.table, item.columns)] = item
    missing_fk = [a for a in advice if a.kind == "missing foreign-key index"]
    print("\nstanding advice:")
    print(indexes.as_frame(advice)[["kind", "table", "index"]].to_string(index=False))
    print("\nproposed for the catalogue:")
    for item in proposed.values():
        print(f"  {item.statement}  -- {item.why}")

    indexes.apply(lab, list(proposed.values()))
    after = timed(lab, params, args.repeat)
    with db.connect(lab) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]

    table = pd.DataFrame({"before (ms)": before, "after (ms)": after})
    table["speedup"] = table["before (ms)"] / table["after (ms)"]
    print(f"\nPostgreSQL {version}, {args.students:,} students, median of {args.repeat} EXPLAIN ANALYZE runs")
    print(f"missing foreign-key indexes found: {', '.join(a.index for a in missing_fk) or 'none'}")
    print(f"indexes created: {', '.join(i.index for i in proposed.values()) or 'none'}\n")
    print(table.round(2).to_markdown())
    scratch.drop(server, "prep_ops_bench_plans")


if __name__ == "__main__":
    main()
