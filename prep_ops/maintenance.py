"""VACUUM, ANALYZE and REINDEX, the guide's "Maintenance" section, with the statistics to see what they did.

The guide runs `VACUUM ANALYZE; REINDEX TABLE users; ANALYZE users;`. `maintain()` runs the same for
the chosen tables (or the whole database), between two snapshots of `table_status()`; `plan()` shows
the statements first. VACUUM and REINDEX CONCURRENTLY cannot run inside a transaction block, so every
statement runs on an autocommit connection, one at a time. Table names are checked against the
catalog and quoted with psycopg.sql.Identifier, schema-qualified, never pasted into SQL.
"""

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pandas as pd
import psycopg
from psycopg import sql

from . import extensions
from .db import fetch_frame, is_scratch, require_change, server_version, snapshot
from .errors import ParameterError, PrepOpsError, first_line
from .sqlfiles import load

SCHEMA = "public"
REINDEX_DEFAULT = ("users",)  # the guide's `REINDEX TABLE users`
CONCURRENT_REINDEX_SINCE = 12  # REINDEX ... CONCURRENTLY exists since PostgreSQL 12
BLOAT_NOTE = ("measured with pgstattuple where the server has it (dead rows and free space read from the pages), "
              "else estimated from statistics (pg_stats widths, reltuples and relpages as of the last VACUUM or "
              "ANALYZE): what VACUUM FULL or REINDEX could give back")
_TIMESTAMPS = ["last_vacuum", "last_autovacuum", "last_analyze", "last_autoanalyze"]


@dataclass
class Executed:
    """One statement that ran: its SQL, how long it took, and the notices and warnings the server sent."""

    statement: str
    seconds: float
    notices: list[str] = field(default_factory=list)


@dataclass
class MaintenanceResult:
    """What `maintain()` did: the tables' status before and after, and each statement with its time."""

    tables: list[str]
    before: pd.DataFrame
    after: pd.DataFrame
    statements: list[Executed]
    database_bytes_before: int
    database_bytes_after: int

    @property
    def seconds(self) -> float:
        return sum(step.seconds for step in self.statements)

    @property
    def log(self) -> pd.DataFrame:
        """The statements as a table: statement, seconds, notices."""
        return pd.DataFrame([(s.statement, round(s.seconds, 3), "; ".join(s.notices)) for s in self.statements],
                            columns=["statement", "seconds", "notices"])

    @property
    def not_vacuumed(self) -> list[str]:
        """Chosen tables whose vacuum count did not go up (e.g. skipped for lack of ownership)."""
        return _unchanged(self.before, self.after, "vacuum_count")

    @property
    def dead_tuples_grew(self) -> list[str]:
        """Chosen tables with more dead rows after than before (writes during the run, or a long transaction)."""
        both = self.before.merge(self.after, on="table_name", suffixes=("_before", "_after"))
        return list(both.loc[both["dead_tuples_after"] > both["dead_tuples_before"], "table_name"])


def table_names(conn: psycopg.Connection) -> list[str]:
    """The tables of the public schema."""
    return [row[0] for row in conn.execute(load("maintenance", "tables")).fetchall()]


def _status(conn: psycopg.Connection) -> pd.DataFrame:
    frame = fetch_frame(conn, load("maintenance", "table_status"))
    for column in _TIMESTAMPS:
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame["dead_ratio"] = frame["dead_ratio"].astype(float)
    return frame


def table_status(conn: psycopg.Connection) -> pd.DataFrame:
    """Per table of the public schema: live and dead rows, dead ratio, last (auto)vacuum and (auto)analyze,
    rows modified since the last analyze, and table, index and total size in bytes.

    From the statistics views only; the counts are the server's running estimates.
    """
    return _status(conn)


def _measure(conn: psycopg.Connection, schema: str, row) -> tuple[int, int, int | None]:
    """Bytes, wasted bytes and dead rows of one table or index, read from its pages with pgstattuple."""
    name, function = (row.index_name, "pgstatindex") if row.kind == "index" else (row.table_name, "pgstattuple_approx")
    query = sql.SQL(load("maintenance", f"{row.kind}_measured")).format(function=sql.Identifier(schema, function))
    with conn.transaction():
        return conn.execute(query, {"relation": _table(name).as_string(conn)}).fetchone()


