"""The public sample databases load on the server under test, with the shapes the other tests rely on."""

import pytest

from prep_ops import db


@pytest.mark.parametrize("name, tables, rows", [("chinook", 11, 15607), ("northwind", 14, 3362),
                                                ("pagila", 15, None)])
def test_sample_database_loads(sample_db, name, tables, rows):
    with db.connect(sample_db(name)) as conn:
        counted = conn.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                               "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
                               ).fetchone()[0]
        assert counted == tables
        if rows is not None:
            total = 0
            for (table,) in conn.execute("SELECT quote_ident(relname) FROM pg_class c JOIN pg_namespace n "
                                         "ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND relkind = 'r'"
                                         ).fetchall():
                total += conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # names from the catalog
            assert total == rows


def test_pagila_has_partitions_an_enum_and_a_populated_materialized_view(sample_db):
    with db.connect(sample_db("pagila")) as conn:
        assert conn.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'payment'::regclass").fetchone()[0] == 55
        assert conn.execute("SELECT count(*) FROM payment").fetchone()[0] == 8000
        assert conn.execute("SELECT count(*) FROM pg_type WHERE typname = 'mpaa_rating' AND typtype = 'e'").fetchone()[0] == 1
        assert conn.execute("SELECT ispopulated FROM pg_matviews WHERE matviewname = 'rental_by_category'").fetchone()[0]


def test_a_sample_copy_is_its_own_database(sample_db, sample_copy):
    copy = sample_copy("northwind")
    with db.connect(copy, autocommit=True) as conn:
        conn.execute("DELETE FROM order_details")
    with db.connect(sample_db("northwind")) as conn:
        assert conn.execute("SELECT count(*) FROM order_details").fetchone()[0] > 0


def test_pagila_extras_bring_other_schemas_and_quoted_names(sample_db):
    with db.connect(sample_db("pagila")) as conn:
        assert conn.execute('SELECT count(*) FROM archive.old_rentals').fetchone()[0] == 3000
        assert conn.execute('SELECT count(*) FROM "Reporting"."Best Month"').fetchone()[0] == 1
