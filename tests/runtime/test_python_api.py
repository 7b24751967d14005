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


def _ppid(pid: int) -> int:
    stat = open(f"/proc/{pid}/stat").read()
    return int(stat.rsplit(")", 1)[1].split()[1])


def _pid_for_children(pid: int) -> tuple[str, str]:
    return os.readlink(f"/proc/{pid}/ns/pid_for_children"), os.readlink(f"/proc/{pid}/ns/pid")


def test_the_engine_forks_into_the_containers_pid_namespace_and_steps_back(bundle, state_root, container_id):
    """The engine forks a container's init straight into a new pid namespace, and an exec'd
    process straight into the container's (no intermediate): each time it steps back, so its
    later children are in its own pid namespace; the caller's never changes."""
    from pyoci_nb.runtime.engine import engine

    before = os.readlink("/proc/self/ns/pid_for_children")
    seen = pyoci_nb.run(bundle, ["sh", "-c", "echo $$"], root=state_root, capture_output=True)
    assert seen.stdout == b"1\n"  # the container's init was PID 1 of its namespace
    assert os.readlink("/proc/self/ns/pid_for_children") == before == os.readlink("/proc/self/ns/pid")
    helper = engine().pid
    own, ns = _pid_for_children(helper)
    assert own == ns
    edit_config(bundle, **{"process.args": ["sleep", "60"]})
    c = pyoci_nb.Container.create(bundle, id=container_id, root=state_root, start=True)
    try:
        r, w = os.pipe()
        p = c.popen(["sh", "-c", "echo $$; cat /proc/self/cgroup; exec sleep 60"], stdout=w)
        os.close(w)
        with os.fdopen(r) as out:
            pid_inside = int(out.readline())
            assert pid_inside > 1  # in the container's pid namespace, not ours
            # the exec'd process is the engine's own child: nothing sits between them
            assert _ppid(p.pid) == helper
            assert os.readlink(f"/proc/{p.pid}/ns/pid") == os.readlink(f"/proc/{c.pid}/ns/pid")
            assert open(f"/proc/{p.pid}/cgroup").read() == open(f"/proc/{c.pid}/cgroup").read()
            assert _pid_for_children(helper) == (own, ns)
            p.kill()
            assert p.wait(timeout=10) == 137
    finally:
        c.delete(force=True)


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


def test_run_from_a_multithreaded_process_goes_through_one_engine(bundle, state_root):
    from pyoci_nb.runtime.engine import engine

    stop = threading.Event()
    helper = threading.Thread(target=stop.wait, daemon=True)
    helper.start()
    try:
        result = pyoci_nb.run(bundle, ["sh", "-c", "echo $$"], root=state_root, capture_output=True)
        first = engine().pid
        again = pyoci_nb.run(bundle, ["cat"], root=state_root, capture_output=True, input="hi")
    finally:
        stop.set()
        helper.join()
    assert result.returncode == 0 and result.stdout == b"1\n"  # PID 1 of its pid namespace
    assert again.stdout == b"hi"
    assert engine().pid == first  # one long-lived helper served both
    assert b"pyoci_nb.runtime.engine" in open(f"/proc/{first}/cmdline", "rb").read()
    assert _ppid(first) == os.getpid()
    with pytest.raises(ContainerError):
        pyoci_nb.run(bundle, ["sh", "-c", "exit 2"], root=state_root, check=True, capture_output=True)
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
            assert c.exec(["sh", "-c", "echo via the engine; exit 6"], stdout=w) == 6
            os.close(w)
            assert os.read(r, 100) == b"via the engine\n"
            os.close(r)
            c.kill("KILL")
            assert c.wait(timeout=10) == 137  # the engine, the init's parent, keeps its status
            with pytest.raises(ContainerExists):
                pyoci_nb.Container.create(bundle, id=container_id, root=state_root)
        finally:
            c.delete(force=True)
    finally:
        stop.set()
        helper.join()
    assert forks == []


def _is_child_subreaper(pid: int | None = None) -> bool:
    if pid is None:
        import ctypes

        value = ctypes.c_int(-1)
        assert ctypes.CDLL(None, use_errno=True).prctl(37, ctypes.byref(value), 0, 0, 0) == 0  # PR_GET_CHILD_SUBREAPER
        return bool(value.value)
    raise AssertionError("only the calling process can be asked")


def test_the_caller_is_never_a_subreaper_the_engine_is_the_parent(bundle, state_root, container_id):
    """The caller (pytest, a kernel) must not adopt orphans it would never reap: the engine is
    the parent of the containers' processes, reaps them and keeps their exit statuses."""
    from pyoci_nb.runtime.engine import engine

    edit_config(bundle, **{"process.args": ["sh", "-c", "sleep 30 & exit 3"]})
    c = pyoci_nb.Container.create(bundle, id=container_id, root=state_root)
    try:
        assert not _is_child_subreaper()
        assert _ppid(c.pid) == engine().pid
        c.start()
        assert c.wait(timeout=30) == 3
    finally:
        c.delete(force=True)
    assert not _is_child_subreaper()
    assert pyoci_nb.run(bundle, ["true"], root=state_root).returncode == 0
    assert not _is_child_subreaper()