def bloat(conn: psycopg.Connection, *, install: bool | None = None) -> pd.DataFrame:
    """Wasted space per table and per btree index of the public schema: bytes, wasted_bytes, bloat_pct,
    dead_rows (tables), method and note (see BLOAT_NOTE).

    `method` is "measured" where pgstattuple could read the relation (pgstattuple_approx for tables,
    pgstatindex for indexes), else "estimate", from statistics without a scan; an estimate without
    statistics is empty with the note "no statistics: run ANALYZE". Dead rows are measured with the
    space, else the server's running count. pgstattuple is created where missing when `install` is
    true (None: on a scratch database); `frame.attrs["note"]` says why it was not used, if it was not.
    """
    schema, why = extensions.find(conn, "pgstattuple", install=is_scratch(conn) if install is None else install)
    with snapshot(conn):  # the estimates, the dead-row counts and the measures of one moment
        frame = pd.concat([fetch_frame(conn, load("maintenance", name)) for name in ("table_bloat", "index_bloat")],
                          ignore_index=True)
        frame = frame.rename(columns={"estimated_wasted_bytes": "wasted_bytes", "estimated_bloat_pct": "bloat_pct"})
        dead = _status(conn).set_index("table_name")["dead_tuples"]
        frame["dead_rows"] = [dead.get(r.table_name) if r.kind == "table" else None for r in frame.itertuples()]
        frame["method"] = "estimate"
        for i, row in (frame.iterrows() if schema else ()):
            try:
                size, wasted, dead_rows = _measure(conn, schema, row)
            except psycopg.Error as exc:  # no privilege (pg_stat_scan_tables), a lock ...: the estimate stays
                frame.loc[i, "note"] = f"estimate: not measured ({first_line(exc)})"
                continue
            frame.loc[i, ["bytes", "wasted_bytes", "bloat_pct", "method", "note"]] = [
                size, wasted, round(100.0 * wasted / size, 1) if size else 0.0, "measured", "measured"]
            if row.kind == "table":
                frame.loc[i, "dead_rows"] = dead_rows
    frame["bloat_pct"] = frame["bloat_pct"].astype(float)
    frame = frame[["kind", "table_name", "index_name", "bytes", "wasted_bytes", "bloat_pct", "dead_rows", "method", "note"]]
    frame.attrs["note"] = why and f"estimated from statistics: {why}"
    return frame


def _chosen(conn: psycopg.Connection, tables: str | Iterable[str] | None) -> list[str] | None:
    """`tables` checked against the catalog, duplicates dropped; None stays None (the whole database)."""
    if tables is None:
        return None
    names = [tables] if isinstance(tables, str) else list(tables)
    if not names:
        raise ParameterError("no tables named; pass None for the whole database")
    known = table_names(conn)
    for name in names:
        if not isinstance(name, str) or name not in known:
            listed = ", ".join(known) if known else "none (the public schema is empty: run `prep-ops migrate`)"
            raise ParameterError(f"unknown table {name!r}; tables of the public schema are: {listed}")
    return list(dict.fromkeys(names))


def _table(name: str) -> sql.Composed:
    return sql.Identifier(SCHEMA, name)


def _vacuum(tables: list[str] | None, analyze: bool, full: bool) -> list[sql.Composable]:
    options = [word for word, wanted in (("FULL", full), ("ANALYZE", analyze)) if wanted]
    head = sql.SQL("VACUUM")
    if options:
        head = sql.SQL("VACUUM ({})").format(sql.SQL(", ").join(map(sql.SQL, options)))
    if tables is None:
        return [head]
    return [sql.SQL("{} {}").format(head, _table(name)) for name in tables]


def _analyze(tables: list[str] | None) -> list[sql.Composable]:
    if tables is None:
        return [sql.SQL("ANALYZE")]
    return [sql.SQL("ANALYZE {}").format(_table(name)) for name in tables]


def _concurrently(conn: psycopg.Connection, concurrently: bool | None) -> bool:
    major = server_version(conn)
    if concurrently and major < CONCURRENT_REINDEX_SINCE:
        raise ParameterError(f"REINDEX CONCURRENTLY needs PostgreSQL {CONCURRENT_REINDEX_SINCE} or newer; "
                             f"this server is {major}: pass concurrently=False")
    return major >= CONCURRENT_REINDEX_SINCE if concurrently is None else concurrently


def _reindex(tables: list[str], concurrently: bool) -> list[sql.Composable]:
    head = sql.SQL("REINDEX TABLE CONCURRENTLY" if concurrently else "REINDEX TABLE")
    return [sql.SQL("{} {}").format(head, _table(name)) for name in tables]


