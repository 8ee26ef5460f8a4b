"""Throwaway databases on the target's server: made for one job, dropped after it.

`create`, `drop` and `existing` work on a connection to the server (any of its databases, in
autocommit mode: CREATE and DROP DATABASE run outside a transaction), so a job that makes and drops
several shares one; `recreate` and `sample_database` open it for a caller that has a Target only.
`drop` and `existing` take either.

Nothing left behind: a job that makes throwaway databases and roles names them by its run id
(`run_id()`: its start to the millisecond, UTC, and a random part) and holds a session advisory lock
on that id (`claim`, until its session ends) while it works. What a killed job left is found by the
next: a database named with a run id older than the current run, that no session uses and whose
run's lock is free (`remove_stale`); a temporary role whose comment names such a run, no database of
which is left (`remove_stale_roles`). Advisory locks belong to one database: jobs on one server coordinate
through the database they connect to for this, the server's maintenance database.

Roles are cluster-wide and keep the source's names (a dump's GRANT and OWNER name them), so two jobs
needing the same missing role cannot each have their own copy: `temporary_roles` takes a lock on the
role's name and holds it until `drop_temporary_roles`, so a second job waits for the first to drop
its role and then makes its own; two never share one.
"""

import contextlib
import re
import secrets
from datetime import datetime, timezone

import psycopg
from psycopg import sql

from . import migrate, seed
from .db import Target, connect, require_change
from .errors import ParameterError, TargetError, first_line
from .sqlfiles import load

PREFIX = "prep_ops_"
ROLE_MARKER = "prep-ops temporary role of run "
_RUN = r"(\d{17}_[0-9a-f]{6})"
_RUN_LOCK, _ROLE_LOCK = 7201, 7202  # the first key of the two-key advisory locks prep-ops takes


@contextlib.contextmanager
def _server(where: "Target | psycopg.Connection"):
    """A connection to the server: the one given, or one opened (and closed) for a Target."""
    if isinstance(where, psycopg.Connection):
        yield where
        return
    with connect(where, autocommit=True) as conn:
        yield conn


def _drop(conn: psycopg.Connection, name: str) -> None:
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def create(conn: psycopg.Connection, name: str, *, confirm: bool = False) -> None:
    """An empty database `name` on the connection's server (dropped first if it exists).

    Only names starting with prep_ops_ are accepted, and never the connection's own database, so a
    real database cannot be dropped by mistake. Outside a scratch server, needs `confirm`.
    """
    if not name.startswith(PREFIX):
        raise ParameterError(f"scratch database names start with {PREFIX!r}, not {name!r}")
    if name == conn.info.dbname:
        raise ParameterError(f"{name!r} is the database being worked on; a scratch database must be another")
    require_change(conn, confirm, f"creating scratch database {name}")
    _drop(conn, name)
    try:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.errors.InsufficientPrivilege as exc:
        raise TargetError(f"role {conn.info.user} may not create the scratch database {name} ({first_line(exc)}): "
                          "use a role with CREATEDB, or the embedded server (verify without --same-server)") from None


def recreate(server: Target, name: str, *, confirm: bool = False) -> Target:
    """The Target of an empty database `name` on the server of `server` (see `create`)."""
    with _server(server) as conn:
        create(conn, name, confirm=confirm)
    return server.with_database(name)


def drop(where: "Target | psycopg.Connection", name: str) -> None:
    """Drop scratch database `name` (prep_ops_ names only) if it exists, on the server `where` connects to."""
    with _server(where) as conn:
        if not name.startswith(PREFIX) or name == conn.info.dbname:
            raise ParameterError(f"{name!r} is not a scratch database")
        _drop(conn, name)


def existing(where: "Target | psycopg.Connection", prefix: str = PREFIX) -> list[str]:
    """The databases on the server `where` connects to whose names start with `prefix` (e.g. those a kind
    of job makes and should have dropped), sorted."""
    with _server(where) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s) ORDER BY 1", (prefix,)).fetchall()
    return [name for name, in rows]


def sample_database(server: Target, students: int, seed_value: int = 42, *, name: str = "prep_ops_sample",
                    confirm: bool = False, progress: bool = False) -> Target:
    """A fresh scratch database at the latest schema with `students` sample students."""
    target = recreate(server, name, confirm=confirm)
    with connect(target, autocommit=True) as conn:
        migrate.apply(conn, confirm=confirm)
        seed.seed(conn, students, seed_value, confirm=confirm, progress=progress)
    return target


def lab_database(server: Target, students: int, seed_value: int = 42, *, prefix: str = "prep_ops_plans_",
                 confirm: bool = False) -> Target:
    """A fresh sample database of this run (`prefix` + a run id: two runs at once never share one),
    after dropping the labs killed runs left (older, no session on them). The caller drops it when done."""
    run = run_id()
    with _server(server) as conn:
        require_change(conn, confirm, f"creating scratch database {prefix}{run}")
        remove_stale(conn, prefix, run)
    return sample_database(server, students, seed_value, name=prefix + run, confirm=confirm)


# --- run ids, locks, and what killed runs left ---------------------------------------------------
def run_id(at: datetime | None = None) -> str:
    """A run's id: its start in UTC to the millisecond, then a random part (ids sort by start; no two alike)."""
    at = at or datetime.now(timezone.utc)
    return f"{at:%Y%m%d%H%M%S}{at.microsecond // 1000:03d}_{secrets.token_hex(3)}"


