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
