"""`prep-ops` commands for backups: backup, verify, restore: registered on the group in cli.py."""

import sys
from pathlib import Path

import click
from tabulate import tabulate

from .cli import _target, cli

# --- backup, verify, restore -------------------------------------------------------------------
@cli.command("backup")
@click.option("--kind", type=click.Choice(["full", "schema", "data"]), default="full", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["plain", "custom", "directory"]), default="custom", show_default=True)
@click.option("--dir", "directory", type=click.Path(file_okay=False), help="Folder for backups (default: backups/).")
@click.option("--jobs", type=click.IntRange(min=1), default=2, show_default=True, help="Parallel jobs (directory format).")
@click.option("--keep", type=click.IntRange(min=1), help="Keep only the newest N backups of this database and kind.")
@click.pass_context
def backup_cmd(ctx, kind, fmt, directory, jobs, keep) -> None:
    """Back up the target with pg_dump and a manifest; the last line printed is the backup's path.

    Example: verify "$(prep-ops backup --kind full | tail -n 1)"
    """
    from . import backup

    made = backup.backup(_target(ctx), kind, fmt, directory=Path(directory) if directory else None, jobs=jobs, keep=keep)
    m = made.manifest
    click.echo(f"{m['kind']} {m['format']} backup of {m['database']}: {m['bytes']:,} bytes, {backup.holds(m)}, "
               f"manifest {made.manifest_path.name}")
    click.echo(str(made.path))


def _show_verification(result) -> None:
    failed, skipped = result.failures, result.skipped
    click.echo(f"{'PASS' if result.ok else 'FAIL'} {result.backup}: {len(result.report) - len(skipped)} checks, "
               f"{len(failed)} failed, {len(skipped)} not compared ({result.seconds:.1f} s)")
    for row in skipped.itertuples():
        click.echo(f"SKIP {row.object}: {row.actual}")
    if len(failed):
        click.echo(tabulate(failed[["object", "check", "expected", "actual"]].astype(str).values,
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
@click.pass_context
def verify_cmd(ctx, backup_path, latest, directory, max_age, min_size, same_server, keep_scratch) -> None:
    """Restore a backup into a scratch database and compare it with its manifest; exit 1 on any
    failure. Example: prep-ops verify --latest --max-age 26 --min-size 100000"""
    from . import verify

    if bool(backup_path) == latest:
        raise click.UsageError("give a BACKUP_PATH or --latest (one of them)")
    target = _target(ctx)
    server = target.with_database("postgres") if same_server else None
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
@click.argument("backup_path", type=click.Path(exists=True))
@click.option("--confirm", is_flag=True, help="Replace what the target holds and end its sessions (a safety "
              "backup is taken first).")
@click.pass_context
def restore_cmd(ctx, backup_path, confirm) -> None:
    """Restore a backup (full, schema or data) into a new database beside the target, and swap names only
    once it is complete and equals its manifest: a failed or killed restore leaves the target as it was.
    Example: prep-ops --database-url URL restore FILE --confirm"""
    from . import restore

    done = restore.restore(Path(backup_path), _target(ctx), confirm=confirm)
    click.echo(f"restored {done['kind']} backup into {done['into']}; "
               + (f"safety backup: {done['safety_backup']}" if done["safety_backup"] else
                  "no safety backup: the target held nothing"))
    if done["replaced"]:
        click.echo(f"the replaced database is kept as {done['replaced']} until the next restore")
    for name in done["removed"]:
        click.echo(f"removed {name}, left by an earlier restore")