def _maintenance_statements(conn: psycopg.Connection, tables, reindex: bool,
                            concurrently: bool | None) -> tuple[list[str] | None, list[sql.Composable]]:
    """The guide's actions: VACUUM (ANALYZE) the chosen tables (or the database), then REINDEX and
    ANALYZE them (or, with no tables chosen, the guide's `users` when it exists)."""
    chosen = _chosen(conn, tables)
    statements = _vacuum(chosen, analyze=True, full=False)
    if reindex:
        existing = table_names(conn)
        to_reindex = chosen if chosen is not None else [name for name in REINDEX_DEFAULT if name in existing]
        # REINDEX leaves the statistics as they were; the guide follows it with ANALYZE
        statements += _reindex(to_reindex, _concurrently(conn, concurrently)) + _analyze(to_reindex or [])
    return chosen, statements


def _run(conn: psycopg.Connection, statements: list[sql.Composable],
         on_progress: Callable[[Executed, int, int], None] | None = None) -> list[Executed]:
    """Run each statement on the autocommit connection `conn`, timing it and keeping its notices; a
    statement the server refuses (not the owner, lock timeout, ...) raises PrepOpsError naming it."""
    notices: list[str] = []

    def keep(diag) -> None:
        notices.append(f"{diag.severity}: {diag.message_primary}")

    conn.add_notice_handler(keep)
    done = []
    try:
        for statement in statements:
            notices.clear()
            text, began = statement.as_string(conn), time.perf_counter()
            try:
                conn.execute(statement)
            except psycopg.Error as exc:
                raise PrepOpsError(f"{text} failed after {len(done)} of {len(statements)} statements ran: "
                                   f"{first_line(exc)}") from None
            done.append(Executed(text, time.perf_counter() - began, list(notices)))
            if on_progress:
                on_progress(done[-1], len(done), len(statements))
    finally:
        conn.remove_notice_handler(keep)  # the connection is shared: leave it as it was
    return done


def vacuum(conn: psycopg.Connection, tables: str | Iterable[str] | None = None, analyze: bool = True,
           full: bool = False) -> list[Executed]:
    """Run VACUUM (ANALYZE by default; FULL rewrites each table under an exclusive lock) on each of
    `tables`, or once on the whole database when None; returns the statements with their times."""
    return _run(conn, _vacuum(_chosen(conn, tables), analyze, full))


def analyze(conn: psycopg.Connection, tables: str | Iterable[str] | None = None) -> list[Executed]:
    """Run ANALYZE on each of `tables`, or on the whole database when None; returns the statements with their times."""
    return _run(conn, _analyze(_chosen(conn, tables)))


def reindex(conn: psycopg.Connection, tables: str | Iterable[str] | None = None,
            concurrently: bool | None = None) -> list[Executed]:
    """Run REINDEX TABLE on each of `tables` (None: the guide's `users`); returns the statements with their times.

    `concurrently` None uses CONCURRENTLY when the server has it (PostgreSQL 12+): the indexes are
    built anew beside the old ones, so reads and writes go on meanwhile. A failed concurrent
    reindex can leave an invalid index named `*_ccnew`; drop it and run again.
    """
    return _run(conn, _reindex(_chosen(conn, REINDEX_DEFAULT if tables is None else tables),
                               _concurrently(conn, concurrently)))


def plan(conn: psycopg.Connection, tables: str | Iterable[str] | None = None, reindex: bool = False, *,
         concurrently: bool | None = None) -> list[str]:
    """The statements `maintain()` would run, in order; runs nothing (a dry run)."""
    return [statement.as_string(conn) for statement in _maintenance_statements(conn, tables, reindex, concurrently)[1]]


def _database_bytes(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]


def _snapshot(conn: psycopg.Connection, chosen: list[str] | None) -> pd.DataFrame:
    status = _status(conn)
    if chosen is None:
        return status
    return status.set_index("table_name").loc[chosen].reset_index()


def _after(conn: psycopg.Connection, chosen: list[str] | None, before: pd.DataFrame) -> pd.DataFrame:
    after = _snapshot(conn, chosen)
    # before PostgreSQL 15 the statistics collector takes up to half a second to report a VACUUM
    deadline = time.monotonic() + 2
    while server_version(conn) < 15 and time.monotonic() < deadline and _unchanged(before, after, "vacuum_count"):
        time.sleep(0.1)
        after = _snapshot(conn, chosen)
    return after


