"""One trivial runbook: `prep-ops run` beside bare `papermill -k python3`, side by side in one run.

    python benchmarks/one_runbook.py [--repeat 5]

The notebook is a parameters cell and one print. Each round runs both (alternating which goes first)
in fresh processes, wall time from spawn to exit; prep-ops works in a temporary project folder
(PREP_OPS_HOME) and writes its usual run folder, summary.json and index.html (with the notebook
rendered as HTML). Prints a Markdown table of medians (min-max) and the ratio; issue 16's target is
1.2x papermill at most.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NOTEBOOK = {"cells": [
    {"cell_type": "code", "execution_count": None, "id": "p1", "metadata": {"tags": ["parameters"]}, "outputs": [],
     "source": ["x = 1  # a parameter"]},
    {"cell_type": "code", "execution_count": None, "id": "c2", "metadata": {}, "outputs": [], "source": ["print(x)"]}],
    "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                 "language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    folder = Path(tempfile.mkdtemp(prefix="prep-ops-bench-"))
    notebook = folder / "99_trivial.ipynb"
    notebook.write_text(json.dumps(NOTEBOOK))
    bindir = Path(sys.executable).parent
    commands = {
        "papermill -k python3": [str(bindir / "papermill"), "-k", "python3", "--no-progress-bar", str(notebook),
                                 str(folder / "out.ipynb")],
        "prep-ops run": [sys.executable, "-m", "prep_ops", "run", str(notebook)],
    }
    env = {**os.environ, "PREP_OPS_HOME": str(folder)}
    times = {name: [] for name in commands}
    for round_ in range(repeat):
        for name in commands if round_ % 2 == 0 else reversed(commands):
            began = time.perf_counter()
            subprocess.run(commands[name], capture_output=True, env=env, check=True)
            times[name].append(time.perf_counter() - began)
    print_table(times, "command", "papermill")


def print_table(times: dict[str, list[float]], what: str, base_name: str, digits: int = 2) -> None:
    """A Markdown table of each entry's median and min-max, and its ratio to the first entry's median."""
    base = statistics.median(next(iter(times.values())))
    print(f"| {what} | median | min-max | ratio to {base_name} |\n|---|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| `{name}` | {median:.{digits}f} s | {min(values):.{digits}f}-{max(values):.{digits}f} s | {median / base:.2f}x |")


if __name__ == "__main__":
    main()
