"""Every object a dump carries, as the server deparses it: what verify compares beyond tables.

`tables(conn)` lists the user tables and `schema_summary(conn)` their columns, constraints and
indexes (a CHECK constraint whose text changed in the round trip is decided by deparse). `snapshot(conn)` reads, in the caller's transaction (a backup reads it in the dump's snapshot):
schemas and their privileges, extensions with versions, views and materialized views (definition,
and whether populated), partition bounds, privileges on relations, column defaults, identity,
generated and collation of columns, triggers, functions and procedures (definition and privileges),
enum labels, comments, row-level security (enabled, forced) and its policies, domains with their
constraints, unlogged tables, classic inheritance, and the state of every sequence; and since 2026-12-01
(MORE_KINDS, sql/objects/more_kinds.sql and publications.sql) relation options, partition keys, rules, the
state of triggers and rules, column and default privileges, large objects (by their privileges and owner, a
count and a hash of their OIDs), aggregates, operators, casts, composite and range types, extended
statistics, text search configurations, publications, event triggers, sequence ownership and the owner of
each object. Definitions are the server's own deparse (pg_get_viewdef, pg_get_functiondef,
pg_get_triggerdef, pg_get_expr), never normalised text. A backup reads the sequences before its dump and
again after it (MOVED).

`compare(expected, actual, ...)` gives one report row per difference, naming the object. Which
kinds a dump carries depends on its kind (a schema-only dump has no sequence values, a data-only
dump only them), and a definition deparsed by another major version may read differently for the
same object, so across majors those kinds are reported as not compared (SKIP), never passed; so
are the kinds a manifest made before they were recorded (LATER_KINDS) has no entry for.
"""

import contextlib
import re

import psycopg

from ._report import row
from .labels import label
from .sqlfiles import load

_CAST = re.compile(r"::(character varying|timestamp without time zone|timestamp with time zone|"
                   r"time without time zone|double precision|bit varying|\"?[a-z_][a-z0-9_]*\"?)(\[\])?")  # a cast, as without_casts drops it
# kinds whose text is the server's deparse: equal only when the same major deparsed both sides
DEPARSED = ("view", "materialized view", "function", "procedure", "trigger", "column default", "partition bound",
            "column", "schema", "policy", "domain", "partition key", "rule", "statistics", "aggregate", "operator",
            "cast", "type", "text search configuration")
# kinds holding an expression a dump and restore may deparse otherwise on the same major (an IN list on a
# varchar: `= ANY ((ARRAY[...])::text[])` comes back as `= ANY (ARRAY[(...)::text, ...])`): a difference
# that vanishes without casts and parentheses is reported as not compared (SKIP), never as equal
ROUND_TRIPPED = ("policy", "domain")
# recorded by backups since 2026-11-30; a manifest from before has no entry for them, not even an empty one
LATER_KINDS = ("row security", "policy", "domain", "unlogged table", "inheritance")
# recorded by backups since 2026-12-01 (sql/objects/more_kinds.sql), the same way
MORE_KINDS = ("relation options", "partition key", "rule", "trigger state", "column privileges", "default privileges",
              "aggregate", "operator", "cast", "type", "statistics", "text search configuration", "publication",
              "event trigger", "sequence owned by", "owner")
_DEFINITIONS = ("schema", "extension", "view", "materialized view", "partition bound", "privileges", "column default",
                "column", "trigger", "function", "procedure", "enum", "comment") + LATER_KINDS + MORE_KINDS
# what each kind of dump carries: a schema-only dump has no sequence values and leaves materialized
# views unpopulated, nor large objects; a data-only dump sets sequences (its tables come from elsewhere)
CARRIED = {"full": _DEFINITIONS + ("materialized view populated", "sequence", "large object"), "schema": _DEFINITIONS,
           "data": ("sequence",)}


# the search_path definitions are deparsed under, on both sides of a comparison: the server qualifies a name
# only when the path does not find it, so the session's path (a database's or role's setting: `app`, or
# empty) made the source's `REFERENCES items(id)` the restored copy's `REFERENCES app.items(id)`. public,
# as the default path reads: manifests written before this was fixed compare as they did
DEPARSE_SEARCH_PATH = "public"
# and the settings a constant's text depends on: a partition bound, a default or a view on a timestamptz, an
# interval or a float is written in the session's TimeZone, DateStyle, IntervalStyle and float precision, so a
# database's or a role's own setting, or another server's, made a good restore differ from its manifest
# ('2025-01-01 00:00:00+00' against '2024-12-31 19:00:00-05'). A manifest records them ("deparse_settings");
# one written before did not, and is compared under the session's, as it was recorded.
DEPARSE_SETTINGS = {"TimeZone": "UTC", "DateStyle": "ISO, YMD", "IntervalStyle": "postgres", "extra_float_digits": "1",
                    "bytea_output": "hex", "standard_conforming_strings": "on"}


