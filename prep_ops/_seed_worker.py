"""The seed's generation process: the students' chunks as COPY text, made in a process of its own
that dies with the seeding process. Apart from seed.py so that a worker imports the sample generator
(numpy) and nothing of the database layer: it starts in a fraction of the time, on cores the server
needs (benchmarks/README.md, "Seeding").
"""

import ctypes
import os
import signal
import sys
import threading
import time
import traceback

from . import sample

_PR_SET_PDEATHSIG = 1  # linux/prctl.h

Part = tuple[int, dict[str, tuple[bytes, int]]]  # (students in it, {table: (COPY text, rows)})


def encoded(tables: dict[str, dict]) -> dict[str, tuple[bytes, int]]:
    """{table: (COPY text, rows)} for generated `tables` of columns."""
    return {t: (sample.copy_text(t, cols), len(cols[sample.COLUMNS[t][0]])) for t, cols in tables.items()}


def student_parts(plan: sample.Plan, ranges: list[tuple[int, int]]):
    """(students, {table: (COPY text, rows)}) for each range of student ids, in order."""
    courses = sample.course_index(sample.teacher_instruments(plan))
    for start, stop in ranges:
        yield stop - start, encoded(sample.students_chunk(plan, start, stop, courses))


def _die_with_parent(parent: int) -> None:
    """Make this worker process end when `parent` (the seeding process) does, even by SIGKILL, which
    daemon=True cannot help with: on Linux the kernel sends us SIGKILL when the parent dies
    (prctl PR_SET_PDEATHSIG; the parent is the thread that started us, and it waits for us in
    seed._student_parts_in_order); elsewhere a watchdog thread polls the parent pid once a second. A
    parent that died before we got here is caught by comparing os.getppid() with the pid it passed."""
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


def produce(plan: sample.Plan, ranges: list[tuple[int, int]], out, parent: int | None = None) -> None:
    """A worker process: put the parts of `ranges` on `out`, then None; a failure, as its traceback.
    Dies with `parent`, the pid of the process that started it."""
    if parent is not None:
        _die_with_parent(parent)
    try:
        for part in student_parts(plan, ranges):
            out.put(part)
        out.put(None)
    except BaseException:
        out.put(traceback.format_exc())
