"""The data-recovery drill: a scratch database with sample data, its own application role with a
session open, a verified-able full backup, and then the damage: enrollments deleted and a column of
tuition payments overwritten, as a bad script or a wrong WHERE clause would.

Its database and roles carry the incident's id (prep_ops_drill_recovery_<label>, prep_ops_recovery_<label>_app
...), so two runs at once never share them; `cleanup` drops only its own, and `prepare` first removes
what killed runs left (lifecycle.sweep). The drill's passwords are its own, generated: never the
real roles' $PREP_OPS_<ROLE>_PASSWORD.

The point-in-time drill (`prepare_point_in_time`) runs on a private archiving cluster of its own
(pitr_cluster): the same database and roles, the audit log on the damaged tables (unless told not to),
a base backup, the full (logical) backup, then work after it (new enrollments, new and changed card
payments), then the same damage. `cleanup` removes the cluster with its WAL archive and backups; a
killed run's cluster is removed by the next point-in-time drill.
"""

import secrets
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from ... import audit_log, base_backup, migrate, roles, seed
from ... import backup as backups
from .. import naming
from ...db import Target, connect
from ...sqlfiles import load
from . import lifecycle, pitr_cluster

DATABASE = "prep_ops_drill_recovery"  # the prefix of the drill databases: <DATABASE>_<label>
ROLE_PREFIX = "prep_ops_recovery_"  # roles are server-wide: the drill's never touch the real ones


@dataclass
class Drill:
    target: Target               # the damaged scratch database
    server: Target               # its server's maintenance database
    note: str                    # where the drill runs, one line
    backup: backups.Backup       # the full backup taken just before the damage
    role_set: roles.RoleSet
    passwords: dict = field(repr=False)
    app: psycopg.Connection | None = field(default=None, repr=False)  # the application's open session
    damage: dict = field(default_factory=dict)  # table -> rows damaged
    conn: psycopg.Connection | None = field(default=None, repr=False)  # the run's own, open from creation on
    swept: list[str] = field(default_factory=list)  # what killed drills had left, removed first
    cluster: pitr_cluster.SourceCluster | None = field(default=None, repr=False)  # point-in-time: its own cluster
    after_dump: dict = field(default_factory=dict)  # point-in-time: what the work after the dump did, per kind
    before_damage: tuple | None = None  # point-in-time: (server time, WAL location) just before the damage

    @property
    def backups_dir(self) -> Path | None:
        """Where the point-in-time drill's base backups are (None for the other drills)."""
        return self.cluster.folder / "backups" if self.cluster else None

    @property
    def app_role(self) -> str:
        return self.role_set.app

    def app_login(self) -> Target:
        """The drill database, logging in as the drill's application role."""
        return roles.login(self.target, self.app_role, self.passwords.get("app"))


def names(incident_id: str) -> tuple[str, roles.RoleSet]:
    """The drill database and role set of incident `incident_id`."""
    label = naming.drill_label(incident_id)
    return lifecycle.database_name(DATABASE, label), roles.RoleSet.with_prefix(lifecycle.role_prefix(ROLE_PREFIX, label))


def _backup_dir(directory: Path | None) -> Path:
    return Path(directory) if directory else backups.backups_dir() / "drills"


