"""OCI bundles: a directory holding ``config.json`` and the container's root filesystem.

runtime-spec bundle.md: a bundle is a directory with ``config.json`` at its top (REQUIRED) and
the container's root filesystem, the directory named by ``root.path`` in config.json -- relative
to the bundle (conventionally ``rootfs``) or absolute.  A runtime is given the bundle's path; the
bundle must be "a local filesystem" tree, and its tarball form (as produced by ``Bundle.pack``)
has ``config.json`` and ``rootfs/`` at the top, with no wrapping directory.

``Bundle`` reads the config lazily: ``Bundle(path)`` works on a broken bundle so ``validate()``
can report what is wrong; ``Bundle.load(path)`` insists that config.json is readable and valid.
Validation and packing use only the standard library (``pyoci validate`` stays light); ``.spec``
imports the pydantic models.
"""

from __future__ import annotations

import json
import os
import stat
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from pyoci_nb.errors import BundleError
from pyoci_nb.rootfs.safetar import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_ENTRIES,
    member_parts,
    open_archive,
    read_members,
    safe_extract,
)
from pyoci_nb.rootfs.tree import (
    DIR_FLAGS,
    MAX_SYMLINKS,
    fresh_directory,
    open_own_directory,
    remove_tree,
    resolve_in_root,
)
from pyoci_nb.spec.problems import Problem, ReprMixin, join_path

if TYPE_CHECKING:
    from pyoci_nb.spec.models import Spec

#: bundle.md: "This REQUIRED file MUST reside in the root of the bundle directory and MUST be
#: named config.json."
CONFIG_NAME = "config.json"

#: The largest config.json ``Bundle.unpack`` reads from a tarball (it is read into memory).
MAX_CONFIG_BYTES = 16 << 20

#: The container's PATH when ``process.env`` sets none (runc's default, used for ``args[0]``).
DEFAULT_CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: ``Bundle.create(rootfs=...)`` keywords; anything else is a directory, a tarball or a list of
#: host programs.
ROOTFS_KINDS = ("busybox", "host")

#: Tarball compression by file name suffix (``pack``); anything else is an uncompressed tar.
_COMPRESSION = {".tar.gz": "gz", ".tgz": "gz", ".tar.bz2": "bz2", ".tbz2": "bz2", ".tar.xz": "xz", ".txz": "xz"}

SpecSource = Union["Spec", dict, str, os.PathLike, None]
RootfsSource = Union[str, os.PathLike, Sequence[str], None]  # noqa: UP007 (beside SpecSource's forward reference)


