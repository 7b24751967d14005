"""The runtime under test for the suites that drive it through runc's command line
(tests/conformance, tests/security): its name, the markers that depend on it, and the
``runtime`` and ``box`` fixtures.  A conftest uses them with
``from oci_fixtures import box, runtime`` and calls ``mark_items`` from its
``pytest_collection_modifyitems``.

The runtime is ``pyoci_command()`` of tests/conftest.py: ``$PYOCI_TEST_RUNTIME`` (e.g.
``/usr/sbin/runc``) or this checkout's ``pyoci``.  ``runc_divergent`` tests are skipped when it
is runc, ``pyoci_only`` tests unless it is pyoci; all need root.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

import pytest

from oci_harness import Box, Runtime

_ROOT_CONFTEST = Path(__file__).resolve().parent.parent / "conftest.py"


def root_conftest(config):
    """tests/conftest.py as pytest loaded it (its ``pyoci_command`` says which runtime to test)."""
    for plugin in config.pluginmanager.get_plugins():
        if getattr(plugin, "__file__", None) and Path(plugin.__file__).resolve() == _ROOT_CONFTEST:
            return plugin
    raise RuntimeError(f"{_ROOT_CONFTEST} is not loaded")


@functools.lru_cache(maxsize=None)
def runtime_name(command: tuple[str, ...]) -> str:
    """'runc', 'pyoci' or the first word of another runtime's ``--version``."""
    try:
        out = subprocess.run(list(command) + ["--version"], capture_output=True, text=True,
                             timeout=30).stdout
    except OSError:
        return "unknown"
    words = out.split()
    return words[0] if words else "unknown"


def mark_items(config, items, directory: Path, divergent_reason: str, root_reason: str) -> None:
    """Skip the tests under ``directory`` that cannot run against the runtime under test, or
    without root."""
    mine = [item for item in items if directory in Path(str(item.fspath)).resolve().parents]
    if not mine:
        return
    name = runtime_name(tuple(root_conftest(config).pyoci_command()))
    for item in mine:
        if "runc_divergent" in item.keywords and name == "runc":
            item.add_marker(pytest.mark.skip(reason=divergent_reason))
        if "pyoci_only" in item.keywords and name != "pyoci":
            item.add_marker(pytest.mark.skip(reason=f"pyoci-specific check (runtime is {name})"))
        if os.geteuid() != 0:
            item.add_marker(pytest.mark.skip(reason=root_reason))


@pytest.fixture
def runtime(request, state_root) -> Runtime:
    """The runtime under test with this test's private ``--root``."""
    return Runtime(root_conftest(request.config).pyoci_command(), state_root)


@pytest.fixture
def box(runtime, busybox_bundle, container_id):
    """A busybox bundle + container id; the container is force-deleted after the test."""
    b = Box(runtime, busybox_bundle, container_id)
    yield b
    runtime("delete", "--force", container_id)
