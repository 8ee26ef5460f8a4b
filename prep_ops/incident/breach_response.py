"""Responding to a compromised role, in the order of the guide's checklist: lock it out (`isolate`),
read what it did and holds (`assess`), take that away and reset the baseline (`fix`), and watch
afterwards (`monitor`). Each takes the incident, which runs or only shows the statements, and an
open connection to the incident's database; the runbook's steps (security_steps.py) open it.
"""

import time
from dataclasses import dataclass

import pandas as pd
import psycopg

from .. import access, audit_log, health, roles, security_audit
from ..errors import ParameterError
from ..scram import Secret
from . import journal, lockout
from .breach import (HOLDINGS, changes_per_table, gained, held_text, holdings, log_position, revoke_actions, server_wide,
                     timeline)
from .passwords import Rotation, weak_passwords
from .record import Action, Incident


def baseline_absent(conn: psycopg.Connection, role_set: roles.RoleSet) -> str:
    """Why there is no roles-as-code baseline to reset on this server ("" when there is): none of its roles
    exists. Resetting it there would create them, login roles granted every table, during a breach."""
    names = list(role_set.names.values())
    if conn.execute("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = ANY(%s))", (names,)).fetchone()[0]:
        return ""
    return (f"no roles-as-code baseline on this server (none of {', '.join(names)} exists): none is created or "
            "reset here (06_access_control_audit sets one up)")


def baseline_plan(conn: psycopg.Connection, role_set: roles.RoleSet) -> list[roles.Step]:
    """The statements that reset the roles-as-code baseline in this database, passwords left out:
    during a breach, passwords change only in step 4 and only for the roles it names (a password set
    from $PREP_OPS_<ROLE>_PASSWORD here would change that role in every database of the server).
    None where the server has no baseline (`baseline_absent`)."""
    if baseline_absent(conn, role_set):
        return []
    return [s for s in roles.plan(conn, role_set) if not (s.text.startswith("ALTER ROLE ") and " PASSWORD " in s.text)]

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


def _role_state(conn: psycopg.Connection, role: str) -> tuple[bool, int]:
    return conn.execute("SELECT rolcanlogin, rolconnlimit FROM pg_roles WHERE rolname = %s", (role,)).fetchone()


def _sessions_left(conn: psycopg.Connection, role: str, wait: float) -> int:
    """The role's sessions, waiting up to `wait` seconds for ended ones to go (termination is asynchronous)."""
    deadline = time.monotonic() + wait
    while True:
        left = len(lockout.sessions(conn, role))
        if left == 0 or time.monotonic() >= deadline:
            return left
        time.sleep(0.1)


def isolate(inc: Incident, conn: psycopg.Connection, role: str | None) -> Isolation:
    """Lock `role` out (NOLOGIN, connection limit 0, its sessions ended) through the incident, which
    only shows the statements in live mode without confirm; the lock-out is held, with its undo."""
    if role is None:
        inc.note("no suspect role given: nothing to isolate; the assessment covers every role")
        return Isolation(None, pd.DataFrame(), log_position(conn))
    held = inc.holds.get("suspect")
    if held is not None and held.state.get("role") not in (None, role):  # its undo would stand for this role's
        raise ParameterError(f"incident {inc.id}: its earlier run locked out role {held.state['role']!r}, not {role!r}: "
                             f"re-run with suspect_role {held.state['role']!r}, or open another incident for {role!r}")
    before = lockout.sessions(conn, role)
    inc.found(f"{len(before)} open session(s) of {role}")
    actions, undo = lockout.lock_out(conn, role)
    undo, state = _undo_of_an_earlier_lock_out(inc, role) or (undo, lockout.state(conn, role))
    inc.change("suspect", f"role {role} locked out (NOLOGIN, CONNECTION LIMIT 0)", actions, undo, conn, state=state)
    left = _sessions_left(conn, role, 5.0 if inc.may_change else 0)
    login, limit = _role_state(conn, role)
    return Isolation(role, before, log_position(conn), login, limit, left)


