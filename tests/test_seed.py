import filecmp

import pytest
from conftest import table_checksum

from prep_ops import db, migrate, sample, seed
from prep_ops.errors import ConfirmationRequired, MigrationError, ParameterError, PrepOpsError, SampleDataError
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
    monkeypatch.delenv("PREP_OPS_SCRATCH", raising=False)
    monkeypatch.setenv("PREP_OPS_DATA_DIR", "/nonexistent/prep-ops-data")  # judged as any other server
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
