"""A client of the OCI distribution API (distribution-spec ``spec.md``), over httpx.

What it speaks:

* ``GET /v2/`` -- the API check ("ping"); ``GET /v2/<name>/manifests/<reference>`` with an
  ``Accept`` header listing the manifest media types we read (OCI image manifest and index, Docker
  v2 schema 2 manifest and manifest list); ``GET /v2/<name>/blobs/<digest>``, following redirects
  to the storage a registry may send blobs from.
* Authentication as the distribution ``token`` spec describes it (Docker Hub's flow): a ``401``
  with ``WWW-Authenticate: Bearer realm=...,service=...,scope=...`` is answered by asking the realm
  for a token (``?service=&scope=repository:<name>:pull``; anonymously, or with the user's
  credentials as HTTP Basic), then repeating the request with ``Authorization: Bearer <token>``;
  a ``Basic`` challenge is answered with the credentials.  Credentials come from the caller or
  from the docker credentials file (``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``,
  ``auths``: ``auth`` = base64 ``user:password``, or ``username``/``password``, or
  ``identitytoken``).
* HTTPS; plain HTTP only for loopback registries or those the caller marks insecure.
* Every byte is checked: a manifest fetched by digest must hash to it; a blob must have the
  descriptor's size and digest before it is kept (image-spec ``descriptor.md``: "the content
  MUST be verified against the digest").  An interrupted blob download is resumed with an HTTP
  ``Range`` request from where it stopped (a ``.partial`` file), also by a later pull.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from pathlib import Path

from pyoci_nb.image.reference import ImageError, Reference

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
#: Manifests and indexes larger than this are refused (distribution-spec: registries SHOULD accept
#: at least 4 MiB; anything larger is not read into memory).
MAX_MANIFEST_BYTES = 4 << 20
#: How many times one pull resumes a blob download that broke off.
BLOB_ATTEMPTS = 4
_CHALLENGE_RE = re.compile(r'(\w+)="([^"]*)"|(\w+)=([^,\s]+)')


def digest_hasher(digest: str, where: str):
    """A hashlib object for ``digest``'s algorithm (sha256 or sha512)."""
    algorithm = digest.partition(":")[0]
    if algorithm not in ("sha256", "sha512"):
        raise ImageError(f"unsupported digest algorithm {algorithm!r}", where=where,
                         why="image-spec descriptors use sha256 (or sha512)")
    return hashlib.new(algorithm)


