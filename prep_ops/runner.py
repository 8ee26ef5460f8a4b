"""Run runbooks headless with papermill into runs/<timestamp>-<random>/ and summarise their checks."""

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

from .errors import ParameterError
from .parameters import default_value, is_data, kind_of, parameters, parse_value, validate  # noqa: F401 (runner.parameters etc. as before)
from .paths import notebooks_dir, runs_dir
from .stages import SCHEDULES, default_jobs, run_stages, schedule, stages  # noqa: F401 (runner.stages etc. as before)
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
    """The runbook called `name`: a path, a file name, a stem like 01_schema_setup, or its number."""
    path = Path(name)
    if path.suffix == ".ipynb" and path.exists():
        return path.resolve()
    for candidate in available():
        if name in (candidate.name, candidate.stem, candidate.stem.split("_")[0]):
            return candidate
    names = ", ".join(p.stem for p in available()) or "none"
    raise ParameterError(f"no runbook named {name!r}; available: {names}")


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
    return f"cell {cell}: {ename}: {(str(evalue or '').splitlines() or [''])[0]}"


def _error_of(exc: Exception) -> str:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        return cell_error(exc.exec_count, exc.ename, exc.evalue)
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def incident_values(notebook: Path, values: dict) -> dict:
    """For an incident runbook (one with an `incident_id` parameter): the values with an incident id
    (a new one unless given) and the mode (the notebook's default unless given)."""
    from .incident import record as incident

    declared = parameters(notebook)
    if "incident_id" not in declared:
        return values
    values = dict(values)
    if not values.get("incident_id"):
        kind = notebook.stem.split("_", 1)[-1].removeprefix("incident_").replace("_", "-")
        values["incident_id"] = incident.new_id(kind)
    incident.check_id(values["incident_id"])  # a name, never a path: checked before anything runs or is written
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
def _environment(changes: dict[str, str]):
    """The environment variables `changes` set for the kernels started inside, then as they were."""
    saved = {name: os.environ.get(name) for name in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _kernel_settings(notebook: Path, values: dict) -> tuple[dict, dict, str]:
    """papermill's parameters, and the environment changes and folder of the runbook's kernel: headless
    (progress bars are text, not widgets a saved notebook cannot show); a password in `database_url`
    goes by $DATABASE_URL, never into the parameters papermill writes into the executed notebook."""
    from .db import mask_url

    changes = {"PREP_OPS_HEADLESS": "1"}
    url = values.get("database_url")
    if url is not None and mask_url(str(url)) != str(url):
        values, changes["DATABASE_URL"] = {k: v for k, v in values.items() if k != "database_url"}, str(url)
    return values, changes, str(notebook.parent)


def kernel_environment(notebook: Path, values: dict) -> tuple[dict, str]:
    """The environment and folder a kernel for this runbook starts with now (as papermill would start it)."""
    _, changes, cwd = _kernel_settings(notebook, values)
    return {**os.environ, **changes}, cwd


def _skip_iri_grammar() -> None:
    """Importing nbformat (papermill, nbconvert) imports jsonschema's format checkers, and through them
    rfc3987_syntax, which builds an IRI grammar at import: 1.3 s of every run. No notebook schema uses
    the "iri" format, so that checker is left out (an import of None raises ImportError, which jsonschema
    expects of a missing optional package); nbformat still validates every notebook against its schema."""
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)


def run_one(notebook: Path, out_dir: Path, values: dict, *, timeout: int | None = 1800, kernels=None,
            then: tuple[Path, dict] | None = None) -> NotebookRun:
    """Execute one runbook with papermill; never raises for a failure inside the notebook. With `kernels`
    (warm_kernels.Spares) it runs in a kernel started ahead when one fits, and starts one for `then`
    (the runbook, and its values, that runs next in this process)."""
    _skip_iri_grammar()
    import papermill

    values = incident_values(notebook, values)
    for name, value in values.items():  # papermill pastes other types into the code as they are
        if not is_data(value):
            raise ParameterError(f"{notebook.stem}: parameter {name} must be plain data, not {type(value).__name__}")
    output = out_dir / notebook.name
    began = time.perf_counter()
    error = ""
    values_in, changes, cwd = _kernel_settings(notebook, values)
    kernel = kernels.take({**os.environ, **changes}, cwd) if kernels else None  # None: papermill starts one
    try:
        if kernels and then:
            kernels.prepare(*kernel_environment(*then))
        with _environment(changes):
            papermill.execute_notebook(str(notebook), str(output), parameters=values_in, kernel_name="python3",
                                       cwd=cwd, progress_bar=False, execution_timeout=timeout, km=kernel,
                                       # the kernel's start-up warnings are noise in a run's output
                                       extra_arguments=["--IPKernelApp.log_level=ERROR"])
    except Exception as exc:  # papermill raises for any failing cell; the run records it
        error = _error_of(exc)
    finally:
        if kernel is not None:
            kernels.finish(kernel)
    _beside_report(output, values)
    return NotebookRun(notebook.stem, str(output), not error, time.perf_counter() - began, error, checks_of(output),
                       _report_of(out_dir, values))


def run(names: list[str], given: dict[str, str] | None = None, *, run_all: bool = False,
        out_dir: Path | None = None, on_done=None, jobs: int = 1) -> tuple[Path, list[NotebookRun]]:
    """Run the named runbooks (or all) into runs/<timestamp>-<random>/; returns the folder and each run.

    Every name and parameter is checked before anything runs. Parameters go to each notebook
    that declares them; a parameter that no chosen notebook declares is an error. With `jobs` > 1 the
    runbooks run in `stages()`: the results (and summary.json) keep the order they were named in.
    """
    from . import html_report

    given = given or {}
    if jobs < 1:
        raise ParameterError(f"jobs must be at least 1, not {jobs}")
    notebooks = available() if run_all else [find(n) for n in names]
    if not notebooks:
        raise ParameterError("name at least one runbook, or pass --all")
    declared = {nb: parameters(nb) for nb in notebooks}
    for name in given:
        if not any(name in d for d in declared.values()):
            raise ParameterError(f"no chosen runbook has a parameter {name!r}")
    plans = {nb: incident_values(nb, validate(nb, {k: v for k, v in given.items() if k in declared[nb]}))
             for nb in notebooks}
    if out_dir is None:  # unique: two runs started in the same second never share a folder
        out_dir = runs_dir() / f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        out_dir.mkdir(parents=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    by_notebook, rendered = run_stages(stages(notebooks, jobs), plans, out_dir, jobs, on_done)
    results = [by_notebook[nb] for nb in notebooks]
    summary = {"started": out_dir.name, "ok": all(r.ok for r in results),
               "counts": status_counts([c for r in results for c in r.checks]),
               "notebooks": [{**asdict(r), "counts": r.counts} for r in results]}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    html_report.write_index(out_dir, summary, rendered)
    return out_dir, results