@contextlib.contextmanager
def coordinating(conn: psycopg.Connection, target: Target):
    """An autocommit connection to the maintenance database of `target`'s server (`conn`: any connection to
    that server), where jobs that make throwaway databases take and look for each other's run locks
    (advisory locks belong to one database): `postgres`, or `template1` on a server without it. Chosen by
    what exists, never because a connection failed (two runs would then lock in different databases): a
    connection that fails raises."""
    has_postgres = conn.execute("SELECT EXISTS (SELECT FROM pg_database WHERE datname = 'postgres')").fetchone()[0]
    with connect(target.with_database("postgres" if has_postgres else "template1"), autocommit=True) as conn:
        yield conn


def claim(conn: psycopg.Connection, run: str) -> None:
    """Mark `run` as alive for as long as the connection's session lasts."""
    conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (_RUN_LOCK, run))


def marked(name: str) -> bool:
    """Whether `name` has the shape of a throwaway database of a run (prep_ops_, maybe a job's word, then a
    run id): a later run of that job could take it for a killed run's leftover and drop it."""
    return re.match(re.escape(PREFIX) + r"(?:[a-z0-9_]*?_)?" + _RUN, name) is not None


def _free(conn: psycopg.Connection, key: int, name: str) -> bool:
    """Whether no session holds the lock (`key`, name): tried, and let go again at once."""
    if not conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (key, name)).fetchone()[0]:
        return False
    conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (key, name))
    return True


def _older(other: str, run: str) -> bool:
    return other[:17] < run[:17]


def _of_killed_run(conn: psycopg.Connection, prefix: str, name: str, run: str) -> bool:
    """Whether database `name` is `prefix` + the id of a run older than `run` that holds no lock."""
    found = re.match(re.escape(prefix) + _RUN + r"(_.*)?$", name)
    return bool(found) and _older(found.group(1), run) and _free(conn, _RUN_LOCK, found.group(1))


def abandoned(conn: psycopg.Connection, prefix: str, run: str) -> list[str]:
    """The databases named `prefix` + a run id older than `run` whose run holds no lock: what killed runs
    left, whether a session (an orphaned pg_restore, say) still uses them or not."""
    return [name for name in existing(conn, prefix) if _of_killed_run(conn, prefix, name, run)]


def remove_stale(conn: psycopg.Connection, prefix: str, run: str, *, comment: str | None = None) -> list[str]:
    """Drop the databases named `prefix` + a run id older than `run` (with `comment`, when given) that no
    session uses and whose run holds no lock: what killed runs left. Returns the names dropped."""
    removed = []
    for name, said in conn.execute(load("scratch", "unused_databases"), {"prefix": prefix}).fetchall():
        if (comment is not None and said != comment) or not _of_killed_run(conn, prefix, name, run):
            continue
        try:  # without FORCE: a session that arrived meanwhile keeps it
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            removed.append(name)
        except psycopg.errors.ObjectInUse:
            pass
    return removed


def remove_stale_roles(conn: psycopg.Connection, run: str, *, only: str | None = None) -> list[str]:
    """Drop the temporary roles (or the one named `only`) of runs older than `run` that left no database
    (no name carries their id) and hold no lock; a role something still depends on stays. Returns the
    names dropped."""
    removed = []
    databases = [r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()]
    for role, comment in conn.execute(load("scratch", "temporary_roles"), {"marker": ROLE_MARKER}).fetchall():
        found = re.match(re.escape(ROLE_MARKER) + _RUN, comment)
        if (only is not None and role != only) or not found or not _older(found.group(1), run) \
                or any(found.group(1) in d for d in databases) or not _free(conn, _ROLE_LOCK, role):
            continue
        try:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
            removed.append(role)
        except psycopg.errors.DependentObjectsStillExist:
            pass
    return removed


def temporary_roles(conn: psycopg.Connection, names: list[str], run: str) -> list[str]:
    """Create those of the roles `names` the server lacks, as NOLOGIN roles without privileges whose
    comment names `run`; returns those made. Each is locked by name first (waiting while another run
    has it) and stays locked until `drop_temporary_roles`. One of another run found under the lock is
    that run's leftover when no database of its run is left: dropped and made again; else (a restored
    copy still uses it) it is used, not made, and never dropped here."""
    # used as they are; another run's temporary one is waited for. One statement: read as two (temporary
    # roles, then all roles), a role another run made in between counted as real, was never locked, and
    # vanished under this run's restore when that run dropped it (seen in CI: two runbook 10 at once)
    real = {r[0] for r in conn.execute(load("scratch", "real_roles"), {"marker": ROLE_MARKER}).fetchall()}
    made = []
    for role in sorted(set(names) - real):
        conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (_ROLE_LOCK, role))
        if role in _role_names(conn) and not remove_stale_roles(conn, run, only=role):
            conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (_ROLE_LOCK, role))
            continue
        with conn.transaction():
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
            conn.execute(sql.SQL("COMMENT ON ROLE {} IS {}").format(sql.Identifier(role),
                                                                  sql.Literal(f"{ROLE_MARKER}{run}")))
        made.append(role)
    return made


def _role_names(conn: psycopg.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT rolname FROM pg_roles").fetchall()}


def drop_temporary_roles(conn: psycopg.Connection, roles: list[str]) -> dict[str, str]:
    """Drop `roles` (those `temporary_roles` made) and let go of their locks; returns the ones that had to
    stay, with why (something outside the dropped databases still refers to them)."""
    kept = {}
    for role in roles:
        try:
            with conn.transaction():
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        except psycopg.errors.DependentObjectsStillExist as exc:
            kept[role] = str(exc).strip().splitlines()[0]
        conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (_ROLE_LOCK, role))
    return kept
