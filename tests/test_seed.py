import filecmp

import pytest
from conftest import table_checksum, judge_as_elsewhere

from prep_ops import catalog, db, migrate, sample, seed
from prep_ops.errors import (ConfirmationRequired, ForeignTriggerError, MigrationError, ParameterError, PrepOpsError,
                           SampleDataError)
from prep_ops.paths import project_dir


@pytest.fixture
def conn(scratch):
    with db.connect(scratch, autocommit=True) as connection:
        yield connection


@pytest.fixture(scope="module")
def seeded_conn(seeded):
    with db.connect(seeded, autocommit=True) as connection:
        yield connection


def test_loads_every_table_and_honours_constraints(seeded_conn):
    counts = seed.row_counts(seeded_conn)
    assert counts["students"] == 300
    assert counts["teachers"] == sample.Plan(300, 7).teachers
    assert counts["users"] == 300 + counts["teachers"] + sample.ADMINS
    assert counts["enrollments"] > 300 and counts["tuition_payments"] > 0


def test_statuses_include_waitlisted_and_dropped(seeded_conn):
    from prep_ops import explore

    statuses = set(explore.by_term(seeded_conn).columns)
    assert {"enrolled", "waitlisted", "dropped", "completed"} <= statuses


def test_same_seed_same_data_other_seed_other_data(migrated, owner):
    seed.seed(owner, students=120, seed=5)
    first = {t: table_checksum(migrated, t) for t in seed.TABLES}
    seed.seed(owner, students=120, seed=5, replace=True)
    assert {t: table_checksum(migrated, t) for t in seed.TABLES} == first
    seed.seed(owner, students=120, seed=6, replace=True)
    assert table_checksum(migrated, "students") != first["students"]


def test_chunking_does_not_change_the_data(monkeypatch):
    plan = sample.Plan(2500, 3)
    staff = sample.staff(plan)
    courses = sample.course_index(staff["_instrument"])

    def generate():
        return [sample.copy_text(t, cols) for a, b in plan.chunks()
                for t, cols in sample.students_chunk(plan, a, b, courses).items() if t == "students"]

    whole = b"".join(generate())
    assert len(plan.chunks()) == 1
    monkeypatch.setattr(sample, "CHUNK_STUDENTS", 1000)
    assert len(plan.chunks()) == 3
    assert b"".join(generate()) == whole


def test_several_chunks_load_through_the_worker(owner, monkeypatch):
    monkeypatch.setattr(sample, "CHUNK_STUDENTS", 1000)
    result = seed.seed(owner, students=2500, seed=9)
    assert result.rows["students"] == 2500 == seed.row_counts(owner)["students"]
    assert owner.autocommit and owner.info.transaction_status == db.psycopg.pq.TransactionStatus.IDLE


def test_a_worker_failure_is_one_prep_ops_error(monkeypatch):
    class Dead:
        exitcode = -9

        def is_alive(self):
            return False

    import queue

    with pytest.raises(SampleDataError, match="a sample-data worker died .exit code -9."):
        seed._take(queue.Queue(), Dead())
    source = queue.Queue()
    source.put("Traceback ...\nMemoryError")
    with pytest.raises(SampleDataError, match="a sample-data worker failed"):
        seed._take(source, Dead())
    assert issubclass(SampleDataError, PrepOpsError)


def test_a_chunk_off_the_block_grid_is_a_parameter_error():
    plan = sample.Plan(2500, 3)
    with pytest.raises(ParameterError, match="must start on a block"):
        sample.students_chunk(plan, 2, 10, sample.course_index(sample.teacher_instruments(plan)))


def test_seeding_outside_a_scratch_database_needs_confirm(owner, monkeypatch):
    judge_as_elsewhere(monkeypatch)  # as on a server someone named by a URL
    with pytest.raises(ConfirmationRequired, match="loading sample data"):
        seed.seed(owner, students=10)
    assert seed.row_counts(owner)["students"] == 0
    assert seed.seed(owner, students=10, confirm=True).rows["students"] == 10


def test_refuses_to_replace_data_without_confirm(seeded, seeded_conn):
    before = table_checksum(seeded, "students")
    with pytest.raises(ConfirmationRequired, match="already holds data"):
        seed.seed(seeded_conn, students=10)
    assert table_checksum(seeded, "students") == before


@pytest.mark.parametrize("students", [-5, 10**9, 2.5, "many"])
def test_rejects_bad_student_counts(students, conn):
    with pytest.raises(ParameterError):
        seed.seed(conn, students=students)


def test_refuses_a_schema_that_is_not_migrated(conn):
    migrate.apply(conn, to=2)
    with pytest.raises(MigrationError, match="prep-ops migrate"):
        seed.seed(conn, students=10)


def test_committed_sample_csv_is_what_the_generator_makes(tmp_path):
    committed = project_dir() / "data" / "sample"
    seed.write_csv(tmp_path, students=100, seed=42)
    names = sorted(p.name for p in committed.glob("*.csv"))
    assert names == sorted(f"{t}.csv" for t in sample.LOAD_ORDER)
    match, mismatch, errors = filecmp.cmpfiles(committed, tmp_path, names, shallow=False)
    assert mismatch == [] and errors == []


