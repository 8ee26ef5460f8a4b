"""The security drill: a scratch database with sample data, the roles-as-code baseline under the
drill's own prefix (roles are server-wide: the real ones are never touched), the audit log on, and
then the incident. A contractor's login role, outside the baseline, with a common password, member of
the application role and granted UPDATE and DELETE on tuition payments directly, logs in, waives
tuition, deletes payments, redirects two e-mail addresses, and keeps its session open. And drift on
the baseline: the reporter was granted UPDATE on tuition payments.

Its database and roles carry the incident's id (prep_ops_drill_security_<label>,
prep_ops_security_<label>_contractor ...), so two runs at once never share them and `cleanup` drops
only its own. Re-running after a crash is safe: `prepare` first drops what an earlier run of the same
incident left, and what killed drills left (lifecycle.sweep: a contractor role with LOGIN and a known
password among it). The drill's passwords are its own, generated: never $PREP_OPS_<ROLE>_PASSWORD.
"""

import secrets
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from ... import audit_log, roles
from ...catalog import database_exists, existing_roles
from .. import naming
from ..breach_response import Assessment
from ...db import Target, connect
from ...sqlfiles import load
from . import lifecycle

DATABASE = "prep_ops_drill_security"  # the prefix of the drill databases: <DATABASE>_<label>
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
    conn: psycopg.Connection | None = field(default=None, repr=False)  # the run's own, open from creation on
    swept: list[str] = field(default_factory=list)  # what killed drills had left, removed first

    @property
    def role_names(self) -> list[str]:
        """Every role the drill made: its baseline and the suspect."""
        return [*self.role_set.names.values(), self.suspect]

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


def names(incident_id: str, prefix: str | None = None) -> tuple[str, roles.RoleSet, str]:
    """The drill database, baseline and suspect of incident `incident_id` (roles under `prefix` when given)."""
    label = naming.drill_label(incident_id)
    prefix = prefix if prefix is not None else lifecycle.role_prefix(ROLE_PREFIX, label)
    return lifecycle.database_name(DATABASE, label), roles.RoleSet.with_prefix(prefix), prefix + "contractor"


def prepare(target: Target, students: int = 500, seed: int = 42, *, incident_id: str, prefix: str | None = None) -> Drill:
    """Make the drill of `incident_id`: sample database, baseline roles, audit log, the compromised
    role, its changes (made logged in as it) and its open session, and the baseline's drift."""
    server, note = naming.drill_server(target)
    database, role_set, suspect = names(incident_id, prefix)
    lifecycle.drop(server, database, [*role_set.names.values(), suspect])  # a re-run of the incident: its own first
    drill_db, conn, swept = lifecycle.make_database(server, database, students, seed, sweep_prefix=DATABASE,
                                                    roles_prefix=ROLE_PREFIX, label=naming.drill_label(incident_id))
    leaked, who = roles.Secret(LEAKED), sql.Identifier(suspect)
    try:
        # generated here, never read from $PREP_OPS_<ROLE>_PASSWORD: the real roles' passwords stay out of drills
        roles.apply(conn, role_set, {kind: secrets.token_urlsafe(24) for kind in roles.LOGIN_KINDS}, confirm=True)
        audit_log.enable(conn, readers=[role_set.dba], confirm=True)
        with conn.transaction():
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(who, sql.Literal(roles.scram_verifier(leaked))))
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(role_set.app), who))
            conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), who))
            conn.execute(sql.SQL("GRANT UPDATE, DELETE ON TABLE public.tuition_payments TO {}").format(who))
            conn.execute(sql.SQL("GRANT UPDATE ON TABLE public.tuition_payments TO {}").format(sql.Identifier(role_set.reporter)))
        drill = Drill(drill_db, server, note, role_set, suspect, leaked, conn=conn, swept=swept)
        drill.session = connect(roles.login(drill_db, suspect, leaked), autocommit=True)
        drill.session.execute("SET application_name = 'psql'")
        drill.session.execute(load("breach", "drill_changes"))
    except BaseException:
        conn.close()
        lifecycle.drop(server, database, [*role_set.names.values(), suspect])
        raise
    return drill


def for_mode(target: Target, mode: str, students: int = 500, *, incident_id: str) -> Drill | None:
    """The drill when `mode` is "drill", None when "live"; any other mode is refused before anything is made."""
    naming.check_mode(mode)
    return prepare(target, students, incident_id=incident_id) if mode == "drill" else None


def cleanup(drill: Drill) -> str:
    """Drop the drill's database, then its roles (its own only; safe when there is nothing to drop); says what went."""
    for conn in (drill.session, drill.conn):
        if conn is not None and not conn.closed:
            conn.close()
    dropped = lifecycle.drop(drill.server, drill.target.database, drill.role_names)
    return f"dropped database {drill.target.database} and {len(dropped)} drill role(s)" + (
        f": {', '.join(dropped)}" if dropped else "")


def leftovers(server: Target, database: str, role_names: list[str]) -> list[str]:
    """Which of a drill's database and roles are still on the server (none after `cleanup`)."""
    with connect(server, autocommit=True) as conn:
        return ([database] if database_exists(conn, database) else []) + sorted(existing_roles(conn, role_names))
