"""Run runbooks headless with papermill into runs/<timestamp>-<random>/ and summarise their checks."""

import ast
import io
import json
import os
import secrets
import shutil
import sys
import time
import tokenize
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from .errors import ParameterError
from .paths import notebooks_dir, runs_dir
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


def parameters(notebook: Path) -> dict[str, dict]:
    """The notebook's parameters with their inferred type, default and help, as papermill's
    `inspect_notebook` gives them, read from the tagged cell without importing papermill or nbformat
    (which take seconds to import): each `name = default  # help` line of the parameters cell."""
    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not tagged:
        return {}
    source = "".join(tagged[0]["source"])
    comments = {tok.start[0]: tok.string.lstrip("#").strip()
                for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, annotation = node.targets[0].id, None
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, annotation = node.target.id, ast.get_source_segment(source, node.annotation)
        else:
            continue
        found[name] = {"name": name, "inferred_type_name": annotation or "None",
                       "default": ast.get_source_segment(source, node.value), "help": comments.get(node.end_lineno, "")}
    return found


def _coerce(raw: str):
    """The value of a default as written in a runbook's parameters cell (our own source, a Python literal)."""
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        lowered = raw.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        if lowered in ("none", "null"):
            return None
        return raw


_DATA = (str, int, float, bool, type(None))


def _is_data(value) -> bool:
    """Whether `value` is plain data papermill writes as a literal: str, numbers, bool, None, and lists
    and dicts of those (bytes, sets, tuples and objects it would paste into the code as they are)."""
    if isinstance(value, _DATA):
        return True
    if isinstance(value, list):
        return all(_is_data(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_data(v) for k, v in value.items())
    return False


def parse_value(raw: str):
    """A `-p` value as data, never code: true/false, none/null, else JSON (numbers, lists, objects,
    quoted strings), else the text itself. Never Python's literal_eval: b'…', sets and tuples are text."""
    lowered = raw.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def kind_of(default: str) -> str:
    """The type a parameter takes, from its default's source text: int, float, bool, str, or any."""
    value = _coerce(default)
    return "any" if value is None else type(value).__name__


def validate(notebook: Path, given: dict[str, str]) -> dict:
    """Parsed values for the `-p NAME VALUE` pairs given, or ParameterError naming the first bad one.

    A value must have the type of the parameter's default (an int default wants an int; a float
    default takes an int too; a str default takes any text); a None default takes anything.
    """
    declared = parameters(notebook)
    values = {}
    for name, raw in given.items():
        if name not in declared:
            known = ", ".join(declared) or "none"
            raise ParameterError(f"{notebook.stem} has no parameter {name!r}; its parameters: {known}")
        default = _coerce(declared[name]["default"])
        value = parse_value(raw) if isinstance(raw, str) else raw
        if not _is_data(value):
            raise ParameterError(f"{notebook.stem}: parameter {name} must be plain data (text, a number, true/false, "
                                 f"a list or an object), not {type(value).__name__}")
        if isinstance(default, str):
            value = raw if isinstance(raw, str) else str(raw)
        elif default is not None and value is not None:
            wanted = (int, float) if isinstance(default, float) else (type(default),)
            if not isinstance(value, wanted) or (isinstance(value, bool) and not isinstance(default, bool)):
                kind = type(default).__name__
                raise ParameterError(f"{notebook.stem}: parameter {name} must be {kind} like its default "
                                     f"{declared[name]['default']}, not {raw!r}")
        values[name] = value
    return values


def _checks_of(output: Path) -> list[dict]:
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


def _error_of(exc: Exception) -> str:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        return f"cell {exc.exec_count}: {exc.ename}: {str(exc.evalue).splitlines()[0] if exc.evalue else ''}"
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
        values["mode"] = _coerce(declared["mode"]["default"])
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


def run_one(notebook: Path, out_dir: Path, values: dict, *, timeout: int | None = 1800) -> NotebookRun:
    """Execute one runbook with papermill; never raises for a failure inside the notebook."""
    _skip_iri_grammar()
    import papermill

    from .db import mask_url

    values = incident_values(notebook, values)
    for name, value in values.items():  # papermill pastes other types into the code as they are
        if not _is_data(value):
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
        with _environment("DATABASE_URL", str(url) if secret_url else None), _environment("PREP_OPS_HEADLESS", "1"):
            papermill.execute_notebook(str(notebook), str(output), parameters=values, kernel_name="python3",
                                       cwd=str(notebook.parent), progress_bar=False, execution_timeout=timeout,
                                       # the kernel's start-up warnings are noise in a run's output
                                       extra_arguments=["--IPKernelApp.log_level=ERROR"])
    except Exception as exc:  # papermill raises for any failing cell; the run records it
        error = _error_of(exc)
    _beside_report(output, values)
    run = NotebookRun(notebook.stem, str(output), not error, time.perf_counter() - began, error, _checks_of(output),
                      _report_of(out_dir, values))
    if run.failed_checks:
        run.ok = False
    return run


def run(names: list[str], given: dict[str, str] | None = None, *, run_all: bool = False,
        out_dir: Path | None = None, on_done=None) -> tuple[Path, list[NotebookRun]]:
    """Run the named runbooks (or all) into runs/<timestamp>-<random>/; returns the folder and each run.

    Every name and parameter is checked before anything runs. Parameters go to each notebook
    that declares them; a parameter that no chosen notebook declares is an error.
    """
    from . import html_report

    given = given or {}
    notebooks = available() if run_all else [find(n) for n in names]
    if not notebooks:
        raise ParameterError("name at least one runbook, or pass --all")
    declared = {nb: parameters(nb) for nb in notebooks}
    for name in given:
        if not any(name in d for d in declared.values()):
            raise ParameterError(f"no chosen runbook has a parameter {name!r}")
    plans = [(nb, incident_values(nb, validate(nb, {k: v for k, v in given.items() if k in declared[nb]})))
             for nb in notebooks]
    if out_dir is None:  # unique: two runs started in the same second never share a folder
        out_dir = runs_dir() / f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        out_dir.mkdir(parents=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for notebook, values in plans:
        result = run_one(notebook, out_dir, values)
        results.append(result)
        if on_done:
            on_done(result)
    summary = {"started": out_dir.name, "ok": all(r.ok for r in results),
               "counts": status_counts([c for r in results for c in r.checks]),
               "notebooks": [{**asdict(r), "counts": r.counts} for r in results]}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    html_report.write_index(out_dir, summary)
    return out_dir, results