# --- no road to superuser: a write as superuser fires no trigger of another role ------------------
@pytest.fixture
def plotter(owner):
    """A non-superuser role (as roles-as-code's dba once was: TRIGGER on the school's tables, CREATE in
    public) and `arm(sql)`, which runs statements as it; the role, and all it owns, dropped after."""
    import uuid

    from psycopg import sql

    name = f"t{uuid.uuid4().hex[:8]}_dba"
    role = sql.Identifier(name)
    owner.execute(sql.SQL("CREATE ROLE {} NOLOGIN NOSUPERUSER").format(role))
    owner.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(role))
    owner.execute(sql.SQL("GRANT TRIGGER, SELECT, REFERENCES ON ALL TABLES IN SCHEMA public TO {}").format(role))
    escalate = sql.SQL("CREATE FUNCTION public.escalate() RETURNS trigger LANGUAGE plpgsql AS {}").format(
        sql.Literal(f"BEGIN EXECUTE format('ALTER ROLE %I SUPERUSER', {sql.Literal(name).as_string(None)}); "
                    "RETURN NULL; END"))

    def arm(*statements: str) -> None:
        with owner.transaction():
            owner.execute(sql.SQL("SET LOCAL ROLE {}").format(role))
            owner.execute(escalate)
            for statement in statements:
                owner.execute(statement)

    def is_superuser() -> bool:
        return owner.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (name,)).fetchone()[0]

    yield name, arm, is_superuser
    owner.execute("DROP FUNCTION IF EXISTS public.escalate() CASCADE")  # with the trigger on users
    owner.execute(sql.SQL("DROP OWNED BY {}").format(role))
    owner.execute(sql.SQL("DROP ROLE {}").format(role))


def test_seed_refuses_a_trigger_owned_by_another_role(owner, plotter):
    name, arm, is_superuser = plotter
    arm("CREATE TRIGGER escalate BEFORE INSERT OR TRUNCATE ON users FOR EACH STATEMENT EXECUTE FUNCTION public.escalate()")
    with owner.transaction(force_rollback=True):  # the trap is armed: a superuser's insert would promote the role
        owner.execute("INSERT INTO users (username, email, role) VALUES ('probe', 'probe@unm.edu', 'staff')")
        assert is_superuser()
    assert not is_superuser()
    with pytest.raises(ForeignTriggerError) as refused:
        seed.seed(owner, students=10)
    message = str(refused.value)
    assert '"escalate" on "public"."users"' in message and f"owned by {name}" in message and message.startswith(
        "refusing to load sample data: trigger")
    assert not is_superuser()
    assert seed.row_counts(owner)["students"] == 0


def test_seed_refuses_a_trigger_on_a_table_its_truncate_cascade_reaches(owner, plotter):
    name, arm, is_superuser = plotter
    arm("CREATE TABLE public.notes (user_id integer REFERENCES users (id))",
        "CREATE TRIGGER escalate BEFORE TRUNCATE ON public.notes EXECUTE FUNCTION public.escalate()")
    with pytest.raises(ForeignTriggerError, match=f'"escalate" on "public"."notes" .* owned by {name}'):
        seed.seed(owner, students=10)
    assert not is_superuser()


def test_seed_runs_triggers_of_its_own_role(owner):
    """The audit log's triggers belong to whoever migrated (here the seeding superuser): no refusal."""
    assert catalog.foreign_triggers(owner, seed.TABLES) == []
    assert seed.seed(owner, students=10).rows["students"] == 10


def test_killed_seed_leaves_no_worker(migrated):
    """SIGKILL of `prep-ops seed` (no cleanup runs) takes its generation worker with it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil
    from conftest import cli_env

    parent = subprocess.Popen([sys.executable, "-m", "prep_ops", "seed", "--students", "200000"],
                              env=cli_env(migrated, PREP_OPS_SCRATCH="1"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        workers, deadline = [], time.monotonic() + 60
        while not workers and time.monotonic() < deadline and parent.poll() is None:
            workers = [p for p in psutil.Process(parent.pid).children(recursive=True)
                       if "spawn_main" in " ".join(p.cmdline())]
            time.sleep(0.2)
        assert workers, f"no worker started: {parent.poll()} {parent.stderr.read() if parent.poll() is not None else ''}"
        descendants = psutil.Process(parent.pid).children(recursive=True)  # the worker and multiprocessing's tracker
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        gone, alive = psutil.wait_procs(descendants, timeout=5)
        assert alive == [], [p.cmdline() for p in alive]
        assert {p.pid for p in workers} <= {p.pid for p in gone}
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.wait(10)
        parent.stderr.close()
    with db.connect(migrated) as conn:  # the killed load's transaction was rolled back
        deadline = time.monotonic() + 10
        while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND pid <> pg_backend_pid()").fetchone()[0] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert conn.execute("SELECT count(*) FROM students").fetchone()[0] == 0
