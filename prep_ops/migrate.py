"""Plain-SQL migrations: discover, validate, plan and apply them, one transaction each.

Each migration is a pair of files in prep_ops/migrations/: NNNN_name.up.sql and
NNNN_name.down.sql. Applied versions are recorded in the guide's `schema_version` table;
the SHA-256 of each applied up file AND of its down file is kept in `prep_ops_migrations`, so
an applied migration whose up or down file was edited afterwards is refused, naming the file
(as Flyway's validate does), before anything runs. All runs take a session advisory lock, so
two runs at once cannot interleave. The functions take an open (autocommit) connection and
leave it as they found it.

Databases migrated before down files were checksummed have no down checksum recorded: the
bookkeeping table gains its `down_sha256` column, and the down checksums of the migrations whose
up file still matches, on the next `migrate` run allowed to change the database (one that runs
steps, or on a scratch database, or with confirm). Until then their down files are trusted as
they are (trust on first use: there is nothing older to compare them with).
"""

import contextlib
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg import sql

from . import lock_watch
from .catalog import columns, relation_exists, row_counts, views
from .db import bounded_lock_wait, is_scratch, require_change, snapshot
from .errors import ConfirmationRequired, MigrationError, PlanChanged, PrepOpsError, first_line
from .paths import PACKAGE_DIR
from .sqlfiles import load

MIGRATIONS_DIR = PACKAGE_DIR / "migrations"
LOCK_KEY = 7_130_001  # pg_advisory_lock key for "prep-ops migrate"
AUDIT_LOG_VERSION = 6  # migration 0006 makes the audit log; its down drops it
MASKED_SINCE = 7  # migration 0007 makes the schema `masked`: below it, a schema of that name is the database's own
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
    def down_sha256(self) -> str:
        return hashlib.sha256(self.down_sql.encode()).hexdigest()

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
    changed: bool  # applied, and its up or down file differs from what was applied


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


def latest_version(directory: Path = MIGRATIONS_DIR) -> int:
    """The version of the newest migration in `directory` (0 when there is none)."""
    migrations = discover(directory)
    return migrations[-1].version if migrations else 0


def _applied(conn: psycopg.Connection) -> dict[int, tuple]:
    """version → (applied_at, description, up sha256, down sha256); a checksum not recorded is None. Behind
    another session's ACCESS EXCLUSIVE lock on the bookkeeping (a migration under way elsewhere, a VACUUM
    FULL), it waits db.LOCK_WAIT at most, then errors.LockBusy: a runbook's first cell never hangs on it."""
    if not relation_exists(conn, "schema_version"):
        return {}
    with bounded_lock_wait(conn, "the schema version (schema_version, prep_ops_migrations)"):
        if not relation_exists(conn, "prep_ops_migrations"):
            rows = conn.execute(load("migrate", "applied_without_checksums")).fetchall()
        elif not _has_down_checksums(conn):  # bookkeeping of an older prep-ops
            rows = conn.execute(load("migrate", "applied_without_down_checksums")).fetchall()
        else:
            rows = conn.execute(load("migrate", "applied")).fetchall()
    return {version: tuple(rest) for version, *rest in rows}


def _has_down_checksums(conn: psycopg.Connection) -> bool:
    return "down_sha256" in columns(conn, "prep_ops_migrations")


def status(conn: psycopg.Connection, directory: Path = MIGRATIONS_DIR) -> list[MigrationState]:
    """Each migration with whether it is applied and whether its file changed since."""
    applied = _applied(conn)
    states = []
    for m in discover(directory):
        record = applied.get(m.version)
        changed = bool(record and ((record[2] and record[2] != m.sha256) or (record[3] and record[3] != m.down_sha256)))
        states.append(MigrationState(m.version, m.name, record is not None, record[0] if record else None, changed))
    return states


def current_version(conn: psycopg.Connection) -> int:
    """The highest applied version, 0 for an empty database."""
    return max(_applied(conn), default=0)


