"""linux.seccomp end to end: busybox containers run by the runtime under test
(``python -m pyoci_nb`` or $PYOCI_TEST_RUNTIME, e.g. runc, which these tests also pass)."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import threading

import pytest

from pyoci_nb.runtime import seccomp
from seccomp_helpers import answer_one_notification

pytestmark = pytest.mark.root

CHOSEN_ERRNO = errno.ENOMSG
MKDIR = ["mkdir", "mkdirat"]


def mkdir_rule(action: str, **extra) -> dict:
    return {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": MKDIR, "action": action, **extra}]}


def test_mkdir_works_in_a_container_without_seccomp(run_container):
    """Control for the tests below."""
    proc = run_container(["mkdir", "/tmp/made"])
    assert proc.returncode == 0, proc.stderr


def test_errno_rule_makes_mkdir_fail_with_the_chosen_errno(run_container):
    proc = run_container(["mkdir", "/tmp/made"], mkdir_rule("SCMP_ACT_ERRNO", errnoRet=CHOSEN_ERRNO))
    assert proc.returncode == 1
    assert os.strerror(CHOSEN_ERRNO) in proc.stderr          # busybox: "can't create directory ...: <strerror>"


def test_errno_rule_applies_without_no_new_privileges(run_container):
    """noNewPrivileges false: the runtime must load the filter while it still has CAP_SYS_ADMIN."""
    proc = run_container(["mkdir", "/tmp/made"], mkdir_rule("SCMP_ACT_ERRNO", errnoRet=CHOSEN_ERRNO),
                         noNewPrivileges=False)
    assert proc.returncode == 1, proc.stderr
    assert os.strerror(CHOSEN_ERRNO) in proc.stderr


def test_errno_rule_for_a_non_root_container_user(run_container):
    proc = run_container(["mkdir", "/tmp/made"], mkdir_rule("SCMP_ACT_ERRNO", errnoRet=CHOSEN_ERRNO),
                         user={"uid": 1000, "gid": 1000}, noNewPrivileges=False)
    assert proc.returncode == 1, proc.stderr
    assert os.strerror(CHOSEN_ERRNO) in proc.stderr


def test_kill_rule_kills_the_container_process(run_container):
    proc = run_container(["mkdir", "/tmp/made"], mkdir_rule("SCMP_ACT_KILL"))
    assert proc.returncode == 128 + signal.SIGSYS, (proc.returncode, proc.stderr)


def test_unshare_works_in_a_container_without_seccomp(run_container):
    """Control: busybox's unshare applet may create a user namespace in the default container."""
    proc = run_container(["unshare", "-U", "true"])
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("no_new_privileges", [True, False])
def test_default_profile_blocks_unshare(run_container, no_new_privileges):
    """Also without noNewPrivileges, where the runtime loads the filter before it drops
    capabilities and changes user, so its own remaining system calls go through the filter."""
    proc = run_container(["unshare", "-U", "true"], seccomp.default_profile(), noNewPrivileges=no_new_privileges)
    assert proc.returncode != 0
    assert "unshare" in proc.stderr and os.strerror(errno.EPERM) in proc.stderr


def test_default_profile_runs_a_shell_pipeline(run_container):
    proc = run_container(["sh", "-c", "mkdir -p /tmp/a && echo hi > /tmp/a/f && cat /tmp/a/f | tr a-z A-Z"],
                         seccomp.default_profile())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "HI"


def test_bad_profile_is_refused_before_the_container_starts(run_container, state_root):
    bad = mkdir_rule("SCMP_ACT_ERRNO")
    bad["syscalls"][0]["args"] = [{"index": 0, "value": 1, "op": "SCMP_CMP_SOMETIMES"}]
    proc = run_container(["true"], bad)
    assert proc.returncode != 0
    assert "SCMP_CMP_SOMETIMES" in proc.stderr


def test_bad_profile_error_names_the_json_path(run_container, runtime_command, state_root):
    if runtime_command[-1] != "pyoci_nb":
        pytest.skip("checks pyoci's message")
    bad = mkdir_rule("SCMP_ACT_ERRNO")
    bad["syscalls"][0]["args"] = [{"index": 0, "value": 1, "op": "SCMP_CMP_SOMETIMES"}]
    proc = run_container(["true"], bad)
    assert "linux.seccomp.syscalls[0].args[0].op" in proc.stderr
    assert list(state_root.iterdir()) == []          # nothing left behind


