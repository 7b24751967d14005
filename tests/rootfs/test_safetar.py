"""Safe extraction (rootfs.from_tar and Bundle.unpack share it): hostile members are refused with
the member and the rule named, nothing is written outside the destination and nothing is left
half-extracted."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

from pyoci_nb import rootfs
from pyoci_nb.bundle import Bundle
from pyoci_nb.errors import BundleError, PyociError, RootfsError

REPO = Path(__file__).resolve().parents[2]


def file_member(name, data=b"data", mode=0o644):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 1_700_000_000
    return info, io.BytesIO(data)


def link_member(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mtime = kind, target, 1_700_000_000
    return info, None


def dir_member(name, mode=0o755):
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, mode
    return info, None


def write_tar(path: Path, members) -> Path:
    with tarfile.open(path, "w") as archive:
        for info, data in members:
            archive.addfile(info, data)
    return path


def config_member():
    return file_member("config.json", json.dumps({"ociVersion": "1.0.2", "root": {"path": "rootfs"}}).encode())


# Each extractor gets the same hostile members; a bundle tarball also carries a config.json.
EXTRACTORS = {
    "from_tar": (lambda tarball, dest: rootfs.from_tar(tarball, dest), [], RootfsError),
    "Bundle.unpack": (lambda tarball, dest: Bundle.unpack(tarball, dest), [config_member], BundleError),
}


@pytest.fixture(params=sorted(EXTRACTORS))
def extractor(request):
    return EXTRACTORS[request.param]


def snapshot(directory: Path) -> dict:
    """Every path under ``directory`` with what lstat says about it."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(directory):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            # a directory's mtime changes when dest is created and removed in it: compare its entries
            mtime = None if stat.S_ISDIR(st.st_mode) else st.st_mtime_ns
            found[path] = (st.st_mode, st.st_size, st.st_nlink, mtime)
    return found


@pytest.fixture
def sandbox(tmp_path):
    """tmp/sandbox holds the destination plus a victim file and directory the archives aim at."""
    box = tmp_path / "sandbox"
    box.mkdir()
    (box / "victim.txt").write_text("original")
    (box / "outside").mkdir()
    return box


