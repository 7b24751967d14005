"""Images from local files, with skopeo's transport names:

* ``oci:DIR[:TAG]`` -- an OCI image layout directory (image-spec ``image-layout.md``):
  ``oci-layout``, ``index.json`` (a tag is the ``org.opencontainers.image.ref.name`` annotation of
  an entry; without a tag the layout must hold exactly one entry) and ``blobs/<alg>/<hex>``;
* ``oci-archive:FILE[:TAG]`` -- that directory as a tar archive (``skopeo copy ... oci-archive:``),
  unpacked first through the safe extractor into a private temporary directory;
* ``docker-archive:FILE[:REPO:TAG]`` -- ``docker save`` output: ``manifest.json`` lists per image
  its ``Config`` file, ``RepoTags`` and ``Layers`` (tar files, plain or gzip); the Docker v2
  schema 2 manifest that describes it is made here from the files' digests.

A ``LayoutSource`` answers ``manifest()`` and ``fetch_blob()`` as ``RegistryClient`` does, so
``pull`` reads these exactly as it reads a registry: every blob verified against its digest
before it enters the store, whatever the files say.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pyoci_nb.image.reference import DIGEST_RE, ImageError
from pyoci_nb.image.registry import DOCKER_MANIFEST, MAX_MANIFEST_BYTES, digest_hasher

TRANSPORTS = ("oci", "oci-archive", "docker-archive")
_REF_NAME = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class LocalReference:
    """``TRANSPORT:PATH[:TAG]`` -- an image in a local layout directory or archive."""

    transport: str
    path: str
    tag: str | None = None

    @property
    def key(self) -> str:
        """How the local store names it."""
        return f"{self.transport}:{self.path}" + (f":{self.tag}" if self.tag else "")

    @property
    def reference(self) -> str | None:
        return self.tag

    def __str__(self) -> str:
        return self.key


def parse_local(text: str) -> LocalReference | None:
    """``oci:DIR[:TAG]`` and the like, or ``None`` when ``text`` names no local transport."""
    transport, colon, rest = text.partition(":")
    if not colon or transport not in TRANSPORTS:
        return None
    if not rest:
        raise ImageError(f"no path in {text!r}", where="reference",
                         hint=f"e.g. {transport}:/path/to/{'layout' if transport == 'oci' else 'image.tar'}:TAG")
    path, tag = rest, None
    if transport == "docker-archive":
        parts = rest.split(":")
        if len(parts) >= 3:
            path, tag = ":".join(parts[:-2]), ":".join(parts[-2:])
    elif ":" in rest:
        path, _, tag = rest.rpartition(":")
    return LocalReference(transport, os.path.abspath(path), tag or None)


class LayoutSource:
    """The image files of a ``LocalReference`` (see the module's docstring)."""

    def __init__(self, ref: LocalReference):
        self.ref = ref
        self._temp: str | None = None
        self._synthetic: dict[str, bytes] = {}      # docker-archive: manifests made here
        self._files: dict[str, Path] = {}           # docker-archive: digest -> file
        path = Path(ref.path)
        if not path.exists():
            raise ImageError("no such file or directory", where=ref.path, hint="check the path")
        if ref.transport == "oci":
            self.root = path
        else:
            from pyoci_nb.rootfs.safetar import safe_extract

            self._temp = tempfile.mkdtemp(prefix="pyoci-image-archive-")
            try:
                self.root = safe_extract(path, Path(self._temp) / "layout", error=ImageError,
                                         absolute_links_under=None, max_bytes=64 << 30)
                if ref.transport == "docker-archive":
                    self._read_docker_archive()
            except BaseException:
                self.close()
                raise
        if ref.transport != "docker-archive" and not (self.root / "index.json").is_file():
            raise ImageError("not an OCI image layout", where=str(self.root / "index.json"),
                             why="image-layout.md: a layout has index.json and blobs/",
                             hint="make one with skopeo copy ... oci:DIR:TAG or umoci init")

    def close(self) -> None:
        if self._temp:
            from pyoci_nb.rootfs.tree import remove_tree

            remove_tree(self._temp)
            self._temp = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- the RegistryClient interface ----------------------------------------------------------
    def manifest(self, reference: str | None) -> tuple[bytes, str, str]:
        """The index entry tagged ``reference`` (or the manifest/index with that digest):
        ``(body, media type, digest)``, the body checked against the digest."""
        if reference and DIGEST_RE.match(reference):
            digest, media_type = reference, ""
        else:
            digest, media_type = self._resolve_tag(reference)
        if digest in self._synthetic:
            return self._synthetic[digest], DOCKER_MANIFEST, digest
        body = self._read(digest, MAX_MANIFEST_BYTES)
        return body, media_type, digest

    def fetch_blob(self, digest: str, size: int, partial: Path, progress=None) -> Path:
        """Copy the blob into ``partial`` while hashing it; refuse it unless size and digest match."""
        where = f"{self.ref}@{digest}"
        hasher, have = digest_hasher(digest, where), 0
        if progress is not None:
            progress.reset(total=size)
        with self._open(digest) as src, open(partial, "wb") as out:
            while chunk := src.read(1 << 20):
                have += len(chunk)
                if have > size:
                    break
                hasher.update(chunk)
                out.write(chunk)
                if progress is not None:
                    progress.update(len(chunk))
        if have != size or f"{hasher.name}:{hasher.hexdigest()}" != digest:
            partial.unlink(missing_ok=True)
            raise ImageError("blob does not match its descriptor", where=where,
                             why=f"the file does not have {size} bytes hashing to {digest}",
                             hint="the layout is damaged or was tampered with; nothing was kept")
        return partial

    # -- files ---------------------------------------------------------------------------------
    def _open(self, digest: str):
        if digest in self._files:
            path = self._files[digest]
        else:
            algorithm, _, hexd = digest.partition(":")
            if not DIGEST_RE.match(digest):
                raise ImageError(f"invalid digest {digest!r}", where=str(self.ref))
            path = self.root / "blobs" / algorithm / hexd
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise ImageError("blob missing from the layout", where=str(path), why=exc.strerror,
                             hint="the layout is incomplete; copy it again") from None
        return os.fdopen(fd, "rb")

    def _read(self, digest: str, limit: int) -> bytes:
        with self._open(digest) as f:
            body = f.read(limit + 1)
        if len(body) > limit:
            raise ImageError("manifest too large", where=f"{self.ref}@{digest}", why=f"more than {limit} bytes")
        hasher = digest_hasher(digest, str(self.ref))
        hasher.update(body)
        if f"{hasher.name}:{hasher.hexdigest()}" != digest:
            raise ImageError("manifest does not match its digest", where=f"{self.ref}@{digest}",
                             hint="the layout is damaged or was tampered with")
        return body

    def _resolve_tag(self, tag: str | None) -> tuple[str, str]:
        if self.ref.transport == "docker-archive":
            entries = self._docker_entries
        else:
            try:
                entries = [(m.get("annotations", {}).get(_REF_NAME), m.get("digest"), m.get("mediaType", ""))
                           for m in json.loads((self.root / "index.json").read_text()).get("manifests", [])]
            except (OSError, ValueError, AttributeError) as exc:
                raise ImageError("unreadable index.json", where=str(self.root / "index.json"), why=str(exc)) from None
        same = _same_repo_tag if self.ref.transport == "docker-archive" else (lambda a, b: a == b)
        matches = [e for e in entries if (tag is None and len(entries) == 1) or (tag is not None and same(e[0], tag))]
        if not matches:
            names = ", ".join(sorted(str(e[0]) for e in entries)) or "none"
            raise ImageError(f"no image tagged {tag!r}" if tag else "the layout holds several images",
                             where=str(self.ref), why=f"tags in it: {names}", hint="name one: TRANSPORT:PATH:TAG")
        return matches[0][1], matches[0][2]

    def _read_docker_archive(self) -> None:
        """Describe each image of ``manifest.json`` by a Docker v2 schema 2 manifest of its files."""
        try:
            images = json.loads((self.root / "manifest.json").read_text())
            assert isinstance(images, list)
        except (OSError, ValueError, AssertionError) as exc:
            raise ImageError("not a docker-archive", where=f"{self.ref.path}: manifest.json",
                             why=str(exc) or "manifest.json must be a list", hint="make it with docker save") from None
        self._docker_entries = []
        for i, entry in enumerate(images):
            config = self._file(entry.get("Config"), f"manifest.json[{i}].Config")
            layers = [self._file(p, f"manifest.json[{i}].Layers[{j}]") for j, p in enumerate(entry.get("Layers") or [])]
            manifest = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", **config},
                        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip"
                                    if layer.pop("gzip") else "application/vnd.oci.image.layer.v1.tar", **layer}
                                   for layer in layers]}
            config.pop("gzip")
            body = json.dumps(manifest).encode()
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
            self._synthetic[digest] = body
            for tag in entry.get("RepoTags") or [None]:
                self._docker_entries.append((tag, digest, DOCKER_MANIFEST))

    def _file(self, name, where: str) -> dict:
        """Digest, size and compression of a file of the archive (inside it, no link followed)."""
        from pyoci_nb.rootfs.safetar import member_parts

        parts = member_parts(name) if isinstance(name, str) else None
        if not parts:
            raise ImageError(f"invalid file name {name!r}", where=f"{self.ref.path}: {where}",
                             why="names are relative paths inside the archive")
        path = self.root.joinpath(*parts)
        hasher, size = hashlib.sha256(), 0
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise ImageError("file missing from the archive", where=f"{self.ref.path}: {where}",
                             why=exc.strerror) from None
        with os.fdopen(fd, "rb") as f:
            head = f.read(2)
            f.seek(0)
            while chunk := f.read(1 << 20):
                hasher.update(chunk)
                size += len(chunk)
        digest = "sha256:" + hasher.hexdigest()
        self._files[digest] = path
        return {"digest": digest, "size": size, "gzip": head == b"\x1f\x8b"}


def _same_repo_tag(a: str | None, b: str) -> bool:
    """Whether two ``RepoTags`` name the same image once normalised (``demo/app:v1`` is
    ``docker.io/demo/app:v1``)."""
    from pyoci_nb.image.reference import parse_reference

    try:
        return a is not None and parse_reference(a).key == parse_reference(b).key
    except ImageError:
        return a == b


__all__ = ["LayoutSource", "LocalReference", "parse_local"]
