"""Resolve the target database, connect to it, and find the client programs that match it.

One rule for every entry point: an explicit URL, else $DATABASE_URL, else the embedded server.

URLs are libpq's to read: `conninfo` hands a postgres:// or postgresql:// URL, or a key=value conninfo
string, to libpq's own parser (`psycopg.conninfo.conninfo_to_dict`) and keeps its dict. A Target's url
is then the URL `libpq_url` builds from that dict (every part percent-encoded, one dbname, in the path),
because that is what users read in messages and what psql and pg_dump's `-d` take; libpq reads it back
to the same dict. A dbname in the query string is libpq's dbname like any other, so `with_database`
replaces it and nothing in a URL can steer a connection to another database. SQLAlchemy (the %sql magic,
a Session's engine) gets `sqlalchemy.engine.URL.create` of the same dict, with the psycopg driver named.
"""

import contextlib
import os
import re
import shutil
import weakref
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg.conninfo import conninfo_to_dict

from . import embedded
from .errors import ConfirmationRequired, LockBusy, TargetError
from .sqlfiles import load

# user:password@ up to the last @ of the line (a password may hold /, @ or spaces; a user name typed with
# an @ in it, as in admin@server, too); over-masking beats a leak
_PASSWORD_IN_URL = re.compile(r"(://[^:/?#\s]*:)[^\n]*@")
# password=... in a query string or a conninfo string, quoted ('p ss', with \' inside) or not; a quote never
# closed (a typo libpq refuses) runs to the end: all of it may be the password
_PASSWORD_PARAM = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|'[\s\S]*|[^&\s]*)", re.IGNORECASE)
# a URL's scheme; postgresql+psycopg:// (SQLAlchemy's, a driver named) is accepted as postgresql://
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_AT_AFTER_USERINFO = re.compile(r"[^@/]*@[^?]*@")
_ENCODE_HINT = "percent-encode / @ : % and spaces in a user name or password"


def mask_url(url: str) -> str:
    """`url` with any password replaced by ***."""
    return _PASSWORD_PARAM.sub(r"\1***", _PASSWORD_IN_URL.sub(r"\1***@", url))


def conninfo(url: str) -> dict[str, str]:
    """libpq's reading of `url` (a postgres:// or postgresql:// URL, or a key=value conninfo string):
    {"user": ..., "password": ..., "host": ..., "port": ..., "dbname": ..., other options}. Anything
    else is one TargetError line with the password masked."""
    scheme = _SCHEME.match(url)
    if scheme and scheme.group(1).lower().split("+")[0] not in ("postgresql", "postgres"):
        raise TargetError(f"not a PostgreSQL URL: {mask_url(url)} (prep-ops works on PostgreSQL only)")
    if scheme and "+" in scheme.group(1):
        url = "postgresql" + url[scheme.end(1):]
    # libpq ends the user name and password at the first @: a later one (unencoded in the password, or a
    # user name like admin@server) would be read into the host or database, and shown with them
    if scheme and _AT_AFTER_USERINFO.match(url, scheme.end()):
        raise TargetError(f"not a database URL: {mask_url(url)} (an @ after the user name and password; "
                          f"{_ENCODE_HINT})")
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error:  # libpq's message may quote a piece of the password: not shown
        raise TargetError(f"not a database URL: {mask_url(url)} (expected postgresql://user:password@host:port/"
                          f"database or host=... dbname=...; {_ENCODE_HINT})") from None
    if not re.fullmatch(r"\d*(,\d*)*", params.get("port", "")):
        raise TargetError(f"not a database URL: {mask_url(url)} (the port is not a number; {_ENCODE_HINT})")
    return params


