"""Runbook 10 end to end: the drill recovers every row; live mode without confirm changes nothing."""

import re
from pathlib import Path

import pytest

from prep_ops import backup, db, incident, migrate, roles, runner, scratch, seed
from prep_ops.errors import ParameterError, StepFailed
from prep_ops.incident import recovery, recovery_steps
from prep_ops.incident.drills import recovery as recovery_drill

from conftest import _create, _drop, notebook_outputs, passes_of_what_was_not_looked_at, schema_dump

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "10_incident_data_recovery.ipynb"


def _server_state(server: db.Target) -> list:
    with db.connect(server, autocommit=True) as conn:
        return conn.execute("SELECT rolname, rolcanlogin, rolconnlimit FROM pg_roles ORDER BY 1").fetchall()


def test_drill_recovers_every_row_and_leaves_nothing_behind(tmp_path, incident_id, server):
    result = runner.run_one(NOTEBOOK, tmp_path, {"incident_id": incident_id, "backup_dir": str(tmp_path / "backups")})
    assert result.ok, result.error
    passed = {c["name"] for c in result.checks if c["passed"]}
    assert {"application stopped", "damage found where it was done", "data equals the backup (zero rows lost)",
            "application can connect again"} <= passed
    report = (incident.incidents_dir() / f"{incident_id}.md").read_text()
    for title in ("1. Stop the application", "2. Assess the damage", "3. Restore", "4. Verify the data",
                  "5. Resume service", "6. Document and clean up"):
        assert f"## {title}" in report
    assert "CONNECTION LIMIT 0" in report and "outcome:** all must-hold checks passed" in report
    assert (incident.incidents_dir() / f"{incident_id}.ipynb").exists()
    with db.connect(server, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'prep_ops_drill_recovery%%' "
                            "OR datname LIKE 'prep_ops_recovery_%%'").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname LIKE %s",
                            (recovery_drill.ROLE_PREFIX + "%",)).fetchone()[0] == 0
    assert not list((tmp_path / "backups").glob("*.dump"))


def test_live_without_confirm_changes_nothing(tmp_path, incident_id, server):
    target = _create(server)
    try:
        with db.connect(target, autocommit=True) as conn:
            migrate.apply(conn)
            seed.seed(conn, students=300, seed=5)
            roles.apply(conn, roles.RoleSet.with_prefix("prep_ops_livetest_"), confirm=True)
        backup.backup(target, "full", "custom", directory=tmp_path)
        with db.connect(target) as conn:  # the incident: real damage, which live mode must only report
            conn.execute("DELETE FROM enrollments WHERE id % 4 = 0")
            conn.commit()
            before = backup.table_checksums(conn)
        dump, cluster = schema_dump(target), _server_state(server)
        result = runner.run_one(NOTEBOOK, tmp_path, {"database_url": target.url, "mode": "live", "incident_id": incident_id,
                                                   "app_role": "prep_ops_livetest_app", "backup_dir": str(tmp_path)})
        assert result.ok, result.error
        with db.connect(target) as conn:
            assert backup.table_checksums(conn) == before
        assert schema_dump(target) == dump and _server_state(server) == cluster
        outputs = notebook_outputs(tmp_path / NOTEBOOK.name)
        assert "WOULD (confirm=True to run): ALTER ROLE" in outputs and "WOULD (confirm=True to run): put back" in outputs
        report = (incident.incidents_dir() / f"{incident_id}.md").read_text()
        assert re.search(r"public\.enrollments: [1-9]\d* rows missing", report)
        status = {c["name"]: c["status"] for c in result.checks}  # what live mode did not do is SKIP, never PASS
        for name in ("application stopped", "data equals the backup (zero rows lost)", "application can connect again"):
            assert status[name] == "SKIP", name
            assert f"SKIP {name} — " in report
        assert passes_of_what_was_not_looked_at([result]) == []
    finally:
        with db.connect(target, autocommit=True) as conn:
            roles.drop(conn, roles.RoleSet.with_prefix("prep_ops_livetest_"), confirm=True)
        _drop(server, target)


def test_live_without_a_backup_stops_at_step_two_and_says_what_to_do(tmp_path, incident_id, migrated):
    result = runner.run_one(NOTEBOOK, tmp_path, {"database_url": migrated.url, "mode": "live", "incident_id": incident_id,
                                               "backup_dir": str(tmp_path / "none")})
    assert not result.ok
    assert "StepFailed: step 2 (Assess the damage) failed: no full backup of" in result.error
    assert "STOPPED at step 2" in (incident.incidents_dir() / f"{incident_id}.md").read_text()


# --- the runbook's steps, called as the notebook calls them ---------------------------------------
_CHECK_NAMES = ("application stopped", "backup verified by a restore", "damage found where it was done",
                "data equals the backup (zero rows lost)", "application can connect again")


def _checks(run) -> dict[str, str]:
    """Each check of the run's incident: name -> its status word, as the timeline records it
    ("PASS name: detail", "SKIP name — why"); a name may hold a colon itself."""
    found = {}
    for event in run.inc.events:
        if event.kind == "check":
            word, _, rest = event.text.partition(" ")
            name = rest.split(" — ")[0] if word == "SKIP" else rest
            while name not in _CHECK_NAMES and ":" in name:
                name = name.rpartition(":")[0]
            found[name] = word
    return found


def test_each_step_is_one_call_and_the_drill_recovers_every_row(tmp_path, incident_id):
    run = recovery_steps.start(db.resolve_target(), "drill", incident_id=incident_id,
                               backup_dir=tmp_path / "backups", drill_students=200)
    try:
        assert len(recovery_steps.stop_application(run)) == 1 and "application" in run.inc.holds
        found = recovery_steps.assess_damage(run)
        assert set(found.damaged) == set(run.drill.damage) and found is run.found
        repaired = recovery_steps.restore(run).set_index("table")
        assert repaired.loc["public.enrollments", "inserted"] == run.drill.damage["public.enrollments"]
        assert not recovery.damaged_tables(recovery_steps.verify_data(run))
        recovery_steps.resume_service(run)
        assert not run.inc.holds
    finally:
        recovery_steps.clean_up(run)
    assert _checks(run) == {"application stopped": "PASS", "backup verified by a restore": "PASS",
                            "damage found where it was done": "PASS", "data equals the backup (zero rows lost)": "PASS",
                            "application can connect again": "PASS"}
    with db.connect(run.drill.server, autocommit=True) as conn:
        assert not scratch.existing(conn, recovery_drill.DATABASE)


def test_live_steps_without_an_app_role_or_a_backup_say_so_and_stop_at_step_two(migrated, tmp_path, incident_id):
    run = recovery_steps.start(migrated, "live", incident_id=incident_id, backup_dir=tmp_path)
    assert recovery_steps.stop_application(run).empty and not run.inc.holds
    assert [e.text for e in run.inc.events if e.kind == "note"][0].startswith("no app_role given")
    with pytest.raises(StepFailed, match=r"step 2 \(Assess the damage\) failed: no full backup of"):
        recovery_steps.assess_damage(run)


def test_start_refuses_a_bad_mode_or_scope_before_making_anything(server):
    with pytest.raises(ParameterError, match="mode must be one of drill, live"):
        recovery_steps.start(server, "rehearsal")
    with pytest.raises(ParameterError, match="scope must be one of rows, database"):
        recovery_steps.start(server, "drill", scope="everything")
    with db.connect(server, autocommit=True) as conn:
        assert not scratch.existing(conn, recovery_drill.DATABASE)
