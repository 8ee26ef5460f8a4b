"""Runbooks and advice on public sample databases nobody here wrote (issue 15): every user schema,
partitioned tables, quoted mixed-case names, and advice that agrees with itself."""

import re

import pytest

from prep_ops import db, indexes, maintenance, runner
from prep_ops.errors import ParameterError

from conftest import cli_env

DROPS = set(indexes.DROPS)


def _advice(target, **kwargs):
    with db.connect(target, autocommit=True) as conn:
        return indexes.advice(conn, **kwargs), indexes.existing(conn), indexes.foreign_keys(conn)


def _contradictions(advice, existing, keys) -> list[str]:
    """Drop advice for an index a foreign key needs, or for both indexes of a pair."""
    dropped = {(a.schema, a.index) for a in advice if a.kind in DROPS}
    found = [f"{a.index} dropped and kept" for a in advice if a.kind in DROPS and (a.schema, a.covered_by) in dropped
             and a.kind == "duplicate"]
    for _, fk in keys.iterrows():
        on = existing[(existing["schema_name"] == fk["schema_name"]) & (existing["table_name"] == fk["table_name"])
                      & existing["is_valid"]]
        serving = {row["index_name"] for _, row in on.iterrows()
                   if set(row["columns"][:len(fk["columns"])]) == set(fk["columns"])}
        if serving and serving <= {i for _, i in dropped}:
            found.append(f"{fk['constraint_name']}: every index serving it is proposed for dropping")
    return found


def test_chinook_indexes_backing_foreign_keys_are_not_unused(sample_db, sample_copy):
    chinook = sample_db("chinook")
    advice, existing, keys = _advice(chinook, min_days=0)  # as if statistics were old enough
    assert len(keys) == 11 and not [a for a in advice if a.kind == "unused"]  # every non-key index serves a foreign key
    # the one drop: (playlist_id) leads the primary key (playlist_id, track_id), which serves the foreign key too
    assert [(a.kind, a.index, a.covered_by) for a in advice] == [
        ("redundant", "playlist_track_playlist_id_idx", "playlist_track_pkey")]
    assert _contradictions(advice, existing, keys) == []
    with db.connect(chinook, autocommit=True) as conn:
        assert indexes.too_soon(conn).startswith("too soon to tell: index scans counted for ")  # loaded minutes ago
    copy = sample_copy("chinook")
    with db.connect(copy, autocommit=True) as conn:
        conn.execute('DROP INDEX "track_album_id_idx"')
    advice, existing, keys = _advice(copy, min_days=0)
    assert [(a.kind, a.table, a.columns) for a in advice] == [("missing foreign-key index", "track", ("album_id",)),
                                                              ("redundant", "playlist_track", ("playlist_id",))]
    assert _contradictions(advice, existing, keys) == []


def test_pagila_duplicate_pairs_on_partitions_are_proposed_once(sample_db):
    advice, existing, keys = _advice(sample_db("pagila"), min_days=0)
    partitions = {t for t in existing["table_name"] if re.fullmatch(r"payment_p\d{4}_\d\d", t)}
    paired = sorted(t for t in partitions if f"idx_fk_{t}_customer_id" in set(existing["index_name"]))
    assert len(partitions) == 55 and len(paired) == 6  # pagila indexes its first six partitions twice on customer_id
    assert not [a for a in advice if a.table in partitions - set(paired) and a.kind in DROPS]
    for partition in paired:
        drops = [(a.kind, a.index, a.covered_by) for a in advice if a.table == partition and a.kind in DROPS]
        # the older of the pair (idx_fk_..., made first) is kept; the later copy is proposed, once
        assert drops == [("duplicate", f"{partition}_customer_id_idx", f"idx_fk_{partition}_customer_id")], drops
    assert _contradictions(advice, existing, keys) == []


