"""verify --chain: proof that base backup + archived WAL give back what the newest logical backup holds.

The newest logical backup (full or data) of the target's database records where its snapshot is in
the WAL (backup: "snapshot" in its manifest). `verify_chain` replays the newest base backup that ends
before that point, with the cluster's own archived WAL (wal_archive.archive_dir(<system identifier>)
only), into a private recovery cluster (recovery_cluster), computes every table's content checksum
there by the manifest's method, and compares them with the manifest, table by table (comparison).
Nothing is made on the target's server: the recovery cluster is stopped and removed afterwards.

Which WAL location equals the snapshot. A transaction writes its commit record, then becomes visible;
a snapshot sees the transactions that were visible when it was taken. So every commit the snapshot sees
has its record before "lsn" (the insert position read right after the snapshot, in the same
statement), and replaying up to "lsn" (recovery_target_lsn, nothing from it on) holds all of them. It
may also hold commits the snapshot does not see: one that wrote its record just before the snapshot
but became visible just after (a commit waiting for a synchronous standby does this for as long as it
waits), or one of the microseconds between snapshot and read. To cut them out, the archived WAL between
"lsn_before" (read just before the snapshot) and "lsn" is read with pg_waldump: when the first commit
there that the snapshot does not see comes after every commit it does see, replay stops just before it,
and the copy equals the snapshot exactly. When no such cut exists (the server made two commits visible
in another order than it wrote them), replay goes to "lsn".

Either way the report names what lies between, precisely: the recovered cluster is a physical copy
with the source's transaction ids, so each transaction the snapshot did not see (in progress in it, or
started after it) is looked up there (pg_xact_status); those committed in the copy are the commits
between the snapshot and the recovery target. Some may belong to other databases of the cluster (the
WAL is the cluster's): tables equal means they touched none of this backup's tables. A table that
differs FAILs, named, and the row of commits between says which commits may explain it.

SKIP, with the reason: the manifest records no snapshot position (older backups, or taken on a
standby), no base backup of the cluster ends before the snapshot, or the WAL is not archived up to it.
On a server prep-ops controls (the embedded one), the segment holding the snapshot is archived first.
A SKIP never hides damaged WAL: every archived segment replay needs must carry this cluster's header for
its position (pitr_checks.segment_problem; FAIL naming it otherwise), and replay that ends before the
snapshot's LSN FAILs when the archive held the WAL it needed: when it stopped in a segment before the one
holding the snapshot's LSN, or when the archive holds the segment after that one too. Only replay that
ran out in the very segment of the snapshot, with nothing archived after it (the record there may run
into the next segment), is a SKIP.
"""

import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import psycopg

from . import base_backup, catalog, pg_binaries, pitr, pitr_checks, wal_archive
from ._report import row
from .comparison import compare_data
from .db import Target
from .errors import TargetError, WalEndedEarly
from .manifest import Backup, identity, latest, of_database
from .recovery_cluster import recovered
from .verify import Verification

BETWEEN = "commits between the snapshot and the recovery target"  # the report row that names them
SHOWN = ("replayed to", BETWEEN)  # the rows the CLI prints whatever the outcome
MAX_CANDIDATES = 100_000  # transaction ids looked up in the recovered cluster, at most
_COMMIT = re.compile(r"tx:\s*(\d+), lsn: ([0-9A-F]+/[0-9A-F]+),.*desc: (COMMIT|COMMIT_PREPARED)\b:?\s*(\d+:)?\s*(.*)")
_COMMITTED = ("SELECT n FROM unnest(%s::bigint[]) AS n "
              "WHERE pg_xact_status(n::text::xid8) = 'committed' ORDER BY n")


