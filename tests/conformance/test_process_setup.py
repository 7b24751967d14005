"""Setting up the container's process, as engines and real workloads expect (issue #11, items 5,
7 and 8): capabilities the runtime cannot grant only warn, ``process.scheduler``,
``process.ioPriority``, ``linux.memoryPolicy`` and ``linux.personality`` are applied (and bad
values refused naming the field), ``HOME`` comes from the container's /etc/passwd, a missing
``cwd`` is created inside the root, the process leads its own process group, a ``kernel.hostname``
sysctl beside ``hostname`` is refused, and a failing ``poststart`` hook leaves no container.

runc 1.1.5 ignores the four fields of item 7 and fails on a capability missing from its own
bounding set: those tests are marked ``runc_divergent``.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from oci_harness import assert_nothing_left, capability_mask, parse_status

#: the capabilities of ``runc spec``'s process
DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


@pytest.fixture(scope="module")
def static_program(tmp_path_factory):
    """``static_program(source, name)`` -> path of a static binary compiled from C ``source``."""
    cache = tmp_path_factory.mktemp("static-programs")

    def build(source: str, name: str = "prog") -> Path:
        out = cache / f"{name}-{hashlib.sha256(source.encode()).hexdigest()[:12]}"
        if not out.exists():
            src = out.with_suffix(".c")
            src.write_text(source)
            subprocess.run(["gcc", "-static", "-O2", "-o", str(out), str(src)], check=True,
                           capture_output=True, text=True)
        return out

    return build


def _install(box, program: Path, name: str) -> str:
    """Copy ``program`` into the container's /usr/local/bin; returns its path inside."""
    target = box.rootfs / "usr/local/bin"
    target.mkdir(parents=True, exist_ok=True)
    (target / name).write_bytes(program.read_bytes())
    (target / name).chmod(0o755)
    return f"/usr/local/bin/{name}"


def _log_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _run_logged(box, tmp_path, *argv, **kw):
    """``run`` with ``--log FILE --log-format json``: (result, log records)."""
    log = tmp_path / "runtime-log.json"
    proc = box.run(*argv, global_flags=("--log", str(log), "--log-format", "json"), **kw)
    return proc, _log_records(log)


def _stat_fields(text: str) -> list[str]:
    """/proc/PID/stat as a list whose index 0 is field 1 (pid), index 4 field 5 (pgrp)..."""
    head, _, tail = text.strip().rpartition(")")
    pid, _, comm = head.partition(" (")
    return [pid, comm] + tail.split()


# --- item 5: capabilities the runtime lacks ------------------------------------------------
def _host_bounding() -> int:
    return int(parse_status(Path("/proc/self/status").read_text())["CapBnd"], 16)


@pytest.mark.runc_divergent  # runc 1.1.5: "apply caps: operation not permitted"
def test_capability_missing_from_the_runtimes_bounding_set_only_warns(box, tmp_path, all_capabilities):
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    missing = [name for number, name in enumerate(all_capabilities[:last + 1]) if not _host_bounding() >> number & 1]
    if not missing:
        pytest.skip("the runtime holds every capability here: none to miss")
    box.set_caps(DEFAULT_CAPS + missing[:1], inheritable=[], ambient=[])
    proc, records = _run_logged(box, tmp_path, "cat", "/proc/self/status")
    assert proc.returncode == 0, proc.stderr
    status = parse_status(proc.stdout)
    for field in ("CapBnd", "CapEff", "CapPrm"):  # what can be set is set
        assert int(status[field], 16) == capability_mask(DEFAULT_CAPS, all_capabilities), field
    warnings = [r["msg"] for r in records if r["level"] in ("warning", "warn")]
    assert any(missing[0] in w and "bounding set" in w for w in warnings), warnings


def test_unknown_capability_only_warns(box, tmp_path, all_capabilities):
    box.set_caps(DEFAULT_CAPS + ["CAP_FOO"], inheritable=[], ambient=[])
    proc, records = _run_logged(box, tmp_path, "cat", "/proc/self/status")
    assert proc.returncode == 0, proc.stderr
    assert int(parse_status(proc.stdout)["CapEff"], 16) == capability_mask(DEFAULT_CAPS, all_capabilities)
    warnings = [r["msg"] for r in records if r["level"] in ("warning", "warn")]
    assert any("CAP_FOO" in w for w in warnings), warnings


