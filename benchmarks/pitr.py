"""Point-in-time recovery at scale: base backups, recover --to and the recovery point, side by side.

    python benchmarks/pitr.py --students 250000 1000000 [--rounds 2] [--kills 6] [--stream]

For each size, in a private cluster of the embedded binaries (its own folder, socket, WAL archive and
backups folder; archiving with prep-ops' own archive_wal.py, archive_timeout = 1 s, fsync on), database
`app` migrated and seeded by `prep-ops seed` (another process), then warmed up (count(*), CHECKPOINT):
  1. backups, --rounds alternating rounds: `base_backup.take` (pg_basebackup -Ft gzip:1, -X stream,
     manifest with hashes) against bare `pg_dump -Fc -f FILE app` (pg_dump's default compression);
  2. recovery: a base backup, work after it (INSERTs of students/2 rows into a table of its own), a
     moment T, as much work after T, the WAL archived; then --rounds alternating rounds of
     `pitr.recover(to_time=T)` (extract in Python, replay into a private cluster, promote, the copy of
     `app` into a new database on the source: recovery_copy's pg_dump -Fd --jobs into the cluster's
     folder, then pg_restore --jobs; cluster removed) against the hand-run
     restore of the same base backup: `tar -xzf` of base.tar.gz and pg_wal.tar.gz, recovery.signal,
     restore_command = cp from the archive, recovery_target_time = T, promote, pg_ctl start, timed until
     pg_is_in_recovery() is false. Both clusters get the same settings (fsync off, archive_mode off, a
     socket of their own). recover's phases (extraction, until promoted, the copy) are timed inside it,
     the replay from the server log; the hand-run then makes, timed apart, the same copy by hand (pg_dump
     -Fd --jobs N -Z 0 --no-sync into a folder, pg_restore --jobs N into a new database on the source, N =
     recovery_copy.JOBS): the whole of what recover does; and, in alternating order with it, the copy recover
     made before (pg_dump -Fc piped into a one-job pg_restore), the "before" of the copy in the same run;
  3. recovery point, --kills rounds: a fresh base backup, then per round a steady insert load (one
     client, one row per transaction, each commit acknowledged with synchronous_commit on and timed by
     the client) killed after a random 4-12 s with `pg_ctl stop -m immediate`; the newest base backup
     is recovered to the end of the archived WAL (recovery_cluster.recovered, no target) and the newest
     row there is compared with the newest acknowledged commit: committed work lost = the client's ack
     time of the last acknowledged commit minus that of the last recovered one. After every start the
     server is sent a reload: until its checkpointer first wakes, archive_timeout is not applied
     (benchmarks/README.md). --kills 0 leaves this part out. --stream: this part only, its kills
     alternating between pg_receivewal streaming into the archive (--synchronous, no slot, as
     `archive on --stream` runs it; started before the load, stopped after the kill) and archive_timeout
     = 1 s alone (the streamed `.partial` files removed first); the recovery takes a `.partial` where its
     segment is missing (recovery_cluster's restore_command).
Prints Markdown tables. Everything it made is removed at the end (--keep-folder leaves it).
"""

import argparse
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
from psycopg import sql
from tabulate import tabulate

ROOT = Path(tempfile.mkdtemp(prefix="prep-ops-bench-pitr-", dir=os.environ.get("BENCH_TMP")))
os.environ.update(PREP_OPS_WAL_DIR=str(ROOT / "wal"), PREP_OPS_BACKUP_DIR=str(ROOT / "backups"),
                  PREP_OPS_DATA_DIR=str(ROOT / "embedded" / "pg18"))  # recovery clusters go to ROOT/embedded/recovery
os.environ.pop("DATABASE_URL", None)

from prep_ops import (archiving, base_backup, embedded, migrate, pitr, recovery_cluster, recovery_copy,  # noqa: E402
                      wal_archive, wal_stream)
from prep_ops.db import Target, libpq_url  # noqa: E402
from prep_ops.recovery_cluster import hand_over, run_server_program  # noqa: E402

MIB = 2**20
BINS = embedded.bin_dir()


