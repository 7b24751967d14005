"""Lifecycle operations and their errors (runtime.md#operations, #errors, runc's command line):
create/start/state/kill/delete/run/exec/list/ps, --pid-file, --log/--log-format, exit status,
and "a failed create leaves nothing behind"."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from oci_harness import assert_nothing_left, host_ns, pid_alive

LIFECYCLE_VERBS = [("state",), ("start",), ("kill", "KILL"), ("delete",), ("exec", "true"),
                   ("ps",), ("pause",), ("resume",)]


def wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not pid_alive(pid)


# --- unknown ids ------------------------------------------------------------------------------
@pytest.mark.parametrize("verb", LIFECYCLE_VERBS, ids=lambda v: v[0])
def test_unknown_id_is_an_error(runtime, verb):
    name, *rest = verb
    proc = runtime(name, "no-such-container", *rest)
    assert proc.returncode != 0
    assert "does not exist" in proc.stderr, proc.stderr


def test_delete_force_of_unknown_id_succeeds(runtime):
    proc = runtime("delete", "--force", "no-such-container")
    assert proc.returncode == 0, proc.stderr


# --- create / start / state -----------------------------------------------------------------
def test_pid_file_exists_before_create_returns(box, tmp_path):
    pid_file = tmp_path / "container.pid"
    box.args("sleep", "1000")
    box.create("--pid-file", str(pid_file))
    assert pid_file.exists(), "create returned before writing --pid-file"
    pid = int(pid_file.read_text())
    assert pid == box.state()["pid"]
    assert pid_alive(pid)


def test_status_stays_created_until_start(box, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    box.add_mount("/out", str(out), "bind", ["rbind", "rw"])
    box.args("sh", "-c", "echo started > /out/flag; exec sleep 1000")
    box.create()
    state = box.state()
    assert state["status"] == "created"
    assert pid_alive(state["pid"])
    time.sleep(0.3)
    assert box.state()["status"] == "created"
    assert not (out / "flag").exists(), "the user process ran before start"
    box.start()
    assert box.runtime.wait_status(box.id, "running")["status"] == "running"
    deadline = time.monotonic() + 10
    while not (out / "flag").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (out / "flag").read_text() == "started\n"


def test_status_becomes_stopped_when_init_is_killed_from_outside(box):
    pid = box.start_sleeper()
    os.kill(pid, signal.SIGKILL)
    assert box.runtime.wait_status(box.id, "stopped")["status"] == "stopped"


def test_status_becomes_stopped_when_the_process_exits(box):
    box.args("true")
    box.create()
    box.start()
    assert box.runtime.wait_status(box.id, "stopped")["status"] == "stopped"


def test_start_of_a_running_container_is_an_error(box):
    box.start_sleeper()
    proc = box.start(check=False)
    assert proc.returncode != 0
    assert box.state()["status"] == "running"


def test_start_of_a_stopped_container_is_an_error(box):
    box.args("true")
    box.create()
    box.start()
    box.runtime.wait_status(box.id, "stopped")
    proc = box.start(check=False)
    assert proc.returncode != 0
    assert box.state()["status"] == "stopped"


def test_create_of_an_existing_id_is_an_error(box):
    pid = box.start_sleeper()
    proc = box.create(check=False)
    assert proc.returncode != 0
    state = box.state()
    assert state["status"] == "running" and state["pid"] == pid, "the first container was disturbed"


# --- delete -----------------------------------------------------------------------------------
def test_delete_of_a_running_container_is_an_error(box):
    pid = box.start_sleeper()
    proc = box.delete(check=False)
    assert proc.returncode != 0
    assert box.state()["status"] == "running"
    assert pid_alive(pid)


def test_delete_force_of_a_running_container(box):
    pid = box.start_sleeper()
    box.delete(force=True)
    assert wait_gone(pid)
    assert_nothing_left(box)


@pytest.mark.runc_divergent  # runc 1.1 deletes a created container without --force
def test_delete_of_a_created_container_is_refused_without_force(box):
    """runtime.md: "Attempting to delete a container that is not stopped MUST have no effect
    on the container and MUST generate an error"."""
    box.args("true")
    box.create()
    proc = box.delete(check=False)
    assert proc.returncode != 0
    assert box.state()["status"] == "created"


def test_delete_of_a_stopped_container_removes_everything(box):
    box.args("true")
    box.create()
    box.start()
    box.runtime.wait_status(box.id, "stopped")
    box.delete()
    assert_nothing_left(box)


# --- kill -------------------------------------------------------------------------------------
TRAP_TERM = 'trap "echo got-term > /out/term; exit 7" TERM; echo ready > /out/ready; while :; do sleep 0.05; done'


