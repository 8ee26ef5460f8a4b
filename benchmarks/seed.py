"""How fast `prep_ops.seed` loads next to the server-side ceiling, and how much memory it takes.

For each size (a quarter of `--students`, then `--students`), in one run, each load into a
freshly migrated scratch database (CHECKPOINT first, so no run pays for the last one's WAL):
1. `prep_ops.seed.seed`, in a child process of its own, so that its peak memory is this run's;
2. the ceiling, ceiling_staff.sql + ceiling_students.sql (INSERT ... SELECT ... FROM
   generate_series): the same tables and constraints, the same row count per table, one
   transaction, with the students in one statement per table ("per table") and in the seed's
   chunks ("per chunk"). The faster of the two is the ceiling the seed is compared with.
Every timing covers the load, the commit and the ANALYZE that seed() runs after it.

While a load runs, a sampler thread reads (with psutil, every SAMPLE_SECONDS) the CPU time of
the embedded server's processes, and the resident memory of the seeding process and its
workers; the seeding process also reports `resource.getrusage` peaks.

Run:  PREP_OPS_DATA_DIR=/work/bench-pgdata python benchmarks/seed.py [--students 1000000]
"""

import argparse
import multiprocessing
import os
import platform
import resource
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

HERE = Path(__file__).resolve().parent
STATUSES = ("enrolled", "waitlisted", "dropped", "completed")
SAMPLE_SECONDS = 0.25
MIB = 2**20


@dataclass
class Measurement:
    students: int
    method: str
    rows: dict[str, int]
    seconds: float
    server_cpu: float | None = None       # CPU seconds of all server processes during the load
    peak_rss_mb: float | None = None      # the seeding process and its workers together, sampled
    main_maxrss_mb: float | None = None   # getrusage: the seeding process
    worker_maxrss_mb: float | None = None  # getrusage: its largest child (includes the RSS it forked from)
    other_cpu: float | None = None        # CPU seconds the machine spent on anything else meanwhile
    wal: tuple[float, int, int] | None = None  # WAL written meanwhile: GiB, full-page images, checkpoints

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def rows_per_second(self) -> float:
        return self.total_rows / self.seconds


class Sampler(threading.Thread):
    """CPU seconds of the server's processes and peak RSS of a process tree, sampled until stopped."""

    def __init__(self, postmaster: psutil.Process | None, root: int | None = None):
        super().__init__(daemon=True)
        self.postmaster, self.root = postmaster, root
        self.cpu_first: dict[int, float] = {}
        self.cpu_last: dict[int, float] = {}
        self.peak_rss = 0
        self.done = threading.Event()
        self.busy_before, self.own_before = _machine_busy(), _own_cpu()
        self._before = True
        self._sample()  # the server's processes as they are before the load
        self._before = False

    def _sample(self) -> None:
        if self.postmaster is not None:
            for proc in self.postmaster.children():
                try:
                    times = proc.cpu_times()
                except psutil.Error:
                    continue
                self.cpu_first.setdefault(proc.pid, times.user + times.system if self._before else 0.0)
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
        """Stop; the server's CPU seconds since the start, and the machine's CPU seconds spent on
        anything but the server, this process and `client_cpu` (None when the server is not local)."""
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


def wal_counters(target: db.Target) -> tuple[float, int, int]:
    """The server's WAL written so far (GiB), full-page images in it, and checkpoints."""
    with db.connect(target, autocommit=True) as conn:
        wal_bytes, fpi = conn.execute("SELECT wal_bytes, wal_fpi FROM pg_stat_wal").fetchone()
        if db.server_version(conn) >= 17:
            checkpoints = conn.execute("SELECT num_timed + num_requested FROM pg_stat_checkpointer").fetchone()[0]
        else:
            checkpoints = conn.execute("SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter").fetchone()[0]
    return float(wal_bytes) / 2**30, fpi, checkpoints


def _since(before: tuple[float, int, int], target: db.Target) -> tuple[float, int, int]:
    return tuple(after - first for after, first in zip(wal_counters(target), before))


def postmaster(base: db.Target) -> psutil.Process | None:
    """The server's main process, when the server runs on this machine and we may read it."""
    with db.connect(base, autocommit=True) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        try:
            return psutil.Process(backend).parent() if base.embedded else None
        except psutil.Error:
            return None