class Source:
    """The benchmark's archiving cluster."""

    def __init__(self, folder: Path):
        self.folder, self.data, self.sock = folder, folder / "data", folder / "sock"
        self.sock.mkdir(parents=True)
        hand_over(folder)
        run_server_program([BINS / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "--encoding=UTF8"])
        out = run_server_program([BINS / "pg_controldata", "-D", self.data]).stdout
        self.sysid = next(line.split(":")[1].strip() for line in out.splitlines()
                          if line.startswith("Database system identifier"))
        self.archive = wal_archive.archive_dir(self.sysid)
        self.archive.mkdir(parents=True)
        hand_over(wal_archive.root())
        python = archiving.interpreter(os.geteuid() == 0)
        settings = {"archive_mode": "on", "archive_command": archiving.command_line(self.archive, python),
                    "archive_timeout": "1s", "listen_addresses": "", "unix_socket_directories": str(self.sock),
                    "shared_buffers": "256MB", "max_wal_size": "2GB", "summarize_wal": "off"}
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("".join(f"{k} = '{v}'\n" for k, v in settings.items()))
        self.start()
        with self.connect("postgres") as conn:
            conn.execute("CREATE DATABASE app")
        self.target = Target(self.url(), False)

    def url(self, database: str = "app") -> str:
        return libpq_url({"user": "postgres", "dbname": database, "host": str(self.sock)})

    def connect(self, database: str = "app"):
        return psycopg.connect(self.url(database), autocommit=True)

    def start(self) -> None:
        run_server_program([BINS / "pg_ctl", "-D", self.data, "-l", self.folder / "log", "-w", "-t", "600", "start"])
        # The checkpointer computes its first sleep while the startup process still runs, when archive_timeout
        # does not count: it can sleep checkpoint_timeout (5 min) with archive_timeout never applied. A reload
        # wakes it (measured here: without it, no forced switch for the whole of a 5-12 s load after a start).
        with self.connect("postgres") as conn:
            conn.execute("SELECT pg_reload_conf()")

    def kill(self) -> None:
        run_server_program([BINS / "pg_ctl", "-D", self.data, "-m", "immediate", "stop"], check=False)


def seed(source: Source, students: int) -> float:
    began = time.perf_counter()
    with source.connect() as conn:
        migrate.apply(conn, confirm=True)  # the benchmark's own database, which it just made
    subprocess.run([sys.executable, "-m", "prep_ops", "seed", "--students", str(students), "--confirm"], check=True,
                   env={**os.environ, "DATABASE_URL": source.url()}, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - began
    with source.connect() as conn:
        for schema, table in conn.execute("SELECT schemaname, tablename FROM pg_tables "
                                          "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')").fetchall():
            conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table)))
        conn.execute("CHECKPOINT")
    return seconds


def timed(step) -> float:
    began = time.perf_counter()
    step()
    return time.perf_counter() - began


# --- 1. base backup against pg_dump -Fc ------------------------------------------------------------
def backups(source: Source, rounds: int) -> dict:
    times = {"base_backup.take (pg_basebackup)": [], "pg_dump -Fc": []}
    sizes = {}
    with source.connect() as conn:
        db_bytes = conn.execute("SELECT pg_database_size('app')").fetchone()[0]
        cluster_bytes = conn.execute("SELECT sum(pg_database_size(oid)) FROM pg_database").fetchone()[0]
        for r in range(rounds):
            def take():
                made = base_backup.take(conn, source.target)
                sizes["base"] = sum(f["bytes"] for f in made.manifest["files"].values())
                shutil.rmtree(made.path)

            def dump():
                file = ROOT / "app.dump"
                subprocess.run([BINS / "pg_dump", "-Fc", "-f", file, "-d", source.url()], check=True)
                sizes["dump"] = file.stat().st_size
                file.unlink()

            order = [("base_backup.take (pg_basebackup)", take), ("pg_dump -Fc", dump)]
            for name, step in order if r % 2 == 0 else reversed(order):
                times[name].append(timed(step))
    return {"times": times, "sizes": sizes, "db_bytes": db_bytes, "cluster_bytes": cluster_bytes}


# --- 2. recover --to against a hand-run restore -----------------------------------------------------
def work(conn, first: int, rows: int) -> None:
    for start in range(first, first + rows, 50_000):
        conn.execute("INSERT INTO pitr_bench_work SELECT g, clock_timestamp(), md5(g::text) || md5((g + 1)::text) "
                     "FROM generate_series(%s::bigint, %s::bigint) g", (start, min(start + 49_999, first + rows - 1)))


