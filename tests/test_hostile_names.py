"""A name from a database is data: whatever a table, a role, a session's query or an error calls it,
it never steers the output it appears in (a terminal, a notebook's HTML or Markdown, a chart, a report).

The names below are made on a real server (sql.Identifier makes any of them a legal identifier), and
the real command or runbook function is run against them.
"""

import os
import pty
import re
import subprocess
import sys
import threading
import time

import psycopg
import pytest
from conftest import _create, _drop, cli_env
from psycopg import sql

from prep_ops import db

ESCAPE = "t\x1b[2K\x1b[1Ar PASS"  # on a terminal: clear the line, go up one, write over it
ESCAPE_SHOWN = r"t\x1b[2K\x1b[1Ar PASS"
FORGED = "evil\nPASS everything is fine"  # a line of its own, if printed as it is
FORGED_SHOWN = r"evil\nPASS everything is fine"
FORGED_STATEMENT = r'"public".U&"evil\000aPASS everything is fine"'  # in a statement: runnable as shown
MATH = "cost$^$"  # mathtext that cannot be parsed: a chart with it is never drawn
MARKUP = "<img src=x onerror=alert(1)>|`*x*`"
NAMES = (ESCAPE, FORGED, MATH, MARKUP)


@pytest.fixture(scope="module")
def hostile(server):
    """A database whose tables are named with each of NAMES: a foreign key without an index, and a
    duplicate index, so the index advice names each of them."""
    target = _create(server)
    with db.connect(target, autocommit=True) as conn:
        conn.execute("CREATE TABLE parent (id int PRIMARY KEY)")
        for name in NAMES:
            conn.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, parent_id int REFERENCES parent)")
                         .format(sql.Identifier(name)))
            conn.execute(sql.SQL("INSERT INTO {} SELECT g FROM generate_series(1, 50) g").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE INDEX {} ON {} (id)").format(sql.Identifier(name + "_dup"), sql.Identifier(name)))
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(name)))
    yield target
    _drop(server, target)


def prep_ops(*args, env):
    return subprocess.run([sys.executable, "-m", "prep_ops", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def on_a_terminal(*args, env) -> str:
    """What `prep-ops args` writes to a terminal (a pseudo-terminal: click strips nothing there), with
    the terminal's own line ends (\\r\\n) made \\n again."""
    main, child = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "prep_ops", *args], stdin=subprocess.DEVNULL, stdout=child,
                               stderr=child, env=env)
    os.close(child)
    out = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the command ended and closed its side
            break
        if not chunk:
            break
        out += chunk
    os.close(main)
    assert process.wait(timeout=300) == 0, out.decode(errors="replace")
    return out.decode().replace("\r\n", "\n")


def test_a_table_named_with_a_terminal_escape_cannot_rewrite_the_cli_output(hostile):
    shown = on_a_terminal("indexes", env=cli_env(hostile))
    assert "\x1b" not in shown and "\r" not in shown
    assert ESCAPE_SHOWN in shown  # in the table and in the statements, as written
    assert f'"public".U&"{ESCAPE_SHOWN.replace(chr(92) + "x", chr(92) + "00")}_dup";' in shown  # runnable as shown


@pytest.mark.parametrize("args", [("indexes",), ("maintain", "--plan", "--reindex", "--tables", f"public.{FORGED}")])
def test_a_table_named_with_a_line_break_cannot_forge_a_line_of_the_cli_output(hostile, args):
    done = prep_ops(*args, env=cli_env(hostile))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert not [line for line in lines if line.lstrip().startswith("PASS everything")]
    assert (FORGED_SHOWN if args[0] == "indexes" else FORGED_STATEMENT) in done.stdout
    if args[0] == "maintain":  # one statement a line, each ended by its semicolon
        assert all(line.endswith(";") for line in lines)


def test_a_query_with_a_terminal_escape_cannot_rewrite_the_health_output(hostile):
    """Any user may write a query text: a session holding a lock after such a query, another waiting
    for it, and `prep-ops health` on a terminal names them both."""
    text = "SELECT 1 /* \x1b]0;owned\x07\x1b[2K\x1b[1A all sessions fine */"
    holder = psycopg.connect(hostile.url, autocommit=True)
    waiter = psycopg.connect(hostile.url, autocommit=True)
    try:
        holder.execute("BEGIN")
        holder.execute("LOCK TABLE parent")
        holder.execute(text)
        waiting = threading.Thread(target=lambda: waiter.execute("SELECT count(*) FROM parent"), daemon=True)
        waiting.start()
        time.sleep(0.5)
        shown = on_a_terminal("health", env=cli_env(hostile))
    finally:
        holder.close()
        waiting.join(timeout=30)
        waiter.close()
    assert "all sessions fine" in shown  # the query was named
    assert "\x1b" not in shown and "\x07" not in shown
    assert r"\x1b]0;owned\x07" in shown


