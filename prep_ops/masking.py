"""Masked views for analysts: the shape of the school's data without the people in it.

Schema `masked` has one view per table, same rows and keys; e-mails keep their domain behind a
salted pseudonym, names become initials, dates of birth become years, guardian contacts keep
initials and an area code, recordings become a yes/no (see prep_ops/sql/masking/install.sql). The
analyst role gets SELECT on these views and nothing on the tables: the views read the tables with
their owner's privileges.

The schemas `masked` and `masking_private` (the salt, the masking functions) come from migration
0007_masking; 0008 gives the functions schema-qualified calls and a fixed search_path, so objects a
caller puts first on its path never see the salt. This module makes the views and grants. The views depend on the tables' columns:
a down migration drops them first (migrate._drop_derived).
"""

import pandas as pd
import psycopg
from psycopg import sql

from .catalog import role_exists, schema_exists
from .catalog import views as catalog_views
from . import lock_watch
from .db import Target, bounded_lock_wait, connect, fetch_frame, require_change, snapshot
from .errors import LockBusy, MaskingError, ParameterError, database_error
from .roles import RoleSet
from .sqlfiles import load

SCHEMA = "masked"
VIEWS = ("users", "students", "teachers", "courses", "enrollments", "tuition_payments")
_LOCK = 0x6D61736B  # advisory lock key ("mask")


def apply(conn: psycopg.Connection, roles: RoleSet = RoleSet(), *, confirm: bool = False) -> list[str]:
    """Create or replace the masked views and let `roles.analyst` read them (and only them); returns
    the views. Outside a scratch database, needs `confirm`."""
    require_change(conn, confirm, "creating the masked views")
    analyst = roles.analyst
    if not role_exists(conn, analyst):
        raise ParameterError(f"there is no role {analyst!r} to read the masked views: apply the roles first")
    if not schema_exists(conn, SCHEMA):
        raise MaskingError(f"there is no schema {SCHEMA} in {conn.info.dbname}: migrate to the latest version first "
                           "(prep-ops migrate)")
    wait = None
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            wait = lock_watch.limit_ddl_wait(conn)  # a view replaced behind an analyst's long read stalls the others'
            conn.execute(load("masking", "install"))
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(SCHEMA), sql.Identifier(analyst)))
            conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(
                sql.Identifier(SCHEMA), sql.Identifier(analyst)))
            wait.done(conn)
    except psycopg.errors.LockNotAvailable:
        raise MaskingError(f"creating the masked views failed, nothing changed: {lock_watch.gave_up(conn, wait)}") from None
    except psycopg.Error as exc:
        raise database_error(exc, "creating the masked views failed, nothing changed", MaskingError) from None
    return [f"{SCHEMA}.{v}" for v in VIEWS]


def views(conn: psycopg.Connection) -> list[str]:
    """The masked views present, as masked.<name>."""
    return [f"{SCHEMA}.{name}" for name in catalog_views(conn, SCHEMA)]


def remove(conn: psycopg.Connection, *, confirm: bool = False) -> bool:
    """Drop the masked views (e.g. before migrating down); the schema and the salt stay (they come from
    migration 0007), so pseudonyms stay the same when they come back. Returns False when there were
    none. Outside a scratch database, needs `confirm`."""
    require_change(conn, confirm, "dropping the masked views")
    present = catalog_views(conn, SCHEMA)
    if not present:
        return False
    conn.execute(sql.SQL("DROP VIEW {}").format(sql.SQL(", ").join(sql.Identifier(SCHEMA, v) for v in present)))
    return True


def leaks(conn: psycopg.Connection) -> pd.DataFrame:
    """Per personal column, how many rows the masked views show unchanged (all 0 when masking works).
    Reads the tables, so run it as their owner, not as the analyst. Behind another session's ACCESS
    EXCLUSIVE lock on one of them it waits db.LOCK_WAIT at most, then raises errors.LockBusy (see `unmasked`)."""
    with snapshot(conn), bounded_lock_wait(conn, "the masked views' personal columns"):
        frame = fetch_frame(conn, load("masking", "leaks"))
    frame["unmasked"] = frame["unmasked"].astype(int)
    return frame


def unmasked(conn: psycopg.Connection) -> tuple[pd.DataFrame | None, str]:
    """(leaks, "") or, where a table behind the views is locked by another session, (None, why): a SKIP
    naming the table and its holder, never a verdict on views that were not read."""
    try:
        return leaks(conn), ""
    except LockBusy as busy:
        return None, lock_watch.not_read(conn, busy)


def preview(conn: psycopg.Connection, view: str = "students", limit: int = 5) -> pd.DataFrame:
    """The first `limit` rows of a masked view, read on `conn` (the analyst's, see access.login)."""
    if view not in VIEWS:
        raise ParameterError(f"no masked view {view!r}; the views are {', '.join(VIEWS)}")
    query = sql.SQL("SELECT * FROM {} ORDER BY id LIMIT %s").format(sql.Identifier(SCHEMA, view))
    return fetch_frame(conn, query, (int(limit),))


def by_instrument(conn: psycopg.Connection) -> pd.DataFrame:
    """Students enrolled or completed per instrument and level with their mean age, from the masked
    views: what an analyst can still work out (read on the analyst's connection)."""
    return fetch_frame(conn, load("masking", "by_instrument"))


def seen_by(login_target: Target) -> list[pd.DataFrame]:
    """What the logged-in role (the analyst) sees, read on one connection as that role: the first rows
    of masked users and students, and the first rows of `by_instrument`."""
    with connect(login_target, autocommit=True) as conn, snapshot(conn):
        return [preview(conn, "users"), preview(conn, "students"), by_instrument(conn).head(10)]
