"""The container's file system view: hostname/domainname (config.md#hostname), root
(config.md#root), mounts (config.md#mounts), the default devices and linux.devices
(config-linux.md#devices, #default-devices, #dev-symbolic-links), maskedPaths and readonlyPaths.
Everything is read back from inside a real busybox container."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from oci_harness import parse_mountinfo


def mounts_of(box) -> dict:
    return parse_mountinfo(box.sh("cat /proc/self/mountinfo").stdout)


def test_hostname(box):
    box.config["hostname"] = "box-one"
    assert box.sh("hostname").stdout == "box-one\n"


@pytest.mark.runc_divergent  # runc 1.1 ignores domainname (added in runc 1.2)
def test_domainname(box):
    box.config["domainname"] = "example.test"
    assert box.sh("cat /proc/sys/kernel/domainname").stdout == "example.test\n"


def test_default_mounts(box):
    box.config["linux"]["namespaces"].append({"type": "cgroup"})
    mounts = mounts_of(box)
    host_mounts = parse_mountinfo(Path("/proc/self/mountinfo").read_text())

    assert mounts["/proc"].fstype == "proc"

    dev = mounts["/dev"]
    assert dev.fstype == "tmpfs"
    assert {"nosuid", "mode=755", "size=65536k"} <= dev.all_options

    pts = mounts["/dev/pts"]
    assert pts.fstype == "devpts"
    assert {"nosuid", "noexec", "ptmxmode=666", "mode=620", "gid=5"} <= pts.all_options
    if "/dev/pts" in host_mounts:  # newinstance: a devpts of its own, not the host's
        assert pts.device != host_mounts["/dev/pts"].device

    shm = mounts["/dev/shm"]
    assert shm.fstype == "tmpfs"
    assert {"nosuid", "nodev", "noexec", "size=65536k"} <= shm.all_options

    assert mounts["/dev/mqueue"].fstype == "mqueue"
    assert {"nosuid", "nodev", "noexec"} <= mounts["/dev/mqueue"].options

    sys_mount = mounts["/sys"]
    assert sys_mount.fstype == "sysfs"
    assert "ro" in sys_mount.options

    cgroup_mounts = [m for p, m in mounts.items()
                     if p.startswith("/sys/fs/cgroup") and m.fstype in ("cgroup", "cgroup2")]
    assert cgroup_mounts, "no cgroup file system under /sys/fs/cgroup"
    assert all("ro" in m.options for m in cgroup_mounts)


def test_root_readonly(box):
    box.config["root"]["readonly"] = True
    proc = box.run("sh", "-c", "cat /proc/self/mountinfo; touch /newfile")
    assert "ro" in parse_mountinfo(proc.stdout)["/"].options
    assert proc.returncode != 0
    assert "Read-only file system" in proc.stderr


def test_root_writable(box):
    box.config["root"]["readonly"] = False
    box.sh("touch /newfile")
    assert (box.rootfs / "newfile").exists()


def test_bind_mount_read_only(box, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "hello").write_text("from the host\n")
    box.add_mount("/data", str(shared), "bind", ["rbind", "ro"])
    proc = box.run("sh", "-c", "cat /data/hello; grep ' /data ' /proc/self/mountinfo; touch /data/x")
    assert proc.stdout.startswith("from the host\n")
    entry = parse_mountinfo(proc.stdout.split("\n", 1)[1])["/data"]
    assert "ro" in entry.options
    assert proc.returncode != 0 and "Read-only file system" in proc.stderr
    assert not (shared / "x").exists()


def test_bind_mount_read_write(box, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    box.add_mount("/data", str(shared), "bind", ["rbind", "rw"])
    box.sh("echo written-inside > /data/out")
    assert (shared / "out").read_text() == "written-inside\n"


def test_tmpfs_with_flags_mode_and_size(box):
    box.add_mount("/scratch", "tmpfs", "tmpfs", ["nosuid", "nodev", "noexec", "mode=1770", "size=4m"])
    proc = box.run("sh", "-c", "grep ' /scratch ' /proc/self/mountinfo; stat -c '%a' /scratch; "
                   "cp /bin/busybox /scratch/bb && /scratch/bb true")
    lines = proc.stdout.splitlines()
    entry = parse_mountinfo(lines[0])["/scratch"]
    assert entry.fstype == "tmpfs"
    assert {"nosuid", "nodev", "noexec"} <= entry.options
    assert {"size=4096k", "mode=1770"} <= entry.super_options
    assert lines[1] == "1770"
    # noexec is enforced by the kernel, not just shown
    assert proc.returncode != 0 and "Permission denied" in proc.stderr


def test_masked_paths(box):
    (box.rootfs / "secret").mkdir()
    (box.rootfs / "secret" / "key").write_text("top secret\n")
    (box.rootfs / "secret.txt").write_text("also secret\n")
    box.config["linux"]["maskedPaths"] = ["/proc/kcore", "/proc/keys", "/proc/timer_list",
                                          "/secret", "/secret.txt", "/does/not/exist"]
    out = box.sh("""
        for f in /proc/keys /proc/timer_list /secret.txt; do echo "$f $(cat $f | wc -c)"; done
        [ -e /proc/kcore ] && echo "/proc/kcore $(head -c 16 /proc/kcore | wc -c)"
        echo "/secret entries: $(ls -A /secret | wc -l)"
        grep ' /secret ' /proc/self/mountinfo
        touch /secret/new 2>&1 || true
    """).stdout
    lines = out.splitlines()
    for line in lines:
        if line.startswith("/proc/") or line.startswith("/secret.txt"):
            assert line.split()[1] == "0", f"masked file is readable: {line}"
    assert "/secret entries: 0" in lines
    entry = parse_mountinfo("\n".join(l for l in lines if " /secret " in l))["/secret"]
    assert entry.fstype == "tmpfs" and "ro" in entry.options
    assert "Read-only file system" in out


def test_readonly_paths(box):
    (box.rootfs / "etc" / "conf").mkdir()
    box.config["root"]["readonly"] = False
    (box.rootfs / "etc" / "conf.txt").write_text("original\n")
    box.config["linux"]["readonlyPaths"] = ["/proc/sys", "/etc/conf", "/etc/conf.txt", "/does/not/exist"]
    proc = box.run("sh", "-c", "echo 1 > /proc/sys/kernel/shm_rmid_forced; "
                   "touch /etc/conf/x; echo changed > /etc/conf.txt; touch /etc/ok && echo rest-writable")
    errors = [l for l in proc.stderr.splitlines() if "Read-only file system" in l]
    assert len(errors) == 3, proc.stderr
    assert "rest-writable" in proc.stdout
    assert not (box.rootfs / "etc" / "conf" / "x").exists()
    assert (box.rootfs / "etc" / "conf.txt").read_text() == "original\n"


def test_default_devices_and_links(box):
    out = box.sh("""
        for d in null zero full random urandom tty; do stat -c '%n %F %t:%T %a' /dev/$d; done
        for l in ptmx fd stdin stdout stderr; do echo "/dev/$l -> $(readlink /dev/$l)"; done
        echo x > /dev/null && head -c 4 /dev/zero | wc -c && echo x 2>&1 > /dev/full || true
    """).stdout
    expected = {"null": "1:3", "zero": "1:5", "full": "1:7", "random": "1:8", "urandom": "1:9", "tty": "5:0"}
    for name, majmin in expected.items():
        assert f"/dev/{name} character special file {majmin} 666" in out
    links = {"ptmx": "pts/ptmx", "fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
             "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"}
    for name, target in links.items():
        assert f"/dev/{name} -> {target}\n" in out
    assert "\n4\n" in out  # /dev/zero reads zeros
    assert "No space left on device" in out  # /dev/full is the real full device


def test_linux_devices_entry(box):
    box.config["linux"]["devices"] = [
        {"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 0, "gid": 0}]
    box.config["linux"]["resources"]["devices"].append(
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"})
    out = box.sh("stat -c '%F %t:%T %a %u %g' /dev/mynull; echo hi > /dev/mynull && echo wrote").stdout
    assert out.splitlines() == ["character special file 1:3 640 0 0", "wrote"]


def test_mount_destination_created_in_rootfs(box, tmp_path):
    """A mount's destination that does not exist in the rootfs is created (runtime-spec:
    'the runtime MUST create the destination if it does not exist')."""
    src = tmp_path / "src"
    src.mkdir()
    box.config["root"]["readonly"] = False
    box.add_mount("/deep/new/dir", str(src), "bind", ["rbind"])
    box.sh("test -d /deep/new/dir && touch /deep/new/dir/f")
    assert (src / "f").exists()


@pytest.mark.parametrize("readonly", [True, False])
def test_cwd_is_set(box, readonly):
    box.config["root"]["readonly"] = readonly
    box.config["process"]["cwd"] = "/tmp"
    assert box.sh("pwd").stdout == "/tmp\n"


def test_no_host_files_visible(box):
    """pivot_root: the host's root is not reachable from inside."""
    marker = "/tmp/pyoci-conformance-host-marker-" + box.id
    Path(marker).write_text("host")
    try:
        proc = box.run("sh", "-c", f"cat {marker}; ls /..")
        assert "host" not in proc.stdout
        assert "No such file or directory" in proc.stderr
        assert proc.stdout.split() == sorted(p.name for p in box.rootfs.iterdir())
    finally:
        os.unlink(marker)
