"""Fixtures of the security suite: every test is a real attack on the runtime.

Each test makes the attempt an attacker would (a hostile image, bundle, config or tarball,
another local user, the container's own processes) and asserts that it fails and leaves the
host untouched.  The runtime under test is ``pyoci_command()`` of tests/conftest.py:
``$PYOCI_TEST_RUNTIME`` (e.g. ``/usr/sbin/runc``) or this checkout's ``pyoci``.  Markers as in
tests/conformance: ``runc_divergent`` (runc 1.1.5 is hit too: skipped against runc),
``pyoci_only`` (the Python API, tarballs: skipped against other runtimes).

Helpers the attacks need are built here: ``static_program`` compiles a C source with Debian's
gcc into a static binary (cached per session), so it runs inside a busybox rootfs.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE.parent / "conformance"))

from oci_harness import Box, Runtime  # noqa: E402

_ROOT_CONFTEST = _HERE.parent / "conftest.py"


def _root_conftest(config):
    for plugin in config.pluginmanager.get_plugins():
        if getattr(plugin, "__file__", None) and Path(plugin.__file__).resolve() == _ROOT_CONFTEST:
            return plugin
    raise RuntimeError(f"{_ROOT_CONFTEST} is not loaded")


def runtime_name(command) -> str:
    """'runc', 'pyoci' or the first word of another runtime's ``--version``."""
    try:
        out = subprocess.run(list(command) + ["--version"], capture_output=True, text=True,
                             timeout=30).stdout
    except OSError:
        return "unknown"
    words = out.split()
    return words[0] if words else "unknown"


def pytest_collection_modifyitems(config, items):
    mine = [item for item in items if _HERE in Path(str(item.fspath)).resolve().parents]
    if not mine:
        return
    name = runtime_name(_root_conftest(config).pyoci_command())
    for item in mine:
        if "runc_divergent" in item.keywords and name == "runc":
            item.add_marker(pytest.mark.skip(reason="runc 1.1.5 is vulnerable here too"))
        if "pyoci_only" in item.keywords and name != "pyoci":
            item.add_marker(pytest.mark.skip(reason=f"pyoci-specific (runtime is {name})"))
        if os.geteuid() != 0:
            item.add_marker(pytest.mark.skip(reason="the attacks run real containers as root"))


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


@pytest.fixture(scope="session")
def static_program(tmp_path_factory):
    """``static_program(source, name)`` -> path of a static binary compiled from C ``source``."""
    cache = tmp_path_factory.mktemp("static-programs")

    def build(source: str, name: str = "prog", extra: tuple[str, ...] = ()) -> Path:
        digest = hashlib.sha256(source.encode() + repr(extra).encode()).hexdigest()[:12]
        out = cache / f"{name}-{digest}"
        if not out.exists():
            src = cache / f"{name}-{digest}.c"
            src.write_text(source)
            link = [] if "-static-pie" in extra else ["-static"]
            subprocess.run(["gcc", *link, "-O2", "-o", str(out), str(src), *extra],
                           check=True, capture_output=True, text=True)
        return out

    return build
