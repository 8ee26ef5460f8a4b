import filecmp

import pytest
from conftest import judge_as_elsewhere, schema_dump, table_checksum

from prep_ops import catalog, db, migrate, post_data, sample, seed
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


# --- loaded as pg_restore loads: keys, indexes and foreign keys set aside, back exactly as they were ----
DEFINITIONS = """
SELECT 'constraint', c.conrelid::regclass::text, c.conname::text, pg_get_constraintdef(c.oid), c.convalidated,
       c.condeferrable, c.condeferred, c.conindid::regclass::text, obj_description(c.oid, 'pg_constraint')
FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
UNION ALL
SELECT 'index', i.indrelid::regclass::text, i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), i.indisvalid,
       i.indisunique, i.indisprimary, i.indisclustered::text, obj_description(i.indexrelid, 'pg_class')
FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
ORDER BY 1, 2, 3
"""


def definitions(conn) -> list[tuple]:
    """Every constraint and index of the database's own schemas: names, the server's definitions, state
    (validated, deferrable, the index a constraint uses, CLUSTER) and comments."""
    return conn.execute(DEFINITIONS).fetchall()


def set_aside(conn) -> post_data.PostData:
    with conn.transaction(force_rollback=True):
        return post_data.read(conn, seed.TABLES)


def test_seed_sets_aside_the_schools_keys_indexes_and_foreign_keys(owner):
    found = set_aside(owner)
    assert {k["name"] for k in found.keys} == {
        "users_pkey", "users_username_key", "users_email_key", "students_pkey", "students_user_id_key",
        "teachers_pkey", "teachers_user_id_key", "courses_pkey", "enrollments_pkey",
        "enrollments_student_course_term_key", "tuition_payments_pkey"}
    assert {i["name"] for i in found.indexes} == {
        "idx_users_email", "idx_users_username", "idx_students_level_instrument", "idx_tuition_payments_student_id"}
    assert len(found.foreign_keys) == 6 and all(f["definition"].startswith("FOREIGN KEY") for f in found.foreign_keys)
    assert "REFERENCES public.users(id)" in {f["name"]: f["definition"] for f in found.foreign_keys}["students_user_id_fkey"]


def test_seed_leaves_names_and_definitions_exactly_as_before(migrated, owner):
    before, dump = definitions(owner), schema_dump(migrated)
    seed.seed(owner, students=120, seed=3)
    assert definitions(owner) == before
    assert schema_dump(migrated) == dump


UNUSUAL = (
    # set aside and made again
    "CREATE INDEX students_guardian_email ON students ((guardian ->> 'email')) WITH (fillfactor = 70) "
    "WHERE audition_recording IS NOT NULL",
    "ALTER TABLE enrollments ADD CONSTRAINT enrollments_course_again FOREIGN KEY (course_id) REFERENCES courses (id) "
    "ON DELETE CASCADE NOT VALID",
    "ALTER TABLE courses ADD CONSTRAINT courses_name_teacher UNIQUE (name, teacher_id) INCLUDE (level) "
    "DEFERRABLE INITIALLY DEFERRED",
    # left alone: carries a comment; a foreign key of another table leans on users_pkey
    "CREATE INDEX users_created ON users (created_at)",
    "COMMENT ON INDEX users_created IS 'kept as it is'",
    'CREATE SCHEMA "Extra"',
    'CREATE TABLE "Extra"."Notes" (user_id integer REFERENCES public.users (id))',
)


def test_an_unusual_schema_comes_back_exactly(migrated, owner):
    for statement in UNUSUAL:
        owner.execute(statement)
    found = set_aside(owner)
    names = {k["name"] for k in found.keys} | {i["name"] for i in found.indexes} | {f["name"] for f in found.foreign_keys}
    assert {"students_guardian_email", "enrollments_course_again", "courses_name_teacher"} <= names
    assert not {"users_created", "users_pkey"} & names
    before, dump = definitions(owner), schema_dump(migrated)
    seed.seed(owner, students=150, seed=4)
    assert definitions(owner) == before
    assert schema_dump(migrated) == dump
    assert owner.execute("SELECT convalidated FROM pg_constraint WHERE conname = 'enrollments_course_again'").fetchone() == (False,)


