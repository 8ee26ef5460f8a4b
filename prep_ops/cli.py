"""The `prep-ops` command: argument parsing and errors to exit codes; the work is in the package."""

import json
import os
import sys
from pathlib import Path

import click
from tabulate import tabulate

from . import embedded, migrate
from .db import Target, resolve_target
from .errors import PrepOpsError


def _target(ctx: click.Context) -> Target:
    return resolve_target(ctx.obj.get("database_url"))


def _with_conn(ctx: click.Context, function, *args, **kwargs):
    """`function(conn, *args, **kwargs)` on one autocommit connection to the target, closed after."""
    from .db import connect

    with connect(_target(ctx), autocommit=True) as conn:
        return function(conn, *args, **kwargs)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--database-url", metavar="URL", help="Target database (default: $DATABASE_URL, else the embedded server).")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None) -> None:
    """Operations runbooks for the UNM Music Preparatory Division database.

    Example: prep-ops run --all
    """
    ctx.ensure_object(dict)
    ctx.obj["database_url"] = database_url
    if database_url:  # notebook kernels started by `run` inherit it
        os.environ["DATABASE_URL"] = database_url


# --- db ---------------------------------------------------------------------------------------
@cli.group()
def db() -> None:
    """Start, stop and locate the embedded PostgreSQL server."""


@db.command("start")
def db_start() -> None:
    """Start the embedded server (initialising it on first use). Example: prep-ops db start"""
    state = embedded.start()
    embedded.ensure_database()
    click.echo(f"running: PostgreSQL {state.version}, pid {state.pid}, data in {state.data_dir}")


@db.command("stop")
def db_stop() -> None:
    """Stop the embedded server. Example: prep-ops db stop"""
    click.echo("stopped" if embedded.stop() else "not running")


@db.command("status")
def db_status() -> None:
    """Say whether the embedded server runs; exit 1 when it does not. Example: prep-ops db status"""
    state = embedded.status()
    if state.running:
        click.echo(f"running: PostgreSQL {state.version}, pid {state.pid}, since {state.started_at}, data in {state.data_dir}")
    else:
        click.echo(f"not running: data in {state.data_dir}")
        sys.exit(1)


@db.command("url")
@click.pass_context
def db_url(ctx: click.Context) -> None:
    """Print the target's URL, password masked. Example: export DATABASE_URL=$(prep-ops db url)"""
    click.echo(_target(ctx).masked_url)


# --- migrate ----------------------------------------------------------------------------------
@cli.group(invoke_without_command=True)
@click.option("--to", "to", type=click.IntRange(min=0), help="Version to migrate to, up or down (default: latest).")
@click.option("--confirm", is_flag=True, help="Needed outside a scratch database, and for a down migration over data.")
@click.pass_context
def migrate_cmd(ctx: click.Context, to: int | None, confirm: bool) -> None:
    """Migrate the schema to the latest version, or up or down to --to N.

    Example: prep-ops migrate --to 3
    """
    if ctx.invoked_subcommand:
        return
    from . import masking
    from .db import connect

    with connect(_target(ctx), autocommit=True) as conn:
        downs = any(s.direction == "down" for s in migrate.plan(conn, to))
        derived = masking.views(conn) if downs else []
        done = migrate.apply(conn, to, confirm=confirm)
        if derived:
            click.echo(f"dropped the {len(derived)} masked views first (they depend on the tables; "
                       "06_access_control_audit recreates them)")
        for step in done:
            click.echo(f"{step.direction:4} {step.version:04d}_{step.name}")
        click.echo(f"schema at version {migrate.current_version(conn)}" + ("" if done else " (nothing to do)"))


cli.add_command(migrate_cmd, "migrate")


@migrate_cmd.command("status")
@click.pass_context
def migrate_status(ctx: click.Context) -> None:
    """List migrations and whether each is applied. Example: prep-ops migrate status"""
    rows = [(s.version, s.name, "applied" if s.applied else "pending",
             s.applied_at.isoformat(sep=" ", timespec="seconds") if s.applied_at else "",
             "CHANGED since applied" if s.changed else "")
            for s in _with_conn(ctx.parent, migrate.status)]
    click.echo(tabulate(rows, headers=["version", "name", "state", "applied at", "note"]))


