"""Runbooks side by side in worker processes, started ahead: `Lanes(...)` spawns the workers at once (the
runner makes it before the runbook that runs first), and each worker starts a warm kernel (see
`warm_kernels`) and imports papermill while that runbook runs; a worker that takes a runbook starts
the next warm kernel while there are runbooks no worker has started. `close()` ends the workers: their
spare kernels are killed on the way out; after an interrupt (Ctrl-C, SIGTERM) the workers are sent
SIGTERM, which ends their runbooks as an interrupt ends one in the main process.
"""

import atexit
import multiprocessing
import signal
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

_spares = None  # in a worker: its warm kernels
_left = None  # in a worker: shared count of the runbooks no worker has started yet


def exit_on_sigterm() -> None:
    """SIGTERM raises SystemExit in this (main) thread, so that `finally` blocks stop what they started."""
    def _exit(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: the clean-up runs without a second one
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)


def _start_worker(notebook: Path, values: dict, left) -> None:
    global _spares, _left
    from . import runner, warm_kernels

    exit_on_sigterm()
    _spares, _left = warm_kernels.Spares(), left
    atexit.register(_spares.close)  # a worker ends by returning: its spare kernels go with it
    # the environment as this worker has it (what a cold start here gets: a C library such as readline may
    # have set variables in the parent's process environment that its os.environ does not show)
    _spares.prepare(*runner.kernel_environment(notebook, values))
    runner._skip_iri_grammar()
    import papermill  # noqa: F401 (imported while the kernel boots, not by the first runbook here)


def _started() -> None:
    """A task that only makes the pool spawn a worker (each worker's start runs `_start_worker`)."""


def _run(notebook: Path, out_dir: Path, values: dict):
    from .runner import run_one

    with _left.get_lock():
        _left.value -= 1
        more = _left.value > 0
    return run_one(notebook, out_dir, values, kernels=_spares, then=(notebook, values) if more else None)


class Lanes:
    """Up to `jobs` worker processes, spawned now, whose first kernels are started for `notebook` with
    `values` (as the runbooks to come are started; one that differs starts cold)."""

    def __init__(self, jobs: int, runbooks: int, notebook: Path, values: dict):
        context = multiprocessing.get_context("spawn")  # a worker starts clean: no inherited connections
        self._left = context.Value("i", runbooks)
        self.jobs = min(jobs, runbooks)
        self._workers = []
        self._pool = ProcessPoolExecutor(max_workers=self.jobs, mp_context=context, initializer=_start_worker,
                                         initargs=(notebook, values, self._left))
        for _ in range(self.jobs):  # the pool spawns a worker per task while none is idle
            self._pool.submit(_started)

    def run(self, plans: dict[Path, dict], out_dir: Path, on_done, on_all_started=None) -> dict:
        """Run the planned runbooks in the workers, then let the workers end (in the background);
        `on_all_started()` is called once no runbook waits for a worker."""
        from .runner import NotebookRun, _error_of

        done = {}
        if on_all_started and len(plans) <= self.jobs:
            on_all_started()
        futures = {self._pool.submit(_run, notebook, out_dir, values): notebook for notebook, values in plans.items()}
        for future in as_completed(futures):
            notebook = futures[future]
            try:
                result = future.result()
            except Exception as exc:  # a worker that died (killed, out of memory): that runbook failed, not the run
                result = NotebookRun(notebook.stem, str(out_dir / notebook.name), False, 0.0, _error_of(exc))
            done[notebook] = result
            if on_done:
                on_done(result)
            if on_all_started and len(done) == len(plans) - self.jobs:
                on_all_started()
        self._workers = self._processes()
        self._pool.shutdown(wait=False)  # no more runbooks: the workers end while the next stage runs
        return done

    def _processes(self) -> list:
        return list((getattr(self._pool, "_processes", None) or {}).values())  # the executor's own table

    def close(self, interrupted: bool) -> None:
        """End the workers: after their runbooks when the run ended normally, else at once."""
        workers = self._processes() or self._workers
        self._pool.shutdown(wait=not interrupted, cancel_futures=interrupted)
        for worker in workers:
            if interrupted and worker.is_alive():
                worker.terminate()  # SIGTERM: SystemExit in the worker; its kernels are shut down on the way
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()  # its warm kernels die with it (parent-death signal)
                worker.join(timeout=5)
