"""rootfs.from_host(): host programs with their ELF interpreter, shared libraries and Python's
standard library, run for real in a chroot."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from pyoci_nb import rootfs
from pyoci_nb.errors import RootfsError
from pyoci_nb.rootfs.elf import read_elf
from pyoci_nb.rootfs.host import MERGED_USR_LINKS, find_host_program

CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"
# a clean environment: the host's PATH may start with pyenv shims that do not exist in the chroot
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "LC_ALL": "C",
       "PYTHONDONTWRITEBYTECODE": "1"}  # keep the tree as from_host made it


def chroot(root, *argv):
    return subprocess.run([CHROOT, str(root), *argv], capture_output=True, text=True, timeout=60, env=ENV)


@pytest.fixture(scope="module")
def host_rootfs(tmp_path_factory):
    dest = tmp_path_factory.mktemp("host") / "rootfs"
    return rootfs.from_host(dest, ["sh", "ls", "bash", "python3"])


@pytest.mark.root
def test_sh_and_ls_run_in_a_real_chroot(host_rootfs):
    result = chroot(host_rootfs, "sh", "-c", "ls /")
    assert result.returncode == 0, result.stderr
    assert {"bin", "etc", "proc", "tmp", "usr", "dev"} <= set(result.stdout.split())


@pytest.mark.root
def test_python3_from_the_host_runs_with_its_standard_library(host_rootfs):
    result = chroot(host_rootfs, "python3", "-c", "import json, sys; print(json.dumps([1])); print(sys.prefix)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[1]", "/usr"]


@pytest.mark.root
def test_python3_extension_modules_find_their_libraries(host_rootfs):
    # _ssl, _ctypes and _sqlite3 live in lib-dynload and need libssl, libffi and libsqlite3
    result = chroot(host_rootfs, "python3", "-c", "import ssl, ctypes, sqlite3, hashlib; print('ok')")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.root
def test_bash_runs(host_rootfs):
    result = chroot(host_rootfs, "bash", "-c", 'echo "$BASH_VERSION"')
    assert result.returncode == 0, result.stderr
    assert re.match(r"^\d+\.\d+", result.stdout)


def test_python_stdlib_is_copied_without_packages_and_caches(host_rootfs):
    stdlib = host_rootfs / "usr/lib" / os.path.basename(os.path.realpath("/usr/bin/python3"))
    assert (stdlib / "os.py").is_file()
    assert (stdlib / "json/__init__.py").is_file()
    for dirpath, dirnames, _ in os.walk(stdlib):
        for name in dirnames:
            assert name not in ("site-packages", "dist-packages", "__pycache__"), os.path.join(dirpath, name)
            assert not name.startswith("config-"), os.path.join(dirpath, name)


def test_the_copied_libraries_are_what_the_loader_loads(host_rootfs):
    """Compare with ldd (glibc's own resolver) for /usr/bin/ls: every library it lists is in the tree."""
    listing = subprocess.run(["ldd", "/usr/bin/ls"], capture_output=True, text=True, check=True).stdout
    paths = re.findall(r"(?:=>\s*)?(/\S+)\s+\(0x", listing)
    assert paths, listing
    for path in paths:
        copied = host_rootfs / path.lstrip("/")
        assert os.path.exists(copied), f"{path} (from ldd) missing in the rootfs"
        assert os.path.samefile(os.path.realpath(copied), copied)
        with open(os.path.realpath(path), "rb") as host_file, open(copied, "rb") as copy:
            assert host_file.read() == copy.read()


def test_merged_usr_links_are_reproduced(host_rootfs):
    for name in MERGED_USR_LINKS:
        if os.path.islink("/" + name):
            assert os.readlink(host_rootfs / name) == os.readlink("/" + name)


def test_python3_is_the_distribution_one_not_a_virtualenv_or_pyenv_one():
    assert find_host_program("python3").startswith(("/usr/bin/", "/bin/"))


def test_elf_reader_agrees_with_the_kernel_loader_name():
    info = read_elf("/usr/bin/ls")
    listing = subprocess.run(["ldd", "/usr/bin/ls"], capture_output=True, text=True, check=True).stdout
    assert info.interpreter and info.interpreter in listing
    for name in info.needed:
        assert name in listing
    assert not read_elf(os.path.realpath(shutil.which("busybox") or "/usr/bin/busybox")).needed


def test_missing_program_is_named_and_nothing_is_left(tmp_path):
    dest = tmp_path / "rootfs"
    with pytest.raises(RootfsError) as info:
        rootfs.from_host(dest, ["sh", "no-such-program-xyz"])
    assert "no-such-program-xyz" in str(info.value)
    assert not dest.exists()
