"""Child programs that never outlive prep-ops: pg_basebackup, pg_dump and pg_restore are started with a
parent-death signal (Linux prctl PR_SET_PDEATHSIG: SIGTERM when the process that started them dies, even
by kill -9), and what a killed run left running anyway (another system, an older prep-ops) is ended by
the next run: `terminate(program, folder)` ends the `program` processes whose command line names `folder`.
"""

import ctypes
import ctypes.util
import functools
import os
import signal
from pathlib import Path

_PR_SET_PDEATHSIG = 1


@functools.lru_cache(maxsize=1)
def _libc():
    """The C library, loaded once (find_library runs ldconfig); None where it cannot be loaded."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


def die_with_parent():
    """A preexec_fn: the child gets SIGTERM when this process dies (Linux; elsewhere nothing is done)."""
    parent = os.getpid()
    libc = _libc()  # in the parent: after fork only the prctl call itself runs

    def arm() -> None:
        if libc is None:
            return
        try:
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except AttributeError:
            return
        if os.getppid() != parent:  # the parent died before the signal was armed
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


# a shell that runs the command in its own process group and, when it gets SIGTERM (the parent-death
# signal), sends SIGTERM to the whole group: programs that fork helpers of their own (pg_basebackup's WAL
# streamer) go with them; the command's exit code is the shell's
_GROUP_SCRIPT = 'trap \'trap - TERM; kill -TERM 0\' TERM; "$@" & wait $!'


def as_group(command: list) -> list[str]:
    """`command` wrapped so that it and every process it forks die with this one: run the result with
    start_new_session=True and preexec_fn=die_with_parent()."""
    return ["/bin/sh", "-c", _GROUP_SCRIPT, "sh", *map(str, command)]


def terminate(program: str, folder: Path, seconds: float = 10.0) -> list[int]:
    """End (SIGTERM, then SIGKILL after `seconds`) every `program` process whose command line holds the
    path `folder` as an argument; returns their pids."""
    import psutil

    wanted, found = str(folder), []
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if process.info["name"] == program and (wanted in cmdline or any(a == f"-D{wanted}" or
                                                                        a == f"--pgdata={wanted}" for a in cmdline)):
            found.append(process)
    for process in found:
        try:
            process.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(found, timeout=seconds)
    for process in alive:
        try:
            process.kill()
        except psutil.Error:
            pass
    return [p.pid for p in found]
