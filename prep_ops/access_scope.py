"""What runbook 06 looks at on this database: its generic steps everywhere, the school's where its schema is.

The school's schema is there where prep-ops' migrations were applied (`schema_version`), and expected
in a database without tables of its own yet (01_schema_setup makes it there). On any other database
the school-only steps (the schema version, the masked views, the analyst's view of them, the probe
change on `users`) are SKIP with `not_school` as the reason. The generic steps act on tables the
database really has: those named in `audit_tables`, and one table for the read-only proof.
"""

import json
import re
import shlex
from dataclasses import dataclass

import psycopg

from .audit_log import DEFAULT_TABLES
from .catalog import foreign_audit_schema, own_schemas, relation_exists, user_schemas
from .errors import ParameterError
from .migrate import current_version
from .schema import Table, resolve_tables, user_tables

PROOF_TABLE = "students"  # the school's table the read-only proof writes to


@dataclass(frozen=True)
class Scope:
    """The database as runbook 06 sees it."""

    school: bool
    not_school: str  # "" where the school's schema is; else why the school-only steps are skipped, one line
    schemas: tuple[str, ...]  # the user schemas roles-as-code grants in
    audited: tuple[Table, ...]  # the tables whose changes the audit log is to record
    audit_choice: str  # how `audited` was chosen, or why it is empty and how to choose
    proof_table: Table | None  # the table the read-only proof tries each write on; None: the database has none

    @property
    def audited_labels(self) -> list[str]:
        """The audited tables as audit_log.enabled() names them (schema.table, by name alone in public)."""
        return [t.label for t in self.audited]

    @property
    def no_proof_table(self) -> str:
        """Why the read-only proof cannot run ("" when it can)."""
        return "" if self.proof_table else "the database has no table to try writes on"


def _as_parameter(table: Table) -> str:
    """`table` as the shell word of a JSON list holding its name as in SQL: the label where it reads the
    same unquoted (`'["rental"]'`, `'["archive.old_rentals"]'`), else schema and name quoted."""
    plain = re.fullmatch(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?", table.label)
    return shlex.quote(json.dumps([table.label if plain else table.qualified], ensure_ascii=False))


def _audit_tables(conn: psycopg.Connection, audit_tables, school: bool, example: Table | None,
                  ours: tuple[str, ...]) -> tuple[list[Table], str]:
    taken = foreign_audit_schema(conn, ours)
    if taken:
        return [], taken
    if audit_tables is None:
        if school:
            present = [t for t in DEFAULT_TABLES if relation_exists(conn, t)]
            return resolve_tables(conn, present), "audit_tables not given: " + ", ".join(present or ["none present"])
        how = f"e.g. -p audit_tables {_as_parameter(example)}" if example else "none: the database has no tables"
        return [], f"audit_tables not given and nothing to choose by default on a database of its own schema: name tables, {how}"
    names = [audit_tables] if isinstance(audit_tables, str) else audit_tables
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise ParameterError(f"audit_tables must be a list of table names (schema.table or a name in public), "
                             f"not {audit_tables!r}")
    if not names:
        return [], "audit_tables is empty: no table chosen"
    try:
        chosen = resolve_tables(conn, names)
    except ParameterError as exc:
        raise ParameterError(f"audit_tables: {exc}") from None
    own = [t.label for t in chosen if t.schema in ours]
    if own:
        raise ParameterError(f"audit_tables: {', '.join(own)} belong(s) to prep-ops' own schemas, never audited")
    return chosen, "audit_tables: " + ", ".join(names)


def scope(conn: psycopg.Connection, audit_tables: "list[str] | str | None" = None) -> Scope:
    """This database's scope for runbook 06. `audit_tables`: tables named as in SQL (`archive.old_rentals`,
    `"Reporting"."Monthly Sales"`, a name alone in public); None: the school's three where its schema
    is, else none. A name that is no table is a ParameterError listing the tables of every schema."""
    ours = own_schemas(conn)
    tables = [t for t in user_tables(conn) if t.schema not in ours]  # the audit log is no table of theirs
    school = current_version(conn) > 0 or not tables
    not_school = "" if school else (
        f"{conn.info.dbname} has a schema of its own (no prep-ops migrations applied): this step is for the "
        "prep-ops schema only")
    plain = [t for t in tables if t.parent is None]  # not a partition: its parent stands for it
    if school and relation_exists(conn, PROOF_TABLE):
        proof = Table("public", PROOF_TABLE)
    else:
        proof = plain[0] if plain else None
    audited, choice = _audit_tables(conn, audit_tables, school, proof, ours)
    return Scope(school, not_school, tuple(user_schemas(conn, excluded=ours, grantable=True)), tuple(audited), choice, proof)
