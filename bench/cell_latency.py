"""Cell latency of ``%%container`` in a real Jupyter kernel, against IPython's own ``%%bash`` cell.

Starts one ipykernel (jupyter_client), loads the extension (``%load_ext pyoci_nb``) and times whole
cells as a notebook front end sees them: from sending ``execute_request`` to receiving the
kernel's ``execute_reply``.  One round runs each cell once, in an order that turns every round,
so that the machine's state affects all alike; a first round (warm-up: imports, the rootfs cache,
the named container, the engine) is not counted.  The cells:

* ``pass``                                  -- the kernel round trip;
* ``%%bash`` + ``true``                     -- no isolation at all: THE FLOOR, the ratios are to it;
* ``%%container --name w`` + ``true``       -- warm: exec into a running named container;
* ``%%container`` + ``true``                -- fresh: a new container per cell, removed after it;
* ``pyoci_nb.run(bundle, ["true"])``        -- the Python API, in the kernel;
* ``subprocess.run(["runc", "run", ...])``  -- Debian's runc (``/usr/sbin/runc``) on the same
  prepared busybox bundle, in the kernel (the row is left out, with a note, without runc).

Prints median, min and max (ms) and the median's ratio to ``%%bash``, then the goals of issue 12
with PASS/MISS: warm <= 1.5x ``%%bash``, fresh <= 3x ``%%bash``, ``pyoci_nb.run()`` <= 0.5x
``runc run`` (both in the kernel).  Then the interrupt latency: a ``%%container`` cell running
``echo up; sleep 100`` is interrupted through the kernel manager once ``up`` has arrived; the
time from the interrupt to the execute_reply.  A cell that fails prints its error and the script
exits non-zero; a missed goal does not (nothing here asserts a timing).  Needs root.  Not a test.
Compile the package first, as ``pip install`` does (the runtime's processes would otherwise
compile an edited checkout on every start):

    python -m compileall -q pyoci_nb && python bench/cell_latency.py -n 15 [--runc PATH] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from runtime_start import make_bundle  # the same `true` bundle as the runtime benchmark

FLOOR = "%%bash true"
WARM = "%%container --name w true (warm)"
FRESH = "%%container true (fresh)"
API = "pyoci_nb.run(bundle, ['true'])"
RUNC = "subprocess.run([runc, 'run', ...])"
#: (goal, row, limit, against): the goals of issue 12
GOALS = [("warm %%container <= 1.5x %%bash", WARM, 1.5, FLOOR),
         ("fresh %%container <= 3x %%bash", FRESH, 3.0, FLOOR),
         ("pyoci_nb.run() <= 0.5x runc run (both in the kernel)", API, 0.5, RUNC)]


def fast_tmp() -> str:
    """Bundles are many small files: keep them on a tmpfs when there is one."""
    for candidate in ("/run", "/dev/shm"):
        if os.access(candidate, os.W_OK):
            return candidate
    return tempfile.gettempdir()


class CellFailed(SystemExit):
    """A benchmark cell failed: its error text, and a non-zero exit."""

    def __init__(self, code: str, content: dict):
        error = "\n".join(content.get("traceback") or []) or f"{content.get('ename')}: {content.get('evalue')}"
        error = re.sub(r"\x1b\[[0-9;]*m", "", error)  # IPython's colours
        super().__init__(f"cell failed:\n{code}\n--\n{error}")


class BenchKernel:
    """One real ipykernel with the extension loaded."""

    def __init__(self, env: dict, cwd: str):
        from jupyter_client import KernelManager

        self.manager = KernelManager(kernel_name="python3")
        self.manager.start_kernel(env=env, cwd=cwd)
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def _reply(self, msg_id: str, timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            reply = self.client.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply

    def run(self, code: str) -> float:
        """Seconds from sending the cell's execute_request to its execute_reply; a failed cell
        raises ``CellFailed``."""
        start = time.perf_counter()
        msg_id = self.client.execute(code)
        reply = self._reply(msg_id)
        elapsed = time.perf_counter() - start
        if reply["content"]["status"] != "ok":
            raise CellFailed(code, reply["content"])
        return elapsed

    def interrupt_after_output(self, code: str, marker: str) -> float:
        """Run ``code``; once a stdout stream message with ``marker`` has arrived, interrupt the
        kernel: seconds from the interrupt to the cell's execute_reply."""
        msg_id = self.client.execute(code)
        deadline = time.monotonic() + 120
        while True:
            msg = self.client.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "error":
                raise CellFailed(code, msg["content"])
            if msg["msg_type"] == "stream" and marker in msg["content"]["text"]:
                break
        start = time.perf_counter()
        self.manager.interrupt_kernel()
        reply = self._reply(msg_id, timeout=60)
        elapsed = time.perf_counter() - start
        if reply["content"].get("ename") != "KeyboardInterrupt":
            raise CellFailed(code + "\n(interrupted: expected KeyboardInterrupt)", reply["content"])
        return elapsed

    def shutdown(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=False)


