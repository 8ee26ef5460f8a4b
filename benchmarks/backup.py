"""Backup and verification at scale, measured side by side in one run.

    python benchmarks/backup.py --students 1000000

On a scratch database with the sample data (prep_ops_bench_backup), measures:
  1. bare:   pg_dump -Fc, then pg_restore into an empty scratch database (the floor);
  2. ours:   prep_ops backup (custom format, manifest with checksums) + verify (hash check,
             restore into a scratch database, schema and checksum comparison);
  3. the content-checksum step alone against a count(*) scan of the same tables;
and the peak memory (RSS) of this Python process, which must not grow with the data.
Targets: 2 ≤ 1.5 × 1; checksums ≤ 3 × count(*).
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from psycopg import sql

from prep_ops import backup, db, migrate, scratch, verify


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=1_000_000)
    args = parser.parse_args()
    server = db.resolve_target()
    began = time.perf_counter()
    source = scratch.recreate(server, "prep_ops_bench_backup")
    migrate.apply(source)
    # seeded by another process, so this process's peak memory is that of backup and verify alone
    subprocess.run([sys.executable, "-m", "prep_ops", "seed", "--students", str(args.students)], check=True,
                   env={**os.environ, "DATABASE_URL": source.url}, stdout=subprocess.DEVNULL)
    print(f"sample database: {args.students:,} students in {time.perf_counter() - began:.0f} s")

    with tempfile.TemporaryDirectory() as tmp, db.connect(source) as conn:
        tables = backup.tables(conn)
        total_rows = sum(conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(s, t))).fetchone()[0]
                         for s, t in tables)
        conn.rollback()
        major = db.server_version(conn)
        url, env = backup.libpq_env(source)
        dump_file = Path(tmp) / "bare.dump"

        t0 = time.perf_counter()
        subprocess.run([str(db.client_program("pg_dump", source, major)), "-Fc", "-f", str(dump_file), "-d", url],
                       check=True, env=env)
        t1 = time.perf_counter()
        target = scratch.recreate(server, "prep_ops_bench_restore")
        t_url, t_env = backup.libpq_env(target)
        subprocess.run([str(db.client_program("pg_restore", target, major)), "--no-owner", "-d", t_url, str(dump_file)],
                       check=True, env=t_env)
        t2 = time.perf_counter()
        scratch.drop(server, "prep_ops_bench_restore")
        bare_dump, bare_restore = t1 - t0, t2 - t1

        t3 = time.perf_counter()
        made = backup.backup(source, "full", "custom", directory=Path(tmp))
        t4 = time.perf_counter()
        result = verify.verify(made.path)
        t5 = time.perf_counter()
        assert result.ok, result.failures
        ours_backup, ours_verify = t4 - t3, t5 - t4

        t6 = time.perf_counter()
        for s, t in tables:
            conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(s, t))).fetchone()
        t7 = time.perf_counter()
        backup.table_checksums(conn)
        t8 = time.perf_counter()
        conn.rollback()
    scratch.drop(server, "prep_ops_bench_backup")
    count_s, checksum_s = t7 - t6, t8 - t7
    bare, ours = bare_dump + bare_restore, ours_backup + ours_verify
    print(f"\nPostgreSQL {major}, {args.students:,} students, {total_rows:,} rows in {len(tables)} tables, "
          f"dump {made.manifest['bytes'] / 1e6:.0f} MB\n")
    print("| step | seconds |\n|---|---:|")
    print(f"| bare pg_dump -Fc | {bare_dump:.1f} |\n| bare pg_restore | {bare_restore:.1f} |")
    print(f"| **bare dump + restore** | **{bare:.1f}** |")
    print(f"| prep-ops backup (dump + manifest + checksums) | {ours_backup:.1f} |")
    print(f"| prep-ops verify (hashes + restore + compare) | {ours_verify:.1f} |")
    print(f"| **backup + verify** | **{ours:.1f}** ({ours / bare:.2f}× bare; target ≤ 1.5×) |")
    print(f"| count(*) of every table | {count_s:.2f} |")
    print(f"| content checksums of every table | {checksum_s:.2f} ({checksum_s / count_s:.2f}× count; target ≤ 3×) |")
    print(f"\npeak RSS of this process (backup and verify): {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
