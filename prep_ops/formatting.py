"""How numbers, money, sizes and tables are shown to a person: one place, used by explore, health,
the charts, the CLI and the notebooks (STYLE.md: numbers rounded with units, money as US$ 1,234.50,
tables without a meaningless 0..N index). Values themselves stay numbers: only their display changes.

A name from a database is data: `terminal` shows it as text in a terminal, `markdown` in Markdown,
`chart_label` in a matplotlib chart and `table` in a notebook's HTML table, so that no name (a table called "t\x1b[2K",
"x\nPASS", "a$^$" or "<img src=x onerror=...>") can steer what it appears in.
pandas is imported on first use: the CLI shows names without loading it.
"""

import html
import math
import re
import textwrap
from collections import Counter

_SIZE_UNITS = ("bytes", "kB", "MB", "GB", "TB")

# what a terminal, a pager or a line reader acts on instead of showing: C0 and C1 controls (ESC, CR, LF,
# NEL ...), DEL, the line and paragraph separators, and the bidirectional controls that reorder text
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# what Markdown (CommonMark, GFM tables, Jupyter's $math$) or HTML inside it reads as markup
_MARKUP = re.compile(r"[\\`*_\[\]<>|&~$#]")


def _missing(value) -> bool:
    import pandas as pd

    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT


def _visible(match: re.Match) -> str:
    char = match[0]
    return _SHORT.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def terminal(text, *, lines: bool = False) -> str:
    """`text` (a name, or a message quoting one) as a terminal shows it, on one line: each control
    character written out as Python writes it (ESC as `\\x1b`, a line break as `\\n`), so that no name
    moves the cursor, clears a line, recolours the output or forges a line of its own. Other text is
    unchanged. `lines`: line breaks and tabs kept (text of several lines made by prep-ops itself)."""
    text = str(text)
    if lines:
        return "\n".join(_CONTROL.sub(lambda m: m[0] if m[0] == "\t" else _visible(m), line)
                         for line in text.split("\n"))
    return _CONTROL.sub(_visible, text)


# a quoted identifier or a string literal of a statement prep-ops composed (psycopg's quoting: "" and '' inside)
_QUOTED = re.compile(r"""(?<!\w)(E)('(?:[^']|'')*')|("(?:[^"]|"")*"|'(?:[^']|'')*')""")


def _unicode_escaped(match: re.Match) -> str:
    prefix, quoted = match[1] or "", match[2] or match[3]
    if not _CONTROL.search(quoted):
        return match[0]
    if prefix:  # E'...': its own escape \uXXXX is exact there
        return prefix + _CONTROL.sub(lambda m: f"\\u{ord(m[0]):04x}", quoted)
    body = quoted.replace("\\", "\\\\")
    return "U&" + _CONTROL.sub(lambda m: f"\\{ord(m[0]):04x}", body)


def statement(text) -> str:
    """A SQL statement prep-ops composed, shown on one line that still runs as the same statement: a
    quoted name or string holding control characters is written in PostgreSQL's Unicode-escape form
    (`U&"evil\\000aPASS"`, a backslash as `\\\\`), which names exactly that object. `terminal`'s `\\n` would
    name another one: a table literally called `evil\\nPASS`, which an attacker may have made too."""
    return terminal(_QUOTED.sub(_unicode_escaped, str(text)))


def plan_difference(now: list[str], shown: list[str], *, listed: int = 3) -> str:
    """How the statements a change would run `now` differ from the plan `shown`, in one phrase: "now also A, B;
    no longer C" (the first `listed` of each, and how many more), or that only their order differs."""
    def some(texts: list[str]) -> str:
        return ", ".join(texts[:listed]) + (f" and {len(texts) - listed} more" if len(texts) > listed else "")

    def beyond(texts: list[str], other: list[str]) -> list[str]:  # each statement as often as it is in texts
        left, extra = Counter(other), []  # and not in other: a statement planned once and now twice is added
        for text in texts:
            if left[text]:
                left[text] -= 1
            else:
                extra.append(f"{text} (again)" if text in other else text)
        return extra

    added, gone = beyond(now, shown), beyond(shown, now)
    return "; ".join([f"now also {some(added)}"] * bool(added) + [f"no longer {some(gone)}"] * bool(gone)) \
        or ("the same statements in another order" if now != shown else "the same statements")


