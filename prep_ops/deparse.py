"""CHECK constraints as one server deparses them: how a verification decides a constraint whose text
changed in the round trip.

PostgreSQL writes a CHECK constraint back (pg_get_constraintdef) from its parsed tree, and reading that
text again can give another tree: `CHECK (role IN ('student', 'teacher'))` on a varchar column is first
`((role)::text = ANY ((ARRAY['student'::character varying, ...])::text[]))`, and after a dump and
restore `((role)::text = ANY (ARRAY[('student'::character varying)::text, ...]))`, which stays as it is
from then on. The same meaning in two texts, and another major version may write either differently
again. So the backup's definition is put on a throwaway copy of its table (a temporary table of the
same name, so that a whole-row reference `t.*` reads as before) in the restored database and
read back, until the text no longer changes (a fixed point), and so is the restored one: both are then
written by the same server, from trees it parsed itself, and are equal only when it deparses them
alike. Nothing is normalised by hand: another value in an IN list, another operator or other
parentheses that change the grouping still differ.

The backup's definition is text from the manifest, not trusted as SQL: it is only ever the tail of one
`ALTER TABLE <probe> ADD CONSTRAINT <probe> …` statement, run as the table's owner (the server plans
the constraint, which runs an IMMUTABLE function named on constants: the owner's, or the dump's), on a
connection whose session user is no superuser where the restore had a role of its own (comparison's
`probe_as`: SET ROLE is no boundary, a function may RESET ROLE to the session user). It is sent as a
prepared statement (which the server refuses to hold two commands), on a temporary table with no rows,
in a savepoint that is always rolled back, with standard_conforming_strings on (the server reads quotes
as `is_check` does) and a 5 s statement and lock timeout (what the server folds at ADD time stays
cheap); what does not parse there, or makes anything but one CHECK constraint, is reported as differing.
"""

import re
from dataclasses import dataclass

import psycopg
from psycopg import sql

from . import objects
from .errors import first_line
from .sqlfiles import load

PROBE = "prep_ops_probe"  # the constraint put on the temporary copy of the table (named as the table)
ROUNDS = 5  # reparse at most this often: the school's constraints settle after one


@dataclass(frozen=True)
class Deparsed:
    """A CHECK constraint's text once the server has reparsed it to a fixed point; or why it has none."""

    text: str | None = None
    error: str = ""  # the definition does not give one CHECK constraint on this server
    undecided: str = ""  # why neither equal nor different: still changing after ROUNDS, no probe table


@dataclass(frozen=True)
class Decision:
    """Whether a CHECK constraint's definition in the backup and in the restored copy are the same, as
    the restored copy's server deparses both."""

    name: str
    source: Deparsed
    restored: Deparsed

    @property
    def decided(self) -> bool:
        return not (self.source.undecided or self.restored.undecided)

    @property
    def equal(self) -> bool:
        return (self.decided and not self.source.error and not self.restored.error
                and self.source.text == self.restored.text)

    @property
    def why(self) -> str:
        """What the restore server made of the backup's definition, for a report row."""
        if not self.decided:
            return f"not compared: {self.source.undecided or self.restored.undecided}"
        if self.source.error:
            return f"the backup's definition does not give a CHECK constraint on the restore server: {self.source.error}"
        if self.restored.error:
            return f"the restored definition does not give a CHECK constraint again: {self.restored.error}"
        return f"{self.restored.text} (the backup's, as the restore server deparses it: {self.source.text})"


_SUFFIXES = re.compile(r"( NO INHERIT| NOT VALID| NOT ENFORCED)*")  # what pg_get_constraintdef may add


def is_check(definition: str | None) -> bool:
    """Whether a text is one CHECK constraint's definition as pg_get_constraintdef writes it: `CHECK (…)`
    and the words it may add, nothing after the parenthesis (no second subcommand of ALTER TABLE).
    Only ever rejects: what passes is still parsed by the server. Quoted text ('…', "…") is skipped;
    comments, escape strings and dollar quotes, which pg_get_constraintdef never writes, are refused."""
    if not definition or not definition.startswith("CHECK ("):
        return False
    depth, i, quote = 0, len("CHECK "), ""
    while i < len(definition):
        c = definition[i]
        if quote:
            if c == quote:
                quote = "" if definition[i + 1:i + 2] != quote else quote
                i += 1 if quote == "" else 2
                continue
        elif c in "'\"":
            if c == "'" and definition[i - 1] in "eE&":
                return False
            quote = c
        elif c == "$" or definition.startswith(("--", "/*"), i):
            return False
        elif c in "()":
            depth += 1 if c == "(" else -1
            if depth == 0:
                return not quote and _SUFFIXES.fullmatch(definition, i + 1) is not None
        i += 1
    return False


