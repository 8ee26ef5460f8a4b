"""The privilege audit: who can do what on which object, and what a security review would flag.

Each finding is one small catalog query with a severity (`high`, `medium`, `low`, `info`) and a fix,
PgHero style. Severity follows exposure: a rule that trusts everyone is `high` when the server
listens on the network, `medium` on loopback only, and `low` or `info` when only a private socket
reaches it (the embedded server's case, said in so many words). A check that needs superuser to
look (pg_authid, pg_hba_file_rules) says so as an `info` finding instead of guessing.
"""

from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from . import embedded
from .catalog import describe_code, foreign_triggers, role_exists, user_schemas
from .db import fetch_frame, server_version, snapshot
from .role_set import RoleSet
from .sqlfiles import load

SEVERITIES = ("high", "medium", "low", "info")  # in order of severity
# PostgreSQL's own letters for privileges (as psql's \dp shows them)
LETTERS = {"SELECT": "r", "INSERT": "a", "UPDATE": "w", "DELETE": "d", "TRUNCATE": "D", "REFERENCES": "x",
           "TRIGGER": "t", "MAINTAIN": "m", "USAGE": "U", "CREATE": "C", "CONNECT": "c", "TEMPORARY": "T"}
ACCESS_LEVELS = ("none", "read", "write", "change or own")
_WRITE_LETTERS, _CHANGE_LETTERS = set("awdDm"), set("Cxt")
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


@dataclass(frozen=True)
class Finding:
    """One thing a security review flags: what, how bad, about whom, why, and the statement that fixes it."""

    check: str
    severity: str
    subject: str
    detail: str
    fix: str


def _rows(conn: psycopg.Connection, name: str, params: dict | None = None) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(load("security", name), params or {}).fetchall()


def _table_privileges(conn: psycopg.Connection) -> list[str]:
    base = ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"]
    return base + (["MAINTAIN"] if server_version(conn) >= 17 else [])


def privileges(conn: psycopg.Connection, roles: list[str] | None = None) -> pd.DataFrame:
    """Who can do what: one row per role (and PUBLIC), object and privilege held, with how it is held
    (superuser, owner, granted, PUBLIC, member of <role>). `roles` limits it to those names ("PUBLIC" included)."""
    with snapshot(conn):
        direct = [{k: g[k] for k in ("kind", "schema", "name", "role", "privilege")}
                  for g in grants(conn, defaults=True) if g["role"] is not None]
        return fetch_frame(conn, load("security", "privileges"),
                           {"roles": list(roles) if roles is not None else None, "grants": Jsonb(direct),
                            "table_privileges": _table_privileges(conn)})


def grants(conn: psycopg.Connection, schema: str | None = None, names: list[str] | None = None, *,
           every_database: bool = False, system_schemas: bool = False, defaults: bool = False) -> list[dict]:
    """The privileges granted directly on this database, its schemas (`schema` only, when given) and their
    tables, views and sequences, to `names` (roles or "PUBLIC"; all when None): one dict per object,
    grantee and privilege (kind, schema, name, role, privilege, grantor, from_extension); an object without
    such grants once, with role, privilege and grantor None. `every_database` adds the server's other
    databases, `system_schemas` the catalog, toast and temporary schemas; `defaults` reads a never-changed
    ACL as the built-in grants it stands for. The one query of direct grants (sql/security/grants.sql)."""
    return _rows(conn, "grants", {"schema": schema, "names": list(names) if names is not None else None,
                                  "every_database": every_database, "system_schemas": system_schemas,
                                  "defaults": defaults})


