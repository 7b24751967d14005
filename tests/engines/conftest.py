"""Fixtures for driving real container engines (podman, containerd) with the runtime under test.

The runtime is a single executable the engine can exec: ``$PYOCI_TEST_RUNTIME`` (e.g.
``/usr/sbin/runc``) or the ``pyoci`` entry point installed next to ``sys.executable`` (or on
PATH).  Images are made locally from the session's busybox rootfs -- no network.  Engines run
with every directory of theirs inside a temporary directory; host paths they insist on creating
(``/var/lib/containers/cache``, ``/run/containers``...) are removed afterwards when they did
not exist before (``HostPaths``).
"""

from __future__ import annotations

import os

import pytest

from engine_helpers import runtime_executable


@pytest.fixture(scope="session")
def engine_runtime() -> str:
    """Absolute path of the OCI runtime binary the engines are told to use."""
    if os.geteuid() != 0:
        pytest.skip("engines run containers as root")
    path = runtime_executable()
    if not path:
        pytest.skip("no pyoci executable next to sys.executable or on PATH "
                    "(pip install -e . puts it there) and PYOCI_TEST_RUNTIME is not set")
    return os.path.abspath(path)
