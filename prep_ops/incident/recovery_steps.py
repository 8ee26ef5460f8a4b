"""Runbook 10, data recovery, one call per step: stop the application, assess the damage, restore,
verify the data, resume service, document and clean up.

`start` makes the drill (mode="drill": a scratch database damaged on purpose) or takes the target
(mode="live") and opens the incident; each step then takes what `start` returned, works on the
incident's one connection (`inc.conn`; the restored copy has its own), records what it found and
did, makes its checks (a SKIP with the reason for what this mode does not check) and returns what
the notebook shows.

A killed run leaves its record (runs/incidents/<id>.json): re-run with the same incident_id, step 1
takes over the earlier block with the role's original connection limit, and step 5 puts that back;
step 6 drops restored copies the earlier run left (they are named after the incident). A run under
another incident_id (a kernel restarted with incident_id=None) finds the role blocked by the earlier
one's record and, confirmed, refuses step 1, naming the incident to carry on.

scope="point-in-time" takes the missing and changed rows from the database as it was just before the
damage (point_in_time.py: pitr.recover into a new database beside it, from the server's base backups
and WAL archive) instead of the dump, so the work done after the last dump is kept. Its drill runs on a
private archiving cluster of its own (drills/pitr_cluster.py). No copy is a SKIP only where nothing was
to be made: live without confirm, or a live server without WAL archiving or a base backup (the reason
said); a drill, or a confirmed live run that could recover, without a copy FAILs. Step 4 checks the
repaired tables against the copy and, independently of it, against the last logical backup: no row
that backup holds may still be missing (a copy from after the damage would pass the first alone).
"""

import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd
from psycopg import sql

from .. import restore as restores
from .. import base_backup, pitr, scratch, verify, wal_archive
from ..backup import Backup
from ..manifest import backups_dir
from ..db import Target, connect
from ..errors import ParameterError, TargetError, first_line
from . import journal, lockout, naming, point_in_time, recovery
from .drills import recovery as recovery_drill
from .record import Action, Incident, check_mode

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
    recover_to: object = None    # point-in-time: the moment given, or None (found from the audit log or WAL)
    point: point_in_time.Copy | None = None  # point-in-time: the copy as it was just before the damage
    lost_after: dict | None = None  # point-in-time: rows still missing or changed per table after step 3
    pitr_skipped: str = ""  # point-in-time: why step 2 made no copy, where that is no failure (live)
    replaced: str | None = None  # scope="database": the database the restore replaced (restore.restore keeps it)
    # step 3: per table, the BEFORE triggers that fired on the rows put back (not the role's to hold off)
    triggers_fired: dict[str, str] = field(default_factory=dict)

    @property
    def pitr_name(self) -> str:
        """The point-in-time copy's database: prep_ops_recovery_<label>_pitr, on the target's server."""
        return f"{self.copy_prefix}pitr"

    @property
    def safety_dir(self) -> Path:
        """Where scope="database" puts its safety backup of the target as it is (damaged): backups/safety/<id>/,
        never the folder the newest backup is looked for in, where a re-run would take it for the backup."""
        return backups_dir() / restores.SAFETY_FOLDER / self.inc.id

    @property
    def copy_prefix(self) -> str:
        """The names of this incident's restored copies: prep_ops_recovery_<label>_<random>."""
        return f"{recovery.COPY_PREFIX}{naming.drill_label(self.inc.id)}_"

    def _repr_markdown_(self) -> str:
        return f"`{self.inc!r}`"


