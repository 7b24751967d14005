"""The engine under the notebook (issue 12), in a real ipykernel (jupyter_client):

* the kernel process never forks a child that runs Python, except the one long-lived engine
  (``python -S -m pyoci_nb.runtime.engine ...``): watched with the kernel's process connector
  (``proc_events.py``), whatever the cells do (fresh and named ``%%container`` cells,
  ``pyoci_nb.run``, ``Container.create/start/delete``);
* a cell's output reaches the front end while the cell runs, stdout and stderr apart, in the
  order written (receipt times of the iopub stream messages);
* a fresh container leaves nothing behind: no mount naming the magic's root in any mount
  namespace, no process of its pid namespace, no cgroup, no state entry, no bundle, nothing that
  accumulates in the session directory; also after an interrupt, and after the kernel is
  SIGKILLed while the cell runs (then also no session directory).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("jupyter_client")
pytest.importorskip("ipykernel")

from kernel_harness import (  # the fixtures magic_root, kernel, clean_after: conftest.py
    CellRun,
    ContainerTrace,
    Kernel,
    bundle_entries,
    mounts_under,
    sessions,
    state_entries,
    wait_for,
)
from proc_events import Proc, ProcessWatch

pytestmark = pytest.mark.root

ENGINE_MODULE = "pyoci_nb.runtime.engine"
CLI_MARKERS = ("pyoci_nb.cli", "pyoci_nb")  # `python -m pyoci_nb[.cli]`; the `pyoci` script by name
LEFTOVER_WAIT = 10  # seconds: everything of a fresh container is gone by then
PID_NS_LINE = 'echo "pidns $(readlink /proc/self/ns/pid)"\n'


# ------------------------------------------------------------------------------ the process tree
def is_python(exe: str, argv: list[str]) -> bool:
    name = os.path.basename(exe or (argv[0] if argv else ""))
    return re.fullmatch(r"python[0-9.]*[a-z]*", name) is not None


def runs_cli(argv: list[str]) -> bool:
    """``python [options] -m pyoci_nb[.cli] ...`` or the ``pyoci`` script (by itself or as the
    interpreter's script); the arguments after the module or script do not count."""
    if argv and os.path.basename(argv[0]) == "pyoci":
        return True
    for i, arg in enumerate(argv[1:], 1):
        if arg == "-m" or (arg.startswith("-m") and len(arg) > 2):
            module = argv[i + 1] if arg == "-m" and i + 1 < len(argv) else arg[2:]
            return module in CLI_MARKERS
        if not arg.startswith("-"):
            return os.path.basename(arg) == "pyoci"
    return False


def is_engine(proc: Proc) -> bool:
    return any(ENGINE_MODULE in argv for _, argv in proc.execs)


def forbidden_children(watch: ProcessWatch) -> list[str]:
    """What the kernel's children did that the engine rule forbids (empty: all well):
    a child that never executes a program (Python going on in a copy of the kernel), a child that
    runs the pyoci CLI or any Python other than the engine, more than one engine, an engine that
    did not stay; and a Python started below a non-engine child (e.g. through a shell)."""
    problems = []
    children = watch.children()
    engines = [p for p in children if is_engine(p)]
    for proc in children:
        if not proc.executed:
            problems.append(f"forked without executing a program (Python in a copy of the kernel): "
                            f"{proc.describe()}")
            continue
        if is_engine(proc):
            continue
        for exe, argv in proc.execs:
            if runs_cli(argv):
                problems.append(f"runs the pyoci CLI: {proc.describe()}")
                break
            if is_python(exe, argv):
                problems.append(f"runs Python: {proc.describe()}")
                break
        else:
            for below in watch.descendants(proc.pid):
                if any(is_python(exe, argv) or runs_cli(argv) for exe, argv in below.execs):
                    problems.append(f"runs Python below a child of the kernel ({proc.describe()}): "
                                    f"{below.describe()}")
    if len(engines) > 1:
        problems.append("more than one engine: " + "; ".join(p.describe() for p in engines))
    problems += [f"the engine did not stay: {p.describe()}" for p in engines if p.exited]
    return problems


@pytest.fixture
def process_watch_available():
    why = ProcessWatch.unavailable()
    if why is not None:
        pytest.skip(f"the netlink process connector is unavailable: {why}")
    # a control: the connector must report a fork and an exec of this very process
    with ProcessWatch(os.getpid()) as control:
        subprocess.run(["/bin/true"], check=True)
        seen = wait_for(lambda: [p for p in control.children() if p.executed and p.exited], timeout=5)
    if not seen:
        pytest.skip("the process connector delivers no events here (not the initial network namespace?)")


@pytest.fixture
def api_bundle(busybox_bundle: Path) -> Path:
    config = json.loads((busybox_bundle / "config.json").read_text())
    config["process"]["args"] = ["true"]
    (busybox_bundle / "config.json").write_text(json.dumps(config))
    return busybox_bundle


def test_the_kernel_never_forks_a_python_child(process_watch_available, magic_root, tmp_path,
                                                api_bundle, state_root):
    kernel = Kernel(magic_root, tmp_path)
    try:
        kernel_pid = kernel.pid
        with ProcessWatch(kernel_pid) as watch:
            # bash stays a second: its exec is seen (and its image read) however loaded the machine
            control = kernel.execute("%%bash\nsleep 1\n")
            assert control.ok, control.error
            cells = [
                "%%container\ntrue\n",
                "%%container\necho fresh\n",
                "%%container --name w\ntrue\n",
                "%%container --name w\necho warm\n",
                ("import pyoci_nb\n"
                 f"_r = pyoci_nb.run({str(api_bundle)!r}, ['true'], id='engine-run', root={str(state_root)!r})\n"
                 "assert _r.returncode == 0, _r\n"),
                ("from pyoci_nb import Container\n"
                 f"_c = Container.create({str(api_bundle)!r}, id='engine-api', root={str(state_root)!r})\n"
                 "_c.start()\n"
                 "assert _c.wait(timeout=60) == 0\n"
                 "_c.delete()\n"),
                "%%container\necho again\n",
                "%%container --name w\necho again\n",
                "%container_rm w\n",
            ]
            for code in cells:
                run = kernel.execute(code)
                assert run.ok, (code, run.error, run.stderr)
            watch.sync()  # every event of those cells read
        assert not watch.lost_events, "the process connector dropped events: the check would be incomplete"
        bash = [p for p in watch.children() if any(os.path.basename(exe) == "bash" for exe, _ in p.execs)]
        assert bash, "the control (%%bash) was not seen: the watch sees nothing"
        problems = forbidden_children(watch)
        assert problems == [], "the kernel's children:\n" + "\n".join(
            p.describe() for p in watch.children()) + "\nforbidden:\n" + "\n".join(problems)
    finally:
        kernel.shutdown()


# ------------------------------------------------------------------------------ live output
def lines_received(run: CellRun, name: str = "stdout") -> list[tuple[str, float]]:
    """Each complete line of a stream with the receipt time of the message that completed it."""
    lines, pending = [], ""
    for msg in run.streams(name):
        pending += msg["content"]["text"]
        *complete, pending = pending.split("\n")
        lines += [(line, msg["received"]) for line in complete]
    return lines


@pytest.mark.parametrize("magic", ["%%container", "%%container --name s"], ids=["fresh", "warm"])
def test_output_reaches_the_front_end_while_the_cell_runs(kernel, clean_after, magic):
    if "--name" in magic:
        assert kernel.execute(f"{magic}\ntrue\n").ok
    run = kernel.execute(f"{magic}\nfor i in 1 2 3; do echo $i; sleep 1; done\n")
    assert run.ok, (run.error, run.stderr)
    lines = lines_received(run)
    assert [line for line, _ in lines] == ["1", "2", "3"]
    first, last = lines[0][1], lines[-1][1]
    assert last - first >= 1.6, f"the lines arrived together ({last - first:.2f} s apart), not as written"
    assert run.replied - first >= 1.5, f"the first line came {run.replied - first:.2f} s before the reply"


@pytest.mark.parametrize("magic", ["%%container", "%%container --name s"], ids=["fresh", "warm"])
def test_stdout_and_stderr_arrive_apart_in_the_order_written(kernel, clean_after, magic):
    run = kernel.execute(f"{magic}\necho a\nsleep 0.2\necho b >&2\nsleep 0.2\necho c\n")
    assert run.ok, (run.error, run.stderr)
    assert run.stdout == "a\nc\n"
    assert run.stderr == "b\n"
    order = [(m["content"]["name"], m["content"]["text"]) for m in run.streams()]
    assert order == [("stdout", "a\n"), ("stderr", "b\n"), ("stdout", "c\n")], order
    received = [m["received"] for m in run.streams()]
    assert received == sorted(received)


# ------------------------------------------------------------------------------ nothing left
def session_growth(magic_root: Path) -> dict[str, int]:
    """How many entries each directory of the session tree holds (two levels deep)."""
    counts = {}
    for session in sessions(magic_root):
        for directory in [session, *(p for p in session.iterdir() if p.is_dir() and not p.is_symlink())]:
            try:
                counts[str(directory.relative_to(magic_root))] = len(os.listdir(directory))
            except OSError:
                pass
    return counts


def leftovers(magic_root: Path, traces: list[ContainerTrace]) -> list[str]:
    return [f"state entry {e}" for e in state_entries(magic_root)] + \
        [f"bundle {e}" for e in bundle_entries(magic_root)] + \
        [f"mount {line.strip()}" for line in mounts_under(magic_root, everywhere=True)] + \
        [left for trace in traces for left in trace.left()]


def run_observed(kernel: Kernel, code: str) -> tuple[str, ContainerTrace, list[dict]]:
    """Submit a fresh cell that prints its pid namespace then ``up``; once ``up`` arrives, trace
    the running container (pid namespace and cgroups) from the host."""
    msg_id = kernel.submit(f"%%container\n{PID_NS_LINE}echo up\n{code}")
    before = kernel.read_until(msg_id, "up\n")
    pid_ns = CellRun({}, before).stdout.split("pidns ", 1)[1].split("\n", 1)[0]
    return msg_id, ContainerTrace.of(pid_ns), before


def test_fresh_cells_leave_nothing_behind(kernel, clean_after):
    assert kernel.execute("%%container\ntrue\n").ok  # the session and its caches exist from here
    grown_from = session_growth(kernel.magic_root)
    traces = []
    for _ in range(3):
        msg_id, trace, before = run_observed(kernel, "sleep 0.3\n")
        run = kernel.collect(msg_id, before=before)
        assert run.ok, (run.error, run.stderr)
        traces.append(trace)
    assert wait_for(lambda: not leftovers(kernel.magic_root, traces), timeout=LEFTOVER_WAIT), \
        leftovers(kernel.magic_root, traces)
    assert wait_for(lambda: all(n <= grown_from.get(d, 0) for d, n in session_growth(kernel.magic_root).items()),
                    timeout=LEFTOVER_WAIT), (grown_from, session_growth(kernel.magic_root))


def test_interrupted_fresh_cell_leaves_nothing_behind(kernel, clean_after):
    msg_id, trace, before = run_observed(kernel, "sleep 100\n")
    kernel.manager.interrupt_kernel()
    run = kernel.collect(msg_id, timeout=20, before=before)  # sleep 100 would take 100 s
    assert not run.ok and run.error["ename"] == "KeyboardInterrupt"
    assert wait_for(lambda: not leftovers(kernel.magic_root, [trace]), timeout=LEFTOVER_WAIT), \
        leftovers(kernel.magic_root, [trace])


def test_kernel_killed_during_a_fresh_cell_leaves_nothing_behind(magic_root, tmp_path):
    kernel = Kernel(magic_root, tmp_path)
    try:
        kernel_pid = kernel.pid
        _, trace, _ = run_observed(kernel, "sleep 100\n")
        assert sessions(magic_root), "the kernel's session directory"
        os.kill(kernel_pid, signal.SIGKILL)  # only the kernel, as the OOM killer does
        assert wait_for(lambda: not Path(f"/proc/{kernel_pid}").exists()
                        or Path(f"/proc/{kernel_pid}/stat").read_text().split()[2] == "Z", timeout=10)
        assert wait_for(lambda: not (leftovers(magic_root, [trace]) or sessions(magic_root)),
                        timeout=LEFTOVER_WAIT), leftovers(magic_root, [trace]) + \
            [f"session {s}" for s in sessions(magic_root)]
    finally:
        kernel.shutdown(now=True)
