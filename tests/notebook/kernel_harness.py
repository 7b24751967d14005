"""The real-kernel harness of the notebook tests: a real ipykernel driven over ZeroMQ
(jupyter_client), the cells' iopub messages as a front end sees them, and what a kernel's magic
leaves on the host (session directories under ``PYOCI_MAGIC_ROOT``, state entries, bundles, mounts,
processes of a container's pid namespace).

The fixtures (``magic_root``, ``kernel``, ``clean_after``) are defined here and made visible to the
tests of this directory by ``conftest.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from jupyter_client import KernelManager


REPO = Path(__file__).resolve().parents[2]

@dataclass
class CellRun:
    """One executed cell: the execute_reply content and the cell's iopub messages, in order.
    Each message carries ``received``: the test's ``time.monotonic()`` when it was read (as is
    ``replied``, for the execute_reply)."""

    reply: dict
    messages: list[dict] = field(default_factory=list)
    replied: float = 0.0

    @property
    def ok(self) -> bool:
        return self.reply["status"] == "ok"

    def streams(self, name: str | None = None) -> list[dict]:
        return [m for m in self.messages if m["msg_type"] == "stream"
                and (name is None or m["content"]["name"] == name)]

    @property
    def stdout(self) -> str:
        return "".join(m["content"]["text"] for m in self.streams("stdout"))

    @property
    def stderr(self) -> str:
        return "".join(m["content"]["text"] for m in self.streams("stderr"))

    @property
    def error(self) -> dict | None:
        errors = [m["content"] for m in self.messages if m["msg_type"] == "error"]
        return errors[0] if errors else None

    @property
    def data(self) -> list[dict]:
        return [m["content"]["data"] for m in self.messages
                if m["msg_type"] in ("execute_result", "display_data")]


class Kernel:
    """A real ipykernel with the extension loaded; its magic's containers live under ``magic_root``."""

    def __init__(self, magic_root: Path, workdir: Path, load: bool = True):
        self.magic_root = magic_root
        env = dict(os.environ, PYOCI_MAGIC_ROOT=str(magic_root),
                   PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
        self.manager = KernelManager(kernel_name="python3")
        self.manager.start_kernel(env=env, cwd=str(workdir))
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)
        if load:
            self.load()

    def load(self) -> None:
        """``%load_ext pyoci_nb`` (which starts the kernel's engine)."""
        loaded = self.execute("%load_ext pyoci_nb")
        assert loaded.ok, loaded.error

    def submit(self, code: str) -> str:
        return self.client.execute(code)

    def collect(self, msg_id: str, timeout: float = 120, before: list[dict] | None = None) -> CellRun:
        """Read iopub until the cell's kernel is idle again, then the execute_reply
        (``before``: the cell's messages already read, e.g. by ``read_until``)."""
        messages = list(before or [])
        deadline = time.monotonic() + timeout
        for msg in self._cell_messages(msg_id, deadline):
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
            messages.append(msg)
        while True:
            reply = self.client.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
            if reply["parent_header"].get("msg_id") == msg_id:
                return CellRun(reply["content"], messages, time.monotonic())

    def _cell_messages(self, msg_id: str, deadline: float):
        """The cell's iopub messages as they arrive, each with its receipt time."""
        while True:
            msg = self.client.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            msg["received"] = time.monotonic()
            if msg["parent_header"].get("msg_id") == msg_id:
                yield msg

    def read_until(self, msg_id: str, marker: str, timeout: float = 60) -> list[dict]:
        """The cell's iopub messages up to the stdout stream that contains ``marker`` (the cell
        runs on); fails if the cell ends or ``timeout`` passes first."""
        messages = []
        for msg in self._cell_messages(msg_id, time.monotonic() + timeout):
            messages.append(msg)
            if msg["msg_type"] == "error" or (msg["msg_type"] == "status"
                                              and msg["content"]["execution_state"] == "idle"):
                raise AssertionError(f"the cell ended before printing {marker!r}: {CellRun({}, messages).error}"
                                     f" stdout={CellRun({}, messages).stdout!r}")
            if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout" \
                    and marker in CellRun({}, messages).stdout:
                return messages

    def execute(self, code: str, timeout: float = 120) -> CellRun:
        return self.collect(self.submit(code), timeout)

    def value(self, expression: str):
        """Evaluate a Python expression in the kernel and return it (through JSON)."""
        run = self.execute(f"import json as _j; print(_j.dumps({expression}))")
        assert run.ok, run.error
        return json.loads(run.stdout)

    @property
    def pid(self) -> int:
        return self.value("__import__('os').getpid()")

    def shutdown(self, now: bool = False) -> None:
        try:
            self.client.stop_channels()
        finally:
            if self.manager.has_kernel:
                self.manager.shutdown_kernel(now=now)


