"""Does it exist? One small probe per kind of object (role, database, schema, table or view, column,
function, extension), row counts of the tables that do, and whose code a write would run: the questions
every capability asks the catalogs before it acts. Every such probe lives here."""

from collections.abc import Iterable

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from .errors import ForeignTriggerError
from .sqlfiles import load


def role_exists(conn: psycopg.Connection, name: str) -> bool:
    """True when role `name` exists on the server."""
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is not None


def existing_roles(conn: psycopg.Connection, names: Iterable[str]) -> list[str]:
    """Those of `names` that are roles on the server, in the order given."""
    found = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (list(names),))}
    return [n for n in names if n in found]


def database_exists(conn: psycopg.Connection, name: str) -> bool:
    """True when database `name` exists on the server."""
    return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def schema_exists(conn: psycopg.Connection, name: str) -> bool:
    """True when schema `name` exists in this database."""
    return conn.execute("SELECT to_regnamespace(%s)", (sql.Identifier(name).as_string(None),)).fetchone()[0] is not None


# The names of prep-ops' own schemas: the audit log (migration 0006, or audit_log.install) and the masked
# views with their salt (0007). Their grants are their modules' business, never roles-as-code's.
OWN_SCHEMAS = ("audit", "masked", "masking_private")


def own_schemas(conn: psycopg.Connection) -> tuple[str, ...]:
    """Those of OWN_SCHEMAS that are prep-ops' in this database, known by the objects prep-ops made there:
    a database's own `audit` or `masked` schema is one of its user schemas like any other."""
    return tuple(name for name, in conn.execute(load("catalog", "own_schemas"), {"names": list(OWN_SCHEMAS)}))


def foreign_audit_schema(conn: psycopg.Connection, ours: tuple[str, ...] | None = None) -> str:
    """Why prep-ops' audit log cannot be made here ("" when it can): a schema `audit` of the database's own.
    `ours`: own_schemas(conn), when the caller has it already."""
    taken = (conn.execute("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'audit')").fetchone()[0]
             and "audit" not in (own_schemas(conn) if ours is None else ours))
    return ("schema audit is the database's own (no prep-ops audit log in it), and prep-ops' audit log "
            "needs that name: not made") if taken else ""


def user_schemas(conn: psycopg.Connection, *, excluded: Iterable[str] | None = None, grantable: bool = False) -> list[str]:
    """The schemas holding the database's own objects, public first: not the system schemas, not one an
    extension made, not prep-ops' own (`excluded`; None: own_schemas); with `grantable`, only those the
    connecting role may grant in (public, a schema of a role it is or is a member of; all for a superuser)."""
    excluded = own_schemas(conn) if excluded is None else excluded
    return [name for name, in conn.execute(load("catalog", "user_schemas"),
                                            {"excluded": list(excluded), "grantable": grantable})]


def relation_exists(conn: psycopg.Connection, name: str, schema: str = "public") -> bool:
    """True when a table, view or sequence `schema.name` exists in this database."""
    qualified = sql.Identifier(schema, name).as_string(None)
    return conn.execute("SELECT to_regclass(%s)", (qualified,)).fetchone()[0] is not None


def function_exists(conn: psycopg.Connection, signature: str) -> bool:
    """True when the function of `signature` (e.g. "audit.log_change()") exists in this database."""
    return conn.execute("SELECT to_regprocedure(%s)", (signature,)).fetchone()[0] is not None


def function_name_exists(conn: psycopg.Connection, name: str, schema: str) -> bool:
    """True when exactly one function `schema.name` exists, whatever its arguments (to_regproc's rule)."""
    return conn.execute("SELECT to_regproc(%s)", (sql.Identifier(schema, name).as_string(None),)).fetchone()[0] is not None


def columns(conn: psycopg.Connection, name: str, schema: str = "public") -> list[str]:
    """The column names of table or view `schema.name` in column order; [] when there is no such relation."""
    return [column for column, in conn.execute(load("catalog", "columns"), {"schema": schema, "name": name})]


def extension(conn: psycopg.Connection, name: str) -> tuple[str, str] | None:
    """(schema, version) of extension `name` when it is installed in this database, else None."""
    found = conn.execute(load("catalog", "extension"), {"name": name}).fetchone()
    return tuple(found) if found is not None else None


def extension_available(conn: psycopg.Connection, name: str) -> bool:
    """True when the server offers extension `name` to install (its files are there)."""
    return conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = %s", (name,)).fetchone() is not None


def views(conn: psycopg.Connection, schema: str) -> list[str]:
    """The names of the views in `schema`, sorted."""
    rows = conn.execute("SELECT viewname FROM pg_views WHERE schemaname = %s ORDER BY viewname", (schema,))
    return [name for name, in rows]


def row_counts(conn: psycopg.Connection, tables: Iterable[str], schema: str = "public") -> dict[str, int]:
    """Exact row counts of those of `tables` (in `schema`) that exist, read in one snapshot when the
    caller opened one."""
    present = [t for t in tables if relation_exists(conn, t, schema)]
    return {t: conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, t))).fetchone()[0]
            for t in present}


def foreign_triggers(conn: psycopg.Connection, tables: Iterable["str | tuple[str, str]"] | None = None, *,
                     trust_current_user: bool = True) -> list[dict]:
    """The code that writing `tables` would run with the writer's privileges although another role owns it:
    one dict (schema, table, kind, name, function_schema, function_name, function_arguments, owner) per
    enabled trigger, column default, CHECK constraint, index expression (a function called directly or
    through an operator) or CHECK or DEFAULT of a column's domain whose function is owned by a role that is neither a
    superuser nor (with `trust_current_user`) the connected one. Tables: "name" (in
    public) or (schema, name); None for every table. Their partitions and the tables that reference them by
    foreign key count too (TRUNCATE ... CASCADE, ON DELETE actions and row routing write those)."""
    names = None if tables is None else [
        sql.Identifier(*(t if isinstance(t, tuple) else ("public", t))).as_string(None) for t in tables]
    trusted = conn.execute("SELECT current_user").fetchone()[0] if trust_current_user else None
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(load("catalog", "foreign_code"), {"tables": names, "trusted": trusted}).fetchall()


def describe_code(row: dict) -> str:
    """One row of foreign_triggers in words: 'trigger "t" on "public"."users" runs "public"."f"() owned by dba'."""
    function = sql.Identifier(row["function_schema"], row["function_name"]).as_string(None)
    table = sql.Identifier(row["schema"], row["table"]).as_string(None)
    return (f"{row['kind']} {sql.Identifier(row['name']).as_string(None)} on {table} runs "
            f"{function}({row['function_arguments']}) owned by {row['owner']}")


def refuse_foreign_triggers(conn: psycopg.Connection, tables: Iterable["str | tuple[str, str]"] | None,
                            doing: str) -> None:
    """ForeignTriggerError, naming trigger, table and owner, when writing `tables` (None: every table)
    would run code of a role that is neither the connected one nor a superuser; call it before `doing`
    writes as a superuser (seed, restore, maintenance, recovery's repair): the code would run as you."""
    found = foreign_triggers(conn, tables)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise ForeignTriggerError(
            f"refusing {doing}: {describe_code(found[0])}{more}, which is neither you nor a superuser; it would "
            f"run with your privileges. Review it, then drop or disable it, or make a superuser its owner")
