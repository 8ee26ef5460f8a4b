"""Logging in as a role and proving what it can do: each operation tried on a table and rolled back."""

import secrets

import pandas as pd
import psycopg
from psycopg import sql

from . import lock_watch
from .catalog import columns
from .db import Target, connect
from .errors import LockBusy, ParameterError, first_line
from .scram import Secret, reveal

PROBE_LOCK_WAIT = "2s"  # how long an operation tried waits for a lock another session holds on the table
_PROBE_TIMEOUTS = ("SELECT set_config('lock_timeout', %s, true), set_config('statement_timeout', '10s', true)",
                   (PROBE_LOCK_WAIT,))


def login(target: Target, role: str, password: "str | Secret | None" = None) -> Target:
    """The same server and database as `target`, logging in as `role` (with `password` where the server asks)."""
    return target.with_user(role, reveal(password) if password is not None else None)


def login_refused(login_target: Target, role: str, hint: str = "") -> str:
    """Why the server refuses a session as `role` through `login_target`, in one line ("" when it lets it
    in): a proof that needs that login cannot run, and says so (SKIP) rather than stop the runbook with a
    traceback. `hint` (how to give its password) is added to the reason."""
    try:
        with connect(login_target):
            return ""
    except Exception as exc:  # TargetError for a refused login; whatever else stops it is the reason given
        return f"{role} cannot log in: {first_line(exc)}" + (f" ({hint})" if hint else "")


def try_access(login_target: Target, table: str = "users", *, column: str | None = None,
               schema: str = "public") -> pd.DataFrame:
    """What the logged-in role may do to `table`: each operation is tried and rolled back.

    Operations: SELECT (of `column`, default the first), INSERT, UPDATE, DELETE, TRUNCATE, CREATE TABLE
    in the schema and ALTER TABLE. `allowed` means the privilege check passed; an operation that
    passes it and then fails on a constraint is allowed (the detail says why it stopped). Nothing
    is kept: every attempt runs in a savepoint that is rolled back, and so is the transaction.

    Behind another session's ACCESS EXCLUSIVE lock on the table (VACUUM FULL, LOCK TABLE, ALTER TABLE) a
    statement waits for the lock before its privileges are checked: a lock timeout says nothing of what the
    role may do (it was taken for "permitted, then stopped", a denied INSERT shown allowed), so it raises
    errors.LockBusy naming the table and the session holding it (see `tried`).
    """
    with connect(login_target) as conn:
        conn.execute(*_PROBE_TIMEOUTS)
        found = columns(conn, table, schema)
        if not found:
            raise ParameterError(f"no table {schema}.{table}")
        col, tab = sql.Identifier(column or found[0]), sql.Identifier(schema, table)
        probe = sql.Identifier(schema, f"prep_ops_probe_{secrets.token_hex(4)}")
        attempts = {
            "SELECT": sql.SQL("SELECT {} FROM {} LIMIT 1").format(col, tab),
            "INSERT": sql.SQL("INSERT INTO {} DEFAULT VALUES").format(tab),
            "UPDATE": sql.SQL("UPDATE {} SET {} = {} WHERE false").format(tab, col, col),
            "DELETE": sql.SQL("DELETE FROM {} WHERE false").format(tab),
            "TRUNCATE": sql.SQL("TRUNCATE {}").format(tab),
            "CREATE TABLE": sql.SQL("CREATE TABLE {} (id integer)").format(probe),
            "ALTER TABLE": sql.SQL("ALTER TABLE {} ADD COLUMN prep_ops_probe integer").format(tab),
        }
        rows = []
        for operation, statement in attempts.items():
            try:
                with conn.transaction():
                    conn.execute(statement)
                    raise psycopg.Rollback()
            except psycopg.errors.InsufficientPrivilege as exc:
                rows.append((operation, False, first_line(exc)))
            except psycopg.errors.LockNotAvailable:  # neither allowed nor denied: not tried
                busy = LockBusy("", what=f"what {conn.info.user} may do to {schema}.{table} ({operation})")
                raise LockBusy(lock_watch.not_read(conn, busy, PROBE_LOCK_WAIT), what=busy.what) from None
            except psycopg.Error as exc:
                rows.append((operation, True, f"permitted, then stopped: {first_line(exc)}"))
            else:
                rows.append((operation, True, "permitted (rolled back)"))
        conn.rollback()
    return pd.DataFrame(rows, columns=["operation", "allowed", "detail"])


def tried(login_target: Target, table: str = "users", *, column: str | None = None, schema: str = "public",
          unless: str = "") -> tuple[pd.DataFrame | None, str]:
    """(try_access's attempts, "") or, not tried, (None, why): `unless` when given (a reason not to try),
    or the table locked by another session (errors.LockBusy's line): a runbook's SKIP, never a verdict."""
    if unless:
        return None, unless
    try:
        return try_access(login_target, table, column=column, schema=schema), ""
    except LockBusy as busy:
        return None, str(busy)


def access_summary(attempts: pd.DataFrame) -> str:
    """What `try_access` found, in one line: the operations allowed and those denied."""
    allowed = list(attempts.loc[attempts["allowed"], "operation"])
    denied = list(attempts.loc[~attempts["allowed"], "operation"])
    return "; ".join(part for part in (f"allowed {', '.join(allowed)}" if allowed else "",
                                       f"denied {', '.join(denied)}" if denied else "") if part)
