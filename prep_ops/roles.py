"""Roles as code: the guide's `readonly` and `reporter`, and the school's `analyst`, `app` and `dba`.

`plan()` compares the catalogs with the wanted state and returns the statements that close the
gap; `apply()` runs them in one transaction under an advisory lock, so a second apply finds nothing
to do. Passwords come from a parameter or $PREP_OPS_<ROLE>_PASSWORD; they are turned into a
SCRAM-SHA-256 verifier here (as libpq's PQencryptPasswordConn does), so the clear text never reaches
the server or its log, and they show as '***' in plans, reprs and errors.

Roles are cluster-wide, grants per database: a RoleSet names the five roles (`RoleSet.with_prefix`
gives a private set, e.g. per test), and the grants cover this database's `public` schema.
"""

import base64
import hashlib
import hmac
import os
import re
import secrets
import stringprep
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd
import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from sqlalchemy.engine import make_url

from .db import Target, connect, server_version
from .errors import ConfirmationRequired, ParameterError, PrepOpsError
from .sqlfiles import load

KINDS = ("readonly", "reporter", "analyst", "app", "dba")
LOGIN_KINDS = ("reporter", "analyst", "app", "dba")
SCHEMA = "public"
SCRAM_ITERATIONS = 4096  # PostgreSQL's default scram_iterations
_LOCK = 0x726F6C65  # advisory lock key of roles.apply ("role")

# The wanted state, per kind of role; a kind not named in a map wants nothing there (extra grants are revoked).
_MEMBER_OF = {"reporter": ("readonly",), "dba": ("app", "pg_monitor")}
_DATABASE = {"readonly": ("CONNECT",), "analyst": ("CONNECT",), "app": ("CONNECT",), "dba": ("CONNECT",)}
_SCHEMA = {"readonly": ("USAGE",), "app": ("USAGE",), "dba": ("USAGE", "CREATE")}
_TABLE = {"readonly": ("SELECT",), "app": ("SELECT", "INSERT", "UPDATE", "DELETE"), "dba": "all"}
_SEQUENCE = {"app": ("USAGE", "SELECT"), "dba": ("USAGE", "SELECT", "UPDATE")}
# The migration bookkeeping (migrate.py's tables): the application reads it but must not rewrite history.
_BOOKKEEPING_TABLES = ("schema_version", "prep_ops_migrations")
_BOOKKEEPING = {"app": ("SELECT",)}
_PRIVILEGES = {  # in the order statements name them
    "database": ("CONNECT", "CREATE", "TEMPORARY"),
    "schema": ("USAGE", "CREATE"),
    "table": ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "MAINTAIN"),
    "sequence": ("USAGE", "SELECT", "UPDATE"),
}
_ATTRIBUTES = {"superuser": "SUPERUSER", "createdb": "CREATEDB", "createrole": "CREATEROLE", "inherit": "INHERIT",
               "login": "LOGIN", "replication": "REPLICATION", "bypassrls": "BYPASSRLS"}


class RoleError(PrepOpsError):
    """Creating, granting to or dropping a role failed; the message never holds a password."""


class Secret:
    """A password that shows as *** wherever it is printed, logged or displayed; `reveal()` gives the text."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        if not isinstance(value, str) or not value or "\x00" in value:
            raise ParameterError("a password must be a non-empty string without NUL characters")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"


@dataclass(frozen=True)
class RoleSet:
    """The names of the five roles; the defaults are the guide's."""

    readonly: str = "readonly"
    reporter: str = "reporter"
    analyst: str = "analyst"
    app: str = "app"
    dba: str = "dba"

    def __post_init__(self):
        for kind, name in self.names.items():
            if not isinstance(name, str) or not name or "\x00" in name or len(name.encode()) > 63:
                raise ParameterError(f"role name for {kind} must be 1 to 63 bytes without NUL, not {name!r}")
            if name.startswith("pg_"):
                raise ParameterError(f"role names starting with pg_ are reserved by PostgreSQL: {name!r}")
        if len(set(self.names.values())) != len(KINDS):
            raise ParameterError(f"the five roles need five different names, not {list(self.names.values())}")

    @classmethod
    def with_prefix(cls, prefix: str) -> "RoleSet":
        """The guide's names with `prefix` in front, e.g. "staging_" gives staging_readonly, ..."""
        return cls(**{kind: f"{prefix}{kind}" for kind in KINDS})

    @property
    def names(self) -> dict[str, str]:
        """Kind → role name."""
        return {kind: getattr(self, kind) for kind in KINDS}


