"""A root filesystem made of programs copied from the host, with every shared library they need.

For each program: its ELF interpreter (``PT_INTERP``, e.g. ``/lib64/ld-linux-x86-64.so.2``) and
its ``DT_NEEDED`` libraries, recursively, found the way glibc's loader finds them (the object's
``DT_RPATH``/``DT_RUNPATH``, then the directories of ``/etc/ld.so.conf``, then the default
directories), keeping only libraries of the same ELF class and machine.  Every file is copied to
the *same path* it has on the host, and every symbolic link met on the way (``/lib64 -> usr/lib64``
of merged /usr, ``libc.so.6 -> libc-2.36.so`` ...) is reproduced as a link, so the loader finds
things exactly where the program expects them.

Python needs more than its libraries: for a program whose real name is ``pythonX.Y`` the standard
library ``<prefix>/lib/pythonX.Y`` is copied too (without site-packages, dist-packages,
``__pycache__``, the static-library ``config-*`` directory and the test suite), plus the libraries
its extension modules (``lib-dynload``) need.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from pyoci_nb.errors import RootfsError
from pyoci_nb.rootfs.elf import ElfInfo, is_elf, read_elf
from pyoci_nb.rootfs.skeleton import populate_skeleton
from pyoci_nb.rootfs.tree import MAX_SYMLINKS, fresh_directory

#: Where programs are looked up: the distribution's directories first, so ``python3`` is Debian's
#: ``/usr/bin/python3`` even when a pyenv or virtualenv python3 comes first in $PATH.
HOST_PROGRAM_PATH = ("/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin")

#: What ``from_host(dest)`` copies when no list is given: a shell, coreutils basics and Python.
DEFAULT_HOST_PROGRAMS = ("sh", "bash", "ls", "cat", "echo", "env", "id", "mkdir", "rm", "cp", "mv",
                         "ln", "sleep", "grep", "hostname", "python3")

#: Library directories the loader searches when neither the object nor ld.so.conf names one.
DEFAULT_LIBRARY_DIRS = ("/lib64", "/usr/lib64", "/lib", "/usr/lib")

#: Top-level directories that merged-/usr systems make symbolic links (``/lib64 -> usr/lib64``).
MERGED_USR_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")

#: Parts of a Python standard library directory that a container running Python does not need.
PYTHON_STDLIB_EXCLUDE = ("site-packages", "dist-packages", "__pycache__", "config-*", "test",
                         "idlelib", "turtledemo")

_PYTHON_NAME = re.compile(r"^python(\d+)\.(\d+)$")


def find_host_program(name: str) -> str:
    """The host path of program ``name`` (searched in ``HOST_PROGRAM_PATH``), or ``name`` itself
    when it is an absolute path; raises ``RootfsError`` when it does not exist."""
    if name.startswith("/"):
        if os.path.isfile(name) and os.access(name, os.X_OK):
            return name
    elif "/" not in name:
        for directory in HOST_PROGRAM_PATH:
            candidate = os.path.join(directory, name)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
    raise RootfsError(f"program {name!r} not found on the host", where=name,
                      why=f"looked in {':'.join(HOST_PROGRAM_PATH)}" if "/" not in name
                      else "not an executable file",
                      hint="install it, or pass an absolute path")


def library_search_dirs() -> list[str]:
    """The loader's system directories: those of /etc/ld.so.conf (``include`` globs followed),
    then ``DEFAULT_LIBRARY_DIRS``; duplicates dropped."""
    dirs: list[str] = []

    def read_conf(path: str, depth: int = 0) -> None:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError:
            return
        for line in lines:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            if line.startswith("include") and depth < 8:
                for pattern in line.split()[1:]:
                    pattern = pattern if pattern.startswith("/") else os.path.join(os.path.dirname(path), pattern)
                    for included in sorted(glob.glob(pattern)):
                        read_conf(included, depth + 1)
            elif line.startswith("/"):
                dirs.append(line.split()[0].rstrip("/") or "/")

    read_conf("/etc/ld.so.conf")
    dirs.extend(DEFAULT_LIBRARY_DIRS)
    return list(dict.fromkeys(dirs))


class HostCopier:
    """Copies host files into ``dest`` at their host paths, reproducing symbolic links on the way
    and pulling in ELF dependencies.  One instance per root filesystem (it remembers what it copied)."""

    def __init__(self, dest: Path):
        self.dest = dest
        self.system_dirs = library_search_dirs()
        self._copied: set[str] = set()
        self._elf_done: set[str] = set()
        self._elf_cache: dict[str, ElfInfo | None] = {}

    def _elf(self, path: str) -> ElfInfo | None:
        """``read_elf(path)`` for an ELF file, ``None`` for anything else; read once per path."""
        if path not in self._elf_cache:
            self._elf_cache[path] = read_elf(path) if os.path.isfile(path) and is_elf(path) else None
        return self._elf_cache[path]

    def mirror_top_level_links(self) -> None:
        """Make ``dest/bin``, ``dest/lib64`` ... symbolic links where the host has them (merged /usr)."""
        for name in MERGED_USR_LINKS:
            host = "/" + name
            if os.path.islink(host) and not os.path.lexists(self.dest / name):
                os.symlink(os.readlink(host), self.dest / name)

    def copy_path(self, host_path: str) -> str:
        """Copy ``host_path`` into ``dest`` at the same path, reproducing each symbolic link met
        (in directories or at the end) and copying what it points to.  Returns the real host path
        of the file finally copied.  Directories on the way are created with the host's modes."""
        path = os.path.normpath(host_path)
        for _ in range(MAX_SYMLINKS):
            current = "/"
            parts = [p for p in path.split("/") if p]
            for index, part in enumerate(parts):
                host = os.path.join(current, part)
                inside = self.dest / host.lstrip("/")
                st = os.lstat(host)
                if os.path.islink(host):
                    target = os.readlink(host)
                    if not os.path.lexists(inside):
                        os.symlink(target, inside)
                    base = target if target.startswith("/") else os.path.join(current, target)
                    path = os.path.normpath(os.path.join(base, *parts[index + 1:]))
                    break
                if index < len(parts) - 1 or os.path.isdir(host):
                    if not os.path.lexists(inside):
                        inside.mkdir()
                        os.chmod(inside, st.st_mode & 0o7777)
                elif host not in self._copied:
                    shutil.copy2(host, inside, follow_symlinks=False)
                    self._copied.add(host)
                current = host
            else:
                return path
        raise RootfsError("too many levels of symbolic links", where=host_path,
                          why=f"more than {MAX_SYMLINKS} links")

    def copy_program(self, host_path: str) -> str:
        """Copy an executable and, if it is a dynamically linked ELF file, everything it loads."""
        real = self.copy_path(host_path)
        if self._elf(real) is not None:
            self.copy_elf_dependencies(real)
        return real

    def copy_elf_dependencies(self, real_path: str) -> None:
        """Copy the ELF interpreter and the ``DT_NEEDED`` libraries of ``real_path``, recursively."""
        pending = [real_path]
        while pending:
            path = pending.pop()
            if path in self._elf_done:
                continue
            self._elf_done.add(path)
            info = self._elf(path)
            if info is None:
                continue
            if info.interpreter:
                pending.append(self.copy_path(info.interpreter))
            for name in info.needed:
                library = self.find_library(name, info)
                if library is None:
                    raise RootfsError(f"shared library {name} not found", where=path,
                                      why="needed (DT_NEEDED) by this program but in none of "
                                          + ":".join(info.search_dirs() + self.system_dirs),
                                      hint="install the package that provides it")
                pending.append(self.copy_path(library))

    def find_library(self, name: str, requester: ElfInfo) -> str | None:
        """The host path of library ``name`` as the loader would pick it for ``requester``."""
        if "/" in name:
            return name if os.path.isfile(name) else None
        for directory in requester.search_dirs() + self.system_dirs:
            candidate = os.path.join(directory, name)
            info = self._elf(candidate)
            if info is not None and info.compatible_with(requester):
                return candidate
        return None

    def copy_tree(self, host_dir: str, exclude: Iterable[str] = ()) -> None:
        """Copy a host directory tree (names matching a glob in ``exclude`` are skipped at any
        depth), then the libraries of every ELF shared object in it."""
        import fnmatch

        patterns = tuple(exclude)
        self.copy_path(host_dir)
        real_top = os.path.realpath(host_dir)
        for dirpath, dirnames, filenames in os.walk(real_top):
            dirnames[:] = sorted(d for d in dirnames if not any(fnmatch.fnmatch(d, p) for p in patterns))
            for name in sorted(filenames) + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                if any(fnmatch.fnmatch(name, p) for p in patterns):
                    continue
                real = self.copy_path(os.path.join(dirpath, name))
                if (name.endswith(".so") or ".so." in name) and self._elf(real) is not None:
                    self.copy_elf_dependencies(real)
            for d in dirnames:
                inside = self.dest / os.path.join(dirpath, d).lstrip("/")
                if not os.path.lexists(inside):
                    self.copy_path(os.path.join(dirpath, d))

    def copy_program_data(self, real_program: str) -> None:
        """Copy what a program needs besides libraries (today: Python's standard library)."""
        match = _PYTHON_NAME.match(os.path.basename(real_program))
        if not match:
            return
        prefix = os.path.dirname(os.path.dirname(real_program))
        stdlib = os.path.join(prefix, "lib", f"python{match[1]}.{match[2]}")
        if not os.path.isfile(os.path.join(stdlib, "os.py")):
            raise RootfsError("Python standard library not found", where=stdlib,
                              why=f"{real_program} finds its standard library there (landmark os.py)",
                              hint="install the matching libpython3.X-stdlib package")
        self.copy_tree(stdlib, PYTHON_STDLIB_EXCLUDE)


