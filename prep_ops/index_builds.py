"""Index builds that left an INVALID index: a killed or failed CREATE INDEX CONCURRENTLY (or REINDEX
CONCURRENTLY) leaves its index in the catalog, never used and still maintained; a build still running
has an INVALID index too, until it ends, and is never to be dropped.

Whoever made an index, a DBA sees it: the catalog shows every role's. Which index a running build works
on is another matter: pg_stat_progress_create_index shows it only to superusers, to roles with the
privileges of the building session's role, and to members of pg_read_all_stats. To any other role
another role's build shows no relation and no index, so it looked like no build at all and its index
like a leftover to drop. Such a build is found by the locks its session holds (pg_locks: readable by
every role) and reported as MAYBE_BUILDING: never dropped.
"""

import pandas as pd
import psycopg

from .db import fetch_frame
from .sqlfiles import load

LEFTOVER = "leftover"  # no build of it runs: drop it (and create it again)
BUILDING = "in progress"  # a build of it runs now: left alone
MAYBE_BUILDING = "maybe in progress"  # a build this role may not look into runs on its table: left alone


def leftover_builds(conn: psycopg.Connection) -> pd.DataFrame:
    """Every INVALID index of the database, whoever made or owns it, with its `state` (LEFTOVER, BUILDING,
    MAYBE_BUILDING), the building session's pid, role, command and phase where one runs, its owner and
    whether this role may drop it (`may_drop`). See sql/indexes/leftover_builds.sql."""
    return fetch_frame(conn, load("indexes", "leftover_builds"))


def why(row) -> str:
    """What an INVALID index is, in a sentence: a leftover, or a build running, and whose."""
    if row["state"] == LEFTOVER:
        owner = "" if row["may_drop"] else f"; owned by {row['owner']}: only that role or a superuser can drop it"
        return f"left invalid by a build that no longer runs (a failed or killed CREATE INDEX CONCURRENTLY): not used, still maintained{owner}"
    if row["state"] == BUILDING:
        return (f"{row['command'] or 'an index build'} in progress (pid {int(row['pid'])}, role {row['built_by']}"
                + (f", {row['phase']}" if isinstance(row["phase"], str) else "")
                + "): invalid until it ends, not a leftover; left alone")
    return (f"a build by pid {int(row['pid'])} (role {row['built_by']}) runs on {row['table_name']}, and this role may "
            "not see which index it builds (pg_stat_progress_create_index shows it only to superusers, that role "
            "and pg_read_all_stats): left alone; look again once it ends")
