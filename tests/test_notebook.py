import pytest

from prep_ops import embedded, notebook
from prep_ops.errors import CheckFailed


def test_passing_check_is_recorded():
    notebook._checks.clear()
    result = notebook.check("backup exists", True, "3 files")
    assert result.line == "PASS backup exists: 3 files"
    assert list(notebook.checks()["name"]) == ["backup exists"]


def test_failing_must_hold_check_raises_with_the_fix():
    with pytest.raises(CheckFailed, match="FAIL rows match: 3 differ — restore again"):
        notebook.check("rows match", False, "3 differ", fix="restore again")


def test_failing_advisory_check_warns_and_goes_on():
    result = notebook.check("drop rate", False, "25%", must_hold=False)
    assert result.line.startswith("WARN drop rate")


def test_summary_counts_failed_must_hold_checks():
    notebook._checks.clear()
    notebook.check("a", True)
    notebook.check("b", False, must_hold=False)
    with pytest.raises(CheckFailed):
        notebook.check("c", False)
    frame = notebook.summary("t")
    assert len(frame) == 3 and int((~frame["passed"] & frame["must_hold"]).sum()) == 1


def test_session_connection_survives_a_stopped_embedded_server(private_server):
    session = notebook.setup(sql_magic=False)
    first = session.conn
    assert session.conn is first  # one connection for the runbook
    embedded.stop()
    assert session.conn.execute("SELECT 1").fetchone() == (1,)  # the server was started again
    assert session.conn is not first and first.closed
    session.conn.close()


def test_a_cell_run_again_drops_the_verdicts_of_its_earlier_run_from_the_summary(lab_kernel, scratch):
    """In JupyterLab a check cell that PASSed, run again after a parameter changed and failing before its check
    (an unknown table, a step refused): the summary still listed the earlier PASS for a cell whose latest run
    showed an error; run again and judged anew, it listed the PASS and the WARN side by side."""
    lab_kernel.run("setup", f"import prep_ops as po\nsession = po.setup({scratch.url!r})")
    lab_kernel.run("parameters", "tables = 3")
    assert lab_kernel.run("check", "po.check('tables to maintain', tables > 0, f'{tables} table(s)', must_hold=False)") \
        == ["PASS tables to maintain: 3 table(s)"]
    lab_kernel.run("parameters", "tables = None")  # the parameter cell changed, the check cell run again
    assert lab_kernel.run("check", "po.check('tables to maintain', tables > 0, f'{tables} table(s)', must_hold=False)") \
        == ["error: '>' not supported between instances of 'NoneType' and 'int'"]
    assert lab_kernel.run("summary", "po.summary('t');")[0] == "t: 0 checks"
    lab_kernel.run("parameters", "tables = 0")
    assert lab_kernel.run("check", "po.check('tables to maintain', tables > 0, f'{tables} table(s)', must_hold=False)") \
        == ["WARN tables to maintain: 0 table(s)"]
    lab_kernel.run("other", "po.check('another check', True)")
    assert lab_kernel.run("summary", "po.summary('t');")[0] == "t: 2 checks (1 PASS, 1 WARN)"


def test_a_server_error_or_a_closed_connection_in_a_cell_shows_one_line_not_a_traceback(lab_kernel, scratch):
    """Runbook 07's rollback cell run again after step 8 closed the copy's connection showed psycopg's
    traceback through prep_ops ("the connection is closed"); a server error did the same. They show in one
    line, as the CLI and prep_ops' own errors do, with what to do for the closed connection; the cell still
    fails (the error's name and message reach papermill), and a bug keeps its whole traceback."""
    lab_kernel.run("setup", f"import prep_ops as po\nsession = po.setup({scratch.url!r})\ncopy = po.connect(session.target)")
    lab_kernel.run("step 8", "copy.close()")
    assert lab_kernel.run("step 7", "copy.execute('SELECT 1')") == ["error: the connection is closed"]
    assert lab_kernel.traceback == ["error: database error: the connection is closed: " + notebook.CLOSED_HINT]
    assert lab_kernel.run("server", "session.conn.execute('SELECT 1 / 0')") == ["error: division by zero"]
    assert lab_kernel.traceback == ["error: database error: division by zero"]
    assert lab_kernel.run("ours", "po.check('must hold', False)") == ["FAIL must hold", "error: FAIL must hold"]
    assert lab_kernel.traceback == ["error: FAIL must hold"]
    assert lab_kernel.run("bug", "{}['no such key']") == ["error: 'no such key'"]
    assert len(lab_kernel.traceback) > 1 and "KeyError" in "".join(lab_kernel.traceback)
    lab_kernel.run("lost", "import psycopg\nraise psycopg.OperationalError('server closed the connection unexpectedly')")
    assert lab_kernel.traceback == ["error: database error: server closed the connection unexpectedly"]
    for bug in ("session.conn.execute('SELECT no_such_column')", "session.conn.execute('SELECT %s')"):  # ours, not the server's
        lab_kernel.run("our bug", bug)
        assert len(lab_kernel.traceback) > 1, lab_kernel.traceback
    # a %sql statement's error is the cell's own SQL: one line (it was SQLAlchemy's chained traceback, 3 KB)
    lab_kernel.run("sql", "%sql SELECT * FROM no_such_table")
    assert lab_kernel.traceback == ['error: database error: relation "no_such_table" does not exist'], lab_kernel.traceback
    lab_kernel.run("psycopg again", "session.conn.execute('SELECT 1 / 0')")  # the handler still takes psycopg's
    assert lab_kernel.traceback == ["error: database error: division by zero"]


def test_a_cell_refused_when_run_again_keeps_the_checks_of_the_run_that_did_the_work(lab_kernel, scratch):
    """Step 3's cell run again by accident is refused before it does anything (StepOutOfOrder): its first run's
    checks vanished from the summary and the incident's outcome, while the rows it put back stayed put. A
    refusal keeps them; any other error in the cell still drops them (its latest run shows no verdict)."""
    lab_kernel.run("setup", f"import prep_ops as po\nfrom prep_ops.errors import StepOutOfOrder\nsession = po.setup({scratch.url!r})")
    assert lab_kernel.run("step3", "po.check('rows put back', True, '3 rows')") == ["PASS rows put back: 3 rows"]
    lab_kernel.run("other", "po.check('another check', True)")
    assert lab_kernel.run("step3", "raise StepOutOfOrder('step 3 not run again')") == ["error: step 3 not run again"]
    assert lab_kernel.run("summary", "po.summary('t');")[0] == "t: 2 checks (2 PASS)"
    assert lab_kernel.run("names", "print(list(po.checks()['name']))") == ["['rows put back', 'another check']\n"]
    assert lab_kernel.run("step3", "raise RuntimeError('a bug this time')") == ["error: a bug this time"]
    assert lab_kernel.run("summary", "po.summary('t');")[0] == "t: 1 checks (1 PASS)"