@migrate_cmd.command("plan")
@click.option("--to", "to", type=click.IntRange(min=0), help="Version to plan for (default: latest).")
@click.pass_context
def migrate_plan(ctx: click.Context, to: int | None) -> None:
    """Print the SQL that `migrate` would run; changes nothing. Example: prep-ops migrate plan --to 0"""
    click.echo(migrate.script(_with_conn(ctx.parent, migrate.plan, to)))


# --- seed -------------------------------------------------------------------------------------
@cli.command("seed")
@click.option("--students", default=2000, show_default=True, type=int, help="Number of students to generate.")
@click.option("--seed", "seed_value", default=42, show_default=True, type=int, help="Random seed; same seed, same data.")
@click.option("--confirm", is_flag=True, help="Needed outside a scratch database, and to replace data already there.")
@click.pass_context
def seed_cmd(ctx: click.Context, students: int, seed_value: int, confirm: bool) -> None:
    """Load generated sample data. Example: prep-ops seed --students 100000 --seed 7"""
    from . import seed

    seed.check_students(students)
    result = _with_conn(ctx, seed.seed, students, seed_value, replace=confirm, confirm=confirm,
                        progress=sys.stderr.isatty())
    click.echo(tabulate(result.rows.items(), headers=["table", "rows"], intfmt=","))
    click.echo(str(result))


# --- indexes ----------------------------------------------------------------------------------
@cli.command("indexes")
@click.option("--json", "as_json", is_flag=True, help="Print the advice as JSON.")
@click.pass_context
def indexes_cmd(ctx: click.Context, as_json: bool) -> None:
    """Index advice: missing foreign-key, invalid, duplicate and unused indexes, with the statements
    to fix them (proposed, never run). Example: prep-ops indexes --json"""
    from . import indexes
    from .db import connect

    with connect(_target(ctx), autocommit=True) as conn:
        items = indexes.advice(conn)
    if as_json:
        click.echo(json.dumps([{**i.__dict__, "columns": list(i.columns)} for i in items], indent=2))
        return
    if not items:
        click.echo("no index advice: every foreign key is indexed, nothing duplicate, unused or invalid")
        return
    click.echo(tabulate([(i.kind, i.table, i.index, i.why[:70]) for i in items],
                        headers=["advice", "table", "index", "why"]))
    click.echo("\n-- statements (not run):\n" + "\n".join(f"{i.statement};" for i in items))


# --- roles, audit -------------------------------------------------------------------------------
@cli.group("roles")
def roles_group() -> None:
    """The guide's roles as code: readonly, reporter, analyst, app, dba.

    Passwords come from PREP_OPS_<ROLE>_PASSWORD and are never printed.
    """


@roles_group.command("plan")
@click.pass_context
def roles_plan(ctx: click.Context) -> None:
    """Print the statements `roles apply` would run (passwords elided). Example: prep-ops roles plan"""
    from . import roles

    steps = _with_conn(ctx.parent, roles.plan)
    click.echo("\n".join(f"{step};" for step in steps) if steps else "-- roles are in place: nothing to do")


@roles_group.command("apply")
@click.option("--confirm", is_flag=True, help="Needed outside the embedded (scratch) server.")
@click.pass_context
def roles_apply(ctx: click.Context, confirm: bool) -> None:
    """Create or update the roles and grants; applying twice changes nothing. Example: prep-ops roles apply"""
    from . import roles

    done = _with_conn(ctx.parent, roles.apply, confirm=confirm)
    click.echo(f"{len(done)} statement(s) run" if done else "roles already in place: nothing changed")


@cli.command("audit")
@click.pass_context
def audit_cmd(ctx: click.Context) -> None:
    """Security audit of roles, privileges and server settings; exit 1 on high severity.

    Example: prep-ops audit
    """
    from . import security_audit

    found = _with_conn(ctx, security_audit.findings)
    frame = security_audit.as_frame(found)
    if frame.empty:
        click.echo("no findings")
    else:
        shown = frame[["severity", "check", "subject", "detail"]].astype(str).map(lambda v: v[:60])
        shown["fix"] = frame["fix"].astype(str)
        click.echo(tabulate(shown.values, headers=list(shown.columns)))
    if security_audit.has_high(found):
        sys.exit(1)


