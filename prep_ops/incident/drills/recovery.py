"""The data-recovery drill: a scratch database with sample data, its own application role with a
session open, a verified-able full backup, and then the damage: enrollments deleted and a column of
tuition payments overwritten, as a bad script or a wrong WHERE clause would."""

from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from ... import backup as backups
from ... import roles, scratch
from .. import record
from ...db import Target, connect
from ...sqlfiles import load

DATABASE = "prep_ops_drill_recovery"
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

    @property
    def app_role(self) -> str:
        return self.role_set.app

    def app_login(self) -> Target:
        """The drill database, logging in as the drill's application role."""
        return roles.login(self.target, self.app_role, self.passwords.get("app"))


def _backup_dir(directory: Path | None) -> Path:
    return Path(directory) if directory else backups.backups_dir() / "drills"


def prepare(target: Target, students: int = 2000, seed: int = 42, *, backup_dir: Path | None = None) -> Drill:
    """Make the drill: sample database, roles, the application's session, a full backup, then the damage."""
    server, note = record.drill_server(target)
    cleanup(server)  # what a crashed earlier drill may have left
    drill_db = scratch.sample_database(server, students, seed, name=DATABASE, confirm=True)
    role_set = roles.RoleSet.with_prefix(ROLE_PREFIX)
    passwords = roles.resolve_passwords(generate=True)
    with connect(drill_db, autocommit=True) as conn:
        roles.apply(conn, role_set, passwords, confirm=True)
        taken = backups.backup(drill_db, "full", "custom", directory=_backup_dir(backup_dir))
        drill = Drill(drill_db, server, note, taken, role_set, passwords)
        drill.app = psycopg.connect(drill.app_login().url, autocommit=True, application_name="music-school-app")
        with conn.transaction():
            deleted = conn.execute(load("drills", "recovery_delete_enrollments")).rowcount
            overwritten = conn.execute(load("drills", "recovery_overwrite_payments")).rowcount
    drill.damage = {"public.enrollments": deleted, "public.tuition_payments": overwritten}
    return drill


def cleanup(server: Target, drill: Drill | None = None) -> None:
    """Drop the drill database, its roles and its backup (safe to call when there is nothing to drop)."""
    if drill is not None and drill.app is not None and not drill.app.closed:
        drill.app.close()
    with connect(server, autocommit=True) as conn:
        scratch.drop(conn, DATABASE)
        roles.drop(conn, roles.RoleSet.with_prefix(ROLE_PREFIX), confirm=True)
    if drill is not None:
        for path in (drill.backup.manifest_path, drill.backup.path):
            if path.exists():
                path.unlink()
