"""The role a verification's restore logs in as on the private verification cluster: not a superuser.

A backup's SQL runs when it is restored, and SQL can run programs and read and write the server's files:
`COPY … TO PROGRAM` over two lines, in a DO block, or in a function that a CHECK constraint calls while
the dump's own rows load. plain_dump's line check sees psql's commands and a one-line COPY … PROGRAM, no
more; what PostgreSQL offers for a dump that is not trusted is to restore it as a role that is not a
superuser (what made CVE-2025-8714, psql commands that run whatever the role, matter). So on the
verification cluster, where every backup given to verify is restored by default:

- the cluster's bootstrap superuser is verify_cluster.ADMIN, not `postgres`: every role a dump names,
  `postgres` included, is one of the run's temporary NOLOGIN roles (scratch.temporary_roles);
- the run makes a LOGIN role of its own (PREFIX + run id, with the temporary roles' marker, so it goes
  with them and a killed run's is removed by the next), a member of those temporary roles (a plain dump's
  ALTER … OWNER TO and GRANT need it), and a NOLOGIN role (PREFIX + run id + `_owner`) that owns the
  scratch database, of which it and those roles are members (CREATE SCHEMA, trusted extensions, and
  CREATE in `public`, which ALTER … OWNER TO needs the new owner to have);
- an extension only a superuser may create, which the dump creates in a schema that exists before the
  restore (`public`), is created first by the superuser, in the fresh database where nothing of the
  dump's exists yet, and handed to that role (its owner in pg_extension), so that the dump's
  CREATE EXTENSION IF NOT EXISTS and COMMENT ON EXTENSION pass.

What only a superuser may restore (an untrusted extension in a schema of the dump's own, event triggers,
C functions) fails the verification with the server's reason. The comparison afterwards runs as the
superuser, over catalogs and tables only (checksums call no function of the dump's: see checksums), and
only where the dump has no function or operator named as a built-in in a schema its queries search
(`shadowing_builtins`); a CHECK definition is probed in a session of this role (see deparse).
A copy kept for inspection (`keep_scratch`) and `--same-server` restore as the connecting role: those
are for backups the DBA trusts.
"""

import re
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from . import objects, scratch
from .backup import libpq_env
from .db import Target, client_program, connect
from .manifest import schema_dump_path
from .sqlfiles import load

PREFIX = "prep_ops_restorer_"
_NAME = r'"(?:[^"]|"")+"|[^\s";]+'
_CREATE_EXTENSION = re.compile(rf"^CREATE EXTENSION IF NOT EXISTS ({_NAME}) WITH SCHEMA ({_NAME});\s*$")


def restorer(admin: psycopg.Connection, copy: Target, manifest: dict, path: Path, run: str, major: int,
             members: list[str]) -> tuple[Target, list[str]]:
    """`copy` (a fresh scratch database on `admin`'s server, a superuser's connection) as the restore role
    of run `run` sees it, and the roles made for it (drop them with the run's temporary roles, after the
    database). `members`: the temporary roles this run made for the dump's roles (never another run's:
    through them that run's restore could reach this run's database)."""
    role, owner = f"{PREFIX}{run}", f"{PREFIX}{run}_owner"
    made = scratch.temporary_roles(admin, [role, owner], run)
    admin.execute(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(role)))
    members = [r[0] for r in admin.execute(load("restore_role", "temporary_members"),
                                           {"names": list(members), "marker": scratch.ROLE_MARKER}).fetchall()]
    # the database's owner (`owner`) has what public's CREATE is granted to (pg_database_owner): the
    # dump's roles get it through `owner`, since ALTER … OWNER TO needs the new owner to have CREATE on
    # the schema; the restore role acts as each of them (never the other way round: no circle)
    admin.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(copy.database), sql.Identifier(owner)))
    for member in [role, *members]:
        admin.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(owner), sql.Identifier(member)))
    for member in members:
        admin.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(member), sql.Identifier(role)))
    _superuser_extensions(copy, role, extensions(path, manifest, copy, major))
    return copy.with_user(role), made


