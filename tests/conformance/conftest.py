"""Fixtures of the runtime-agnostic conformance suite.

The runtime under test is ``pyoci_command()`` of tests/conftest.py: ``$PYOCI_TEST_RUNTIME``
(e.g. ``/usr/sbin/runc``) or this checkout's ``pyoci``.  Tests marked ``runc_divergent`` are
skipped when that runtime is runc (runc 1.1 does not do what the spec says there); tests marked
``pyoci_only`` are skipped unless it is pyoci.  Every test runs as root in real busybox
containers and cleans up (``delete --force`` of everything in its private ``--root``) also
when it fails.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

import pytest

from oci_harness import Box, Runtime

_ROOT_CONFTEST = Path(__file__).resolve().parent.parent / "conftest.py"


def _root_conftest(config):
    """tests/conftest.py as pytest loaded it (its ``pyoci_command`` says which runtime to test)."""
    for plugin in config.pluginmanager.get_plugins():
        if getattr(plugin, "__file__", None) and Path(plugin.__file__).resolve() == _ROOT_CONFTEST:
            return plugin
    raise RuntimeError(f"{_ROOT_CONFTEST} is not loaded")


@functools.lru_cache(maxsize=None)
def _runtime_name(command: tuple[str, ...]) -> str:
    """'runc', 'pyoci' or the first word of ``--version`` of another runtime."""
    try:
        out = subprocess.run(list(command) + ["--version"], capture_output=True, text=True,
                             timeout=30).stdout
    except OSError:
        return "unknown"
    words = out.split()
    return words[0] if words else "unknown"


def pytest_collection_modifyitems(config, items):
    command = tuple(_root_conftest(config).pyoci_command())
    name = _runtime_name(command)
    for item in items:
        if "runc_divergent" in item.keywords and name == "runc":
            item.add_marker(pytest.mark.skip(reason="runc 1.1 diverges from the spec here"))
        if "pyoci_only" in item.keywords and name != "pyoci":
            item.add_marker(pytest.mark.skip(reason=f"pyoci-specific check (runtime is {name})"))
        if os.geteuid() != 0:
            item.add_marker(pytest.mark.skip(reason="conformance tests create real containers: need root"))


@pytest.fixture
def runtime(request, state_root) -> Runtime:
    """The runtime under test with this test's private ``--root``."""
    return Runtime(_root_conftest(request.config).pyoci_command(), state_root)


@pytest.fixture
def box(runtime, busybox_bundle, container_id):
    """A busybox bundle + container id; the container is force-deleted after the test."""
    b = Box(runtime, busybox_bundle, container_id)
    yield b
    runtime("delete", "--force", container_id)


@pytest.fixture
def all_capabilities() -> tuple[str, ...]:
    from pyoci_nb.spec.capabilities import ALL_CAPABILITIES

    return ALL_CAPABILITIES