@dataclass(frozen=True)
class Step:
    """One statement of a plan: `text` as shown (passwords elided), `statement` as run."""

    text: str
    statement: sql.Composable = field(repr=False, compare=False)

    def __str__(self) -> str:
        return self.text


def password_variable(kind: str) -> str:
    """The environment variable holding the password of a kind of role, e.g. PREP_OPS_REPORTER_PASSWORD."""
    return f"PREP_OPS_{kind.upper()}_PASSWORD"


def resolve_passwords(given: Mapping[str, "str | Secret"] | None = None, *, generate: bool = False) -> dict[str, Secret]:
    """Kind → password of each login role: from `given`, else $PREP_OPS_<ROLE>_PASSWORD, else (with
    `generate`) a random one; kinds with none are left out (an existing role keeps its password)."""
    given = dict(given or {})
    unknown = set(given) - set(LOGIN_KINDS)
    if unknown:
        raise ParameterError(f"passwords are given per kind of login role ({', '.join(LOGIN_KINDS)}), not {sorted(unknown)}")
    found = {}
    for kind in LOGIN_KINDS:
        value = given.get(kind) or os.environ.get(password_variable(kind)) or None
        if value is None and generate:
            value = secrets.token_urlsafe(24)
        if value is not None:
            found[kind] = value if isinstance(value, Secret) else Secret(value)
    return found


# --- SCRAM-SHA-256 verifiers (RFC 5802 / RFC 7677), as PostgreSQL stores them -------------------
def _saslprep(password: str) -> bytes:
    """The password bytes PostgreSQL hashes: SASLprep (RFC 4013) where it applies, else the raw text."""
    raw = password.encode()
    if password.isascii():  # PostgreSQL leaves pure ASCII untouched
        return raw
    mapped = "".join(" " if stringprep.in_table_c12(c) else c for c in password if not stringprep.in_table_b1(c))
    prepared = unicodedata.normalize("NFKC", mapped)
    prohibited = (stringprep.in_table_c12, stringprep.in_table_c21, stringprep.in_table_c22, stringprep.in_table_c3,
                  stringprep.in_table_c4, stringprep.in_table_c5, stringprep.in_table_c6, stringprep.in_table_c7,
                  stringprep.in_table_c8, stringprep.in_table_c9, stringprep.in_table_a1)
    if not prepared or any(test(c) for c in prepared for test in prohibited):
        return raw  # as libpq and the server do: a password SASLprep refuses is used as it is
    if any(stringprep.in_table_d1(c) for c in prepared) and (
            any(stringprep.in_table_d2(c) for c in prepared)
            or not (stringprep.in_table_d1(prepared[0]) and stringprep.in_table_d1(prepared[-1]))):
        return raw
    return prepared.encode()


