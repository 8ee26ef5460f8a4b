"""The audit log: who changed which row of the tables holding personal or financial data, when, how,
and the values before and after (pgaudit's idea of an audit trail, kept in the database).

Schema `audit` (the append-only table `audit.log` and its trigger function) comes from migration
0006_audit_log; on a database with a schema of its own (no prep-ops migrations), `install()` makes it
from that same file. `enable()` puts a row trigger and a TRUNCATE trigger on each table (named as in
SQL, in any schema; a partitioned table's trigger reaches its partitions) and lets the readers read the
log; enabling or disabling twice changes nothing.
The trigger function runs as the log's owner, so the roles it watches hold no privilege on the log:
they can neither read nor change it. Binary columns (audition recordings) are left out of the
logged values; a change to one still shows in `changed_columns`.
"""

import secrets
from collections.abc import Iterable

import pandas as pd
import psycopg
from psycopg import sql

from . import lock_watch
from .catalog import foreign_audit_schema, function_exists, own_schemas, relation_exists
from .db import Target, connect, fetch_frame, require_change, snapshot
from .errors import AuditLogError, ParameterError, database_error
from .labels import label
from .migrate import current_version, discover
from .schema import Table, resolve_tables
from .sqlfiles import load

SCHEMA = "audit"
DEFAULT_TABLES = ("users", "students", "tuition_payments")  # personal and financial data
ROW_TRIGGER, TRUNCATE_TRIGGER = "audit_log_row", "audit_log_truncate"
_LOCK = 0x61756474  # advisory lock key ("audt")


def _tables(tables: str | Iterable[str]) -> list[str]:
    names = [tables] if isinstance(tables, str) else list(tables)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ParameterError(f"tables must be one or more table names, not {tables!r}")
    return names


def _array_literal(names: list[str]) -> str:
    """A text[] literal of `names`, every element double-quoted, for a trigger argument."""
    quoted = ('"' + n.replace("\\", "\\\\").replace('"', '\\"') + '"' for n in names)
    return "{" + ",".join(quoted) + "}"


def _grant(conn: psycopg.Connection, readers: Iterable[str]) -> None:
    for reader in readers:
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA audit TO {}").format(sql.Identifier(reader)))
        conn.execute(sql.SQL("GRANT SELECT ON audit.log TO {}").format(sql.Identifier(reader)))


def _enabled(conn: psycopg.Connection, schema: str | None = None) -> dict[tuple[str, str], tuple[str, ...]]:
    """(schema, table) → trigger arguments of each logged table."""
    if not function_exists(conn, "audit.log_change()"):
        return {}
    rows = conn.execute(load("audit_log", "enabled")).fetchall()
    return {(s, n): tuple(a.decode() for a in bytes(args).split(b"\x00")[:-1])
            for s, n, args in rows if schema is None or s == schema}


def _resolve(conn: psycopg.Connection, names: list[str], schema: str) -> list[Table]:
    """The tables `names` name (as in SQL; a bare name in `schema` when that is not public)."""
    if schema != "public":
        names = [n if "." in n or n.startswith('"') else sql.Identifier(schema, n).as_string(None) for n in names]
    try:
        found = resolve_tables(conn, names)
    except ParameterError as exc:
        raise ParameterError(f"no table to audit: {exc}") from None
    ours = own_schemas(conn)
    own = [t.label for t in found if t.schema in ours]
    if own:  # a trigger on the log itself would log its own inserts without end
        raise ParameterError(f"no table to audit: {', '.join(own)} belong(s) to prep-ops' own "
                             f"{', '.join(ours)}, never audited")
    return found


def _arguments(conn: psycopg.Connection, qualified: sql.Composable, table: str) -> tuple[str, str]:
    try:
        with conn.transaction():
            columns = conn.execute(load("audit_log", "columns"), {"table": qualified.as_string(None)}).fetchall()
    except psycopg.errors.UndefinedTable:
        raise ParameterError(f"no table {table!r} to audit") from None
    keys = [name for name, in_key, _ in columns if in_key]
    left_out = [name for name, _, binary in columns if binary]
    return _array_literal(keys), _array_literal(left_out)