@pytest.mark.pyoci_only  # the warning's wording
def test_capability_warning_says_what_was_dropped_and_why(box, tmp_path):
    box.set_caps(DEFAULT_CAPS + ["CAP_FOO"], inheritable=[], ambient=[])
    proc, records = _run_logged(box, tmp_path, "true")
    assert proc.returncode == 0, proc.stderr
    warning = next(r["msg"] for r in records if r["level"] == "warning")
    assert "CAP_FOO is not a capability of capabilities(7)" in warning
    assert "left out of bounding, effective, permitted" in warning


@pytest.mark.pyoci_only
def test_exec_with_an_unavailable_capability_only_warns(box, tmp_path):
    box.start_sleeper()
    log = tmp_path / "exec-log.json"
    proc = box.runtime("exec", "--cap", "CAP_FOO", box.id, "true",
                       global_flags=("--log", str(log), "--log-format", "json"))
    assert proc.returncode == 0, proc.stderr
    assert any("CAP_FOO" in r["msg"] for r in _log_records(log) if r["level"] == "warning")


# --- item 7: scheduler, ioPriority, memoryPolicy, personality ----------------------------------
@pytest.mark.runc_divergent  # runc 1.1 ignores process.scheduler
@pytest.mark.parametrize("scheduler, policy, nice", [
    ({"policy": "SCHED_BATCH", "nice": 7}, 3, 7),
    ({"policy": "SCHED_IDLE"}, 5, 0),
    ({"policy": "SCHED_OTHER", "nice": -5}, 0, -5),
])
def test_scheduler_is_applied(box, scheduler, policy, nice):
    box.config["process"]["scheduler"] = scheduler
    fields = _stat_fields(box.sh("cat /proc/self/stat").stdout)
    assert (int(fields[40]), int(fields[18])) == (policy, nice)  # stat fields 41 (policy), 19 (nice)


@pytest.mark.runc_divergent
def test_scheduler_applies_to_exec_too(box):
    box.config["process"]["scheduler"] = {"policy": "SCHED_BATCH", "nice": 3}
    box.start_sleeper()
    proc = box.exec("cat", "/proc/self/stat")
    assert proc.returncode == 0, proc.stderr
    fields = _stat_fields(proc.stdout)
    assert (int(fields[40]), int(fields[18])) == (3, 3)


@pytest.mark.runc_divergent  # runc 1.1 ignores process.ioPriority
@pytest.mark.parametrize("io_priority, shown", [
    ({"class": "IOPRIO_CLASS_BE", "priority": 6}, "best-effort: prio 6"),
    ({"class": "IOPRIO_CLASS_IDLE"}, "idle"),
    ({"class": "IOPRIO_CLASS_RT", "priority": 2}, "realtime: prio 2"),
])
def test_io_priority_is_applied(box, io_priority, shown):
    box.config["process"]["ioPriority"] = io_priority
    assert box.sh("ionice -p $$").stdout.strip() == shown


GET_MEMPOLICY = r"""
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(void) {
    int mode = -1;
    unsigned long mask[16] = {0};
    if (syscall(SYS_get_mempolicy, &mode, mask, 16 * 8 * sizeof(unsigned long), NULL, 0UL) != 0) {
        perror("get_mempolicy");
        return 1;
    }
    printf("mode=%d mask=%lx\n", mode, mask[0]);
    return 0;
}
"""


