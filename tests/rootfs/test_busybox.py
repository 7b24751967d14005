"""rootfs.busybox(): the host's static busybox with its applet links, and the skeleton around it."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

import pytest

from pyoci_nb import rootfs
from pyoci_nb.errors import RootfsError
from pyoci_nb.rootfs.busybox import BUSYBOX_IN_ROOTFS, applets, find_static_busybox
from pyoci_nb.rootfs.elf import read_elf

CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"


@pytest.mark.root
def test_busybox_rootfs_runs_a_shell_in_a_real_chroot(busybox_rootfs):
    result = subprocess.run([CHROOT, str(busybox_rootfs), "/bin/sh", "-c", "echo ok; ls /bin | wc -l"],
                            capture_output=True, text=True, timeout=30, env={"PATH": "/bin:/usr/bin"})
    assert result.returncode == 0, result.stderr
    first, count = result.stdout.split()
    assert first == "ok"
    bin_entries = {a.split("/", 1)[1] for a in applets() if a.startswith("bin/")} | {"busybox"}
    assert int(count) == len(bin_entries) == len(os.listdir(busybox_rootfs / "bin"))


@pytest.mark.root
def test_busybox_rootfs_names_users_without_nss_modules(busybox_rootfs):
    result = subprocess.run([CHROOT, str(busybox_rootfs), "/bin/sh", "-c", "id; id nobody"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    root_line, nobody_line = result.stdout.splitlines()
    assert root_line.startswith("uid=0(root) gid=0(root)")
    assert nobody_line.startswith("uid=65534(nobody) gid=65534(nogroup)")


def test_busybox_layout(busybox_rootfs):
    binary = busybox_rootfs / BUSYBOX_IN_ROOTFS
    assert binary.is_file() and not binary.is_symlink()
    assert read_elf(str(binary)).is_static
    for applet in applets():
        link = busybox_rootfs / applet
        if applet == BUSYBOX_IN_ROOTFS:
            continue
        assert link.is_symlink(), applet
        target = os.readlink(link)
        assert not target.startswith("/"), f"{applet} -> {target} must be relative"
        assert os.path.samefile(link, binary)
    modes = {name: stat.S_IMODE(os.lstat(busybox_rootfs / name).st_mode)
             for name in ("tmp", "root", "proc", "sys", "dev", "home", "etc")}
    assert modes == {"tmp": 0o1777, "root": 0o700, "proc": 0o555, "sys": 0o555, "dev": 0o755,
                     "home": 0o755, "etc": 0o755}
    assert (busybox_rootfs / "etc/passwd").read_text().startswith("root:x:0:0:")
    assert (busybox_rootfs / "etc/group").read_text().startswith("root:x:0:")
    assert (busybox_rootfs / "etc/hostname").read_text().strip()
    assert "files" in (busybox_rootfs / "etc/nsswitch.conf").read_text()


def test_missing_busybox_names_the_package(tmp_path):
    with pytest.raises(RootfsError) as info:
        find_static_busybox([str(tmp_path / "no-busybox-here")])
    assert "busybox-static" in str(info.value)


def test_dynamic_busybox_is_refused(tmp_path):
    # /usr/bin/ls stands in for a dynamically linked busybox: it has an ELF interpreter
    with pytest.raises(RootfsError) as info:
        find_static_busybox(["/usr/bin/ls"])
    message = str(info.value)
    assert "dynamically linked" in message and "busybox-static" in message and "ld-linux" in message


def test_busybox_refuses_a_non_empty_destination_and_keeps_it(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(RootfsError) as info:
        rootfs.busybox(tmp_path)
    assert "not empty" in str(info.value) and str(tmp_path) in str(info.value)
    assert sorted(os.listdir(tmp_path)) == ["keep.txt"]


def test_busybox_into_an_existing_empty_directory(tmp_path):
    dest = tmp_path / "empty"
    dest.mkdir()
    assert rootfs.busybox(dest) == dest
    assert (dest / "bin/sh").is_symlink()
