"""The local image store: content-addressed blobs and layers unpacked once.

Layout (image-spec ``image-layout.md`` for ``blobs/``)::

    <root>/blobs/sha256/<hex>        every manifest, index, config and layer blob, verified
    <root>/layers/sha256/<hex>/      a layer unpacked once, keyed by its *diff id* (the digest
                                     of the uncompressed tar, image-spec ``config.md``
                                     ``rootfs.diff_ids``) -- an overlayfs lower directory,
                                     shared read-only by every container of every image using it
    <root>/refs.json                 reference -> manifest digest (and the index it came from)
    <root>/tmp/                      downloads in progress (``.partial``) and unpacking

The root is ``$PYOCI_IMAGE_STORE`` if set, else ``/var/lib/pyoci-nb/images`` for root and
``$XDG_DATA_HOME/pyoci-nb/images`` (``~/.local/share/...``) for other users, made 0700 and owned
by the caller (images hold set-user-ID programs and device nodes).  Writers hold ``lock``.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import json
import os
import tempfile
from pathlib import Path

from pyoci_nb.image.reference import DIGEST_RE, ImageError

GZIP_TYPES = ("application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.docker.image.rootfs.diff.tar.gzip",
              "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
              "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")
ZSTD_TYPES = ("application/vnd.oci.image.layer.v1.tar+zstd",)
TAR_TYPES = ("application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.nondistributable.v1.tar")
LAYER_TYPES = GZIP_TYPES + ZSTD_TYPES + TAR_TYPES
#: A layer's unpacked size is limited like a rootfs tarball's (safetar ``max_bytes``/``max_entries``).
LAYER_MAX_BYTES = 16 << 30


def default_root() -> Path:
    """Where the store lives for this user (see the module's docstring)."""
    if os.environ.get("PYOCI_IMAGE_STORE"):
        return Path(os.environ["PYOCI_IMAGE_STORE"])
    if os.geteuid() == 0:
        return Path("/var/lib/pyoci-nb/images")
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data) / "pyoci-nb" / "images"


def _hex(digest: str, where: str = "digest") -> str:
    if not isinstance(digest, str) or not DIGEST_RE.match(digest) or not digest.startswith("sha256:"):
        raise ImageError(f"invalid digest {digest!r}", where=where,
                         why="the store keys content by sha256: and 64 lowercase hex digits")
    return digest[7:]


