"""Data recovery: what an incident damaged, measured against a verified backup, and putting the
damaged rows back from it.

The backup's manifest holds each table's row count and content checksum, taken in the dump's own
snapshot, so `assess` says per table whether the data is still what was backed up. For the tables
that differ, `row_differences` compares the target row by row (primary key and a hash of the row)
with the backup restored into a scratch copy, and names the rows missing, changed and added since.
`repair_rows` writes the backup's version of the missing and changed rows back into the live tables
in one transaction; rows added since the backup are kept (they may be real work done after it),
and the audit log is never rewritten: it is the evidence.
"""

import io
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from .. import backup as backups
from .. import checksums, verify
from ..catalog import refuse_foreign_triggers
from ..db import Target, connect, require_change, snapshot
from ..errors import ParameterError, RecoveryError, database_error, first_line
from ..labels import as_labelled
from ..sqlfiles import load

SCOPES = ("rows", "database", "point-in-time")  # what a restore puts back: the damaged rows from the dump, the whole
# database, or the damaged rows as they were just before the damage (point_in_time.py)
EVIDENCE_SCHEMAS = ("audit",)  # never repaired from a backup
SAMPLE_KEYS = 5  # keys of differing rows quoted per table and kind
DIFFERENCES = ["table", "key", "missing", "changed", "added", "missing_keys", "changed_keys", "added_keys"]


def check_scope(scope: str) -> str:
    """`scope` if it is one of SCOPES, else ParameterError."""
    if scope not in SCOPES:
        raise ParameterError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    return scope


def latest_backup(conn: psycopg.Connection, directory: Path | None = None) -> backups.Backup:
    """The newest full backup of the connection's database (same cluster and name) in `directory`
    (default backups/): never another server's backup of a same-named database; NoBackups when there is none."""
    return backups.latest(directory, backups.identity(conn), "full")  # NoBackups when there is none


def assess(conn: psycopg.Connection, manifest: dict) -> pd.DataFrame:
    """Per table of the backup: rows then and now (in one snapshot), whether the content checksum still
    matches, and a state: intact, damaged, missing (table gone) or new (not in the backup)."""
    with snapshot(conn):
        now = backups.table_checksums(conn, checksums.method_of(manifest))
    recorded = as_labelled(manifest["tables"], now)  # an older manifest's a.b.c: "a.b".c, where it names one table
    rows = []
    for table in sorted(set(recorded) | set(now)):
        then, current = recorded.get(table), now.get(table)
        if then is None:
            state = "new"
        elif current is None:
            state = "missing"
        else:
            state = "intact" if current["checksum"] == then["checksum"] and current["rows"] == then["rows"] else "damaged"
        rows.append({"table": table, "rows_backup": then["rows"] if then else None,
                     "rows_now": current["rows"] if current else None,
                     "checksum_matches": bool(then and current and then["checksum"] == current["checksum"]),
                     "state": state, "evidence": table.split(".")[0] in EVIDENCE_SCHEMAS})
    return pd.DataFrame(rows)


def damaged_tables(assessment: pd.DataFrame) -> list[str]:
    """The tables to repair: damaged ones outside the evidence schemas."""
    return list(assessment.loc[(assessment["state"] == "damaged") & ~assessment["evidence"], "table"])


def missing_tables(assessment: pd.DataFrame) -> list[str]:
    """The backup's tables that are gone now (dropped), outside the evidence schemas: no row can be put back
    into them, and every row they held is lost."""
    return list(assessment.loc[(assessment["state"] == "missing") & ~assessment["evidence"], "table"])


COPY_PREFIX = "prep_ops_recovery_"  # restored copies: <COPY_PREFIX><random>, or an incident's own prefix


def restored_copy(backup: backups.Backup, prefix: str = COPY_PREFIX) -> tuple[Target, list[str]]:
    """The backup restored into a fresh scratch database named `prefix`<random> on the embedded server,
    and the roles made for it (see verify.restored_copy)."""
    return verify.restored_copy(backup.path, backup.manifest, prefix=prefix)


def drop_copy(copy: Target, roles: list[str] = ()) -> dict[str, str]:
    """Drop a copy made by `restored_copy`, then the roles made for it; returns roles that had to stay."""
    return verify.drop_copy(copy, roles)


