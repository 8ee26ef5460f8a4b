"""How fast `prep_ops.seed` loads next to the raw-write rate of the same rows, and how much memory it takes.

For each size (a quarter of `--students`, then `--students`), side by side in one run, `--repeat`
times, in this order:
1. with `--before DIR`: the seed of another source tree (DIR holds its `prep_ops/`, e.g. made with
   `git archive HEAD prep_ops | tar -x -C DIR`), into a freshly migrated scratch database;
2. `prep_ops.seed.seed` of this tree, into another freshly migrated scratch database;
3. the raw write: in (2)'s database, `INSERT INTO copy SELECT * FROM table` of every school table
   into tables made with `CREATE TABLE copy (LIKE table INCLUDING ALL)` in a schema of their own
   (the same shape: columns, defaults, CHECKs and every index, primary keys and UNIQUE included;
   no foreign keys), in one transaction, then ANALYZE of the copies. Same seed, same rows.
A seed runs in a child process of its own (`python -c`, in DIR and with DIR first on PYTHONPATH for
(1)), which times it once imported and connected: the load, its commit and the ANALYZE seed() runs.
The raw write is timed from BEGIN to the end of its ANALYZE; its tables are made (empty) before, and
(2)'s tables vacuumed, so that it does not pay for setting the hint bits the load left. Every step
starts after a CHECKPOINT.

While a step runs, a sampler thread reads (psutil, every SAMPLE_SECONDS) the CPU time of the local
server's processes, the CPU the machine spent on anything else ("other CPU": other people's work on
shared cores) and the resident memory of the seeding process and its workers; the seeding process
also reports `resource.getrusage` peaks. WAL volume and checkpoints come from the server's views.

Run:  PREP_OPS_DATA_DIR=/work/bench-pgdata python benchmarks/seed.py [--students 200000] [--before DIR]

Result of one run (2026-11-30, `--repeat 3 --before` the code at git HEAD, 2 cores shared with other
sessions' test suites: 8-38 CPU-s of other work per 200,000-student step; benchmarks/README.md,
"Seeding"): at 200,000 students the seed went from 0.34-0.53x to 0.84-1.12x of the raw-write rate
(target >= 0.8x), at 50,000 from 0.27-0.50x to 0.51-1.13x; peak RSS of seed and worker 253-257 MiB
at 200,000 and 224-237 MiB at 50,000 (before: 325-329 and 292-294).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg
from psycopg import sql
from tabulate import tabulate

from prep_ops import db, migrate, sample, scratch
from prep_ops import seed as seeding

SAMPLE_SECONDS = 0.25
MIB = 2**20
RAW = "raw_write"  # the schema of the raw write's tables
RAW_METHOD = "raw write: INSERT … SELECT into LIKE … INCLUDING ALL"
CHILD = """
import json, resource, sys, time
from prep_ops import db, seed

def cpu():
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

target = db.Target(sys.argv[1], embedded=sys.argv[2] == "1")
with db.connect(target, autocommit=True) as conn:
    print("ready", flush=True)
    sys.stdin.readline()  # the parent's sampler runs
    began, cpu_before = time.perf_counter(), cpu()
    result = seed.seed(conn, int(sys.argv[3]), int(sys.argv[4]), replace=True, confirm=True)
    seconds = time.perf_counter() - began
