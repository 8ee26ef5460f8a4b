"""Point-in-time recovery: a database as it was at a moment (or WAL location), copied beside the original.

`recover` picks the newest base backup of the target's cluster that finished before the target, replays
that cluster's archived WAL (wal_archive.archive_dir(<its system identifier>) only) into a private
recovery cluster (recovery_cluster) up to the target, and copies the database from there into a NEW
database on the target server (recovery_copy: pg_dump -Fd --jobs into the recovery cluster's folder,
pg_restore --jobs into `prep_ops_recover_<run id>`, renamed to its final name when complete). Nothing
existing is ever overwritten; a killed run's half-made database is dropped by the next run
(scratch.remove_stale), its recovery cluster stopped and removed.

The moment: `--to T` is "as it was at T": every transaction committed at or before T (to the
microsecond), none after (recovery_target_inclusive = on), so give the second before the damage.
`--to-lsn L` is "before WAL location L": nothing from L on is replayed (inclusive = off), so give the
damaging record's LSN (pg_walinspect). A naive time is this machine's local time; one a clock change
makes ambiguous (it happened twice) or skips is refused in one line naming both offsets. `--as ""` and
`--database ""` are refused (not the defaults), and so is a new name, given or made from the database's,
that holds a control character (the last line printed would not be the name). A moment so near the
calendar's ends that local time or UTC cannot hold it (0001-01-01, 9999-12-31) is refused in one line.
The window is shown to the microsecond: a moment it shows is inside.

Window: from the oldest base backup's end to the newest archived WAL. On a server prep-ops controls
(the embedded one), the WAL holding the target is archived first: one small transaction (its commit
record, stamped after the target, is where a time-targeted replay can stop on a quiet database), then
pg_switch_wal(), then a wait until that segment is in the archive.

Nothing is relied on unproven (pitr_checks): every archived segment from the backup's start to the
target must carry this cluster's WAL page header for its own position (another cluster's segment under
the same name, or garbage, is refused naming the segment: for a moment, every segment up to the newest
archived is needed, as a file's time cannot tell whether the target lies before it); each base backup
tried has every file of its chain as its manifest records, and its pg_control names this cluster
(recovery_cluster.NotThisCluster): one that does not is passed over for the next older one, each passed
over said in one line, and none left is a one-line refusal.
Roles: a database whose objects are owned by or granted to roles the server no longer has (the damage
dropped one) is refused in one line naming them, before anything is made; `--no-owner` restores it
(and anything) without owners and grants (pg_restore --no-owner --no-privileges: every object the
connecting role's), and the output says so. A failed pg_restore is reported by its ERROR line.
pg_dump and pg_restore die with this process (a parent-death signal); the next run stops a killed run's
recovery cluster first (its dump folder goes with it), ends the sessions on its half-made copy, then drops it.
"""

import re
import time
from datetime import datetime, timezone
from pathlib import Path

import psycopg
from psycopg import sql

from . import base_backup, catalog, pitr_checks, recovery_cluster, recovery_copy, scratch, wal_archive
from .db import Target
from .errors import BackupError, ParameterError, RecoveryError, TargetError, first_line
from .formatting import terminal
from .recovery_cluster import recovered
from .sqlfiles import load

PREFIX = "prep_ops_recover_"  # + run id: a copy being made; renamed when complete
_SEGMENT = re.compile(r"([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})")
ARCHIVE_WAIT = 120.0  # seconds to wait for the segment holding the target to be archived


def parse_moment(text: str) -> datetime:
    """An ISO date and time as an aware datetime (a naive one is this machine's local time; one a clock
    change makes ambiguous or skips is refused, naming both offsets)."""
    try:
        moment = datetime.fromisoformat(str(text).strip())
    except ValueError:
        raise ParameterError(f"not a date and time: {str(text)[:40]!r} (e.g. 2026-11-30T14:05:09+00:00)") from None
    return aware(moment)


