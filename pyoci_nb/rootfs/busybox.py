"""A busybox root filesystem from the host's static busybox (Debian package ``busybox-static``).

A statically linked busybox needs no shared library, so one binary plus a symbolic link per applet
(``/bin/sh -> busybox``, ``/usr/bin/wc -> ../../bin/busybox`` ...) is a complete, small userland.
The applet list comes from the binary itself (``busybox --list-full``), so every applet it was
built with is linked where busybox expects it.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from pyoci_nb.errors import RootfsError
from pyoci_nb.rootfs.elf import read_elf
from pyoci_nb.rootfs.skeleton import populate_skeleton
from pyoci_nb.rootfs.tree import fresh_directory

#: Where Debian's busybox-static installs the binary (merged /usr first).
BUSYBOX_LOCATIONS = ("/usr/bin/busybox", "/bin/busybox", "/usr/sbin/busybox")
#: Where the binary goes inside the root filesystem; applets link to it.
BUSYBOX_IN_ROOTFS = "bin/busybox"


def find_static_busybox(candidates: Sequence[str] | None = None) -> str:
    """The host's static busybox binary: the first of ``candidates`` that exists (default:
    ``BUSYBOX_LOCATIONS``, then ``busybox`` in $PATH).

    Raises ``RootfsError`` when there is none, or when the one found is dynamically linked (it has
    an ELF interpreter, ``PT_INTERP``): such a binary cannot run in a root filesystem without the
    host's libc.  The hint names the Debian package to install.
    """
    if candidates is None:
        found = shutil.which("busybox")
        candidates = list(BUSYBOX_LOCATIONS) + ([found] if found else [])
    candidate = next((c for c in candidates if os.path.isfile(c)), None)
    if candidate is None:
        raise RootfsError("busybox not found", where=" or ".join(candidates),
                          why="the busybox root filesystem is built from the host's static busybox",
                          hint="install it: apt-get install busybox-static")
    info = read_elf(candidate)
    if not info.is_static:
        raise RootfsError("busybox is dynamically linked", where=candidate,
                          why=f"it needs the ELF interpreter {info.interpreter}, which a busybox "
                              "root filesystem does not contain",
                          hint="install the static build: apt-get install busybox-static")
    return candidate


@functools.lru_cache(maxsize=4)
def _applets(binary: str, mtime_ns: int) -> tuple[str, ...]:
    result = subprocess.run([binary, "--list-full"], capture_output=True, text=True, check=False)
    if result.returncode != 0 or not result.stdout.strip():
        raise RootfsError("cannot list busybox applets", where=f"{binary} --list-full",
                          why=result.stderr.strip() or f"exit status {result.returncode}")
    return tuple(line.strip().lstrip("/") for line in result.stdout.splitlines() if line.strip())


def applets(binary: str | None = None) -> tuple[str, ...]:
    """Paths (relative to the root, e.g. ``bin/sh``, ``usr/bin/wc``) of the applets ``binary``
    provides, as printed by ``busybox --list-full``."""
    binary = binary or find_static_busybox()
    return _applets(binary, os.stat(binary).st_mtime_ns)


def busybox(dest: str | os.PathLike) -> Path:
    """Build a busybox root filesystem in ``dest`` (a new or empty directory) and return its path.

    Contents: ``/bin/busybox`` (a copy of the host's static busybox), one relative symbolic link
    per applet, ``/proc``, ``/sys``, ``/dev`` mount points, ``/tmp`` (1777), ``/root``, ``/home`` and
    minimal /etc files (see ``pyoci_nb.rootfs.skeleton``).  The runtime spec only requires
    ``root.path`` to be a directory; this is the smallest one in which ``sh`` and the usual tools work.
    """
    binary = find_static_busybox()
    names = applets(binary)
    with fresh_directory(dest) as root:
        for directory in ("bin", "sbin", "usr/bin", "usr/sbin"):
            (root / directory).mkdir(parents=True, exist_ok=True)
        shutil.copy2(binary, root / BUSYBOX_IN_ROOTFS)
        os.chmod(root / BUSYBOX_IN_ROOTFS, 0o755)
        for applet in names:
            if applet == BUSYBOX_IN_ROOTFS:
                continue
            link = root / applet
            link.parent.mkdir(parents=True, exist_ok=True)
            if not os.path.lexists(link):
                os.symlink(os.path.relpath(BUSYBOX_IN_ROOTFS, os.path.dirname(applet)), link)
        populate_skeleton(root)
    return root
