"""Runbook 10's point-in-time scope: the moment just before the first damaging change, the database as
it was then (pitr.recover, into a new database beside it), and what the dump-based scope would lose.

The damaged rows are those the assessment found missing or changed against the last logical dump. The
first damaging change is the earliest of the changes that left a damaged row as it is now (or removed
it), read from:
1. the audit log (prep_ops.audit_log), when it logs every damaged table: each row's last entry since
   the dump began; the moment is one microsecond before the earliest of them;
2. else the WAL (pg_walinspect, PostgreSQL 16+, where it is installed): the heap records of the damaged
   tables since the dump's snapshot (its manifest's "snapshot": from "lsn_before"; a manifest without
   one: since the base backup the recovery starts from); a changed row's last record is the one that
   wrote its present version (matched by its ctid), a missing row's the tables' DELETE records; of
   those transactions, the ones the dump's snapshot sees are left out (committed before the dump, they
   cannot have damaged a row against it: an ordinary delete between base backup and dump is no damage);
   the target is the earliest record of the others (recovery stops just before it). A transaction
   already in progress at the snapshot whose records all lie before it is not seen here: the moment
   found is then too late, and step 4 says so (rows the dump held still missing);
3. else neither can say: ParameterError, one line asking for `recover_to`.
A row changed after the dump on purpose and not damaged since also differs from the dump, so it is
taken for damage (nothing in the data tells them apart): the moment found is then too early, and the
report names the change it took; give `recover_to` to overrule it.

What the dump-based scope would lose (`dump_losses`): the rows as they were at the moment that putting
the dump's rows back (scope="rows") would not leave as they were: rows added after the dump that the
damage removed or changed, and rows changed after the dump (reverted to the dump's version).
"""

import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
import psycopg
from psycopg import sql

from .. import audit_log, base_backup, pitr, wal_archive
from ..catalog import relation_exists
from ..chain_verify import Position
from ..db import Target, connect
from ..errors import ParameterError
from ..sqlfiles import load
from . import recovery

ASK = ("give recover_to: the moment just before the damage (e.g. '2026-11-30T14:05:09+00:00') "
       "or the WAL location of the damaging record (e.g. '0/3A2B1C0')")


@dataclass
class Moment:
    """Where the point-in-time copy stops: a time (everything committed up to it) or a WAL location
    (nothing from it on), how it was found, and what it stands before."""

    to_time: datetime | None
    to_lsn: str | None
    source: str  # "given", "audit log" or "WAL (pg_walinspect)"
    detail: str = ""

    @property
    def text(self) -> str:
        return self.to_time.isoformat() if self.to_time else f"WAL location {self.to_lsn}"


def given(recover_to) -> Moment:
    """`recover_to` (a datetime, an ISO date and time, or an LSN such as '0/3A2B1C0') as a Moment."""
    if isinstance(recover_to, datetime):
        return Moment(pitr.aware(recover_to), None, "given")
    text = str(recover_to).strip()
    if "/" in text and ":" not in text:
        base_backup.lsn_value(text)  # ParameterError for anything else
        return Moment(None, text.upper(), "given")
    return Moment(pitr.parse_moment(text), None, "given")


# --- the rows of each side ------------------------------------------------------------------------
def frames(conn: psycopg.Connection, tables: list[str]) -> dict[str, pd.Series]:
    """Per table, the hash of each row by its primary key (a tuple of key values as text)."""
    out = {}
    for table in tables:
        keys = recovery.key_columns(conn, table)
        rows = recovery.row_hashes(conn, table, keys)
        out[table] = pd.Series(rows["row_hash"].to_numpy(), index=[tuple(map(str, k)) for k in
                                                                    rows[keys].itertuples(index=False, name=None)])
    return out


def damaged_keys(live: dict[str, pd.Series], dump: dict[str, pd.Series]) -> dict[str, dict[str, set]]:
    """Per table: the keys of rows missing from the live table and changed in it, against the dump."""
    out = {}
    for table, then in dump.items():
        now = live[table]
        both = then.index.intersection(now.index)
        out[table] = {"missing": set(then.index.difference(now.index)),
                      "changed": set(k for k in both if then[k] != now[k])}
    return out


def dump_losses(live: dict, dump: dict, at_moment: dict) -> pd.DataFrame:
    """Per table: rows of the moment that the dump-based repair (the dump's version of every row it
    holds, rows it lacks left as they are now) would not give back as they were, with a few keys."""
    rows = []
    for table, wanted in at_moment.items():
        then, now = dump[table], live[table]
        repaired = pd.concat([then, now[now.index.difference(then.index)]])
        lost = [k for k in wanted.index if k not in repaired.index or repaired[k] != wanted[k]]
        rows.append({"table": table, "lost": len(lost),
                     "lost_keys": ", ".join(k[0] if len(k) == 1 else str(k) for k in lost[:recovery.SAMPLE_KEYS])})
    return pd.DataFrame(rows, columns=["table", "lost", "lost_keys"])


