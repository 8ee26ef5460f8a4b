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


def test_terms_sort_by_year_then_season_never_alphabetically():
    import pandas as pd

    names = ["2026-spring", "2025-fall", "2025-spring", "2024-fall", "2025-summer", "2026-winter", "someday"]
    assert sorted(names, key=explore.term_key) == ["2024-fall", "2025-spring", "2025-summer", "2025-fall",
                                                   "2026-winter", "2026-spring", "someday"]
    frame = pd.DataFrame({"term": names, "amount": range(len(names))}, index=[10, 11, 12, 13, 14, 15, 16])
    ordered = explore.in_term_order(frame, "term")
    assert list(ordered["term"]) == sorted(names, key=explore.term_key) and len(ordered) == len(frame)
    assert list(explore.in_term_order(frame.set_index("term")).index) == list(ordered["term"])


def test_revenue_terms_come_in_calendar_order(seeded, conn):
    terms = list(explore.revenue_by_term(conn).index)
    assert terms == sorted(terms, key=explore.term_key) and terms != sorted(terms)


def test_differences_by_term_name_what_disagrees():
    import pandas as pd

    a = pd.Series({"2025-fall": 100.0, "2026-spring": 250.5})
    assert explore.differences_by_term(a, a.copy()) == ""
    assert explore.differences_by_term(a, a.drop("2025-fall")) == "terms in one and not the other: 2025-fall"
    b = a.copy()
    b["2026-spring"] = 250.0
    assert explore.differences_by_term(a, b) == "2026-spring: US$ 250.50 against US$ 250.00"


def test_runbook_02_keeps_sql_results_in_named_variables():
    """Reading `_` after a %sql cell breaks as soon as cells run out of order."""
    import re

    import nbformat

    from prep_ops import runner

    cells = [c.source for c in nbformat.read(runner.find("02"), as_version=4).cells if c.cell_type == "code"]
    sql_cells = [c for c in cells if c.lstrip().startswith(("%sql", "%%sql")) or "= %sql" in c]
    assert len(sql_cells) == 2 and all("<<" in c or "= %sql" in c for c in sql_cells)
    assert not [c for c in cells if re.search(r"(?<![\w.])_(?![\w])", c)]