@dataclass
class Position:
    """Where a logical backup's snapshot is in the WAL, and which transactions it sees."""
    lsn: str
    lsn_before: str | None
    time: str
    xmin: int
    xmax: int
    in_progress: frozenset[int]

    @classmethod
    def of(cls, manifest: dict) -> "Position | None":
        snap = manifest.get("snapshot")
        if snap is None:
            return None
        xmin, xmax, xip = snap["xids"].split(":")
        return cls(snap["lsn"], snap.get("lsn_before"), snap["time"], int(xmin), int(xmax),
                   frozenset(int(x) for x in xip.split(",") if x))

    def sees(self, xid: int) -> bool:
        """Whether a (committed) transaction's changes are visible in the snapshot."""
        return xid < self.xmin or xid < self.xmax and xid not in self.in_progress

    def full_xid(self, xid32: int) -> int:
        """A 32-bit transaction id (as pg_waldump prints it) as the 64-bit one nearest the snapshot's."""
        full = (self.xmax & ~0xFFFFFFFF) | xid32
        if full > self.xmax + 2**31:
            full -= 2**32
        elif full < self.xmax - 2**31:
            full += 2**32
        return full


@dataclass
class Commit:
    lsn: str
    xid: int
    when: str


def _newest_logical(directory: Path | None, source: dict) -> Backup:
    """The newest full or data backup of the database `source` identifies; NoBackups when none."""
    for found in of_database(directory, source):
        if found.manifest["kind"] in ("full", "data"):
            return found
    return latest(directory, source, "full")  # raises NoBackups, saying so in the one usual way