def _where(params: dict[str, str]) -> tuple[str | None, int | None, dict[str, str]]:
    """Host and port for a URL's authority, and the options left for its query string: one TCP host
    goes in the authority; a socket directory, several hosts or none stay in the query string."""
    rest = {k: v for k, v in params.items() if k not in ("user", "password", "dbname")}
    host, port = rest.get("host", ""), rest.get("port", "")
    if not host or host[0] in "/@" or "," in host or "," in port:
        return None, None, rest
    rest.pop("host")
    return host, int(port) if rest.pop("port", "") else None, rest


def libpq_url(params: dict[str, str]) -> str:
    """The postgresql:// URL of conninfo `params`, every part percent-encoded; libpq reads it back to `params`."""
    host, port, rest = _where(params)
    user = quote(params.get("user", ""), safe="")
    if "password" in params:
        user += ":" + quote(params["password"], safe="")
    authority = (f"{user}@" if user else "") + (f"[{host}]" if host and ":" in host else quote(host or "", safe=""))
    authority += f":{port}" if port is not None else ""
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='/:,')}" for k, v in rest.items())
    return f"postgresql://{authority}/{quote(params.get('dbname', ''), safe='')}" + (f"?{query}" if query else "")


@dataclass(frozen=True)
class Target:
    """A database to work on: its libpq URL and whether it lives on the embedded server."""

    url: str
    embedded: bool

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    @property
    def sqlalchemy_url(self) -> str:
        """The URL with the psycopg 3 driver named, for SQLAlchemy and the %sql magic (which splits its
        line at spaces, so a space is percent-encoded)."""
        from sqlalchemy.engine import URL  # here: `import prep_ops.db` stays without SQLAlchemy

        params = conninfo(self.url)
        host, port, rest = _where(params)
        user, password = params.get("user"), params.get("password")
        if user is None and password is not None:  # SQLAlchemy writes no password without a user name
            rest["password"], password = password, None
        url = URL.create("postgresql+psycopg", username=user, password=password, host=host, port=port,
                         database=params.get("dbname"), query=rest)
        return url.render_as_string(hide_password=False).replace(" ", "%20")

    @property
    def scratch(self) -> bool:
        """True where defaults may change things: the embedded server, or a server $PREP_OPS_SCRATCH=1 declares throwaway (CI)."""
        return self.embedded or os.environ.get("PREP_OPS_SCRATCH") == "1"

    @property
    def database(self) -> str:
        return conninfo(self.url).get("dbname", "")

    def with_database(self, name: str) -> "Target":
        """The same server and credentials, another database."""
        return Target(libpq_url(conninfo(self.url) | {"dbname": name}), self.embedded)

    def read_only(self) -> "Target":
        """The same database, every transaction of its sessions read-only unless it says otherwise
        (default_transaction_read_only): what the analyst's %sql connects to."""
        params = conninfo(self.url)
        options = " ".join(filter(None, [params.get("options"), "-c default_transaction_read_only=on"]))
        return Target(libpq_url(params | {"options": options}), self.embedded)

    def with_user(self, user: str, password: str | None = None) -> "Target":
        """The same server and database, logging in as `user` with `password` (None: none in the URL)."""
        params = conninfo(self.url) | {"user": user}
        params.pop("password", None)
        return Target(libpq_url(params | ({"password": password} if password is not None else {})), self.embedded)


# the connections db.connect opened to a scratch target (the embedded default, or a copy prep-ops made
# on it); a connection remembers the target it was opened for, not only the server it reached
_SCRATCH_CONNECTIONS: "weakref.WeakSet[psycopg.Connection]" = weakref.WeakSet()


def is_scratch(conn: psycopg.Connection) -> bool:
    """True where defaults may change things, judged from an open connection: one `connect` opened to a
    scratch target (the embedded server reached as the default, not through a URL someone named), or
    any connection while $PREP_OPS_SCRATCH=1 declares the server throwaway (CI). A database named by a
    URL is someone's database, even on the embedded server: it needs confirm."""
    return os.environ.get("PREP_OPS_SCRATCH") == "1" or conn in _SCRATCH_CONNECTIONS


