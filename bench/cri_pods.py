"""Kubernetes' pod flow through containerd's CRI plugin: runc and pyoci as two handlers
(RuntimeClasses) of one private containerd, measured side by side in one run.

Per round and handler (the handlers' order turns every round): RunPodSandbox (pod start),
CreateContainer + StartContainer (container start), StopContainer of a shell that exits on
SIGTERM (container stop) and StopPodSandbox + RemovePodSandbox (pod removal).  Prints the median
of each, and pyoci's ratio to runc next to the goal (within 1.3x of runc).  The containerd is
the one of tests/engines/test_cri.py (tests/engines/cri_helpers.py: its own root, state and
sockets, in a scratch network namespace; pods on its CNI bridge).  The shims run this
checkout's pyoci, its bytecode compiled first.  Needs root.  Not a test.

    python bench/cri_pods.py [-n ROUNDS]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests" / "engines")]

GOAL = 1.3
STEPS = ["pod start", "container start", "container stop", "pod removal"]
# exits at once on SIGTERM (`wait` returns for a trapped signal), as a well-behaved server does
SERVER = ["sh", "-c", "trap 'exit 0' TERM; sleep 1000000 & wait"]


def pyoci_binary() -> str:
    beside = Path(sys.executable).parent / "pyoci"
    return str(beside) if beside.is_file() else (shutil.which("pyoci") or "")


def one_round(cri, handler: str, times: dict[str, list[float]]) -> None:
    from cri_helpers import Pod, remove_cgroups

    t0 = time.perf_counter()
    pod = Pod(cri, handler)
    t1 = time.perf_counter()
    try:
        cid = pod.create("server", SERVER)
        t2 = time.perf_counter()
        pod.stop(cid, timeout=10)
        t3 = time.perf_counter()
        if pod.status(cid).exit_code != 0:
            raise SystemExit(f"{handler}: the container did not exit on SIGTERM: {pod.status(cid)}")
    finally:
        pod.remove()
        t4 = time.perf_counter()
        remove_cgroups(pod.cgroup_parent.lstrip("/"))   # the parent the runtimes made for it
    for step, elapsed in zip(STEPS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
        times[step].append(elapsed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=10, help="rounds per handler (default 10)")
    args = parser.parse_args()
    from cri_helpers import load_cri_api, missing_requirements, private_cri, remove_cgroups

    reason = missing_requirements()
    pyoci = pyoci_binary()
    if reason or not pyoci:
        print(f"cri_pods: skipped ({reason or 'no pyoci next to this Python or on PATH'})")
        return 0
    import compileall

    from pyoci_nb import rootfs

    # this checkout's runtime, compiled as `pip install` does (containerd's shims inherit the
    # environment; with PYTHONDONTWRITEBYTECODE an edited checkout is recompiled at every call)
    compileall.compile_dir(str(REPO / "pyoci_nb"), quiet=1)
    os.environ["PYTHONPATH"] = str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")

    handlers = {"runc": shutil.which("runc"), "pyoci": pyoci}
    times = {h: {step: [] for step in STEPS} for h in handlers}
    with tempfile.TemporaryDirectory(prefix="pyoci-bench-cri-") as tmp:
        rootfs.busybox(Path(tmp) / "rootfs")
        api = Path(tmp) / "api"
        api.mkdir()
        pb2, pb2_grpc = load_cri_api(api)
        with private_cri(handlers, Path(tmp) / "rootfs", pb2, pb2_grpc) as cri:
            from cri_helpers import Pod

            for handler in handlers:  # warm-up: page cache, snapshots, the CNI plugins
                warm = Pod(cri, handler)
                warm.remove()
                remove_cgroups(warm.cgroup_parent.lstrip("/"))
            for i in range(args.runs):
                order = list(handlers) if i % 2 == 0 else list(reversed(handlers))
                for handler in order:
                    one_round(cri, handler, times[handler])
    print(f"CRI pod flow, {args.runs} rounds per handler, medians (ms); goal: pyoci within {GOAL}x of runc")
    print(f"  {'step':<18}{'runc':>9}{'pyoci':>9}{'ratio':>8}")
    worst = 0.0
    for step in STEPS:
        runc_ms = statistics.median(times["runc"][step]) * 1000
        pyoci_ms = statistics.median(times["pyoci"][step]) * 1000
        ratio = pyoci_ms / runc_ms
        worst = max(worst, ratio) if step != "pod removal" else worst
        print(f"  {step:<18}{runc_ms:>9.1f}{pyoci_ms:>9.1f}{ratio:>7.2f}x")
    print(f"  worst of pod start, container start and stop: {worst:.2f}x "
          f"({'within' if worst <= GOAL else 'over'} the {GOAL}x goal)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
