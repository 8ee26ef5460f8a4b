"""papermill runs of small fixture notebooks, one per outcome."""

import json
import random
import os
import re
import uuid
from html.parser import HTMLParser
from pathlib import Path

import pytest
import psycopg
from psycopg import sql

from prep_ops import db, html_report, runner, schedule
from prep_ops.errors import ParameterError

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.server_independent
def test_finds_runbooks_by_number_stem_and_file():
    assert runner.find("01").stem == "01_schema_setup"
    assert runner.find("02_enrollment_exploration").name == "02_enrollment_exploration.ipynb"
    assert runner.find(str(FIXTURES / "91_passes.ipynb")).name == "91_passes.ipynb"
    # as a user types them (`run 8`, `run health_check` were refused)
    assert runner.find("8") == runner.find("08") == runner.find("health_check") == runner.find("08_health_check")


@pytest.mark.server_independent
def test_unknown_runbook_names_the_choices():
    with pytest.raises(ParameterError, match="no runbook named 'nope'.*01_schema_setup"):
        runner.find("nope")


@pytest.mark.server_independent
def test_parameters_are_typed_from_their_defaults():
    nb = FIXTURES / "91_passes.ipynb"
    assert runner.validate(nb, {"count": "3", "label": "7", "ratio": "2", "flag": "true"}) == \
        {"count": 3, "label": "7", "ratio": 2, "flag": True}


@pytest.mark.server_independent
@pytest.mark.parametrize("given, message", [
    ({"cuont": "3"}, "has no parameter 'cuont'"),
    ({"count": "many"}, "count must be int"),
    ({"flag": "3"}, "flag must be bool"),
])
def test_bad_parameters_are_refused_before_running(given, message):
    with pytest.raises(ParameterError, match=message):
        runner.validate(FIXTURES / "91_passes.ipynb", given)


@pytest.mark.server_independent
def test_a_misspelled_parameter_is_one_error_line_naming_the_known_ones(tmp_path):
    with pytest.raises(ParameterError) as err:
        runner.run([str(FIXTURES / "91_passes.ipynb")], {"cuont": "3"}, out_dir=tmp_path / "run")
    message = str(err.value)
    assert "'cuont'" in message and "did you mean 'count'?" in message and "\n" not in message
    assert message.endswith("their parameters: count, label, ratio, flag, anything")
    assert not (tmp_path / "run").exists()  # refused before anything ran