print(json.dumps({"rows": result.rows, "seconds": seconds, "source": seed.__file__, "cpu": cpu() - cpu_before,
                  "main_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "worker_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


@dataclass
class Measurement:
    students: int
    method: str
    rows: dict[str, int]
    seconds: float
    server_cpu: float | None = None        # CPU seconds of all server processes during the step
    other_cpu: float | None = None         # CPU seconds the machine spent on anything else meanwhile
    wal: tuple[float, int] = (0.0, 0)      # WAL written meanwhile: GiB, checkpoints
    peak_rss_mb: float | None = None       # the seeding process and its workers together, sampled
    main_maxrss_mb: float | None = None    # getrusage: the seeding process
    worker_maxrss_mb: float | None = None  # getrusage: its largest child

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def rows_per_second(self) -> float:
        return self.total_rows / self.seconds


class Sampler(threading.Thread):
    """CPU seconds of the server's processes, of the rest of the machine, and peak RSS of a process tree."""

    def __init__(self, postmaster: psutil.Process | None, root: int | None = None):
        super().__init__(daemon=True)
        self.postmaster, self.root = postmaster, root
        self.cpu_first: dict[int, float] = {}
        self.cpu_last: dict[int, float] = {}
        self.peak_rss = 0
        self.done = threading.Event()
        self.busy_before, self.own_before = _machine_busy(), _own_cpu()
        self._sample(before=True)

    def _sample(self, before: bool = False) -> None:
        if self.postmaster is not None:
            for proc in self.postmaster.children():
                try:
                    times = proc.cpu_times()
                except psutil.Error:
                    continue
                self.cpu_first.setdefault(proc.pid, times.user + times.system if before else 0.0)
                self.cpu_last[proc.pid] = times.user + times.system
        if self.root is not None:
            try:
                root = psutil.Process(self.root)
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                return
            rss = 0
            for proc in tree:
                try:
                    rss += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak_rss = max(self.peak_rss, rss)

    def run(self) -> None:
        while not self.done.wait(SAMPLE_SECONDS):
            self._sample()

    def stop(self, client_cpu: float = 0.0) -> tuple[float | None, float | None]:
        """Stop; the server's CPU seconds since the start, and the machine's spent on anything but the
        server, this process and `client_cpu` (both None when the server is not local)."""
        self.done.set()
        self.join()
        self._sample()
        if self.postmaster is None:
            return None, None
        server = sum(self.cpu_last[pid] - self.cpu_first.get(pid, 0.0) for pid in self.cpu_last)
        busy = _machine_busy() - self.busy_before
        return server, max(0.0, busy - server - (_own_cpu() - self.own_before) - client_cpu)


def _machine_busy() -> float:
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def wal_counters(target: db.Target) -> tuple[float, int]:
    """The server's WAL written so far (GiB) and its checkpoints."""
    with db.connect(target, autocommit=True) as conn:
        wal_bytes = conn.execute("SELECT wal_bytes FROM pg_stat_wal").fetchone()[0]
        if db.server_version(conn) >= 17:
            checkpoints = conn.execute("SELECT num_timed + num_requested FROM pg_stat_checkpointer").fetchone()[0]
        else:
            checkpoints = conn.execute("SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter").fetchone()[0]
    return float(wal_bytes) / 2**30, checkpoints


def _since(before: tuple[float, int], target: db.Target) -> tuple[float, int]:
    return tuple(after - first for after, first in zip(wal_counters(target), before))


def postmaster(base: db.Target) -> psutil.Process | None:
    """The embedded server's main process (the one server whose processes we may read)."""
    with db.connect(base, autocommit=True) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    try:
        return psutil.Process(backend).parent() if base.embedded else None
    except psutil.Error:
        return None


@contextmanager
def scratch_database(server: db.Target, name: str):
    """A freshly migrated scratch database `name` on `server`, dropped afterwards."""
    target = scratch.recreate(server, name, confirm=True)
    try:
        with db.connect(target, autocommit=True) as conn:
            migrate.apply(conn, confirm=True)  # the benchmark's own database, which it just made
            conn.execute("CHECKPOINT")
        yield target
    finally:
        scratch.drop(server, name)


def measure_seed(target: db.Target, students: int, seed_value: int, server: psutil.Process | None,
                 method: str, source: Path | None = None) -> Measurement:
    """A seed of `source` (None: this tree) in a child process of its own, timed there; peaks and
    server CPU sampled from here."""
    tree = (source or Path(seeding.__file__).parents[1]).resolve()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")])))
    wal = wal_counters(target)
    # run in `tree`: `python -c` puts the working directory first on the path
    child = subprocess.Popen([sys.executable, "-c", CHILD, target.url, "1" if target.embedded else "0",
                              str(students), str(seed_value)], env=env, cwd=tree, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    child.stdout.readline()  # imported and connected: what follows is the seed alone
    sampler = Sampler(server, child.pid)
    sampler.start()
    out, _ = child.communicate("go\n")
    if child.returncode != 0:
        sampler.stop()
        raise SystemExit(f"{method} failed (exit code {child.returncode})")
    got = json.loads(out.strip().splitlines()[-1])
    if not Path(got["source"]).resolve().is_relative_to(tree):
        raise SystemExit(f"{method} ran {got['source']}, not the seed of {tree}")
    server_cpu, other_cpu = sampler.stop(got["cpu"])
    return Measurement(students, method, got["rows"], got["seconds"], server_cpu, other_cpu, _since(wal, target),
                       sampler.peak_rss / MIB, got["main_kib"] / 1024, got["worker_kib"] / 1024 or None)


def measure_raw_write(target: db.Target, students: int, rows: dict[str, int], server: psutil.Process | None) -> Measurement:
    """INSERT ... SELECT of every school table of `target` into a copy of the same shape, one transaction,
    then ANALYZE of the copies; checks that the copies hold `rows`."""
    copies = [sql.Identifier(RAW, t) for t in sample.LOAD_ORDER]
    with db.connect(target, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(RAW)))
        for table, copy in zip(sample.LOAD_ORDER, copies):
            conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(copy, sql.Identifier(table)))
        conn.execute(sql.SQL("VACUUM {}").format(sql.SQL(", ").join(map(sql.Identifier, sample.LOAD_ORDER))))
        conn.execute("CHECKPOINT")
    wal = wal_counters(target)
    sampler = Sampler(server)
    sampler.start()
    began = time.perf_counter()
    with db.connect(target) as conn:
        for table, copy in zip(sample.LOAD_ORDER, copies):
            conn.execute(sql.SQL("INSERT INTO {} SELECT * FROM {}").format(copy, sql.Identifier(table)))
        conn.commit()
    with db.connect(target, autocommit=True) as conn:
        conn.execute(sql.SQL("ANALYZE {}").format(sql.SQL(", ").join(copies)))
    seconds = time.perf_counter() - began
    server_cpu, other_cpu = sampler.stop()
    wal = _since(wal, target)
    with db.connect(target, autocommit=True) as conn:
        copied = {t: conn.execute(sql.SQL("SELECT count(*) FROM {}").format(c)).fetchone()[0]
                  for t, c in zip(sample.LOAD_ORDER, copies)}
    if copied != rows:
        raise SystemExit(f"the raw write copied {copied}, not the seed's {rows}")
    return Measurement(students, RAW_METHOD, copied, seconds, server_cpu, other_cpu, wal)


def machine(base: db.Target) -> list[tuple[str, str]]:
    """What the figures were measured on."""
    with db.connect(base, autocommit=True) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        settings = ", ".join(f"{name}={conn.execute(sql.SQL('SHOW {}').format(sql.Identifier(name))).fetchone()[0]}"
                             for name in ("shared_buffers", "max_wal_size", "maintenance_work_mem",
                                          "max_parallel_maintenance_workers", "synchronous_commit"))
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return [("cpus", f"{os.cpu_count()} × {cpu}"), ("memory", f"{psutil.virtual_memory().total / 2**30:.0f} GiB"),
            ("system", platform.platform()), ("python", platform.python_version()), ("psycopg", psycopg.__version__),
            ("postgresql", f"{version} ({'embedded' if base.embedded else 'DATABASE_URL'})"), ("server settings", settings),
            ("load average before", " ".join(f"{x:.2f}" for x in os.getloadavg()))]


def _figure(value: float | None, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


def report(results: list[Measurement]) -> str:
    """Per size, the fastest run of each method (speed against the raw write's, CPU, WAL, memory); then
    every run's ratio, and the row counts."""
    lines = []
    for students in sorted({m.students for m in results}):
        runs = [m for m in results if m.students == students]
        best = {}
        for m in runs:
            if m.method not in best or m.seconds < best[m.method].seconds:
                best[m.method] = m
        raw = best[RAW_METHOD]
        repeats = len(runs) // len(best)
        lines.append(tabulate(
            [(m.method, m.seconds, round(m.rows_per_second), f"{m.rows_per_second / raw.rows_per_second:.2f}×",
              _figure(m.server_cpu, ".1f"), _figure(m.other_cpu, ".1f"), f"{m.wal[0]:.2f}", m.wal[1],
              _figure(m.peak_rss_mb, ",.0f"), _figure(m.main_maxrss_mb, ",.0f"), _figure(m.worker_maxrss_mb, ",.0f"))
             for m in best.values()],
            headers=(f"{students:,} students, {runs[0].total_rows:,} rows" + (f", best of {repeats}" if repeats > 1 else ""),
                     "s", "rows/s", "× raw write", "server CPU s", "other CPU s", "WAL GiB", "checkpoints",
                     "peak RSS MiB", "main maxrss", "worker maxrss"),
            floatfmt=".1f", intfmt=",", tablefmt="github"))
        lines.append("")
        raws = [m for m in runs if m.method == RAW_METHOD]
        for method in (m for m in best if m != RAW_METHOD):
            ratios = [m.rows_per_second / r.rows_per_second for m, r in zip((m for m in runs if m.method == method), raws)]
            lines.append(f"{method}, each run against its round's raw write: {', '.join(f'{x:.2f}×' for x in ratios)}")
        lines.append("")
    sizes = sorted({m.students for m in results})
    rows = {m.students: m.rows for m in results}
    lines.append(tabulate([(t, *(rows[s][t] for s in sizes)) for t in sample.LOAD_ORDER],
                          headers=("rows per table", *(f"{s:,} students" for s in sizes)), intfmt=",", tablefmt="github"))
    return "\n".join(lines)


def _progress(m: Measurement) -> str:
    server = "" if m.server_cpu is None else f", server {m.server_cpu:.1f} CPU-s, other {m.other_cpu:.1f} CPU-s"
    memory = "" if m.peak_rss_mb is None else f", peak RSS {m.peak_rss_mb:,.0f} MiB"
    return f"  {m.method:<55} {m.seconds:7.1f} s {m.rows_per_second:>9,.0f} rows/s{server}{memory}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=200_000, help="the larger size; the smaller is a quarter")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=1, help="rounds of every step per size; the fastest is reported")
    parser.add_argument("--before", type=Path, help="a source tree whose seed to measure alongside (its prep_ops/)")
    args = parser.parse_args(argv)
    if not 4 <= args.students <= seeding.MAX_STUDENTS:
        parser.error(f"--students must be between 4 and {seeding.MAX_STUDENTS:,}")
    if args.before and not (args.before / "prep_ops" / "seed.py").is_file():
        parser.error(f"--before {args.before}: no prep_ops/seed.py there")
    base = db.resolve_target()
    server = postmaster(base)
    print(tabulate(machine(base), tablefmt="plain"), flush=True)
    results = []
    for students in (args.students // 4, args.students):
        print(f"{students:,} students:", flush=True)
        for _ in range(args.repeat):
            if args.before:
                with scratch_database(base, "prep_ops_bench_seed_before") as target:
                    results.append(measure_seed(target, students, args.seed, server, f"seed before ({args.before})",
                                                args.before.resolve()))
                print(_progress(results[-1]), flush=True)
            with scratch_database(base, "prep_ops_bench_seed") as target:
                results.append(measure_seed(target, students, args.seed, server, "prep_ops.seed"))
                print(_progress(results[-1]), flush=True)
                if args.before and results[-2].rows != results[-1].rows:
                    raise SystemExit(f"the seed before loaded {results[-2].rows}, this one {results[-1].rows}")
                results.append(measure_raw_write(target, students, results[-1].rows, server))
                print(_progress(results[-1]), flush=True)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print(report(results))


if __name__ == "__main__":
    sys.exit(main())
