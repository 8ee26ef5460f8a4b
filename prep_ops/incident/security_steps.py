"""Runbook 12, a compromised login role, one call per step: isolate the system, assess the breach, fix
the vulnerability, update security, monitor activity, document and clean up.

`start` makes the drill (mode="drill": a scratch database with a breach injected) or takes the
target (mode="live") and opens the incident; each step then takes what `start` returned, works on the
incident's one connection (`inc.conn`), records what it found and did, makes its checks (a SKIP with
the reason for what this run does not check) and returns what the notebook shows.

Scope: the runbook changes the target database, and roles only where it must. Passwords change only
for the suspect and for the baseline's login roles that hold more in this database than wanted
(breach_response.Assessment.affected); a role's password, attributes and memberships hold in every
database of the server, so those statements are marked server-wide in the output and the report,
and, live, run only with confirm=True.
"""

from dataclasses import dataclass

import pandas as pd

from .. import roles
from ..db import Target
from . import breach, breach_response, journal, naming, passwords
from .drills import security as security_drill
from .record import SERVER_WIDE, Incident

_NOT_CONFIRMED = "live without confirm=True: statements only shown"


@dataclass
class SecurityIncident:
    """One run of the runbook: its incident, the database, the drill (None live), the baseline, the
    suspect (None: only assess), and what the steps found on the way."""

    inc: Incident
    target: Target
    drill: security_drill.Drill | None
    role_set: roles.RoleSet
    suspect: str | None
    isolation: breach_response.Isolation | None = None
    assessment: breach_response.Assessment | None = None
    rotation: passwords.Rotation | None = None

    @property
    def changing(self) -> bool:
        """Whether this run changes something: must-hold checks need that, and never fail for lack of it."""
        return self.inc.may_change and self.suspect is not None

    @property
    def unchanged(self) -> str:
        """Why the checks of changes are SKIP in this run ("" when they are made)."""
        if self.suspect is None:
            return "no suspect role given: only assessing"
        return "" if self.inc.may_change else _NOT_CONFIRMED

    def _repr_markdown_(self) -> str:
        return f"`{self.inc!r}`"


def start(target: Target, mode: str = "drill", *, incident_id: str | None = None, confirm: bool = False,
          suspect_role: str | None = None, role_prefix: str = "", drill_students: int = 500) -> SecurityIncident:
    """The drill made (mode="drill") or the target taken (live), the incident opened, and the suspect
    checked (see breach.check_suspect)."""
    parameters = dict(mode=mode, incident_id=incident_id, confirm=confirm, suspect_role=suspect_role,
                      role_prefix=role_prefix, drill_students=drill_students)
    incident_id = naming.check_id(incident_id or naming.new_id("security"))
    journal.claim(naming.incidents_dir(), incident_id)  # before its drill is made: a re-run drops the drill of its id
    drill = security_drill.for_mode(target, mode, drill_students, incident_id=incident_id)
    work_on = drill.target if drill else target
    inc = Incident("security", "Security incident", work_on, incident_id=incident_id, mode=mode, confirm=confirm,
                   conn=drill.conn if drill else None)
    if drill and drill.swept:
        inc.note(f"removed what killed drills had left: {', '.join(drill.swept)}")
    inc.given(**parameters)  # a step refuses to run once one of them is changed in the notebook (setup not run again)
    role_set = drill.role_set if drill else roles.RoleSet.with_prefix(role_prefix)
    suspect = breach.check_suspect(inc.conn, drill.suspect if drill else suspect_role, role_set)
    return SecurityIncident(inc, work_on, drill, role_set, suspect)


def isolate_system(run: SecurityIncident) -> pd.DataFrame:
    """Step 1: the suspect locked out (NOLOGIN, connection limit 0, sessions ended), held after the
    runbook. Returns its sessions found before."""
    inc = run.inc
    with inc.step(1, "Isolate the system", next_if_failed="lock the role out by hand: ALTER ROLE <role> NOLOGIN "
                                                           "CONNECTION LIMIT 0, then end its sessions with pg_terminate_backend "
                                                           "(as a superuser, or a role granted pg_signal_backend)"):
        if run.drill:
            inc.note(f"{run.drill.note}; the drill's breach: {run.drill.summary}")
        run.isolation = isolation = breach_response.isolate(inc, inc.conn, run.suspect)
        inc.check("compromised role locked out: no login, no session", isolation.locked_out, isolation.detail,
                  skipped=run.unchanged)
    return isolation.sessions_before


