"""Per-table row counts and order-independent content checksums, by a named method.

A manifest records the method its checksums were taken with ("checksum_method"), and a
verification computes with the same one. Manifests without it come from before methods had names
and used ROW_TEXT.

- COLUMN_HASH ("column-hash-v4", what new backups use): v3's, with `real`, `double precision` and
  `interval` values hashed in their text form (EXACT_TEXT_TYPES), not by their types' hash functions.
  Those follow their types' equality, which holds values equal that are not the same: '1 mon' and
  '30 days' (date '2024-01-31' + either gives another day), '1 day' and '24:00:00', 0 and -0 (1/x
  differs). Their text forms, under the settings pinned (IntervalStyle postgres, extra_float_digits 1:
  the shortest exact form), tell them apart. And an inheritance child's columns (INHERITS, not a partition)
  are hashed in the order of their names: pg_dump makes such a table again with the inherited columns
  first, so a column its parent gained later came back in another place, and its sum differed. Without
  such columns or tables, v4's sums equal v3's.
- COLUMN_HASH_V3 ("column-hash-v3", backups up to 2026-12-01): v2's row hash over each table's own rows
  (`FROM ONLY`). v2 summed the rows of an inheritance parent (`INHERITS`, not a partitioned table)
  together with its children's, so those rows were counted twice: in the parent's count and sum and in
  each child's (a row lost from a child was reported lost twice). Without inheritance, v3's sums equal
  v2's.
- COLUMN_HASH_V2 ("column-hash-v2", backups up to 2026-12-01): each column value goes through its type's
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
  form, with the settings that form depends on pinned. The text form is the type's output function's
  (`format('%s', value)`, NULL for NULL), which is what `value::text` gave for every built-in type, but
  never a cast from pg_cast: a type's owner may declare any function of theirs its cast to text, and
  `::text` ran it as whoever took the checksums (a superuser's backup, say). The extended hash functions give the same
  values on every major version (hash partitioning relies on it), so a backup of a PostgreSQL 15
  server verifies on 18. Values that compare equal in their type hash equal: 1.0 and 1.00 in a
  numeric column count as the same content.
- ROW_TEXT ("row-text"): the sum of `hashtextextended(row::text, 0)`. Several times slower: every
  value is converted to text first.

Backup and verify pass the database they read (`target`): the tables are then summed on one
connection per CPU at once, each importing the snapshot of the caller's transaction (`each_table`),
which takes about half the time on two cores and changes no sum. Those connections wait for a lock as
long as the caller's session would (its lock_timeout), and are never left summing on their own: when the
caller's sums end early (Ctrl-C, SIGTERM, an error on any connection), each one's running query is
cancelled and the connection closed before `each_table` returns or raises.
"""

import os
import queue
import threading
import time
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import NamedTuple

import psycopg
from psycopg import sql

from .db import APPLICATION_NAME, Target, connect, snapshot
from .errors import PrepOpsError, TargetError, database_error, first_line
from .objects import tables
from .labels import label
from .sqlfiles import load

COLUMN_HASH = "column-hash-v4"
COLUMN_HASH_V3 = "column-hash-v3"
COLUMN_HASH_V2 = "column-hash-v2"
COLUMN_HASH_V1 = "column-hash-v1"
ROW_TEXT = "row-text"
METHODS = (COLUMN_HASH, COLUMN_HASH_V3, COLUMN_HASH_V2, COLUMN_HASH_V1, ROW_TEXT)
HELPER_NAME = f"{APPLICATION_NAME}:checksums"  # the application_name of the connections each_table opens
STOP_WAIT = 10.0  # seconds at most for stopped helpers to end, their queries cancelled, before the caller's error goes on
HASH_METHODS = (COLUMN_HASH, COLUMN_HASH_V3, COLUMN_HASH_V2, COLUMN_HASH_V1)  # by column hashes: settings pinned, concurrent
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
# Hashed in their text form by COLUMN_HASH (v4): their hash functions hold values equal that are not the same.
EXACT_TEXT_TYPES = ("real", "double precision", "interval")
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
    inherits: bool  # of an inheritance child (not a partition)


