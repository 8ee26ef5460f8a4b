"""VACUUM, ANALYZE and REINDEX, the guide's "Maintenance" section, with the statistics to see what they did.

The guide runs `VACUUM ANALYZE; REINDEX TABLE users; ANALYZE users;`. `maintain()` runs the same for
the chosen tables (or the whole database), between two snapshots of `table_status()`; `plan()` shows
the statements first. VACUUM and REINDEX CONCURRENTLY cannot run inside a transaction block, so every
statement runs on an autocommit connection, one at a time. Tables of every user schema can be named
(`archive.old_rentals`, see schema.resolve_tables); they are quoted with psycopg.sql.Identifier,
schema-qualified, never pasted into SQL.

Decided where the guide is silent: REINDEX without named tables rebuilds the tables whose indexes
have measured bloat (bloat.reindex_candidates), not the guide's `users` (which a database that is not
the school's lacks); when none qualifies, nothing is reindexed and `reindex_choice()` says why. A
partitioned parent has no storage: VACUUM and ANALYZE of it reach its partitions, and the check that
every chosen table was vacuumed looks at the partitions, not at the parent.
"""

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pandas as pd
import psycopg
from psycopg import sql

from .bloat import BLOAT_NOTE, bloat, bloat_check, reindex_choice  # noqa: F401  (re-exported for runbook 05)
from . import formatting
from .db import bounded_lock_wait, fetch_frame, require_change, server_version
from .errors import ParameterError, PlanChanged, PrepOpsError, first_line
from .schema import Table, resolve_tables, user_tables
from .sqlfiles import load

CONCURRENT_REINDEX_SINCE = 12  # REINDEX ... CONCURRENTLY exists since PostgreSQL 12
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
    note: str = ""  # what was decided without being asked, e.g. why nothing was reindexed
    invalid: pd.DataFrame = field(default_factory=pd.DataFrame)  # invalid indexes left after the run (invalid_indexes)

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
        """Chosen tables (and partitions of chosen parents) whose vacuum count did not go up (e.g. skipped
        for lack of ownership); a partitioned parent has no storage to vacuum and is not judged."""
        with_storage = set(self.before.loc[self.before["kind"] != "p", "table_name"])
        return [name for name in _unchanged(self.before, self.after, "vacuum_count") if name in with_storage]

    @property
    def dead_tuples_grew(self) -> list[str]:
        """Chosen tables with more dead rows after than before (writes during the run, or a long transaction)."""
        both = self.before.merge(self.after, on="table_name", suffixes=("_before", "_after"))
        return list(both.loc[both["dead_tuples_after"] > both["dead_tuples_before"], "table_name"])


def table_names(conn: psycopg.Connection) -> list[str]:
    """The tables of every user schema, as labels (the name alone in public, else schema.name)."""
    return [table.label for table in user_tables(conn)]


def _status(conn: psycopg.Connection) -> pd.DataFrame:
    with bounded_lock_wait(conn, "the tables' status"):  # their sizes: behind another session's lock, not for long
        frame = fetch_frame(conn, load("maintenance", "table_status"))
    for column in _TIMESTAMPS:
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame["dead_ratio"] = frame["dead_ratio"].astype(float)
    return frame


def table_status(conn: psycopg.Connection, tables: str | Iterable[str] | None = None) -> pd.DataFrame:
    """Per table of every user schema, or of `tables` (a partitioned parent with its partitions)
    (table_name: the name alone in public, else schema.name; kind p for a partitioned parent): live and
    dead rows, dead ratio, last (auto)vacuum and (auto)analyze, rows modified since the last analyze, and
    table, index and total size in bytes.

    From the statistics views only; the counts are the server's running estimates.
    """
    frame, chosen = _status(conn), _chosen(conn, tables)
    if chosen is None:
        return frame
    wanted = {(t.schema, t.name) for t in chosen} | {tuple(row) for table in chosen for row in conn.execute(
        "SELECT n.nspname, c.relname FROM pg_partition_tree(%s::regclass) t JOIN pg_class c ON c.oid = t.relid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace", (table.qualified,)).fetchall()}
    return frame[[pair in wanted for pair in zip(frame["schema_name"], frame["relname"])]].reset_index(drop=True)