@contextlib.contextmanager
def deparsing(conn: psycopg.Connection, settings: dict[str, str] | None = None):
    """Within the caller's transaction (or one of its own: outside any, a SET LOCAL would last one
    statement), the search_path set to DEPARSE_SEARCH_PATH and `settings` (DEPARSE_SETTINGS when None) made,
    then set back (an error aborts the transaction, which sets them back too)."""
    wanted = {"search_path": DEPARSE_SEARCH_PATH, **(DEPARSE_SETTINGS if settings is None else settings)}
    with conn.transaction():
        before = {name: conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0] for name in wanted}
        for name, value in wanted.items():
            conn.execute("SELECT set_config(%s, %s, true)", (name, value))
        yield conn
        for name, value in before.items():
            conn.execute("SELECT set_config(%s, %s, true)", (name, value))


def tables(conn: psycopg.Connection, *, parents: bool = True) -> list[tuple[str, str]]:
    """(schema, table) of every user table; without `parents`, only those holding rows (plain tables and
    partitions, not their partitioned parents)."""
    return [tuple(r) for r in conn.execute(load("objects", "tables"), {"parents": parents}).fetchall()]


def schema_summary(conn: psycopg.Connection, settings: dict[str, str] | None = None) -> dict:
    """Tables with their columns and types, constraints and indexes by name: what a restore must recreate
    (deparsed under `settings`: see deparsing)."""
    summary: dict[str, dict] = {label(s, t): {"columns": {}, "constraint": {}, "index": {}} for s, t in tables(conn)}
    with deparsing(conn, settings):
        columns = conn.execute(load("objects", "columns")).fetchall()
        constraints = conn.execute(load("objects", "constraints")).fetchall()
    for table, column, data_type, not_null in columns:
        summary.setdefault(table, {"columns": {}, "constraint": {}, "index": {}})["columns"][column] = \
            data_type + (" not null" if not_null else "")
    for table, kind, name, definition in constraints:
        summary.setdefault(table, {"columns": {}, "constraint": {}, "index": {}})[kind][name] = definition
    return summary


def snapshot(conn: psycopg.Connection, *, sequences: bool = True,
             settings: dict[str, str] | None = None) -> dict[str, dict[str, str]]:
    """{kind: {object name: definition}} of every object the dump carries beyond tables and rows, deparsed
    under `settings` (see deparsing); without `sequences`, all but the sequences' state (a backup reads it
    around its dump: see MOVED)."""
    found: dict[str, dict[str, str]] = {kind: {} for kind in LATER_KINDS + MORE_KINDS + ("large object",)
                                        if kind != "publication" or conn.info.server_version >= 150000}
    with deparsing(conn, settings):  # (each kind recorded, even where there is none of it)
        queries = ["objects", "more_kinds"] + (["publications"] if conn.info.server_version >= 150000 else []) + (
            ["sequences"] if sequences else [])
        for query in queries:
            for kind, name, definition in conn.execute(load("objects", query)).fetchall():
                found.setdefault(kind, {})[name] = definition if definition is not None else ""
    return found


def sequences(conn: psycopg.Connection) -> dict[str, str]:
    """{sequence: its state} at this moment: a sequence is not transactional, so its value is read as it
    is now whatever the caller's snapshot (only which sequences there are comes from the snapshot)."""
    with deparsing(conn):
        return {name: definition for _, name, definition in conn.execute(load("objects", "sequences")).fetchall()}


# The manifest's entry (in "objects") for the sequences that moved while pg_dump ran: their state read
# after it ended, where "sequence" holds the state read before it started. pg_dump reads a sequence when
# it gets to it, not in the snapshot (nextval is never rolled back), so on a busy database the dump's value
# lies between the two; a restored value outside them (a sequence reset: the next insert collides) differs.
MOVED = "sequence moved during the dump"
# The manifest's entry (in "objects") for the routines the server made with a type (a range type's
# constructors), recorded, never compared: a manifest from before 2026-12-01 lists them as functions, and
# they are left out of that kind on both sides (their owner and privileges are not the dump's to give).
MADE_WITH_A_TYPE = "routine made with a type"
_SEQUENCE = re.compile(r"^(start (-?\d+) increment (-?\d+) min (-?\d+) max (-?\d+) cycle (\w+)) last_value (.*)$")