def hash_columns(conn: psycopg.Connection, method: str = COLUMN_HASH) -> dict[tuple[str, str], list[HashColumn]]:
    """{(schema, table): [HashColumn, ...]} in column order, as `method` hashes them."""
    columns: dict[tuple[str, str], list[HashColumn]] = {}
    native = [t for t in NATIVE_HASH_TYPES if method != COLUMN_HASH or t not in EXACT_TEXT_TYPES]
    for schema, table, *column in conn.execute(load("checksums", "hash_columns"), {"types": native}):
        columns.setdefault((schema, table), []).append(HashColumn(*column))
    if method == COLUMN_HASH:  # an inheritance child's columns by name: a restore gives them another order
        columns = {key: sorted(found, key=lambda c: c.name) if found and found[0].inherits else found
                   for key, found in columns.items()}
    return columns


def _column_hash(column: HashColumn, seed: sql.Composable, collate: bool) -> sql.Composable:
    """The 64-bit hash of `column` of table alias `t` with `seed`; NULL for a NULL, except by record."""
    value = sql.SQL("t.{}").format(sql.Identifier(column.name))
    if column.hashing == "record":  # of one column: that column's own hash, 0 for NULL
        return sql.SQL("pg_catalog.hash_record_extended(ROW({}), {})").format(value, seed)
    if column.hashing == "text":
        # the type's output function, as `::text` calls it, but never a cast of pg_cast: the owner of a type
        # may make its cast to text any function of theirs, which `::text` would run as whoever sums
        value = sql.SQL("CASE WHEN pg_catalog.num_nulls({0}) = 0 THEN pg_catalog.format('%s', {0}) END").format(value)
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
    """The v2, v3 and v4 (COLUMN_HASH) expression of one row of table alias `t`: the NOT NULL columns chained
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


def own_rows(method: str) -> bool:
    """Whether `method` reads each table's own rows only (`FROM ONLY`), without an inheritance
    parent's children: what a row count to compare with its manifest must do too."""
    return method in (COLUMN_HASH, COLUMN_HASH_V3)


def _from(method: str, schema: str, table: str) -> sql.Composable:
    only = sql.SQL("ONLY ") if own_rows(method) else sql.SQL("")
    return sql.Composed([only, sql.Identifier(schema, table)])


def _queries(conn: psycopg.Connection, method: str) -> dict[tuple[str, str], sql.Composed]:
    if method == ROW_TEXT:
        template = sql.SQL(load("checksums", "table_checksum_text"))
        return {(s, t): template.format(table=_from(method, s, t)) for s, t in tables(conn, parents=False)}
    if method in HASH_METHODS:
        columns = hash_columns(conn, method)
        expression = row_hash_v1 if method == COLUMN_HASH_V1 else row_hash
        template = sql.SQL(load("checksums", "table_checksum_hash"))
        return {(s, t): template.format(table=_from(method, s, t), row_hash=expression(columns.get((s, t), [])))
                for s, t in tables(conn, parents=False)}
    raise PrepOpsError(f"unknown checksum method {method!r}; this prep-ops knows {', '.join(METHODS)}")


