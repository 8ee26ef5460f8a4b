"""Passwords that never show, and their SCRAM-SHA-256 verifiers as PostgreSQL stores them.

A verifier to set is made by libpq (`encrypt`, PQencryptPasswordConn), so the clear text never
reaches the server or its log. Checking a stored verifier against a candidate password (is it still
the one given, is it a common one) follows RFC 5802 / RFC 7677 here, the one copy of those steps.
"""

import base64
import hashlib
import hmac
import os
import re
import stringprep
import unicodedata

import psycopg

from .errors import ParameterError

SCRAM_ITERATIONS = 4096  # PostgreSQL's default scram_iterations
_VERIFIER = re.compile(r"^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$")


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


def reveal(password: "str | Secret") -> str:
    """The clear text of a password given as text or as a Secret."""
    return password.reveal() if isinstance(password, Secret) else password


def encrypt(conn: psycopg.Connection, password: "str | Secret", role: str) -> str:
    """The SCRAM-SHA-256 verifier of `password` for `role`, made by libpq with the server's iteration count."""
    return conn.pgconn.encrypt_password(reveal(password).encode(), role.encode(), b"scram-sha-256").decode()


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


def _keys(password: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    """StoredKey and ServerKey of RFC 5802, section 3."""
    salted = hashlib.pbkdf2_hmac("sha256", _saslprep(password), salt, iterations)
    stored_key = hashlib.sha256(hmac.new(salted, b"Client Key", "sha256").digest()).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    return stored_key, server_key


def scram_verifier(password: "str | Secret", *, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier of `password` in PostgreSQL's format, made without a connection.

    For fixtures and drills that need a known salt or have no connection; to set a password, use `encrypt`.
    """
    salt = os.urandom(16) if salt is None else salt
    stored_key, server_key = _keys(reveal(password), salt, iterations)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def verifier_matches(password: "str | Secret", verifier: str | None) -> bool:
    """True when `verifier` (from pg_authid) is a SCRAM-SHA-256 verifier of `password`."""
    match = _VERIFIER.match(verifier or "")
    if not match:
        return False
    iterations, salt, stored, server = match.groups()
    stored_key, server_key = _keys(reveal(password), base64.b64decode(salt), int(iterations))
    return hmac.compare_digest(stored_key, base64.b64decode(stored)) and hmac.compare_digest(server_key, base64.b64decode(server))
