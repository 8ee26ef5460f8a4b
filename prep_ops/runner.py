"""Run runbooks headless with papermill into runs/<timestamp>-<random>/ and summarise their checks."""

import difflib
import json
import os
import secrets
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from .errors import ParameterError, first_text_line
from .parameters import default_value, is_data, kind_of, parameters, parse_value, validate  # noqa: F401 (runner.parameters etc. as before)
from .paths import notebooks_dir, runs_dir
from .schedule import SCHEDULES, Dispatch, schedule  # noqa: F401 (runner.schedule as before)
from .verdicts import CHECK_MIME, status, status_counts

# papermill, nbformat (2.5 s of imports), the incident record and psycopg are imported where a run
# needs them: naming an unknown runbook or listing parameters answers without them.


@dataclass
class NotebookRun:
    notebook: str
    output: str
    ok: bool
    seconds: float
    error: str = ""
    checks: list[dict] = field(default_factory=list)
    report: str = ""  # an incident runbook's Markdown report, relative to the run's folder
    html: str = ""  # the executed notebook rendered as HTML beside it (its file name), "" when it could not be

    def __post_init__(self) -> None:
        self.ok = self.ok and not self.failed_checks  # a failed must-hold check fails the run, whatever ran

    @property
    def failed_checks(self) -> list[dict]:
        return [c for c in self.checks if status(c) == "FAIL"]

    @property
    def counts(self) -> dict[str, int]:
        """How many checks have each status: PASS, WARN, FAIL, SKIP."""
        return status_counts(self.checks)


def available() -> list[Path]:
    """The runbooks in notebooks/, in order."""
    return sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb"))


def find(name: str) -> Path:
    """The runbook called `name`: a path, a file name, a stem like 01_schema_setup, its number (01 or 1), or
    its name without the number (schema_setup)."""
    path = Path(name)
    if path.suffix == ".ipynb" and path.exists():
        return path.resolve()
    for candidate in available():
        number, _, bare = candidate.stem.partition("_")
        if name in (candidate.name, candidate.stem, number, bare) or name.isdigit() and int(name) == int(number):
            return candidate
    names = ", ".join(p.stem for p in available())
    raise ParameterError(f"no runbook named {name!r}; available: {names}" if names else
                         f"no runbook named {name!r}: {_none_here()}")


def _none_here() -> str:
    """Why there is nothing to run: the project folder (PREP_OPS_HOME, where set) has no runbooks."""
    home = " (the project folder PREP_OPS_HOME names)" if os.environ.get("PREP_OPS_HOME") else ""
    return f"there are no runbooks (NN_name.ipynb) in {notebooks_dir()}{home}"


def checks_of(output: Path) -> list[dict]:
    import nbformat

    if not output.exists():
        return []
    nb = nbformat.read(output, as_version=4)
    found = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if CHECK_MIME in data:
                check = dict(data[CHECK_MIME])
                found.append({**check, "status": status(check)})
    return found


def cell_error(cell: int, ename: str, evalue) -> str:
    """A failed cell in one line: "cell N: Error: its message's first line"."""
    return f"cell {cell}: {ename}: {first_text_line(evalue)}"


def _error_of(exc: Exception) -> str:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        return cell_error(exc.exec_count, exc.ename, exc.evalue)
    return f"{type(exc).__name__}: {first_text_line(exc)}"


def incident_values(notebook: Path, values: dict) -> dict:
    """For an incident runbook (one with an `incident_id` parameter): the values with an incident id
    (a new one unless given) and the mode (the notebook's default unless given)."""
    from .incident import record as incident

    declared = parameters(notebook)
    if "incident_id" not in declared:
        return values
    values = dict(values)
    kind = notebook.stem.split("_", 1)[-1].removeprefix("incident_").replace("_", "-")
    if not values.get("incident_id"):
        values["incident_id"] = incident.new_id(kind)
    elif type(values["incident_id"]) is int:  # `-p incident_id 2026` reads as JSON, a number: the digits typed are the name
        values["incident_id"] = str(values["incident_id"])
    incident.check_id(values["incident_id"])  # a name, never a path: checked before anything runs or is written
    earlier = incident.journal.load(incident.incidents_dir(), values["incident_id"])
    if earlier is not None and earlier.get("kind") != kind:  # before the run: its notebook would replace that report's
        raise ParameterError(f"{notebook.stem}: incident {values['incident_id']} is a {earlier.get('kind')} incident, "
                             f"not {kind}: give this run another incident_id")
    if "mode" in declared and "mode" not in values:
        values["mode"] = default_value(declared["mode"]["default"])
    if values.get("mode", incident.MODES[0]) not in incident.MODES:
        raise ParameterError(f"{notebook.stem}: mode must be one of {', '.join(incident.MODES)}, not {values['mode']!r}")
    return values


def _beside_report(output: Path, values: dict) -> None:
    """Copy an incident runbook's executed notebook next to its report in runs/incidents/."""
    from .incident import record as incident

    if values.get("incident_id") and output.exists():
        target = incident.incidents_dir() / f"{values['incident_id']}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(output, target)


