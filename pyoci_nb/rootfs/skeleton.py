"""The directories and /etc files every root filesystem built here starts with.

The runtime mounts ``/proc``, ``/sys`` and ``/dev`` (config.json ``mounts``), so their mount points
must exist; ``/tmp`` is world-writable with the sticky bit (1777) as on any Unix system.  The /etc
files are plain ``files`` databases that need no NSS modules: ``passwd``/``group`` so ``id`` and
``whoami`` can name uid 0 and nobody, ``hostname``/``hosts``, an empty ``resolv.conf`` (engines
bind-mount their own over it) and an ``nsswitch.conf`` saying "files" for everything, so a glibc
program copied from the host never looks for systemd or LDAP modules.
"""

from __future__ import annotations

import os
from pathlib import Path

#: (directory, mode) created in every root filesystem.
SKELETON_DIRECTORIES: tuple[tuple[str, int], ...] = (
    ("dev", 0o755), ("proc", 0o555), ("sys", 0o555), ("etc", 0o755),
    ("tmp", 0o1777), ("root", 0o700), ("home", 0o755), ("run", 0o755),
    ("var", 0o755), ("var/tmp", 0o1777),
)

#: /etc files (path, content); never overwrite a file the rootfs already has.
SKELETON_FILES: tuple[tuple[str, str], ...] = (
    ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"
                   "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
    ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
    ("etc/hostname", "pyoci\n"),
    ("etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
    ("etc/resolv.conf", ""),
    ("etc/nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"
                          "networks: files\nprotocols: files\nservices: files\n"),
)


def populate_skeleton(dest: Path) -> None:
    """Create the standard directories (with their modes) and minimal /etc files in ``dest``;
    existing entries are kept."""
    for relative, mode in SKELETON_DIRECTORIES:
        path = dest / relative
        if not os.path.lexists(path):
            path.mkdir(parents=True)
            os.chmod(path, mode)
    for relative, content in SKELETON_FILES:
        path = dest / relative
        if not os.path.lexists(path):
            path.write_text(content)
            os.chmod(path, 0o644)
