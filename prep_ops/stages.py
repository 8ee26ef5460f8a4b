"""The order of a run of several runbooks, and running it: which runbooks run first, side by side or
alone (`stages`, from each notebook's `prep_ops.schedule` metadata), and `run_stages`, which runs them
with each runbook's kernel started ahead of it (`warm_kernels`) and the side-by-side workers started
before the first stage (`side_by_side`)."""

import json
import os
from pathlib import Path

SCHEDULES = ("first", "parallel", "alone")


def schedule(notebook: Path) -> str:
    """When a runbook may run in `run -j N`, from its notebook metadata `prep_ops.schedule`:
    "first" (alone, before every other: 01 makes the data the others read), "parallel" (beside the
    other parallel ones: it reads the target or works in scratch databases and roles of its own), or
    "alone" (the default: it changes the target or watches the whole server, so it runs by itself,
    after the parallel ones)."""
    metadata = json.loads(Path(notebook).read_text(encoding="utf-8")).get("metadata", {})
    value = metadata.get("prep_ops", {}).get("schedule", "alone")
    return value if value in SCHEDULES else "alone"


def stages(notebooks: list[Path], jobs: int) -> list[list[Path]]:
    """The order of a run: lists run one after the other, the runbooks inside one list side by side.
    With one job, every runbook alone, in the order given; else the "first" ones alone, then the
    "parallel" ones together (longest first is not known: name order), then the "alone" ones one by one."""
    if jobs <= 1:
        return [[nb] for nb in notebooks]
    by = {kind: [nb for nb in notebooks if schedule(nb) == kind] for kind in SCHEDULES}
    return [[nb] for nb in by["first"]] + ([by["parallel"]] if by["parallel"] else []) + [[nb] for nb in by["alone"]]


def default_jobs() -> int:
    """`run -j`'s default: the cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def run_stages(order: list[list[Path]], plans: dict[Path, dict], out_dir: Path, jobs: int,
               on_done) -> tuple[dict, dict]:
    """Run the stages in order; returns each runbook's NotebookRun and each executed notebook's HTML page
    (rendered while the next runbook runs; see html_report.write_index). The kernel of the runbook that
    runs next in this process starts while one runs; the side-by-side workers start before the first
    stage. No kernel or worker outlives the run, whether it ends, fails or is interrupted (Ctrl-C;
    SIGTERM, which here raises SystemExit)."""
    import signal
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from .html_report import render_notebook
    from .runner import _skip_iri_grammar, kernel_environment, run_one
    from .side_by_side import Lanes, exit_on_sigterm
    from .warm_kernels import Spares

    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM)
    if main:
        exit_on_sigterm()
    spares, lanes, done = Spares(), None, {}
    # each executed notebook rendered as HTML (for index.html) in a thread, while the next runbook runs
    pages, rendering = ThreadPoolExecutor(max_workers=1), {}

    def finished(result) -> None:
        rendering[result.output] = pages.submit(render_notebook, Path(result.output))
        if on_done:
            on_done(result)

    together = [stage for stage in order if len(stage) > 1]
    try:
        if len(order[0]) == 1:  # its kernel boots while this process imports papermill
            spares.prepare(*kernel_environment(order[0][0], plans[order[0][0]]))
        if together:
            if len(order[0]) == 1:  # the first runbook's kernel ready before the workers take a core
                _skip_iri_grammar()
                import papermill  # noqa: F401

                spares.wait()
            lanes = Lanes(jobs, len(together[0]), together[0][0], plans[together[0][0]])
        for i, stage in enumerate(order):
            after = order[i + 1][0] if i + 1 < len(order) and len(order[i + 1]) == 1 else None
            then = (after, plans[after]) if after else None
            if len(stage) > 1:
                _ready_server({nb: plans[nb] for nb in stage})
                done |= lanes.run({nb: plans[nb] for nb in stage}, out_dir, finished, on_all_started=(
                    lambda: spares.prepare(*kernel_environment(*then))) if then else None)
                continue
            done[stage[0]] = run_one(stage[0], out_dir, plans[stage[0]], kernels=spares, then=then)
            finished(done[stage[0]])
    except BaseException:
        pages.shutdown(wait=True, cancel_futures=True)
        if lanes:
            lanes, stopping = None, lanes
            stopping.close(interrupted=True)
        raise
    finally:
        if lanes:
            lanes.close(interrupted=False)
        spares.close()
        pages.shutdown(wait=True)
        if main:
            signal.signal(signal.SIGTERM, previous)
    return done, {output: page.result() for output, page in rendering.items() if not page.exception()}


def _ready_server(plans: dict[Path, dict]) -> None:
    """Before runbooks start side by side: the embedded server up and its database made once, here,
    when any of them would use it (no `database_url` given and no $DATABASE_URL)."""
    if os.environ.get("DATABASE_URL") or all(values.get("database_url") for values in plans.values()):
        return
    from . import embedded

    embedded.ensure_database()