def hand_run(chain_backup, archive: Path, target_time: str, copy_into: "Source", pipe_first: bool) -> tuple:
    """What a DBA types: tar -xzf, recovery.signal, restore_command, pg_ctl start; seconds until promoted,
    of the extraction and of the replay; then, timed apart, the copy recover makes (pg_dump -Fd --jobs,
    pg_restore --jobs of `app` into a new database of `copy_into`) and the one it made before (pg_dump -Fc
    piped into pg_restore), `pipe_first` or not."""
    folder = ROOT / f"hand-{time.time_ns()}"
    data, sock = folder / "data", folder / "sock"
    began = time.perf_counter()
    data.mkdir(parents=True, mode=0o700)
    sock.mkdir()
    subprocess.run(["tar", "-xzf", chain_backup.path / "base.tar.gz", "-C", data], check=True)
    subprocess.run(["tar", "-xzf", chain_backup.path / "pg_wal.tar.gz", "-C", data / "pg_wal"], check=True)
    extracted = time.perf_counter() - began
    (data / "recovery.signal").touch()
    with (data / "postgresql.auto.conf").open("a") as conf:
        conf.write(f"restore_command = 'cp {archive}/%f %p'\nrecovery_target_time = '{target_time}'\n"
                   f"recovery_target_action = 'promote'\narchive_mode = 'off'\nlisten_addresses = ''\n"
                   f"unix_socket_directories = '{sock}'\nfsync = 'off'\nshared_buffers = '128MB'\n")
    owner = recovery_cluster.cluster_owner(archive)
    hand_over(folder, owner)
    run_server_program([BINS / "pg_ctl", "-D", data, "-l", folder / "log", "-W", "start"], owner=owner)
    url = libpq_url({"user": "postgres", "dbname": "postgres", "host": str(sock)})
    while True:
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
                if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    break
        except psycopg.OperationalError:
            pass
        time.sleep(0.2)
    seconds = time.perf_counter() - began
    copied, app = {}, libpq_url({"user": "postgres", "dbname": "app", "host": str(sock)})
    for how in ("pipe", "folder") if pipe_first else ("folder", "pipe"):
        began_copy = time.perf_counter()
        with psycopg.connect(copy_into.url("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE app_hand TEMPLATE template0")
        if how == "pipe":  # recover's copy before: one job, pg_dump's default compression
            dump = subprocess.Popen([BINS / "pg_dump", "-Fc", "-d", app], stdout=subprocess.PIPE)
            subprocess.run([BINS / "pg_restore", "--exit-on-error", "-d", copy_into.url("app_hand")], stdin=dump.stdout,
                           check=True)
            dump.stdout.close()
            assert dump.wait() == 0
        else:  # recover's copy now (recovery_copy)
            jobs, out = f"--jobs={recovery_copy.JOBS}", folder / "dump"
            subprocess.run([BINS / "pg_dump", "-Fd", jobs, "-Z", "0", "--no-sync", "-f", out, "-d", app], check=True)
            subprocess.run([BINS / "pg_restore", "--exit-on-error", jobs, "-d", copy_into.url("app_hand"), out], check=True)
            shutil.rmtree(out)
        copied[how] = time.perf_counter() - began_copy
        with psycopg.connect(copy_into.url("postgres"), autocommit=True) as conn:
            conn.execute("DROP DATABASE app_hand")
    run_server_program([BINS / "pg_ctl", "-D", data, "-m", "immediate", "stop"], owner=owner, check=False)
    replayed = redo_seconds(folder / "log")
    shutil.rmtree(folder)
    return seconds, extracted, replayed, copied["folder"], copied["pipe"]


def redo_seconds(log: Path) -> float:
    """The replay's own time, from the server log's "redo done ... elapsed: N s"."""
    found = re.search(r"redo done at .* elapsed: ([0-9.]+) s", log.read_text(errors="replace"))
    return float(found.group(1)) if found else float("nan")


def recoveries(source: Source, students: int, rounds: int) -> dict:
    phases = {"until promoted": [], "copy out": [], "extract": [], "hand extract": [], "replay": [], "hand replay": [],
              "hand copy": [], "hand pipe": []}
    original_wait, original_copy, original_unpack = recovery_cluster._wait, pitr._copy, recovery_cluster._unpack

    def unpack(*args, **kwargs):
        start = time.perf_counter()
        original_unpack(*args, **kwargs)
        phases["extract"].append(time.perf_counter() - start)

    def wait(cluster, *args, **kwargs):  # recovered() calls it after pg_ctl start: time from recover's start
        original_wait(cluster, *args, **kwargs)
        phases["until promoted"].append(time.perf_counter() - began[0])
        phases["replay"].append(redo_seconds(cluster.folder / "log"))

    def copy(*args, **kwargs):
        start = time.perf_counter()
        original_copy(*args, **kwargs)
        phases["copy out"].append(time.perf_counter() - start)

    began = [0.0]
    recovery_cluster._wait, pitr._copy, recovery_cluster._unpack = wait, copy, unpack
    times = {"prep-ops recover --to": [], "hand-run restore + replay, until promoted": []}
    try:
        with source.connect() as conn:
            conn.execute("CREATE TABLE pitr_bench_work (id bigint PRIMARY KEY, at timestamptz, body text)")
            made = base_backup.take(conn, source.target)
            start_lsn = made.manifest["start_lsn"]
            work(conn, 1, students // 2)
            moment = conn.execute("SELECT clock_timestamp()").fetchone()[0]
            t_lsn = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
            time.sleep(0.05)
            work(conn, students // 2 + 1, students // 2)
            pitr.archive_now(conn, source.archive)
            replay = conn.execute("SELECT pg_wal_lsn_diff(%s::pg_lsn, %s::pg_lsn)", (str(t_lsn), start_lsn)).fetchone()[0]
            for r in range(rounds):
                def ours():
                    began[0] = time.perf_counter()
                    pitr.recover(conn, source.target, to_time=moment, as_name="app_recovered", controlled=False)

                def theirs():
                    seconds, extracted, replayed, copied, piped = hand_run(made, source.archive, moment.isoformat(),
                                                                           source, pipe_first=r % 2 == 1)
                    times["hand-run restore + replay, until promoted"].append(seconds)
                    phases["hand extract"].append(extracted)
                    phases["hand replay"].append(replayed)
                    phases["hand copy"].append(copied)
                    phases["hand pipe"].append(piped)

                def ours_timed():
                    times["prep-ops recover --to"].append(timed(ours))
                    with source.connect("app_recovered") as copy_conn:  # as at T: the first half of the work
                        assert copy_conn.execute("SELECT count(*) FROM pitr_bench_work").fetchone()[0] == students // 2
                    conn.execute("DROP DATABASE app_recovered")

                for step in (ours_timed, theirs) if r % 2 == 0 else (theirs, ours_timed):
                    step()
    finally:
        recovery_cluster._wait, pitr._copy, recovery_cluster._unpack = original_wait, original_copy, original_unpack
    return {"times": times, "phases": phases, "replay_bytes": float(replay), "base": made.name}


# --- 3. the recovery point under a steady insert load ------------------------------------------------
def load(url: str, acks: list, stop: threading.Event) -> None:
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            while not stop.is_set():
                row_id = conn.execute("INSERT INTO pitr_bench_load (at) VALUES (clock_timestamp()) RETURNING id").fetchone()[0]
                acks.append((row_id, time.time()))  # acknowledged: committed (synchronous_commit on)
    except psycopg.Error:
        pass  # the kill


def receiver(source: Source) -> subprocess.Popen:
    """pg_receivewal streaming into the source's archive as `archive on --stream` runs it, once streaming."""
    command = wal_stream.command_line(source.archive, wal_stream.dsn_of(source.url("postgres")), BINS / "pg_receivewal")
    owner = recovery_cluster.cluster_owner(source.archive)
    ids = {"user": owner[0], "group": owner[1], "extra_groups": []} if owner else {}
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, **ids)
    with source.connect("postgres") as conn:
        assert wal_stream.wait_streaming(conn, 30), "pg_receivewal is not streaming"
    return child


def recovery_points(source: Source, kills: int, stream: bool = False) -> list[dict]:
    with source.connect() as conn:
        conn.execute("CREATE TABLE pitr_bench_load (id bigserial PRIMARY KEY, at timestamptz)")
        latest = base_backup.take(conn, source.target)
        pitr.archive_now(conn, source.archive)
    results = []
    for kill in range(kills):
        streaming = stream and kill % 2 == 0
        if streaming:
            streamer = receiver(source)
        else:
            for partial in source.archive.glob("*.partial"):  # an earlier round's: archive_timeout alone here
                partial.unlink()
        acks: list[tuple[int, float]] = []
        stop = threading.Event()
        client = threading.Thread(target=load, args=(source.url(), acks, stop))
        client.start()
        time.sleep(random.uniform(4, 12))
        kill_issued = time.time()
        source.kill()
        stop.set()
        client.join()
        if streaming:  # what it flushed stays; it would only retry the connection
            streamer.send_signal(signal.SIGINT)
            streamer.wait(30)
        began = time.perf_counter()
        with recovery_cluster.recovered(base_backup.chain(latest), archive=source.archive) as cluster:
            with psycopg.connect(cluster.url("app"), autocommit=True) as there:
                newest = there.execute("SELECT max(id) FROM pitr_bench_load").fetchone()[0] or 0
        recovered_s = time.perf_counter() - began
        acked = dict(acks)
        last_id, last_ack = acks[-1]
        kept = [t for i, t in acks if i <= newest]
        lost_s = last_ack - (kept[-1] if kept else acks[0][1])
        results.append({"streaming": streaming, "load s": last_ack - acks[0][1], "commits acknowledged": len(acks),
                        "lost commits": sum(1 for i in acked if i > newest), "lost s": lost_s,
                        "last ack after kill issued s": last_ack - kill_issued, "recovery s": recovered_s})
        source.start()  # crash recovery; the partial segment is archived when it is finished
    return results


# --- report ----------------------------------------------------------------------------------------
def _med(values) -> str:
    return f"{statistics.median(values):.1f} s ({min(values):.1f}-{max(values):.1f})"


def report(students: int, seeded: float, b: dict, r: dict, p: list[dict]) -> str:
    lines = [f"### {students:,} students (database {b['db_bytes'] / MIB:,.0f} MiB, cluster "
             f"{b['cluster_bytes'] / MIB:,.0f} MiB; seeded in {seeded:.0f} s)", ""]
    base, dump = b["times"]["base_backup.take (pg_basebackup)"], b["times"]["pg_dump -Fc"]
    lines.append(tabulate([("base_backup.take (pg_basebackup -Ft gzip:1, whole cluster)", _med(base),
                            f"{b['sizes']['base'] / MIB:,.0f} MiB", f"{statistics.median(base) / statistics.median(dump):.2f}x"),
                           ("pg_dump -Fc of app", _med(dump), f"{b['sizes']['dump'] / MIB:,.0f} MiB", "1.00x")],
                          headers=(f"backup, median of {len(base)}", "time (min-max)", "size", "ratio"),
                          tablefmt="github", disable_numparse=True))
    ours, theirs = r["times"]["prep-ops recover --to"], r["times"]["hand-run restore + replay, until promoted"]
    ratio = statistics.median(ours) / statistics.median(theirs)
    lines += ["", tabulate([("prep-ops recover --to T (database copied out)", _med(ours), f"{ratio:.2f}x"),
                            ("  of which until promoted", _med(r["phases"]["until promoted"]),
                             f"{statistics.median(r['phases']['until promoted']) / statistics.median(theirs):.2f}x"),
                            ("    of which extraction (tarfile, Python)", _med(r["phases"]["extract"]), ""),
                            ("    of which replay (the log's redo elapsed)", _med(r["phases"]["replay"]), ""),
                            (f"  of which the copy (pg_dump -Fd --jobs {recovery_copy.JOBS}, pg_restore --jobs "
                             f"{recovery_copy.JOBS})", _med(r["phases"]["copy out"]), ""),
                            ("hand-run: tar -xzf, recovery.signal, pg_ctl start, until promoted", _med(theirs), "1.00x"),
                            ("  of which extraction (tar -xzf)", _med(r["phases"]["hand extract"]), ""),
                            ("  of which replay (the log's redo elapsed)", _med(r["phases"]["hand replay"]), ""),
                            ("hand-run, then the same copy by hand (pg_dump -Fd --jobs, pg_restore --jobs)",
                             _med([a + b for a, b in zip(theirs, r["phases"]["hand copy"])]),
                             f"{statistics.median(ours) / statistics.median([a + b for a, b in zip(theirs, r['phases']['hand copy'])]):.2f}x "
                             "(recover's ratio to it)"),
                            ("  the copy by hand alone", _med(r["phases"]["hand copy"]), ""),
                            ("  the copy recover made before, by hand (pg_dump -Fc piped into pg_restore, one job)",
                             _med(r["phases"]["hand pipe"]),
                             f"{statistics.median(r['phases']['hand pipe']) / statistics.median(r['phases']['hand copy']):.2f}x "
                             "(of the copy now)")],
                           headers=(f"recovery to T, {r['replay_bytes'] / MIB:,.0f} MiB of WAL replayed, median of "
                                    f"{len(ours)}", "time (min-max)", "ratio"), tablefmt="github", disable_numparse=True)]
    if not p:
        return "\n".join(lines)
    return "\n".join(lines + ["", points_report(p)])


def points_report(p: list[dict]) -> str:
    """The kills' table and, per way of archiving, the committed work lost (median, max, kills within 1 s)."""
    lines = [tabulate([(i + 1, "pg_receivewal + archive_timeout 1 s" if x.get("streaming") else "archive_timeout 1 s",
                        f"{x['load s']:.1f}", x["commits acknowledged"], x["lost commits"], f"{x['lost s']:.3f}",
                        f"{x['last ack after kill issued s'] * 1000:.0f}", f"{x['recovery s']:.1f}")
                       for i, x in enumerate(p)],
                      headers=("kill", "archiving", "load s", "commits acked", "lost commits", "lost s",
                               "last ack after kill issued, ms", "recover latest s"), tablefmt="github")]
    for name, streamed in (("archive_timeout = 1 s", False), ("pg_receivewal streaming", True)):
        lost = [x["lost s"] for x in p if bool(x.get("streaming")) == streamed]
        if lost:
            lines.append(f"committed work lost ({name}): median {statistics.median(lost):.3f} s, max {max(lost):.3f} s; "
                         f"{sum(1 for x in lost if x <= 1.0)} of {len(lost)} kills within 1 s")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, nargs="+", default=[250_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of backups and of recoveries")
    parser.add_argument("--kills", type=int, default=6, help="kills under load for the recovery point")
    parser.add_argument("--stream", action="store_true", help="the recovery point only, kills alternating between "
                        "pg_receivewal streaming and archive_timeout = 1 s alone")
    parser.add_argument("--keep-folder", action="store_true", help=f"leave {ROOT} (clusters stopped)")
    args = parser.parse_args()
    print(f"cpus {os.cpu_count()}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, started "
          f"{time.strftime('%Y-%m-%d %H:%M:%S')}, folder {ROOT}", flush=True)
    try:
        for students in args.students:
            shutil.rmtree(ROOT / "wal", ignore_errors=True)
            shutil.rmtree(ROOT / "backups", ignore_errors=True)
            source = Source(ROOT / f"source-{students}")
            try:
                seeded = seed(source, students)
                print(f"seeded {students:,} students in {seeded:.0f} s", flush=True)
                if args.stream:
                    print(f"### {students:,} students, recovery point\n\n{points_report(recovery_points(source, args.kills, True))}",
                          flush=True)
                    continue
                b = backups(source, args.rounds)
                print(f"backups: {b['times']}", flush=True)
                r = recoveries(source, students, args.rounds)
                print(f"recoveries: {r['times']} {r['phases']}", flush=True)
                p = recovery_points(source, args.kills) if args.kills else []
                print(report(students, seeded, b, r, p), flush=True)
            finally:
                source.kill()
                shutil.rmtree(source.folder, ignore_errors=True)
            print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at "
                  f"{time.strftime('%Y-%m-%d %H:%M:%S')}", flush=True)
    finally:
        if not args.keep_folder:
            shutil.rmtree(ROOT, ignore_errors=True)


if __name__ == "__main__":
    main()
