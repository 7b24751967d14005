"""Lifecycle internals through the CLI: failed creates leave nothing, the per-id lock, recovery
after the runtime was killed mid-create, the --log story, the console socket, hooks."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from runtime_helpers import REPO, edit_config, leftovers, pyoci

pytestmark = pytest.mark.root


def _wait_for(predicate, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _last_error(log_file: Path) -> dict:
    errors = [json.loads(l) for l in log_file.read_text().splitlines() if '"level": "error"' in l
              or '"level":"error"' in l]
    assert errors, log_file.read_text()
    return errors[-1]


def test_failed_mount_in_init_leaves_nothing_and_logs_the_step(bundle, state_root, container_id, tmp_path):
    config = edit_config(bundle)
    config["mounts"].append({"destination": "/data", "type": "bind", "source": str(tmp_path / "missing"),
                             "options": ["rbind"]})
    (bundle / "config.json").write_text(json.dumps(config))
    log_file = tmp_path / "log.json"
    proc = pyoci("--log", log_file, "--log-format", "json", "create", "--bundle", bundle, container_id,
                 root=state_root)
    assert proc.returncode == 1
    message = _last_error(log_file)["msg"]
    assert message.startswith("container init failed: ")
    assert 'to rootfs at "/data"' in message and "ENOENT" in message and str(tmp_path / "missing") in message
    assert "ENOENT" in proc.stderr  # with --log the error is also on stderr, as runc does
    assert leftovers(container_id, bundle, state_root) == []


def test_failed_create_runtime_hook_leaves_nothing_and_runs_poststop(bundle, state_root, container_id, tmp_path):
    marker = tmp_path / "poststop-ran"
    edit_config(bundle, hooks={
        "createRuntime": [{"path": "/usr/bin/busybox", "args": ["sh", "-c", "echo broken >&2; exit 3"]}],
        "poststop": [{"path": "/usr/bin/busybox", "args": ["touch", str(marker)]}],
    })
    proc = pyoci("create", "--bundle", bundle, container_id, root=state_root)
    assert proc.returncode == 1
    assert "hooks.createRuntime[0]" in proc.stderr and "exit status 3: broken" in proc.stderr
    assert marker.exists()
    assert leftovers(container_id, bundle, state_root) == []


def test_bad_config_is_refused_before_anything_is_made(bundle, state_root, container_id):
    # (an unknown capability name is only a warning: config.md 1.3; a number is no name at all)
    edit_config(bundle, **{"process.capabilities.bounding": ["CAP_CHOWN", 7]})
    proc = pyoci("create", "--bundle", bundle, container_id, root=state_root)
    assert proc.returncode == 1
    assert "process.capabilities.bounding[1]" in proc.stderr and "capability 7 is not a name" in proc.stderr
    assert not (state_root / container_id).exists()


def test_namespace_path_of_the_wrong_type_is_refused(bundle, state_root, container_id):
    config = edit_config(bundle)
    config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] != "network"]
    config["linux"]["namespaces"].append({"type": "network", "path": "/proc/self/ns/uts"})
    (bundle / "config.json").write_text(json.dumps(config))
    proc = pyoci("create", "--bundle", bundle, container_id, root=state_root)
    assert proc.returncode == 1
    assert "linux.namespaces[" in proc.stderr and "not a network namespace" in proc.stderr
    assert leftovers(container_id, bundle, state_root) == []


def test_two_concurrent_starts_one_wins(bundle, state_root, container_id, tmp_path):
    edit_config(bundle, **{"process.args": ["sleep", "60"]})
    assert pyoci("create", "--bundle", bundle, container_id, root=state_root).returncode == 0
    starts = [subprocess.Popen([sys.executable, "-m", "pyoci_nb", "--root", str(state_root), "start",
                                container_id], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True) for _ in range(2)]
    results = [(p.wait(timeout=60), p.stderr.read()) for p in starts]
    for p in starts:
        p.stdout.close()
        p.stderr.close()
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    assert "already running" in [err for code, err in results if code == 1][0]


def test_two_concurrent_deletes_are_serialized(bundle, state_root, container_id):
    edit_config(bundle, **{"process.args": ["true"]})
    assert pyoci("run", "--detach", "--bundle", bundle, container_id, root=state_root).returncode == 0
    _wait_for(lambda: json.loads(pyoci("state", container_id, root=state_root).stdout)["status"] == "stopped",
              what="stopped")
    deletes = [subprocess.Popen([sys.executable, "-m", "pyoci_nb", "--root", str(state_root), "delete",
                                 container_id], cwd=REPO, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    results = [(p.wait(timeout=60), p.stderr.read()) for p in deletes]
    for p in deletes:
        p.stderr.close()
    assert sorted(code for code, _ in results) == [0, 1], results
    assert "does not exist" in [err for code, err in results if code == 1][0]


def test_delete_force_after_the_runtime_was_killed_mid_create(bundle, state_root, container_id, tmp_path):
    hook_pid = tmp_path / "hook.pid"
    edit_config(bundle, hooks={"createRuntime": [{"path": "/usr/bin/busybox", "args": [
        "sh", "-c", f"echo $$ > {hook_pid}; exec /usr/bin/busybox sleep 60"]}]})
    runtime = subprocess.Popen([sys.executable, "-m", "pyoci_nb", "--root", str(state_root), "create",
                                "--bundle", str(bundle), container_id], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: hook_pid.exists() and hook_pid.read_text().strip(), what="the hook to start")
        record = json.loads((state_root / container_id / "state.json").read_text())
        init_pid = record["pid"]
        assert init_pid > 0
        runtime.send_signal(signal.SIGKILL)
        runtime.wait()
        state = json.loads(pyoci("state", container_id, root=state_root, check=True).stdout)
        assert state["status"] == "stopped"  # the runtime that was creating it is gone
        proc = pyoci("delete", "--force", container_id, root=state_root)
        assert proc.returncode == 0, proc.stderr
        _wait_for(lambda: not os.path.exists(f"/proc/{init_pid}") or
                  open(f"/proc/{init_pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z", what="init gone")
        assert leftovers(container_id, bundle, state_root) == []
    finally:
        if hook_pid.exists():
            try:
                os.kill(int(hook_pid.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        if runtime.poll() is None:
            runtime.kill()
            runtime.wait()


def test_pid_file_exists_when_create_returns_and_kill_takes_numbers(bundle, state_root, container_id, tmp_path):
    edit_config(bundle, **{"process.args": ["sleep", "60"]})
    pid_file = tmp_path / "init.pid"
    assert pyoci("create", f"--pid-file={pid_file}", "--bundle", bundle, container_id, root=state_root).returncode == 0
    state = json.loads(pyoci("state", container_id, root=state_root).stdout)
    assert int(pid_file.read_text()) == state["pid"]
    assert pyoci("start", container_id, root=state_root).returncode == 0
    assert pyoci("kill", container_id, "9", root=state_root).returncode == 0
    _wait_for(lambda: json.loads(pyoci("state", container_id, root=state_root).stdout)["status"] == "stopped",
              what="stopped")
    assert pyoci("delete", container_id, root=state_root).returncode == 0
    assert pyoci("delete", "--force", container_id, root=state_root).returncode == 0  # unknown id


def _console_receiver(path: Path, got: dict):
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def accept():
        conn, _ = server.accept()
        with conn:
            msg, fds, _, _ = socket.recv_fds(conn, 4096, 1)
            got["name"], got["fd"] = msg.decode(), fds[0]
        server.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    return thread


def test_console_socket_receives_a_working_pty_master(bundle, state_root, container_id, tmp_path):
    edit_config(bundle, **{"process.terminal": True, "process.consoleSize": {"height": 33, "width": 101},
                           "process.args": ["sh", "-c", "tty; stty size; ls -l /dev/console; echo done"]})
    sock_path = tmp_path / "console.sock"
    got: dict = {}
    thread = _console_receiver(sock_path, got)
    proc = pyoci("create", "--console-socket", sock_path, "--bundle", bundle, container_id, root=state_root)
    assert proc.returncode == 0, proc.stderr
    thread.join(10)
    assert got["name"].startswith("/dev/pts/")
    master = got["fd"]
    try:
        assert pyoci("start", container_id, root=state_root).returncode == 0
        output = b""
        while b"done" not in output:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(master)
    text = output.decode()
    assert "/dev/pts/0" in text and "33 101" in text, text
    assert "/dev/console" in text


def test_terminal_without_console_socket_is_refused(bundle, state_root, container_id):
    edit_config(bundle, **{"process.terminal": True})
    proc = pyoci("create", "--bundle", bundle, container_id, root=state_root)
    assert proc.returncode == 1 and "console socket" in proc.stderr
    assert not (state_root / container_id).exists()


def test_hooks_run_in_order_with_the_state_on_stdin(bundle, state_root, container_id, tmp_path):
    log = tmp_path / "hooks.log"
    bind_dir = tmp_path / "hooklog"
    bind_dir.mkdir()

    def hook(name, logfile=str(log), path="/usr/bin/busybox"):
        return [{"path": path, "args": ["sh", "-c", f'read s; echo "{name} $s" >> {logfile}']}]

    os.symlink("/bin/busybox", bundle / "rootfs" / "hook-busybox")
    config = edit_config(bundle, hooks={
        "prestart": hook("prestart"), "createRuntime": hook("createRuntime"),
        "createContainer": hook("createContainer"),
        "startContainer": hook("startContainer", "/hooklog/hooks.log", "/hook-busybox"),
        "poststart": hook("poststart"), "poststop": hook("poststop")}, **{"process.args": ["true"]})
    config["mounts"].append({"destination": "/hooklog", "type": "bind", "source": str(bind_dir),
                             "options": ["rbind"]})
    (bundle / "config.json").write_text(json.dumps(config))
    log.symlink_to(bind_dir / "hooks.log")
    proc = pyoci("run", "--bundle", bundle, container_id, root=state_root)
    assert proc.returncode == 0, proc.stderr
    lines = (bind_dir / "hooks.log").read_text().splitlines()
    names = [l.split(" ", 1)[0] for l in lines]
    assert names == ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]
    states = [json.loads(l.split(" ", 1)[1]) for l in lines]
    assert [s["status"] for s in states] == ["creating"] * 3 + ["created", "running", "stopped"]
    assert all(s["id"] == container_id and s["bundle"] == str(bundle) for s in states)
    assert states[0]["pid"] > 0 and states[0]["pid"] == states[4]["pid"]


def test_failing_start_container_hook_fails_start_with_the_story(bundle, state_root, container_id, tmp_path):
    edit_config(bundle, hooks={"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 9"]}]},
                **{"process.args": ["true"]})
    assert pyoci("create", "--bundle", bundle, container_id, root=state_root).returncode == 0
    log_file = tmp_path / "log.json"
    proc = pyoci("--log", log_file, "--log-format", "json", "start", container_id, root=state_root)
    assert proc.returncode == 1
    message = _last_error(log_file)["msg"]
    assert "container init failed" in message and "hooks.startContainer[0]" in message
    assert "exit status 9: nope" in message
    state = json.loads(pyoci("state", container_id, root=state_root).stdout)
    assert state["status"] == "stopped"
    assert pyoci("delete", container_id, root=state_root).returncode == 0
    assert leftovers(container_id, bundle, state_root) == []


@pytest.mark.parametrize("field, value", [("linux.netDevices", {"eth0": {"name": "eth1"}}),
                                          ("process.apparmorProfile", "docker-default"),
                                          ("process.execCPUAffinity", {"initial": "0"})])
def test_unimplemented_fields_are_refused_not_ignored(bundle, state_root, container_id, field, value):
    edit_config(bundle, **{field: value})
    proc = pyoci("create", "--bundle", bundle, container_id, root=state_root)
    assert proc.returncode == 1
    assert field in proc.stderr and "not supported" in proc.stderr
    assert not (state_root / container_id).exists()
