"""Where prep_ops keeps its files: the project folder, the embedded database, runs."""

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def project_dir() -> Path:
    """The project folder: $PREP_OPS_HOME, else the source checkout holding this package, else the cwd."""
    if os.environ.get("PREP_OPS_HOME"):
        return Path(os.environ["PREP_OPS_HOME"]).expanduser().resolve()
    checkout = PACKAGE_DIR.parent
    if (checkout / "pyproject.toml").exists() and (checkout / "notebooks").is_dir():
        return checkout
    return Path.cwd()


def notebooks_dir() -> Path:
    """The folder of runbooks."""
    return project_dir() / "notebooks"


def runs_dir() -> Path:
    """The folder that `prep-ops run` writes executed notebooks into."""
    return project_dir() / "runs"
