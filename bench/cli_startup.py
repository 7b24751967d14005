"""Start-up cost of the pyoci command line: `pyoci --version` and `pyoci spec` against a bare
`python -c pass` (median wall time of N runs each, and the ratio).  Not a test.

    python bench/cli_startup.py [-n RUNS]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def median_seconds(argv: list[str], runs: int, cwd: str | None = None, before=None) -> float:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    times = []
    for _ in range(runs):
        if before:
            before()
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=21, help="runs per command (default 21)")
    args = parser.parse_args()
    baseline = median_seconds([sys.executable, "-c", "pass"], args.runs)
    version = median_seconds([sys.executable, "-m", "pyoci_nb", "--version"], args.runs)
    with tempfile.TemporaryDirectory() as bundle:
        config = os.path.join(bundle, "config.json")

        def remove_config():
            if os.path.exists(config):
                os.unlink(config)

        spec = median_seconds([sys.executable, "-m", "pyoci_nb", "spec"], args.runs, cwd=bundle, before=remove_config)
    print(f"python -c pass   : {baseline * 1000:7.1f} ms (median of {args.runs})")
    print(f"pyoci --version  : {version * 1000:7.1f} ms  ratio {version / baseline:5.2f}x  (+{(version - baseline) * 1000:.1f} ms)")
    print(f"pyoci spec       : {spec * 1000:7.1f} ms  ratio {spec / baseline:5.2f}x  (+{(spec - baseline) * 1000:.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