def sessions(magic_root: Path) -> list[Path]:
    try:
        return sorted(p for p in magic_root.iterdir() if p.is_dir())
    except FileNotFoundError:
        return []


def _entries(magic_root: Path, kind: str) -> list[str]:
    """What each kernel session under ``magic_root`` holds in ``kind`` (state, bundles); a
    session the engine is removing right now counts with what is still there."""
    found = []
    for session in sessions(magic_root):
        try:
            found += [entry.name for entry in (session / kind).iterdir()]
        except FileNotFoundError:
            continue
    return sorted(found)


def state_entries(magic_root: Path) -> list[str]:
    """Container state directories of every kernel session under ``magic_root``."""
    return _entries(magic_root, "state")


def bundle_entries(magic_root: Path) -> list[str]:
    return _entries(magic_root, "bundles")


def processes_in_pid_namespace(link: str) -> list[int]:
    """Host pids of the processes whose pid namespace is ``link`` (e.g. ``pid:[4026532281]``)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") == link:
                    found.append(int(entry))
            except OSError:
                continue
    return found


def gone(pid_ns_link: str) -> bool:
    """No process is left in that pid namespace (SIGKILLed processes take a moment to be reaped)."""
    if wait_for(lambda: processes_in_pid_namespace(pid_ns_link) == [], timeout=10):
        return True
    for pid in processes_in_pid_namespace(pid_ns_link):  # say which, for the failure report
        try:
            with open(f"/proc/{pid}/status") as f:
                status = {k: v.strip() for k, _, v in (line.partition(":") for line in f)}
            with open(f"/proc/{pid}/cgroup") as f:
                cgroups = f.read().replace("\n", " ")
            print(f"left in {pid_ns_link}: pid {pid} {status.get('Name')} state={status.get('State')} "
                  f"ppid={status.get('PPid')} cgroups={cgroups}")
        except OSError:
            pass
    return False


def mounts_under(path: Path, everywhere: bool = False) -> list[str]:
    """The mountinfo lines that name ``path`` (mount point, root or options such as an overlay's
    ``lowerdir=``): in this process's mount namespace, or ``everywhere``: in every mount
    namespace that a process on the host is in (mounts an engine or a container holds)."""
    if not everywhere:
        with open("/proc/self/mountinfo") as f:
            return [line for line in f if str(path) in line]
    found, seen = [], set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            namespace = os.readlink(f"/proc/{entry}/ns/mnt")
            if namespace in seen:
                continue
            with open(f"/proc/{entry}/mountinfo") as f:
                lines = f.readlines()
        except OSError:  # gone meanwhile
            continue
        seen.add(namespace)
        found += [f"{namespace} (pid {entry}): {line}" for line in lines if str(path) in line]
    return found


def cgroup_dirs(pid: int) -> list[Path]:
    """The cgroup directories (host view, every hierarchy, v1 or v2) that ``pid`` is in now."""
    with open("/proc/self/mountinfo") as f:
        hierarchies = []
        for line in f:
            fields = line.split()
            dash = fields.index("-")
            fstype, superopts = fields[dash + 1], fields[dash + 3].split(",")
            if fstype in ("cgroup", "cgroup2"):
                hierarchies.append((fields[4], fields[3], fstype, superopts))
    found = []
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            number, controllers, path = line.rstrip("\n").split(":", 2)
            wanted = [c for c in controllers.split(",") if c]
            for mountpoint, root, fstype, superopts in hierarchies:
                if (number == "0") != (fstype == "cgroup2") or not set(wanted) <= set(superopts):
                    continue
                relative = path[len(root):] if root != "/" and path.startswith(root) else path
                directory = Path(mountpoint + relative.rstrip("/"))
                if relative.strip("/") and directory not in found:  # never a hierarchy's root
                    found.append(directory)
    return found


@dataclass
class ContainerTrace:
    """Where a running container lives on the host: its pid namespace and its cgroups."""

    pid_ns: str
    cgroups: list[Path]

    @classmethod
    def of(cls, pid_ns: str) -> ContainerTrace:
        """The trace of the running container whose pid namespace is ``pid_ns``; its cgroups are
        those this (test) process is not in (a hierarchy the runtime does not use keeps the
        container where the kernel was)."""
        pids = processes_in_pid_namespace(pid_ns)
        assert pids, f"no process in {pid_ns}"
        ours = set(cgroup_dirs(os.getpid()))
        return cls(pid_ns, [d for d in cgroup_dirs(pids[0]) if d not in ours])

    def left(self) -> list[str]:
        """What is still there: processes of the pid namespace, cgroup directories."""
        return [f"pid {pid} in {self.pid_ns}" for pid in processes_in_pid_namespace(self.pid_ns)] + \
            [f"cgroup {d}" for d in self.cgroups if d.exists()]


def delete_all(state_root: Path) -> None:
    """``pyoci --root STATE delete --force ID`` for every container there (teardown, also after
    a failure: the command line, not the magic under test)."""
    if not state_root.is_dir():
        return
    for entry in sorted(state_root.iterdir()):
        subprocess.run([sys.executable, "-m", "pyoci_nb", "--root", str(state_root), "delete", "--force",
                        entry.name], stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=str(REPO)), check=False)


def force_cleanup(magic_root: Path) -> None:
    """Teardown, also after a failed test: delete every container, remove every session."""
    for session in sessions(magic_root):
        delete_all(session / "state")
    shutil.rmtree(magic_root, ignore_errors=True)


def wait_for(predicate, timeout: float = 30, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def _fast_tmp() -> str:
    """A tmpfs for the magic root when there is one (bundle copies are many small files)."""
    for candidate in ("/run", "/dev/shm"):
        if os.access(candidate, os.W_OK):
            return candidate
    return tempfile.gettempdir()


def kernel_namespaces(kernel: Kernel) -> dict[str, str]:
    return kernel.value("{n: __import__('os').readlink('/proc/self/ns/' + n) for n in "
                        "('pid', 'mnt', 'uts', 'ipc', 'net', 'user')}")


def submit_and_wait_for_container(kernel: Kernel, code: str, pattern: str = "cell-"):
    msg_id = kernel.submit(code)
    session = wait_for(lambda: (sessions(kernel.magic_root) or [None])[0])
    assert session is not None
    container_id = wait_for(lambda: next((e for e in state_entries(kernel.magic_root) if e.startswith(pattern)), None))
    assert container_id, "the container never appeared"
    pid = wait_for(lambda: running_pid(session, container_id))
    assert pid, "the container never started"
    return msg_id, session, container_id, pid


def running_pid(session: Path, container_id: str) -> int | None:
    """The container's init pid once its state says it is running."""
    from pyoci_nb.errors import PyociError
    from pyoci_nb.runtime.container import Container

    try:
        state = Container(container_id, str(session / "state")).state()
    except PyociError:
        return None
    return state["pid"] if state.get("status") == "running" and state.get("pid") else None


# ---------------------------------------------------------------------------------------- fixtures
@pytest.fixture
def magic_root():
    root = Path(tempfile.mkdtemp(prefix="pyoci-magic-test-", dir=_fast_tmp()))
    try:
        yield root
    finally:
        force_cleanup(root)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    root = Path(tempfile.mkdtemp(prefix="pyoci-magic-test-", dir=_fast_tmp()))
    k = None
    try:
        k = Kernel(root, tmp_path_factory.mktemp("kernel-cwd"))
        yield k
    finally:
        if k is not None:
            k.shutdown()
        force_cleanup(root)


@pytest.fixture
def clean_after(kernel):
    """Each test leaves the shared kernel's session without containers (also when it fails)."""
    yield kernel
    kernel.execute("%container_rm --all")
    for session in sessions(kernel.magic_root):
        delete_all(session / "state")
