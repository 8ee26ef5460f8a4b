"""`prep-ops run --all`, sequential and side by side, beside eleven bare papermill runs of an empty notebook.

    python benchmarks/run_all.py [--repeat 2]

In a temporary project folder (PREP_OPS_HOME) with a copy of notebooks/ and an embedded server of its
own, started once before the first round (so no round pays initdb), each round runs, alternating the
order, in fresh processes, wall time from spawn to exit:
  1. eleven sequential `papermill -k python3` runs of a trivial notebook (a parameters cell and one
     print): issue 16's yardstick for `run --all`;
  2. `prep-ops run --all -j 1`: every runbook one after the other (the order before `-j`);
  3. `prep-ops run --all`: the default, `-j` the number of cores (prep_ops/schedule.py: 01 first, then
     the readers side by side, then the target's changers one at a time, the drills filling the free
     slots beside all of those, and last, with nothing beside them, the ones that watch the whole server).
Every `run --all` must pass (exit 0), else the benchmark stops. The load average before and after each
step is printed: a busy machine shows there. Prints a Markdown table of medians and ratios.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from one_runbook import NOTEBOOK, print_table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    repeat = parser.parse_args().repeat
    folder = Path(tempfile.mkdtemp(prefix="prep-ops-bench-all-"))
    shutil.copytree(HERE.parent / "notebooks", folder / "notebooks")
    trivial = folder / "99_trivial.ipynb"
    trivial.write_text(json.dumps(NOTEBOOK))
    env = {**os.environ, "PREP_OPS_HOME": str(folder)}
    env.pop("DATABASE_URL", None)
    prep_ops = [sys.executable, "-m", "prep_ops"]
    papermill = [str(Path(sys.executable).parent / "papermill"), "-k", "python3", "--no-progress-bar",
                 str(trivial), str(folder / "out.ipynb")]
    steps = {
        "11 x bare papermill, empty notebook": [papermill] * 11,
        "prep-ops run --all -j 1": [prep_ops + ["run", "--all", "-j", "1"]],
        f"prep-ops run --all (-j {len(os.sched_getaffinity(0))})": [prep_ops + ["run", "--all"]],
    }
    subprocess.run(prep_ops + ["db", "start"], env=env, check=True, capture_output=True)
    times = {name: [] for name in steps}
    try:
        for round_ in range(repeat):
            for name in steps if round_ % 2 == 0 else reversed(steps):
                load = os.getloadavg()[0]
                began = time.perf_counter()
                for command in steps[name]:
                    done = subprocess.run(command, env=env, capture_output=True, text=True)
                    if done.returncode:
                        sys.exit(f"{name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
                times[name].append(time.perf_counter() - began)
                print(f"round {round_ + 1}: {name}: {times[name][-1]:.1f} s (load average {load:.2f} before, "
                      f"{os.getloadavg()[0]:.2f} after)", file=sys.stderr)
    finally:
        subprocess.run(prep_ops + ["db", "stop"], env=env, capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
    print_table(times, "step", "11 x papermill", digits=1)


if __name__ == "__main__":
    main()