@pytest.mark.server_independent
def test_runbooks_named_with_all_is_one_error_line_not_every_runbook(tmp_path):
    with pytest.raises(ParameterError, match=r"name runbooks \(02\) or pass --all, not both"):
        runner.run(["02"], {}, run_all=True, out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.server_independent
def test_a_runbook_named_twice_runs_once(tmp_path):
    fixture = FIXTURES / "91_passes.ipynb"
    out, results = runner.run([str(fixture), str(fixture)], {}, out_dir=tmp_path / "run")
    assert [r.notebook for r in results] == ["91_passes"]
    assert [n["notebook"] for n in json.loads((out / "summary.json").read_text())["notebooks"]] == ["91_passes"]


@pytest.mark.server_independent
def test_passing_notebook_reports_its_checks(tmp_path):
    result = runner.run_one(FIXTURES / "91_passes.ipynb", tmp_path, {"count": 3})
    assert result.ok and [c["name"] for c in result.checks] == ["x 0", "x 1", "x 2"]
    assert (tmp_path / "91_passes.ipynb").exists()


@pytest.mark.server_independent
def test_failed_check_stops_the_notebook_and_fails_the_run(tmp_path):
    result = runner.run_one(FIXTURES / "92_failing_check.ipynb", tmp_path, {})
    assert not result.ok
    assert "CheckFailed" in result.error and "cell" in result.error
    assert [c["name"] for c in result.checks] == ["first", "must hold"]
    assert result.failed_checks[0]["fix"] == "do something"


@pytest.mark.server_independent
def test_a_prep_ops_error_in_a_runbook_is_one_error_line_in_the_executed_notebook_not_a_stack_trace(tmp_path):
    """A wrong parameter, URL or password (any PrepOpsError) shows in the notebook as the CLI's one line."""
    runner.run_one(FIXTURES / "92_failing_check.ipynb", tmp_path, {})
    cells = json.loads((tmp_path / "92_failing_check.ipynb").read_text())["cells"]
    errors = [out for cell in cells for out in cell.get("outputs", []) if out["output_type"] == "error"]
    assert [e["traceback"] for e in errors] == [["error: FAIL must hold — do something"]]
    assert errors[0]["ename"] == "CheckFailed"  # papermill and the run still see which error it was


@pytest.mark.server_independent
def test_error_names_the_cell(tmp_path):
    result = runner.run_one(FIXTURES / "93_error.ipynb", tmp_path, {})
    assert not result.ok and "ZeroDivisionError" in result.error
    assert [c["name"] for c in result.checks] == ["before the error"]


@pytest.mark.server_independent
def test_an_error_message_that_starts_with_a_line_break_is_shown_by_its_first_line_of_text():
    """`raise ValueError("\\nthe table is gone")` showed as "cell 4: ValueError: " (its first line, blank)."""
    from prep_ops.errors import first_line

    assert runner.cell_error(4, "ValueError", "\n  \nthe table is gone\nmore") == "cell 4: ValueError: the table is gone"
    assert runner.cell_error(4, "ValueError", None) == "cell 4: ValueError: "
    assert first_line(ValueError("\n\nthe table is gone")) == "the table is gone"
    assert first_line(ValueError("\n \n")) == "ValueError"


@pytest.mark.server_independent
def test_run_writes_a_summary(tmp_path):
    out, results = runner.run([str(FIXTURES / "91_passes.ipynb"), str(FIXTURES / "93_error.ipynb")],
                              {"database_url": "x"}, out_dir=tmp_path / "run")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] is False
    assert [n["ok"] for n in summary["notebooks"]] == [True, False]


@pytest.mark.server_independent
def test_incident_runbooks_get_an_id_and_their_default_mode():
    notebook = runner.find("10")
    values = runner.incident_values(notebook, {})
    assert values["incident_id"].endswith("-data-recovery") and values["mode"] == "drill"
    assert runner.incident_values(notebook, {"incident_id": "x", "mode": "live"}) == {"incident_id": "x", "mode": "live"}
    assert runner.incident_values(runner.find("01"), {"students": 3}) == {"students": 3}