def test_an_error_quoting_a_name_is_one_line_with_the_name_shown(hostile):
    done = prep_ops("integrity", "--tables", f"public.{FORGED}\x1b[2K", env=cli_env(hostile))
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("error:"), done.stderr
    assert "\x1b" not in done.stderr and FORGED_SHOWN in done.stderr


def test_a_session_and_tables_named_with_markup_cannot_inject_html_into_the_health_runbook(hostile):
    """Runbook 08 shows the sessions and the checks as formatting.table (a Styler, whose HTML JupyterLab
    and runs/<ts>/08_health_check.html show as it is): any user sets their application_name and query."""
    from prep_ops import formatting, health

    other = psycopg.connect(hostile.url, autocommit=True, application_name="<img src=x onerror=alert(1)>")
    try:
        other.execute("SELECT 1 /* <script>alert(2)</script> */")
        with db.connect(hostile, autocommit=True) as conn:
            sessions = formatting.table(health.sessions(conn)).to_html()
            checks = formatting.table(health.as_frame(health.run_checks(conn)).drop(columns="value")
                                      .set_index("name")).to_html()
    finally:
        other.close()
    assert "&lt;img src=x onerror=alert(1)&gt;" in sessions and "&lt;script&gt;alert(2)" in sessions
    assert f"largest: public.{MARKUP.replace('<', '&lt;').replace('>', '&gt;')}" in checks  # the database size check names it
    for html in (sessions, checks):
        assert "<img" not in html and "<script" not in html


def test_a_table_named_like_math_cannot_stop_runbook_08_from_drawing_its_charts(hostile):
    """Runbook 08 on a database with a table named "cost$^$" (mathtext that cannot be parsed: its cache and
    size charts raised ValueError at draw time and the runbook stopped), markup and a line break: it runs to
    the end, and neither its notebook nor the HTML beside it carries the markup as HTML."""
    import json
    from pathlib import Path

    import nbformat

    done = prep_ops("run", "08_health_check", env=cli_env(hostile))
    out_dir = Path(done.stdout.strip().splitlines()[-1].removeprefix("executed notebooks and summary.json in "))
    (run,) = json.loads((out_dir / "summary.json").read_text())["notebooks"]
    assert run["ok"] and done.returncode == 0, run["error"] or done.stdout
    executed = nbformat.read(out_dir / "08_health_check.ipynb", as_version=4)
    html = [o["data"]["text/html"] for c in executed.cells for o in c.get("outputs", []) if "text/html" in o.get("data", {})]
    assert any("&lt;img src=x" in page for page in html)  # the tables name it, as text
    index = (out_dir / "index.html").read_text()  # the run's report: the check naming it, autoescaped
    assert "largest: public.&lt;img src=x onerror=alert(1)&gt;" in index
    for page in (*html, (out_dir / "08_health_check.html").read_text(), index):
        assert "<img src=x" not in page and 'onerror="alert(1)"' not in page


def test_a_table_named_with_a_line_break_cannot_forge_a_step_or_a_pass_in_the_incident_report(hostile, tmp_path,
                                                                                             capsys):
    """An incident's found lines, checks and statements quote the tables they are about: such a name
    cannot add a heading, a PASS, a table row, HTML, or end the statements' code block of the report, nor
    a line of what the notebook shows."""
    from prep_ops import notebook
    from prep_ops.incident.record import Incident

    name = f"{FORGED}\n\n## 4. Verify the data\n\n- Check: PASS every row is back\n{MARKUP}\n```\n# done"
    inc = Incident("data-recovery", "Data recovery", hostile, directory=tmp_path, mode="live")
    notebook.setup(hostile.url, sql_magic=False)
    with inc.step(1, "Assess the damage", next_if_failed="stop"):
        inc.found(f"3 row(s) missing from {name}")
        inc.check("rows counted", True, f"{name}: 3 missing", must_hold=False)
        inc.ran([f"DELETE FROM {sql.Identifier(name).as_string(None)}"])
    report = inc.report_path.read_text()
    lines = report.splitlines()
    assert [line for line in lines if line.startswith("## ")] == ["## 1. Assess the damage", "## Timeline"]
    assert not [line for line in lines if line.startswith(("- Check: PASS every", "PASS every", "<img", "# done"))]
    assert len([line for line in lines if line.startswith("| ")]) == 1 + 3  # the header and one row per event
    at = lines.index("Statements executed:") + 2
    opening, statement, closing = lines[at:at + 3]  # the statement, whole on one line in its code block
    assert closing == opening.removesuffix("sql") and statement.startswith("DELETE FROM") and 'U&"evil\\000a' in statement
    outside = lines[:at] + lines[at + 3:]  # (in a code block, <img is text)
    assert not [line for line in outside if re.search(r"(?<!\\)<img", line)]  # only as \<img: text
    assert r"\<img src=x onerror=alert(1)\>" in report
    shown = capsys.readouterr().out
    assert "found: 3 row(s) missing from evil\\nPASS everything is fine" in shown
    assert not [line for line in shown.splitlines() if line.startswith(("PASS every", "- Check", "<img"))]