@contextmanager
def scratch_database(server: db.Target, name: str):
    """A freshly migrated scratch database `name` on `server`, dropped afterwards."""
    target = scratch.recreate(server, name)
    try:
        with db.connect(target, autocommit=True) as conn:
            migrate.apply(conn, confirm=True)  # the benchmark's own database, which it just made
            conn.execute("CHECKPOINT")
        yield target
    finally:
        scratch.drop(server, name)


def _seed_child(target: db.Target, students: int, seed_value: int, out) -> None:
    began = time.perf_counter()
    result = seeding.seed(target, students, seed_value, replace=True)
    seconds = time.perf_counter() - began
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    workers = children.ru_maxrss * 1024 / MIB or None  # ru_maxrss is in KiB; 0: no worker ran
    out.send((result.rows, seconds, own.ru_maxrss * 1024 / MIB, workers, cpu))


def measure_seed(target: db.Target, students: int, seed_value: int, server: psutil.Process | None) -> Measurement:
    """seed() in a child process of its own, timed there; peaks and server CPU sampled from here."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_seed_child, args=(target, students, seed_value, send))
    wal = wal_counters(target)
    child.start()
    sampler = Sampler(server, child.pid)
    sampler.start()
    send.close()
    try:
        rows, seconds, own, workers, client_cpu = receive.recv()
    except EOFError:
        child.join()
        sampler.stop()
        raise SystemExit(f"seeding failed (exit code {child.exitcode})") from None
    child.join()
    server_cpu, other_cpu = sampler.stop(client_cpu)
    return Measurement(students, "prep_ops.seed", rows, seconds, server_cpu, sampler.peak_rss / MIB, own, workers,
                       other_cpu, _since(wal, target))


def _statements(path: Path) -> list[str]:
    """The statements of a .sql file whose statements end with ';' at a line end."""
    chunks = (chunk.strip() for chunk in path.read_text().split(";\n"))
    return [c for c in chunks if any(line.strip() and not line.lstrip().startswith("--") for line in c.splitlines())]


def measure_ceiling(target: db.Target, students: int, rows: dict[str, int], per_chunk: bool,
                    server: psutil.Process | None) -> Measurement:
    """The ceiling SQL filling `target` with `rows` rows per table, and the ANALYZE seed() runs."""
    plan = sample.Plan(students, 0)
    params = {
        "students": students, "teachers": plan.teachers,
        "enrollments": rows["enrollments"], "payments": rows["tuition_payments"],
        "first_names": list(sample.FIRST), "last_names": list(sample.LAST), "domains": list(sample.DOMAINS),
        "instruments": list(sample.INSTRUMENTS), "levels": list(sample.LEVELS), "terms": list(sample.TERMS),
        "statuses": list(STATUSES), "methods": list(sample.METHODS),
    }
    staff, per_range = _statements(HERE / "ceiling_staff.sql"), _statements(HERE / "ceiling_students.sql")
    ranges = plan.chunks() if per_chunk else [(1, students + 1)]
    tables = sql.SQL(", ").join(map(sql.Identifier, sample.LOAD_ORDER))
    wal = wal_counters(target)
    sampler = Sampler(server)
    sampler.start()
    began = time.perf_counter()
    with db.connect(target) as conn:
        for statement in staff:
            conn.execute(statement, params)
        for start, stop in ranges:
            for statement in per_range:
                conn.execute(statement, {**params, "first_id": start, "last_id": stop - 1})
        conn.commit()
    with db.connect(target, autocommit=True) as conn:
        conn.execute(sql.SQL("ANALYZE {}").format(tables))
    seconds = time.perf_counter() - began
    server_cpu, other_cpu = sampler.stop()
    wal = _since(wal, target)
    loaded = seeding.row_counts(target)
    if loaded != rows:
        raise SystemExit(f"the ceiling loaded {loaded}, not the seed's {rows}")
    method = f"ceiling, per {sample.CHUNK_STUDENTS:,}-student chunk" if per_chunk else "ceiling, per table"
    return Measurement(students, method, loaded, seconds, server_cpu, other_cpu=other_cpu, wal=wal)


def machine(base: db.Target) -> list[tuple[str, str]]:
    """What the figures were measured on."""
    with db.connect(base, autocommit=True) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        settings = ", ".join(f"{name}={conn.execute(sql.SQL('SHOW {}').format(sql.Identifier(name))).fetchone()[0]}"
                             for name in ("shared_buffers", "max_wal_size", "wal_level", "synchronous_commit"))
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return [("cpus", f"{os.cpu_count()} × {cpu}"), ("memory", f"{psutil.virtual_memory().total / 2**30:.0f} GiB"),
            ("system", platform.platform()), ("python", platform.python_version()), ("psycopg", psycopg.__version__),
            ("postgresql", f"{version} ({'embedded' if base.embedded else 'DATABASE_URL'})"), ("server settings", settings),
            ("load average before", " ".join(f"{x:.2f}" for x in os.getloadavg()))]


def _figure(value: float | None, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


def report(results: list[Measurement]) -> str:
    """The figures as tables, the fastest run of each method per size: speed, CPU and memory; then row counts."""
    lines = []
    for students in sorted({m.students for m in results}):
        runs = [m for m in results if m.students == students]
        best = {}
        for m in runs:
            if m.method not in best or m.seconds < best[m.method].seconds:
                best[m.method] = m
        ceiling = max((m for m in best.values() if m.method.startswith("ceiling")), key=lambda m: m.rows_per_second)
        repeats = len(runs) // len(best)
        lines.append(tabulate(
            [(m.method, m.seconds, round(m.rows_per_second), f"{m.rows_per_second / ceiling.rows_per_second:.0%}",
              _figure(m.server_cpu, ".1f"), _figure(m.server_cpu and m.server_cpu / m.seconds, ".0%"),
              _figure(m.other_cpu, ".1f"), f"{m.wal[0]:.1f}", f"{m.wal[1]:,}", m.wal[2],
              _figure(m.peak_rss_mb, ",.0f"), _figure(m.main_maxrss_mb, ",.0f"),
              _figure(m.worker_maxrss_mb, ",.0f")) for m in best.values()],
            headers=(f"{students:,} students, {runs[0].total_rows:,} rows" + (f", best of {repeats}" if repeats > 1 else ""),
                     "s", "rows/s", "of ceiling", "server CPU s", "server busy", "other CPU s",
                     "WAL GiB", "full pages", "checkpoints", "peak RSS MiB", "main maxrss", "worker maxrss"),
            floatfmt=".1f", intfmt=",", tablefmt="github"))
        lines.append("")
    sizes = sorted({m.students for m in results})
    rows = {m.students: m.rows for m in results}
    lines.append(tabulate([(t, *(rows[s][t] for s in sizes)) for t in sample.LOAD_ORDER],
                          headers=("rows per table", *(f"{s:,} students" for s in sizes)), intfmt=",", tablefmt="github"))
    return "\n".join(lines)


def _progress(m: Measurement) -> str:
    server = "" if m.server_cpu is None else f", server {m.server_cpu:.1f} CPU-s, other load {m.other_cpu:.1f} CPU-s"
    return (f"  {m.method:<36} {m.seconds:7.1f} s {m.rows_per_second:>9,.0f} rows/s{server}, "
            f"WAL {m.wal[0]:.1f} GiB, {m.wal[2]} checkpoints")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=1_000_000, help="the larger size; the smaller is a quarter")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each method per size; the fastest is reported")
    args = parser.parse_args(argv)
    if not 4 <= args.students <= seeding.MAX_STUDENTS:
        parser.error(f"--students must be between 4 and {seeding.MAX_STUDENTS:,}")
    base = db.resolve_target()
    server = postmaster(base)
    print(tabulate(machine(base), tablefmt="plain"), flush=True)
    results = []
    for students in (args.students // 4, args.students):
        print(f"{students:,} students:", flush=True)
        for _ in range(args.repeat):
            with scratch_database(base, "prep_ops_bench_seed") as target:
                seeded = measure_seed(target, students, args.seed, server)
            results.append(seeded)
            print(_progress(seeded), flush=True)
            for per_chunk in (False, True):
                with scratch_database(base, "prep_ops_bench_ceiling") as target:
                    results.append(measure_ceiling(target, students, seeded.rows, per_chunk, server))
                print(_progress(results[-1]), flush=True)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print(report(results))


if __name__ == "__main__":
    sys.exit(main())