def assess_breach(run: SecurityIncident) -> breach_response.Assessment:
    """Step 2: what the suspect did (audit log) and holds, the baseline's drift, common passwords and
    the security audit; in a drill, proof that all the drill injected was found."""
    inc = run.inc
    with inc.step(2, "Assess the breach", next_if_failed="read audit.log by hand (SELECT * FROM audit.log WHERE "
                                                          "login_role = '<role>' ORDER BY id) and run 06_access_control_audit"):
        run.assessment = assessment = breach_response.assess(inc.conn, run.suspect, run.role_set)
        for line in assessment.lines():
            inc.found(line)
        if run.drill:
            inc.check("the drill's breach is found", *run.drill.found_in(assessment))
    return assessment


def fix_vulnerability(run: SecurityIncident) -> pd.DataFrame:
    """Step 3: everything the suspect holds revoked (the role kept), then the baseline reset. Returns
    what the suspect still holds."""
    inc = run.inc
    with inc.step(3, "Fix the vulnerability", next_if_failed="the revokes, then the baseline reset, each ran whole or "
                                                              "not at all (statements shown as ran took effect); revoke "
                                                              "the rest by hand and run prep-ops roles apply",
                  after=(1, 2)):
        fixed = breach_response.fix(inc, inc.conn, run.suspect, run.role_set)
        inc.check("compromised role holds no privilege", fixed.holds_nothing, fixed.detail,
                  fix="revoke by hand what it still holds", skipped=run.unchanged)
        inc.check("baseline restored: a second plan is empty", not fixed.plan, f"{len(fixed.plan)} statement(s) still to run",
                  skipped=run.unchanged or run.assessment.no_baseline)
    return fixed.left[breach.HOLDINGS_SHOWN]


def update_security(run: SecurityIncident) -> pd.DataFrame:
    """Step 4: new passwords for the affected roles (never shown): the suspect and the login roles that
    hold more here than the baseline wants. Returns per role where its new one is."""
    inc = run.inc
    with inc.step(4, "Update security", next_if_failed="set the passwords by hand (\\password <role> in psql) and hand them on",
                  after=(2,), once=True):  # a second rotation would make the passwords handed on worthless
        affected = run.assessment.affected()
        if affected:
            inc.note(f"new passwords for {', '.join(affected)}: {SERVER_WIDE}")
        variables = roles.RoleSet() if run.drill else run.role_set  # a drill never reads the real roles' variables
        run.rotation = rotation = passwords.rotate(inc, inc.conn, affected, variables)
        inc.check("passwords of the affected roles rotated", rotation.rotated == rotation.roles,
                  f"{len(rotation.rotated)} of {len(rotation.roles)}: {', '.join(rotation.roles)}",
                  skipped=run.unchanged or ("" if rotation.roles else "no role needs a new password") or rotation.unread)
    return rotation.table()


def monitor_activity(run: SecurityIncident) -> breach_response.Watch:
    """Step 5: the suspect cannot log in (leaked and new password tried), the baseline's plan is empty,
    and the audit log shows nothing by it since step 1."""
    inc, suspect = run.inc, run.suspect
    with inc.step(5, "Monitor activity", next_if_failed="keep the role locked out; read audit.log and "
                                                         "pg_stat_activity by hand for what it still does", after=(1, 2)):
        watch = breach_response.monitor(inc, inc.conn, suspect, run.role_set, after=run.isolation.log_position,
                                        rotation=run.rotation, leaked=run.drill.leaked if run.drill else None)
        no_suspect = "" if suspect else "no suspect role given"
        inc.check("the compromised role cannot log in", watch.cannot_log_in, watch.login_detail, must_hold=run.changing,
                  skipped=no_suspect)
        inc.check("baseline restored: roles.plan is empty", not watch.plan, f"{len(watch.plan)} statement(s) to run",
                  must_hold=run.changing, skipped=run.assessment.no_baseline)
        unlogged = "" if run.assessment.logged else "no audit log in this database: what a role changes is not recorded"
        inc.check("no change by the role since step 1", watch.since.empty, f"{len(watch.since)} audit-log entries",
                  must_hold=run.changing, skipped=no_suspect or unlogged)
    return watch


def clean_up(run: SecurityIncident) -> None:
    """Step 6: the incident's connection closed; in a drill, its database and then its roles dropped
    (its own only); the report written."""
    inc, drill = run.inc, run.drill
    name = drill.target.database if drill else ""
    with inc.step(6, "Document and clean up", next_if_failed=f"drop database {name} and the roles "
                                                              f"{', '.join(drill.role_names) if drill else ''} by hand", closes=True):
        inc.close()
        if drill:
            inc.did(security_drill.cleanup(drill))
            inc.release("suspect")
            left = security_drill.leftovers(drill.server, name, drill.role_names)
            inc.check("drill cleaned up: no drill database or role left", not left,
                      ", ".join(left) or f"{name} and the drill's {len(drill.role_names)} roles dropped")
        inc.did(f"report: {inc.write()}")
