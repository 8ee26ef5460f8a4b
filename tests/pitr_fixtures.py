"""A private cluster of the embedded binaries with WAL archiving on, for base backup and recovery tests
(prep_ops.incident.drills.pitr_cluster, which the point-in-time drill runs on too).

It never touches the suite's shared server: its own folder (outside pytest's tmp_path, which a nested
pytest session makes private), its own socket, its own WAL archive (PREP_OPS_WAL_DIR) and backups
folder (PREP_OPS_BACKUP_DIR), all removed afterwards.
"""

import shutil
import tempfile
from pathlib import Path

import pytest

from prep_ops import base_backup, wal_archive
from prep_ops.incident.drills import pitr_cluster
from prep_ops.incident.drills.pitr_cluster import SourceCluster  # noqa: F401 (the tests' type)

make_source = pitr_cluster.make  # initdb, archiving into wal_archive.archive_dir(<sysid>), started; database `app`
stop_source = pitr_cluster.stop


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


def work(conn, first: int, last: int) -> None:
    """Rows `first`..`last` into the two tables `on_an_archiving_suite_server` (or a test) made."""
    conn.execute("INSERT INTO lessons SELECT g, 'lesson ' || g, g * 1.5 FROM generate_series(%s::int, %s::int) g", (first, last))
    conn.execute("INSERT INTO notes SELECT g, md5(g::text) FROM generate_series(%s::int, %s::int) g", (first, last))


def on_an_archiving_suite_server(conn, scratch, monkeypatch, tmp_path) -> Path:
    """Skip unless the suite's server archives into its folder of the WAL archive (CI's PostgreSQL 15,
    PREP_OPS_WAL_DIR exported); then keep that archive while backups go to `tmp_path`, and make the two
    tables `work` fills in `scratch` (which `conn` is connected to); returns the cluster's archive folder."""
    archiving = conn.execute("SHOW archive_mode").fetchone()[0]
    archive = wal_archive.archive_dir(base_backup.source_of(conn)["system_identifier"])
    if scratch.embedded or archiving == "off" or not archive.is_dir():
        pytest.skip(f"the server under test does not archive into {archive} (archive_mode {archiving})")
    monkeypatch.setenv("PREP_OPS_WAL_DIR", str(wal_archive.root()))  # kept while the backups go elsewhere
    monkeypatch.setenv("PREP_OPS_BACKUP_DIR", str(tmp_path / "backups"))
    conn.execute("CREATE TABLE lessons (id int PRIMARY KEY, title text, fee numeric)")
    conn.execute("CREATE TABLE notes (id int PRIMARY KEY, body text)")
    return archive
