import pytest

from prep_ops import db, explore
from prep_ops.errors import ParameterError


@pytest.fixture(scope="module")
def conn(seeded):
    """An autocommit connection to `seeded`, as a notebook's or a CLI command's."""
    with db.connect(seeded, autocommit=True) as conn:
        yield conn


def _scalar(target, query, *params):
    with db.connect(target) as conn:
        return conn.execute(query, params).fetchone()[0]


def test_instrument_level_table_matches_a_direct_count(seeded, conn):
    table = explore.by_instrument_level(conn, term="2026-fall")
    direct = _scalar(seeded, "SELECT count(DISTINCT student_id) FROM enrollments "
                             "WHERE term = %s AND status IN ('enrolled', 'completed')", "2026-fall")
    assert table.to_numpy().sum() == direct > 0


def test_instrument_filter_keeps_one_instrument(seeded, conn):
    assert list(explore.by_instrument_level(conn, instrument="piano").index) == ["piano"]


def test_terms_come_in_calendar_order(seeded, conn):
    terms = list(explore.by_term(conn).index)
    assert terms.index("2025-spring") < terms.index("2025-summer") < terms.index("2025-fall")


def test_revenue_matches_the_payments_table(seeded, conn):
    total = float(_scalar(seeded, "SELECT sum(amount) FROM tuition_payments"))
    assert explore.revenue_by_term(conn).to_numpy().sum() == pytest.approx(total)


def test_teacher_load_counts_current_enrollments(seeded, conn):
    load = explore.teacher_load(conn)
    enrolled = _scalar(seeded, "SELECT count(*) FROM enrollments WHERE status = 'enrolled' AND term = '2026-fall'")
    assert load["enrolled"].sum() == enrolled and (load["weekly_hours"] > 0).all()


@pytest.mark.parametrize("kwargs", [{"term": "1999-fall"}, {"instrument": "kazoo'; DROP TABLE users; --"}])
def test_unknown_filters_are_refused(seeded, conn, kwargs):
    with pytest.raises(ParameterError):
        explore.waitlists_drops(conn, **kwargs)