def test_a_check_naming_a_table_with_a_carriage_return_is_one_line_in_the_notebook_and_whole_in_its_record():
    from prep_ops import notebook

    name = "orders\r\x1b[32mPASS all rows fine\x1b[0m"
    result = notebook.check(f"rows of {name} counted", False, f"{name} lost 3 rows", must_hold=False)
    assert result.line == r"WARN rows of orders\r\x1b[32mPASS all rows fine\x1b[0m counted: " \
                          r"orders\r\x1b[32mPASS all rows fine\x1b[0m lost 3 rows"
    assert notebook.checks().iloc[-1]["detail"] == f"{name} lost 3 rows"  # the record keeps the data as it is


def test_a_bloated_table_named_with_a_carriage_return_cannot_rewrite_runbook_05s_statements(scratch):
    """Runbook 05 prints the statements it plans, naming the tables with measured index bloat: such a
    table's "\\r" and ESC would put its own text over the statement in the notebook."""
    import json
    from pathlib import Path

    import nbformat

    name = "orders\r\x1b[2KREINDEX done, nothing else to run"
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
        table = sql.Identifier(name)
        conn.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, v text)").format(table))
        conn.execute(sql.SQL("CREATE INDEX ON {} (v)").format(table))
        conn.execute(sql.SQL("INSERT INTO {} SELECT g, md5(g::text) FROM generate_series(1, 60000) g").format(table))
        conn.execute(sql.SQL("DELETE FROM {} WHERE id % 10 <> 0").format(table))
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(table))
    done = prep_ops("run", "05_maintenance", env=cli_env(scratch))
    out_dir = Path(done.stdout.strip().splitlines()[-1].removeprefix("executed notebooks and summary.json in "))
    (run,) = json.loads((out_dir / "summary.json").read_text())["notebooks"]
    assert run["ok"], run["error"]
    executed = nbformat.read(out_dir / "05_maintenance.ipynb", as_version=4)
    printed = "".join(o["text"] for c in executed.cells for o in c.get("outputs", []) if o["output_type"] == "stream")
    assert 'REINDEX TABLE CONCURRENTLY "public".U&"orders\\000d\\001b[2KREINDEX done' in printed  # chosen, and shown
    assert "\r" not in printed and "\x1b" not in printed


@pytest.mark.parametrize("comment", ["closed\n\x1b[2Kfor good", "a \\ backslash\n and a line break"])
def test_a_statement_shown_for_a_name_with_a_line_break_runs_on_that_table_not_on_one_named_with_its_escape(
        scratch, comment):
    """A statement prep-ops shows (index advice, maintain --plan, runbook 05, incident reports) may be
    copied and run. Shown with `\\n` for the line break, it would name another table: one literally
    called `evil\\nx`, which whoever made the first can make too. Shown in Unicode-escape form, it runs on
    exactly the table it was composed for, with exactly its string (an E'' one too: a backslash in it)."""
    from prep_ops import formatting

    broken, lookalike = "evil\nx", "evil\\nx"
    with db.connect(scratch, autocommit=True) as conn:
        for name in (broken, lookalike):
            conn.execute(sql.SQL("CREATE TABLE {} (id int)").format(sql.Identifier(name)))
        composed = sql.SQL("COMMENT ON TABLE {} IS {}").format(sql.Identifier("public", broken), sql.Literal(comment))
        shown = formatting.statement(composed.as_string(conn))
        assert "\n" not in shown and "\x1b" not in shown and formatting.terminal(shown) == shown
        conn.execute(shown)
        comments = dict(conn.execute("SELECT relname, obj_description(oid, 'pg_class') FROM pg_class "
                                     "WHERE relname IN (%s, %s)", (broken, lookalike)).fetchall())
    assert comments == {broken: comment, lookalike: None}


