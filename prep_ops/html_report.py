"""A run's HTML report: runs/<ts>/index.html with each runbook's status, time and checks, and beside it
each executed notebook rendered as HTML. Readable offline (no script from a CDN); every value from a
run is escaped (Jinja autoescape), so a check's detail or an error is text, never markup."""

import functools
import threading
from pathlib import Path

TEMPLATES = Path(__file__).parent / "templates"


_exporter_lock = threading.Lock()


@functools.cache
def _exporter():
    """One HTML exporter per process: a new one compiles nbconvert's templates again, about a quarter of
    a page's time (a profile of runbook 06's page: 0.47 of 2.2 s)."""
    from nbconvert import HTMLExporter

    return HTMLExporter(template_name="offline", extra_template_basedirs=[str(TEMPLATES)])


def render_notebook(executed: Path) -> Path | None:
    """The executed notebook as <name>.html beside it (JupyterLab's look, no CDN); None if it cannot be read."""
    import nbformat

    if not executed.exists():
        return None
    try:
        with _exporter_lock:  # the exporter keeps per-page filters while it renders one
            body, _ = _exporter().from_notebook_node(nbformat.read(executed, as_version=4))
    except (ValueError, OSError, nbformat.ValidationError):  # a notebook cut short by a kill
        return None
    html = executed.with_suffix(".html")
    html.write_text(body, encoding="utf-8")
    return html


def write_index(out_dir: Path, summary: dict) -> Path:
    """runs/<ts>/index.html for a run's summary (as in summary.json); renders each notebook beside it that
    its run did not render already (`html`, the page's file name)."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    notebooks = []
    for entry in summary["notebooks"]:
        if entry.get("html") and (Path(entry["output"]).parent / entry["html"]).exists():
            notebooks.append(entry)
            continue
        html = render_notebook(Path(entry["output"]))
        notebooks.append({**entry, "html": html.name if html else ""})
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    page = env.get_template("run_index.html.j2").render(**{**summary, "notebooks": notebooks})
    index = out_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