class ImageStore:
    """A content-addressed store of blobs and unpacked layers (see the module's docstring)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_root()
        self._ready = False

    def __repr__(self) -> str:
        return f"ImageStore({str(self.root)!r})"

    # -- directories ---------------------------------------------------------------------------
    def ensure(self) -> Path:
        """Create the store (0700, ours) on first use; refuse one of another user or open to others."""
        if not self._ready:
            try:
                self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
                fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError as exc:
                raise ImageError("cannot use the image store", where=str(self.root), why=exc.strerror or str(exc),
                                 hint="it must be a directory of yours (not a symbolic link); "
                                      "set PYOCI_IMAGE_STORE to choose another") from None
            try:
                st = os.fstat(fd)
                if st.st_uid != os.geteuid():
                    raise ImageError("image store owned by someone else", where=str(self.root),
                                     why=f"it belongs to uid {st.st_uid}, who could change the images",
                                     hint="set PYOCI_IMAGE_STORE to a directory of your own")
                os.fchmod(fd, 0o700)
            finally:
                os.close(fd)
            for sub in ("blobs/sha256", "layers/sha256", "tmp"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
            self._ready = True
        return self.root

    @contextlib.contextmanager
    def locked(self):
        """Hold the store's write lock (flock on ``lock``)."""
        self.ensure()
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -- blobs ---------------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / _hex(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def partial_path(self, digest: str) -> Path:
        """Where a download of ``digest`` in progress is kept (resumed by the next pull)."""
        return self.ensure() / "tmp" / f"{_hex(digest)}.partial"

    def read_blob(self, digest: str) -> bytes:
        try:
            return self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise ImageError("blob not in the store", where=f"{self.root}: {digest}",
                             hint="pull the image again") from None

    def add_bytes(self, digest: str, data: bytes) -> Path:
        """Keep ``data`` as the blob ``digest`` after checking that it hashes to it."""
        if f"sha256:{hashlib.sha256(data).hexdigest()}" != digest:
            raise ImageError("content does not match its digest", where=digest,
                             why=f"it hashes to sha256:{hashlib.sha256(data).hexdigest()}")
        self.ensure()
        fd, tmp = tempfile.mkstemp(dir=self.root / "tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return self.add_verified_file(digest, Path(tmp))

    def add_verified_file(self, digest: str, path: Path) -> Path:
        """Move ``path`` (already checked against ``digest`` by the caller) into ``blobs/``."""
        target = self.blob_path(digest)
        os.chmod(path, 0o600)
        os.replace(path, target)
        return target

    # -- layers --------------------------------------------------------------------------------
    def layer_path(self, diff_id: str) -> Path:
        return self.root / "layers" / "sha256" / _hex(diff_id, "rootfs.diff_ids")

    @contextlib.contextmanager
    def uncompressed(self, digest: str, media_type: str, diff_id: str):
        """A path of the layer blob ``digest`` as a plain tar, checked against ``diff_id``
        before it is yielded (image-spec ``config.md``: a diff id is the digest of the
        uncompressed layer)."""
        blob = self.blob_path(digest)
        where = f"layer {digest}"
        if not blob.is_file():
            raise ImageError("layer blob not in the store", where=where, hint="pull the image again")
        hasher = hashlib.sha256()
        if media_type in TAR_TYPES:
            with open(blob, "rb") as f:
                while chunk := f.read(1 << 20):
                    hasher.update(chunk)
            _check_diff_id(hasher, diff_id, where)
            yield blob
            return
        fd, tmp = tempfile.mkstemp(dir=self.ensure() / "tmp", suffix=".tar")
        try:
            with open(blob, "rb") as raw, os.fdopen(fd, "wb") as out:
                for chunk in _decompressed(raw, media_type, where):
                    hasher.update(chunk)
                    out.write(chunk)
            _check_diff_id(hasher, diff_id, where)
            yield Path(tmp)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def unpacked_layer(self, digest: str, media_type: str, diff_id: str) -> Path:
        """The layer's overlay lower directory, unpacked on first use through the safe extractor
        (``safetar``: whiteouts as overlayfs whiteouts, nothing outside the directory)."""
        from pyoci_nb.rootfs.safetar import safe_extract
        from pyoci_nb.rootfs.tree import remove_tree

        target = self.layer_path(diff_id)
        if target.is_dir():
            return target
        with self.locked():
            if target.is_dir():
                return target
            with self.uncompressed(digest, media_type, diff_id) as tar:
                work = Path(tempfile.mkdtemp(dir=self.root / "tmp", prefix="layer-"))
                try:
                    safe_extract(tar, work / "tree", error=ImageError, mode=0o755, whiteouts="overlay",
                                 xattrs=True, max_bytes=LAYER_MAX_BYTES)
                    os.rename(work / "tree", target)
                finally:
                    remove_tree(work)
        return target

    # -- references ----------------------------------------------------------------------------
    def _refs(self) -> dict:
        try:
            return json.loads((self.root / "refs.json").read_text())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise ImageError("unreadable refs.json", where=str(self.root / "refs.json"), why=str(exc),
                             hint="remove the file and pull the images again") from None

    def _write_refs(self, refs: dict) -> None:
        tmp = self.root / "refs.json.tmp"
        tmp.write_text(json.dumps(refs, indent=1, sort_keys=True))
        os.replace(tmp, self.root / "refs.json")

    def tag(self, name: str, record: dict) -> None:
        """Remember ``name`` (a normalised reference) -> ``record`` (``manifest``, ``index`` digests)."""
        with self.locked():
            refs = self._refs()
            refs[name] = record
            self._write_refs(refs)

    def lookup(self, name: str) -> dict | None:
        return self._refs().get(name) if self.root.exists() else None

    def references(self) -> dict[str, dict]:
        """Every reference the store knows, with its record."""
        return self._refs() if self.root.exists() else {}

    def untag(self, name: str) -> bool:
        """Forget ``name``; its blobs and layers stay until ``prune()``."""
        with self.locked():
            refs = self._refs()
            found = refs.pop(name, None) is not None
            self._write_refs(refs)
        return found

    def prune(self) -> list[str]:
        """Remove every blob and unpacked layer that no reference uses; return their digests."""
        from pyoci_nb.rootfs.tree import remove_tree

        removed = []
        with self.locked():
            used_blobs, used_layers = set(), set()
            for record in self._refs().values():
                for key in ("index", "manifest"):
                    if record.get(key):
                        used_blobs.add(record[key])
                manifest = json.loads(self.read_blob(record["manifest"]))
                used_blobs.add(manifest["config"]["digest"])
                used_blobs.update(layer["digest"] for layer in manifest.get("layers", []))
                config = json.loads(self.read_blob(manifest["config"]["digest"]))
                used_layers.update(config.get("rootfs", {}).get("diff_ids", []))
            for path in sorted((self.root / "blobs" / "sha256").iterdir()):
                if f"sha256:{path.name}" not in used_blobs:
                    path.unlink()
                    removed.append(f"sha256:{path.name}")
            for path in sorted((self.root / "layers" / "sha256").iterdir()):
                if f"sha256:{path.name}" not in used_layers:
                    remove_tree(path)
                    removed.append(f"sha256:{path.name}")
            for path in (self.root / "tmp").iterdir():
                remove_tree(path)
        return removed


def _check_diff_id(hasher, diff_id: str, where: str) -> None:
    if f"sha256:{hasher.hexdigest()}" != diff_id:
        raise ImageError("layer does not match its diff id", where=where,
                         why=f"uncompressed it hashes to sha256:{hasher.hexdigest()}, the image config's "
                             f"rootfs.diff_ids says {diff_id}",
                         hint="the image is damaged or was tampered with")


def _decompressed(raw, media_type: str, where: str):
    """The decompressed chunks of a gzip or zstd layer (``ImageError`` if damaged)."""
    try:
        if media_type in ZSTD_TYPES:
            try:
                import zstandard
            except ImportError:
                raise ImageError("zstd layers need the zstandard package", where=where,
                                 hint="pip install zstandard") from None
            reader = zstandard.ZstdDecompressor().stream_reader(raw)
        elif media_type in GZIP_TYPES:
            reader = gzip.GzipFile(fileobj=raw)
        else:
            raise ImageError(f"unsupported layer media type {media_type!r}", where=where,
                             why="OCI layers are tar, tar+gzip or tar+zstd")
        while chunk := reader.read(1 << 20):
            yield chunk
    except (OSError, EOFError) as exc:
        raise ImageError("damaged compressed layer", where=where, why=str(exc)) from None
    except Exception as exc:
        if type(exc).__name__ == "ZstdError":
            raise ImageError("damaged compressed layer", where=where, why=str(exc)) from None
        raise