def start(target: Target, mode: str = "drill", *, incident_id: str | None = None, confirm: bool = False,
          app_role: str | None = None, scope: str = "rows", backup_dir: Path | str | None = None,
          drill_students: int = 2000, recover_to=None, drill_audit_log: bool = True) -> DataRecovery:
    """The drill made (mode="drill") or the target taken (live), and the incident opened. `recover_to`
    (scope="point-in-time"): the moment to recover to; None: just before the first damaging change."""
    check_mode(mode)
    recovery.check_scope(scope)
    if recover_to is not None:
        point_in_time.given(recover_to)  # a bad value refused before anything is made
    parameters = dict(mode=mode, incident_id=incident_id, confirm=confirm, app_role=app_role, scope=scope,
                      recover_to=recover_to, backup_dir=backup_dir, drill_students=drill_students)
    incident_id = naming.check_id(incident_id or naming.new_id("data-recovery"))
    journal.claim(naming.incidents_dir(), incident_id)  # before its drill is made: a re-run drops the drill of its id
    backup_dir = Path(backup_dir) if backup_dir else None
    if mode != "drill":
        drill = None
    elif scope == "point-in-time":
        drill = recovery_drill.prepare_point_in_time(drill_students, incident_id=incident_id, audit=drill_audit_log)
    else:
        drill = recovery_drill.prepare(target, drill_students, incident_id=incident_id, backup_dir=backup_dir)
    work_on = drill.target if drill else target
    inc = Incident("data-recovery", "Data recovery", work_on, incident_id=incident_id, mode=mode, confirm=confirm,
                   conn=drill.conn if drill else None)
    if drill and drill.swept:
        inc.note(f"removed what killed drills had left: {', '.join(drill.swept)}")
    inc.given(**parameters)  # a step refuses to run once one of them is changed in the notebook (setup not run again)
    return DataRecovery(inc, work_on, drill, drill.app_role if drill else app_role, scope, backup_dir,
                        recover_to=recover_to)


def stop_application(run: DataRecovery) -> pd.DataFrame:
    """Step 1: the application's role blocked (connection limit 0, sessions ended), held until step 5;
    the hold, with the role's limit as it was, is on disk before the block. Returns the role's
    sessions found before (empty without a role)."""
    inc, role = run.inc, run.role
    if role:  # before the step: a wrong incident_id is no failure of it, and its "next" would mislead
        _refuse_a_block_held_elsewhere(inc, role)
    with inc.step(1, "Stop the application", next_if_failed="stop the application servers by hand, then re-run from step 2"):
        if run.drill:
            inc.note(run.drill.note)
        if not role:
            inc.note("no app_role given: the application is not blocked; stop it by hand before repairing")
            return pd.DataFrame()
        conn = inc.conn
        _refuse_another_role(inc, role)
        before = lockout.sessions(conn, role)
        inc.found(f"{len(before)} open session(s) of {role}")
        actions, undo = lockout.block(conn, role)
        inc.change("application", f"role {role} blocked", actions, undo, state=lockout.state(conn, role))
        # live: prep-ops does not hold the application's password, so no login is tried
        connected, answer = lockout.can_connect(run.drill.app_login()) if run.drill else (False, "")
        left = len(lockout.sessions(conn, role))
        inc.check("application stopped", not connected and not left,
                  f"{role}: {left} session(s) left" + (f"; a new login is refused ({answer})" if run.drill and not connected
                                                        else "; a new login got in" if run.drill else ""),
                  skipped="" if inc.may_change else f"{_NOT_CONFIRMED}: " + (
                      "this run did not block it; an earlier run's block is still in place" if inc.taken_over("application")
                      else "the role was not blocked (statements above)"))
        return before


def _refuse_another_role(inc: Incident, role: str) -> None:
    """A re-run's app_role must be the role the earlier run blocked: step 5 puts back what that run read
    (the earlier role's limit), so blocking another here would leave the other one blocked for good."""
    held = inc.holds.get("application")
    earlier = held.state.get("role") if held else None
    if earlier is not None and earlier != role:
        raise ParameterError(f"incident {inc.id}: its earlier run blocked role {earlier!r}, not {role!r}: re-run with "
                             f"app_role {earlier!r} (step 5 unblocks it), or undo it by hand "
                             f"({'; '.join(a.text for a in held.undo)}) and give this run another incident_id")


def _refuse_a_block_held_elsewhere(inc: Incident, role: str) -> None:
    """The role blocked by another incident's run (a kernel restarted with incident_id=None opens a new incident):
    blocking it again here would read its connection limit 0 as the one to put back, and step 5 would leave the
    application blocked for good, live saying only SKIP. A confirmed run is refused, naming the incident to carry
    on; without confirm (nothing blocked here), it is said."""
    if inc.holds.get("application"):
        return  # this incident's own earlier run holds it (taken over): its limit is the one kept
    for other, record in journal.held_elsewhere(inc.directory, inc.id, "application", role, inc.target.masked_url):
        hold = record["holds"]["application"]
        said = (f"role {role} is still blocked by incident {other} (since {hold['since'][:19]} UTC, connection limit "
                f"{hold['state'].get('connection_limit')} before it); blocking it here would take limit 0 for the one "
                f"to put back: carry on that incident with incident_id={other!r} (its step 5 unblocks it), or undo it "
                f"({'; '.join(a['text'] for a in hold['undo'])}) and run again")
        if inc.may_change:
            raise ParameterError(said)
        inc.note(said)


