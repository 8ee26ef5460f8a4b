"""Load the sample data of `sample.py` into a database with COPY, in one transaction.

The server is the bottleneck (foreign-key triggers and index upkeep on every row; see
benchmarks/README.md), so the aim is to keep it busy from the first second to the last: for more
than one chunk of students, worker processes start first and generate the chunks (as COPY text,
ready to send) while this process loads the staff, then only streams. Each worker keeps at most
PREFETCH chunks waiting, and the staff comes in parts, so memory stays flat however many
students are loaded. A worker dies with the seeding process, however that ends (a SIGKILL too):
see _die_with_parent.
"""

import ctypes
import itertools
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import psycopg
from psycopg import sql

from . import migrate, sample
from .catalog import refuse_foreign_triggers
from .catalog import row_counts as _row_counts
from .db import require_change, snapshot
from .errors import ConfirmationRequired, MigrationError, ParameterError, SampleDataError

WORKERS = 1  # generation processes: one keeps ahead of the server (see benchmarks/README.md)
PREFETCH = 3  # parts each worker may have ready
MAX_STUDENTS = 10_000_000
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
TABLES = sample.LOAD_ORDER


@dataclass
class SeedResult:
    students: int
    seed: int
    seconds: float = 0.0
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def __str__(self) -> str:
        """What was loaded, in one line: rows, seconds and rows per second."""
        return (f"loaded {self.total_rows:,} rows in {self.seconds:.1f} s "
                f"({self.total_rows / max(self.seconds, 1e-9):,.0f} rows/s)")


def check_students(students: int) -> None:
    if isinstance(students, bool) or not isinstance(students, int):
        raise ParameterError(f"students must be a whole number, not {students!r}")
    if not 0 <= students <= MAX_STUDENTS:
        raise ParameterError(f"students must be between 0 and {MAX_STUDENTS:,}, not {students:,}")


def row_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Exact row counts of the school's tables that exist, in one snapshot."""
    with snapshot(conn):
        return _row_counts(conn, TABLES)


Part = tuple[int, dict[str, tuple[bytes, int]]]  # (students in it, {table: (COPY text, rows)})


def _encoded(tables: dict[str, dict]) -> dict[str, tuple[bytes, int]]:
    return {t: (sample.copy_text(t, cols), len(cols[sample.COLUMNS[t][0]])) for t, cols in tables.items()}


def _student_parts(plan: sample.Plan, ranges: list[tuple[int, int]]):
    """(students, {table: (COPY text, rows)}) for each range of student ids, in order."""
    courses = sample.course_index(sample.teacher_instruments(plan))
    for start, stop in ranges:
        yield stop - start, _encoded(sample.students_chunk(plan, start, stop, courses))