def from_host(dest: str | os.PathLike, programs: Iterable[str] | None = None) -> Path:
    """Build a root filesystem in ``dest`` (a new or empty directory) from host programs.

    ``programs`` are names looked up in ``HOST_PROGRAM_PATH`` (``"sh"``, ``"python3"``) or absolute
    paths; each is copied with its ELF interpreter and shared libraries (recursively) and, for
    Python, its standard library.  Without ``programs``, ``DEFAULT_HOST_PROGRAMS`` that exist on the
    host are copied.  The usual mount points and /etc files are added (see ``skeleton``).
    Returns ``dest`` as a ``Path``.  Raises ``RootfsError`` naming a missing program or library.
    """
    if programs is None:
        names = [p for p in DEFAULT_HOST_PROGRAMS if _exists_on_host(p)]
    else:
        names = [programs] if isinstance(programs, str) else list(programs)
    paths = [find_host_program(name) for name in names]
    with fresh_directory(dest) as root:
        copier = HostCopier(root)
        copier.mirror_top_level_links()
        for path in paths:
            real = copier.copy_program(path)
            copier.copy_program_data(real)
        populate_skeleton(root)
    return root


def _exists_on_host(name: str) -> bool:
    try:
        find_host_program(name)
        return True
    except RootfsError:
        return False
