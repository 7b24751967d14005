"""The embedded runtime: pyoci_nb.Container and pyoci_nb.run() in real containers."""

from __future__ import annotations

import os
import threading
import time

import pytest

import pyoci_nb
from pyoci_nb.errors import ContainerError, ContainerExists, ContainerNotFound, InvalidState

from runtime_helpers import edit_config, leftovers

pytestmark = pytest.mark.root


def test_run_captures_stdout_and_stderr(bundle, state_root):
    result = pyoci_nb.run(bundle, ["sh", "-c", "echo out; echo err >&2; exit 3"],
                          root=state_root, capture_output=True)
    assert (result.returncode, result.stdout, result.stderr) == (3, b"out\n", b"err\n")
    assert leftovers(result.id, bundle, state_root) == []


def test_run_feeds_input_to_stdin(bundle, state_root):
    data = b"line one\n" + os.urandom(200_000).hex().encode()  # more than a pipe buffer
    result = pyoci_nb.run(bundle, ["cat"], root=state_root, input=data, capture_output=True)
    assert result.returncode == 0
    assert result.stdout == data


def test_run_check_raises_on_failure(bundle, state_root):
    with pytest.raises(ContainerError, match="exited with status 7"):
        pyoci_nb.run(bundle, ["sh", "-c", "exit 7"], root=state_root, check=True, capture_output=True)
    assert list(state_root.iterdir()) == []


def test_run_timeout_kills_and_cleans_up(bundle, state_root):
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        pyoci_nb.run(bundle, ["sleep", "60"], id="sleeper", root=state_root, timeout=1)
    assert time.monotonic() - started < 30
    assert leftovers("sleeper", bundle, state_root) == []


def test_the_caller_forks_into_its_own_pid_namespace_again(bundle, state_root):
    """run() forks the container's init straight into a new pid namespace and steps back: the
    caller's later children are in the caller's pid namespace, and its own pid is unchanged."""
    import subprocess

    before = os.readlink("/proc/self/ns/pid_for_children")
    seen = pyoci_nb.run(bundle, ["sh", "-c", "echo $$"], root=state_root, capture_output=True)
    assert seen.stdout == b"1\n"  # the container's init was PID 1 of its namespace
    assert os.readlink("/proc/self/ns/pid_for_children") == before == os.readlink("/proc/self/ns/pid")
    child = subprocess.run(["sh", "-c", "readlink /proc/self/ns/pid; echo $$"], capture_output=True,
                           text=True, check=True)
    namespace, pid = child.stdout.split()
    assert namespace == before and int(pid) > 1


def test_run_uses_the_bundle_args_by_default(bundle, state_root):
    edit_config(bundle, **{"process.args": ["echo", "from config"]})
    result = pyoci_nb.run(bundle, root=state_root, capture_output=True)
    assert result.stdout == b"from config\n" and result.args == ["echo", "from config"]


def test_run_accepts_an_object_with_a_path(bundle, state_root):
    class FakeBundle:
        path = bundle

    assert pyoci_nb.run(FakeBundle(), ["true"], root=state_root).returncode == 0


def test_container_lifecycle(bundle, state_root, container_id):
    edit_config(bundle, **{"process.args": ["sleep", "60"], "annotations": {"org.example/k": "v"}})
    c = pyoci_nb.Container.create(bundle, id=container_id, root=state_root)
    try:
        state = c.state()
        assert state["status"] == "created" and state["pid"] > 0
        assert state["bundle"] == str(bundle) and state["annotations"] == {"org.example/k": "v"}
        # the user process has not run yet: init is still the Python of pyoci, not sleep
        assert "sleep" not in open(f"/proc/{state['pid']}/cmdline").read()
        c.start()
        assert c.state()["status"] == "running"
        assert open(f"/proc/{state['pid']}/cmdline").read().split("\0")[0] == "sleep"
        assert c.exec(["sh", "-c", "exit 4"]) == 4
        assert pyoci_nb.Container.load(container_id, root=state_root).state()["pid"] == state["pid"]
        assert [x.id for x in pyoci_nb.list_containers(state_root)] == [container_id]
        c.kill("KILL")
        assert c.wait(timeout=10) == 137
        assert c.state()["status"] == "stopped"
        c.delete()
        with pytest.raises(ContainerNotFound, match="does not exist"):
            pyoci_nb.Container.load(container_id, root=state_root)
    finally:
        if (state_root / container_id).exists():
            c.delete(force=True)
    assert leftovers(container_id, bundle, state_root) == []


def test_exec_with_env_cwd_user_and_captured_output(bundle, state_root, container_id):
    edit_config(bundle, **{"process.args": ["sleep", "60"]})
    c = pyoci_nb.Container.create(bundle, id=container_id, root=state_root)
    try:
        c.start()
        r, w = os.pipe()
        code = c.exec(["sh", "-c", 'echo "$GREETING $(pwd) $(id -u):$(id -g)"'], env={"GREETING": "hi"},
                      cwd="/tmp", user="1000:1001", stdout=w)
        os.close(w)
        assert code == 0
        assert os.read(r, 1000) == b"hi /tmp 1000:1001\n"
        os.close(r)
    finally:
        c.delete(force=True)