def _require_log(conn: psycopg.Connection) -> None:
    if not relation_exists(conn, "log", SCHEMA):
        how = ("migrate to the latest version (prep-ops migrate)" if current_version(conn) > 0
               else "install it (audit_log.install; runbook 06 does)")
        raise AuditLogError(f"there is no audit log in {conn.info.dbname} yet: {how}, then enable it (audit_log.enable)")


def _current_function(conn: psycopg.Connection) -> bool:
    """Whether audit.log_change() is migration 0009's (it names itself in its comment)."""
    return "(migration 0009)" in (conn.execute("SELECT obj_description('audit.log_change()'::regprocedure, 'pg_proc')"
                                               ).fetchone()[0] or "")


def install(conn: psycopg.Connection, *, confirm: bool = False) -> bool:
    """Make the audit log (schema `audit`, migrations 0006's and 0009's SQL, in one transaction) in a
    database with a schema of its own; False when it is there already (one installed before 0009 gets
    0009's function: a table owner's cast to json never runs with its rights). Where prep-ops' migrations are applied, the log
    comes from them instead (AuditLogError: migrate). Outside a scratch database, needs `confirm`."""
    if function_exists(conn, "audit.log_change()") and (current_version(conn) > 0 or _current_function(conn)):
        return False
    if current_version(conn) > 0:
        _require_log(conn)
        raise AuditLogError(f"the audit log's function is missing in {conn.info.dbname}: migrate to the latest version "
                            "(prep-ops migrate)")
    taken = foreign_audit_schema(conn)
    if taken:
        raise AuditLogError(f"{conn.info.dbname}: {taken}")
    require_change(conn, confirm, "installing the audit log")
    made, upgrade = ([m for m in discover() if m.name == name] for name in ("audit_log", "audit_log_casts"))
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            if function_exists(conn, "audit.log_change()") and _current_function(conn):  # installed meanwhile
                return False
            # the log as migrations 0006 and 0009 make it; one installed before 0009 gets its function
            for migration in ([] if function_exists(conn, "audit.log_change()") else made) + upgrade:
                conn.execute(migration.up_sql)
    except psycopg.Error as exc:
        raise database_error(exc, "installing the audit log failed, nothing changed", AuditLogError) from None
    return True


def enable(conn: psycopg.Connection, tables: str | Iterable[str] = DEFAULT_TABLES, *, readers: Iterable[str] = (),
           schema: str = "public", confirm: bool = False) -> list[str]:
    """Log every change to `tables` (named as in SQL: `archive.old_rentals`, `"Reporting"."Monthly Sales"`,
    or by name alone; the log itself comes from migration 0006, or `install`); returns the tables whose
    triggers were created or updated (schema.table, by name alone in public), so a second call returns [].
    `readers` get SELECT on the log. A name that is no table is a ParameterError listing the tables.
    Outside a scratch database, needs `confirm`."""
    names = _tables(tables)
    require_change(conn, confirm, "enabling the audit log")
    _require_log(conn)
    changed = []
    wait = None
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            wait = lock_watch.limit_ddl_wait(conn)  # CREATE TRIGGER queued behind a long transaction stalls the table's writers
            _grant(conn, readers)
            current = _enabled(conn)
            for found in _resolve(conn, names, schema):
                qualified, table = found.identifier, found.label
                keys, left_out = _arguments(conn, qualified, table)
                if current.get((found.schema, found.name)) == (keys, left_out):
                    continue
                conn.execute(sql.SQL("CREATE OR REPLACE TRIGGER {} AFTER INSERT OR UPDATE OR DELETE ON {} "
                                     "FOR EACH ROW EXECUTE FUNCTION audit.log_change({}, {})").format(
                    sql.Identifier(ROW_TRIGGER), qualified, sql.Literal(keys), sql.Literal(left_out)))
                conn.execute(sql.SQL("CREATE OR REPLACE TRIGGER {} AFTER TRUNCATE ON {} "
                                     "FOR EACH STATEMENT EXECUTE FUNCTION audit.log_change()").format(
                    sql.Identifier(TRUNCATE_TRIGGER), qualified))
                changed.append(table)
            wait.done(conn)
    except psycopg.errors.LockNotAvailable:
        raise AuditLogError(f"enabling the audit log failed, nothing changed: {lock_watch.gave_up(conn, wait)}") from None
    except psycopg.Error as exc:
        raise database_error(exc, "enabling the audit log failed, nothing changed", AuditLogError) from None
    return changed