def _unchanged(before: pd.DataFrame, after: pd.DataFrame, column: str) -> list[str]:
    both = before.merge(after, on="table_name", suffixes=("_before", "_after"))
    return list(both.loc[both[f"{column}_after"] <= both[f"{column}_before"], "table_name"])


def maintain(conn: psycopg.Connection, tables: str | Iterable[str] | None = None, reindex: bool = False,
             confirm: bool = False, on_progress: Callable[[Executed, int, int], None] | None = None, *,
             concurrently: bool | None = None) -> MaintenanceResult:
    """Run the guide's maintenance between two snapshots of `table_status()`; returns both and each
    statement with its time.

    `VACUUM (ANALYZE)` on each of `tables` (None: the whole database); with `reindex`, then
    `REINDEX TABLE` and `ANALYZE` on them (None: the guide's `users`). On a database that is not
    scratch it runs only with `confirm=True`; `plan()` shows the statements without running them.
    `on_progress(executed, done, total)` is called after each statement.
    """
    chosen, statements = _maintenance_statements(conn, tables, reindex, concurrently)
    require_change(conn, confirm, "maintenance")
    before, bytes_before = _snapshot(conn, chosen), _database_bytes(conn)
    executed = _run(conn, statements, on_progress)
    after, bytes_after = _after(conn, chosen, before), _database_bytes(conn)
    names = chosen if chosen is not None else list(before["table_name"])
    return MaintenanceResult(names, before, after, executed, bytes_before, bytes_after)


def before_after(result: MaintenanceResult) -> pd.DataFrame:
    """Per chosen table: dead rows and table, index and total size (bytes) before and after, and the
    last vacuum and analyze after."""
    measures = ["dead_tuples", "table_bytes", "index_bytes", "total_bytes"]
    both = result.before[["table_name", *measures]].merge(
        result.after[["table_name", *measures, "last_vacuum", "last_analyze"]],
        on="table_name", suffixes=("_before", "_after"))
    columns = ["table_name"] + [f"{m}_{when}" for m in measures for when in ("before", "after")]
    return both[columns + ["last_vacuum", "last_analyze"]]


LARGE_BLOAT_PCT, LARGE_BLOAT_BYTES = 50, 10 * 2**20  # runbook 05 warns about bloat over both


def bloat_check(space: pd.DataFrame) -> dict:
    """Runbook 05's bloat check of a `bloat()` frame, as keyword arguments of prep_ops.check: no table
    or index over 50% and 10 MiB wasted (a warning); SKIP when nothing was measured or estimated."""
    large = space[(space["bloat_pct"] > LARGE_BLOAT_PCT) & (space["wasted_bytes"] > LARGE_BLOAT_BYTES)]
    return {"name": "no large bloat (over 50% and 10 MiB)", "passed": large.empty, "must_hold": False,
            "detail": f"{len(large)} of {len(space)} tables and indexes, {space['method'].value_counts().to_dict()}; "
                      f"{space.attrs.get('note') or 'measured'}",
            "fix": "REINDEX bloated indexes (reindex=True); rewrite bloated tables in a window (VACUUM FULL or pg_repack)",
            "skipped": "" if space["bloat_pct"].notna().any() else
                       "nothing measured or estimated (no statistics yet: run ANALYZE)"}


def result_checks(result: MaintenanceResult | None, skipped: str = "") -> list[dict]:
    """Runbook 05's checks of what `maintain()` did, as keyword arguments of prep_ops.check: every chosen
    table vacuumed (must hold), dead rows not grown (a warning); `skipped` (why it did not run) makes both SKIP."""
    return [
        {"name": "last vacuum set on every chosen table", "passed": result is not None and not result.not_vacuumed,
         "detail": f"{len(result.tables)} table(s)" if result else "", "skipped": skipped,
         "fix": f"not vacuumed: {', '.join(result.not_vacuumed) if result else ''}; connect as the owner of the tables"},
        {"name": "dead rows did not grow", "passed": result is not None and not result.dead_tuples_grew,
         "detail": ", ".join(result.dead_tuples_grew) if result else "", "must_hold": False, "skipped": skipped,
         "fix": "other sessions wrote meanwhile, or a long transaction still needs old rows: see pg_stat_activity"},
    ]


__all__ = ["Executed", "MaintenanceResult", "BLOAT_NOTE", "REINDEX_DEFAULT", "table_names", "table_status",
           "bloat", "vacuum", "analyze", "reindex", "plan", "maintain", "before_after", "bloat_check", "result_checks"]