def _chosen(conn: psycopg.Connection, tables: str | Iterable[str] | None) -> list[Table] | None:
    """`tables` checked against the catalog (any user schema), duplicates dropped; None stays None
    (the whole database)."""
    if tables is None:
        return None
    names = [tables] if isinstance(tables, str) else list(tables)
    if not names:
        raise ParameterError("no tables named; pass None for the whole database")
    return resolve_tables(conn, names)


def _table(table: Table) -> sql.Composed:
    return table.identifier


def _vacuum(tables: list[Table] | None, analyze: bool, full: bool) -> list[sql.Composable]:
    options = [word for word, wanted in (("FULL", full), ("ANALYZE", analyze)) if wanted]
    head = sql.SQL("VACUUM")
    if options:
        head = sql.SQL("VACUUM ({})").format(sql.SQL(", ").join(map(sql.SQL, options)))
    if tables is None:
        return [head]
    return [sql.SQL("{} {}").format(head, _table(name)) for name in tables]


def _analyze(tables: list[Table] | None) -> list[sql.Composable]:
    if tables is None:
        return [sql.SQL("ANALYZE")]
    return [sql.SQL("ANALYZE {}").format(_table(name)) for name in tables]


def _concurrently(conn: psycopg.Connection, concurrently: bool | None) -> bool:
    major = server_version(conn)
    if concurrently and major < CONCURRENT_REINDEX_SINCE:
        raise ParameterError(f"REINDEX CONCURRENTLY needs PostgreSQL {CONCURRENT_REINDEX_SINCE} or newer; "
                             f"this server is {major}: pass concurrently=False")
    return major >= CONCURRENT_REINDEX_SINCE if concurrently is None else concurrently


def _reindex(tables: list[Table], concurrently: bool) -> list[sql.Composable]:
    head = sql.SQL("REINDEX TABLE CONCURRENTLY" if concurrently else "REINDEX TABLE")
    return [sql.SQL("{} {}").format(head, _table(name)) for name in tables]


def invalid_indexes(conn: psycopg.Connection, tables: list[Table] | None) -> pd.DataFrame:
    """The INVALID indexes of `tables` (None: every user table), their partitions and TOAST tables: schema_name,
    index_name, table_name, and reindex_leftover (what a killed REINDEX CONCURRENTLY left, no build of it
    running: see sql/maintenance/invalid_indexes.sql)."""
    return fetch_frame(conn, load("maintenance", "invalid_indexes"),
                       {"tables": None if tables is None else [table.qualified for table in tables]})


def _drop_leftovers(conn: psycopg.Connection, tables: list[Table]) -> list[sql.Composable]:
    """DROP INDEX CONCURRENTLY of each index a killed or failed REINDEX CONCURRENTLY left on `tables`: the
    next REINDEX CONCURRENTLY skips an invalid index (a warning), and a plain REINDEX makes it a valid duplicate."""
    if not tables:
        return []
    found = invalid_indexes(conn, tables)
    return [sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(row.schema_name, row.index_name))
            for row in found.itertuples() if row.reindex_leftover]


def _maintenance_statements(conn: psycopg.Connection, tables, reindex: bool,
                            concurrently: bool | None) -> tuple[list[Table] | None, list[sql.Composable], str]:
    """The guide's actions: VACUUM (ANALYZE) the chosen tables (or the database), then REINDEX and
    ANALYZE them (or, with no tables chosen, those with measured index bloat; see reindex_choice)."""
    chosen, note = _chosen(conn, tables), ""
    statements = _vacuum(chosen, analyze=True, full=False)
    if reindex:
        to_reindex, note = reindex_choice(conn, tables)
        # REINDEX leaves the statistics as they were; the guide follows it with ANALYZE
        statements += (_drop_leftovers(conn, to_reindex) + _reindex(to_reindex, _concurrently(conn, concurrently))
                       + _analyze(to_reindex or []))
    return chosen, statements, note


def _run(conn: psycopg.Connection, statements: list[sql.Composable],
         on_progress: Callable[[Executed, int, int], None] | None = None,
         on_start: Callable[[str, int, int], None] | None = None) -> list[Executed]:
    """Run each statement on the autocommit connection `conn`, timing it and keeping its notices; a
    statement the server refuses (not the owner, lock timeout, ...) raises PrepOpsError naming it.
    `on_start(text, number, total)` is called before each statement, `on_progress` after it."""
    notices: list[str] = []

    def keep(diag) -> None:
        notices.append(f"{diag.severity}: {diag.message_primary}")

    conn.add_notice_handler(keep)
    done = []
    try:
        for statement in statements:
            notices.clear()
            text, began = statement.as_string(conn), time.perf_counter()
            if on_start:
                on_start(text, len(done) + 1, len(statements))
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
           full: bool = False, *, confirm: bool = False) -> list[Executed]:
    """Run VACUUM (ANALYZE by default; FULL rewrites each table under an exclusive lock) on each of
    `tables`, or once on the whole database when None; returns the statements with their times.
    Outside a scratch database, needs `confirm`."""
    statements = _vacuum(_chosen(conn, tables), analyze, full)
    require_change(conn, confirm, "VACUUM FULL" if full else "VACUUM")
    return _run(conn, statements)