def prepare(target: Target, students: int = 2000, seed: int = 42, *, incident_id: str,
            backup_dir: Path | None = None) -> Drill:
    """Make the drill of `incident_id`: sample database, roles, the application's session, a full
    backup, then the damage."""
    server, note = naming.drill_server(target)
    database, role_set = names(incident_id)
    lifecycle.drop(server, database, list(role_set.names.values()))  # a re-run of the incident: its own leftovers first
    drill_db, conn, swept = lifecycle.make_database(server, database, students, seed, sweep_prefix=DATABASE,
                                                    roles_prefix=ROLE_PREFIX, label=naming.drill_label(incident_id))
    passwords = roles.resolve_passwords({kind: secrets.token_urlsafe(24) for kind in roles.LOGIN_KINDS})
    try:
        roles.apply(conn, role_set, passwords, confirm=True)
        taken = backups.backup(drill_db, "full", "custom", directory=_backup_dir(backup_dir))
        drill = Drill(drill_db, server, note, taken, role_set, passwords, conn=conn, swept=swept)
        drill.app = psycopg.connect(drill.app_login().url, autocommit=True, application_name="music-school-app")
        with conn.transaction():
            deleted = conn.execute(load("drills", "recovery_delete_enrollments")).rowcount
            overwritten = conn.execute(load("drills", "recovery_overwrite_payments")).rowcount
    except BaseException:
        conn.close()
        lifecycle.drop(server, database, list(role_set.names.values()))
        raise
    drill.damage = {"public.enrollments": deleted, "public.tuition_payments": overwritten}
    return drill


WORK_AFTER_DUMP = ("new_enrollments", "new_payments", "changed_payments")  # sql/drills/recovery_work_<kind>.sql


def prepare_point_in_time(students: int = 2000, seed_value: int = 42, *, incident_id: str,
                          audit: bool = True) -> Drill:
    """Make the point-in-time drill of `incident_id` on a private archiving cluster: sample database,
    roles, the audit log on the damaged tables (`audit`), pg_walinspect, a base backup, a full backup,
    work after it, the application's session, then the damage."""
    swept = [f"drill cluster {p.name}" for p in pitr_cluster.remove_stale()]
    database, role_set = names(incident_id)
    cluster = pitr_cluster.make(pitr_cluster.new_folder(), database=database, scratch=True)
    drill = Drill(cluster.target, cluster.server, f"drill on a private archiving cluster ({cluster.folder.name})",
                  None, role_set, {}, swept=swept, cluster=cluster)
    try:
        drill.conn = conn = connect(cluster.target, autocommit=True)
        migrate.apply(conn, confirm=True)
        seed.seed(conn, students, seed_value, confirm=True)
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        if audit:
            audit_log.enable(conn, ["enrollments", "tuition_payments"], confirm=True)
        drill.passwords = roles.resolve_passwords({kind: secrets.token_urlsafe(24) for kind in roles.LOGIN_KINDS})
        roles.apply(conn, role_set, drill.passwords, confirm=True)
        base_backup.take(conn, cluster.target, directory=drill.backups_dir)
        drill.backup = backups.backup(cluster.target, "full", "custom", directory=drill.backups_dir / "logical")
        with conn.transaction():
            drill.after_dump = {kind: conn.execute(load("drills", f"recovery_work_{kind}")).rowcount for kind in WORK_AFTER_DUMP}
        drill.app = psycopg.connect(drill.app_login().url, autocommit=True, application_name="music-school-app")
        drill.before_damage = conn.execute("SELECT clock_timestamp(), pg_current_wal_insert_lsn()::text").fetchone()
        with conn.transaction():
            deleted = conn.execute(load("drills", "recovery_delete_enrollments")).rowcount
            overwritten = conn.execute(load("drills", "recovery_overwrite_payments")).rowcount
    except BaseException:
        cleanup(drill)
        raise
    drill.damage = {"public.enrollments": deleted, "public.tuition_payments": overwritten}
    return drill


def cleanup(drill: Drill) -> None:
    """Drop the drill's database, its roles and its backup: its own only (safe to call twice); the
    point-in-time drill's cluster is removed whole, with its WAL archive and backups."""
    for conn in (drill.app, drill.conn):
        if conn is not None and not conn.closed:
            conn.close()
    if drill.cluster is not None:
        pitr_cluster.remove(drill.cluster)
        return
    lifecycle.drop(drill.server, drill.target.database, list(drill.role_set.names.values()))
    for path in (drill.backup.manifest_path, drill.backup.path):
        if path.exists():
            path.unlink()
