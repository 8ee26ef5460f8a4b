"""Load the sample data of `sample.py` into a database with COPY, in one transaction, as pg_restore
loads a dump: the tables' keys, indexes and foreign keys are set aside first and made again after the
data (post_data.py), so the server indexes and checks in bulk, not row by row.

The aim is to keep the server busy from the first second to the last: for more than one chunk of
students, a worker process (_seed_worker.py) starts first and generates the chunks after the first
(as COPY text, ready to send) while this process loads the staff and the first chunk, then only
streams. The worker keeps at most PREFETCH chunks waiting, and the staff comes in parts, so memory
stays flat however many students are loaded. The worker dies with the seeding process, however that
ends (a SIGKILL too).
"""

import itertools
import multiprocessing
import os
import queue
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from . import migrate, post_data, sample
from ._seed_worker import Part, encoded, produce, student_parts
from .catalog import refuse_foreign_triggers
from .catalog import row_counts as _row_counts
from .db import require_change, snapshot
from .errors import ConfirmationRequired, MigrationError, ParameterError, SampleDataError, database_error

WORKERS = 1  # generation processes: a second did not help on two shared cores (benchmarks/README.md)
PREFETCH = 3  # parts each worker may have ready
MAX_STUDENTS = 10_000_000
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
    """The parts of every chunk of students, in order. The first chunk is generated here, on demand;
    the others by WORKERS processes, started on entry (they boot while the staff and the first chunk
    load) and stopped on exit; chunk i + 1 comes from worker i % WORKERS."""
    first, ranges = plan.chunks()[:1], plan.chunks()[1:]
    if not ranges:
        yield student_parts(plan, first)
        return
    context = multiprocessing.get_context("spawn")  # fork is unsafe in a threaded kernel
    shares = [ranges[w::WORKERS] for w in range(min(WORKERS, len(ranges)))]
    queues = [context.Queue(PREFETCH) for _ in shares]
    workers = [context.Process(target=produce, args=(plan, share, q, os.getpid()), daemon=True)
               for share, q in zip(shares, queues)]
    for worker in workers:
        worker.start()
    try:
        yield itertools.chain(student_parts(plan, first), _streamed(len(ranges), queues, workers))
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
    (ForeignTriggerError: it would run as us). Runs in one transaction: on any error, or a kill, nothing
    changes, the keys, indexes and foreign keys set aside for the load included (post_data). Rows that
    break a constraint raise SampleDataError.
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
    try:
        with _student_parts_in_order(plan) as student_parts, conn.transaction(), _progress_bar(students, progress) as bar:
            # the school's tables are public's (see migrate), whatever the database's or role's search_path
            conn.execute("SELECT set_config('search_path', 'public', true)")
            school = sql.SQL(", ").join(map(sql.Identifier, TABLES))
            # no trigger may be added while we look (CREATE TRIGGER and ADD FOREIGN KEY wait for this lock):
            # code another role owns would run as us, a superuser perhaps
            conn.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(school))
            refuse_foreign_triggers(conn, TABLES, "to load sample data")
            conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(school))
            result.rows = dict.fromkeys(TABLES, 0)
            # the staff is small next to the students: generated here, while the workers boot
            staff_parts = ((0, encoded(part)) for part in sample.staff_chunks(plan)) if students else ()
            with post_data.set_aside(conn, TABLES):
                for size, tables in itertools.chain(staff_parts, student_parts):
                    for table, (data, count) in tables.items():
                        _copy(conn, table, data)
                        result.rows[table] += count
                    bar.update(size)
                    tables = data = None  # free this part before the next one arrives
            for table in ("users", "teachers", "courses", "students"):
                conn.execute(sql.SQL("SELECT setval(pg_get_serial_sequence(%s, 'id'), coalesce(max(id), 0) + 1, false) "
                                     "FROM {}").format(sql.Identifier(table)), (table,))
    except psycopg.errors.IntegrityError as exc:
        raise database_error(exc, "the sample data breaks a constraint; nothing was loaded", SampleDataError,
                             detail=True) from None
    conn.execute(sql.SQL("ANALYZE {}").format(sql.SQL(", ").join(sql.Identifier("public", t) for t in TABLES)))
    result.seconds = time.perf_counter() - began
    return result


def write_csv(directory: Path, students: int = 100, seed: int = 42) -> dict[str, Path]:
    """Write the sample for `students` students as one CSV per table; returns the files."""
    import pandas as pd  # here only: a worker imports this module, and pandas takes a second to load

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