def disable(conn: psycopg.Connection, tables: str | Iterable[str] = DEFAULT_TABLES, *, schema: str = "public",
            confirm: bool = False) -> list[str]:
    """Stop logging changes to `tables` (the log keeps what it holds); returns the tables that were
    logged, so a second call returns []. Outside a scratch database, needs `confirm`."""
    names = _tables(tables)
    require_change(conn, confirm, "disabling the audit log")
    changed = []
    wait = None
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            wait = lock_watch.limit_ddl_wait(conn)  # DROP TRIGGER queued behind a long transaction stalls the table's writers
            current = _enabled(conn, schema)
            for table in names:
                if (schema, table) not in current:
                    continue
                for trigger in (ROW_TRIGGER, TRUNCATE_TRIGGER):
                    conn.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(
                        sql.Identifier(trigger), sql.Identifier(schema, table)))
                changed.append(table)
            wait.done(conn)
    except psycopg.errors.LockNotAvailable:
        raise AuditLogError(f"disabling the audit log failed, nothing changed: {lock_watch.gave_up(conn, wait)}") from None
    except psycopg.Error as exc:
        raise database_error(exc, "disabling the audit log failed, nothing changed", AuditLogError) from None
    return changed


def logged_labels(conn: psycopg.Connection) -> set[str]:
    """The logged tables by the label a manifest keys them by (labels.label: `public.users`, `"a.b".c`)."""
    with snapshot(conn):
        return {label(schema, name) for schema, name in _enabled(conn)}


def enabled(conn: psycopg.Connection) -> list[str]:
    """The tables whose changes are logged, as schema.table (public tables by name alone)."""
    with snapshot(conn):
        return [name if schema == "public" else f"{schema}.{name}" for schema, name in _enabled(conn)]


def entries(conn: psycopg.Connection, table: str | None = None, limit: int = 50) -> pd.DataFrame:
    """The latest `limit` entries of the audit log, newest first (optionally of one table)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ParameterError(f"limit must be a positive whole number, not {limit!r}")
    with snapshot(conn):
        _require_log(conn)
        return fetch_frame(conn, load("audit_log", "entries"), {"table": table, "limit": limit})


def probe_change(login_target: Target) -> str:
    """As the logged-in role, make, change and remove one user row in one transaction (the table ends
    as it began), so the log shows an INSERT, an UPDATE and a DELETE; returns the probe's username."""
    username = f"audit-probe-{secrets.token_hex(4)}"
    with connect(login_target) as conn:
        try:
            row_id = conn.execute(load("audit_log", "probe"), {"username": username}).fetchone()[0]
            conn.execute("UPDATE users SET full_name = 'Audit Probe (changed)' WHERE id = %s", (row_id,))
            conn.execute("DELETE FROM users WHERE id = %s", (row_id,))
            conn.commit()
        except psycopg.Error as exc:
            conn.rollback()
            raise database_error(exc, "the probe change failed", AuditLogError) from None
    return username


def probe_entries(conn: psycopg.Connection, username: str) -> pd.DataFrame:
    """The log entries of one probe change (see `probe_change`), oldest first."""
    return fetch_frame(conn, load("audit_log", "probe_entries"), {"username": username})


def probe(conn: psycopg.Connection, login_target: Target) -> pd.DataFrame:
    """Make one probe change as the logged-in role (see `probe_change`) and return its log entries,
    read on `conn` (the log's owner or a reader), oldest first."""
    return probe_entries(conn, probe_change(login_target))


def probe_verdict(trail: pd.DataFrame | None) -> tuple[bool, str]:
    """Whether a probe's entries show its INSERT, UPDATE and DELETE, and what they show, in one line."""
    if trail is None or trail.empty:
        return False, "no entries"
    return list(trail["operation"]) == ["INSERT", "UPDATE", "DELETE"], f"{len(trail)} entries by {trail['login_role'].iloc[0]}"
