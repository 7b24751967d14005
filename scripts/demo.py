#!/usr/bin/env python3
"""The README's main job: build an OCI bundle and run a real container in it, twice.

1. ``Bundle.create`` writes config.json (what ``runc spec`` writes, without a terminal) and a
   busybox root filesystem; the bundle is printed and validated.
2. The container runs through the Python API, ``pyoci_nb.run(bundle, ...)``, and its output is
   captured and printed.
3. The same container runs through the runc-compatible command line,
   ``python -m pyoci_nb run --bundle BUNDLE ID``, as an engine would run it.

Needs root (namespaces, mounts, cgroups).  Exits non-zero when any step fails.
Usage: ``python scripts/demo.py [--bundle DIR]`` (default: a temporary directory, removed after).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyoci_nb import Bundle  # noqa: E402
from pyoci_nb.spec.defaults import default_config  # noqa: E402
from pyoci_nb.spec.problems import ValidationReport  # noqa: E402

SCRIPT = r"echo hello from $(hostname); id; cat /proc/1/cmdline | tr '\0' ' '; echo"


def build(path: Path) -> Bundle:
    config = default_config()
    config["process"]["terminal"] = False
    config["process"]["args"] = ["sh", "-c", SCRIPT]
    config["hostname"] = "pyoci-demo"
    bundle = Bundle.create(path, spec=config, rootfs="busybox")
    print(bundle)
    report = ValidationReport(bundle.validate(for_start=True), source=str(bundle.path))
    print(report)
    if not report.ok:
        raise SystemExit("the bundle is not valid")
    return bundle


def check_output(how: str, returncode: int, stdout: str) -> None:
    print(f"--- {how}: exit status {returncode} ---\n{stdout.rstrip()}")
    if returncode != 0 or "hello from pyoci-demo" not in stdout:
        raise SystemExit(f"{how}: the container did not print what was expected")


def force_delete(container_id: str) -> None:
    """``run`` deletes its container when it exits; make sure of it even after a failure."""
    subprocess.run([sys.executable, "-m", "pyoci_nb", "delete", "--force", container_id],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)


def run_with_python_api(bundle: Bundle, container_id: str) -> None:
    import pyoci_nb

    print(f">>> pyoci_nb.run(bundle, id={container_id!r}, capture_output=True)")
    try:
        result = pyoci_nb.run(bundle, id=container_id, capture_output=True, timeout=60)
    finally:
        force_delete(container_id)
    stdout = result.stdout.decode() if isinstance(result.stdout, bytes) else result.stdout
    check_output("pyoci_nb.run(bundle)", result.returncode, stdout or "")


def run_with_cli(bundle: Bundle, container_id: str) -> None:
    command = [sys.executable, "-m", "pyoci_nb", "run", "--bundle", str(bundle.path), container_id]
    print("$", " ".join(command))
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    finally:
        force_delete(container_id)
    if result.stderr:
        print(result.stderr.rstrip(), file=sys.stderr)
    check_output("python -m pyoci_nb run", result.returncode, result.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, help="where to build the bundle (default: a temporary directory)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("the demo runs real containers: run it as root", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="pyoci-demo-") as scratch:
        bundle = build(args.bundle or Path(scratch) / "bundle")
        run_with_python_api(bundle, f"demo-api-{os.getpid()}")
        run_with_cli(bundle, f"demo-cli-{os.getpid()}")
    print("demo finished: the bundle was built and the container ran twice")
    return 0


if __name__ == "__main__":
    sys.exit(main())