def privilege_matrix(frame: pd.DataFrame, kinds: tuple[str, ...] = ("database", "schema", "table", "view")) -> pd.DataFrame:
    """Objects (rows) × roles (columns): PostgreSQL's privilege letters (r=SELECT, a=INSERT, w=UPDATE,
    d=DELETE, D=TRUNCATE, x=REFERENCES, t=TRIGGER, m=MAINTAIN, U=USAGE, C=CREATE, c=CONNECT, T=TEMPORARY),
    or `owner` / `superuser`; empty where the role has nothing."""
    shown = frame[frame["kind"].isin(kinds)]
    if shown.empty:
        return pd.DataFrame()
    labels = [f"{kind} {name}" if kind in ("database", "schema") else f"{schema}.{name}" + (" (view)" if kind == "view" else "")
              for kind, schema, name in zip(shown["kind"], shown["schema"], shown["object"])]
    shown = shown.assign(label=labels)

    def cell(group: pd.DataFrame) -> str:
        for power in ("superuser", "owner"):
            if (group["via"] == power).any():
                return power
        held = set(group["privilege"])
        return "".join(letter for privilege, letter in LETTERS.items() if privilege in held)

    cells = shown.groupby(["label", "role"], sort=False)[["privilege", "via"]].apply(cell)
    matrix = cells.unstack("role").fillna("")
    order = list(dict.fromkeys(shown["label"]))
    roles = list(dict.fromkeys(shown["role"]))
    matrix = matrix.reindex(index=order, columns=roles).fillna("")
    matrix.index.name, matrix.columns.name = "object", "role"
    return matrix


def held_on_tables(matrix: pd.DataFrame, role: str, schemas: tuple[str, ...] = ("public", "audit")) -> list[str]:
    """What `role` holds on the tables and views of `schemas`, from a privilege matrix, as "object: letters";
    [] when it holds nothing there (or is not in the matrix at all)."""
    if role not in matrix.columns:
        return []
    on_tables = matrix[matrix.index.str.startswith(tuple(f"{s}." for s in schemas))][role]
    return [f"{obj}: {cell}" for obj, cell in on_tables.items() if cell]


def access_level(cell: str) -> int:
    """0 none, 1 read, 2 write, 3 change the schema or own (an index into ACCESS_LEVELS) for a matrix cell."""
    if cell in ("owner", "superuser") or set(cell) & _CHANGE_LETTERS:
        return 3
    if set(cell) & _WRITE_LETTERS:
        return 2
    return 1 if cell else 0


def access_levels(matrix: pd.DataFrame) -> pd.DataFrame:
    """The matrix with each cell turned into its access level (0–3)."""
    return matrix.map(access_level)


# --- findings ------------------------------------------------------------------------------------
def _listening(settings: dict) -> str:
    """Where the server takes TCP connections: none, loopback, network, or unknown."""
    raw = settings.get("listen_addresses")
    if raw is None:
        return "unknown"
    addresses = {a.strip() for a in raw.split(",") if a.strip()}
    if not addresses:
        return "none"
    return "loopback" if addresses <= _LOOPBACK else "network"


def _quoted(conn, template: str, *parts) -> str:
    return sql.SQL(template).format(*parts).as_string(None)


