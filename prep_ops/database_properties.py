"""What a database has outside its contents: who may connect to it (its privileges), its comment,
connection limit, whether it allows connections, whether it is a template, and its settings (ALTER DATABASE ... SET, ALTER ROLE
... IN DATABASE ... SET). CREATE DATABASE does not copy them and pg_dump without --create leaves them
out. `grant_as_on` gives one database the privileges of another; `read` takes the rest from one
database, `carry` sets them on another. Every statement of `carry` may run inside a transaction
(verified on PostgreSQL 15 and 18), so a caller can make them part of a larger change.

The server stores a setting flattened, as 'name=value'. The value goes back as one string literal,
except for the variables whose list elements the server quotes as identifiers (search_path,
temp_tablespaces ...: pg_dump's list, dumputils.c variable_is_guc_list_quote): their value is split back
into its elements, each a literal, as pg_dump does. Given as one literal, `"Odd Schema", public` would
come back as a single schema named that whole text. `carry` reads back what it set and refuses a
setting that did not come back as it was read.
"""

from dataclasses import dataclass

import psycopg
from psycopg import sql

from .errors import BackupError
from .sqlfiles import load

# the GUC_LIST_QUOTE variables (pg_dump's list): their stored elements are identifiers, quoted when needed
_LIST_QUOTED = {"local_preload_libraries", "search_path", "session_preload_libraries", "shared_preload_libraries",
                "temp_tablespaces", "unix_socket_directories"}
_SPACE = " \t\n\r\f"  # the server's scanner_isspace


@dataclass(frozen=True)
class Properties:
    comment: str | None
    connection_limit: int  # -1: no limit
    allow_connections: bool
    is_template: bool
    settings: dict[str | None, list[str]]  # role (None: the database's own, every role) -> ['name=value', ...]


def read(conn: psycopg.Connection, name: str) -> Properties:
    """The comment, connection limit, ALLOW_CONNECTIONS, IS_TEMPLATE and settings of database `name`, as they are."""
    found = conn.execute(load("restore", "properties"), {"name": name}).fetchone()
    if found is None:
        raise BackupError(f"there is no database {name}")
    comment, limit, allow, template, settings = found
    return Properties(comment, limit, allow, template, {role: list(entries) for role, entries in settings})


def carry(conn: psycopg.Connection, properties: Properties, name: str) -> None:
    """Give database `name` these properties (a fresh database: it has no settings of its own yet), in the
    caller's transaction if it has one. Raises BackupError when a setting does not read back as given."""
    database = sql.Identifier(name)
    conn.execute(sql.SQL("ALTER DATABASE {} WITH CONNECTION LIMIT {} ALLOW_CONNECTIONS {} IS_TEMPLATE {}").format(
        database, sql.Literal(properties.connection_limit), sql.Literal(properties.allow_connections),
        sql.Literal(properties.is_template)))
    conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(database, sql.Literal(properties.comment)))
    for role, entries in properties.settings.items():
        alter = (sql.SQL("ALTER DATABASE {}").format(database) if role is None else
                 sql.SQL("ALTER ROLE {} IN DATABASE {}").format(sql.Identifier(role), database))
        for entry in entries:
            variable, value = entry.split("=", 1)  # a variable's name never holds '=' (pg_dump cuts here too)
            conn.execute(alter + sql.SQL(" SET {} = {}").format(sql.Identifier(variable), value_of(variable, value)))
    given = read(conn, name).settings
    for role in properties.settings.keys() | given.keys():
        if given.get(role, []) != properties.settings.get(role, []):
            who = "the database" if role is None else f"role {role}"
            # the variables only, not their values: a custom setting may hold a secret
            differ = set(given.get(role, [])) ^ set(properties.settings.get(role, []))
            names = sorted({entry.split("=", 1)[0] for entry in differ}) or ["their order"]
            raise BackupError(f"the settings of {who} in {name} did not read back as they were set: "
                              f"{', '.join(names)}")


_DATABASE_PRIVILEGES = {p: sql.SQL(p) for p in ("CONNECT", "CREATE", "TEMPORARY")}  # keywords from here only


def grant_as_on(conn: psycopg.Connection, source: str, name: str) -> None:
    """Who may connect to, create in and make temporary tables in database `name`: as on `source` (pg_dump
    leaves database privileges out, and a new database lets PUBLIC connect: a target closed to PUBLIC would
    come back open to every role of the server). What `name` granted before is revoked first: given again
    at the swap, a grant the DBA took back from `source` meanwhile does not stay on `name`."""
    grants = conn.execute(load("restore", "grants"), {"name": source}).fetchall()
    held = {grantee for grantee, _, _ in conn.execute(load("restore", "grants"), {"name": name}) if grantee is not None}
    database = sql.Identifier(name)
    conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(database))
    for grantee in sorted(held):
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM {} CASCADE").format(database, sql.Identifier(grantee)))
    for grantee, privilege, grantable in grants:
        conn.execute(sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
            _DATABASE_PRIVILEGES[privilege], database, sql.SQL("PUBLIC") if grantee is None else sql.Identifier(grantee),
            sql.SQL(" WITH GRANT OPTION") if grantable else sql.SQL("")))


def value_of(variable: str, value: str) -> sql.Composable:
    """The SQL value that sets `variable` to what the server stored as `value`."""
    elements = split_list(value) if variable.lower() in _LIST_QUOTED else None
    if elements is None:
        return sql.Literal(value)
    return sql.SQL(", ").join(sql.Literal(element) for element in elements)


def split_list(text: str) -> list[str] | None:
    """The elements of a stored list value (`"$user", "Odd Schema", public`): a quoted element unquoted
    ("" inside it is one "), an unquoted one as it is; None when `text` is no such list. The server's
    SplitGUCList, undoing the quoting of each element (an empty list, which it allows, is None here: it
    cannot be given back as a list)."""
    elements, at = [], len(text) - len(text.lstrip(_SPACE))
    while True:
        if at == len(text):
            return None  # nothing, or nothing after a comma
        if text[at] == '"':
            element, at = "", at + 1
            while True:
                end = text.find('"', at)
                if end < 0:
                    return None  # a quote never closed
                element += text[at:end]
                if text[end + 1:end + 2] != '"':
                    at = end + 1
                    break
                element, at = element + '"', end + 2
        else:
            start = at
            while at < len(text) and text[at] != "," and text[at] not in _SPACE:
                at += 1
            if at == start:
                return None  # an empty unquoted element
            element = text[start:at]
        elements.append(element)
        while at < len(text) and text[at] in _SPACE:
            at += 1
        if at == len(text):
            return elements
        if text[at] != ",":
            return None
        at += 1
        while at < len(text) and text[at] in _SPACE:
            at += 1
