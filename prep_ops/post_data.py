"""Set aside the keys, indexes and foreign keys of tables for a bulk load, and put them back after it,
as pg_restore loads a dump: the data first, then each primary key, UNIQUE constraint and index in one
sorted build instead of one insertion per row, then each foreign key in one validating join instead
of one lookup per row (benchmarks/README.md, "Seeding").

What is set aside is read from the catalog, not from the school's DDL: what the tables' server-written
definitions (pg_get_constraintdef, pg_get_indexdef) describe completely (see the three .sql files).
Anything more stays and is kept up row by row, as before: a key that a foreign key of another table
leans on, an index with a comment, a tablespace, a CLUSTER mark ... CHECK and NOT NULL constraints,
defaults and triggers are never touched. Names and definitions come back exactly as they were.

Only inside a transaction: a failure, or a killed client, rolls the drops back with everything else.
"""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import pq, sql
from psycopg.rows import dict_row

from .errors import ParameterError
from .sqlfiles import load


@dataclass(frozen=True)
class PostData:
    """What is set aside: one dict (schema, table, name, definition) per primary key or UNIQUE
    constraint, index and foreign key."""

    keys: list[dict]
    indexes: list[dict]
    foreign_keys: list[dict]


def _qualified(tables: Iterable["str | tuple[str, str]"]) -> list[str]:
    return [sql.Identifier(*(t if isinstance(t, tuple) else ("public", t))).as_string(None) for t in tables]


def read(conn: psycopg.Connection, tables: Iterable["str | tuple[str, str]"]) -> PostData:
    """The keys, indexes and foreign keys of `tables` ("name" in public, or (schema, name)) that a load
    may drop and make again from their definitions, each definition naming every object with its schema.
    Inside a transaction (an error aborts it, which also gives the search_path back)."""
    names = _qualified(tables)
    path = conn.execute("SELECT current_setting('search_path')").fetchone()[0]
    # an empty search_path makes the server qualify every name it writes, as pg_dump has it do: a
    # table someone makes meanwhile in a schema earlier on our path cannot capture a REFERENCES
    conn.execute("SELECT set_config('search_path', '', true)")
    with conn.cursor(row_factory=dict_row) as cur:
        foreign_keys = cur.execute(load("post_data", "foreign_keys"), {"tables": names}).fetchall()
        oids = [key.pop("oid") for key in foreign_keys]
        keys = cur.execute(load("post_data", "keys"), {"tables": names, "foreign_keys": oids}).fetchall()
        indexes = cur.execute(load("post_data", "indexes"), {"tables": names}).fetchall()
    conn.execute("SELECT set_config('search_path', %s, true)", (path,))
    return PostData(keys, indexes, foreign_keys)


def _table(row: dict) -> sql.Identifier:
    return sql.Identifier(row["schema"], row["table"])


def drop(conn: psycopg.Connection, post: PostData) -> None:
    """Drop the foreign keys, the primary keys and UNIQUE constraints, then the indexes of `post`."""
    for key in post.foreign_keys + post.keys:
        conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(_table(key), sql.Identifier(key["name"])))
    for index in post.indexes:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(index["schema"], index["name"])))


def create(conn: psycopg.Connection, post: PostData) -> None:
    """Add the primary keys and UNIQUE constraints of `post` (each index built in one sort), build its
    indexes, then add its foreign keys (each validated in one join), each kind in the order first made;
    the definitions are the server's own text, run as pg_restore runs them."""
    for key in post.keys:
        _add_constraint(conn, key)
    for index in post.indexes:
        conn.execute(sql.SQL(index["definition"]))
    for key in post.foreign_keys:
        _add_constraint(conn, key)


def _add_constraint(conn: psycopg.Connection, key: dict) -> None:
    conn.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
        _table(key), sql.Identifier(key["name"]), sql.SQL(key["definition"])))


@contextmanager
def set_aside(conn: psycopg.Connection, tables: Iterable["str | tuple[str, str]"]) -> Iterator[PostData]:
    """Inside the caller's transaction: drop the keys, indexes and foreign keys of `tables` that `read`
    finds, yield them for the load, then create them again. An error (here or in the load) leaves them
    dropped in a transaction that must roll back, which restores them."""
    if conn.info.transaction_status != pq.TransactionStatus.INTRANS:
        raise ParameterError("keys, indexes and foreign keys are set aside only inside a transaction")
    post = read(conn, tables)
    drop(conn, post)
    yield post
    create(conn, post)
