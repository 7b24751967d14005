"""Root filesystems for OCI bundles.

The runtime spec (config.md, ``root``) only says that ``root.path`` is the container's root
filesystem, a directory, relative to the bundle or absolute.  These builders make one:

* ``busybox(dest)`` -- the host's static busybox plus one link per applet (small, fast, no libc);
* ``from_host(dest, programs)`` -- host programs (``sh``, ``bash``, ``python3`` ...) with their ELF
  interpreter, shared libraries and, for Python, the standard library;
* ``from_tar(tarball, dest)`` -- unpack a root filesystem tarball, refusing unsafe members
  (absolute paths, ``..``, links leaving the destination, device nodes without root) and archives
  over the ``max_bytes``/``max_entries`` limits, into a private directory (0700 by default).

Each builder takes a new or empty directory and removes what it wrote if it fails.
``pyoci_nb.rootfs.overlay`` (imported on its own, not from here) makes none: its ``Snapshot``
gives a container a writable overlay over read-only lower directories, copying nothing.
Standard library only.
"""

from pyoci_nb.rootfs.busybox import busybox, find_static_busybox
from pyoci_nb.rootfs.host import DEFAULT_HOST_PROGRAMS, from_host
from pyoci_nb.rootfs.safetar import from_tar, safe_extract
from pyoci_nb.rootfs.tree import copy_tree, resolve_in_root

__all__ = ["DEFAULT_HOST_PROGRAMS", "busybox", "copy_tree", "find_static_busybox", "from_host", "from_tar",
           "resolve_in_root", "safe_extract"]
