import shutil
import threading
import time
import uuid

import pytest
from psycopg import sql
from conftest import _create, _drop, schema_dump, table_checksum, judge_as_elsewhere

from prep_ops import db, lock_watch, migrate, seed
from prep_ops.errors import ConfirmationRequired, MigrationError, PlanChanged

LATEST = migrate.latest_version()


@pytest.fixture
def conn(scratch):
    """An autocommit connection to the scratch database, as a CLI command or a notebook opens it."""
    with db.connect(scratch, autocommit=True) as connection:
        yield connection


@pytest.fixture
def not_scratch(monkeypatch):
    """Connections to the embedded server judged as to any other server: changes need confirm."""
    judge_as_elsewhere(monkeypatch)  # as on a server someone named by a URL


def test_latest_records_every_version(conn):
    steps = migrate.apply(conn)
    assert [s.version for s in steps] == [m.version for m in migrate.discover()]
    rows = conn.execute("SELECT version, description FROM schema_version ORDER BY version").fetchall()
    assert [r[0] for r in rows] == [s.version for s in steps]
    assert rows[0][1].startswith("The schema of the operations guide")
    assert migrate.apply(conn) == []  # nothing left to do


def test_latest_version_is_the_newest_file():
    assert LATEST == max(m.version for m in migrate.discover()) >= 7


def test_apply_leaves_the_connection_as_it_found_it(conn):
    migrate.apply(conn)
    assert conn.autocommit and conn.info.transaction_status == db.psycopg.pq.TransactionStatus.IDLE
    held = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()")
    assert held.fetchone()[0] == 0  # the advisory lock is released


def test_migration_1_is_the_guides_schema(conn):
    migrate.apply(conn, to=1)
    columns = conn.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name <> 'prep_ops_migrations' ORDER BY 1, ordinal_position"
    ).fetchall()
    assert ("teachers", "availability", "json") in columns
    assert ("schema_version", "description", "text") in columns
    assert {t for t, _, _ in columns} == {"users", "students", "teachers", "courses", "schema_version"}


def test_down_to_zero_and_up_again_gives_the_same_schema(scratch, conn):
    migrate.apply(conn)
    before = schema_dump(scratch)
    assert [s.direction for s in migrate.apply(conn, to=0)] == ["down"] * len(migrate.discover())
    assert migrate.current_version(conn) == 0
    migrate.apply(conn)
    assert schema_dump(scratch) == before


