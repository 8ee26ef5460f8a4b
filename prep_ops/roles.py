"""Roles as code: the guide's `readonly` and `reporter`, and the school's `analyst`, `app` and `dba`.

`plan()` compares the catalogs with the wanted state and returns the statements that close the
gap; `apply()` runs them in one transaction under an advisory lock, so a second apply finds nothing
to do. Passwords (see role_set.resolve_passwords) become SCRAM-SHA-256 verifiers made by libpq
(scram.encrypt), so the clear text never reaches the server or its log, and they show as '***' in
plans, reprs and errors.

Roles are cluster-wide, grants per database: a RoleSet names the five roles, and the grants cover
every user schema of this database the connecting role may grant in (catalog.user_schemas: not the
system schemas, not a schema an extension made, not prep-ops' own `audit`, `masked` and
`masking_private`, not a schema of a role it is not a member of, unless it is a superuser: there a GRANT
would fail the whole apply or be ignored with a warning), each with default privileges
for the tables made there later; an extension's own relations are left alone. Logging in as a role and probing what it may do is in access.py.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from . import formatting
from .catalog import existing_roles, role_exists, user_schemas
from .security_audit import grants as grants_in
from .db import Target, require_change, server_version, snapshot
from .errors import ParameterError, PlanChanged, RoleError, database_error
from .sqlfiles import load

# What notebooks and tests reach as prep_ops.roles.<name>, now kept in the modules that hold it.
from .access import access_summary, login, login_refused, tried, try_access  # noqa: F401
from .errors import masked as _masked  # noqa: F401
from .role_set import KINDS, LOGIN_KINDS, RoleSet, password_variable, resolve_passwords  # noqa: F401
from .scram import SCRAM_ITERATIONS, Secret, encrypt, scram_verifier, verifier_matches  # noqa: F401

SCHEMA = "public"
_LOCK = 0x726F6C65  # advisory lock key of roles.apply ("role")

# The wanted state, per kind of role; a kind not named in a map wants nothing there (extra grants are revoked).
_MEMBER_OF = {"reporter": ("readonly",), "dba": ("app", "pg_monitor")}
_DATABASE = {"readonly": ("CONNECT",), "analyst": ("CONNECT",), "app": ("CONNECT",), "dba": ("CONNECT",)}
_SCHEMA = {"readonly": ("USAGE",), "app": ("USAGE",), "dba": ("USAGE", "CREATE")}
# dba: reads, writes, empties and maintains (VACUUM, ANALYZE, REINDEX: MAINTAIN, 17+) the school's tables,
# but holds no TRIGGER (a trigger of its own would run its code as whoever writes the table next, a
# superuser included: the road to superuser) and no REFERENCES (it never needs to point at them).
_TABLE = {"readonly": ("SELECT",), "app": ("SELECT", "INSERT", "UPDATE", "DELETE"),
          "dba": ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "MAINTAIN")}
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


@dataclass(frozen=True)
class Step:
    """One statement of a plan: `text` as shown (passwords elided), `statement` as run; `unverified`: why
    the plan holds it whatever the catalogs say (a password it cannot compare), "" for a gap it found;
    `refused`: why the connecting role may not run it (no CREATEROLE, no ADMIN OPTION on a role ...), ""
    when it may, so that apply, which runs all or nothing, refuses the whole plan before running any."""

    text: str
    statement: sql.Composable = field(repr=False, compare=False)
    unverified: str = field(default="", compare=False)
    refused: str = field(default="", compare=False)

    def __str__(self) -> str:
        return self.text


def _wanted(table: dict, kind: str, version: int) -> tuple[str, ...]:
    return tuple(p for p in table.get(kind, ()) if p != "MAINTAIN" or version >= 17)


def _privileges(names) -> sql.Composable:
    return sql.SQL(", ").join(sql.SQL(p) for p in names)  # keywords from _PRIVILEGES only


def _ordered(object_kind: str, privileges: set[str]) -> list[str]:
    return [p for p in _PRIVILEGES[object_kind] if p in privileges]


# a login role's password is set on each apply when the session may not read the stored one to compare
_UNREADABLE_PASSWORDS = ("reading pg_authid needs superuser, so the stored password is set again on every apply "
                         "(the login proofs check it)")


class _Planner:
    """Reads the catalogs once and writes the statements that bring them to the wanted state."""

    def __init__(self, conn: psycopg.Connection, roles: RoleSet, passwords: dict[str, Secret], owner: str | None):
        self.conn, self.roles, self.passwords = conn, roles, passwords
        self.version = server_version(conn)
        self.names = list(roles.names.values())
        self.schemas = user_schemas(conn, grantable=True)  # another owner's schema: not ours to grant in
        self.owner = owner or conn.execute("SELECT current_user").fetchone()[0]
        self.hidden = [p.reveal() for p in passwords.values()]
        self.steps: list[Step] = []
        self.powers: dict[str, dict] = {}
        self.me: dict = {}

    def rows(self, name: str, **params) -> list[dict]:
        with self.conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(load("roles", name), {"names": self.names, **params}).fetchall()

    def add(self, statement: sql.Composable, shown: sql.Composable | None = None, unverified: str = "",
            refused: str = "") -> None:
        self.steps.append(Step((shown or statement).as_string(None), statement, unverified, refused))

    def plan(self) -> list[Step]:
        if not role_exists(self.conn, self.owner):
            raise ParameterError(f"owner role {self.owner!r} does not exist")
        groups = [g for groups in _MEMBER_OF.values() for g in groups if g not in self.roles.names]
        self.powers = {r["name"]: r for r in self.rows("powers", names=self.names + groups)}
        self.me = next(r for r in self.powers.values() if r["me"])
        self.plan_roles()
        self.plan_memberships()
        grants = grants_in(self.conn, None, self.names)
        for object_kind, wanted in (("database", _DATABASE), ("schema", _SCHEMA), ("table", _TABLE), ("sequence", _SEQUENCE)):
            self.plan_grants(grants, object_kind, wanted)
        defaults = self.rows("default_privileges", owner=self.owner, schemas=self.schemas)
        for schema in self.schemas:
            for object_kind, wanted in (("table", _TABLE), ("sequence", _SEQUENCE)):
                self.plan_defaults(defaults, schema, object_kind, wanted)
        return self.steps

    def verifiers(self) -> dict[str, str | None] | None:
        """Stored password hashes, or None when this session may not read pg_authid."""
        if not self.conn.execute("SELECT has_table_privilege('pg_catalog.pg_authid', 'SELECT')").fetchone()[0]:
            return None
        return {r["name"]: r["verifier"] for r in self.rows("verifiers")}

    # --- what the connecting role may not run ("" where it may): the server's rules, as PostgreSQL 15 and 18 refuse ---
    def _who(self, name: str) -> str:
        return sql.Identifier(name).as_string(None)  # quoted as in the statements: shown safely with them

    def refused_create(self) -> str:
        if self.me["superuser"] or self.me["createrole"]:
            return ""
        return f"{self._who(self.me['name'])} has no CREATEROLE, which creating a role needs"

    def refused_alter(self, name: str, changed: list[str] | None = None) -> str:
        """Why the current role may not change `changed` attributes (None: the password) of the role `name`."""
        me, role, target = self.me, self._who(self.me["name"]), self.powers.get(name, {})
        if me["superuser"] or (changed is None and name == me["name"]):  # anyone may set their own password
            return ""
        if target.get("superuser"):
            return f"{self._who(name)} is a superuser, which only a superuser may alter"
        what = "altering another role" if changed else "setting the password of another role"
        if not me["createrole"]:
            return f"{role} has no CREATEROLE, which {what} needs"
        if self.version >= 16 and not target.get("admin", True):  # a role it creates in this plan: admin
            return f"{role} has no ADMIN OPTION on {self._who(name)}, which {what} needs besides CREATEROLE since PostgreSQL 16"
        for attribute in [a for a in ("replication", "bypassrls", "createdb") if a in (changed or ())]:
            if self.version < 16 and attribute != "createdb":
                return f"only a superuser may change {_ATTRIBUTES[attribute]} before PostgreSQL 16"
            if self.version >= 16 and not me[attribute]:
                return f"{role} has no {_ATTRIBUTES[attribute]}, which changing it on another role needs"
        if self.version < 16 and target.get("replication"):
            return f"{self._who(name)} has REPLICATION, which only a superuser may alter before PostgreSQL 16"
        return ""

    def refused_grant(self, group: str, created: bool) -> str:
        """Why the current role may not grant membership in `group` (`created`: made by this plan)."""
        me, role, target = self.me, self._who(self.me["name"]), self.powers.get(group, {})
        if me["superuser"]:
            return ""
        if self.version >= 16:  # ADMIN OPTION only; a role it creates with CREATEROLE comes with it
            if (created and me["createrole"]) or target.get("admin"):
                return ""
            return f"{role} has no ADMIN OPTION on {self._who(group)}, which granting it needs since PostgreSQL 16"
        if (me["createrole"] and not target.get("superuser")) or target.get("admin"):
            return ""
        return f"{role} has neither CREATEROLE nor ADMIN OPTION on {self._who(group)}, which granting it needs"

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
                    self.add(statement, refused=self.refused_create())
                else:
                    verifier = encrypt(self.conn, password, name)
                    self.hidden.append(verifier)
                    self.add(statement + sql.SQL(" PASSWORD {}").format(sql.Literal(verifier)),
                             statement + sql.SQL(" PASSWORD '***'"), refused=self.refused_create())
                continue
            differ = [a for a, v in wanted.items() if existing[name][a] != v]
            if differ:
                options = sql.SQL(" ").join(sql.SQL(_ATTRIBUTES[a] if wanted[a] else "NO" + _ATTRIBUTES[a]) for a in differ)
                self.add(sql.SQL("ALTER ROLE {} WITH {}").format(role, options), refused=self.refused_alter(name, differ))
            if password is not None and not (stored is not None and verifier_matches(password, stored.get(name))):
                verifier = encrypt(self.conn, password, name)
                self.hidden.append(verifier)
                self.add(sql.SQL("ALTER ROLE {} PASSWORD {}").format(role, sql.Literal(verifier)),
                         sql.SQL("ALTER ROLE {} PASSWORD '***'").format(role),
                         "" if stored is not None else _UNREADABLE_PASSWORDS, refused=self.refused_alter(name))

    def plan_memberships(self) -> None:
        held = {(r["member"], r["role"]) for r in self.rows("memberships")}
        for kind, groups in _MEMBER_OF.items():
            member = self.roles.names[kind]
            for group in groups:
                group_name = self.roles.names.get(group, group)
                if (member, group_name) not in held:
                    self.add(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group_name), sql.Identifier(member)),
                             refused=self.refused_grant(group_name, created=group_name not in self.powers))

    def plan_grants(self, grants: list[dict], object_kind: str, wanted_map: dict) -> None:
        """Per schema (one for the database itself), the GRANTs and REVOKEs of `object_kind` per role."""
        mine = [g for g in grants if g["kind"] == object_kind]
        if object_kind == "database":
            groups = [(None, mine)] if mine else []
        elif object_kind == "schema":
            groups = [(s, [g for g in mine if g["name"] == s]) for s in self.schemas]
        else:
            groups = [(s, [g for g in mine if g["schema"] == s]) for s in self.schemas]
        for schema, rows in groups:
            if rows:
                self.plan_grants_on(schema, rows, object_kind, wanted_map)

    def plan_grants_on(self, schema: str | None, rows: list[dict], object_kind: str, wanted_map: dict) -> None:
        # an extension's relations are its own: neither granted nor revoked (ALL TABLES would reach them, so
        # a schema holding any is granted table by table)
        extension_owned = any(g["from_extension"] for g in rows)
        objects = {g["name"] for g in rows if not g["from_extension"]}
        if not objects:
            return
        held = {}
        for g in rows:
            if g["role"] is not None and not g["from_extension"]:
                held.setdefault((g["name"], g["role"]), set()).add(g["privilege"])
        known = set(_PRIVILEGES[object_kind])
        for kind, name in self.roles.names.items():
            wanted = set(_wanted(wanted_map, kind, self.version))
            bookkeeping = {obj: wanted & set(_BOOKKEEPING[kind]) for obj in objects
                           if object_kind == "table" and schema == SCHEMA and obj in _BOOKKEEPING_TABLES
                           and kind in _BOOKKEEPING}
            missing, extra, lacking, having = set(), set(), set(), set()
            for obj in objects - set(bookkeeping):
                have = held.get((obj, name), set())
                if wanted - have:
                    missing |= wanted - have
                    lacking.add(obj)
                if (have - wanted) & known:
                    extra |= (have - wanted) & known
                    having.add(obj)

            def on(chosen: set[str]) -> sql.Composable:
                if object_kind == "database":
                    return sql.SQL("DATABASE {}").format(sql.Identifier(next(iter(objects))))
                if object_kind == "schema":
                    return sql.SQL("SCHEMA {}").format(sql.Identifier(schema))
                if extension_owned:
                    return sql.SQL("{} {}").format(sql.SQL("TABLE" if object_kind == "table" else "SEQUENCE"),
                                                   sql.SQL(", ").join(sql.Identifier(schema, o) for o in sorted(chosen)))
                return sql.SQL("ALL {} IN SCHEMA {}").format(
                    sql.SQL("TABLES" if object_kind == "table" else "SEQUENCES"), sql.Identifier(schema))

            if missing:
                self.add(sql.SQL("GRANT {} ON {} TO {}").format(
                    _privileges(_ordered(object_kind, missing)), on(lacking), sql.Identifier(name)))
            if extra:
                self.add(sql.SQL("REVOKE {} ON {} FROM {}").format(
                    _privileges(_ordered(object_kind, extra)), on(having), sql.Identifier(name)))
            if extension_owned:  # granted table by table: each bookkeeping table got exactly what it lacked
                missing, extra = set(), set()
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

    def plan_defaults(self, defaults: list[dict], schema: str, object_kind: str, wanted_map: dict) -> None:
        for kind, name in self.roles.names.items():
            wanted = set(_wanted(wanted_map, kind, self.version))
            have = {d["privilege"] for d in defaults
                    if d["schema"] == schema and d["kind"] == object_kind and d["role"] == name}
            prefix = sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} ").format(
                sql.Identifier(self.owner), sql.Identifier(schema))
            objects = sql.SQL("TABLES" if object_kind == "table" else "SEQUENCES")
            if wanted - have:
                self.add(prefix + sql.SQL("GRANT {} ON {} TO {}").format(
                    _privileges(_ordered(object_kind, wanted - have)), objects, sql.Identifier(name)))
            extra = (have - wanted) & set(_PRIVILEGES[object_kind])
            if extra:
                self.add(prefix + sql.SQL("REVOKE {} ON {} FROM {}").format(
                    _privileges(_ordered(object_kind, extra)), objects, sql.Identifier(name)))


def login_as(target: Target, roles: RoleSet, kind: str, passwords: Mapping[str, "str | Secret"]) -> tuple[Target, str]:
    """`target` logging in as the role of `kind` in `roles` with its password from `passwords` (as
    resolve_passwords gives them), and why the server refuses that login ("" when it lets it in), naming
    the variable its password comes from when none was given."""
    role, password = roles.names[kind], passwords.get(kind)
    found = login(target, role, password)
    hint = "" if password is not None else f"no password given: set {password_variable(kind)}"
    return found, login_refused(found, role, hint)


def plan(conn: psycopg.Connection, roles: RoleSet = RoleSet(), passwords: Mapping[str, "str | Secret"] | None = None,
         *, owner: str | None = None) -> list[Step]:
    """The statements that bring the roles and their grants to the wanted state; empty when they are there.

    Passwords: `passwords` (kind → password), else $PREP_OPS_<ROLE>_PASSWORD; a login role without one
    keeps its current password. Default privileges are set for tables `owner` creates (default: the
    connecting role, the one that runs migrations).
    """
    found = resolve_passwords(passwords)
    hidden = [p.reveal() for p in found.values()]
    try:
        with snapshot(conn):
            return _Planner(conn, roles, found, owner).plan()
    except psycopg.Error as exc:
        raise database_error(exc, "planning roles failed", RoleError, hidden=hidden) from None


def plan_lines(steps: list[Step]) -> list[str]:
    """The plan as lines of SQL, as `roles plan` and runbook 06 show it (each through formatting.statement):
    a statement the connecting role may not run carries `-- refused: why`, and one comment line first
    says how many, and that apply would then run none of them."""
    refused = [s for s in steps if s.refused]
    head = [f"-- the connecting role may not run {len(refused)} of these {len(steps)} statements (marked `-- refused:`): "
            "`roles apply` runs all or nothing, so it would refuse the whole plan; apply it as a role that may run "
            "them all, such as a superuser"] if refused else []
    return head + [f"{s.text};" + (f"  -- refused: {s.refused}" if s.refused else "") for s in steps]


def refuse_what_the_role_may_not_run(steps: list[Step]) -> None:
    """RoleError, before anything runs, when the connecting role may not run some steps (see Step.refused):
    the first one and why, as `roles plan` marks it."""
    refused = [s for s in steps if s.refused]
    if refused:
        raise RoleError(f"applying roles refused before it began, nothing changed: the connecting role may not run "
                        f"{len(refused)} of {len(steps)} statements, `{refused[0].text}` first: {refused[0].refused}; "
                        "apply them as a role that may run them all, such as a superuser (`prep-ops roles plan` "
                        "marks each `-- refused:`)") from None  # chains nothing (a password could ride along)


def second_plan_verdict(applied: list[Step], again: list[Step]) -> dict:
    """po.check's arguments for "roles and grants as wanted": the plan made after `applied` ran is empty,
    but for the passwords it sets whatever is stored because it cannot read them (not a superuser): those
    are named as not compared, never counted as still to run."""
    left = [s for s in again if not s.unverified]
    unread = [s for s in again if s.unverified]
    detail = f"{len(applied)} statement(s) run, {len(left)} still to run"
    if unread:
        detail += f"; {len(unread)} password(s) set but not compared: {unread[0].unverified}"
    return {"name": "roles and grants as wanted (a second plan is empty)", "passed": not left, "detail": detail,
            "fix": "read the plan above; the error names the statement"}


def refuse_changing_current_role(conn: psycopg.Connection, steps: list[Step]) -> None:
    """RoleError when a step would change the attributes of the role this session runs as (logged in as, or
    acting as): a superuser that the set names (a DBA's superuser called dba) would strip itself of SUPERUSER half way through."""
    for me in dict.fromkeys(conn.execute("SELECT current_user, session_user").fetchone()):  # acting as, logged in as
        mine = [s.text for s in steps if s.text.startswith(f"ALTER ROLE {sql.Identifier(me).as_string(None)} WITH ")]
        if mine:
            raise RoleError(f"`{mine[0]}` would change the role this session runs as ({me}); nothing changed: apply "
                            "the roles connected as another role, or give the set's roles other names (a prefix)")


def _refuse_unplanned(steps: list[Step], planned: list[Step]) -> None:
    """PlanChanged unless `steps` (planned again under the lock) are the `planned` ones shown, or none."""
    now, shown = [s.text for s in steps], [s.text for s in planned]
    if now and now != shown:
        raise PlanChanged(f"the roles and grants to apply now are not the plan shown ({len(shown)} statement(s)): "
                          f"{formatting.plan_difference(now, shown)}; nothing changed: show the plan again "
                          "(runbook 06 step 2), then apply it")


def apply(conn: psycopg.Connection, roles: RoleSet = RoleSet(), passwords: Mapping[str, "str | Secret"] | None = None,
          *, owner: str | None = None, confirm: bool = False, planned: list[Step] | None = None) -> list[Step]:
    """Run the plan in one transaction (all or nothing); returns the steps run. Outside a scratch
    database, needs `confirm`; a plan that changes the connecting role's own attributes is refused, and so
    is one holding a statement the connecting role may not run (a role without CREATEROLE creating roles:
    Step.refused, marked by `roles plan`), before any runs. `planned`: the plan shown (what `plan()` gave);
    the plan read again under the lock must be it, or nothing (applied already), else PlanChanged and
    nothing changes (role_prefix changed since, another session granted or revoked meanwhile)."""
    require_change(conn, confirm, "creating roles and grants")
    found = resolve_passwords(passwords)
    hidden = [p.reveal() for p in found.values()]
    step = None
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            planner = _Planner(conn, roles, found, owner)
            steps = planner.plan()
            hidden = planner.hidden
            if planned is not None:
                _refuse_unplanned(steps, list(planned))
            refuse_what_the_role_may_not_run(steps)
            refuse_changing_current_role(conn, steps)
            for step in steps:
                conn.execute(step.statement)
    except psycopg.Error as exc:
        where = f" at `{step.text}`" if step else ""
        raise database_error(exc, f"applying roles failed{where}, nothing changed", RoleError, hidden=hidden) from None
    return steps


def drop(conn: psycopg.Connection, roles: RoleSet, *, confirm: bool = False) -> list[str]:
    """Drop the roles of the set: their grants and anything they own in this database, then the roles.
    Returns the names dropped. Fails, changing nothing, while they still hold grants in another database."""
    require_change(conn, confirm, "dropping roles")
    names = existing_roles(conn, roles.names.values())
    if not names:
        return []
    try:
        with conn.transaction():
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.SQL(", ").join(map(sql.Identifier, names))))
            for name in names:
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise database_error(exc, "dropping roles failed, nothing changed", RoleError, detail=True) from None
    return names