def _scram_keys(password: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    salted = hashlib.pbkdf2_hmac("sha256", _saslprep(password), salt, iterations)
    stored_key = hashlib.sha256(hmac.new(salted, b"Client Key", "sha256").digest()).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    return stored_key, server_key


def scram_verifier(password: "str | Secret", *, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier of `password` in PostgreSQL's format (what pg_authid stores)."""
    salt = os.urandom(16) if salt is None else salt
    stored_key, server_key = _scram_keys(_reveal(password), salt, iterations)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


_VERIFIER = re.compile(r"^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$")


def verifier_matches(password: "str | Secret", verifier: str | None) -> bool:
    """True when `verifier` (from pg_authid) is a SCRAM-SHA-256 verifier of `password`."""
    match = _VERIFIER.match(verifier or "")
    if not match:
        return False
    iterations, salt, stored, server = match.groups()
    stored_key, server_key = _scram_keys(_reveal(password), base64.b64decode(salt), int(iterations))
    return hmac.compare_digest(stored_key, base64.b64decode(stored)) and hmac.compare_digest(server_key, base64.b64decode(server))


def _reveal(password: "str | Secret") -> str:
    return password.reveal() if isinstance(password, Secret) else password


# --- plan and apply ---------------------------------------------------------------------------
def _masked(text: str, hidden: list[str]) -> str:
    for value in sorted(filter(None, hidden), key=len, reverse=True):
        text = text.replace(value, "***")
    return text


def _error_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _wanted(table: dict, kind: str, version: int, object_kind: str) -> tuple[str, ...]:
    wanted = table.get(kind, ())
    if wanted == "all":
        wanted = _PRIVILEGES[object_kind]
    return tuple(p for p in wanted if p != "MAINTAIN" or version >= 17)


def _privileges(names) -> sql.Composable:
    return sql.SQL(", ").join(sql.SQL(p) for p in names)  # keywords from _PRIVILEGES only


def _ordered(object_kind: str, privileges: set[str]) -> list[str]:
    return [p for p in _PRIVILEGES[object_kind] if p in privileges]


class _Planner:
    """Reads the catalogs once and writes the statements that bring them to the wanted state."""

    def __init__(self, conn: psycopg.Connection, roles: RoleSet, passwords: dict[str, Secret], owner: str | None):
        self.conn, self.roles, self.passwords = conn, roles, passwords
        self.version = server_version(conn)
        self.names = list(roles.names.values())
        self.owner = owner or conn.execute("SELECT current_user").fetchone()[0]
        self.hidden = [p.reveal() for p in passwords.values()]
        self.steps: list[Step] = []

    def rows(self, name: str, **params) -> list[dict]:
        with self.conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(load("roles", name), {"names": self.names, "schema": SCHEMA, **params}).fetchall()

    def add(self, statement: sql.Composable, shown: sql.Composable | None = None) -> None:
        self.steps.append(Step((shown or statement).as_string(self.conn), statement))

    def plan(self) -> list[Step]:
        if not self.conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (self.owner,)).fetchone():
            raise ParameterError(f"owner role {self.owner!r} does not exist")
        self.plan_roles()
        self.plan_memberships()
        grants = self.rows("objects")
        for object_kind, wanted in (("database", _DATABASE), ("schema", _SCHEMA), ("table", _TABLE), ("sequence", _SEQUENCE)):
            self.plan_grants(grants, object_kind, wanted)
        defaults = self.rows("default_privileges", owner=self.owner)
        for object_kind, wanted in (("table", _TABLE), ("sequence", _SEQUENCE)):
            self.plan_defaults(defaults, object_kind, wanted)
        return self.steps

    def verifiers(self) -> dict[str, str | None] | None:
        """Stored password hashes, or None when this session may not read pg_authid."""
        if not self.conn.execute("SELECT has_table_privilege('pg_catalog.pg_authid', 'SELECT')").fetchone()[0]:
            return None
        return {r["name"]: r["verifier"] for r in self.rows("verifiers")}

    def plan_roles(self) -> None:
        existing = {r["name"]: r for r in self.rows("roles")}
        stored = self.verifiers()
        for kind, name in self.roles.names.items():
            wanted = {attr: False for attr in _ATTRIBUTES} | {"inherit": True, "login": kind in LOGIN_KINDS}
            password = self.passwords.get(kind) if kind in LOGIN_KINDS else None
            role = sql.Identifier(name)
            if name not in existing:
                options = sql.SQL(" ").join(sql.SQL(_ATTRIBUTES[a] if v else "NO" + _ATTRIBUTES[a]) for a, v in wanted.items())
                statement = sql.SQL("CREATE ROLE {} WITH {}").format(role, options)
                if password is None:
                    self.add(statement)
                else:
                    verifier = scram_verifier(password)
                    self.hidden.append(verifier)
                    self.add(statement + sql.SQL(" PASSWORD {}").format(sql.Literal(verifier)),
                             statement + sql.SQL(" PASSWORD '***'"))
                continue
            differ = [a for a, v in wanted.items() if existing[name][a] != v]
            if differ:
                options = sql.SQL(" ").join(sql.SQL(_ATTRIBUTES[a] if wanted[a] else "NO" + _ATTRIBUTES[a]) for a in differ)
                self.add(sql.SQL("ALTER ROLE {} WITH {}").format(role, options))
            if password is not None and not (stored is not None and verifier_matches(password, stored.get(name))):
                verifier = scram_verifier(password)
                self.hidden.append(verifier)
                self.add(sql.SQL("ALTER ROLE {} PASSWORD {}").format(role, sql.Literal(verifier)),
                         sql.SQL("ALTER ROLE {} PASSWORD '***'").format(role))

    def plan_memberships(self) -> None:
        held = {(r["member"], r["role"]) for r in self.rows("memberships")}
        for kind, groups in _MEMBER_OF.items():
            member = self.roles.names[kind]
            for group in groups:
                group_name = self.roles.names.get(group, group)
                if (member, group_name) not in held:
                    self.add(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group_name), sql.Identifier(member)))

    def plan_grants(self, grants: list[dict], object_kind: str, wanted_map: dict) -> None:
        objects = {g["name"] for g in grants if g["kind"] == object_kind}
        if not objects:
            return
        held = {}
        for g in grants:
            if g["kind"] == object_kind and g["role"] is not None:
                held.setdefault((g["name"], g["role"]), set()).add(g["privilege"])
        known = set(_PRIVILEGES[object_kind])
        for kind, name in self.roles.names.items():
            wanted = set(_wanted(wanted_map, kind, self.version, object_kind))
            bookkeeping = {obj: wanted & set(_BOOKKEEPING[kind]) for obj in objects
                           if object_kind == "table" and obj in _BOOKKEEPING_TABLES and kind in _BOOKKEEPING}
            missing, extra = set(), set()
            for obj in objects - set(bookkeeping):
                have = held.get((obj, name), set())
                missing |= wanted - have
                extra |= (have - wanted) & known
            on = {"database": sql.SQL("DATABASE {}").format(sql.Identifier(next(iter(objects)))),
                  "schema": sql.SQL("SCHEMA {}").format(sql.Identifier(SCHEMA)),
                  "table": sql.SQL("ALL TABLES IN SCHEMA {}").format(sql.Identifier(SCHEMA)),
                  "sequence": sql.SQL("ALL SEQUENCES IN SCHEMA {}").format(sql.Identifier(SCHEMA))}[object_kind]
            if missing:
                self.add(sql.SQL("GRANT {} ON {} TO {}").format(
                    _privileges(_ordered(object_kind, missing)), on, sql.Identifier(name)))
            if extra:
                self.add(sql.SQL("REVOKE {} ON {} FROM {}").format(
                    _privileges(_ordered(object_kind, extra)), on, sql.Identifier(name)))
            # the migration bookkeeping: what it holds once the statements above ran, brought to its own wanted set
            for obj, wanted_here in sorted(bookkeeping.items()):
                after = (held.get((obj, name), set()) | missing) - extra
                table = sql.Identifier(SCHEMA, obj)
                if wanted_here - after:
                    self.add(sql.SQL("GRANT {} ON TABLE {} TO {}").format(
                        _privileges(_ordered(object_kind, wanted_here - after)), table, sql.Identifier(name)))
                if (after - wanted_here) & known:
                    self.add(sql.SQL("REVOKE {} ON TABLE {} FROM {}").format(
                        _privileges(_ordered(object_kind, (after - wanted_here) & known)), table, sql.Identifier(name)))

    def plan_defaults(self, defaults: list[dict], object_kind: str, wanted_map: dict) -> None:
        for kind, name in self.roles.names.items():
            wanted = set(_wanted(wanted_map, kind, self.version, object_kind))
            have = {d["privilege"] for d in defaults if d["kind"] == object_kind and d["role"] == name}
            prefix = sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} ").format(
                sql.Identifier(self.owner), sql.Identifier(SCHEMA))
            objects = sql.SQL("TABLES" if object_kind == "table" else "SEQUENCES")
            if wanted - have:
                self.add(prefix + sql.SQL("GRANT {} ON {} TO {}").format(
                    _privileges(_ordered(object_kind, wanted - have)), objects, sql.Identifier(name)))
            extra = (have - wanted) & set(_PRIVILEGES[object_kind])
            if extra:
                self.add(prefix + sql.SQL("REVOKE {} ON {} FROM {}").format(
                    _privileges(_ordered(object_kind, extra)), objects, sql.Identifier(name)))


