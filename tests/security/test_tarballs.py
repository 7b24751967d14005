"""Hostile tarballs and bundles (issue #10 item 8): each test builds the archive an attacker would
ship and unpacks it with pyoci's Python API (``rootfs.from_tar``, ``Bundle.unpack``,
``Bundle.create(rootfs=tarball)``), then makes the attempt the archive was built for -- another
host user running a set-user-ID binary or writing into the bundle, a decompression bomb, a sparse
file, a root.path naming the host's ``/``, a symbolic link planted while extraction runs -- and
checks that it fails and that a refused archive leaves nothing behind.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zlib
from pathlib import Path

import pytest

from pyoci_nb import rootfs
from pyoci_nb.bundle import Bundle
from pyoci_nb.errors import BundleError, PyociError, RootfsError
from pyoci_nb.rootfs.tree import remove_tree

pytestmark = pytest.mark.pyoci_only

# the unprivileged host user of tests/rootless (created for the session, removed afterwards)
_spec = importlib.util.spec_from_file_location(
    "rootless_fixtures", Path(__file__).resolve().parents[1] / "rootless" / "conftest.py")
_rootless = sys.modules.setdefault(_spec.name, importlib.util.module_from_spec(_spec))
if not hasattr(_rootless, "rootless_user"):
    _spec.loader.exec_module(_rootless)
rootless_user = _rootless.rootless_user

MiB = 1 << 20
GiB = 1 << 30
#: the documented default of max_bytes (rootfs.safetar.DEFAULT_MAX_BYTES)
DEFAULT_MAX_BYTES = 4 * GiB

WHOAMI_C = r"""
#include <stdio.h>
#include <unistd.h>
int main(void) { printf("euid=%d\n", (int)geteuid()); return 0; }
"""


# ---------------------------------------------------------------- building archives
def file_member(name: str, data: bytes = b"data", mode: int = 0o644, uid: int = 0, gid: int = 0):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.uid, info.gid, info.mtime = len(data), mode, uid, gid, 1_700_000_000
    return info, io.BytesIO(data)


def dir_member(name: str, mode: int = 0o755, uid: int = 0, gid: int = 0):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.mtime = tarfile.DIRTYPE, mode, uid, gid, 1_700_000_000
    return info, None


def link_member(name: str, target: str):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mtime = tarfile.SYMTYPE, target, 1_700_000_000
    return info, None


def config_member(root_path="rootfs"):
    config = {"ociVersion": "1.0.2", "process": {"args": ["sh"], "cwd": "/"}, "root": {"path": root_path}}
    return file_member("config.json", json.dumps(config).encode())


def write_tar(path: Path, members, mode: str = "w", **options) -> Path:
    with tarfile.open(path, mode, **options) as archive:
        for info, data in members:
            archive.addfile(info, data)
    return path


def zero_bomb(path: Path, prefix_members, name: str, size: int, suffix_members=()) -> Path:
    """A real .tar.gz whose member ``name`` is ``size`` zero bytes (a multiple of 1 MiB), made
    without compressing them all: after a full flush deflate encodes every further MiB of zeros
    as the same bytes, so they are written as copies (about 1 KiB per MiB)."""
    assert size % MiB == 0
    head = b""
    for info, data in prefix_members:
        body = data.read() if data is not None else b""
        head += info.tobuf(tarfile.GNU_FORMAT) + body + bytes(-len(body) % 512)
    big = tarfile.TarInfo(name)
    big.size, big.mode, big.mtime = size, 0o644, 1_700_000_000
    head += big.tobuf(tarfile.GNU_FORMAT)
    tail = b""
    for info, data in suffix_members:
        body = data.read() if data is not None else b""
        tail += info.tobuf(tarfile.GNU_FORMAT) + body + bytes(-len(body) % 512)
    tail += bytes(1024)                        # end-of-archive blocks
    zeros = bytes(MiB)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    crc = zlib.crc32(head)
    with open(path, "wb") as out:
        out.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03")      # gzip header, no name
        out.write(compressor.compress(head) + compressor.flush(zlib.Z_FULL_FLUSH))
        first = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
        repeated = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
        out.write(first)
        for _ in range(size // MiB - 1):
            out.write(repeated)
        for _ in range(size // MiB):
            crc = zlib.crc32(zeros, crc)
        out.write(compressor.compress(tail) + compressor.flush())
        crc = zlib.crc32(tail, crc)
        out.write(struct.pack("<II", crc, (len(head) + size + len(tail)) & 0xFFFFFFFF))
    return path


def pax_sparse_member(name: str, real_size: int, regions: list[tuple[int, bytes]]):
    """A GNU sparse 1.0 member (pax format, as ``tar --sparse --format=pax`` writes): a file of
    ``real_size`` bytes of which only ``regions`` (offset, data) are stored."""
    sparse_map = f"{len(regions)}\n" + "".join(f"{offset}\n{len(data)}\n" for offset, data in regions)
    stored = sparse_map.encode()
    stored += bytes(-len(stored) % 512) + b"".join(data for _, data in regions)
    info = tarfile.TarInfo(f"GNUSparseFile.0/{name}")
    info.size, info.mode, info.mtime = len(stored), 0o644, 1_700_000_000
    info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": name,
                        "GNU.sparse.realsize": str(real_size)}
    return info, io.BytesIO(stored)


# ---------------------------------------------------------------- fixtures and helpers
@pytest.fixture
def public_dir():
    """A world-traversable directory (0755) like a user's project directory: what is unpacked into
    it is protected only by the modes pyoci gives it.  Removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="pyoci-sec-tar-"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        remove_tree(directory)


