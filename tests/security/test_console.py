"""The terminal bound over /dev/console (CVE-2025-52565).

With ``process.terminal``, the runtime binds the pty slave it opened onto the container's
``/dev/console``.  An image that brings its own /dev (no tmpfs on /dev in the config) controls
what ``/dev/console`` is: a symlink to a procfs file would have the bind mount land on that
file instead (runc before 1.2.8 followed it, a mount on ``/proc/sys/...`` or
``/proc/sysrq-trigger`` that maskedPaths and readonlyPaths never cover).  The runtime must open
``/dev/console`` without following links and bind only over a file or device of the
container's /dev: either it refuses, naming /dev/console, or the mount lands on /dev/console
itself and nowhere under /proc.

Real attempts: real containers with a terminal through ``--console-socket``; the host keeps
the proof (the sysctl's value, the mount table the container saw).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from oci_harness import ConsoleSocket, assert_nothing_left, parse_mountinfo

pytestmark = pytest.mark.runc_divergent  # runc 1.1.5 binds the terminal onto the link's target

KNOB = Path("/proc/sys/fs/lease-break-time")


def _image_owned_dev(box) -> None:
    """The config leaves /dev to the image: no tmpfs on /dev (devpts on /dev/pts stays)."""
    box.config["mounts"] = [m for m in box.config["mounts"] if m["destination"] != "/dev"]
    (box.rootfs / "dev").mkdir(exist_ok=True)
    (box.rootfs / "dev" / "pts").mkdir(exist_ok=True)


def _create_with_terminal(box, console: ConsoleSocket, script: str):
    """create with ``terminal: true``; returns (CompletedProcess, pty master fd or None).
    The master belongs to ``console`` (closed with it)."""
    box.args("sh", "-c", script)
    box.config["process"]["terminal"] = True
    box.save()
    proc = box.runtime("create", "--bundle", box.bundle, "--console-socket", console.path, box.id)
    return proc, (console.receive_master() if proc.returncode == 0 else None)


@pytest.mark.parametrize("target", [str(KNOB), "../proc/sys/fs/lease-break-time", "/proc/sysrq-trigger"])
def test_a_symlinked_dev_console_does_not_redirect_the_terminal_mount(box, tmp_path, target):
    """Image: ``/dev/console -> TARGET`` (a procfs file).  The container prints its mount table
    through the pty; no mount may sit on TARGET, and the host sysctl keeps its value."""
    before = KNOB.read_text()
    _image_owned_dev(box)
    (box.rootfs / "dev" / "console").symlink_to(target)
    try:
        with ConsoleSocket(tmp_path / "console.sock") as console:
            proc, master = _create_with_terminal(box, console, "cat /proc/self/mountinfo; echo END-OF-MOUNTS")
            if proc.returncode != 0:
                assert "/dev/console" in proc.stderr, proc.stderr
                assert "Traceback" not in proc.stderr, proc.stderr
            else:
                box.start()
                text = console.read_until(master, "END-OF-MOUNTS")
                mounts = parse_mountinfo(text.split("END-OF-MOUNTS")[0])
                terminals = sorted(point for point, entry in mounts.items()
                                   if entry.fstype == "devpts" and point != "/dev/pts")
                assert terminals == ["/dev/console"], (
                    f"the terminal was bound onto {terminals} (the symlink points to {target})")
    finally:
        box.delete(force=True, check=False)
    assert KNOB.read_text() == before
    assert_nothing_left(box)


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_dev_console_that_is_not_a_file_is_refused(box, tmp_path, kind):
    """Image: ``/dev/console`` a directory or a fifo.  Binding a pty over it would hide what
    the image put there or block; the runtime refuses, naming /dev/console and the reason,
    and leaves nothing behind."""
    _image_owned_dev(box)
    planted = box.rootfs / "dev" / "console"
    planted.mkdir() if kind == "directory" else os.mkfifo(planted)
    try:
        with ConsoleSocket(tmp_path / "console.sock") as console:
            proc, _master = _create_with_terminal(box, console, "true")
        assert proc.returncode != 0, "a terminal was bound over a non-file /dev/console"
        assert "/dev/console" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    finally:
        box.delete(force=True, check=False)
    assert_nothing_left(box)