def _described(conn: psycopg.Connection) -> str:
    info = conn.info
    where = info.host if info.host.startswith("/") else f"{info.host}:{info.port}"
    return f"database {info.dbname} on {where}"


def require_change(where: "Target | psycopg.Connection", confirm: bool, action: str) -> None:
    """The one guard before a change: ConfirmationRequired unless the target (or the database of an open
    connection) is scratch or `confirm` is given. Every function that changes a database calls it."""
    if isinstance(where, Target):
        scratch, described = where.scratch, where.masked_url
    else:
        scratch, described = is_scratch(where), _described(where)
    if not (scratch or confirm):
        raise ConfirmationRequired(f"{described} is not a scratch database and {action} changes it: "
                                   "pass --confirm (confirm=True in a notebook) to go ahead")


def resolve_target(database_url: str | None = None) -> Target:
    """The target: `database_url`, else $DATABASE_URL, else the embedded server (started if needed)."""
    if database_url is not None and not isinstance(database_url, str):  # `-p database_url 5` reads as a number
        raise TargetError(f"database_url must be text (a postgresql:// URL or host=... dbname=...), "
                          f"not {type(database_url).__name__}")
    url = database_url or os.environ.get("DATABASE_URL")
    if url:
        return Target(libpq_url(conninfo(url)), embedded=False)
    return Target(embedded.ensure_database(), embedded=True)


def _explain(exc: psycopg.Error, target: Target) -> str:
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    password = conninfo(target.url).get("password")
    if password and len(password) >= 4:  # libpq does not echo passwords; a short one would mask ordinary words
        first_line = first_line.replace(password, "***")
    return f"cannot connect to {target.masked_url}: {first_line}"


APPLICATION_NAME = "prep-ops"  # every session prep-ops opens says so (the health check's log split reads it)
# set by the runner in a runbook's kernel (runner.run_one): its sessions say "<name> run <tag>", so that the
# sessions of a runbook whose worker died can be found and ended before the next runbook starts
RUN_TAG_ENV = "PREP_OPS_RUN_TAG"


def tagged(name: str = APPLICATION_NAME) -> str:
    """`name`, with the runbook run's tag when this process runs one."""
    tag = os.environ.get(RUN_TAG_ENV)
    return f"{name} run {tag}" if tag else name


def connect(target: Target, *, autocommit: bool = False, connect_timeout: int = 10,
            application_name: str = APPLICATION_NAME) -> psycopg.Connection:
    """An open psycopg connection to `target`; a bad URL, password or stopped server raises TargetError.

    The session's application_name is prep-ops' own (`prep-ops`, or `prep-ops:<what>` given), even
    when the URL names another: its errors in the server log are then told apart from the application's.
    """
    try:
        conn = psycopg.connect(target.url, autocommit=autocommit, connect_timeout=connect_timeout,
                               application_name=tagged(application_name))
    except psycopg.Error as exc:
        raise TargetError(_explain(exc, target)) from None
    try:
        _builtins_first(conn)
    except psycopg.Error as exc:
        conn.close()
        raise TargetError(_explain(exc, target)) from None
    if target.embedded:
        _SCRATCH_CONNECTIONS.add(conn)
    return conn


def _builtins_first(conn: psycopg.Connection) -> None:
    """pg_catalog first on the session's search_path when the database's or role's setting names it after
    another schema (`app, pg_catalog`): that schema's owner could otherwise have a function of the same
    name and arguments as a built-in one that prep-ops calls (now(), pg_total_relation_size()) run in its
    place, as whoever runs prep-ops. Tables still resolve as the setting says."""
    # outside any transaction (one statement, no BEGIN and COMMIT around it): a session setting, and the
    # caller's first transaction starts with its own statement
    autocommit, conn.autocommit = conn.autocommit, True
    try:
        conn.execute(load("db", "builtins_first"))
        # dates written as psycopg reads them (ISO output only: the order of day and month in what the session
        # reads stays the database's): a database's or role's DateStyle = 'SQL, DMY' made every date prep-ops
        # read fail ("can't parse timestamptz with DateStyle 'SQL, DMY'"). Not IntervalStyle: it changes how an
        # interval is read too ('-1 2:03:04' under sql_standard), in a migration's statements or a notebook's
        conn.execute("SELECT pg_catalog.set_config('datestyle', 'ISO', false)")
    finally:
        conn.autocommit = autocommit