def as_user(user, *argv: str) -> subprocess.CompletedProcess:
    """Run ``argv`` as the other host user."""
    return subprocess.run(["runuser", "-u", user.name, "--", *argv], capture_output=True, text=True,
                          timeout=60, cwd="/", stdin=subprocess.DEVNULL)


def unpack_with(how: str, tarball: Path, dest: Path, **limits):
    """Unpack with one of the three public entry points; returns the root filesystem's path."""
    if how == "from_tar":
        return rootfs.from_tar(tarball, dest, **limits)
    if how == "Bundle.unpack":
        return Bundle.unpack(tarball, dest, **limits).rootfs_path
    return Bundle.create(dest, rootfs=tarball).rootfs_path


def rootfs_members(how: str, members) -> list:
    """``members`` of a root filesystem, as a rootfs tarball or inside a bundle tarball."""
    if how == "Bundle.unpack":
        return [config_member(), dir_member("rootfs")] + [
            (_renamed(info, "rootfs/" + info.name), data) for info, data in members]
    return list(members)


def _renamed(info: tarfile.TarInfo, name: str) -> tarfile.TarInfo:
    info.name = name
    return info


# ---------------------------------------------------------------- set-user-ID binaries
@pytest.mark.parametrize("how", ["from_tar", "Bundle.unpack", "Bundle.create"])
def test_setuid_root_binary_from_a_tarball_is_out_of_other_users_reach(how, public_dir, static_program,
                                                                        rootless_user):
    """A set-user-ID-root program in an image: once unpacked, another host user runs it."""
    program = static_program(WHOAMI_C, "whoami-suid").read_bytes()
    members = rootfs_members(how, [dir_member("bin"), file_member("bin/whoami", program, mode=0o4755)])
    tarball = write_tar(public_dir / "image.tar", members)
    dest = public_dir / "unpacked"

    root = unpack_with(how, tarball, dest)

    binary = root / "bin/whoami"
    st = os.lstat(binary)
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o4755, 0), "the image's own mode and owner are kept inside"
    assert subprocess.run([str(binary)], capture_output=True, text=True).stdout == "euid=0\n"
    attempt = as_user(rootless_user, str(binary))
    assert "euid=0" not in attempt.stdout, f"another user ran the image's setuid-root binary: {attempt.stdout}"
    assert attempt.returncode != 0 and "Permission denied" in attempt.stderr, attempt
    assert stat.S_IMODE(os.stat(dest).st_mode) & 0o077 == 0 and os.stat(dest).st_uid == 0


@pytest.mark.parametrize("how", ["from_tar", "Bundle.unpack"])
def test_dot_entry_cannot_hand_the_destination_to_another_user(how, public_dir, rootless_user):
    """The archive's ``.`` entry says 0777, owned by the other user; the user then writes into it."""
    uid, gid = rootless_user.uid, rootless_user.gid
    members = [dir_member(".", mode=0o777, uid=uid, gid=gid)]
    if how == "Bundle.unpack":
        info, data = config_member()
        members += [(_renamed(info, "./config.json"), data), dir_member("./rootfs")]
    else:
        members += [dir_member("./bin")]
    tarball = write_tar(public_dir / "dot.tar", members)
    dest = public_dir / "unpacked"

    if how == "from_tar":
        rootfs.from_tar(tarball, dest)
    else:
        Bundle.unpack(tarball, dest)

    st = os.stat(dest)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o700), (st.st_uid, oct(st.st_mode))
    attempt = as_user(rootless_user, "/bin/sh", "-c", f"echo planted > {dest}/planted")
    assert attempt.returncode != 0, "the other user wrote into the unpacked directory"
    assert not (dest / "planted").exists()