def _die_with_parent(parent: int) -> None:
    """Make this worker process end when `parent` (the seeding process) does, even by SIGKILL, which
    daemon=True cannot help with: on Linux the kernel sends us SIGKILL when the parent dies
    (prctl PR_SET_PDEATHSIG; the parent is the thread that started us, and it waits for us in
    _student_parts_in_order); elsewhere a watchdog thread polls the parent pid once a second. A parent
    that died before we got here is caught by comparing os.getppid() with the pid it passed."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    else:
        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(1)
            os._exit(1)

        threading.Thread(target=watch, daemon=True, name="parent-watchdog").start()
    if os.getppid() != parent:  # orphaned already, before the above took hold
        os._exit(1)


def _produce(plan: sample.Plan, ranges: list[tuple[int, int]], out, parent: int | None = None) -> None:
    """A worker process: put the parts of `ranges` on `out`, then None; a failure, as its traceback.
    Dies with `parent`, the pid of the process that started it."""
    if parent is not None:
        _die_with_parent(parent)
    try:
        for part in _student_parts(plan, ranges):
            out.put(part)
        out.put(None)
    except BaseException:
        out.put(traceback.format_exc())


def _take(source, worker) -> Part | None:
    while True:
        try:
            item = source.get(timeout=1)
        except queue.Empty:
            if not worker.is_alive():
                raise SampleDataError(f"a sample-data worker died (exit code {worker.exitcode})") from None
            continue
        if isinstance(item, str):
            raise SampleDataError(f"a sample-data worker failed:\n{item}")
        return item


def _streamed(chunks: int, queues: list, workers: list):
    for i in range(chunks):
        yield _take(queues[i % len(workers)], workers[i % len(workers)])
    for source, worker in zip(queues, workers):
        if _take(source, worker) is not None:
            raise SampleDataError("a sample-data worker made more parts than planned")


@contextmanager
def _student_parts_in_order(plan: sample.Plan):
    """The parts of every chunk of students, in order. One chunk is generated here, on demand;
    more by WORKERS processes, started on entry (they boot while the staff loads) and stopped
    on exit; chunk i comes from worker i % WORKERS."""
    ranges = plan.chunks()
    if len(ranges) <= 1:
        yield _student_parts(plan, ranges)
        return
    context = multiprocessing.get_context("spawn")  # fork is unsafe in a threaded kernel
    shares = [ranges[w::WORKERS] for w in range(min(WORKERS, len(ranges)))]
    queues = [context.Queue(PREFETCH) for _ in shares]
    workers = [context.Process(target=_produce, args=(plan, share, q, os.getpid()), daemon=True)
               for share, q in zip(shares, queues)]
    for worker in workers:
        worker.start()
    try:
        yield _streamed(len(ranges), queues, workers)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
            worker.join()


def _copy(conn: psycopg.Connection, table: str, data: bytes) -> None:
    columns = sql.SQL(", ").join(map(sql.Identifier, sample.COLUMNS[table]))
    with conn.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table), columns)) as copy:
        copy.write(data)


def _progress_bar(students: int, shown: bool):
    """A progress bar: a widget in JupyterLab, plain text (a few lines, not a widget that a saved notebook
    cannot show) where the runner executes runbooks headless ($PREP_OPS_HEADLESS=1) or in a terminal."""
    if os.environ.get("PREP_OPS_HEADLESS") == "1":
        from tqdm import tqdm

        return tqdm(total=students, unit="students", disable=not shown, desc="seeding", ascii=True, mininterval=5)
    from tqdm.auto import tqdm

    return tqdm(total=students, unit="students", disable=not shown, desc="seeding")


def seed(conn: psycopg.Connection, students: int = 2000, seed: int = 42, *, replace: bool = False,
         confirm: bool = False, progress: bool = False) -> SeedResult:
    """Replace the school's data with `students` generated students (and their teachers, courses,
    enrollments and payments); returns the rows loaded.

    Outside a scratch database, needs `confirm`. Refuses a database whose schema is not at the latest
    migration, one that already holds data unless `replace` is true, and tables with a trigger (or
    default, CHECK or index function) of a role that is neither the connected one nor a superuser
    (ForeignTriggerError: it would run as us). Runs in one transaction: on any error nothing changes.
    """
    check_students(students)
    require_change(conn, confirm, "loading sample data")
    latest = migrate.latest_version()
    if migrate.current_version(conn) != latest:
        raise MigrationError(f"the schema of {conn.info.dbname} is not at migration {latest}; run `prep-ops migrate` first")
    existing = row_counts(conn)
    if any(existing.values()) and not replace:
        raise ConfirmationRequired(
            f"{conn.info.dbname} already holds data ({existing.get('students', 0):,} students); "
            "seeding replaces it: pass confirm (--confirm) to go ahead"
        )
    result = SeedResult(students, seed)
    began = time.perf_counter()
    plan = sample.Plan(students, seed)
    with _student_parts_in_order(plan) as student_parts, conn.transaction(), _progress_bar(students, progress) as bar:
        school = sql.SQL(", ").join(map(sql.Identifier, TABLES))
        # no trigger may be added while we look (CREATE TRIGGER and ADD FOREIGN KEY wait for this lock):
        # code another role owns would run as us, a superuser perhaps
        conn.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(school))
        refuse_foreign_triggers(conn, TABLES, "to load sample data")
        conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(school))
        result.rows = dict.fromkeys(TABLES, 0)
        # the staff is small next to the students: generated here, while the workers boot
        staff_parts = ((0, _encoded(part)) for part in sample.staff_chunks(plan)) if students else ()
        for size, tables in itertools.chain(staff_parts, student_parts):
            for table, (data, count) in tables.items():
                _copy(conn, table, data)
                result.rows[table] += count
            bar.update(size)
            tables = data = None  # free this part before the next one arrives
        for table in ("users", "teachers", "courses", "students"):
            conn.execute(sql.SQL("SELECT setval(pg_get_serial_sequence(%s, 'id'), coalesce(max(id), 0) + 1, false) FROM {}")
                         .format(sql.Identifier(table)), (table,))
    conn.execute(sql.SQL("ANALYZE {}").format(sql.SQL(", ").join(map(sql.Identifier, TABLES))))
    result.seconds = time.perf_counter() - began
    return result


def write_csv(directory: Path, students: int = 100, seed: int = 42) -> dict[str, Path]:
    """Write the sample for `students` students as one CSV per table; returns the files."""
    check_students(students)
    directory.mkdir(parents=True, exist_ok=True)
    plan = sample.Plan(students, seed)
    staff = sample.staff(plan)
    courses = sample.course_index(staff["_instrument"])
    tables = {t: pd.DataFrame(staff[t], columns=sample.COLUMNS[t]) for t in ("users", "teachers", "courses")}
    for start, stop in plan.chunks():
        chunk = sample.students_chunk(plan, start, stop, courses)
        for t, cols in chunk.items():
            frame = pd.DataFrame(cols, columns=sample.COLUMNS[t])
            tables[t] = pd.concat([tables[t], frame], ignore_index=True) if t in tables else frame
    tables["students"]["audition_recording"] = tables["students"]["audition_recording"].map(
        lambda v: "\\x" + v.hex() if v is not None else None)
    files = {}
    for t in sample.LOAD_ORDER:
        files[t] = directory / f"{t}.csv"
        tables[t].to_csv(files[t], index=False, lineterminator="\n")
    return files
