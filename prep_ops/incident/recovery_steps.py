"""Runbook 10, data recovery, one call per step: stop the application, assess the damage, restore,
verify the data, resume service, document and clean up.

`start` makes the drill (mode="drill": a scratch database damaged on purpose) or takes the target
(mode="live") and opens the incident; each step then takes what `start` returned, opens the
connections it needs once, records what it found and did, makes its checks (a SKIP with the reason
for what this mode does not check) and returns what the notebook shows.
"""

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .. import restore as restores
from .. import verify
from ..backup import Backup
from ..db import Target, connect
from . import lockout, recovery
from .drills import recovery as recovery_drill
from .record import Incident, check_mode

_NOT_CONFIRMED = "live without confirm=True"


@dataclass
class DataRecovery:
    """One run of the runbook: its incident, the database it works on, the drill (None live), and
    what the steps found on the way."""

    inc: Incident
    target: Target
    drill: recovery_drill.Drill | None
    role: str | None            # the application's login role to keep out; None: none blocked
    scope: str
    backup_dir: Path | None
    backup: Backup | None = None
    found: recovery.Damage | None = None

    def _repr_markdown_(self) -> str:
        return f"`{self.inc!r}`"


def start(target: Target, mode: str = "drill", *, incident_id: str | None = None, confirm: bool = False,
          app_role: str | None = None, scope: str = "rows", backup_dir: Path | str | None = None,
          drill_students: int = 2000) -> DataRecovery:
    """The drill made (mode="drill") or the target taken (live), and the incident opened."""
    check_mode(mode)
    recovery.check_scope(scope)
    backup_dir = Path(backup_dir) if backup_dir else None
    drill = recovery_drill.prepare(target, drill_students, backup_dir=backup_dir) if mode == "drill" else None
    work_on = drill.target if drill else target
    inc = Incident("data-recovery", "Data recovery", work_on, incident_id=incident_id, mode=mode, confirm=confirm)
    return DataRecovery(inc, work_on, drill, drill.app_role if drill else app_role, scope, backup_dir)


def stop_application(run: DataRecovery) -> pd.DataFrame:
    """Step 1: the application's role blocked (connection limit 0, sessions ended), held until step 5.
    Returns the role's sessions found before (empty without a role)."""
    inc, role = run.inc, run.role
    with inc.step(1, "Stop the application", next_if_failed="stop the application servers by hand, then re-run from step 2"):
        if run.drill:
            inc.note(run.drill.note)
        if not role:
            inc.note("no app_role given: the application is not blocked; stop it by hand before repairing")
            return pd.DataFrame()
        with connect(run.target, autocommit=True) as conn:
            before = lockout.sessions(conn, role)
            inc.found(f"{len(before)} open session(s) of {role}")
            actions, undo = lockout.block(conn, role)
            if inc.run(actions, conn):
                inc.hold("application", f"role {role} blocked", undo)
            # live: prep-ops does not hold the application's password, so no login is tried
            connected, answer = lockout.can_connect(run.drill.app_login()) if run.drill else (False, "")
            left = len(lockout.sessions(conn, role))
        inc.check("application stopped", not connected and not left,
                  f"{role}: {left} session(s) left" + (f"; login: {answer}" if run.drill else ""),
                  skipped="" if inc.may_change else f"{_NOT_CONFIRMED}: the role was not blocked (statements above)")
        return before