def test_destination_prepared_by_another_user_is_refused(public_dir, static_program, rootless_user):
    """The other user creates the (empty) destination first in a shared directory (1777, as /tmp),
    waiting to reach what root unpacks."""
    public_dir.chmod(0o1777)
    dest = public_dir / "unpacked"
    made = as_user(rootless_user, "/bin/mkdir", "-m", "0777", str(dest))
    assert made.returncode == 0, made.stderr
    program = static_program(WHOAMI_C, "whoami-suid").read_bytes()
    tarball = write_tar(public_dir / "b.tar", rootfs_members("Bundle.unpack", [
        dir_member("bin"), file_member("bin/whoami", program, mode=0o4755)]))

    with pytest.raises(BundleError) as info:
        Bundle.unpack(tarball, dest)

    assert "owned by someone else" in str(info.value) and str(dest) in str(info.value)
    assert os.listdir(dest) == [], "nothing may be unpacked into it"
    attempt = as_user(rootless_user, str(dest / "rootfs/bin/whoami"))
    assert "euid=0" not in attempt.stdout


# ---------------------------------------------------------------- size limits
@pytest.mark.parametrize("how", ["from_tar", "Bundle.unpack"])
def test_gzip_bomb_stops_at_max_bytes(how, tmp_path):
    """The review's bomb: a ~1 MB .tar.gz expanding to 1 GiB, unpacked with max_bytes=256 MiB."""
    prefix = [config_member(), dir_member("rootfs")] if how == "Bundle.unpack" else []
    name = "rootfs/zeros" if how == "Bundle.unpack" else "zeros"
    tarball = zero_bomb(tmp_path / "bomb.tar.gz", prefix, name, 1 * GiB)
    assert tarball.stat().st_size < 5 * MiB
    dest = tmp_path / "unpacked"
    started = time.monotonic()
    try:
        with pytest.raises(PyociError) as info:
            if how == "from_tar":
                rootfs.from_tar(tarball, dest, max_bytes=256 * MiB)
            else:
                Bundle.unpack(tarball, dest, max_bytes=256 * MiB)
    finally:
        remove_tree(dest)
    error = info.value
    assert isinstance(error, RootfsError if how == "from_tar" else BundleError)
    assert "max_bytes=268435456 (256 MiB)" in error.why and name in error.why, error
    assert "pass max_bytes=" in error.hint and error.where == str(tarball)
    assert time.monotonic() - started < 30, "the bomb must be refused at its header, not decompressed"


def test_bundle_bomb_before_its_config_json_stops_at_max_bytes(tmp_path):
    """config.json after the bomb: looking for it must not decompress the bomb either."""
    tarball = zero_bomb(tmp_path / "bomb.tar.gz", [dir_member("rootfs")], "rootfs/zeros", 1 * GiB,
                        suffix_members=[config_member()])
    started = time.monotonic()
    with pytest.raises(BundleError) as info:
        Bundle.unpack(tarball, tmp_path / "unpacked", max_bytes=256 * MiB)
    assert "max_bytes=268435456" in info.value.why
    assert time.monotonic() - started < 30
    assert not (tmp_path / "unpacked").exists()


def test_invalid_limits_are_refused(tmp_path):
    tarball = write_tar(tmp_path / "t.tar", [file_member("f")])
    for limits in ({"max_bytes": -1}, {"max_entries": "many"}):
        with pytest.raises(RootfsError) as info:
            rootfs.from_tar(tarball, tmp_path / "r", **limits)
        assert info.value.where in limits and "pass" in info.value.hint
        assert not (tmp_path / "r").exists()


def test_default_limit_stops_a_bomb_larger_than_max_bytes(tmp_path):
    """No limit passed: a ~5 MB .tar.gz claiming 4 GiB + 1 MiB of data is refused by the default."""
    tarball = zero_bomb(tmp_path / "bomb.tar.gz", [], "zeros", DEFAULT_MAX_BYTES + MiB)
    dest = tmp_path / "unpacked"
    try:
        with pytest.raises(RootfsError) as info:
            rootfs.from_tar(tarball, dest)
    finally:
        remove_tree(dest)
    assert f"max_bytes={DEFAULT_MAX_BYTES} (4 GiB)" in info.value.why
    assert not dest.exists()