_CALLER = """
import os, sys, signal
import pyoci_nb
from pyoci_nb.runtime.engine import engine
bundle, root, mode = sys.argv[1:4]
kept = pyoci_nb.Container.create(bundle, id="kept-" + mode, root=root, start=True)
print(engine().pid, kept.pid, flush=True)
if mode == "interrupt":
    try:
        pyoci_nb.run(bundle, ["sleep", "60"], id="doomed-" + mode, root=root)
    except KeyboardInterrupt:
        print("interrupted", sorted(os.listdir(root)), flush=True)
        sys.exit(0)
else:
    pyoci_nb.run(bundle, ["sleep", "60"], id="doomed-" + mode, root=root)
"""


@pytest.mark.parametrize("mode", ["killed", "interrupt"])
def test_a_dead_or_interrupted_caller_leaves_only_the_containers_it_kept(bundle, state_root, tmp_path, mode):
    """run()'s container goes when its caller is interrupted (KeyboardInterrupt) or dies
    (SIGKILL: its engine sees the socket close); a container made by Container.create stays,
    as one made by `pyoci create` does."""
    import signal
    import subprocess
    import sys

    edit_config(bundle, **{"process.args": ["sleep", "60"]})
    script = tmp_path / "caller.py"
    script.write_text(_CALLER)
    caller = subprocess.Popen([sys.executable, str(script), str(bundle), str(state_root), mode],
                              stdout=subprocess.PIPE, text=True)
    try:
        helper, kept_pid = map(int, caller.stdout.readline().split())
        deadline = time.monotonic() + 30
        while not (state_root / f"doomed-{mode}").exists() or not pyoci_nb.Container.load(
                f"doomed-{mode}", state_root).status == "running":
            assert time.monotonic() < deadline, "run() did not start its container"
            time.sleep(0.02)
        doomed_pid = pyoci_nb.Container.load(f"doomed-{mode}", state_root).pid
        if mode == "killed":
            caller.kill()
        else:
            caller.send_signal(signal.SIGINT)
            assert caller.stdout.readline().split()[0] == "interrupted"
        caller.wait(timeout=30)
        deadline = time.monotonic() + 30
        while (state_root / f"doomed-{mode}").exists() or os.path.exists(f"/proc/{doomed_pid}"):
            assert time.monotonic() < deadline, "the run() container outlived its caller"
            time.sleep(0.05)
        assert leftovers(f"doomed-{mode}", bundle, state_root) == []
        kept = pyoci_nb.Container.load(f"kept-{mode}", state_root)
        assert kept.status == "running" and kept.pid == kept_pid
        if mode == "killed":  # the engine exits once its caller is gone
            deadline = time.monotonic() + 30
            while os.path.exists(f"/proc/{helper}") and open(f"/proc/{helper}/stat").read().split()[2] != "Z":
                assert time.monotonic() < deadline, "the engine outlived its caller"
                time.sleep(0.05)
    finally:
        if caller.poll() is None:
            caller.kill()
            caller.wait()
        for cid in (f"kept-{mode}", f"doomed-{mode}"):
            if (state_root / cid).exists():
                pyoci_nb.Container.load(cid, state_root).delete(force=True)


def test_preserved_fds_reach_the_container_through_the_engine(bundle, state_root, container_id):
    """preserve_fds: our fds 3 .. 3+N-1 are the container's 3 .. 3+N-1 (sent to the engine,
    which puts them there before forking); nothing else of ours is."""
    r, w = os.pipe()
    extra_r, extra_w = os.pipe()
    saved = [os.dup(3), os.dup(4)]
    try:
        os.dup2(w, 3)
        os.dup2(extra_w, 4)
        edit_config(bundle, **{"process.args": ["sh", "-c", "echo three >&3; ls /proc/$$/fd"]})
        out_r, out_w = os.pipe()
        c = pyoci_nb.Container.create(bundle, id=container_id, root=state_root, preserve_fds=1, start=True,
                                      stdout=out_w)
        os.close(out_w)
        try:
            assert c.wait(timeout=30) == 0
        finally:
            c.delete(force=True)
    finally:
        os.dup2(saved[0], 3)
        os.dup2(saved[1], 4)
        for fd in saved + [w, extra_w]:
            os.close(fd)
    assert os.read(r, 100) == b"three\n"
    listed = sorted(int(x) for x in os.read(out_r, 1000).split())
    # (sh execs ls, the last command: these are ls's) stdio, the preserved one and ls's open
    # directory, nothing of ours (with one more, the directory would be 5)
    assert listed == [0, 1, 2, 3, 4]
    for fd in (r, extra_r, out_r):
        os.close(fd)