def _report_of(out_dir: Path, values: dict) -> str:
    """Where an incident runbook's report is, relative to the run's folder ("" for other runbooks)."""
    from .incident import record as incident

    if not values.get("incident_id"):
        return ""
    return os.path.relpath(incident.incidents_dir() / f"{values['incident_id']}.md", out_dir)


@contextmanager
def _environment(name: str, value: str | None):
    """$name set to `value` (when not None) for the kernels started inside, then as it was."""
    saved = os.environ.get(name)
    if value is not None:
        os.environ[name] = value
    try:
        yield
    finally:
        if value is not None:
            if saved is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = saved


def _skip_iri_grammar() -> None:
    """Importing nbformat (papermill, nbconvert) imports jsonschema's format checkers, and through them
    rfc3987_syntax, which builds an IRI grammar at import: 1.3 s of every run. No notebook schema uses
    the "iri" format, so that checker is left out (an import of None raises ImportError, which jsonschema
    expects of a missing optional package); nbformat still validates every notebook against its schema."""
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)


def run_one(notebook: Path, out_dir: Path, values: dict, *, timeout: int | None = 1800,
            tag: str | None = None) -> NotebookRun:
    """Execute one runbook with papermill, and render it as HTML beside it; never raises for a failure
    inside the notebook. With `tag`, every session its kernel opens (and the client programs it runs:
    PGAPPNAME) names it in its application_name (db.tagged), for `_end_sessions`."""
    _skip_iri_grammar()
    import papermill

    from . import html_report

    from .db import RUN_TAG_ENV, mask_url, tagged

    values = incident_values(notebook, values)
    for name, value in values.items():  # papermill pastes other types into the code as they are
        if not is_data(value):
            raise ParameterError(f"{notebook.stem}: parameter {name} must be plain data, not {type(value).__name__}")
    output = out_dir / notebook.name
    began = time.perf_counter()
    error = ""
    url = values.get("database_url")
    secret_url = url is not None and mask_url(str(url)) != str(url)
    if secret_url:  # papermill writes parameters into the executed notebook: a password goes by environment
        values = {k: v for k, v in values.items() if k != "database_url"}
    try:
        # headless: progress bars are text, not widgets a saved notebook cannot show
        with _environment("DATABASE_URL", str(url) if secret_url else None), _environment("PREP_OPS_HEADLESS", "1"), \
                _environment(RUN_TAG_ENV, tag), _environment("PGAPPNAME", tagged() if tag else None):
            papermill.execute_notebook(str(notebook), str(output), parameters=values, kernel_name="python3",
                                       cwd=str(notebook.parent), progress_bar=False, execution_timeout=timeout,
                                       # the kernel's own log is noise in a run's output: its start-up warnings,
                                       # and at its end, shut down with SIGINT as jupyter_client does, "ERROR |
                                       # KeyboardInterrupt caught in kernel" in a run that passed; a cell's
                                       # error and a kernel that died are the notebook's, and the run's
                                       extra_arguments=["--IPKernelApp.log_level=CRITICAL"])
    except Exception as exc:  # papermill raises for any failing cell; the run records it
        error = _error_of(exc)
    _beside_report(output, values)
    seconds = time.perf_counter() - began
    html = html_report.render_notebook(output)  # here: in a worker, beside the other runbooks still running
    return NotebookRun(notebook.stem, str(output), not error, seconds, error, checks_of(output),
                       _report_of(out_dir, values), html.name if html else "")


def default_jobs() -> int:
    """`run -j`'s default: the cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _side_by_side(plans: dict[Path, dict], out_dir: Path, jobs: int, on_done) -> dict[Path, NotebookRun]:
    """Run the planned runbooks in up to `jobs` worker processes (each starts its own kernel), each as
    soon as its schedule allows (schedule.Dispatch). A worker that dies (killed, out of memory) fails the
    runbooks running at that moment, never the run: the rest go on in new workers."""
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    done, dispatch, running, pool = {}, Dispatch(list(plans), jobs, _live_drills(plans)), {}, None
    tags = {notebook: secrets.token_hex(6) for notebook in plans}
    try:
        while not dispatch.finished:
            for notebook in dispatch.ready():
                while True:
                    pool = pool or _pool(min(jobs, len(plans)))
                    try:
                        running[pool.submit(run_one, notebook, out_dir, plans[notebook], tag=tags[notebook])] = notebook
                        break
                    except BrokenProcessPool:  # broke before this one started: it runs in new workers
                        pool.shutdown(wait=True)
                        pool = None
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                notebook = running.pop(future)
                try:
                    result = future.result()
                except Exception as exc:  # its worker died: that runbook failed, not the run
                    # its kernel exits with it, but a statement it sent runs on: ended before the next starts
                    ended = _end_sessions(plans[notebook], tags[notebook])
                    result = NotebookRun(notebook.stem, str(out_dir / notebook.name), False, 0.0,
                                         f"{_error_of(exc)}; {ended}")
                done[notebook] = result
                dispatch.done(notebook)
                if on_done:
                    on_done(result)
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    return done


def _live_drills(plans: dict[Path, dict]) -> set[Path]:
    """The "drill" runbooks asked to work on the target (`mode` other than drill): scheduled "alone"."""
    from .incident import record as incident

    return {notebook for notebook, values in plans.items()
            if schedule(notebook) == "drill" and values.get("mode", incident.MODES[0]) != incident.MODES[0]}


def _end_sessions(values: dict, tag: str) -> str:
    """End the sessions of a runbook run whose worker died (found by its tag), on its server, waiting up to
    10 s for each to go; what was done, in words."""
    import psycopg
    from psycopg import sql

    from . import db
    from .errors import PrepOpsError, first_line
    from .sqlfiles import load

    try:
        with db.connect(db.resolve_target(values.get("database_url")), autocommit=True, connect_timeout=5) as conn:
            wait = sql.SQL(", 10000") if conn.info.server_version >= 140000 else sql.SQL("")
            query = sql.SQL(load("runner", "end_sessions")).format(wait=wait)
            ended = conn.execute(query, {"tag": f"% run {tag}"}).fetchall()
    except (PrepOpsError, psycopg.Error) as exc:
        return f"its sessions on the server could not be ended ({first_line(exc)})"
    gone = sum(1 for (done,) in ended if done)
    return f"{gone} of its session(s) on the server ended" if ended else "no session of it was left on the server"


def _pool(workers: int):
    """Worker processes for runbooks; spawned, so that each starts clean (no inherited connections or threads)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=quiet_when_interrupted)


