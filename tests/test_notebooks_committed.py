"""Runbooks follow the outline: committed clean, a tagged parameters cell with database_url first."""

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("*.ipynb"))


def test_there_are_runbooks():
    assert len(NOTEBOOKS) >= 2


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "code" and "NBVAL_CHECK_OUTPUT" not in "".join(cell["source"]):
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, "".join(cell["source"])[:60]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outline(path):
    cells = json.loads(path.read_text())["cells"]
    assert cells[0]["cell_type"] == "markdown" and "Purpose" in "".join(cells[0]["source"])
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and "".join(tagged[0]["source"]).startswith("database_url = None")
    assert any("po.summary(" in "".join(c["source"]) for c in cells[-2:])


@pytest.mark.parametrize("path", NOTEBOOKS + FIXTURES, ids=lambda p: p.stem)
def test_every_cell_has_its_own_id(path):
    # nbformat 4.5 requires cell ids: without them every validation warns (MissingIDFieldWarning) and
    # nbformat will make it an error; the notebook is valid by nbformat's own validator
    import nbformat

    ids = [cell.get("id") for cell in json.loads(path.read_text())["cells"]]  # as committed (nbformat adds missing ones)
    assert None not in ids and len(set(ids)) == len(ids), ids
    nbformat.validate(nbformat.reads(path.read_text(), as_version=4))