def test_a_role_that_does_not_own_the_tables_sets_nothing_aside(owner):
    import uuid

    from psycopg import sql

    role = sql.Identifier(f"t{uuid.uuid4().hex[:8]}_loader")
    owner.execute(sql.SQL("CREATE ROLE {} NOLOGIN NOSUPERUSER").format(role))
    try:
        with owner.transaction(force_rollback=True):
            owner.execute(sql.SQL("SET LOCAL ROLE {}").format(role))
            found = post_data.read(owner, seed.TABLES)
        assert found == post_data.PostData([], [], [])
        assert set_aside(owner).foreign_keys  # the owner would set them aside
    finally:
        owner.execute(sql.SQL("DROP ROLE {}").format(role))


def test_setting_aside_outside_a_transaction_is_refused(owner):
    before = definitions(owner)
    with pytest.raises(ParameterError, match="only inside a transaction"):
        with post_data.set_aside(owner, seed.TABLES):
            pass
    assert definitions(owner) == before


BAD_ROWS = {
    # mid-load: a CHECK constraint, kept during the load, refuses the row
    "a row a CHECK refuses": ("users", lambda data: data + b"999999\tx\tx@unm.edu\tpirate\t2020-01-01 00:00:00\tX\n",
                              "users_role_check"),
    # after the load: a duplicate id, found when users_pkey is made again
    "a duplicate key": ("users", lambda data: data + data.splitlines(keepends=True)[0], "users_pkey"),
    # after the load: a course that does not exist, found when the foreign key is added again
    "a dangling reference": ("enrollments", lambda data: data + b"1\t999999\t2026-fall\tenrolled\t2026-08-01 10:00:00\n",
                             "enrollments_course_id_fkey"),
}


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_bad_rows_mid_load_or_at_the_end_change_nothing(case, migrated, owner, monkeypatch):
    table, spoil, constraint = BAD_ROWS[case]
    seed.seed(owner, students=40, seed=2)
    before, dump = definitions(owner), schema_dump(migrated)
    sums = {t: table_checksum(migrated, t) for t in seed.TABLES}
    copy, spoiled = seed._copy, []

    def spoiling_copy(conn, name, data):
        if name == table and not spoiled:
            spoiled.append(name)
            data = spoil(data)
        copy(conn, name, data)

    monkeypatch.setattr(seed, "_copy", spoiling_copy)
    with pytest.raises(SampleDataError, match=f"breaks a constraint; nothing was loaded: .*{constraint}"):
        seed.seed(owner, students=60, seed=3, replace=True)
    assert spoiled == [table]
    assert definitions(owner) == before
    assert schema_dump(migrated) == dump
    assert {t: table_checksum(migrated, t) for t in seed.TABLES} == sums


def _wait_until(condition, seconds: float, what: str):
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


def test_killed_mid_load_leaves_every_key_index_and_foreign_key_as_before(migrated):
    """SIGKILL of `prep-ops seed` while it streams rows by COPY (its keys, indexes and foreign keys
    dropped in its open transaction): the server rolls back, and everything is as it was."""
    import os
    import signal
    import subprocess
    import sys

    from conftest import cli_env

    with db.connect(migrated, autocommit=True) as conn:
        before = definitions(conn)
        index = conn.execute("SELECT 'idx_tuition_payments_student_id'::regclass::oid").fetchone()[0]
        dump = schema_dump(migrated)
        parent = subprocess.Popen([sys.executable, "-m", "prep_ops", "seed", "--students", "200000"],
                                  env=cli_env(migrated, PREP_OPS_SCRATCH="1"), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            # the index is dropped (the lock on it held) and rows are streaming in
            backend = _wait_until(lambda: conn.execute(
                "SELECT p.pid FROM pg_stat_progress_copy p JOIN pg_locks l ON l.pid = p.pid "
                "WHERE p.datname = current_database() AND l.relation = %s AND l.mode = 'AccessExclusiveLock' "
                "AND l.granted", (index,)).fetchone(), 60, "the seed to load with its indexes dropped")[0]
            os.kill(parent.pid, signal.SIGKILL)
            parent.wait(10)
        finally:
            if parent.poll() is None:
                parent.kill()
            parent.wait(10)
        _wait_until(lambda: not conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (backend,)).fetchone(),
                    30, "the killed seed's session to end")
        assert definitions(conn) == before
        assert seed.row_counts(conn) == dict.fromkeys(seed.TABLES, 0)
    assert schema_dump(migrated) == dump