def table_checksums(conn: psycopg.Connection, method: str = COLUMN_HASH, *, target: Target | None = None,
                    jobs: int | None = None, application_name: str = HELPER_NAME) -> dict[str, dict]:
    """{"schema.table" (labels.label): {"rows": n, "checksum": "..."}} for every user table, in the current
    transaction's snapshot (outside a transaction, in a REPEATABLE READ one of its own).

    With `target`, the database `conn` is connected to, the column-hash methods sum the tables on up to
    `jobs` connections at once (default: one per CPU), as `each_table` does: the same snapshot, the same
    sums, in about half the time on two cores (row-text stays on `conn`: its sums depend on the session's
    settings), each of those connections named `application_name`.
    """
    queries = _queries(conn, method)
    pinned = TEXT_SETTINGS if method in HASH_METHODS else {}
    idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE  # no transaction of the caller's
    # row-text sums depend on the session's DateStyle, TimeZone and the like, which a connection of its own
    # would not share: only the column-hash methods, whose settings each connection sets, go concurrent
    concurrent = target if pinned else None
    # every row or an error, as pg_dump reads them: a row-level security policy (on a table whose owner it
    # binds, FORCE) made a restore by that owner count the rows it shows and refuse a good restore
    settings = {**pinned, "row_security": "off"}
    try:
        with snapshot(conn) if idle else nullcontext():
            rows = each_table(conn, queries, target=concurrent, jobs=jobs, settings=settings,
                              application_name=application_name)
    except psycopg.errors.InsufficientPrivilege as exc:
        if "row-level security" not in str(exc):
            raise
        hint = getattr(exc.diag, "message_hint", None) or ""
        raise PrepOpsError(f"the checksums must read every row, and row-level security would hide some from this "
                           f"role: {first_line(exc)}" + (f" ({hint.rstrip('.')})" if hint else "")
                           + "; or run it as a superuser or a role with BYPASSRLS") from None
    return {label(s, t): {"rows": n, "checksum": checksum} for (s, t), (n, checksum) in rows.items()}


def each_table(conn: psycopg.Connection, queries: dict[tuple[str, str], sql.Composable], *,
               target: Target | None = None, jobs: int | None = None, settings: dict[str, str] | None = None,
               application_name: str = HELPER_NAME) -> dict[tuple[str, str], tuple]:
    """{(schema, table): the first row of its query}, every query run with `settings` set for the
    transaction (the caller's own values back afterwards), in `conn`'s current transaction's snapshot.

    With `target` (the database `conn` is connected to), on up to `jobs` connections at once (default:
    one per CPU), largest table first, each next table to the first connection free: `conn` itself and
    connections to `target` whose transaction imports `conn`'s snapshot (pg_export_snapshot, SET
    TRANSACTION SNAPSHOT, as pg_dump --jobs does), so they read exactly what `conn` reads; a snapshot of
    another database or server cannot be imported. Only `conn` when its transaction has written (an
    imported snapshot does not see that transaction's own changes), and for what no other connection
    could be opened for. `conn`'s transaction must not be in a savepoint (no snapshot is exported there).
    The other connections (named `application_name`) take `conn`'s lock_timeout: behind another session's
    lock they wait no longer than `conn` would. Whatever ends the sums early (an error on any connection,
    KeyboardInterrupt) cancels every other connection's running query and closes it before this raises.
    """
    settings = settings or {}
    names, values = list(settings), list(settings.values())
    saved = [r[0] for r in conn.execute("SELECT current_setting(name) FROM unnest(%s::text[]) AS name", (names,))]
    conn.execute(_SET_LOCAL, (names, values))
    jobs = min(jobs or os.cpu_count() or 1, len(queries))
    if target is None or jobs < 2 or _has_written(conn):
        rows = {table: conn.execute(query).fetchone() for table, query in queries.items()}
    else:
        rows = _concurrently(conn, queries, target, jobs, (names, values), application_name)
    conn.execute(_SET_LOCAL, (names, saved))  # the caller's transaction goes on as it was
    return rows


def _has_written(conn: psycopg.Connection) -> bool:
    """Whether the connection's transaction has a transaction id: it has written (an imported snapshot
    would not see those changes)."""
    function = "pg_current_xact_id_if_assigned" if conn.info.server_version >= 130000 else "txid_current_if_assigned"
    return conn.execute(sql.SQL("SELECT {}() IS NOT NULL").format(sql.Identifier("pg_catalog", function))).fetchone()[0]


