"""Backup and verification at scale, measured side by side in one run.

    PREP_OPS_DATA_DIR=/work/pg-bench python benchmarks/backup.py --students 1000000 [--keep]

For a quarter of --students and for --students, on a scratch database with the sample data
(prep_ops_bench_backup), after a warm-up (a count(*) of every table, which sets the hint bits the
seed left unset, and a CHECKPOINT), one child process per size measures, in this order:
  1. bare:   pg_dump -Fc, then pg_restore --jobs 2 into an empty scratch database (the floor);
  2. ours:   prep_ops backup (custom format at the compression backup.compression picks, manifest
             with checksums) + verify (hash check, restore with 2 jobs into a scratch database on the
             verification cluster, schema and checksum comparison); the verification cluster is
             stopped and started again before (its start, or its initdb on first use, is timed apart:
             like the embedded server it stays running between verifications);
  3. in a REPEATABLE READ READ ONLY transaction that has exported its snapshot (as the backup's),
     alternating for --rounds rounds: count(*) of every table on one connection (what the target is
     measured against) and on one connection per CPU importing the snapshot (checksums.each_table:
     what the concurrency alone is worth); the content checksums as backup and verify take them
     (column-hash-v4, one connection per CPU; v2 where no table inherits and none has a float or interval column, the same sums) and on one connection (before); column-hash-v1 and the
     old row-text on one connection; and a count of every table's last column (which deforms every
     row: the floor of any hash).
The child's peak RSS (getrusage) is that of the prep_ops process doing backup and verify; the
seeding runs in a process of its own. For every step, psutil gives the CPU seconds of the servers
(postmaster, its live children and its reaped ones: the embedded server's and, once started, the
verification cluster's), of this process and its children (pg_dump,
pg_restore), and of everything else on the machine ("other": work of other people on the cores,
steal included); each mark waits 0.5 s first, so that exited backends are reaped and counted.
Targets: backup + verify ≤ 0.8 × bare dump + restore (the bare side durable, at pg_dump's default
compression, restored into a database of the embedded server); checksums ≤ 3 × count(*) at every size;
peak RSS flat.
With --keep the larger database stays for benchmarks/health.py; drop it with --drop.
"""

import argparse
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from psycopg import sql
from tabulate import tabulate

from prep_ops import backup, checksums, db, migrate, objects, scratch, verify, verify_cluster

DATABASE = "prep_ops_bench_backup"
COUNT = "count(*)"  # of every table, on one connection: what the checksums' target is measured against
OURS = "column-hash-v4 as backup and verify take it"  # on one connection per CPU
MIB = 2**20


class Clock:
    """Wall time and CPU seconds (server, this process tree, everything else) between marks."""

    SETTLE = 0.5  # seconds for the postmaster to reap exited backends: until then their CPU shows nowhere

    def __init__(self, postmaster: psutil.Process | None):
        self.postmasters: dict[psutil.Process, float] = {}  # each server's CPU counted from when it was watched
        if postmaster is not None:
            self.watch(postmaster)
        self.steps: dict[str, dict] = {}
        self.cpu = self._cpu()
        self.began = time.perf_counter()

    def watch(self, postmaster: psutil.Process) -> None:
        """Count `postmaster`'s CPU (the verification cluster's) as server CPU from now on."""
        self.postmasters[postmaster] = self._tree(postmaster)

    @staticmethod
    def _tree(postmaster: psutil.Process) -> float:
        total = sum(postmaster.cpu_times()[:4])  # user, system, reaped children's user and system
        for child in postmaster.children():
            try:
                total += sum(child.cpu_times()[:2])
            except psutil.Error:
                pass
        return total

    def _server_cpu(self) -> float:
        return sum(self._tree(p) - since for p, since in self.postmasters.items())

    def _cpu(self) -> tuple[float, float, float]:
        machine = psutil.cpu_times()  # busy includes steal: the hypervisor running someone else
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        ours = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
        busy = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
        return self._server_cpu(), ours, busy

    def mark(self, step: str) -> dict:
        wall = time.perf_counter() - self.began
        time.sleep(self.SETTLE)  # counted in no step's wall time
        now = self._cpu()
        server, ours, busy = (b - a for a, b in zip(self.cpu, now))
        self.cpu, self.began = now, time.perf_counter()
        self.steps[step] = {"s": wall, "server CPU s": server, "our CPU s": ours,
                            "other CPU s": max(0.0, busy - server - ours)}
        return self.steps[step]


def _postmaster(target: db.Target) -> psutil.Process | None:
    with db.connect(target, autocommit=True) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        try:  # while the backend lives
            return psutil.Process(backend).parent()
        except psutil.Error:  # a server on another machine: no server CPU figures
            return None


def _last_columns(conn, tables) -> None:
    for s, t in tables:
        last = conn.execute("SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                            "AND NOT attisdropped ORDER BY attnum DESC LIMIT 1",
                            (sql.Identifier(s, t).as_string(conn),)).fetchone()[0]
        conn.execute(sql.SQL("SELECT count(*), count({}) FROM {}").format(sql.Identifier(last), sql.Identifier(s, t))).fetchone()