def _role_findings(conn, listening: str) -> list[Finding]:
    found = []
    for r in _rows(conn, "roles"):
        role = sql.Identifier(r["name"])
        if r["superuser"] and r["bootstrap"]:
            found.append(Finding("superuser", "low", r["name"],
                                 "the bootstrap superuser initdb made; every cluster has one. Keep it for migrations and "
                                 "maintenance, and work day to day as a role without superuser",
                                 "log in as the dba role for daily work; give this one a strong password or peer auth"))
        elif r["superuser"]:
            found.append(Finding("superuser", "high", r["name"],
                                 "a second superuser: bypasses every privilege check, can read files and run programs on the server",
                                 _quoted(conn, "ALTER ROLE {} NOSUPERUSER", role)))
            continue
        powers = [p for p in ("createrole", "createdb", "replication", "bypassrls") if r[p]]
        if powers and not r["superuser"]:
            found.append(Finding("powerful role attributes", "medium", r["name"],
                                 f"holds {', '.join(p.upper() for p in powers)}: "
                                 + ("can create roles and grant itself their memberships; " if "createrole" in powers else "")
                                 + "more than day-to-day work needs",
                                 _quoted(conn, "ALTER ROLE {} " + " ".join(f"NO{p.upper()}" for p in powers), role)))
    if not conn.execute("SELECT has_table_privilege('pg_catalog.pg_authid', 'SELECT')").fetchone()[0]:
        return found + [Finding("password storage", "info", "server", "not checked: reading pg_authid needs superuser",
                                "run the audit as a superuser")]
    for r in _rows(conn, "passwords"):
        role = sql.Identifier(r["name"])
        if r["stored_as"] == "none":
            severity = "low" if listening == "none" else "medium"
            found.append(Finding("login without a password", severity, r["name"],
                                 "can log in but has no password: it gets in only where pg_hba.conf trusts, or uses "
                                 "peer, ident or certificates" + (" (this server takes no TCP connections)" if listening == "none" else ""),
                                 "set one: " + _quoted(conn, "\\password {}", role)
                                 + " in psql, or prep-ops roles apply with PREP_OPS_<ROLE>_PASSWORD"))
        elif r["stored_as"] != "scram-sha-256":
            found.append(Finding("password not SCRAM-hashed", "high", r["name"],
                                 f"password stored as {r['stored_as']}: an md5 hash is replayable and cheap to crack, plain text worse",
                                 "SET password_encryption = 'scram-sha-256'; then set it again: "
                                 + _quoted(conn, "\\password {}", role)))
    return found


def _public_grants(conn) -> dict[tuple[str, str], set[str]]:
    """(schema, relation) → what PUBLIC holds on it, for the relations where it holds anything (an
    extension's own relations left out: the extension grants those itself)."""
    held: dict[tuple[str, str], set[str]] = {}
    for g in grants(conn, names=["PUBLIC"]):
        if g["kind"] in ("table", "sequence") and g["role"] and not g["from_extension"]:
            held.setdefault((g["schema"], g["name"]), set()).add(g["privilege"])
    return dict(sorted(held.items()))


def _privilege_findings(conn, roles: RoleSet) -> list[Finding]:
    found = []
    public_create = [g["name"] for g in grants(conn, names=["PUBLIC"], defaults=True)  # in the query's order
                     if g["kind"] == "schema" and g["privilege"] == "CREATE"]
    for schema in public_create:
        found.append(Finding("CREATE on a schema for PUBLIC", "high", schema,
                             "every role, present and future, may create objects here: tables that shadow the database's own, "
                             "functions that run as whoever calls them",
                             _quoted(conn, "REVOKE CREATE ON SCHEMA {} FROM PUBLIC", sql.Identifier(schema))))
    for (schema, name), held in _public_grants(conn).items():
        privileges = ", ".join(sorted(held))
        writes = held - {"SELECT", "REFERENCES", "USAGE"}
        found.append(Finding("privileges for PUBLIC", "high" if writes else "medium", f"{schema}.{name}",
                             f"every role may {privileges}",
                             _quoted(conn, "REVOKE ALL ON {} FROM PUBLIC", sql.Identifier(schema, name))))
    for r in _rows(conn, "security_definer"):
        found.append(Finding("SECURITY DEFINER without a fixed search_path", "high",
                             f"{r['schema']}.{r['name']}({r['arguments']})",
                             f"runs as {r['owner']} with the caller's search_path: a caller can put their own objects first",
                             _quoted(conn, "ALTER FUNCTION {}({}) SET search_path = pg_catalog, pg_temp",
                                     sql.Identifier(r["schema"], r["name"]), sql.SQL(r["arguments"]))))
    return found + _foreign_code_findings(conn) + _readonly_findings(conn, roles.readonly)


