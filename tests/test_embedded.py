"""The embedded server in a private data directory, so the shared one is never stopped."""

import time

import pytest

from prep_ops import db, embedded
from prep_ops.errors import TargetError


@pytest.fixture
def private_server(tmp_path, monkeypatch):
    monkeypatch.setenv("PREP_OPS_DATA_DIR", str(tmp_path / "pgdata"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    yield tmp_path / "pgdata"
    embedded.stop()


def test_starts_on_first_use_and_restarts_fast(private_server):
    assert not embedded.status().running
    target = db.resolve_target()  # first use: initdb and start
    assert embedded.status().running and target.embedded
    with db.connect(target) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == embedded.DATABASE
    assert embedded.stop()
    assert not embedded.status().running
    began = time.perf_counter()
    embedded.start()  # already initialised: a warm start
    assert time.perf_counter() - began < 1.0
    assert embedded.status().running


def test_stays_up_after_the_process_that_started_it_exits(private_server):
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", "from prep_ops import db; db.resolve_target()"], check=True)
    assert embedded.status().running


def test_stop_when_not_running_says_so(private_server):
    assert embedded.stop() is False


def test_unsupported_version_is_refused(monkeypatch):
    monkeypatch.setenv("PREP_OPS_PG_VERSION", "12")
    with pytest.raises(TargetError, match="must be one of"):
        embedded.pg_version()
