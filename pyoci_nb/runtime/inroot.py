"""Paths inside a root, resolved through file descriptors: the one resolver of the project.

A container's paths (mount destinations, devices, masked and read-only paths) and a root
filesystem looked at from the host (bundle checks, tar extraction) are resolved the way a
process chrooted into the root would see them: symbolic links are followed *inside* the root
(an absolute link target starts again at the root, ``..`` stops at it).

Nothing here goes back to a path string once it has checked it: every step holds a file
descriptor and the next step is relative to it, so a directory swapped for a symlink while we
work (another container sharing a volume, CVE-2021-30465) cannot send us anywhere else.

* ``open_in_root(root_fd, path)``: openat2(2) with RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
  when the kernel has it (Linux 5.6; one system call), else -- and when the path does not
  exist yet -- ``walk``;
* ``walk(root_fd, path)``: component by component, each opened O_PATH | O_NOFOLLOW relative
  to the previous one's fd, each symlink read through its own fd;
* ``Resolved.create(like_dir)``: makes what is missing relative to the deepest existing
  directory's fd (mkdirat/mknodat), re-opening each new component with O_NOFOLLOW;
* ``resolve_in_root(root, path)``: the host path of ``path`` inside ``root`` (a string, for
  looking at a root filesystem from the host: ``pyoci_nb.rootfs.tree.resolve_in_root``).

Standard library only (the CLI's create path imports it).
"""

from __future__ import annotations

import errno
import os
import stat

from pyoci_nb.runtime import syscalls as sc

#: Linux's limit on symbolic links followed while resolving one path (ELOOP after that)
MAX_SYMLINKS = 40

_O_PATH = os.O_PATH | os.O_CLOEXEC
_O_NOFOLLOW = _O_PATH | os.O_NOFOLLOW

#: is openat2(2) usable? (None: not tried yet)
_have_openat2: bool | None = None


class EscapesRoot(Exception):
    """``walk(..., confine=False)`` met a ``..`` that climbs above the root."""


def _split(path: str) -> list[str]:
    return [p for p in path.split("/") if p and p != "."]


class Resolved:
    """Where a resolution ended: ``fd`` (O_PATH, owned) is the deepest component that exists,
    ``missing`` the components still to create below it (none: ``fd`` is the path itself),
    ``names`` the components from the root to ``fd`` (None when openat2 answered)."""

    __slots__ = ("fd", "names", "missing")

    def __init__(self, fd: int, names: list[str] | None, missing: list[str]):
        self.fd = fd
        self.names = names
        self.missing = missing

    @property
    def exists(self) -> bool:
        """Whether the whole path exists."""
        return not self.missing

    def detach(self) -> int:
        """Hand the fd over to the caller (``close`` leaves it open)."""
        fd, self.fd = self.fd, -1
        return fd

    def close(self) -> None:
        """Close the fd (unless detached)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Resolved:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def create(self, like_dir: bool, mode: int = 0o755) -> int:
        """Create the missing components -- directories, the last one a directory
        (``like_dir``) or an empty regular file -- each with mkdirat/mknodat relative to its
        parent's fd and opened O_NOFOLLOW right after, so that a name swapped for a symlink
        meanwhile fails (ELOOP/ENOTDIR) instead of being followed.  Returns ``self.fd``, now
        the last component's."""
        last = len(self.missing) - 1
        for i, name in enumerate(self.missing):
            as_dir = i < last or like_dir
            try:
                if as_dir:
                    os.mkdir(name, mode, dir_fd=self.fd)
                else:
                    os.mknod(name, stat.S_IFREG | 0o644, dir_fd=self.fd)
            except FileExistsError:
                pass  # made meanwhile: the open below checks what it is
            fd = os.open(name, _O_NOFOLLOW | (os.O_DIRECTORY if as_dir else 0), dir_fd=self.fd)
            if not as_dir and stat.S_ISLNK(os.fstat(fd).st_mode):
                os.close(fd)
                raise OSError(errno.ELOOP, f"{name} became a symbolic link while it was created", name)
            os.close(self.fd)
            self.fd = fd
            if self.names is not None:
                self.names.append(name)
        self.missing = []
        return self.fd