def plan(target: Target, roles: RoleSet = RoleSet(), passwords: Mapping[str, "str | Secret"] | None = None, *,
         owner: str | None = None) -> list[Step]:
    """The statements that bring the roles and their grants to the wanted state; empty when they are there.

    Passwords: `passwords` (kind → password), else $PREP_OPS_<ROLE>_PASSWORD; a login role without one
    keeps its current password. Default privileges are set for tables `owner` creates (default: the
    connecting role, the one that runs migrations).
    """
    found = resolve_passwords(passwords)
    hidden = [p.reveal() for p in found.values()]
    with connect(target) as conn:
        try:
            return _Planner(conn, roles, found, owner).plan()
        except psycopg.Error as exc:
            raise RoleError(_masked(f"planning roles failed: {_error_line(exc)}", hidden)) from None


def apply(target: Target, roles: RoleSet = RoleSet(), passwords: Mapping[str, "str | Secret"] | None = None, *,
          owner: str | None = None, confirm: bool = False) -> list[Step]:
    """Run the plan in one transaction (all or nothing); returns the steps run. Outside a scratch
    database, needs `confirm`."""
    if not (target.scratch or confirm):
        raise ConfirmationRequired(f"creating roles and grants on {target.masked_url} needs confirm=True")
    found = resolve_passwords(passwords)
    hidden = [p.reveal() for p in found.values()]
    step = None
    with connect(target) as conn:
        try:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            planner = _Planner(conn, roles, found, owner)
            steps = planner.plan()
            hidden = planner.hidden
            for step in steps:
                conn.execute(step.statement)
            conn.commit()
        except psycopg.Error as exc:
            conn.rollback()
            where = f" at `{step.text}`" if step else ""
            raise RoleError(_masked(f"applying roles failed{where}, nothing changed: {_error_line(exc)}", hidden)) from None
    return steps