def aware(moment: datetime) -> datetime:
    """`moment` with its offset (a naive one is this machine's local time: see `local`); ParameterError
    for one so near the calendar's ends (years 1 and 9999) that local time or UTC cannot hold it."""
    try:
        moment = moment if moment.tzinfo else local(moment)
        moment.astimezone(timezone.utc)  # the window, the default name and the server's target are in UTC
    except (ValueError, OverflowError):
        raise ParameterError(f"{moment.isoformat()} is too near the calendar's ends (years 1 and 9999) to be told "
                             "in local time and UTC: give a moment inside the recoverable window") from None
    return moment


def _offset(moment: datetime) -> str:
    minutes = int(moment.utcoffset().total_seconds() // 60)
    return f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def local(naive: datetime) -> datetime:
    """A naive time as this machine's local time; ParameterError when a clock change makes it ambiguous
    (it happened twice) or skips it (it never happened)."""
    early, late = naive.replace(fold=0).astimezone(), naive.replace(fold=1).astimezone()
    if early.utcoffset() == late.utcoffset():
        return early
    shown = naive.isoformat(timespec="seconds")
    if early.replace(tzinfo=None) == late.replace(tzinfo=None) == naive:
        raise ParameterError(f"{shown} happened twice in this machine's local time (clocks went back): it is "
                             f"{shown}{_offset(early)} or {shown}{_offset(late)}; give the offset")
    raise ParameterError(f"{shown} never happened in this machine's local time (clocks went forward): give the "
                         f"offset, {_offset(early)} or {_offset(late)}")


def default_name(database: str, to_time: datetime | None, to_lsn: str | None) -> str:
    """`<db>_at_<YYYYMMDD_HHMMSS>` (UTC), or `<db>_at_lsn_<high>_<low>`, within PostgreSQL's 63 bytes."""
    tail = f"_at_{to_time.astimezone(timezone.utc):%Y%m%d_%H%M%S}" if to_time else "_at_lsn_" + to_lsn.replace("/", "_")
    head = database.encode()[: 63 - len(tail)].decode("utf-8", "ignore")
    return head + tail


def archived_segments(archive: Path, segment_bytes: int, *, partial: bool = False) -> dict[int, Path]:
    """{segment number: file} of the WAL segments in `archive` (any timeline; the highest kept); with
    `partial`, a streamed `<segment>.partial` (wal_stream) where that segment is not there, as
    recovery_cluster's restore_command takes it (the window then ends at its last write)."""
    found, streamed = {}, {}
    for file in sorted(archive.iterdir()) if archive.is_dir() else []:
        number = segment_number(file.name.removesuffix(".partial") if partial else file.name, segment_bytes)
        if number is not None and not file.is_symlink() and file.is_file():  # a link points out of the archive
            (streamed if file.name.endswith(".partial") else found)[number] = file
    return {**streamed, **found}  # a complete segment wins over its partial


def segment_number(name: str, segment_bytes: int) -> int | None:
    """The position of WAL segment file `name` (any timeline) counted in segments, or None when `name` is
    not a segment's file name; segment_name's inverse, timeline aside."""
    match = _SEGMENT.fullmatch(name)
    if match is None:
        return None
    return int(match.group(2), 16) * (0x100000000 // segment_bytes) + int(match.group(3), 16)


def wal_segment_bytes(conn: psycopg.Connection) -> int:
    """The size of the server's WAL segments, in bytes."""
    return int(conn.execute("SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'").fetchone()[0])


def segment_name(timeline: int, lsn: int, segment_bytes: int) -> str:
    """The file name of the WAL segment holding `lsn` on `timeline` (as pg_walfile_name gives)."""
    segment = lsn // segment_bytes
    per_id = 0x100000000 // segment_bytes
    return f"{timeline:08X}{segment // per_id:08X}{segment % per_id:08X}"


def archive_now(conn: psycopg.Connection, archive: Path, seconds: float = ARCHIVE_WAIT, *,
                until_failed: bool = False) -> str:
    """On a server prep-ops controls: commit one transaction, switch WAL, and wait until the segment
    just finished is in `archive` (the folder recovery reads, rather than pg_stat_archiver's word);
    returns its name. `until_failed` (a server prep-ops does not run): stop waiting as soon as the
    server's archiver says it failed on that segment (TargetError with its word)."""
    if conn.execute("SHOW archive_mode").fetchone()[0] == "off":
        raise TargetError("WAL archiving is off on this server: nothing after a base backup can be recovered "
                          "(turn it on with `prep-ops archive on`)")
    with conn.transaction():
        conn.execute("SELECT pg_current_xact_id()")  # a commit record stamped now: replay can stop at it
    switched = conn.execute("SELECT clock_timestamp()").fetchone()[0]
    segment = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]
    deadline = time.monotonic() + seconds
    while not (archive / segment).exists():
        if until_failed and conn.execute("SELECT last_failed_wal = %s AND last_failed_time >= %s FROM pg_stat_archiver",
                                         (segment, switched)).fetchone()[0]:
            raise TargetError(f"the server's archiver failed on WAL segment {segment} (pg_stat_archiver): it is "
                              f"not in {archive}")
        if time.monotonic() > deadline:
            failed = conn.execute("SELECT failed_count, last_failed_wal FROM pg_stat_archiver").fetchone()
            raise TargetError(f"WAL segment {segment} was not archived into {archive} within {seconds:.0f} s "
                              f"(pg_stat_archiver: {failed[0]} failures, last {failed[1]}): is archiving on?")
        time.sleep(0.2)
    return segment


def _newest_write(segments: dict) -> float | None:
    """When the newest of `segments` (number: file) was last written; a file gone meanwhile is skipped."""
    return max(filter(None, map(wal_archive.modified, segments.values())), default=None)


def _window_text(backups: list, segments: dict) -> str:
    """The recoverable window in words, to the microsecond (a moment shown is a moment inside it)."""
    oldest = min(b.manifest["finished"] for b in backups) if backups else None
    newest = _newest_write(segments)
    if oldest is None:
        return "no base backup of this cluster: the recoverable window is empty (take one with backup --kind base)"
    end = datetime.fromtimestamp(newest, timezone.utc).isoformat() if newest else "no archived WAL"
    return f"the recoverable window is {datetime.fromisoformat(oldest).isoformat()} to {end}"


def _archive_end(segments: dict) -> str:
    """When the newest of `segments` was written, to the microsecond (not a window: a base backup whose finish
    was stamped after it would make one end before it starts)."""
    newest = _newest_write(segments)
    return datetime.fromtimestamp(newest, timezone.utc).isoformat() if newest else "never"


def candidates(backups: list, segments: dict, segment_bytes: int, *, to_time: datetime | None,
               to_lsn: str | None, system_identifier: str | None = None) -> list:
    """The base backups ending before the target whose WAL, from their start to the target, is all
    archived, newest first; with `system_identifier`, each segment's header is checked first
    (pitr_checks.segment_problem): BackupError naming the first that is not this cluster's WAL. None
    fitting: ParameterError stating the recoverable window."""
    streamed_end = None
    if to_time is not None:
        fitting = [b for b in backups if datetime.fromisoformat(b.manifest["finished"]) < to_time]
        newest_wal = _newest_write(segments)
        covered = newest_wal is not None and to_time.timestamp() <= newest_wal
        last = max(segments, default=-1)
    else:
        target = base_backup.lsn_value(to_lsn)
        fitting = [b for b in backups if base_backup.lsn_value(b.manifest["end_lsn"]) <= target]
        last = target // segment_bytes
        covered = last in segments
        streamed_end = pitr_checks.written_end(segments[last], last, segment_bytes) \
            if covered and segments[last].name.endswith(".partial") else None
        covered = covered and (streamed_end is None or target <= streamed_end)
    what = to_time.isoformat() if to_time else to_lsn
    found, problems = [], {}
    for candidate in fitting if covered else []:  # newest first
        first = base_backup.lsn_value(candidate.manifest["start_lsn"]) // segment_bytes
        if not all(n in segments for n in range(first, last + 1)):
            continue
        for n in range(first, last + 1) if system_identifier else []:
            if n not in problems:
                problems[n] = pitr_checks.segment_problem(segments[n], n, segment_bytes, system_identifier)
            if problems[n] is not None:
                raise BackupError(f"archived WAL segment {segments[n].name} in {segments[n].parent} is not this "
                                  f"cluster's WAL: {problems[n]}; replay cannot pass it to reach {what} (replace it "
                                  "with this cluster's own segment of that name)")
        found.append(candidate)
    if not found:
        streamed = f"; the WAL streamed so far ends at {base_backup.lsn_text(streamed_end)}" if to_lsn and streamed_end else ""
        not_yet = (to_time is not None and newest_wal is not None and to_time.timestamp() > newest_wal) or \
            (to_lsn is not None and segments and last > max(segments))
        if not_yet and fitting:  # past the archive's end, a base backup before it: only the WAL is missing yet
            raise ParameterError(f"{what} is outside the recoverable window, past its end: the WAL holding it is not "
                                 "in the archive (yet). A server archives it at its next segment switch "
                                 "(archive_timeout); to have it now, run SELECT pg_switch_wal() on the server and try "
                                 f"again (the newest archived WAL was written at {_archive_end(segments)})")
        if covered and fitting:  # a base backup ends before the target: a segment between them is missing
            _refuse_a_gap(fitting[0], segments, segment_bytes, last, what, to_lsn is not None)
        if to_lsn is not None:
            _refuse_inside_a_base_backup(backups, segments, segment_bytes, to_lsn)
        raise ParameterError(f"{what} is outside the recoverable window: {_window_text(backups, segments)}{streamed}")
    return found


def _refuse_a_gap(backup, segments: dict, segment_bytes: int, last: int, what: str, at_lsn: bool) -> None:
    """ParameterError naming the first WAL segment missing from the archive between `backup`'s start and the
    segment `last` holding the target: replay from it stops there (before this, a target whose LSN also lay
    inside a newer base backup was blamed on that backup, and a moment got the window, which holds it)."""
    first = base_backup.lsn_value(backup.manifest["start_lsn"]) // segment_bytes
    missing = next((n for n in range(first, last + 1) if n not in segments), None)
    if missing is None:
        return
    name = segment_name(int(backup.manifest.get("timeline") or 1), missing * segment_bytes, segment_bytes)
    needed = (f"to the one holding {what}" if at_lsn else  # which segment holds a moment, only replay finds out
              "on to the newest archived (which one holds a moment, only replay finds out)")
    raise ParameterError(f"{what} cannot be reached: WAL segment {name} (on the base backup's timeline) is missing "
                         f"from the archive, and replay from base backup {backup.name} (the newest ending before "
                         f"it) needs every segment from the backup's start {needed}; put that segment back (the "
                         "server's pg_wal may still hold it) or recover to a point written before it")


def _refuse_inside_a_base_backup(backups: list, segments: dict, segment_bytes: int, to_lsn: str) -> None:
    """ParameterError where `to_lsn` lies inside a base backup (from its start LSN to before its end): a
    backup's files are consistent only once replay has reached its end, so no recovery stops inside it.
    Says which backup, its start and end, and the earliest location recover --to-lsn can reach: the end
    of the oldest base backup whose WAL, from its start to its end, is all archived."""
    target = base_backup.lsn_value(to_lsn)

    def span(b) -> tuple[int, int]:
        return base_backup.lsn_value(b.manifest["start_lsn"]), base_backup.lsn_value(b.manifest["end_lsn"])

    inside = sorted((b for b in backups if span(b)[0] <= target < span(b)[1]), key=lambda b: span(b)[0])
    if not inside:
        return
    usable = [span(b)[1] for b in backups
              if all(n in segments for n in range(span(b)[0] // segment_bytes, span(b)[1] // segment_bytes + 1))]
    holding, (start, end) = inside[0], span(inside[0])
    earliest = (f"the earliest location that can be recovered to is {base_backup.lsn_text(min(usable))}" if usable
                else "no base backup of this cluster has all its WAL archived yet, so no location can be recovered to")
    raise ParameterError(f"{to_lsn} lies inside base backup {holding.name} (WAL {base_backup.lsn_text(start)} to "
                         f"{base_backup.lsn_text(end)}): a base backup is consistent only from its end LSN, so recovery "
                         f"cannot stop before {base_backup.lsn_text(end)}; {earliest}")


def choose(backups: list, segments: dict, segment_bytes: int, *, to_time: datetime | None,
           to_lsn: str | None, system_identifier: str | None = None) -> "base_backup.BaseBackup":
    """The newest of `candidates`."""
    return candidates(backups, segments, segment_bytes, to_time=to_time, to_lsn=to_lsn,
                      system_identifier=system_identifier)[0]


def recover(conn: psycopg.Connection, target: Target, *, to_time: str | datetime | None = None,
            to_lsn: str | None = None, database: str | None = None, as_name: str | None = None,
            directory: Path | None = None, controlled: bool | None = None, no_owner: bool = False) -> dict:
    """Copy database `database` (default: the target's) as it was at `to_time` / before `to_lsn` into a
    new database `as_name` on the target's server; returns what was done ("database": the new name,
    "skipped": the newer base backups passed over and why, "lacking_roles": roles it refers to that the
    server lacks, restored without under `no_owner`). `controlled` (default: the target is the embedded
    server): archive the WAL holding the target first. `no_owner`: no owners and no grants restored
    (pg_restore --no-owner --no-privileges: everything owned by the connecting role)."""
    if (to_time is None) == (to_lsn is None):
        raise ParameterError("give a moment (--to) or a WAL location (--to-lsn), one of them")
    started = time.monotonic()
    moment = parse_moment(to_time) if isinstance(to_time, str) else to_time
    if moment is not None:
        moment = aware(moment)
    if to_lsn is not None:
        base_backup.lsn_value(to_lsn)
    if as_name is not None and not as_name:
        raise ParameterError("--as needs a name: an empty one is not a database name")
    if database is not None and not database:  # not the target's database by default: a script's empty variable
        raise ParameterError("--database needs a name: an empty one is not a database name")
    database = database or target.database
    name = as_name or default_name(database, moment, to_lsn)
    if len(name.encode()) > 63 or not name:
        raise ParameterError(f"{name[:70]!r} is not a database name PostgreSQL keeps whole (1 to 63 bytes)")
    if terminal(name) != name:  # the last line printed must be the name a script goes on with
        raise ParameterError(f"{name[:70]!r} holds a control character (a line break, say): printed, it "
                             "would not be the new database's name; choose another with --as")
    if scratch.marked(name):  # a later run could take it for a killed run's leftover and drop it
        raise ParameterError(f"{name} has the shape of prep-ops' own throwaway databases ({scratch.PREFIX}..., a run "
                             "id): choose another name with --as")
    if catalog.database_exists(conn, name):
        raise ParameterError(f"database {name} already exists: recover never overwrites; choose another with --as")
    source = base_backup.source_of(conn)
    sysid = source["system_identifier"]
    archive = wal_archive.archive_dir(sysid)
    if moment is not None and moment > datetime.now(timezone.utc):
        raise ParameterError(f"{moment.isoformat(timespec='seconds')} is in the future: nothing to recover yet")
    if to_lsn is not None:  # a location the server has not written yet: no segment switch brings it to the archive
        written = conn.execute(load("pitr", "wal_written")).fetchone()[0]
        if written is not None and base_backup.lsn_value(to_lsn) > base_backup.lsn_value(written):
            raise ParameterError(f"{to_lsn} is past the end of this server's WAL ({written}): nothing was written "
                                 "there yet, so nothing to recover")
    if controlled if controlled is not None else target.embedded:
        archive_now(conn, archive)
    segment_bytes = wal_segment_bytes(conn)
    segments = archived_segments(archive, segment_bytes, partial=True)
    fitting = candidates(base_backup.listing(sysid, directory), segments, segment_bytes, to_time=moment, to_lsn=to_lsn,
                         system_identifier=sysid)
    run = scratch.run_id()
    with scratch.coordinating(conn, target) as admin:  # held to the end: this run is alive
        scratch.claim(admin, run)
        recovery_cluster.remove_stale()  # first: a killed run's server feeds its orphan pg_dump
        _end_stale_copies(admin, run)
        scratch.remove_stale(admin, PREFIX, run)
        skipped, chosen, lacking = [], None, []
        for candidate in fitting:  # newest first; one whose files or cluster are not as recorded is passed over
            why = pitr_checks.backup_problem(candidate)
            if why:
                skipped.append(f"{candidate.name}: {why}")
                continue
            try:
                with recovered(base_backup.chain(candidate), archive=archive, **_targets(moment, to_lsn)) as cluster:
                    lacking = _check_database(cluster, database, conn, moment or to_lsn, candidate, no_owner)
                    _copy(cluster, database, target, conn, PREFIX + run, source["server_major"], no_owner=no_owner)
            except recovery_cluster.NotThisCluster as exc:
                skipped.append(first_line(exc))
                continue
            chosen = candidate
            break
        if chosen is None:
            raise BackupError(f"no usable base backup of this cluster for {moment or to_lsn}: {'; '.join(skipped)}"[:600])
        try:
            conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(PREFIX + run),
                                                                         sql.Identifier(name)))
        except psycopg.errors.DuplicateDatabase:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(PREFIX + run)))
            raise ParameterError(f"database {name} was made by someone else meanwhile: recover never overwrites") from None
    return {"database": name, "from": database, "base_backup": str(chosen.path), "target": str(moment or to_lsn),
            "seconds": time.monotonic() - started, "skipped": skipped, "no_owner": no_owner, "lacking_roles": lacking}


