"""Masked views for analysts: the shape of the school's data without the people in it.

Schema `masked` has one view per table, same rows and keys; e-mails keep their domain behind a
salted pseudonym, names become initials, dates of birth become years, guardian contacts keep
initials and an area code, recordings become a yes/no (see prep_ops/sql/masking/install.sql). The
analyst role gets SELECT on these views and nothing on the tables: the views read the tables with
their owner's privileges.

The views depend on the tables' columns: migrating down past them needs `remove()` first.
"""

import pandas as pd
import psycopg
from psycopg import sql

from .db import Target, connect, fetch_frame
from .errors import ConfirmationRequired, MaskingError, ParameterError, database_error
from .roles import RoleSet
from .sqlfiles import load

SCHEMA = "masked"
VIEWS = ("users", "students", "teachers", "courses", "enrollments", "tuition_payments")
_LOCK = 0x6D61736B  # advisory lock key ("mask")


def apply(target: Target, roles: RoleSet = RoleSet(), *, confirm: bool = False) -> list[str]:
    """Create or replace the masked views and let `roles.analyst` read them (and only them); returns
    the views. Outside a scratch database, needs `confirm`."""
    if not (target.scratch or confirm):
        raise ConfirmationRequired(f"creating masked views on {target.masked_url} needs confirm=True")
    analyst = roles.analyst
    with connect(target) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (analyst,)).fetchone():
            raise ParameterError(f"there is no role {analyst!r} to read the masked views: apply the roles first")
        try:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            conn.execute(load("masking", "install"))
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA masked TO {}").format(sql.Identifier(analyst)))
            conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA masked TO {}").format(sql.Identifier(analyst)))
            conn.commit()
        except psycopg.Error as exc:
            conn.rollback()
            raise database_error(exc, "creating the masked views failed, nothing changed", MaskingError) from None
    return [f"{SCHEMA}.{v}" for v in VIEWS]


def views(target: Target) -> list[str]:
    """The masked views present, as masked.<name>."""
    with connect(target, autocommit=True) as conn:
        rows = conn.execute("SELECT viewname FROM pg_views WHERE schemaname = %s ORDER BY viewname", (SCHEMA,)).fetchall()
    return [f"{SCHEMA}.{name}" for name, in rows]


def remove(target: Target, *, confirm: bool = False) -> bool:
    """Drop the masked views (e.g. before migrating down); the salt stays, so pseudonyms stay the same
    when they come back. Returns False when there were none. Outside a scratch database, needs `confirm`."""
    if not (target.scratch or confirm):
        raise ConfirmationRequired(f"dropping the masked views on {target.masked_url} needs confirm=True")
    with connect(target, autocommit=True) as conn:
        if conn.execute("SELECT to_regnamespace(%s)", (SCHEMA,)).fetchone()[0] is None:
            return False
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(SCHEMA)))
    return True


def leaks(target: Target) -> pd.DataFrame:
    """Per personal column, how many rows the masked views show unchanged (all 0 when masking works).
    Reads the tables, so run it as their owner, not as the analyst."""
    with connect(target, autocommit=True) as conn:
        frame = fetch_frame(conn, load("masking", "leaks"))
    frame["unmasked"] = frame["unmasked"].astype(int)
    return frame


def preview(login_target: Target, view: str = "students", limit: int = 5) -> pd.DataFrame:
    """The first `limit` rows of a masked view, read as the logged-in role (the analyst)."""
    if view not in VIEWS:
        raise ParameterError(f"no masked view {view!r}; the views are {', '.join(VIEWS)}")
    with connect(login_target, autocommit=True) as conn:
        query = sql.SQL("SELECT * FROM {} ORDER BY id LIMIT %s").format(sql.Identifier(SCHEMA, view))
        return fetch_frame(conn, query, (int(limit),))


def by_instrument(login_target: Target) -> pd.DataFrame:
    """Students enrolled or completed per instrument and level with their mean age, from the masked
    views: what an analyst can still work out."""
    with connect(login_target, autocommit=True) as conn:
        return fetch_frame(conn, load("masking", "by_instrument"))
