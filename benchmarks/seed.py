"""How fast `prep_ops.seed` loads, next to the server-side ceiling, and how much memory it takes.

For each size (`--students` and a quarter of it), in one run:
1. `prep_ops.seed.seed` into a freshly migrated scratch database, in a child process, so that
   `resource.getrusage` gives the peak RSS of that seeding process and of its workers alone;
2. the ceiling: `ceiling.sql` (INSERT ... SELECT ... FROM generate_series) into another freshly
   migrated scratch database, same tables and constraints, the same row count per table, in one
   transaction.
Both timings cover the load, the commit and the ANALYZE that seed() runs after it; a CHECKPOINT
before each keeps one run's WAL from landing on the next.

Run:  PREP_OPS_DATA_DIR=/work/bench-pgdata python benchmarks/seed.py [--students 1000000]
"""

import argparse
import multiprocessing
import os
import platform
import resource
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from tabulate import tabulate

from prep_ops import db, migrate, sample
from prep_ops import seed as seeding

CEILING_SQL = Path(__file__).with_name("ceiling.sql")
STATUSES = ("enrolled", "waitlisted", "dropped", "completed")


@dataclass
class Measurement:
    method: str
    students: int
    rows: dict[str, int]
    seconds: float
    peak_rss_mb: float | None = None         # the seeding process
    worker_peak_rss_mb: float | None = None  # its largest child (a generation worker)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def rows_per_second(self) -> float:
        return self.total_rows / self.seconds


@contextmanager
def scratch_database(base: db.Target, name: str):
    """A freshly migrated database `name` on the server of `base`, dropped afterwards."""
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with db.connect(base, autocommit=True) as conn:
        conn.execute(drop)
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    target = base.with_database(name)
    try:
        migrate.apply(target)
        with db.connect(target, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
        yield target
    finally:
        with db.connect(base, autocommit=True) as conn:
            conn.execute(drop)


def _seed_child(target: db.Target, students: int, seed_value: int, out) -> None:
    began = time.perf_counter()
    result = seeding.seed(target, students, seed_value, replace=True)
    seconds = time.perf_counter() - began
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    out.send((result.rows, seconds, own, workers))


def measure_seed(target: db.Target, students: int, seed_value: int) -> Measurement:
    """Time seed() in a child process of its own; its peak RSS is then this run's alone."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_seed_child, args=(target, students, seed_value, send))
    child.start()
    send.close()
    try:
        rows, seconds, own, workers = receive.recv()
    except EOFError:
        child.join()
        raise SystemExit(f"seeding failed (exit code {child.exitcode})") from None
    child.join()
    return Measurement("prep_ops.seed", students, rows, seconds, own, workers)


def _statements(text: str) -> list[str]:
    """The statements of a .sql file whose statements end with ';' at a line end."""
    chunks = (chunk.strip() for chunk in text.split(";\n"))
    return [c for c in chunks if any(line.strip() and not line.lstrip().startswith("--") for line in c.splitlines())]


def measure_ceiling(target: db.Target, students: int, rows: dict[str, int]) -> Measurement:
    """Time ceiling.sql filling `target` with `rows` rows per table, plus the same ANALYZE."""
    plan = sample.Plan(students, 0)
    params = {
        "students": students, "teachers": plan.teachers,
        "enrollments": rows["enrollments"], "payments": rows["tuition_payments"],
        "first": list(sample.FIRST), "last": list(sample.LAST), "domains": list(sample.DOMAINS),
        "instruments": list(sample.INSTRUMENTS), "levels": list(sample.LEVELS), "terms": list(sample.TERMS),
        "statuses": list(STATUSES), "methods": list(sample.METHODS),
    }
    statements = _statements(CEILING_SQL.read_text())
    tables = sql.SQL(", ").join(map(sql.Identifier, sample.LOAD_ORDER))
    began = time.perf_counter()
    with db.connect(target) as conn:
        for statement in statements:
            conn.execute(statement, params)
        conn.commit()
    with db.connect(target, autocommit=True) as conn:
        conn.execute(sql.SQL("ANALYZE {}").format(tables))
    seconds = time.perf_counter() - began
    loaded = seeding.row_counts(target)
    if loaded != rows:
        raise SystemExit(f"the ceiling loaded {loaded}, not the seed's {rows}")
    return Measurement("INSERT ... generate_series", students, loaded, seconds)


def machine(base: db.Target) -> list[tuple[str, str]]:
    """What the figures were measured on."""
    with db.connect(base, autocommit=True) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        settings = ", ".join(f"{name}={conn.execute(sql.SQL('SHOW {}').format(sql.Identifier(name))).fetchone()[0]}"
                             for name in ("shared_buffers", "max_wal_size", "wal_level", "synchronous_commit"))
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return [("cpus", str(os.cpu_count())), ("memory", f"{memory:.0f} GiB"), ("system", platform.platform()),
            ("python", platform.python_version()), ("psycopg", psycopg.__version__),
            ("postgresql", version), ("server settings", settings), ("server", base.masked_url)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=1_000_000, help="the larger size; the smaller is a quarter")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    if args.students < 4:
        parser.error("--students must be at least 4")
    base = db.resolve_target()
    print(tabulate(machine(base), tablefmt="plain"), flush=True)
    results = []
    for students in (args.students // 4, args.students):
        with scratch_database(base, "prep_ops_bench_seed") as target:
            print(f"seed:    {students:>10,} students ...", end=" ", flush=True)
            seeded = measure_seed(target, students, args.seed)
            print(f"{seeded.seconds:6.1f} s", flush=True)
        with scratch_database(base, "prep_ops_bench_ceiling") as target:
            print(f"ceiling: {students:>10,} students ...", end=" ", flush=True)
            ceiling = measure_ceiling(target, students, seeded.rows)
            print(f"{ceiling.seconds:6.1f} s", flush=True)
        results.append((seeded, ceiling))
    print()
    print(tabulate(
        [(s.students, s.total_rows, c.seconds, round(c.rows_per_second), s.seconds, round(s.rows_per_second),
          f"{s.rows_per_second / c.rows_per_second:.0%}", s.peak_rss_mb, s.worker_peak_rss_mb)
         for s, c in results],
        headers=("students", "rows", "ceiling s", "ceiling rows/s", "seed s", "seed rows/s",
                 "seed/ceiling", "seed peak RSS MiB", "worker peak RSS MiB"),
        floatfmt=",.1f", intfmt=","))
    print()
    print(tabulate([(t, *(s.rows[t] for s, _ in results)) for t in sample.LOAD_ORDER],
                   headers=("rows per table", *(f"{s.students:,} students" for s, _ in results)), intfmt=","))


if __name__ == "__main__":
    sys.exit(main())