def analyze(conn: psycopg.Connection, tables: str | Iterable[str] | None = None, *, confirm: bool = False) -> list[Executed]:
    """Run ANALYZE on each of `tables`, or on the whole database when None; returns the statements with
    their times. Outside a scratch database, needs `confirm`."""
    statements = _analyze(_chosen(conn, tables))
    require_change(conn, confirm, "ANALYZE")
    return _run(conn, statements)


def reindex(conn: psycopg.Connection, tables: str | Iterable[str] | None = None,
            concurrently: bool | None = None, *, confirm: bool = False) -> list[Executed]:
    """Run REINDEX TABLE on each of `tables` (None: the tables with measured index bloat, see
    reindex_choice; none qualifying runs nothing); returns the statements with their times. REINDEX
    takes locks: outside a scratch database, needs `confirm`.

    `concurrently` None uses CONCURRENTLY when the server has it (PostgreSQL 12+): the indexes are
    built anew beside the old ones, so reads and writes go on meanwhile. A concurrent reindex ended
    midway leaves invalid indexes named `*_ccnew` (or `*_ccold`): the next reindex of the table drops them first.
    """
    chosen, _note = reindex_choice(conn, tables)
    statements = _drop_leftovers(conn, chosen) + _reindex(chosen, _concurrently(conn, concurrently))
    require_change(conn, confirm, "REINDEX")
    return _run(conn, statements)


def plan(conn: psycopg.Connection, tables: str | Iterable[str] | None = None, reindex: bool = False, *,
         concurrently: bool | None = None) -> list[str]:
    """The statements `maintain()` would run, in order; runs nothing (a dry run). Why REINDEX chose what
    it chose (or nothing) is reindex_choice()'s note."""
    return [statement.as_string(conn) for statement in _maintenance_statements(conn, tables, reindex, concurrently)[1]]


def _database_bytes(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]


def _tracked(conn: psycopg.Connection, chosen: list[Table] | None) -> list[str] | None:
    """The status rows to compare: the chosen tables and the partitions below a chosen parent (VACUUM
    of a partitioned table vacuums them); None: every table."""
    if chosen is None:
        return None
    labels = [table.label for table in chosen]
    parents = [table.qualified for table in chosen if table.kind == "p"]
    if parents:
        below = conn.execute(load("maintenance", "partitions"), {"parents": parents}).fetchall()
        labels += [label for label, in below]
    return list(dict.fromkeys(labels))


def _snapshot(conn: psycopg.Connection, tracked: list[str] | None) -> pd.DataFrame:
    status = _status(conn)
    if tracked is None:
        return status
    return status.set_index("table_name").loc[tracked].reset_index()


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


def _refuse_unplanned(statements: list[str], planned: list[str]) -> None:
    """PlanChanged unless `statements` (what maintain would run now) are the `planned` ones that were shown."""
    if statements != planned:
        raise PlanChanged(f"the maintenance to run now is not the plan shown ({len(planned)} statement(s)): "
                          f"{formatting.plan_difference(statements, planned)}; nothing ran: show the plan again "
                          "(runbook 05 step 3), then run it")


