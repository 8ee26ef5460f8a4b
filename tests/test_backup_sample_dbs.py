"""Backups of public sample databases that are not the school's (chinook, northwind, pagila: partitions,
an enum, domains, views, a materialized view, triggers, several schemas, quoted names): full, schema
and data backups in every format verify clean, and a value changed in each is caught, naming the object.

Backups are taken once per module and shared; each verification restores into a scratch database on
the embedded server, which has none of these schemas (a data-only backup brings its own).
"""

import re
import shutil

import pytest
from psycopg import sql

from prep_ops import backup, db, verify

from conftest import rehash

SAMPLES = ("chinook", "northwind", "pagila")
# per sample database: a table and a text column that no key or constraint depends on
CHANGED = {"chinook": ("public.artist", "name"), "northwind": ("public.categories", "description"),
           "pagila": ("public.actor", "first_name")}


@pytest.fixture(scope="module")
def taken(sample_db, tmp_path_factory):
    """taken(name, kind, fmt): the backup of sample database `name`, taken once per module."""
    made: dict[tuple, backup.Backup] = {}
    folder = tmp_path_factory.mktemp("samples")

    def get(name: str, kind: str, fmt: str) -> backup.Backup:
        if (name, kind, fmt) not in made:
            made[name, kind, fmt] = backup.backup(sample_db(name), kind, fmt, directory=folder / name)
        return made[name, kind, fmt]

    return get


@pytest.mark.parametrize("fmt", ["plain", "custom", "directory"])
@pytest.mark.parametrize("kind", ["full", "schema", "data"])
@pytest.mark.parametrize("name", SAMPLES)
def test_a_sample_database_backup_verifies_clean(taken, name, kind, fmt):
    made = taken(name, kind, fmt)
    result = verify.verify(made.path)
    assert result.ok, result.failures.to_string()
    report = result.report
    tables = set(made.manifest["tables"])
    if kind == "schema":  # every table there, and empty
        assert set(report.loc[report["check"] == "rows (schema-only: none)", "object"]) == tables
    else:  # every table's rows and content compared
        assert set(report.loc[report["check"] == "content checksum", "object"]) == tables
    assert set(made.manifest["schema"]) <= set(report.loc[report["check"] == "schema", "object"])


def _copy(made: backup.Backup, tmp_path) -> backup.Backup:
    path = tmp_path / made.path.name
    shutil.copyfile(made.path, path)
    shutil.copyfile(backup.manifest_path(made.path), backup.manifest_path(path))
    if "schema_dump" in made.manifest:
        shutil.copyfile(backup.schema_dump_path(made.path, made.manifest), tmp_path / made.manifest["schema_dump"]["file"])
    return backup.Backup(path, made.manifest)


def _change_first_value(text: str, table: str, column: str) -> str:
    """`text` (a plain dump) with one value of `column` in the first row of `table`'s COPY data changed."""
    header = re.search(rf"^COPY {re.escape(table)} \((.*)\) FROM stdin;\n", text, re.MULTILINE)
    position = [c.strip().strip('"') for c in header.group(1).split(",")].index(column)
    start = header.end()
    end = text.index("\n", start)
    values = text[start:end].split("\t")
    values[position] = values[position] + " (changed)" if values[position] != "\\N" else "changed"
    return text[:start] + "\t".join(values) + text[end:]


@pytest.mark.parametrize("kind", ["full", "data"])
@pytest.mark.parametrize("name", SAMPLES)
def test_a_value_changed_in_a_sample_dump_is_caught_naming_the_table(taken, tmp_path, name, kind):
    table, column = CHANGED[name]
    made = _copy(taken(name, kind, "plain"), tmp_path)
    made.path.write_text(_change_first_value(made.path.read_text(), table, column))
    rehash(made.path)
    failed = verify.verify(made.path).failures
    assert list(zip(failed["object"], failed["check"])) == [(table, "content checksum")]


