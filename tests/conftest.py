"""Fixtures shared by the whole suite.

* ``shared_dir``       -- ``../shared`` beside the clone (runtime-spec schemas, golden files).
* ``busybox_rootfs``   -- one busybox root filesystem built per session (read it, don't write it).
* ``busybox_bundle``   -- a fresh bundle per test: ``config.json`` from ``default_spec()`` with
                          ``terminal: false`` and a private copy of the busybox rootfs.
* ``container_id``     -- a unique id per test.
* ``state_root``       -- a private ``--root`` per test, removed (with ``delete --force`` of every
                          container in it) after the test, also when it fails.
Subdirectories keep their own fixtures in their own conftest.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _find_shared() -> Path:
    for candidate in (REPO.parent / "shared", REPO / "shared", Path("/work/shared")):
        if (candidate / "runtime-spec").is_dir():
            return candidate
    raise RuntimeError("../shared/runtime-spec not found beside the repository")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _find_shared()


@pytest.fixture(scope="session")
def runtime_spec_dir(shared_dir) -> Path:
    return shared_dir / "runtime-spec"


@pytest.fixture(scope="session", autouse=True)
def _no_default_base_cgroup_left():
    """pyoci keeps the base cgroup of its default cgroupsPath (``/pyoci``) between containers;
    at the end of the run the suite removes it where it is empty, so no cgroup is left behind."""
    yield
    root = Path("/sys/fs/cgroup")
    candidates = [root / "pyoci"] + ([d / "pyoci" for d in root.iterdir() if d.is_dir()]
                                     if root.is_dir() else [])
    for base in candidates:
        try:
            base.rmdir()
        except OSError:
            pass  # absent, or still in use


def pytest_collection_modifyitems(config, items):
    skip_root = pytest.mark.skip(reason="needs root")
    for item in items:
        if "root" in item.keywords and os.geteuid() != 0:
            item.add_marker(skip_root)


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory) -> Path:
    from pyoci_nb import rootfs

    dest = tmp_path_factory.mktemp("busybox") / "rootfs"
    rootfs.busybox(dest)
    return dest


@pytest.fixture
def container_id() -> str:
    return "t-" + uuid.uuid4().hex[:12]


@pytest.fixture
def busybox_bundle(tmp_path, busybox_rootfs) -> Path:
    from pyoci_nb.spec.defaults import default_config

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    shutil.copytree(busybox_rootfs, bundle / "rootfs", symlinks=True)
    config = default_config()
    config["process"]["terminal"] = False
    (bundle / "config.json").write_text(json.dumps(config, indent=2))
    return bundle


@pytest.fixture
def state_root(tmp_path):
    root = tmp_path / "state"
    root.mkdir()
    yield root
    force_delete_all(root)


def pyoci_command() -> list[str]:
    """The runtime under test: $PYOCI_TEST_RUNTIME (e.g. /usr/sbin/runc) or this checkout's pyoci."""
    other = os.environ.get("PYOCI_TEST_RUNTIME")
    if other:
        return [other]
    return [sys.executable, "-m", "pyoci_nb"]


def force_delete_all(root: Path) -> None:
    """Delete every container under a state root (used by fixtures on teardown, also after failures)."""
    if not root.exists():
        return
    for entry in sorted(root.iterdir()):
        if entry.is_dir():
            subprocess.run(pyoci_command() + ["--root", str(root), "delete", "--force", entry.name],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