@pytest.mark.runc_divergent  # runc 1.1 ignores linux.memoryPolicy
@pytest.mark.parametrize("policy, expected", [
    ({"mode": "MPOL_BIND", "nodes": "0"}, "mode=2 mask=1"),
    ({"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]}, f"mode={3 | 1 << 15} mask=1"),
    ({"mode": "MPOL_PREFERRED", "nodes": "0"}, "mode=1 mask=1"),
])
def test_memory_policy_is_applied(box, static_program, policy, expected):
    helper = _install(box, static_program(GET_MEMPOLICY, "get-mempolicy"), "get-mempolicy")
    box.config["linux"]["memoryPolicy"] = policy
    proc = box.run(helper)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected
    box.start_sleeper()  # and an exec'd process has it too
    execd = box.exec(helper)
    assert execd.returncode == 0 and execd.stdout.strip() == expected, execd.stderr


@pytest.mark.runc_divergent  # runc 1.1 ignores linux.personality
def test_personality_linux32(box):
    if os.uname().machine != "x86_64":
        pytest.skip("LINUX32 is checked where uname -m names the 32-bit machine i686")
    box.config["linux"]["personality"] = {"domain": "LINUX32"}
    assert box.sh("uname -m").stdout.strip() == "i686"
    box.start_sleeper()
    execd = box.exec("uname", "-m")
    assert execd.returncode == 0 and execd.stdout.strip() == "i686", execd.stderr


def test_personality_linux_is_the_default_domain(box):
    box.config["linux"]["personality"] = {"domain": "LINUX"}
    assert box.sh("uname -m").stdout.strip() == os.uname().machine


@pytest.mark.pyoci_only  # runc 1.1 ignores these fields, whatever their values
@pytest.mark.parametrize("section, key, value, where", [
    ("process", "scheduler", {"policy": "SCHED_FIFO"}, "process.scheduler.priority"),
    ("process", "scheduler", {"policy": "SCHED_OTHER", "priority": 5}, "process.scheduler.priority"),
    ("process", "scheduler", {"policy": "SCHED_BATCH", "nice": 20}, "process.scheduler.nice"),
    ("process", "scheduler", {"policy": "SCHED_ISO"}, "process.scheduler.policy"),
    ("process", "scheduler", {"policy": "SCHED_OTHER", "runtime": 1000}, "process.scheduler.runtime"),
    ("process", "scheduler", {"policy": "SCHED_DEADLINE", "runtime": 5000, "deadline": 1000},
     "process.scheduler: runtime 5000, deadline 1000, period 0 cannot be scheduled"),
    ("process", "scheduler", {"policy": "SCHED_RR", "priority": 1, "flags": ["SCHED_FLAG_UTIL_CLAMP_MIN"]},
     "process.scheduler.flags[0]"),
    ("process", "scheduler", {"nice": 1}, "process.scheduler.policy"),
    ("process", "ioPriority", {"class": "IOPRIO_CLASS_BE", "priority": 8}, "process.ioPriority.priority"),
    ("process", "ioPriority", {"class": "IOPRIO_CLASS_NONE"}, "process.ioPriority.class"),
    ("linux", "memoryPolicy", {"mode": "MPOL_BIND"}, "linux.memoryPolicy.nodes"),
    ("linux", "memoryPolicy", {"mode": "MPOL_BIND", "nodes": "0-x"}, "linux.memoryPolicy.nodes"),
    ("linux", "memoryPolicy", {"mode": "MPOL_BIND", "nodes": "4095"}, "linux.memoryPolicy.nodes"),
    ("linux", "memoryPolicy", {"mode": "MPOL_BIND", "nodes": "99999999"}, "linux.memoryPolicy.nodes"),
    ("linux", "memoryPolicy", {"mode": "MPOL_DEFAULT", "nodes": "0"}, "linux.memoryPolicy.nodes"),
    ("linux", "memoryPolicy", {"mode": "MPOL_BIND", "nodes": "0",
                               "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]}, "linux.memoryPolicy.flags"),
    ("linux", "memoryPolicy", {"mode": "MPOL_FANCY", "nodes": "0"}, "linux.memoryPolicy.mode"),
    ("linux", "personality", {"domain": "LINUX64"}, "linux.personality.domain"),
    ("linux", "personality", {"flags": []}, "linux.personality.domain"),
    ("linux", "personality", {"domain": "LINUX32", "flags": ["SHORT_INODE"]}, "linux.personality.flags[0]"),
])
def test_bad_values_are_refused_naming_the_field(box, tmp_path, section, key, value, where):
    box.config[section][key] = value
    log = tmp_path / "log.json"
    proc = box.create(check=False, global_flags=("--log", str(log), "--log-format", "json"))
    assert proc.returncode != 0
    errors = [r["msg"] for r in _log_records(log) if r["level"] == "error"]
    assert errors and where in errors[-1], errors
    assert "Traceback" not in proc.stderr
    assert_nothing_left(box)


@pytest.mark.pyoci_only
def test_features_list_the_process_fields(runtime):
    features = json.loads(runtime("features", check=True).stdout)["linux"]
    assert "SCHED_BATCH" in features["scheduler"]["policies"]
    assert features["ioPriority"]["classes"] == ["IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE", "IOPRIO_CLASS_IDLE"]
    assert "MPOL_BIND" in features["memoryPolicy"]["modes"]
    assert "LINUX32" in features["personality"]["domains"]


# --- item 8: HOME, cwd, process group, kernel.hostname, poststart -----------------------------
@pytest.mark.parametrize("uid, home", [(0, "/root"), (65534, "/nonexistent"), (4242, "/")])
def test_home_comes_from_the_users_passwd_entry(box, uid, home):
    box.config["process"]["user"] = {"uid": uid, "gid": uid}
    box.config["process"]["env"] = [e for e in box.config["process"]["env"] if not e.startswith("HOME=")]
    assert box.sh('echo "HOME=$HOME"').stdout.strip() == f"HOME={home}"
    box.config["process"]["env"].append("HOME=/srv/mine")  # one in the environment is kept
    assert box.sh('echo "HOME=$HOME"').stdout.strip() == "HOME=/srv/mine"


def test_home_of_an_exec(box):
    box.start_sleeper()
    proc = box.exec("sh", "-c", 'echo "HOME=$HOME"')
    assert proc.returncode == 0 and proc.stdout.strip() == "HOME=/root", proc.stderr


def test_home_never_comes_from_a_passwd_outside_the_root(box, tmp_path):
    outside = tmp_path / "host-passwd"
    outside.write_text("root:x:0:0:root:/host-secret:/bin/sh\n")
    passwd = box.rootfs / "etc/passwd"
    passwd.unlink()
    passwd.symlink_to("../" * 30 + str(outside).lstrip("/"))
    assert box.sh('echo "HOME=$HOME"').stdout.strip() == "HOME=/"


@pytest.mark.runc_divergent  # runc 1.1.5 opens a FIFO /etc/passwd and waits for a writer forever
def test_home_lookup_does_not_hang_on_a_fifo_passwd(box):
    passwd = box.rootfs / "etc/passwd"
    passwd.unlink()
    os.mkfifo(passwd)
    assert box.sh('echo "HOME=$HOME"', timeout=30).stdout.strip() == "HOME=/"


def _escaping_cwd(box, tmp_path) -> Path:
    """cwd /escape/planted where the image's /escape is a symlink pointing out of the root;
    returns the host directory it names."""
    host_dir = tmp_path / "host-side"
    host_dir.mkdir()
    (box.rootfs / "escape").symlink_to("/" + "../" * 30 + str(host_dir).lstrip("/"))
    box.config["process"]["cwd"] = "/escape/planted"
    return host_dir


def test_missing_cwd_is_created_never_outside_the_root(box, tmp_path):
    box.config["process"]["cwd"] = "/made/by/the/runtime"
    out = box.sh('pwd; stat -c "%a %u" .').stdout.split()
    assert out == ["/made/by/the/runtime", "755", "0"]
    # the image's symlink pointing out of the root: nothing is made on the host (runc 1.1.5
    # refuses this cwd: "mkdir /escape: file exists"; pyoci follows the link inside the root)
    host_dir = _escaping_cwd(box, tmp_path)
    box.run("pwd")
    assert not (host_dir / "planted").exists(), "the runtime created the cwd outside the container's root"


@pytest.mark.runc_divergent  # runc 1.1.5's MkdirAll fails on the dangling symlink
def test_missing_cwd_behind_a_symlink_is_made_inside_the_root(box, tmp_path):
    """The image's symlink is followed inside the root, as the process itself would follow it."""
    host_dir = _escaping_cwd(box, tmp_path)
    # (getcwd names the directory the link led to: the same path, inside the root)
    assert box.sh("pwd").stdout.strip() == str(host_dir / "planted")
    assert not (host_dir / "planted").exists()
    made = box.rootfs / str(host_dir).lstrip("/") / "planted"
    assert stat.S_ISDIR(made.lstat().st_mode)


def test_process_leads_its_own_process_group(box):
    fields = box.sh("cat /proc/$$/stat").stdout
    pid, pgrp = _stat_fields(fields)[0], _stat_fields(fields)[4]
    assert (pid, pgrp) == ("1", "1")


def test_exec_process_leads_its_own_process_group(box):
    box.start_sleeper()
    proc = box.exec("sh", "-c", "cat /proc/$$/stat")
    assert proc.returncode == 0, proc.stderr
    fields = _stat_fields(proc.stdout)
    assert fields[4] == fields[0] != "0"


def test_kernel_hostname_sysctl_conflicts_with_hostname(box):
    box.config["hostname"] = "one"
    box.config["linux"]["sysctl"] = {"kernel.hostname": "two"}
    proc = box.run("hostname")
    assert proc.returncode != 0
    assert "kernel.hostname" in proc.stderr and "hostname" in proc.stderr
    assert_nothing_left(box)


def test_failing_poststart_hook_stops_and_deletes_the_container(box, tmp_path):
    marker = tmp_path / "poststop-ran"
    box.add_hook("poststart", {"path": "/bin/sh", "args": ["sh", "-c", "exit 7"]})
    box.add_hook("poststop", {"path": "/bin/sh", "args": ["sh", "-c", f"touch {marker}"]})
    box.args("sleep", "1000")
    created = box.create(check=False)
    if created.returncode == 0:  # (runc 1.1 runs poststart during create)
        started = box.start(check=False)
        assert started.returncode != 0
    assert box.runtime("state", box.id).returncode != 0, "the container is still there"
    assert marker.exists(), "poststop hooks did not run"
    assert_nothing_left(box)
