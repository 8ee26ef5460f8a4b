"""Bloat: space a rewrite could give back (VACUUM FULL for a table, REINDEX for an index), per table and
btree index of every user schema, with the dead rows the server counts beside it.

Measured with pgstattuple where the server has it; else estimated from statistics. The estimate uses
each relation's current size and the server's current count of live rows (pg_stat_user_tables), not
the page and row counts of the last VACUUM: a table that grew to 1.6 M row versions of which 1.1 M
are dead since its last VACUUM is estimated as the bloated table it is. Dead rows from
pg_stat_user_tables are always shown, whatever the method.
"""

from collections.abc import Iterable

import pandas as pd
import psycopg
from psycopg import sql

from . import extensions
from .db import bounded_lock_wait, fetch_frame, is_scratch, snapshot
from .errors import ParameterError, first_line
from .schema import Table, resolve_tables
from .sqlfiles import load

BLOAT_NOTE = ("measured with pgstattuple where the server has it (dead rows and free space read from the pages), "
              "else estimated from statistics (pg_stats widths and the live rows the server counts now, against "
              "each relation's current size); dead rows are always the server's count (pg_stat_user_tables): "
              "what VACUUM FULL or REINDEX could give back")
LARGE_BLOAT_PCT, LARGE_BLOAT_BYTES = 50, 10 * 2**20  # runbook 05 warns about bloat over both
# `maintain(reindex=True)` without tables reindexes the tables of indexes measured over both
REINDEX_BLOAT_PCT, REINDEX_BLOAT_BYTES = 30, 2**20
LARGE_DEAD_SHARE = 0.5  # ... or a table over 10 MiB whose dead rows are this share of its rows, whatever the space says
COLUMNS = ["kind", "table_name", "index_name", "bytes", "wasted_bytes", "bloat_pct", "live_rows", "dead_rows",
           "measured_dead_rows", "method", "note", "schema_name", "relname"]


def _measure(conn: psycopg.Connection, schema: str, row) -> tuple[int, int, int | None]:
    """Bytes, wasted bytes and dead rows of one table or index, read from its pages with pgstattuple."""
    name, function = (row.index_name, "pgstatindex") if row.kind == "index" else (row.relname, "pgstattuple_approx")
    query = sql.SQL(load("maintenance", f"{row.kind}_measured")).format(function=sql.Identifier(schema, function))
    with conn.transaction():
        return conn.execute(query, {"relation": sql.Identifier(row.schema_name, name).as_string(conn)}).fetchone()


def bloat(conn: psycopg.Connection, *, install: bool | None = None) -> pd.DataFrame:
    """Wasted space per table and per btree index of every user schema: bytes, wasted_bytes, bloat_pct,
    dead_rows (tables: the server's count, always), measured_dead_rows (pgstattuple), method and note
    (see BLOAT_NOTE). Partitioned parents have no storage: their partitions are listed.

    `method` is "measured" where pgstattuple could read the relation (pgstattuple_approx for tables,
    pgstatindex for indexes), else "estimate"; an estimate without column statistics is empty with
    the note "no statistics: run ANALYZE". pgstattuple is created where missing when `install` is true
    (None: on a scratch database); `frame.attrs["note"]` says why it was not used, if it was not.
    """
    schema, why = extensions.find(conn, "pgstattuple", install=is_scratch(conn) if install is None else install)
    # the estimates, the dead-row counts and the measures of one moment; sizing a relation locks it
    with snapshot(conn), bounded_lock_wait(conn, "bloat"):
        frame = pd.concat([fetch_frame(conn, load("maintenance", name)) for name in ("table_bloat", "index_bloat")],
                          ignore_index=True)
        frame = frame.rename(columns={"estimated_wasted_bytes": "wasted_bytes", "estimated_bloat_pct": "bloat_pct"})
        frame["measured_dead_rows"] = None
        frame["method"] = "estimate"
        refused = ""
        for i, row in (frame.iterrows() if schema else ()):
            try:
                size, wasted, dead_rows = _measure(conn, schema, row)
            except psycopg.Error as exc:  # no privilege (pg_stat_scan_tables), a lock ...: the estimate stays
                refused = refused or first_line(exc)
                frame.loc[i, "note"] = f"estimate: not measured ({first_line(exc)})"
                continue
            frame.loc[i, ["bytes", "wasted_bytes", "bloat_pct", "method", "note", "measured_dead_rows"]] = [
                size, wasted, round(100.0 * wasted / size, 1) if size else 0.0, "measured", "measured", dead_rows]
    frame["bloat_pct"] = frame["bloat_pct"].astype(float)
    frame = frame.reindex(columns=COLUMNS)
    if refused and not (frame["method"] == "measured").any():  # installed, but it measured nothing
        why = f"pgstattuple could not measure any relation: {refused}"
    frame.attrs["note"] = why and f"estimated from statistics: {why}"
    return frame