def test_notify_rule_hands_the_calls_to_the_agent_at_listenerpath(run_container, tmp_path, container_id):
    """SCMP_ACT_NOTIFY: the runtime sends the container process state and the listener fd to
    listenerPath; the agent answers the container's mkdir with an errno."""
    path = str(tmp_path / "agent.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    server.settimeout(60)
    seen = {}

    def agent():
        try:
            conn, _ = server.accept()
            with conn:
                data, fds, _, _ = socket.recv_fds(conn, 65536, 4)
            seen["state"] = json.loads(data)
            seen["notification"] = answer_one_notification(fds[0], error=CHOSEN_ERRNO)
            for fd in fds:
                os.close(fd)
        except Exception as exc:  # reported by the assertions below
            seen["error"] = repr(exc)

    thread = threading.Thread(target=agent, daemon=True)
    thread.start()
    profile = mkdir_rule("SCMP_ACT_NOTIFY")
    profile["listenerPath"] = path
    profile["listenerMetadata"] = "pyoci-test"
    try:
        proc = run_container(["mkdir", "/tmp/made"], profile)
    finally:
        thread.join(timeout=30)
        server.close()
    assert "error" not in seen, seen
    assert proc.returncode == 1, proc.stderr
    assert os.strerror(CHOSEN_ERRNO) in proc.stderr
    state = seen["state"]
    assert state["fds"] == ["seccompFd"]
    assert state["metadata"] == "pyoci-test"
    assert state["state"]["id"] == container_id
    assert state["state"]["status"] == "creating"
    assert state["pid"] == state["state"]["pid"]


def test_exec_processes_get_the_filter_and_the_agent_their_listener(
        runtime_command, busybox_bundle, state_root, container_id, tmp_path):
    """runc's exec loads linux.seccomp into the new process as well; with SCMP_ACT_NOTIFY rules
    the agent at listenerPath gets a listener for that process too (state "running", pid of
    the exec'd process).  Here mkdir is refused by an ERRNO rule, and the NOTIFY rule is for a
    call (acct) nobody makes."""
    import subprocess
    import tempfile

    def runtime(*args, timeout=30):
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.run(runtime_command + ["--root", str(state_root), *args], stdin=subprocess.DEVNULL,
                                  stdout=out, stderr=err, timeout=timeout)
            out.seek(0)
            err.seek(0)
            proc.stdout, proc.stderr = out.read().decode(), err.read().decode()
        return proc

    path = str(tmp_path / "agent.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(4)
    states = []

    def agent():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return                      # the test closed the server
            with conn:
                data, fds, _, _ = socket.recv_fds(conn, 65536, 4)
            states.append(json.loads(data))
            for fd in fds:
                os.close(fd)

    thread = threading.Thread(target=agent, daemon=True)
    thread.start()
    config_path = busybox_bundle / "config.json"
    config = json.loads(config_path.read_text())
    config["process"]["args"] = ["sleep", "60"]
    config["root"]["readonly"] = False
    config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": path,
        "syscalls": [{"names": MKDIR, "action": "SCMP_ACT_ERRNO", "errnoRet": CHOSEN_ERRNO},
                     {"names": ["acct"], "action": "SCMP_ACT_NOTIFY"}]}
    config_path.write_text(json.dumps(config))
    try:
        created = runtime("create", "--bundle", str(busybox_bundle), container_id)
        assert created.returncode == 0, created.stderr
        started = runtime("start", container_id)
        assert started.returncode == 0, started.stderr
        executed = runtime("exec", container_id, "mkdir", "/tmp/made")
        assert executed.returncode == 1, (executed.stdout, executed.stderr)
        assert os.strerror(CHOSEN_ERRNO) in executed.stderr
        init_pid = json.loads(runtime("state", container_id).stdout)["pid"]
    finally:
        runtime("delete", "--force", container_id)
        server.shutdown(socket.SHUT_RDWR)
        server.close()
        thread.join(timeout=10)
    assert [s["state"]["status"] for s in states] == ["creating", "running"]
    assert states[0]["pid"] == init_pid
    assert states[1]["state"]["pid"] == init_pid and states[1]["pid"] != init_pid