def markdown(text) -> str:
    """`text` as literal inline Markdown: on one line (see `terminal`), every character Markdown, GFM
    tables, math or HTML would read as markup escaped with a backslash; a `_` inside a word (`tuition_payments`),
    which never starts emphasis, stays as it is."""
    return _MARKUP.sub(lambda m: m[0] if m[0] == "_" and _inside_word(m) else "\\" + m[0], terminal(text))


def _inside_word(match: re.Match) -> bool:
    text, at = match.string, match.start()
    return 0 < at < len(text) - 1 and text[at - 1].isalnum() and text[at + 1].isalnum()


def chart_label(text, width: int | None = None) -> str:
    """`text` as a matplotlib label shows it literally: on one line (see `terminal`), and every `$`
    escaped, so that no name starts mathtext (two `$` make the rest math; an invalid formula such as
    "a$^$" stops the chart from being drawn at all). With `width`, a longer text keeps its start and its
    end around a `…` (a schema and a table name of 63 characters each would leave the figure)."""
    text = terminal(text)
    if width is not None and len(text) > width:
        head = (width - 1) // 2
        text = text[:head] + "…" + text[len(text) - (width - 1 - head):]
    return text.replace("$", "\\$")


def money(amount, currency: str = "US$") -> str:
    """An amount as `US$ 1,234.50` (two decimals, thousands separated, minus before the currency); "" when missing."""
    if _missing(amount):
        return ""
    amount = round(float(amount), 2)
    sign = "-" if amount < 0 else ""
    return f"{sign}{currency} {abs(amount):,.2f}"


def number(value, unit: str = "", digits: int = 1) -> str:
    """A number rounded to `digits` decimals with thousands separated, and its unit: `263.1 ms`, `1,204 rows`."""
    if _missing(value):
        return ""
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and digits == 0):
        text = f"{int(value):,}"
    else:
        text = f"{float(value):,.{digits}f}"
    return f"{text} {unit}".rstrip()


def percent(share, digits: int = 1) -> str:
    """A share between 0 and 1 as a percentage: 0.2053 → `20.5%`."""
    return "" if _missing(share) else f"{float(share) * 100:,.{digits}f}%"


def seconds(value) -> str:
    """A duration in seconds, rounded: `12.3 s`."""
    return number(value, "s", 1)


def size(n) -> str:
    """Bytes as pg_size_pretty shows them (1 kB = 1024 bytes): `8,192 bytes`, `214 MB`."""
    n = float(n or 0)
    for unit in _SIZE_UNITS:
        if abs(n) < 10 * 1024 or unit == _SIZE_UNITS[-1]:
            return f"{n:,.0f} {unit}"
        n /= 1024


def shorten(text, width: int) -> str:
    """`text` on one line, cut at a word boundary to at most `width` characters, ending in `…` when cut
    (for a label where wrapping is impossible; tables wrap instead)."""
    text = " ".join(str(text or "").split())
    if len(text) <= width:
        return text
    return textwrap.shorten(text, width, placeholder=" …") if " " in text[:width] else text[:width - 1] + "…"


def table(frame, formats=None, *, index: bool | None = None):
    """A DataFrame styled for a notebook: the 0..N index hidden (kept when it means something: named,
    or not a plain range), columns formatted with `formats` ({column: function or format string}, or
    one function for every column). Every value, label and name is HTML-escaped (a Styler, unlike a
    DataFrame, writes strings into its HTML as they are): a name or a query in it is text, never markup."""
    import pandas as pd

    meaningless = isinstance(frame.index, pd.RangeIndex) and frame.index.name is None
    frame = frame.rename_axis(index=[_html(n) for n in frame.index.names], columns=[_html(n) for n in frame.columns.names])
    for i, dtype in enumerate(frame.dtypes):  # a list of names (an array column) is escaped as the text it shows
        if dtype == object:
            frame.isetitem(i, frame.iloc[:, i].map(_container_text))
    styled = (frame.style.format(formats or {}, na_rep="", escape="html")
              .format_index(escape="html", axis=0).format_index(escape="html", axis=1))
    return styled.hide(axis="index") if (meaningless if index is None else not index) else styled


def _html(name):
    return html.escape(name) if isinstance(name, str) else name


def _container_text(value):
    return str(value) if isinstance(value, (list, tuple, dict, set)) else value