def test_a_schema_named_with_a_carriage_return_cannot_rewrite_runbook_06s_role_plan(migrated):
    """Runbook 06 prints the GRANT statements it plans, one per user schema: such a schema's "\\r" and ESC
    would put its own text over the statement in the notebook. Shown as `prep-ops roles plan` shows them:
    runnable as shown (formatting.statement)."""
    import json
    import uuid
    from pathlib import Path

    import nbformat

    from prep_ops import roles

    name, prefix = "s\r\x1b[2KPASS roles and grants as wanted", f"t{uuid.uuid4().hex[:8]}_"
    with db.connect(migrated, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        done = prep_ops("run", "06_access_control_audit", "-p", "role_prefix", prefix, env=cli_env(migrated))
    finally:
        with db.connect(migrated, autocommit=True) as conn:
            roles.drop(conn, roles.RoleSet.with_prefix(prefix))
    out_dir = Path(done.stdout.strip().splitlines()[-1].removeprefix("executed notebooks and summary.json in "))
    (run,) = json.loads((out_dir / "summary.json").read_text())["notebooks"]
    assert run["ok"], run["error"]
    executed = nbformat.read(out_dir / "06_access_control_audit.ipynb", as_version=4)
    printed = "".join(o["text"] for c in executed.cells for o in c.get("outputs", []) if o["output_type"] == "stream")
    assert 'GRANT USAGE ON SCHEMA U&"s\\000d\\001b[2KPASS roles and grants as wanted" TO ' in printed  # runnable as shown
    assert "\r" not in printed and "\x1b" not in printed


@pytest.mark.parametrize("name", ["x\nCREATE TABLE pwned AS --", "x\rCREATE TABLE pwned AS --"])
@pytest.mark.parametrize("where", ["table", "column"])
def test_a_name_that_ends_a_sql_comment_cannot_turn_the_checksums_query_into_its_own_statement(scratch, name,
                                                                                              where):
    """The checksums' query was sent with the table's and the columns' names pasted into its leading
    comment as well: a line break in a name ended the comment, and the rest of the name was SQL. Here,
    `CREATE TABLE pwned AS` took the checksums' SELECT as its query, in the caller's transaction (the
    restore's comparison and the recovery's assessment sum in a transaction that may write)."""
    from prep_ops import checksums

    table, column = (name, "a") if where == "table" else ("t", name)
    with db.connect(scratch) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} ({} int NOT NULL)").format(sql.Identifier(table), sql.Identifier(column)))
        conn.execute(sql.SQL("INSERT INTO {} VALUES (1), (2)").format(sql.Identifier(table)))
        sums = checksums.table_checksums(conn)  # in the transaction the inserts opened: not read-only
        assert sums[f"public.{table}"]["rows"] == 2
        assert conn.execute("SELECT to_regclass('public.pwned')").fetchone()[0] is None


def test_no_sql_file_names_a_field_in_a_comment():
    """A `{field}` filled in with a name inside a `--` comment is the hole above: the names go into SQL,
    never into its comments."""
    from prep_ops.paths import PACKAGE_DIR

    fields = [f"{path.relative_to(PACKAGE_DIR)}:{number}" for path in sorted((PACKAGE_DIR / "sql").rglob("*.sql"))
              for number, line in enumerate(path.read_text().splitlines(), 1)
              if "--" in line and re.search(r"\{\w*\}", line.split("--", 1)[1])]
    assert fields == []


def test_two_tables_whose_names_join_to_the_same_label_are_both_backed_up_and_verified(scratch, tmp_path):
    """Schema "a.b" with table c, and schema a with table "b.c": both were labelled a.b.c, so the manifest kept
    one of them, and verify compared only that one while it said PASS. Each has a label of its own now
    (`"a.b".c`, `a."b.c"`), and a value changed in the one the manifest had dropped fails, naming it."""
    from conftest import rehash
    from prep_ops import backup, verify

    with db.connect(scratch, autocommit=True) as conn:
        conn.execute('CREATE SCHEMA "a.b"; CREATE TABLE "a.b".c (id int, v text); CREATE SCHEMA a; '
                     'CREATE TABLE a."b.c" (id int, v text)')
        conn.execute("""INSERT INTO "a.b".c SELECT g, 'first' FROM generate_series(1, 10) g""")
        conn.execute("""INSERT INTO a."b.c" SELECT g, 'second' FROM generate_series(1, 3) g""")
    made = backup.backup(scratch, "full", "plain", directory=tmp_path)
    assert {k: v["rows"] for k, v in made.manifest["tables"].items()} == {'"a.b".c': 10, 'a."b.c"': 3}
    assert set(made.manifest["schema"]) == {'"a.b".c', 'a."b.c"'}
    assert verify.verify(made.path).ok
    text = made.path.read_text()
    assert text.count("\tsecond\n") == 3
    made.path.write_text(text.replace("3\tsecond\n", "3\tchanged\n", 1))
    rehash(made.path)
    failed = verify.verify(made.path).failures
    assert list(zip(failed["object"], failed["check"])) == [('a."b.c"', "content checksum")]


