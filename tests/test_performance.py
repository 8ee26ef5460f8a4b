"""The performance runbook's measurements and steps on a real server: query times, the bottleneck,
indexes created CONCURRENTLY through the incident record (or only recorded, live)."""

import pandas as pd
import pytest

from prep_ops import db, incident, indexes, plans, seed
from prep_ops.incident import performance
from prep_ops.errors import ParameterError


@pytest.fixture
def seeded_conn(seeded):
    with db.connect(seeded, autocommit=True) as conn:
        yield conn


def test_query_times_gives_a_median_per_catalogue_query(seeded_conn):
    times = performance.query_times(seeded_conn, repeats=3)
    frame = times.frame
    assert list(frame.index) == list(plans.catalogue()) and set(times.plans) == set(frame.index)
    assert (frame["runs"] == 3).all() and (frame["median_ms"] > 0).all()
    assert ((frame["min_ms"] <= frame["median_ms"]) & (frame["median_ms"] <= frame["max_ms"])).all()
    assert times.ms("payment_history") == frame.loc["payment_history", "median_ms"]
    assert pd.isna(times.ms(None))
    with pytest.raises(ParameterError):
        performance.query_times(seeded_conn, repeats=0)


def _times(**ms_and_findings) -> performance.QueryTimes:
    rows = [{"query": q, "median_ms": ms, "findings": f} for q, (ms, f) in ms_and_findings.items()]
    return performance.QueryTimes(pd.DataFrame(rows).set_index("query"), {}, {})


def test_bottleneck_is_the_query_that_slowed_down_most_against_the_baseline():
    baseline = _times(a=(10.0, ""), b=(0.1, ""), c=(1.0, ""))
    now = _times(a=(25.0, ""), b=(6.0, "selective sequential scan"), c=(1.5, ""))
    assert performance.bottleneck(now, baseline) == "b"
    assert performance.bottleneck(_times(a=(20.0, ""), b=(0.2, ""), c=(1.0, "")), baseline) is None  # 2×: not enough
    compared = performance.compare_times(baseline, now)
    assert compared.loc["b", "factor"] == pytest.approx(60.0)


def test_bottleneck_without_a_baseline_is_the_slowest_an_index_fixes():
    now = _times(a=(50.0, ""), b=(6.0, "selective sequential scan"), c=(3.0, "row misestimate, selective sequential scan"))
    assert performance.bottleneck(now) == "b"
    assert performance.bottleneck(_times(a=(50.0, ""))) is None
    assert performance.bottleneck(now, reported="c") == "c"
    with pytest.raises(ParameterError, match="not a catalogue query"):
        performance.bottleneck(now, reported="nope")


def _advice() -> indexes.Advice:
    columns = ("method", "term")
    return indexes.Advice("candidate for query", "tuition_payments", indexes.index_name("tuition_payments", columns),
                          columns, "test", indexes.create_statement("tuition_payments", columns))


def test_create_indexes_live_without_confirm_only_records_them(migrated, owner, tmp_path):
    live = incident.Incident("performance", "test", migrated, mode="live", directory=tmp_path)
    proposed = [_advice()]
    assert performance.create_indexes(live, owner, proposed) == []
    assert performance.missing_indexes(owner, proposed) == [proposed[0].index]
    assert [e.text for e in live.events if e.kind == "would"] == [proposed[0].statement, 'ANALYZE "public"."tuition_payments"']


def test_create_indexes_in_a_drill_creates_them_concurrently(migrated, owner, tmp_path):
    drill = incident.Incident("performance", "test", migrated, mode="drill", directory=tmp_path)
    proposed = [_advice()]
    ran = performance.create_indexes(drill, owner, proposed)
    assert ran[0].startswith("CREATE INDEX CONCURRENTLY") and ran[1] == 'ANALYZE "public"."tuition_payments"'
    assert performance.missing_indexes(owner, proposed) == []
    assert [e.text for e in drill.events if e.kind == "ran"] == ran


def test_an_index_build_a_killed_run_left_invalid_is_built_again_by_the_next(migrated, owner, tmp_path):
    """CREATE INDEX CONCURRENTLY killed half way leaves the index INVALID under its name, and IF NOT EXISTS
    would keep it so: the next run drops that leftover first, and the proposed index ends up valid."""
    seed.seed(owner, students=30, seed=1)
    proposed = [_advice()]
    with pytest.raises(Exception, match="could not create unique index"):  # fails half way, as a killed build
        owner.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {proposed[0].index} ON tuition_payments (method, term)")
    assert performance.missing_indexes(owner, proposed) == [proposed[0].index]  # there, but INVALID
    drill = incident.Incident("performance", "test", migrated, mode="drill", directory=tmp_path)
    ran = performance.create_indexes(drill, owner, proposed)
    assert ran[0] == f'DROP INDEX CONCURRENTLY IF EXISTS "public"."{proposed[0].index}"'
    assert performance.missing_indexes(owner, proposed) == []
    assert not owner.execute("SELECT indisunique FROM pg_index WHERE indexrelid = %s::regclass",
                             (proposed[0].index,)).fetchone()[0]  # the proposed index, not the leftover


def test_an_index_of_the_proposed_name_in_another_schema_is_not_the_proposed_one(scratch):
    """An index is named per schema: public.idx_x_a being valid says nothing of "Sales".idx_x_a."""
    with db.connect(scratch, autocommit=True) as conn:
        for statement in ('CREATE SCHEMA "Sales"', 'CREATE TABLE "Sales".x (a int)', "CREATE TABLE public.x (a int)",
                          "CREATE INDEX idx_x_a ON public.x (a)"):
            conn.execute(statement)
        proposed = [indexes.Advice("candidate for query", "x", "idx_x_a", ("a",), "test",
                                   indexes.create_statement("x", ("a",), "Sales"), schema="Sales")]
        assert performance.missing_indexes(conn, proposed) == ["idx_x_a"]
        conn.execute('CREATE INDEX idx_x_a ON "Sales".x (a)')
        assert performance.missing_indexes(conn, proposed) == []