def test_raising_max_bytes_lets_a_trusted_archive_through(tmp_path):
    tarball = zero_bomb(tmp_path / "big.tar.gz", [], "zeros", 64 * MiB)
    with pytest.raises(RootfsError):
        rootfs.from_tar(tarball, tmp_path / "refused", max_bytes=64 * MiB - 1)
    assert not (tmp_path / "refused").exists()
    dest = rootfs.from_tar(tarball, tmp_path / "accepted", max_bytes=64 * MiB)
    assert (dest / "zeros").stat().st_size == 64 * MiB


@pytest.mark.parametrize("how", ["from_tar", "Bundle.unpack"])
def test_entry_bomb_stops_at_max_entries(how, tmp_path):
    members = [file_member(f"f{i:05d}", b"") for i in range(3000)]
    tarball = write_tar(tmp_path / "many.tar.gz", rootfs_members(how, members), "w:gz")
    dest = tmp_path / "unpacked"
    with pytest.raises(PyociError) as info:
        if how == "from_tar":
            rootfs.from_tar(tarball, dest, max_entries=1000)
        else:
            Bundle.unpack(tarball, dest, max_entries=1000)
    assert "max_entries=1000" in info.value.why and "pass max_entries=" in info.value.hint
    assert "stopped at 1000 members" in info.value.what
    assert not dest.exists()


def test_oversized_pax_header_is_refused_before_it_is_read(tmp_path):
    """A pax header claiming 64 MiB of records (tarfile would read it into memory whole)."""
    info, data = file_member("victim", b"x")
    info.pax_headers = {"comment": "A" * (64 * MiB)}
    tarball = write_tar(tmp_path / "pax.tar.gz", [(info, data)], "w:gz", format=tarfile.PAX_FORMAT)
    with pytest.raises(RootfsError) as error:
        rootfs.from_tar(tarball, tmp_path / "r")
    assert "extended header of 64.0 MiB" in error.value.why or "extended header of 64 MiB" in error.value.why
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------- sparse files
REGIONS = [(0, b"head" * 1024), (512 * MiB, b"middle" * 700), (GiB - 4096, b"t" * 4096)]


def gnu_sparse_tar(path: Path, work: Path) -> Path:
    """The same sparse file archived by GNU tar (old GNU sparse headers, ``--format=gnu``)."""
    source = work / "src"
    source.mkdir()
    with open(source / "sparse.img", "wb") as f:
        f.truncate(GiB)
        for offset, data in REGIONS:
            f.seek(offset)
            f.write(data)
    subprocess.run(["tar", "--sparse", "--format=gnu", "-C", str(source), "-cf", str(path), "sparse.img"],
                   check=True, capture_output=True)
    shutil.rmtree(source)
    return path


@pytest.mark.parametrize("kind", ["pax-1.0", "gnu"])
def test_sparse_file_stays_sparse(kind, tmp_path):
    """A ~20 KB archive of a 1 GiB sparse file: unpacking must not allocate the holes."""
    if kind == "pax-1.0":
        tarball = write_tar(tmp_path / "sparse.tar", [pax_sparse_member("sparse.img", GiB, REGIONS)],
                            format=tarfile.PAX_FORMAT)
    else:
        tarball = gnu_sparse_tar(tmp_path / "sparse.tar", tmp_path)
    assert tarball.stat().st_size < 64 * 1024
    dest = tmp_path / "unpacked"
    try:
        rootfs.from_tar(tarball, dest)
        image = dest / "sparse.img"
        st = os.stat(image)
        assert st.st_size == GiB
        assert st.st_blocks * 512 < 4 * MiB, f"{st.st_blocks * 512} bytes allocated for a 1 GiB sparse file"
        with open(image, "rb") as f:
            for offset, data in REGIONS:
                assert os.pread(f.fileno(), len(data), offset) == data
            assert os.pread(f.fileno(), 4096, 256 * MiB) == bytes(4096)
    finally:
        remove_tree(dest)


