"""Images from local files: an OCI layout directory, and the oci-archive and docker-archive
tarballs that skopeo writes from it."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import pytest
from registry_harness import SKOPEO, tar_bytes

import pyoci_nb
from pyoci_nb.image import ImageError, pull

pytestmark = pytest.mark.root


@pytest.fixture
def tagged(layout, busybox_layer):
    top = tar_bytes([("etc", "dir", None), ("etc/motd", "file", b"from a layout\n"),
                     ("etc/.wh.hostname", "file", b"")])
    manifest = layout.image([busybox_layer, top], config={"Env": ["FROM=layout"], "Cmd": ["sh"]})
    layout.tag("v1", manifest)
    return manifest


def _run_motd(image, tmp_path):
    bundle = pyoci_nb.Bundle.from_image(image, tmp_path / "bundle", overlay=False)
    assert not (bundle.path / "rootfs" / "etc" / "hostname").exists()        # the whiteout applied
    result = pyoci_nb.run(bundle, ["sh", "-c", "echo $FROM; cat /etc/motd"], capture_output=True,
                          root=str(tmp_path / "state"))
    return result.stdout.decode().split("\n")[:2]


def test_oci_layout_directory(layout, tagged, store, tmp_path):
    image = pull(f"oci:{layout.path}:v1", store=store, progress=False)
    assert image.manifest_digest == tagged["digest"]
    assert str(image.reference) == f"oci:{layout.path}:v1"
    assert store.lookup(f"oci:{layout.path}:v1")["manifest"] == tagged["digest"]
    assert _run_motd(image, tmp_path) == ["layout", "from a layout"]


@pytest.mark.parametrize("transport, name, media_type", [
    ("oci-archive", "v1", "application/vnd.oci.image.manifest.v1+json"),
    ("docker-archive", "demo/app:v1", "application/vnd.docker.distribution.manifest.v2+json"),
])
def test_archives_written_by_skopeo(transport, name, media_type, layout, tagged, store, tmp_path):
    archive = tmp_path / "image.tar"
    subprocess.run([SKOPEO, "copy", "--quiet", f"oci:{layout.path}:v1", f"{transport}:{archive}:{name}"],
                   check=True, capture_output=True)
    image = pull(f"{transport}:{archive}:{name}", store=store, progress=False)
    assert image.manifest["mediaType"] == media_type and image.process_config["Env"] == ["FROM=layout"]
    assert _run_motd(image, tmp_path) == ["layout", "from a layout"]
    with pytest.raises(ImageError) as info:
        pull(f"{transport}:{archive}:{name[:-2]}nope", store=store, progress=False)
    assert f"no image tagged '{name[:-2]}nope'" in str(info.value) and name in str(info.value)
    assert list(Path(tempfile.gettempdir()).glob("pyoci-image-archive-*")) == []   # the unpacked archive is gone


def test_tampered_layout_blob_is_refused(layout, tagged, store):
    manifest = json.loads((layout.path / "blobs/sha256" / tagged["digest"][7:]).read_bytes())
    layer = layout.path / "blobs/sha256" / manifest["layers"][1]["digest"][7:]
    data = bytearray(layer.read_bytes())
    data[-1] ^= 1
    layer.write_bytes(bytes(data))
    with pytest.raises(ImageError) as info:
        pull(f"oci:{layout.path}:v1", store=store, progress=False)
    assert "blob does not match its descriptor" in str(info.value)
    assert not store.has_blob(manifest["layers"][1]["digest"]) and not store.references()


def test_layout_errors_name_the_path_and_the_tags(layout, tagged, store, tmp_path):
    with pytest.raises(ImageError) as info:
        pull(f"oci:{layout.path}:v9", store=store, progress=False)
    assert "no image tagged 'v9'" in str(info.value) and "tags in it: v1" in str(info.value)
    with pytest.raises(ImageError) as info:
        pull(f"oci:{tmp_path / 'missing'}:v1", store=store, progress=False)
    assert "no such file or directory" in str(info.value) and str(tmp_path / "missing") in str(info.value)
