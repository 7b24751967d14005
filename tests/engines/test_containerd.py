"""containerd drives the runtime under test through its runc shim (io.containerd.runc.v2 with
``--runc-binary <path>``), as Kubernetes nodes do.

A private containerd runs with a temporary config/root/state on its own socket; the image is an
OCI archive of the busybox rootfs imported with ``ctr images import`` (no network).  The
daemon, its shims and every directory and cgroup they made are removed afterwards.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from engine_helpers import HostPaths, cgroup_dirs, containerd_config, stop_daemon, write_oci_archive

pytestmark = [pytest.mark.slow, pytest.mark.root, pytest.mark.timeout(1800)]  # known long: real engines / a real browser

IMAGE = "docker.io/library/pyoci-busybox:test"


class Ctr:
    def __init__(self, base: Path, namespace: str, runtime: str):
        self.base = base
        self.namespace = namespace
        self.runtime = runtime

    def __call__(self, *args: str, timeout: float = 120, check: bool = False) -> subprocess.CompletedProcess:
        proc = subprocess.run(["ctr", "--address", str(self.base / "containerd.sock"),
                               "--namespace", self.namespace, *args],
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
        return proc

    def run(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self("run", "--snapshotter", "native", "--runtime", "io.containerd.runc.v2",
                    "--runc-binary", self.runtime, *args, **kw)


@pytest.fixture
def ctr(engine_runtime, busybox_rootfs):
    if not shutil.which("containerd") or not shutil.which("ctr"):
        pytest.skip("containerd is not installed")
    base = Path(tempfile.mkdtemp(prefix="pyoci-ctrd-", dir="/tmp"))
    namespace = "pyoci-test-" + uuid.uuid4().hex[:8]
    # the runc shim keeps the runtime's --root and its sockets under /run/containerd whatever
    # containerd's own state dir is; ctr puts cgroups at /<namespace>/<id>
    host = HostPaths(owned=[f"/run/containerd/runc/{namespace}", *cgroup_dirs(namespace)],
                     shared=["/run/containerd", "/run/containerd/runc", "/run/containerd/s",
                             "/run/containerd/fifo"])
    (base / "config.toml").write_text(containerd_config(base))
    log = open(base / "containerd.log", "wb")
    daemon = subprocess.Popen(["containerd", "--config", str(base / "config.toml")],
                              stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    c = Ctr(base, namespace, engine_runtime)
    try:
        deadline = time.monotonic() + 30
        while not (base / "containerd.sock").exists():
            assert daemon.poll() is None, (base / "containerd.log").read_text()
            assert time.monotonic() < deadline, "containerd did not open its socket"
            time.sleep(0.05)
        write_oci_archive(busybox_rootfs, base / "image.tar", IMAGE)
        c("images", "import", "--snapshotter", "native", str(base / "image.tar"), check=True)
        yield c
    finally:
        for task in c("tasks", "list", "--quiet").stdout.split():
            c("tasks", "kill", "--signal", "SIGKILL", task)
            c("tasks", "delete", "--force", task)
        for container in c("containers", "list", "--quiet").stdout.split():
            c("containers", "delete", container)
        c("images", "remove", IMAGE)
        stop_daemon(daemon, base)
        log.close()
        problems = host.cleanup()
        shutil.rmtree(base, ignore_errors=True)
        assert problems == [], problems


def test_ctr_run_prints_and_passes_exit_status(ctr):
    proc = ctr.run("--rm", IMAGE, "c-" + uuid.uuid4().hex[:8], "sh", "-c",
                   "echo hello from containerd; exit 7")
    assert proc.returncode == 7, proc.stderr
    assert proc.stdout.startswith("hello from containerd\n")


def test_ctr_detached_task_lifecycle_with_exec(ctr):
    name = "c-" + uuid.uuid4().hex[:8]
    ctr.run("--detach", IMAGE, name, "sleep", "1000", check=True)
    tasks = ctr("tasks", "list", check=True).stdout
    assert name in tasks and "RUNNING" in tasks
    # the runtime under test made it: its own `state` finds it where the runc shim keeps state
    state = subprocess.run([ctr.runtime, "--root", f"/run/containerd/runc/{ctr.namespace}", "state", name],
                           capture_output=True, text=True, timeout=30)
    assert state.returncode == 0, state.stderr
    assert json.loads(state.stdout)["status"] == "running"
    proc = ctr("tasks", "exec", "--exec-id", "e1", name, "sh", "-c", "cat /proc/1/cmdline; echo; id -u", check=True)
    assert proc.stdout.splitlines() == ["sleep\x001000\x00", "0"]
    ctr("tasks", "kill", "--signal", "SIGKILL", name, check=True)
    deadline = time.monotonic() + 30
    while "STOPPED" not in ctr("tasks", "list").stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "STOPPED" in ctr("tasks", "list").stdout
    ctr("tasks", "delete", name, check=True)
    ctr("containers", "delete", name, check=True)
    assert name not in ctr("containers", "list", "--quiet").stdout.split()
