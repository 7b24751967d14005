"""Image references, parsed as docker parses them (``github.com/distribution/reference``).

A reference is ``[REGISTRY/]REPOSITORY[:TAG][@DIGEST]``:

* the first ``/``-separated component is a registry when it holds a ``.`` or a ``:`` or is
  ``localhost``; otherwise the registry is Docker Hub, ``docker.io``, and a one-component
  repository gets the ``library/`` namespace (``alpine`` -> ``docker.io/library/alpine``);
* repository components are lowercase letters and digits separated by ``.``, ``_``, ``__`` or
  runs of ``-``; a tag is ``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``; without tag or digest the tag is
  ``latest``;
* a digest is ``ALGORITHM:HEX`` (image-spec ``descriptor.md``: ``sha256`` has 64 lowercase hex
  digits, ``sha512`` 128); a reference with a digest names that content whatever the tag says.

Docker Hub's API lives at ``registry-1.docker.io``; plain HTTP is used only for loopback
registries (``localhost``, ``127.0.0.0/8``, ``[::1]``) unless a registry is marked insecure.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from pyoci_nb.errors import PyociError


class ImageError(PyociError):
    """An image reference, registry, manifest, blob or layer is unusable."""


DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_REPOSITORY_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_DOMAIN_RE = re.compile(r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
                        r"|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DIGEST_RE = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")


@dataclass(frozen=True)
class Reference:
    """A parsed image reference: ``registry`` (``docker.io``, ``127.0.0.1:5000``), ``repository``
    (``library/alpine``), ``tag`` (``None`` with a digest only) and ``digest``."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        """The host (and port) serving the registry's ``/v2/`` API."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def name(self) -> str:
        """``REGISTRY/REPOSITORY``."""
        return f"{self.registry}/{self.repository}"

    @property
    def reference(self) -> str:
        """What the manifest endpoint takes: the digest if there is one, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def key(self) -> str:
        """How the local store names it: ``NAME@DIGEST`` when there is a digest, else ``NAME:TAG``."""
        return f"{self.name}@{self.digest}" if self.digest else f"{self.name}:{self.tag or 'latest'}"

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def is_loopback(self) -> bool:
        """Whether the registry is on this host's loopback (plain HTTP allowed)."""
        host = self.registry.rsplit(":", 1)[0] if not self.registry.endswith("]") else self.registry
        if self.registry.startswith("["):
            host = self.registry[1:].split("]", 1)[0]
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False


def parse_reference(text: str) -> Reference:
    """``text`` as docker reads it (see the module's docstring); ``ImageError`` naming the part
    that breaks the grammar otherwise."""
    if not isinstance(text, str) or not text or text != text.strip():
        raise ImageError(f"invalid image reference {text!r}", where="reference",
                         why="a reference is [REGISTRY/]REPOSITORY[:TAG][@DIGEST] without spaces",
                         hint="e.g. alpine:3.20, 127.0.0.1:5000/demo:1 or repo@sha256:<64 hex digits>")
    rest, _, digest = text.partition("@")
    if digest and not DIGEST_RE.match(digest):
        raise ImageError(f"invalid digest {digest!r} in {text!r}", where="reference",
                         why="a digest is sha256: and 64 lowercase hex digits (or sha512: and 128)",
                         hint="copy the digest from `skopeo inspect` or the registry")
    registry = DOCKER_HUB
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, rest = first, remainder
        if not _DOMAIN_RE.match(registry):
            raise ImageError(f"invalid registry {registry!r} in {text!r}", where="reference",
                             why="a registry is a host name or address with an optional :PORT",
                             hint="e.g. registry.example.org or 127.0.0.1:5000")
    name, tag = rest, None
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        name, _, tag = rest.rpartition(":")
        if not _TAG_RE.match(tag):
            raise ImageError(f"invalid tag {tag!r} in {text!r}", where="reference",
                             why="a tag is 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'")
    if registry in (DOCKER_HUB, "index.docker.io"):
        registry = DOCKER_HUB
        if "/" not in name:
            name = f"library/{name}"
    if not _REPOSITORY_RE.match(name) or len(name) > 255:
        raise ImageError(f"invalid repository name {name!r} in {text!r}", where="reference",
                         why="repository names are lowercase letters and digits separated by '/', '.', '_' "
                             "or '-' (at most 255 characters)",
                         hint="e.g. library/alpine or myteam/tool")
    if tag is None and not digest:
        tag = "latest"
    return Reference(registry, name, tag, digest or None)
