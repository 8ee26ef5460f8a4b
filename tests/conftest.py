"""Real PostgreSQL fixtures: $DATABASE_URL's server when set, else the embedded one. No mocks.

Every test that touches data gets its own scratch database, dropped afterwards. The session works in
a project folder of its own (see the conftest.py at the top of the checkout).
"""

import contextlib
import os
import shutil
import tempfile
import threading
import uuid
from pathlib import Path

import pytest
from psycopg import sql

from prep_ops import db, embedded, migrate, seed


@pytest.fixture(scope="session")
def server() -> db.Target:
    """The server under test (its maintenance database)."""
    return db.resolve_target()


def pytest_report_header(config):
    target = db.resolve_target()
    with db.connect(target) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
    kind = "embedded" if target.embedded else "DATABASE_URL"
    return f"prep-ops test server: PostgreSQL {version} ({kind}) {target.masked_url}"


def _create(server: db.Target) -> db.Target:
    name = f"prep_ops_test_{uuid.uuid4().hex[:10]}"
    with db.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return server.with_database(name)


def _drop(server: db.Target, target: db.Target) -> None:
    with db.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(target.database)))


@pytest.fixture
def private_server(monkeypatch):
    """A private embedded server in the test's own data directory (its path), stopped and removed after.

    Not under pytest's tmp_path: a pytest session starting meanwhile (the isolation test runs one)
    makes /tmp/pytest-of-<user> private again, and the server's system user could no longer reach it.
    """
    folder = Path(tempfile.mkdtemp(prefix="prep-ops-private-"))
    monkeypatch.setenv("PREP_OPS_DATA_DIR", str(folder / "pgdata"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    yield folder / "pgdata"
    embedded.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def scratch(server):
    """An empty scratch database, dropped after the test."""
    target = _create(server)
    yield target
    _drop(server, target)


@pytest.fixture
def app_author(scratch):
    """(name, password) of a login role that owns schema `app` of the scratch database, as an application's
    own role would: what it makes there is someone else's code to prep-ops. The schema (with everything in
    it) and the role are dropped afterwards, also where the test failed."""
    import secrets

    author, password = f"prep_ops_test_author_{secrets.token_hex(3)}", secrets.token_hex(8)
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(author), sql.Literal(password)))
        conn.execute(sql.SQL("CREATE SCHEMA app AUTHORIZATION {}").format(sql.Identifier(author)))
    yield author, password
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS app CASCADE")
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(author)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(author)))


@pytest.fixture
def migrated(scratch):
    """A scratch database at the latest migration (the test's own: confirmed, whatever the server)."""
    with db.connect(scratch, autocommit=True) as conn:
        migrate.apply(conn, confirm=True)
    return scratch


