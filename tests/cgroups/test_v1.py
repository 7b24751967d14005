"""The cgroup v1 driver against the kernel: real processes in real cgroups (this machine is
hybrid: v1 controllers plus an empty cgroup2 tree).  Skipped where no v1 controller is mounted."""

from __future__ import annotations

import json
import os
import time

import pytest

from pyoci_nb.errors import ConfigError, SetupError, UnsupportedError
from pyoci_nb.runtime.cgroups import detect_layout, manager_for, manager_from_state
from pyoci_nb.runtime.cgroups.v1 import V1Manager

from .conftest import PYTHON

LAYOUT = detect_layout()
pytestmark = [pytest.mark.root,
              pytest.mark.skipif(LAYOUT.mode not in ("hybrid", "legacy"), reason="no cgroup v1 controllers")]


def v1_dir(controller: str, relative: str) -> str:
    return os.path.join(LAYOUT.v1[controller].mountpoint, relative.lstrip("/"))


def make(parent: str, resources: dict | None = None, name: str = "c", extra: dict | None = None):
    config = {"linux": {"cgroupsPath": f"{parent}/{name}", "resources": resources or {}}}
    config["linux"].update(extra or {})
    manager = manager_for(config, name, rootless=False)
    assert isinstance(manager, V1Manager)
    manager.create()
    return manager


def read(controller: str, relative: str, name: str) -> str:
    with open(os.path.join(v1_dir(controller, relative), name)) as f:
        return f.read().strip()


def test_create_apply_destroy_in_every_hierarchy(cgroup_parent, held):
    manager = make(cgroup_parent)
    proc = held("sleep 30")
    manager.apply(proc.pid)
    for mount in LAYOUT.hierarchies():
        directory = os.path.join(mount.mountpoint, cgroup_parent.lstrip("/"), "c")
        with open(os.path.join(directory, "cgroup.procs")) as f:
            assert str(proc.pid) in f.read().split(), directory
    assert manager.pids() == [proc.pid]
    with open(f"/proc/{proc.pid}/cgroup") as f:
        lines = f.read()
    assert f"memory:{cgroup_parent}/c" in lines
    if LAYOUT.v2 is not None:   # hybrid: the container is in the cgroup2 tree too
        assert f"0::{cgroup_parent}/c" in lines
    proc.kill()
    manager.destroy()
    for mount in LAYOUT.hierarchies():
        assert not os.path.exists(os.path.join(mount.mountpoint, cgroup_parent.lstrip("/"))), mount
    if LAYOUT.v2 is not None:
        assert not os.path.exists(os.path.join(LAYOUT.v2.mountpoint, cgroup_parent.lstrip("/")))


def test_joined_cgroup_is_not_removed(cgroup_parent):
    existing = v1_dir("memory", f"{cgroup_parent}/shared")
    os.makedirs(existing)
    manager = make(cgroup_parent, name="shared")
    manager.destroy()
    assert os.path.isdir(existing), "destroy removed a cgroup it did not create"
    assert not os.path.exists(v1_dir("pids", f"{cgroup_parent}/shared")), "but its own ones go"


def test_state_round_trip(cgroup_parent, held):
    manager = make(cgroup_parent, {"pids": {"limit": 7}})
    manager.set({"pids": {"limit": 7}})
    saved = json.loads(json.dumps(manager.to_state()))
    again = manager_from_state(saved)
    proc = held("sleep 30")
    again.apply(proc.pid)
    assert manager.pids() == [proc.pid]
    assert again.resources == {"pids": {"limit": 7}}
    proc.kill()
    again.destroy()
    assert not os.path.exists(v1_dir("pids", cgroup_parent + "/c"))


def test_memory_limit_is_hit_and_the_oom_kill_is_seen(cgroup_parent, held):
    limit = 32 << 20
    manager = make(cgroup_parent)
    manager.set({"memory": {"limit": limit, "swap": limit}})
    assert int(read("memory", cgroup_parent + "/c", "memory.limit_in_bytes")) == limit
    assert not manager.oom_killed()
    proc = held(f"{PYTHON} -c \"b = bytearray(256 << 20); print('survived')\"")
    manager.apply(proc.pid)
    proc.go()
    status, out = proc.finish()
    assert status == -9, out          # SIGKILL from the OOM killer
    assert "survived" not in out
    assert manager.oom_killed()
    memory = manager.stats()["data"]["memory"]
    assert memory["usage"]["max"] > limit * 0.9