# --- maintain -----------------------------------------------------------------------------------
@cli.command("maintain")
@click.option("--tables", "tables", multiple=True, help="Tables to maintain (repeatable; default: the whole database).")
@click.option("--reindex", is_flag=True, help="Also REINDEX (CONCURRENTLY where supported); default table: users.")
@click.option("--confirm", is_flag=True, help="Needed outside the embedded (scratch) server.")
@click.option("--plan", "dry_run", is_flag=True, help="Print the statements only.")
@click.pass_context
def maintain_cmd(ctx, tables, reindex, confirm, dry_run) -> None:
    """The guide's maintenance: VACUUM (ANALYZE), REINDEX TABLE users, ANALYZE users; with before/after.

    Example: prep-ops maintain --tables enrollments --reindex
    """
    from . import maintenance
    from .db import connect

    chosen = list(tables) or None
    with connect(_target(ctx), autocommit=True) as conn:
        if dry_run:
            click.echo("\n".join(f"{s};" for s in maintenance.plan(conn, chosen, reindex)))
            return
        result = maintenance.maintain(conn, chosen, reindex, confirm=confirm)
    for row in result.log.itertuples():
        click.echo(f"{row.seconds:7.2f} s  {row.statement}")
    table = maintenance.before_after(result)
    click.echo("\n" + tabulate(table.values.tolist(), headers=list(table.columns)))


