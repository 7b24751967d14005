"""Overlay snapshots: a container's root filesystem made of read-only layers plus a private
writable layer, without copying anything.

How overlayfs works (Documentation/filesystems/overlayfs.rst in the kernel):

* **lower directories** (one or more, read-only, may be shared by many containers): the image
  or cached root filesystem.  With several, the first one given is the top layer: a file in it
  hides the same file in the layers below.
* **upper directory** (per container, writable): every change goes here.  Writing a file that
  exists only in a lower layer first *copies it up* (the whole file is copied to upper, then
  changed there), so the lower layers never change.
* **work directory** (per container, empty, on the same filesystem as upper): scratch space
  the kernel uses to prepare copy-ups and whiteouts so that they appear atomically.
* the **merged** directory, where the overlay is mounted, shows upper on top of the lowers.

Deleting a file that exists in a lower layer cannot remove it there: overlayfs creates a
**whiteout** in upper instead -- a character device with device number 0/0 under the same
name -- which hides the lower file.  A removed and recreated directory gets the
``trusted.overlay.opaque`` (``user.overlay.opaque`` unprivileged) xattr: nothing below shows
through it.

``Snapshot.create(lowerdirs, dest)`` makes ``dest/upper``, ``dest/work`` and ``dest/rootfs``
(the mount point: the bundle's ``root.path``); ``apply_to(config)`` puts the overlay first in
``mounts`` with destination "/", which the runtime (``pyoci_nb.runtime.mounts``) mounts on the
rootfs inside the container's mount namespace -- the mount goes away with the namespace, so
nothing is mounted on the host.  ``remove()`` deletes upper and work without following the
symbolic links the container made in them.

Standard library only (imported by the runtime-side engine).
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from pyoci_nb.errors import RootfsError
from pyoci_nb.rootfs.tree import (
    DIR_FLAGS,
    fresh_directory,
    open_own_directory,
    remove_tree,
)
from pyoci_nb.runtime import inroot, jsonio
from pyoci_nb.runtime import syscalls as sc

__all__ = ["Snapshot", "escape_option_path", "overlay_support"]

#: the file in a snapshot directory naming its layers (for ``Snapshot.open``)
METADATA = "snapshot.json"
#: the most bytes of mount(2) data the kernel takes (one page): the overlay options must fit
MAX_OPTIONS_BYTES = 4095
#: unprivileged overlay mounts in a user namespace: Linux 5.11 (commit 459c7c565ac3)
ROOTLESS_KERNEL = (5, 11)

_support_cache: dict[bool, str | None] = {}


def escape_option_path(path: str | os.PathLike, where: str = "path") -> str:
    """``path`` as overlayfs reads it in ``lowerdir=``/``upperdir=``/``workdir=``: ``\\`` and
    ``:`` escaped with a backslash (the kernel splits lowerdir at unescaped ``:`` and unescapes
    every layer path).  A ``,`` is refused (RootfsError): mount(2) options are split at commas
    and a path with one cannot be given safely to every kernel and runtime."""
    text = os.fspath(path)
    if "," in text:
        raise RootfsError("a layer path contains ','", where=where,
                          why="overlay mount options are separated by commas, so such a path would be cut "
                              "in two (or could add options of its own)",
                          hint="rename or move the directory to a path without ','")
    if "\0" in text or "\n" in text:
        raise RootfsError("a layer path contains a NUL or newline character", where=where,
                          why="mount(2) options are C strings, and /proc/self/mountinfo is read line by line",
                          hint="rename or move the directory")
    return text.replace("\\", "\\\\").replace(":", "\\:")


def _kernel_version() -> tuple[int, int]:
    parts = os.uname().release.split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except (IndexError, ValueError):
        return 0, 0


def _overlay_loadable() -> bool:
    """Whether overlay.ko is among the modules of the running kernel (the first overlay
    mount loads it: request_module("fs-overlay"))."""
    try:
        with open(f"/lib/modules/{os.uname().release}/modules.dep", "rb") as f:
            return any(line.split(b":", 1)[0].rsplit(b"/", 1)[-1].startswith(b"overlay.ko") for line in f)
    except OSError:
        return False


#: run by ``overlay_support(rootless=True)`` in a fresh Python (a Jupyter kernel must not fork
#: and run Python in the child): unshare a user and mount namespace, map the caller to root,
#: mount an overlay and make a copy-up and a whiteout.  Prints "ok" or the failing step.
_PROBE = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
scratch, uid, gid = sys.argv[1], sys.argv[2], sys.argv[3]
def check(result, step):
    if result != 0:
        e = ctypes.get_errno()
        print(f"{step}: {os.strerror(e)}")
        sys.exit(0)
check(libc.unshare(0x10000000 | 0x00020000), "unshare(CLONE_NEWUSER|CLONE_NEWNS)")
for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
    with open(f"/proc/self/{name}", "w") as f:
        f.write(text)
check(libc.mount(None, b"/", None, 0x40000 | 0x4000, None), "making / private")
d = os.fsencode(scratch)
data = b"lowerdir=" + d + b"/l,upperdir=" + d + b"/u,workdir=" + d + b"/w"
check(libc.mount(b"overlay", d + b"/m", b"overlay", 0, data), "mount -t overlay")
with open(scratch + "/m/f", "a") as f:
    f.write("copied up")
os.unlink(scratch + "/m/g")
print("ok")
"""