def test_pids_limit_stops_a_fork_bomb(cgroup_parent, held):
    manager = make(cgroup_parent)
    manager.set({"pids": {"limit": 10}})
    assert read("pids", cgroup_parent + "/c", "pids.max") == "10"
    bomb = held("/bin/sh -c 'n=0; while [ $n -lt 40 ]; do sleep 20 & n=$((n+1)); done; "
                "echo started; wait'")
    manager.apply(bomb.pid)
    bomb.go()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and int(read("pids", cgroup_parent + "/c", "pids.events").split()[1]) == 0:
        time.sleep(0.05)
    assert int(read("pids", cgroup_parent + "/c", "pids.events").split()[1]) > 0, "no fork was refused"
    assert len(manager.pids()) <= 10
    assert manager.stats()["data"]["pids"] == {"current": int(read("pids", cgroup_parent + "/c", "pids.current")),
                                                "limit": 10}


def test_cpu_quota_period_shares_and_cpuset_in_the_files(cgroup_parent):
    manager = make(cgroup_parent)
    manager.set({"cpu": {"quota": 20000, "period": 50000, "shares": 512, "cpus": "0", "burst": 1000}})
    c = cgroup_parent + "/c"
    assert read("cpu", c, "cpu.cfs_quota_us") == "20000"
    assert read("cpu", c, "cpu.cfs_period_us") == "50000"
    assert read("cpu", c, "cpu.shares") == "512"
    assert read("cpuset", c, "cpuset.cpus") == "0"
    if os.path.exists(os.path.join(v1_dir("cpu", c), "cpu.cfs_burst_us")):
        assert read("cpu", c, "cpu.cfs_burst_us") == "1000"
    if os.path.exists(os.path.join(v1_dir("cpu", c), "cpu.idle")):
        manager.set({"cpu": {"idle": 1}})
        assert read("cpu", c, "cpu.idle") == "1"
    # a smaller period whose old quota would not fit is retried after the quota (runc's order)
    manager.set({"cpu": {"quota": 5000, "period": 10000}})
    assert (read("cpu", c, "cpu.cfs_quota_us"), read("cpu", c, "cpu.cfs_period_us")) == ("5000", "10000")


def test_new_cpuset_cgroups_inherit_cpus_and_mems(cgroup_parent, held):
    manager = make(cgroup_parent)
    parent = os.path.dirname(v1_dir("cpuset", cgroup_parent))
    with open(os.path.join(parent, "cpuset.cpus")) as f:
        assert read("cpuset", cgroup_parent + "/c", "cpuset.cpus") == f.read().strip()
    proc = held("sleep 30")
    manager.apply(proc.pid)  # would fail with ENOSPC on an empty cpuset


def test_update_changes_the_memory_limit_of_a_running_process(cgroup_parent, held):
    manager = make(cgroup_parent)
    manager.set({"memory": {"limit": 64 << 20, "swap": 128 << 20}})
    proc = held("sleep 30")
    manager.apply(proc.pid)
    c = cgroup_parent + "/c"
    # grow both beyond the old memsw limit (memsw first), then shrink below (memory first)
    manager.set({"memory": {"limit": 256 << 20, "swap": 512 << 20}})
    assert int(read("memory", c, "memory.limit_in_bytes")) == 256 << 20
    assert int(read("memory", c, "memory.memsw.limit_in_bytes")) == 512 << 20
    manager.set({"memory": {"limit": 16 << 20, "swap": 16 << 20, "reservation": 8 << 20}})
    assert int(read("memory", c, "memory.limit_in_bytes")) == 16 << 20
    assert int(read("memory", c, "memory.memsw.limit_in_bytes")) == 16 << 20
    assert int(read("memory", c, "memory.soft_limit_in_bytes")) == 8 << 20


def test_check_before_update_refuses_a_limit_below_usage(cgroup_parent, held):
    manager = make(cgroup_parent)
    proc = held(f"{PYTHON} -c \"import sys,time; b = bytearray(20 << 20); b[::4096] = b'x' * len(b[::4096]); print('ok', flush=True); time.sleep(30)\"")
    manager.apply(proc.pid)
    proc.go()
    assert proc.proc.stdout.readline().strip() == "ok"
    with pytest.raises(SetupError) as info:
        manager.set({"memory": {"limit": 4 << 20, "checkBeforeUpdate": True}})
    assert info.value.where == "linux.resources.memory.limit"
    assert "usage" in str(info.value)


