"""linux.resources.network on cgroup v1 (net_cls.classid, net_prio.ifpriomap).

This machine does not mount net_cls/net_prio, so the test mounts that hierarchy in a private
mount namespace of a child process: layout detection then finds it in that process's
mountinfo and the kernel's own files answer.  The child removes the cgroup it made before
the namespace (and with it the hierarchy) goes away."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from pyoci_nb.runtime.cgroups import detect_layout

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHILD = r"""
import json, os, sys, tempfile
from pyoci_nb.runtime import syscalls
from pyoci_nb.runtime.cgroups import manager_for
from pyoci_nb.errors import PyociError
syscalls.unshare(syscalls.CLONE_NEWNS)
syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
target = tempfile.mkdtemp()
try:
    syscalls.mount("cgroup", target, "cgroup", 0, "net_cls,net_prio")
except OSError as exc:
    print(json.dumps({"skip": str(exc)}))
    sys.exit(0)
out = {}
manager = manager_for({"linux": {"cgroupsPath": sys.argv[1]}}, "n", rootless=False)
manager.create()
try:
    manager.set({"network": {"classID": 1048577, "priorities": [{"name": "lo", "priority": 5}]}})
    directory = manager.path("net_cls")
    out["dir"] = directory
    out["classid"] = open(os.path.join(directory, "net_cls.classid")).read().strip()
    out["ifpriomap"] = open(os.path.join(directory, "net_prio.ifpriomap")).read().split("\n")
    try:
        manager.set({"network": {"priorities": [{"name": "lo"}]}})
    except PyociError as exc:
        out["error_where"] = exc.where
finally:
    manager.destroy()
    out["removed"] = not os.path.exists(os.path.join(target, sys.argv[1].lstrip("/")))
    syscalls.umount2(target)
    # the kernel frees an unmounted hierarchy only if no (dying) child cgroup holds it at
    # umount time: mount and unmount again until /proc/cgroups shows net_cls unbound
    import time
    for _ in range(50):
        if "net_cls\t0\t" in open("/proc/cgroups").read():
            break
        time.sleep(0.05)
        syscalls.mount("cgroup", target, "cgroup", 0, "net_cls,net_prio")
        syscalls.umount2(target)
    os.rmdir(target)
print(json.dumps(out))
"""

pytestmark = pytest.mark.root


@pytest.mark.skipif("net_cls" in detect_layout().v1, reason="net_cls is mounted on the host already")
def test_network_class_id_and_priorities(cgroup_parent):
    result = subprocess.run([sys.executable, "-c", CHILD, f"{cgroup_parent}/n"], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "PYTHONPATH": REPO})
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    if "skip" in out:
        pytest.skip(f"cannot mount net_cls,net_prio here: {out['skip']}")
    assert out["classid"] == "1048577"       # 0x00100001: tc class 10:1
    assert "lo 5" in out["ifpriomap"]
    assert out["error_where"] == "linux.resources.network.priorities[0]"
    assert out["removed"]
    # the kernel frees an unmounted v1 hierarchy asynchronously (slowly on a loaded machine)
    deadline = time.monotonic() + 30
    while "net_cls\t0\t" not in _proc_cgroups() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "net_cls\t0\t" in _proc_cgroups(), "the net_cls hierarchy outlived the test"


def _proc_cgroups() -> str:
    with open("/proc/cgroups") as f:
        return f.read()