def _validate(applied: dict[int, tuple], migrations: list[Migration]) -> None:
    by_version = {m.version: m for m in migrations}
    for version, (_, _, sha, down_sha) in sorted(applied.items()):
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(f"migration {version} is applied but its file is missing; restore the file")
        if sha and sha != migration.sha256:
            raise MigrationError(
                f"migration {version:04d}_{migration.name} was edited after it was applied; "
                "restore the original file and add a new migration instead"
            )
        if down_sha and down_sha != migration.down_sha256:
            raise MigrationError(
                f"the down file {version:04d}_{migration.name}.down.sql of applied migration {version:04d}_{migration.name} "
                "was edited after it was applied; nothing ran: restore the original file"
            )


def plan(conn: psycopg.Connection, to: int | None = None, directory: Path = MIGRATIONS_DIR) -> list[Step]:
    """The steps that `apply(conn, to)` would run, in order; changes nothing."""
    with snapshot(conn):
        return _plan(conn, to, directory)


def script(steps: list[Step]) -> str:
    """The SQL of `steps` as it will run, each headed by `-- <direction> <NNNN_name>`, and how many there are."""
    if not steps:
        return "-- nothing to do"
    shown = [f"-- {step.direction} {step.version:04d}_{step.name}\n{step.sql.strip()}\n" for step in steps]
    return "\n".join(shown) + f"\n-- {len(steps)} step(s)"


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


def _require_down(conn: psycopg.Connection, steps: list[Step], confirm: bool) -> None:
    """A down migration may drop columns and tables: over rows of the school's tables, or entries of the
    audit log (0006's down drops its schema: the evidence of who changed what), it needs `confirm`."""
    if confirm or not any(s.direction == "down" for s in steps):
        return
    from .sample import LOAD_ORDER  # numpy: only when a down migration is asked for

    rows = sum(row_counts(conn, LOAD_ORDER).values())
    drops_log = any(s.direction == "down" and s.version == AUDIT_LOG_VERSION for s in steps)
    entries = sum(row_counts(conn, ["log"], "audit").values()) if drops_log else 0
    held = [text for count, text in ((rows, f"{rows:,} rows in the school's tables"),
                                     (entries, f"{entries:,} entries of the audit log")) if count]
    if held:
        raise ConfirmationRequired(f"migrating down may drop data ({', '.join(held)}); "
                                   "pass --confirm (confirm=True in a notebook) to go ahead")


def _refuse_untested(steps: list[Step], tested: list[Step]) -> None:
    """PlanChanged unless `steps` (planned under the lock) are the `tested` ones, or nothing: a deployment runs
    what its restored copy ran, never what a parameter changed since (runbook 07's apply cell run again with
    another to_version, the copy and the backup made for the one before) or another session's migration made
    of the plan."""
    if steps and steps != tested:
        shown = lambda run: ", ".join(f"{s.direction} {s.version:04d}" for s in run) or "nothing"  # noqa: E731
        raise PlanChanged(f"the migrations to run now ({shown(steps)}) are not the ones tested on the copy "
                             f"({shown(tested)}): nothing ran; plan, back up and test again (runbook 07 from step 1) "
                             "with the version wanted")


def apply(conn: psycopg.Connection, to: int | None = None, directory: Path = MIGRATIONS_DIR, *,
          confirm: bool = False, tested: list[Step] | None = None) -> list[Step]:
    """Migrate up or down to version `to` (latest when None); returns the steps run.

    Outside a scratch database, needs `confirm`; so does a down migration over rows of the school's
    tables, anywhere. Each step runs in its own transaction together with its schema_version record,
    so a failing step leaves schema and data as they were before it. `tested`: the steps a restored
    copy ran (what `apply` returned there); the steps planned here under the lock must be those, or none
    (already applied), else PlanChanged and nothing runs.
    """
    conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    try:
        steps = _plan(conn, to, directory)  # read again under the lock
        if tested is not None:
            _refuse_untested(steps, list(tested))
        if steps:
            require_change(conn, confirm, f"migrating ({len(steps)} step(s))")
        _require_down(conn, steps, confirm)
        if steps or confirm or is_scratch(conn):  # bookkeeping only where a change is allowed
            _record_down_checksums(conn, directory)
        by_version = {m.version: m for m in discover(directory)}
        for done, step in enumerate(steps):
            try:
                _run_step(conn, step, by_version[step.version], first=not done, confirm=confirm)
            except MigrationError as exc:
                if done:
                    try:
                        at = f"at version {max(_applied(conn), default=0)}"
                    except (PrepOpsError, psycopg.Error):  # behind a lock, or the connection lost: the step's error first
                        last = steps[done - 1]
                        at = f"at version {last.version if last.direction == 'up' else last.version - 1}"
                    raise MigrationError(f"{exc}; the {done} step(s) before it stayed done, so the schema is {at}") from None
                raise
        return steps
    finally:
        if not conn.closed:  # a connection the server ended: its session's lock went with it
            with contextlib.suppress(psycopg.Error):
                conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))


