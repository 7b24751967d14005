"""Fixtures of the image tests: a real ``docker-registry`` on loopback per test (stopped, with its
storage removed, also when the test fails), the busybox base layer, a private image store."""

from __future__ import annotations

import os
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