def test_the_audit_log_finds_the_first_damaging_change_of_a_table_whose_schema_name_holds_a_dot(scratch):
    """The point-in-time repair takes its moment from the audit log when the log watches every damaged table.
    The watched tables were named the old way (`a.b.c`), the damaged ones by their label (`"a.b".c`): a
    logged table with a dot in a name was taken as not watched, and the moment was never found there."""
    from datetime import datetime, timezone

    from prep_ops import audit_log
    from prep_ops.incident import point_in_time

    with db.connect(scratch, autocommit=True) as conn:
        audit_log.install(conn, confirm=True)
        conn.execute('CREATE SCHEMA "a.b"; CREATE TABLE "a.b".c (id int PRIMARY KEY, v text)')
        assert audit_log.enable(conn, ['"a.b".c'], confirm=True) == ["a.b.c"]
        since = datetime.now(timezone.utc)
        conn.execute("""INSERT INTO "a.b".c VALUES (1, 'kept'), (2, 'lost')""")
        conn.execute('DELETE FROM "a.b".c WHERE id = 2')
        found = point_in_time.from_audit_log(conn, {'"a.b".c': {"missing": {("2",)}, "changed": set()}}, since)
    assert found is not None and found.source == "audit log", found
    assert 'DELETE of "a.b".c {"id": 2}' in found.detail, found.detail


def test_a_backup_labelled_before_quoting_still_verifies_and_assesses_a_table_whose_schema_name_holds_a_dot(scratch, tmp_path):
    """A manifest written before labels quoted a dot keys "a.b".c as a.b.c. Against the new labels, verify
    would find the table absent, and runbook 10's assessment would call it gone and never compare its rows,
    with that old backup the only one from before the damage. A key that names one table is read as it."""
    import json

    from prep_ops import backup, verify
    from prep_ops.incident import recovery

    with db.connect(scratch, autocommit=True) as conn:
        conn.execute('CREATE SCHEMA "a.b"; CREATE TABLE "a.b".c (id int PRIMARY KEY, v text)')
        conn.execute("""INSERT INTO "a.b".c SELECT g, 'row' FROM generate_series(1, 5) g""")
    made = backup.backup(scratch, "full", "custom", directory=tmp_path)
    path = backup.manifest_path(made.path)
    old = json.loads(path.read_text())
    for part in ("tables", "schema"):
        old[part] = {("a.b.c" if key == '"a.b".c' else key): value for key, value in old[part].items()}
    path.write_text(json.dumps(old))
    assert "a.b.c" in old["tables"]
    checked = verify.verify(made.path)
    assert checked.ok, checked.failures.to_string()
    assert '"a.b".c' in set(checked.report.loc[checked.report["check"] == "content checksum", "object"])
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute('DELETE FROM "a.b".c WHERE id = 5')
        assessed = recovery.assess(conn, old).set_index("table")
    assert assessed.loc['"a.b".c', "state"] == "damaged" and assessed.loc['"a.b".c', "rows_backup"] == 5


def test_an_older_manifests_key_of_a_name_with_a_quote_is_read_as_its_table():
    """A manifest written before labels quoted a double quote keyed public."my""t" as public.my"t: read with the
    new labels, the table was absent and a new one (verify FAIL, runbook 10 'gone', rows_lost 'lost'). Only a
    key written as this prep-ops writes labels is kept as it is; a key that fits two tables stays too."""
    from prep_ops.labels import as_labelled

    assert as_labelled({'public.my"t': 1, "public.users": 2}, {'public."my""t"', "public.users"}) == \
        {'public."my""t"': 1, "public.users": 2}
    assert as_labelled({"a.b.c": 1}, {'"a.b".c', 'a."b.c"'}) == {"a.b.c": 1}
    assert as_labelled({'"a.b".c': 1}, {'"a.b".c'}) == {'"a.b".c': 1}
