"""PostgreSQL's archive_command for prep-ops: copy one WAL file into the archive, atomically, never replacing.

    <python> -I archive_wal.py %p <archive dir>/%f

Standard library only, and imports nothing of prep_ops: the server's system user runs it with `-I`
(isolated: no site-packages, no environment, no current folder on the path).

The copy is written under a temporary name in the archive folder, flushed to disk (fsync), then given
its final name with a hard link, which fails when the name exists (a rename would replace it), and the
folder is flushed too. So the final name holds the whole segment or nothing, even when the copy is
killed or the machine stops. A file already there under that name with the same bytes is success
(PostgreSQL asks again after a crash between the copy and its own bookkeeping); one with different bytes
is refused with exit code 1 and a message, and never replaced: it may be the only copy of another
cluster's or another timeline's WAL. Exit code 2: the arguments are wrong; 3: the copy failed.
"""

import errno
import os
import sys

CHUNK = 1 << 20


def _fsync_folder(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _same_bytes(a: str, b: str) -> bool:
    if os.path.getsize(a) != os.path.getsize(b):
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            chunk = fa.read(CHUNK)
            if chunk != fb.read(CHUNK):
                return False
            if not chunk:
                return True


def _copy(source: str, temporary: str) -> None:
    """Copy `source` to the new file `temporary` (never an existing one) and flush it to disk."""
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
        while True:
            chunk = src.read(CHUNK)
            if not chunk:
                break
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())


def _place(temporary: str, final: str) -> bool:
    """Give `temporary` the name `final` unless that name exists; False when it does."""
    try:
        os.link(temporary, final)
    except FileExistsError:
        return False
    except OSError as exc:  # a file system without hard links: rename, after looking (one archiver per cluster)
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
            raise
        if os.path.lexists(final):
            return False
        os.rename(temporary, final)
        return True
    os.unlink(temporary)
    return True


def archive(source: str, final: str) -> int:
    """Archive `source` as `final`; the exit code (0: archived or already there with the same bytes)."""
    folder, name = os.path.split(os.path.abspath(final))
    if not name or not os.path.isdir(folder):
        print(f"archive_wal: the archive folder {folder} does not exist", file=sys.stderr)
        return 2
    for stale in os.listdir(folder):  # what a killed copy of this same file left
        if stale.startswith(f".{name}.tmp-"):
            os.unlink(os.path.join(folder, stale))
    temporary = os.path.join(folder, f".{name}.tmp-{os.getpid()}")
    try:
        if not os.path.lexists(final):
            _copy(source, temporary)
            if _place(temporary, final):
                _fsync_folder(folder)
                return 0
        if _same_bytes(source, final):
            return 0
        print(f"archive_wal: {final} already exists with different content: not replaced "
              f"(another cluster's or timeline's WAL in this folder?)", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"archive_wal: copying {source} to {final} failed: {exc}", file=sys.stderr)
        return 3
    finally:
        if os.path.lexists(temporary):
            os.unlink(temporary)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: archive_wal.py SOURCE(%p) ARCHIVE_DIR/NAME(%f)", file=sys.stderr)
        return 2
    return archive(argv[1], argv[2])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
