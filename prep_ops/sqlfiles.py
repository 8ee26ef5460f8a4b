"""Load the .sql files that live beside the code that runs them."""

from functools import cache

from .paths import PACKAGE_DIR


@cache
def load(capability: str, name: str) -> str:
    """The text of prep_ops/sql/<capability>/<name>.sql."""
    return (PACKAGE_DIR / "sql" / capability / f"{name}.sql").read_text()
