"""Load the sample data of `sample.py` into a database with COPY, in one transaction.

For more than one chunk of students, a worker process generates the next chunks while this
process streams the current one to the server, so generation overlaps loading; at most
`PREFETCH` chunks wait in memory, so memory stays flat however many students are loaded.
"""

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import psycopg
from psycopg import sql

from . import migrate, sample
from .db import Target, connect
from .errors import ConfirmationRequired, MigrationError, ParameterError

PREFETCH = 3
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


def _check_students(students: int) -> None:
    if isinstance(students, bool) or not isinstance(students, int):
        raise ParameterError(f"students must be a whole number, not {students!r}")
    if not 0 <= students <= MAX_STUDENTS:
        raise ParameterError(f"students must be between 0 and {MAX_STUDENTS:,}, not {students:,}")


def row_counts(target: Target) -> dict[str, int]:
    """Exact row counts of the school's tables that exist."""
    with connect(target, autocommit=True) as conn:
        present = [t for t in TABLES if conn.execute("SELECT to_regclass(%s)", (f"public.{t}",)).fetchone()[0]]
        return {t: conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(t))).fetchone()[0]
                for t in present}


def _generate(plan: sample.Plan, start: int, stop: int, courses: tuple) -> dict[str, tuple[bytes, int]]:
    chunk = sample.students_chunk(plan, start, stop, courses)
    return {t: (sample.copy_text(t, cols), len(cols[sample.COLUMNS[t][0]])) for t, cols in chunk.items()}


def _chunks(plan: sample.Plan, courses: tuple):
    ranges = plan.chunks()
    if len(ranges) <= 1:
        for start, stop in ranges:
            yield stop - start, _generate(plan, start, stop, courses)
        return
    context = multiprocessing.get_context("spawn")  # fork is unsafe in a threaded kernel
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        pending = []
        for start, stop in ranges:
            pending.append((stop - start, pool.submit(_generate, plan, start, stop, courses)))
            if len(pending) >= PREFETCH:
                size, future = pending.pop(0)
                yield size, future.result()
        for size, future in pending:
            yield size, future.result()


def _copy(conn: psycopg.Connection, table: str, data: bytes) -> None:
    columns = sql.SQL(", ").join(map(sql.Identifier, sample.COLUMNS[table]))
    with conn.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table), columns)) as copy:
        copy.write(data)


def seed(target: Target, students: int = 2000, seed: int = 42, *, replace: bool = False,
         progress: bool = False) -> SeedResult:
    """Replace the school's data with `students` generated students (and their teachers, courses,
    enrollments and payments); returns the rows loaded.

    Refuses a database whose schema is not at the latest migration, and one that already
    holds data unless `replace` is true. Runs in one transaction: on any error nothing changes.
    """
    _check_students(students)
    latest = migrate.discover()[-1].version
    if migrate.current_version(target) != latest:
        raise MigrationError(f"the schema of {target.masked_url} is not at migration {latest}; run `prep-ops migrate` first")
    existing = row_counts(target)
    if any(existing.values()) and not replace:
        raise ConfirmationRequired(
            f"{target.database} already holds data ({existing.get('students', 0):,} students); "
            "seeding replaces it: pass confirm (--confirm) to go ahead"
        )
    result = SeedResult(students, seed)
    began = time.perf_counter()
    plan = sample.Plan(students, seed)
    from tqdm.auto import tqdm

    with connect(target) as conn, tqdm(total=students, unit="students", disable=not progress,
                                       desc="seeding") as bar:
        conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
            sql.SQL(", ").join(map(sql.Identifier, TABLES))))
        result.rows = dict.fromkeys(TABLES, 0)
        if students:
            staff = sample.staff(plan)
            for table in ("users", "teachers", "courses"):
                _copy(conn, table, sample.copy_text(table, staff[table]))
                result.rows[table] += len(staff[table]["id"])
            courses = sample.course_index(staff["_instrument"])
            for size, chunk in _chunks(plan, courses):
                for table in ("users", "students", "enrollments", "tuition_payments"):
                    data, count = chunk[table]
                    _copy(conn, table, data)
                    result.rows[table] += count
                bar.update(size)
        for table in ("users", "teachers", "courses", "students"):
            conn.execute(sql.SQL("SELECT setval(pg_get_serial_sequence(%s, 'id'), coalesce(max(id), 0) + 1, false) FROM {}")
                         .format(sql.Identifier(table)), (table,))
        conn.commit()
    with connect(target, autocommit=True) as conn:
        conn.execute(sql.SQL("ANALYZE {}").format(sql.SQL(", ").join(map(sql.Identifier, TABLES))))
    result.seconds = time.perf_counter() - began
    return result


def write_csv(directory: Path, students: int = 100, seed: int = 42) -> dict[str, Path]:
    """Write the sample for `students` students as one CSV per table; returns the files."""
    _check_students(students)
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
