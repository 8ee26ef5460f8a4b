"""The %sql magic in a real IPython shell against the real server: works, and fails loudly."""

import pytest
from IPython.testing.globalipapp import start_ipython

from prep_ops import notebook


@pytest.fixture(scope="module")
def shell():
    return start_ipython()


def test_sql_magic_returns_rows(shell, seeded):
    notebook.setup(seeded.url)
    result = shell.run_line_magic("sql", "SELECT count(*) AS n FROM students")
    assert result.DataFrame()["n"][0] == 300
    assert "300" in str(result)  # the prettytable rendering works (no KeyError: 'DEFAULT')


def test_failing_sql_magic_raises(shell, seeded):
    notebook.setup(seeded.url)
    with pytest.raises(Exception, match="no_such_table"):
        shell.run_line_magic("sql", "SELECT * FROM no_such_table")


def test_failing_sql_cell_fails_the_cell(shell, seeded):
    notebook.setup(seeded.url)
    outcome = shell.run_cell("%sql SELECT * FROM no_such_table")
    assert not outcome.success


def test_the_analysts_sql_magic_cannot_write_by_default(shell, seeded):
    """DESIGN: the analyst gets read-only access. %sql connected as the runbook's owner could DROP a table."""
    notebook.setup(seeded.url)
    for statement in ("CREATE TABLE analyst_wrote (x int)", "DELETE FROM students", "UPDATE students SET level = level"):
        with pytest.raises(Exception, match="read-only transaction"):
            shell.run_line_magic("sql", statement)
    assert shell.run_line_magic("sql", "SELECT count(*) AS n FROM students").DataFrame()["n"][0] == 300
    with pytest.raises(Exception, match="read-only transaction"):
        notebook.setup(seeded.url, sql_magic=False).query("DELETE FROM students")
    notebook.setup(seeded.url, sql_writes=True)  # asked for: it may
    shell.run_line_magic("sql", "CREATE TABLE analyst_wrote (x int)")
    shell.run_line_magic("sql", "DROP TABLE analyst_wrote")


def test_setup_session_queries_with_bound_parameters(seeded):
    session = notebook.setup(seeded.url, sql_magic=False)
    frame = session.query("SELECT count(*) AS n FROM students WHERE instrument = :i", i="piano'; DROP TABLE students; --")
    assert frame["n"][0] == 0
    assert session.query("SELECT count(*) AS n FROM students")["n"][0] == 300


def test_a_second_setup_says_nothing_about_the_loaded_extension(shell, seeded, capsys):
    notebook.setup(seeded.url)
    capsys.readouterr()
    notebook.setup(seeded.url)  # a notebook's setup cell run again, as in JupyterLab
    said = capsys.readouterr()
    assert "already loaded" not in said.out + said.err
    assert shell.run_line_magic("sql", "SELECT count(*) AS n FROM students").DataFrame()["n"][0] == 300


def test_a_later_setup_points_sql_at_its_own_target(shell, seeded, migrated):
    notebook.setup(seeded.url)
    assert shell.run_line_magic("sql", "SELECT current_database() AS d").DataFrame()["d"][0] == seeded.database
    notebook.setup(migrated.url)  # ipython-sql loaded already: the stand-in hands over to it, now connected here
    assert shell.run_line_magic("sql", "SELECT current_database() AS d").DataFrame()["d"][0] == migrated.database
    assert shell.run_cell("%%sql\nSELECT 1 AS one").success  # the cell magic too


_KERNEL_WITHOUT_SQLALCHEMY = """
import sys
from IPython.testing.globalipapp import start_ipython
shell = start_ipython()
import prep_ops as po
session = po.setup(sys.argv[1])
print("sqlalchemy" in sys.modules)
n = 7
print(shell.run_line_magic("sql", "SELECT :n + 1 AS m").DataFrame()["m"][0])  # the user's variables bound
print("sqlalchemy" in sys.modules, type(session.engine).__name__)
"""


def test_setup_leaves_sqlalchemy_and_ipython_sql_unimported_until_first_used(seeded):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _KERNEL_WITHOUT_SQLALCHEMY, seeded.url], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "8", "True", "Engine"]