def _targets(moment: datetime | None, to_lsn: str | None) -> dict:
    return {"target_time": moment.isoformat() if moment else None, "target_lsn": to_lsn}


def _end_stale_copies(conn: psycopg.Connection, run: str) -> None:
    """End the sessions on the half-made copies of killed runs (older run id, run lock free): an orphan
    pg_restore would keep scratch.remove_stale from dropping them."""
    for name in scratch.abandoned(conn, PREFIX, run):
        conn.execute("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = %s", (name,))


def _check_database(cluster, database: str, conn: psycopg.Connection, when, backup, no_owner: bool) -> list[str]:
    """That `database` existed then, and the roles it refers to that this server lacks: RecoveryError
    naming them unless `no_owner`; returns them."""
    with psycopg.connect(cluster.url(), autocommit=True) as there:
        if not catalog.database_exists(there, database):
            raise ParameterError(f"database {database} did not exist at {when} (base backup {backup.name})")
    with psycopg.connect(cluster.url(database), autocommit=True) as there:
        lacking = pitr_checks.missing_roles(there, conn)
    if lacking and not no_owner:
        raise RecoveryError(f"database {database} as at {when} refers to roles this server no longer has: "
                            f"{', '.join(lacking)[:200]} (owners or grantees of its objects): create them and run "
                            f"recover again, or add --no-owner to restore it without owners and grants")
    return lacking


def _copy(cluster, database: str, target: Target, conn: psycopg.Connection, into: str, major: int, *,
          no_owner: bool = False) -> None:
    """`database` copied out of the recovery cluster into a new database `into` (recovery_copy)."""
    recovery_copy.copy_database(cluster, database, target, conn, into, major, no_owner=no_owner)