@pytest.fixture
def owner(migrated):
    """An autocommit connection to the `migrated` database as its owner, as a CLI command or a notebook opens it."""
    with db.connect(migrated, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def seeded(server):
    """A scratch database at the latest migration with 300 sample students (shared by a module)."""
    target = _create(server)
    with db.connect(target, autocommit=True) as conn:
        migrate.apply(conn, confirm=True)
        seed.seed(conn, students=300, seed=7, confirm=True)
    yield target
    _drop(server, target)


def schema_dump(target: db.Target) -> str:
    """`pg_dump --schema-only` of the target, for comparing schemas."""
    import subprocess

    with db.connect(target) as conn:
        major = db.server_version(conn)
    pg_dump = db.client_program("pg_dump", target, major)
    out = subprocess.run([str(pg_dump), "--schema-only", "--no-owner", "--dbname", target.url],
                         check=True, capture_output=True, text=True).stdout
    # pg_dump 17+ prints a random \restrict key per dump
    return "\n".join(line for line in out.splitlines() if not line.startswith(("\\restrict", "\\unrestrict")))


def rehash(path) -> None:
    """Rewrite a backup manifest's file hashes after a fault was put into the dump, as an attacker or a
    broken tool would: only the restore and the comparisons can catch it then."""
    import json

    from prep_ops import backup

    mpath = backup.manifest_path(path)
    manifest = json.loads(mpath.read_text())
    manifest["files"] = backup.file_hashes(path)
    mpath.write_text(json.dumps(manifest))


def edited_copy(made, folder: Path, edit) -> Path:
    """A copy in `folder` of the plain backup `made` (a backup.Backup) with `edit` applied to its text and
    its manifest hash remade (see rehash); the edit must change something."""
    from prep_ops import backup

    path = folder / made.path.name
    shutil.copyfile(made.path, path)
    shutil.copyfile(backup.manifest_path(made.path), backup.manifest_path(path))
    text = path.read_text()
    changed = edit(text)
    assert changed != text, "the fault was not put in"
    path.write_text(changed)
    rehash(path)
    return path


def drop_line(start):
    """An edit for edited_copy: every line starting with `start` (a string or a tuple of them) left out."""
    return lambda text: "".join(line for line in text.splitlines(keepends=True) if not line.startswith(start))


def table_checksum(target: db.Target, table: str) -> str:
    """md5 of a table's rows in id order: equal checksums, equal contents."""
    with db.connect(target) as conn:
        query = sql.SQL("SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {} t")
        return conn.execute(query.format(sql.Identifier(table))).fetchone()[0]


def notebook_outputs(path) -> str:
    """Every cell output of an executed notebook, as one JSON text to search."""
    import json

    import nbformat

    return json.dumps([c.get("outputs", []) for c in nbformat.read(path, as_version=4).cells])


NOT_LOOKED_AT = ("unavailable", "not tried", "fallback", "confirm=False", "skipped")


def passes_of_what_was_not_looked_at(results) -> list[str]:
    """The PASS checks of runner results (or of summary.json's "notebooks") whose detail says they were
    not looked at (should be none: a SKIP)."""
    pairs = [(r["notebook"], r["checks"]) if isinstance(r, dict) else (r.notebook, r.checks) for r in results]
    return [f"{notebook}: {c['name']}: {c['detail']}" for notebook, checks in pairs for c in checks
            if c["status"] == "PASS" and any(word in c["detail"] for word in NOT_LOOKED_AT)]


def judge_as_elsewhere(monkeypatch) -> None:
    """From here on, every connection is judged as one to a database someone named by a URL (not
    scratch, as on a production server): changes need confirm. Undone with the monkeypatch."""
    import weakref

    class _NoScratch(weakref.WeakSet):
        def add(self, item) -> None:  # connections opened from here on are not remembered as scratch
            pass

    monkeypatch.delenv("PREP_OPS_SCRATCH", raising=False)
    monkeypatch.setattr(db, "_SCRATCH_CONNECTIONS", _NoScratch())


def named_without_schemas(conn, plan):
    """`plan` as a plan made without VERBOSE gives it: no node names its table's schema."""
    import dataclasses

    from prep_ops import plans

    nodes = plan.nodes.assign(schema=None)
    return dataclasses.replace(plan, nodes=nodes, relation_stats=plans.plan_relations(conn, nodes))


def check_statuses(run, names) -> dict[str, str]:
    """Each check of an incident run: name -> its status word, as the timeline records it
    ("PASS name: detail", "SKIP name — why"); `names` are the runbook's check names (a name may hold
    a colon itself, so the detail is cut back until a known name remains)."""
    found = {}
    for event in run.inc.events:
        if event.kind == "check":
            word, _, rest = event.text.partition(" ")
            name = rest.split(" — ")[0] if word == "SKIP" else rest
            while name not in names and ":" in name:
                name = name.rpartition(":")[0]
            found[name] = word
    return found


def cli_env(target: db.Target | None = None, **extra) -> dict:
    env = dict(os.environ)
    if target is not None:
        env["DATABASE_URL"] = target.url
    env.update(extra)
    return env


@contextlib.contextmanager
def held_exclusive(target: db.Target, table: str, *, at_most: float):
    """A session named holder-app holding `table` ACCESS EXCLUSIVE in an open transaction (a VACUUM FULL, a
    session left idle after LOCK TABLE); yields its pid. The server ends that session after `at_most` seconds
    if the test has not: a bound for code under test that would wait for the lock, never a hung suite."""
    holder = db.connect(target, application_name="holder-app")
    holder.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(table)))
    pid = holder.info.backend_pid

    def end() -> None:
        with db.connect(target, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

    timer = threading.Timer(at_most, end)
    timer.start()
    try:
        yield pid
    finally:
        timer.cancel()
        holder.close()


@pytest.fixture
def incident_id():
    """A fresh incident id for a runbook run; everything written under it (or ids built on it) is removed after."""
    from prep_ops import incident

    name = f"test-incident-{uuid.uuid4().hex[:8]}"
    yield name
    for path in incident.incidents_dir().glob(f"{name}*"):
        path.unlink()


def _nbval_run(notebook: Path, recorded: dict | None, folder: Path):
    """The nbval pass's run of `notebook` as a runner.NotebookRun (its outputs written into a copy of the
    notebook in `folder`); None when nbval did not execute every code cell of it."""
    import json

    from prep_ops import runner

    nb = json.loads(notebook.read_text(encoding="utf-8"))
    code = [cell for cell in nb["cells"] if cell["cell_type"] == "code"]
    if not recorded or len(recorded["outputs"]) != len(code):
        return None
    error = ""
    for number, (cell, outputs) in enumerate(zip(code, recorded["outputs"]), start=1):
        cell["outputs"] = outputs
        failed = next((o for o in outputs if o.get("output_type") == "error"), None)
        if failed and not error:
            error = runner.cell_error(number, failed["ename"], failed["evalue"])
    output = folder / notebook.name
    output.write_text(json.dumps(nb), encoding="utf-8")
    return runner.NotebookRun(notebook.stem, str(output), not error, recorded["seconds"], error, runner.checks_of(output))


@pytest.fixture(scope="session")
def runbook_run(request, tmp_path_factory):
    """`runbook_run("11")`: the default run of a runbook in this session, a runner.NotebookRun. The nbval
    pass's run where it executed the whole runbook (the suite runs the runbooks first: each executes once
    per server), else a run of its own with the runner (a test file run alone), made once either way."""
    from prep_ops import runner

    made = {}

    def get(name: str):
        notebook = runner.find(name)
        if notebook.stem not in made:
            folder = tmp_path_factory.mktemp(notebook.stem)
            recorded = getattr(request.config, "_prep_ops_nbval_runs", {}).get(notebook.stem)
            run = _nbval_run(notebook, recorded, folder)
            if run is None:  # as `run --all` orders them: the "first" runbooks (01's data) before the rest
                for first in (nb for nb in runner.available() if runner.schedule(nb) == "first" and nb != notebook):
                    get(first.stem)
                run = runner.run_one(notebook, folder, {})
            made[notebook.stem] = run
        return made[notebook.stem]

    return get


def incident_of(run) -> str:
    """The incident id of an incident runbook's run, as its first step shows it (`<incident ID: ...>`)."""
    import re

    found = re.search(r"<incident ([\w.-]+):", notebook_outputs(run.output))
    assert found, f"no incident shown in {run.output}"
    return found.group(1)


SAMPLE_DBS = {"chinook": ["chinook.sql"], "northwind": ["northwind.sql"],
              "pagila": ["pagila-schema.sql", "pagila-data.sql", "pagila-extras.sql"]}


def _load_sample(server: db.Target, name: str) -> db.Target:
    """A new scratch database holding the public sample database `name` (tests/fixtures/sample_dbs)."""
    import subprocess

    target = _create(server)
    with db.connect(server) as conn:
        psql = db.client_program("psql", server, db.server_version(conn))
    folder = Path(__file__).parent / "fixtures" / "sample_dbs"
    for file in SAMPLE_DBS[name]:
        subprocess.run([str(psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", "--dbname", target.url, "-f", str(folder / file)],
                       check=True, capture_output=True, text=True)
    return target


@pytest.fixture(scope="session")
def sample_db(server):
    """sample_db(name): the public sample database `name` (chinook, northwind, pagila), loaded once per
    session and dropped at its end. Read it only; change a `sample_copy`."""
    loaded: dict[str, db.Target] = {}

    def get(name: str) -> db.Target:
        if name not in loaded:
            loaded[name] = _load_sample(server, name)
        return loaded[name]

    yield get
    for target in loaded.values():
        _drop(server, target)


@pytest.fixture
def sample_copy(server, sample_db):
    """sample_copy(name): a copy of a public sample database (CREATE DATABASE ... TEMPLATE) for a test
    that changes it, dropped after the test."""
    copies = []

    def copy(name: str) -> db.Target:
        source = sample_db(name)
        target = server.with_database(f"prep_ops_test_{uuid.uuid4().hex[:10]}")
        with db.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(target.database),
                                                                          sql.Identifier(source.database)))
        copies.append(target)
        return target

    yield copy
    for target in copies:
        _drop(server, target)


class LabKernel:
    """A kernel driven as JupyterLab drives it: each cell sent with its cell id (the `cellId` JupyterLab puts in
    an execute request's metadata), in the order a person chooses, a cell run again, another interrupted."""

    def __init__(self, manager, client):
        self.manager, self.client = manager, client
        self.traceback: list[str] = []  # the last error's structured traceback, as JupyterLab shows it

    def run(self, cell_id: str, code: str, *, timeout: float = 300) -> list[str]:
        """The cell's outputs as text: each display's text/plain, stream text, and an error as 'error: <evalue>'."""
        content = dict(code=code, silent=False, store_history=True, user_expressions={}, allow_stdin=False,
                       stop_on_error=False)
        message = self.client.session.msg("execute_request", content, metadata={"cellId": cell_id})
        self.client.shell_channel.send(message)
        shown = []
        while True:
            reply = self.client.get_iopub_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") != message["header"]["msg_id"]:
                continue
            kind, body = reply["msg_type"], reply["content"]
            if kind == "stream":
                shown.append(body["text"])
            elif kind in ("display_data", "execute_result"):
                shown.append(body["data"].get("text/plain", ""))
            elif kind == "error":
                shown.append(f"error: {body['evalue']}")
                self.traceback = body["traceback"]
            elif kind == "status" and body["execution_state"] == "idle":
                return shown


@pytest.fixture
def lab_kernel():
    """A LabKernel in the session's project folder (its environment inherited), shut down after the test."""
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name="python3", startup_timeout=120)
    try:
        yield LabKernel(manager, client)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
