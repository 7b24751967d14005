"""nbval settings for the tutorial notebooks.

The notebooks' stored outputs hold values that change from run to run (host PIDs, namespace
inode numbers, temporary paths, container-id tokens, timestamps); ``sanitize.cfg`` masks them.
The Makefile passes ``--nbval-sanitize-with notebooks/sanitize.cfg``; this makes a plain
``pytest --nbval notebooks/`` use the same file.
"""

from __future__ import annotations

from pathlib import Path

SANITIZE = Path(__file__).resolve().parent / "sanitize.cfg"


def pytest_configure(config):
    if getattr(config.option, "nbval_sanitize_with", None) is None and hasattr(config.option, "nbval"):
        config.option.nbval_sanitize_with = str(SANITIZE)
