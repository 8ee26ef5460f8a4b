"""The no-confirm fingerprint: every command and incident runbook that can change a database, run
without --confirm / confirm=True against a database named by a URL (someone's, not scratch), leaves
it byte for byte as it was: schema, every table's rows, and every role. (Runbooks 01-08 have the same
proof in test_verdicts.test_runbooks_without_confirm_skip_what_they_did_not_do.)"""

import shutil
import subprocess
import sys
import uuid

import pytest
from conftest import _create, _drop, cli_env, schema_dump
from psycopg import sql

from prep_ops import backup, checksums, db, migrate, seed
from prep_ops.paths import PACKAGE_DIR

ROLES = ("SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolconnlimit, "
         "rolpassword, rolvaliduntil::text, rolbypassrls FROM pg_authid ORDER BY rolname")


def _fingerprint(target: db.Target) -> tuple:
    with db.connect(target, autocommit=True) as conn:
        tables = checksums.table_checksums(conn)
        roles = conn.execute(ROLES).fetchall()
        grants = conn.execute("SELECT relname, relacl::text FROM pg_class WHERE relnamespace = 'public'::regnamespace "
                              "ORDER BY relname").fetchall()
    return schema_dump(target), tables, roles, grants


@pytest.fixture
def someones_database(server, tmp_path):
    """A seeded database with an application login role and a full backup of it; dropped after."""
    target = _create(server)
    app = f"t{uuid.uuid4().hex[:8]}_app"
    with db.connect(target, autocommit=True) as conn:
        migrate.apply(conn)
        seed.seed(conn, students=200, seed=5)
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CONNECTION LIMIT 7").format(sql.Identifier(app)))
        conn.execute(sql.SQL("GRANT SELECT, UPDATE ON ALL TABLES IN SCHEMA public TO {}").format(sql.Identifier(app)))
    taken = backup.backup(target, "full", "custom", directory=tmp_path / "backups")
    yield target, app, taken
    _drop(server, target)
    with db.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(app)))


def test_no_confirm_fingerprint_of_every_command_and_incident_runbook(someones_database, tmp_path):
    target, app, taken = someones_database
    env = cli_env(target, PREP_OPS_HOME=str(tmp_path), PREP_OPS_BACKUP_DIR=str(tmp_path / "backups"))
    env.pop("PREP_OPS_SCRATCH", None)  # named by a URL: someone's database
    shutil.copytree(PACKAGE_DIR.parent / "notebooks", tmp_path / "notebooks")
    before = _fingerprint(target)
    refused = {
        "migrate down": ["migrate", "--to", "0"],
        "seed": ["seed", "--students", "10"],
        "maintain": ["maintain"],
        "maintain --reindex": ["maintain", "--reindex", "--tables", "enrollments"],
        "roles apply": ["roles", "apply"],
        "restore": ["restore", str(taken.path)],
    }
    for what, args in refused.items():
        done = subprocess.run([sys.executable, "-m", "prep_ops", *args], capture_output=True, text=True, env=env,
                              timeout=600)
        assert done.returncode == 1 and "--confirm" in done.stderr, (what, done.stdout, done.stderr)
    for args in (["migrate"], ["integrity"], ["audit"], ["indexes"], ["health"], ["verify", str(taken.path)],
                 # the three drills side by side in one run, as `run --all` runs them (each parameter goes to the
                 # runbook that declares it); the fingerprint after it names the run, its log which runbook
                 ["run", "10", "11", "12", "-j", "2", "-p", "mode", "live", "-p", "app_role", app,
                  "-p", "backup_dir", str(tmp_path / "backups"), "-p", "suspect_role", app]):
        done = subprocess.run([sys.executable, "-m", "prep_ops", *args], capture_output=True, text=True, env=env,
                              timeout=900)
        assert "Traceback" not in done.stdout + done.stderr, (args, done.stderr)
        assert _fingerprint(target) == before, args  # checked after each, to name the one that changed it
