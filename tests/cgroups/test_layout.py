"""Layout detection from mountinfo, cgroupsPath rules, manager_for's choices."""

from __future__ import annotations

import os

import pytest

from pyoci_nb.errors import ConfigError, ContainerError, UnsupportedError
from pyoci_nb.runtime.cgroups import (Mount, check_cgroups_path, detect_layout, manager_for,
                                      manager_from_state, own_cgroups, resolve_cgroups_path)
from pyoci_nb.runtime.cgroups.v1 import V1Manager
from pyoci_nb.runtime.cgroups.v2 import V2Manager

HYBRID = """\
24 29 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 24 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
35 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,cpu,cpuacct
36 30 0:32 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,memory
37 30 0:33 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:18 - cgroup cgroup rw,net_cls,net_prio
"""
UNIFIED = """\
30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
"""
# inside a container with a cgroup namespace: the mount shows a subtree as its root
NAMESPACED_LEGACY = """\
500 499 0:33 /docker/abc /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory
501 499 0:34 /docker/abc /sys/fs/cgroup/pids ro,nosuid - cgroup cgroup rw,pids
"""


def layout_of(tmp_path, text):
    path = tmp_path / "mountinfo"
    path.write_text(text)
    return detect_layout(str(path))


def test_detects_hybrid(tmp_path):
    layout = layout_of(tmp_path, HYBRID)
    assert layout.mode == "hybrid"
    assert layout.v2 == Mount("/sys/fs/cgroup/unified", "/")
    assert layout.v1["cpuacct"] is layout.v1["cpu"]
    assert layout.v1["cpu"].controllers == ("cpu", "cpuacct")
    assert layout.v1["name=systemd"].mountpoint == "/sys/fs/cgroup/systemd"
    assert [m.mountpoint for m in layout.hierarchies()] == [
        "/sys/fs/cgroup/systemd", "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/memory",
        "/sys/fs/cgroup/net_cls,net_prio"]


def test_detects_unified(tmp_path):
    layout = layout_of(tmp_path, UNIFIED)
    assert layout.mode == "unified" and layout.v1 == {}
    assert layout.v2.mountpoint == "/sys/fs/cgroup"


def test_detects_legacy_with_namespaced_roots(tmp_path):
    layout = layout_of(tmp_path, NAMESPACED_LEGACY)
    assert layout.mode == "legacy"
    mount = layout.v1["memory"]
    assert mount.root == "/docker/abc"
    # /proc/self/cgroup names cgroups from the hierarchy root: map them through the mount root
    assert mount.directory("/docker/abc/sub") == "/sys/fs/cgroup/memory/sub"
    assert resolve_cgroups_path("rel/x", mount, "/docker/abc/sub") == "/sys/fs/cgroup/memory/sub/rel/x"
    assert resolve_cgroups_path("/abs/x", mount, "/docker/abc/sub") == "/sys/fs/cgroup/memory/abs/x"


def test_this_machine_is_detected_from_its_mounts():
    layout = detect_layout()
    with open("/proc/self/mountinfo") as f:
        fstypes = {line.split(" - ")[1].split()[0] for line in f.read().splitlines()}
    assert layout.mode == {(True, True): "hybrid", (True, False): "legacy",
                           (False, True): "unified"}[("cgroup" in fstypes and bool(layout.hierarchies()),
                                                      "cgroup2" in fstypes)]
    for mount in layout.hierarchies() + ([layout.v2] if layout.v2 else []):
        assert os.path.exists(os.path.join(mount.mountpoint, "cgroup.procs"))


def test_cgroups_path_rules():
    assert check_cgroups_path("/a//b/./c") == "/a/b/c"
    assert check_cgroups_path("a/b") == "a/b"
    with pytest.raises(UnsupportedError) as info:
        check_cgroups_path("system.slice:pyoci:abc")
    assert info.value.where == "linux.cgroupsPath" and "systemd" in str(info.value)
    for bad in ("/a/../b", "/", "", 5):
        with pytest.raises(ConfigError) as info:
            check_cgroups_path(bad)
        assert info.value.where == "linux.cgroupsPath"


@pytest.mark.root
def test_default_relative_and_absolute_paths():
    layout = detect_layout()
    own = own_cgroups()
    default = manager_for({}, "abc", rootless=False)
    relative = manager_for({"linux": {"cgroupsPath": "pyoci-rel/abc"}}, "abc", rootless=False)
    assert default.cgroups_path == "/pyoci/abc"
    if isinstance(default, V1Manager):
        memory = layout.v1["memory"]
        assert default.path("memory") == os.path.join(memory.mountpoint, "pyoci/abc")
        # relative: under the runtime's own memory cgroup (runtime-spec: relative to its cgroup)
        assert relative.path("memory") == os.path.join(memory.directory(own["memory"]), "pyoci-rel/abc")
    else:
        assert isinstance(default, V2Manager)
        assert default.path == os.path.join(layout.v2.mountpoint, "pyoci/abc")
        assert relative.path == os.path.join(layout.v2.directory(own[""]), "pyoci-rel/abc")
    # nothing was created by manager_for itself
    assert not os.path.exists(os.path.join((layout.v2 or layout.hierarchies()[0]).mountpoint, "pyoci-rel"))


def test_manager_from_state_rejects_unknown_drivers():
    with pytest.raises(ContainerError) as info:
        manager_from_state({"driver": "v9"})
    assert "cgroup.driver" in info.value.where


def test_rootless_without_a_delegated_cgroup_runs_without_one():
    if os.geteuid() == 0:
        # root can write everywhere; emulate nothing: just check the no-cgroup manager's contract
        from pyoci_nb.runtime.cgroups.base import NoCgroupManager

        manager = NoCgroupManager("x", "pyoci/x", reason="test")
    else:
        manager = manager_for({"linux": {"cgroupsPath": "/pyoci-not-mine/x"}}, "x", rootless=True)
    manager.create()
    manager.apply(os.getpid())
    manager.set({"memory": {"limit": 1 << 20}})   # a warning, not an error
    assert manager.pids() == [os.getpid()]
    assert not manager.frozen()
    with pytest.raises(UnsupportedError):
        manager.freeze()
    again = manager_from_state(manager.to_state())
    assert again.pids() == [os.getpid()]
    manager.destroy()
