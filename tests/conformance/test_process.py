"""The process object (config.md#process): capabilities, rlimits, user, umask,
noNewPrivileges, cwd, env, oomScoreAdj; linux.sysctl (config-linux.md#sysctl).
Read back from /proc/self/{status,limits,oom_score_adj} and busybox inside the container."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from oci_harness import ConsoleSocket, assert_nothing_left, capability_mask, parse_limits, parse_status

CAP_FIELDS = {"bounding": "CapBnd", "effective": "CapEff", "permitted": "CapPrm",
              "inheritable": "CapInh", "ambient": "CapAmb"}
SOME_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_KILL", "CAP_SETUID", "CAP_SETGID",
             "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE", "CAP_SYS_ADMIN", "CAP_CHECKPOINT_RESTORE"]


def status_of(box) -> dict[str, str]:
    return parse_status(box.sh("cat /proc/self/status").stdout)


def assert_caps(status: dict, expected: dict[str, list[str]], all_caps) -> None:
    for cap_set, field in CAP_FIELDS.items():
        want = capability_mask(expected[cap_set], all_caps)
        got = int(status[field], 16)
        assert got == want, (f"{field}: got {got:#018x}, config's {cap_set} set is {want:#018x} "
                             f"(extra bits {got & ~want:#x}, missing bits {want & ~got:#x})")


def test_capabilities_all_sets_equal(box, all_capabilities):
    box.set_caps(SOME_CAPS)
    assert_caps(status_of(box), {s: SOME_CAPS for s in CAP_FIELDS}, all_capabilities)


def test_capabilities_without_inheritable_and_ambient(box, all_capabilities):
    box.set_caps(SOME_CAPS, inheritable=[], ambient=[])
    expected = {s: SOME_CAPS for s in CAP_FIELDS} | {"inheritable": [], "ambient": []}
    assert_caps(status_of(box), expected, all_capabilities)


def test_capabilities_of_a_non_root_user(box, all_capabilities):
    """For uid != 0 the kernel keeps across execve only the ambient set in permitted/effective:
    with ambient = inheritable = permitted = effective the sets survive; bounding may be larger."""
    box.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    small = ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
    box.set_caps(small, bounding=SOME_CAPS)
    expected = {s: small for s in CAP_FIELDS} | {"bounding": SOME_CAPS}
    assert_caps(status_of(box), expected, all_capabilities)


def test_every_capability_the_runtime_holds(box, all_capabilities):
    """All the capabilities the runtime itself has (a runtime cannot grant more)."""
    host_bounding = int(parse_status(Path("/proc/self/status").read_text())["CapBnd"], 16)
    held = [name for number, name in enumerate(all_capabilities) if host_bounding >> number & 1]
    box.set_caps(held)
    assert_caps(status_of(box), {s: held for s in CAP_FIELDS}, all_capabilities)


@pytest.mark.parametrize("with_chown", [False, True])
def test_dropped_capability_makes_the_operation_fail(box, with_chown):
    caps = ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"] + (["CAP_CHOWN"] if with_chown else [])
    box.set_caps(caps)
    box.config["root"]["readonly"] = False
    proc = box.run("sh", "-c", "touch /f && chown 1000:1000 /f && echo chowned")
    if with_chown:
        assert proc.returncode == 0 and "chowned" in proc.stdout, proc.stderr
        assert (box.rootfs / "f").stat().st_uid == 1000
    else:
        assert proc.returncode != 0
        assert "Operation not permitted" in proc.stderr
        assert (box.rootfs / "f").stat().st_uid == 0


def test_rlimits(box):
    box.config["process"]["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1000},
        {"type": "RLIMIT_CORE", "soft": 4096, "hard": 8192},
        {"type": "RLIMIT_NPROC", "soft": 300, "hard": 400},
    ]
    limits = parse_limits(box.sh("cat /proc/self/limits").stdout)
    assert limits["Max open files"] == ("512", "1000")
    assert limits["Max core file size"] == ("4096", "8192")
    assert limits["Max processes"] == ("300", "400")
    assert box.sh("ulimit -n").stdout.strip() == "512"


def test_user_group_and_additional_groups(box):
    box.config["process"]["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [10, 20]}
    status = status_of(box)
    assert status["Uid"].split() == ["1000"] * 4
    assert status["Gid"].split() == ["1001"] * 4
    assert set(status["Groups"].split()) - {"1001"} == {"10", "20"}
    assert box.sh("id -u; id -g").stdout.split() == ["1000", "1001"]


def test_umask(box):
    box.config["process"]["user"]["umask"] = 0o027
    box.config["root"]["readonly"] = False
    out = box.sh("umask; touch /newfile; stat -c %a /newfile").stdout.split()
    assert out == ["0027", "640"]


@pytest.mark.parametrize("no_new_privileges", [True, False])
def test_no_new_privileges(box, no_new_privileges):
    box.config["process"]["noNewPrivileges"] = no_new_privileges
    assert status_of(box)["NoNewPrivs"] == ("1" if no_new_privileges else "0")


def test_cwd_env_and_args(box):
    box.config["process"]["cwd"] = "/etc"
    box.config["process"]["env"] = ["PATH=/bin:/usr/bin", "GREETING=hello world", "EMPTY="]
    proc = box.run("sh", "-c", 'pwd; echo "$GREETING"; echo "[$EMPTY]"; echo "$0" "$1"; env',
                   "argv0", "first arg")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:4] == ["/etc", "hello world", "[]", "argv0 first arg"]
    env_names = {l.split("=", 1)[0] for l in lines[4:]}
    assert {"PATH", "GREETING", "EMPTY"} <= env_names
    # nothing of the runtime's environment leaks in (HOME, PWD, SHLVL may be added)
    assert env_names - {"PATH", "GREETING", "EMPTY", "HOME", "PWD", "SHLVL"} == set()


def test_env_of_the_runtime_does_not_leak(box):
    box.config["process"]["env"] = ["PATH=/bin:/usr/bin"]
    box.args("env")
    box.save()
    env = dict(os.environ, PYOCI_LEAK_CANARY="leaked")
    proc = box.runtime("run", "--bundle", box.bundle, box.id, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "PATH=/bin:/usr/bin" in proc.stdout
    assert "PYOCI_LEAK_CANARY" not in proc.stdout


def test_oom_score_adj(box):
    box.config["process"]["oomScoreAdj"] = 537
    assert box.sh("cat /proc/self/oom_score_adj").stdout == "537\n"


def test_sysctl_in_the_containers_namespaces(box):
    host_forward = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    host_rmid = Path("/proc/sys/kernel/shm_rmid_forced").read_text()
    new_forward = "0" if host_forward.strip() == "1" else "1"
    new_rmid = "0" if host_rmid.strip() == "1" else "1"
    box.config["linux"]["sysctl"] = {"net.ipv4.ip_forward": new_forward,
                                     "kernel.shm_rmid_forced": new_rmid}
    out = box.sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shm_rmid_forced").stdout.split()
    assert out == [new_forward, new_rmid]
    # the host's values are untouched: they were set in the container's net and ipc namespaces
    assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == host_forward
    assert Path("/proc/sys/kernel/shm_rmid_forced").read_text() == host_rmid


@pytest.mark.parametrize("sysctl,namespace", [("net.ipv4.ip_forward", "network"),
                                              ("kernel.shm_rmid_forced", "ipc")])
def test_sysctl_without_its_namespace_is_refused(box, sysctl, namespace):
    path = Path("/proc/sys") / sysctl.replace(".", "/")
    host_value = path.read_text()
    box.remove_namespace(namespace)
    box.config["linux"]["sysctl"] = {sysctl: "0" if host_value.strip() == "1" else "1"}
    proc = box.run("true")
    assert proc.returncode != 0, f"{sysctl} accepted without a {namespace} namespace"
    assert path.read_text() == host_value, "the host's sysctl was changed"
    assert_nothing_left(box)


def test_seccomp_errno_rule(box):
    """linux.seccomp: a rule returning an errno makes exactly those syscalls fail."""
    box.config["root"]["readonly"] = False
    box.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
    }
    proc = box.run("sh", "-c", "touch /file-ok && echo touched; mkdir /dir-refused")
    assert "touched" in proc.stdout
    assert proc.returncode != 0 and "Operation not permitted" in proc.stderr
    assert not (box.rootfs / "dir-refused").exists()


def test_console_socket_receives_the_pty(box, tmp_path):
    """process.terminal with --console-socket: the runtime sends the pty master over the
    AF_UNIX socket (SCM_RIGHTS); the process's stdio is the pty's slave side."""
    with ConsoleSocket(tmp_path / "console.sock") as console:
        box.args("sh", "-c", "tty; echo hello-from-the-pty")
        box.config["process"]["terminal"] = True
        box.save()
        box.runtime("create", "--bundle", box.bundle, "--console-socket", console.path, box.id, check=True)
        master = console.receive_master()
        assert "ptmx" in os.readlink(f"/proc/self/fd/{master}"), "not a pty master"
        box.start()
        text = console.read_until(master, "hello-from-the-pty")
    assert "hello-from-the-pty" in text
    assert text.splitlines()[0].startswith("/dev/pts/"), text


def test_exec_tty_with_console_socket(box, tmp_path):
    """``exec --tty --console-socket`` (podman exec -t): the exec'd process gets its own pty."""
    box.start_sleeper()
    with ConsoleSocket(tmp_path / "exec-console.sock") as console:
        exec_proc = subprocess.Popen(
            box.runtime.argv("exec", "--tty", "--console-socket", console.path, "--detach",
                             box.id, "sh", "-c", "tty; echo hello-from-exec; sleep 1"),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        master = console.receive_master()
        text = console.read_until(master, "hello-from-exec")
        _, err = exec_proc.communicate(timeout=60)
    assert exec_proc.returncode == 0, err
    assert "hello-from-exec" in text
    assert text.splitlines()[0].startswith("/dev/pts/"), text


def test_cgroup_resources_are_applied(box):
    """linux.resources: the limits land in the container's cgroup (read on the host through
    /proc/<pid>/cgroup) and are enforced (forks beyond pids.max fail)."""
    box.config["linux"]["resources"]["memory"] = {"limit": 64 * 1024 * 1024}
    box.config["linux"]["resources"]["pids"] = {"limit": 20}
    box.config["linux"]["resources"]["cpu"] = {"shares": 512}
    pid = box.start_sleeper()
    cgroups = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):  # "" for the v2 line
            cgroups[controller] = path
    if "memory" in cgroups:  # cgroup v1 (this machine's layout)
        base = Path("/sys/fs/cgroup")
        assert (base / "memory" / cgroups["memory"].lstrip("/") / "memory.limit_in_bytes").read_text().strip() == str(64 << 20)
        assert (base / "pids" / cgroups["pids"].lstrip("/") / "pids.max").read_text().strip() == "20"
        assert (base / "cpu" / cgroups["cpu"].lstrip("/") / "cpu.shares").read_text().strip() == "512"
    else:  # cgroup v2
        directory = Path("/sys/fs/cgroup") / cgroups[""].lstrip("/")
        assert (directory / "memory.max").read_text().strip() == str(64 << 20)
        assert (directory / "pids.max").read_text().strip() == "20"
    proc = box.exec("sh", "-c", "for i in $(seq 40); do sleep 1 & done; wait")
    assert "Resource temporarily unavailable" in proc.stderr, "40 forks succeeded under pids.max=20"
