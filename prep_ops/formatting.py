"""How numbers, money, sizes and tables are shown to a person: one place, used by explore, health,
the charts, the CLI and the notebooks (STYLE.md: numbers rounded with units, money as US$ 1,234.50,
tables without a meaningless 0..N index). Values themselves stay numbers: only their display changes.
"""

import math
import textwrap

import pandas as pd

_SIZE_UNITS = ("bytes", "kB", "MB", "GB", "TB")


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT


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


def table(frame: pd.DataFrame, formats=None, *, index: bool | None = None):
    """A DataFrame styled for a notebook: the 0..N index hidden (kept when it means something: named,
    or not a plain range), columns formatted with `formats` ({column: function or format string}, or
    one function for every column)."""
    meaningless = isinstance(frame.index, pd.RangeIndex) and frame.index.name is None
    styled = frame.style.format(formats or {}, na_rep="")
    return styled.hide(axis="index") if (meaningless if index is None else not index) else styled