@pytest.mark.parametrize("signal_name", ["TERM", "SIGTERM", "15"])
def test_kill_with_signal_names_and_numbers(box, tmp_path, signal_name):
    out = tmp_path / "out"
    out.mkdir()
    box.add_mount("/out", str(out), "bind", ["rbind", "rw"])
    box.args("sh", "-c", TRAP_TERM)
    box.create()
    box.start()
    deadline = time.monotonic() + 10
    while not (out / "ready").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    box.kill(signal_name)
    assert box.runtime.wait_status(box.id, "stopped")["status"] == "stopped"
    assert (out / "term").read_text() == "got-term\n", "the process did not get SIGTERM"


@pytest.mark.parametrize("signal_name", ["KILL", "SIGKILL", "9"])
def test_kill_sigkill(box, signal_name):
    pid = box.start_sleeper()
    box.kill(signal_name)
    assert box.runtime.wait_status(box.id, "stopped")["status"] == "stopped"
    assert wait_gone(pid)


def test_kill_of_a_created_container(box):
    box.args("sleep", "1000")
    box.create()
    box.kill("KILL")
    assert box.runtime.wait_status(box.id, "stopped")["status"] == "stopped"


def test_kill_of_a_stopped_container_is_an_error(box):
    box.args("true")
    box.create()
    box.start()
    box.runtime.wait_status(box.id, "stopped")
    proc = box.kill("KILL", check=False)
    assert proc.returncode != 0
    assert box.state()["status"] == "stopped"


def test_kill_with_an_unknown_signal_is_an_error(box):
    pid = box.start_sleeper()
    proc = box.kill("SIGNOPE", check=False)
    assert proc.returncode != 0
    assert pid_alive(pid)