def docker_credentials(registry: str) -> tuple[str, str] | None:
    """``(user, password)`` for ``registry`` from the docker credentials file, if it has them
    (``auths`` keyed by host, ``https://host``, or for Docker Hub ``https://index.docker.io/v1/``)."""
    directory = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    path = os.path.join(directory, "config.json")
    try:
        with open(path, "rb") as f:
            auths = json.load(f).get("auths") or {}
    except (OSError, ValueError, AttributeError):
        return None
    keys = [registry, f"https://{registry}", f"http://{registry}", f"https://{registry}/v1/", f"https://{registry}/v2/"]
    if registry == "docker.io":
        keys = ["https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io"]
    for key in keys:
        entry = auths.get(key)
        if not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise ImageError("unreadable credentials", where=f"{path}: auths.{key}.auth",
                                 why="auth is base64 of user:password",
                                 hint="log in again (e.g. skopeo login / docker login)") from None
            return user, password
        if entry.get("identitytoken"):
            return "<token>", entry["identitytoken"]
        if entry.get("username") is not None:
            return entry["username"], entry.get("password", "")
    return None


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``WWW-Authenticate: Bearer realm="...",service="..."`` -> ``("bearer", {...})``."""
    scheme, _, params = header.strip().partition(" ")
    values = {}
    for match in _CHALLENGE_RE.finditer(params):
        key = match.group(1) or match.group(3)
        values[key.lower()] = match.group(2) if match.group(1) else match.group(4)
    return scheme.lower(), values


class RegistryClient:
    """One registry's ``/v2/`` API for one repository (see the module's docstring).

    ``credentials``: ``(user, password)``, else the docker credentials file's; ``insecure``: allow
    plain HTTP to a registry that is not on loopback (and skip TLS verification)."""

    def __init__(self, reference: Reference, *, credentials: tuple[str, str] | None = None,
                 insecure: bool = False, timeout: float = 60.0):
        import httpx

        self.reference = reference
        self.credentials = credentials if credentials is not None else docker_credentials(reference.registry)
        plain = reference.is_loopback() or insecure
        self.base = f"{'http' if plain else 'https'}://{reference.api_host}"
        self._httpx = httpx
        self.client = httpx.Client(follow_redirects=True, timeout=timeout, verify=not insecure,
                                   headers={"User-Agent": "pyoci-nb"})
        self._authorization: str | None = None

    def close(self) -> None:
        self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- HTTP with authentication ---------------------------------------------------------------
    def _send(self, method: str, path: str, headers: dict | None = None, stream: bool = False):
        url = self.base + path
        for attempt in (1, 2):
            request_headers = dict(headers or {})
            if self._authorization:
                request_headers["Authorization"] = self._authorization
            try:
                request = self.client.build_request(method, url, headers=request_headers)
                response = self.client.send(request, stream=stream)
            except self._httpx.HTTPError as exc:
                raise ImageError(f"cannot reach the registry {self.reference.registry}", where=url,
                                 why=str(exc) or type(exc).__name__,
                                 hint="check that the registry runs and the address is right"
                                      + ("" if self.base.startswith("http:") else
                                         "; a registry serving plain HTTP must be marked insecure")) from None
            if response.status_code != 401 or attempt == 2:
                return response
            challenge = response.headers.get("WWW-Authenticate", "")
            response.close()
            self._authorization = self._answer(challenge, url)
        return response

    def _answer(self, challenge: str, url: str) -> str:
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            if not self.credentials:
                raise ImageError("the registry asks for a user name and password", where=url,
                                 why="HTTP 401 with a Basic challenge and no credentials for "
                                     f"{self.reference.registry}",
                                 hint="log in (skopeo login / docker login write ~/.docker/config.json) "
                                      "or pass credentials=(user, password)")
            user, password = self.credentials
            return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        if scheme != "bearer" or "realm" not in params:
            raise ImageError("unsupported authentication challenge", where=url,
                             why=f"WWW-Authenticate: {challenge!r} (Bearer with a realm, or Basic, is understood)")
        query = {"scope": params.get("scope") or f"repository:{self.reference.repository}:pull"}
        if "service" in params:
            query["service"] = params["service"]
        auth = self.credentials if self.credentials else None
        try:
            response = self.client.get(params["realm"], params=query, auth=auth)
        except self._httpx.HTTPError as exc:
            raise ImageError("cannot reach the token server", where=params["realm"], why=str(exc)) from None
        if response.status_code != 200:
            raise ImageError(f"the token server refused: HTTP {response.status_code}", where=params["realm"],
                             why=response.text[:200],
                             hint="check the credentials for this registry (~/.docker/config.json)")
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise ImageError("the token server gave no token", where=params["realm"],
                             why="its JSON answer must hold 'token' or 'access_token' (distribution token spec)")
        return f"Bearer {token}"

    def _failed(self, response, what: str, where: str) -> ImageError:
        try:
            errors = response.json().get("errors") or []
            detail = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors) or response.text[:200]
        except (ValueError, AttributeError):
            detail = response.text[:200] if not response.is_stream_consumed else ""
        hint = {404: "check the repository name and the tag or digest",
                401: "log in or check the credentials", 403: "the credentials do not allow pulling this"}
        return ImageError(f"{what}: HTTP {response.status_code}", where=where, why=detail or None,
                          hint=hint.get(response.status_code))

    # -- API -----------------------------------------------------------------------------------
    def ping(self) -> None:
        """``GET /v2/``: the registry speaks the distribution API (authenticating if it asks)."""
        response = self._send("GET", "/v2/")
        if response.status_code != 200:
            raise self._failed(response, "the registry does not answer its /v2/ API", self.base + "/v2/")

    def manifest(self, reference: str) -> tuple[bytes, str, str]:
        """The manifest or index named by a tag or digest: ``(body, media type, digest)``; the
        digest is the body's sha256, checked against ``reference`` when it is a digest."""
        where = f"{self.reference.name}@{reference}" if ":" in reference else f"{self.reference.name}:{reference}"
        headers = {"Accept": ", ".join(MANIFEST_TYPES + INDEX_TYPES)}
        response = self._send("GET", f"/v2/{self.reference.repository}/manifests/{reference}", headers, stream=True)
        try:
            if response.status_code != 200:
                response.read()
                raise self._failed(response, "manifest not found" if response.status_code == 404
                                   else "cannot get the manifest", where)
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_MANIFEST_BYTES:
                    raise ImageError("manifest too large", where=where,
                                     why=f"more than {MAX_MANIFEST_BYTES} bytes; image manifests are small JSON")
        finally:
            response.close()
        body = bytes(body)
        wanted = reference if ":" in reference else None
        hasher = digest_hasher(wanted, where) if wanted else hashlib.sha256()
        hasher.update(body)
        digest = f"{hasher.name}:{hasher.hexdigest()}"
        if wanted and digest != wanted:
            raise ImageError("manifest does not match its digest", where=where,
                             why=f"its content hashes to {digest}", hint="the registry or the network altered it")
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        return body, media_type, digest

    def fetch_blob(self, digest: str, size: int, partial: Path, progress=None) -> Path:
        """Download the blob ``digest`` of ``size`` bytes into ``partial``, resuming from what it
        already holds (``Range``), and return it once its size and digest are right.  A blob
        that does not match is deleted and refused."""
        where = f"{self.reference.name}@{digest}"
        last_error: Exception | None = None
        for _ in range(BLOB_ATTEMPTS):
            hasher = digest_hasher(digest, where)
            have = 0
            if partial.exists():
                with open(partial, "rb") as f:
                    while chunk := f.read(1 << 20):
                        hasher.update(chunk)
                        have += len(chunk)
                if have > size:
                    partial.unlink()
                    hasher, have = digest_hasher(digest, where), 0
            if have < size or size == 0:
                headers = {"Range": f"bytes={have}-"} if have else {}
                try:
                    have, hasher = self._download(digest, headers, partial, have, hasher, size, progress, where)
                except _Interrupted as exc:
                    last_error = exc
                    continue
            if have != size or f"{hasher.name}:{hasher.hexdigest()}" != digest:
                partial.unlink(missing_ok=True)
                raise ImageError("blob does not match its descriptor", where=where,
                                 why=f"got {have} bytes hashing to {hasher.name}:{hasher.hexdigest()}, the "
                                     f"manifest says {size} bytes with digest {digest}",
                                 hint="the registry's copy is damaged or was tampered with; nothing was kept")
            return partial
        raise ImageError("blob download kept breaking off", where=where, why=str(last_error),
                         hint="pull again: it resumes where it stopped")

    def _download(self, digest, headers, partial, have, hasher, size, progress, where):
        response = self._send("GET", f"/v2/{self.reference.repository}/blobs/{digest}", headers, stream=True)
        try:
            if response.status_code == 200 and have:       # no Range support: start again
                partial.unlink()
                have, hasher = 0, digest_hasher(digest, where)
            elif response.status_code not in (200, 206):
                response.read()
                raise self._failed(response, "cannot get the blob", where)
            if progress is not None:
                progress.reset(total=size)
                progress.update(have)
            with open(partial, "ab") as out:
                try:
                    for chunk in response.iter_raw():
                        if have + len(chunk) > size:
                            raise ImageError("blob larger than its descriptor says", where=where,
                                             why=f"more than {size} bytes", hint="the registry's copy is damaged")
                        out.write(chunk)
                        hasher.update(chunk)
                        have += len(chunk)
                        if progress is not None:
                            progress.update(len(chunk))
                except self._httpx.HTTPError as exc:
                    raise _Interrupted(f"after {have} of {size} bytes: {exc or type(exc).__name__}") from None
        finally:
            response.close()
        if have < size:
            raise _Interrupted(f"the connection ended after {have} of {size} bytes")
        return have, hasher


class _Interrupted(Exception):
    """A blob download stopped early (the partial file is kept for a resume)."""