def test_sparse_file_counts_only_its_data_against_max_bytes(tmp_path):
    data_bytes = sum(len(data) for _, data in REGIONS)
    tarball = write_tar(tmp_path / "sparse.tar", [pax_sparse_member("sparse.img", GiB, REGIONS)],
                        format=tarfile.PAX_FORMAT)
    dest = rootfs.from_tar(tarball, tmp_path / "accepted", max_bytes=data_bytes)
    assert os.stat(dest / "sparse.img").st_size == GiB
    with pytest.raises(RootfsError) as info:
        rootfs.from_tar(tarball, tmp_path / "refused", max_bytes=data_bytes - 1)
    assert "max_bytes" in info.value.why
    assert not (tmp_path / "refused").exists()


def test_inconsistent_sparse_map_is_refused(tmp_path):
    """Regions that overlap or lie beyond the file's size are a lie about the data."""
    info, data = pax_sparse_member("sparse.img", MiB, [(0, b"a" * 4096), (1024, b"b" * 4096)])
    tarball = write_tar(tmp_path / "sparse.tar", [(info, data)], format=tarfile.PAX_FORMAT)
    with pytest.raises(RootfsError) as error:
        rootfs.from_tar(tarball, tmp_path / "r")
    assert "sparse map is inconsistent" in error.value.why
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------- root.path
def unpack_refused(tarball: Path, dest: Path) -> BundleError:
    try:
        bundle = Bundle.unpack(tarball, dest)
    except BundleError as e:
        assert not dest.exists(), "a refused bundle must leave nothing behind"
        return e
    pytest.fail(f"unpacked; the container's root filesystem would be {os.path.realpath(bundle.rootfs_path)}")


@pytest.mark.parametrize("root_path", ["../../../..", "/", "rootfs/../.."])
def test_root_path_outside_the_bundle_is_refused(root_path, tmp_path):
    tarball = write_tar(tmp_path / "b.tar", [config_member(root_path), dir_member("rootfs")])
    error = unpack_refused(tarball, tmp_path / "unpacked")
    assert "root.path" in error.where and repr(root_path) in error.why
    assert "must be inside the bundle" in error.why


def test_root_path_through_a_link_out_of_the_bundle_is_refused(tmp_path):
    """The first config.json is harmless (absolute links are allowed inside its rootfs); the
    second, unpacked last, points root.path at such a link to the host's /."""
    members = [config_member("rootfs"), dir_member("rootfs"), link_member("rootfs/host", "/"),
               config_member("rootfs/host")]
    error = unpack_refused(write_tar(tmp_path / "b.tar", members), tmp_path / "unpacked")
    assert "more than one config.json" in error.why


def test_root_path_through_a_link_inside_the_bundle_is_accepted(tmp_path):
    members = [config_member("current"), dir_member("images"), dir_member("images/v1"),
               dir_member("images/v1/bin"), link_member("current", "images/v1")]
    bundle = Bundle.unpack(write_tar(tmp_path / "b.tar", members), tmp_path / "unpacked")
    assert os.path.realpath(bundle.rootfs_path) == str(bundle.path / "images/v1")


# ---------------------------------------------------------------- links planted while unpacking
def test_link_planted_during_extraction_cannot_redirect_a_write(tmp_path):
    """While a 256 MiB member is written, the file is renamed away and a symbolic link to a host
    file put in its place; setting the member's mode (0777) must not follow that link."""
    victim = tmp_path / "victim"
    victim.write_text("host file\n")
    victim.chmod(0o600)
    tarball = tmp_path / "big.tar"
    info = tarfile.TarInfo("big")
    info.size, info.mode, info.mtime = 256 * MiB, 0o777, 1_700_000_000
    with open(tarball, "wb") as out:
        out.write(info.tobuf(tarfile.GNU_FORMAT))
        for _ in range(256):
            out.write(bytes(MiB))
        out.write(bytes(1024))
    dest = tmp_path / "unpacked"
    target = dest / "big"
    done = threading.Event()
    swapped = threading.Event()

    def plant():
        while not done.is_set():
            if os.path.lexists(target):
                os.rename(target, dest / "moved")
                os.symlink(victim, target)
                swapped.set()
                return
            time.sleep(0.0005)

    planter = threading.Thread(target=plant)
    planter.start()
    try:
        rootfs.from_tar(tarball, dest)
    except RootfsError:
        pass                             # refusing is fine too; following the link is not
    finally:
        done.set()
        planter.join()
    try:
        assert swapped.is_set(), "the link was not planted while the member was written"
        assert stat.S_IMODE(victim.stat().st_mode) == 0o600, "extraction followed the planted link"
        assert victim.read_text() == "host file\n"
    finally:
        remove_tree(dest)
