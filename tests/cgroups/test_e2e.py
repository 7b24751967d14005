"""End to end through the `pyoci` CLI: resources of config.json seen in the kernel's cgroup
files and in the container's behaviour, pause/resume/update/events, cgroups gone after delete."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from pyoci_nb.runtime.cgroups import detect_layout, manager_from_state


LAYOUT = detect_layout()
PYOCI = [sys.executable, "-m", "pyoci_nb"]   # this checkout's CLI (the tests read its state.json)
pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.environ.get("PYOCI_TEST_RUNTIME") is not None,
                                 reason="reads pyoci's own state.json")]


def pyoci(root, *args, check=True, input=None, timeout=60) -> subprocess.CompletedProcess:
    """Run the CLI; output goes through files, not pipes: a detached container keeps the
    stdio it inherited open, and a pipe would never reach EOF."""
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        result = subprocess.run(PYOCI + ["--root", str(root), *args], input=input,
                                stdout=out, stderr=err, text=True, timeout=timeout)
        out.seek(0)
        err.seek(0)
        result.stdout, result.stderr = out.read(), err.read()
    if check and result.returncode != 0:
        raise AssertionError(f"pyoci {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


def configure(bundle, cgroups_path, args, resources=None, caps=()):
    path = bundle / "config.json"
    config = json.loads(path.read_text())
    config["process"]["args"] = args
    config["linux"]["cgroupsPath"] = cgroups_path
    resources_now = config["linux"].setdefault("resources", {})
    resources_now.update(resources or {})
    for cap in caps:
        for kind in ("bounding", "effective", "permitted"):
            config["process"]["capabilities"][kind].append(cap)
    path.write_text(json.dumps(config))


def cgroup_dirs(relative):
    dirs = [os.path.join(m.mountpoint, relative.lstrip("/")) for m in LAYOUT.hierarchies()]
    if LAYOUT.v2 is not None:
        dirs.append(os.path.join(LAYOUT.v2.mountpoint, relative.lstrip("/")))
    return dirs


def cgroup_file(controller, relative, name):
    if controller in LAYOUT.v1:
        base = LAYOUT.v1[controller].mountpoint
    else:
        base = LAYOUT.v2.mountpoint
    with open(os.path.join(base, relative.lstrip("/"), name)) as f:
        return f.read().strip()


def status(root, cid):
    return json.loads(pyoci(root, "state", cid).stdout)["status"]


def wait_status(root, cid, wanted, timeout=20):
    deadline = time.monotonic() + timeout
    while (now := status(root, cid)) != wanted:
        assert time.monotonic() < deadline, f"still {now}, wanted {wanted}"
        time.sleep(0.05)


def saved_cgroup(root, cid):
    with open(os.path.join(root, cid, "state.json")) as f:
        return json.load(f)["cgroup"]


def wait_watching_oom(pid: int, timeout: float = 30) -> None:
    """Wait until ``pyoci events`` (process ``pid``) holds the fd the kernel signals OOM on: an
    eventfd registered through cgroup.event_control (v1) or an inotify fd on memory.events (v2)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except FileNotFoundError:
            raise AssertionError("pyoci events exited before it watched for OOM") from None
        targets, watches = [], 0
        for fd in fds:
            try:
                targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
                if targets[-1] == "anon_inode:inotify":
                    with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                        watches += info.read().count("inotify wd:")
            except OSError:
                continue
        # v1: the eventfd exists and memory.oom_control is closed again (that is after the write
        # to cgroup.event_control); v2: the inotify fd has its watch
        if watches or ("anon_inode:[eventfd]" in targets and
                       not any(t.endswith("/memory.oom_control") for t in targets)):
            return
        time.sleep(0.01)
    raise AssertionError("pyoci events did not start watching for OOM")