def overlay_support(rootless: bool = False) -> str | None:
    """None if overlay snapshots can be used here, else one sentence saying what is missing
    and what to do.  As root: ``overlay`` in /proc/filesystems or a loadable overlay module.
    ``rootless``: an unprivileged overlay mount in a user namespace (Linux >= 5.11), tried
    for real once -- a throwaway user and mount namespace (in a child Python) mounts an
    overlay, copies a file up and makes a whiteout.  Cached per process."""
    if rootless in _support_cache:
        return _support_cache[rootless]
    reason: str | None = None
    try:
        with open("/proc/filesystems") as f:
            registered = any(line.split()[-1:] == ["overlay"] for line in f)
    except OSError:
        registered = False
    if not registered and not _overlay_loadable():
        reason = ("the kernel has no overlay filesystem (not in /proc/filesystems, no overlay module): "
                  "load it with `modprobe overlay` or use a kernel built with CONFIG_OVERLAY_FS")
    elif rootless and _kernel_version() < ROOTLESS_KERNEL:
        reason = (f"unprivileged overlay mounts need Linux >= 5.11 and this is {os.uname().release}: "
                  "run as root or copy the root filesystem instead")
    elif rootless:
        reason = _probe_rootless()
    _support_cache[rootless] = reason
    return reason


def _probe_rootless() -> str | None:
    scratch = tempfile.mkdtemp(prefix="pyoci-overlay-probe-")
    try:
        for name in ("l", "u", "w", "m"):
            os.mkdir(os.path.join(scratch, name), 0o755)
        for name in ("f", "g"):
            with open(os.path.join(scratch, "l", name), "w") as f:
                f.write("lower\n")
        try:
            result = subprocess.run([sys.executable, "-I", "-S", "-c", _PROBE, scratch,
                                     str(os.geteuid()), str(os.getegid())],
                                    capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
                                    check=False)
            said = (result.stdout.strip().splitlines() or [result.stderr.strip() or f"exit {result.returncode}"])[-1]
        except (OSError, subprocess.SubprocessError) as exc:
            said = f"the probe did not run: {exc}"
        if said == "ok":
            return None
        return (f"an unprivileged overlay mount in a user namespace failed here ({said}): enable user "
                "namespaces (sysctl user.max_user_namespaces, kernel.apparmor_restrict_unprivileged_userns=0) "
                "or run as root")
    finally:
        remove_tree(scratch)