def test_memory_knobs(cgroup_parent):
    manager = make(cgroup_parent)
    manager.set({"memory": {"swappiness": 10, "disableOOMKiller": True, "kernelTCP": 8 << 20,
                            "useHierarchy": True}})
    c = cgroup_parent + "/c"
    assert read("memory", c, "memory.swappiness") == "10"
    assert "oom_kill_disable 1" in read("memory", c, "memory.oom_control")
    assert int(read("memory", c, "memory.kmem.tcp.limit_in_bytes")) == 8 << 20
    with pytest.raises(ConfigError) as info:
        manager.set({"memory": {"swappiness": 101}})
    assert info.value.where == "linux.resources.memory.swappiness"


def test_freeze_stops_a_counter_and_thaw_restarts_it(cgroup_parent, held, tmp_path):
    counter = tmp_path / "counter"
    manager = make(cgroup_parent)
    # pwrite of a fixed-width number: the file never reads empty or half-written
    proc = held(f"{PYTHON} -c \"import os\nfd = os.open('{counter}', os.O_RDWR | os.O_CREAT)\n"
                f"n = 0\nwhile True:\n    n += 1\n"
                f"    if n % 1000 == 0: os.pwrite(fd, b'%20d' % n, 0)\"")
    manager.apply(proc.pid)
    proc.go()
    while not counter.exists() or not counter.read_text():
        time.sleep(0.01)
    manager.freeze()
    assert manager.frozen()
    assert read("freezer", cgroup_parent + "/c", "freezer.state") == "FROZEN"
    frozen_at = counter.read_text()
    time.sleep(0.3)
    assert counter.read_text() == frozen_at, "the counter moved while frozen"
    manager.thaw()
    assert not manager.frozen()
    deadline = time.monotonic() + 10
    while counter.read_text() in (frozen_at, "") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert int(counter.read_text() or 0) > int(frozen_at), "the counter did not resume"


def test_stats_shape(cgroup_parent, held):
    manager = make(cgroup_parent, name="st")
    manager.set({"memory": {"limit": 64 << 20}, "pids": {"limit": 50}})
    proc = held(f"{PYTHON} -c \"b = bytearray(8 << 20); import time; [i*i for i in range(300000)]; print('ok', flush=True); time.sleep(30)\"")
    manager.apply(proc.pid)
    proc.go()
    assert proc.proc.stdout.readline().strip() == "ok"
    event = json.loads(json.dumps(manager.stats()))
    assert event["type"] == "stats" and event["id"] == "st"
    data = event["data"]
    assert data["memory"]["usage"]["limit"] == 64 << 20
    assert data["memory"]["usage"]["usage"] >= 8 << 20
    assert data["memory"]["raw"]["total_rss"] > 0 or data["memory"]["raw"]["rss"] > 0
    assert data["cpu"]["usage"]["total"] > 0
    assert len(data["cpu"]["usage"]["percpu"]) == os.cpu_count()
    assert data["pids"] == {"current": 1, "limit": 50}