def live(conn: "psycopg.Connection | None", target: Target) -> psycopg.Connection:
    """`conn` if it still answers, else a new autocommit connection to `target` (the one connection a
    runbook or an incident keeps): a connection the server dropped (a restart, a stopped embedded
    server) is opened again, the embedded server started again first. An external server that is down
    raises TargetError, whose one line says what to do."""
    if conn is not None and not conn.closed:
        try:
            conn.execute("SELECT 1")
            return conn
        except psycopg.OperationalError:
            conn.close()
    if target.embedded:
        embedded.start()  # only the server: a database dropped meanwhile (a drill's) is not made again
    return connect(target, autocommit=True)


@contextlib.contextmanager
def snapshot(conn: psycopg.Connection):
    """One read-only transaction with one snapshot (REPEATABLE READ) on an autocommit connection, for a
    step that reads several things that must agree; yields the connection."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield conn


LOCK_WAIT = "5s"  # how long a read of sizes or definitions waits for a lock another session holds


@contextlib.contextmanager
def bounded_lock_wait(conn: psycopg.Connection, what: str):
    """A read that sizes or deparses relations (which locks them), waiting LOCK_WAIT at most behind
    another session's ACCESS EXCLUSIVE lock (VACUUM FULL, REINDEX, LOCK TABLE, ALTER TABLE) rather than
    for as long as it runs; then errors.LockBusy names `what`. lock_timeout is local to a savepoint (or
    transaction) of its own and put back after; yields the connection."""
    try:
        with conn.transaction():
            saved = conn.execute("SELECT current_setting('lock_timeout')").fetchone()[0]
            conn.execute("SELECT set_config('lock_timeout', %s, true)", (LOCK_WAIT,))
            yield conn
            conn.execute("SELECT set_config('lock_timeout', %s, true)", (saved,))
    except psycopg.errors.LockNotAvailable as exc:
        raise LockBusy(f"{what} could not be read: a table is locked by another session (ACCESS EXCLUSIVE: VACUUM "
                       f"FULL, REINDEX, LOCK TABLE, ALTER TABLE; gave up after {LOCK_WAIT}): see who holds it with "
                       "prep-ops health, and try again when it ends", what) from exc


def server_version(conn: psycopg.Connection) -> int:
    """The server's major version, e.g. 18."""
    return conn.info.server_version // 10000


def client_program(name: str, target: Target, major: int | None = None) -> Path:
    """The path of a PostgreSQL client program (pg_dump, psql, ...) suited to `target`.

    The embedded install's copy for the embedded server, and for another server when it is not
    older than the server (pg_dump can dump older servers); else the one in
    /usr/lib/postgresql/<major>/bin or on PATH.
    """
    if target.embedded or major is None or embedded.VERSION >= major:
        candidate = embedded.bin_dir() / name
        if candidate.exists():
            return candidate
    for candidate in (Path(f"/usr/lib/postgresql/{major}/bin/{name}"), shutil.which(name)):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    raise TargetError(f"no {name} found for a PostgreSQL {major} server (install the PostgreSQL client programs)")


def fetch_frame(conn: psycopg.Connection, query: str, params: dict | tuple | None = None):
    """The rows of `query` (with bound `params`) as a pandas DataFrame."""
    import pandas as pd

    with conn.cursor() as cur:
        cur.execute(query, params)
        columns = [d.name for d in cur.description] if cur.description else []
        return pd.DataFrame(cur.fetchall(), columns=columns)
