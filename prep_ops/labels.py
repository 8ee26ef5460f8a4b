"""The label a backup's manifest, a verification and a recovery key a table by: `schema.table`.

A schema or table name may itself hold a dot (`"a.b".c` and `a."b.c"` are two tables), so a part holding
a dot or a double quote is written as SQL quotes it (`"a.b".c`, `a."b.c"`); every other part is as it is
(`public.users`, `public.Album`, `Reports Q1.totals`: the labels manifests have always held). Each label
names one table: a plain part has no dot and no quote, and a quoted one ends at its closing quote.
Before this, `a.b.c` named both tables above: the manifest kept one of them, and verify compared only
that one while it said PASS. The SQL files that build labels write the same expression out (a CASE per part).
"""

import re

_NEEDS_QUOTES = re.compile(r'[."]')


def part(name: str) -> str:
    """One part of a label: the name as it is, or quoted where it holds a dot or a double quote."""
    return '"' + name.replace('"', '""') + '"' if _NEEDS_QUOTES.search(name) else name


def label(schema: str, name: str) -> str:
    """The label of table `name` in `schema`."""
    return f"{part(schema)}.{part(name)}"


def parts(text: str) -> tuple[str, str] | None:
    """(schema, name) of a label made by `label`; None for a text that is no such label."""
    names, at = [], 0
    for _ in range(2):
        if text.startswith('"', at):
            end, name = at + 1, []
            while True:
                close = text.find('"', end)
                if close < 0:
                    return None
                name.append(text[end:close])
                if text.startswith('"', close + 1):  # a doubled quote inside the name
                    name.append('"')
                    end = close + 2
                    continue
                at = close + 1
                break
            names.append("".join(name))
        else:
            dot = text.find(".", at) if not names else len(text)
            if dot < 0 or '"' in text[at:dot] or "." in text[at:dot]:
                return None
            names.append(text[at:dot])
            at = dot
        if not names[-1]:
            return None
        if len(names) == 1:
            if not text.startswith(".", at):
                return None
            at += 1
    return (names[0], names[1]) if at == len(text) else None


def as_labelled(recorded: dict, current) -> dict:
    """`recorded` (a manifest's tables or schema, by label) with each key of a manifest written before labels
    quoted a dot or a double quote (the two names joined as they are: `a.b.c`, `public.my"t`) moved to the
    label of the one table among `current` (labels) it names; a key that fits none, or several, stays as it is."""
    now = set(current)
    joined: dict[str, list[str]] = {}
    for key in now:
        found = parts(key)
        if found is not None:
            joined.setdefault(f"{found[0]}.{found[1]}", []).append(key)
    moved = {}
    for key, value in recorded.items():
        found = parts(key)
        ours = found is not None and label(*found) == key  # a label as this prep-ops writes it: never moved
        fits = joined.get(key, []) if key not in now and not ours else []
        moved[fits[0] if len(fits) == 1 and fits[0] not in recorded else key] = value
    return moved
