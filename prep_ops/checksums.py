"""Per-table row counts and order-independent content checksums, by a named method.

A manifest records the method its checksums were taken with ("checksum_method"), and a
verification computes with the same one. Manifests without it come from before methods had names
and used ROW_TEXT.

- COLUMN_HASH ("column-hash-v1", what new backups use): each column value goes through its type's
  built-in 64-bit extended hash function seeded with the column's position (1, 2, ...; a NULL
  counts as 0), a row's hash is the XOR of its columns', and the checksum is the sum over the rows.
  Types outside NATIVE_HASH_TYPES (json has no hash function) are hashed in their text form, with
  the settings that form depends on pinned. The extended hash functions give the same values on
  every major version (hash partitioning relies on it), so a backup of a PostgreSQL 15 server
  verifies on 18. Values that compare equal hash equal: 1.0 and 1.00 in a numeric column count as
  the same content.
- ROW_TEXT ("row-text"): the sum of `hashtextextended(row::text, 0)`. Several times slower: every
  value is converted to text first.
"""

from contextlib import nullcontext

import psycopg
from psycopg import sql

from .errors import PrepOpsError
from .objects import tables
from .sqlfiles import load

COLUMN_HASH = "column-hash-v1"
ROW_TEXT = "row-text"
METHODS = (COLUMN_HASH, ROW_TEXT)
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


def hash_columns(conn: psycopg.Connection) -> dict[tuple[str, str], list[tuple]]:
    """{(schema, table): [(column, hashing, not_null, function_schema, function_name), ...]} in column order."""
    columns: dict[tuple[str, str], list[tuple]] = {}
    for schema, table, *column in conn.execute(load("checksums", "hash_columns"), {"types": list(NATIVE_HASH_TYPES)}):
        columns.setdefault((schema, table), []).append(tuple(column))
    return columns


def row_hash(columns: list[tuple]) -> sql.Composable:
    """The COLUMN_HASH expression of one row of table alias `t`, from `hash_columns.sql`'s rows."""
    parts = []
    for position, (column, hashing, not_null, function_schema, function_name) in enumerate(columns, 1):
        value = sql.SQL("t.{}").format(sql.Identifier(column))
        if hashing == "record":  # of one column: that column's own hash, 0 for NULL
            parts.append(sql.SQL("pg_catalog.hash_record_extended(ROW({}), {})").format(value, position))
            continue
        if hashing == "function":
            part = sql.SQL("{}({}, {})").format(sql.Identifier(function_schema, function_name), value, position)
        else:
            part = sql.SQL("pg_catalog.hashtextextended({}::text, {})").format(value, position)
        # the same value either way; a NOT NULL column skips the coalesce (8 % of the time)
        parts.append(part if not_null else sql.SQL("coalesce({}, 0)").format(part))
    return sql.SQL(" # ").join(parts) if parts else sql.SQL("0::bigint")


def _queries(conn: psycopg.Connection, method: str) -> dict[str, sql.Composed]:
    if method == ROW_TEXT:
        template = sql.SQL(load("checksums", "table_checksum_text"))
        return {f"{s}.{t}": template.format(table=sql.Identifier(s, t)) for s, t in tables(conn, parents=False)}
    if method == COLUMN_HASH:
        columns = hash_columns(conn)
        template = sql.SQL(load("checksums", "table_checksum_hash"))
        return {f"{s}.{t}": template.format(table=sql.Identifier(s, t), row_hash=row_hash(columns.get((s, t), [])))
                for s, t in tables(conn, parents=False)}
    raise PrepOpsError(f"unknown checksum method {method!r}; this prep-ops knows {', '.join(METHODS)}")


def table_checksums(conn: psycopg.Connection, method: str = COLUMN_HASH) -> dict[str, dict]:
    """{"schema.table": {"rows": n, "checksum": "..."}} for every user table, in the current
    transaction's snapshot (a connection in autocommit mode gets a transaction of its own)."""
    queries = _queries(conn, method)
    result = {}
    with conn.transaction() if conn.autocommit else nullcontext():
        names = list(TEXT_SETTINGS) if method == COLUMN_HASH else []
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
