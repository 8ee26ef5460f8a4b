"""A compromised role: locking it out, what it did and holds, taking that away, new passwords, and
watching afterwards. The security-incident runbook (12) calls these in the order of the guide's
checklist.

The compromised role is kept, stripped of everything it holds but not dropped: the audit log names
it, so it is the evidence. New passwords and the common-password check are in passwords.py.
"""

import time
from dataclasses import dataclass

import pandas as pd
from psycopg import sql

from . import access, audit_log, health, roles, security_audit, service
from .db import Target, connect, fetch_frame
from .errors import ParameterError
from .incident import Action, Incident
from .passwords import Rotation, weak_passwords
from .scram import Secret
from .sqlfiles import load

TIMELINE_SHOWN = ["at", "login_role", "acting_role", "operation", "table_name", "row_key", "changed_columns",
                  "old_values", "new_values", "application_name"]
HOLDINGS_SHOWN = ["kind", "what", "privilege", "grantor"]
_HOLDINGS = [*HOLDINGS_SHOWN, "schema", "object", "detail"]


def check_suspect(target: Target, role: str | None, role_set: roles.RoleSet) -> str | None:
    """`role` when it may be treated as compromised: it exists, is not the role running the runbook,
    and is not one of the baseline's roles (resetting the baseline would let it back in)."""
    if role is None:
        return None
    with connect(target, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
            raise ParameterError(f"suspect_role: there is no role {role!r} on this server")
        if conn.execute("SELECT %s = current_user", (role,)).fetchone()[0]:
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


def holdings(target: Target, role: str) -> pd.DataFrame:
    """What `role` holds itself: attributes beyond LOGIN, memberships, privileges on the server's
    databases and on this database's objects, default privileges, and what it owns; one row each."""
    with connect(target, autocommit=True) as conn:
        frame = fetch_frame(conn, load("breach", "holdings"), {"role": role})
    frame = frame.astype(object).where(frame.notna(), None)  # NULL stays None, never NaN
    frame["what"] = [_what(r) for r in frame.to_dict("records")] if len(frame) else []
    return frame[_HOLDINGS]


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


def revoke_actions(target: Target, role: str) -> list[Action]:
    """The statements that take away everything `role` holds (see `holdings`), the objects it owns
    excepted, and keep the role itself (the audit log names it)."""
    who, actions = sql.Identifier(role), {}
    for r in holdings(target, role).to_dict("records"):
        statement = _revoke(r, who)
        if statement is not None:
            actions.setdefault(statement.as_string(None), statement)
    return [Action(text, statement) for text, statement in actions.items()]


def log_position(target: Target) -> int:
    """The id of the audit log's latest entry (0 when there is no log or it is empty)."""
    with connect(target, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('audit.log')").fetchone()[0] is None:
            return 0
        return conn.execute("SELECT coalesce(max(id), 0) FROM audit.log").fetchone()[0]


def timeline(target: Target, role: str | None = None, *, after: int = 0, limit: int = 1000) -> pd.DataFrame:
    """The audit-log entries of `role` (logged in as it or acting as it; None: every role) after
    entry `after`, the latest `limit` of them, oldest first; empty when there is no audit log."""
    with connect(target, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('audit.log')").fetchone()[0] is None:
            return pd.DataFrame(columns=["id", *TIMELINE_SHOWN])
        return fetch_frame(conn, load("breach", "timeline"), {"role": role, "after": int(after), "limit": int(limit)})


def changes_per_table(entries: pd.DataFrame) -> pd.DataFrame:
    """Rows changed per table (rows) and operation (columns), from a timeline."""
    if entries.empty:
        return pd.DataFrame()
    return pd.crosstab(entries["table_name"].rename("table"), entries["operation"].rename("operation"))


def drifted(steps: list[roles.Step], role_set: roles.RoleSet) -> list[str]:
    """The roles of the set that a plan's statements change (grant to, revoke from, alter, create)."""
    found = []
    for name in role_set.names.values():
        quoted = sql.Identifier(name).as_string(None)
        if any(s.text.endswith((f" TO {quoted}", f" FROM {quoted}"))
               or s.text.startswith((f"ALTER ROLE {quoted} ", f"CREATE ROLE {quoted} ")) for s in steps):
            found.append(name)
    return found


# --- the runbook's steps --------------------------------------------------------------------------
@dataclass
class Isolation:
    role: str | None
    sessions_before: pd.DataFrame
    log_position: int                     # the audit log's latest entry once the role was locked out
    login: bool | None = None             # as the catalog says afterwards
    connection_limit: int | None = None
    sessions_after: int | None = None

    @property
    def locked_out(self) -> bool:
        return self.role is not None and self.login is False and self.connection_limit == 0 and self.sessions_after == 0

    @property
    def detail(self) -> str:
        if self.role is None:
            return "no suspect role given"
        return (f"{self.role}: {'LOGIN' if self.login else 'NOLOGIN'}, connection limit {self.connection_limit}, "
                f"{self.sessions_after} session(s) left of {len(self.sessions_before)}")


def _role_state(target: Target, role: str) -> tuple[bool, int]:
    with connect(target, autocommit=True) as conn:
        return conn.execute("SELECT rolcanlogin, rolconnlimit FROM pg_roles WHERE rolname = %s", (role,)).fetchone()


def _sessions_left(target: Target, role: str, wait: float) -> int:
    """The role's sessions, waiting up to `wait` seconds for ended ones to go (termination is asynchronous)."""
    deadline = time.monotonic() + wait
    while True:
        left = len(service.sessions(target, role))
        if left == 0 or time.monotonic() >= deadline:
            return left
        time.sleep(0.1)


def isolate(inc: Incident, role: str | None) -> Isolation:
    """Lock `role` out (NOLOGIN, connection limit 0, its sessions ended) through the incident, which
    only shows the statements in live mode without confirm; the lock-out is held, with its undo."""
    if role is None:
        inc.note("no suspect role given: nothing to isolate; the assessment covers every role")
        return Isolation(None, pd.DataFrame(), log_position(inc.target))
    before = service.sessions(inc.target, role)
    inc.found(f"{len(before)} open session(s) of {role}")
    actions, undo = service.lock_out(inc.target, role)
    if inc.run(actions):
        inc.hold("suspect", f"role {role} locked out (NOLOGIN, CONNECTION LIMIT 0)", undo)
    left = _sessions_left(inc.target, role, 5.0 if inc.may_change else 0)
    login, limit = _role_state(inc.target, role)
    return Isolation(role, before, log_position(inc.target), login, limit, left)


@dataclass
class Assessment:
    role: str | None
    role_set: roles.RoleSet
    logged: list[str]               # tables whose changes the audit log records
    timeline: pd.DataFrame
    holdings: pd.DataFrame
    drift: list[roles.Step]
    weak: pd.DataFrame
    findings: pd.DataFrame
    matrix: pd.DataFrame

    @property
    def changes(self) -> pd.DataFrame:
        return changes_per_table(self.timeline)

    def affected(self) -> list[str]:
        """The login roles whose passwords must change: the suspect, and the baseline's login roles
        that drifted or have a common password; none without a suspect (then it only assesses)."""
        if self.role is None:
            return []
        logins = [self.role_set.names[k] for k in roles.LOGIN_KINDS]
        weak = set(self.weak.loc[self.weak["common_password"].eq(True), "role"])
        found = [self.role] if self.role else []
        return list(dict.fromkeys(found + [n for n in logins if n in drifted(self.drift, self.role_set) or n in weak]))

    def lines(self) -> list[str]:
        """What the assessment found, one sentence each (never a password)."""
        who = self.role or "any role"
        if not self.logged:
            lines = ["no audit log in this database: changes cannot be traced to a role (enable it with 06_access_control_audit)"]
        elif self.timeline.empty:
            lines = [f"no change by {who} in the audit log ({', '.join(self.logged)})"]
        else:
            counts = "; ".join(f"{', '.join(f'{n} {op}' for op, n in row.items() if n)} on {table}"
                               for table, row in self.changes.iterrows())
            first, last = self.timeline["at"].min(), self.timeline["at"].max()
            lines = [f"{len(self.timeline)} change(s) by {who} between {first:%Y-%m-%d %H:%M:%S} and {last:%H:%M:%S}: {counts}"]
        if self.role:
            lines.append(f"{self.role} holds: " + (held_text(self.holdings[self.holdings["kind"] != "owns"]) or "nothing of its own"))
            owned = self.holdings[self.holdings["kind"] == "owns"]
            if len(owned):
                lines.append(f"{self.role} owns {len(owned)} object(s) ({', '.join(owned['what'][:5])}): "
                             "left as they are, inspect them by hand")
        lines.append(f"the roles-as-code baseline has drifted, {len(self.drift)} statement(s) to reset it: "
                     + "; ".join(s.text for s in self.drift[:6]) if self.drift else "the roles-as-code baseline is as wanted")
        lines += [f"{r}: the password is a common one" for r in self.weak.loc[self.weak["common_password"].eq(True), "role"]]
        counts = self.findings["severity"].value_counts()
        lines.append("security audit: " + (", ".join(f"{n} {s}" for s, n in counts.items()) or "no findings"))
        lines += [f"high: {f.check} ({f.subject})" for f in self.findings[self.findings["severity"] == "high"].itertuples()]
        return lines


def assess(target: Target, role: str | None, role_set: roles.RoleSet) -> Assessment:
    """The breach read from the catalogs and the audit log: what `role` did and holds, the baseline's
    drift, common passwords among the suspect and the baseline's login roles, the security audit."""
    names = ([role] if role else []) + list(role_set.names.values())
    logins = ([role] if role else []) + [role_set.names[k] for k in roles.LOGIN_KINDS]
    matrix = security_audit.privilege_matrix(security_audit.privileges(target, names))
    return Assessment(role, role_set, audit_log.enabled(target), timeline(target, role),
                      holdings(target, role) if role else pd.DataFrame(columns=_HOLDINGS), roles.plan(target, role_set),
                      weak_passwords(target, logins), security_audit.as_frame(security_audit.findings(target, role_set)), matrix)


@dataclass
class Fix:
    role: str | None
    left: pd.DataFrame              # what the role still holds afterwards
    plan: list[roles.Step]          # the baseline's plan afterwards: empty when it is restored

    @property
    def holds_nothing(self) -> bool:
        return self.role is not None and (self.left["kind"] == "owns").all()

    @property
    def detail(self) -> str:
        if self.role is None:
            return "no suspect role given"
        return f"{self.role} holds " + (held_text(self.left[self.left["kind"] != "owns"]) or "no privilege")


def fix(inc: Incident, role: str | None, role_set: roles.RoleSet) -> Fix:
    """Revoke everything `role` holds (keeping the role), then reset the baseline with roles.apply;
    in live mode without confirm, only show the statements. Without a suspect, change nothing."""
    if role is None:
        inc.note("no suspect role given, so only assessing: nothing revoked, the baseline not reset "
                 "(06_access_control_audit resets it)")
        return Fix(None, pd.DataFrame(columns=_HOLDINGS), roles.plan(inc.target, role_set))
    inc.run(revoke_actions(inc.target, role))
    if inc.may_change:
        inc.ran([step.text for step in roles.apply(inc.target, role_set, confirm=True)])
    else:
        for step in roles.plan(inc.target, role_set):
            inc.would(step.text)
    return Fix(role, holdings(inc.target, role), roles.plan(inc.target, role_set))


@dataclass
class Watch:
    role: str | None
    login: bool | None               # the catalog's word afterwards
    connection_limit: int | None
    sessions: pd.DataFrame           # the role's sessions
    attempts: dict[str, str]         # which password was tried -> the server's answer
    since: pd.DataFrame              # audit-log entries by the role after it was locked out
    recent: pd.DataFrame             # the latest 100 audit-log entries by any role after it was locked out
    plan: list[roles.Step]           # the baseline's plan: empty when it is as wanted
    activity: pd.DataFrame           # client sessions in the database now

    @property
    def cannot_log_in(self) -> bool:
        return (self.role is not None and self.login is False and self.connection_limit == 0 and self.sessions.empty
                and all(answer != "connected" for answer in self.attempts.values()))

    @property
    def login_detail(self) -> str:
        if self.role is None:
            return "no suspect role given"
        tried = "; ".join(f"with {label}: {answer}" for label, answer in self.attempts.items())
        return (f"{self.role}: {'LOGIN' if self.login else 'NOLOGIN'}, connection limit {self.connection_limit}, "
                f"{len(self.sessions)} session(s); {tried}")


def monitor(target: Target, role: str | None, role_set: roles.RoleSet, *, after: int, rotation: Rotation | None = None,
            leaked: Secret | None = None) -> Watch:
    """After the fix: the role's state and sessions, logging in as it with the leaked and the new
    password (or none), the audit log after entry `after` (its entries, everyone's), the baseline's
    plan, and the database's client sessions."""
    attempts = {}
    if role is not None:
        tries = {"the leaked password": leaked, "the new password": rotation.new_password(role) if rotation else None}
        tries = {label: p for label, p in tries.items() if p is not None} or {"no password": None}
        attempts = {label: service.can_connect(access.login(target, role, p))[1] for label, p in tries.items()}
    login, limit = _role_state(target, role) if role else (None, None)
    recent = timeline(target, after=after, limit=100)
    since = timeline(target, role, after=after) if role else recent.iloc[0:0]
    return Watch(role, login, limit, service.sessions(target, role) if role else pd.DataFrame(), attempts, since, recent,
                 roles.plan(target, role_set), health.sessions(target))
