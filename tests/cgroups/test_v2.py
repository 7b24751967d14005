"""The cgroup v2 driver against the kernel.  On this (hybrid) machine the cgroup2 tree at
/sys/fs/cgroup/unified has no memory/cpu/pids controllers (they are bound to v1), but
membership, cgroup.freeze, cgroup.events, device eBPF programs and whatever controllers it does
offer (hugetlb here) are real; a controller it lacks must give the clear error."""

from __future__ import annotations

import os
import time

import pytest

from pyoci_nb.errors import ConfigError, UnsupportedError
from pyoci_nb.runtime.cgroups import (detect_layout, devices, manager_for, own_cgroups,
                                      resolve_cgroups_path)
from pyoci_nb.runtime.cgroups.v2 import (V2Manager, blkio_weight_to_io_weight, shares_to_weight,
                                         swap_to_v2)

from .conftest import PYTHON

LAYOUT = detect_layout()
needs_v2 = pytest.mark.skipif(LAYOUT.v2 is None, reason="no cgroup2 mount")


def v2_manager(parent: str, name: str = "c", implied=None) -> V2Manager:
    """manager_for's V2Manager on a unified host; the cgroup2 half of it on a hybrid one."""
    cgroups_path = f"{parent}/{name}"
    if LAYOUT.mode == "unified":
        manager = manager_for({"linux": {"cgroupsPath": cgroups_path}}, name, rootless=False)
        manager.implied_devices = list(implied or [])
    else:
        manager = V2Manager(name, cgroups_path,
                            resolve_cgroups_path(cgroups_path, LAYOUT.v2, own_cgroups().get("")),
                            LAYOUT.v2.mountpoint, False, list(implied or []))
    manager.create()
    return manager


def controllers() -> list[str]:
    with open(os.path.join(LAYOUT.v2.mountpoint, "cgroup.controllers")) as f:
        return f.read().split()


# --- conversions (runc's formulas) -------------------------------------------------------------

def test_shares_to_weight_matches_runc():
    assert shares_to_weight(2) == 1
    assert shares_to_weight(262144) == 10000
    assert shares_to_weight(1024) == 39
    assert shares_to_weight(0) == 0


def test_blkio_weight_to_io_weight_matches_runc():
    assert blkio_weight_to_io_weight(10) == 1
    assert blkio_weight_to_io_weight(1000) == 10000
    assert blkio_weight_to_io_weight(500) == 4950


def test_swap_is_memory_plus_swap_in_the_spec():
    assert swap_to_v2(128, 64, "m") == 64
    assert swap_to_v2(-1, 64, "m") == "max"
    assert swap_to_v2(0, -1, "m") == "max"
    assert swap_to_v2(0, 64, "m") is None
    with pytest.raises(ConfigError) as info:
        swap_to_v2(32, 64, "linux.resources.memory")
    assert info.value.where == "linux.resources.memory.swap"
    with pytest.raises(ConfigError):
        swap_to_v2(128, 0, "linux.resources.memory")


# --- the kernel ------------------------------------------------------------------------------

@needs_v2
@pytest.mark.root
def test_membership_pids_and_destroy(cgroup_parent, held):
    manager = v2_manager(cgroup_parent)
    proc = held("sleep 30")
    manager.apply(proc.pid)
    assert manager.pids() == [proc.pid]
    assert manager.populated()
    with open(f"/proc/{proc.pid}/cgroup") as f:
        assert f"0::{cgroup_parent}/c\n" in f.read()
    proc.kill()
    manager.destroy()
    assert not os.path.exists(os.path.join(LAYOUT.v2.mountpoint, cgroup_parent.lstrip("/")))


@needs_v2
@pytest.mark.root
def test_cgroup_freeze_stops_a_counter(cgroup_parent, held, tmp_path):
    counter = tmp_path / "counter"
    manager = v2_manager(cgroup_parent)
    proc = held(f"{PYTHON} -c \"import os\nfd = os.open('{counter}', os.O_RDWR | os.O_CREAT)\n"
                f"n = 0\nwhile True:\n    n += 1\n    if n % 1000 == 0: os.pwrite(fd, b'%20d' % n, 0)\"")
    manager.apply(proc.pid)
    proc.go()
    while not counter.exists() or not counter.read_text().strip():
        time.sleep(0.01)
    manager.freeze()
    assert manager.frozen()
    with open(os.path.join(manager.path, "cgroup.events")) as f:
        assert "frozen 1" in f.read()
    frozen_at = int(counter.read_text())
    time.sleep(0.3)
    assert int(counter.read_text()) == frozen_at
    manager.thaw()
    assert not manager.frozen()
    deadline = time.monotonic() + 10
    while int(counter.read_text()) == frozen_at and time.monotonic() < deadline:
        time.sleep(0.01)
    assert int(counter.read_text()) > frozen_at


@needs_v2
@pytest.mark.root
def test_a_controller_the_tree_lacks_names_the_file(cgroup_parent):
    manager = v2_manager(cgroup_parent)
    if "memory" in controllers():
        pytest.skip("this cgroup2 tree has the memory controller")
    with pytest.raises(UnsupportedError) as info:
        manager.set({"memory": {"limit": 64 << 20}})
    assert info.value.where == os.path.join(manager.path, "memory.max")
    assert "linux.resources.memory.limit" in str(info.value)
    with pytest.raises(UnsupportedError) as info:
        manager.set({"unified": {"pids.max": "10"}})
    assert info.value.where == os.path.join(manager.path, "pids.max")
    assert "'pids' controller is not available" in str(info.value)


