"""An incident's Markdown report, runs/incidents/<id>.md: header, the steps with what each found and
did, the statements executed, the checks, and the timeline."""

from datetime import datetime, timezone

_KINDS = (("found", "Found"), ("did", "Did"), ("note", "Note"), ("would", "Would run with confirm=True"),
          ("check", "Check"), ("failed", "Failed"))


def _sql_line(text: str) -> str:
    """A statement as the report's SQL block shows it: with its semicolon, a remark after it as a comment."""
    code, sep, remark = text.partition("  -- ")
    return code.rstrip(";") + ";" + (f"  -- {remark}" if sep else "")


def markdown(inc) -> str:
    """The report of Incident `inc`."""
    mode = inc.mode + ("" if inc.mode == "drill" else f" (confirm={inc.confirm})")
    lines = [f"# Incident {inc.id}: {inc.title}", "",
             f"- **mode:** {mode}",
             f"- **target:** `{inc.target.masked_url}`",
             f"- **opened:** {inc.opened:%Y-%m-%d %H:%M:%S} UTC",
             f"- **written:** {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC",
             f"- **outcome:** {inc.outcome()}",
             f"- **record:** `{inc.record_path.name}` (what is held and how to undo it, written before each change)"]
    lines += [f"- **{name}:** {value}" for name, value in inc.facts.items()]
    wide = {kind: [e.text.partition("  -- ")[0] for e in inc.events if e.kind == kind and e.text.endswith(inc.SERVER_WIDE)]
            for kind in ("ran", "would")}
    for kind, label in (("ran", "server-wide changes made"), ("would", "server-wide changes with confirm=True")):
        if wide[kind]:
            lines.append(f"- **{label}** ({len(wide[kind])}: roles are the same in every database of this server): "
                         + "; ".join(f"`{t}`" for t in wide[kind]))
    if inc.holds:
        lines.append(f"- **still in place:**{inc.holds_sentence().removeprefix(' STILL IN PLACE:')}")
    for step in inc.steps:
        took = f", {(step.ended - step.began).total_seconds():.1f} s" if step.ended else ""
        lines += ["", f"## {step.number}. {step.title}", "",
                  f"_{step.began:%H:%M:%S} UTC{took}_" + (" — **FAILED**" if step.failed else ""), ""]
        events = [e for e in inc.events if e.step == step.number]
        for kind, label in _KINDS:
            lines += [f"- {label}: {e.text}" for e in events if e.kind == kind]
        ran = [e.text for e in events if e.kind == "ran"]
        if ran:
            lines += ["", "Statements executed:", "", "```sql", *map(_sql_line, ran), "```"]
    lines += ["", "## Timeline", "", "| time (UTC) | step | event |", "|---|---|---|"]
    for event in inc.events:
        text = event.text.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {event.at:%H:%M:%S} | {event.step or ''} | {event.kind}: {text} |")
    return "\n".join(lines) + "\n"