def _record_down_checksums(conn: psycopg.Connection, directory: Path) -> None:
    """Upgrade the bookkeeping of an older prep-ops: add its down_sha256 column, and record the down
    checksum of each applied migration that has none (its up file checked unchanged by _plan)."""
    if not relation_exists(conn, "prep_ops_migrations"):
        return
    with conn.transaction():
        _in_public(conn)
        if not _has_down_checksums(conn):
            conn.execute(load("migrate", "bookkeeping"))
        for m in discover(directory):
            conn.execute("UPDATE public.prep_ops_migrations SET down_sha256 = %s WHERE version = %s AND sha256 = %s "
                         "AND down_sha256 IS NULL", (m.down_sha256, m.version, m.sha256))


def _drop_derived(conn: psycopg.Connection, confirm: bool) -> list[str]:
    """Drop what prep-ops builds on the school's tables and that a down migration would trip over: the
    masked views of 06_access_control_audit (it recreates them, with the same pseudonyms); returns them.
    Only from migration MASKED_SINCE on: below it, the schema `masked` and its views are the database's own."""
    from .masking import SCHEMA as MASKED

    derived = views(conn, MASKED)
    if derived:
        require_change(conn, confirm, "dropping the masked views before a down migration")
        conn.execute(sql.SQL("DROP VIEW {}").format(sql.SQL(", ").join(sql.Identifier(MASKED, v) for v in derived)))
    return derived


def _in_public(conn: psycopg.Connection) -> None:
    """For the rest of the caller's transaction, the search_path the migrations are written for: their
    unqualified names (CREATE TABLE users, INSERT INTO schema_version) are public's, whatever the database's
    or role's setting (`app` put the school's tables there, and met another tool's app.schema_version)."""
    conn.execute("SELECT set_config('search_path', 'public', true)")


def _run_step(conn: psycopg.Connection, step: Step, migration: Migration, *, first: bool = False,
              confirm: bool = False) -> None:
    wait = None
    try:
        with conn.transaction():
            _in_public(conn)
            wait = lock_watch.limit_ddl_wait(conn)  # a step queued behind a long transaction stalls its tables' queries
            if first and step.direction == "down" and step.version >= MASKED_SINCE:
                _drop_derived(conn, confirm)
            conn.execute(step.sql)
            if step.direction == "up":
                conn.execute(load("migrate", "bookkeeping"))
                conn.execute(
                    "INSERT INTO public.schema_version (version, description) VALUES (%s, %s)",
                    (step.version, migration.description),
                )
                conn.execute(
                    "INSERT INTO public.prep_ops_migrations (version, name, sha256, down_sha256) VALUES (%s, %s, %s, %s)",
                    (step.version, step.name, migration.sha256, migration.down_sha256),
                )
            else:
                conn.execute("DELETE FROM public.prep_ops_migrations WHERE version = %s", (step.version,))
                if relation_exists(conn, "schema_version"):
                    conn.execute("DELETE FROM public.schema_version WHERE version = %s", (step.version,))
            wait.done(conn)
    except psycopg.Error as exc:
        reason = first_line(exc)
        if isinstance(exc, psycopg.errors.LockNotAvailable):
            reason = lock_watch.gave_up(conn, wait)
        if isinstance(exc, psycopg.errors.DependentObjectsStillExist) and exc.diag.message_detail:
            reason += f" ({exc.diag.message_detail.splitlines()[0]}; drop what depends on it first)"
        raise MigrationError(
            f"migration {step.version:04d}_{step.name} ({step.direction}) failed: {reason}; "
            "this step was rolled back"
        ) from None
