"""An incident's Markdown report, runs/incidents/<id>.md: header, the steps with what each found and
did, the statements executed, the checks, and the timeline.

What a run recorded quotes names from the database (tables, roles, queries): each such text is written
as literal Markdown (formatting.markdown), statements one a line in their code block
(formatting.statement: runnable as shown), so that no name adds a heading, a list item, a table cell or HTML to the report.
"""

import re
from datetime import datetime, timezone

from ..formatting import markdown as literal
from ..formatting import statement

_KINDS = (("found", "Found"), ("did", "Did"), ("note", "Note"), ("would", "Would run with confirm=True"),
          ("check", "Check"), ("failed", "Failed"))


def _sql_line(text: str) -> str:
    """A statement as the report's SQL block shows it: with its semicolon, a remark after it as a comment."""
    code, sep, remark = statement(text).partition("  -- ")
    return code.rstrip(";") + ";" + (f"  -- {remark}" if sep else "")


def _code(text: str) -> str:
    """A statement as a Markdown code span on one line: between more backticks than any run of them in it
    (CommonMark), so a name holding backticks cannot end the span and write Markdown after it."""
    text = statement(text)
    ticks = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def markdown(inc) -> str:
    """The report of Incident `inc`."""
    mode = inc.mode + ("" if inc.mode == "drill" else f" (confirm={inc.confirm})")
    lines = [f"# Incident {inc.id}: {literal(inc.title)}", "",
             f"- **mode:** {mode}",
             f"- **target:** `{inc.target.masked_url}`",
             f"- **opened:** {inc.opened:%Y-%m-%d %H:%M:%S} UTC",
             f"- **written:** {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC",
             f"- **outcome:** {literal(inc.outcome())}",
             f"- **record:** `{inc.record_path.name}` (what is held and how to undo it, written before each change)"]
    lines += [f"- **{literal(name)}:** {literal(value)}" for name, value in inc.facts.items()]
    wide = {kind: [e.text.partition("  -- ")[0] for e in inc.events if e.kind == kind and e.text.endswith(inc.SERVER_WIDE)]
            for kind in ("ran", "would")}
    for kind, label in (("ran", "server-wide changes made"), ("would", "server-wide changes with confirm=True")):
        if wide[kind]:
            lines.append(f"- **{label}** ({len(wide[kind])}: roles are the same in every database of this server): "
                         + "; ".join(_code(t) for t in wide[kind]))
    if inc.holds:
        lines.append(f"- **still in place:**{literal(inc.holds_sentence().removeprefix(' STILL IN PLACE:'))}")
    for step in inc.steps:
        took = f", {(step.ended - step.began).total_seconds():.1f} s" if step.ended else ""
        lines += ["", f"## {step.number}. {literal(step.title)}", "",
                  f"_{step.began:%H:%M:%S} UTC{took}_" + (" — **FAILED**" if step.failed else ""), ""]
        events = [e for e in inc.events if e.step == step.number]
        for kind, label in _KINDS:
            lines += [f"- {label}: {literal(e.text)}" for e in events if e.kind == kind]
        ran = [e.text for e in events if e.kind == "ran"]
        if ran:
            code = [_sql_line(text) for text in ran]
            fence = "`" * max([3, *(len(run) + 1 for line in code for run in re.findall("`+", line))])
            lines += ["", "Statements executed:", "", f"{fence}sql", *code, fence]
    lines += ["", "## Timeline", "", "| time (UTC) | step | event |", "|---|---|---|"]
    for event in inc.events:
        lines.append(f"| {event.at:%H:%M:%S} | {event.step or ''} | {event.kind}: {literal(event.text)} |")
    return "\n".join(lines) + "\n"
