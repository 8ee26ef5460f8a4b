"""The prep-ops command as a user runs it: a real process, a real server."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli_env, notebook_outputs, passes_of_what_was_not_looked_at, schema_dump, table_checksum

from prep_ops import db, migrate

FIXTURES = Path(__file__).parent / "fixtures"


def prep_ops(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "prep_ops", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def assert_one_error_line(result, *needles):
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in lines[0]


def test_db_status_and_url_of_the_embedded_server():
    env = cli_env()
    env.pop("DATABASE_URL", None)
    url = prep_ops("db", "url", env=env)
    assert url.returncode == 0 and "host=" in url.stdout
    status = prep_ops("db", "status", env=env)
    assert status.returncode == 0 and status.stdout.startswith("running: PostgreSQL")


def _version(target) -> int:
    with db.connect(target, autocommit=True) as conn:
        return migrate.current_version(conn)


def test_migrate_status_plan_apply_and_down_with_confirm(scratch):
    env = cli_env(scratch, PREP_OPS_SCRATCH="1")  # the test's own database, declared throwaway
    plan = prep_ops("migrate", "plan", env=env)
    assert plan.returncode == 0 and "CREATE TABLE users" in plan.stdout
    assert _version(scratch) == 0  # plan changed nothing
    up = prep_ops("migrate", env=env)
    assert up.returncode == 0 and f"schema at version {migrate.latest_version()}" in up.stdout
    status = prep_ops("migrate", "status", env=env)
    assert status.stdout.count("applied") >= migrate.latest_version()
    seeded = prep_ops("seed", "--students", "50", env=env)
    assert seeded.returncode == 0 and "students" in seeded.stdout
    refused = prep_ops("migrate", "--to", "0", env=env)
    assert_one_error_line(refused, "--confirm")
    assert _version(scratch) == migrate.latest_version()
    down = prep_ops("migrate", "--to", "0", "--confirm", env=env)
    assert down.returncode == 0 and _version(scratch) == 0


def _not_scratch_env(target) -> dict:
    """The subprocess environment for a database named by a URL (as any other server's): not scratch."""
    env = cli_env(target)
    env.pop("PREP_OPS_SCRATCH", None)
    return env


def test_cli_migrate_outside_scratch_needs_confirm(scratch):
    env = _not_scratch_env(scratch)
    before = schema_dump(scratch)
    refused = prep_ops("migrate", env=env)
    assert_one_error_line(refused, "is not a scratch database", "--confirm")
    assert _version(scratch) == 0 and schema_dump(scratch) == before
    assert prep_ops("migrate", "--confirm", env=env).returncode == 0
    assert _version(scratch) == migrate.latest_version()


def test_cli_seed_outside_scratch_needs_confirm(migrated):
    env = _not_scratch_env(migrated)
    before = {t: table_checksum(migrated, t) for t in ("users", "students", "tuition_payments")}
    refused = prep_ops("seed", "--students", "50", env=env)
    assert_one_error_line(refused, "is not a scratch database and loading sample data changes it")
    assert {t: table_checksum(migrated, t) for t in before} == before
    with db.connect(migrated) as conn:
        assert conn.execute("SELECT count(*) FROM students").fetchone()[0] == 0
    assert prep_ops("seed", "--students", "50", "--confirm", env=env).returncode == 0
    with db.connect(migrated) as conn:
        assert conn.execute("SELECT count(*) FROM students").fetchone()[0] == 50


def test_wrong_url_is_one_line_without_password():
    result = prep_ops("--database-url", "postgresql://admin:hunter2@127.0.0.1:1/unm_prep", "migrate", "status")
    assert_one_error_line(result, "cannot connect", "admin:***@")
    assert "hunter2" not in result.stderr + result.stdout


def test_stopped_embedded_server_starts_on_demand_or_says_why(tmp_path):
    env = cli_env(PREP_OPS_DATA_DIR=str(tmp_path / "pgdata"))
    env.pop("DATABASE_URL", None)
    assert prep_ops("db", "status", env=env).returncode == 1  # not running yet: says so, exit 1
    started = prep_ops("db", "start", env=env)
    assert started.returncode == 0 and "running" in started.stdout
    assert prep_ops("db", "stop", env=env).stdout.strip() == "stopped"
    assert prep_ops("db", "stop", env=env).stdout.strip() == "not running"


@pytest.mark.parametrize("args, needle", [
    (("seed", "--students", "-5"), "students must be between"),
    (("run", "no_such_notebook"), "no runbook named"),
    (("run", "02", "-p", "no_such_param", "1"), "no chosen runbook has a parameter"),
    (("run", "01", "-p", "students", "many"), "students must be int"),
    (("run",), "name at least one runbook"),
    (("migrate", "status", "--database-url", "x"), "here: it goes before the command (prep-ops --database-url URL migrate status"),
    (("migrate", "--to", "99"), "no migration 99"),
    (("restore", "/nonexistent/x.dump"), "no backup at /nonexistent/x.dump"),  # as verify says it, not click's words
])
def test_bad_input_is_one_clear_line(args, needle, scratch):
    result = prep_ops(*args, env=cli_env(scratch))
    assert_one_error_line(result, needle)


@pytest.mark.server_independent
def test_run_all_in_a_project_folder_without_runbooks_names_the_folder_it_looked_in(tmp_path):
    """PREP_OPS_HOME names the project folder, runbooks included: one without them says where it looked,
    not "name at least one runbook, or pass --all" to a user who passed --all."""
    for args in (("run", "--all"), ("run", "02")):
        result = prep_ops(*args, env=cli_env(PREP_OPS_HOME=str(tmp_path)))
        assert_one_error_line(result, f"there are no runbooks (NN_name.ipynb) in {tmp_path / 'notebooks'} "
                                      "(the project folder PREP_OPS_HOME names)")


def test_list_shows_parameters_and_defaults():
    result = prep_ops("list")
    assert result.returncode == 0
    assert "01_schema_setup" in result.stdout and "students = 2000" in result.stdout


def _stand_in(folder: Path, name: str, schedule: str | None, source: str) -> None:
    nb = json.loads((FIXTURES / "91_passes.ipynb").read_text())
    nb["cells"] = [{"cell_type": "code", "execution_count": None, "id": "c", "metadata": {}, "outputs": [],
                    "source": [source]}]
    if schedule:
        nb["metadata"]["prep_ops"] = {"schedule": schedule}
    (folder / f"{name}.ipynb").write_text(json.dumps(nb))


@pytest.mark.server_independent
def test_run_all_runs_every_runbook_first_side_by_side_then_alone(tmp_path):
    """`run --all -j 2` on stand-in runbooks (the real ones execute once each, in the nbval
    pass; their checks are judged in test_runbooks.py): 01 first with a drill beside it, the parallel
    ones side by side, the others alone after them, results in name order, and a failing one fails the run."""
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    flags = tmp_path / "flags"
    flags.mkdir()
    wait = ("import pathlib, time\nflags = pathlib.Path({flags!r})\n(flags / {me!r}).touch()\n"
            "assert all(not (flags / n).exists() for n in {later!r}), 'ran before the runbooks it precedes'\n"
            "deadline = time.time() + 120\nwhile not (flags / {partner!r}).exists():\n"
            "    assert time.time() < deadline, 'not side by side'\n    time.sleep(0.1)")
    # 01 passes only with the drill beside it: a drill never waits for the target's runbooks
    _stand_in(notebooks, "01_first", "first", wait.format(flags=str(flags), me="01", later=["02", "03", "04"], partner="06"))
    _stand_in(notebooks, "06_drill", "drill", wait.format(flags=str(flags), me="06", later=[], partner="01"))
    _stand_in(notebooks, "02_a", "parallel", wait.format(flags=str(flags), me="02", later=["04"], partner="03"))
    _stand_in(notebooks, "03_b", "parallel", wait.format(flags=str(flags), me="03", later=["04"], partner="02"))
    _stand_in(notebooks, "04_alone", None, "import pathlib\nassert (pathlib.Path(%r) / '03').exists()" % str(flags))
    env = cli_env(PREP_OPS_HOME=str(tmp_path))
    result = prep_ops("run", "--all", "-j", "2", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(next((tmp_path / "runs").glob("*/summary.json")).read_text())
    assert [n["notebook"] for n in summary["notebooks"]] == ["01_first", "02_a", "03_b", "04_alone", "06_drill"]
    assert summary["ok"] is True and (next((tmp_path / "runs").glob("*/index.html"))).exists()
    _stand_in(notebooks, "05_fails", "parallel", "1 / 0")
    shutil.rmtree(flags)
    flags.mkdir()
    failed = prep_ops("run", "--all", "-j", "2", env=env)
    assert failed.returncode == 1 and "FAIL 05_fails" in failed.stdout and "ZeroDivisionError" in failed.stdout


@pytest.mark.server_independent
@pytest.mark.parametrize("names", [["01_sleeps"], ["01_sleeps", "02_sleeps"]], ids=["one runbook", "side by side"])
def test_ctrl_c_during_run_says_aborted_in_one_line_and_leaves_no_kernel_or_worker(tmp_path, names):
    """Seen: Ctrl-C during `prep-ops run 11` printed `aborted` and then about 115 lines (asyncio's "Task
    exception was never retrieved", nbclient's CellExecutionError, a coloured KeyboardInterrupt traceback), and
    during `run 08` the kernel's ZMQError. A terminal sends SIGINT to the whole process group, as here."""
    import os
    import signal
    import time

    import psutil

    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    for name in names:
        _stand_in(notebooks, name, "parallel", f"import pathlib, time\npathlib.Path({str(tmp_path)!r}, {name!r}).touch()\n"
                                               "time.sleep(120)")
    process = subprocess.Popen([sys.executable, "-m", "prep_ops", "run", *names, "-j", "2"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=cli_env(PREP_OPS_HOME=str(tmp_path)),
                               start_new_session=True,  # its own process group, as a terminal's foreground job
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 180
    while not all((tmp_path / name).exists() for name in names):  # every kernel is running its cell
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.1)
    family = [process.pid] + [child.pid for child in psutil.Process(process.pid).children(recursive=True)]
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130 and err.strip() == "aborted", (process.returncode, err)
    deadline = time.monotonic() + 15  # a kernel whose worker is gone notices within seconds
    while [pid for pid in family if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]:
        assert time.monotonic() < deadline, [psutil.Process(p).cmdline() for p in family if psutil.pid_exists(p)]
        time.sleep(0.2)


def test_run_without_confirm_leaves_an_external_database_alone(scratch, tmp_path):
    env = cli_env(scratch, PREP_OPS_HOME=str(tmp_path))
    env.pop("PREP_OPS_SCRATCH", None)
    import shutil

    from prep_ops.paths import PACKAGE_DIR

    shutil.copytree(PACKAGE_DIR.parent / "notebooks", tmp_path / "notebooks")
    result = prep_ops("run", "01", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARN" in result.stdout and _version(scratch) == 0


def test_indexes_prints_advice_as_table_and_json(migrated):
    env = cli_env(migrated)
    table = prep_ops("indexes", env=env)
    assert table.returncode == 0
    assert "idx_enrollments_course_id" in table.stdout and "CREATE INDEX CONCURRENTLY" in table.stdout
    advice = json.loads(prep_ops("indexes", "--json", env=env).stdout)
    assert {"kind": "duplicate", "index": "idx_users_email"}.items() <= next(
        a for a in advice if a["index"] == "idx_users_email").items()


def test_backup_prints_its_path_last_and_verify_passes(seeded, tmp_path):
    env = cli_env(seeded)
    made = prep_ops("backup", "--kind", "full", "--format", "plain", "--dir", str(tmp_path), env=env)
    assert made.returncode == 0, made.stderr
    path = made.stdout.strip().splitlines()[-1]
    assert re.search(r"-full-[0-9a-f]{6}\.sql$", path) and (tmp_path / path.split("/")[-1]).exists()
    checked = prep_ops("verify", path, env=env)
    assert checked.returncode == 0 and checked.stdout.startswith("PASS")
    latest = prep_ops("verify", "--latest", "--dir", str(tmp_path), "--min-size", str(10**12), env=env)
    assert latest.returncode == 1 and "size" in latest.stdout


def test_verify_fails_on_a_damaged_backup(seeded, tmp_path):
    env = cli_env(seeded)
    path = prep_ops("backup", "--dir", str(tmp_path), env=env).stdout.strip().splitlines()[-1]
    with open(path, "r+b") as handle:
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    result = prep_ops("verify", path, env=env)
    assert result.returncode == 1 and "sha256" in result.stdout


def test_restore_needs_confirm_for_a_database_with_tables(seeded, migrated, tmp_path):
    path = prep_ops("backup", "--dir", str(tmp_path), env=cli_env(seeded)).stdout.strip().splitlines()[-1]
    refused = prep_ops("restore", path, env=cli_env(migrated, PREP_OPS_BACKUP_DIR=str(tmp_path / "safety")))
    assert_one_error_line(refused, "pass --confirm")
    done = prep_ops("restore", path, "--confirm", env=cli_env(migrated, PREP_OPS_BACKUP_DIR=str(tmp_path / "safety")))
    assert done.returncode == 0 and f"safety backup: {tmp_path / 'safety'}" in done.stdout
    replaced = re.search(r"kept as (\S+) until the next restore", done.stdout).group(1)
    assert replaced.startswith(f"{migrated.database}_replaced_")
    from prep_ops.scratch import drop

    drop(migrated.with_database("postgres"), replaced)


def test_a_schema_backup_says_it_holds_no_rows(seeded, tmp_path):
    made = prep_ops("backup", "--kind", "schema", "--dir", str(tmp_path), env=cli_env(seeded))
    assert made.returncode == 0, made.stderr
    assert re.search(r"schema custom backup of \S+: [\d,]+ bytes, \d+ tables, schema only: no rows,", made.stdout)


def test_health_table_json_and_exit_code(migrated):
    env = cli_env(migrated)
    table = prep_ops("health", env=env)
    assert table.returncode in (0, 2) and "cache hit ratio" in table.stdout.lower()
    report = json.loads(prep_ops("health", "--json", env=env).stdout)
    assert report["status"] in ("ok", "warn", "critical") and len(report["checks"]) >= 8
    assert (report["status"] == "critical") == (table.returncode == 2)


def _shown_whole(text: str, output: str) -> bool:
    """Whether every word of `text` is in `output` (a table may wrap it over several lines, between the
    lines of its other columns, and break a word at a hyphen)."""
    return all(piece in output for piece in re.split(r"[\s-]+", text) if piece)


def test_run_never_cuts_a_detail(tmp_path):
    from pathlib import Path

    fixture = Path(__file__).parent / "fixtures" / "95_long_detail.ipynb"
    done = prep_ops("run", str(fixture), env=cli_env(PREP_OPS_HOME=str(tmp_path)), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    (summary,) = list((tmp_path / "runs").glob("*/summary.json"))
    checks = {c["name"]: c for c in json.loads(summary.read_text())["notebooks"][0]["checks"]}
    long = checks["a check whose detail is long"]["detail"]
    assert len(long) > 150 and long.endswith("'an index on course_id and term'}")  # whole in summary.json
    assert _shown_whole(long, done.stdout)  # the table wraps it at word boundaries
    assert max(len(line) for line in done.stdout.splitlines()) < 160
    html = (summary.parent / "index.html").read_text()
    import html as html_text

    assert long in html_text.unescape(html)  # whole in the HTML report too


def test_health_shows_a_fix_only_where_there_is_something_to_fix(migrated):
    env = cli_env(migrated)
    table = prep_ops("health", env=env)
    report = json.loads(prep_ops("health", "--json", env=env).stdout)
    unknown = [c for c in report["checks"] if c["status"] == "unknown"]
    quiet = [c for c in report["checks"] if c["status"] in ("ok", "unknown") and c["fix"]]
    assert unknown and quiet  # a fresh database: no pg_stat_statements of its own, too young to judge its cache
    for check in quiet:  # --json keeps the fix as data; the table shows it only on warn and critical
        assert check["fix"] and check["fix"][:30] not in " ".join(table.stdout.split())
    for check in report["checks"]:  # whole (the two runs may count a few more blocks: numbers left out)
        assert _shown_whole(re.sub(r"\S*\d\S*", " ", check["detail"]), table.stdout), check["detail"]


def test_audit_and_indexes_never_cut_a_detail(migrated):
    from prep_ops import indexes, security_audit

    with db.connect(migrated, autocommit=True) as conn:
        found = security_audit.findings(conn)
        advice = indexes.advice(conn)
    audit, shown = prep_ops("audit", env=cli_env(migrated)), prep_ops("indexes", env=cli_env(migrated))
    assert any(len(f.detail) > 60 for f in found) and any(len(a.why) > 70 for a in advice)
    for finding in found:
        assert _shown_whole(finding.detail, audit.stdout) and _shown_whole(finding.fix, audit.stdout), finding.detail
    for item in advice:
        assert _shown_whole(item.why, shown.stdout), item.why


def test_roles_plan_elides_passwords_and_audit_prints_findings(migrated):
    import uuid

    secret = f"Pw-{uuid.uuid4().hex}"
    env = cli_env(migrated, PREP_OPS_REPORTER_PASSWORD=secret)
    plan = prep_ops("roles", "plan", env=env)
    assert plan.returncode == 0 and secret not in plan.stdout + plan.stderr
    assert "reporter" in plan.stdout or "nothing to do" in plan.stdout
    audit = prep_ops("audit", env=env)
    assert audit.returncode in (0, 1) and "severity" in audit.stdout and "Traceback" not in audit.stderr


def test_audit_exits_1_on_a_high_finding_and_shows_its_fix(migrated, server):
    import uuid

    from psycopg import sql

    name = f'evil "{uuid.uuid4().hex[:6]}"; super'
    with db.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} SUPERUSER LOGIN").format(sql.Identifier(name)))
    try:
        audit = prep_ops("audit", env=cli_env(migrated))
        assert audit.returncode == 1, audit.stdout + audit.stderr
        line = next(row for row in audit.stdout.splitlines() if name in row)
        assert line.startswith("high") and "NOSUPERUSER" in line
    finally:
        with db.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def test_a_folder_that_cannot_be_made_is_one_line():
    result = prep_ops("backup", "--dir", "/proc/prep-ops-nope")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().startswith("error: /proc/prep-ops-nope") and "Traceback" not in result.stderr


def test_maintain_plan_run_and_bad_table(migrated):
    env = cli_env(migrated)
    plan = prep_ops("maintain", "--plan", "--reindex", env=env)
    # no default `users`: REINDEX without tables takes those with measured index bloat, here none, and says so
    assert plan.returncode == 0 and "-- nothing to REINDEX: " in plan.stdout and '"users"' not in plan.stdout
    env.pop("PREP_OPS_SCRATCH", None)  # named by a URL, the database is judged as any other server's
    assert_one_error_line(prep_ops("maintain", "--tables", "enrollments", env=env), "--confirm")
    done = prep_ops("maintain", "--tables", "enrollments", "--confirm", env=env)
    assert done.returncode == 0 and 'VACUUM (ANALYZE) "public"."enrollments"' in done.stdout
    # before → after as a terminal reads it: sizes as pg_size_pretty shows them, times to the second
    header, _rule, row = done.stdout.splitlines()[-3:]
    assert header.split() == ["table", "dead", "rows", "table", "size", "index", "size", "last", "vacuum", "last", "analyze"]
    assert row.startswith("enrollments") and " → " in row and "bytes" in row and " UTC" in row
    assert max(len(line) for line in done.stdout.splitlines()) < 160
    assert_one_error_line(prep_ops("maintain", "--tables", "users; DROP TABLE x", env=env), "unknown table")


@pytest.mark.server_independent
def test_run_gives_an_incident_runbook_an_id_and_puts_the_notebook_beside_its_report(tmp_path):
    """An incident runbook (one with an `incident_id` parameter; a stand-in here, the drills' own runs are
    in the nbval pass): the id given, or a new one, names the executed notebook copied to runs/incidents/."""
    env = cli_env(PREP_OPS_HOME=str(tmp_path))
    stub = FIXTURES / "97_incident_stub.ipynb"
    given = prep_ops("run", str(stub), "-p", "incident_id", "night-1", env=env)
    assert given.returncode == 0 and "ok   97_incident_stub" in given.stdout, given.stdout + given.stderr
    incidents = tmp_path / "runs" / "incidents"
    assert "incident night-1 in drill mode" in notebook_outputs(incidents / "night-1.ipynb")
    made = prep_ops("run", str(stub), env=env)
    assert made.returncode == 0 and len(list(incidents.glob("*-stub.ipynb"))) == 1, made.stdout + made.stderr
    bad = prep_ops("run", "10", "-p", "mode", "rehearsal", env=cli_env())  # refused before anything runs
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.strip() == "error: 10_incident_data_recovery: mode must be one of drill, live, not 'rehearsal'"


@pytest.mark.parametrize("content, problem", [("{}", "it has no 'kind'"), ("[1]", "it holds an array, not an object")])
def test_verify_of_a_manifest_of_the_wrong_shape_is_one_error_line(tmp_path, content, problem):
    dump = tmp_path / "unm_prep-20260101-000000-full.dump"
    dump.write_bytes(b"PGDMP")
    (tmp_path / (dump.name + ".manifest.json")).write_text(content)
    result = prep_ops("verify", str(dump), env=cli_env())
    assert result.returncode == 1
    assert_one_error_line(result, "is not a prep-ops backup manifest", problem)


@pytest.mark.parametrize("args, said", [
    (["helth"], "No such command 'helth'. Did you mean 'health'? (see prep-ops --help)"),
    (["health", "--jsn"], "No such option '--jsn'. Did you mean '--json'? (see prep-ops health --help)"),
    (["run", "-p", "term"], "requires 2 arguments"),
    (["run", "--all", "-j", "0"], "0 is not in the range x>=1"),
    (["backup", "--kind", "base", "--format", "plain"], "--format does not apply with --kind base"),
    (["verify", "--chain", "--max-age", "3", "--same-server"], "--max-age, --same-server do not apply with --chain"),
    (["recover", "--to", "2026-11-30 10:00:00", "--to-lsn", "0/1000000"], "give --to TIMESTAMP or --to-lsn LSN"),
])
def test_usage_errors_are_one_error_line_with_exit_1(args, said):
    result = prep_ops(*args)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and said in result.stderr
    assert "Usage:" not in result.stderr + result.stdout
