"""Safe extraction of root filesystem and bundle tarballs.

A tarball is untrusted input: a member may try to write outside the destination (``../evil``,
``/etc/passwd``), plant a symbolic link that leads outside and then write *through* it, hard-link
a host file into the tree, create device nodes, change the destination directory itself, or
simply be enormous.  ``safe_extract`` is the one extractor used by ``rootfs.from_tar`` and
``Bundle.unpack``.  Its rules, each refused with an error naming the member and the rule:

1. member paths are relative and contain no ``..`` component;
2. no member is written through a symbolic link (nor under a non-directory) -- extraction never
   follows a link, so nothing can land outside the destination;
3. a symbolic link's relative target stays inside the destination, checked by name before
   anything is written and again on disk after extraction (chains of links); an absolute target
   is allowed only where the tree is a root filesystem (``absolute_links_under``), where it means
   a path inside the container, as for ``/lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/...``;
4. a hard link points to an earlier, non-directory member of the same archive;
5. character and block devices need root (CAP_MKNOD); only files, directories, links, devices
   and FIFOs are accepted;
6. the archive's own root entry (``.``) never changes the destination directory: the destination
   is created (or an empty one of the caller's is taken) with ``mode`` (private, 0700, unless the
   caller asks otherwise) and owned by the caller, so other host users cannot reach set-user-ID
   programs or device nodes inside it;
7. limits the caller can raise: ``max_bytes`` of file data (sparse files count only their data)
   and ``max_entries`` members, checked on the headers while reading them, before anything is
   written -- a decompression bomb stops at its first oversized header.

Extraction works through directory file descriptors: every component is opened with
``O_NOFOLLOW`` relative to its parent's descriptor and every entry is created with ``*at()``
calls, so a symbolic link appearing during extraction cannot redirect a write.  GNU sparse
members stay sparse (only their data regions are written).  Modes (setuid included), numeric
owners (when root, as ``tar --numeric-owner``), timestamps, links and device nodes are kept inside
the tree, unlike ``tarfile``'s ``filter="data"`` which drops them.  All members are checked before
the first byte is written; if extraction still fails, everything extracted is removed.

OCI image layers (image-spec ``layer.md``) are tar archives with *whiteouts*: an empty member
``DIR/.wh.NAME`` says that ``DIR/NAME`` of the layers below is deleted, and ``DIR/.wh..wh..opq``
(an *opaque* whiteout) that every entry of ``DIR`` in the layers below is; whiteouts apply only to
lower layers, never to siblings in the same layer.  ``whiteouts=`` turns their handling on:

* ``"overlay"`` (``safe_extract``, a new directory per layer): written as overlayfs expects in a
  lower directory -- ``NAME`` becomes a character device 0/0 and an opaque directory gets the
  ``trusted.overlay.opaque=y`` extended attribute (root only; see ``overlayfs.rst``);
* ``"apply"`` (``apply_layer``, a flat root filesystem made of the layers in order): the whited-out
  entries of the tree below are removed first, then the layer's members are written over the tree,
  an entry of another kind than the member's being replaced as ``umoci unpack`` does.

Other ``.wh..wh.*`` names (aufs metadata) are skipped.  Extended attributes (pax ``SCHILY.xattr``)
are kept when ``xattrs=True`` and the caller is root, but only ``user.*`` and
``security.capability``: an image must not set ``trusted.overlay.*`` (it would redirect overlayfs).
"""

from __future__ import annotations

import errno
import os
import posixpath
import shutil
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pyoci_nb.errors import PyociError, RootfsError
from pyoci_nb.rootfs.tree import DIR_FLAGS, EscapesRoot, fresh_directory, is_root, open_own_directory, resolve_in_root

_REGULAR_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE, tarfile.GNUTYPE_SPARSE)
_DEVICE_TYPES = (tarfile.CHRTYPE, tarfile.BLKTYPE)

#: Default limit on the file data an extraction writes (sparse files: their data regions only).
DEFAULT_MAX_BYTES = 4 << 30
#: Default limit on the number of members of an archive.
DEFAULT_MAX_ENTRIES = 500_000
#: Extended headers (pax records, GNU long names) larger than this are refused: tarfile reads
#: them into memory whole.
MAX_HEADER_BYTES = 1 << 20



