"""exec through the engine: the resident exec helper of a container (``init.exec_zygote``)."""

from __future__ import annotations

import os
import time

import pytest

import pyoci_nb
from pyoci_nb.errors import SetupError

from runtime_helpers import edit_config

pytestmark = pytest.mark.root


def _stat(pid: int) -> list[str]:
    return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()


def _cgroup_pids(container) -> set[int]:
    from pyoci_nb.runtime.cgroups import manager_from_state

    return set(manager_from_state(container._record()["cgroup"]).pids())


def _exec_output(container, args: list[str]) -> tuple[int, str]:
    r, w = os.pipe()
    code = container.exec(args, stdout=w, stderr=w)
    os.close(w)
    with os.fdopen(r) as out:
        return code, out.read()


@pytest.fixture
def running(bundle, state_root, container_id):
    edit_config(bundle, **{"process.args": ["sleep", "300"]})
    container = pyoci_nb.Container.create(bundle, id=container_id, root=state_root, start=True)
    try:
        yield container
    finally:
        container.delete(force=True)


def test_the_helper_is_in_the_containers_cgroup_but_invisible_inside(running):
    """After the first exec a helper sits in the container's cgroups (so later execs need no
    cgroup migration) and its namespaces except the pid one: processes inside never see it,
    and what it forks is the engine's child in the container's pid namespace."""
    from pyoci_nb.runtime.engine import engine

    before = _cgroup_pids(running)
    assert _exec_output(running, ["true"])[0] == 0
    helpers = _cgroup_pids(running) - before
    assert len(helpers) == 1, "one resident helper joined the container's cgroup"
    helper = helpers.pop()
    assert int(_stat(helper)[1]) == engine().pid
    assert os.readlink(f"/proc/{helper}/ns/pid") == os.readlink("/proc/self/ns/pid")
    assert os.readlink(f"/proc/{helper}/ns/pid_for_children") == os.readlink(f"/proc/{running.pid}/ns/pid")
    assert os.readlink(f"/proc/{helper}/ns/mnt") == os.readlink(f"/proc/{running.pid}/ns/mnt")
    # nothing of the host is open in it: /dev/null as stdio, its channel to the engine, the
    # exec trampoline (a sealed memfd), the container's root (for HOME and cwd look-ups)
    opened = {int(fd): os.readlink(f"/proc/{helper}/fd/{fd}") for fd in os.listdir(f"/proc/{helper}/fd")}
    assert [opened.pop(fd) for fd in (0, 1, 2)] == ["/dev/null"] * 3
    kinds = sorted("socket" if t.startswith("socket:") else "trampoline" if t.startswith("/memfd:pyoci-exec")
                   else t for t in opened.values())
    assert kinds == ["/", "socket", "trampoline"], opened
    assert open(f"/proc/{helper}/status").read().count("\nTracerPid:\t0") == 1
    code, names = _exec_output(running, ["sh", "-c", "cat /proc/[0-9]*/comm"])
    assert code == 0
    # inside: the init, this shell, cat -- never the helper (not in this pid namespace)
    assert "sleep" in names.split() and not [n for n in names.split() if n.startswith("python")]
    r, w = os.pipe()
    p = running.popen(["sh", "-c", "cat /proc/self/cgroup; exec sleep 60"], stdout=w)
    os.close(w)
    try:
        assert int(_stat(p.pid)[1]) == engine().pid  # a sibling of the helper: the engine reaps it
        assert open(f"/proc/{p.pid}/cgroup").read() == open(f"/proc/{running.pid}/cgroup").read()
    finally:
        p.kill()
        assert p.wait(timeout=10) == 137
        os.close(r)


def test_exec_failures_through_the_helper_are_reported(running):
    assert _exec_output(running, ["true"])[0] == 0
    with pytest.raises(SetupError, match="no-such-program"):
        running.exec(["no-such-program"])
    with pytest.raises(SetupError):
        running.exec(["true"], cwd="/no/such/dir")
    assert _exec_output(running, ["sh", "-c", "exit 7"])[0] == 7


def test_a_killed_helper_is_replaced_and_goes_with_the_container(bundle, state_root, container_id):
    edit_config(bundle, **{"process.args": ["sleep", "300"]})
    container = pyoci_nb.Container.create(bundle, id=container_id, root=state_root, start=True)
    try:
        before = _cgroup_pids(container)
        assert _exec_output(container, ["true"])[0] == 0
        (helper,) = _cgroup_pids(container) - before
        os.kill(helper, 9)
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{helper}") and _stat(helper)[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert _exec_output(container, ["echo", "again"]) == (0, "again\n")
        (second,) = _cgroup_pids(container) - before
        assert second != helper
    finally:
        container.delete(force=True)
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{second}") and _stat(second)[0] != "Z":
        assert time.monotonic() < deadline, "the helper outlived its container"
        time.sleep(0.01)


def test_no_helper_takes_a_pid_of_a_limited_container(bundle, state_root, container_id):
    """With linux.resources.pids the helper would count against the limit: execs go the long
    way (a migration per exec) and the container's pids are all its own."""
    edit_config(bundle, **{"process.args": ["sleep", "300"], "linux.resources": {"pids": {"limit": 3}}})
    container = pyoci_nb.Container.create(bundle, id=container_id, root=state_root, start=True)
    try:
        before = _cgroup_pids(container)
        assert _exec_output(container, ["true"])[0] == 0
        assert _cgroup_pids(container) == before
    finally:
        container.delete(force=True)
