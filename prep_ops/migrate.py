"""Plain-SQL migrations: discover, validate, plan and apply them, one transaction each.

Each migration is a pair of files in prep_ops/migrations/: NNNN_name.up.sql and
NNNN_name.down.sql. Applied versions are recorded in the guide's `schema_version` table;
the SHA-256 of each applied up file is kept in `prep_ops_migrations`, so an applied file
that was edited afterwards is refused, naming it (as Flyway's validate does). All runs take
a session advisory lock, so two runs at once cannot interleave.
"""

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg import sql

from .db import Target, connect
from .errors import MigrationError
from .paths import PACKAGE_DIR
from .sqlfiles import load

MIGRATIONS_DIR = PACKAGE_DIR / "migrations"
LOCK_KEY = 7_130_001  # pg_advisory_lock key for "prep-ops migrate"
_FILE = re.compile(r"^(\d{4})_(\w+)\.up\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    up_sql: str
    down_sql: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.up_sql.encode()).hexdigest()

    @property
    def description(self) -> str:
        """The first comment line of the up file, else the name."""
        for line in self.up_sql.splitlines():
            if line.startswith("--"):
                return line.lstrip("- ").strip()
        return self.name.replace("_", " ")


@dataclass(frozen=True)
class MigrationState:
    version: int
    name: str
    applied: bool
    applied_at: datetime | None
    changed: bool  # applied, and the file differs from what was applied


@dataclass(frozen=True)
class Step:
    """One migration to run in one direction."""

    version: int
    name: str
    direction: str  # "up" or "down"
    sql: str


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """All migrations in `directory`, in version order."""
    migrations = []
    for path in sorted(directory.glob("*.up.sql")):
        match = _FILE.match(path.name)
        if not match:
            continue
        down = path.with_name(path.name.replace(".up.sql", ".down.sql"))
        if not down.exists():
            raise MigrationError(f"migration {path.name} has no down file {down.name}")
        migrations.append(Migration(int(match[1]), match[2], path.read_text(), down.read_text()))
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise MigrationError(f"migration versions must run 1, 2, 3 ... without gaps; found {versions}")
    return migrations


def _applied(conn: psycopg.Connection) -> dict[int, tuple]:
    if conn.execute("SELECT to_regclass('schema_version')").fetchone()[0] is None:
        return {}
    if conn.execute("SELECT to_regclass('prep_ops_migrations')").fetchone()[0] is None:
        rows = conn.execute(load("migrate", "applied_without_checksums")).fetchall()
    else:
        rows = conn.execute(load("migrate", "applied")).fetchall()
    return {version: (applied_at, description, sha) for version, applied_at, description, sha in rows}


def status(target: Target, directory: Path = MIGRATIONS_DIR) -> list[MigrationState]:
    """Each migration with whether it is applied and whether its file changed since."""
    with connect(target, autocommit=True) as conn:
        applied = _applied(conn)
    states = []
    for m in discover(directory):
        record = applied.get(m.version)
        changed = bool(record and record[2] and record[2] != m.sha256)
        states.append(MigrationState(m.version, m.name, record is not None, record[0] if record else None, changed))
    return states


def current_version(target: Target) -> int:
    """The highest applied version, 0 for an empty database."""
    with connect(target, autocommit=True) as conn:
        return max(_applied(conn), default=0)


def _validate(applied: dict[int, tuple], migrations: list[Migration]) -> None:
    by_version = {m.version: m for m in migrations}
    for version, (_, _, sha) in sorted(applied.items()):
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(f"migration {version} is applied but its file is missing; restore the file")
        if sha and sha != migration.sha256:
            raise MigrationError(
                f"migration {version:04d}_{migration.name} was edited after it was applied; "
                "restore the original file and add a new migration instead"
            )


def plan(target: Target, to: int | None = None, directory: Path = MIGRATIONS_DIR) -> list[Step]:
    """The steps that `apply(target, to)` would run, in order; changes nothing."""
    with connect(target, autocommit=True) as conn:
        return _plan(conn, to, directory)


def _plan(conn: psycopg.Connection, to: int | None, directory: Path) -> list[Step]:
    migrations = discover(directory)
    applied = _applied(conn)
    _validate(applied, migrations)
    latest = migrations[-1].version if migrations else 0
    target = latest if to is None else to
    if not 0 <= target <= latest:
        raise MigrationError(f"no migration {target}: versions run from 0 (empty) to {latest}")
    current = max(applied, default=0)
    if target >= current:
        return [Step(m.version, m.name, "up", m.up_sql) for m in migrations if current < m.version <= target]
    return [Step(m.version, m.name, "down", m.down_sql) for m in reversed(migrations) if target < m.version <= current]


def apply(target: Target, to: int | None = None, directory: Path = MIGRATIONS_DIR) -> list[Step]:
    """Migrate up or down to version `to` (latest when None); returns the steps run.

    Each step runs in its own transaction together with its schema_version record, so a
    failing step leaves schema and data as they were before it.
    """
    with connect(target, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))  # released when the session ends
        steps = _plan(conn, to, directory)  # read again under the lock
        by_version = {m.version: m for m in discover(directory)}
        for done, step in enumerate(steps):
            try:
                _run_step(conn, step, by_version[step.version], first=not done)
            except MigrationError as exc:
                if done:
                    raise MigrationError(f"{exc}; the {done} step(s) before it stayed done, so the schema is at version "
                                         f"{max(_applied(conn), default=0)}") from None
                raise
        return steps


def _drop_derived(conn: psycopg.Connection) -> None:
    """Drop what prep-ops builds on the school's tables and that a down migration would trip over: the
    masked views of 06_access_control_audit (it recreates them, with the same pseudonyms)."""
    from .masking import SCHEMA as MASKED

    if conn.execute("SELECT to_regnamespace(%s)", (MASKED,)).fetchone()[0] is not None:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(MASKED)))


def _run_step(conn: psycopg.Connection, step: Step, migration: Migration, *, first: bool = False) -> None:
    try:
        with conn.transaction():
            if first and step.direction == "down":
                _drop_derived(conn)
            conn.execute(step.sql)
            if step.direction == "up":
                conn.execute(load("migrate", "bookkeeping"))
                conn.execute(
                    "INSERT INTO schema_version (version, description) VALUES (%s, %s)",
                    (step.version, migration.description),
                )
                conn.execute(
                    "INSERT INTO prep_ops_migrations (version, name, sha256) VALUES (%s, %s, %s)",
                    (step.version, step.name, migration.sha256),
                )
            else:
                conn.execute("DELETE FROM prep_ops_migrations WHERE version = %s", (step.version,))
                if conn.execute("SELECT to_regclass('schema_version')").fetchone()[0] is not None:
                    conn.execute("DELETE FROM schema_version WHERE version = %s", (step.version,))
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, psycopg.errors.DependentObjectsStillExist) and exc.diag.message_detail:
            reason += f" ({exc.diag.message_detail.splitlines()[0]}; drop what depends on it first)"
        raise MigrationError(
            f"migration {step.version:04d}_{step.name} ({step.direction}) failed: {reason}; "
            "this step was rolled back"
        ) from None