def _hold_copies(run: DataRecovery) -> None:
    """Recorded before the restore makes them: the incident's copies on the embedded server, and how to drop them."""
    prefix = run.copy_prefix
    listing = sql.SQL("SELECT format('DROP DATABASE %I WITH (FORCE)', datname) FROM pg_database "
                      "WHERE starts_with(datname, {})").format(sql.Literal(prefix))
    run.inc.hold("copies", f"restored copies {prefix}* on the embedded server",
                 [Action(f"{listing.as_string(None)} \\gexec  (in psql on the embedded server: prep-ops db url)", listing)],
                 state={"prefix": prefix})


def assess_damage(run: DataRecovery) -> recovery.Damage:
    """Step 2: the newest full backup verified by a restore, then every table compared with it, the
    damaged ones row by row against a restored copy. Returns what was found (the copy stays until step 6)."""
    inc = run.inc
    with inc.step(2, "Assess the damage", next_if_failed="verify the newest backup by hand (prep-ops verify --latest) "
                                                          "and compare the tables with it"):
        conn = inc.conn
        chosen = run.drill.backup if run.drill else recovery.latest_backup(conn, run.backup_dir)
        checked = verify.verify(chosen.path)
        run.backup = chosen
        inc.fact("backup", f"{chosen.path.name} (finished {chosen.manifest['finished']})")
        failed = checked.failures.head(2)  # what failed, in the check's own line (the report may be gone)
        why = "; ".join(f"{r.object} {r.check}: {r.actual}" for r in failed.itertuples())
        # the restore below depends on this backup: nothing compared in it is no verified backup (FAIL, not SKIP)
        inc.check("backup verified by a restore", checked.ok and not checked.nothing_checked,
                  f"{chosen.path.name}: {checked.nothing_checked or checked.counts}" + (f": {why}" if why else ""),
                  fix="pick an older backup with backup_dir")
        for what, why_not in checked.not_compared:
            inc.check(what, False, skipped=why_not)
        if run.found is not None:  # assessed again: the copy the earlier assessment compared with goes first
            run.found.drop()
        _hold_copies(run)
        run.found = found = recovery.investigate(conn, chosen, copy_prefix=run.copy_prefix)
        if found.copy is None and not inc.taken_over("copies"):
            inc.release("copies")
        for line in found.lines() or ["no table differs from the backup"]:
            inc.found(line)
        if run.drill:
            inc.check("damage found where it was done", set(found.damaged) == set(run.drill.damage),
                      ", ".join(f"{t}: {n} rows" for t, n in run.drill.damage.items()))
        if run.scope == "point-in-time" and found.damaged:
            _recover_point_in_time(run)
        return found


def _recover_point_in_time(run: DataRecovery) -> None:
    """Step 2, scope="point-in-time": the database as it was just before the damage, beside it."""
    inc, found = run.inc, run.found
    directory = run.drill.backups_dir if run.drill else run.backup_dir
    why_not = point_in_time.unavailable(inc.conn, directory)
    if not inc.may_change or why_not and not run.drill:  # live: nothing to make, or nothing to make it from
        run.pitr_skipped = (f"{_NOT_CONFIRMED}: no database was recovered beside the target" if not inc.may_change
                            else f"nothing to recover from: {why_not}")
        inc.check("point-in-time copy made", False, skipped=run.pitr_skipped)
        return
    if why_not:  # a drill always has archiving and a base backup: without them, it failed
        inc.check("point-in-time copy made", False, f"nothing to recover from: {why_not}")
    if not run.drill and _may_switch_wal(inc.conn):  # an attempt: what the archive holds may be all the copy needs
        try:
            pitr.archive_now(inc.conn, wal_archive.archive_dir(base_backup.source_of(inc.conn)["system_identifier"]),
                             until_failed=True)
        except TargetError as exc:
            inc.found(f"the WAL since the damage could not be archived now ({first_line(exc)}); the copy is made "
                      "from what the archive holds")
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(run.pitr_name))
    if inc.taken_over("pitr copy"):  # a killed earlier run's copy goes first: recover never overwrites
        inc.run(inc.holds["pitr copy"].undo, autocommit=True)
        inc.release("pitr copy")
    inc.hold("pitr copy", f"database {run.pitr_name} (the point-in-time copy) on the target's server",
             [Action(drop.as_string(None), drop)])
    point = point_in_time.recover_copy(
        inc.conn, run.target, found.copy, found.damaged, name=run.pitr_name, recover_to=run.recover_to,
        since=datetime.fromisoformat(run.backup.manifest["started"]), snapshot=run.backup.manifest.get("snapshot"),
        directory=directory, controlled=bool(run.drill))
    run.point = point
    inc.fact("recovered to", f"{point.moment.text} ({point.moment.source})")
    if point.moment.detail:
        inc.found(point.moment.detail)
    inc.did(f"recovered {run.target.database} as it was at {point.moment.text} into {run.pitr_name} "
            f"({point.seconds:.1f} s)")
    for r in point.differences.itertuples():
        inc.found(f"{r.table}: {r.missing} rows missing, {r.changed} changed, {r.added} added against the "
                  "point-in-time copy")
    inc.found(f"the dump-based scope would lose {point.dump_would_lose} rows (the work after the last dump it "
              "does not hold); point-in-time puts them back")
    inc.check("point-in-time copy made", True, f"{run.pitr_name}, as at {point.moment.text}")