def assess_damage(run: DataRecovery) -> recovery.Damage:
    """Step 2: the newest full backup verified by a restore, then every table compared with it, the
    damaged ones row by row against a restored copy. Returns what was found (the copy stays until step 6)."""
    inc = run.inc
    with inc.step(2, "Assess the damage", next_if_failed="verify the newest backup by hand (prep-ops verify --latest) "
                                                          "and compare the tables with it"):
        with connect(run.target, autocommit=True) as conn:
            chosen = run.drill.backup if run.drill else recovery.latest_backup(conn, run.backup_dir)
            checked = verify.verify(chosen.path)
            run.backup = chosen
            inc.fact("backup", f"{chosen.path.name} (finished {chosen.manifest['finished']})")
            inc.check("backup verified by a restore", checked.ok, f"{chosen.path.name}: {len(checked.report)} checks",
                      fix="pick an older backup with backup_dir")
            run.found = found = recovery.investigate(conn, chosen)
        for line in found.lines() or ["no table differs from the backup"]:
            inc.found(line)
        if run.drill:
            inc.check("damage found where it was done", set(found.damaged) == set(run.drill.damage),
                      ", ".join(f"{t}: {n} rows" for t, n in run.drill.damage.items()))
        return found


def restore(run: DataRecovery) -> pd.DataFrame:
    """Step 3: the damaged rows put back from the backup (scope="rows"), or the whole database restored
    (scope="database"); live without confirm, only said. Returns rows inserted and updated per table."""
    inc, found = run.inc, run.found
    repaired = pd.DataFrame(columns=["table", "inserted", "updated"])
    with inc.step(3, "Restore", next_if_failed="the tables are as they were before this step; fix the cause above and "
                                                "re-run step 3, or restore with scope='database'"):
        if run.scope == "rows" and found.damaged and inc.may_change:
            with connect(run.target, autocommit=True) as conn, connect(found.copy, autocommit=True) as copy:
                repaired = recovery.repair_rows(conn, copy, found.damaged, confirm=True)
            inc.did("; ".join(f"{r.table}: {r.inserted} rows inserted, {r.updated} updated" for r in repaired.itertuples()))
        elif run.scope == "database" and inc.may_change:
            inc.did(str(restores.restore(run.backup.path, run.target, confirm=True)))
        elif found.damaged:
            inc.would(f"put back the rows above into {', '.join(found.damaged)} from {run.backup.path.name} (scope={run.scope})")
    return repaired


def verify_data(run: DataRecovery) -> pd.DataFrame:
    """Step 4: every table compared with the backup again; the damaged ones must equal it row by row.
    Returns the per-table comparison."""
    inc, found = run.inc, run.found
    with inc.step(4, "Verify the data", next_if_failed="keep the application blocked; compare the tables listed above "
                                                        "with the backup by hand"):
        with connect(run.target, autocommit=True) as conn, connect(found.copy, autocommit=True) as copy:
            after = recovery.assess(conn, run.backup.manifest)
            still = recovery.row_differences(conn, copy, found.damaged)
        lost = int(still["missing"].sum() + still["changed"].sum())
        inc.check("data equals the backup (zero rows lost)", lost == 0 and not recovery.damaged_tables(after),
                  f"{len(found.damaged)} table(s) checked, {lost} rows still missing or changed",
                  skipped="" if inc.may_change else f"{_NOT_CONFIRMED}: nothing put back, {lost} rows still missing or changed")
    return after


def resume_service(run: DataRecovery) -> None:
    """Step 5: the application's role gets its old connection limit back; in a drill, logging in as it must work."""
    inc = run.inc
    with inc.step(5, "Resume service", next_if_failed="put the role's connection limit back by hand (the statement is above)"):
        if "application" in inc.holds:
            inc.run(inc.holds["application"].undo)
            inc.release("application")
        back, answer = lockout.can_connect(run.drill.app_login()) if run.drill else (False, "")
        inc.check("application can connect again", back and not inc.holds, answer,
                  skipped="" if run.drill else "live: logging in as the application needs its password, which prep-ops does not hold")


def clean_up(run: DataRecovery) -> None:
    """Step 6: the restored copy dropped, and in a drill the drill's database, roles and backup."""
    inc = run.inc
    with inc.step(6, "Document and clean up", next_if_failed="drop the prep_ops_recovery_* databases by hand"):
        if run.found is not None:
            run.found.drop()
        if run.drill:
            recovery_drill.cleanup(run.drill.server, run.drill)
        inc.did(f"dropped the restored copy{' and the drill' if run.drill else ''}; report: {inc.report_path}")
