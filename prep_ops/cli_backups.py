"""`prep-ops` commands for backups: backup, verify, restore, recover: registered on the group in cli.py."""

import sys
from pathlib import Path

import click

from .cli import _target, cli, echo_line, echo_text, text_table

# --- backup, verify, restore -------------------------------------------------------------------
@cli.command("backup")
@click.option("--kind", type=click.Choice(["full", "schema", "data", "base"]), default="full", show_default=True,
              help="base: the whole cluster with pg_basebackup (tar, gzip), for verify and recover --to.")
@click.option("--incremental", is_flag=True, help="With --kind base: only what changed since the newest base "
              "backup (PostgreSQL 17 and later, summarize_wal on).")
@click.option("--format", "fmt", type=click.Choice(["plain", "custom", "directory"]), default="custom", show_default=True)
@click.option("--dir", "directory", type=click.Path(file_okay=False), help="Folder for backups (default: backups/).")
@click.option("--jobs", type=click.IntRange(min=1), default=2, show_default=True, help="Parallel jobs (directory format).")
@click.option("--keep", type=click.IntRange(min=1), help="Keep only the newest N backups of this database (same "
              "cluster, name and OID) and kind, and say how many of a same-named database under another OID "
              "(before a restore or a re-create) it left to remove by hand (--kind base: of this cluster, with "
              "the backups their incrementals need and the WAL they need).")
@click.option("--lock-wait", "lock_wait", type=click.FloatRange(min=0, max=86399), default=120.0,  # backup.LOCK_WAIT
              show_default=True,
              metavar="SECONDS", help="How long to wait for a table another session holds locked (VACUUM FULL, "
              "REINDEX, LOCK TABLE, ALTER TABLE) before failing with the table and that session named; 0: no limit.")
@click.pass_context
def backup_cmd(ctx, kind, incremental, fmt, directory, jobs, keep, lock_wait) -> None:
    """Back up the target with pg_dump and a manifest (--kind base: the cluster with pg_basebackup); the
    last line printed is the backup's path. Behind another session's table lock it waits --lock-wait
    seconds (saying whom it waits for, at a terminal), then fails and keeps nothing.

    Example: verify "$(prep-ops backup --kind full | tail -n 1)"
    """
    from . import backup

    if kind == "base" or incremental:
        _refuse_given(ctx, ("fmt", "jobs", "lock_wait"), "with --kind base (a base backup is pg_basebackup's tar, "
                      "one job, and takes no table lock)")
        _base_backup(ctx, kind, incremental, directory, keep)
        return
    say = (lambda line: echo_line(f"backup: {line}", err=True)) if sys.stderr.isatty() else None
    made = backup.backup(_target(ctx), kind, fmt, directory=Path(directory) if directory else None, jobs=jobs, keep=keep,
                         lock_wait=lock_wait, say=say)
    m = made.manifest
    echo_line(f"{m['kind']} {m['format']} backup of {m['database']}: {m['bytes']:,} bytes, {backup.holds(m)}, "
               f"manifest {made.manifest_path.name}")
    if made.pruned and made.pruned.note():  # backups --keep may not remove: said, so they do not pile up unseen
        echo_line(made.pruned.note())
    echo_line(str(made.path))


def _refuse_given(ctx, names: tuple[str, ...], why: str) -> None:
    """A usage error naming the options of `names` given on the command line, which do not apply `why`."""
    from click.core import ParameterSource

    given = [p.opts[0] for p in ctx.command.params
             if p.name in names and ctx.get_parameter_source(p.name) == ParameterSource.COMMANDLINE]
    if given:
        raise click.UsageError(f"{', '.join(given)} do{'es' if len(given) == 1 else ''} not apply {why}")


