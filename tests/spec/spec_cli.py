"""Run this checkout's ``pyoci`` (``python -m pyoci_nb``) in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def pyoci(*args, cwd=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "pyoci_nb", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)
