"""Safe extraction of root filesystem and bundle tarballs.

A tarball is untrusted input: a member may try to write outside the destination (``../evil``,
``/etc/passwd``), plant a symbolic link that leads outside and then write *through* it, hard-link
a host file into the tree, or create device nodes.  ``safe_extract`` is the one extractor used by
``rootfs.from_tar`` and ``Bundle.unpack``.  Its rules, each refused with an error naming the member
and the rule:

1. member paths are relative and contain no ``..`` component;
2. no member is written through a symbolic link (nor under a non-directory) -- extraction never
   follows a link, so nothing can land outside the destination;
3. a symbolic link's relative target stays inside the destination, checked by name before
   anything is written and again on disk after extraction (chains of links); an absolute target
   is allowed only where the tree is a root filesystem (``absolute_links_under``), where it means
   a path inside the container, as for ``/lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/...``;
4. a hard link points to an earlier, non-directory member of the same archive;
5. character and block devices need root (CAP_MKNOD); only files, directories, links, devices
   and FIFOs are accepted.

Modes (setuid included), numeric owners (when root, as ``tar --numeric-owner``), timestamps,
links and device nodes are kept, unlike ``tarfile``'s ``filter="data"`` which drops them.  All
members are checked before the first byte is written; if extraction still fails, everything
extracted is removed.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

from pyoci_nb.errors import PyociError, RootfsError
from pyoci_nb.rootfs.tree import EscapesRoot, fresh_directory, is_root, resolve_in_root

_REGULAR_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE, tarfile.GNUTYPE_SPARSE)
_DEVICE_TYPES = (tarfile.CHRTYPE, tarfile.BLKTYPE)


@dataclass
class _Planned:
    member: tarfile.TarInfo
    parts: tuple[str, ...]          # the normalised relative path; () is the archive's root entry
    link_parts: tuple[str, ...] = ()  # hard link target, normalised

    @property
    def name(self) -> str:
        return "/".join(self.parts) or "."


def member_parts(name: str) -> tuple[str, ...] | None:
    """The components of a member or hard-link name with ``./`` and empty parts dropped; ``None``
    when the name is absolute or has a ``..`` component (rule 1)."""
    if name.startswith("/"):
        return None
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        return None
    return parts


def safe_extract(tarball: str | os.PathLike, dest: str | os.PathLike, *,
                 error: type[PyociError] = RootfsError,
                 absolute_links_under: str | None = "") -> Path:
    """Extract ``tarball`` (plain, gzip, bzip2 or xz) into ``dest``, a new or empty directory,
    following the module's rules; return ``dest``.

    ``absolute_links_under``: symbolic links with an absolute target are accepted only for
    members under this relative directory (``""``: everywhere, the whole tree is a root
    filesystem; ``None``: nowhere).  Violations raise ``error`` (``RootfsError`` or
    ``BundleError``) with ``where`` the tarball, the member named in the message and the rule in
    ``why``; nothing is left in ``dest``.
    """
    tarball = Path(tarball)
    if not tarball.is_file():
        raise error("tarball not found", where=str(tarball), hint="check the path")
    try:
        archive = tarfile.open(tarball, "r:*")
    except (tarfile.TarError, OSError) as e:
        raise error("not a readable tar archive", where=str(tarball), why=str(e)) from e
    with archive:
        try:
            members = archive.getmembers()
        except (tarfile.TarError, OSError, EOFError) as e:
            raise error("corrupt tar archive", where=str(tarball), why=str(e)) from e
        plan = _check(members, tarball, error, absolute_links_under)
        with fresh_directory(dest, error) as root:
            _Extractor(archive, root, tarball, error).run(plan)
    return root


def _refuse(error, tarball, member_name: str, why: str, hint: str | None = None):
    return error(f"refusing tar member {member_name!r}", where=str(tarball), why=why,
                 hint=hint or "the archive is unsafe or damaged; rebuild it from a trusted source")


def _check(members, tarball, error, absolute_links_under) -> list[_Planned]:
    """Rules 1-5 on names and types, before anything is written."""
    links_prefix = None if absolute_links_under is None else member_parts(absolute_links_under)
    kinds: dict[tuple[str, ...], str] = {(): "dir"}     # path -> "dir" | "link" | "other"
    plan: list[_Planned] = []
    as_root = is_root()
    for member in members:
        raw = member.name
        parts = member_parts(raw)
        if parts is None:
            why = ("member paths must be relative to the destination (no leading '/')" if raw.startswith("/")
                   else "member paths must not contain '..'")
            raise _refuse(error, tarball, raw, why)
        for depth in range(len(parts)):
            kind = kinds.get(parts[:depth])
            if kind == "link":
                raise _refuse(error, tarball, raw, f"it would be written through the symbolic link "
                                                   f"{'/'.join(parts[:depth])!r}; extraction never follows links")
            if kind == "other":
                raise _refuse(error, tarball, raw, f"its parent {'/'.join(parts[:depth])!r} is not a directory")
        entry = _Planned(member, parts)
        if not parts and not member.isdir():
            raise _refuse(error, tarball, raw, "the archive's root entry must be a directory")
        if member.isdir():
            if kinds.get(parts, "dir") != "dir":
                raise _refuse(error, tarball, raw, "a directory would replace an earlier non-directory member")
            kinds[parts] = "dir"
        else:
            if kinds.get(parts) == "dir":
                raise _refuse(error, tarball, raw, "a non-directory would replace an earlier directory member")
            if member.issym():
                _check_symlink(member, parts, links_prefix, tarball, error)
                kinds[parts] = "link"
            elif member.islnk():
                link_parts = member_parts(member.linkname)
                if link_parts is None:
                    raise _refuse(error, tarball, raw, f"hard link target {member.linkname!r} is outside the "
                                                       "destination (absolute or with '..')")
                if kinds.get(link_parts) not in ("other", "link") or link_parts == parts:
                    raise _refuse(error, tarball, raw, f"hard link target {member.linkname!r} is not an earlier "
                                                       "non-directory member of the archive")
                entry.link_parts = link_parts
                kinds[parts] = "other"
            elif member.type in _DEVICE_TYPES:
                if not as_root:
                    raise _refuse(error, tarball, raw, "device nodes can only be created by root (CAP_MKNOD)",
                                  hint="extract as root, or rebuild the archive without /dev entries")
                kinds[parts] = "other"
            elif member.type in _REGULAR_TYPES or member.isfifo():
                kinds[parts] = "other"
            else:
                raise _refuse(error, tarball, raw, f"unsupported member type {member.type!r}; only files, "
                                                   "directories, links, devices and FIFOs are accepted")
        plan.append(entry)
    return plan


def _check_symlink(member, parts, links_prefix, tarball, error) -> None:
    target = member.linkname
    if not target:
        raise _refuse(error, tarball, member.name, "symbolic link with an empty target")
    if target.startswith("/"):
        if links_prefix is None or parts[:len(links_prefix)] != links_prefix or len(parts) <= len(links_prefix):
            allowed = ("this archive names no root filesystem" if links_prefix is None
                       else f"they are only allowed under {'/'.join(links_prefix)}/, the root filesystem")
            raise _refuse(error, tarball, member.name,
                          f"symbolic link to the absolute path {target!r} would point outside the "
                          f"destination for any program on the host ({allowed})")
        return
    resolved = posixpath.normpath(posixpath.join(*parts[:-1], target) if len(parts) > 1 else target)
    if resolved == ".." or resolved.startswith("../"):
        raise _refuse(error, tarball, member.name,
                      f"symbolic link target {target!r} escapes the destination")


class _Extractor:
    def __init__(self, archive: tarfile.TarFile, root: Path, tarball: Path, error):
        self.archive = archive
        self.root = root
        self.tarball = tarball
        self.error = error
        self.as_root = is_root()
        self.directories: dict[tuple[str, ...], tarfile.TarInfo] = {}

    def run(self, plan: list[_Planned]) -> None:
        for entry in plan:
            try:
                self._extract(entry)
            except OSError as e:
                raise _refuse(self.error, self.tarball, entry.member.name,
                              f"cannot extract it: {e.strerror or e}", hint="check free space and permissions") from e
        # directories last, deepest first: a read-only directory must not block its children and
        # writing children must not change the directory's restored timestamp
        for parts in sorted(self.directories, key=len, reverse=True):
            self._metadata(self.root.joinpath(*parts), self.directories[parts])
        for entry in plan:
            if entry.member.issym() and not entry.member.linkname.startswith("/"):
                try:
                    resolve_in_root(self.root, entry.name, confine=False)
                except EscapesRoot:
                    raise _refuse(self.error, self.tarball, entry.member.name,
                                  f"symbolic link target {entry.member.linkname!r} escapes the destination "
                                  "through other links of the archive") from None

    def _parent(self, parts: tuple[str, ...]) -> None:
        """Create missing parent directories; never pass through a link (rule 2, checked on disk)."""
        for depth in range(1, len(parts)):
            path = self.root.joinpath(*parts[:depth])
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                os.mkdir(path, 0o755)
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise _refuse(self.error, self.tarball, "/".join(parts),
                              f"its parent {'/'.join(parts[:depth])!r} is not a directory on disk")

    def _extract(self, entry: _Planned) -> None:
        member, parts = entry.member, entry.parts
        if not parts:
            self.directories[()] = member
            return
        self._parent(parts)
        path = self.root.joinpath(*parts)
        if member.isdir():
            if not os.path.isdir(path) or os.path.islink(path):
                os.mkdir(path, 0o700)
            self.directories[parts] = member
            return
        if os.path.lexists(path):
            os.unlink(path)      # a later member replaces an earlier one, as with tar
        if member.issym():
            os.symlink(member.linkname, path)
        elif member.islnk():
            os.link(self.root.joinpath(*entry.link_parts), path, follow_symlinks=False)
            return               # same inode as its target: its metadata is the target's
        elif member.type in _DEVICE_TYPES:
            kind = stat.S_IFCHR if member.type == tarfile.CHRTYPE else stat.S_IFBLK
            os.mknod(path, kind | 0o600, os.makedev(member.devmajor, member.devminor))
        elif member.isfifo():
            os.mkfifo(path, 0o600)
        else:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as out:
                source = self.archive.extractfile(member)
                if source is not None:
                    shutil.copyfileobj(source, out, 1 << 20)
        self._metadata(path, member)

    def _metadata(self, path: Path, member: tarfile.TarInfo) -> None:
        """Numeric owner (root only; chown first, it clears setuid), mode, modification time."""
        if self.as_root:
            os.lchown(path, member.uid, member.gid)
        if not member.issym():
            os.chmod(path, member.mode & 0o7777)
        os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)


def from_tar(tarball: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Unpack a root filesystem tarball into ``dest`` (a new or empty directory) and return it.

    The tarball holds the root's contents at its top (``bin/``, ``etc/`` ..., as made by
    ``tar -C rootfs -c .``).  Unsafe members are refused (see the module's rules); symbolic links
    with absolute targets are kept, since inside a root filesystem they name paths of the container.
    """
    return safe_extract(tarball, dest, error=RootfsError, absolute_links_under="")
