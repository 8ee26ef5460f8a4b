"""The suite never touches the user's state: run part of it as a user would, then look."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest

from prep_ops.paths import PACKAGE_DIR

CHECKOUT = PACKAGE_DIR.parent
pytestmark = pytest.mark.server_independent  # the embedded servers' own isolation
# a part of the suite that starts embedded servers (the session's and private ones, and the session's
# verification cluster, which the verify test leaves running as a user's would be) and runs notebooks
SUBSET = ["tests/test_db.py", "tests/test_embedded.py", "tests/test_runner.py::test_passing_notebook_reports_its_checks",
          "tests/test_verify_cluster.py::test_verify_restores_into_the_private_cluster_without_durability"]


def _state(folder: Path) -> dict:
    """What the suite must not change in a project folder: every file under runs/ and backups/ with its
    size and modification time; under .prep_ops/ the data directories and which server each runs
    (their files change while a server of the user's own runs, so they are not compared)."""
    found = {}
    for name in ("runs", "backups"):
        top = folder / name
        found[name] = top.exists()
        for path in top.rglob("*") if top.is_dir() else ():
            if path.is_file() and not path.is_symlink():
                stat = path.stat()
                found[str(path)] = (stat.st_size, stat.st_mtime_ns)
    servers = folder / ".prep_ops"
    for path in sorted(servers.iterdir()) if servers.is_dir() else ():
        pid_file = path / "postmaster.pid"
        found[str(path)] = pid_file.read_text().split("\n", 1)[0] if pid_file.exists() else None
    return found


def _postmasters(*folders: Path) -> set[int]:
    """PIDs of the PostgreSQL servers running on this machine (postgres processes whose parent is not one)
    with their data directory (a postmaster's working directory) under one of `folders`: another test
    session running meanwhile (CI runs two, one per server) has its servers elsewhere."""
    pids = set()
    for proc in psutil.process_iter(["name", "ppid", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:  # stopped, waiting for a parent to reap it
                continue
            if proc.info["name"] == "postgres" and psutil.Process(proc.info["ppid"]).name() != "postgres":
                data = Path(proc.cwd()).resolve()
                if any(data.is_relative_to(folder.resolve()) for folder in folders):
                    pids.add(proc.pid)
        except psutil.Error:
            continue
    return pids


def test_the_suite_leaves_the_users_folders_and_servers_alone(tmp_path):
    user = tmp_path / "user-project"  # a user's own project folder, with state of its own
    for name, content in ((".prep_ops/pg18/PG_VERSION", "18"), ("runs/20260101-000000/summary.json", "{}"),
                          ("backups/unm_prep-full.dump", "backup")):
        (user / name).parent.mkdir(parents=True, exist_ok=True)
        (user / name).write_text(content)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREP_OPS_")}  # as the user's shell has it
    env["PREP_OPS_HOME"] = str(user)
    # the run's own folders (its session's project folder, pytest's temporary folders) go into a folder
    # of its own, so every server it could leave behind is found there (one the embedded servers' system
    # user can traverse, as /tmp)
    run_tmp = Path(tempfile.mkdtemp(prefix="poi-", dir="/tmp"))  # short: a socket path has at most 107 bytes
    run_tmp.chmod(0o755)
    env["TMPDIR"] = str(run_tmp)
    before = (_state(user), _state(CHECKOUT), _postmasters(user, CHECKOUT))

    try:
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SUBSET],
                                cwd=CHECKOUT, env=env, capture_output=True, text=True, timeout=900)
        left = _postmasters(user, run_tmp, CHECKOUT)
    finally:
        shutil.rmtree(run_tmp, ignore_errors=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout

    assert _state(user) == before[0], "the suite changed the user's .prep_ops/, runs/ or backups/"
    assert _state(CHECKOUT) == before[1], "the suite changed the checkout's .prep_ops/, runs/ or backups/"
    assert left <= before[2], "the suite left a PostgreSQL server running"
