"""Fixtures of the image tests: a real ``docker-registry`` on loopback per test (stopped, with its
storage removed, also when the test fails), the busybox base layer, a private image store."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from registry_harness import REGISTRY, SKOPEO, OciLayout, Registry, tar_of_directory  # noqa: E402

if not (os.path.exists(REGISTRY) and os.path.exists(SKOPEO)):
    pytest.skip("docker-registry and skopeo are needed (scripts/setup.sh installs them)", allow_module_level=True)


@pytest.fixture(scope="session")
def busybox_layer(tmp_path_factory) -> bytes:
    """A busybox root filesystem as an uncompressed layer tar."""
    import pyoci_nb.rootfs

    root = pyoci_nb.rootfs.busybox(tmp_path_factory.mktemp("busybox") / "rootfs")
    return tar_of_directory(root)


@pytest.fixture
def registry(tmp_path):
    reg = Registry(tmp_path / "registry")
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture
def layout(tmp_path) -> OciLayout:
    return OciLayout(tmp_path / "layout")


@pytest.fixture
def store(tmp_path):
    from pyoci_nb.image import ImageStore

    s = ImageStore(tmp_path / "store")
    yield s
    from pyoci_nb.rootfs.tree import remove_tree

    remove_tree(s.root)


def tree_of(root: Path) -> dict:
    """Everything umoci/our unpack must agree on, per path: type, mode, owner, link target or
    content digest (the root directory itself left out)."""
    import hashlib
    import stat

    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = os.lstat(path)
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                value = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                value = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                value = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
            else:
                value = None
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, value)
    return out


@pytest.fixture
def cleanup_paths():
    paths: list[Path] = []
    yield paths
    for p in paths:
        shutil.rmtree(p, ignore_errors=True)
