"""PASS only for what was checked: a SKIP is neither passed nor failed, a failed must-hold check stops
the run, and a runbook run without confirm on a database that is not scratch never passes what it
did not do."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from prep_ops import backup, db, notebook, runner
from prep_ops.errors import CheckFailed

from conftest import cli_env, notebook_outputs, passes_of_what_was_not_looked_at, schema_dump

FIXTURES = Path(__file__).parent / "fixtures"


def test_a_skipped_check_is_neither_passed_nor_failed_and_never_stops():
    notebook._checks.clear()
    result = notebook.check("restore verified", False, "ignored", fix="ignored", skipped="no backup to restore")
    assert (result.skipped, result.passed, result.must_hold) == (True, False, False)
    assert result.status == "SKIP" and result.line == "SKIP restore verified — no backup to restore"
    held = notebook.check("rows equal", True, skipped="confirm=False: nothing restored")  # a true condition is not a pass
    assert held.status == "SKIP" and not held.passed
    notebook.check("looked at", True)
    with pytest.raises(CheckFailed):
        notebook.check("must hold", False)
    frame = notebook.summary("t")
    assert notebook.status_counts(frame.to_dict("records")) == {"PASS": 1, "WARN": 0, "FAIL": 1, "SKIP": 2}


def test_status_of_a_recorded_check():
    base = {"passed": False, "must_hold": True, "skipped": False}
    assert notebook.status(base) == "FAIL"
    assert notebook.status({**base, "must_hold": False}) == "WARN"
    assert notebook.status({**base, "passed": True}) == "PASS"
    assert notebook.status({**base, "passed": True, "skipped": True}) == "SKIP"


def test_runner_counts_skips_apart_and_writes_each_status(tmp_path):
    out, (result,) = runner.run([str(FIXTURES / "94_skips.ipynb")], out_dir=tmp_path / "run")
    assert result.ok, result.error
    by_name = {c["name"]: c["status"] for c in result.checks}
    assert by_name == {"looked at": "PASS", "not looked at": "SKIP", "true but not looked at": "SKIP",
                       "skipped outright": "SKIP", "should hold": "WARN", "must hold": "PASS",
                       "after the must-hold check": "PASS"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] is True and summary["counts"] == {"PASS": 3, "WARN": 1, "FAIL": 0, "SKIP": 3}
    (written,) = summary["notebooks"]
    assert {"notebook", "output", "ok", "seconds", "error", "checks"} <= set(written)  # the keys it always had
    assert written["counts"] == summary["counts"]
    assert [c["status"] for c in written["checks"]] == list(by_name.values())
    assert not any(c["passed"] for c in written["checks"] if c["status"] == "SKIP")


def test_a_failed_must_hold_check_stops_the_run_and_skips_do_not_fail_it(tmp_path):
    result = runner.run_one(FIXTURES / "94_skips.ipynb", tmp_path, {"fail": True})
    assert not result.ok and "CheckFailed" in result.error
    assert [c["name"] for c in result.failed_checks] == ["must hold"]
    assert "after the must-hold check" not in {c["name"] for c in result.checks}
    assert result.counts == {"PASS": 1, "WARN": 1, "FAIL": 1, "SKIP": 3}


def test_cli_run_shows_skips_as_skip_not_as_passed(tmp_path):
    env = cli_env(PREP_OPS_HOME=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "prep_ops", "run", str(FIXTURES / "94_skips.ipynb")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 PASS, 1 WARN, 3 SKIP" in done.stdout
    rows = [line.split() for line in done.stdout.splitlines() if "not looked at" in line]
    assert rows and all("SKIP" in row and "PASS" not in row for row in rows)


# --- the runbooks themselves -------------------------------------------------------------------
READ_ONLY_RUN = ["01", "02", "03", "04", "05", "06", "07", "08"]
NOT_DONE = {  # steps a run without confirm leaves out on a database that is not scratch: SKIP, never PASS
    "01_schema_setup": {"schema at the wanted version", "sample data present"},
    "05_maintenance": {"plan ran", "last vacuum set on every chosen table", "dead rows did not grow",
                       "no invalid index left"},
    "06_access_control_audit": {"roles and grants as wanted (a second plan is empty)",
                                "changes to personal and financial data are logged", "reporter is read-only",
                                "analyst cannot read personal columns",
                                "a change made as app is logged with old and new values",
                                "app cannot read or change the audit log"},
    "07_migration_deployment": {"target migrated", "no rows lost"},
}


def test_runbooks_without_confirm_skip_what_they_did_not_do(seeded, tmp_path, monkeypatch):
    monkeypatch.delenv("PREP_OPS_SCRATCH", raising=False)  # the seeded database is not declared throwaway
    monkeypatch.setenv("PREP_OPS_BACKUP_DIR", str(tmp_path / "backups"))
    with db.connect(seeded) as conn:
        before = backup.table_checksums(conn)
    dump = schema_dump(seeded)
    out, results = runner.run(READ_ONLY_RUN, {"database_url": seeded.url, "scale": 0}, out_dir=tmp_path / "run",
                              jobs=2)  # as `run --all` runs them: 02-04 side by side
    assert all(r.ok for r in results), [(r.notebook, r.error) for r in results if not r.ok]
    with db.connect(seeded) as conn:
        assert backup.table_checksums(conn) == before
    assert schema_dump(seeded) == dump
    assert passes_of_what_was_not_looked_at(results) == []
    status = {(r.notebook, c["name"]): c["status"] for r in results for c in r.checks}
    for name, steps in NOT_DONE.items():
        for step in steps:
            assert status[(name, step)] == "SKIP", (name, step)
    assert status[("01_schema_setup", "changes allowed")] == "WARN"
    assert status[("01_schema_setup", "expected tables, indexes and checks present")] == "PASS"  # looked at
    summary = json.loads((out / "summary.json").read_text())
    assert sum(n["counts"]["SKIP"] for n in summary["notebooks"]) == summary["counts"]["SKIP"] >= \
        sum(len(steps) for steps in NOT_DONE.values())


@pytest.mark.parametrize("filters", [{"term": "2026-fall"}, {"instrument": "piano"}, {}], ids=["term", "instrument", "none"])
def test_revenue_agrees_like_with_like_whatever_the_filter(seeded, tmp_path, filters, runbook_run):
    """Runbook 02's %sql revenue takes the same filter as prep_ops: the comparison is real with a filter too.
    Without a filter it is the runbook's default run (the nbval pass's, on the data 01 loaded)."""
    result = (runner.run_one(runner.find("02"), tmp_path, {"database_url": seeded.url, **filters}) if filters
              else runbook_run("02"))
    assert result.ok, result.error
    revenue = next(c for c in result.checks if c["name"] == "revenue agrees between %sql and prep_ops")
    assert revenue["status"] == "PASS" and "in both" in revenue["detail"] and "US$ " in revenue["detail"]
    terms = 1 if "term" in filters else 6
    assert revenue["detail"].startswith(f"{terms} term(s), ")
    assert passes_of_what_was_not_looked_at([result]) == []
    outputs = notebook_outputs(result.output)
    assert "Traceback" not in outputs and "US$ " in outputs


def test_runbook_04_states_what_the_cli_states_and_no_pass_for_what_was_not_compared(seeded, tmp_path, monkeypatch):
    """04's verdict is the CLI's count (checks run, failed, not compared) for the same backup."""
    monkeypatch.setenv("PREP_OPS_BACKUP_DIR", str(tmp_path / "backups"))
    result = runner.run_one(runner.find("04"), tmp_path, {"database_url": seeded.url, "fmt": "plain"})
    assert result.ok, result.error
    verdict = next(c for c in result.checks if c["name"] == "restored copy equals the source")
    (made,) = (tmp_path / "backups").glob("*.sql")
    cli = subprocess.run([sys.executable, "-m", "prep_ops", "verify", str(made)], capture_output=True, text=True,
                         env=cli_env(seeded, PREP_OPS_BACKUP_DIR=str(tmp_path / "backups")))
    assert cli.returncode == 0, cli.stdout + cli.stderr
    said = cli.stdout.splitlines()[0].split(": ", 1)[1].rsplit(" (", 1)[0]  # "N checks, 0 failed, S not compared"
    assert verdict["status"] == "PASS" and verdict["detail"] == said and ", 0 failed, " in said
    # each thing not compared is a SKIP line of its own (none on one major; another major's deparsed kinds)
    not_compared = int(said.split(", ")[2].split()[0])
    assert sum(c["status"] == "SKIP" and c["detail"].startswith("not compared: ") for c in result.checks) == not_compared


def test_a_verification_counts_what_was_not_compared_apart_and_names_each(tmp_path):
    """What the CLI and runbooks 04, 07 and 10 state: checks that ran, failed, not compared; a SKIP each."""
    from prep_ops._report import row
    from prep_ops.verify import Verification

    rows = [row("x.dump", "restore", "restored", "restored", True),
            row("public.t", "schema", "2 columns", "2 columns", True),
            row("public.t index t_expr", "index", "CREATE INDEX …", "not compared: equal only without parentheses", True,
                skipped=True),
            row("3 view(s)", "view", "compared", "not compared: another major version", True, skipped=True)]
    result = Verification(tmp_path / "x.dump", True, pd.DataFrame(rows), None, 1.0)
    assert result.counts == "2 checks, 0 failed, 2 not compared"
    assert result.not_compared == [("public.t index t_expr", "not compared: equal only without parentheses"),
                                   ("3 view(s)", "not compared: another major version")]
    assert result.nothing_checked == ""
    only_skips = Verification(tmp_path / "x.dump", True, pd.DataFrame(rows[2:]), None, 1.0)
    assert only_skips.counts == "0 checks, 0 failed, 2 not compared" and only_skips.nothing_checked.startswith(
        "nothing was compared: ")
