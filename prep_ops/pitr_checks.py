"""What recover proves before it relies on something (see pitr): each archived WAL segment's first page
header (this cluster's, this segment), each base backup's files (check_files on every link of its chain),
and the roles the recovered database refers to that the target server lacks.

A WAL segment's first page carries a long header: xlp_magic (uint16, offset 0), xlp_info (uint16, 2;
XLP_LONG_HEADER = 0x0002), xlp_tli (uint32, 4), xlp_pageaddr (uint64, 8), xlp_rem_len (uint32, 16),
then xlp_sysid (uint64, 24), xlp_seg_size (uint32, 32), xlp_xlog_blcksz (uint32, 36), in the server's
byte order. A segment of another cluster, of another position, or garbage fails one of these.
"""

import os
import re
import struct
from pathlib import Path

import psycopg

from . import base_backup
from .errors import PrepOpsError, first_line
from .sqlfiles import load

_LONG_HEADER = struct.Struct("=HHIQI4xQII")
_XLP_LONG_HEADER = 0x0002


def _head(path: Path) -> tuple[int, bytes]:
    """The file's size and its first bytes (a long page header's worth)."""
    with path.open("rb") as file:
        return os.fstat(file.fileno()).st_size, file.read(_LONG_HEADER.size)


def segment_problem(path: Path, number: int, segment_bytes: int, system_identifier: str) -> str | None:
    """Why the archived file `path` is not segment `number` of cluster `system_identifier`, or None."""
    try:
        try:
            size, head = _head(path)
        except FileNotFoundError:
            if not path.name.endswith(".partial"):
                raise
            size, head = _head(path.with_name(path.name[:24]))  # completed meanwhile: renamed to its segment
    except OSError as exc:
        return f"it cannot be read ({exc.strerror})"
    if size != segment_bytes or len(head) < _LONG_HEADER.size:
        return f"it is {size:,} bytes, not a whole WAL segment of {segment_bytes:,}"
    magic, info, _tli, pageaddr, _rem, sysid, seg_size, _blcksz = _LONG_HEADER.unpack(head)
    if magic & 0xFE00 != 0xD000 or not info & _XLP_LONG_HEADER or seg_size != segment_bytes:
        return f"it has no WAL segment header (magic {magic:#06x}): not WAL, or damaged"
    if str(sysid) != str(system_identifier):
        return f"it is from another cluster (system identifier {sysid})"
    if pageaddr != number * segment_bytes:
        return f"it holds WAL of another position ({base_backup.lsn_text(pageaddr)})"
    return None


def written_end(path: Path, number: int, segment_bytes: int) -> int | None:
    """The WAL position where the written pages of `path`, a streamed `<segment>.partial` of segment
    `number`, end: pg_receivewal writes in order and the rest of the file is zeros, so replay reaches no
    further. None when it cannot be read (renamed to its complete segment meanwhile, say)."""
    try:
        with path.open("rb") as file:
            head = file.read(_LONG_HEADER.size)
            block = _LONG_HEADER.unpack(head)[-1] if len(head) == _LONG_HEADER.size else 0
            if not block or segment_bytes % block:
                return None

            def written(page: int) -> bool:  # a page header's xlp_magic is never 0
                file.seek(page * block)
                return file.read(2) not in (b"", b"\0", b"\0\0")

            if not written(0):
                return number * segment_bytes
            low, high = 0, segment_bytes // block  # page `low` written; none from page `high` on
            while high - low > 1:
                middle = (low + high) // 2
                low, high = (middle, high) if written(middle) else (low, middle)
            return number * segment_bytes + high * block
    except OSError:
        return None


def backup_problem(backup: "base_backup.BaseBackup") -> str | None:
    """Why `backup` (with every backup its chain needs) cannot be used: a file not as its manifest
    records (size or SHA-256), or a missing link; None when all are as recorded."""
    try:
        links = base_backup.chain(backup)
    except PrepOpsError as exc:
        return first_line(exc)
    for link in links:
        for row in base_backup.check_files(link.path, link.manifest):
            if not row["passed"]:
                what = {"sha256": "its SHA-256 differs from", "file size": "its size differs from"}.get(
                    row["check"], f"{row['actual']}: not as recorded in")
                return f"{link.name}/{row['object']}: {what} the backup's manifest"
    return None


def missing_roles(recovered: psycopg.Connection, target: psycopg.Connection) -> list[str]:
    """The roles the database `recovered` is connected to refers to (owners, grantees, policies) that the
    server of `target` lacks, sorted."""
    wanted = {r[0] for r in recovered.execute(load("pitr", "referenced_roles")).fetchall()}
    present = {r[0] for r in target.execute("SELECT rolname::text FROM pg_roles").fetchall()}
    return sorted(wanted - present)


def error_line(stderr: str) -> str:
    """The line of a pg_dump/pg_restore stderr that says what failed: its ERROR (with the command, when
    it names one), else its first own error (a full disk: the last says only that a worker died), else
    its last line."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if "ERROR:" in line:
            said = " ".join(line[line.index("ERROR:"):].split())
            command = next((c for c in lines[i + 1:i + 3] if c.startswith("Command was:")), "")
            return said + (f" ({command[:100]})" if command else "")
    return next((line for line in lines if "error:" in line), lines[-1] if lines else "?")


# what replay logs on a segment that is not this cluster's WAL ("invalid magic number 0000": a zeroed page,
# the ordinary end of WAL, is not one of them)
_BAD_WAL = re.compile(r"from different database system|invalid magic number (?!0000)"
                      r"|incorrect resource manager data checksum")


def foreign_wal(log: Path) -> str | None:
    """When the recovery cluster's server `log` shows replay stopped on an archived segment that is not this
    cluster's WAL: what and which segment (one line); else None."""
    restored = None
    for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
        found = re.search(r'restored log file "([0-9A-F]{24})" from archive', line)
        if found:
            restored = found.group(1)
        elif restored and _BAD_WAL.search(line):
            named = re.search(r"WAL segment ([0-9A-F]{24})", line)
            said = line.split(":  ", 1)[-1].strip()
            return (f"archived WAL segment {named.group(1) if named else restored} is not this cluster's WAL "
                    f"({said[:160]}): replay cannot pass it; replace it with this cluster's own segment")
    return None
