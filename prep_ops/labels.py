"""The label a backup's manifest, a verification and a recovery key a table by: `schema.table`.

A schema or table name may itself hold a dot (`"a.b".c` and `a."b.c"` are two tables), so a part holding
a dot or a double quote is written as SQL quotes it (`"a.b".c`, `a."b.c"`); every other part is as it is
(`public.users`, `public.Album`, `Reports Q1.totals`: the labels manifests have always held). Each label
names one table: a plain part has no dot and no quote, and a quoted one ends at its closing quote.
Before this, `a.b.c` named both tables above: the manifest kept one of them, and verify compared only
that one while it said PASS. The SQL files build the same label (LABEL_SQL's expression, written out).
"""

import re

_NEEDS_QUOTES = re.compile(r'[."]')


def part(name: str) -> str:
    """One part of a label: the name as it is, or quoted where it holds a dot or a double quote."""
    return '"' + name.replace('"', '""') + '"' if _NEEDS_QUOTES.search(name) else name


def label(schema: str, name: str) -> str:
    """The label of table `name` in `schema`."""
    return f"{part(schema)}.{part(name)}"