def _foreign_code_findings(conn) -> list[Finding]:
    """Triggers (and default, CHECK, index functions) on any table, whose function a non-superuser owns:
    superusers write every table (seed, restore, maintenance, recovery), and the code runs as the writer."""
    found = []
    for r in foreign_triggers(conn, None, trust_current_user=False):
        table, function = sql.Identifier(r["schema"], r["table"]), sql.Identifier(r["function_schema"], r["function_name"])
        fix = (_quoted(conn, "ALTER TABLE {} DISABLE TRIGGER {}", table, sql.Identifier(r["name"])) if r["kind"] == "trigger"
               else _quoted(conn, "ALTER FUNCTION {}({}) OWNER TO CURRENT_USER", function, sql.SQL(r["function_arguments"])))
        found.append(Finding("code of a non-superuser on tables superusers write", "high", f"{r['schema']}.{r['table']}",
                             f"{describe_code(r)}: when a superuser writes the table, {r['owner']}'s code runs as "
                             "superuser (and can make its owner one)", f"review the function, then (as a superuser) {fix}"))
    return found


def _readonly_findings(conn, role: str) -> list[Finding]:
    if not role_exists(conn, role):
        return [Finding("read-only role", "medium", role, "there is no read-only role for reporting",
                        "prep-ops roles apply (creates readonly and reporter)")]
    found = []
    schemas = user_schemas(conn)
    unreadable = _rows(conn, "readonly_tables", {"role": role, "schemas": schemas})
    for schema in dict.fromkeys(r["schema"] for r in unreadable):  # one finding per schema, public first
        names = [r["name"] if schema == "public" else f"{schema}.{r['name']}" for r in unreadable if r["schema"] == schema]
        found.append(Finding("tables the read-only role cannot read", "medium", role,
                             f"{len(names)} table(s): {', '.join(names[:10])}{' …' if len(names) > 10 else ''}",
                             _quoted(conn, "GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}", sql.Identifier(schema),
                                     sql.Identifier(role))))
    for r in _rows(conn, "readonly_defaults", {"role": role, "schemas": schemas}):
        if not r["covered"]:
            found.append(Finding("no default privileges for the read-only role", "medium", role,
                                 f"tables {r['owner']} creates later in {r['schema']} will not be readable by {role}",
                                 _quoted(conn, "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT SELECT ON TABLES TO {}",
                                         sql.Identifier(r["owner"]), sql.Identifier(r["schema"]), sql.Identifier(role))))
    return found


def _on_embedded(conn: psycopg.Connection) -> bool:
    """True when `conn` reaches the embedded server (its socket is in prep-ops' data directory)."""
    host = conn.info.host or ""
    return host.startswith("/") and Path(host).resolve() == embedded.data_dir().resolve()


def _hba_findings(conn, settings: dict, listening: str) -> list[Finding]:
    if not conn.execute("SELECT has_table_privilege('pg_catalog.pg_hba_file_rules', 'SELECT')").fetchone()[0]:
        return [Finding("pg_hba.conf", "info", "server", "not checked: reading pg_hba_file_rules needs superuser",
                        "run the audit as a superuser")]
    rules = _rows(conn, "hba")
    found = []
    sockets = settings.get("unix_socket_directories", "its socket directory")
    for r in rules:
        where = f"pg_hba.conf line {r['line_number']}"
        if r["error"]:
            found.append(Finding("pg_hba.conf error", "medium", where, r["error"], "correct the line, then SELECT pg_reload_conf()"))
            continue
        users, databases = ", ".join(r["user_name"] or []), ", ".join(r["database"] or [])
        if r["auth_method"] == "trust":
            fix = f"in {where}, replace trust with scram-sha-256 (or peer for local), then SELECT pg_reload_conf()"
            rule = f"{r['type']} {databases} {users} {r['address'] or ''}".strip()
            if r["type"] == "local":
                if _on_embedded(conn):
                    found.append(Finding("trust without a password", "low", where,
                                         f"the embedded server trusts its private socket in {sockets} ({rule}): any OS user "
                                         "who can reach that directory logs in as any role, the superuser included. Fine on "
                                         "one person's machine or in CI; the socket is the only way in (no TCP)", fix))
                else:
                    found.append(Finding("trust without a password", "medium", where,
                                         f"{rule}: any OS user who can open the socket in {sockets} logs in as any role", fix))
                continue
            loopback_rule = (r["address"] or "").split("/")[0] in _LOOPBACK
            severity = {"none": "info", "loopback": "medium", "unknown": "medium"}.get(
                listening, "medium" if loopback_rule else "high")
            reach = {"none": "unused while the server listens on no TCP address",
                     "loopback": "anyone on this machine logs in as any role over TCP",
                     "unknown": "listen_addresses could not be read"}.get(
                listening, "anyone on this machine" if loopback_rule else "anyone who reaches the port logs in as any role")
            found.append(Finding("trust without a password", severity, where, f"{rule}: {reach}", fix))
        elif r["auth_method"] == "password":
            found.append(Finding("clear-text password authentication", "medium", where,
                                 "the password crosses the connection in clear text",
                                 f"in {where}, replace password with scram-sha-256, then SELECT pg_reload_conf()"))
    return found


