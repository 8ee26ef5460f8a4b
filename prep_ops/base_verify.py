"""verify BASE: prove a base backup restores and holds sound data.

Checks, each a report row like every other verification's (PASS, FAIL, or SKIP saying why):
1. every file of prep-ops-base.json present with its recorded size and SHA-256;
2. pg_verifybackup of the backup's major on the extracted data directory, against PostgreSQL's own
   backup_manifest (PostgreSQL 15's cannot read tar, so every major gets the extracted directory), WAL
   included (the backup's pg_wal);
3. the backup restored into a private recovery cluster (recovery_cluster) until consistent, with the
   WAL it carries only (no archive is needed);
4. pg_amcheck --heapallindexed on every database there (amcheck installed where missing: the cluster is
   thrown away), then the cluster is stopped and removed.
Before 2, the extracted pg_control's system identifier must be the manifest's ("cluster identity"): a
backup of another cluster relabelled (its prep-ops-base.json edited, hashes rewritten) FAILs there.
"""

import os
import subprocess
import time
from pathlib import Path

import pandas as pd

from . import base_backup, pg_binaries
from ._report import row
from .errors import PrepOpsError, first_line
from .recovery_cluster import NotThisCluster, recovered
from .verify import Verification


def _run(command: list) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})


def _last_line(done: subprocess.CompletedProcess) -> str:
    lines = (done.stderr.strip() or done.stdout.strip()).splitlines()
    return lines[-1][:200] if lines else f"exit code {done.returncode}"


def verify_base(path: Path) -> Verification:
    """The verification of the base backup folder `path`: files, pg_verifybackup, restore until
    consistent, amcheck; `ok` when nothing failed."""
    started = time.monotonic()
    path = Path(path)
    rows = []
    try:
        manifest = base_backup.read(path)
        rows += base_backup.check_files(path, manifest)
        chain = base_backup.chain(base_backup.BaseBackup(path, manifest)) if all(r["passed"] for r in rows) else None
    except PrepOpsError as exc:
        rows.append(row(path.name, "base backup manifest", "valid", first_line(exc), False))
        chain = None
    if chain is None:
        for what in ("pg_verifybackup", "restore until consistent", "amcheck"):
            rows.append(row(path.name, what, "run", "not run: the backup's files are not as recorded", True, skipped=True))
    else:
        rows += _restore_and_check(chain)
    report = pd.DataFrame(rows)
    ok = bool(report["passed"].all())
    return Verification(path, ok, report, None, time.monotonic() - started)


def _restore_and_check(chain: list) -> list[dict]:
    major = chain[-1].manifest["server_major"]
    rows = []

    def verify_files(cluster) -> None:  # runs once recovered() found pg_control naming the manifest's cluster
        rows.append(row(chain[-1].path.name, "cluster identity (pg_control)", chain[-1].manifest["system_identifier"],
                        chain[-1].manifest["system_identifier"], True))
        manifest = [] if len(chain) > 1 else ["-m", chain[-1].path / "backup_manifest"]  # combined: its own
        done = _run([pg_binaries.program("pg_verifybackup", major), *manifest, cluster.data])
        rows.append(row(chain[-1].path.name, "pg_verifybackup", "backup verified",
                        "backup verified" if done.returncode == 0 else _last_line(done), done.returncode == 0))

    try:
        with recovered(chain, before_start=verify_files) as cluster:
            rows.append(row(chain[-1].path.name, "restore until consistent", "consistent", "consistent", True))
            done = _run([pg_binaries.program("pg_amcheck", major), "--all", "--heapallindexed", "--install-missing",
                         "--no-password", "-h", cluster.socket_dir, "-U", cluster.superuser, "-d", "postgres"])
            rows.append(row(chain[-1].path.name, "amcheck --heapallindexed, every database", "no corruption",
                            "no corruption" if done.returncode == 0 else _last_line(done), done.returncode == 0))
    except NotThisCluster as exc:
        rows.append(row(chain[-1].path.name, "cluster identity (pg_control)", chain[-1].manifest["system_identifier"],
                        first_line(exc), False))
        for what in ("pg_verifybackup", "restore until consistent", "amcheck"):
            rows.append(row(chain[-1].path.name, what, "run", "not run: the backup is of another cluster", True,
                            skipped=True))
    except PrepOpsError as exc:
        rows.append(row(chain[-1].path.name, "restore until consistent", "consistent", first_line(exc), False))
    if not any(r["check"] == "pg_verifybackup" for r in rows):
        rows.append(row(chain[-1].path.name, "pg_verifybackup", "run", "not run: the backup did not extract", False))
    if not any(r["check"].startswith("amcheck") for r in rows):
        rows.append(row(chain[-1].path.name, "amcheck", "run", "not run: the backup did not restore", True, skipped=True))
    return rows