@dataclass
class Damage:
    """What `investigate` found: per-table assessment, the damaged tables, their row differences, and
    the restored copy they were compared with (drop it with `drop_copy` when done)."""

    assessment: pd.DataFrame
    damaged: list[str]
    differences: pd.DataFrame
    copy: Target | None = field(repr=False)  # None: nothing damaged, so no copy was made
    roles: list[str] = field(default_factory=list)  # roles the restore had to create on the copy's server

    def drop(self) -> dict[str, str]:
        """Drop the copy and the roles made for it; returns roles that had to stay, with why."""
        if self.copy is None:
            return {}
        kept, self.copy = drop_copy(self.copy, self.roles), None
        return kept

    def lines(self) -> list[str]:
        """One sentence per damaged table, for the incident record."""
        gone = self.assessment.set_index("table").loc[missing_tables(self.assessment), "rows_backup"] \
            if len(self.assessment) else {}
        return [f"{r.table}: {r.missing} rows missing, {r.changed} changed, {r.added} added since the backup"
                + (f" (e.g. {r.key} {r.missing_keys or r.changed_keys})" if r.missing or r.changed else "")
                for r in self.differences.itertuples()] + \
            [f"{table}: the table is gone ({int(rows):,} rows in the backup): no row can be put back into it; "
             "scope='database' restores it" for table, rows in gone.items()]


def investigate(conn: psycopg.Connection, backup: backups.Backup, *, copy_prefix: str = COPY_PREFIX) -> Damage:
    """Compare the connection's database with `backup`: every table by count and checksum, the damaged
    ones row by row against the backup restored into a scratch copy (named `copy_prefix`<random>);
    with nothing damaged, no copy is made."""
    assessment = assess(conn, backup.manifest)
    damaged = damaged_tables(assessment)
    if not damaged:
        return Damage(assessment, [], pd.DataFrame(columns=DIFFERENCES), None)
    copy, created = restored_copy(backup, copy_prefix)
    try:
        with connect(copy, autocommit=True) as restored:
            differences = row_differences(conn, restored, damaged)
    except Exception:
        drop_copy(copy, created)
        raise
    return Damage(assessment, damaged, differences, copy, created)


def _split(conn: psycopg.Connection, table: str) -> tuple[str, str]:
    """(schema, name) of the table a manifest labels `schema.table`, as this database has it: a schema or
    table name may hold a dot itself (`"dotted.schema".t`), so the label is matched against the catalog,
    not cut at its first dot. No table, or several that fit: RecoveryError (ParameterError without a dot)."""
    if "." not in table:
        raise ParameterError(f"tables are named schema.table, not {table!r}")
    found = conn.execute(load("recovery", "table_named"), {"table": table}).fetchall()
    if len(found) != 1:
        raise RecoveryError(f"{table} names {'no table' if not found else f'{len(found)} tables'} in "
                            f"{conn.info.dbname}: " + (", ".join(f"{s!r}.{n!r}" for s, n in found) or "not found"))
    return found[0]


def key_columns(conn: psycopg.Connection, table: str) -> list[str]:
    """The primary-key columns of `table` (schema.table); RecoveryError when it has none."""
    schema, name = _split(conn, table)
    keys = [r[0] for r in conn.execute(load("recovery", "primary_key"), {"schema": schema, "table": name}).fetchall()]
    if not keys:
        raise RecoveryError(f"{table} has no primary key, so its rows cannot be matched; restore the whole database instead")
    return keys


def row_hashes(conn: psycopg.Connection, table: str, keys: list[str]) -> pd.DataFrame:
    """Every row of `table`: its `keys` and a 64-bit hash of the whole row's text."""
    query = sql.SQL(load("recovery", "row_hashes")).format(
        keys=sql.SQL(", ").join(sql.Identifier(k) for k in keys), table=sql.Identifier(*_split(conn, table)))
    with conn.cursor() as cur:
        cur.execute(query)
        return pd.DataFrame(cur.fetchall(), columns=[*keys, "row_hash"])


