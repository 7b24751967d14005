"""A real registry for the image tests: Debian's ``docker-registry`` on a loopback port with its
storage in a temporary directory, filled by ``skopeo copy`` from OCI image layouts the tests
build themselves (``OciLayout``: tar layers written with tarfile, blobs named by their sha256,
``index.json`` with ``org.opencontainers.image.ref.name``), and optionally a token server
(distribution's token auth: RS256 JWTs with an x5c chain, signed by ``openssl``)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"
SKOPEO = shutil.which("skopeo") or "/usr/bin/skopeo"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """``docker-registry serve`` on 127.0.0.1:PORT; ``host`` is ``127.0.0.1:PORT``."""

    def __init__(self, workdir: Path, auth: dict | None = None):
        self.workdir = workdir
        self.storage = workdir / "storage"
        self.storage.mkdir(parents=True)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        lines = ["version: 0.1", "log:", "  level: error", "storage:", "  filesystem:",
                 f"    rootdirectory: {self.storage}", "  delete:", "    enabled: true",
                 "http:", f"  addr: 127.0.0.1:{self.port}"]
        if auth:
            lines += ["auth:", "  token:"] + [f"    {k}: {v}" for k, v in auth.items()]
        (workdir / "config.yml").write_text("\n".join(lines) + "\n")
        self.log = open(workdir / "registry.log", "wb")
        self.process = subprocess.Popen([REGISTRY, "serve", str(workdir / "config.yml")],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry did not start: {(workdir / 'registry.log').read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def push(self, layout: Path, tag: str, dest: str, *, all_platforms: bool = False,
             creds: str | None = None) -> None:
        """``skopeo copy oci:LAYOUT:TAG docker://HOST/DEST`` (``--all`` for an index)."""
        args = [SKOPEO, "copy", "--quiet", "--dest-tls-verify=false", "--preserve-digests"]
        if all_platforms:
            args.append("--all")
        if creds:
            args += ["--dest-creds", creds]
        args += [f"oci:{layout}:{tag}", f"docker://{self.host}/{dest}"]
        subprocess.run(args, check=True, capture_output=True, timeout=120)

    def blob_data(self, digest: str) -> Path:
        """The file the registry serves the blob ``digest`` from (filesystem driver layout)."""
        hexd = digest.split(":", 1)[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"


# ------------------------------------------------------------------------------------ OCI layouts
def tar_bytes(entries) -> bytes:
    """A tar archive of ``entries``: ``(name, kind, value, extra)`` with kind ``dir``, ``file``
    (value = bytes), ``symlink``/``hardlink`` (value = target); ``extra`` sets TarInfo fields."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            name, kind, value = entry[:3]
            extra = entry[3] if len(entry) > 3 else {}
            info = tarfile.TarInfo(name)
            info.mtime = 1700000000
            data = None
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif kind == "file":
                info.mode, data = 0o644, value
                info.size = len(value)
            elif kind == "symlink":
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, value, 0o777
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, value
            for key, v in extra.items():
                setattr(info, key, v)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def tar_of_directory(root: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(root.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(root)), recursive=False)
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class OciLayout:
    """An OCI image layout directory (image-spec ``image-layout.md``) written by hand."""

    def __init__(self, path: Path):
        self.path = path
        (path / "blobs" / "sha256").mkdir(parents=True)
        (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        self.refs: list[dict] = []
        self._write_index()

    def blob(self, data: bytes, media_type: str, **extra) -> dict:
        digest = sha256(data)
        (self.path / "blobs" / "sha256" / digest[7:]).write_bytes(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data), **extra}

    def image(self, layers: list[bytes], *, config: dict | None = None, compression: str = "gzip",
              architecture: str = "amd64", history: list[str] | None = None) -> dict:
        """An image of uncompressed tar ``layers``; returns the manifest's descriptor."""
        descriptors, diff_ids = [], []
        for layer in layers:
            diff_ids.append(sha256(layer))
            if compression == "gzip":
                descriptors.append(self.blob(gzip.compress(layer, mtime=0),
                                             "application/vnd.oci.image.layer.v1.tar+gzip"))
            elif compression == "zstd":
                import zstandard

                descriptors.append(self.blob(zstandard.ZstdCompressor().compress(layer),
                                             "application/vnd.oci.image.layer.v1.tar+zstd"))
            else:
                descriptors.append(self.blob(layer, "application/vnd.oci.image.layer.v1.tar"))
        image_config = {"created": "2024-01-01T00:00:00Z", "architecture": architecture, "os": "linux",
                        "config": config or {}, "rootfs": {"type": "layers", "diff_ids": diff_ids},
                        "history": [{"created_by": h} for h in (history or [f"layer {i}" for i in range(len(layers))])]}
        config_descriptor = self.blob(json.dumps(image_config).encode(), "application/vnd.oci.image.config.v1+json")
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": config_descriptor, "layers": descriptors}
        return self.blob(json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json",
                         platform={"os": "linux", "architecture": architecture})

    def index(self, manifests: list[dict]) -> dict:
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}
        return self.blob(json.dumps(index).encode(), "application/vnd.oci.image.index.v1+json")

    def tag(self, name: str, descriptor: dict) -> None:
        entry = {k: v for k, v in descriptor.items() if k != "platform"}
        entry["annotations"] = {"org.opencontainers.image.ref.name": name}
        self.refs.append(entry)
        self._write_index()

    def _write_index(self) -> None:
        (self.path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": self.refs}))


def tree_of(root: Path) -> dict:
    """Everything umoci/our unpack must agree on, per path: type, mode, owner, link target or
    content digest (the root directory itself left out)."""
    import stat

    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = os.lstat(path)
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                value = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                value = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                value = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
            else:
                value = None
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, value)
    return out


# ------------------------------------------------------------------------------------ token server
class TokenServer:
    """A distribution token server (``docs/spec/auth/token.md``): GET ?service=&scope= -> a JWT
    signed RS256 by a self-signed certificate the registry trusts (``rootcertbundle``).  ``hits``
    counts the token requests; ``users`` (name -> password) makes it ask for basic auth."""

    def __init__(self, workdir: Path, users: dict | None = None):
        self.key = workdir / "token.key"
        self.cert = workdir / "token.crt"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(self.key),
                        "-out", str(self.cert), "-days", "2", "-subj", "/CN=pyoci-test-token"],
                       check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.users = users
        self.hits: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
                auth = self.headers.get("Authorization", "")
                server.hits.append({"query": query, "authorization": auth})
                if server.users is not None:
                    try:
                        user, _, password = base64.b64decode(auth.split(" ", 1)[1]).decode().partition(":")
                    except (IndexError, ValueError):
                        user, password = "", object()
                    if server.users.get(user) != password:
                        self.send_response(401)
                        self.end_headers()
                        return
                body = json.dumps({"token": server.sign(query)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def registry_auth(self) -> dict:
        return {"realm": self.realm, "service": "pyoci-test-registry", "issuer": "pyoci-test-issuer",
                "rootcertbundle": str(self.cert)}

    def sign(self, query: dict) -> str:
        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        access = []
        for scope in query.get("scope", "").split():
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {"iss": "pyoci-test-issuer", "sub": "tester", "aud": query.get("service", ""),
                  "exp": now + 600, "nbf": now - 10, "iat": now, "jti": os.urandom(8).hex(), "access": access}
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                                   input=signing_input.encode(), check=True, capture_output=True).stdout
        return f"{signing_input}.{b64(signature)}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
