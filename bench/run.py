"""Run every benchmark of bench/ one after the other and print their reports.

    python bench/run.py [-n RUNS]

Each benchmark is its own script (``cli_startup.py``: CLI start-up against ``python -c pass``;
``runtime_start.py``: container start against runc; ``cell_latency.py``: the ``%%container``
magic in a kernel; ``cri_pods.py``: Kubernetes' pod flow through containerd's CRI plugin
against runc) and is run with this Python; a missing or failing one is reported, the
others still run.  Benchmarks print ratios; nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
BENCHMARKS = ["cli_startup.py", "runtime_start.py", "cell_latency.py", "cri_pods.py", "images.py"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=None, help="runs per measurement (each script's default)")
    args = parser.parse_args()
    failed = []
    for name in BENCHMARKS:
        script = BENCH / name
        print(f"== {name}", flush=True)
        if not script.exists():
            print("   (not present)")
            continue
        argv = [sys.executable, str(script)] + (["-n", str(args.runs)] if args.runs else [])
        if subprocess.run(argv).returncode != 0:
            failed.append(name)
        print(flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