def _may_switch_wal(conn) -> bool:
    """Whether this role may call pg_switch_wal() (a superuser, or granted it): then a confirmed live run has the
    WAL holding the damage archived now (pitr.archive_now: one small commit, a segment switch, a wait for the
    archive), as a DBA would, rather than failing step 2 until the server's archive_timeout comes round. An
    attempt only: an archiver failing now (its disk full) keeps no copy from what is archived already."""
    return conn.execute("SELECT has_function_privilege('pg_catalog.pg_switch_wal()', 'EXECUTE')").fetchone()[0]


def _repaired(run: DataRecovery, repaired: pd.DataFrame) -> str:
    """What step 3 wrote, per table, with the BEFORE triggers it held off or that fired (kept on the run:
    step 4 names them where rows still differ)."""
    run.triggers_fired = {r.table: r.triggers_fired for r in repaired.itertuples() if r.triggers_fired}
    return "; ".join(
        f"{r.table}: {r.inserted} rows inserted, {r.updated} updated"
        + (f" (BEFORE triggers held off while writing: {r.triggers_held_off})" if r.triggers_held_off else "")
        + (f" (BEFORE triggers fired, not held off: {r.triggers_fired})" if r.triggers_fired else "")
        for r in repaired.itertuples())


def _fix_for_rows_left(run: DataRecovery, still: pd.DataFrame, fallback: str) -> str:
    """Step 4's fix where rows still differ after the repair (`still`: recovery.row_differences): the BEFORE
    triggers that fired, for the tables where they fired and rows are left (they may have rewritten them);
    `fallback` for rows left in tables where none fired, and alone when no such trigger touched a table with
    rows left (a trigger that fired where every row came back equal is not the cause)."""
    left = [r.table for r in still.itertuples() if r.missing + r.changed]
    blamed = {table: run.triggers_fired[table] for table in left if table in run.triggers_fired}
    if not blamed:
        return fallback
    others = [table for table in left if table not in blamed]
    return (f"the tables' BEFORE triggers rewrote the rows put back ({'; '.join(f'{t}: {n}' for t, n in blamed.items())}): "
            "re-run step 3 as the tables' owner or a superuser, which holds them off (one whose holding off was "
            "refused: allow its ALTER TABLE … DISABLE TRIGGER first)"
            + (f"; rows are left in {', '.join(others)} too, where no BEFORE trigger fired"
               + (f": {fallback}" if fallback else "") if others else ""))