class Bundle(ReprMixin):
    """An OCI bundle directory (runtime-spec bundle.md): ``config.json`` plus the root filesystem
    named by its ``root.path``.

    ``Bundle(path)`` only requires ``path`` to be a directory; the config is read when first
    needed (``.spec``, ``.rootfs_path``) so that ``.validate()`` can describe a broken bundle.
    A ``Bundle`` is path-like: ``os.fspath(bundle)`` is its directory.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).absolute()
        if not self.path.is_dir():
            raise BundleError("bundle directory not found" if not self.path.exists() else "not a directory",
                              where=str(self.path),
                              why="a bundle is a directory holding config.json and the root filesystem",
                              hint="create one with Bundle.create(path) or `pyoci spec --bundle DIR`")
        self._spec: Spec | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(cls, path: str | os.PathLike) -> Bundle:
        """Open an existing bundle and read its config now: raises ``BundleError`` when config.json
        is missing or not JSON and ``ConfigError`` (naming each field) when it breaks the spec."""
        bundle = cls(path)
        bundle.spec  # noqa: B018 -- read and validate now
        return bundle

    @classmethod
    def create(cls, path: str | os.PathLike, spec: SpecSource = None,
               rootfs: RootfsSource = "busybox", overwrite: bool = False) -> Bundle:
        """Make a new bundle in ``path`` (a new or empty directory) and return it.

        ``spec``: a ``Spec``, a config ``dict``, a path to a config.json, or ``None`` for
        ``default_spec()`` (what ``runc spec`` writes) with ``process.terminal`` false, so the
        container runs without a console socket.  A missing ``root`` becomes ``{"path": "rootfs"}``.

        ``rootfs`` fills the directory named by ``root.path`` (which must then be relative):
        ``"busybox"`` (``rootfs.busybox``), ``"host"`` (``rootfs.from_host`` with its default
        programs: sh, bash, coreutils basics, python3), a list of host programs
        (``["sh", "python3"]``), the path of an existing directory (copied faithfully), the path of
        a tarball (``rootfs.from_tar``; the bundle directory is then private, 0700, as with
        ``unpack``), or ``None`` for an empty directory.
        On failure nothing is left in ``path``.

        ``overwrite=True`` (a notebook cell run again) first removes a bundle already at ``path``:
        a directory holding config.json, or an empty one; a symbolic link is removed itself, never
        followed, and so are links inside the old bundle.  Anything else there is refused.
        """
        from pyoci_nb.spec.models import Spec, load_spec

        if spec is None:
            from pyoci_nb.spec.defaults import default_config

            config = default_config()
            config["process"]["terminal"] = False
            spec_obj = load_spec(config)
        elif isinstance(spec, Spec):
            spec_obj = spec
        else:
            spec_obj = load_spec(spec)
        if spec_obj.root is None:
            spec_obj = load_spec({**spec_obj.to_dict(), "root": {"path": "rootfs"}})
        root_path = spec_obj.root.path
        source = _rootfs_source(rootfs)
        if source is not None and (not root_path or root_path.startswith("/")):
            raise BundleError("cannot build the root filesystem inside the bundle", where="root.path",
                              why=f"root.path is {root_path!r}; a rootfs is built only at a relative root.path",
                              hint="use a relative root.path such as 'rootfs', or pass rootfs=None")
        if overwrite:
            _remove_old_bundle(Path(path).absolute())
        with fresh_directory(path, BundleError) as directory:
            if isinstance(source, tuple) and source[0] == "tarball":
                # as Bundle.unpack: the image's set-user-ID files and devices out of other users' reach
                os.close(open_own_directory(directory, BundleError, 0o700))
            if root_path and not root_path.startswith("/"):
                _build_rootfs(source, directory, root_path)
            spec_obj.save(directory / CONFIG_NAME)
            bundle = cls(directory)
            bundle._spec = spec_obj
        return bundle

    @classmethod
    def from_image(cls, image, path: str | os.PathLike, *, overlay: bool | None = None,
                   pull: bool = True, **pull_options) -> Bundle:
        """A bundle in ``path`` (new or empty, made 0700) from an OCI image, as ``umoci unpack``
        makes one (image-spec ``conversion.md``): config.json with ``process.args`` =
        Entrypoint + Cmd, ``env`` = Env, ``cwd`` = WorkingDir, ``user`` = User, labels, exposed
        ports and volumes as annotations; the root filesystem an overlay snapshot of the local
        store's shared layers (``overlay=None``: where overlays can be mounted) or flat.
        ``image``: an ``Image`` or a reference (pulled first when not in the store and ``pull``;
        ``pull_options`` go to ``pyoci_nb.image.pull``)."""
        from pyoci_nb.image import Image, image_for, unpack_bundle

        if not isinstance(image, Image):
            image = image_for(str(image), pull_missing=pull, **pull_options)
        return cls(unpack_bundle(image, path, overlay=overlay))

    # ------------------------------------------------------------------ config
    @property
    def config_path(self) -> Path:
        """``<bundle>/config.json``."""
        return self.path / CONFIG_NAME

    def read_config(self) -> dict:
        """config.json as a plain ``dict`` (no pydantic).  ``BundleError`` when it is missing, not
        JSON, or not a JSON object; the error names the file (and line:column for bad JSON)."""
        try:
            text = self.config_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise BundleError("config.json not found", where=str(self.config_path),
                              why="bundle.md: config.json MUST be at the top of the bundle directory",
                              hint="write one with `pyoci spec --bundle DIR` or Bundle.create") from None
        except (OSError, UnicodeDecodeError) as e:
            raise BundleError("cannot read config.json", where=str(self.config_path),
                              why=getattr(e, "strerror", None) or str(e)) from None
        try:
            config = json.loads(text)
        except json.JSONDecodeError as e:
            raise BundleError("config.json is not valid JSON", where=f"{self.config_path}:{e.lineno}:{e.colno}",
                              why=e.msg, hint="fix the JSON syntax at that line and column") from None
        if not isinstance(config, dict):
            raise BundleError("config.json must hold a JSON object", where=str(self.config_path),
                              why=f"it holds a {type(config).__name__}")
        return config

    @property
    def spec(self) -> Spec:
        """The bundle's config as a pydantic ``Spec`` (read on first use, then kept: edit it and
        call ``save()``).  Raises ``BundleError``/``ConfigError`` when config.json is unusable."""
        if self._spec is None:
            from pyoci_nb.spec.models import load_spec

            self._spec = load_spec(self.read_config())
        return self._spec

    @spec.setter
    def spec(self, value: SpecSource) -> None:
        from pyoci_nb.spec.models import Spec, load_spec

        self._spec = value if isinstance(value, Spec) else load_spec(value)

    def save(self) -> Path:
        """Write ``.spec`` to config.json (atomically, as ``Spec.save`` does); returns the path."""
        self.spec.save(self.config_path)
        return self.config_path

    def _root_path_value(self) -> Any:
        if self._spec is not None:
            return self._spec.root.path if self._spec.root is not None else None
        return (self.read_config().get("root") or {}).get("path")

    @property
    def rootfs_path(self) -> Path:
        """The host path of the root filesystem: ``root.path`` resolved against the bundle
        (config.md: "a relative path ... is relative to the bundle"; ``"."`` is the bundle itself)."""
        value = self._root_path_value()
        if not isinstance(value, str) or not value:
            raise BundleError("root.path is not set", where=f"{self.config_path}: root.path",
                              why="config.md: root.path (the container's root filesystem) is REQUIRED on Linux",
                              hint='add "root": {"path": "rootfs"}')
        return Path(os.path.normpath(self.path / value))

    # ------------------------------------------------------------------ validation
    def validate(self, for_start: bool = False) -> list[Problem]:
        """Every problem of the bundle, each with its path: the config's (``validate_config``:
        schema and spec rules, with JSON paths) plus what only the bundle's files can tell --
        config.json present and a JSON object (problem path: the file); ``root.path`` an existing
        directory; ``process.cwd`` not a non-directory inside the rootfs; bind-mount sources
        present; and, with ``for_start``, ``process.args[0]`` an executable file inside the
        rootfs (found through the container's ``PATH`` as the runtime will).  An empty list means
        the bundle is usable."""
        from pyoci_nb.spec.validation import validate_config

        try:
            config = self.read_config()
        except BundleError as e:
            return [Problem(e.where or str(self.config_path), f"{e.what}: {e.why}" if e.why else e.what)]
        problems = list(validate_config(config, for_start=for_start))
        reported = {p.path for p in problems}
        problems.extend(p for p in self._file_problems(config, for_start) if p.path not in reported)
        return problems

    def _file_problems(self, config: dict, for_start: bool) -> list[Problem]:
        problems: list[Problem] = []
        root_path = (config.get("root") or {}).get("path") if isinstance(config.get("root"), dict) else None
        if not isinstance(root_path, str) or not root_path:
            return problems          # validate_config reports a missing or malformed root
        rootfs = Path(os.path.normpath(self.path / root_path))
        if not rootfs.exists():
            problems.append(Problem("root.path", f"{rootfs} does not exist (relative paths are relative to "
                                                 "the bundle); build it, e.g. with pyoci_nb.rootfs.busybox()",
                                    root_path))
            return problems
        if not rootfs.is_dir():
            problems.append(Problem("root.path", f"{rootfs} is not a directory: the root filesystem must be one",
                                    root_path))
            return problems
        process = config.get("process") if isinstance(config.get("process"), dict) else {}
        cwd = process.get("cwd")
        if isinstance(cwd, str) and cwd.startswith("/"):
            inside = resolve_in_root(rootfs, cwd)
            if os.path.exists(inside) and not inside.is_dir():
                problems.append(Problem("process.cwd", f"{cwd} exists in the root filesystem but is not a "
                                                       "directory", cwd))
        args = process.get("args")
        if for_start and isinstance(args, list) and args and isinstance(args[0], str) and args[0]:
            message = self._executable_problem(rootfs, args[0], process.get("env"))
            if message:
                problems.append(Problem("process.args[0]", message, args[0]))
        for index, mount in enumerate(config.get("mounts") or []):
            if not isinstance(mount, dict) or not isinstance(mount.get("source"), str):
                continue
            options = mount.get("options") if isinstance(mount.get("options"), list) else []
            if mount.get("type") == "bind" or "bind" in options or "rbind" in options:
                source = Path(os.path.normpath(self.path / mount["source"]))
                if not os.path.exists(source):
                    problems.append(Problem(join_path(join_path("mounts", index), "source"),
                                            f"bind mount source {source} does not exist on the host "
                                            "(relative sources are relative to the bundle)", mount["source"]))
        return problems

    @staticmethod
    def _executable_problem(rootfs: Path, program: str, env: Any) -> str | None:
        """Why ``program`` cannot be executed in ``rootfs`` (None when it can)."""
        if "/" in program:
            candidates = [program if program.startswith("/") else "/" + program]
            searched = program
        else:
            path_value = DEFAULT_CONTAINER_PATH
            for entry in env if isinstance(env, list) else []:
                if isinstance(entry, str) and entry.startswith("PATH="):
                    path_value = entry[5:]
            candidates = [f"{d.rstrip('/')}/{program}" for d in path_value.split(":") if d.startswith("/")]
            searched = f"$PATH ({path_value})"
        for candidate in candidates:
            inside = resolve_in_root(rootfs, candidate)
            if inside.is_file():
                if os.stat(inside).st_mode & 0o111:
                    return None
                return f"{candidate} is in the root filesystem but not executable (chmod +x it)"
        return (f"{program!r} is not in the root filesystem (looked in {searched}); the container "
                "could not start it -- add the program or fix process.args")

    # ------------------------------------------------------------------ tarballs
    def pack(self, tarball: str | os.PathLike) -> Path:
        """Write the bundle to ``tarball`` with its files at the top (``config.json``, ``rootfs/``
        ..., no wrapping directory), keeping modes, numeric owners, timestamps, symbolic links,
        hard links and device nodes.  Compression follows the suffix (``.tar.gz``/``.tgz``,
        ``.tar.bz2``, ``.tar.xz``; otherwise none).  The file is written atomically.  Raises
        ``BundleError`` when the root filesystem is outside the bundle (the tarball would not
        hold it)."""
        tarball = Path(tarball).absolute()
        if not self.config_path.is_file():
            raise BundleError("config.json not found", where=str(self.config_path),
                              why="a bundle tarball holds config.json at its top")
        rootfs = self.rootfs_path
        if rootfs != self.path and self.path not in rootfs.parents:
            raise BundleError("the root filesystem is outside the bundle", where="root.path",
                              why=f"{rootfs} is not inside {self.path}, so a tarball of the bundle would lack it",
                              hint="copy the rootfs into the bundle and make root.path relative")
        compression = next((c for suffix, c in _COMPRESSION.items() if tarball.name.endswith(suffix)), "")
        fd, temporary = tempfile.mkstemp(prefix=f".{tarball.name}.", dir=tarball.parent)
        os.close(fd)
        skip = {str(tarball), temporary}

        def clean(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
            if str(self.path / info.name) in skip:
                return None
            info.uname = info.gname = ""     # owners are numeric: host names mean nothing inside
            return info

        try:
            options = {"compresslevel": 6} if compression in ("gz", "bz2") else {}
            with tarfile.open(temporary, f"w:{compression}", format=tarfile.PAX_FORMAT, **options) as archive:
                for entry in sorted(os.listdir(self.path)):
                    archive.add(self.path / entry, arcname=entry, recursive=True, filter=clean)
            os.chmod(temporary, 0o644)
            os.replace(temporary, tarball)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
        return tarball

    @classmethod
    def unpack(cls, tarball: str | os.PathLike, dest: str | os.PathLike, *,
               max_bytes: int = DEFAULT_MAX_BYTES, max_entries: int = DEFAULT_MAX_ENTRIES) -> Bundle:
        """Extract a bundle tarball into ``dest`` (a new or empty directory) and return the bundle.

        The tarball must have ``config.json`` at its top.  Unsafe members are refused with
        ``BundleError`` naming the member and the rule (absolute paths, ``..``, links leaving
        ``dest``, writing through links, device nodes without root; see
        ``pyoci_nb.rootfs.safetar``) and nothing is left behind.  Symbolic links with absolute
        targets are accepted only inside the root filesystem named by config.json's relative
        ``root.path``, where they name paths of the container.

        As umoci does, the bundle directory is private (0700, owned by the caller, whatever the
        archive's ``.`` entry says): other host users cannot reach set-user-ID programs or device
        nodes of the root filesystem, which keeps the image's own modes and owners inside.
        ``root.path`` must name a directory inside the bundle: an absolute path, a path climbing
        out with ``..`` or through a symbolic link that leads out is refused.  ``max_bytes``
        (file data, default 4 GiB) and ``max_entries`` (members, default 500000) stop
        decompression bombs; raise them for larger trusted bundles."""
        tarball = Path(tarball)
        if not tarball.is_file():
            raise BundleError("tarball not found", where=str(tarball), hint="check the path")
        root_path = _root_path_in_tarball(tarball, max_bytes, max_entries)
        prefix = None
        if isinstance(root_path, str) and root_path:
            why = _root_path_leaves(root_path)
            if why:
                raise BundleError("refusing the bundle's root.path", where=f"{tarball}: config.json root.path",
                                  why=f"root.path {root_path!r} {why}; an unpacked bundle's root filesystem "
                                      "must be inside the bundle",
                                  hint='the archive is unsafe or wrong; root.path should be relative, e.g. "rootfs"')
            parts = member_parts(root_path)
            prefix = "/".join(parts) if parts else None

        def verify(bundle_fd: int, directory: Path) -> None:
            _verify_unpacked_root(bundle_fd, tarball, root_path)

        safe_extract(tarball, dest, error=BundleError, absolute_links_under=prefix, mode=0o700,
                     max_bytes=max_bytes, max_entries=max_entries, verify=verify)
        return cls(dest)

    # ------------------------------------------------------------------ python protocols
    def __fspath__(self) -> str:
        return str(self.path)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Bundle) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    def __repr__(self) -> str:
        return f"Bundle({str(self.path)!r})"

    def __str__(self) -> str:
        lines = [f"Bundle {self.path}"]
        try:
            config = self.read_config()
            process = config.get("process") or {}
            lines.append(f"  config.json: ociVersion {config.get('ociVersion')}, args {process.get('args')}")
            lines.append(f"  rootfs: {self.rootfs_path}")
        except Exception as e:   # __str__ is used by the repr fallback: it must not raise
            lines.append(f"  config.json unusable: {e}")
        return "\n".join(lines)


def _remove_old_bundle(path: Path) -> None:
    """``Bundle.create(overwrite=True)``: remove what is at ``path`` if it is a bundle (or an
    empty directory, or a symbolic link: the link itself), never following a link."""
    if not os.path.lexists(path):
        return
    if path.is_symlink():
        path.unlink()
        return
    if not path.is_dir() or (any(path.iterdir()) and not (path / CONFIG_NAME).is_file()):
        raise BundleError("refusing to overwrite: not a bundle", where=str(path),
                          why="overwrite=True removes an old bundle (a directory with config.json), "
                              "and this is something else",
                          hint="choose another path, or remove it yourself if it really should go")
    remove_tree(path)


def _rootfs_source(rootfs: RootfsSource) -> Any:
    """Normalise ``Bundle.create``'s ``rootfs`` argument (validated before anything is written)."""
    if rootfs is None:
        return None
    if isinstance(rootfs, str) and rootfs in ROOTFS_KINDS:
        return rootfs
    if isinstance(rootfs, (list, tuple)):
        return ("programs", list(rootfs))
    path = Path(rootfs)
    if path.is_dir():
        return ("directory", path)
    if path.is_file():
        return ("tarball", path)
    raise BundleError(f"unknown root filesystem {str(rootfs)!r}", where="rootfs",
                      why=f"not one of {', '.join(ROOTFS_KINDS)}, a list of host programs, "
                          "an existing directory or a tarball",
                      hint='use rootfs="busybox" or the path of a directory or tarball')


def _build_rootfs(source: Any, bundle_dir: Path, root_path: str) -> None:
    from pyoci_nb import rootfs as builders
    from pyoci_nb.rootfs.tree import copy_tree

    dest = Path(os.path.normpath(bundle_dir / root_path))
    if dest != bundle_dir and bundle_dir not in dest.parents:
        raise BundleError("root.path leaves the bundle", where="root.path",
                          why=f"{root_path!r} resolves to {dest}, outside {bundle_dir}",
                          hint="use a path inside the bundle such as 'rootfs'")
    if dest != bundle_dir:
        dest.parent.mkdir(parents=True, exist_ok=True)
    if source is None:
        dest.mkdir(exist_ok=True)
    elif source == "busybox":
        builders.busybox(dest)
    elif source == "host":
        builders.from_host(dest)
    elif source[0] == "programs":
        builders.from_host(dest, source[1])
    elif source[0] == "directory":
        copy_tree(source[1], dest)
    else:
        builders.from_tar(source[1], dest, mode=0o755)     # inside the private bundle directory


def _root_path_in_tarball(tarball: Path, max_bytes: int, max_entries: int) -> Any:
    """config.json's ``root.path`` read from a bundle tarball (without extracting anything; the
    headers read on the way count against the limits)."""
    with open_archive(tarball, BundleError) as archive:
        member = next((m for m in read_members(archive, tarball, BundleError, max_bytes, max_entries)
                       if member_parts(m.name) == (CONFIG_NAME,)), None)
        if member is None:
            raise BundleError("not a bundle tarball", where=str(tarball),
                              why="bundle.md: config.json MUST be at the top of the bundle; the tarball has none",
                              hint="pack bundles with Bundle.pack, which puts config.json at the top")
        if not member.isreg() or member.sparse is not None:
            raise BundleError("refusing tar member 'config.json'", where=str(tarball),
                              why="config.json must be a regular file, not a link or device")
        if member.size > MAX_CONFIG_BYTES:
            raise BundleError("refusing tar member 'config.json'", where=str(tarball),
                              why=f"it holds {member.size} bytes, more than {MAX_CONFIG_BYTES} "
                                  "(MAX_CONFIG_BYTES); a config is a few kilobytes",
                              hint="the archive is unsafe or damaged; rebuild it from a trusted source")
        try:
            data = archive.extractfile(member).read()
        except (tarfile.TarError, OSError, EOFError) as e:
            raise BundleError("corrupt tar archive", where=str(tarball), why=str(e)) from e
    return _root_path_of(data)


def _root_path_of(data: bytes) -> Any:
    """``root.path`` of a config.json's bytes; ``None`` when it has none or is not JSON (the bundle
    is unpacked anyway and ``validate()`` reports it)."""
    try:
        config = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    root = config.get("root") if isinstance(config, dict) else None
    return root.get("path") if isinstance(root, dict) else None


def _root_path_leaves(root_path: str) -> str | None:
    """Why a bundle tarball's ``root.path`` names a place outside the bundle, judged on the text
    (``None`` when it does not)."""
    if root_path.startswith("/"):
        return "is absolute: it names a directory of the host, not of the bundle"
    normal = os.path.normpath(root_path)
    if normal == ".." or normal.startswith("../"):
        return "climbs out of the bundle with '..'"
    return None


def _verify_unpacked_root(bundle_fd: int, tarball: Path, expected: Any) -> None:
    """After extraction: the config.json on disk says what the one read before did (an archive
    may hold several, the last one wins), and its ``root.path`` resolves inside the bundle when
    symbolic links are followed the way the runtime will follow them, from the host."""
    where = f"{tarball}: config.json"
    try:
        fd = os.open(CONFIG_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=bundle_fd)
    except OSError as e:
        raise BundleError("refusing the bundle's config.json", where=where,
                          why=f"after unpacking it is not a regular file ({e.strerror})",
                          hint="the archive is unsafe or damaged; rebuild it from a trusted source") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise BundleError("refusing the bundle's config.json", where=where,
                              why="after unpacking it is not a regular file")
        data = f.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise BundleError("refusing the bundle's config.json", where=where,
                          why=f"the one unpacked last holds more than {MAX_CONFIG_BYTES} bytes (MAX_CONFIG_BYTES)")
    root_path = _root_path_of(data)
    if root_path != expected:
        raise BundleError("refusing the bundle's config.json", where=where,
                          why=f"the archive holds more than one config.json: the first names root.path "
                              f"{expected!r}, the one unpacked last {root_path!r}",
                          hint="the archive is unsafe or damaged; a bundle tarball holds one config.json")
    if not isinstance(root_path, str) or not root_path:
        return                      # validate() reports the broken config
    why = _escape_through_links(bundle_fd, root_path)
    if why:
        raise BundleError("refusing the bundle's root.path", where=f"{where} root.path",
                          why=f"root.path {root_path!r} {why}; an unpacked bundle's root filesystem must be "
                              "inside the bundle",
                          hint="the archive is unsafe; root.path should name a directory of the bundle")


def _escape_through_links(bundle_fd: int, root_path: str) -> str | None:
    """Walk ``root_path`` from the bundle's descriptor as the kernel will (symbolic links followed,
    ``..`` to the physical parent), one ``O_NOFOLLOW`` component at a time; say why it leaves
    the bundle, or ``None`` when it stays inside (or names nothing yet)."""
    pending = [p for p in root_path.split("/") if p not in ("", ".")]
    pending.reverse()
    walked: list[str] = []
    stack = [os.dup(bundle_fd)]
    links = 0
    try:
        while pending:
            part = pending.pop()
            if part == "..":
                if len(stack) == 1:
                    return "climbs out of the bundle" + (f" below {'/'.join(walked)!r}" if walked else "")
                os.close(stack.pop())
                walked.pop()
                continue
            try:
                st = os.stat(part, dir_fd=stack[-1], follow_symlinks=False)
            except FileNotFoundError:
                return None          # nothing there: the runtime will say so (validate() too)
            here = "/".join([*walked, part])
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > MAX_SYMLINKS:
                    return f"goes through more than {MAX_SYMLINKS} symbolic links"
                target = os.readlink(part, dir_fd=stack[-1])
                if target.startswith("/"):
                    return (f"goes through {here!r}, a symbolic link to the absolute path {target!r}, "
                            "which the runtime would follow on the host")
                pending.extend(reversed([p for p in target.split("/") if p not in ("", ".")]))
                continue
            if not stat.S_ISDIR(st.st_mode):
                return None          # not a directory: validate() reports it
            stack.append(os.open(part, DIR_FLAGS, dir_fd=stack[-1]))
            walked.append(part)
        return None
    finally:
        for fd in stack:
            os.close(fd)