HOSTILE = {  # case -> (members (made fresh for each test), member named in the error, rule named)
    "dotdot": (lambda: [file_member("../evil")], "'../evil'", "'..'"),
    "nested-dotdot": (lambda: [dir_member("rootfs"), file_member("rootfs/../../evil")], "rootfs/../../evil", "'..'"),
    "absolute": (lambda: [file_member("/etc/passwd", b"owned::0:0::/:/bin/sh\n")], "'/etc/passwd'", "relative"),
    "symlink-escape-then-write": (lambda: [link_member("escape", "../outside"), file_member("escape/planted")],
                                  "'escape'", "escapes the destination"),
    "absolute-symlink-then-write": (lambda: [dir_member("rootfs"), link_member("rootfs/abs", "/tmp"),
                                     file_member("rootfs/abs/planted")],
                                    "'rootfs/abs/planted'", "through the symbolic link"),
    "hardlink-outside": (lambda: [link_member("hard", "../victim.txt", tarfile.LNKTYPE)], "'hard'", "hard link target"),
    "hardlink-absolute": (lambda: [link_member("hard", "/etc/passwd", tarfile.LNKTYPE)], "'hard'", "hard link target"),
    "hardlink-not-in-archive": (lambda: [link_member("hard", "victim.txt", tarfile.LNKTYPE)], "'hard'",
                                "not an earlier non-directory member"),
    # lexically inside ("a/a/../.." is "."), but "a" is a link to "." so the chain climbs out:
    # only the on-disk check after extraction sees it, and must remove what was written
    "symlink-chain-escape": (lambda: [file_member("harmless"), link_member("a", "."), link_member("b", "a/a/../..")],
                             "'b'", "through other links"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_member_is_refused_and_nothing_is_written(extractor, sandbox, case):
    extract, prefix, error_class = extractor
    make_members, member_text, rule_text = HOSTILE[case]
    tarball = write_tar(sandbox.parent / "hostile.tar", [make() for make in prefix] + make_members())
    passwd_before = os.lstat("/etc/passwd")
    around_before = snapshot(sandbox.parent)
    dest = sandbox / "dest"

    with pytest.raises(error_class) as info:
        extract(tarball, dest)

    message = str(info.value)
    assert member_text in message, message
    assert rule_text in message, message
    assert str(tarball) in message
    assert not dest.exists(), "a refused extraction must leave nothing behind"
    assert snapshot(sandbox.parent) == around_before
    assert (sandbox / "victim.txt").read_text() == "original"
    assert os.lstat("/etc/passwd").st_mtime_ns == passwd_before.st_mtime_ns
    assert not os.path.lexists(sandbox / "evil") and not os.path.lexists(sandbox.parent / "evil")
    assert not os.path.lexists("/tmp/planted")


def test_refusal_empties_an_existing_destination_but_keeps_it(sandbox):
    dest = sandbox / "dest"
    dest.mkdir()
    tarball = write_tar(sandbox / "t.tar", [file_member("harmless"), link_member("a", "."),
                                            link_member("b", "a/a/../..")])
    with pytest.raises(RootfsError):
        rootfs.from_tar(tarball, dest)
    assert dest.is_dir() and os.listdir(dest) == []


def test_absolute_symlinks_are_kept_inside_a_root_filesystem(tmp_path):
    tarball = write_tar(tmp_path / "r.tar", [dir_member("usr"), dir_member("usr/lib64"),
                                             link_member("usr/lib64/ld.so", "/lib/x86_64-linux-gnu/ld.so"),
                                             link_member("lib64", "usr/lib64")])
    dest = rootfs.from_tar(tarball, tmp_path / "r")
    assert os.readlink(dest / "usr/lib64/ld.so") == "/lib/x86_64-linux-gnu/ld.so"
    assert os.readlink(dest / "lib64") == "usr/lib64"


def test_absolute_symlink_outside_a_bundles_rootfs_is_refused(tmp_path):
    tarball = write_tar(tmp_path / "b.tar", [config_member(), dir_member("rootfs"),
                                             link_member("notes", "/etc/shadow")])
    with pytest.raises(BundleError) as info:
        Bundle.unpack(tarball, tmp_path / "b")
    assert "'notes'" in str(info.value) and "absolute" in str(info.value)
    assert not (tmp_path / "b").exists()


def test_bundle_tarball_without_config_json_is_refused_before_extracting(tmp_path):
    tarball = write_tar(tmp_path / "b.tar", [dir_member("bundle"), file_member("bundle/config.json", b"{}")])
    with pytest.raises(BundleError) as info:
        Bundle.unpack(tarball, tmp_path / "b")
    assert "config.json" in str(info.value)
    assert not (tmp_path / "b").exists()


def test_not_a_tarball(tmp_path):
    bogus = tmp_path / "bogus.tar"
    bogus.write_bytes(b"this is not a tar archive" * 100)
    with pytest.raises(RootfsError) as info:
        rootfs.from_tar(bogus, tmp_path / "r")
    assert str(bogus) in str(info.value)
    assert not (tmp_path / "r").exists()


@pytest.mark.root
def test_device_nodes_owners_and_setuid_are_kept_as_root(tmp_path):
    null = tarfile.TarInfo("dev/null")
    null.type, null.devmajor, null.devminor, null.mode = tarfile.CHRTYPE, 1, 3, 0o666
    suid, data = file_member("bin/tool", b"#!/bin/sh\n", mode=0o4755)
    suid.uid, suid.gid = 1234, 5678
    tarball = write_tar(tmp_path / "r.tar", [dir_member("dev"), (null, None), dir_member("bin", 0o711),
                                             (suid, data)])
    dest = rootfs.from_tar(tarball, tmp_path / "r")
    st = os.lstat(dest / "dev/null")
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3
    tool = os.lstat(dest / "bin/tool")
    assert (tool.st_uid, tool.st_gid, stat.S_IMODE(tool.st_mode)) == (1234, 5678, 0o4755)
    assert stat.S_IMODE(os.lstat(dest / "bin").st_mode) == 0o711
    assert tool.st_mtime == 1_700_000_000


@pytest.mark.root
def test_device_nodes_are_refused_without_root(request):
    """A real unprivileged process (uid 65534) extracting a tarball with a device node."""
    if not all(os.stat(p).st_mode & 0o005 == 0o005 for p in [REPO, *REPO.parents]):
        pytest.skip(f"{REPO} is not readable by an unprivileged user")
    null = tarfile.TarInfo("dev/null")
    null.type, null.devmajor, null.devminor = tarfile.CHRTYPE, 1, 3
    work = Path(tempfile.mkdtemp(prefix="pyoci-nobody-"))   # pytest's tmp_path is private to root
    request.addfinalizer(lambda: shutil.rmtree(work, ignore_errors=True))
    os.chmod(work, 0o777)
    tarball = write_tar(work / "dev.tar", [dir_member("dev"), (null, None)])
    os.chmod(tarball, 0o644)
    code = ("import sys; from pyoci_nb import rootfs\n"
            "try:\n    rootfs.from_tar(sys.argv[1], sys.argv[2])\n"
            "except Exception as e:\n    print(type(e).__name__, e); sys.exit(3)\n")
    result = subprocess.run(["/usr/bin/python3", "-c", code, str(tarball), str(work / "r")], user=65534,
                            group=65534, capture_output=True, text=True, timeout=60,
                            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stdout.startswith("RootfsError") and "'dev/null'" in result.stdout
    assert "device nodes can only be created by root" in result.stdout
    assert not (work / "r").exists()


def test_errors_are_pyoci_errors_with_where_and_why(tmp_path):
    tarball = write_tar(tmp_path / "t.tar", [file_member("../evil")])
    with pytest.raises(PyociError) as info:
        rootfs.from_tar(tarball, tmp_path / "r")
    assert info.value.where == str(tarball) and "'..'" in info.value.why
