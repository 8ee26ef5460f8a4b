"""Passwords in an incident: which roles have a common one (tested against their stored hashes,
never shown), and new ones for the roles a breach touched.

New passwords are `Secret`s applied as SCRAM verifiers made by libpq. They come from $PREP_OPS_<ROLE>_PASSWORD
when set, else they are generated and written only to runs/incidents/<id>.passwords (mode 0600),
before they are set, so none is lost; never to the notebook, the report or a log line.
"""

import hashlib
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import psycopg
from psycopg import sql

from ..errors import RotationError
from . import journal
from .record import Action, Incident
from ..role_set import KINDS, RoleSet, password_variable
from ..scram import Secret, encrypt, verifier_matches
from ..sqlfiles import load

# Passwords at the top of every list of leaked ones, and the school's obvious guesses. Each role is
# also tried with its own name (and name123, name1, name!).
COMMON_PASSWORDS = (
    "123456", "12345678", "123456789", "12345", "1234567", "111111", "123123", "password", "password1",
    "Password1", "Password123", "passw0rd", "P@ssw0rd", "qwerty", "qwerty123", "1q2w3e4r", "abc123", "iloveyou",
    "admin", "admin123", "welcome", "welcome1", "letmein", "monkey", "dragon", "sunshine", "football",
    "changeme", "secret", "Summer2025", "Winter2025", "music", "music123", "piano", "violin", "unm", "lobos",
)


def _stored_as(verifier: str | None) -> str:
    if verifier is None:
        return "none"
    if verifier.startswith("SCRAM-SHA-256$"):
        return "scram-sha-256"
    return "md5" if re.fullmatch(r"md5[0-9a-f]{32}", verifier) else "plain text"


def _is_common(role: str, verifier: str | None, candidates) -> bool | None:
    if verifier is None:
        return None
    for candidate in (*candidates, role, f"{role}123", f"{role}1", f"{role}!"):
        if verifier.startswith("SCRAM-SHA-256$"):
            matched = verifier_matches(candidate, verifier)
        elif verifier.startswith("md5"):  # PostgreSQL's md5 hash: md5(password || role name)
            matched = verifier == "md5" + hashlib.md5((candidate + role).encode()).hexdigest()
        else:
            matched = secrets.compare_digest(verifier.encode(), candidate.encode())
        if matched:
            return True
    return False


def _verifiers(conn: psycopg.Connection, names: list[str] | None) -> list[tuple] | None:
    if not conn.execute("SELECT has_table_privilege('pg_catalog.pg_authid', 'SELECT')").fetchone()[0]:
        return None
    return conn.execute(load("breach", "verifiers"), {"names": names}).fetchall()


def weak_passwords(conn: psycopg.Connection, names: list[str] | None = None, candidates=COMMON_PASSWORDS) -> pd.DataFrame:
    """Per role (the named ones, else every login role): how its password is stored and whether it is
    a common one (None: no password, or pg_authid unreadable). Which password matched is never said."""
    rows = _verifiers(conn, list(names) if names is not None else None)
    if rows is None:
        return pd.DataFrame({"role": list(names or []), "login": None,
                             "stored_as": "not read: pg_authid needs superuser", "common_password": None})
    return pd.DataFrame([(role, login, _stored_as(v), _is_common(role, v, candidates)) for role, login, v in rows],
                        columns=["role", "login", "stored_as", "common_password"])


@dataclass
class Rotation:
    roles: list[str]
    sources: dict[str, str]                 # role -> the variable its new password came from, or "generated"
    rotated: list[str]                      # roles whose stored hash now matches their new password
    file: Path | None                       # where the generated passwords are (None: none were set)
    _new: dict = field(default_factory=dict, repr=False)
    unread: str = ""                        # why the stored hashes were not read back after setting them ("": read)

    def new_password(self, role: str) -> Secret | None:
        return self._new.get(role) if role in self.rotated else None

    def table(self) -> pd.DataFrame:
        """Per role: where its new password came from and where the DBA finds it (never the password)."""
        def where(role):
            if role not in self.rotated:
                return "not rotated"
            return f"${self.sources[role]}" if self.sources[role] != "generated" else str(self.file)
        return pd.DataFrame([(r, self.sources[r], where(r)) for r in self.roles], columns=["role", "new password from", "find it in"])


