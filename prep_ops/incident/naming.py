"""An incident's id and mode, where its files go, and the names of the scratch databases and roles
its drill makes.

A drill's database and roles carry the incident's id (`drill_label`), never a fixed name, so two runs
at once never share them and a run's clean-up drops only its own (see drills/stale.py for what a
killed run left).
"""

import hashlib
import re
import secrets
from datetime import datetime
from pathlib import Path

from ..db import Target
from ..errors import ParameterError
from ..paths import runs_dir

MODES = ("drill", "live")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}")
LABEL_LENGTH = 34  # a drill's label in names: prep_ops_security_<label>_contractor stays within 63 bytes


def drill_server(target: Target) -> tuple[Target, str]:
    """Where a drill makes its scratch database: the target's server when it is a scratch server
    (embedded, or $PREP_OPS_SCRATCH=1), else the embedded server; and a one-line note saying which."""
    if target.scratch:
        return target, f"drill on the target's server ({target.masked_url})"
    from ..verify import scratch_server

    return scratch_server(), "drill on the embedded server: the target is not a scratch server, so it is left alone"


def check_mode(mode) -> str:
    """`mode` when it is one of MODES, else ParameterError."""
    if mode not in MODES:
        raise ParameterError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


def incidents_dir() -> Path:
    """Where incident reports and their executed notebooks go: runs/incidents/."""
    return runs_dir() / "incidents"


def check_id(incident_id) -> str:
    """`incident_id` when it is a name (letters, digits, '.', '_', '-'; at most 80; never a path), else ParameterError."""
    if not isinstance(incident_id, str) or not _ID.fullmatch(incident_id):
        raise ParameterError(f"incident_id must be letters, digits, '.', '_' or '-' (at most 80, "
                             f"starting with a letter or digit), not {str(incident_id)[:100]!r}")
    return incident_id


def new_id(kind: str) -> str:
    """A fresh incident id: the time, a random part (two runs started in the same second differ) and the
    kind, e.g. 20261126-031502-a3f9-data-recovery."""
    return f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}-{kind}"


def drill_label(incident_id: str, length: int = LABEL_LENGTH) -> str:
    """The incident id as a part of an identifier: lower-case letters, digits and '_', at most `length`
    characters. Where that changed the id (a '-' or '.', upper case, or cut short), a short hash of the
    exact id is kept at the end, so two different ids never give the same label."""
    check_id(incident_id)
    plain = re.sub(r"[^a-z0-9]+", "_", incident_id.lower()).strip("_")
    if plain == incident_id and len(plain) <= length:
        return plain
    digest = hashlib.sha256(incident_id.encode()).hexdigest()[:8]
    return f"{plain[:length - 9].rstrip('_')}_{digest}".lstrip("_")