def _setting_findings(settings: dict, listening: str) -> list[Finding]:
    found = []
    if settings.get("ssl") == "off":
        severity = {"none": "info", "loopback": "low", "network": "high"}.get(listening, "medium")
        reach = {"none": "no TCP connections, so nothing crosses a network",
                 "loopback": "TCP on loopback only", "network": "passwords and data cross the network in clear"}.get(
            listening, "listen_addresses could not be read")
        found.append(Finding("connection encryption", severity, "server", f"ssl is off: {reach}",
                             "ALTER SYSTEM SET ssl = on (with ssl_cert_file and ssl_key_file); SELECT pg_reload_conf(); "
                             "and hostssl rules in pg_hba.conf"))
    encryption = settings.get("password_encryption")
    if encryption is not None and encryption != "scram-sha-256":
        found.append(Finding("password encryption", "high", "server", f"password_encryption is {encryption}: new passwords get md5 hashes",
                             "ALTER SYSTEM SET password_encryption = 'scram-sha-256'; SELECT pg_reload_conf();"))
    if settings.get("data_checksums") == "off":
        found.append(Finding("data checksums", "medium", "server", "data checksums are off: silent corruption on disk goes unnoticed",
                             "pg_checksums --enable -D <data directory> while the server is stopped"))
    return found


def findings(conn: psycopg.Connection, roles: RoleSet = RoleSet()) -> list[Finding]:
    """What a security review flags on the connection's server and database, most severe first; read in
    one snapshot."""
    with snapshot(conn):
        settings = {r["name"]: r["setting"] for r in _rows(conn, "settings")}
        listening = _listening(settings)
        found = (_role_findings(conn, listening) + _privilege_findings(conn, roles)
                 + _hba_findings(conn, settings, listening) + _setting_findings(settings, listening))
    return sorted(found, key=lambda f: SEVERITIES.index(f.severity))


def as_frame(items: list[Finding]) -> pd.DataFrame:
    """Findings as a DataFrame, one row each."""
    return pd.DataFrame([asdict(f) for f in items], columns=["check", "severity", "subject", "detail", "fix"])


def has_high(items: list[Finding]) -> bool:
    """True when any finding is of high severity (`prep-ops audit` then exits non-zero)."""
    return any(f.severity == "high" for f in items)


def audit_check(found: pd.DataFrame) -> dict:
    """Runbook 06's check of an `as_frame` of findings, as keyword arguments of prep_ops.check: no high
    finding; the detail counts them by severity and names what was not checked (a role that is no
    superuser cannot read pg_authid or pg_hba_file_rules). No high finding where something was not checked
    is SKIP, not PASS: a trust rule in pg_hba.conf, never read, would be one."""
    counts = ", ".join(f"{n} {s}" for s, n in found["severity"].value_counts().items()) or "no findings"
    unchecked = found[found["detail"].str.startswith("not checked")]
    skipped = "; ".join(f"{r.check} {r.detail}" for r in unchecked.itertuples())
    high = (found["severity"] == "high").any()
    return {"name": "no high-severity finding", "passed": not high,
            "detail": counts + (f"; {skipped}" if skipped else ""), "fix": "apply the fix of each high finding below",
            "skipped": f"{counts} in what was checked; {skipped}" if skipped and not high else ""}