def passwords_file(inc: Incident) -> Path:
    """Where the generated passwords of an incident go: runs/incidents/<id>.passwords (mode 0600)."""
    return inc.directory / f"{inc.id}.passwords"


def _write_private(path: Path, passwords: dict[str, Secret]) -> None:
    """Add `passwords` to the JSON file at `path`, readable by its owner only, replaced atomically. The file
    already there is read only where it is prep-ops' own (journal.read_private): never through a symbolic
    link, nor one another user or group could have written."""
    known = journal.read_private(path, "an incident's passwords file", "its passwords are kept and added to") or {}
    known.update({role: secret.reveal() for role, secret in passwords.items()})
    journal.write(path, known)  # owner-only (0600), replaced atomically, like an incident's record


def _variable(name: str, role_set: RoleSet) -> str | None:
    """The variable a new password for `name` may come from: its kind's for a role of `role_set`, its own
    name's for any other, but never a kind's (a suspect called "Dba!" reads as PREP_OPS_DBA_PASSWORD, the
    real dba's password); None: generated."""
    variable = password_variable(name, role_set)
    if name not in role_set.names.values() and variable in {password_variable(kind) for kind in KINDS}:
        return None
    return variable


def rotate(inc: Incident, conn: psycopg.Connection, names: list[str], role_set: RoleSet) -> Rotation:
    """New passwords for `names`: from $PREP_OPS_<ROLE>_PASSWORD when set, else generated and saved
    to `passwords_file(inc)` before they are set; applied as SCRAM verifiers (libpq's) in one transaction
    on `conn` (the incident's database). Each is the role's password in every database of the server.

    `role_set` names the variables: a role of the set reads its kind's (PREP_OPS_APP_PASSWORD), any
    other its own name's, unless that is a kind's (then generated). A drill passes RoleSet(), so its roles
    never take the real roles' passwords."""
    if not names:
        inc.note("no role needs a new password")
    new, sources = {}, {}
    for name in names:
        variable = _variable(name, role_set)
        given = os.environ.get(variable) if variable else None
        new[name], sources[name] = (Secret(given), variable) if given else (Secret(secrets.token_urlsafe(24)), "generated")
    stored = dict((r, v) for r, _, v in (_verifiers(conn, names) or []))
    verifiers = {n: encrypt(conn, s, n) for n, s in new.items()}
    for name in names:
        if sources[name] != "generated" and verifier_matches(new[name], stored.get(name)):
            message = (f"{sources[name]} holds the password {name} has now, so it would not change: "
                       "put a new one there, or unset it to have one generated")
            if inc.may_change:
                raise RotationError(message)
            inc.note(message)
    generated = {n: s for n, s in new.items() if sources[n] == "generated"}
    path = passwords_file(inc) if inc.may_change and generated else None
    if path:  # saved before they are set, so that a generated password is never lost
        _write_private(path, generated)
        inc.fact("new passwords", f"{path} (mode 0600, generated ones only; they are never shown)")
    ran = inc.run([Action(f"ALTER ROLE {sql.Identifier(n).as_string(None)} PASSWORD '***'",
                    sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(n), sql.Literal(verifiers[n])),
                    server_wide=True)  # a role's password is the same in every database of the server
             for n in new], conn)
    read = _verifiers(conn, names)
    if read is None:  # set (the statements ran), but a role that is no superuser may not read pg_authid back
        unread = "set, but not read back: reading the stored password hashes (pg_authid) needs a superuser" if ran else ""
        return Rotation(list(names), sources, list(names) if ran else [], path, new, unread)
    after = dict((r, v) for r, _, v in read)
    rotated = [n for n in names if verifier_matches(new[n], after.get(n))]
    return Rotation(list(names), sources, rotated, path, new)
