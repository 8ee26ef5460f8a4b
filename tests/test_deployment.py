"""Runbook 07 end to end with migrations pending: deployed, and the rollback rehearsal on the copy
gives back exactly the data of the pre-migration backup."""

from pathlib import Path

import pytest

from prep_ops import db, migrate, runner, seed

from conftest import _create, _drop, notebook_outputs

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "07_migration_deployment.ipynb"
LATEST = migrate.latest_version()


@pytest.mark.parametrize("start, students", [(LATEST - 1, 200), (0, 0)], ids=["one-version-behind", "empty-database"])
def test_runbook_07_deploys_pending_migrations_and_rolls_the_copy_back_exactly(server, tmp_path, monkeypatch,
                                                                               start, students):
    monkeypatch.setenv("PREP_OPS_BACKUP_DIR", str(tmp_path / "backups"))  # the kernel inherits it
    target = _create(server)
    try:
        with db.connect(target, autocommit=True) as conn:
            if students:
                migrate.apply(conn)
                seed.seed(conn, students=students, seed=11)
                down = migrate.apply(conn, start, confirm=True)  # over rows: confirmed
                assert [(s.version, s.direction) for s in down] == [(v, "down") for v in range(LATEST, start, -1)]
            assert migrate.current_version(conn) == start

        run = runner.run_one(NOTEBOOK, tmp_path, {"database_url": target.url, "confirm": True})
        assert run.ok, run.error
        with db.connect(target, autocommit=True) as conn:
            assert migrate.current_version(conn) == LATEST
        checks = {c["name"]: c for c in run.checks}
        assert (f"at version {start}, {LATEST - start} step(s) pending; rollback rehearsal to {start}"
                in notebook_outputs(tmp_path / NOTEBOOK.name))
        assert checks["target migrated"]["status"] == "PASS" and checks["no rows lost"]["status"] == "PASS"
        assert checks["down migrations run on the copy"]["passed"]
        rollback = checks["data back exactly as in the pre-migration backup"]
        if students:  # at LATEST - 1: the school's 8 tables, audit.log and masking_private.salt
            assert rollback["passed"] and rollback["must_hold"]
            assert rollback["detail"] == "10 tables equal the backup in row count and content checksum"
        else:  # an empty database's backup holds no table: "0 tables equal" was a PASS of nothing
            assert rollback["status"] == "SKIP"
            assert rollback["detail"] == "the backup holds no table to compare with: nothing was compared"
        assert not run.failed_checks
    finally:
        _drop(server, target)
