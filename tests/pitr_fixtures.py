"""A private cluster of the embedded binaries with WAL archiving on, for base backup and recovery tests.

It never touches the suite's shared server: its own folder (outside pytest's tmp_path, which a nested
pytest session makes private), its own socket, its own WAL archive (PREP_OPS_WAL_DIR) and backups
folder (PREP_OPS_BACKUP_DIR), all removed afterwards.
"""

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from prep_ops import embedded, wal_archive
from prep_ops.db import Target, libpq_url
from prep_ops.recovery_cluster import hand_over, run_server_program


@dataclass
class SourceCluster:
    folder: Path
    data: Path
    system_identifier: str
    archive: Path
    target: Target  # its database "app"

    def url(self, database: str = "app") -> str:
        return libpq_url({"user": "postgres", "dbname": database, "host": str(self.folder / "sock")})

    def connect(self, database: str = "app"):
        return psycopg.connect(self.url(database), autocommit=True)


def make_source(folder: Path, extra: dict | None = None) -> SourceCluster:
    """initdb, archiving into wal_archive.archive_dir(<its system identifier>), started; database `app`."""
    data = folder / "data"
    (folder / "sock").mkdir(parents=True)
    hand_over(folder)
    bins = embedded.bin_dir()
    run_server_program([bins / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-sync"])
    out = subprocess.run([bins / "pg_controldata", "-D", data], capture_output=True, text=True, check=True,
                         env={"LC_ALL": "C"}).stdout
    sysid = next(line.split(":")[1].strip() for line in out.splitlines() if line.startswith("Database system identifier"))
    archive = wal_archive.archive_dir(sysid)
    archive.mkdir(parents=True)
    hand_over(wal_archive.root())
    settings = {"archive_mode": "on", "archive_command": f"test ! -f {archive}/%f && cp %p {archive}/%f",
                "listen_addresses": "", "unix_socket_directories": str(folder / "sock"), "fsync": "off",
                **(extra or {})}
    with (data / "postgresql.conf").open("a") as conf:
        conf.write("".join(f"{k} = '{v}'\n" for k, v in settings.items()))
    run_server_program([bins / "pg_ctl", "-D", data, "-l", folder / "log", "-w", "start"])
    source = SourceCluster(folder, data, sysid, archive, Target(libpq_url({"user": "postgres", "dbname": "app",
                                                                           "host": str(folder / "sock")}), False))
    with source.connect("postgres") as conn:
        conn.execute("CREATE DATABASE app")
    return source


def stop_source(source: SourceCluster) -> None:
    run_server_program([embedded.bin_dir() / "pg_ctl", "-D", source.data, "-m", "immediate", "stop"], check=False)


@pytest.fixture
def source_cluster(monkeypatch):
    """A private archiving cluster of the embedded binaries, with its own WAL and backups folders."""
    folder = Path(tempfile.mkdtemp(prefix="prep-ops-pitr-"))
    monkeypatch.setenv("PREP_OPS_WAL_DIR", str(folder / "wal"))
    monkeypatch.setenv("PREP_OPS_BACKUP_DIR", str(folder / "backups"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    source = make_source(folder / "one")
    yield source
    stop_source(source)
    shutil.rmtree(folder, ignore_errors=True)