def _open_lowerdir(path: str | os.PathLike, where: str) -> str:
    """The canonical path of the lower directory ``path``: opened without following a
    symbolic link as the last component (a link could be pointed elsewhere, e.g. at the
    host's "/", after it was checked), must be a directory; the path returned is where the
    descriptor really is, so no symbolic link is left in it."""
    text = os.path.abspath(os.fspath(path))
    escape_option_path(text, where)
    try:
        fd = os.open(text, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if os.path.islink(text):
            raise RootfsError("a lower directory is a symbolic link", where=where,
                              why=f"{text} -> {os.readlink(text)}: the layers of a snapshot are given as "
                                  "directories, so that a link changed later cannot swap a layer",
                              hint=f"pass the directory itself ({os.path.realpath(text)}) if you trust "
                                   "the link") from None
        raise RootfsError("a lower directory cannot be opened", where=where,
                          why=f"{text}: {exc.strerror or exc}",
                          hint="every lower directory must exist and be a directory") from None
    try:
        location = inroot.fd_location(fd)
    finally:
        os.close(fd)
    escape_option_path(location, where)
    return location


class Snapshot:
    """A writable root filesystem over read-only layers: ``path`` holds ``upper/`` (the
    container's changes, and whiteouts for what it deleted), ``work/`` (overlayfs's scratch
    directory, on the same filesystem as upper) and ``rootfs/`` (the empty mount point, the
    bundle's ``root.path``).  The overlay itself is mounted by the runtime inside the
    container's mount namespace (``apply_to``)."""

    def __init__(self, path: str | os.PathLike, lowerdirs: Sequence[str | os.PathLike]):
        self._path = Path(path)
        self._lowerdirs = tuple(Path(p) for p in lowerdirs)

    @property
    def path(self) -> Path:
        """The snapshot directory (absolute, without symbolic links)."""
        return self._path

    @property
    def lowerdirs(self) -> tuple[Path, ...]:
        """The read-only layers, top first (overlayfs's order)."""
        return self._lowerdirs

    @property
    def upper(self) -> Path:
        """The writable layer: what the container wrote, copied up or deleted (whiteouts)."""
        return self._path / "upper"

    @property
    def work(self) -> Path:
        """overlayfs's work directory (must be empty and on the upper's filesystem at mount)."""
        return self._path / "work"

    @property
    def rootfs(self) -> Path:
        """The mount point of the merged view: what ``apply_to`` makes ``root.path``."""
        return self._path / "rootfs"

    def __repr__(self) -> str:
        return f"Snapshot({str(self._path)!r}, lowerdirs={[str(p) for p in self._lowerdirs]!r})"

    @classmethod
    def create(cls, lowerdirs: Sequence[str | os.PathLike], dest: str | os.PathLike) -> Snapshot:
        """A new snapshot of ``lowerdirs`` (top layer first) in ``dest``, which must not exist
        or be an empty directory of this user (not a symbolic link); it is made 0700.  Each
        lower directory must be a directory (not a symbolic link to one); paths with ``,``
        are refused.  The upper directory gets the mode (and, as root, the owner) of the top
        layer's root: it is the root directory the container sees.  RootfsError otherwise,
        with nothing left behind."""
        if isinstance(lowerdirs, (str, os.PathLike)) or not lowerdirs:
            raise RootfsError("no lower directories", where="lowerdirs",
                              why="a snapshot needs a list of one or more read-only layers (top first)",
                              hint="e.g. Snapshot.create([rootfs_dir], dest)")
        layers = [_open_lowerdir(p, f"lowerdirs[{i}]") for i, p in enumerate(lowerdirs)]
        escape_option_path(os.path.abspath(dest), "dest")
        with fresh_directory(dest) as made:
            fd = open_own_directory(made, mode=0o700)
            try:
                location = inroot.fd_location(fd)
                escape_option_path(location, "dest")
                for layer in layers:
                    if inroot.is_inside(layer, location) or inroot.is_inside(location, layer):
                        raise RootfsError("a lower directory and the snapshot overlap", where=layer,
                                          why=f"the snapshot directory {location} is inside a layer or holds "
                                              "it: overlayfs refuses overlapping layers",
                                          hint="put the snapshot outside the layers")
                top = os.stat(layers[0])
                os.mkdir("upper", 0o700, dir_fd=fd)
                upper = os.open("upper", DIR_FLAGS, dir_fd=fd)
                try:
                    os.fchmod(upper, stat.S_IMODE(top.st_mode))
                    if os.geteuid() == 0:
                        os.fchown(upper, top.st_uid, top.st_gid)
                finally:
                    os.close(upper)
                os.mkdir("work", 0o700, dir_fd=fd)
                os.mkdir("rootfs", 0o755, dir_fd=fd)
                meta = os.open(METADATA, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                               0o600, dir_fd=fd)
                try:
                    os.write(meta, jsonio.dumps({"lowerdirs": layers}).encode())
                finally:
                    os.close(meta)
            except OSError as exc:
                raise RootfsError("cannot create the snapshot", where=os.fspath(made),
                                  why=exc.strerror or str(exc)) from None
            finally:
                os.close(fd)
        snapshot = cls(location, layers)
        if len(",".join(snapshot.mount_entry()["options"]).encode()) > MAX_OPTIONS_BYTES:
            snapshot.remove()
            raise RootfsError(f"the overlay options of {len(layers)} layers are too long", where="lowerdirs",
                              why=f"mount(2) takes at most {MAX_OPTIONS_BYTES} bytes of options",
                              hint="use fewer layers or shorter paths (e.g. symbolic-link-free short directories)")
        return snapshot

    @classmethod
    def open(cls, dest: str | os.PathLike) -> Snapshot:
        """The snapshot ``create`` made in ``dest`` (e.g. to remove it after a crash):
        ``dest`` must be a directory of this user holding the snapshot's metadata."""
        fd = open_own_directory(dest)
        try:
            location = inroot.fd_location(fd)
            try:
                meta = os.open(METADATA, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except OSError as exc:
                raise RootfsError("not a snapshot directory", where=os.fspath(dest),
                                  why=f"{METADATA}: {exc.strerror or exc}",
                                  hint="give the directory Snapshot.create made") from None
            try:
                data = jsonio.loads(sc.read_fd(meta).decode())
            except ValueError as exc:
                raise RootfsError("the snapshot's metadata is unreadable", where=os.path.join(location, METADATA),
                                  why=str(exc), hint="remove the directory by hand") from None
            finally:
                os.close(meta)
        finally:
            os.close(fd)
        layers = data.get("lowerdirs") if isinstance(data, dict) else None
        if not isinstance(layers, list) or not layers or not all(isinstance(p, str) for p in layers):
            raise RootfsError("the snapshot's metadata names no layers", where=os.path.join(location, METADATA),
                              hint="remove the directory by hand")
        return cls(location, layers)

    def mount_entry(self) -> dict:
        """The OCI mount of the merged view: ``{"destination": "/", "type": "overlay",
        "source": "overlay", "options": ["lowerdir=TOP:...:BOTTOM", "upperdir=...",
        "workdir=..."]}`` with the paths escaped as overlayfs reads them."""
        lower = ":".join(escape_option_path(p, f"lowerdirs[{i}]") for i, p in enumerate(self._lowerdirs))
        return {"destination": "/", "type": "overlay", "source": "overlay",
                "options": [f"lowerdir={lower}", f"upperdir={escape_option_path(self.upper, 'upper')}",
                            f"workdir={escape_option_path(self.work, 'work')}"]}

    def apply_to(self, config: dict) -> dict:
        """``config`` (changed in place, and returned) with ``root.path`` the snapshot's mount
        point and the overlay as ``mounts[0]``, replacing any mount on "/" it had; the runtime
        mounts it on the rootfs first, in the container's mount namespace, and the other mounts
        go into it.  ``root.readonly`` keeps working: the overlay is then read-only."""
        root = config.get("root")
        if not isinstance(root, dict):
            root = config["root"] = {}
        root["path"] = str(self.rootfs)
        others = [m for m in config.get("mounts") or []
                  if not (isinstance(m, dict) and isinstance(m.get("destination"), str)
                          and m["destination"].startswith("/") and os.path.normpath(m["destination"]) in ("/", "//"))]
        config["mounts"] = [self.mount_entry()] + others
        return config

    def remove(self) -> None:
        """Remove the snapshot directory: unmount anything mounted on its mount point in this
        mount namespace (the overlay is normally only in the container's, gone with it), then
        delete upper and work without following symbolic links (the container may have
        planted links to host paths there).  Call it after the container is deleted.
        Idempotent: a missing directory is fine."""
        try:
            fd = os.open(self._path, DIR_FLAGS)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise RootfsError("cannot open the snapshot directory", where=str(self._path),
                              why=exc.strerror or str(exc), hint="it must be a directory, not a symbolic link") \
                from None
        try:
            if inroot.fd_location(fd) != str(self._path):
                raise RootfsError("the snapshot directory moved", where=str(self._path),
                                  why=f"it is now {inroot.fd_location(fd)}: a directory on its path was renamed "
                                      "or replaced", hint="remove it by hand")
            self._unmount(fd)
        finally:
            os.close(fd)
        remove_tree(self._path)

    def _unmount(self, dir_fd: int) -> None:
        """Unmount (detached) every mount stacked on ``rootfs`` below ``dir_fd``."""
        for _ in range(64):
            try:
                point = os.open("rootfs", os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            except (FileNotFoundError, NotADirectoryError):
                return
            try:
                if not sc.is_mount_root(point) or sc.mount_id(point) == sc.mount_id(dir_fd):
                    return
                with contextlib.suppress(OSError):  # raced by someone else: look again
                    sc.umount2(f"/proc/self/fd/{point}", sc.MNT_DETACH)
            finally:
                os.close(point)
        raise RootfsError("cannot unmount the snapshot", where=str(self.rootfs),
                          why="mounts are still stacked on it", hint=f"run `umount -R {self.rootfs}`")
