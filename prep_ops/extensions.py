"""Contrib extensions a capability needs (amcheck, pgstattuple ...): where they are, or why not.

A capability asks `find(conn, name, install=...)`: it gets the schema the extension lives in, to
call its functions schema-qualified, or None and one sentence saying why it cannot be used. The
extension is created only when the caller says so (on a scratch database); elsewhere the capability
reports SKIP with that sentence and falls back.
"""

import psycopg
from psycopg import sql

from .catalog import extension, extension_available
from .errors import first_line


def find(conn: psycopg.Connection, name: str, *, install: bool = False) -> tuple[str | None, str]:
    """The schema of extension `name` in this database and "" ; or None and why it cannot be used."""
    installed, available = extension(conn, name), extension_available(conn, name)
    if installed is None and available and install:
        try:
            with conn.transaction():
                conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(name)))
        except psycopg.Error as exc:
            return None, f"{name} could not be created: {first_line(exc)}"
        installed = extension(conn, name)
    if installed is not None:
        return installed[0], ""
    if available:
        return None, f"{name} is not installed in this database (CREATE EXTENSION {name}, as a superuser)"
    return None, f"this server does not offer {name} (install the PostgreSQL contrib package)"
