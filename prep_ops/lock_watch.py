"""While a long statement runs (a REINDEX CONCURRENTLY waiting for other sessions' transactions, a VACUUM
behind a lock), say every few seconds which sessions it waits for: the DBA at a terminal sees why
nothing moves and whom to look at, rather than a silent prompt for as long as the holder runs.

`watching(target, pid, say)` is a context: a thread of its own, on a connection of its own to `target`,
asks every EVERY seconds whether session `pid` waits on a lock (health.blocking: pg_blocking_pids) and
calls `say(line)` for each session it waits for. It only reads pg_stat_activity and pg_locks; a failure
of its own (the server gone, no connection to spare) ends the watch quietly: the statement it watches
reports its own errors.
"""

import contextlib
import threading

from .db import Target, connect
from .formatting import seconds, shorten

EVERY = 5.0  # seconds between two looks


def describe(row) -> str:
    """One blocking session of health.blocking's frame, as the line says it."""
    if not row.blocking_pid:  # pid 0: a prepared transaction, with no session of its own
        return f"waiting {seconds(row.wait_seconds)} for a prepared transaction (pg_prepared_xacts)"
    state = row.blocking_state or "state not visible"
    if row.blocking_state and row.blocking_state.startswith("idle in transaction"):
        state = f"{row.blocking_state} for {seconds(row.blocking_idle_seconds)}"
    return (f"waiting {seconds(row.wait_seconds)} for pid {row.blocking_pid} ({row.blocking_user}, {state}: "
            f"{shorten(row.blocking_query or '', 80)}); end it with SELECT pg_terminate_backend({row.blocking_pid}) "
            "if it should not run")


@contextlib.contextmanager
def watching(target: Target, pid: int, say, every: float = EVERY):
    """Call `say(line)` every `every` seconds, while the block runs, for each session `pid` waits for."""
    from .health import blocking

    stop = threading.Event()

    def watch() -> None:
        try:
            with connect(target, autocommit=True) as conn:
                while not stop.wait(every):
                    frame = blocking(conn)
                    for row in frame[frame["blocked_pid"] == pid].itertuples():
                        if not stop.is_set():
                            say(describe(row))
        except Exception:  # noqa: BLE001 (a watch that cannot look says nothing; the statement speaks for itself)
            return

    thread = threading.Thread(target=watch, name="prep-ops lock watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every + 5)
