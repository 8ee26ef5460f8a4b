"""Throwaway databases on the target's server: made for one job, dropped after it.

`create`, `drop` and `existing` work on a connection to the server (any of its databases, in
autocommit mode: CREATE and DROP DATABASE run outside a transaction), so a job that makes and drops
several shares one; `recreate` and `sample_database` open it for a caller that has a Target only.
`drop` and `existing` take either.
"""

import contextlib

import psycopg
from psycopg import sql

from . import migrate, seed
from .db import Target, connect, require_change
from .errors import ParameterError

PREFIX = "prep_ops_"


@contextlib.contextmanager
def _server(where: "Target | psycopg.Connection"):
    """A connection to the server: the one given, or one opened (and closed) for a Target."""
    if isinstance(where, psycopg.Connection):
        yield where
        return
    with connect(where, autocommit=True) as conn:
        yield conn


def _drop(conn: psycopg.Connection, name: str) -> None:
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def create(conn: psycopg.Connection, name: str, *, confirm: bool = False) -> None:
    """An empty database `name` on the connection's server (dropped first if it exists).

    Only names starting with prep_ops_ are accepted, and never the connection's own database, so a
    real database cannot be dropped by mistake. Outside a scratch server, needs `confirm`.
    """
    if not name.startswith(PREFIX):
        raise ParameterError(f"scratch database names start with {PREFIX!r}, not {name!r}")
    if name == conn.info.dbname:
        raise ParameterError(f"{name!r} is the database being worked on; a scratch database must be another")
    require_change(conn, confirm, f"creating scratch database {name}")
    _drop(conn, name)
    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def recreate(server: Target, name: str, *, confirm: bool = False) -> Target:
    """The Target of an empty database `name` on the server of `server` (see `create`)."""
    with _server(server) as conn:
        create(conn, name, confirm=confirm)
    return server.with_database(name)


def drop(where: "Target | psycopg.Connection", name: str) -> None:
    """Drop scratch database `name` (prep_ops_ names only) if it exists, on the server `where` connects to."""
    with _server(where) as conn:
        if not name.startswith(PREFIX) or name == conn.info.dbname:
            raise ParameterError(f"{name!r} is not a scratch database")
        _drop(conn, name)


def existing(where: "Target | psycopg.Connection", prefix: str = PREFIX) -> list[str]:
    """The databases on the server `where` connects to whose names start with `prefix` (e.g. those a kind
    of job makes and should have dropped), sorted."""
    with _server(where) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s) ORDER BY 1", (prefix,)).fetchall()
    return [name for name, in rows]


def sample_database(server: Target, students: int, seed_value: int = 42, *, name: str = "prep_ops_sample",
                    confirm: bool = False, progress: bool = False) -> Target:
    """A fresh scratch database at the latest schema with `students` sample students."""
    target = recreate(server, name, confirm=confirm)
    with connect(target, autocommit=True) as conn:
        migrate.apply(conn, confirm=confirm)
        seed.seed(conn, students, seed_value, confirm=confirm, progress=progress)
    return target
