"""`prep-ops` commands that look at a database: indexes, roles, audit, maintain, health, integrity: registered on the group in cli.py."""

import contextlib
import json
import sys

import click

from . import lock_watch
from .cli import _connection, _target, _with_conn, cli, echo_line, echo_text, text_table
from .formatting import statement

# --- indexes ----------------------------------------------------------------------------------
@cli.command("indexes")
@click.option("--json", "as_json", is_flag=True, help="Print the advice as JSON.")
@click.pass_context
def indexes_cmd(ctx: click.Context, as_json: bool) -> None:
    """Index advice: missing foreign-key, invalid, duplicate and unused indexes, with the statements
    to fix them (proposed, never run). Example: prep-ops indexes --json"""
    from . import indexes

    with _connection(ctx) as conn:
        items, too_soon = indexes.advice(conn), indexes.too_soon(conn)
    if as_json:
        echo_text(json.dumps([{**i.__dict__, "columns": list(i.columns)} for i in items], indent=2))
        return
    if too_soon:
        echo_line(f"SKIP unused indexes — {too_soon}")
    if not items:
        echo_line("no index advice: every foreign key is indexed, nothing duplicate" + ("" if too_soon else ", unused")
                   + " or invalid")
        return
    echo_text(text_table([(i.kind, i.label, i.index, i.why) for i in items],  # nothing cut: `why` wraps
                         headers=["advice", "table", "index", "why"], maxcolwidths=[None, None, None, 70]))
    statements = [f"{statement(i.statement)};" for i in items if i.statement]  # a build in progress has none
    if statements:
        echo_text("\n-- statements (not run):\n" + "\n".join(statements))


# --- roles, audit -------------------------------------------------------------------------------
@cli.group("roles")
def roles_group() -> None:
    """The guide's roles as code: readonly, reporter, analyst, app, dba.

    Passwords come from PREP_OPS_<ROLE>_PASSWORD and are never printed.
    """


@roles_group.command("plan")
@click.pass_context
def roles_plan(ctx: click.Context) -> None:
    """Print the statements `roles apply` would run (passwords elided); one the connecting role may not run
    is marked `-- refused: why` (apply would then run none). Example: prep-ops roles plan"""
    from . import roles

    steps = _with_conn(ctx.parent, roles.plan)
    echo_text("\n".join(statement(line) for line in roles.plan_lines(steps)) if steps
              else "-- roles are in place: nothing to do")


@roles_group.command("apply")
@click.option("--confirm", is_flag=True, help="Needed outside the embedded (scratch) server.")
@click.pass_context
def roles_apply(ctx: click.Context, confirm: bool) -> None:
    """Create or update the roles and grants; applying twice changes nothing. Example: prep-ops roles apply"""
    from . import roles

    done = _with_conn(ctx.parent, roles.apply, confirm=confirm)
    echo_line(f"{len(done)} statement(s) run" if done else "roles already in place: nothing changed")


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
        echo_line("no findings")
    else:
        shown = frame[["severity", "check", "subject", "detail", "fix"]].astype(str)  # nothing cut: long text wraps
        echo_text(text_table(shown.values.tolist(), headers=list(shown.columns), maxcolwidths=[None, 30, 30, 50, 50]))
    if security_audit.has_high(found):
        sys.exit(1)


# --- maintain -----------------------------------------------------------------------------------
@cli.command("maintain")
@click.option("--tables", "tables", multiple=True,
              help="Tables to maintain, schema.table outside public (repeatable; default: the whole database).")
@click.option("--reindex", is_flag=True, help="Also REINDEX (CONCURRENTLY where supported) the tables given, "
              "else those with measured index bloat.")
