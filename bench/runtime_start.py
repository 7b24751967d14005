"""Container start cost: the median wall time of running ``true`` in a busybox container via
``pyoci run`` (the CLI), via ``pyoci_nb.run()`` (the Python API, in this process) and via
``runc run`` (Debian's runc), measured in one process with the runs interleaved, in an order
that turns every round, so that the machine's state affects all three alike.
Prints each median and its ratio to runc next to the targets (CLI <= 2x runc, API <= 0.5x runc).
For context it also times the bare start-up of the CLI's interpreter (``python -c pass``, with
the same site-packages start-up as the ``pyoci`` script): the part of the CLI's time that is
not pyoci's.  The package's bytecode is compiled first, as ``pip install`` does: with
PYTHONDONTWRITEBYTECODE set, an edited checkout would otherwise be recompiled on every CLI run.
Needs root.  Not a test.

    python bench/runtime_start.py [-n RUNS] [--runc PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TARGETS = {"pyoci run (CLI)": 2.0, "pyoci_nb.run() (API)": 0.5}


def pyoci_cli() -> list[str]:
    """The installed ``pyoci`` entry point next to this Python, else ``python -m pyoci_nb``."""
    beside = Path(sys.executable).parent / "pyoci"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    return [sys.executable, "-m", "pyoci_nb"]


def cli_interpreter(cli: list[str]) -> str:
    """The interpreter that runs the CLI: the console script's shebang, else this Python."""
    if len(cli) == 1:
        with open(cli[0], "rb") as f:
            first = f.readline().decode(errors="replace")
        if first.startswith("#!") and first[2:].split():
            return first[2:].split()[0]
    return sys.executable


def make_bundle(directory: Path) -> Path:
    from pyoci_nb import rootfs
    from pyoci_nb.spec.defaults import default_config

    bundle = directory / "bundle"
    bundle.mkdir()
    rootfs.busybox(bundle / "rootfs")
    config = default_config()
    config["process"]["terminal"] = False
    config["process"]["args"] = ["true"]
    (bundle / "config.json").write_text(json.dumps(config, indent=2))
    return bundle


def timed_command(argv: list[str], env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")
    return elapsed


def timed_api(bundle: Path, root: Path, container_id: str) -> float:
    import pyoci_nb

    start = time.perf_counter()
    result = pyoci_nb.run(bundle, id=container_id, root=str(root))
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"pyoci_nb.run() returned {result.returncode}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=21, help="runs per runtime (default 21)")
    parser.add_argument("--runc", default=shutil.which("runc") or "/usr/sbin/runc", help="runc binary")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("runtime_start: skipped (containers need root)")
        return 0
    if not os.access(args.runc, os.X_OK):
        print(f"runtime_start: skipped ({args.runc} not found)")
        return 0

    import compileall

    compileall.compile_dir(str(REPO / "pyoci_nb"), quiet=1)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    work = Path(tempfile.mkdtemp(prefix="pyoci-bench-"))
    times: dict[str, list[float]] = {"pyoci run (CLI)": [], "pyoci_nb.run() (API)": [], "runc run": []}
    roots = {name: work / f"state-{i}" for i, name in enumerate(times)}
    startup = "python -c pass (context)"
    times[startup] = []
    try:
        bundle = make_bundle(work)
        cli = pyoci_cli()
        interpreter = cli_interpreter(cli)
        measure = {
            "pyoci run (CLI)": lambda i: timed_command(
                cli + ["--root", str(roots["pyoci run (CLI)"]), "run", "--bundle", str(bundle),
                       f"bench-cli-{i}"], env),
            "pyoci_nb.run() (API)": lambda i: timed_api(bundle, roots["pyoci_nb.run() (API)"],
                                                        f"bench-api-{i}"),
            "runc run": lambda i: timed_command(
                [args.runc, "--root", str(roots["runc run"]), "run", "--bundle", str(bundle),
                 f"bench-runc-{i}"], env),
            startup: lambda i: timed_command([interpreter, "-c", "pass"], env),
        }
        names = list(measure)
        for i in range(args.runs + 1):  # run 0 warms caches up and is not counted
            # the order turns every run, so each one follows each other equally often (the
            # kernel finishes tearing a container down after its runtime has returned)
            for name in names[i % len(names):] + names[:i % len(names)]:
                seconds = measure[name](i)
                if i:
                    times[name].append(seconds)
    finally:
        for name, root in roots.items():  # (the start-up row has no root)
            command = [args.runc] if name == "runc run" else pyoci_cli()
            for entry in root.iterdir() if root.is_dir() else ():
                subprocess.run(command + ["--root", str(root), "delete", "--force", entry.name],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        shutil.rmtree(work, ignore_errors=True)

    runc_median = statistics.median(times["runc run"])
    print(f"container start of `true` (busybox), median of {args.runs} interleaved runs each")
    print(f"  CLI: {' '.join(cli)}")
    for name, samples in times.items():
        median = statistics.median(samples)
        ratio = median / runc_median
        line = f"  {name:22s} {median * 1000:8.1f} ms   {ratio:5.2f}x runc"
        if name in TARGETS:
            verdict = "met" if ratio <= TARGETS[name] else "NOT met"
            line += f"   target <= {TARGETS[name]}x runc: {verdict}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