def test_archive_schema_foreign_key_without_index_is_found(sample_db):
    advice, _, _ = _advice(sample_db("pagila"))
    missing = [a for a in advice if a.kind == "missing foreign-key index" and a.schema != "public"]
    assert [(a.schema, a.table, a.columns) for a in missing] == [("archive", "old_rentals", ("customer_id",))]
    assert missing[0].statement == ('CREATE INDEX CONCURRENTLY IF NOT EXISTS "idx_old_rentals_customer_id" '
                                    'ON "archive"."old_rentals" ("customer_id")')
    assert missing[0].label == "archive.old_rentals"


def test_maintain_tables_schema_dot_table(sample_copy):
    import subprocess
    import sys

    pagila = sample_copy("pagila")
    with db.connect(pagila, autocommit=True) as conn:
        assert maintenance.plan(conn, ["archive.old_rentals", '"Reporting"."Monthly Sales"', "payment"]) == [
            'VACUUM (ANALYZE) "archive"."old_rentals"', 'VACUUM (ANALYZE) "Reporting"."Monthly Sales"',
            'VACUUM (ANALYZE) "public"."payment"']
        with pytest.raises(ParameterError) as error:
            maintenance.plan(conn, ["old_orders"])
        assert "archive.old_rentals" in str(error.value) and "Reporting.Monthly Sales" in str(error.value)
        # the partitioned parent: VACUUM reaches its 55 partitions, and they are what is judged
        result = maintenance.maintain(conn, ["payment", "Reporting.Monthly Sales"])
    assert result.tables == ["payment", "Reporting.Monthly Sales"] and result.not_vacuumed == []
    assert len(result.before) == 57 and list(result.before.query("kind == 'p'")["table_name"]) == ["payment"]
    # named by a URL, the database is someone's: the change needs --confirm
    done = subprocess.run([sys.executable, "-m", "prep_ops", "maintain", "--tables", "archive.old_rentals", "--confirm"],
                          capture_output=True, text=True, env=cli_env(pagila), timeout=300)
    assert done.returncode == 0, done.stderr
    assert 'VACUUM (ANALYZE) "archive"."old_rentals"' in done.stdout and "archive.old_rentals" in done.stdout
    integrity = subprocess.run([sys.executable, "-m", "prep_ops", "integrity", "--tables", "archive.old_rentals",
                                "--json"], capture_output=True, text=True, timeout=300,
                               env=cli_env(pagila, PREP_OPS_SCRATCH="1"))  # declared throwaway: amcheck may be made
    import json

    checked = json.loads(integrity.stdout)["relations"]
    assert {r["relation"] for r in checked} == {"archive.old_rentals", "archive.old_rentals_pkey"}


def test_table_status_of_named_tables_counts_those_and_a_parents_partitions(sample_db):
    with db.connect(sample_db("pagila"), autocommit=True) as conn:
        everything = maintenance.table_status(conn)
        one = maintenance.table_status(conn, ["archive.old_rentals"])
        parent = maintenance.table_status(conn, ["payment", '"Reporting"."Monthly Sales"'])
    assert list(one["table_name"]) == ["archive.old_rentals"]
    assert len(parent) == 57 and list(parent.query("kind == 'p'")["table_name"]) == ["payment"]
    assert "Reporting.Monthly Sales" in set(parent["table_name"]) and len(everything) > len(parent)


def test_runbook_05_on_pagila_partitions(sample_copy, tmp_path, monkeypatch):
    pagila = sample_copy("pagila")
    monkeypatch.setenv("PREP_OPS_SCRATCH", "1")  # the test's own copy, declared throwaway (the kernel inherits it)
    run = runner.run_one(runner.find("05"), tmp_path, {"database_url": pagila.url})
    assert run.ok, (run.error, [c for c in run.checks if not c["passed"]])
    checks = {c["name"]: c for c in run.checks}
    vacuumed = checks["last vacuum set on every chosen table"]
    assert vacuumed["passed"] and "partitioned parents without storage" in vacuumed["detail"]
    assert "payment" in vacuumed["detail"]
    assert checks["no corruption (amcheck, data checksums)"]["passed"]
