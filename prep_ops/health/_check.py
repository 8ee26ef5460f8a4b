"""What every health check shares: its result, the read-only snapshot it reads in, and how a value
is graded and shown in a one-line detail."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd
import psycopg
from psycopg.pq import TransactionStatus

from ..db import snapshot
from ..formatting import seconds, shorten, size  # noqa: F401 (the checks' units, shown one way everywhere)
from ..sqlfiles import load

if TYPE_CHECKING:
    from . import Thresholds

STATUSES = ("unknown", "ok", "warn", "critical")  # in order of severity; unknown: not judged, and why
QUERY_WIDTH = 200  # characters of a statement kept in the detail tables
SHORT = 60  # characters of a statement quoted in a one-line detail
TIMEOUTS = {"statement_timeout": "10s", "lock_timeout": "2s"}


@dataclass
class HealthCheck:
    """The outcome of one check: `status` is ok, warn, critical or unknown (not judged: `detail` says why);
    `fix` says what to do when it is not ok."""

    name: str
    status: str
    value: float | int | None
    threshold: str
    detail: str
    fix: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "ok"

    @property
    def skipped(self) -> str:
        """Why the check was not judged ("" when it was)."""
        return self.detail if self.status == "unknown" else ""


@contextmanager
def reading(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """One read-only snapshot that gives up rather than wait (a health check must not become the
    incident): the timeouts are SET LOCAL, so the connection is left as it was found. Inside a
    transaction the caller already opened, a savepoint of it."""
    with snapshot(conn) if conn.info.transaction_status == TransactionStatus.IDLE else conn.transaction():
        conn.execute(load("health", "settings"), TIMEOUTS)
        yield conn


@dataclass
class Run:
    """One run of the checks: the connection (inside its snapshot), the thresholds, and what several
    checks read (the sessions, say), read once."""

    conn: psycopg.Connection
    thresholds: "Thresholds"
    _read: dict = field(default_factory=dict)

    def once(self, what: str, read: Callable[[psycopg.Connection], pd.DataFrame]) -> pd.DataFrame:
        if what not in self._read:
            self._read[what] = read(self.conn)
        return self._read[what]


def grade(value, warn, critical) -> str:
    """The status of `value` where higher is worse; no value at all is ok."""
    if value is None:
        return "ok"
    return "critical" if value >= critical else "warn" if value >= warn else "ok"


def short(text) -> str:
    """A statement quoted in a one-line detail: on one line, cut at a word boundary (the full text is in the tables)."""
    return shorten(text, SHORT)


def minutes(value) -> str:
    """A duration given in seconds, in minutes: `2.0 min`."""
    return f"{value / 60:,.1f} min"


def plain(value):
    """A numpy number as a plain Python one (JSON-ready); NaN as None."""
    if value is None or pd.isna(value):
        return None
    return value.item() if hasattr(value, "item") else value