def test_blkio_throttle(cgroup_parent):
    manager = make(cgroup_parent)
    dev = os.stat("/").st_dev
    major, minor = os.major(dev), os.minor(dev)
    if major == 0:
        pytest.skip("/ is not on a block device")
    manager.set({"blockIO": {"throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1 << 20}],
                             "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 100}]}})
    c = cgroup_parent + "/c"
    assert read("blkio", c, "blkio.throttle.read_bps_device") == f"{major}:{minor} {1 << 20}"
    assert read("blkio", c, "blkio.throttle.write_iops_device") == f"{major}:{minor} 100"


def test_a_resource_the_kernel_lacks_names_the_file(cgroup_parent):
    manager = make(cgroup_parent)
    directory = v1_dir("blkio", cgroup_parent + "/c")
    if os.path.exists(os.path.join(directory, "blkio.leaf_weight")):
        pytest.skip("this kernel offers blkio.leaf_weight (CFQ)")
    with pytest.raises(UnsupportedError) as info:
        manager.set({"blockIO": {"leafWeight": 500}})
    assert info.value.where == os.path.join(directory, "blkio.leaf_weight")
    assert "linux.resources.blockIO.leafWeight" in str(info.value)


def test_blkio_weight_goes_to_cfq_or_bfq(cgroup_parent):
    manager = make(cgroup_parent)
    directory = v1_dir("blkio", cgroup_parent + "/c")
    names = [n for n in ("blkio.weight", "blkio.bfq.weight") if os.path.exists(os.path.join(directory, n))]
    if not names:
        with pytest.raises(UnsupportedError) as info:
            manager.set({"blockIO": {"weight": 500}})
        assert info.value.where.endswith("/blkio.weight") and "blkio.bfq.weight" in str(info.value)
        return
    manager.set({"blockIO": {"weight": 500}})
    with open(os.path.join(directory, names[0])) as f:
        assert f.read().split()[-1] == "500"


def test_an_unmounted_controller_is_a_clear_error(cgroup_parent):
    if "net_cls" in LAYOUT.v1:
        pytest.skip("net_cls is mounted here")
    manager = make(cgroup_parent)
    with pytest.raises(UnsupportedError) as info:
        manager.set({"network": {"classID": 0x100001}})
    assert "net_cls.classid" in info.value.where
    assert "not mounted" in str(info.value)


def test_hugetlb_limits(cgroup_parent):
    manager = make(cgroup_parent)
    hierarchy = LAYOUT.v1.get("hugetlb")
    if hierarchy is None and (LAYOUT.v2 is None or "hugetlb" not in open(
            os.path.join(LAYOUT.v2.mountpoint, "cgroup.controllers")).read().split()):
        with pytest.raises(UnsupportedError):
            manager.set({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}]})
        return
    manager.set({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}]})
    if hierarchy is not None:
        path = os.path.join(hierarchy.mountpoint, cgroup_parent.lstrip("/"), "c", "hugetlb.2MB.limit_in_bytes")
    else:   # bound to cgroup2 on this hybrid host
        path = os.path.join(LAYOUT.v2.mountpoint, cgroup_parent.lstrip("/"), "c", "hugetlb.2MB.max")
    with open(path) as f:
        assert int(f.read()) == 4 << 20
    with pytest.raises(UnsupportedError) as info:
        manager.set({"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]})
    assert info.value.where == "linux.resources.hugepageLimits[0].pageSize"


def test_unified_on_hybrid_writes_the_cgroup2_half(cgroup_parent):
    if LAYOUT.mode != "hybrid":
        pytest.skip("needs a hybrid layout")
    manager = make(cgroup_parent)
    manager.set({"unified": {"cgroup.max.descendants": "5"}})
    with open(os.path.join(LAYOUT.v2.mountpoint, cgroup_parent.lstrip("/"), "c", "cgroup.max.descendants")) as f:
        assert f.read().strip() == "5"
    with pytest.raises(UnsupportedError) as info:
        manager.set({"unified": {"memory.max": "1000000"}})
    assert info.value.where.endswith("/memory.max")
    assert "'memory' controller is not available" in str(info.value)


def test_destroy_refuses_while_processes_live_then_succeeds(cgroup_parent, held):
    manager = make(cgroup_parent)
    proc = held("sleep 30")
    manager.apply(proc.pid)
    with pytest.raises(SetupError) as info:
        manager.destroy()
    assert cgroup_parent in info.value.where
    assert os.path.isdir(v1_dir("memory", cgroup_parent + "/c"))
    proc.kill()
    manager.destroy()   # the same manager retries what it could not remove
    for mount in LAYOUT.hierarchies():
        assert not os.path.exists(os.path.join(mount.mountpoint, cgroup_parent.lstrip("/")))


def test_realtime_budget(cgroup_parent):
    manager = make(cgroup_parent)
    c = cgroup_parent + "/c"
    if not os.path.exists(os.path.join(v1_dir("cpu", c), "cpu.rt_runtime_us")):
        with pytest.raises(UnsupportedError):
            manager.set({"cpu": {"realtimeRuntime": 1000}})
        return
    manager.set({"cpu": {"realtimePeriod": 500000}})
    assert read("cpu", c, "cpu.rt_period_us") == "500000"
    # the new parent (created by the manager) is given the budget first (test_realtime.py)
    manager.set({"cpu": {"realtimeRuntime": 1000}})
    assert read("cpu", c, "cpu.rt_runtime_us") == "1000"
