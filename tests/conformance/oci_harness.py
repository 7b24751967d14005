"""Drive an OCI runtime through runc's command line, for the runtime-agnostic conformance tests.

Nothing here knows which runtime it talks to: ``Runtime`` runs ``<command> --root ROOT ...``
(the command is ``$PYOCI_TEST_RUNTIME`` or this checkout's ``pyoci``), ``Box`` is one bundle +
one container id with the lifecycle verbs, and the small parsers read what busybox prints
inside the container (``/proc/self/mountinfo``, ``/proc/self/status``, ``/proc/self/limits``).
The host-side probes (``leftovers``) find what a runtime may have left behind after a failure.
"""

from __future__ import annotations

import array
import json
import os
import select
import socket
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# The namespace types of config.json -> the file name under /proc/<pid>/ns/.
NS_FILE = {"pid": "pid", "network": "net", "ipc": "ipc", "uts": "uts", "mount": "mnt",
           "cgroup": "cgroup", "user": "user", "time": "time"}


class Runtime:
    """One runtime binary bound to one state root (``--root``)."""

    def __init__(self, command: list[str], root: Path):
        self.command = list(command)
        self.root = Path(root)

    def argv(self, *args: str, global_flags: tuple[str, ...] = ()) -> list[str]:
        return self.command + ["--root", str(self.root), *global_flags, *map(str, args)]

    def __call__(self, *args, input: str | None = None, timeout: float = 60,
                 global_flags: tuple[str, ...] = (), check: bool = False,
                 env: dict | None = None) -> subprocess.CompletedProcess:
        """Run one runtime command, capturing stdout/stderr as text.

        Output goes through files, not pipes: after ``create`` the container's init holds the
        runtime's stdout/stderr, and a pipe would never reach EOF."""
        argv = self.argv(*args, global_flags=global_flags)
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            # its own process group, so that a hung runtime and its children can be killed
            child = subprocess.Popen(argv, stdout=out, stderr=err, env=env, start_new_session=True,
                                     stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL)
            try:
                child.communicate(input.encode() if input is not None else None, timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(child.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                child.wait()
                raise
            out.seek(0)
            err.seek(0)
            proc = subprocess.CompletedProcess(argv, child.returncode,
                                               out.read().decode(errors="replace"),
                                               err.read().decode(errors="replace"))
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(proc.args)} exited {proc.returncode}\n"
                                 f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        return proc

    def state(self, container_id: str) -> dict:
        return json.loads(self("state", container_id, check=True).stdout)

    def listed(self) -> list[dict]:
        """``list --format json`` (runc prints ``null`` when there is no container)."""
        return json.loads(self("list", "--format", "json", check=True).stdout) or []

    def wait_status(self, container_id: str, wanted: str, timeout: float = 10) -> dict:
        """Poll ``state`` until ``status == wanted`` (a container's init dies asynchronously)."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.state(container_id)
            if state["status"] == wanted or time.monotonic() > deadline:
                return state
            time.sleep(0.05)


class Box:
    """A bundle (its config.json as a dict) and a container id, with the lifecycle verbs.

    Edit ``box.config`` freely; every verb that creates a container writes it out first.
    """

    def __init__(self, runtime: Runtime, bundle: Path, container_id: str):
        self.runtime = runtime
        self.bundle = Path(bundle)
        self.id = container_id
        self.config: dict = json.loads((self.bundle / "config.json").read_text())

    # --- config helpers ---------------------------------------------------------------
    @property
    def rootfs(self) -> Path:
        return self.bundle / self.config["root"]["path"]

    def save(self) -> None:
        (self.bundle / "config.json").write_text(json.dumps(self.config, indent=2))

    def args(self, *argv: str) -> "Box":
        self.config["process"]["args"] = list(argv)
        return self

    def namespaces(self) -> list[dict]:
        return self.config["linux"]["namespaces"]

    def remove_namespace(self, ns_type: str) -> None:
        self.config["linux"]["namespaces"] = [n for n in self.namespaces() if n["type"] != ns_type]

    def set_namespace(self, ns_type: str, path: str | None = None) -> None:
        self.remove_namespace(ns_type)
        entry = {"type": ns_type}
        if path:
            entry["path"] = path
        self.namespaces().append(entry)

    def add_mount(self, destination: str, source: str, type: str = "bind",
                  options: list[str] | None = None) -> None:
        mount = {"destination": destination, "type": type, "source": source}
        if options is not None:
            mount["options"] = options
        self.config["mounts"].append(mount)

    def set_caps(self, names: list[str], **per_set: list[str]) -> None:
        """All five capability sets = ``names``, except the sets given by keyword."""
        caps = {s: list(per_set.get(s, names))
                for s in ("bounding", "effective", "permitted", "inheritable", "ambient")}
        self.config["process"]["capabilities"] = caps

    def add_hook(self, stage: str, hook: dict) -> None:
        self.config.setdefault("hooks", {}).setdefault(stage, []).append(hook)

    # --- lifecycle --------------------------------------------------------------------
    def run(self, *argv: str, extra: tuple[str, ...] = (), timeout: float = 60,
            input: str | None = None, global_flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        """``run`` the container in the foreground (process.terminal=false): its stdout/stderr
        are the runtime's; the exit status is the process's."""
        if argv:
            self.args(*argv)
        self.config["process"]["terminal"] = False
        self.save()
        return self.runtime("run", "--bundle", self.bundle, *extra, self.id, timeout=timeout,
                            input=input, global_flags=global_flags)

    def sh(self, script: str, **kw) -> subprocess.CompletedProcess:
        """Run ``sh -c script`` in a new container and insist it succeeded; returns the result."""
        proc = self.run("sh", "-c", script, **kw)
        assert proc.returncode == 0, (f"container script failed ({proc.returncode}): {script}\n"
                                      f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        return proc

    def create(self, *extra: str, check: bool = True, global_flags: tuple[str, ...] = ()
               ) -> subprocess.CompletedProcess:
        self.config["process"]["terminal"] = False
        self.save()
        return self.runtime("create", "--bundle", self.bundle, *extra, self.id, check=check,
                            global_flags=global_flags)

    def start(self, check: bool = True) -> subprocess.CompletedProcess:
        return self.runtime("start", self.id, check=check)

    def state(self) -> dict:
        return self.runtime.state(self.id)

    def kill(self, signal: str = "KILL", *extra: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.runtime("kill", *extra, self.id, signal, check=check)

    def delete(self, force: bool = False, check: bool = True) -> subprocess.CompletedProcess:
        return self.runtime("delete", *(["--force"] if force else []), self.id, check=check)

    def exec(self, *argv: str, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        return self.runtime("exec", *extra, self.id, *argv)

    def start_sleeper(self, script: str = "") -> int:
        """create + start a long-running container (optionally running ``script`` first);
        returns the init's host pid once the container is ``running``."""
        self.args("sh", "-c", f"{script}\nexec sleep 1000")
        self.create()
        self.start()
        return self.runtime.wait_status(self.id, "running")["pid"]


class ConsoleSocket:
    """The engine's end of ``--console-socket``: an AF_UNIX listener that receives the pty
    master the runtime sends with SCM_RIGHTS.  Use as a context manager (closes everything)."""

    def __init__(self, path: Path):
        self.path = str(path)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(1)
        self.server.settimeout(30)
        self.masters: list[int] = []

    def __enter__(self) -> "ConsoleSocket":
        return self

    def __exit__(self, *exc) -> None:
        self.server.close()
        for fd in self.masters:
            os.close(fd)

    def receive_master(self) -> int:
        """Accept one connection and return the file descriptor it carries."""
        conn, _ = self.server.accept()
        with conn:
            fds = array.array("i")
            _msg, ancdata, _flags, _addr = conn.recvmsg(1024, socket.CMSG_SPACE(fds.itemsize))
            for level, kind, data in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(data[:fds.itemsize])
        assert len(fds) == 1, "no file descriptor received on the console socket"
        self.masters.append(fds[0])
        return fds[0]

    @staticmethod
    def read_until(master: int, marker: str, timeout: float = 10) -> str:
        """Read the pty master until ``marker`` shows up, the slave closes or time runs out;
        returns the text with the pty's CRLF turned into LF."""
        output = b""
        deadline = time.monotonic() + timeout
        while marker.encode() not in output:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([master], [], [], remaining)[0]:
                break
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: every slave fd is closed
                break
            if not chunk:
                break
            output += chunk
        return output.decode(errors="replace").replace("\r\n", "\n")


# --- parsers of what the container prints -------------------------------------------------
@dataclass
class MountEntry:
    mount_point: str
    options: set[str]        # per-mount options (ro, nosuid, nodev, noexec, relatime...)
    fstype: str
    source: str
    super_options: set[str]  # superblock options (mode=755, size=..., ptmxmode=666...)
    device: str              # major:minor of the filesystem

    @property
    def all_options(self) -> set[str]:
        return self.options | self.super_options


def parse_mountinfo(text: str) -> dict[str, MountEntry]:
    """``/proc/self/mountinfo`` -> {mount point: last (topmost) entry for it} (proc(5))."""
    mounts: dict[str, MountEntry] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        left, _, right = line.partition(" - ")
        fields = left.split()
        fstype, source, super_opts = (right.split() + ["", "", ""])[:3]
        entry = MountEntry(mount_point=fields[4].replace("\\040", " "), options=set(fields[5].split(",")),
                           fstype=fstype, source=source, super_options=set(super_opts.split(",")),
                           device=fields[2])
        mounts[entry.mount_point] = entry
    return mounts


def parse_status(text: str) -> dict[str, str]:
    """``/proc/self/status`` -> {field: value}."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def parse_limits(text: str) -> dict[str, tuple[str, str]]:
    """``/proc/self/limits`` -> {"Max open files": (soft, hard)}."""
    out = {}
    for line in text.splitlines()[1:]:
        name = line[:26].strip()
        soft, hard = line[26:].split()[:2]
        out[name] = (soft, hard)
    return out


def capability_mask(names, all_capabilities: tuple[str, ...]) -> int:
    """The /proc/<pid>/status mask of a list of capability names (bit n = capability n)."""
    mask = 0
    for name in names:
        mask |= 1 << all_capabilities.index(name)
    return mask


# --- host-side probes for leftovers --------------------------------------------------------
def leftovers(runtime: Runtime, container_id: str, bundle: Path) -> list[str]:
    """Everything a failed or deleted container may have left on the host: a state entry, a
    mount under the bundle, a process whose root is the bundle's rootfs, a cgroup named after
    the container.  Returns readable descriptions (empty: nothing left)."""
    found = []
    if any(c.get("id") == container_id for c in runtime.listed()):
        found.append(f"state entry for {container_id} in `list`")
    probe = runtime("state", container_id)
    if probe.returncode == 0:
        found.append(f"`state {container_id}` still succeeds: {probe.stdout.strip()}")
    bundle_real = os.path.realpath(bundle)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point = line.split()[4]
        if mount_point.startswith(bundle_real + "/") or mount_point == bundle_real:
            found.append(f"mount left at {mount_point}")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            root = os.readlink(f"/proc/{pid}/root")
        except OSError:
            continue
        if root.startswith(bundle_real):
            found.append(f"process {pid} with root {root}")
    cgroup_base = Path("/sys/fs/cgroup")
    for controller in cgroup_base.iterdir() if cgroup_base.is_dir() else ():
        for depth in ("*", "*/*", "*/*/*"):
            for path in controller.glob(depth):
                if path.name == container_id and path.is_dir():
                    found.append(f"cgroup left at {path}")
    return found


def assert_nothing_left(box: "Box", grace: float = 3.0) -> None:
    """``leftovers`` must come back empty; a killed process may take a moment to be reaped
    by the kernel, so it is polled for up to ``grace`` seconds before failing."""
    deadline = time.monotonic() + grace
    while True:
        found = leftovers(box.runtime, box.id, box.bundle)
        if not found or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert found == [], "left behind: " + "; ".join(found)


def pid_alive(pid: int) -> bool:
    """Is ``pid`` a live process (not gone, not a zombie)?"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def host_ns(name: str, pid: int | str = "self") -> str:
    """``readlink /proc/<pid>/ns/<file>``, e.g. ``net:[4026531840]``."""
    return os.readlink(f"/proc/{pid}/ns/{NS_FILE.get(name, name)}")
