"""Rootless: an unprivileged user gets the container's cgroup only where it was delegated
(it owns the directory); otherwise the container runs without one and resources are ignored
with a warning, as runc does.  The permission checks are the kernel's: the code runs as nobody."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pyoci_nb.runtime.cgroups import detect_layout

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOBODY = 65534
LAYOUT = detect_layout()

SCRIPT = r"""
import json, os, sys
from pyoci_nb.runtime import log
from pyoci_nb.runtime.cgroups import manager_for
m = manager_for({"linux": {"cgroupsPath": sys.argv[1]}}, "r", rootless=True)
out = {"driver": m.driver, "reason": getattr(m, "reason", None)}
if m.driver == "v1":
    out["paths"] = sorted(m.paths)
    m.create()
    m.set({"pids": {"limit": 5}})
    out["pids.max"] = open(os.path.join(m.path("pids"), "pids.max")).read().strip()
else:
    m.set({"memory": {"limit": 1 << 20}})
print(json.dumps(out))
"""


def _world_executable(path: str) -> bool:
    """Can every user reach and run ``path`` (o+x on it and every directory above)?"""
    path = os.path.realpath(path)
    while True:
        if not os.stat(path).st_mode & 0o001:
            return False
        if path == "/":
            return True
        path = os.path.dirname(path)


def run_as_nobody(cgroups_path: str) -> tuple[dict, str]:
    def drop():
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)

    # the runtime's cgroup code is standard library only: any Python 3.11 the user may run
    python = sys.executable if os.access(sys.executable, os.X_OK, effective_ids=False) and \
        _world_executable(sys.executable) else "/usr/bin/python3"
    result = subprocess.run([python, "-c", SCRIPT, cgroups_path], preexec_fn=drop,
                            capture_output=True, text=True, cwd="/", timeout=60,
                            env={"PYTHONPATH": REPO, "PATH": os.environ.get("PATH", "")})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), result.stderr


@pytest.mark.root
def test_without_delegation_the_container_has_no_cgroup(cgroup_parent):
    out, stderr = run_as_nobody(f"{cgroup_parent}/c")
    assert out["driver"] == "none"
    assert "may not write" in out["reason"]
    assert "linux.resources.memory ignored" in stderr
    for mount in LAYOUT.hierarchies():
        assert not os.path.exists(os.path.join(mount.mountpoint, cgroup_parent.lstrip("/")))


@pytest.mark.root
@pytest.mark.skipif("pids" not in LAYOUT.v1, reason="needs a v1 pids hierarchy")
def test_a_delegated_v1_cgroup_is_used(cgroup_parent):
    # delegate only the pids hierarchy: the user owns the parent directory and its files
    delegated = os.path.join(LAYOUT.v1["pids"].mountpoint, cgroup_parent.lstrip("/"))
    os.makedirs(delegated)
    for name in [""] + os.listdir(delegated):
        os.chown(os.path.join(delegated, name), NOBODY, NOBODY)
    out, stderr = run_as_nobody(f"{cgroup_parent}/c")
    assert out["driver"] == "v1"
    assert out["paths"] == ["pids"]
    assert out["pids.max"] == "5"
    assert "no writable cgroup in" in stderr