def _concurrently(conn: psycopg.Connection, queries: dict[tuple[str, str], sql.Composable], target: Target,
                  jobs: int, settings: tuple[list[str], list[str]], application_name: str) -> dict[tuple[str, str], tuple]:
    exported = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
    # the helpers wait for a lock no longer than the caller would (a backup bounds its wait so)
    lock_timeout = conn.execute("SELECT current_setting('lock_timeout')").fetchone()[0]
    settings = ([*settings[0], "lock_timeout"], [*settings[1], lock_timeout])
    schemas, names = zip(*queries)
    sizes = dict(((s, t), size) for s, t, size in conn.execute(load("checksums", "table_sizes"), (list(schemas), list(names))))
    pending: queue.SimpleQueue = queue.SimpleQueue()
    for table in sorted(queries, key=lambda table: -sizes[table]):
        pending.put(table)
    rows: dict[tuple[str, str], tuple] = {}
    stopping = threading.Event()
    opened: list[psycopg.Connection] = []  # the helpers' connections, to cancel from this thread

    def work(on: psycopg.Connection) -> None:
        while not stopping.is_set():
            try:
                table = pending.get_nowait()
            except queue.Empty:
                return
            rows[table] = on.execute(queries[table]).fetchone()

    def helper() -> None:
        try:
            helping()
        except BaseException:  # a lock_timeout, an error: the caller's connection takes no further table
            stopping.set()  # either, and the error is raised as soon as the table it is on is summed
            raise

    def helping() -> None:
        if stopping.is_set():
            return
        try:
            other = connect(target, application_name=application_name)
        except TargetError:  # no connection to spare (max_connections): conn does the rest
            return
        opened.append(other)
        with other:
            other.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            try:
                other.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(exported)))
            except psycopg.Error as exc:  # another database, or another server
                raise database_error(exc, f"cannot read {target.masked_url} in the snapshot of the "
                                          "checksums' connection") from None
            other.execute(_SET_LOCAL, settings)
            work(other)
            other.rollback()

    pool = ThreadPoolExecutor(jobs - 1, thread_name_prefix="prep-ops checksums")
    helpers = [pool.submit(helper) for _ in range(jobs - 1)]
    try:
        work(conn)
        for done in helpers:
            done.result()  # a helper's error is raised here
    except BaseException:  # an error here or in a helper, Ctrl-C, SIGTERM: no helper sums on alone
        _stop_helpers(stopping, helpers, opened)
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return rows


def _stop_helpers(stopping: threading.Event, helpers: list, opened: list[psycopg.Connection]) -> None:
    """Stop the helpers: none takes another table, and each one's running query is cancelled (again, until
    its thread has ended: a helper may start its query just after a cancel), its connection then closed by
    its own thread (a connection is closed by the thread using it, never from here under its query)."""
    stopping.set()
    deadline = time.monotonic() + STOP_WAIT
    while not all(done.done() for done in helpers) and time.monotonic() < deadline:
        for other in list(opened):
            if not other.closed:
                try:
                    other.cancel_safe(timeout=2)
                except Exception:  # noqa: BLE001 (a connection that cannot be reached has nothing running)
                    pass
        futures.wait(helpers, timeout=0.2)


def row_counts(conn: psycopg.Connection, method: str = COLUMN_HASH) -> dict[str, int]:
    """{"schema.table": rows} for every user table, counted as `method` counts them (see own_rows): every row,
    as the checksums read them (row_security off in a transaction of its own, or the caller's; a policy that
    would hide rows is an error, never a count of fewer rows and rows reported lost)."""
    with conn.transaction():
        saved = conn.execute("SELECT current_setting('row_security')").fetchone()[0]
        conn.execute("SELECT set_config('row_security', 'off', true)")
        counted = {label(s, t): conn.execute(sql.SQL("SELECT count(*) FROM {}").format(_from(method, s, t))).fetchone()[0]
                   for s, t in tables(conn, parents=False)}
        conn.execute("SELECT set_config('row_security', %s, true)", (saved,))
    return counted
