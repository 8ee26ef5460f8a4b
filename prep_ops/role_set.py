"""The five roles of roles-as-code by kind, their names (`RoleSet`), and where their passwords come from.

Roles are cluster-wide: `RoleSet.with_prefix` gives a private set of names, e.g. per test. A login
role's password comes from a parameter, else $PREP_OPS_<ROLE>_PASSWORD, else (when asked) is generated.
"""

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import ParameterError
from .scram import Secret

KINDS = ("readonly", "reporter", "analyst", "app", "dba")
LOGIN_KINDS = ("reporter", "analyst", "app", "dba")


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


def password_variable(role: str, role_set: RoleSet = RoleSet()) -> str:
    """The environment variable that may hold a password for `role`: its kind's for a role of
    `role_set` or a kind (e.g. PREP_OPS_REPORTER_PASSWORD), else PREP_OPS_<ROLE NAME>_PASSWORD."""
    kind = next((kind for kind, name in role_set.names.items() if name == role), role)
    return "PREP_OPS_" + (re.sub(r"[^A-Z0-9]+", "_", kind.upper()).strip("_") or "ROLE") + "_PASSWORD"


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
