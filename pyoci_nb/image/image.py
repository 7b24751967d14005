"""Pulled images: ``pull(ref)`` and the ``Image`` it returns.

An image (image-spec ``manifest.md``) is a manifest naming a *config* blob (``config.md``: the
platform, the history, ``rootfs.diff_ids`` and the defaults a container starts with -- Entrypoint,
Cmd, Env, WorkingDir, User ...) and an ordered list of *layers*, base first.  A tag may name an
*index* instead (``image-index.md``, Docker's "manifest list"): one manifest per platform, each
with ``platform.os``, ``architecture`` and (for ARM) ``variant``; ``pull`` picks this host's.
"""

from __future__ import annotations

import html
import json
import platform as _platform
from dataclasses import dataclass

from pyoci_nb.image.layout import LayoutSource, LocalReference, parse_local
from pyoci_nb.image.reference import ImageError, Reference, parse_reference
from pyoci_nb.image.registry import INDEX_TYPES, MANIFEST_TYPES, RegistryClient
from pyoci_nb.image.store import LAYER_TYPES, ImageStore

_ARCHITECTURES = {"x86_64": ("amd64", None), "amd64": ("amd64", None), "aarch64": ("arm64", "v8"),
                  "arm64": ("arm64", "v8"), "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"),
                  "i686": ("386", None), "i386": ("386", None), "ppc64le": ("ppc64le", None),
                  "s390x": ("s390x", None), "riscv64": ("riscv64", None)}


def host_platform() -> dict:
    """This host's platform in image-spec terms (``os``, ``architecture``, ``variant``: the
    values of Go's GOOS/GOARCH that indexes use)."""
    architecture, variant = _ARCHITECTURES.get(_platform.machine(), (_platform.machine(), None))
    result = {"os": "linux", "architecture": architecture}
    if variant:
        result["variant"] = variant
    return result


def platform_text(p: dict | None) -> str:
    if not p:
        return "unknown"
    return "/".join(x for x in (p.get("os"), p.get("architecture"), p.get("variant")) if x)


def parse_source(text: str) -> Reference | LocalReference:
    """A registry reference (``parse_reference``) or a local one (``oci:DIR:TAG``,
    ``oci-archive:FILE:TAG``, ``docker-archive:FILE:REPO:TAG``)."""
    return parse_local(text) or parse_reference(text)


def choose_manifest(index: dict, wanted: dict, where: str) -> dict:
    """The descriptor of ``index``'s manifest for the platform ``wanted`` (os and architecture
    equal; the variant equal when both give one, an exact variant preferred)."""
    candidates = []
    for entry in index.get("manifests") or []:
        p = entry.get("platform") or {}
        if entry.get("mediaType") not in MANIFEST_TYPES + INDEX_TYPES:
            continue
        if p.get("os") != wanted["os"] or p.get("architecture") != wanted["architecture"]:
            continue
        if p.get("variant") and wanted.get("variant") and p["variant"] != wanted["variant"]:
            continue
        candidates.append((p.get("variant") != wanted.get("variant"), entry))
    if not candidates:
        offered = ", ".join(platform_text(e.get("platform")) for e in index.get("manifests") or []) or "none"
        raise ImageError(f"no image for {platform_text(wanted)}", where=where,
                         why=f"the index offers: {offered}",
                         hint="pull on a host of one of those platforms, or pass platform=")
    return sorted(candidates, key=lambda c: c[0])[0][1]


@dataclass
class Layer:
    """One layer of an image: its blob ``digest``, ``size`` (compressed), ``media_type``,
    ``diff_id`` (digest of the uncompressed tar) and the ``history`` line that made it."""

    digest: str
    size: int
    media_type: str
    diff_id: str
    history: str = ""


