"""``cpu.realtimeRuntime`` on cgroup v1 (issue #11, item 8): a cgroup's realtime runtime comes
out of its parent's, and a new cgroup has none.  pyoci gives the parents it owns (the ones it
created, and its ``/pyoci`` base) what the container needs, lowers them again on delete, and
never touches a parent that is not its own: the error then names it and what it lacks."""

from __future__ import annotations

import os
import uuid

import pytest

from pyoci_nb.errors import ConfigError, SetupError
from pyoci_nb.runtime.cgroups import detect_layout, manager_for
from pyoci_nb.runtime.cgroups.v1 import V1Manager

LAYOUT = detect_layout()
CPU = LAYOUT.v1.get("cpu")
pytestmark = [pytest.mark.root,
              pytest.mark.skipif(CPU is None or not os.path.exists(
                  os.path.join(CPU.mountpoint, "cpu.rt_runtime_us")),
                  reason="no cgroup v1 cpu controller with realtime group scheduling")]


def cpu_dir(relative: str) -> str:
    return os.path.join(CPU.mountpoint, relative.lstrip("/"))


def rt_runtime(relative: str) -> int:
    with open(os.path.join(cpu_dir(relative), "cpu.rt_runtime_us")) as f:
        return int(f.read())


@pytest.fixture
def managers():
    """Managers made by a test; destroyed on teardown (also after a failure)."""
    made: list[V1Manager] = []
    yield made
    for manager in made:
        try:
            manager.destroy()
        except Exception:
            pass


def make(managers, cgroups_path: str | None, container_id: str = "c") -> V1Manager:
    linux = {"cgroupsPath": cgroups_path} if cgroups_path else {}
    manager = manager_for({"linux": linux}, container_id, rootless=False)
    assert isinstance(manager, V1Manager)
    managers.append(manager)
    manager.create()
    return manager


def test_the_parents_pyoci_created_get_a_budget(cgroup_parent, managers):
    manager = make(managers, f"{cgroup_parent}/a/c")
    manager.set({"cpu": {"realtimePeriod": 500000, "realtimeRuntime": 20000}})
    assert rt_runtime(f"{cgroup_parent}/a/c") == 20000
    # 20000 per 500000 is 40000 per the parents' 1000000
    assert rt_runtime(f"{cgroup_parent}/a") == 40000
    assert rt_runtime(cgroup_parent) == 40000
    manager.destroy()
    managers.remove(manager)
    assert not os.path.exists(cpu_dir(cgroup_parent)), "the parents it created are left"


def test_the_default_base_gets_the_budget_and_loses_it_on_delete(managers):
    first_id, second_id = ("rt-" + uuid.uuid4().hex[:10] for _ in range(2))
    base = "/pyoci"
    first = make(managers, None, first_id)
    assert first.keep_parents
    before = rt_runtime(base)
    first.set({"cpu": {"realtimeRuntime": 10000}})
    assert rt_runtime(f"{base}/{first_id}") == 10000
    assert rt_runtime(base) >= 10000
    second = make(managers, None, second_id)
    second.set({"cpu": {"realtimeRuntime": 20000}})
    both = rt_runtime(base)
    assert both >= 29999   # (the kernel's shares are rounded down to 2**-20)
    first.destroy()
    managers.remove(first)
    assert not os.path.exists(cpu_dir(f"{base}/{first_id}"))
    assert 19999 <= rt_runtime(base) <= both - 9999, "the first container's budget was kept"
    second.destroy()
    managers.remove(second)
    assert rt_runtime(base) == before


def test_a_parent_that_is_not_pyocis_is_left_alone_with_a_clear_error(cgroup_parent, managers):
    os.makedirs(cpu_dir(cgroup_parent))   # an existing parent: someone else's
    manager = make(managers, f"{cgroup_parent}/c")
    with pytest.raises(SetupError) as info:
        manager.set({"cpu": {"realtimeRuntime": 10000}})
    error = info.value
    assert error.where == os.path.join(cpu_dir(cgroup_parent), "cpu.rt_runtime_us")
    assert "realtimeRuntime" in error.what
    assert f"write 10000 (or more) to {cpu_dir(cgroup_parent)}/cpu.rt_runtime_us" in error.hint
    assert "cgroupsPath" in error.hint
    assert rt_runtime(cgroup_parent) == 0, "pyoci changed a parent that is not its own"


def test_a_runtime_longer_than_the_period_is_a_config_error(cgroup_parent, managers):
    manager = make(managers, f"{cgroup_parent}/c")
    with pytest.raises(ConfigError) as info:
        manager.set({"cpu": {"realtimePeriod": 10000, "realtimeRuntime": 20000}})
    assert info.value.where == "linux.resources.cpu.realtimeRuntime"
    assert rt_runtime(cgroup_parent) == 0
