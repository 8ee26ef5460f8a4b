"""The `prep-ops` command: argument parsing and errors to exit codes; the work is in the package."""

import os
import signal
import sys

import click
from tabulate import tabulate

from . import embedded
from .errors import PrepOpsError, first_line
from .formatting import terminal

# Heavy modules (psycopg, pandas, SQLAlchemy, the capability modules) are imported inside the commands
# that use them: `prep-ops --help` and argument errors answer without loading them.


# A name from a database is data: it never steers the terminal. Everything the commands print goes
# through these three: a line (its names, a message quoting them) with every control character shown
# (formatting.terminal), so a table named "x\nPASS ..." forges no line and "t\x1b[1A..." rewrites none;
# a table whose every text cell is shown so; and text of several lines prep-ops made itself (JSON,
# statements joined one per line, each shown so), where nothing but its line breaks and tabs may act.
def echo_line(text="", **options) -> None:
    """Print one line; its control characters (line breaks included) shown, not acted on."""
    click.echo(terminal(text), **options)


def echo_text(text: str, **options) -> None:
    """Print text of several lines that prep-ops composed (each name in it shown by `terminal`); any
    other control character is shown, not acted on."""
    click.echo(terminal(text, lines=True), **options)


def text_table(rows, headers, **options) -> str:
    """tabulate of `rows` with every text cell shown by `terminal` (one line each; a long one still wraps)."""
    return tabulate([[terminal(cell) if isinstance(cell, str) else cell for cell in row] for row in rows],
                    headers=headers, **options)


def _target(ctx: click.Context):
    """The command's target (a db.Target): --database-url, else $DATABASE_URL, else the embedded server."""
    from .db import resolve_target

    return resolve_target(ctx.obj.get("database_url"))


def _connection(ctx: click.Context):
    """The command's one autocommit connection to the target (use it in a `with`: closed after)."""
    from .db import connect

    return connect(_target(ctx), autocommit=True)


def _with_conn(ctx: click.Context, function, *args, **kwargs):
    """`function(conn, *args, **kwargs)` on one autocommit connection to the target, closed after."""
    with _connection(ctx) as conn:
        return function(conn, *args, **kwargs)


_running: list[str] = []  # the command `main` runs ("backup"), named in an error line it ends with


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--database-url", metavar="URL", help="Target database (default: $DATABASE_URL, else the embedded server).")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None) -> None:
    """Operations runbooks for the UNM Music Preparatory Division database.

    Example: prep-ops run --all
    """
    ctx.ensure_object(dict)
    ctx.obj["database_url"] = database_url
    _running[:] = [ctx.invoked_subcommand] if ctx.invoked_subcommand else []
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
    echo_line(f"running: PostgreSQL {state.version}, pid {state.pid}, data in {state.data_dir}")


@db.command("stop")
def db_stop() -> None:
    """Stop the embedded server. Example: prep-ops db stop"""
    echo_line("stopped" if embedded.stop() else "not running")


@db.command("status")
def db_status() -> None:
    """Say whether the embedded server runs; exit 1 when it does not. Example: prep-ops db status"""
    state = embedded.status()
    if state.running:
        echo_line(f"running: PostgreSQL {state.version}, pid {state.pid}, since {state.started_at}, data in {state.data_dir}")
    else:
        echo_line(f"not running: data in {state.data_dir}")
        sys.exit(1)


@db.command("url")
@click.pass_context
def db_url(ctx: click.Context) -> None:
    """Print the target's URL, password masked. Example: export DATABASE_URL=$(prep-ops db url)"""
    echo_line(_target(ctx).masked_url)