def _undo_of_an_earlier_lock_out(inc: Incident, role: str) -> tuple[list[Action], dict] | None:
    """The undo statements and state another incident's record keeps for `role` locked out (a kernel restarted
    with incident_id=None opens a new incident): locking it out again reads NOLOGIN and limit 0 as its own, and
    this report's 'to undo' would put back the lock-out. None where no other incident holds it (or this one does)."""
    if "suspect" in inc.holds:
        return None
    for other, record in journal.held_elsewhere(inc.directory, inc.id, "suspect", role, inc.target.masked_url):
        hold = record["holds"]["suspect"]
        undo = [journal.action_of(a) for a in hold["undo"]]
        inc.note(f"role {role} is locked out already by incident {other} (since {hold['since'][:19]} UTC): what it read "
                 f"before that is kept to undo it ({'; '.join(a.text for a in undo)})")
        return undo, dict(hold.get("state", {}))
    return None


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
    grown: list[str]                # the baseline's roles holding more here than wanted (breach.gained)
    no_baseline: str = ""           # why there is no baseline to compare with or reset (baseline_absent)

    @property
    def changes(self) -> pd.DataFrame:
        return changes_per_table(self.timeline)

    def affected(self) -> list[str]:
        """The login roles whose passwords must change: the suspect, and the baseline's login roles that
        hold more in this database than the baseline wants (`breach.gained`); none without a suspect
        (then it only assesses). A password is the role's in every database of the server, so a role
        that only lacks grants here, or has a common password, is reported, not rotated."""
        if self.role is None:
            return []
        logins = [self.role_set.names[k] for k in roles.LOGIN_KINDS]
        return list(dict.fromkeys([self.role] + [n for n in logins if n in self.grown]))

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
        lines.append(self.no_baseline or (f"the roles-as-code baseline has drifted, {len(self.drift)} statement(s) to "
                                          "reset it: " + "; ".join(s.text for s in self.drift[:6]) if self.drift
                                          else "the roles-as-code baseline is as wanted"))
        lines += [f"{r}: the password is a common one" for r in self.weak.loc[self.weak["common_password"].eq(True), "role"]]
        counts = self.findings["severity"].value_counts()
        lines.append("security audit: " + (", ".join(f"{n} {s}" for s, n in counts.items()) or "no findings"))
        lines += [f"high: {f.check} ({f.subject})" for f in self.findings[self.findings["severity"] == "high"].itertuples()]
        return lines


def assess(conn: psycopg.Connection, role: str | None, role_set: roles.RoleSet) -> Assessment:
    """The breach read from the catalogs and the audit log: what `role` did and holds, the baseline's
    drift, common passwords among the suspect and the baseline's login roles, the security audit."""
    names = ([role] if role else []) + list(role_set.names.values())
    logins = ([role] if role else []) + [role_set.names[k] for k in roles.LOGIN_KINDS]
    matrix = security_audit.privilege_matrix(security_audit.privileges(conn, names))
    drift = baseline_plan(conn, role_set)
    return Assessment(role, role_set, audit_log.enabled(conn), timeline(conn, role),
                      holdings(conn, role) if role else pd.DataFrame(columns=HOLDINGS), drift,
                      weak_passwords(conn, logins), security_audit.as_frame(security_audit.findings(conn, role_set)), matrix,
                      gained(conn, drift, role_set), baseline_absent(conn, role_set))


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


def fix(inc: Incident, conn: psycopg.Connection, role: str | None, role_set: roles.RoleSet) -> Fix:
    """Revoke everything `role` holds (keeping the role), then reset the baseline (`baseline_plan`, in one
    transaction; statements that change roles themselves are marked server-wide);
    in live mode without confirm, only show the statements. Without a suspect, change nothing. A reset
    that would change the attributes of the role running the runbook is refused before anything runs."""
    if role is None:
        inc.note("no suspect role given, so only assessing: nothing revoked, the baseline not reset "
                 "(06_access_control_audit resets it)")
        return Fix(None, pd.DataFrame(columns=HOLDINGS), baseline_plan(conn, role_set))
    if inc.may_change:  # before anything is revoked: the reset must not strip the runbook's own role
        roles.refuse_changing_current_role(conn, baseline_plan(conn, role_set))
    inc.run(revoke_actions(conn, role), conn)
    inc.run([Action(s.text, s.statement, server_wide=server_wide(s.text)) for s in baseline_plan(conn, role_set)], conn)
    return Fix(role, holdings(conn, role), baseline_plan(conn, role_set))


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


def monitor(inc: Incident, conn: psycopg.Connection, role: str | None, role_set: roles.RoleSet, *, after: int,
            rotation: Rotation | None = None, leaked: Secret | None = None) -> Watch:
    """After the fix: the role's state and sessions, logging in as it with the leaked and the new
    password (or none), the audit log after entry `after` (its entries, everyone's), the baseline's
    plan, and the database's client sessions. The logins go to the incident's target as `role`."""
    target, attempts = inc.target, {}
    if role is not None:
        tries = {"the leaked password": leaked, "the new password": rotation.new_password(role) if rotation else None}
        tries = {label: p for label, p in tries.items() if p is not None} or {"no password": None}
        attempts = {label: lockout.can_connect(access.login(target, role, p))[1] for label, p in tries.items()}
    login, limit = _role_state(conn, role) if role else (None, None)
    recent = timeline(conn, after=after, limit=100)
    since = timeline(conn, role, after=after) if role else recent.iloc[0:0]
    return Watch(role, login, limit, lockout.sessions(conn, role) if role else pd.DataFrame(), attempts, since, recent,
                 baseline_plan(conn, role_set), health.sessions(conn))
