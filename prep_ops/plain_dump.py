"""A plain (SQL) dump is data for psql, never commands for psql: checked, then fed under `\\restrict`.

psql runs its own backslash commands wherever they appear outside quotes: `\\!` runs a shell command,
`\\connect` moves to another database, `\\o`/`\\i`/`\\copy … program` touch files and programs. A
backup is data, so before psql sees it:

- `check(path)` reads the file line by line. Outside COPY data, the only backslash commands allowed
  are pg_dump's own guard (the fix for CVE-2025-8714, PostgreSQL 17.6/18): `\\restrict KEY` before
  anything else and the matching `\\unrestrict KEY` as the last line. Anything else is refused in one
  line naming its line number, and so is server-side `COPY … PROGRAM`, which would run a program on
  the restore server. Inside COPY data (after `COPY … FROM stdin;`, until `\\.`) lines are rows.
- `psql_input(path, …)` gives psql the file with pg_dump's guard lines taken out and prep-ops' own
  `\\restrict` with a fresh random key first, and no `\\unrestrict`: a backslash command the line check
  could not see (one in the middle of a line) is refused by psql itself, and ON_ERROR_STOP with one
  transaction rolls everything back.
"""

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

from .errors import BackupError

_RESTRICT = re.compile(rb"^\\restrict ([A-Za-z0-9]+)\s*$")
_UNRESTRICT = re.compile(rb"^\\unrestrict ([A-Za-z0-9]+)\s*$")
_COPY_FROM_STDIN = re.compile(rb"^COPY .* FROM stdin;\s*$")
_COPY_PROGRAM = re.compile(rb"^\s*COPY\b.*\b(FROM|TO)\s+PROGRAM\b", re.IGNORECASE)
_END_OF_COPY = b"\\."


def _shown(line: bytes) -> str:
    text = line.decode("utf-8", errors="replace").strip()
    return text if len(text) <= 60 else text[:57] + "..."


def check(path: Path) -> str | None:
    """pg_dump's guard key of the plain dump at `path` (None: a dump without one); BackupError naming
    the line of the first backslash command that is not that guard, or of a COPY … PROGRAM."""
    key = None
    guard_closed_at = None
    in_copy = False
    meta_seen = False
    with Path(path).open("rb") as dump:
        for number, line in enumerate(dump, start=1):
            bare = line.rstrip(b"\r\n")
            if in_copy:
                in_copy = bare != _END_OF_COPY
                continue
            if guard_closed_at is not None and bare.strip():
                raise BackupError(f"{Path(path).name} line {number}: text after pg_dump's closing \\unrestrict "
                                  f"(line {guard_closed_at}); a plain dump ends there")
            if _COPY_FROM_STDIN.match(bare):
                in_copy = True
                continue
            if _COPY_PROGRAM.match(bare):
                raise BackupError(f"{Path(path).name} line {number}: COPY … PROGRAM would run a program on the "
                                  f"restore server: {_shown(bare)}")
            if not bare.lstrip().startswith(b"\\"):
                continue
            restrict, unrestrict = _RESTRICT.match(bare), _UNRESTRICT.match(bare)
            if restrict and not meta_seen:
                key = restrict.group(1).decode()
            elif unrestrict and key is not None and unrestrict.group(1).decode() == key:
                guard_closed_at = number
            else:
                raise BackupError(f"{Path(path).name} line {number}: a psql command is not data and is never run "
                                  f"from a backup: {_shown(bare)}")
            meta_seen = True
    if key is not None and guard_closed_at is None:
        raise BackupError(f"{Path(path).name}: pg_dump's \\restrict {key[:8]}… is never closed: the dump is cut short")
    return key


def psql_input(path: Path, *, drop_lines: tuple[bytes, ...] = ()) -> Iterator[bytes]:
    """The lines to feed psql: prep-ops' own `\\restrict`, then the dump without pg_dump's guard lines
    (and without any of `drop_lines` outside COPY data). Call `check(path)` first."""
    yield b"\\restrict " + secrets.token_hex(16).encode() + b"\n"
    in_copy = False
    with Path(path).open("rb") as dump:
        for line in dump:
            bare = line.rstrip(b"\r\n")
            if in_copy:
                in_copy = bare != _END_OF_COPY
                yield line
                continue
            if _COPY_FROM_STDIN.match(bare):
                in_copy = True
            elif _RESTRICT.match(bare) or _UNRESTRICT.match(bare) or bare in drop_lines:
                continue
            yield line