# --- migrate ----------------------------------------------------------------------------------
@cli.group(invoke_without_command=True)
@click.option("--to", "to", type=click.IntRange(min=0), help="Version to migrate to, up or down (default: latest).")
@click.option("--confirm", is_flag=True, help="Needed outside a scratch database, and for a down migration over data.")
@click.pass_context
def migrate_cmd(ctx: click.Context, to: int | None, confirm: bool) -> None:
    """Migrate the schema to the latest version, or up or down to --to N.

    Example: prep-ops migrate --to 3
    """
    from . import migrate

    if ctx.invoked_subcommand:
        return
    from . import masking

    with _connection(ctx) as conn:
        downs = any(s.direction == "down" for s in migrate.plan(conn, to))
        derived = masking.views(conn) if downs else []
        done = migrate.apply(conn, to, confirm=confirm)
        if derived:
            echo_line(f"dropped the {len(derived)} masked views first (they depend on the tables; "
                       "06_access_control_audit recreates them)")
        for step in done:
            echo_line(f"{step.direction:4} {step.version:04d}_{step.name}")
        echo_line(f"schema at version {migrate.current_version(conn)}" + ("" if done else " (nothing to do)"))


cli.add_command(migrate_cmd, "migrate")


@migrate_cmd.command("status")
@click.pass_context
def migrate_status(ctx: click.Context) -> None:
    """List migrations and whether each is applied. Example: prep-ops migrate status"""
    from . import migrate

    rows = [(s.version, s.name, "applied" if s.applied else "pending",
             s.applied_at.isoformat(sep=" ", timespec="seconds") if s.applied_at else "",
             "CHANGED since applied" if s.changed else "")
            for s in _with_conn(ctx.parent, migrate.status)]
    echo_text(text_table(rows, headers=["version", "name", "state", "applied at", "note"]))


@migrate_cmd.command("plan")
@click.option("--to", "to", type=click.IntRange(min=0), help="Version to plan for (default: latest).")
@click.pass_context
def migrate_plan(ctx: click.Context, to: int | None) -> None:
    """Print the SQL that `migrate` would run; changes nothing. Example: prep-ops migrate plan --to 0"""
    from . import migrate

    echo_text(migrate.script(_with_conn(ctx.parent, migrate.plan, to)))


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
    echo_text(text_table(result.rows.items(), headers=["table", "rows"], intfmt=","))
    echo_text(str(result))


# --- run, list --------------------------------------------------------------------------------
def _verdict(check: dict) -> str:
    from .verdicts import status

    return status(check)


def _show_run(result) -> None:
    """One line per runbook: ok/FAIL, time, and its checks by status (a SKIP is neither passed nor failed)."""
    counts = ", ".join(f"{n} {word}" for word, n in result.counts.items() if n) or "no checks"
    word = "ok  " if result.ok else "FAIL"
    line = f"{word} {result.notebook:32} {result.seconds:6.1f} s  {counts}"
    echo_line(line + (f"  {result.error}" if result.error else ""))


@cli.command("run")
@click.argument("notebooks", nargs=-1)
@click.option("-p", "--parameter", "params", nargs=2, multiple=True, metavar="NAME VALUE",
              help="Set a notebook parameter (repeatable).")
@click.option("--all", "run_all", is_flag=True, help="Run every runbook in notebooks/.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Runbooks run side by side (default: the number of cores). 01 runs first and alone; "
                   "the runbooks that change the target or watch the whole server run alone after the others.")
def run_cmd(notebooks: tuple[str, ...], params: tuple[tuple[str, str], ...], run_all: bool, jobs: int | None) -> None:
    """Execute runbooks with papermill into runs/<timestamp>/; exit 1 if any failed.

    Example: prep-ops run 02_enrollment_exploration -p term 2026-fall
    """
    from . import runner

    out_dir, results = runner.run(list(notebooks), dict(params), run_all=run_all, on_done=_show_run,
                                  jobs=jobs or runner.default_jobs())
    rows = [(r.notebook, c["name"], _verdict(c), c["detail"]) for r in results for c in r.checks]
    if rows:  # nothing cut: long names and details wrap at word boundaries
        echo_text("\n" + text_table(rows, headers=["notebook", "check", "result", "detail"],
                                      maxcolwidths=[None, 40, None, 70]))
    echo_line()
    echo_line(f"executed notebooks and summary.json in {out_dir}")
    if not all(r.ok for r in results):
        sys.exit(1)