def _workers(conn, table: tuple[str, str]) -> str:
    """Workers planned/launched for the checksum of `table`, from EXPLAIN ANALYZE in this transaction."""
    columns = checksums.hash_columns(conn)[table]
    query = sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) SELECT count(*), sum({}) FROM {} AS t").format(
        checksums.row_hash(columns), sql.Identifier(*table))
    plan = conn.execute(query).fetchone()[0][0]["Plan"]
    while plan.get("Plans") and "Workers Planned" not in plan:
        plan = plan["Plans"][0]
    return f"{plan.get('Workers Launched', 0)} of {plan.get('Workers Planned', 0)} workers launched"


def measure(source: db.Target, server: db.Target, rounds: int, out) -> None:
    """Everything for one size, in this (child) process; sends the figures to the parent."""
    verify_cluster.stop()  # started again below, timed: as the first verification after a reboot finds it
    clock = Clock(_postmaster(source))
    baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp, db.connect(source) as conn:
        tables = objects.tables(conn)
        rows = sum(conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(s, t))).fetchone()[0]
                   for s, t in tables)
        major = db.server_version(conn)
        conn.rollback()
        url, env = backup.libpq_env(source)
        dump_file = Path(tmp) / "bare.dump"
        clock.mark("setup")

        subprocess.run([str(db.client_program("pg_dump", source, major)), "-Fc", "-f", str(dump_file), "-d", url],
                       check=True, env=env)
        clock.mark("bare pg_dump -Fc")
        target = scratch.recreate(server, "prep_ops_bench_restore")
        t_url, t_env = backup.libpq_env(target)
        subprocess.run([str(db.client_program("pg_restore", target, major)), "--no-owner", "--jobs", "2",
                        "-d", t_url, str(dump_file)], check=True, env=t_env)
        clock.mark("bare pg_restore --jobs 2")
        scratch.drop(server, "prep_ops_bench_restore")
        bare_bytes = dump_file.stat().st_size
        dump_file.unlink()
        clock.mark("cleanup")

        verify_cluster.start()
        clock.mark("verification cluster start")
        clock.watch(psutil.Process(verify_cluster.status().pid))  # where verify restores: its CPU is server CPU
        made = backup.backup(source, "full", "custom", directory=Path(tmp))
        clock.mark("prep-ops backup")
        result = verify.verify(made.path)
        clock.mark("prep-ops verify")
        assert result.ok, result.failures.to_string()
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        jobs, load_before = os.cpu_count(), os.getloadavg()[0]
        counts = {(s, t): sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(s, t)) for s, t in tables}
        conn.autocommit = True
        with db.snapshot(conn):  # the backup's kind of transaction
            conn.execute("SELECT pg_export_snapshot()")
            runs = {COUNT: lambda: checksums.each_table(conn, counts),
                    f"count(*), {jobs} connections": lambda: checksums.each_table(conn, counts, target=source),
                    OURS: lambda: checksums.table_checksums(conn, checksums.COLUMN_HASH, target=source),
                    "column-hash-v4, one connection (before)": lambda: checksums.table_checksums(conn),
                    "column-hash-v1, one connection": lambda: checksums.table_checksums(conn, checksums.COLUMN_HASH_V1),
                    "count of the last column (deforms every row)": lambda: _last_columns(conn, tables),
                    "row-text, one connection": lambda: checksums.table_checksums(conn, checksums.ROW_TEXT)}
            assert runs[OURS]() == checksums.table_checksums(conn) == made.manifest["tables"]  # the same sums
            times: dict[str, list[float]] = {name: [] for name in runs}
            for _ in range(rounds):
                for name, run in runs.items():
                    began = time.perf_counter()
                    run()
                    times[name].append(time.perf_counter() - began)
            load = (load_before, os.getloadavg()[0])
            largest = max(tables, key=lambda t: made.manifest["tables"][f"{t[0]}.{t[1]}"]["rows"])
            workers = _workers(conn, largest)
        clock.mark("checksum rounds")
    out.send({"rows": rows, "tables": len(tables), "major": major, "dump_bytes": made.manifest["bytes"],
              "compression": made.manifest["compression"], "bare_bytes": bare_bytes,
              "steps": clock.steps, "times": times, "load": load, "workers": f"{largest[1]}: {workers}",
              "baseline_rss": baseline_rss, "peak_rss": peak_rss})


def seed_database(server: db.Target, students: int) -> tuple[db.Target, float]:
    """prep_ops_bench_backup, migrated and seeded by another process, warmed up; and the seconds it took."""
    began = time.perf_counter()
    source = scratch.recreate(server, DATABASE)
    with db.connect(source, autocommit=True) as conn:
        migrate.apply(conn, confirm=True)  # the benchmark's own database, which it just made
    # --confirm: the benchmark's own database, which it just made
    subprocess.run([sys.executable, "-m", "prep_ops", "seed", "--students", str(students), "--confirm"], check=True,
                   env={**os.environ, "DATABASE_URL": source.url}, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - began
    with db.connect(source, autocommit=True) as conn:
        for s, t in objects.tables(conn):
            conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(s, t)))
        conn.execute("CHECKPOINT")
    return source, seconds


