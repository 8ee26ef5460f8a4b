"""The security drill: a scratch database with sample data, the roles-as-code baseline under the
drill's own prefix (roles are server-wide: the real ones are never touched), the audit log on, and
then the incident. A contractor's login role, outside the baseline, with a common password, member of
the application role and granted UPDATE and DELETE on tuition payments directly, logs in, waives
tuition, deletes payments, redirects two e-mail addresses, and keeps its session open. And drift on
the baseline: the reporter was granted UPDATE on tuition payments.

Re-running after a crash is safe: `prepare` first drops whatever an earlier drill left.
"""

import secrets
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from ... import audit_log, roles, scratch
from .. import record
from ..breach_response import Assessment
from ...db import Target, connect
from ...sqlfiles import load

DATABASE = "prep_ops_drill_security"
ROLE_PREFIX = "prep_ops_security_"  # roles are server-wide: the drill's never touch the real ones
LEAKED = "qwerty123"  # the contractor's password: in passwords.COMMON_PASSWORDS, as leaked ones are
# what drill_changes.sql does, as (table, operation) -> rows
CHANGES = {("tuition_payments", "UPDATE"): 5, ("tuition_payments", "DELETE"): 3, ("users", "UPDATE"): 2}


@dataclass
class Drill:
    target: Target                  # the drill's scratch database
    server: Target                  # a database on the same server, to drop it from
    note: str                       # where the drill runs, one line
    role_set: roles.RoleSet         # the drill's baseline
    suspect: str                    # the compromised login role
    leaked: roles.Secret = field(repr=False)
    session: psycopg.Connection | None = field(default=None, repr=False)  # the suspect's open session

    def __repr__(self) -> str:  # a Target's own repr would show the URL's password
        return f"<security drill in {self.target.masked_url}: suspect {self.suspect}>"

    @property
    def summary(self) -> str:
        """What the drill injected, one line."""
        changes = ", ".join(f"{n} {op} on {table}" for (table, op), n in CHANGES.items())
        return (f"login role {self.suspect} with a common password, member of {self.role_set.app}, granted UPDATE and "
                f"DELETE on tuition_payments, made {changes} and kept a session open; "
                f"{self.role_set.reporter} granted UPDATE on tuition_payments (drift)")

    def found_in(self, assessment: Assessment) -> tuple[bool, str]:
        """Whether the assessment found everything the drill injected, and what it missed."""
        changes = assessment.changes
        counts = {(t, op): int(n) for t, row in changes.iterrows() for op, n in row.items() if n}
        held = set(zip(assessment.holdings["what"], assessment.holdings["privilege"]))
        wanted = {(f"role {self.role_set.app}", "MEMBER"), ("public.tuition_payments", "UPDATE"),
                  ("public.tuition_payments", "DELETE")}
        reporter = sql.Identifier(self.role_set.reporter).as_string(None)
        missed = []
        if counts != CHANGES:
            missed.append(f"changes {counts or 'none'} instead of {CHANGES}")
        if not wanted <= held:
            missed.append(f"grants not found: {sorted(wanted - held)}")
        if not any(s.text.startswith("REVOKE UPDATE") and s.text.endswith(f"FROM {reporter}") for s in assessment.drift):
            missed.append(f"the drift of {self.role_set.reporter} not found")
        if self.suspect not in set(assessment.weak.loc[assessment.weak["common_password"].eq(True), "role"]):
            missed.append(f"the common password of {self.suspect} not found")
        return not missed, "; ".join(missed) or "its changes, grants, the reporter's drift and the common password"


def prepare(target: Target, students: int = 500, seed: int = 42, *, prefix: str = ROLE_PREFIX) -> Drill:
    """Make the drill: sample database, baseline roles, audit log, the compromised role, its changes
    (made logged in as it) and its open session, and the baseline's drift."""
    server, note = record.drill_server(target)
    cleanup(server, prefix=prefix)  # what a crashed earlier drill may have left
    drill_db = scratch.sample_database(server, students, seed, name=DATABASE, confirm=True)
    role_set = roles.RoleSet.with_prefix(prefix)
    # generated here, not read from $PREP_OPS_<ROLE>_PASSWORD, so that step 4's new ones differ
    suspect, leaked = prefix + "contractor", roles.Secret(LEAKED)
    who = sql.Identifier(suspect)
    with connect(drill_db, autocommit=True) as conn:
        roles.apply(conn, role_set, {kind: secrets.token_urlsafe(24) for kind in roles.LOGIN_KINDS}, confirm=True)
        audit_log.enable(conn, readers=[role_set.dba], confirm=True)
        with conn.transaction():
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(who, sql.Literal(roles.scram_verifier(leaked))))
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(role_set.app), who))
            conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(DATABASE), who))
            conn.execute(sql.SQL("GRANT UPDATE, DELETE ON TABLE public.tuition_payments TO {}").format(who))
            conn.execute(sql.SQL("GRANT UPDATE ON TABLE public.tuition_payments TO {}").format(sql.Identifier(role_set.reporter)))
    drill = Drill(drill_db, server, note, role_set, suspect, leaked)
    drill.session = connect(roles.login(drill_db, suspect, leaked), autocommit=True)
    drill.session.execute("SET application_name = 'psql'")
    drill.session.execute(load("breach", "drill_changes"))
    return drill


def for_mode(target: Target, mode: str, students: int = 500) -> Drill | None:
    """The drill when `mode` is "drill", None when "live"; any other mode is refused before anything is made."""
    record.check_mode(mode)
    return prepare(target, students) if mode == "drill" else None


def cleanup(server: Target, drill: Drill | None = None, *, prefix: str = ROLE_PREFIX) -> str:
    """Drop the drill database, then the drill's roles (safe when there is nothing to drop); says what went."""
    if drill is not None and drill.session is not None and not drill.session.closed:
        drill.session.close()
    suspect = prefix + "contractor"
    with connect(server, autocommit=True) as conn:
        scratch.drop(conn, DATABASE)
        dropped = roles.drop(conn, roles.RoleSet.with_prefix(prefix), confirm=True)
        with conn.transaction():
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (suspect,)).fetchone():
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(suspect)))
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(suspect)))
                dropped.append(suspect)
    return f"dropped database {DATABASE} and {len(dropped)} drill role(s)" + (f": {', '.join(dropped)}" if dropped else "")


def leftovers(server: Target, prefix: str = ROLE_PREFIX) -> list[str]:
    """The drill's database and roles still on the server (none after `cleanup`)."""
    with connect(server, autocommit=True) as conn:
        found = conn.execute("SELECT datname FROM pg_database WHERE datname = %s", (DATABASE,)).fetchall()
        found += conn.execute("SELECT rolname FROM pg_roles WHERE left(rolname, length(%s)) = %s ORDER BY 1",
                              (prefix, prefix)).fetchall()
    return [name for (name,) in found]