def test_wait_timeout(bundle, state_root, container_id):
    edit_config(bundle, **{"process.args": ["sleep", "60"]})
    c = pyoci_nb.Container.create(bundle, id=container_id, root=state_root)
    try:
        c.start()
        with pytest.raises(TimeoutError):
            c.wait(timeout=0.3)
    finally:
        c.delete(force=True)


def test_lifecycle_errors(bundle, state_root, container_id):
    edit_config(bundle, **{"process.args": ["sleep", "60"]})
    c = pyoci_nb.Container.create(bundle, id=container_id, root=state_root)
    try:
        with pytest.raises(ContainerExists, match="already exists"):
            pyoci_nb.Container.create(bundle, id=container_id, root=state_root)
        with pytest.raises(InvalidState, match="not stopped"):
            c.delete()
        c.start()
        with pytest.raises(InvalidState, match="already running"):
            c.start()
        with pytest.raises(InvalidState, match="not stopped"):
            c.delete()
        c.kill("SIGKILL")
        c.wait()
        with pytest.raises(InvalidState, match="container not running"):
            c.kill("TERM")
        with pytest.raises(InvalidState, match="has stopped"):
            c.start()
        c.delete()
    finally:
        if (state_root / container_id).exists():
            c.delete(force=True)


def test_status_follows_the_process_whoever_killed_it(bundle, state_root, container_id):
    edit_config(bundle, **{"process.args": ["sleep", "60"]})
    c = pyoci_nb.Container.create(bundle, id=container_id, root=state_root)
    try:
        c.start()
        os.kill(c.state()["pid"], 9)  # not through the runtime
        c.wait()
        assert c.state()["status"] == "stopped"
        assert c.state()["pid"] == 0
    finally:
        c.delete(force=True)


def test_run_from_a_multithreaded_process_goes_through_the_fork_server(bundle, state_root):
    from pyoci_nb.runtime import forkserver

    stop = threading.Event()
    helper = threading.Thread(target=stop.wait, daemon=True)
    helper.start()
    try:
        result = pyoci_nb.run(bundle, ["sh", "-c", "echo $$"], root=state_root, capture_output=True)
        again = pyoci_nb.run(bundle, ["cat"], root=state_root, capture_output=True, input="hi")
    finally:
        stop.set()
        helper.join()
    assert result.returncode == 0 and result.stdout == b"1\n"  # PID 1 of its pid namespace
    assert again.stdout == b"hi"
    server = forkserver._server[0]
    assert server.poll() is None  # one long-lived helper served both
    with pytest.raises(ContainerError):
        stop2 = threading.Event()
        t = threading.Thread(target=stop2.wait, daemon=True)
        t.start()
        try:
            pyoci_nb.run(bundle, ["sh", "-c", "exit 2"], root=state_root, check=True, capture_output=True)
        finally:
            stop2.set()
            t.join()
    assert list(state_root.iterdir()) == []


def test_container_from_a_multithreaded_process_does_not_fork_it(bundle, state_root, container_id, monkeypatch):
    edit_config(bundle, **{"process.args": ["sleep", "60"]})
    forks = []
    real_fork = os.fork
    monkeypatch.setattr(os, "fork", lambda: forks.append(1) or real_fork())
    stop = threading.Event()
    helper = threading.Thread(target=stop.wait, daemon=True)
    helper.start()
    try:
        c = pyoci_nb.Container.create(bundle, id=container_id, root=state_root)
        try:
            c.start()
            r, w = os.pipe()
            assert c.exec(["sh", "-c", "echo via cli; exit 6"], stdout=w) == 6
            os.close(w)
            assert os.read(r, 100) == b"via cli\n"
            os.close(r)
            c.kill("KILL")
            assert c.wait(timeout=10) == 137  # the init was reparented to us (subreaper)
            with pytest.raises(ContainerExists):
                pyoci_nb.Container.create(bundle, id=container_id, root=state_root)
        finally:
            c.delete(force=True)
    finally:
        stop.set()
        helper.join()
    assert forks == []


def _is_child_subreaper() -> bool:
    import ctypes

    value = ctypes.c_int(-1)
    assert ctypes.CDLL(None, use_errno=True).prctl(37, ctypes.byref(value), 0, 0, 0) == 0  # PR_GET_CHILD_SUBREAPER
    return bool(value.value)


def test_caller_is_a_subreaper_only_while_its_containers_exist(bundle, state_root, container_id):
    """The API makes the caller a subreaper so wait() gets init's exit status; afterwards the
    caller (pytest, a kernel) must not keep adopting orphans it would never reap.  (Containers
    that earlier tests created in this process and deleted through the CLI still hold it.)"""
    from pyoci_nb.runtime import container as container_module

    held_before = set(container_module._subreaper_holders)
    edit_config(bundle, **{"process.args": ["sh", "-c", "sleep 30 & exit 3"]})
    c = pyoci_nb.Container.create(bundle, id=container_id, root=state_root)
    try:
        assert _is_child_subreaper()
        c.start()
        assert c.wait(timeout=30) == 3
    finally:
        c.delete(force=True)
    assert container_module._subreaper_holders == held_before
    assert _is_child_subreaper() == bool(held_before)
    assert pyoci_nb.run(bundle, ["true"], root=state_root).returncode == 0
    assert container_module._subreaper_holders == held_before
    if not held_before:
        assert not _is_child_subreaper()