# --- the first damaging change --------------------------------------------------------------------
def _key_text(row_key: dict, keys: list[str]) -> tuple:
    return tuple(str(row_key.get(k)) for k in keys)


def from_audit_log(conn: psycopg.Connection, damaged: dict[str, dict[str, set]], since: datetime) -> Moment | None:
    """The moment one microsecond before the earliest last change of a damaged row in the audit log,
    when the log watches every damaged table and holds such a change; else None."""
    tables = [t for t, kinds in damaged.items() if kinds["missing"] or kinds["changed"]]
    if not tables or not relation_exists(conn, "log", audit_log.SCHEMA):
        return None
    watched = audit_log.logged_labels(conn)  # labelled as the manifest labels the damaged tables
    if not set(tables) <= watched:
        return None
    keys = {t: recovery.key_columns(conn, t) for t in tables}
    first = None
    for table, row_key, at, xid, operation in conn.execute(load("point_in_time", "audit_last_changes"),
                                                           {"since": since, "tables": tables}).fetchall():
        row_key = row_key if isinstance(row_key, dict) else json.loads(row_key)
        key = _key_text(row_key, keys[table])
        if key in damaged[table]["missing"] | damaged[table]["changed"] and (first is None or at < first[0]):
            first = (at, xid, operation, table, row_key)
    if first is None:
        return None
    at, xid, operation, table, row_key = first
    return Moment(at - timedelta(microseconds=1), None, "audit log",
                  f"the first damaging change: {operation} of {table} {json.dumps(row_key)} at {at.isoformat()} "
                  f"(transaction {xid})")


def _walinspect(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_walinspect'").fetchone() is not None


def _flushed(conn: psycopg.Connection, seconds: float = 10.0) -> str:
    """The WAL location written so far, once it is flushed (pg_walinspect reads flushed WAL only; an
    asynchronous commit's WAL is flushed by the WAL writer within a few wal_writer_delay)."""
    end = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0]
    deadline = time.monotonic() + seconds
    while conn.execute("SELECT pg_current_wal_flush_lsn() < %s::pg_lsn", (end,)).fetchone()[0]:
        if time.monotonic() > deadline:
            break  # read what is flushed
        time.sleep(0.1)
    return end


def _filenode(conn: psycopg.Connection, table: str) -> int:
    schema, name = recovery._split(conn, table)
    return conn.execute(load("point_in_time", "relfilenode"), {"schema": schema, "table": name}).fetchone()[0]


def from_wal(conn: psycopg.Connection, damaged: dict[str, dict[str, set]], start_lsn: str,
             snapshot: dict | None = None) -> Moment | None:
    """The WAL location of the earliest record of the transactions that last wrote (or deleted) a
    damaged row since `start_lsn`, from pg_walinspect where installed; else None. With the dump's
    `snapshot` (its manifest's), transactions it sees are left out: they came before the dump."""
    tables = [t for t, kinds in damaged.items() if kinds["missing"] or kinds["changed"]]
    if not tables or not _walinspect(conn):
        return None
    nodes = {_filenode(conn, t): t for t in tables}
    end = _flushed(conn)
    try:
        with conn.transaction():
            records = pd.DataFrame(conn.execute(load("point_in_time", "wal_heap_records"),
                                                {"start": start_lsn, "end": end, "nodes": list(nodes)}).fetchall(),
                                   columns=["start_lsn", "xid", "relfilenode", "block", "kind", "off"])
    except psycopg.Error:  # WAL no longer in pg_wal, or not allowed to read it: not found
        return None
    if records.empty:
        return None
    records["table"] = records["relfilenode"].map(nodes)
    xids = set()
    for table in tables:
        mine = records[records["table"] == table]
        if damaged[table]["missing"]:
            xids |= set(mine.loc[mine["kind"] == "DELETE", "xid"])
        changed = damaged[table]["changed"]
        if changed:
            keys = recovery.key_columns(conn, table)
            located = sql.SQL(load("point_in_time", "row_locations")).format(
                keys=sql.SQL(", ").join(map(sql.Identifier, keys)), table=sql.Identifier(*recovery._split(conn, table)))
            where = {tuple(map(str, k[:-2])): (k[-2], k[-1]) for k in conn.execute(located).fetchall()}
            written = mine[mine["kind"] != "DELETE"].drop_duplicates(["block", "off"], keep="last")
            last = {(b, o): x for b, o, x in written[["block", "off", "xid"]].itertuples(index=False, name=None)}
            xids |= {last[where[k]] for k in changed if k in where and where[k] in last}
    if snapshot is not None:
        position = Position.of({"snapshot": snapshot})
        xids = {x for x in xids if not position.sees(position.full_xid(int(x)))}
    if not xids:
        return None
    first = records[records["xid"].isin(xids)].iloc[0]
    return Moment(None, first["start_lsn"], "WAL (pg_walinspect)",
                  f"the first damaging change: a heap {first['kind']} of {first['table']} at WAL location "
                  f"{first['start_lsn']} (transaction {first['xid']}; {len(xids)} damaging transaction(s))")