def settings_undone(admin: psycopg.Connection, database: str) -> None:
    """Take back any setting the restore gave `database` (ALTER DATABASE … SET, which its owner's members
    may run and pg_dump never writes without --create): the comparison's next connections, the
    superuser's, would start with them (a search_path, a role-level setting of the dump's choosing)."""
    admin.execute(sql.SQL("ALTER DATABASE {} RESET ALL").format(sql.Identifier(database)))


def shadowing_builtins(conn: psycopg.Connection) -> list[str]:
    """The restored database's functions and operators, not a superuser's, named as a built-in one and in a
    schema the comparison's queries search (its session's path, and objects.DEPARSE_SEARCH_PATH): where
    pg_catalog has no exact match for the argument types (`name NOT LIKE unknown` looks for !~~ (name,
    name) first), such a query runs the dump's in place of the built-in, as the verifier, a superuser.
    The comparison must not start while there is one."""
    schemas = conn.execute("SELECT pg_catalog.current_schemas(false)").fetchone()[0]
    with conn.transaction():
        conn.execute("SELECT pg_catalog.set_config('search_path', 'pg_catalog', true)")
        found = conn.execute(load("restore_role", "shadowing_builtins"),
                             {"schemas": sorted({*schemas, objects.DEPARSE_SEARCH_PATH})}).fetchall()
    return [what for what, in found]


def _superuser_extensions(copy: Target, role: str, wanted: list[tuple[str, str]]) -> None:
    """Create, as the superuser, those of `wanted` ((extension, schema), in the dump's order) that only a
    superuser may, where their schema exists already, and hand each to `role`."""
    with connect(copy, autocommit=True) as conn:
        schemas = dict(wanted)
        for name, in conn.execute(load("restore_role", "superuser_extensions"), {"names": list(schemas)}).fetchall():
            if conn.execute("SELECT to_regnamespace(%s) IS NULL", (sql.Identifier(schemas[name]).as_string(conn),)
                            ).fetchone()[0]:
                continue  # a schema the dump makes: the restore fails there, with the server's reason
            try:
                with conn.transaction():
                    conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {}").format(
                        sql.Identifier(name), sql.Identifier(schemas[name])))
                    conn.execute(load("restore_role", "hand_over_extension"), {"role": role, "extension": name})
            except psycopg.Error:
                continue  # one that cannot be made here (a missing library): the restore says why


def extensions(path: Path, manifest: dict, target: Target, major: int) -> list[tuple[str, str]]:
    """(extension, schema) of each CREATE EXTENSION the backup's SQL holds, in its order: pg_dump writes
    each on a line of its own. A data-only backup's come from the schema dump it carries."""
    schema = schema_dump_path(path, manifest)
    if manifest["kind"] == "data":
        return _from_lines(_archive_sql(schema, target, major)) if schema is not None else []
    if manifest["format"] == "plain":
        with Path(path).open("rb") as dump:
            return _from_lines(line.decode("utf-8", errors="replace") for line in dump
                               if line.startswith(b"CREATE EXTENSION "))
    return _from_lines(_archive_sql(path, target, major))


def _archive_sql(path: Path, target: Target, major: int) -> list[str]:
    """The schema's SQL of a custom or directory archive, as pg_restore would run it (none if unreadable:
    the restore then says why)."""
    pg_restore = client_program("pg_restore", target, major)
    _, env = libpq_env(target)
    listed = subprocess.run([str(pg_restore), "--schema-only", "--file", "-", str(path)], capture_output=True,
                            text=True, env=env)
    return listed.stdout.splitlines() if listed.returncode == 0 else []


def _from_lines(lines) -> list[tuple[str, str]]:
    found = []
    for line in lines:
        matched = _CREATE_EXTENSION.match(line.rstrip("\r\n"))
        if matched:
            found.append((_unquoted(matched.group(1)), _unquoted(matched.group(2))))
    return found


def _unquoted(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name
