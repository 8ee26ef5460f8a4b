"""A compromised role: what it holds and did (its privileges, its audit-log timeline), and the
statements that take what it holds away.

The compromised role is kept, stripped of everything it holds but not dropped: the audit log names
it, so it is the evidence. Locking it out, assessing, fixing and watching are in breach_response.py;
new passwords and the common-password check in passwords.py.
"""

import re

import pandas as pd
import psycopg
from psycopg import sql

from .. import roles, security_audit
from ..catalog import relation_exists, role_exists
from ..db import fetch_frame
from ..errors import ParameterError
from ..sqlfiles import load
from .record import Action

TIMELINE_SHOWN = ["at", "login_role", "acting_role", "operation", "table_name", "row_key", "changed_columns",
                  "old_values", "new_values", "application_name"]
HOLDINGS_SHOWN = ["kind", "what", "privilege", "grantor"]
HOLDINGS = [*HOLDINGS_SHOWN, "schema", "object", "detail"]


def check_suspect(conn: psycopg.Connection, role: str | None, role_set: roles.RoleSet) -> str | None:
    """`role` when it may be treated as compromised: it exists, is not the role running the runbook (the
    one it logged in as, nor the one it acts as), and is not one of the baseline's roles (resetting the
    baseline would let it back in)."""
    if role is None:
        return None
    if not role_exists(conn, role):
        raise ParameterError(f"suspect_role: there is no role {role!r} on this server")
    if conn.execute("SELECT %s IN (current_user, session_user)", (role,)).fetchone()[0]:  # acting as it, logged in as it
        raise ParameterError(f"suspect_role {role!r} is the role running this runbook: locking it out would lock you out")
    if role in role_set.names.values():
        raise ParameterError(f"suspect_role {role!r} belongs to the roles-as-code baseline, which step 3 resets and so "
                             "lets back in: rotate its password (06_access_control_audit) and end its sessions instead")
    return role


# --- what the role holds and did ------------------------------------------------------------------
def _what(r: dict) -> str:
    schema = f"{r['schema']}." if r["schema"] else ""
    return {"attribute": "role attribute", "member of": f"role {r['object']}", "database": f"database {r['object']}",
            "schema": f"schema {r['object']}", "column": f"{schema}{r['object']}.{r['detail']}",
            "routine": f"{schema}{r['object']}({r['detail']})",
            "default privileges": f"new {str(r['detail']).lower()} of {r['object']}" + (f" in {r['schema']}" if r["schema"] else ""),
            "owns": f"{r['detail']} {schema}{r['object']}"}.get(r["kind"], f"{schema}{r['object']}")


def holdings(conn: psycopg.Connection, role: str) -> pd.DataFrame:
    """What `role` holds itself: attributes beyond LOGIN, memberships, privileges on the server's
    databases and on this database's objects, default privileges, and what it owns; one row each."""
    rows = fetch_frame(conn, load("breach", "holdings"), {"role": role}).to_dict("records")
    rows += [{"kind": g["kind"], "schema": g["schema"], "object": g["name"], "detail": None,
              "privilege": g["privilege"], "grantor": g["grantor"]}
             for g in security_audit.grants(conn, names=[role], every_database=True, system_schemas=True)
             if g["role"] is not None]
    rows.sort(key=lambda r: tuple((r[c] is not None, r[c] or "") for c in ("kind", "schema", "object", "detail", "privilege")))
    frame = pd.DataFrame(rows, columns=["kind", "schema", "object", "detail", "privilege", "grantor"])
    frame = frame.astype(object).where(frame.notna(), None)  # NULL stays None, never NaN
    frame["what"] = [_what(r) for r in frame.to_dict("records")] if len(frame) else []
    return frame[HOLDINGS]


def held_text(held: pd.DataFrame) -> str:
    """What a `holdings` frame says, in one line: "member of app; UPDATE, DELETE on public.payments"."""
    parts = []
    for (kind, what), rows in held.groupby(["kind", "what"], sort=False):
        privileges = ", ".join(rows["privilege"])
        if kind == "member of":
            parts.append(f"member of {what.removeprefix('role ')}" + (" (with admin option)" if "ADMIN" in privileges else ""))
        elif kind == "attribute":
            parts.append(privileges)
        elif kind == "owns":
            parts.append(f"owner of {what}")
        else:
            parts.append(f"{privileges} on {what}")
    return "; ".join(parts)


# keywords only ever taken from these maps, never from the catalog's text
_NO_ATTRIBUTE = {a: sql.SQL("NO" + a) for a in ("SUPERUSER", "CREATEROLE", "CREATEDB", "REPLICATION", "BYPASSRLS")}
_ON = {kind: sql.SQL(kind.upper()) for kind in ("database", "schema", "table", "sequence")}
_DEFAULTS_ON = {objects: sql.SQL(objects) for objects in ("TABLES", "SEQUENCES", "FUNCTIONS", "TYPES", "SCHEMAS")}


def _revoke(r: dict, who: sql.Identifier) -> sql.Composed | None:
    name = sql.Identifier(r["object"]) if r["object"] else None
    qualified = sql.Identifier(r["schema"], r["object"]) if r["schema"] else name
    kind = r["kind"]
    if kind == "attribute":
        return sql.SQL("ALTER ROLE {} {}").format(who, _NO_ATTRIBUTE[r["privilege"]])
    if kind == "member of":
        return sql.SQL("REVOKE {} FROM {}").format(name, who)
    if kind in _ON:
        return sql.SQL("REVOKE ALL ON {} {} FROM {}").format(_ON[kind], qualified, who)
    if kind == "column":
        return sql.SQL("REVOKE ALL ({}) ON TABLE {} FROM {}").format(sql.Identifier(r["detail"]), qualified, who)
    if kind == "routine":  # the argument list as the server prints it, with its own quoting (as security_audit does)
        return sql.SQL("REVOKE ALL ON ROUTINE {}({}) FROM {}").format(qualified, sql.SQL(r["detail"]), who)
    if kind == "default privileges":
        where = sql.SQL(" IN SCHEMA {}").format(sql.Identifier(r["schema"])) if r["schema"] else sql.SQL("")
        return sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {}{} REVOKE ALL ON {} FROM {}").format(
            name, where, _DEFAULTS_ON[r["detail"]], who)
    return None  # what it owns stays: it may be evidence, and handing it to another role could arm it