def decide(conn: psycopg.Connection, table: str, pairs: dict[str, tuple[str, str]]) -> dict[str, Decision]:
    """For each CHECK constraint of `table` (`schema.table`, as the report names it) by name, its
    (backup, restored) definitions reparsed to a fixed point on the connection's server (see the
    module's docstring). Changes nothing: everything happens in a transaction that is rolled back."""
    with conn.transaction(force_rollback=True):
        # the text is read as is_check read it (a backslash is a character), and an expression the server
        # folds at ADD time (an immutable call on constants) cannot take more than a few seconds or wait on a lock
        # and under the search_path both texts were deparsed under (a name it finds is unqualified in them)
        conn.execute("SELECT set_config('standard_conforming_strings', 'on', true), "
                     "set_config('statement_timeout', '5s', true), set_config('lock_timeout', '5s', true), "
                     "set_config('search_path', %s, true)", (objects.DEPARSE_SEARCH_PATH,))
        found = conn.execute(load("deparse", "table_named"), {"table": table}).fetchall()
        try:
            if len(found) != 1:
                raise LookupError(f"{table} is not one table in the restored database")
            schema, name, owner = found[0]
            _as_owner(conn, owner)
            with conn.transaction():
                # named as the table: a definition that names its whole row (`CHECK ((t.* IS NOT NULL))`)
                # reads that name, and the server deparses it back as the probe's name
                conn.execute(sql.SQL("CREATE TEMPORARY TABLE {} (LIKE {})").format(sql.Identifier(name),
                                                                                      sql.Identifier(schema, name)))
                probe = conn.execute(load("deparse", "temporary_table"), {"name": name}).fetchone()[0]
        except (LookupError, psycopg.Error) as exc:
            why = Deparsed(undecided=f"no copy of its table to deparse it on: {first_line(exc)}")
            return {name: Decision(name, why, why) for name in pairs}
        return {con: Decision(con, _fixed_point(conn, probe, name, source), _fixed_point(conn, probe, name, restored))
                for con, (source, restored) in pairs.items()}


def _as_owner(conn: psycopg.Connection, owner: str) -> None:
    """SET LOCAL ROLE the table's owner for the probe: putting a definition on it plans it, and planning
    runs an IMMUTABLE function on constants. The definition (the backup's) and the functions it can name
    (the restored dump's) are the dump's author's: as the owner they run with the objects' own rights, but
    a function may RESET ROLE to the session user: a backup not trusted is probed in a session of the
    restore's own role (comparison.compare's `probe_as`). LookupError where this role may not act as it."""
    if owner == conn.info.user:
        return
    try:
        with conn.transaction():
            conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(owner)))
    except psycopg.errors.InsufficientPrivilege:
        raise LookupError(f"{conn.info.user} may not act as its owner {owner}, and as itself the definition "
                          "could run the owner's functions with its rights") from None


def _fixed_point(conn: psycopg.Connection, probe: int, name: str, definition: str) -> Deparsed:
    text = definition
    for _ in range(ROUNDS):
        again = _reparsed(conn, probe, name, text)
        if again.error or again.text == text:
            return again
        text = again.text
    return Deparsed(text, undecided=f"no fixed point after {ROUNDS} deparses on the restore server")


def _reparsed(conn: psycopg.Connection, probe: int, name: str, definition: str) -> Deparsed:
    """`definition` put on the probe table (oid `probe`, pg_temp.`name`) and read back as the server deparses it."""
    if not is_check(definition):
        return Deparsed(error="not a CHECK constraint")
    add = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ").format(sql.Identifier("pg_temp", name), sql.Identifier(PROBE))
    try:
        with conn.transaction(force_rollback=True):  # a savepoint: whatever the text did is undone
            # the definition is the statement's tail (see the docstring); prepared: one command only
            # binary: the extended protocol whatever the connection's prepare_threshold (one command only)
            conn.execute(add + sql.SQL(definition), prepare=True, binary=True)
            texts = [r[0] for r in conn.execute(load("deparse", "probe_checks"), {"probe": probe})]
    except psycopg.Error as exc:
        return Deparsed(error=first_line(exc))
    if len(texts) != 1:
        return Deparsed(error=f"it made {len(texts)} CHECK constraints")
    return Deparsed(texts[0])