def walk(root_fd: int, path: str, *, confine: bool = True, follow_final: bool = True) -> Resolved:
    """Resolve ``path`` inside the directory ``root_fd`` one component at a time (see the
    module docstring).  ``confine=False`` is the view of a program on the host following the
    links: a ``..`` above the root raises ``EscapesRoot`` and an absolute link target ends the
    walk (its meaning is in-root; the host view is not checked further).
    ``follow_final=False`` leaves a final symlink unfollowed (``fd`` is the link).  Below a
    missing component nothing exists: the rest is kept, with ``..`` applied to it.  More than
    MAX_SYMLINKS links raise OSError(ELOOP)."""
    pending = _split(path)
    pending.reverse()
    stack: list[int] = []       # fds of the components in names (below the root)
    names: list[str] = []
    missing: list[str] = []
    links = 0
    try:
        while pending:
            part = pending.pop()
            if part == "..":
                if missing:
                    missing.pop()
                elif names:
                    names.pop()
                    os.close(stack.pop())
                elif not confine:
                    raise EscapesRoot(path)
                continue
            if missing:
                missing.append(part)
                continue
            try:
                fd = os.open(part, _O_NOFOLLOW, dir_fd=stack[-1] if stack else root_fd)
            except (FileNotFoundError, NotADirectoryError):
                missing.append(part)
                continue
            if (pending or follow_final) and stat.S_ISLNK(os.fstat(fd).st_mode):
                try:
                    target = os.readlink("", dir_fd=fd)
                finally:
                    os.close(fd)
                links += 1
                if links > MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
                if target.startswith("/"):
                    if not confine:
                        break
                    while stack:
                        os.close(stack.pop())
                    names.clear()
                pending.extend(reversed(_split(target)))
                continue
            stack.append(fd)
            names.append(part)
        top = stack.pop() if stack else os.open(".", _O_PATH | os.O_DIRECTORY, dir_fd=root_fd)
        return Resolved(top, names, missing)
    finally:
        for fd in stack:
            os.close(fd)


def open_in_root(root_fd: int, path: str) -> Resolved:
    """Resolve ``path`` inside ``root_fd``, following every symlink inside the root: one
    openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) when the kernel has it and the path
    exists, else ``walk`` (which also says what is missing, and reads a magic link of /proc
    as the path it shows, inside the root, like any other link)."""
    global _have_openat2
    if _have_openat2 is not False:
        relative = path.lstrip("/") or "."
        for _ in range(8):
            try:
                fd = sc.openat2(root_fd, relative, _O_PATH,
                                sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_MAGICLINKS)
            except OSError as exc:
                if exc.errno == errno.EAGAIN:  # a rename raced with a ".." lookup: again
                    continue
                if exc.errno in (errno.ENOSYS, errno.E2BIG, errno.EPERM):  # old kernel, seccomp
                    _have_openat2 = False
                elif exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EXDEV):
                    raise
                break
            _have_openat2 = True
            return Resolved(fd, None, [])
    return walk(root_fd, path)


def resolve_in_root(root: str, path: str, *, confine: bool = True) -> str:
    """The host path of ``path`` as seen inside the directory ``root`` (``walk``'s rules;
    missing components are appended as they are, with ``..`` applied)."""
    root_text = os.path.abspath(root)
    root_fd = os.open(root_text, _O_PATH | os.O_DIRECTORY)
    try:
        with walk(root_fd, path, confine=confine) as resolved:
            return os.path.join(root_text, *resolved.names, *resolved.missing)
    finally:
        os.close(root_fd)


def fd_location(fd: int) -> str:
    """Where ``fd`` is, as this process sees the file system (readlink /proc/self/fd/N)."""
    return os.readlink(f"/proc/self/fd/{fd}")


def is_inside(location: str, root: str) -> bool:
    """Whether the path ``location`` is ``root`` or below it."""
    return root == "/" or location == root or location.startswith(root.rstrip("/") + "/")
