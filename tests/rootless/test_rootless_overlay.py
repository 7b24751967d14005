"""A rootless container whose root filesystem is an overlay snapshot (``pyoci_nb.rootfs.overlay``):
the unprivileged user makes the snapshot and runs the container; the runtime mounts the overlay
inside the container's user and mount namespaces (unprivileged overlay, Linux >= 5.11).  Also
with runc as the same user (``runtime``), which does the same."""

from __future__ import annotations

import os
import stat

import pytest

#: the rootless user runs Debian's python3 (the venv lives under /root, 0700), as in conftest.py
SYSTEM_PYTHON = "/usr/bin/python3"

#: run as the user: make the snapshot of argv[1] in argv[2] and point config.json at it
_MAKE = """
import json, sys
from pyoci_nb.rootfs.overlay import Snapshot
snap = Snapshot.create([sys.argv[1]], sys.argv[2])
with open("config.json") as f:
    config = json.load(f)
config["process"]["terminal"] = False
config["process"]["args"] = ["sh", "-c", "id -u; echo new > /new-file && rm /bin/ls && test ! -e /bin/ls && echo ok"]
config["root"]["readonly"] = False
snap.apply_to(config)
with open("config.json", "w") as f:
    json.dump(config, f)
"""

_SUPPORT = "from pyoci_nb.rootfs.overlay import overlay_support; print(overlay_support(rootless=True) or 'ok')"
_REMOVE = "import sys; from pyoci_nb.rootfs.overlay import Snapshot; Snapshot.open(sys.argv[1]).remove()"


def _digest(root):
    return sorted((os.path.relpath(os.path.join(d, n), root), os.lstat(os.path.join(d, n)).st_mode)
                  for d, dirs, files in os.walk(root) for n in dirs + files)


def test_rootless_container_on_an_overlay_snapshot(session, runtime):
    support = session.as_user(SYSTEM_PYTHON, "-c", _SUPPORT)
    assert support.returncode == 0, support.stderr
    if support.stdout.strip() != "ok":
        pytest.skip(f"overlay_support(rootless=True): {support.stdout.strip()}")
    lower = session.bundle / "rootfs"
    before = _digest(lower)
    dest = session.home / "snap"
    made = session.as_user(*session.runtime_argv(runtime), "spec", "--rootless")
    assert made.returncode == 0, made.stderr
    made = session.as_user(SYSTEM_PYTHON, "-c", _MAKE, lower, dest)
    assert made.returncode == 0, made.stderr
    try:
        proc = session.as_user(*session.runtime_argv(runtime), "run", "rl-overlay")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "0\nok\n"
        new = os.lstat(dest / "upper/new-file")
        assert new.st_uid == session.user.uid            # container root is the user on the host
        whiteout = os.lstat(dest / "upper/bin/ls")
        assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == os.makedev(0, 0)
        assert _digest(lower) == before
    finally:
        removed = session.as_user(SYSTEM_PYTHON, "-c", _REMOVE, dest)
    assert removed.returncode == 0, removed.stderr
    assert not dest.exists()
    with open("/proc/self/mountinfo") as mountinfo:
        assert str(dest) not in mountinfo.read()
