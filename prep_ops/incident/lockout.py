"""Keeping a role off the database during an incident, reversibly: its sessions, a block (connection
limit 0, sessions ended), a lock-out (NOLOGIN as well), and the statements that undo each.

Functions here return `Action`s; the incident record runs them (or, in live mode without confirm,
only shows them). The connection limit is PostgreSQL's own per-role limit: a role at limit 0 cannot
open a new session, while superusers (the DBA) still can; the role's previous limit is read first,
so resuming puts back exactly what was there.
"""

import pandas as pd
import psycopg
from psycopg import sql

from ..db import Target, fetch_frame
from ..errors import ParameterError, first_line
from .record import Action
from ..sqlfiles import load


def _role(conn: psycopg.Connection, role: str) -> dict:
    row = conn.execute("SELECT rolcanlogin, rolconnlimit, rolsuper, rolname IN (current_user, session_user) "
                       "FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    if row is None:
        raise ParameterError(f"no role {role!r} on this server")
    return {"login": row[0], "limit": row[1], "superuser": row[2], "running": row[3]}


def _refuse_running(role: str, found: dict) -> None:
    """The role this connection logged in or acts as is never blocked: its own connection limit 0 would keep
    the runbook (and the DBA) from connecting again, and undoing it needs a connection."""
    if found["running"]:
        raise ParameterError(f"{role} is the role running this runbook: blocking it would lock you out (a new "
                             "connection as it is refused); name the application's own role, or run as another")


def state(conn: psycopg.Connection, role: str) -> dict:
    """What the incident record keeps of a role before blocking it: its name, LOGIN and connection limit."""
    found = _role(conn, role)
    return {"role": role, "login": found["login"], "connection_limit": found["limit"]}


def sessions(conn: psycopg.Connection, role: str) -> pd.DataFrame:
    """The sessions `role` has open on the server (any database), oldest first."""
    return fetch_frame(conn, load("service", "sessions"), {"role": role})


def _end_sessions(role: str) -> Action:
    statement = sql.SQL(load("service", "end_sessions")).format(role=sql.Literal(role))
    return Action(" ".join(line for line in statement.as_string(None).splitlines() if not line.startswith("--")), statement)


def _limit(role: str, limit: int) -> Action:
    statement = sql.SQL("ALTER ROLE {} CONNECTION LIMIT {}").format(sql.Identifier(role), sql.Literal(int(limit)))
    return Action(f'ALTER ROLE {sql.Identifier(role).as_string(None)} CONNECTION LIMIT {int(limit)}', statement,
                  server_wide=True)


def _login(role: str, login: bool) -> Action:
    word = "LOGIN" if login else "NOLOGIN"
    statement = sql.SQL("ALTER ROLE {} " + word).format(sql.Identifier(role))
    return Action(f"ALTER ROLE {sql.Identifier(role).as_string(None)} {word}", statement, server_wide=True)


def block(conn: psycopg.Connection, role: str) -> tuple[list[Action], list[Action]]:
    """The statements that keep `role` from connecting and end its sessions, and those that undo it.

    A superuser role is refused: a connection limit does not apply to it."""
    state = _role(conn, role)
    if state["superuser"]:
        raise ParameterError(f"{role} is a superuser: a connection limit does not stop it; block it with NOLOGIN by hand")
    _refuse_running(role, state)
    return [_limit(role, 0), _end_sessions(role)], [_limit(role, state["limit"])]


def lock_out(conn: psycopg.Connection, role: str) -> tuple[list[Action], list[Action]]:
    """Like `block`, and NOLOGIN too: for a role that must not log in again (a compromised one)."""
    state = _role(conn, role)
    _refuse_running(role, state)
    actions = [_login(role, False), _limit(role, 0), _end_sessions(role)]
    undo = [_login(role, state["login"]), _limit(role, state["limit"])]
    return actions, undo


def can_connect(login_target: Target) -> tuple[bool, str]:
    """Whether a new session can be opened as the role of `login_target`, and the server's answer."""
    try:
        with psycopg.connect(login_target.url, connect_timeout=5, autocommit=True) as conn:
            conn.execute("SELECT 1")
        return True, "connected"
    except psycopg.Error as exc:
        return False, " ".join(first_line(exc).rpartition("FATAL:")[2].split())
