"""Per-table row counts and order-independent content checksums, by a named method.

A manifest records the method its checksums were taken with ("checksum_method"), and a
verification computes with the same one. Manifests without it come from before methods had names
and used ROW_TEXT.

- COLUMN_HASH ("column-hash-v2", what new backups use): each column value goes through its type's
  built-in 64-bit extended hash function. The columns that are NOT NULL (a validated constraint) are
  chained: the first is hashed with its position (1, 2, ...) as the seed, each next one with the hash
  so far as its seed. Every other column is hashed with its position as the seed (a NULL counts as
  0) and XORed in. The checksum is the sum of the row hashes. Text-like values are hashed under the
  database's default collation, which is deterministic: their bytes, so 'a' and 'A' differ even in a
  case-insensitive column. About 8 % less CPU than v1 (benchmarks/README.md): no XOR call for a
  NOT NULL column. Like v1 depends on column order and types, v2 also depends on which columns
  are NOT NULL: the same rows under a changed NOT NULL constraint give another checksum.
- COLUMN_HASH_V1 ("column-hash-v1", backups up to 2026-11): every column hashed with its position
  as the seed (NULL as 0) and XORed, under the column's own collation; the sum of the rows.
- In both, types outside NATIVE_HASH_TYPES (json has no hash function) are hashed in their text
  form, with the settings that form depends on pinned. The extended hash functions give the same
  values on every major version (hash partitioning relies on it), so a backup of a PostgreSQL 15
  server verifies on 18. Values that compare equal in their type hash equal: 1.0 and 1.00 in a
  numeric column count as the same content.
- ROW_TEXT ("row-text"): the sum of `hashtextextended(row::text, 0)`. Several times slower: every
  value is converted to text first.
"""

from contextlib import nullcontext
from typing import NamedTuple

import psycopg
from psycopg import sql

from .errors import PrepOpsError
from .objects import tables
from .sqlfiles import load

COLUMN_HASH = "column-hash-v2"
COLUMN_HASH_V1 = "column-hash-v1"
ROW_TEXT = "row-text"
METHODS = (COLUMN_HASH, COLUMN_HASH_V1, ROW_TEXT)
UNNAMED_METHOD = ROW_TEXT  # what a manifest without "checksum_method" used

# Hashed by their own extended hash function: these have one, with the same values, from
# PostgreSQL 14 on. A fixed list, so a type that gains a hash function in a later version does not
# change how a column is hashed between the two servers of a verification.
NATIVE_HASH_TYPES = (
    "smallint", "integer", "bigint", "numeric", "real", "double precision", "boolean", "text",
    "character varying", "character", "name", "date", "time without time zone", "time with time zone",
    "timestamp without time zone", "timestamp with time zone", "interval", "bytea", "jsonb", "uuid",
    "oid", "inet", "macaddr",
)
# What the text form of a value depends on, pinned for the columns hashed in text form.
TEXT_SETTINGS = {"DateStyle": "ISO, YMD", "IntervalStyle": "postgres", "TimeZone": "UTC",
                 "extra_float_digits": "1", "bytea_output": "hex"}
_SET_LOCAL = "SELECT set_config(name, value, true) FROM unnest(%s::text[], %s::text[]) AS s(name, value)"


def method_of(manifest: dict) -> str:
    """The checksum method a manifest's checksums were taken with."""
    return manifest.get("checksum_method", UNNAMED_METHOD)


class HashColumn(NamedTuple):
    """One column as `hash_columns.sql` describes it."""
    name: str
    hashing: str  # 'function', 'record' or 'text'
    not_null: bool  # declared NOT NULL (what v1 went by)
    function_schema: str | None
    function_name: str | None
    valid_not_null: bool  # and no NULL can be in it (PostgreSQL 18's NOT VALID not-null aside)
    collatable: bool


def hash_columns(conn: psycopg.Connection) -> dict[tuple[str, str], list[HashColumn]]:
    """{(schema, table): [HashColumn, ...]} in column order."""
    columns: dict[tuple[str, str], list[HashColumn]] = {}
    for schema, table, *column in conn.execute(load("checksums", "hash_columns"), {"types": list(NATIVE_HASH_TYPES)}):
        columns.setdefault((schema, table), []).append(HashColumn(*column))
    return columns


