"""The PostgreSQL server programs (initdb, pg_ctl, pg_basebackup, pg_verifybackup, ...) of one major
version: the embedded install's for its major (18), else $PG_BINDIR when it holds that major, else the
machine's /usr/lib/postgresql/<major>/bin. Base backups and recoveries must use their server's major."""

import os
import re
import subprocess
from pathlib import Path

from . import embedded
from .errors import TargetError


def _major_of(folder: Path) -> int | None:
    """The major version of the `postgres` program in `folder`, or None when there is none."""
    try:
        out = subprocess.run([str(folder / "postgres"), "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):  # missing, not a program, or hanging: not that major
        return None
    found = re.search(r"\(PostgreSQL\) (\d+)", out)
    return int(found.group(1)) if found else None


def bin_dir(major: int) -> Path:
    """The folder of the server programs of PostgreSQL `major`; TargetError in one line when the machine
    has none."""
    if major == embedded.VERSION:
        return embedded.bin_dir()
    if os.environ.get("PG_BINDIR"):
        chosen = Path(os.environ["PG_BINDIR"]).expanduser()
        if _major_of(chosen) == major:
            return chosen
    folder = Path(f"/usr/lib/postgresql/{major}/bin")
    if (folder / "postgres").exists():
        return folder
    raise TargetError(f"no PostgreSQL {major} server programs on this machine: install them or set PG_BINDIR "
                      f"to their folder (a base backup and a recovery need the server's own major)")


def program(name: str, major: int) -> Path:
    """The path of program `name` (pg_basebackup, pg_verifybackup, ...) of PostgreSQL `major`."""
    path = bin_dir(major) / name
    if not path.exists():
        raise TargetError(f"{path} is missing: PostgreSQL {major}'s {name} is needed here")
    return path