def test_memory_limit_oom_kill_is_seen_and_cgroups_go_with_delete(busybox_bundle, state_root,
                                                                  container_id, cgroup_parent):
    path = f"{cgroup_parent}/{container_id}"
    configure(busybox_bundle, path, ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
              {"memory": {"limit": 16 << 20, "swap": 16 << 20}})
    events = None
    pyoci(state_root, "create", "--bundle", str(busybox_bundle), container_id)
    try:
        assert int(cgroup_file("memory", path, "memory.limit_in_bytes" if "memory" in LAYOUT.v1
                               else "memory.max")) == 16 << 20
        events = subprocess.Popen(PYOCI + ["--root", str(state_root), "events",
                                                     "--interval", "10s", container_id],
                                  stdout=subprocess.PIPE, text=True)
        wait_watching_oom(events.pid)  # its eventfd (v1) or inotify fd (v2) is registered
        pyoci(state_root, "start", container_id)
        wait_status(state_root, container_id, "stopped")
        assert manager_from_state(saved_cgroup(state_root, container_id)).oom_killed()
        out, _ = events.communicate(timeout=30)
        kinds = [json.loads(line)["type"] for line in out.splitlines()]
        assert "oom" in kinds, out
        assert events.returncode == 0   # events ends when the container stops
    finally:
        if events and events.poll() is None:
            events.kill()
            events.wait()
        pyoci(state_root, "delete", "--force", container_id)
    for directory in cgroup_dirs(path) + cgroup_dirs(cgroup_parent):
        assert not os.path.exists(directory), f"{directory} left behind"


def test_run_exit_status_after_oom_kill(busybox_bundle, state_root, container_id, cgroup_parent):
    configure(busybox_bundle, f"{cgroup_parent}/{container_id}",
              ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
              {"memory": {"limit": 16 << 20, "swap": 16 << 20}})
    result = pyoci(state_root, "run", "--bundle", str(busybox_bundle), container_id, check=False)
    assert result.returncode == 137, result.stderr


def test_pids_limit_stops_a_fork_bomb(busybox_bundle, state_root, container_id, cgroup_parent):
    path = f"{cgroup_parent}/{container_id}"
    configure(busybox_bundle, path,
              # the subshell dies when fork fails; init then becomes a sleep without forking
              ["sh", "-c", "(i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done) 2>/dev/null; "
                           "exec sleep 30"],
              {"pids": {"limit": 10}})
    pyoci(state_root, "create", "--bundle", str(busybox_bundle), container_id)
    try:
        pyoci(state_root, "start", container_id)
        deadline = time.monotonic() + 20
        while "max 0" in cgroup_file("pids", path, "pids.events") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "max 0" not in cgroup_file("pids", path, "pids.events"), "no fork was refused"
        pids = json.loads(pyoci(state_root, "ps", "--format", "json", container_id).stdout)
        assert 1 < len(pids) <= 10
    finally:
        pyoci(state_root, "delete", "--force", container_id)
    for directory in cgroup_dirs(path):
        assert not os.path.exists(directory)


def test_cpu_quota_in_the_files_and_update_of_a_running_container(busybox_bundle, state_root,
                                                                  container_id, cgroup_parent):
    path = f"{cgroup_parent}/{container_id}"
    configure(busybox_bundle, path, ["sleep", "60"],
              {"cpu": {"quota": 20000, "period": 100000}, "memory": {"limit": 128 << 20}})
    pyoci(state_root, "run", "-d", "--bundle", str(busybox_bundle), container_id)
    try:
        cpu_max = cgroup_file("cpu", path, "cpu.cfs_quota_us") if "cpu" in LAYOUT.v1 else \
            cgroup_file("cpu", path, "cpu.max")
        assert cpu_max in ("20000", "20000 100000")
        pyoci(state_root, "update", "--cpu-quota", "50000", "--memory", "64m", "--pids-limit", "20",
              container_id)
        if "cpu" in LAYOUT.v1:
            assert cgroup_file("cpu", path, "cpu.cfs_quota_us") == "50000"
            assert int(cgroup_file("memory", path, "memory.limit_in_bytes")) == 64 << 20
            assert cgroup_file("pids", path, "pids.max") == "20"
        pyoci(state_root, "update", "--resources", "-", container_id,
              input=json.dumps({"pids": {"limit": 30}}))
        if "pids" in LAYOUT.v1:
            assert cgroup_file("pids", path, "pids.max") == "30"
        saved = saved_cgroup(state_root, container_id)["resources"]
        assert saved["cpu"] == {"quota": 50000, "period": 100000}
        assert saved["memory"]["limit"] == 64 << 20 and saved["pids"] == {"limit": 30}
        assert status(state_root, container_id) == "running"
        bad = pyoci(state_root, "update", "--memory", "lots", container_id, check=False)
        assert bad.returncode == 1 and "--memory" in bad.stderr
    finally:
        pyoci(state_root, "delete", "--force", container_id)


