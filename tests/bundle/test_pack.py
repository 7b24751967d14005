"""Bundle.pack / Bundle.unpack: a bundle survives the round trip unchanged (config, modes, owners,
timestamps, symbolic links, hard links, device nodes), with its files at the top of the tarball."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from pyoci_nb.bundle import Bundle
from pyoci_nb.errors import BundleError


def tree(root: Path) -> dict:
    """Everything lstat says about each entry (plus link targets, content hashes and hard-link
    groups), keyed by path relative to ``root``."""
    entries: dict[str, tuple] = {}
    inodes: dict[int, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            relative = os.path.relpath(path, root)
            st = os.lstat(path)
            mode = st.st_mode
            if stat.S_ISLNK(mode):
                detail = os.readlink(path)
            elif stat.S_ISREG(mode):
                detail = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                detail = (os.major(st.st_rdev), os.minor(st.st_rdev))
            else:
                detail = None
            # hard links: name the first path seen with this inode
            first = inodes.setdefault(st.st_ino, relative) if st.st_nlink > 1 and not stat.S_ISDIR(mode) else None
            entries[relative] = (mode, st.st_uid, st.st_gid, st.st_size if not stat.S_ISDIR(mode) else None,
                                 int(st.st_mtime), detail, first)
    return entries


@pytest.fixture
def rich_bundle(busybox_bundle):
    """The busybox bundle plus every kind of entry a root filesystem can hold."""
    rootfs = busybox_bundle / "rootfs"
    (rootfs / "data").mkdir(mode=0o750)
    (rootfs / "data/original").write_text("shared bytes\n")
    os.link(rootfs / "data/original", rootfs / "data/hardlink")
    (rootfs / "data/secret").write_text("s")
    os.chmod(rootfs / "data/secret", 0o400)
    (rootfs / "data/suid").write_text("#!/bin/sh\n")
    os.symlink("/bin/busybox", rootfs / "data/absolute-link")
    os.symlink("../bin/sh", rootfs / "data/relative-link")
    os.symlink("missing-target", rootfs / "data/dangling-link")
    os.mkfifo(rootfs / "data/fifo", 0o620)
    (rootfs / "data/readonly-dir").mkdir()
    (rootfs / "data/readonly-dir/inside").write_text("x")
    if os.geteuid() == 0:
        os.chown(rootfs / "data/suid", 1234, 5678)
        os.chown(rootfs / "data/absolute-link", 42, 43, follow_symlinks=False)
        os.mknod(rootfs / "dev/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        os.mknod(rootfs / "dev/loop-test", stat.S_IFBLK | 0o660, os.makedev(7, 200))
    os.chmod(rootfs / "data/suid", 0o4755)
    os.chmod(rootfs / "data/readonly-dir", 0o555)
    os.utime(rootfs / "data/original", (1_600_000_000, 1_600_000_000))
    return busybox_bundle


@pytest.mark.parametrize("name", ["bundle.tar", "bundle.tar.gz"])
def test_pack_then_unpack_is_identical(rich_bundle, tmp_path, name):
    tarball = Bundle(rich_bundle).pack(tmp_path / name)
    unpacked = Bundle.unpack(tarball, tmp_path / "unpacked")
    assert unpacked.path == tmp_path / "unpacked"
    assert json.loads(unpacked.config_path.read_text()) == json.loads((rich_bundle / "config.json").read_text())
    before, after = tree(rich_bundle), tree(unpacked.path)
    assert before.keys() == after.keys()
    for relative in before:
        assert after[relative] == before[relative], relative
    assert unpacked.validate() == []


@pytest.mark.root
def test_round_trip_keeps_root_only_entries(rich_bundle, tmp_path):
    unpacked = Bundle.unpack(Bundle(rich_bundle).pack(tmp_path / "b.tar"), tmp_path / "u").path
    st = os.lstat(unpacked / "rootfs/dev/null")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert stat.S_ISBLK(os.lstat(unpacked / "rootfs/dev/loop-test").st_mode)
    suid = os.lstat(unpacked / "rootfs/data/suid")
    assert (suid.st_uid, suid.st_gid, stat.S_IMODE(suid.st_mode)) == (1234, 5678, 0o4755)
    assert os.lstat(unpacked / "rootfs/data/absolute-link").st_uid == 42
    assert os.path.samefile(unpacked / "rootfs/data/original", unpacked / "rootfs/data/hardlink")


def test_tarball_has_the_bundle_files_at_its_top(rich_bundle, tmp_path):
    tarball = Bundle(rich_bundle).pack(tmp_path / "b.tar")
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
        members = {m.name: m for m in archive.getmembers()}
    assert "config.json" in names and "rootfs" in names
    assert all(n == "config.json" or n == "rootfs" or n.startswith("rootfs/") for n in names), names
    assert members["rootfs/data/hardlink"].islnk() or members["rootfs/data/original"].islnk()
    assert members["rootfs/data/absolute-link"].linkname == "/bin/busybox"
    assert all(m.uname == "" and m.gname == "" for m in members.values())
    # GNU tar agrees: the tarball unpacks straight into config.json + rootfs
    listing = subprocess.run(["tar", "-tf", str(tarball)], capture_output=True, text=True, check=True).stdout
    assert listing.splitlines()[0] in ("config.json", "rootfs", "rootfs/")


def test_pack_inside_the_bundle_does_not_include_itself(busybox_bundle):
    tarball = Bundle(busybox_bundle).pack(busybox_bundle / "self.tar")
    with tarfile.open(tarball) as archive:
        assert "self.tar" not in archive.getnames()
        assert not any(n.startswith(".self.tar") for n in archive.getnames())


def test_pack_refuses_a_rootfs_outside_the_bundle(tmp_path, busybox_rootfs):
    bundle_dir = tmp_path / "b"
    bundle_dir.mkdir()
    (bundle_dir / "config.json").write_text(json.dumps({"ociVersion": "1.0.2", "root": {"path": str(busybox_rootfs)}}))
    with pytest.raises(BundleError) as info:
        Bundle(bundle_dir).pack(tmp_path / "b.tar")
    assert "root.path" in str(info.value) and "outside the bundle" in str(info.value)
    assert not (tmp_path / "b.tar").exists()
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".b.tar")]
