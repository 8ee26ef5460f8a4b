"""Deterministic, realistic sample data for the school, generated in chunks of columns.

Everything here is pure computation (no database): `seed.py` loads it with COPY and
`write_csv` writes the small sample committed in data/. The same seed gives the same rows,
whatever the chunking: students are drawn in fixed blocks of BLOCK_STUDENTS, each from its own
generator keyed by (seed, block start), and a chunk is a whole number of blocks.
"""

import json
from dataclasses import dataclass
from datetime import date

import numpy as np

from .errors import ParameterError

INSTRUMENTS = ("piano", "violin", "voice", "guitar", "cello", "flute", "clarinet",
               "trumpet", "percussion", "viola", "saxophone", "double bass")
INSTRUMENT_SHARE = (0.27, 0.16, 0.11, 0.10, 0.07, 0.06, 0.05, 0.04, 0.04, 0.04, 0.03, 0.03)
LEVELS = ("beginner", "intermediate", "advanced", "pre-college")
LEVEL_SHARE = (0.44, 0.31, 0.18, 0.07)
# Tuition per course and term, by level (US$); summer terms are half.
TUITION = (420.00, 520.00, 640.00, 780.00)
TERMS = ("2024-fall", "2025-spring", "2025-summer", "2025-fall", "2026-spring", "2026-fall")
CURRENT_TERM = TERMS[-1]
TERM_START = {t: date(int(t[:4]), {"spring": 1, "summer": 6, "fall": 8}[t[5:]], 15) for t in TERMS}
METHODS = ("card", "check", "cash", "transfer", "scholarship")
METHOD_SHARE = (0.55, 0.15, 0.05, 0.20, 0.05)
FIRST = ("Ava", "Liam", "Sofia", "Mateo", "Isabella", "Noah", "Camila", "Diego", "Maya", "Elijah",
         "Lucia", "Gabriel", "Olivia", "Santiago", "Emma", "Aiden", "Valeria", "Ethan", "Amara", "Leo",
         "Chloe", "Julian", "Nora", "Adrian", "Zoe", "Miguel", "Aria", "Daniel", "Elena", "Samuel",
         "Naomi", "Luca", "Rosa", "Kai", "Grace", "Tomas", "Lily", "Isaac", "Mia", "Hana")
LAST = ("Garcia", "Martinez", "Chavez", "Lopez", "Romero", "Sanchez", "Baca", "Trujillo", "Smith",
        "Johnson", "Montoya", "Lucero", "Gallegos", "Begay", "Yazzie", "Nguyen", "Kim", "Patel",
        "Brown", "Miller", "Anderson", "Archuleta", "Sandoval", "Vigil", "Padilla", "Jaramillo",
        "Tsosie", "Benally", "Wilson", "Moore", "Clark", "Lee", "Herrera", "Ortiz", "Castillo",
        "Maestas", "Apodaca", "Tafoya", "Armijo", "Duran")
DOMAINS = ("gmail.com", "unm.edu", "yahoo.com", "outlook.com", "comcast.net", "icloud.com")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat")
ADMINS = 2
STUDENTS_PER_TEACHER = 25
BLOCK_STUDENTS = 1_000  # the unit of randomness: changing it changes the data
CHUNK_STUDENTS = 20_000  # the unit of work handed to a generator process (rounded to whole blocks)
CHUNK_TEACHERS = 5_000  # teachers per part of `staff_chunks` (any size gives the same data)

# Column order of each table as loaded (COPY) and written (CSV).
COLUMNS = {
    "users": ("id", "username", "email", "role", "created_at", "full_name"),
    "teachers": ("id", "user_id", "specialization", "availability"),
    "courses": ("id", "name", "description", "level", "teacher_id"),
    "students": ("id", "user_id", "level", "instrument", "start_date", "date_of_birth",
                 "guardian", "audition_recording"),
    "enrollments": ("student_id", "course_id", "term", "status", "enrolled_at"),
    "tuition_payments": ("student_id", "term", "amount", "method", "paid_at"),
}
LOAD_ORDER = ("users", "teachers", "courses", "students", "enrollments", "tuition_payments")