# --- health -------------------------------------------------------------------------------------
@cli.command("health")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON, for monitoring systems.")
@click.pass_context
def health_cmd(ctx: click.Context, as_json: bool) -> None:
    """Run the health checks (connections, long queries, idle transactions, locks, cache hit ratio,
    wraparound, sizes, top queries, log errors); exit 2 when any is critical.

    Example: prep-ops health --json
    """
    from dataclasses import asdict

    from . import health
    from .db import connect

    with connect(_target(ctx), autocommit=True) as conn:
        checks = health.run_checks(conn)
    if as_json:
        click.echo(json.dumps({"status": health.worst(checks), "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        # nothing cut: long details wrap; a check that could not be judged says how to make it judgeable
        rows = [(c.status.upper(), c.name, c.detail + (f" — {c.fix}" if c.status == "unknown" and c.fix else ""))
                for c in checks]
        click.echo(tabulate(rows, headers=["status", "check", "detail"], maxcolwidths=[None, None, 90]))
    if health.worst(checks) == "critical":
        sys.exit(2)


# --- integrity ----------------------------------------------------------------------------------
@cli.command("integrity")
@click.option("--tables", multiple=True, metavar="TABLE", help="Check only this table and its indexes (repeatable; schema.table).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def integrity_cmd(ctx: click.Context, tables: tuple[str, ...], as_json: bool) -> None:
    """Check every table and B-tree index with amcheck, and the data checksums; exit 1 on corruption.

    Takes only the locks a SELECT takes. amcheck is created where missing on a scratch database only;
    elsewhere a missing amcheck is SKIP with the reason.

    Example: prep-ops integrity --tables public.enrollments
    """
    from . import integrity
    from .db import connect

    with connect(_target(ctx), autocommit=True) as conn:
        report = integrity.check(conn, list(tables) or None)
    word = {"ok": "PASS", "corrupt": "FAIL", "incomplete": "WARN", "skipped": "SKIP"}[report.outcome]
    if as_json:
        click.echo(json.dumps({"outcome": report.outcome, "summary": report.summary, "skipped": report.skipped,
                               "data_checksums": report.data_checksums, "checksum_failures": report.checksum_failures,
                               "notes": report.notes,
                               "relations": json.loads(report.relations.to_json(orient="records"))}, indent=2))
    else:
        bad = report.relations[report.relations["status"] != "ok"]
        if len(bad):
            click.echo(tabulate(bad[["status", "kind", "relation", "block", "detail"]].values.tolist(),
                                headers=["status", "kind", "relation", "block", "detail"]) + "\n")
        for note in report.notes:
            click.echo(f"note: {note}")
        click.echo(f"{word} integrity: {report.summary}")
    if report.outcome == "corrupt":
        sys.exit(1)


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
    click.echo(f"{m['kind']} {m['format']} backup of {m['database']}: {m['bytes']:,} bytes, "
               f"{sum(t['rows'] for t in m['tables'].values()):,} rows in {len(m['tables'])} tables, "
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
@click.option("--keep-scratch", is_flag=True, help="Keep the scratch database for inspection.")
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
@click.option("--confirm", is_flag=True, help="Replace what the target holds (a safety backup is taken first).")
@click.pass_context
def restore_cmd(ctx, backup_path, confirm) -> None:
    """Restore a backup (full, schema or data) into the target. Example: prep-ops --database-url URL restore FILE"""
    from . import restore

    done = restore.restore(Path(backup_path), _target(ctx), confirm=confirm)
    click.echo(f"restored {done['kind']} backup into {done['into']}"
               + (f"; safety backup: {done['safety_backup']}" if done["safety_backup"] else ""))


# --- run, list --------------------------------------------------------------------------------
def _verdict(check: dict) -> str:
    from .notebook import status

    return status(check)


def _show_run(result) -> None:
    """One line per runbook: ok/FAIL, time, and its checks by status (a SKIP is neither passed nor failed)."""
    counts = ", ".join(f"{n} {word}" for word, n in result.counts.items() if n) or "no checks"
    word = "ok  " if result.ok else "FAIL"
    line = f"{word} {result.notebook:32} {result.seconds:6.1f} s  {counts}"
    click.echo(line + (f"  {result.error}" if result.error else ""))


@cli.command("run")
@click.argument("notebooks", nargs=-1)
@click.option("-p", "--parameter", "params", nargs=2, multiple=True, metavar="NAME VALUE",
              help="Set a notebook parameter (repeatable).")
@click.option("--all", "run_all", is_flag=True, help="Run every runbook in notebooks/.")
def run_cmd(notebooks: tuple[str, ...], params: tuple[tuple[str, str], ...], run_all: bool) -> None:
    """Execute runbooks with papermill into runs/<timestamp>/; exit 1 if any failed.

    Example: prep-ops run 02_enrollment_exploration -p term 2026-fall
    """
    from . import runner

    out_dir, results = runner.run(list(notebooks), dict(params), run_all=run_all, on_done=_show_run)
    rows = [(r.notebook, c["name"], _verdict(c), c["detail"][:70]) for r in results for c in r.checks]
    if rows:
        click.echo("\n" + tabulate(rows, headers=["notebook", "check", "result", "detail"]))
    click.echo(f"\nexecuted notebooks and summary.json in {out_dir}")
    if not all(r.ok for r in results):
        sys.exit(1)


@cli.command("list")
def list_cmd() -> None:
    """Show the runbooks with their parameters and defaults. Example: prep-ops list"""
    from . import runner

    for notebook in runner.available():
        click.echo(notebook.stem)
        for name, p in runner.parameters(notebook).items():
            click.echo(f"    {name} = {p['default']}  ({runner.kind_of(p['default'])})  {p['help']}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one `error:` line and exit code 1, never a traceback."""
    import psycopg

    try:
        code = cli.main(args=argv, prog_name="prep-ops", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        code = 130
    except click.UsageError as exc:  # one line like every other error, keeping click's "Did you mean"
        path = exc.ctx.command_path if exc.ctx else "prep-ops"
        message = (exc.format_message().strip().splitlines() or ["usage error"])[0]
        click.echo(f"error: {message} (see {path} --help)", err=True)
        code = 1
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except PrepOpsError as exc:
        click.echo(f"error: {exc}", err=True)
        code = 1
    except OSError as exc:  # a folder that cannot be made or read: say which, no traceback
        where = f"{exc.filename}: " if exc.filename else ""
        click.echo(f"error: {where}{exc.strerror or exc}", err=True)
        code = 1
    except psycopg.Error as exc:
        from .db import mask_url

        click.echo(f"error: database error: {mask_url(str(exc).strip().splitlines()[0])}", err=True)
        code = 1
    sys.exit(code or 0)
