"""scripts/demo.py, the README's main job, runs to the end: bundle built, validated, and the
container started through the Python API and through the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[2] / "scripts" / "demo.py"


@pytest.mark.root
def test_demo_runs_a_real_container_twice(tmp_path):
    result = subprocess.run([sys.executable, str(DEMO), "--bundle", str(tmp_path / "bundle")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("hello from pyoci-demo") == 2
    assert result.stdout.count("uid=0(root)") == 2
    # the container's PID 1 is the configured process, in its own PID namespace
    assert result.stdout.count("sh -c echo hello from $(hostname)") == 2
    assert f"{tmp_path / 'bundle'}: valid" in result.stdout