@pytest.mark.parametrize("name", SAMPLES)
def test_a_column_default_changed_in_a_sample_schema_dump_is_caught_naming_it(taken, server, tmp_path, name):
    """On the source's own server, where every definition is compared (see objects)."""
    table, column = CHANGED[name]
    made = _copy(taken(name, "schema", "plain"), tmp_path)
    text = made.path.read_text()
    block = re.search(rf"^CREATE TABLE {re.escape(table)} \(\n(.*?)\n\);", text, re.MULTILINE | re.DOTALL)
    line = next(line for line in block.group(1).splitlines() if line.strip().startswith(f"{column} "))
    changed = line.rstrip(",").replace(" NOT NULL", "") + " DEFAULT 'changed'" + \
        (" NOT NULL" if " NOT NULL" in line else "") + ("," if line.endswith(",") else "")
    made.path.write_text(text[:block.start(1)] + block.group(1).replace(line, changed, 1) + text[block.end(1):])
    rehash(made.path)
    failed = verify.verify(made.path, server=server).failures
    assert set(failed["check"]) == {"column default"}  # the object, and the count of its kind
    assert f"column default {table}.{column}" in set(failed["object"])


@pytest.mark.parametrize("fmt", ["custom", "directory"])
@pytest.mark.parametrize("name", SAMPLES)
def test_a_value_changed_in_a_sample_database_after_its_backup_is_named(sample_copy, tmp_path, name, fmt):
    table, column = CHANGED[name]
    target = sample_copy(name)
    made = backup.backup(target, "full", fmt, directory=tmp_path)
    with db.connect(target, autocommit=True) as conn:
        assert verify.compare_data(conn, made.manifest).ok
        schema, relation = table.split(".")
        conn.execute(sql.SQL("UPDATE {} SET {} = {} || ' (changed)' WHERE ctid = (SELECT min(ctid) FROM {})").format(
            sql.Identifier(schema, relation), sql.Identifier(column), sql.Identifier(column), sql.Identifier(schema, relation)))
        assert verify.compare_data(conn, made.manifest).differing == [table]


def test_pagila_summaries_count_partition_rows_once(taken, sample_db):
    """Issue 15: 8,000 payments in pagila, counted in its partitions, never again in the parent."""
    made = taken("pagila", "full", "custom")
    tables = made.manifest["tables"]
    assert "public.payment" not in tables
    partitions = {t: v["rows"] for t, v in tables.items() if t.startswith("public.payment_p")}
    assert len(partitions) == 55 and sum(partitions.values()) == 8000
    with db.connect(sample_db("pagila")) as conn:
        assert conn.execute("SELECT count(*) FROM payment").fetchone()[0] == 8000  # the parent shows its partitions' rows
    assert backup.holds(made.manifest) == f"{sum(v['rows'] for v in tables.values()):,} rows in {len(tables)} tables"
    assert f"{sum(v['rows'] for v in tables.values()):,}" == f"{8000 + sum(v['rows'] for t, v in tables.items() if t not in partitions):,}"


def test_a_schema_backup_summary_says_it_holds_no_rows(taken):
    """Issue 15: not "15,607 rows in 11 tables"."""
    made = taken("northwind", "schema", "custom")
    assert sum(t["rows"] for t in made.manifest["tables"].values()) > 0  # the source had rows
    assert backup.holds(made.manifest) == f"{len(made.manifest['tables'])} tables, schema only: no rows"


def test_a_data_only_backup_of_pagila_verifies_on_a_server_without_its_schema(sample_copy, tmp_path):
    """Issue 12 item 6: the schema-only dump taken in the backup's snapshot travels with it, hashed."""
    copy = sample_copy("pagila")
    made = backup.backup(copy, "data", "custom", directory=tmp_path)
    schema = backup.schema_dump_path(made.path, made.manifest)
    assert schema.name == made.path.name + ".schema.dump" and schema.stat().st_mode & 0o777 == 0o600
    assert made.manifest["schema_dump"]["sha256"] == backup.sha256_of(schema)
    result = verify.verify(made.path)  # a fresh scratch database: no pagila schema until the dump brings it
    assert result.ok, result.failures.to_string()
    assert {"public.payment_p2022_01", "public.actor"} <= set(result.report.loc[result.report["check"] == "content checksum",
                                                                                "object"])
    data = bytearray(schema.read_bytes())
    data[len(data) // 2] ^= 0x01
    schema.write_bytes(bytes(data))
    failed = verify.verify(made.path).failures
    assert set(failed["check"]) == {"schema dump sha256", "restore"}
    newer = backup.backup(copy, "data", "custom", directory=tmp_path, keep=1)  # a pruned backup takes its schema along
    assert not schema.exists() and backup.schema_dump_path(newer.path, newer.manifest).exists()
