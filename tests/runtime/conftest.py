"""Fixtures of the pyoci-specific runtime tests (Python API and internals).

Every test gets a private state root (``state_root`` of tests/conftest.py, which force-deletes
whatever is left in it, also after a failure); helpers live in ``runtime_helpers.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def bundle(busybox_bundle) -> Path:
    """The busybox bundle of tests/conftest.py (terminal off)."""
    return busybox_bundle