def report(students: int, seeded_s: float, m: dict) -> str:
    steps, times = m["steps"], m["times"]
    bare = steps["bare pg_dump -Fc"]["s"] + steps["bare pg_restore --jobs 2"]["s"]
    ours = steps["prep-ops backup"]["s"] + steps["prep-ops verify"]["s"]
    cold = steps["verification cluster start"]["s"]
    count = statistics.median(times[COUNT])
    lines = [f"### {students:,} students: {m['rows']:,} rows in {m['tables']} tables, PostgreSQL {m['major']}, "
             f"bare dump {m['bare_bytes'] / MIB:,.0f} MiB (pg_dump's default), prep-ops' {m['dump_bytes'] / MIB:,.0f} MiB "
             f"({m['compression']}) (seeded in {seeded_s:.0f} s)", ""]
    shown = ["bare pg_dump -Fc", "bare pg_restore --jobs 2", "verification cluster start", "prep-ops backup",
             "prep-ops verify"]
    lines.append(tabulate([(k, *(f"{v:.1f}" for v in steps[k].values())) for k in shown]
                          + [("**bare dump + restore**", f"**{bare:.1f}**", "", "", ""),
                             ("**backup + verify**", f"**{ours:.1f}**", "", "", ""),
                             ("ratio (target ≤ 0.8×)", f"**{ours / bare:.2f}×**", "", "", ""),
                             ("ratio with the cluster's start", f"{(ours + cold) / bare:.2f}×", "", "", "")],
                          headers=("step", "s", "server CPU s", "our CPU s", "other CPU s"),
                          tablefmt="github", disable_numparse=True, colalign=("left", "right", "right", "right", "right")))
    lines.append("")
    rows = [(name, f"{statistics.median(v):.2f}", f"{statistics.median(v) / count:.2f}×", ", ".join(f"{x:.2f}" for x in v))
            for name, v in times.items()]
    lines.append(tabulate(rows, headers=(f"every table, median of {len(times[COUNT])}", "s", "× count(*)", "runs"),
                          tablefmt="github", disable_numparse=True, colalign=("left", "right", "right", "left")))
    ours_x = statistics.median(times[OURS]) / count
    paired = statistics.median(o / c for o, c in zip(times[OURS], times[COUNT]))
    concurrent = next(v for k, v in times.items() if k.startswith(f"{COUNT}, "))
    lines.append(f"\n**checksums as backup and verify take them: {ours_x:.2f}× count(*) (target ≤ 3×: "
                 f"{'met' if ours_x <= 3 else 'not met'})**; median of the rounds' own ratios {paired:.2f}×; "
                 f"{statistics.median(times[OURS]) / statistics.median(concurrent):.2f}× count(*) run the same concurrent way")
    lines.append(f"checksum rounds: load average {m['load'][0]:.1f} before, {m['load'][1]:.1f} after; "
                 f"{steps['checksum rounds']['other CPU s']:.1f} other CPU-s in "
                 f"{steps['checksum rounds']['s']:.1f} s; parallel: {m['workers']}")
    lines.append(f"peak RSS of the prep_ops process: {m['peak_rss']:.0f} MiB (after imports: {m['baseline_rss']:.0f} MiB)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=1_000_000, help="the larger size; the smaller is a quarter")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of count(*) and checksums")
    parser.add_argument("--keep", action="store_true", help=f"keep {DATABASE} (the larger) for benchmarks/health.py")
    parser.add_argument("--drop", action="store_true", help=f"only drop {DATABASE}")
    args = parser.parse_args()
    server = db.resolve_target()
    if args.drop:
        scratch.drop(server, DATABASE)
        return
    print(f"cpus {os.cpu_count()}, load average before {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
          f"started {time.strftime('%Y-%m-%d %H:%M:%S')}", flush=True)
    context = multiprocessing.get_context("spawn")
    for students in (args.students // 4, args.students):
        source, seeded_s = seed_database(server, students)
        receive, send = context.Pipe(duplex=False)
        child = context.Process(target=measure, args=(source, server, args.rounds, send))
        child.start()
        send.close()
        try:
            figures = receive.recv()
        except EOFError:
            raise SystemExit(f"the measurement failed (exit code {child.join() or child.exitcode})") from None
        child.join()
        print(report(students, seeded_s, figures) + "\n", flush=True)
    if not args.keep:
        scratch.drop(server, DATABASE)
    print(f"load average after {' '.join(f'{x:.2f}' for x in os.getloadavg())}, finished {time.strftime('%Y-%m-%d %H:%M:%S')}")


if __name__ == "__main__":
    main()
