"""cgroups and kill as the spec and the engines want them (issue #11, items 1, 6 and 8):

* config-linux.md, allowed device list: "The runtime MUST apply entries in the listed order"
  (runc 1.1.5 writes them sorted: ``runc_divergent``);
* the device allowlist also holds for a config without ``linux.resources`` (runc's defaults);
* ``kill --all`` of a stopped container succeeds quietly and reaches what is left in its cgroup
  (containerd's shim calls it after every exit in a shared pid namespace), as runc does;
* ``cpu.realtimeRuntime`` works with the runtime's default cgroup (cgroup v1: the parents need
  a realtime budget of their own), and a realtime process can then run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from oci_harness import assert_nothing_left, pid_alive


def v1_mount(controller: str) -> Path | None:
    """Where the v1 hierarchy of ``controller`` is mounted on the host (None: not mounted)."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(tail) >= 3 and tail[0] == "cgroup" and controller in tail[2].split(","):
            return Path(fields[4])
    return None


# --- item 1: device rules in the listed order ---------------------------------------------------
ISSUE_RULES = [{"allow": False, "access": "rwm"},
               {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
               {"allow": True, "type": "b", "major": 8, "minor": 20, "access": "rw"},
               {"allow": True, "type": "b", "major": 10, "minor": 200, "access": "r"}]


@pytest.mark.runc_divergent
@pytest.mark.skipif(v1_mount("devices") is None, reason="no cgroup v1 devices controller")
def test_device_rules_are_applied_in_the_listed_order(box):
    box.config["linux"]["cgroupsPath"] = f"/{box.id}"
    box.config["linux"].setdefault("resources", {})["devices"] = ISSUE_RULES
    box.args("sleep", "1000")
    box.create()
    listed = (v1_mount("devices") / box.id / "devices.list").read_text().split("\n")
    assert listed[:3] == ["c 10:229 rwm", "b 8:20 rw", "b 10:200 r"], listed
    box.delete(force=True)
    assert_nothing_left(box)


# --- the allowlist without linux.resources ---------------------------------------------------
def test_the_device_allowlist_holds_without_resources(box):
    """mknod of any device is allowed (the defaults), opening one outside the allowlist is
    not: loop0 (b 7:0) and loop-control (c 10:237), with CAP_MKNOD in the container."""
    box.config["linux"].pop("resources", None)
    caps = box.config["process"]["capabilities"]
    for name in caps:
        caps[name] = sorted(set(caps[name]) | {"CAP_MKNOD"})
    proc = box.run("sh", "-c", "mknod /dev/probe-b b 7 0 && mknod /dev/probe-c c 10 237 && "
                               "echo made; head -c1 /dev/probe-b; head -c1 /dev/probe-c; "
                               "echo x > /dev/probe-c; exit 0")
    assert proc.returncode == 0, proc.stderr
    assert "made" in proc.stdout, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "probe-" in line]
    assert len(errors) == 3 and all("Operation not permitted" in e for e in errors), proc.stderr


# --- item 6: kill --all of a stopped container ----------------------------------------------
def test_kill_all_of_a_stopped_container_succeeds_quietly(box):
    box.args("true")
    box.create()
    box.start()
    assert box.runtime.wait_status(box.id, "stopped")["status"] == "stopped"
    proc = box.kill("KILL", "--all", check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == ""
    assert box.state()["status"] == "stopped"
    box.delete()
    assert_nothing_left(box)


def test_kill_all_of_a_stopped_container_reaches_what_is_left(box, tmp_path):
    """Without a pid namespace of its own the init's children outlive it, in its cgroup."""
    out = tmp_path / "out"
    out.mkdir()
    box.add_mount("/out", str(out), "bind", ["rbind", "rw"])
    box.remove_namespace("pid")
    box.args("sh", "-c", "sleep 1000 </dev/null >/dev/null 2>&1 & echo $! > /out/pid")
    box.create()
    box.start()
    pid = 0
    try:
        assert box.runtime.wait_status(box.id, "stopped")["status"] == "stopped"
        pid = int((out / "pid").read_text())
        assert pid_alive(pid), "the background sleep is already gone"
        proc = box.kill("KILL", "--all", check=False)
        assert proc.returncode == 0, proc.stderr
        deadline = time.monotonic() + 10
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(pid), "kill --all did not reach the process left in the cgroup"
    finally:
        if pid and pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


# --- item 8: a realtime budget under the default cgroup ----------------------------------------
RT_PROBE = r"""
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
int main(void) {
    struct sched_param param = {.sched_priority = 10};
    if (sched_setscheduler(0, SCHED_FIFO, &param) != 0) {
        printf("fifo=%s\n", strerror(errno));
        return 1;
    }
    printf("fifo=ok\n");
    return 0;
}
"""


def _rt_group_scheduling() -> bool:
    cpu = v1_mount("cpu")
    return cpu is not None and (cpu / "cpu.rt_runtime_us").exists()


@pytest.mark.skipif(not _rt_group_scheduling(), reason="no cgroup v1 cpu controller with "
                                                       "realtime group scheduling")
def test_realtime_runtime_under_the_default_cgroup(box, tmp_path):
    """No cgroupsPath: the runtime's default cgroup must be able to hand out the budget, and a
    SCHED_FIFO process then runs (without a budget the kernel refuses it with EPERM)."""
    source = tmp_path / "rtprobe.c"
    source.write_text(RT_PROBE)
    subprocess.run(["gcc", "-static", "-O2", "-o", str(box.rootfs / "rtprobe"), str(source)],
                   check=True, capture_output=True)
    box.config["linux"].pop("cgroupsPath", None)
    box.config["linux"].setdefault("resources", {})["cpu"] = {"realtimePeriod": 1000000,
                                                              "realtimeRuntime": 10000}
    caps = box.config["process"]["capabilities"]
    for name in caps:
        caps[name] = sorted(set(caps[name]) | {"CAP_SYS_NICE"})
    proc = box.run("/rtprobe")
    assert proc.returncode == 0, f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert proc.stdout.strip() == "fifo=ok"
    box.delete(force=True)
    assert_nothing_left(box)