def test_devices_dev_null_allowed_new_node_denied(busybox_bundle, state_root, container_id, cgroup_parent):
    configure(busybox_bundle, f"{cgroup_parent}/{container_id}",
              ["sh", "-c", "echo x > /dev/null && echo null-ok; "
                           "mknod /dev/mem2 c 1 1 && echo mknod-ok; "
                           "head -c 1 /dev/mem2 > /dev/null 2>&1 && echo read-ok || echo read-denied"],
              caps=("CAP_MKNOD",))
    result = pyoci(state_root, "run", "--bundle", str(busybox_bundle), container_id)
    # runc's defaults after the config's deny-all: /dev/null usable, mknod of anything allowed,
    # but the new node (/dev/mem, c 1:1) cannot be opened
    assert result.stdout.split() == ["null-ok", "mknod-ok", "read-denied"], result.stdout + result.stderr


def test_pause_freezes_a_counter_and_resume_restarts_it(busybox_bundle, state_root, container_id,
                                                       cgroup_parent, tmp_path):
    configure(busybox_bundle, f"{cgroup_parent}/{container_id}",
              ["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i; done"])
    output = tmp_path / "counter.out"
    with open(output, "w") as out:
        subprocess.run(PYOCI + ["--root", str(state_root), "create", "--bundle",
                                          str(busybox_bundle), container_id],
                       stdout=out, stderr=out, check=True, timeout=60)
    try:
        pyoci(state_root, "start", container_id)
        while output.stat().st_size == 0:
            time.sleep(0.01)
        pyoci(state_root, "pause", container_id)
        assert status(state_root, container_id) == "paused"
        size = output.stat().st_size
        time.sleep(0.3)
        assert output.stat().st_size == size, "the counter ran while paused"
        again = pyoci(state_root, "pause", container_id, check=False)
        assert again.returncode == 1 and "not running" in again.stderr
        pyoci(state_root, "resume", container_id)
        assert status(state_root, container_id) == "running"
        deadline = time.monotonic() + 10
        while output.stat().st_size == size and time.monotonic() < deadline:
            time.sleep(0.01)
        assert output.stat().st_size > size, "the counter did not resume"
        wrong = pyoci(state_root, "resume", container_id, check=False)
        assert wrong.returncode == 1 and "not paused" in wrong.stderr
        pyoci(state_root, "pause", container_id)
    finally:
        pyoci(state_root, "delete", "--force", container_id)   # also from paused
    for directory in cgroup_dirs(f"{cgroup_parent}/{container_id}"):
        assert not os.path.exists(directory), f"{directory} left behind"


def test_events_stats_json(busybox_bundle, state_root, container_id, cgroup_parent):
    configure(busybox_bundle, f"{cgroup_parent}/{container_id}", ["sleep", "60"],
              {"memory": {"limit": 64 << 20}, "pids": {"limit": 50}})
    pyoci(state_root, "run", "-d", "--bundle", str(busybox_bundle), container_id)
    try:
        event = json.loads(pyoci(state_root, "events", "--stats", container_id).stdout)
        assert event["type"] == "stats" and event["id"] == container_id
        data = event["data"]
        assert data["memory"]["usage"]["usage"] > 0
        assert data["memory"]["usage"]["limit"] == 64 << 20
        assert data["cpu"]["usage"]["total"] > 0
        assert data["pids"]["current"] >= 1 and data["pids"]["limit"] == 50
        stream = subprocess.Popen(PYOCI + ["--root", str(state_root), "events",
                                                     "--interval", "200ms", container_id],
                                  stdout=subprocess.PIPE, text=True)
        try:
            lines = [json.loads(stream.stdout.readline()) for _ in range(2)]
            assert [e["type"] for e in lines] == ["stats", "stats"]
            pyoci(state_root, "kill", container_id, "KILL")
            assert stream.wait(timeout=20) == 0
        finally:
            if stream.poll() is None:
                stream.kill()
            stream.communicate()
    finally:
        pyoci(state_root, "delete", "--force", container_id)
    stopped = pyoci(state_root, "events", "--stats", container_id, check=False)
    assert stopped.returncode == 1 and "does not exist" in stopped.stderr