def size_text(n: int) -> str:
    """``n`` bytes for a message: ``4 GiB``, ``1.5 MiB``, ``512 bytes``."""
    for shift, unit in ((40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")):
        if n >= 1 << shift:
            value = n / (1 << shift)
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"


class _BoundedTarInfo(tarfile.TarInfo):
    """A ``TarInfo`` that refuses extended headers over ``MAX_HEADER_BYTES`` before tarfile reads
    them into memory (a pax header can claim gigabytes)."""

    def _proc_member(self, tarfile_):
        if self.type in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE,
                         tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE) and self.size > MAX_HEADER_BYTES:
            raise tarfile.HeaderError(f"an extended header of {size_text(self.size)} (more than "
                                      f"{size_text(MAX_HEADER_BYTES)})")
        return super()._proc_member(tarfile_)


#: The prefix of an OCI whiteout member's base name, and the name of an opaque whiteout.
WHITEOUT_PREFIX = ".wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"
#: The extended attribute overlayfs reads to make a directory of an upper/lower layer opaque.
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
_KEPT_XATTRS = ("user.", "security.capability")


@dataclass
class _Planned:
    member: tarfile.TarInfo
    parts: tuple[str, ...]          # the normalised relative path; () is the archive's root entry
    link_parts: tuple[str, ...] = ()  # hard link target, normalised
    whiteout: str | None = None     # "entry" (parts = the deleted path) or "opaque" (parts = the directory)

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
                 absolute_links_under: str | None = "",
                 mode: int = 0o700,
                 max_bytes: int = DEFAULT_MAX_BYTES,
                 max_entries: int = DEFAULT_MAX_ENTRIES,
                 verify: Callable[[int, Path], None] | None = None,
                 whiteouts: str | None = None, xattrs: bool = False) -> Path:
    """Extract ``tarball`` (plain, gzip, bzip2 or xz) into ``dest``, a new or empty directory
    owned by the caller, following the module's rules; return ``dest``.

    ``absolute_links_under``: symbolic links with an absolute target are accepted only for
    members under this relative directory (``""``: everywhere, the whole tree is a root
    filesystem; ``None``: nowhere).  ``mode``: the permissions of ``dest`` itself (the archive's
    ``.`` entry never changes them).  ``max_bytes``/``max_entries``: the limits of rule 7.
    ``verify(dest_fd, dest)``, when given, runs after extraction with a descriptor of ``dest``
    and may raise to refuse the result.  ``whiteouts``: ``None`` (``.wh.`` names are ordinary
    files) or ``"overlay"`` (an OCI layer as an overlayfs lower directory, see the module's
    docstring); ``xattrs``: keep the allowed extended attributes.  Violations raise ``error``
    (``RootfsError`` or ``BundleError``) with ``where`` the tarball, the member named in the
    message and the rule in ``why``; nothing is left in ``dest``.
    """
    if whiteouts not in (None, "overlay"):
        raise ValueError(f"whiteouts={whiteouts!r}: None or 'overlay' (apply_layer applies a layer)")
    tarball = Path(tarball)
    if not tarball.is_file():
        raise error("tarball not found", where=str(tarball), hint="check the path")
    with open_archive(tarball, error) as archive:
        plan = _check(read_members(archive, tarball, error, max_bytes, max_entries), tarball, error,
                      absolute_links_under, whiteouts)
        with fresh_directory(dest, error) as root:
            root_fd = open_own_directory(root, error, mode)
            try:
                _Extractor(archive, root, root_fd, tarball, error, whiteouts, xattrs).run(plan)
                if verify is not None:
                    verify(root_fd, root)
            finally:
                os.close(root_fd)
    return root


def apply_layer(tarball: str | os.PathLike, dest: str | os.PathLike, *,
                error: type[PyociError] = RootfsError,
                max_bytes: int = DEFAULT_MAX_BYTES, max_entries: int = DEFAULT_MAX_ENTRIES,
                xattrs: bool = True) -> Path:
    """Apply the OCI layer ``tarball`` onto ``dest``, an existing directory of the caller's holding
    the layers below it (or a new one for the first layer): its whiteouts remove what they name
    from ``dest``, then its members are written with the rules of ``safe_extract`` (nothing
    written through a link, nothing outside ``dest``).  A layer refused on its names or types
    changes nothing; one failing while it is written leaves ``dest`` part-way (callers build a
    flat root filesystem in a directory they remove on failure)."""
    tarball = Path(tarball)
    if not tarball.is_file():
        raise error("layer not found", where=str(tarball), hint="check the path")
    dest = Path(dest).absolute()
    with open_archive(tarball, error) as archive:
        plan = _check(read_members(archive, tarball, error, max_bytes, max_entries), tarball, error,
                      "", "apply")
        if not dest.exists():
            dest.mkdir(mode=0o755, parents=True)
        root_fd = open_own_directory(dest, error)
        try:
            _Extractor(archive, dest, root_fd, tarball, error, "apply", xattrs).run(plan)
        finally:
            os.close(root_fd)
    return dest


