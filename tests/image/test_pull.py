"""Pulls from a real docker-registry on loopback, filled by skopeo from OCI layouts built here."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from registry_harness import Registry, TokenServer, sha256, tar_bytes

from pyoci_nb.image import Image, ImageError, host_platform, pull

pytestmark = pytest.mark.root


def _files(image: Image) -> dict[str, bytes]:
    """The regular files of the image's top layer as the store unpacked them."""
    out = {}
    for layer_dir in image.layer_dirs()[-1:]:
        for path in layer_dir.rglob("*"):
            if path.is_file() and not path.is_symlink() and path.parts[-2] == "etc":
                out[str(path.relative_to(layer_dir))] = path.read_bytes()
    return out


def _push_simple(layout, registry, busybox_layer, name="demo/bb:v1", **image_options):
    top = tar_bytes([("etc", "dir", None), ("etc/motd", "file", b"from the image\n")])
    manifest = layout.image([busybox_layer, top], config={"Env": ["GREETING=hello"], "Cmd": ["sh"]},
                            history=["busybox base", "COPY motd /etc/motd"], **image_options)
    layout.tag("v1", manifest)
    registry.push(layout.path, "v1", name)
    return manifest


def test_pull_by_tag_then_by_digest_verifies_and_stores_every_blob(registry, layout, store, busybox_layer):
    manifest = _push_simple(layout, registry, busybox_layer)
    image = pull(f"{registry.host}/demo/bb:v1", store=store, progress=False)
    assert image.manifest_digest == manifest["digest"]
    assert image.process_config["Env"] == ["GREETING=hello"]
    assert [layer.history for layer in image.layers] == ["busybox base", "COPY motd /etc/motd"]
    for path in (store.root / "blobs" / "sha256").iterdir():        # content-addressed, all verified
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name
    assert len(list((store.root / "blobs" / "sha256").iterdir())) == 4   # manifest, config, 2 layers
    assert _files(image) == {"etc/motd": b"from the image\n"}

    by_digest = pull(f"{registry.host}/demo/bb@{manifest['digest']}", store=store, progress=False)
    assert by_digest.manifest_digest == manifest["digest"]
    assert set(store.references()) == {f"{registry.host}/demo/bb:v1", f"{registry.host}/demo/bb@{manifest['digest']}"}
    text = image.text()
    assert "linux/amd64" in text and "COPY motd /etc/motd" in text and manifest["digest"] in text
    assert "COPY motd /etc/motd" in image._repr_html_()


def test_unknown_tag_and_digest_are_refused_clearly(registry, layout, store, busybox_layer):
    _push_simple(layout, registry, busybox_layer)
    with pytest.raises(ImageError) as info:
        pull(f"{registry.host}/demo/bb:nope", store=store, progress=False)
    assert "manifest not found: HTTP 404" in str(info.value) and "demo/bb:nope" in str(info.value)
    assert not store.references()


def test_two_platform_index_gives_this_hosts_image_or_the_one_asked_for(registry, layout, store, busybox_layer):
    amd = layout.image([busybox_layer, tar_bytes([("etc", "dir", None), ("etc/arch", "file", b"amd64\n")])])
    arm = layout.image([busybox_layer, tar_bytes([("etc", "dir", None), ("etc/arch", "file", b"arm64\n")])],
                       architecture="arm64")
    arm["platform"]["variant"] = "v8"
    index = layout.index([amd, arm])
    layout.tag("multi", index)
    registry.push(layout.path, "multi", "demo/multi:1", all_platforms=True)

    image = pull(f"{registry.host}/demo/multi:1", store=store, progress=False)
    assert host_platform()["architecture"] == "amd64"
    assert image.index_digest == index["digest"] and image.manifest_digest == amd["digest"]
    assert _files(image) == {"etc/arch": b"amd64\n"}
    other = pull(f"{registry.host}/demo/multi:1", store=store, progress=False,
                 platform={"os": "linux", "architecture": "arm64", "variant": "v8"})
    assert other.manifest_digest == arm["digest"] and _files(other) == {"etc/arch": b"arm64\n"}
    with pytest.raises(ImageError) as info:
        pull(f"{registry.host}/demo/multi:1", store=store, progress=False,
             platform={"os": "linux", "architecture": "s390x"})
    assert "no image for linux/s390x" in str(info.value)
    assert "linux/amd64, linux/arm64/v8" in str(info.value)