def maintain(conn: psycopg.Connection, tables: str | Iterable[str] | None = None, reindex: bool = False,
             confirm: bool = False, on_progress: Callable[[Executed, int, int], None] | None = None, *,
             concurrently: bool | None = None, on_start: Callable[[str, int, int], None] | None = None,
             planned: list[str] | None = None) -> MaintenanceResult:
    """Run the guide's maintenance between two snapshots of `table_status()`; returns both and each
    statement with its time.

    `VACUUM (ANALYZE)` on each of `tables` (None: the whole database); with `reindex`, then
    `REINDEX TABLE` and `ANALYZE` on them (None: those with measured index bloat; `note` says which,
    or why none). On a database that is not scratch it runs only with `confirm=True`; `plan()` shows
    the statements without running them. `on_start(text, number, total)` is called before each statement
    (a REINDEX CONCURRENTLY may wait minutes for other sessions' transactions: say which statement runs),
    `on_progress(executed, done, total)` after it. `planned`: the statements shown (what `plan()` gave);
    the ones to run now must be those, else PlanChanged and nothing runs (`tables` changed since, or an
    interrupted REINDEX CONCURRENTLY left indexes to drop first).
    """
    chosen, statements, note = _maintenance_statements(conn, tables, reindex, concurrently)
    if planned is not None:
        _refuse_unplanned([s.as_string(conn) for s in statements], list(planned))
    require_change(conn, confirm, "maintenance")
    tracked = _tracked(conn, chosen)
    before, bytes_before = _snapshot(conn, tracked), _database_bytes(conn)
    executed = _run(conn, statements, on_progress, on_start)
    after, bytes_after = _after(conn, tracked, before), _database_bytes(conn)
    names = [table.label for table in chosen] if chosen is not None else list(before["table_name"])
    return MaintenanceResult(names, before, after, executed, bytes_before, bytes_after, note, invalid_indexes(conn, chosen))


def before_after(result: MaintenanceResult) -> pd.DataFrame:
    """Per chosen table: dead rows and table, index and total size (bytes) before and after, and the
    last vacuum and analyze after."""
    measures = ["dead_tuples", "table_bytes", "index_bytes", "total_bytes"]
    both = result.before[["table_name", *measures]].merge(
        result.after[["table_name", *measures, "last_vacuum", "last_analyze"]],
        on="table_name", suffixes=("_before", "_after"))
    columns = ["table_name"] + [f"{m}_{when}" for m in measures for when in ("before", "after")]
    return both[columns + ["last_vacuum", "last_analyze"]]


def _vacuumed_detail(result: MaintenanceResult) -> str:
    parents = list(result.before.loc[result.before["kind"] == "p", "table_name"])
    judged = len(result.before) - len(parents)
    return f"{judged} table(s) with storage" + (f"; partitioned parents without storage, vacuumed through their "
                                                f"partitions: {', '.join(parents)}" if parents else "")


def result_checks(result: MaintenanceResult | None, skipped: str = "") -> list[dict]:
    """Runbook 05's checks of what `maintain()` did, as keyword arguments of prep_ops.check: every chosen
    table vacuumed (must hold), dead rows not grown (a warning), no invalid index left on the chosen tables
    (must hold); `skipped` (why it did not run) makes them SKIP."""
    return [
        {"name": "last vacuum set on every chosen table", "passed": result is not None and not result.not_vacuumed,
         "detail": _vacuumed_detail(result) if result else "", "skipped": skipped,
         "fix": f"not vacuumed: {', '.join(result.not_vacuumed) if result else ''}; connect as the owner of the tables"},
        {"name": "dead rows did not grow", "passed": result is not None and not result.dead_tuples_grew,
         "detail": ", ".join(result.dead_tuples_grew) if result else "", "must_hold": False, "skipped": skipped,
         "fix": "other sessions wrote meanwhile, or a long transaction still needs old rows: see pg_stat_activity"},
        invalid_check(result, skipped),
    ]


def invalid_check(result: MaintenanceResult | None, skipped: str = "") -> dict:
    """The check that no invalid index is left on the chosen tables (a REINDEX CONCURRENTLY killed now or
    earlier leaves one), as keyword arguments of prep_ops.check."""
    invalid = result.invalid if result is not None else pd.DataFrame()
    names = [sql.Identifier(r.schema_name, r.index_name).as_string(None) for r in invalid.itertuples()]
    return {"name": "no invalid index left", "passed": result is not None and not names,
            "detail": f"invalid: {', '.join(names)}" if names else "every index of the chosen tables is valid",
            "skipped": skipped,
            "fix": f"DROP INDEX CONCURRENTLY {', '.join(names)}; then reindex again (an invalid index is never "
                   "used and still maintained on every write)"}


__all__ = ["Executed", "MaintenanceResult", "BLOAT_NOTE", "table_names", "table_status", "reindex_choice",
           "bloat", "vacuum", "analyze", "reindex", "plan", "maintain", "before_after", "bloat_check", "result_checks",
           "invalid_indexes", "invalid_check"]