def commits_in_wal(archive: Path, segments: dict, segment_bytes: int, major: int, position: Position,
                   ) -> list[Commit] | str:
    """The commit records in the archived WAL from `position.lsn_before` to `position.lsn`, in WAL order
    (pg_waldump of the server's major), or why they could not be read."""
    if position.lsn_before is None:
        return "the manifest records no WAL location from just before the snapshot"
    start, end = base_backup.lsn_value(position.lsn_before), base_backup.lsn_value(position.lsn)
    if start >= end:
        return []
    needed = range(start // segment_bytes, end // segment_bytes + 1)
    if not all(n in segments for n in needed):
        return "the WAL from just before the snapshot is not in the archive"
    timeline = int(segments[needed[-1]].name[:8], 16)
    done = subprocess.run([str(pg_binaries.program("pg_waldump", major)), "--path", str(archive), "--timeline",
                           str(timeline), "--start", position.lsn_before, "--end", position.lsn, "--rmgr",
                           "Transaction"], capture_output=True, text=True, env={"LC_ALL": "C"})
    if done.returncode != 0:
        said = [line for line in done.stderr.splitlines() if "error" in line] or done.stderr.splitlines() or ["?"]
        return f"pg_waldump could not read it: {said[0]}"
    commits = []
    for line in done.stdout.splitlines():
        found = _COMMIT.search(line)
        if found:
            xid = int(found.group(4)[:-1]) if found.group(4) else int(found.group(1))  # COMMIT_PREPARED names its xid
            commits.append(Commit(found.group(2), position.full_xid(xid), found.group(5).split(";")[0].strip()))
    return commits


def recovery_target(position: Position, commits: list[Commit] | str) -> tuple[str, str]:
    """(LSN to replay up to, nothing from it on; why that one): just before the first commit the snapshot
    does not see, when every commit it sees comes before that; else the snapshot's own LSN."""
    if isinstance(commits, str):
        return position.lsn, f"the snapshot's LSN; commits around it not read: {commits}"
    unseen = [c for c in commits if not position.sees(c.xid)]
    if not unseen:
        return position.lsn, "the snapshot's LSN: no commit it does not see was written before it"
    first = base_backup.lsn_value(unseen[0].lsn)
    if any(position.sees(c.xid) and base_backup.lsn_value(c.lsn) > first for c in commits):
        return position.lsn, ("the snapshot's LSN: the server made commits visible in another order than it "
                              "wrote them, no WAL location equals the snapshot")
    return unseen[0].lsn, f"just before xid {unseen[0].xid}'s commit, the first the snapshot does not see"


def commits_between(cluster: psycopg.Connection, position: Position) -> list[int] | str:
    """The transactions committed in the recovered cluster that the snapshot does not see (in progress in
    it, or begun after it), or why they were not all looked up."""
    after = cluster.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint").fetchone()[0]
    candidates = sorted(position.in_progress) + list(range(position.xmax, after))
    if len(candidates) > MAX_CANDIDATES:
        return f"{len(candidates):,} transactions began between the snapshot and the recovery target: not looked up"
    return [r[0] for r in cluster.execute(_COMMITTED, (candidates,)).fetchall()]


def _between_row(name: str, between: list[int] | str, commits: list[Commit] | str, tables_equal: bool) -> dict:
    check = BETWEEN
    if isinstance(between, str):
        return row(name, check, "none", between, tables_equal)
    if not between:
        return row(name, check, "none", "none: the recovered copy holds exactly the snapshot's commits", True)
    when = {c.xid: c.when for c in commits} if not isinstance(commits, str) else {}
    named = ", ".join(f"xid {x}" + (f" ({when[x]})" if when.get(x) else "") for x in between[:10])
    more = f" and {len(between) - 10} more" if len(between) > 10 else ""
    meaning = ("they touched none of its tables (another database's, or none)" if tables_equal
               else "a table that differs may differ by them")
    return row(name, check, "none", f"{len(between)} in the recovered copy, not in the snapshot: {named}{more}; "
               f"{meaning}", tables_equal)


def _skip(path: Path, check: str, why: str, began: float) -> Verification:
    report = pd.DataFrame([row(path.name, check, "checked", why, True, skipped=True)])
    return Verification(path, True, report, None, time.perf_counter() - began)


def _failed(path: Path, why: str, began: float) -> Verification:
    report = pd.DataFrame([row(path.name, "base backup and WAL up to the snapshot", "this cluster's WAL, whole",
                               why, False)])
    return Verification(path, False, report, None, time.perf_counter() - began)


def _choose(backups: list, segments: dict, segment_bytes: int, lsn: str) -> tuple[object, str | None]:
    """(the newest base backup ending before `lsn` with all its WAL to `lsn` archived, None), or (None, why not)."""
    value = base_backup.lsn_value(lsn)
    fitting = [b for b in backups if base_backup.lsn_value(b.manifest["end_lsn"]) <= value]
    if not fitting:
        oldest = min((b.manifest["end_lsn"] for b in backups), key=base_backup.lsn_value, default=None)
        return None, ("no base backup of this cluster ends before the snapshot's LSN " + lsn
                      + (f" (the oldest ends at {oldest})" if oldest else " (there is none: backup --kind base)"))
    last = value // segment_bytes
    missing = {}
    for candidate in fitting:  # newest first
        first = base_backup.lsn_value(candidate.manifest["start_lsn"]) // segment_bytes
        missing[candidate.name] = [n for n in range(first, last + 1) if n not in segments]
        if not missing[candidate.name]:
            return candidate, None
    name = pitr.segment_name(fitting[0].manifest["timeline"], missing[fitting[0].name][-1] * segment_bytes, segment_bytes)
    return None, (f"the WAL is not archived up to the snapshot's LSN {lsn}: segment {name} is not in the archive "
                  "yet (see archive_timeout, or SELECT pg_switch_wal())")


def _bad_segment(segments: dict, first: int, last: int, segment_bytes: int, sysid: str) -> str | None:
    """Why one of the archived segments `first`..`last` is not this cluster's WAL for its position, or None."""
    for n in range(first, last + 1):
        problem = pitr_checks.segment_problem(segments[n], n, segment_bytes, sysid)
        if problem:
            return f"archived WAL segment {segments[n].name} is not this cluster's WAL: {problem}"
    return None


def _ended_early(exc: WalEndedEarly, segments: dict, last: int, segment_bytes: int) -> str | None:
    """When replay ended before the snapshot's LSN although the archive held the WAL it needed: why
    the WAL is damaged (a FAIL); None when the WAL at the snapshot may not be archived yet (a SKIP)."""
    stopped = exc.last_restored
    number = pitr.segment_number(stopped, segment_bytes) if stopped else None
    if number is not None and number < last:
        return (f"replay ended in archived segment {stopped}, before {segments[last].name} which holds the "
                f"snapshot's LSN and is archived: the WAL in {stopped} is damaged")
    if last + 1 in segments:
        return (f"replay ended before the snapshot's LSN although the archive holds the WAL past it (up to "
                f"{segments[max(segments)].name}): the WAL in {stopped or segments[last].name} is damaged")
    return None


def verify_chain(conn: psycopg.Connection, target: Target, directory: Path | None = None, *,
                 controlled: bool | None = None) -> Verification:
    """Recover the newest logical backup's database to its snapshot from base backup and archived WAL,
    and compare every table's checksum with its manifest; a report like verify's (all SKIP with why
    when the chain cannot be replayed). `controlled` (default: the target is the embedded server):
    archive the WAL holding the snapshot first. NoBackups when there is no logical backup."""
    began = time.perf_counter()
    newest = _newest_logical(directory, identity(conn))
    path, manifest = newest.path, newest.manifest
    position = Position.of(manifest)
    if position is None:
        return _skip(path, "snapshot's WAL location", "its manifest records none (taken before prep-ops "
                     "recorded it, or on a standby): take a new logical backup", began)
    sysid = manifest["source"].get("system_identifier")
    if not sysid:
        return _skip(path, "cluster", "the manifest does not know its cluster's system identifier", began)
    archive = wal_archive.archive_dir(sysid)
    segment_bytes = pitr.wal_segment_bytes(conn)
    segments = pitr.archived_segments(archive, segment_bytes)
    if (controlled if controlled is not None else target.embedded) and \
            base_backup.lsn_value(position.lsn) // segment_bytes not in segments:
        try:
            pitr.archive_now(conn, archive)
        except TargetError as exc:  # archiving off, or the segment did not arrive
            return _skip(path, "WAL archived up to the snapshot", str(exc), began)
        segments = pitr.archived_segments(archive, segment_bytes)
    chosen, why_not = _choose(base_backup.listing(sysid, directory), segments, segment_bytes, position.lsn)
    if chosen is None:
        return _skip(path, "base backup and WAL up to the snapshot", why_not, began)
    first = base_backup.lsn_value(chosen.manifest["start_lsn"]) // segment_bytes
    last = base_backup.lsn_value(position.lsn) // segment_bytes
    bad = _bad_segment(segments, first, last, segment_bytes, sysid)
    if bad:
        return _failed(path, bad, began)
    major = chosen.manifest["server_major"]
    commits = commits_in_wal(archive, segments, segment_bytes, major, position)
    stop, why = recovery_target(position, commits)
    rows = [row(path.name, "base backup ending before the snapshot", f"ends before {position.lsn}",
                f"{chosen.name} (ends at {chosen.manifest['end_lsn']})", True)]
    try:
        with recovered(base_backup.chain(chosen), archive=archive, target_lsn=stop) as cluster:
            rows.append(row(path.name, "replayed to", f"the snapshot ({position.lsn}, {position.time})",
                            f"{stop}: {why}", True))
            with psycopg.connect(cluster.url(), autocommit=True) as there:
                between = commits_between(there, position)
                present = catalog.database_exists(there, manifest["database"])
            if not present:
                rows.append(row(manifest["database"], "database present", "present", "absent", False))
                tables_equal = False
            else:
                with psycopg.connect(cluster.url(manifest["database"]), autocommit=True) as there:
                    compared = compare_data(there, manifest)
                rows += [{**r, "skipped": False} for r in compared.report.to_dict("records")]
                tables_equal = compared.ok
    except WalEndedEarly as exc:
        damaged = _ended_early(exc, segments, last, segment_bytes)
        if damaged:
            return _failed(path, damaged, began)
        return _skip(path, "base backup and WAL up to the snapshot", str(exc), began)
    rows.append(_between_row(path.name, between, commits, tables_equal))
    report = pd.DataFrame(rows)
    return Verification(path, bool(report["passed"].all()), report, None, time.perf_counter() - began)
