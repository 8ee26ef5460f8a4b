"""Where each runbook's time went in one `prep-ops run`: kernel start, set-up cell, the rest.

    python benchmarks/run_timeline.py runs/<timestamp>-<random>/

From papermill's own timestamps in each executed notebook (the notebook's start and end, every cell's
start and end): "kernel" is from the notebook's start to its first cell's start (kernel boot, waiting
for it to be ready), "set-up" the cell that calls `po.setup(` (its imports: prep_ops, pandas, SQLAlchemy,
ipython-sql, and the connection), "rest" the runbook's own cells. Times are seconds; "from" is when the
notebook started, counted from the first one's start (so side-by-side runbooks show as overlapping).
"""

import json
import sys
from datetime import datetime
from pathlib import Path


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def timeline(folder: Path) -> list[dict]:
    """Per executed notebook in `folder`: name, start, kernel, set-up and rest seconds, total."""
    rows = []
    for path in sorted(folder.glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text())
        meta = nb["metadata"].get("papermill", {})
        cells = [c for c in nb["cells"] if c["cell_type"] == "code" and c["metadata"].get("papermill", {}).get("start_time")]
        if not meta.get("start_time") or not cells:
            continue
        start, end = _at(meta["start_time"]), _at(meta["end_time"] or cells[-1]["metadata"]["papermill"]["end_time"])
        setup = next((c for c in cells if "po.setup(" in "".join(c["source"])), None)
        setup_s = setup["metadata"]["papermill"]["duration"] or 0.0 if setup else 0.0
        kernel = (_at(cells[0]["metadata"]["papermill"]["start_time"]) - start).total_seconds()
        total = (end - start).total_seconds()
        rows.append({"notebook": path.stem, "start": start, "kernel": kernel, "setup": setup_s,
                     "rest": total - kernel - setup_s, "total": total})
    return rows


def main() -> None:
    rows = timeline(Path(sys.argv[1]))
    first = min(r["start"] for r in rows)
    print("| runbook | from | kernel | set-up | rest | total |\n|---|--:|--:|--:|--:|--:|")
    for r in sorted(rows, key=lambda r: r["start"]):
        print(f"| {r['notebook']} | {(r['start'] - first).total_seconds():.1f} | {r['kernel']:.1f} | "
              f"{r['setup']:.1f} | {r['rest']:.1f} | {r['total']:.1f} |")
    print(f"| sum | | {sum(r['kernel'] for r in rows):.1f} | {sum(r['setup'] for r in rows):.1f} | "
          f"{sum(r['rest'] for r in rows):.1f} | {sum(r['total'] for r in rows):.1f} |")


if __name__ == "__main__":
    main()