@dataclass(frozen=True)
class Plan:
    """The sizes that follow from a number of students."""

    students: int
    seed: int

    @property
    def teachers(self) -> int:
        return max(len(INSTRUMENTS), -(-self.students // STUDENTS_PER_TEACHER))

    @property
    def courses(self) -> int:
        return self.teachers * len(LEVELS)

    def student_user_id(self, student_id: int) -> int:
        return ADMINS + self.teachers + student_id

    def chunks(self) -> list[tuple[int, int]]:
        """Half-open ranges of student ids, one per chunk, each a whole number of blocks."""
        size = max(BLOCK_STUDENTS, CHUNK_STUDENTS // BLOCK_STUDENTS * BLOCK_STUDENTS)
        return [(start, min(start + size, self.students + 1)) for start in range(1, self.students + 1, size)]


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([seed, *key])


def _json(text: str) -> str:
    """`text` escaped for inside a JSON string, as json.dumps escapes it."""
    return json.dumps(text)[1:-1]


# Per-row strings are built from these (f-strings over pre-escaped pieces are several times
# faster than json.dumps and str.lower per row, and give the same text).
_FIRST_LOWER = tuple(n.lower() for n in FIRST)
_LAST_LOWER = tuple(n.lower() for n in LAST)
_FIRST_JSON = tuple(map(_json, FIRST))
_LAST_JSON = tuple(map(_json, LAST))
_FIRST_LOWER_JSON = tuple(map(_json, _FIRST_LOWER))
_LAST_LOWER_JSON = tuple(map(_json, _LAST_LOWER))
_DOMAINS_JSON = tuple(map(_json, DOMAINS))


def _people(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.integers(0, len(FIRST), n), rng.integers(0, len(LAST), n)


def _day_strings(days: np.ndarray) -> list[str]:
    """'YYYY-MM-DD' for datetime64[D] values."""
    return np.datetime_as_string(days, unit="D").tolist()


def _stamp_strings(days: np.ndarray, seconds: np.ndarray) -> list[str]:
    """'YYYY-MM-DD HH:MM:SS' for days and seconds after 2019-01-01 00:00."""
    stamps = np.datetime64("2019-01-01T00:00:00") + days.astype("timedelta64[D]") + seconds.astype("timedelta64[s]")
    text = np.datetime_as_string(stamps, unit="s")
    if len(text):
        text.view("U1").reshape(len(text), -1)[:, 10] = " "  # the ISO "T"
    return text.tolist()


def _timestamps(days: np.ndarray, rng: np.random.Generator) -> list[str]:
    return _stamp_strings(days, rng.integers(8 * 3600, 20 * 3600, len(days)))


def _user_draws(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    """What `_user_rows` needs from the generator, drawn in its fixed order."""
    first, last = _people(rng, n)
    domain = rng.integers(0, len(DOMAINS), n)
    return first, last, domain, rng.integers(8 * 3600, 20 * 3600, n)


def _user_rows(ids, role: str, days: np.ndarray, draws: tuple[np.ndarray, ...]) -> dict:
    first, last, domain = (d.tolist() for d in draws[:3])
    usernames = [f"{_FIRST_LOWER[f]}.{_LAST_LOWER[s]}.{i}" for f, s, i in zip(first, last, np.asarray(ids).tolist())]
    emails = [f"{u}@{DOMAINS[d]}" for u, d in zip(usernames, domain)]
    names = [f"{FIRST[f]} {LAST[s]}" for f, s in zip(first, last)]
    return {"id": ids, "username": usernames, "email": emails, "role": [role] * len(usernames),
            "created_at": _stamp_strings(days, draws[3]), "full_name": names}


def _availability(rng: np.random.Generator) -> str:
    """One teacher's weekly availability as JSON: 2-5 days, an afternoon slot on each."""
    days = sorted(rng.choice(len(DAYS), rng.integers(2, 6), replace=False).tolist())
    slots, hours = [], 0
    for d in days:
        start = int(rng.integers(13, 17))
        end = start + int(rng.integers(2, 5))
        slots.append(f'{{"day":"{DAYS[d]}","start":"{start}:00","end":"{end}:00"}}')
        hours += end - start
    return f'{{"weekly_hours":{hours},"slots":[{",".join(slots)}]}}'


def _staff_draws(plan: Plan):
    """The staff's generator (next, it draws the availabilities) and its vectorised draws:
    admins, teachers' start days, teachers, instruments."""
    rng = _rng(plan.seed, 0)
    t = plan.teachers
    admins = _user_draws(rng, ADMINS)
    teacher_days = rng.integers(0, 365, t)
    teachers = _user_draws(rng, t)
    # every instrument has a teacher; the rest follow demand
    instrument = np.concatenate([np.arange(len(INSTRUMENTS)),
                                 rng.choice(len(INSTRUMENTS), t - len(INSTRUMENTS), p=INSTRUMENT_SHARE)])
    return rng, admins, teacher_days, teachers, instrument


def teacher_instruments(plan: Plan) -> np.ndarray:
    """Each teacher's instrument (an index into INSTRUMENTS), as `staff` draws it."""
    return _staff_draws(plan)[-1]


def staff_chunks(plan: Plan, teachers_per_chunk: int | None = None):
    """Yield `staff(plan)` in parts of `teachers_per_chunk` (default CHUNK_TEACHERS) teachers: users,
    teachers and courses, the admins in the first part; a large staff never sits in memory whole."""
    teachers_per_chunk = teachers_per_chunk or CHUNK_TEACHERS
    rng, admins, teacher_days, teachers, instrument = _staff_draws(plan)
    for lo in range(0, plan.teachers, teachers_per_chunk):
        hi = min(lo + teachers_per_chunk, plan.teachers)
        availability = [_availability(rng) for _ in range(lo, hi)]  # draws in teacher order, part after part
        teacher_ids = list(range(lo + 1, hi + 1))
        user_ids = [ADMINS + i for i in teacher_ids]
        draws = tuple(d[lo:hi] for d in teachers)
        users = _user_rows(user_ids, "teacher", teacher_days[lo:hi], draws)
        if lo == 0:
            first = _user_rows(list(range(1, ADMINS + 1)), "admin", np.zeros(ADMINS, dtype=int), admins)
            users = {k: first[k] + users[k] for k in users}
        part_instruments = instrument[lo:hi].tolist()
        teachers_part = {"id": teacher_ids, "user_id": user_ids,
                         "specialization": [INSTRUMENTS[i] for i in part_instruments], "availability": availability}
        course_teacher = [i for i in teacher_ids for _ in LEVELS]
        course_level = list(range(len(LEVELS))) * (hi - lo)
        course_instrument = [INSTRUMENTS[i] for i in part_instruments for _ in LEVELS]
        last_names = [LAST[s] for s in draws[1].tolist() for _ in LEVELS]
        courses = {
            "id": list(range(lo * len(LEVELS) + 1, hi * len(LEVELS) + 1)),
            "name": [f"{i.title()} {LEVELS[lv].title()} ({n} studio)"
                     for i, lv, n in zip(course_instrument, course_level, last_names)],
            "description": [f"Weekly {LEVELS[lv]} {i} lessons and studio class" for i, lv in zip(course_instrument, course_level)],
            "level": [LEVELS[lv] for lv in course_level],
            "teacher_id": course_teacher,
        }
        yield {"users": users, "teachers": teachers_part, "courses": courses}


def staff(plan: Plan) -> dict[str, dict]:
    """Admins, teachers (with weekly availability) and their courses: one course per level each."""
    whole = next(staff_chunks(plan, plan.teachers))
    whole["_instrument"] = teacher_instruments(plan)
    return whole


def course_index(teacher_instrument: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For choosing a course by (instrument, level): course ids sorted by group, group starts, group sizes."""
    course_ids = np.arange(1, len(teacher_instrument) * len(LEVELS) + 1)
    group = np.repeat(teacher_instrument, len(LEVELS)) * len(LEVELS) + np.tile(np.arange(len(LEVELS)), len(teacher_instrument))
    order = np.argsort(group, kind="stable")
    counts = np.bincount(group, minlength=len(INSTRUMENTS) * len(LEVELS))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return course_ids[order], starts, counts


def students_chunk(plan: Plan, start: int, stop: int, courses: tuple) -> dict[str, dict]:
    """Users, students, enrollments and payments for student ids start..stop-1 (start on a block boundary)."""
    if (start - 1) % BLOCK_STUDENTS:
        raise ParameterError(f"a chunk must start on a block of {BLOCK_STUDENTS} students, not at {start}")
    blocks = [_students_block(plan, b, min(b + BLOCK_STUDENTS, stop), courses)
              for b in range(start, stop, BLOCK_STUDENTS)]
    if len(blocks) == 1:
        return blocks[0]
    return {table: {column: [v for block in blocks for v in block[table][column]] for column in blocks[0][table]}
            for table in blocks[0]}


def _students_block(plan: Plan, start: int, stop: int, courses: tuple) -> dict[str, dict]:
    rng = _rng(plan.seed, 1, start)
    ids = np.arange(start, stop)
    n = len(ids)
    instrument = rng.choice(len(INSTRUMENTS), n, p=INSTRUMENT_SHARE)
    level = rng.choice(len(LEVELS), n, p=LEVEL_SHARE)
    start_days = rng.integers(0, (date(2026, 9, 1) - date(2019, 1, 1)).days, n)
    user_ids = ids + ADMINS + plan.teachers
    users = _user_rows(user_ids, "student", start_days, _user_draws(rng, n))
    start_dates = _day_strings(np.datetime64("2019-01-01") + start_days.astype("timedelta64[D]"))
    age_days = rng.integers(5 * 365, 18 * 365, n) + 2 * level * 365
    dob = _day_strings(np.datetime64("2026-09-01") - age_days.astype("timedelta64[D]"))
    g_first, g_last = _people(rng, n)
    phone = rng.integers(2_000_000, 9_999_999, n)
    # json.dumps({"name": ..., "phone": ..., "email": ...}, separators=(",", ":")), written out
    guardian = [f'{{"name":"{_FIRST_JSON[f]} {_LAST_JSON[s]}","phone":"505-{p // 10000:03d}-{p % 10000:04d}",'
                f'"email":"{_FIRST_LOWER_JSON[f]}.{_LAST_LOWER_JSON[s]}@{_DOMAINS_JSON[s % len(DOMAINS)]}"}}'
                for f, s, p in zip(g_first.tolist(), g_last.tolist(), phone.tolist())]
    has_audition = rng.random(n) < 0.1
    audition = [rng.bytes(48) if has else None for has in has_audition]
    students = {"id": ids.tolist(), "user_id": user_ids.tolist(), "level": [LEVELS[i] for i in level],
                "instrument": [INSTRUMENTS[i] for i in instrument], "start_date": start_dates,
                "date_of_birth": dob, "guardian": guardian, "audition_recording": audition}

    # enrollments: 1-4 per student, in distinct terms, in a course of the student's instrument and level
    per_student = np.minimum(1 + rng.binomial(3, 0.45, n), len(TERMS))
    who = np.repeat(np.arange(n), per_student)
    term_rank = np.argsort(rng.random((n, len(TERMS))), axis=1)
    slot = np.arange(len(who)) - np.repeat(np.cumsum(per_student) - per_student, per_student)
    term = term_rank[who, slot]
    # the current term is busier: move a third of the picks there, then keep one per student and term
    term = np.where(rng.random(len(who)) < 0.35, len(TERMS) - 1, term)
    key = who * len(TERMS) + term
    _, first_index = np.unique(key, return_index=True)
    keep = np.sort(first_index)
    who, term = who[keep], term[keep]
    sorted_ids, group_start, group_size = courses
    group = instrument[who] * len(LEVELS) + level[who]
    course = sorted_ids[group_start[group] + (rng.random(len(who)) * group_size[group]).astype(int)]
    current = term == len(TERMS) - 1
    roll = rng.random(len(who))
    status = np.where(current,
                      np.select([roll < 0.80, roll < 0.92], [0, 1], 2),   # enrolled, waitlisted, dropped
                      np.select([roll < 0.86], [3], 2))                   # completed, dropped
    status_names = np.array(["enrolled", "waitlisted", "dropped", "completed"])[status]
    term_start_days = np.array([(TERM_START[t] - date(2019, 1, 1)).days for t in TERMS])
    enrolled_days = term_start_days[term] - rng.integers(3, 60, len(who))
    enrollments = {"student_id": ids[who].tolist(), "course_id": course.tolist(),
                   "term": [TERMS[t] for t in term], "status": status_names.tolist(),
                   "enrolled_at": _timestamps(enrolled_days, rng)}

    # payments: enrolled and completed enrollments pay, dropped ones half the time; a quarter in two parts
    pays = (status != 1) & ((status != 2) | (rng.random(len(who)) < 0.5))
    p_who, p_term, p_level = who[pays], term[pays], level[who[pays]]
    fee = np.array(TUITION)[p_level] * np.where(np.char.endswith(np.array(TERMS)[p_term], "summer"), 0.5, 1.0)
    fee = np.where(rng.random(len(p_who)) < 0.08, fee * 0.5, fee)  # partial scholarships
    parts = np.where(rng.random(len(p_who)) < 0.25, 2, 1)
    row = np.repeat(np.arange(len(p_who)), parts)
    amount_cents = np.round(fee[row] * 100 / parts[row]).astype(np.int64)
    method = rng.choice(len(METHODS), len(row), p=METHOD_SHARE)
    second = np.arange(len(row)) - np.repeat(np.cumsum(parts) - parts, parts)
    paid_days = term_start_days[p_term[row]] + rng.integers(-20, 10, len(row)) + second * 45
    payments = {"student_id": ids[p_who[row]].tolist(), "term": [TERMS[t] for t in p_term[row]],
                "amount": [f"{c // 100}.{c % 100:02d}" for c in amount_cents.tolist()],
                "method": [METHODS[m] for m in method], "paid_at": _timestamps(paid_days, rng)}
    return {"users": users, "students": students, "enrollments": enrollments, "tuition_payments": payments}


def copy_text(table: str, columns: dict) -> bytes:
    """Rows in PostgreSQL's COPY text format (values here never hold tabs, newlines or backslashes)."""
    cols = []
    for name in COLUMNS[table]:
        values = columns[name]
        if name == "audition_recording":
            cols.append(["\\\\x" + v.hex() if v is not None else "\\N" for v in values])
        elif len(values) and isinstance(values[0], str):
            cols.append(values)
        else:
            cols.append(list(map(str, values)))
    lines = "\n".join(map("\t".join, zip(*cols)))
    return (lines + "\n").encode() if lines else b""