def moved_within(before: str, after: str, restored: str) -> bool:
    """Whether a sequence's `restored` state is one it passed through between `before` and `after` (its
    states before and after the dump, as sequences() reads them): the same settings, and a last value
    between the two in the sequence's direction (or past its end and from its start again, for a cycle)."""
    found = [_SEQUENCE.match(state) for state in (before, after, restored)]
    if not all(found) or len({m.group(1) for m in found}) != 1:
        return False
    ascending = int(found[0].group(3)) > 0

    def position(m: re.Match) -> float:  # along the sequence's direction; never called: before its start
        value = m.group(7)
        if not re.fullmatch(r"-?\d+", value):
            return float("-inf")
        return int(value) if ascending else -int(value)

    low, high, got = (position(m) for m in found)
    if low <= high:
        return low <= got <= high
    cycles = found[0].group(6) in ("t", "true")  # as format('%s', boolean) writes it: t
    return cycles and got != float("-inf") and (got >= low or got <= high)  # it cycled during the dump


def _counted(n: int, kind: str) -> str:
    """`n kind(s)`, for a kind whose name is already a plural (privileges) just `n kind`."""
    return f"{n} {kind}" if kind.endswith("s") else f"{n} {kind}(s)"


def without_casts(definition: str | None) -> str | None:
    """A definition without casts, parentheses and spaces. Never a proof of equality ((a+b)*c and a+(b*c)
    normalise alike): a definition equal to another only after this is reported as not compared (an index
    or constraint, other than CHECK, which the restore server decides: see deparse; a domain or policy)."""
    if definition is None:
        return None
    return re.sub(r"[()\s]", "", _CAST.sub("", definition))


# kinds whose definition is a list of grantee:privilege items
_PRIVILEGE_LISTS = ("schema", "privileges", "column privileges", "default privileges")


def _without_maintain(definition: str) -> str:
    """A privilege list without MAINTAIN (PostgreSQL 17 and later: a GRANT ALL made on 15 and restored on 18
    gives it, and a backup of 15 cannot hold it)."""
    return re.sub(r"(?:^|, )[^,]*:MAINTAIN(?: with grant option)?(?=,|$)", "", definition).lstrip(", ")


def _without_grantee(definition: str, grantee: str) -> str:
    """A privilege list (or a routine's definition, its `-- privileges:` line) without `grantee`'s items."""
    head, marker, tail = definition.rpartition("\n-- privileges: ")
    items = [item for item in (tail.split(", ") if tail else []) if not item.startswith(f"{grantee}:")]
    return head + marker + ", ".join(items) if marker else ", ".join(items)


def _not_compared(what: str, kind: str, why: str) -> dict:
    return row(what, kind, "compared", f"not compared: {why}", True, skipped=True)


