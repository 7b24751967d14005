"""Cell latency of ``%%container`` in a real Jupyter kernel, against ``!runc run`` in the same kernel.

Starts one ipykernel (jupyter_client), loads the extension and times whole cells as a notebook
front end sees them: from sending ``execute_request`` to the kernel's ``execute_reply``.  The
cells, run interleaved (one of each per round) so that the machine's state affects all alike:

* ``pass``                                  -- the kernel round trip, for reference;
* ``%%container --name x`` + ``true``       -- exec into a warm named container;
* ``%%container`` + ``true``                -- a fresh container per cell (bundle, run, delete);
* ``!runc run`` of a prepared busybox bundle -- what a user would type without the magic;
* ``!pyoci run`` of the same bundle          -- the runtime's CLI alone, without the magic;
* ``pyoci_nb.run(bundle, ["true"])``        -- the Python API, which in a (multi-threaded) kernel
  goes through the runtime's fork server (it captures output instead of streaming it, so the
  magic cannot use it; shown to measure what the CLI costs).

Prints the median of each and its ratio to ``!runc run``.  Needs root.  Not a test.

    python bench/cell_latency.py [-n RUNS]
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from runtime_start import make_bundle  # noqa: E402 -- the same `true` bundle as the runtime benchmark


def fast_tmp() -> str:
    """Bundles are many small files: keep them on a tmpfs when there is one."""
    for candidate in ("/run", "/dev/shm"):
        if os.access(candidate, os.W_OK):
            return candidate
    return tempfile.gettempdir()


class BenchKernel:
    def __init__(self, env: dict, cwd: str):
        from jupyter_client import KernelManager

        self.manager = KernelManager(kernel_name="python3")
        self.manager.start_kernel(env=env, cwd=cwd)
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def run(self, code: str) -> float:
        """Wall time of one cell, send to execute_reply; fails loudly if the cell failed."""
        start = time.perf_counter()
        reply = self.client.execute(code, reply=True, timeout=300)
        elapsed = time.perf_counter() - start
        content = reply["content"]
        if content["status"] != "ok":
            raise SystemExit(f"cell failed: {code!r}: {content.get('ename')}: {content.get('evalue')}")
        return elapsed

    def interrupt_after_output(self, code: str, marker: str) -> float:
        """Run ``code``; once ``marker`` has been printed, interrupt the kernel: the time from the
        interrupt to the execute_reply."""
        msg_id = self.client.execute(code)
        while True:
            msg = self.client.get_iopub_msg(timeout=300)
            if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream"
                    and marker in msg["content"]["text"]):
                break
        start = time.perf_counter()
        self.manager.interrupt_kernel()
        while True:
            reply = self.client.get_shell_msg(timeout=300)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        elapsed = time.perf_counter() - start
        if reply["content"].get("ename") != "KeyboardInterrupt":
            raise SystemExit(f"interrupt did not interrupt: {reply['content']}")
        return elapsed

    def shutdown(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=15, help="rounds (default 15)")
    parser.add_argument("--runc", default=shutil.which("runc") or "/usr/sbin/runc", help="runc binary")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (containers)")
        return 1

    work = Path(tempfile.mkdtemp(prefix="pyoci-bench-cells-", dir=fast_tmp()))
    magic_root, runc_root, pyoci_root = work / "magic", work / "runc-state", work / "pyoci-state"
    env = dict(os.environ, PYOCI_MAGIC_ROOT=str(magic_root),
               PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    kernel = None
    try:
        bundle = make_bundle(work)
        kernel = BenchKernel(env, str(work))
        kernel.run("%load_ext pyoci_nb\nimport pyoci_nb")
        pyoci = shlex.join([sys.executable, "-m", "pyoci_nb"])
        cells = {
            "kernel round trip (pass)": lambda i: "pass",
            "%%container --name x (warm)": lambda i: "%%container --name x\ntrue",
            "%%container (fresh)": lambda i: "%%container\ntrue",
            "!runc run": lambda i: f"!{args.runc} --root {runc_root} run --bundle {bundle} bench-runc-{i}",
            "!pyoci run": lambda i: f"!{pyoci} --root {pyoci_root} run --bundle {bundle} bench-pyoci-{i}",
            "pyoci_nb.run() (fork server)": lambda i: (
                f"_r = pyoci_nb.run({str(bundle)!r}, ['true'], id='bench-api-{i}', root={str(pyoci_root)!r})\n"
                "assert _r.returncode == 0, _r"),
        }
        for name, cell in cells.items():  # warm up: imports, probe, busybox cache, named container
            kernel.run(cell("warm"))
        times: dict[str, list[float]] = {name: [] for name in cells}
        for i in range(args.runs):
            for name, cell in cells.items():
                times[name].append(kernel.run(cell(i)))
        interrupts = [kernel.interrupt_after_output("%%container\necho started\nsleep 100", "started")
                      for _ in range(max(3, args.runs // 3))]
        runc = statistics.median(times["!runc run"])
        print(f"cell latency in one ipykernel, median of {args.runs} rounds (interleaved)")
        print(f"{'cell':34} {'median':>9} {'vs !runc run':>13}")
        for name, values in times.items():
            median = statistics.median(values)
            print(f"{name:34} {median * 1000:7.1f}ms {median / runc:12.2f}x")
        print(f"{'interrupt of a running cell':34} {statistics.median(interrupts) * 1000:7.1f}ms "
              f"(kernel interrupt to execute_reply, container killed and removed)")
        return 0
    finally:
        if kernel is not None:
            kernel.shutdown()
        from pyoci_nb.notebook.kernel_helper import force_delete_all

        force_delete_all([args.runc], str(runc_root))
        force_delete_all([sys.executable, "-m", "pyoci_nb"], str(pyoci_root), env=env)
        for session in (magic_root.iterdir() if magic_root.exists() else []):
            force_delete_all([sys.executable, "-m", "pyoci_nb"], str(session / "state"), env=env)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
