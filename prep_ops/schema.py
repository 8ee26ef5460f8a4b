"""What the database's schema holds (tables, constraints, indexes), and what it must hold; and the
tables of every user schema, with the one way a caller names them (`resolve_tables`)."""

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd
import psycopg
import psycopg.errors
from psycopg import sql

from .db import fetch_frame, snapshot
from .errors import ParameterError
from .labels import label
from .sqlfiles import load

# What the latest migration must have made: checked by the schema setup runbook and the tests.
EXPECTED_TABLES = {"users", "students", "teachers", "courses", "schema_version", "enrollments",
                   "tuition_payments"}
EXPECTED_INDEXES = {"idx_users_email", "idx_students_level_instrument", "idx_users_username",
                    "idx_tuition_payments_student_id", "enrollments_student_course_term_key",
                    "students_user_id_key", "teachers_user_id_key"}
EXPECTED_CHECKS = {"users_role_check", "users_email_format_check", "students_level_check",
                   "courses_level_check", "enrollments_status_check", "tuition_payments_amount_check",
                   "tuition_payments_method_check"}


def tables(conn: psycopg.Connection) -> pd.DataFrame:
    """Tables of the public schema: columns, estimated rows, size."""
    return fetch_frame(conn, load("schema", "tables"))


def constraints(conn: psycopg.Connection) -> pd.DataFrame:
    """Primary key, foreign key, unique and check constraints of the public schema."""
    return fetch_frame(conn, load("schema", "constraints"))


def indexes(conn: psycopg.Connection) -> pd.DataFrame:
    """Indexes of the public schema with their definitions."""
    return fetch_frame(conn, load("schema", "indexes"))


def missing(conn: psycopg.Connection) -> dict[str, set[str]]:
    """Expected tables, indexes and check constraints that the database lacks (empty sets: all there),
    read in one snapshot."""
    with snapshot(conn):
        return {
            "tables": EXPECTED_TABLES - set(tables(conn)["table_name"]),
            "indexes": EXPECTED_INDEXES - set(indexes(conn)["index_name"]),
            "checks": EXPECTED_CHECKS - set(constraints(conn)["constraint_name"]),
        }


def in_words(found: dict[str, set[str]]) -> str:
    """What `missing` found, in one line: "all present", or "missing: tables x, y; checks z"."""
    parts = [f"{kind} {', '.join(sorted(names))}" for kind, names in found.items() if names]
    return "missing: " + "; ".join(parts) if parts else "all present"


@dataclass(frozen=True)
class Table:
    """One table of a user schema: schema and name as the catalog spells them (unquoted)."""

    schema: str
    name: str
    kind: str = "r"  # r: table, p: partitioned parent (no storage), m: materialized view
    parent: str | None = None  # a partition's parent, as regclass text

    @property
    def identifier(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    @property
    def qualified(self) -> str:
        """schema.name as SQL writes it (quoted where needed)."""
        return self.identifier.as_string(None)

    @property
    def label(self) -> str:
        """schema.name as a person reads it: the name alone in public."""
        return self.name if self.schema == "public" else f"{self.schema}.{self.name}"


def user_tables(conn: psycopg.Connection, *, materialized: bool = False) -> list[Table]:
    """Tables of every user schema (public first): partitioned parents and partitions included; not the
    system schemas, not tables an extension owns; materialized views with `materialized`."""
    rows = conn.execute(load("schema", "user_tables")).fetchall()
    return [Table(schema, name, kind, parent) for schema, name, _oid, kind, _part, parent in rows
            if materialized or kind != "m"]


def _names_of(table: Table) -> set[str]:
    return {table.qualified, f"{table.schema}.{table.name}", label(table.schema, table.name)} | \
        ({table.name} if table.schema == "public" else set())


def _as_sql_parses(conn: psycopg.Connection, name: str) -> str | None:
    """`name` read by the server as SQL reads a (schema-qualified) name, in the spelling `_names_of`
    gives (quoted schema.name, or the bare name); None when it is no such name."""
    try:
        with conn.transaction():
            parts = conn.execute("SELECT parse_ident(%s)", [name]).fetchone()[0]
    except psycopg.errors.InvalidParameterValue:  # not a valid name in SQL
        return None
    return sql.Identifier(*parts).as_string(None) if len(parts) == 2 else parts[0] if len(parts) == 1 else None


def resolve_tables(conn: psycopg.Connection, names: str | Iterable[str], *, materialized: bool = False) -> list[Table]:
    """`names` as tables of the database, duplicates dropped, in the order given.

    A table is named as in SQL (`archive.old_rentals`, `"Reporting"."Monthly Sales"`, `"Sales".animal`:
    the server's parse_ident reads it, unquoted parts folded to lower case), as schema.name
    unquoted, or by its name alone: in `public` first (as the default search_path finds it), else in
    the one schema that has it. Anything else is a ParameterError listing the tables of every schema.
    """
    wanted = [names] if isinstance(names, str) else list(names)
    known = user_tables(conn, materialized=materialized)
    by_name: dict[str, list[Table]] = {}
    for table in known:
        for name in _names_of(table):
            by_name.setdefault(name, []).append(table)
        by_name.setdefault(table.name, []).append(table)  # a bare name outside public: unique or ambiguous
    chosen = []
    for name in wanted:
        found = by_name.get(name, []) if isinstance(name, str) else []
        if not found and isinstance(name, str):  # any other SQL spelling: "Sales".animal, as regclass prints it
            found = by_name.get(_as_sql_parses(conn, name), [])
        found = list(dict.fromkeys(found))
        public = [t for t in found if t.schema == "public"]
        if len(found) > 1 and not public:
            raise ParameterError(f"table {name!r} is in several schemas ({', '.join(t.schema for t in found)}): "
                                 "name it as schema.table")
        if not found:
            listed = ", ".join(t.label for t in known) if known else "none (the database has no tables)"
            raise ParameterError(f"unknown table {name!r}; tables of every schema are: {listed}")
        chosen.append(public[0] if public else found[0])
    return list(dict.fromkeys(chosen))