def drop(target: Target, roles: RoleSet, *, confirm: bool = False) -> list[str]:
    """Drop the roles of the set: their grants and anything they own in this database, then the roles.
    Returns the names dropped. Fails, changing nothing, while they still hold grants in another database."""
    if not (target.scratch or confirm):
        raise ConfirmationRequired(f"dropping roles on {target.masked_url} needs confirm=True")
    with connect(target) as conn:
        names = [r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)",
                                            (list(roles.names.values()),)).fetchall()]
        if not names:
            return []
        try:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.SQL(", ").join(map(sql.Identifier, names))))
            for name in names:
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
            conn.commit()
        except psycopg.Error as exc:
            conn.rollback()
            detail = getattr(exc.diag, "message_detail", None) or ""
            raise RoleError(f"dropping roles failed, nothing changed: {_error_line(exc)} {detail.splitlines()[0] if detail else ''}".strip()) from None
    return names


# --- logging in as a role and proving what it can do -------------------------------------------
def login(target: Target, role: str, password: "str | Secret | None" = None) -> Target:
    """The same server and database as `target`, logging in as `role` (with `password` where the server asks)."""
    url = make_url(target.url).set(username=role, password=_reveal(password) if password is not None else None)
    # SQLAlchemy leaves spaces unencoded in user and password; libpq wants them percent-encoded
    return Target(url.render_as_string(hide_password=False).replace(" ", "%20"), target.embedded)


_PROBE_TIMEOUTS = "SET LOCAL lock_timeout = '2s'; SET LOCAL statement_timeout = '10s'"


def try_access(login_target: Target, table: str = "users", *, column: str | None = None,
               schema: str = SCHEMA) -> pd.DataFrame:
    """What the logged-in role may do to `table`: each operation is tried and rolled back.

    Operations: SELECT (of `column`, default the first), INSERT, UPDATE, DELETE, TRUNCATE, CREATE TABLE
    in the schema and ALTER TABLE. `allowed` means the privilege check passed; an operation that
    passes it and then fails on a constraint is allowed (the detail says why it stopped). Nothing
    is kept: every attempt runs in a savepoint that is rolled back, and so is the transaction.
    """
    with connect(login_target) as conn:
        conn.execute(_PROBE_TIMEOUTS)
        found = conn.execute(load("roles", "first_column"), {"schema": schema, "table": table}).fetchone()
        if found is None:
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
                rows.append((operation, False, _error_line(exc)))
            except psycopg.Error as exc:
                rows.append((operation, True, f"permitted, then stopped: {_error_line(exc)}"))
            else:
                rows.append((operation, True, "permitted (rolled back)"))
        conn.rollback()
    return pd.DataFrame(rows, columns=["operation", "allowed", "detail"])


def access_summary(attempts: pd.DataFrame) -> str:
    """What `try_access` found, in one line: the operations allowed and those denied."""
    allowed = list(attempts.loc[attempts["allowed"], "operation"])
    denied = list(attempts.loc[~attempts["allowed"], "operation"])
    return "; ".join(part for part in (f"allowed {', '.join(allowed)}" if allowed else "",
                                       f"denied {', '.join(denied)}" if denied else "") if part)