@cli.command("list")
def list_cmd() -> None:
    """Show the runbooks with their parameters and defaults. Example: prep-ops list"""
    from . import runner

    for notebook in runner.available():
        echo_line(notebook.stem)
        for name, p in runner.parameters(notebook).items():
            echo_line(f"    {name} = {p['default']}  ({runner.kind_of(p['default'])})  {p['help']}")


# the other commands live in modules of their own; importing them registers them on `cli`
from . import cli_archive, cli_backups, cli_checks  # noqa: E402,F401


def _terminated(signum, frame) -> None:
    """SIGTERM (`kill`, `timeout`, systemd stopping a job) ends a command as Ctrl-C does: the cleanup each
    operation has for an interruption runs (a backup removes its half-written dump, pg_dump and pg_restore
    are stopped), where the default action ended Python on the spot and left them behind."""
    raise KeyboardInterrupt


def _command_failed() -> str:
    """"prep-ops backup failed: " for the command `main` ran, "" before one was chosen."""
    return f"prep-ops {_running[0]} failed: " if _running else ""


def _connection_lost(exc: Exception) -> str:
    """What a lost session means, for the psycopg error `exc` a command ended with: "" when the session
    was not lost. SQLSTATE class 57 (the server shutting down, or an administrator ending the session) and
    class 08 (connection failures), and a connection psycopg found closed, which carries no SQLSTATE."""
    state = getattr(exc, "sqlstate", None) or ""
    if state.startswith(("57P", "08")) or (not state and "connection" in str(exc).lower()):
        return (" (the server ended the session: it was stopped or restarted, or an administrator ended it; "
                "the command stopped at that point: run it again once the server is up)")
    return ""


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one `error:` line and exit code 1, never a traceback. SIGTERM is
    taken as Ctrl-C (`aborted`, exit 130)."""
    signal.signal(signal.SIGTERM, _terminated)
    _running.clear()
    try:
        code = cli.main(args=argv, prog_name="prep-ops", standalone_mode=False)
    except click.exceptions.Abort:
        echo_line("aborted", err=True)
        code = 130
        if "prep_ops.runner" in sys.modules:  # a papermill run interrupted: its unfinished tasks say nothing more
            sys.modules["prep_ops.runner"].silence()
    except click.UsageError as exc:  # one line like every other error, keeping click's "Did you mean"
        path = exc.ctx.command_path if exc.ctx else "prep-ops"
        message = (exc.format_message().strip().splitlines() or ["usage error"])[0]
        if isinstance(exc, click.NoSuchOption) and exc.option_name == "--database-url" and path != "prep-ops":
            command = path.split(" ", 1)[1]
            message = message.rstrip(".") + f" here: it goes before the command (prep-ops --database-url URL {command} …)"
        echo_line(f"error: {message} (see {path} --help)", err=True)
        code = 1
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except PrepOpsError as exc:
        echo_line(f"error: {exc}", err=True)
        code = 1
    except OSError as exc:  # a folder that cannot be made or read: say which, no traceback
        where = f"{exc.filename}: " if exc.filename else ""
        echo_line(f"error: {where}{exc.strerror or exc}", err=True)
        code = 1
    except Exception as exc:
        psycopg = sys.modules.get("psycopg")  # loaded only by commands that connect
        if psycopg is None or not isinstance(exc, psycopg.Error):
            raise
        from .db import mask_url

        # the server's message itself, whole: a name quoted in it may hold a line break (shown, not cut at)
        message = getattr(getattr(exc, "diag", None), "message_primary", None) or first_line(exc)
        echo_line(f"error: {_command_failed()}database error: {mask_url(message)}{_connection_lost(exc)}", err=True)
        code = 1
    sys.exit(code or 0)
