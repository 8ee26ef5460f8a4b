"""The runbooks on a database that holds no table (an external one, before 01 ran): each says what to do in
one check, and none passes what it had nothing to check."""

import pytest

from prep_ops import runner

from conftest import passes_of_what_was_not_looked_at


@pytest.mark.parametrize("name, check, status, says", [
    ("02", "the school's tables present", "FAIL", "run 01_schema_setup first"),  # not a raw UndefinedTable
    ("04", "manifest complete", "SKIP", "the database has no tables"),  # was FAIL, no fix
    ("07", "data back exactly as in the pre-migration backup", "SKIP", "nothing was compared"),  # was PASS, 0 tables
])
def test_a_runbook_on_a_database_without_tables_says_what_to_do_and_passes_nothing_it_did_not_check(
        scratch, tmp_path, monkeypatch, name, check, status, says):
    monkeypatch.setenv("PREP_OPS_BACKUP_DIR", str(tmp_path / "backups"))
    run = runner.run_one(runner.find(name), tmp_path, {"database_url": scratch.url})
    found = {c["name"]: c for c in run.checks}
    assert found[check]["status"] == status, found[check]
    assert says in found[check]["detail"] + found[check].get("fix", ""), found[check]
    assert passes_of_what_was_not_looked_at([run]) == []
    if status == "FAIL":
        assert not run.ok and "UndefinedTable" not in run.error
    else:
        assert run.ok, run.error
