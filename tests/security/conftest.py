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
import subprocess
import sys
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE.parent / "conformance"))

from oci_fixtures import box, mark_items, runtime  # noqa: E402,F401  (fixtures)


def pytest_collection_modifyitems(config, items):
    mark_items(config, items, _HERE, divergent_reason="runc 1.1.5 is vulnerable here too",
               root_reason="the attacks run real containers as root")


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