def test_kill_all(box):
    """Without a pid namespace killing init does not kill the rest: --all must reach every
    process of the container (its cgroup)."""
    box.remove_namespace("pid")
    box.args("sh", "-c", "sleep 1000 & sleep 1000 & wait")
    box.create()
    box.start()
    box.runtime.wait_status(box.id, "running")
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 10
        while len(pids) < 3 and time.monotonic() < deadline:
            pids = json.loads(box.runtime("ps", "--format", "json", box.id, check=True).stdout) or []
            time.sleep(0.05)
        assert len(pids) >= 3, f"expected sh + 2 sleeps, ps says {pids}"
        box.kill("KILL", "--all")
        for pid in pids:
            assert wait_gone(pid), f"process {pid} survived kill --all"
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# --- flag spellings ---------------------------------------------------------------------------
def test_flags_with_equals_and_with_space(box, tmp_path):
    box.args("sleep", "1000")
    box.config["process"]["terminal"] = False
    box.save()
    rt = box.runtime
    cmd = rt.command
    pid_a, pid_b = tmp_path / "a.pid", tmp_path / "b.pid"
    log_a = tmp_path / "a.log"
    first = subprocess.run(cmd + [f"--root={rt.root}", f"--log={log_a}", "--log-format=json", "create",
                                  f"--bundle={box.bundle}", f"--pid-file={pid_a}", box.id + "-a"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=60)
    second = subprocess.run(cmd + ["--root", str(rt.root), "create", "--bundle", str(box.bundle),
                                   "--pid-file", str(pid_b), box.id + "-b"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            timeout=60)
    try:
        assert first.returncode == 0 and second.returncode == 0
        assert int(pid_a.read_text()) == rt.state(box.id + "-a")["pid"]
        assert int(pid_b.read_text()) == rt.state(box.id + "-b")["pid"]
    finally:
        rt("delete", "--force", box.id + "-a")
        rt("delete", "--force", box.id + "-b")


# --- run --------------------------------------------------------------------------------------
@pytest.mark.parametrize("script,status", [("exit 0", 0), ("exit 3", 3), ("exit 255", 255),
                                           ("kill -9 $$", 137)])
def test_run_passes_the_exit_status_through(box, script, status):
    # a pid namespace's init cannot SIGKILL itself: without one, `kill -9 $$` kills the process
    box.remove_namespace("pid")
    proc = box.run("sh", "-c", script)
    assert proc.returncode == status, proc.stderr
    assert_nothing_left(box)


def test_run_passes_stdin(box):
    proc = box.run("sh", "-c", "read line; echo got:$line", input="hello\n")
    assert proc.stdout == "got:hello\n"


def test_run_detach(box):
    box.args("sleep", "1000")
    box.config["process"]["terminal"] = False
    box.save()
    proc = box.runtime("run", "--detach", "--bundle", box.bundle, box.id, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert box.state()["status"] == "running"


# --- exec -------------------------------------------------------------------------------------
def test_exec_joins_the_namespaces_and_sees_the_same_files(box):
    box.config["root"]["readonly"] = False
    pid = box.start_sleeper("echo from-init > /tmp/marker")
    proc = box.exec("sh", "-c", "cat /tmp/marker; for n in pid net ipc uts mnt; do "
                    "echo $n $(readlink /proc/self/ns/$n); done")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "from-init"
    inside = dict(l.split(" ", 1) for l in lines[1:])
    for ns_file in ("pid", "net", "ipc", "uts", "mnt"):
        assert inside[ns_file] == os.readlink(f"/proc/{pid}/ns/{ns_file}"), ns_file
        assert inside[ns_file] != host_ns(ns_file)


def test_exec_exit_status(box):
    box.start_sleeper()
    assert box.exec("sh", "-c", "exit 5").returncode == 5


def test_exec_with_env_cwd_user(box):
    box.start_sleeper()
    proc = box.exec("sh", "-c", 'echo "$FOO"; pwd; id -u; id -g',
                    extra=("--env", "FOO=bar baz", "--cwd", "/etc", "--user", "1000:1001"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["bar baz", "/etc", "1000", "1001"]


def test_exec_with_flags_in_equals_form(box):
    box.start_sleeper()
    proc = box.exec("sh", "-c", 'echo "$FOO"; pwd', extra=("--env=FOO=eq", "--cwd=/bin"))
    assert proc.stdout.splitlines() == ["eq", "/bin"], proc.stderr


def test_exec_with_a_process_json(box, tmp_path):
    box.start_sleeper()
    process = {"terminal": False, "user": {"uid": 1000, "gid": 1000, "additionalGids": [44]},
               "args": ["sh", "-c", 'echo "$WHO"; pwd; id -u; id -G; grep NoNewPrivs /proc/self/status'],
               "env": ["PATH=/bin", "WHO=process-json"], "cwd": "/tmp", "noNewPrivileges": True}
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    proc = box.exec(extra=("--process", str(path)))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:3] == ["process-json", "/tmp", "1000"]
    assert "44" in lines[3].split()
    assert lines[4].split() == ["NoNewPrivs:", "1"]


def test_exec_in_a_stopped_container_is_an_error(box):
    box.args("true")
    box.create()
    box.start()
    box.runtime.wait_status(box.id, "stopped")
    assert box.exec("true").returncode != 0


# --- list / ps --------------------------------------------------------------------------------
def test_list_shows_the_container(box):
    pid = box.start_sleeper()
    listed = {c["id"]: c for c in box.runtime.listed()}
    assert box.id in listed
    entry = listed[box.id]
    assert entry["status"] == "running"
    assert entry["pid"] == pid
    assert os.path.realpath(entry["bundle"]) == os.path.realpath(box.bundle)
    table = box.runtime("list", check=True).stdout
    assert box.id in table
    quiet = box.runtime("list", "--quiet", check=True).stdout.split()
    assert quiet == [box.id]


def test_ps_lists_the_pids(box):
    pid = box.start_sleeper()
    pids = json.loads(box.runtime("ps", "--format", "json", box.id, check=True).stdout)
    assert pid in pids


# --- --log / failures that leave nothing behind -----------------------------------------------
def last_error(log_file: Path) -> str:
    errors = []
    for line in log_file.read_text().splitlines():
        record = json.loads(line)  # every line is JSON
        assert {"level", "msg"} <= record.keys(), record
        if record["level"] == "error":
            errors.append(record["msg"])
    assert errors, f"no error line in {log_file}"
    return errors[-1]


@pytest.mark.parametrize("problem", ["missing-binary", "bad-cwd", "bad-mount-source"])
def test_failed_create_logs_why_and_leaves_nothing(box, tmp_path, problem):
    if problem == "missing-binary":
        box.args("/no/such/binary")
        expected = "/no/such/binary"
    elif problem == "bad-cwd":
        box.config["process"]["cwd"] = "/bin/busybox/sub"  # below a regular file: cannot exist
        box.args("true")
        expected = "/bin/busybox"
    else:
        box.add_mount("/data", str(tmp_path / "no-such-source"), "bind", ["rbind"])
        box.args("true")
        expected = "no-such-source"
    log = tmp_path / "runtime.log"
    proc = box.create(check=False, global_flags=("--log", str(log), "--log-format", "json"))
    assert proc.returncode != 0, f"create accepted a {problem}"
    message = last_error(log)
    assert expected in message, f"the last error line does not say what failed: {message!r}"
    assert_nothing_left(box)


def test_run_with_a_missing_binary_fails_and_leaves_nothing(box, tmp_path):
    log = tmp_path / "runtime.log"
    proc = box.run("/no/such/binary", global_flags=("--log", str(log), "--log-format", "json"))
    assert proc.returncode != 0
    assert "/no/such/binary" in last_error(log)
    assert_nothing_left(box)


def test_log_format_text(box, tmp_path):
    log = tmp_path / "runtime.log"
    box.args("/no/such/binary")
    proc = box.create(check=False, global_flags=("--log", str(log), "--log-format", "text"))
    assert proc.returncode != 0
    error_lines = [l for l in log.read_text().splitlines() if "level=error" in l]
    assert error_lines and "/no/such/binary" in error_lines[-1]


def test_bundle_without_config_is_an_error(runtime, tmp_path, container_id):
    empty = tmp_path / "empty-bundle"
    empty.mkdir()
    proc = runtime("create", "--bundle", empty, container_id)
    assert proc.returncode != 0
    assert "config.json" in proc.stderr