def reindex_candidates(space: pd.DataFrame) -> list[str]:
    """Tables (as table_name labels) with an index whose bloat was measured over REINDEX_BLOAT_PCT and
    REINDEX_BLOAT_BYTES: what `maintain(reindex=True)` rebuilds when no tables are named. Estimates
    never choose: an index is rebuilt for bloat someone measured."""
    chosen = space[(space["kind"] == "index") & (space["method"] == "measured")
                   & (space["bloat_pct"] >= REINDEX_BLOAT_PCT) & (space["wasted_bytes"] >= REINDEX_BLOAT_BYTES)]
    return list(dict.fromkeys(chosen["table_name"]))


def bloat_check(space: pd.DataFrame) -> dict:
    """Runbook 05's bloat check of a `bloat()` frame, as keyword arguments of prep_ops.check: no table
    or index over 50% and 10 MiB wasted, and no table over 10 MiB with more dead rows than live ones
    (pg_stat_user_tables: HOT pruning reuses space a rough estimate then cannot tell from live rows);
    a warning. SKIP when nothing was measured or estimated. The detail gives the dead rows."""
    dead = pd.to_numeric(space["dead_rows"], errors="coerce").fillna(0)
    live = pd.to_numeric(space["live_rows"], errors="coerce").fillna(0)
    many_dead = (space["kind"] == "table") & (dead > LARGE_DEAD_SHARE * (dead + live)) & (space["bytes"] > LARGE_BLOAT_BYTES)
    large = space[((space["bloat_pct"] > LARGE_BLOAT_PCT) & (space["wasted_bytes"] > LARGE_BLOAT_BYTES)) | many_dead]
    dead = dead[space["kind"] == "table"]
    unjudged = space[space["bloat_pct"].isna() & ~space.index.isin(large.index)]  # not looked at: said so
    names = [r.index_name or r.table_name for r in unjudged.itertuples()]
    not_judged = (f"; {len(names)} not judged, neither measured nor estimated (no column statistics this role "
                  f"may read, or never analysed): {', '.join(names[:5])}{', …' if len(names) > 5 else ''}"
                  if names else "")
    named = ", ".join(f"{r.index_name or r.table_name} {r.bloat_pct:.0f}% ({r.method}"
                      + (f", {int(r.dead_rows):,} dead rows)" if pd.notna(r.dead_rows) and r.dead_rows else ")")
                      for r in large.head(5).itertuples())
    return {"name": "no large bloat (over 50% and 10 MiB)", "passed": large.empty, "must_hold": False,
            "detail": f"{len(large)} of {len(space) - len(unjudged)} tables and indexes{': ' + named if named else ''}"
                      f"{not_judged}; "
                      f"{int(dead.sum()):,} dead rows (pg_stat_user_tables); "
                      + ", ".join(f"{n} {how}" for how, n in space["method"].value_counts().items())
                      + f"; {space.attrs.get('note') or 'measured with pgstattuple'}",
            "fix": "REINDEX bloated indexes (reindex=True); rewrite bloated tables in a window (VACUUM FULL or pg_repack)",
            "skipped": "" if space["bloat_pct"].notna().any() else
                       "nothing measured or estimated (no statistics yet: run ANALYZE)"}


def reindex_choice(conn: psycopg.Connection, tables: str | Iterable[str] | None = None,
                   space: pd.DataFrame | None = None) -> tuple[list[Table], str]:
    """The tables REINDEX would rebuild, and a note when they were chosen without being named: `tables`
    when given; else those with an index of measured bloat (bloat.reindex_candidates), and when none
    qualifies, no table and the reason. `space`: a bloat() frame already read (else it is read now)."""
    if tables is not None:
        names = [tables] if isinstance(tables, str) else list(tables)
        if not names:
            raise ParameterError("no tables named; pass None for the tables with measured index bloat")
        return resolve_tables(conn, names), ""
    space = bloat(conn) if space is None else space
    chosen = reindex_candidates(space)
    if chosen:
        return resolve_tables(conn, chosen), (f"reindexing {', '.join(chosen)}: an index measured over "
                                              f"{REINDEX_BLOAT_PCT}% and {REINDEX_BLOAT_BYTES // 2**20} MiB bloated")
    measured = (space["method"] == "measured").any()
    why = (f"no index has measured bloat over {REINDEX_BLOAT_PCT}% and {REINDEX_BLOAT_BYTES // 2**20} MiB"
           if measured or space.empty else f"index bloat not measured ({space.attrs.get('note') or 'no pgstattuple'})")
    return [], f"nothing to REINDEX: {why}; name the tables to reindex them anyway"


__all__ = ["BLOAT_NOTE", "bloat", "bloat_check", "reindex_candidates", "reindex_choice"]
