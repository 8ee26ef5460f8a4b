"""How long the health check takes on a large database: `prep_ops.health.run_checks` and `prep-ops health`.

    PREP_OPS_DATA_DIR=/work/pg-bench python benchmarks/health.py [--database prep_ops_bench_backup] [--repeat 5]

Run it while benchmarks/backup.py --keep has left its 1,000,000-student database in place. Times
`run_checks(target)` in this process (after one warm-up call) and the `prep-ops health` command
as a user runs it (a new process: interpreter start, imports, connection, checks), each --repeat
times, and `prep-ops --help` as the start-up floor of the command. Issue 4's target: the whole
check well under a second at 1,000,000 students (catalog and statistics views only, no table scans).
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

from prep_ops import db, health


def timed(run, repeat: int) -> list[float]:
    seconds = []
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - began)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="prep_ops_bench_backup", help="database on the target's server")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    target = db.resolve_target().with_database(args.database)
    with db.connect(target) as conn:
        students = conn.execute("SELECT count(*) FROM students").fetchone()[0]
        size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
        version = conn.execute("SHOW server_version").fetchone()[0]
    env = {**os.environ, "DATABASE_URL": target.url}

    def command(*argv: str) -> None:
        done = subprocess.run([sys.executable, "-m", "prep_ops", *argv], env=env, capture_output=True, text=True)
        if done.returncode not in (0, 2):  # 2: a critical check, still a complete run
            raise SystemExit(done.stderr.strip())

    with db.connect(target, autocommit=True) as conn:  # a notebook's one connection, shared by every run
        checks = health.run_checks(conn)  # warm-up: imports, the connection's catalog caches
        in_process = timed(lambda: health.run_checks(conn), args.repeat)
    cli = timed(lambda: command("health"), args.repeat)
    startup = timed(lambda: command("--help"), args.repeat)
    print(f"PostgreSQL {version}, {args.database}: {students:,} students, {size}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; {time.strftime('%Y-%m-%d %H:%M')}\n")
    print("| what | median s | runs |\n|---|--:|---|")
    for name, runs in (("`health.run_checks(conn)`, in process", in_process),
                       ("`prep-ops health` (new process)", cli), ("`prep-ops --help` (start-up floor)", startup)):
        print(f"| {name} | {statistics.median(runs):.3f} | {', '.join(f'{x:.3f}' for x in runs)} |")
    print("\nstatuses: " + ", ".join(f"{c.name} {c.status}" for c in checks))


if __name__ == "__main__":
    main()