def test_anonymous_bearer_token_from_the_challenge(tmp_path, layout, store, busybox_layer):
    tokens = TokenServer(tmp_path)
    registry = Registry(tmp_path / "registry", auth=tokens.registry_auth())
    try:
        r = httpx.get(f"http://{registry.host}/v2/")
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer realm=")
        _push_simple(layout, registry, busybox_layer)
        tokens.hits.clear()
        image = pull(f"{registry.host}/demo/bb:v1", store=store, progress=False)
        assert image.process_config["Env"] == ["GREETING=hello"]
        assert tokens.hits and tokens.hits[0]["query"] == {"scope": "repository:demo/bb:pull",
                                                           "service": "pyoci-test-registry"}
        assert tokens.hits[0]["authorization"] == ""            # anonymous
    finally:
        registry.stop()
        tokens.stop()


def test_token_server_with_credentials_from_the_docker_config(tmp_path, layout, store, busybox_layer, monkeypatch):
    tokens = TokenServer(tmp_path, users={"alice": "s3cret"})
    registry = Registry(tmp_path / "registry", auth=tokens.registry_auth())
    try:
        layout.tag("v1", layout.image([busybox_layer]))
        registry.push(layout.path, "v1", "demo/bb:v1", creds="alice:s3cret")
        monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "nodocker"))
        with pytest.raises(ImageError) as info:
            pull(f"{registry.host}/demo/bb:v1", store=store, progress=False)
        assert "the token server refused: HTTP 401" in str(info.value)
        assert "credentials" in str(info.value)
        config = tmp_path / "docker"
        config.mkdir()
        (config / "config.json").write_text(json.dumps(
            {"auths": {registry.host: {"auth": base64.b64encode(b"alice:s3cret").decode()}}}))
        monkeypatch.setenv("DOCKER_CONFIG", str(config))
        tokens.hits.clear()
        pull(f"{registry.host}/demo/bb:v1", store=store, progress=False)
        assert tokens.hits[-1]["authorization"] == "Basic " + base64.b64encode(b"alice:s3cret").decode()
    finally:
        registry.stop()
        tokens.stop()


def test_corrupted_blob_is_refused_and_nothing_is_kept(registry, layout, store, busybox_layer):
    manifest = _push_simple(layout, registry, busybox_layer)
    layer = json.loads((layout.path / "blobs/sha256" / manifest["digest"][7:]).read_bytes())["layers"][1]
    data = registry.blob_data(layer["digest"])
    content = bytearray(data.read_bytes())
    content[len(content) // 2] ^= 0xFF                     # same size, one byte changed
    data.write_bytes(bytes(content))
    with pytest.raises(ImageError) as info:
        pull(f"{registry.host}/demo/bb:v1", store=store, progress=False)
    assert "blob does not match its descriptor" in str(info.value) and layer["digest"] in str(info.value)
    assert not store.has_blob(layer["digest"])
    assert list((store.root / "tmp").iterdir()) == []
    assert not store.references()


class CuttingProxy:
    """An HTTP proxy in front of the registry that breaks off the first response for one blob
    halfway (the connection closes after half the body); every request's Range is recorded."""

    def __init__(self, upstream: str, digest: str):
        self.ranges: list[str | None] = []
        proxy = self
        self.cut_done = False

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("range", "accept", "authorization")}
                if digest in self.path:
                    proxy.ranges.append(self.headers.get("Range"))
                with httpx.stream("GET", f"http://{upstream}{self.path}", headers=headers,
                                  follow_redirects=True) as r:
                    body = r.read()
                self.send_response(r.status_code)
                for key in ("Content-Type", "Docker-Content-Digest", "Content-Range", "WWW-Authenticate"):
                    if key in r.headers:
                        self.send_header(key, r.headers[key])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if digest in self.path and not proxy.cut_done:
                    proxy.cut_done = True
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_interrupted_download_resumes_with_a_range_request(registry, layout, store, busybox_layer):
    manifest = _push_simple(layout, registry, busybox_layer)
    base = json.loads((layout.path / "blobs/sha256" / manifest["digest"][7:]).read_bytes())["layers"][0]
    proxy = CuttingProxy(registry.host, base["digest"])
    try:
        image = pull(f"{proxy.host}/demo/bb:v1", store=store, progress=False)
    finally:
        proxy.stop()
    assert proxy.cut_done
    half = base["size"] // 2
    assert proxy.ranges == [None, f"bytes={half}-"], "the second request asks only for the missing half"
    assert hashlib.sha256(store.blob_path(base["digest"]).read_bytes()).hexdigest() == base["digest"][7:]
    assert image.layers[0].digest == base["digest"]


