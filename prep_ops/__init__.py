"""prep-ops: runbooks and helpers for the UNM Music Preparatory Division database."""

from .db import Target, connect, mask_url, resolve_target
from .errors import CheckFailed, ConfirmationRequired, MigrationError, ParameterError, PrepOpsError, TargetError
from .notebook import check, checks, setup, skip, summary

__all__ = [
    "Target", "connect", "mask_url", "resolve_target",
    "PrepOpsError", "TargetError", "MigrationError", "ParameterError", "ConfirmationRequired", "CheckFailed",
    "setup", "check", "skip", "checks", "summary",
]