def _base_backup(ctx, kind, incremental, directory, keep) -> None:
    from . import base_backup
    from .db import connect

    if kind != "base":
        raise click.UsageError("--incremental is for --kind base only")
    target = _target(ctx)
    with connect(target, autocommit=True) as conn:
        made = base_backup.take(conn, target, directory=Path(directory) if directory else None, incremental=incremental)
        if keep:  # after a successful backup only: the older ones and the WAL only they needed
            from . import base_retention
            from .errors import BackupError, PrepOpsError, first_line

            try:
                pruned = base_retention.prune(conn, keep, directory=Path(directory) if directory else None)
            except PrepOpsError as exc:
                raise BackupError(f"base backup {made.path} was made, but --keep failed: {first_line(exc)}") from None
    m = made.manifest
    size = sum(f["bytes"] for f in m["files"].values())
    echo_line(f"{'incremental ' if m['incremental_of'] else ''}base backup of cluster {m['system_identifier']} "
               f"(PostgreSQL {m['server_major']}, timeline {m['timeline']}): {size:,} bytes, WAL {m['start_lsn']} "
               f"to {m['end_lsn']}" + (f", incremental to {m['incremental_of']}" if m["incremental_of"] else ""))
    if keep:
        echo_line(f"kept {len(pruned.kept)} base backup(s), removed {len(pruned.removed)}"
                   f"{' (' + ', '.join(pruned.removed) + ')' if pruned.removed else ''} and {len(pruned.wal_removed)} "
                   f"archived WAL file(s)" + (f" before {pruned.oldest_wal_kept}" if pruned.oldest_wal_kept else ""))
    echo_line(str(made.path))


def _show_verification(result) -> None:
    failed = result.failures
    if result.nothing_checked and len(result.report):  # no PASS for it
        for row in result.skipped.itertuples():
            echo_line(f"SKIP {result.backup}: {row.check}: {row.actual}")
        return
    echo_line(f"{'PASS' if result.ok else 'FAIL'} {result.backup}: {result.counts} ({result.seconds:.1f} s)")
    for what, why in result.not_compared:
        echo_line(f"SKIP {what}: {why}")
    for note in result.notes.itertuples():  # housekeeping: no check, so neither PASS nor SKIP
        echo_line(f"note {note.object}: {note.check}: {note.actual}")
    if len(failed):
        echo_text(text_table(failed[["object", "check", "expected", "actual"]].astype(str).values,
                             headers=["object", "check", "expected", "actual"], maxcolwidths=[30, 24, 30, 60]))


@cli.command("verify")
@click.argument("backup_path", required=False, type=click.Path())
@click.option("--latest", is_flag=True, help="Verify the newest backup of the target's database in --dir.")
@click.option("--dir", "directory", type=click.Path(file_okay=False), help="Folder of backups (default: backups/).")
@click.option("--max-age", "max_age", type=float, default=26.0, show_default=True, help="With --latest: hours.")
@click.option("--min-size", "min_size", type=int, default=1, show_default=True, help="With --latest: bytes.")
@click.option("--same-server", is_flag=True, help="Restore into a scratch database on the target's server, "
              "not on the embedded one.")
@click.option("--keep-scratch", is_flag=True, help="Keep the scratch database for inspection (renamed prep_ops_kept_<id>).")
@click.option("--chain", is_flag=True, help="Recover the newest logical backup's snapshot from base backup and "
              "archived WAL, and compare every table's checksum with its manifest.")
@click.pass_context
def verify_cmd(ctx, backup_path, latest, directory, max_age, min_size, same_server, keep_scratch, chain) -> None:
    """Restore a backup into a scratch database and compare it with its manifest (a base backup folder:
    pg_verifybackup, restore until consistent, amcheck; --chain: base backup + WAL against the newest
    logical backup); exit 1 on any failure.
    Example: prep-ops verify --latest --max-age 26 --min-size 100000"""
    from . import base_backup, verify

    if bool(backup_path) + latest + chain != 1:
        raise click.UsageError("give a BACKUP_PATH, --latest or --chain (one of them)")
    if backup_path and not latest and not chain and base_backup.is_base_backup(Path(backup_path)):
        from . import base_verify  # a base backup folder needs no server: its own private cluster only

        _refuse_given(ctx, ("max_age", "min_size", "same_server", "keep_scratch"), "to a base backup folder")

        result = base_verify.verify_base(Path(backup_path))
        _show_verification(result)
        if not result.ok:
            sys.exit(1)
        return
    target = _target(ctx)
    server = target.with_database("postgres") if same_server else None
    if chain:
        from . import chain_verify
        from .db import connect

        _refuse_given(ctx, ("max_age", "min_size", "same_server", "keep_scratch"), "with --chain")

        with connect(target, autocommit=True) as conn:
            result = chain_verify.verify_chain(conn, target, Path(directory) if directory else None)
        _show_verification(result)
        for row in result.report[result.report["check"].isin(chain_verify.SHOWN)].itertuples():
            echo_line(f"{row.check}: {row.actual}")  # where the replay stopped, and what lies between
        if not result.ok:
            sys.exit(1)
        return
    if latest:  # the newest backup of the target's database (its cluster and name), like every other command
        from . import backup
        from .db import connect

        with connect(target) as conn:
            source = backup.identity(conn)
        result = verify.verify_latest(Path(directory) if directory else None, source=source, max_age_hours=max_age,
                                      min_bytes=min_size, server=server, keep_scratch=keep_scratch)
    else:
        result = verify.verify(Path(backup_path), server=server, keep_scratch=keep_scratch)
    _show_verification(result)
    if not result.ok:
        sys.exit(1)