def test_down_to_zero_leaves_only_the_bookkeeping_table(conn):
    migrate.apply(conn)
    migrate.apply(conn, to=0)
    schemas = [r[0] for r in conn.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname NOT IN ('public', 'information_schema') "
        "AND nspname !~ '^pg_' ORDER BY 1")]
    relations = [tuple(r) for r in conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname !~ '^pg_toast' ORDER BY 1, 2")]
    functions = conn.execute("SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                             "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')").fetchone()[0]
    assert schemas == [] and relations == [("public", "prep_ops_migrations")] and functions == 0


def test_the_audit_log_and_masking_schemas_come_from_migrations(conn):
    migrate.apply(conn, to=5)
    assert conn.execute("SELECT to_regclass('audit.log'), to_regnamespace('masked')").fetchone() == (None, None)
    assert [s.name for s in migrate.apply(conn)] == ["audit_log", "masking", "masking_search_path", "audit_log_casts"]
    assert conn.execute("SELECT to_regclass('audit.log') IS NOT NULL, to_regprocedure('audit.log_change()') IS NOT NULL, "
                        "(SELECT count(*) FROM masking_private.salt), to_regnamespace('masked') IS NOT NULL").fetchone() \
        == (True, True, 1, True)


def test_plan_changes_nothing(scratch, conn):
    migrate.apply(conn, to=2)
    before = schema_dump(scratch)
    steps = migrate.plan(conn)
    assert [s.version for s in steps] == list(range(3, LATEST + 1)) and "CREATE TABLE enrollments" in steps[0].sql
    assert [s.direction for s in migrate.plan(conn, to=0)] == ["down", "down"]
    assert schema_dump(scratch) == before


def test_script_shows_each_step_and_how_many(conn):
    migrate.apply(conn, to=2)
    text = migrate.script(migrate.plan(conn, to=0))
    assert text.startswith("-- down 0002_guide_indexes\nALTER TABLE teachers DROP CONSTRAINT")
    assert "\n-- down 0001_initial\nDROP TABLE courses;" in text and text.endswith("\n-- 2 step(s)")
    assert migrate.script([]) == "-- nothing to do"


def test_unknown_version_is_refused(conn):
    with pytest.raises(MigrationError, match="no migration 99"):
        migrate.plan(conn, to=99)


def test_apply_outside_a_scratch_database_needs_confirm(conn, not_scratch):
    with pytest.raises(ConfirmationRequired, match="not a scratch database and migrating"):
        migrate.apply(conn)
    assert migrate.current_version(conn) == 0
    assert migrate.apply(conn, to=1, confirm=True)
    assert migrate.apply(conn, to=1) == []  # nothing to do needs no confirm


def test_down_migration_over_rows_needs_confirm_even_on_scratch(conn):
    migrate.apply(conn)
    seed.seed(conn, students=20, seed=1)
    with pytest.raises(ConfirmationRequired, match="may drop data .* rows in the school's tables"):
        migrate.apply(conn, to=LATEST - 1)
    assert migrate.current_version(conn) == LATEST
    assert [s.version for s in migrate.apply(conn, to=LATEST - 1, confirm=True)] == [LATEST]


def test_down_migration_over_audit_log_entries_needs_confirm_even_on_scratch(conn):
    """The school's tables emptied (by the very breach the log recorded, say): the audit log still holds the
    evidence, and a down migration past 0006 drops its schema, so it needs confirm as rows do."""
    from prep_ops import audit_log

    migrate.apply(conn)
    audit_log.enable(conn)
    conn.execute("INSERT INTO users (username, email, role) VALUES ('ana', 'ana@unm.edu', 'student')")
    conn.execute("DELETE FROM users")
    with pytest.raises(ConfirmationRequired, match=r"may drop data \(2 entries of the audit log\)"):
        migrate.apply(conn, to=5)
    assert migrate.current_version(conn) == LATEST
    assert conn.execute("SELECT count(*) FROM audit.log").fetchone()[0] == 2


def test_a_down_migration_leaves_the_views_of_a_masked_schema_prep_ops_did_not_make(conn):
    """Below migration 0007 a schema called masked is the database's own: a down migration never drops its views."""
    migrate.apply(conn, to=6)
    conn.execute("CREATE SCHEMA masked")
    conn.execute("CREATE VIEW masked.\"Quarterly report\" AS SELECT 1 AS total")
    migrate.apply(conn, to=5)
    assert conn.execute("SELECT to_regclass('masked.\"Quarterly report\"')").fetchone()[0] is not None


def test_dropping_the_masked_views_goes_through_the_guard(conn, not_scratch):
    migrate.apply(conn, confirm=True)
    conn.execute("CREATE VIEW masked.users AS SELECT id FROM users")
    with pytest.raises(ConfirmationRequired, match="dropping the masked views"):
        migrate._drop_derived(conn, confirm=False)
    assert conn.execute("SELECT to_regclass('masked.users')").fetchone()[0] is not None
    with pytest.raises(ConfirmationRequired):
        migrate.apply(conn, to=3)
    assert conn.execute("SELECT to_regclass('masked.users')").fetchone()[0] is not None
    assert migrate._drop_derived(conn, confirm=True) == ["users"]
    assert conn.execute("SELECT to_regclass('masked.users')").fetchone()[0] is None


@pytest.fixture
def migrations_copy(tmp_path):
    directory = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, directory)
    return directory


def test_broken_migration_leaves_no_trace(migrated, migrations_copy):
    broken = f"{LATEST + 1:04d}_broken"
    with db.connect(migrated, autocommit=True) as conn:
        seed.seed(conn, students=50, seed=1)
    (migrations_copy / f"{broken}.up.sql").write_text(
        "-- half good, half broken\nALTER TABLE users ADD COLUMN nickname TEXT;\n"
        "UPDATE users SET nickname = 'x';\nSELECT no_such_function();\n")
    (migrations_copy / f"{broken}.down.sql").write_text("ALTER TABLE users DROP COLUMN nickname;\n")
    schema_before, users_before = schema_dump(migrated), table_checksum(migrated, "users")
    versions_before = table_checksum(migrated, "schema_version")
    with db.connect(migrated, autocommit=True) as conn, pytest.raises(MigrationError, match=f"{broken}.*rolled back"):
        migrate.apply(conn, directory=migrations_copy)
    assert schema_dump(migrated) == schema_before
    assert table_checksum(migrated, "users") == users_before
    assert table_checksum(migrated, "schema_version") == versions_before


def test_edited_applied_migration_is_refused_by_name(conn, migrations_copy):
    migrate.apply(conn, to=3, directory=migrations_copy)
    path = migrations_copy / "0002_guide_indexes.up.sql"
    path.write_text(path.read_text() + "\nCREATE INDEX sneaky ON users(role);\n")
    with pytest.raises(MigrationError, match="0002_guide_indexes was edited"):
        migrate.apply(conn, directory=migrations_copy)
    assert migrate.current_version(conn) == 3
    assert [s.changed for s in migrate.status(conn, migrations_copy)][:3] == [False, True, False]


def test_edited_down_migration_is_refused_by_name(conn, migrations_copy):
    migrate.apply(conn, directory=migrations_copy)
    seed.seed(conn, students=20, seed=1)
    payments = conn.execute("SELECT count(*) FROM tuition_payments").fetchone()[0]
    assert payments > 0
    path = migrations_copy / "0004_payments_profiles.down.sql"
    path.write_text(path.read_text() + "\nDELETE FROM tuition_payments;\n")
    with pytest.raises(MigrationError, match=r"down file 0004_payments_profiles\.down\.sql .* was edited"):
        migrate.apply(conn, to=3, directory=migrations_copy, confirm=True)
    assert migrate.current_version(conn) == LATEST  # nothing ran, not even the steps above 4
    assert conn.execute("SELECT count(*) FROM tuition_payments").fetchone()[0] == payments
    assert [s.changed for s in migrate.status(conn, migrations_copy)][2:5] == [False, True, False]
    with pytest.raises(MigrationError, match="0004_payments_profiles.down.sql"):
        migrate.plan(conn, to=3, directory=migrations_copy)  # the plan refuses it too


def test_down_checksums_of_a_database_migrated_before_are_recorded_on_the_next_migrate(conn, migrations_copy, not_scratch):
    migrate.apply(conn, directory=migrations_copy, confirm=True)
    conn.execute("ALTER TABLE prep_ops_migrations DROP COLUMN down_sha256")  # as an older prep-ops left it
    path = migrations_copy / "0004_payments_profiles.down.sql"
    original = path.read_text()
    assert not any(s.changed for s in migrate.status(conn, migrations_copy))  # nothing to compare with yet
    assert migrate.apply(conn, directory=migrations_copy) == []  # not scratch, no confirm: changes nothing
    assert not migrate._has_down_checksums(conn)
    assert migrate.apply(conn, directory=migrations_copy, confirm=True) == []  # allowed: records them
    recorded = dict(conn.execute("SELECT version, down_sha256 FROM prep_ops_migrations").fetchall())
    assert recorded == {m.version: m.down_sha256 for m in migrate.discover(migrations_copy)}
    path.write_text(original + "\nDELETE FROM tuition_payments;\n")
    with pytest.raises(MigrationError, match="0004_payments_profiles.down.sql"):
        migrate.apply(conn, to=3, directory=migrations_copy, confirm=True)
    assert migrate.current_version(conn) == LATEST


def test_concurrent_runs_do_not_interleave(scratch):
    results, errors = [], []

    def run():
        try:
            with db.connect(scratch, autocommit=True) as conn:
                results.append(migrate.apply(conn))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # each migration ran exactly once, in one of the runs
    assert sorted(s.version for steps in results for s in steps) == [m.version for m in migrate.discover()]
    with db.connect(scratch, autocommit=True) as conn:
        assert migrate.current_version(conn) == LATEST


def test_down_to_zero_works_after_masked_views_and_audit_triggers(migrated):
    from prep_ops import audit_log, masking, roles

    role_set = roles.RoleSet.with_prefix(f"prep_ops_mig_{uuid.uuid4().hex[:6]}_")
    with db.connect(migrated, autocommit=True) as conn:
        seed.seed(conn, students=50, seed=2)
        roles.apply(conn, role_set)
        try:
            masking.apply(conn, role_set)
            audit_log.enable(conn)
            assert masking.views(conn)
            migrate.apply(conn, to=0, confirm=True)  # over rows: confirmed
            assert migrate.current_version(conn) == 0 and masking.views(conn) == []
            migrate.apply(conn)
            assert migrate.current_version(conn) == LATEST
        finally:
            roles.drop(conn, role_set)


def test_a_down_step_that_fails_says_where_the_schema_stands(migrated, migrations_copy):
    with db.connect(migrated, autocommit=True) as conn:  # something the down migrations do not know depends on a column
        conn.execute("CREATE VIEW private_recordings AS SELECT id, audition_recording FROM students")
        with pytest.raises(MigrationError) as failed:
            migrate.apply(conn, to=0, directory=migrations_copy)
        message = str(failed.value)
        assert "0004_payments_profiles (down) failed" in message and "private_recordings depends on" in message
        before = LATEST - 4  # the down steps of LATEST..5
        assert f"the {before} step(s) before it stayed done, so the schema is at version 4" in message
        assert migrate.current_version(conn) == 4


def test_a_database_whose_search_path_names_another_schema_first_is_migrated_into_public(scratch):
    """ALTER DATABASE x SET search_path = app: the migrations' unqualified CREATE TABLE users made the school's
    tables and schema_version in app, and the next status read public.schema_version: "schema at version 0",
    every migration pending again. The school's schema is public's whatever the path; a schema_version of
    app's (another tool's) is neither read nor written."""
    with db.connect(scratch, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA app; CREATE TABLE app.schema_version (version varchar(50), description text);"
                     " INSERT INTO app.schema_version VALUES ('1.1', 'flyway')")
        conn.execute(sql.SQL("ALTER DATABASE {} SET search_path = app").format(sql.Identifier(scratch.database)))
    with db.connect(scratch, autocommit=True) as conn:
        done = migrate.apply(conn, confirm=True)
        assert done and migrate.current_version(conn) == migrate.latest_version()
        assert migrate.plan(conn) == []
        assert conn.execute("SELECT to_regclass('public.users') IS NOT NULL AND to_regclass('app.users') IS NULL").fetchone()[0]
        assert conn.execute("SELECT array_agg(version) FROM app.schema_version").fetchone()[0] == ["1.1"]
        assert conn.execute("SHOW search_path").fetchone()[0] == "app"  # the session's own path, as it was
        migrate.apply(conn, 0, confirm=True)
        assert migrate.current_version(conn) == 0 and conn.execute("SELECT to_regclass('public.users')").fetchone()[0] is None


def test_sample_data_goes_into_public_whatever_the_search_path(scratch):
    """The seed's COPY and TRUNCATE named the school's tables unqualified: with search_path = app they
    were looked for in app."""
    with db.connect(scratch, autocommit=True) as conn:
        migrate.apply(conn, confirm=True)
        conn.execute("CREATE SCHEMA app")
        conn.execute(sql.SQL("ALTER DATABASE {} SET search_path = app").format(sql.Identifier(scratch.database)))
    with db.connect(scratch, autocommit=True) as conn:
        result = seed.seed(conn, students=20, seed=3, confirm=True)
        assert result.rows["students"] == 20
        assert conn.execute("SELECT count(*) FROM public.students").fetchone()[0] == 20
        assert conn.execute("SHOW search_path").fetchone()[0] == "app"


def test_a_deployment_runs_only_the_migrations_its_copy_ran_never_a_to_version_changed_since(conn, server):
    """Runbook 07 in JupyterLab: steps 1 to 3 backed up the target and tested the pending migrations (to the
    latest) on a copy; then to_version was set to 5 and only step 5's cell run again. The target was migrated
    to 5, a plan never shown, backed up for or tested, and 'target migrated' FAILed after the fact; a to_version
    below the target's took it down, confirmed, dropping tables. Now nothing runs and the error says why."""
    migrate.apply(conn, 3)
    copy = _create(server)
    try:
        with db.connect(copy, autocommit=True) as on_copy:
            migrate.apply(on_copy, 3)
            tried = migrate.apply(on_copy, None, confirm=True)
        assert [s.version for s in tried] == list(range(4, LATEST + 1))
        for changed in (5, 2):  # up to a version not tested, and down
            with pytest.raises(PlanChanged, match=rf"^the migrations to run now \((up|down) 000\d.*\) are not the ones "
                                                     rf"tested on the copy \(up 0004, .*\): nothing ran; plan, back up and test again"):
                migrate.apply(conn, changed, confirm=True, tested=tried)
            assert migrate.current_version(conn) == 3
        assert migrate.apply(conn, None, confirm=True, tested=tried) == tried
        assert migrate.apply(conn, None, confirm=True, tested=tried) == []  # run again: already applied, nothing runs
        with pytest.raises(PlanChanged, match=r"are not the ones tested on the copy"):
            migrate.apply(conn, 5, confirm=True, tested=tried)  # the cell run again after to_version changed
        assert migrate.current_version(conn) == LATEST
    finally:
        _drop(server, copy)


def test_a_step_behind_a_long_transaction_gives_up_after_its_lock_wait_naming_the_session_and_changes_nothing(
        scratch, monkeypatch):
    """A migration's CREATE INDEX or ALTER TABLE queued behind an application's open transaction waited for as
    long as it lasted, and every later query of that table queued behind the migration: the application
    stalled for the length of the deployment's wait. A step now waits lock_watch.DDL_LOCK_WAIT at most (where the
    session sets no lock_timeout of its own), rolls back, and names the session holding the table."""
    with db.connect(scratch, autocommit=True) as conn:
        migrate.apply(conn, 1, confirm=True)
    monkeypatch.setattr(lock_watch, "DDL_LOCK_WAIT", "1s")
    with db.connect(scratch, application_name="long-writer") as writer:
        writer.execute("INSERT INTO users (username, email, role) VALUES ('a', 'a@example.org', 'student')")
        pid = writer.info.backend_pid  # its transaction stays open: ROW EXCLUSIVE on users, which CREATE INDEX waits for
        with db.connect(scratch, autocommit=True) as conn:
            with pytest.raises(MigrationError) as caught:
                migrate.apply(conn, 2, confirm=True)
            assert conn.execute("SHOW lock_timeout").fetchone()[0] == "0"  # the session's setting as it was
            assert migrate.current_version(conn) == 1
            assert conn.execute("SELECT count(*) FROM pg_indexes WHERE indexname = 'idx_users_email'").fetchone()[0] == 0
        writer.rollback()
    text = str(caught.value)
    assert text.startswith("migration 0002_guide_indexes (up) failed: it waited 1s for a lock another session holds"), text
    assert f"public.users by pid {pid} (application long-writer" in text and "idle in transaction" in text, text
    assert f"pg_terminate_backend({pid})" in text and text.endswith("this step was rolled back"), text


def test_reading_the_version_behind_another_sessions_exclusive_lock_gives_up_in_one_line_instead_of_waiting(migrated):
    """Runbook 06's first step (and every runbook reading the schema version) waited for as long as another
    session held schema_version locked (a VACUUM FULL, a migration elsewhere). It waits db.LOCK_WAIT at most."""
    from conftest import held_exclusive
    from prep_ops.errors import LockBusy

    with held_exclusive(migrated, "schema_version", at_most=60), db.connect(migrated, autocommit=True) as conn:
        started = time.monotonic()
        with pytest.raises(LockBusy, match=r"^the schema version \(schema_version, prep_ops_migrations\) could not be read"):
            migrate.current_version(conn)
        assert time.monotonic() - started < 30
        assert conn.execute("SHOW lock_timeout").fetchone()[0] == "0"
