"""How fast the CLI answers what needs no database, measured side by side in one run.

    python benchmarks/startup.py [--repeat 10]

Each command runs in a fresh process, `--repeat` times, alternating the order each round; the
baseline is `python -c "import click, tabulate"` (what any click + tabulate CLI pays). Wall time from
spawn to exit, as a user waits for it. Prints a Markdown table of medians (and min-max) and each
command's ratio to the baseline; issue 16's target is 2.5x the baseline at most.
"""

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    'python -c "import click, tabulate" (baseline)': [sys.executable, "-c", "import click, tabulate"],
    "prep-ops --help": [sys.executable, "-m", "prep_ops", "--help"],
    "prep-ops helth (usage error)": [sys.executable, "-m", "prep_ops", "helth"],
    "prep-ops run no_such_runbook": [sys.executable, "-m", "prep_ops", "run", "no_such_runbook"],
    "prep-ops list": [sys.executable, "-m", "prep_ops", "list"],
    "python -c \"import pandas\" (for scale)": [sys.executable, "-c", "import pandas"],
    "python -c \"import papermill\" (for scale)": [sys.executable, "-c", "import papermill"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    repeat = parser.parse_args().repeat
    times = {name: [] for name in COMMANDS}
    names = list(COMMANDS)
    for round_ in range(repeat):
        for name in names if round_ % 2 == 0 else reversed(names):
            began = time.perf_counter()
            subprocess.run(COMMANDS[name], capture_output=True)
            times[name].append(time.perf_counter() - began)
    base = statistics.median(next(iter(times.values())))
    print("| command | median | min-max | ratio to baseline |\n|---|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| `{name}` | {median:.3f} s | {min(values):.3f}-{max(values):.3f} s | {median / base:.2f}x |")


if __name__ == "__main__":
    main()