def test_partial_download_of_an_earlier_pull_is_resumed(registry, layout, store, busybox_layer):
    manifest = _push_simple(layout, registry, busybox_layer)
    base = json.loads((layout.path / "blobs/sha256" / manifest["digest"][7:]).read_bytes())["layers"][0]
    blob = (layout.path / "blobs/sha256" / base["digest"][7:]).read_bytes()
    store.partial_path(base["digest"]).write_bytes(blob[:1000])       # what a killed pull left
    proxy = CuttingProxy(registry.host, base["digest"])
    proxy.cut_done = True                                              # no cut this time
    try:
        pull(f"{proxy.host}/demo/bb:v1", store=store, progress=False)
    finally:
        proxy.stop()
    assert proxy.ranges == ["bytes=1000-"]
    assert store.blob_path(base["digest"]).read_bytes() == blob
    assert not store.partial_path(base["digest"]).exists()


def test_a_damaged_partial_download_is_not_trusted(registry, layout, store, busybox_layer):
    manifest = _push_simple(layout, registry, busybox_layer)
    base = json.loads((layout.path / "blobs/sha256" / manifest["digest"][7:]).read_bytes())["layers"][0]
    store.partial_path(base["digest"]).write_bytes(b"\0" * 1000)
    with pytest.raises(ImageError) as info:
        pull(f"{registry.host}/demo/bb:v1", store=store, progress=False)
    assert "blob does not match its descriptor" in str(info.value)
    assert not store.partial_path(base["digest"]).exists()
    pull(f"{registry.host}/demo/bb:v1", store=store, progress=False)   # starts again from zero
    assert store.has_blob(base["digest"])


def test_zstd_and_uncompressed_layers(registry, layout, store, busybox_layer):
    for compression in ("zstd", "none"):
        manifest = layout.image([busybox_layer, tar_bytes([("etc", "dir", None), ("etc/c", "file", compression.encode())])],
                                compression=compression)
        layout.tag(compression, manifest)
        registry.push(layout.path, compression, f"demo/c:{compression}")
        image = pull(f"{registry.host}/demo/c:{compression}", store=store, progress=False)
        assert _files(image) == {"etc/c": compression.encode()}


def test_layer_not_matching_its_diff_id_is_not_unpacked(registry, layout, store, busybox_layer):
    good = tar_bytes([("etc", "dir", None), ("etc/x", "file", b"x")])
    manifest = layout.image([good])
    config_descriptor = json.loads((layout.path / "blobs/sha256" / manifest["digest"][7:]).read_bytes())["config"]
    config = json.loads((layout.path / "blobs/sha256" / config_descriptor["digest"][7:]).read_bytes())
    config["rootfs"]["diff_ids"] = [sha256(b"something else")]
    new_config = layout.blob(json.dumps(config).encode(), config_descriptor["mediaType"])
    m = json.loads((layout.path / "blobs/sha256" / manifest["digest"][7:]).read_bytes())
    m["config"] = new_config
    layout.tag("bad", layout.blob(json.dumps(m).encode(), m["mediaType"]))
    registry.push(layout.path, "bad", "demo/bad:1")
    image = pull(f"{registry.host}/demo/bad:1", store=store, progress=False)
    with pytest.raises(ImageError) as info:
        image.layer_dirs()
    assert "layer does not match its diff id" in str(info.value)
    assert list((store.root / "layers" / "sha256").iterdir()) == []
    assert list((store.root / "tmp").iterdir()) == []


def test_plain_http_only_for_loopback(store):
    from pyoci_nb.image.reference import parse_reference
    from pyoci_nb.image.registry import RegistryClient

    assert RegistryClient(parse_reference("127.0.0.1:1/x")).base == "http://127.0.0.1:1"
    assert RegistryClient(parse_reference("registry.example.org/x")).base == "https://registry.example.org"
    assert RegistryClient(parse_reference("registry.example.org/x"), insecure=True).base == "http://registry.example.org"


def test_unreachable_registry_is_a_clear_error(store):
    from registry_harness import free_port

    port = free_port()
    with pytest.raises(ImageError) as info:
        pull(f"127.0.0.1:{port}/x:1", store=store, progress=False)
    assert f"cannot reach the registry 127.0.0.1:{port}" in str(info.value)
    assert not os.listdir(store.root / "blobs" / "sha256")