class Image:
    """An image in the local store: ``reference``, ``manifest_digest``, ``index_digest`` (when the
    reference named an index), ``manifest``, ``config`` (the image config JSON), ``platform``,
    ``layers``; ``layer_dirs()`` unpacks the layers (once) as overlay lower directories."""

    def __init__(self, store: ImageStore, reference: Reference | LocalReference, manifest_digest: str,
                 index_digest: str | None = None):
        self.store = store
        self.reference = reference
        self.manifest_digest = manifest_digest
        self.index_digest = index_digest
        self.manifest = _json(store.read_blob(manifest_digest), f"manifest {manifest_digest}")
        config_descriptor = self.manifest.get("config") or {}
        self.config = _json(store.read_blob(config_descriptor.get("digest", "")), "image config")
        self.layers = self._layers()

    @classmethod
    def load(cls, reference: str | Reference | LocalReference, store: ImageStore | None = None) -> Image:
        """The image stored under ``reference`` (pulled before); ``ImageError`` if it is not there."""
        store = store or ImageStore()
        ref = parse_source(reference) if isinstance(reference, str) else reference
        record = store.lookup(ref.key)
        if record is None:
            raise ImageError("image not in the local store", where=str(ref), hint=f"pull it first: pull({str(ref)!r})")
        return cls(store, ref, record["manifest"], record.get("index"))

    def _layers(self) -> list[Layer]:
        descriptors = self.manifest.get("layers") or []
        diff_ids = (self.config.get("rootfs") or {}).get("diff_ids") or []
        if len(diff_ids) != len(descriptors):
            raise ImageError("the image config does not match its manifest", where=str(self.reference),
                             why=f"{len(descriptors)} layers but {len(diff_ids)} rootfs.diff_ids")
        history = [h for h in self.config.get("history") or [] if not h.get("empty_layer")]
        return [Layer(d["digest"], int(d.get("size", 0)), d.get("mediaType", ""), diff_id,
                      (history[i].get("created_by", "") if i < len(history) else ""))
                for i, (d, diff_id) in enumerate(zip(descriptors, diff_ids, strict=False))]

    @property
    def platform(self) -> dict:
        """``os``/``architecture``/``variant`` from the image config."""
        return {k: self.config[k] for k in ("os", "architecture", "variant") if self.config.get(k)}

    @property
    def process_config(self) -> dict:
        """The config's ``config`` object (Entrypoint, Cmd, Env, WorkingDir, User ...)."""
        return self.config.get("config") or {}

    @property
    def size(self) -> int:
        return sum(layer.size for layer in self.layers)

    def layer_dirs(self) -> list:
        """The unpacked layers, base first (overlayfs wants them top first: reverse them)."""
        return [self.store.unpacked_layer(layer.digest, layer.media_type, layer.diff_id) for layer in self.layers]

    def changes(self) -> list[dict[str, list[str]]]:
        """Per layer (base first) the paths it ``added``, ``changed`` (present in a layer below)
        and ``removed`` (its whiteouts; an opaque directory counts as ``DIR/*``), read from the
        unpacked layers (unpacking them if needed)."""
        import os
        import stat

        present: set[str] = set()
        result = []
        for layer_dir in self.layer_dirs():
            added, changed, removed = [], [], []
            for dirpath, dirnames, filenames in os.walk(layer_dir):
                rel_dir = os.path.relpath(dirpath, layer_dir)
                if rel_dir != "." and _is_opaque(dirpath):
                    removed.append(f"{rel_dir}/*")
                    present.difference_update({p for p in present if p.startswith(rel_dir + "/")})
                for name in dirnames + filenames:
                    rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                    st = os.lstat(os.path.join(dirpath, name))
                    if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                        removed.append(rel)
                        present.difference_update({p for p in present if p == rel or p.startswith(rel + "/")})
                    elif rel in present:
                        if not stat.S_ISDIR(st.st_mode):
                            changed.append(rel)
                    else:
                        added.append(rel)
                        present.add(rel)
            result.append({"added": sorted(added), "changed": sorted(changed), "removed": sorted(removed)})
        return result

    def _unpacked(self) -> bool:
        return all(self.store.layer_path(layer.diff_id).is_dir() for layer in self.layers)

    # -- reprs ---------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"<Image {self.reference} {self.manifest_digest[:19]} {platform_text(self.platform)}>"

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(self.text())

    def text(self) -> str:
        """A plain-text summary: reference, digests, platform, process defaults, layers."""
        from pyoci_nb.rootfs.safetar import size_text

        c = self.process_config
        lines = [f"Image {self.reference}", f"  manifest  {self.manifest_digest}"]
        if self.index_digest:
            lines.append(f"  index     {self.index_digest}")
        lines += [f"  platform  {platform_text(self.platform)}",
                  f"  command   {json.dumps((c.get('Entrypoint') or []) + (c.get('Cmd') or []))}",
                  f"  env       {', '.join(c.get('Env') or [])}",
                  f"  layers    {len(self.layers)} ({size_text(self.size)})"]
        for layer in self.layers:
            lines.append(f"    {layer.digest[:19]}  {size_text(layer.size):>10}  {layer.history[:60]}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from pyoci_nb.rootfs.safetar import size_text

        e = html.escape
        c = self.process_config
        # per layer files added/changed/removed, when the layers are unpacked already (a repr unpacks nothing)
        changes = self.changes() if self._unpacked() else [None] * len(self.layers)
        rows = "".join(f"<tr><td><code>{e(layer.digest[:19])}</code></td><td>{e(size_text(layer.size))}</td>"
                       f"<td>{e(layer.media_type.rsplit('.', 1)[-1])}</td><td><code>{e(layer.history)}</code></td>"
                       f"<td>{_change_text(change)}</td></tr>"
                       for layer, change in zip(self.layers, changes, strict=False))
        facts = [("manifest", self.manifest_digest), ("index", self.index_digest or ""),
                 ("platform", platform_text(self.platform)),
                 ("command", json.dumps((c.get("Entrypoint") or []) + (c.get("Cmd") or []))),
                 ("env", " ".join(c.get("Env") or [])), ("workdir", c.get("WorkingDir") or "/"),
                 ("user", c.get("User") or "")]
        head = "".join(f"<tr><th style='text-align:left'>{e(k)}</th><td><code>{e(str(v))}</code></td></tr>"
                       for k, v in facts if v)
        return (f"<div class='pyoci-image'><b>Image</b> <code>{e(str(self.reference))}</code>"
                f"<table>{head}</table><table><tr><th>layer</th><th>size</th><th>type</th>"
                f"<th>created by</th><th>files</th></tr>{rows}</table></div>")


def _is_opaque(directory: str) -> bool:
    import os

    try:
        return os.getxattr(directory, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


def _change_text(change: dict | None) -> str:
    """``+added ~changed -removed`` with the removed paths in a tooltip ("" when unknown)."""
    if change is None:
        return ""
    title = html.escape("removed: " + ", ".join(change["removed"][:20])) if change["removed"] else ""
    return (f"<span title='{title}'>+{len(change['added'])} ~{len(change['changed'])} "
            f"-{len(change['removed'])}</span>")


def _json(data: bytes, where: str) -> dict:
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise ImageError("not valid JSON", where=where, why=str(exc)) from None
    if not isinstance(value, dict):
        raise ImageError("not a JSON object", where=where)
    return value


def pull(reference: str, *, store: ImageStore | None = None, platform: dict | None = None,
         insecure: bool = False, credentials: tuple[str, str] | None = None,
         progress: bool = True) -> Image:
    """Pull ``reference`` from its registry (or a local ``oci:``, ``oci-archive:`` or
    ``docker-archive:`` source) into the local store and return the ``Image``.

    Resolves the tag (or digest) to a manifest, choosing this host's platform (or ``platform``)
    in an index; downloads the config and each missing layer blob with a progress bar
    (``tqdm.auto``: a widget in a notebook), every blob verified against its digest before it
    enters the store.  Blobs already in the store are not downloaded again; a download that
    broke off resumes."""
    ref = parse_source(reference) if isinstance(reference, str) else reference
    store = store or ImageStore()
    store.ensure()
    source = (LayoutSource(ref) if isinstance(ref, LocalReference)
              else RegistryClient(ref, credentials=credentials, insecure=insecure))
    with source as client:
        body, media_type, digest = client.manifest(ref.reference)
        document = _json(body, str(ref))
        media_type = document.get("mediaType") or media_type
        index_digest = None
        if media_type in INDEX_TYPES or (not media_type and "manifests" in document):
            store.add_bytes(digest, body)
            index_digest = digest
            chosen = choose_manifest(document, platform or host_platform(), str(ref))
            body, media_type, digest = client.manifest(chosen["digest"])
            document = _json(body, f"{ref.name}@{chosen['digest']}")
            media_type = document.get("mediaType") or chosen.get("mediaType")
        if media_type not in MANIFEST_TYPES:
            raise ImageError(f"unsupported manifest type {media_type!r}", where=str(ref),
                             why="OCI image manifests and Docker v2 schema 2 manifests are understood",
                             hint="convert the image with skopeo copy --format oci")
        layers = document.get("layers") or []
        for i, layer in enumerate(layers):
            if layer.get("mediaType") not in LAYER_TYPES:
                raise ImageError(f"unsupported layer media type {layer.get('mediaType')!r}",
                                 where=f"{ref}: layers[{i}]", why="layers are tar, tar+gzip or tar+zstd")
        config_descriptor = document.get("config") or {}
        for descriptor in [config_descriptor] + layers:
            _fetch(client, store, descriptor, progress, str(ref))
        store.add_bytes(digest, body)
    store.tag(ref.key, {"manifest": digest, "index": index_digest})
    if isinstance(ref, Reference) and ref.tag and ref.digest:
        store.tag(f"{ref.name}:{ref.tag}", {"manifest": digest, "index": index_digest})
    return Image(store, ref, digest, index_digest)


def _fetch(client: RegistryClient | LayoutSource, store: ImageStore, descriptor: dict, progress: bool,
           where: str) -> None:
    digest, size = descriptor.get("digest"), descriptor.get("size")
    if not isinstance(size, int) or size < 0 or not isinstance(digest, str):
        raise ImageError("invalid descriptor", where=where, why=f"digest {digest!r}, size {size!r}")
    if store.has_blob(digest):
        return
    partial = store.partial_path(digest)
    bar = None
    if progress and size > 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=size, unit="B", unit_scale=True, desc=digest[7:19], leave=False)
    try:
        store.add_verified_file(digest, client.fetch_blob(digest, size, partial, bar))
    finally:
        if bar is not None:
            bar.close()


def image_for(reference: str, *, store: ImageStore | None = None, pull_missing: bool = True, **pull_options) -> Image:
    """The stored image for ``reference``, pulled first when it is not in the store."""
    store = store or ImageStore()
    ref = parse_source(reference)
    if store.lookup(ref.key) is None and pull_missing:
        return pull(reference, store=store, **pull_options)
    return Image.load(ref, store)


__all__ = ["Image", "Layer", "choose_manifest", "host_platform", "image_for", "parse_source", "pull"]
