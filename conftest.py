"""The test session's own project folder, for the tests and the notebooks nbval runs alike.

PREP_OPS_HOME points at a temporary folder (the checkout's runbooks and sample data linked in), so the
session has its own embedded server, `runs/` and `backups/`: the user's `.prep_ops/`, `runs/` and
`backups/` are never touched. Kernels started by nbval and CLI runs inherit the environment. When the
session ends, its embedded server is stopped and the folder removed.
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from prep_ops import embedded
from prep_ops.paths import PACKAGE_DIR

CHECKOUT = PACKAGE_DIR.parent
_ISOLATION = ("PREP_OPS_HOME", "PREP_OPS_DATA_DIR", "PREP_OPS_BACKUP_DIR")


def _kernel_start_retried() -> None:
    """nbval's kernel start, tried up to three times where the kernel dies or does not answer before it is
    ready (seen twice in CI, stop 27, at the start of a pass while three sessions start their kernels:
    "Kernel died before replying to kernel_info", with nbval sending the kernel's stderr to /dev/null; and
    once in stop 28, runbook 03's kernel on PostgreSQL 15's pass: "Kernel didn't respond in 300 seconds",
    the runbooks before and after it fine). Only the start is tried again, never a cell; nbval shuts the
    kernel that failed down, and its stderr is shown as a warning, so the cause reaches the log."""
    import warnings

    import nbval.kernel

    start = nbval.kernel.start_new_kernel

    def start_new_kernel(startup_timeout=60, kernel_name="python", **kwargs):
        for attempt in range(1, 4):
            log = tempfile.NamedTemporaryFile("w+", prefix="prep-ops-kernel-", suffix=".log", delete=False)
            try:
                return start(startup_timeout=startup_timeout, kernel_name=kernel_name, **{**kwargs, "stderr": log})
            except RuntimeError as exc:  # "Kernel died before replying", "Kernel didn't respond in 300 seconds"
                if not ("died" in str(exc) or "didn't respond" in str(exc)) or attempt == 3:
                    raise
                log.flush()
                warnings.warn(f"nbval's kernel did not start ({exc}; attempt {attempt} of 3), started again; "
                              f"its stderr: {Path(log.name).read_text()[-2000:]!r}", stacklevel=1)
            finally:
                log.close()  # the kernel holds its own descriptor
                os.unlink(log.name)

    nbval.kernel.start_new_kernel = start_new_kernel


def pytest_configure(config):
    """Move the session into its own project folder before anything resolves a path or a server."""
    _kernel_start_retried()
    home = Path(tempfile.mkdtemp(prefix="prep-ops-tests-"))
    for shared in ("notebooks", "data"):
        (home / shared).symlink_to(CHECKOUT / shared, target_is_directory=True)
    config._prep_ops_saved_env = {name: os.environ.get(name) for name in _ISOLATION}
    config._prep_ops_home = home
    os.environ["PREP_OPS_HOME"] = str(home)
    # fixed here, so a test that moves PREP_OPS_HOME still shares the session's one embedded server
    os.environ["PREP_OPS_DATA_DIR"] = str(home / ".prep_ops" / "pg18")
    os.environ.pop("PREP_OPS_BACKUP_DIR", None)


def _runbook_of(item) -> str | None:
    """The runbook (stem) an nbval cell item belongs to; None for every other test."""
    path = Path(str(getattr(item, "path", "")))
    return path.stem if type(item).__name__ == "IPyNbCell" and path.parent == CHECKOUT / "notebooks" else None


def pytest_collection_modifyitems(session, config, items):
    """The runbooks' nbval pass first: the tests that look at a runbook's default run then read that run
    (`runbook_run` in tests/conftest.py), so each runbook executes once per server."""
    items.sort(key=lambda item: _runbook_of(item) is None)  # stable: each group keeps its order


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each runbook cell's outputs as nbval executed them, in order, with the time it took."""
    yield
    runbook = _runbook_of(item)
    if runbook is None or call.when != "call":
        return
    runs = item.config.__dict__.setdefault("_prep_ops_nbval_runs", {})
    run = runs.setdefault(runbook, {"outputs": [], "seconds": 0.0})
    run["outputs"].append([dict(output) for output in (item.test_outputs or [])])
    run["seconds"] += call.duration


def pytest_unconfigure(config):
    """Stop the session's embedded server, remove its folder, and give the environment back."""
    home = getattr(config, "_prep_ops_home", None)
    if home is None:
        return
    try:
        embedded.stop()
    finally:
        shutil.rmtree(home, ignore_errors=True)
        for name, value in config._prep_ops_saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