def restore(run: DataRecovery) -> pd.DataFrame:
    """Step 3: the damaged rows put back from the backup (scope="rows") or from the point-in-time copy
    (scope="point-in-time"), or the whole database restored (scope="database"); live without confirm,
    only said. Returns rows inserted and updated per table."""
    inc, found = run.inc, run.found
    repaired = pd.DataFrame(columns=["table", "inserted", "updated"])
    with inc.step(3, "Restore", next_if_failed="the tables are as they were before this step; fix the cause above and "
                                                "re-run step 3, or restore with scope='database'",
                  after=(1, 2) if run.role else (2,), once=True):  # the block in place, and an assessment no repair used
        gone = recovery.missing_tables(found.assessment)  # dropped: no row goes back, only a database restore
        if not found.damaged and not (gone and run.scope == "database"):
            inc.note("nothing damaged: nothing to put back" if not gone else
                     f"no rows to put back; gone, with all their rows: {', '.join(gone)} (only scope='database' restores a table)")
        elif run.scope == "rows" and inc.may_change:
            with connect(found.copy, autocommit=True) as copy:
                repaired = recovery.repair_rows(inc.conn, copy, found.damaged, confirm=True)
            inc.did(_repaired(run, repaired))
        elif run.scope == "point-in-time" and run.point is not None:
            with connect(run.point.target, autocommit=True) as copy:
                repaired = recovery.repair_rows(inc.conn, copy, found.damaged, confirm=True)
            inc.did(f"{_repaired(run, repaired)} (from the point-in-time copy, as at {run.point.moment.text})")
        elif run.scope == "database" and inc.may_change:
            inc.close()  # the restore replaces the database this connection is on
            inc.save(running=[f"restore {run.backup.path.name} into {run.target.database}, safety backup into {run.safety_dir}"])
            done = restores.restore(run.backup.path, run.target, confirm=True, safety_dir=run.safety_dir)
            run.replaced = done["replaced"]
            inc.did(str(done))
        elif run.scope == "point-in-time" and inc.may_change:
            inc.note("no point-in-time copy (step 2 says why): nothing put back")
        elif run.scope == "point-in-time":
            inc.would(f"put back the rows above into {', '.join(found.damaged)} from the database as it was just "
                      "before the damage (scope=point-in-time)")
        else:
            inc.would(f"put back the rows above into {', '.join(found.damaged)} from {run.backup.path.name} (scope={run.scope})")
    return repaired


def verify_data(run: DataRecovery) -> pd.DataFrame:
    """Step 4: every table compared with the backup again; the damaged ones must equal it (scope
    "point-in-time": the point-in-time copy) row by row. Returns the per-table comparison with the backup."""
    inc, found = run.inc, run.found
    with inc.step(4, "Verify the data", next_if_failed="keep the application blocked; compare the tables listed above "
                                                        "with the backup by hand", after=(2,)):
        after = recovery.assess(inc.conn, run.backup.manifest)
        if run.scope == "point-in-time":
            _verify_point_in_time(run, recovery.missing_tables(after))
            return after
        still = pd.DataFrame(columns=recovery.DIFFERENCES)
        if found.damaged:
            with connect(found.copy, autocommit=True) as copy:
                still = recovery.row_differences(inc.conn, copy, found.damaged)
        lost, added = int(still["missing"].sum() + still["changed"].sum()), int(still["added"].sum())
        # the damaged tables differ from the backup by the rows added since, which the repair keeps: compared row
        # by row above; any other table that differs now was damaged after step 2 looked
        later = [t for t in recovery.damaged_tables(after) if t not in found.damaged]
        gone = recovery.missing_tables(after)  # every row of a dropped table is lost, though none was compared
        unchanged = "" if inc.may_change or not found.damaged else \
            f"{_NOT_CONFIRMED}: nothing put back, {lost} rows still missing or changed"
        inc.check("data equals the backup (zero rows lost)", lost == 0 and not later and not gone,
                  f"{len(found.damaged)} table(s) checked, {lost} rows still missing or changed"
                  + (f", {added} rows added since the backup kept" if added else "")
                  + (f"; differing from the backup since step 2: {', '.join(later)}" if later else "")
                  + (f"; gone, with all their rows: {', '.join(gone)}" if gone else ""),
                  fix="restore with scope='database' (a table that is gone cannot take rows back)" if gone else
                  _fix_for_rows_left(run, still, "") if lost else "",
                  skipped=unchanged if not gone else "")
    return after


