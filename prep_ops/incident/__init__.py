"""The emergency procedures: the incident record (record.py) and what its runbooks do, step by step.

`record` keeps an incident's timeline and report; `lockout`, `recovery`, `performance`, `breach` and
`passwords` are what the procedures need beyond the capability modules; `recovery_steps`,
`performance_steps` and `security_steps` are the steps of runbooks 10, 11 and 12, one call each; and
`drills/` makes the scratch incidents they are rehearsed on.

Only the record is imported here, so that capability modules may use `Action` without importing the
procedures.
"""

from ..errors import StepFailed
from .naming import drill_label
from .record import MODES, Action, Event, Hold, Incident, check_id, check_mode, drill_server, incidents_dir, new_id

__all__ = ["MODES", "Action", "Event", "Hold", "Incident", "StepFailed", "check_id", "check_mode", "drill_label",
           "drill_server", "incidents_dir", "new_id"]