@click.option("--confirm", is_flag=True, help="Needed outside the embedded (scratch) server.")
@click.option("--plan", "dry_run", is_flag=True, help="Print the statements only.")
@click.pass_context
def maintain_cmd(ctx, tables, reindex, confirm, dry_run) -> None:
    """The guide's maintenance: VACUUM (ANALYZE), then REINDEX and ANALYZE (the tables given, else those
    with measured index bloat); with before/after.

    Example: prep-ops maintain --tables archive.old_rentals --reindex
    """
    from . import maintenance

    chosen = list(tables) or None
    with _connection(ctx) as conn:
        if dry_run:
            echo_text("\n".join(f"{statement(s)};" for s in maintenance.plan(conn, chosen, reindex)))
            if reindex and not chosen:
                echo_line(f"-- {maintenance.reindex_choice(conn)[1]}")
            return
        # at a terminal, each statement as it starts and, while it waits on a lock, whom it waits for: a REINDEX
        # CONCURRENTLY waiting for another session's transaction would otherwise show nothing for as long as that runs
        tty = sys.stderr.isatty()
        started = (lambda text, number, total: _say(f"[{number}/{total}] running {statement(text)}")) if tty else None
        with lock_watch.watching(_target(ctx), conn.info.backend_pid, _say) if tty else contextlib.nullcontext():
            result = maintenance.maintain(conn, chosen, reindex, confirm=confirm, on_start=started)
    if result.note:
        echo_line(f"note: {result.note}")
    for row in result.log.itertuples():
        echo_line(f"{row.seconds:7.2f} s  {statement(row.statement)}")
    echo_text("\n" + _before_after_text(maintenance.before_after(result)))
    invalid = maintenance.invalid_check(result)
    if not invalid["passed"]:
        echo_line(f"FAIL {invalid['name']}: {invalid['detail']} — {invalid['fix']}")
        sys.exit(1)


def _say(line: str) -> None:
    echo_line(line, err=True)


def _before_after_text(table) -> str:
    """maintenance.before_after as a terminal reads it: before → after, sizes as pg_size_pretty shows them,
    times to the second (UTC)."""
    from .formatting import size

    def when(value) -> str:
        return "never" if value is None or value != value else f"{value:%Y-%m-%d %H:%M:%S} UTC"

    rows = [[r.table_name, f"{r.dead_tuples_before:,} → {r.dead_tuples_after:,}",
             f"{size(r.table_bytes_before)} → {size(r.table_bytes_after)}",
             f"{size(r.index_bytes_before)} → {size(r.index_bytes_after)}", when(r.last_vacuum), when(r.last_analyze)]
            for r in table.itertuples()]
    return text_table(rows, headers=["table", "dead rows", "table size", "index size", "last vacuum", "last analyze"])


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

    with _connection(ctx) as conn:
        checks = health.run_checks(conn)
    if as_json:
        echo_text(json.dumps({"status": health.worst(checks), "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        # nothing cut: long details wrap; the fix only where there is something to fix (--json has it always)
        rows = [(c.status.upper(), c.name, c.detail + (f" — {c.fix}" if c.status in ("warn", "critical") and c.fix else ""))
                for c in checks]
        echo_text(text_table(rows, headers=["status", "check", "detail"], maxcolwidths=[None, None, 90]))
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

    with _connection(ctx) as conn:
        report = integrity.check(conn, list(tables) or None)
    word = {"ok": "PASS", "corrupt": "FAIL", "incomplete": "WARN", "skipped": "SKIP"}[report.outcome]
    if as_json:
        echo_text(json.dumps({"outcome": report.outcome, "summary": report.summary, "skipped": report.skipped,
                               "data_checksums": report.data_checksums, "checksum_failures": report.checksum_failures,
                               "notes": report.notes,
                               "relations": json.loads(report.relations.to_json(orient="records"))}, indent=2))
    else:
        bad = report.relations[report.relations["status"] != "ok"]
        if len(bad):
            echo_text(text_table(bad[["status", "kind", "relation", "block", "detail"]].values.tolist(),
                                 headers=["status", "kind", "relation", "block", "detail"]) + "\n")
        for note in report.notes:
            echo_line(f"note: {note}")
        echo_line(f"{word} integrity: {report.summary}")
    if report.outcome == "corrupt":
        sys.exit(1)
