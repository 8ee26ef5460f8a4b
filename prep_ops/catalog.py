"""Does it exist? One small probe per kind of object (role, schema, table or view, function), and row
counts of the tables that do: the questions every capability asks the catalogs before it acts."""

from collections.abc import Iterable

import psycopg
from psycopg import sql


def role_exists(conn: psycopg.Connection, name: str) -> bool:
    """True when role `name` exists on the server."""
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is not None


def existing_roles(conn: psycopg.Connection, names: Iterable[str]) -> list[str]:
    """Those of `names` that are roles on the server, in the order given."""
    found = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (list(names),))}
    return [n for n in names if n in found]


def schema_exists(conn: psycopg.Connection, name: str) -> bool:
    """True when schema `name` exists in this database."""
    return conn.execute("SELECT to_regnamespace(%s)", (sql.Identifier(name).as_string(None),)).fetchone()[0] is not None


def relation_exists(conn: psycopg.Connection, name: str, schema: str = "public") -> bool:
    """True when a table, view or sequence `schema.name` exists in this database."""
    qualified = sql.Identifier(schema, name).as_string(None)
    return conn.execute("SELECT to_regclass(%s)", (qualified,)).fetchone()[0] is not None


def function_exists(conn: psycopg.Connection, signature: str) -> bool:
    """True when the function of `signature` (e.g. "audit.log_change()") exists in this database."""
    return conn.execute("SELECT to_regprocedure(%s)", (signature,)).fetchone()[0] is not None


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