@needs_v2
@pytest.mark.root
def test_v2_refuses_what_it_has_no_file_for(cgroup_parent):
    manager = v2_manager(cgroup_parent)
    for resources, where in (({"memory": {"disableOOMKiller": True}}, "linux.resources.memory.disableOOMKiller"),
                             ({"memory": {"swappiness": 10}}, "linux.resources.memory.swappiness"),
                             ({"cpu": {"realtimeRuntime": 1000}}, "linux.resources.cpu.realtimeRuntime"),
                             ({"network": {"classID": 1}}, "linux.resources.network"),
                             ({"blockIO": {"leafWeight": 100}}, "linux.resources.blockIO.leafWeight")):
        with pytest.raises(UnsupportedError) as info:
            manager.set(resources)
        assert info.value.where == where


@needs_v2
@pytest.mark.root
def test_hugetlb_on_cgroup2(cgroup_parent):
    if "hugetlb" not in controllers():
        pytest.skip("no hugetlb controller in the cgroup2 tree")
    manager = v2_manager(cgroup_parent)
    manager.set({"hugepageLimits": [{"pageSize": "2MB", "limit": 8 << 20}]})
    with open(os.path.join(manager.path, "hugetlb.2MB.max")) as f:
        assert int(f.read()) == 8 << 20
    assert "2MB" in manager.stats()["data"]["hugetlb"]


@needs_v2
@pytest.mark.root
def test_unified_writes_the_named_file(cgroup_parent):
    manager = v2_manager(cgroup_parent)
    manager.set({"unified": {"cgroup.max.depth": "3"}})
    with open(os.path.join(manager.path, "cgroup.max.depth")) as f:
        assert f.read().strip() == "3"
    with pytest.raises(ConfigError) as info:
        manager.set({"unified": {"../escape": "1"}})
    assert info.value.where == "linux.resources.unified.../escape"


PROBE = r"""
import os, stat, sys, tempfile
out = []
for name, path, flags in (("null-rw", "/dev/null", os.O_RDWR), ("zero-r", "/dev/zero", os.O_RDONLY),
                          ("zero-w", "/dev/zero", os.O_WRONLY), ("full-r", "/dev/full", os.O_RDONLY)):
    try:
        os.close(os.open(path, flags)); out.append(name + "=ok")
    except OSError as e:
        out.append(name + "=" + str(e.errno))
d = tempfile.mkdtemp()
for name, kind, major, minor in (("mknod-c1:1", stat.S_IFCHR, 1, 1), ("mknod-b7:0", stat.S_IFBLK, 7, 0)):
    try:
        os.mknod(os.path.join(d, name), kind | 0o600, os.makedev(major, minor)); out.append(name + "=ok")
    except OSError as e:
        out.append(name + "=" + str(e.errno))
    try: os.unlink(os.path.join(d, name))
    except OSError: pass
os.rmdir(d)
print(" ".join(out))
"""


def run_probe(held, manager) -> dict[str, str]:
    proc = held(f"{PYTHON} -c '{PROBE}'")
    manager.apply(proc.pid)
    proc.go()
    status, out = proc.finish()
    assert status == 0, out
    return dict(item.split("=") for item in out.split())


@needs_v2
@pytest.mark.root
def test_ebpf_device_filter_allows_dev_null_and_denies_a_new_mknod(cgroup_parent, held):
    manager = v2_manager(cgroup_parent)
    manager.set({"devices": [{"allow": False, "access": "rwm"},
                             {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                             {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"}]})
    result = run_probe(held, manager)
    assert result == {"null-rw": "ok", "zero-r": "ok", "zero-w": "1", "full-r": "1",
                      "mknod-c1:1": "1", "mknod-b7:0": "1"}


@needs_v2
@pytest.mark.root
def test_ebpf_filter_with_runc_defaults(cgroup_parent, held):
    manager = v2_manager(cgroup_parent, implied=devices.implied_rules({}))
    manager.set({"devices": [{"allow": False, "access": "rwm"}]})
    # runc's defaults come after the config's rules: /dev/null, zero, full usable, mknod allowed
    assert run_probe(held, manager) == {"null-rw": "ok", "zero-r": "ok", "zero-w": "ok",
                                        "full-r": "ok", "mknod-c1:1": "ok", "mknod-b7:0": "ok"}


@needs_v2
@pytest.mark.root
def test_ebpf_filter_update_replaces_the_program(cgroup_parent, held):
    manager = v2_manager(cgroup_parent)
    manager.set({"devices": [{"allow": False, "access": "rwm"},
                             {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]})
    assert run_probe(held, manager)["full-r"] == "1"
    # allow-all with deny exceptions (v1 "blacklist" mode): any overlap with a denied access
    manager.set({"devices": [{"allow": True, "access": "rwm"},
                             {"allow": False, "type": "c", "major": 1, "minor": 5, "access": "w"},
                             {"allow": False, "type": "c", "access": "m"}]})
    fd = os.open(manager.path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert len(devices.attached_programs(fd)) == 1, "the old program was not detached"
    finally:
        os.close(fd)
    assert run_probe(held, manager) == {"null-rw": "ok", "zero-r": "ok", "zero-w": "1",
                                        "full-r": "ok", "mknod-c1:1": "1", "mknod-b7:0": "ok"}
