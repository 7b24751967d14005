"""Fixtures of the runtime-agnostic conformance suite.

The runtime under test is ``pyoci_command()`` of tests/conftest.py: ``$PYOCI_TEST_RUNTIME``
(e.g. ``/usr/sbin/runc``) or this checkout's ``pyoci``.  Tests marked ``runc_divergent`` are
skipped when that runtime is runc (runc 1.1 does not do what the spec says there); tests marked
``pyoci_only`` are skipped unless it is pyoci.  Every test runs as root in real busybox
containers and cleans up (``delete --force`` of everything in its private ``--root``) also
when it fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from oci_fixtures import box, mark_items, runtime  # noqa: F401  (fixtures)


def pytest_collection_modifyitems(config, items):
    mark_items(config, items, Path(__file__).resolve().parent,
               divergent_reason="runc 1.1 diverges from the spec here",
               root_reason="conformance tests create real containers: need root")


@pytest.fixture
def all_capabilities() -> tuple[str, ...]:
    from pyoci_nb.spec.capabilities import ALL_CAPABILITIES

    return ALL_CAPABILITIES
