"""podman drives the runtime under test (``podman --runtime <path>``), as a user would.

Everything podman keeps lives in a temporary directory (--root, --runroot, --tmpdir, network
config, the runtime's own --root); the image is ``podman import`` of the busybox rootfs, so no
network is needed.  podman needs explicit ulimits on this machine.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from engine_helpers import HostPaths, cgroup_dirs, processes_mentioning, rootfs_tarball, unmount_under

pytestmark = [pytest.mark.slow, pytest.mark.root, pytest.mark.timeout(1800)]  # known long: real engines / a real browser

IMAGE = "localhost/pyoci-busybox:test"
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


class Podman:
    def __init__(self, base, runtime: str, cgroup_parent: str):
        self.base = base
        self.runtime = runtime
        self.cgroup_parent = cgroup_parent
        self.global_flags = [
            "--root", str(base / "root"), "--runroot", str(base / "runroot"),
            "--tmpdir", str(base / "tmp"), "--network-config-dir", str(base / "networks"),
            "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none",
            "--runtime", runtime, "--runtime-flag", f"root={base / 'runtime-state'}",
        ]

    def __call__(self, *args: str, input: bytes | None = None, timeout: float = 120,
                 check: bool = False) -> subprocess.CompletedProcess:
        proc = subprocess.run(["podman", *self.global_flags, *args], input=input, capture_output=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {proc.returncode}: "
                                 f"{proc.stderr.decode(errors='replace')}")
        return proc

    def run(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self("run", "--network", "none", "--cgroup-parent", self.cgroup_parent, *ULIMITS, *args, **kw)


@pytest.fixture
def podman(engine_runtime, busybox_rootfs):
    if not shutil.which("podman"):
        pytest.skip("podman is not installed")
    base = Path(tempfile.mkdtemp(prefix="pyoci-pm-", dir="/tmp"))  # podman wants a runroot < 50 chars
    cgroup_parent = "pyoci-podman-" + uuid.uuid4().hex[:8]
    host = HostPaths(owned=cgroup_dirs(cgroup_parent),
                     shared=["/var/lib/containers", "/var/lib/containers/cache",
                             "/var/lib/containers/cache/blob-info-cache-v1.boltdb",
                             "/run/containers", "/run/containers/networks", "/run/runc", "/run/libpod",
                             *cgroup_dirs("libpod_parent")])
    p = Podman(base, engine_runtime, "/" + cgroup_parent)
    try:
        p("import", "-", IMAGE, input=rootfs_tarball(busybox_rootfs), check=True)
        yield p
    finally:
        p("rm", "--all", "--force", "--time", "0", timeout=120)
        p("rmi", "--all", "--force", timeout=120)
        for pid in processes_mentioning(str(base)):  # conmon or a runtime podman lost
            subprocess.run(["kill", "-9", str(pid)], check=False)
        unmount_under(base)
        problems = host.cleanup()
        shutil.rmtree(base, ignore_errors=True)
        assert problems == [], problems


def test_podman_run_prints_and_passes_exit_status(podman):
    proc = podman.run("--rm", IMAGE, "sh", "-c", "echo hello from $(hostname); exit 7")
    out = proc.stdout.decode()
    assert proc.returncode == 7, proc.stderr.decode()
    assert out.startswith("hello from ")


def test_podman_detached_lifecycle_with_exec(podman):
    name = "pyoci-" + uuid.uuid4().hex[:8]
    podman.run("-d", "--name", name, IMAGE, "sleep", "1000", check=True)
    inspect = podman("inspect", "--format", "{{.State.Status}} {{.State.Pid}} {{.Id}}", name, check=True).stdout.split()
    assert inspect[0] == b"running" and int(inspect[1]) > 0
    # the runtime under test made it: its own `state` finds it in the root podman gave it
    state = subprocess.run([podman.runtime, "--root", str(podman.base / "runtime-state"), "state",
                            inspect[2].decode()], capture_output=True, text=True, timeout=30)
    assert state.returncode == 0, state.stderr
    assert json.loads(state.stdout)["pid"] == int(inspect[1])
    proc = podman("exec", "--env", "FOO=bar", name, "sh", "-c", "echo $FOO; cat /proc/1/cmdline", check=True)
    assert proc.stdout.decode().split("\n")[0] == "bar"
    assert proc.stdout.decode().split("\n")[1].startswith("sleep\x001000")
    podman("stop", "--time", "1", name, check=True)
    status = podman("inspect", "--format", "{{.State.Status}}", name, check=True).stdout.split()
    assert status[0] == b"exited"
    podman("rm", name, check=True)
    assert podman("ps", "--all", "--quiet").stdout.strip() == b""