def _comparable(kind: str, expected: dict, actual: dict, *, backup_kind: str, same_major: bool,
                extension_versions: bool, owners: bool, restorer: str | None,
                maintain: bool = True) -> tuple[dict, dict, list[dict], bool]:
    """One kind's definitions as they can be compared (what the restore could not reproduce taken out of both
    sides), the SKIP rows of what is not compared, and whether to compare the kind at all."""
    want, got, rows = expected.get(kind, {}), actual.get(kind, {}), []
    if kind in LATER_KINDS + MORE_KINDS + ("large object",) and kind not in expected:
        return want, got, [_not_compared(_counted(len(got), kind), kind, "this backup's manifest predates their "
                                         "recording")] if got else [], False
    if kind == "owner" and "publication" not in expected:  # a source before 15: publications not recorded
        want, got = ({n: d for n, d in side.items() if not n.startswith("publication ")} for side in (want, got))
    if kind == "owner" and backup_kind != "full":  # large objects come with the data
        want, got = ({n: d for n, d in side.items() if not n.startswith("large objects of ")} for side in (want, got))
    if kind == "owner" and not owners:
        return want, got, [_not_compared(_counted(len(want), kind), kind, "restored without owners (the restoring "
                                         "role is no superuser: every object is its own)")] if want else [], False
    if kind == "materialized view populated" and "true" in want.values():
        rows.append(_not_compared(_counted(list(want.values()).count("true"), "materialized view"),
                                  "materialized view content", "a restore refreshes a materialized view from its "
                                  "tables, so its rows are what they give now, which a view refreshed before the "
                                  "backup may not have held"))
    if kind == "large object" and not owners and (want or got):  # what was granted to the restorer: an owner's now
        want, got = ({"large objects": _counted(sum(int(d.split()[0]) for d in side.values()), kind)} if side else {}
                     for side in (want, got))
        rows.append(_not_compared("large objects' privileges", kind, "restored without owners (the restoring role "
                                  "is no superuser): which exist is"))
    if kind == "large object" and want:
        rows.append(_not_compared(_counted(sum(int(d.split()[0]) for d in want.values()), kind), "large object content",
                                  "which large objects exist and who may read them are; their content is not"))
    if kind in ("function", "procedure"):  # a range's constructors, which older manifests list as functions
        made = set(expected.get(MADE_WITH_A_TYPE, {})) | set(actual.get(MADE_WITH_A_TYPE, {}))
        want, got = ({n: d for n, d in side.items() if n not in made} for side in (want, got))
    if not owners and restorer and kind in _PRIVILEGE_LISTS + ("function", "procedure"):
        want, got = ({n: _without_grantee(d, restorer) for n, d in side.items()} for side in (want, got))
    if not maintain and kind in _PRIVILEGE_LISTS:  # MAINTAIN came in 17: GRANT ALL on 15 restored on 18 has it
        want, got = ({n: _without_maintain(d) for n, d in side.items()} for side in (want, got))
    if (not same_major or not extension_versions) and kind == "extension":  # each major its own default version
        want, got = {n: "present" for n in want}, {n: "present" for n in got}
    if not same_major and kind in DEPARSED:
        return want, got, rows + ([_not_compared(_counted(len(want), kind), kind, "another major version deparses "
                                                 "definitions differently; verify with --same-server")] if want else []), False
    return want, got, rows, True


def compare(expected: dict, actual: dict, backup_kind: str, *, same_major: bool,
            extension_versions: bool = True, owners: bool = True, restorer: str | None = None,
            maintain: bool = True) -> list[dict]:
    """Report rows (object, check, expected, actual, passed, skipped) for the kinds a `backup_kind`
    dump carries: one row per kind compared (passed when every object matches), one per object that
    is missing or differs, and one SKIP row per deparsed kind when the majors differ. Extensions by
    presence only across majors (each installs its own default version) or without `extension_versions`;
    `owners`: whether the restore gave objects their owners (else every object is the restoring role's, and
    owners are not compared, nor what was granted to `restorer`, the role that restored them: it owns them
    all, and its privileges are an owner's). Without `maintain` (one side older than 17), MAINTAIN is left out
    of privilege lists. Large objects are compared by which exist and their privileges,
    a materialized view by whether it is populated: their content is a SKIP row, never a pass."""
    rows = []
    for kind in CARRIED[backup_kind]:
        want, got, skipped, compared = _comparable(kind, expected, actual, backup_kind=backup_kind,
                                                   same_major=same_major, extension_versions=extension_versions,
                                                   owners=owners, restorer=restorer, maintain=maintain)
        rows += skipped
        if not compared:
            continue
        differing = unsure = moved = 0
        for name in sorted(set(want) | set(got)):  # one the restore has and the backup had not is a difference too
            a, b = want.get(name), got.get(name)
            if b == a:
                continue
            after = expected.get(MOVED, {}).get(name) if kind == "sequence" else None
            if a and b and after and moved_within(a, after, b):
                moved += 1
                continue
            if kind in ROUND_TRIPPED and a and b and without_casts(a) == without_casts(b):
                unsure += 1
                rows.append(row(f"{kind} {name}", kind, a, "not compared: deparsed differently after the round trip, "
                                "equal only without casts and parentheses", True, skipped=True))
                continue
            differing += 1
            if kind == "extension" and a and b:  # no restore of this backup can give the source's version
                b += (f" (pg_dump records no version: a restore gets the server's default; ALTER EXTENSION "
                      f"{name} UPDATE on the source brings it there, and its backups verify)")
            rows.append(row(f"{kind} {name}", kind, a or "absent", b or "absent", False))
        if want or got:
            rows.append(row(_counted(len(want), kind), kind, f"{len(want)} as in the backup",
                            f"{len(want) - differing - unsure} as in the backup"
                            + (f" ({moved} moved while it ran, within what it read before and after)" if moved else "")
                            + (f", {unsure} not compared" if unsure else ""), differing == 0))
    return rows

