"""The statements runbook 03 analyses, and where: the school's query catalogue, the target's own
statements taking the most time (pg_stat_statements), or the statements of a .sql file.

`queries="auto"` is the school's catalogue where the school's schema is, else the top statements. The
school's generated sample (a lab database of `scale` students, `lab_for`) serves the school's catalogue
only; any other statements are analysed on the target itself.

A .sql file is data: it is read and cut into statements (sqlparse, which knows quoted strings, dollar
quotes and comments), and each goes on its own to `plans.explain`, which sends exactly one statement
(the server refuses a second one hidden in it) and, outside a scratch database, runs EXPLAIN ANALYZE
only for a SELECT, READ ONLY, rolled back, under a statement_timeout. Nothing of it is run as a script.
"""

import atexit
import re
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from . import objects, plans, schema, scratch
from .db import Target
from .errors import ParameterError, PrepOpsError
from .health import top_queries
from .health.queries import HOW_TO_ENABLE
from .paths import project_dir

CHOICES = ("auto", "top", "catalogue")  # or a path to a .sql file
TOP = 10  # statements taken from pg_stat_statements
HIDDEN = "<insufficient privilege>"  # pg_stat_statements' text of a statement the reader may not see
CANDIDATES = 200  # pg_stat_statements' top statements looked through for TOP of the workload's own
WHOLE = 2**31 - 1  # characters of a statement's text kept: all of it
_NAME = re.compile(r"--\s*name:\s*(\S(?:.*\S)?)\s*$")  # the rest of the line: a name may hold spaces
# what EXPLAIN plans: the other statements pg_stat_statements records (SET, COPY, VACUUM, EXPLAIN …) are not workload
_EXPLAINABLE = re.compile(r"[(\s]*(select|with|values|table|insert|update|delete|merge)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Statement:
    """One statement to analyse: its name, its SQL and, from pg_stat_statements, its calls and times."""

    name: str
    text: str
    calls: int | None = None
    mean_ms: float | None = None
    total_ms: float | None = None
    # the role that ran it (pg_stat_statements; "" where it no longer exists): planned only where it is the
    # DBA's own role or a superuser (see plans.explain); None: the runbook's own statements (the catalogue,
    # a .sql file, query=), planned as the DBA
    author: str | None = None


@dataclass
class Workload:
    """The statements chosen: `kind` ("catalogue", "top" or "file"), where they come from in words, the
    statements, why there are none ("" when there are), and where they run when that needs saying."""

    kind: str
    source: str
    statements: list[Statement]
    why_none: str = ""
    runs_on: str = ""
    chosen_by: str = ""  # why "auto" chose them
    texts: dict[str, str] = field(init=False, repr=False)
    authors: dict[str, str | None] = field(init=False, repr=False)  # who each was planned as (Statement.author)

    def __post_init__(self) -> None:
        self.texts = {s.name: s.text for s in self.statements}
        self.authors = {s.name: s.author for s in self.statements}

    def verdict(self, conn: psycopg.Connection, params: dict | None) -> dict:
        """Step 1's check, as keyword arguments of prep_ops.check: statements found, and for the catalogue
        a database that has the school's tables and data (must hold); SKIP when there are none."""
        name = "statements to analyse"
        where = conn.info.dbname + (f", {self.runs_on}" if self.runs_on else "")
        if not self.statements:
            return {"name": name, "passed": False, "skipped": self.why_none}
        if params is None:
            return {"name": name, "passed": False,
                    "detail": f"the school's catalogue needs the school's tables; {conn.info.dbname} has none",
                    "fix": "queries='top' or a .sql file analyses this database's own statements; scale > 0 a sample "
                           "of the school's (confirm=True outside a scratch server)"}
        if self.kind == "catalogue" and params.get("course_id") is None:
            return {"name": name, "passed": False,
                    "detail": f"{conn.info.dbname} has no enrollments to take parameters from",
                    "fix": "load data first (01_schema_setup) or use scale > 0"}
        chosen = f" ({self.chosen_by})" if self.chosen_by else ""
        detail = f"{len(self.statements)} {self.source}{chosen}, on {where}"
        return {"name": name, "passed": True, "detail": detail + (f", parameters {params}" if params else "")}


def school_schema_present(conn: psycopg.Connection) -> bool:
    """Whether the database has the school's tables (those the query catalogue reads). Read from the
    catalog by name only: a table's size would wait behind a lock held on it (an incident's blocker)."""
    return schema.EXPECTED_TABLES <= {name for space, name in objects.tables(conn) if space == "public"}


def choose(conn: psycopg.Connection, queries: str = "auto", *, top: int = TOP) -> Workload:
    """The statements `queries` names: "auto" (the school's catalogue where the school's schema is, else
    "top"), "top" (pg_stat_statements), "catalogue", or a path to a .sql file."""
    if not isinstance(queries, str) or not queries.strip():
        raise ParameterError(f"queries must be one of {', '.join(CHOICES)} or a path to a .sql file, not {queries!r}")
    chosen = queries
    if queries == "auto":
        chosen = "catalogue" if school_schema_present(conn) else "top"
    if chosen in CHOICES:
        work = catalogue() if chosen == "catalogue" else top_statements(conn, top)
    else:
        work = from_file(queries)
    if queries == "auto":
        work.chosen_by = "auto: the school's schema is here" if chosen == "catalogue" else "auto: no school schema here"
    return work


def catalogue() -> Workload:
    """The school's query catalogue (prep_ops/sql/catalogue/), with %(name)s parameters."""
    return Workload("catalogue", "queries of the school's catalogue",
                    [Statement(name, text) for name, text in plans.catalogue().items()])


def top_statements(conn: psycopg.Connection, limit: int = TOP) -> Workload:
    """The target's own statements taking the most total time, from pg_stat_statements (whole, normalised
    with $1 parameters): those EXPLAIN plans, and only those that read or write a table outside the
    system catalogs (not SET, SELECT 1, or a tool's catalog reads, prep-ops' own included). Where
    pg_stat_statements cannot be read: none, and `why_none` says why and how to enable it."""
    frame = top_queries(conn, CANDIDATES, width=WHOLE)
    source = "statements taking the most time in pg_stat_statements"
    if frame.attrs["source"] != "pg_stat_statements":
        return Workload("top", source, [], f"pg_stat_statements unavailable ({frame.attrs['why']}); {HOW_TO_ENABLE}")
    hidden = frame[frame["query"] == HIDDEN]  # another role's, to a role without pg_read_all_stats
    if len(hidden):
        source += (f" ({len(hidden)} statement(s) of other roles not shown, {hidden['total_ms'].sum():,.0f} ms in all: "
                   "their text needs pg_read_all_stats or a superuser)")
    found: list[Statement] = []
    for row in frame.itertuples(index=False):
        if len(found) == limit:
            break
        if explainable(row.query) and _reads_user_tables(conn, row.query, row.author):
            found.append(Statement(f"top {len(found) + 1}", row.query, int(row.calls), float(row.mean_ms),
                                   float(row.total_ms), row.author))
    why = "" if found else ("pg_stat_statements holds no statement on this database's tables yet: "
                            "run the workload, or name a statement with query=…")
    return Workload("top", source, found, why)


def explainable(text: str) -> bool:
    """Whether the statement is one EXPLAIN plans (SELECT, WITH, VALUES, TABLE, INSERT, UPDATE, DELETE, MERGE)."""
    return bool(_EXPLAINABLE.match(split_comments(text)[1]))


_SYSTEM_SCHEMAS = {"pg_catalog", "information_schema", "pg_toast"}


def _reads_user_tables(conn: psycopg.Connection, text: str, author: str) -> bool:
    """Whether the statement's plan (EXPLAIN VERBOSE without ANALYZE: not run) reads a relation outside the
    system schemas, by the schema each plan node names: a user's table called pg_class is a user table. One
    that cannot be planned here (another role's: see plans.explain) is kept: the report says why."""
    try:
        plan = plans.explain(conn, text, analyze=False, as_role=author)
    except (PrepOpsError, psycopg.Error):
        return True
    read = plan.nodes.loc[plan.nodes["relation"].notna(), "schema"] if len(plan.nodes) else []
    return any(schema not in _SYSTEM_SCHEMAS for schema in read)  # None (no schema named): kept


def split_comments(chunk: str) -> tuple[str | None, str]:
    """A statement's name (from a `-- name: xyz` comment before it, else None) and its text without the
    comments and semicolons around it."""
    import sqlparse

    tokens = list(sqlparse.parse(chunk)[0].flatten()) if chunk.strip() else []
    name, start, end = None, 0, len(tokens)
    skipped = sqlparse.tokens.Comment
    while start < end and (tokens[start].is_whitespace or tokens[start].ttype in skipped):
        found = _NAME.match(tokens[start].value) if tokens[start].ttype in skipped else None
        name = found.group(1) if found else name
        start += 1
    while end > start and (tokens[end - 1].is_whitespace or tokens[end - 1].ttype in skipped
                           or tokens[end - 1].value == ";"):
        end -= 1
    return name, "".join(t.value for t in tokens[start:end])


def from_file(path: "str | Path") -> Workload:
    """The statements of a .sql file (a relative path is read from the project folder), separated by `;`,
    each named by a `-- name: xyz` comment before it, else by the file and its place (`mine 3`)."""
    import sqlparse

    file = Path(path).expanduser()
    file = file if file.is_absolute() else project_dir() / file
    if file.suffix != ".sql":
        raise ParameterError(f"queries must be one of {', '.join(CHOICES)} or a path to a .sql file, not {str(path)!r}")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else exc
        raise ParameterError(f"cannot read the statements of {file}: {why}") from None
    statements: list[Statement] = []
    for chunk in sqlparse.split(text):
        name, body = split_comments(chunk)
        if body:
            name = name or f"{file.stem} {len(statements) + 1}"
            if name in {s.name for s in statements}:  # a name given twice: the second is told apart by its place
                name = f"{name} ({len(statements) + 1})"
            statements.append(Statement(name, body))
    if not statements:
        raise ParameterError(f"{file} holds no SQL statement")
    return Workload("file", f"statements of {file.name}", statements)


def lab_for(server: Target, work: Workload, scale: int, *, confirm: bool = False) -> Target | None:
    """A fresh lab database of this run with `scale` sample students of the school (dropped by the runbook
    at its end, else when its process exits, else by the next run), for the school's catalogue only; None
    where the target itself is analysed: any other statements, scale 0, or a server that is not scratch
    without `confirm` (nothing of the school's is made there)."""
    if work.kind != "catalogue" or not scale:
        work.runs_on = "the target itself" + (" (a sample serves only the school's catalogue)" if scale else "")
        return None
    if not (server.scratch or confirm):
        work.runs_on = f"the target itself: a sample of {scale:,} students needs a scratch server or confirm=True"
        return None
    lab = scratch.lab_database(server, scale, confirm=confirm)
    atexit.register(_drop_quietly, server, lab.database)
    work.runs_on = f"a sample of {scale:,} students, dropped at the end"
    return lab


def _drop_quietly(server: Target, name: str) -> None:
    """Drop a lab at exit (a run stopped by a failed check never reaches its last cell)."""
    try:
        scratch.drop(server, name)
    except (PrepOpsError, psycopg.Error):
        pass  # the server is gone: the next run drops what is left (scratch.remove_stale)


def parameters(conn: psycopg.Connection, work: Workload) -> dict | None:
    """Parameter values for the statements where they run: the catalogue's from its data, {} for any other
    statements; None where the catalogue has no school tables to read."""
    if work.kind != "catalogue":
        return {}
    try:
        return plans.catalogue_params(conn)
    except psycopg.errors.UndefinedTable:
        return None
