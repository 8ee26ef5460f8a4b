"""Contrib extensions a capability needs (amcheck, pgstattuple ...): where they are, or why not.

A capability asks `find(conn, name, install=...)`: it gets the schema the extension lives in, to
call its functions schema-qualified, or None and one sentence saying why it cannot be used. The
extension is created only when the caller says so (on a scratch database); elsewhere the capability
reports SKIP with that sentence and falls back.
"""

import psycopg
from psycopg import sql

from .errors import first_line
from .sqlfiles import load



def find(conn: psycopg.Connection, name: str, *, install: bool = False) -> tuple[str | None, str]:
    """The schema of extension `name` in this database and "" ; or None and why it cannot be used."""
    schema, available = conn.execute(load("extensions", "state"), {"name": name}).fetchone()
    if schema is None and available and install:
        try:
            with conn.transaction():
                conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(name)))
        except psycopg.Error as exc:
            return None, f"{name} could not be created: {first_line(exc)}"
        schema, available = conn.execute(load("extensions", "state"), {"name": name}).fetchone()
    if schema is not None:
        return schema, ""
    if available:
        return None, f"{name} is not installed in this database (CREATE EXTENSION {name}, as a superuser)"
    return None, f"this server does not offer {name} (install the PostgreSQL contrib package)"
