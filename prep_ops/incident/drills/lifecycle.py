"""A drill's names, its database made and dropped, and what killed drills left behind.

Each drill run names its scratch database and roles after its incident id (naming.drill_label):
database `prep_ops_drill_<kind>_<label>`, roles `<role prefix><label>_<kind of role>`. Its clean-up
drops only those. What a killed run left (a database, roles with LOGIN and a known password) is
removed by the next drill of the same kind (`sweep`), only when it is clearly dead:

- its database has no client session (a live drill always has one: the run's own connection stays open
  on its database from creation to clean-up; autovacuum working there does not count), and none of its
  roles has a session anywhere;
- the sweep and each drill's creation (up to its first session) and clean-up take one advisory lock
  on the drill server's database, so a sweep never sees a run between CREATE DATABASE and its
  first connection, or half way through its own clean-up.

The fixed names of earlier versions (prep_ops_drill_recovery, prep_ops_security_contractor, ...) are
the empty label's, and are swept the same way. A drill whose session the server ended (a restart)
counts as dead: its next run, or the next drill of its kind, removes it.
"""

from contextlib import contextmanager

import psycopg
from psycopg import sql

from ... import migrate, roles, scratch, seed
from ...catalog import existing_roles
from ...db import Target, connect
from ...errors import PrepOpsError, first_line

_LOCK = 0x64726C6C  # advisory lock key of drill creation, clean-up and sweeping ("drll")


def database_name(prefix: str, label: str) -> str:
    """The drill database of `label`: `prefix`_`label` (the bare prefix for the empty label, as earlier versions named it)."""
    return f"{prefix}_{label}" if label else prefix


def role_prefix(prefix: str, label: str) -> str:
    """The prefix of the drill roles of `label`: `prefix``label`_ (the bare prefix for the empty label)."""
    return f"{prefix}{label}_" if label else prefix


@contextmanager
def locked(conn: psycopg.Connection):
    """The drills' advisory lock held on `conn` (a connection to the drill server) while inside."""
    conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK,))
    try:
        yield conn
    finally:
        if not conn.closed:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK,))


def _labels_of_roles(conn: psycopg.Connection, prefix: str, kinds: tuple[str, ...]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    rows = conn.execute("SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s) ORDER BY 1", (prefix,)).fetchall()
    for (name,) in rows:
        rest = name[len(prefix):]
        kind = next((k for k in kinds if rest == k or rest.endswith("_" + k)), None)
        if kind is not None:
            found.setdefault(rest[:-len(kind)].rstrip("_"), []).append(name)
    return found


def _busy(conn: psycopg.Connection, database: str | None, role_names: list[str]) -> bool:
    """Whether a client (not autovacuum, which DROP DATABASE ends itself) has a session on `database` or as
    one of `role_names`."""
    return conn.execute("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'client backend' "
                        "AND (datname = %s OR usename = ANY(%s)))", (database, role_names)).fetchone()[0]


def drop_roles(conn: psycopg.Connection, names: list[str]) -> list[str]:
    """Drop roles a drill made (what they own in this database too); returns those dropped."""
    present = existing_roles(conn, names)
    if present:
        with conn.transaction():
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.SQL(", ").join(map(sql.Identifier, present))))
            for name in present:
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
    return present


def sweep(conn: psycopg.Connection, database_prefix: str, roles_prefix: str | None = None,
          kinds: tuple[str, ...] = (*roles.KINDS, "contractor"), *, keep: str | None = None) -> list[str]:
    """Drop the drill databases and roles of dead runs (see the module's docstring) on the connection's
    server, all but label `keep`'s; call it holding `locked`. Returns what went, and what had to stay
    with why, one line each."""
    databases = {name[len(database_prefix):].lstrip("_"): name for name in scratch.existing(conn, database_prefix)
                 if name == database_prefix or name.startswith(database_prefix + "_")}
    role_labels = _labels_of_roles(conn, roles_prefix, kinds) if roles_prefix else {}
    said = []
    for label in sorted(set(databases) | set(role_labels)):
        if label == keep:
            continue
        database, names = databases.get(label), role_labels.get(label, [])
        if _busy(conn, database, names):
            continue
        try:
            if database:
                scratch.drop(conn, database)
                said.append(f"database {database}")
            said += [f"role {n}" for n in drop_roles(conn, names)]
        except (psycopg.Error, PrepOpsError) as exc:
            said.append(f"left {database or ', '.join(names)}: {first_line(exc)}")
    return said


def make_database(server: Target, name: str, students: int, seed_value: int, *, sweep_prefix: str,
                  roles_prefix: str | None, label: str) -> tuple[Target, psycopg.Connection, list[str]]:
    """Dead drills of this kind swept (label `label` excepted), then a fresh drill database `name` at
    the latest schema with `students` sample students; returns it, the connection that stays open on it
    for the run's life (the incident's own), and what the sweep removed."""
    target = server.with_database(name)
    with connect(server, autocommit=True) as admin, locked(admin):
        swept = sweep(admin, sweep_prefix, roles_prefix, keep=label)
        scratch.create(admin, name, confirm=True)  # this run's own leftover (a re-run of the incident) goes first
        conn = connect(target, autocommit=True)
    try:
        migrate.apply(conn, confirm=True)
        seed.seed(conn, students, seed_value, confirm=True)
    except BaseException:
        conn.close()
        drop(server, name, [])
        raise
    return target, conn, swept


def drop(server: Target, database: str, role_names: list[str]) -> list[str]:
    """A drill's database, then its roles, dropped under the drills' lock; returns the roles dropped."""
    with connect(server, autocommit=True) as admin, locked(admin):
        scratch.drop(admin, database)
        return drop_roles(admin, role_names)