def row_differences(live: psycopg.Connection, restored: psycopg.Connection, tables: list[str]) -> pd.DataFrame:
    """Per table: rows missing from the database of `live`, changed in it, and added since the backup
    (restored on `restored`), with a few of their keys. Reads only (a hash per row on both sides, each
    side in one snapshot, compared here)."""
    rows = []
    with snapshot(live), snapshot(restored):
        for conn in (live, restored):
            conn.execute("SET LOCAL TimeZone = 'UTC'")
        for table in tables:
            keys = key_columns(live, table)
            now, then = row_hashes(live, table, keys), row_hashes(restored, table, keys)
            both = then.merge(now, on=keys, how="outer", suffixes=("_backup", "_now"), indicator=True)
            kinds = {"missing": both[both["_merge"] == "left_only"],
                     "changed": both[(both["_merge"] == "both") & (both["row_hash_backup"] != both["row_hash_now"])],
                     "added": both[both["_merge"] == "right_only"]}
            row = {"table": table, "key": ", ".join(keys)}
            for kind, found in kinds.items():
                row[kind] = len(found)
                sample = found[keys].head(SAMPLE_KEYS).itertuples(index=False, name=None)
                row[f"{kind}_keys"] = ", ".join(str(k[0] if len(k) == 1 else k) for k in sample)
            rows.append(row)
    return pd.DataFrame(rows, columns=DIFFERENCES)


def _load_order(conn: psycopg.Connection, tables: list[str]) -> list[str]:
    """`tables` with every referenced table before the tables that reference it."""
    edges = conn.execute(load("recovery", "references")).fetchall()
    pending, ordered = list(tables), []
    while pending:
        ready = [t for t in pending if not any(child == t and parent in pending and parent != t for child, parent in edges)]
        ready = ready or pending[:1]  # a cycle: take the first and let the constraint speak
        for table in ready:
            pending.remove(table)
            ordered.append(table)
    return ordered


def _qualified(alias: str, columns: list[str]) -> sql.Composable:
    """`alias.column, ...` for the columns."""
    return sql.SQL(", ").join(sql.Identifier(alias, c) for c in columns)


def repair_rows(live: psycopg.Connection, source: psycopg.Connection, tables: list[str], *,
                confirm: bool = False) -> pd.DataFrame:
    """Write the backup's version (restored on `source`) of every missing or changed row of `tables`
    back into the database of `live`, all tables in one transaction; rows added since the backup are
    kept. Per table: rows inserted and updated. Any failure rolls back everything."""
    require_change(live, confirm, "repairing rows from a backup")
    counts, table = [], ", ".join(tables)  # named in the error even when ordering the tables fails
    try:
        with snapshot(source), live.transaction():
            # the upserts fire the tables' triggers as us (a superuser perhaps): none may be another role's code
            refuse_foreign_triggers(live, [_split(live, t) for t in tables], "to repair " + ", ".join(tables))
            for label in tables:  # FROM ONLY a partitioned table is no rows: it would "repair" nothing
                schema, name = _split(live, label)
                if live.execute(load("recovery", "partitioned"), {"schema": schema, "table": name}).fetchone()[0]:
                    raise RecoveryError(f"{label} is partitioned: its rows are in its partitions, which are "
                                        "damaged or not each on its own; repair those")
            held = {t: _hold_before_triggers(live, *_split(live, t)) for t in tables}
            for number, table in enumerate(_load_order(live, tables), 1):
                schema, name = _split(live, table)
                keys = key_columns(live, table)
                columns = [r[0] for r in live.execute(load("recovery", "columns"), {"schema": schema, "table": name}).fetchall()]
                # numbered, not named after the table: tables of one name in two schemas (or two long names
                # the server cuts to the same 63 bytes) would share one
                staged = sql.Identifier(f"prep_ops_repair_{number}")
                cols = sql.SQL(", ").join(map(sql.Identifier, columns))
                live.execute(sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
                    staged, cols, sql.Identifier(schema, name)))
                buffer = io.BytesIO()
                # ONLY: an inheritance parent's own rows; its children's are theirs (and its key does not reach them)
                with source.cursor().copy(sql.SQL("COPY (SELECT {} FROM ONLY {}) TO STDOUT (FORMAT binary)").format(
                        cols, sql.Identifier(schema, name))) as out:
                    for block in out:
                        buffer.write(block)
                with live.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(staged, cols)) as into:
                    into.write(buffer.getvalue())
                live.execute(sql.SQL(load("recovery", "unchanged")).format(
                    staged=staged, table=sql.Identifier(schema, name),
                    live_keys=_qualified("live", keys), staged_keys=_qualified("staged", keys),
                    live_columns=_qualified("live", columns), staged_columns=_qualified("staged", columns)))
                others = [c for c in columns if c not in keys]
                statement = sql.SQL(load("recovery", "upsert")).format(
                    table=sql.Identifier(schema, name), columns=cols, staged=staged,
                    keys=sql.SQL(", ").join(map(sql.Identifier, keys)),
                    assignments=sql.SQL(", ").join(sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
                                                   for c in others) if others else sql.SQL("{} = EXCLUDED.{}").format(
                        sql.Identifier(keys[0]), sql.Identifier(keys[0])))
                result = live.execute(statement).fetchone()
                off, fired = held[table]
                counts.append({"table": table, "inserted": result[0], "updated": result[1],
                               "triggers_held_off": ", ".join(t["named"] for t in off),
                               "triggers_fired": ", ".join(t["named"] for t in fired)})
            for off, _ in held.values():
                for trigger in off:
                    live.execute(_TRIGGER_STATE[trigger["enabled"]].format(
                        table=sql.Identifier(trigger["schema"], trigger["table"]), trigger=sql.Identifier(trigger["trigger"])))
    except psycopg.Error as exc:
        raise database_error(exc, f"repairing {table} failed, so no table was changed", RecoveryError) from None
    return pd.DataFrame(counts, columns=REPAIRED)


