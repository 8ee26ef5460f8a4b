"""Throwaway databases on the target's server: made for one job, dropped after it."""

from psycopg import sql

from . import migrate, seed
from .db import Target, connect
from .errors import ConfirmationRequired, ParameterError

PREFIX = "prep_ops_"


def recreate(server: Target, name: str, *, confirm: bool = False) -> Target:
    """An empty database `name` on the server of `server` (dropped first if it exists).

    Only names starting with prep_ops_ are accepted, and never the database `server` points at,
    so a real database cannot be dropped by mistake. Outside a scratch server, needs `confirm`.
    """
    if not name.startswith(PREFIX):
        raise ParameterError(f"scratch database names start with {PREFIX!r}, not {name!r}")
    if name == server.database:
        raise ParameterError(f"{name!r} is the database being worked on; a scratch database must be another")
    if not (server.scratch or confirm):
        raise ConfirmationRequired(f"creating scratch database {name} on {server.masked_url} needs confirm=True")
    with connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return server.with_database(name)


def drop(server: Target, name: str) -> None:
    """Drop scratch database `name` (prep_ops_ names only) if it exists."""
    if not name.startswith(PREFIX) or name == server.database:
        raise ParameterError(f"{name!r} is not a scratch database")
    with connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def existing(server: Target, prefix: str = PREFIX) -> list[str]:
    """The databases on the server of `server` whose names start with `prefix` (e.g. those a kind of job
    makes and should have dropped), sorted."""
    with connect(server, autocommit=True) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s) ORDER BY 1", (prefix,)).fetchall()
    return [name for name, in rows]


def sample_database(server: Target, students: int, seed_value: int = 42, *, name: str = "prep_ops_sample",
                    confirm: bool = False, progress: bool = False) -> Target:
    """A fresh scratch database at the latest schema with `students` sample students."""
    target = recreate(server, name, confirm=confirm)
    migrate.apply(target)
    seed.seed(target, students, seed_value, progress=progress)
    return target
