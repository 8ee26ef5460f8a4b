"""Runbook 10 end to end: the drill recovers every row; live mode without confirm changes nothing."""

import re
from pathlib import Path

from prep_ops import backup, db, incident, migrate, roles, runner, seed
from prep_ops.drills import recovery as recovery_drill

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
        migrate.apply(target)
        seed.seed(target, students=300, seed=5)
        roles.apply(target, roles.RoleSet.with_prefix("prep_ops_livetest_"), confirm=True)
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
        roles.drop(target, roles.RoleSet.with_prefix("prep_ops_livetest_"), confirm=True)
        _drop(server, target)


def test_live_without_a_backup_stops_at_step_two_and_says_what_to_do(tmp_path, incident_id, migrated):
    result = runner.run_one(NOTEBOOK, tmp_path, {"database_url": migrated.url, "mode": "live", "incident_id": incident_id,
                                               "backup_dir": str(tmp_path / "none")})
    assert not result.ok
    assert "StepFailed: step 2 (Assess the damage) failed: no full backup of" in result.error
    assert "STOPPED at step 2" in (incident.incidents_dir() / f"{incident_id}.md").read_text()