def open_archive(tarball: Path, error: type[PyociError] = RootfsError) -> tarfile.TarFile:
    """``tarball`` opened for reading (any compression), refusing extended headers larger than
    ``MAX_HEADER_BYTES``; ``error`` when it is not a tar archive."""
    try:
        return tarfile.open(tarball, "r:*", tarinfo=_BoundedTarInfo)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise error("not a readable tar archive", where=str(tarball), why=str(e)) from e


def read_members(archive: tarfile.TarFile, tarball: Path, error: type[PyociError] = RootfsError,
                 max_bytes: int = DEFAULT_MAX_BYTES, max_entries: int = DEFAULT_MAX_ENTRIES):
    """The archive's members, read header by header (a generator); stops with ``error`` naming
    the limit as soon as one is passed, so a bomb is never decompressed beyond the header that
    gives it away, and on a damaged archive."""
    for name, value in (("max_bytes", max_bytes), ("max_entries", max_entries)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise error(f"invalid limit {name}={value!r}", where=name, why="limits are whole numbers >= 0",
                        hint=f"pass {name} as a number of {'bytes' if name == 'max_bytes' else 'members'}")
    total = 0
    count = 0
    while True:
        try:
            member = archive.next()
        except (tarfile.TarError, OSError, EOFError, ValueError) as e:
            raise error("corrupt tar archive", where=str(tarball), why=str(e) or type(e).__name__) from e
        if member is None:
            return
        count += 1
        if count > max_entries:
            raise error(f"unpacking stopped at {max_entries} members", where=str(tarball),
                        why=f"limit max_entries={max_entries}: the archive has more members than that",
                        hint=f"if the archive is trusted, pass max_entries= a larger number "
                             f"(e.g. max_entries={max_entries * 2})")
        data = _data_size(member, tarball, error)
        if total + data > max_bytes:
            raise error(f"unpacking stopped at {size_text(total)}", where=str(tarball),
                        why=f"limit max_bytes={max_bytes} ({size_text(max_bytes)}): member {member.name!r} "
                            f"holds {size_text(data)} of data, which would bring the total past the limit",
                        hint=f"if the archive is trusted, pass max_bytes= a larger number of bytes "
                             f"(e.g. max_bytes={max(max_bytes * 2, total + data)})")
        total += data
        yield member


def _data_size(member: tarfile.TarInfo, tarball: Path, error) -> int:
    """The bytes extracting ``member`` writes: its size, or for a sparse file the sum of its data
    regions, after checking that the regions are ordered, disjoint and inside the file."""
    if not member.isreg():
        return 0
    if member.sparse is None:
        return member.size
    total = 0
    end = 0
    for region in member.sparse:
        offset, length = region
        if offset < end or length < 0 or offset + length > member.size:
            raise _refuse(error, tarball, member.name,
                          f"its sparse map is inconsistent (region {offset}+{length} of a "
                          f"{member.size}-byte file)")
        end = offset + length
        total += length
    return total


def _refuse(error, tarball, member_name: str, why: str, hint: str | None = None):
    return error(f"refusing tar member {member_name!r}", where=str(tarball), why=why,
                 hint=hint or "the archive is unsafe or damaged; rebuild it from a trusted source")


def _check(members, tarball, error, absolute_links_under, whiteouts=None) -> list[_Planned]:
    """Rules 1-5 on names and types, before anything is written; with ``whiteouts``, OCI
    whiteout members become whiteout entries of the plan."""
    links_prefix = None if absolute_links_under is None else member_parts(absolute_links_under)
    kinds: dict[tuple[str, ...], str] = {(): "dir"}     # path -> "dir" | "link" | "other" | "whiteout"
    plan: list[_Planned] = []
    as_root = is_root()
    for member in members:
        raw = member.name
        parts = member_parts(raw)
        if parts is None:
            why = ("member paths must be relative to the destination (no leading '/')" if raw.startswith("/")
                   else "member paths must not contain '..'")
            raise _refuse(error, tarball, raw, why)
        if whiteouts and parts and parts[-1].startswith(WHITEOUT_PREFIX):
            entry = _whiteout_entry(member, parts, kinds, tarball, error, whiteouts)
            if entry is not None:
                plan.append(entry)
            continue
        for depth in range(len(parts)):
            kind = kinds.get(parts[:depth])
            if kind == "link":
                raise _refuse(error, tarball, raw, f"it would be written through the symbolic link "
                                                   f"{'/'.join(parts[:depth])!r}; extraction never follows links")
            if kind in ("other", "whiteout"):
                raise _refuse(error, tarball, raw, f"its parent {'/'.join(parts[:depth])!r} is not a directory")
            kinds[parts[:depth]] = "dir"        # created as a parent when the archive lacks it
        entry = _Planned(member, parts)
        if not parts and not member.isdir():
            raise _refuse(error, tarball, raw, "the archive's root entry must be a directory")
        if member.isdir():
            if kinds.get(parts, "dir") != "dir":
                raise _refuse(error, tarball, raw, "a directory would replace an earlier non-directory member")
            kinds[parts] = "dir"
        else:
            if kinds.get(parts) == "dir":
                raise _refuse(error, tarball, raw, "a non-directory would replace an earlier directory")
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


def _whiteout_entry(member, parts, kinds, tarball, error, whiteouts) -> _Planned | None:
    """The plan entry of an OCI whiteout member (``None``: nothing to do)."""
    base = parts[-1]
    parent = parts[:-1]
    for depth in range(len(parent) + 1):
        if kinds.get(parent[:depth], "dir") != "dir":
            raise _refuse(error, tarball, member.name,
                          f"its parent {'/'.join(parent[:depth])!r} is not a directory of this layer")
    if base == OPAQUE_WHITEOUT:
        for depth in range(len(parent) + 1):
            kinds.setdefault(parent[:depth], "dir")
        return _Planned(member, parent, whiteout="opaque")
    if base.startswith(WHITEOUT_PREFIX * 2):
        return None                      # aufs metadata (.wh..wh.plnk, .wh..wh.aufs): skipped, as docker does
    name = base[len(WHITEOUT_PREFIX):]
    if name in ("", ".", ".."):
        raise _refuse(error, tarball, member.name, f"whiteout of the invalid name {name!r}")
    target = parent + (name,)
    if target in kinds:
        return None                      # the layer itself has NAME: a whiteout hides only lower layers
    for depth in range(len(parent) + 1):
        kinds.setdefault(parent[:depth], "dir")
    if whiteouts == "overlay":
        kinds[target] = "whiteout"
    return _Planned(member, target, whiteout="entry")


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


class _NotADirectory(Exception):
    """A component on the way to a member is not a directory on disk (or is a link)."""

    def __init__(self, parts: tuple[str, ...]):
        super().__init__("/".join(parts))
        self.parts = parts


class _Extractor:
    """Writes a checked plan through directory descriptors (``*at()`` calls, ``O_NOFOLLOW``)."""

    def __init__(self, archive: tarfile.TarFile, root: Path, root_fd: int, tarball: Path, error,
                 whiteouts: str | None = None, xattrs: bool = False):
        self.whiteouts = whiteouts
        self.xattrs = xattrs
        self.opaque: set[tuple[str, ...]] = set()
        self.archive = archive
        self.root = root
        self.root_fd = root_fd
        self.tarball = tarball
        self.error = error
        self.as_root = is_root()
        self.directories: dict[tuple[str, ...], tarfile.TarInfo] = {}
        self._cached: tuple[tuple[str, ...], int] | None = None   # the last parent directory opened

    def run(self, plan: list[_Planned]) -> None:
        try:
            if self.whiteouts == "apply":     # whiteouts hide the lower layers only: before any member
                for entry in plan:
                    if entry.whiteout:
                        self._guarded(entry.member.name, self._remove_lower, entry)
                plan = [entry for entry in plan if not entry.whiteout]
            for entry in plan:
                self._guarded(entry.member.name, self._extract, entry)
            # directories last, deepest first: a read-only directory must not block its children and
            # writing children must not change the directory's restored timestamp
            self._forget_cached()
            for parts in sorted(self.directories, key=len, reverse=True):
                self._guarded(self.directories[parts].name, self._directory_metadata, parts)
        finally:
            self._forget_cached()
        for entry in plan:
            if entry.member.issym() and not entry.member.linkname.startswith("/"):
                try:
                    resolve_in_root(self.root, entry.name, confine=False)
                except EscapesRoot:
                    raise _refuse(self.error, self.tarball, entry.member.name,
                                  f"symbolic link target {entry.member.linkname!r} escapes the destination "
                                  "through other links of the archive") from None

    def _guarded(self, name: str, step, argument) -> None:
        try:
            step(argument)
        except _NotADirectory as e:
            raise _refuse(self.error, self.tarball, name,
                          f"{'/'.join(e.parts)!r} is not a directory on disk (or is a symbolic link); "
                          "extraction never follows links") from None
        except OSError as e:
            raise _refuse(self.error, self.tarball, name, f"cannot extract it: {e.strerror or e}",
                          hint="check free space and permissions") from e

    # ---------------------------------------------------------------- directory descriptors
    def _forget_cached(self) -> None:
        if self._cached is not None:
            os.close(self._cached[1])
            self._cached = None

    def _open_dir(self, parts: tuple[str, ...], create: bool) -> int:
        """A new descriptor of the directory ``parts`` under the root, opened component by
        component with ``O_NOFOLLOW``; missing components are created (mode 0755) when ``create``."""
        fd = os.dup(self.root_fd)
        try:
            for depth, name in enumerate(parts, 1):
                try:
                    child = os.open(name, DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(name, 0o755, dir_fd=fd)
                    child = os.open(name, DIR_FLAGS, dir_fd=fd)
                except OSError as e:
                    if e.errno in (errno.ENOTDIR, errno.ELOOP):      # a file or a link is in the way
                        raise _NotADirectory(parts[:depth]) from None
                    raise
                os.close(fd)
                fd = child
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _parent_fd(self, parts: tuple[str, ...]) -> int:
        """The (cached) descriptor of the directory holding ``parts``; do not close it."""
        parent = parts[:-1]
        if self._cached is None or self._cached[0] != parent:
            self._forget_cached()
            self._cached = (parent, self._open_dir(parent, create=True))
        return self._cached[1]

    # ---------------------------------------------------------------- whiteouts
    def _remove_lower(self, entry: _Planned) -> None:
        """``apply``: remove what a whiteout names from the tree of the lower layers (nothing
        when it is not there); an opaque whiteout empties its directory."""
        self._forget_cached()
        directory = entry.parts if entry.whiteout == "opaque" else entry.parts[:-1]
        try:
            fd = self._open_dir(directory, create=False)
        except (FileNotFoundError, _NotADirectory):
            return
        try:
            names = os.listdir(fd) if entry.whiteout == "opaque" else [entry.parts[-1]]
            for name in names:
                _remove_at(fd, name)
        finally:
            os.close(fd)

    # ---------------------------------------------------------------- members
    def _extract(self, entry: _Planned) -> None:
        member, parts = entry.member, entry.parts
        if entry.whiteout == "opaque":       # "overlay": the directory's xattr, set with its metadata
            self._parent_fd(parts + ("",))    # the directory itself, created when missing
            self.opaque.add(parts)
            self.directories.setdefault(parts, None)
            return
        if not parts:
            return               # rule 6: the archive's "." never changes the destination
        dir_fd = self._parent_fd(parts)
        name = parts[-1]
        try:
            existing = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if entry.whiteout == "entry":         # "overlay": a 0/0 character device hides the lower NAME
            if existing is not None:
                _remove_at(dir_fd, name)
            os.mknod(name, stat.S_IFCHR | 0o600, os.makedev(0, 0), dir_fd=dir_fd)
            return
        if member.isdir():
            if existing is not None and not stat.S_ISDIR(existing.st_mode) and self.whiteouts == "apply":
                _remove_at(dir_fd, name)      # a lower layer's file or link replaced by a directory
                existing = None
            if existing is None:
                os.mkdir(name, 0o700, dir_fd=dir_fd)
            elif not stat.S_ISDIR(existing.st_mode):
                raise _NotADirectory(parts)
            self.directories[parts] = member
            return
        if existing is not None:
            _remove_at(dir_fd, name)       # a later member replaces an earlier one, as with tar
        if member.issym():
            os.symlink(member.linkname, name, dir_fd=dir_fd)
            if self.as_root:
                os.chown(name, member.uid, member.gid, dir_fd=dir_fd, follow_symlinks=False)
            os.utime(name, (member.mtime, member.mtime), dir_fd=dir_fd, follow_symlinks=False)
        elif member.islnk():
            source_fd = self._open_dir(entry.link_parts[:-1], create=False)
            try:
                os.link(entry.link_parts[-1], name, src_dir_fd=source_fd, dst_dir_fd=dir_fd,
                        follow_symlinks=False)
            finally:
                os.close(source_fd)
            # same inode as its target: its metadata is the target's
        elif member.type in _DEVICE_TYPES or member.isfifo():
            if member.isfifo():
                os.mkfifo(name, 0o600, dir_fd=dir_fd)
                kind = stat.S_IFIFO
            else:
                kind = stat.S_IFCHR if member.type == tarfile.CHRTYPE else stat.S_IFBLK
                os.mknod(name, kind | 0o600, os.makedev(member.devmajor, member.devminor), dir_fd=dir_fd)
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            try:
                if stat.S_IFMT(os.fstat(fd).st_mode) != kind:
                    raise _NotADirectory(parts)    # replaced behind our back: touch nothing
                # an O_PATH descriptor cannot be fchmod'ed; its /proc link reaches the same inode
                self._metadata(f"/proc/self/fd/{fd}", member)
            finally:
                os.close(fd)
        else:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=dir_fd)
            try:
                self._write_data(fd, member)
                self._metadata(fd, member)
            finally:
                os.close(fd)

    def _write_data(self, fd: int, member: tarfile.TarInfo) -> None:
        """The member's bytes; a sparse member's data regions only, at their offsets, so its holes
        stay holes (and take no disk space)."""
        source = self.archive.extractfile(member)
        if source is None:
            return
        with source:
            if member.sparse is None:
                with os.fdopen(os.dup(fd), "wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
                return
            for offset, length in member.sparse:
                source.seek(offset)
                position, remaining = offset, length
                while remaining:
                    chunk = source.read(min(remaining, 1 << 20))
                    if not chunk:
                        raise OSError(5, "the archive ends inside the member's data")
                    written = os.pwrite(fd, chunk, position)
                    position += written
                    remaining -= written
            os.ftruncate(fd, member.size)

    def _directory_metadata(self, parts: tuple[str, ...]) -> None:
        fd = self._open_dir(parts, create=False)
        try:
            if parts in self.opaque:
                os.setxattr(fd, OVERLAY_OPAQUE_XATTR, b"y")
            if self.directories[parts] is not None:
                self._metadata(fd, self.directories[parts])
        finally:
            os.close(fd)

    def _metadata(self, target: int | str, member: tarfile.TarInfo) -> None:
        """Numeric owner (root only; chown first, it clears setuid), mode, modification time, on a
        descriptor or a /proc/self/fd link."""
        if self.as_root:
            os.chown(target, member.uid, member.gid)
        os.chmod(target, member.mode & 0o7777)
        if self.xattrs and self.as_root:
            for key, value in member.pax_headers.items():
                name = key[len("SCHILY.xattr."):]
                if key.startswith("SCHILY.xattr.") and name.startswith(_KEPT_XATTRS):
                    os.setxattr(target, name, value.encode("utf-8", "surrogateescape"))
        os.utime(target, (member.mtime, member.mtime))


def _remove_at(dir_fd: int, name: str) -> None:
    """Remove ``name`` of the directory ``dir_fd`` -- a file, link or whole tree -- through
    descriptors, following no link."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except IsADirectoryError:
        shutil.rmtree(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


def from_tar(tarball: str | os.PathLike, dest: str | os.PathLike, *, mode: int = 0o700,
             max_bytes: int = DEFAULT_MAX_BYTES, max_entries: int = DEFAULT_MAX_ENTRIES) -> Path:
    """Unpack a root filesystem tarball into ``dest`` (a new or empty directory of the caller's)
    and return it.

    The tarball holds the root's contents at its top (``bin/``, ``etc/`` ..., as made by
    ``tar -C rootfs -c .``).  Unsafe members are refused (see the module's rules); symbolic links
    with absolute targets are kept, since inside a root filesystem they name paths of the container.

    ``dest`` gets ``mode`` (default 0700, whatever the archive's ``.`` entry says): other host
    users cannot reach set-user-ID programs or device nodes of the image.  Processes of the
    container running as a non-root user without a user namespace need to enter ``/``: unpack
    into a private directory (as ``Bundle.create`` does) and pass ``mode=0o755``.
    ``max_bytes`` (file data, default 4 GiB) and ``max_entries`` (members, default 500000) stop
    decompression bombs; raise them for larger trusted images.
    """
    return safe_extract(tarball, dest, error=RootfsError, absolute_links_under="", mode=mode,
                        max_bytes=max_bytes, max_entries=max_entries)