@cli.command("restore")
@click.argument("backup_path", type=click.Path())
@click.option("--confirm", is_flag=True, help="Replace what the target holds and end its sessions (a safety "
              "backup is taken first).")
@click.pass_context
def restore_cmd(ctx, backup_path, confirm) -> None:
    """Restore a backup (full, schema or data) into a new database beside the target, and swap names only
    once it is complete and equals its manifest: a failed or killed restore leaves the target as it was.
    Example: prep-ops --database-url URL restore FILE --confirm"""
    from . import restore

    done = restore.restore(Path(backup_path), _target(ctx), confirm=confirm)
    echo_line(f"restored {done['kind']} backup into {done['into']}; "
               + (f"safety backup: {done['safety_backup']}" if done["safety_backup"] else
                  "no safety backup: the target held nothing"))
    if done["replaced"]:
        echo_line(f"the replaced database is kept as {done['replaced']} until the next restore")
    for name in done["removed"]:
        echo_line(f"removed {name}, left by an earlier restore")


@cli.command("recover")
@click.option("--to", "to_time", help="The moment to recover to (ISO, e.g. 2026-11-30T14:05:09+00:00; naive: "
              "local time): everything committed up to it, nothing after. Give the second before the damage.")
@click.option("--to-lsn", "to_lsn", help="A WAL location: everything written before it (the damaging record's).")
@click.option("--database", help="The database to recover (default: the target's).")
@click.option("--as", "as_name", help="Name of the new database (default: <database>_at_<YYYYMMDD_HHMMSS>, UTC).")
@click.option("--dir", "directory", type=click.Path(file_okay=False), help="Folder of backups (default: backups/).")
@click.option("--no-owner", is_flag=True, help="Restore without owners and grants (everything owned by the "
              "connecting role): for a database whose roles the server no longer has.")
@click.pass_context
def recover_cmd(ctx, to_time, to_lsn, database, as_name, directory, no_owner) -> None:
    """Copy a database as it was at a moment into a NEW database on the target's server, from the newest
    base backup before it and the cluster's archived WAL; the new name is the last line.

    Example: prep-ops recover --to "2026-11-30 14:05:09" --database unm_prep
    """
    from . import pitr
    from .db import connect

    if bool(to_time) == bool(to_lsn):
        raise click.UsageError("give --to TIMESTAMP or --to-lsn LSN (one of them)")
    target = _target(ctx)
    with connect(target, autocommit=True) as conn:
        done = pitr.recover(conn, target, to_time=to_time, to_lsn=to_lsn, database=database, as_name=as_name,
                            directory=Path(directory) if directory else None, no_owner=no_owner)
        user = conn.info.user
    for why in done["skipped"]:
        echo_line(f"passed over base backup {why}")
    if done["no_owner"]:
        lacking = f"; roles it referred to that this server lacks: {', '.join(done['lacking_roles'])}" \
            if done["lacking_roles"] else ""
        echo_line(f"restored without owners and grants (--no-owner): every object is owned by {user}{lacking}")
    echo_line(f"recovered {done['from']} as at {done['target']} from base backup {Path(done['base_backup']).name} "
               f"in {done['seconds']:.1f} s")
    echo_line(done["database"])