def cells(bundle: Path, api_root: Path, runc: str | None, runc_root: Path) -> dict:
    """Row name -> the cell's code for round ``i``."""
    rows = {
        "pass": lambda i: "pass",
        FLOOR: lambda i: "%%bash\ntrue",
        WARM: lambda i: "%%container --name w\ntrue",
        FRESH: lambda i: "%%container\ntrue",
        API: lambda i: (f"_r = pyoci_nb.run({str(bundle)!r}, ['true'], id='bench-api-{i}', root={str(api_root)!r})\n"
                        "assert _r.returncode == 0, _r"),
    }
    if runc:
        rows[RUNC] = lambda i: (
            f"_p = subprocess.run([{runc!r}, '--root', {str(runc_root)!r}, 'run', '--bundle', {str(bundle)!r}, "
            f"'bench-runc-{i}'], stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
            "assert _p.returncode == 0, _p.stderr.decode(errors='replace')")
    return rows


def measure(kernel: BenchKernel, rows: dict, runs: int) -> dict[str, list[float]]:
    """Interleaved rounds, one of each cell per round, the order turned by one each round; the
    first (warm-up) round is not counted."""
    names = list(rows)
    for name in names:
        kernel.run(rows[name]("warm"))
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(runs):
        turn = i % len(names)
        for name in names[turn:] + names[:turn]:
            times[name].append(kernel.run(rows[name](i)))
    return times


def report(times: dict[str, list[float]], interrupts: list[float], runs: int, notes: list[str]) -> dict:
    floor = statistics.median(times[FLOOR])
    result = {"runs": runs, "rows": {}, "goals": [], "notes": notes}
    print(f"cell latency in one ipykernel: execute_request -> execute_reply, {runs} interleaved rounds "
          f"(+1 warm-up not counted)")
    print(f"{'cell':40} {'median':>9} {'min':>9} {'max':>9} {'vs %%bash':>10}")
    for name, values in times.items():
        median = statistics.median(values)
        result["rows"][name] = {"median_ms": median * 1000, "min_ms": min(values) * 1000,
                                "max_ms": max(values) * 1000, "ratio_to_bash": median / floor,
                                "samples_ms": [v * 1000 for v in values]}
        print(f"{name:40} {median * 1000:7.1f}ms {min(values) * 1000:7.1f}ms {max(values) * 1000:7.1f}ms "
              f"{median / floor:9.2f}x")
    print("goals (issue 12)")
    for label, name, limit, against in GOALS:
        if name not in times or against not in times:
            print(f"  {label:54} {'n/a':>7}  (not measured)")
            result["goals"].append({"goal": label, "ratio": None, "limit": limit, "met": None})
            continue
        ratio = statistics.median(times[name]) / statistics.median(times[against])
        met = ratio <= limit
        print(f"  {label:54} {ratio:6.2f}x  {'PASS' if met else 'MISS'}")
        result["goals"].append({"goal": label, "ratio": ratio, "limit": limit, "met": met})
    median = statistics.median(interrupts)
    print(f"interrupt of a running %%container cell (interrupt -> execute_reply): median {median * 1000:.1f}ms, "
          f"min {min(interrupts) * 1000:.1f}ms, max {max(interrupts) * 1000:.1f}ms ({len(interrupts)} runs)")
    result["interrupt_ms"] = {"median": median * 1000, "min": min(interrupts) * 1000,
                              "max": max(interrupts) * 1000, "samples": [v * 1000 for v in interrupts]}
    for note in notes:
        print(f"note: {note}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=15, help="counted rounds (default 15)")
    parser.add_argument("--runc", default="/usr/sbin/runc", help="runc binary (default /usr/sbin/runc)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (containers)")
        return 1
    notes = []
    runc = args.runc if os.access(args.runc, os.X_OK) else None
    if runc is None:
        notes.append(f"no runc at {args.runc}: the runc row and the pyoci_nb.run() goal are left out "
                     "(apt-get install runc)")

    work = Path(tempfile.mkdtemp(prefix="pyoci-bench-cells-", dir=fast_tmp()))
    magic_root, runc_root, api_root = work / "magic", work / "runc-state", work / "api-state"
    env = dict(os.environ, PYOCI_MAGIC_ROOT=str(magic_root),
               PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    kernel = None
    try:
        bundle = make_bundle(work)
        kernel = BenchKernel(env, str(work))
        kernel.run("%load_ext pyoci_nb\nimport subprocess\nimport pyoci_nb")
        times = measure(kernel, cells(bundle, api_root, runc, runc_root), args.runs)
        interrupts = [kernel.interrupt_after_output("%%container\necho up\nsleep 100", "up")
                      for _ in range(max(3, args.runs // 5))]
        result = report(times, interrupts, args.runs, notes)
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        return 0
    finally:
        if kernel is not None:
            kernel.shutdown()
        if runc:
            delete_all([runc], runc_root)
        delete_all([sys.executable, "-m", "pyoci_nb"], api_root, env)
        for session in (magic_root.iterdir() if magic_root.exists() else []):
            delete_all([sys.executable, "-m", "pyoci_nb"], session / "state", env)
        shutil.rmtree(work, ignore_errors=True)


def delete_all(runtime: list[str], state_root: Path, env: dict | None = None) -> None:
    """``RUNTIME --root STATE delete --force ID`` for everything left in a state root."""
    if not state_root.is_dir():
        return
    for entry in sorted(state_root.iterdir()):
        subprocess.run([*runtime, "--root", str(state_root), "delete", "--force", entry.name],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60, env=env, check=False)


if __name__ == "__main__":
    sys.exit(main())