def quiet_when_interrupted() -> None:
    """Ctrl-C at a terminal reaches every process of the run: the command says `aborted` (cli.main), and a
    worker, or the command's own papermill, stops without a word. Their tracebacks, asyncio's "Task exception
    was never retrieved" and multiprocessing's report of a worker that ended said nothing more, in 100 lines.
    Where SIGINT is ignored (a background job), it stays ignored."""
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        return

    def interrupted(signum, frame):
        silence()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupted)


def silence() -> None:
    """From here on, what this process would print to stderr of an interruption goes nowhere: the asyncio
    logger's "Task exception was never retrieved" (logged when an unfinished task is collected) and
    Python's own report of the exception that ends it."""
    import logging

    logging.getLogger("asyncio").disabled = True
    sys.stderr = open(os.devnull, "w")


def _ready_server(plans: dict[Path, dict]) -> None:
    """Before runbooks start side by side: the embedded server up and its database made once, here,
    when any of them would use it (no `database_url` given and no $DATABASE_URL)."""
    if os.environ.get("DATABASE_URL") or all(values.get("database_url") for values in plans.values()):
        return
    from . import embedded

    embedded.ensure_database()


def run(names: list[str], given: dict[str, str] | None = None, *, run_all: bool = False,
        out_dir: Path | None = None, on_done=None, jobs: int = 1) -> tuple[Path, list[NotebookRun]]:
    """Run the named runbooks (or all) into runs/<timestamp>-<random>/; returns the folder and each run.

    Every name and parameter is checked before anything runs. Parameters go to each notebook
    that declares them; a parameter that no chosen notebook declares is an error. With `jobs` > 1 the
    runbooks run side by side as their schedules allow (schedule.py): the results (and summary.json) keep
    the order they were named in.
    """
    from . import html_report

    given = given or {}
    if jobs < 1:
        raise ParameterError(f"jobs must be at least 1, not {jobs}")
    if run_all and names:  # not one or the other silently: `run 02 --all` would run the incident drills too
        raise ParameterError(f"name runbooks ({' '.join(names)}) or pass --all, not both")
    # a runbook named twice (02 and 02_enrollment_exploration) runs once: both would write one output
    notebooks = available() if run_all else list(dict.fromkeys(find(n) for n in names))
    if not notebooks:
        raise ParameterError(_none_here() if run_all else "name at least one runbook, or pass --all")
    declared = {nb: parameters(nb) for nb in notebooks}
    known = list(dict.fromkeys(name for d in declared.values() for name in d))
    for name in given:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            raise ParameterError(f"no chosen runbook has a parameter {name!r}"
                                 + (f" (did you mean {close[0]!r}?)" if close else "")
                                 + f"; their parameters: {', '.join(known) or 'none'}")
    plans = {nb: incident_values(nb, validate(nb, {k: v for k, v in given.items() if k in declared[nb]}))
             for nb in notebooks}
    if out_dir is None:  # unique: two runs started in the same second never share a folder
        out_dir = runs_dir() / f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        out_dir.mkdir(parents=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    by_notebook = {}
    if jobs > 1 and len(notebooks) > 1:
        _ready_server(plans)
        by_notebook = _side_by_side(plans, out_dir, jobs, on_done)
    else:  # one job: one after the other, as named, in this process
        for notebook in notebooks:
            by_notebook[notebook] = run_one(notebook, out_dir, plans[notebook])
            if on_done:
                on_done(by_notebook[notebook])
    results = [by_notebook[nb] for nb in notebooks]
    summary = {"started": out_dir.name, "ok": all(r.ok for r in results),
               "counts": status_counts([c for r in results for c in r.checks]),
               "notebooks": [{**asdict(r), "counts": r.counts} for r in results]}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    html_report.write_index(out_dir, summary)
    return out_dir, results