def _verify_point_in_time(run: DataRecovery, gone: list[str]) -> None:
    """Step 4, scope="point-in-time": the damaged tables equal the point-in-time copy row by row, and
    hold every row of the last logical backup (checked against the backup itself, not the copy); a
    table that is `gone` (dropped: every row lost, none compared) fails it."""
    inc, found, point = run.inc, run.found, run.point
    name = "zero rows lost, including the work after the last logical backup"
    dropped = f"; gone, with all their rows: {', '.join(gone)}" if gone else ""
    fix = "restore with scope='database' (a table that is gone cannot take rows back)" if gone else ""
    if not found.damaged:
        inc.check(name, not gone, "no table differs from the backup" if not gone else dropped[2:], fix=fix)
        return
    with connect(found.copy, autocommit=True) as dump:
        against_dump = recovery.row_differences(inc.conn, dump, found.damaged)
    dump_missing = int(against_dump["missing"].sum())
    if point is None:
        inc.check(name, False, f"no point-in-time copy, nothing put back: {dump_missing} rows of the last logical "
                  f"backup still missing{dropped}", fix=fix, skipped=run.pitr_skipped if not gone else "")
        return
    with connect(point.target, autocommit=True) as copy:
        still = recovery.row_differences(inc.conn, copy, found.damaged)
    lost = int(still["missing"].sum() + still["changed"].sum())
    run.lost_after = dict(zip(still["table"], still["missing"] + still["changed"]))
    inc.found(f"rows lost: {lost} with point-in-time, {point.dump_would_lose} with the dump-based scope")
    if dump_missing:
        inc.found("rows of the last logical backup still missing: " + "; ".join(
            f"{r.table}: {r.missing} (e.g. {r.key} {r.missing_keys})" for r in against_dump.itertuples() if r.missing)
            + f"; a row deleted before {point.moment.text} is not in the copy either: when the damage deleted it, "
            "that moment is too late")
    inc.check(name, lost == 0 and dump_missing == 0 and not gone,
              f"{len(found.damaged)} table(s) equal the copy as at {point.moment.text}: {lost} rows lost, "
              f"{dump_missing} rows of the last logical backup missing (the dump-based scope would lose "
              f"{point.dump_would_lose}){dropped}",
              fix=fix if gone and not lost and not dump_missing else
              _fix_for_rows_left(run, still, "give recover_to: the moment just before the damage") if lost else
              "give recover_to: the moment just before the damage")


def losses(run: DataRecovery) -> pd.DataFrame | None:
    """Per damaged table (scope="point-in-time", after step 4): rows the dump-based scope would lose and
    rows lost with point-in-time, with a few keys of the first; None for the other scopes."""
    if run.point is None or run.lost_after is None:
        return None
    frame = run.point.dump_lost.rename(columns={"lost": "lost_with_dump", "lost_keys": "e.g. (dump)"})
    frame.insert(2, "lost_with_point_in_time", frame["table"].map(run.lost_after).astype(int))
    return frame.set_index("table")


def resume_service(run: DataRecovery) -> None:
    """Step 5: the application's role gets its original connection limit back (the one recorded before
    step 1, by this run or a killed earlier one); in a drill, logging in as it must work."""
    inc = run.inc
    with inc.step(5, "Resume service", next_if_failed="put the role's connection limit back by hand (the statement is above)",
                  undoes=(1,)):
        if "application" in inc.holds and inc.run(inc.holds["application"].undo):
            inc.release("application")
        back, answer = lockout.can_connect(run.drill.app_login()) if run.drill else (False, "")
        held = inc.holds.get("application")
        if held is not None and not run.drill:  # an earlier (killed) run's block, not undone without confirm
            inc.check("application can connect again", False, f"{held.what} since {held.since:%Y-%m-%d %H:%M:%S} UTC "
                      f"by an earlier run of this incident; to undo: {'; '.join(a.text for a in held.undo)}",
                      fix="re-run with confirm=True (step 5 unblocks it), or run the statement above by hand")
        inc.check("application can connect again", back and "application" not in inc.holds, answer,
                  skipped="" if run.drill else "live: logging in as the application needs its password, which prep-ops does not hold")


def clean_up(run: DataRecovery) -> None:
    """Step 6: this incident's restored copies dropped (a killed earlier run's too), in a drill its
    database, roles and backup, and the incident's connection closed."""
    inc = run.inc
    with inc.step(6, "Document and clean up", next_if_failed=f"drop the {run.copy_prefix}* databases by hand",
                  closes=True):
        if run.found is not None:
            run.found.drop()
        if "pitr copy" in inc.holds and inc.run(inc.holds["pitr copy"].undo, autocommit=True):
            inc.release("pitr copy")
        if "copies" in inc.holds:  # with what an earlier, killed run of this incident left
            server = verify.scratch_server()
            for name in scratch.existing(server, run.copy_prefix):
                scratch.drop(server, name)
            inc.release("copies")
        inc.close()
        if run.drill:
            if run.replaced:  # the drill's database as the restore found it: the drill's roles own what is in it
                scratch.drop(run.drill.server, run.replaced)
            shutil.rmtree(run.safety_dir, ignore_errors=True)
            recovery_drill.cleanup(run.drill)
        inc.did(f"dropped the restored copy{' and the drill' if run.drill else ''}; report: {inc.report_path}")