def server_wide(text: str) -> bool:
    """Whether a statement changes a role itself (its attributes, password, memberships), which holds
    in every database of the server, rather than a privilege on an object of this database."""
    return text.startswith(("ALTER ROLE ", "CREATE ROLE ", "DROP ROLE ")) or (
        text.startswith(("GRANT ", "REVOKE ")) and " ON " not in text)


def revoke_actions(conn: psycopg.Connection, role: str) -> list[Action]:
    """The statements that take away everything `role` holds (see `holdings`), the objects it owns
    excepted, and keep the role itself (the audit log names it)."""
    who, actions = sql.Identifier(role), {}
    for r in holdings(conn, role).to_dict("records"):
        statement = _revoke(r, who)
        if statement is not None:
            actions.setdefault(statement.as_string(None), statement)
    return [Action(text, statement, server_wide=server_wide(text)) for text, statement in actions.items()]


def _has_audit_log(conn: psycopg.Connection) -> bool:
    return relation_exists(conn, "log", "audit")


def log_position(conn: psycopg.Connection) -> int:
    """The id of the audit log's latest entry (0 when there is no log or it is empty)."""
    if not _has_audit_log(conn):
        return 0
    return conn.execute("SELECT coalesce(max(id), 0) FROM audit.log").fetchone()[0]


def timeline(conn: psycopg.Connection, role: str | None = None, *, after: int = 0, limit: int = 1000) -> pd.DataFrame:
    """The audit-log entries of `role` (logged in as it or acting as it; None: every role) after
    entry `after`, the latest `limit` of them, oldest first; empty when there is no audit log."""
    if not _has_audit_log(conn):
        return pd.DataFrame(columns=["id", *TIMELINE_SHOWN])
    return fetch_frame(conn, load("breach", "timeline"), {"role": role, "after": int(after), "limit": int(limit)})


def changes_per_table(entries: pd.DataFrame) -> pd.DataFrame:
    """Rows changed per table (rows) and operation (columns), from a timeline."""
    if entries.empty:
        return pd.DataFrame()
    return pd.crosstab(entries["table_name"].rename("table"), entries["operation"].rename("operation"))


_TAKEN_ATTRIBUTES = ("NOSUPERUSER", "NOCREATEDB", "NOCREATEROLE", "NOREPLICATION", "NOBYPASSRLS")
_REVOKE = re.compile(r'REVOKE (?P<privileges>[A-Z, ]+) ON (?P<on>ALL TABLES|ALL SEQUENCES|SCHEMA|DATABASE|'
                     r'TABLE "(?P<schema>(?:[^"]|"")*)"\."(?P<table>(?:[^"]|"")*)")')
_KIND_OF = {"ALL TABLES": "table", "ALL SEQUENCES": "sequence", "SCHEMA": "schema", "DATABASE": "database"}


def _holds_what_is_revoked(held: pd.DataFrame, text: str) -> bool:
    """Whether a plan's REVOKE takes away something the role holds now (the planner also revokes, from a
    role that lacks everything, what its own GRANT ON ALL TABLES would give on bookkeeping tables)."""
    found = _REVOKE.match(text)
    if not found:
        return True  # a statement not understood counts: better one password too many than one too few
    kind = _KIND_OF.get(found["on"], "table")
    rows = held[(held["kind"] == kind) & held["privilege"].isin(found["privileges"].split(", "))]
    if found["table"] is not None:
        rows = rows[(rows["schema"] == found["schema"].replace('""', '"')) & (rows["object"] == found["table"].replace('""', '"'))]
    return len(rows) > 0


def gained(conn: psycopg.Connection, steps: list[roles.Step], role_set: roles.RoleSet) -> list[str]:
    """The roles of the set that hold more in this database than the baseline wants: a plan's statement
    takes away something they hold (REVOKE ... FROM it), or an attribute (ALTER ROLE it WITH NOSUPERUSER
    and the like). A missing grant is no sign of a breach (a database a role is not used in lacks them
    all), so it is not counted."""
    found = []
    for name in role_set.names.values():
        quoted = sql.Identifier(name).as_string(None)
        revokes = [s.text for s in steps if s.text.startswith("REVOKE ") and s.text.endswith(f" FROM {quoted}")]
        attributes = any(s.text.startswith(f"ALTER ROLE {quoted} WITH ") and set(s.text.split()) & set(_TAKEN_ATTRIBUTES)
                         for s in steps)
        held = holdings(conn, name) if revokes else None
        if attributes or any(_holds_what_is_revoked(held, text) for text in revokes):
            found.append(name)
    return found


def drifted(steps: list[roles.Step], role_set: roles.RoleSet) -> list[str]:
    """The roles of the set that a plan's statements change (grant to, revoke from, alter, create)."""
    found = []
    for name in role_set.names.values():
        quoted = sql.Identifier(name).as_string(None)
        if any(s.text.endswith((f" TO {quoted}", f" FROM {quoted}"))
               or s.text.startswith((f"ALTER ROLE {quoted} ", f"CREATE ROLE {quoted} ")) for s in steps):
            found.append(name)
    return found