def find_moment(conn: psycopg.Connection, damaged: dict[str, dict[str, set]], *, since: datetime,
                start_lsn: str | None, snapshot: dict | None = None) -> Moment:
    """The moment just before the first damaging change: from the audit log, else the WAL (from the
    dump's `snapshot` when its manifest records one, else from `start_lsn`); else ParameterError asking
    for recover_to in one line."""
    if snapshot is not None:
        start_lsn = snapshot.get("lsn_before") or snapshot["lsn"]
    found = from_audit_log(conn, damaged, since) or (from_wal(conn, damaged, start_lsn, snapshot) if start_lsn else None)
    if found is None:
        raise ParameterError("the first damaging change is in neither the audit log nor the WAL pg_walinspect "
                             f"reads: {ASK}")
    return found


# --- what the target offers -----------------------------------------------------------------------
def base_backups(conn: psycopg.Connection, directory=None) -> list:
    """The base backups of the connection's cluster (newest first)."""
    return base_backup.listing(base_backup.source_of(conn)["system_identifier"], directory)


def unavailable(conn: psycopg.Connection, directory=None) -> str:
    """Why the connection's server cannot be recovered to a point in time ("" when it can): archiving
    off, or no base backup of this cluster."""
    if conn.execute("SHOW archive_mode").fetchone()[0] == "off":
        return "WAL archiving is off on this server (prep-ops archive on)"
    sysid = base_backup.source_of(conn)["system_identifier"]
    if not base_backup.listing(sysid, directory):
        return f"no base backup of this cluster in {base_backup.root(directory) / sysid} (prep-ops backup --kind base)"
    if not wal_archive.archive_dir(sysid).is_dir():
        return f"no WAL archive of this cluster in {wal_archive.archive_dir(sysid)}"
    return ""


def start_lsn(backups: list, before: datetime) -> str | None:
    """Where WAL is read from: the start of the newest base backup that finished before `before`, else
    the oldest one's; None without base backups."""
    fitting = [b for b in backups if datetime.fromisoformat(b.manifest["finished"]) < before] or backups[-1:]
    return fitting[0].manifest["start_lsn"] if fitting else None


# --- the copy -------------------------------------------------------------------------------------
@dataclass
class Copy:
    """The point-in-time copy and what it shows: the moment, the database, the live tables' rows missing,
    changed or added against it, and what the dump-based scope would lose."""

    moment: Moment
    target: Target
    differences: pd.DataFrame
    dump_lost: pd.DataFrame
    seconds: float

    @property
    def dump_would_lose(self) -> int:
        return int(self.dump_lost["lost"].sum())


def recover_copy(conn: psycopg.Connection, target: Target, dump_copy: Target, tables: list[str], *,
                 name: str, recover_to=None, since: datetime, snapshot: dict | None = None, directory=None,
                 controlled: bool | None = None) -> Copy:
    """The connection's database as it was just before the damage (`recover_to`, else `find_moment`;
    `snapshot`: the dump manifest's), recovered into a new database `name` on its server (pitr.recover),
    compared with the live `tables` and with the dump (restored as `dump_copy`)."""
    with connect(dump_copy, autocommit=True) as dump_conn:
        dump = frames(dump_conn, tables)
    live = frames(conn, tables)
    if recover_to is not None:
        moment = given(recover_to)
    else:
        backups = base_backups(conn, directory)
        moment = find_moment(conn, damaged_keys(live, dump), since=since, start_lsn=start_lsn(backups, since),
                             snapshot=snapshot)
    done = pitr.recover(conn, target, to_time=moment.to_time, to_lsn=moment.to_lsn, as_name=name,
                        directory=directory, controlled=controlled)
    copy = target.with_database(done["database"])
    with connect(copy, autocommit=True) as there:
        differences = recovery.row_differences(conn, there, tables)
        at_moment = frames(there, tables)
    return Copy(moment, copy, differences, dump_losses(live, dump, at_moment), done["seconds"])