def _column_hash(column: HashColumn, seed: sql.Composable, collate: bool) -> sql.Composable:
    """The 64-bit hash of `column` of table alias `t` with `seed`; NULL for a NULL, except by record."""
    value = sql.SQL("t.{}").format(sql.Identifier(column.name))
    if column.hashing == "record":  # of one column: that column's own hash, 0 for NULL
        return sql.SQL("pg_catalog.hash_record_extended(ROW({}), {})").format(value, seed)
    if column.hashing == "text":
        value = sql.SQL("{}::text").format(value)
    if collate and (column.collatable or column.hashing == "text"):
        value = sql.SQL('({} COLLATE pg_catalog."default")').format(value)
    if column.hashing == "function":
        return sql.SQL("{}({}, {})").format(sql.Identifier(column.function_schema, column.function_name), value, seed)
    return sql.SQL("pg_catalog.hashtextextended({}, {})").format(value, seed)


def row_hash_v1(columns: list[HashColumn]) -> sql.Composable:
    """The COLUMN_HASH_V1 expression of one row of table alias `t`."""
    parts = []
    for position, column in enumerate(columns, 1):
        part = _column_hash(column, sql.Literal(position), collate=False)
        # the same value either way; a NOT NULL column skips the coalesce (8 % of the time)
        parts.append(part if column.not_null or column.hashing == "record" else sql.SQL("coalesce({}, 0)").format(part))
    return sql.SQL(" # ").join(parts) if parts else sql.SQL("0::bigint")


def row_hash(columns: list[HashColumn]) -> sql.Composable:
    """The COLUMN_HASH (v2) expression of one row of table alias `t`: the NOT NULL columns chained
    through the seed (one call each, no XOR), the others XORed in with their position as the seed."""
    chain, parts = None, []
    for position, column in enumerate(columns, 1):
        # by 'record' too: of a value that is not NULL, the same hash as by the function, seed included
        # (PostgreSQL 15 hashes boolean that way, 18 not: the same chain on both)
        if column.valid_not_null:
            chain = _column_hash(column, chain if chain is not None else sql.Literal(position), collate=True)
            continue
        part = _column_hash(column, sql.Literal(position), collate=True)
        parts.append(part if column.hashing == "record" else sql.SQL("coalesce({}, 0)").format(part))
    parts = ([chain] if chain is not None else []) + parts
    return sql.SQL(" # ").join(parts) if parts else sql.SQL("0::bigint")


def _queries(conn: psycopg.Connection, method: str) -> dict[str, sql.Composed]:
    if method == ROW_TEXT:
        template = sql.SQL(load("checksums", "table_checksum_text"))
        return {f"{s}.{t}": template.format(table=sql.Identifier(s, t)) for s, t in tables(conn, parents=False)}
    if method in (COLUMN_HASH, COLUMN_HASH_V1):
        columns = hash_columns(conn)
        expression = row_hash if method == COLUMN_HASH else row_hash_v1
        template = sql.SQL(load("checksums", "table_checksum_hash"))
        return {f"{s}.{t}": template.format(table=sql.Identifier(s, t), row_hash=expression(columns.get((s, t), [])))
                for s, t in tables(conn, parents=False)}
    raise PrepOpsError(f"unknown checksum method {method!r}; this prep-ops knows {', '.join(METHODS)}")


def table_checksums(conn: psycopg.Connection, method: str = COLUMN_HASH) -> dict[str, dict]:
    """{"schema.table": {"rows": n, "checksum": "..."}} for every user table, in the current
    transaction's snapshot (a connection in autocommit mode gets a transaction of its own)."""
    queries = _queries(conn, method)
    result = {}
    with conn.transaction() if conn.autocommit else nullcontext():
        names = list(TEXT_SETTINGS) if method in (COLUMN_HASH, COLUMN_HASH_V1) else []
        saved = [r[0] for r in conn.execute("SELECT current_setting(name) FROM unnest(%s::text[]) AS name", (names,))]
        conn.execute(_SET_LOCAL, (names, list(TEXT_SETTINGS.values())[:len(names)]))
        for table, query in queries.items():
            rows, checksum = conn.execute(query).fetchone()
            result[table] = {"rows": rows, "checksum": checksum}
        conn.execute(_SET_LOCAL, (names, saved))  # the caller's transaction goes on as it was
    return result


def row_counts(conn: psycopg.Connection) -> dict[str, int]:
    """{"schema.table": rows} for every user table."""
    return {f"{s}.{t}": conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(s, t))).fetchone()[0]
            for s, t in tables(conn, parents=False)}