REPAIRED = ["table", "inserted", "updated", "triggers_held_off", "triggers_fired"]
# a trigger held off is put back in the state it had: enabled (fires in a normal session) or enabled ALWAYS
_TRIGGER_STATE = {"O": sql.SQL("ALTER TABLE {table} ENABLE TRIGGER {trigger}"),
                  "A": sql.SQL("ALTER TABLE {table} ENABLE ALWAYS TRIGGER {trigger}")}


def _hold_before_triggers(conn: psycopg.Connection, schema: str, name: str) -> tuple[list[dict], list[dict]]:
    """The table's (and its partitions') row-level BEFORE INSERT or UPDATE triggers, disabled for the
    repair's transaction where this role may (owner or superuser), so that the rows go back exactly as
    the copy holds them: a trigger stamping `last_update` or recomputing a column would rewrite them, and
    the repaired rows would still differ (pagila's film), as `pg_restore --disable-triggers` holds them off
    for a data-only restore. AFTER triggers (the audit log, replication) and foreign-key checks still run.
    The caller enables them again before its transaction commits; a killed repair rolls the change back
    with everything else. ALTER TABLE takes SHARE ROW EXCLUSIVE, so no other session writes the table
    meanwhile and none writes it with the triggers off. Returns (held off, fired: not this role's to alter,
    or its ALTER TABLE refused by an event trigger, the reason in the trigger's name for the report)."""
    with conn.cursor(row_factory=dict_row) as cur:
        found = cur.execute(load("recovery", "before_triggers"), {"schema": schema, "table": name}).fetchall()
    for trigger in found:  # named with its partition in the report where it is not on the table itself
        trigger["named"] = trigger["trigger"] if (trigger["schema"], trigger["table"]) == (schema, name) else \
            f"{trigger['trigger']} (on {trigger['schema']}.{trigger['table']})"
    held, fired = [], [t for t in found if not t["owned"]]
    for trigger in (t for t in found if t["owned"]):
        try:  # a savepoint: an event trigger refusing the ALTER TABLE (a DDL freeze) fails it alone
            with conn.transaction():
                conn.execute(sql.SQL("ALTER TABLE {} DISABLE TRIGGER {}").format(
                    sql.Identifier(trigger["schema"], trigger["table"]), sql.Identifier(trigger["trigger"])))
        except psycopg.OperationalError:  # a lock timeout, a cancel, the server gone: the repair's failure
            raise
        except psycopg.Error as exc:  # it fires, as one this role may not alter, and the report says why
            trigger["named"] += f" (holding it off was refused: {first_line(exc)[:120]})"
            fired.append(trigger)
        else:
            held.append(trigger)
    return held, fired

