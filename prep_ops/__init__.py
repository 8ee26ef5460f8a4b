"""prep-ops: runbooks and helpers for the UNM Music Preparatory Division database.

The public API is imported on first use (PEP 562), so `prep-ops --help` and the CLI's argument
errors do not pay for pandas, SQLAlchemy and psycopg.
"""

import importlib

from .errors import CheckFailed, ConfirmationRequired, MigrationError, ParameterError, PrepOpsError, TargetError

_LAZY = {"Target": "db", "connect": "db", "mask_url": "db", "resolve_target": "db",
         "setup": "notebook", "check": "notebook", "skip": "notebook", "checks": "notebook", "summary": "notebook"}

__all__ = [
    "Target", "connect", "mask_url", "resolve_target",
    "PrepOpsError", "TargetError", "MigrationError", "ParameterError", "ConfirmationRequired", "CheckFailed",
    "setup", "check", "skip", "checks", "summary",
]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'prep_ops' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
