"""OCI images: pull from registries, a local store of layers unpacked once, bundles from images.

* ``parse_reference(text)`` -- ``alpine``, ``127.0.0.1:5000/demo:1``, ``repo@sha256:...`` as docker
  reads them;
* ``pull(ref)`` -- from ``oci:DIR:TAG``, ``oci-archive:FILE:TAG``, ``docker-archive:FILE:REPO:TAG``
  or, for any other reference, the OCI distribution API (``/v2/``), bearer tokens and basic auth, indexes
  resolved to this host's platform, every blob verified against its digest, resumable downloads,
  progress bars; returns an ``Image`` (rich repr: platform, layers, history);
* ``ImageStore`` -- content-addressed blobs and layers unpacked once by diff id (overlayfs lower
  directories with overlay whiteouts), ``references()``, ``untag()``, ``prune()``;
* ``unpack_bundle(image, dest)`` (``Bundle.from_image``) -- config.json as ``umoci unpack``
  writes it, with an overlay snapshot of the shared layers or a flat rootfs.

Command line: ``python -m pyoci_nb.image pull|list|inspect|unpack|rm|prune``.
"""

from pyoci_nb.image.bundle import unpack_bundle
from pyoci_nb.image.image import Image, Layer, host_platform, image_for, parse_source, pull
from pyoci_nb.image.layout import LocalReference
from pyoci_nb.image.reference import ImageError, Reference, parse_reference
from pyoci_nb.image.store import ImageStore

__all__ = ["Image", "ImageError", "ImageStore", "Layer", "LocalReference", "Reference", "host_platform",
           "image_for", "parse_reference", "parse_source", "pull", "unpack_bundle"]