def test_a_password_in_database_url_never_lands_in_the_executed_notebook(tmp_path, seeded):
    from prep_ops import roles

    password = "pw " + uuid.uuid4().hex  # with a space: masking once stopped there
    role = f"prep_ops_runner_{uuid.uuid4().hex[:6]}"
    with db.connect(seeded, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
    try:
        url = roles.login(seeded, role, password).url
        result = runner.run_one(runner.find("02"), tmp_path, {"database_url": url})
        assert result.ok, result.error
        text = (tmp_path / "02_enrollment_exploration.ipynb").read_text()
        assert password not in text and password.replace(" ", "%20") not in text and "students to explore" in text
        assert os.environ.get("DATABASE_URL") != url
    finally:
        with db.connect(seeded, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.mark.server_independent
@pytest.mark.parametrize("hostile", [
    "b'\"; __import__(\"os\").system(\"touch {marker}\"); \"'",
    "{{__import__('os').system('touch {marker}')}}",
    "(__import__('os').system('touch {marker}'),)",
    "\\\\\"; __import__('os').system('touch {marker}'); \"",
])
def test_parameter_value_never_runs_as_code(tmp_path, hostile):
    """A -p value is data: whatever it holds reaches the notebook as that same text (or JSON), never as code."""
    marker = tmp_path / "pwned"
    value = hostile.format(marker=marker)
    parsed = runner.validate(FIXTURES / "91_passes.ipynb", {"anything": value})["anything"]
    assert isinstance(parsed, (str, list, dict, int, float, bool, type(None)))
    result = runner.run_one(FIXTURES / "91_passes.ipynb", tmp_path, {"anything": parsed})
    assert result.ok, result.error
    assert not marker.exists()
    import nbformat

    executed = nbformat.read(tmp_path / "91_passes.ipynb", as_version=4)
    injected = next(c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", []))
    namespace = {}
    exec(compile(injected.source, "injected", "exec"), {"__builtins__": {}}, namespace)  # literals only
    assert namespace["anything"] == parsed


@pytest.mark.server_independent
def test_a_value_papermill_would_paste_as_code_is_refused(tmp_path):
    for value in (b"x", {1, 2}, (1, 2), object()):
        with pytest.raises(ParameterError, match="must be plain data"):
            runner.run_one(FIXTURES / "91_passes.ipynb", tmp_path, {"anything": value})


@pytest.mark.server_independent
@pytest.mark.parametrize("hostile", ["../../notebooks/01_schema_setup", "/tmp/elsewhere", "..", "a/b", "", "x" * 81])
def test_incident_id_cannot_leave_runs(hostile):
    with pytest.raises(ParameterError, match="incident_id must be letters, digits"):
        runner.incident_values(runner.find("10"), {"incident_id": hostile} if hostile else {"incident_id": "-x"})


@pytest.mark.server_independent
def test_run_folders_never_collide(tmp_path, monkeypatch):
    monkeypatch.setenv("PREP_OPS_HOME", str(tmp_path))
    (tmp_path / "notebooks").symlink_to(FIXTURES, target_is_directory=True)
    first, _ = runner.run([str(FIXTURES / "91_passes.ipynb")])
    second, _ = runner.run([str(FIXTURES / "91_passes.ipynb")])
    assert first != second and first.parent == second.parent == tmp_path / "runs"
    assert (first / "summary.json").exists() and (second / "summary.json").exists()


class _Page(HTMLParser):
    """The parts of an HTML page a test looks at: table cells' text, links, and scripts."""

    def __init__(self):
        super().__init__()
        self.cells, self.links, self.scripts, self._cell = [], [], [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "td":
            self._cell = ""
        elif tag == "a":
            self.links.append(attrs.get("href"))
        elif tag == "script":
            self.scripts.append(attrs.get("src") or "inline")

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag == "td":
            self.cells.append(self._cell.strip())
            self._cell = None


@pytest.mark.server_independent
def test_run_writes_an_html_index_with_every_check_and_the_rendered_notebooks(tmp_path):
    out, _ = runner.run([str(FIXTURES / "94_skips.ipynb"), str(FIXTURES / "93_error.ipynb")], {},
                        out_dir=tmp_path / "run")
    page = _Page()
    page.feed((out / "index.html").read_text())
    for expected in ["94_skips", "93_error", "SKIP", "WARN", "PASS", "nothing to look at", "did not"]:
        assert expected in page.cells, expected
    assert any("ZeroDivisionError" in cell for cell in page.cells)
    assert "never shown" not in page.cells  # fix text only on FAIL and WARN
    assert {"94_skips.html", "93_error.html"} <= set(page.links)
    assert all((out / name).exists() for name in ("94_skips.html", "93_error.html"))
    rendered = (out / "94_skips.html").read_text()
    assert "skipped outright" in rendered and "SKIP not looked at" in rendered  # the source and its output
    assert not re.search(r"<script[^>]+src=\"https?://", rendered), "the rendered notebook fetches a script"
    assert page.scripts == []


@pytest.mark.server_independent
def test_html_index_shows_a_hostile_detail_as_text(tmp_path):
    hostile = "<script>alert(1)</script><a href='javascript:x'>"
    check = {"name": "n<b>", "passed": False, "must_hold": False, "detail": hostile, "fix": "<i>x</i>",
             "skipped": False, "status": "WARN"}
    summary = {"started": "x", "ok": True, "counts": {"WARN": 1},
               "notebooks": [{"notebook": "nb", "output": str(tmp_path / "missing.ipynb"), "ok": True,
                              "seconds": 1.0, "error": "", "checks": [check], "counts": {"WARN": 1}, "report": ""}]}
    page = _Page()
    page.feed(html_report.write_index(tmp_path, summary).read_text())
    assert hostile in page.cells and "n<b>" in page.cells and "<i>x</i>" in page.cells
    assert page.scripts == [] and "javascript:x" not in page.links


@pytest.mark.server_independent
@pytest.mark.parametrize("path", runner.available(), ids=lambda p: p.stem)
def test_parameters_are_read_as_papermill_reads_them(path):
    import papermill

    assert runner.parameters(path) == dict(papermill.inspect_notebook(str(path)))


@pytest.mark.server_independent
def test_unknown_runbook_is_refused_without_loading_papermill_or_pandas():
    import subprocess
    import sys

    code = ("import sys\nfrom prep_ops import runner\ntry:\n    runner.find('no_such_runbook')\nexcept Exception:\n    pass\n"
            "runner.parameters(runner.available()[0])\n"
            "print(sorted(m for m in ('papermill', 'nbformat', 'pandas', 'psycopg', 'sqlalchemy') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


@pytest.mark.server_independent
def test_a_broken_notebook_is_still_refused_by_validation(tmp_path):
    broken = json.loads((FIXTURES / "91_passes.ipynb").read_text())
    del broken["cells"][-1]["source"]  # a code cell without source is not a notebook
    path = tmp_path / "97_broken.ipynb"
    path.write_text(json.dumps(broken))
    result = runner.run_one(path, tmp_path, {})  # imports nbformat the runner's way (no IRI grammar)
    assert not result.ok and "source" in result.error
    import nbformat

    with pytest.raises(nbformat.ValidationError, match="'source' is a required property"):
        nbformat.validate(nbformat.reads(json.dumps(broken), as_version=4))


@pytest.mark.server_independent
def test_a_progress_bar_is_text_in_a_headless_run(tmp_path):
    result = runner.run_one(FIXTURES / "96_progress.ipynb", tmp_path, {})
    assert result.ok, result.error
    outputs = [o for cell in json.loads((tmp_path / "96_progress.ipynb").read_text())["cells"] for o in cell["outputs"]]
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    text = "".join("".join(o["text"]) for o in outputs if o.get("output_type") == "stream")
    assert "seeding: 100%" in text and "10/10" in text


def _notebook(folder: Path, name: str, schedule: str | None, source: list[str], parameters: str = "flags = ''") -> Path:
    """A notebook `name` in `folder`: a parameters cell, one cell of `source`, and its schedule kind."""
    nb = json.loads((FIXTURES / "91_passes.ipynb").read_text())
    nb["cells"] = [
        {"cell_type": "code", "execution_count": None, "id": "p", "metadata": {"tags": ["parameters"]}, "outputs": [],
         "source": [parameters]},
        {"cell_type": "code", "execution_count": None, "id": "w", "metadata": {}, "outputs": [], "source": source}]
    if schedule:
        nb["metadata"]["prep_ops"] = {"schedule": schedule}
    path = folder / f"{name}.ipynb"
    path.write_text(json.dumps(nb))
    return path


def _waiting_notebook(folder: Path, name: str, schedule: str | None, partner: str = "") -> Path:
    """A notebook that leaves a flag of its name in `flags` and waits (up to `wait` s) for its partner's:
    it passes only when the partner runs at the same time, so side by side is proven without timing."""
    return _notebook(folder, name, schedule, [
        "import pathlib, time\n", f"(pathlib.Path(flags) / {name!r}).touch()\n", "deadline = time.time() + wait\n",
        f"while not (pathlib.Path(flags) / {partner!r}).exists():\n",
        "    assert time.time() < deadline, 'the partner never ran beside this one'\n", "    time.sleep(0.1)"],
        "flags = ''  # the folder of flags\nwait = 120  # seconds to wait for the partner")


@pytest.mark.server_independent
def test_dispatch_starts_first_with_a_drill_then_the_readers_then_one_changer_at_a_time_and_alone_last(tmp_path):
    names = [("81_first", "first"), ("82_a", "parallel"), ("83_b", "parallel"), ("84_t1", "target"), ("85_t2", "target"),
             ("86_alone", None), ("87_d1", "drill"), ("88_d2", "drill")]
    first, a, b, t1, t2, alone, d1, d2 = (_waiting_notebook(tmp_path, n, s) for n, s in names)
    dispatch = schedule.Dispatch([alone, d2, b, first, a, t1, d1, t2], jobs=2)
    assert dispatch.ready() == [first, d2]  # the target's chain first, a drill in the free slot
    dispatch.done(first)
    assert dispatch.ready() == [b]
    dispatch.done(d2)
    assert dispatch.ready() == [a]  # the readers side by side
    dispatch.done(b)
    assert dispatch.ready() == [d1]  # a changer waits for every reader: the drill goes
    dispatch.done(a)
    assert dispatch.ready() == [t1]
    dispatch.done(d1)
    assert dispatch.ready() == []  # one changer at a time, and "alone" beside nothing
    dispatch.done(t1)
    assert dispatch.ready() == [t2]
    dispatch.done(t2)
    assert dispatch.ready() == [alone]
    assert dispatch.ready() == [] and not dispatch.finished
    dispatch.done(alone)
    assert dispatch.finished and dispatch.ready() == []


def _together(notebooks: list, jobs: int, seed: int) -> list[set[str]]:
    """Every set of runbooks running at once while a Dispatch runs them to the end, each next end
    chosen at random: what the run could see whatever their lengths."""
    rng, dispatch, seen, order = random.Random(seed), schedule.Dispatch(notebooks, jobs), [], []
    while not dispatch.finished:
        started = dispatch.ready()
        order += [nb.stem[:2] for nb in started]
        seen.append({nb.stem[:2] for nb in dispatch.running})
        dispatch.done(rng.choice(sorted(dispatch.running)))
    assert sorted(order) == sorted(nb.stem[:2] for nb in notebooks)  # each started once
    return seen


@pytest.mark.server_independent
def test_the_runbooks_schedule_never_puts_a_changer_beside_a_reader_or_anything_beside_06_and_08():
    kinds = {nb.stem[:2]: runner.schedule(nb) for nb in runner.available()}
    assert kinds == {"01": "first", "02": "parallel", "03": "parallel", "04": "parallel", "05": "target", "06": "alone",
                     "07": "target", "08": "alone", "10": "drill", "11": "drill", "12": "drill"}
    for seed in range(50):
        for running in _together(runner.available(), 2, seed) + _together(runner.available(), 4, seed):
            on_target = running - {"10", "11", "12"}
            # 05 maintains, 07 migrates the target; 06 grants server-wide roles, 08 watches every session
            assert len(on_target & {"01", "05", "07"}) == 0 or len(on_target) == 1, running
            assert not running & {"06", "08"} or len(running) == 1, running


@pytest.mark.server_independent
def test_parallel_runbooks_run_side_by_side_and_results_keep_the_named_order(tmp_path):
    a = _waiting_notebook(tmp_path, "82_a", "parallel", partner="83_b")
    b = _waiting_notebook(tmp_path, "83_b", "parallel", partner="82_a")
    seen = []
    out, results = runner.run([str(b), str(a)], {"flags": str(tmp_path)}, out_dir=tmp_path / "run", jobs=2,
                              on_done=lambda r: seen.append(r.notebook))
    assert [(r.notebook, r.ok) for r in results] == [("83_b", True), ("82_a", True)], [r.error for r in results]
    assert sorted(seen) == ["82_a", "83_b"]
    summary = json.loads((out / "summary.json").read_text())
    assert [n["notebook"] for n in summary["notebooks"]] == ["83_b", "82_a"] and summary["ok"] is True


@pytest.mark.server_independent
def test_one_job_runs_them_one_after_the_other(tmp_path):
    a = _waiting_notebook(tmp_path, "82_a", "parallel", partner="83_b")
    b = _waiting_notebook(tmp_path, "83_b", "parallel", partner="82_a")
    out, results = runner.run([str(a), str(b)], {"flags": str(tmp_path), "wait": 2}, out_dir=tmp_path / "run", jobs=1)
    # the first waited alone for a partner that had not started; the second found the first's flag
    assert [r.ok for r in results] == [False, True] and "partner never ran" in results[0].error


@pytest.mark.server_independent
def test_zero_jobs_is_refused():
    with pytest.raises(ParameterError, match="jobs must be at least 1"):
        runner.run([str(FIXTURES / "91_passes.ipynb")], jobs=0)


@pytest.mark.server_independent
def test_a_worker_that_dies_fails_its_runbook_not_the_whole_run(tmp_path):
    """A worker killed mid-run (out of memory, kill -9) is one FAIL with why, never a traceback; the
    results still name every runbook, in order."""
    killer = _waiting_notebook(tmp_path, "82_killer", "parallel")
    nb = json.loads(killer.read_text())
    nb["cells"][1]["source"] = ["import os, signal\n", "os.kill(os.getppid(), signal.SIGKILL)  # the worker running this kernel"]
    killer.write_text(json.dumps(nb))
    other = _waiting_notebook(tmp_path, "83_other", "parallel", partner="83_other")  # finds its own flag: passes
    after = _waiting_notebook(tmp_path, "84_after", None, partner="84_after")  # alone, after both: new workers
    out, results = runner.run([str(killer), str(other), str(after)], {"flags": str(tmp_path)}, out_dir=tmp_path / "run",
                              jobs=2)
    assert [r.notebook for r in results] == ["82_killer", "83_other", "84_after"]
    assert not results[0].ok and "BrokenProcessPool" in results[0].error
    assert results[2].ok, results[2].error  # the run went on after the dead worker
    assert json.loads((out / "summary.json").read_text())["ok"] is False


@pytest.mark.server_independent
def test_a_dead_workers_statements_are_ended_before_an_alone_runbook_starts(tmp_path):
    """The worker of a drill dies; the pool's other worker, running a runbook that changes the target, dies
    with it, but the statement that runbook sent (VACUUM FULL, a migration step: here pg_sleep) would run
    on in the server. Its sessions, by prep-ops' connection and by a client program's (PGAPPNAME), are
    ended before the "alone" runbook starts, which sees none of them."""
    url = db.resolve_target().url
    changer = _notebook(tmp_path, "84_changer", "target", [
        "import pathlib, psycopg\n",
        "from prep_ops import db\n",
        "ours = db.connect(db.resolve_target(url), autocommit=True)  # prep-ops' own connection\n",
        "other = psycopg.connect(url, autocommit=True)  # as a client program would: PGAPPNAME\n",
        "other.execute('SELECT 1 FROM pg_sleep(0)')\n",
        "other.pgconn.send_query(b'SELECT pg_sleep(60)')  # stands for a long VACUUM FULL\n",
        "(pathlib.Path(flags) / 'changer').touch()\n",
        "ours.execute('SELECT pg_sleep(60)')\n"], "flags = ''\nurl = ''")
    killer = _notebook(tmp_path, "87_drill", "drill", [
        "import os, pathlib, signal, time\n",
        "while not (pathlib.Path(flags) / 'changer').exists(): time.sleep(0.1)\n",
        "time.sleep(1)\n",
        "os.kill(os.getppid(), signal.SIGKILL)  # this worker dies (the OOM killer)\n"])
    alone = _notebook(tmp_path, "88_alone", None, [
        "import json, pathlib, psycopg\n",
        "with psycopg.connect(url, autocommit=True) as c:\n",
        "    seen = c.execute(\"SELECT application_name, query FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' \"\n",
        "                     \"AND pid <> pg_backend_pid()\").fetchall()\n",
        "(pathlib.Path(flags) / 'seen.json').write_text(json.dumps(seen))\n"], "flags = ''\nurl = ''")
    out, results = runner.run([str(changer), str(killer), str(alone)], {"flags": str(tmp_path), "url": url},
                              out_dir=tmp_path / "run", jobs=2)
    assert [(r.notebook, r.ok) for r in results][1:] == [("87_drill", False), ("88_alone", True)], [r.error for r in results]
    assert "BrokenProcessPool" in results[1].error and "no session of it was left on the server" in results[1].error
    # the pool fails the changer with the drill; now and then CPython's pool sees the dead worker only
    # once the other has finished (the changer then passes, its statements done): either way, nothing of
    # it runs beside the "alone" runbook
    assert results[0].ok or "2 of its session(s) on the server ended" in results[0].error, results[0].error
    assert json.loads((tmp_path / "seen.json").read_text()) == []


def test_end_sessions_ends_the_runbook_runs_own_sessions_and_no_other(scratch, monkeypatch):
    """The sessions of a run are found by its tag: prep-ops' connections (db.tagged) and a client
    program's (PGAPPNAME); another run's, and a session without a tag, go on."""
    monkeypatch.setenv(db.RUN_TAG_ENV, "aaaaaaaaaaaa")
    ours = db.connect(scratch, autocommit=True)
    monkeypatch.setenv("PGAPPNAME", db.tagged())
    program = psycopg.connect(scratch.url, autocommit=True)
    monkeypatch.setenv(db.RUN_TAG_ENV, "aaaaaaaaaaaab")  # another run whose tag only starts like it
    theirs = db.connect(scratch, autocommit=True)
    monkeypatch.delenv(db.RUN_TAG_ENV)
    monkeypatch.delenv("PGAPPNAME")
    plain = db.connect(scratch, autocommit=True)
    for conn in (ours, program):
        conn.pgconn.send_query(b"SELECT pg_sleep(60)")
    try:
        said = runner._end_sessions({"database_url": scratch.url}, "aaaaaaaaaaaa")
        assert said == "2 of its session(s) on the server ended"
        with db.connect(scratch, autocommit=True) as watcher:
            names = {r[0] for r in watcher.execute("SELECT application_name FROM pg_stat_activity WHERE datname = %s",
                                                   (scratch.database,))}
        assert names == {"prep-ops run aaaaaaaaaaaab", "prep-ops"}, names
        assert runner._end_sessions({"database_url": scratch.url}, "aaaaaaaaaaaa") == "no session of it was left on the server"
    finally:
        for conn in (ours, program, theirs, plain):
            conn.close()


@pytest.mark.server_independent
@pytest.mark.parametrize("metadata", ["drill", None, 5, {"schedule": 5}, {"schedule": ["drill"]}, {"schedule": "sideways"}])
def test_odd_schedule_metadata_counts_as_alone(tmp_path, metadata):
    nb = json.loads((FIXTURES / "91_passes.ipynb").read_text())
    nb["metadata"]["prep_ops"] = metadata
    path = tmp_path / "89_odd.ipynb"
    path.write_text(json.dumps(nb))
    other = _notebook(tmp_path, "82_reader", "parallel", ["pass\n"])
    assert schedule.schedule(path) == "alone"
    dispatch = schedule.Dispatch([path, other], jobs=2)
    assert dispatch.ready() == [other]  # the reader first, the odd one alone after it
    dispatch.done(other)
    assert dispatch.ready() == [path]


@pytest.mark.server_independent
def test_a_drill_asked_to_work_on_the_target_runs_alone():
    """10-12 with mode=live change the target (10 restores rows, 11 makes indexes, 12 changes server-wide
    roles): nothing beside them, not even the target's changers."""
    by = {nb.stem[:2]: nb for nb in runner.available()}
    plans = {nb: runner.incident_values(nb, {}) for nb in by.values()}
    plans[by["10"]] = runner.incident_values(by["10"], {"mode": "live"})
    plans[by["12"]] = runner.incident_values(by["12"], {"mode": "live"})
    assert runner._live_drills(plans) == {by["10"], by["12"]}
    chosen = [by[n] for n in ("05", "07", "10", "11", "12")]
    dispatch = schedule.Dispatch(chosen, 4, runner._live_drills({nb: plans[nb] for nb in chosen}))
    seen = []
    while not dispatch.finished:
        dispatch.ready()
        seen.append({nb.stem[:2] for nb in dispatch.running})
        dispatch.done(sorted(dispatch.running)[0])
    assert {"10", "12"} & set().union(*seen)
    assert all(len(running) == 1 for running in seen if running & {"10", "12"}), seen


@pytest.mark.server_independent
def test_an_incident_id_of_digits_is_its_digits_not_a_refused_number():
    """`-p incident_id 2026` reads as JSON, the number 2026, and was refused as 'must be letters, digits …,
    not '2026'' at 3 a.m.; a number's digits are the name typed (a bool or a float is still refused)."""
    assert runner.incident_values(runner.find("12"), {"incident_id": 2026})["incident_id"] == "2026"
    for value in (True, 1.5):
        with pytest.raises(ParameterError, match="incident_id must be letters, digits"):
            runner.incident_values(runner.find("12"), {"incident_id": value})
