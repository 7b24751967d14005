"""Directory-tree helpers shared by the root filesystem builders and bundles.

* ``fresh_directory(dest)`` -- a context manager that gives a builder a new or empty directory and
  removes everything the builder wrote when it fails, so a failed build leaves nothing behind.
* ``resolve_in_root(root, path)`` -- resolve a path the way the container will see it: symbolic
  links are followed *inside* ``root`` (an absolute link target starts again at ``root``, ``..``
  stops at ``root``), like runc's securejoin.  Used to look at a rootfs from the host safely;
  the resolver is the runtime's (``pyoci_nb.runtime.inroot``): one for the whole project.
* ``copy_tree(src, dst)`` -- a faithful copy of a root filesystem: modes, owners (as root),
  timestamps, symbolic links, hard links, device nodes and FIFOs.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

from pyoci_nb.errors import PyociError, RootfsError
from pyoci_nb.runtime import inroot
from pyoci_nb.runtime.inroot import MAX_SYMLINKS, EscapesRoot

__all__ = ["MAX_SYMLINKS", "EscapesRoot", "copy_tree", "fresh_directory", "is_root", "remove_tree",
           "resolve_in_root"]

#: Flags to open a directory as a descriptor without following a symbolic link.
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def is_root() -> bool:
    """Whether this process may chown and mknod (effective uid 0)."""
    return os.geteuid() == 0


@contextlib.contextmanager
def fresh_directory(dest: str | os.PathLike, error: type[PyociError] = RootfsError) -> Iterator[Path]:
    """Yield ``dest`` as an absolute ``Path`` to build into; it must be missing (it is created, with
    missing parents) or an empty directory.

    If the body raises, everything written into ``dest`` is removed (and ``dest`` and the parents
    this function created), then the exception propagates.
    """
    dest = Path(dest).absolute()
    created: Path | None = None     # the topmost directory this function made (parents included)
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise error("destination is not a directory", where=str(dest),
                    why="a root filesystem or bundle is built into a new or empty directory",
                    hint="choose a path that does not exist yet")
    if dest.exists():
        if any(dest.iterdir()):
            raise error("destination is not empty", where=str(dest),
                        why="building into a non-empty directory would mix old and new files",
                        hint="remove it first or choose a new path")
    else:
        created = dest
        while not created.parent.exists():
            created = created.parent
        try:
            dest.mkdir(parents=True)
        except OSError as e:
            raise error("cannot create the destination", where=str(dest), why=e.strerror or str(e)) from e
    try:
        yield dest
    except BaseException:
        if created is not None:
            remove_tree(created)
        else:
            for child in list(dest.iterdir()):
                remove_tree(child)
        raise


def open_own_directory(path: str | os.PathLike, error: type[PyociError] = RootfsError,
                       mode: int | None = None) -> int:
    """A descriptor of the directory ``path`` (opened without following a symbolic link), after
    checking that it belongs to this process's effective user and, with ``mode``, setting its
    permissions through the descriptor.  Anything else raises ``error``: a directory of another
    user could be entered or changed by that user while a tree is built in it."""
    try:
        fd = os.open(path, DIR_FLAGS)
    except OSError as e:
        raise error("cannot open the destination directory", where=str(path),
                    why=e.strerror or str(e), hint="it must be a directory, not a symbolic link") from e
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid():
            raise error("destination is owned by someone else", where=str(path),
                        why=f"it belongs to uid {st.st_uid}, who could reach or replace what is built in it",
                        hint="remove it and let pyoci_nb create the directory, or choose another path")
        if mode is not None:
            os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def remove_tree(path: str | os.PathLike) -> None:
    """Remove ``path`` (file, link or directory tree) without following symbolic links, also when
    some directories were left without write permission."""
    path = Path(path)
    if not os.path.lexists(path):
        return
    if path.is_symlink() or not path.is_dir():
        path.unlink()
        return

    def make_writable(directory: str) -> None:
        """chmod 0700 through an O_PATH descriptor opened without following a symbolic link."""
        with contextlib.suppress(OSError):
            fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                os.chmod(f"/proc/self/fd/{fd}", 0o700)
            finally:
                os.close(fd)

    def make_writable_and_retry(function, failed_path, exc_info):
        if function not in (os.rmdir, os.unlink, os.remove):
            raise exc_info[1]  # a directory that could not be opened or listed: nothing to retry
        make_writable(os.path.dirname(failed_path))
        make_writable(failed_path)
        function(failed_path)

    # make every directory writable first, each before os.walk lists it: shutil.rmtree cannot
    # empty a 0o555 directory as non-root, nor enter a 0o000 one (overlayfs's work/work)
    make_writable(str(path))
    for dirpath, dirnames, _files in os.walk(path):
        for name in dirnames:
            make_writable(os.path.join(dirpath, name))
    shutil.rmtree(path, onerror=make_writable_and_retry)


def resolve_in_root(root: str | os.PathLike, path: str, *, confine: bool = True) -> Path:
    """The host path of ``path`` as seen from inside ``root``, resolved by the runtime's
    resolver (``pyoci_nb.runtime.inroot``, the one the container's init uses) through file
    descriptors: components one by one, each symbolic link read and followed *within* ``root``
    (an absolute target starts again at ``root``).  With ``confine=True`` (the container's view)
    ``..`` at ``root`` stays at ``root``, as it does after chroot/pivot_root.  With
    ``confine=False`` (the view of a program on the host following the links) climbing above
    ``root`` raises ``EscapesRoot`` instead, and an absolute link target ends the walk (its
    meaning is in-root; the host view is not checked further).  Below a missing component the
    rest is appended (with ``..`` applied).  More than ``MAX_SYMLINKS`` links raise
    ``RootfsError``."""
    root_text = os.path.abspath(root)
    try:
        return Path(inroot.resolve_in_root(root_text, path, confine=confine))
    except OSError as e:
        if e.errno != errno.ELOOP:
            raise
        raise RootfsError("too many levels of symbolic links", where=os.path.join(root_text, path.lstrip("/")),
                          why=f"more than {MAX_SYMLINKS} links while resolving inside {root_text}") from None


def copy_tree(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy the directory tree ``src`` to ``dst`` (which must not exist) keeping everything a root
    filesystem needs: file modes (setuid included), numeric owners (when root), timestamps,
    symbolic links as links, hard links as hard links, device nodes (when root) and FIFOs.
    Sockets are skipped (they only mean something to a running process)."""
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise RootfsError("not a directory", where=str(src), why="copy_tree copies a directory tree")
    as_root = is_root()
    hardlinks: dict[tuple[int, int], Path] = {}
    directories: list[tuple[Path, os.stat_result]] = []

    def copy_entry(source: Path, target: Path) -> None:
        st = os.lstat(source)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            os.mkdir(target, 0o700)
            directories.append((target, st))
            with os.scandir(source) as entries:
                names = sorted(e.name for e in entries)
            for name in names:
                copy_entry(source / name, target / name)
            return
        if stat.S_ISSOCK(mode):
            return
        if st.st_nlink > 1:
            first = hardlinks.get((st.st_dev, st.st_ino))
            if first is not None:
                os.link(first, target, follow_symlinks=False)
                return
            hardlinks[(st.st_dev, st.st_ino)] = target
        if stat.S_ISLNK(mode):
            os.symlink(os.readlink(source), target)
        elif stat.S_ISREG(mode):
            shutil.copyfile(source, target, follow_symlinks=False)
        elif stat.S_ISFIFO(mode):
            os.mkfifo(target, 0o600)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            if not as_root:
                raise RootfsError("cannot copy a device node without root", where=str(source),
                                  why="mknod needs CAP_MKNOD", hint="run as root")
            os.mknod(target, stat.S_IFMT(mode) | 0o600, st.st_rdev)
        _copy_metadata(target, st, as_root)

    copy_entry(src, dst)
    for directory, st in reversed(directories):
        _copy_metadata(directory, st, as_root)


def _copy_metadata(target: Path, st: os.stat_result, as_root: bool) -> None:
    """Owner first (chown clears setuid bits), then mode, then timestamps."""
    if as_root:
        os.lchown(target, st.st_uid, st.st_gid)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(target, stat.S_IMODE(st.st_mode))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
