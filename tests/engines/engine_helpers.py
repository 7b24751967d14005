"""Helpers for the engine tests: the runtime executable, host paths engines create, cgroup
directories, leftover processes/mounts, and a local OCI image archive of a rootfs."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
from pathlib import Path


CONTAINERD_CONFIG = """version = 2
root = "{base}/root"
state = "{base}/state"
disabled_plugins = [{disabled}"io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp",
                    "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{base}/containerd.sock"
[ttrpc]
  address = "{base}/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
"""


def containerd_config(base: Path, cri: bool = False) -> str:
    """A private containerd's config.toml: everything under ``base`` (root, state, sockets),
    no debug or metrics listener; the CRI plugin only if ``cri`` (its section follows)."""
    return CONTAINERD_CONFIG.format(base=base, disabled="" if cri else '"io.containerd.grpc.v1.cri", ')


def runtime_executable() -> str | None:
    other = os.environ.get("PYOCI_TEST_RUNTIME")
    if other:
        return shutil.which(other) or (other if os.access(other, os.X_OK) else None)
    beside_python = Path(sys.executable).parent / "pyoci"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    return shutil.which("pyoci")


class HostPaths:
    """Host paths an engine creates whatever its --root says, removed afterwards if they did
    not exist before.

    ``owned`` paths carry this test's unique name (its containerd namespace, its cgroup
    parent): removed with everything in them (cgroups bottom-up with rmdir, the only way).
    ``shared`` paths (``/run/containerd``, ``/var/lib/containers/cache``...) may be in use by
    another engine run on the same machine: a directory is removed only once empty (a cgroup
    only if nothing uses it), a file only if it appeared during the test."""

    def __init__(self, owned: list[str], shared: list[str] = ()):
        self.owned = {p: os.path.lexists(p) for p in owned}
        self.shared = {p: os.path.lexists(p) for p in shared}

    def cleanup(self) -> list[str]:
        problems = []
        for path, existed in self.owned.items():
            if existed or not os.path.lexists(path):
                continue
            try:
                if path.startswith("/sys/fs/cgroup/"):
                    for dirpath, _dirs, _files in sorted(os.walk(path), key=lambda t: -len(t[0])):
                        os.rmdir(dirpath)
                elif os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
            except OSError as exc:
                problems.append(f"{path}: {exc}")
        for path in sorted(self.shared, key=len, reverse=True):  # deepest first
            if self.shared[path] or not os.path.lexists(path):
                continue
            try:
                if path.startswith("/sys/fs/cgroup/"):
                    # a cgroup in use (processes or child groups) refuses rmdir: left alone
                    for dirpath, _dirs, _files in sorted(os.walk(path), key=lambda t: -len(t[0])):
                        try:
                            os.rmdir(dirpath)
                        except OSError:
                            pass
                elif os.path.isdir(path) and not os.path.islink(path):
                    if not os.listdir(path):
                        os.rmdir(path)
                else:
                    os.unlink(path)
            except OSError as exc:
                problems.append(f"{path}: {exc}")
        return problems


def cgroup_dirs(name: str) -> list[str]:
    """``/sys/fs/cgroup/<controller>/<name>`` for every mounted hierarchy (v1 and v2)."""
    base = Path("/sys/fs/cgroup")
    if (base / "cgroup.controllers").exists():  # pure v2
        return [str(base / name)]
    return [str(d / name) for d in sorted(base.iterdir()) if d.is_dir()]


def unmount_under(directory: Path) -> None:
    """Lazily unmount anything still mounted under ``directory`` (deepest first)."""
    import subprocess

    real = os.path.realpath(directory)
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for point in sorted((p for p in points if p == real or p.startswith(real + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, stderr=subprocess.DEVNULL)


def stop_daemon(daemon, base: Path) -> None:
    """SIGTERM an engine's daemon (SIGKILL after 30 s), SIGKILL what still mentions ``base``
    (containerd's shims outlive it by design) and unmount what is left below ``base``."""
    import signal
    import subprocess

    daemon.send_signal(signal.SIGTERM)
    try:
        daemon.wait(timeout=30)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()
    for pid in processes_mentioning(str(base)):
        os.kill(pid, signal.SIGKILL)
    unmount_under(base)


def processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if text.encode() in cmdline:
                pids.append(int(entry))
    return pids


def rootfs_tarball(rootfs: Path) -> bytes:
    """An uncompressed tar of a root filesystem (owner root, paths relative)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(rootfs.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(rootfs)))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if info.isfile():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return buf.getvalue()


def write_oci_archive(rootfs: Path, dest: Path, image_name: str, cmd: list[str] = ("sh",),
                      entrypoint: list[str] | None = None) -> Path:
    """Write an OCI image-layout tarball (image-spec: oci-layout, index.json, blobs) holding
    one layer made of ``rootfs``; ``io.containerd.image.name`` names it for ``ctr images import``.
    ``cmd``/``entrypoint`` go into the image config (a pod's sandbox image: one that never exits)."""
    layer_tar = rootfs_tarball(rootfs)
    layer = gzip.compress(layer_tar, mtime=0)
    blobs: dict[str, bytes] = {}

    def blob(data: bytes, media_type: str) -> dict:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    layer_desc = blob(layer, "application/vnd.oci.image.layer.v1.tar+gzip")
    config = {"architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine),
              "os": "linux",
              "config": {"Env": ["PATH=/bin:/sbin:/usr/bin:/usr/sbin"], "Cmd": list(cmd),
                         **({"Entrypoint": list(entrypoint)} if entrypoint else {})},
              "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer_tar).hexdigest()]}}
    config_desc = blob(json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json")
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config_desc, "layers": [layer_desc]}
    manifest_desc = blob(json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json")
    manifest_desc["annotations"] = {"io.containerd.image.name": image_name,
                                    "org.opencontainers.image.ref.name": image_name.rsplit(":", 1)[-1]}
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [manifest_desc]}
    with tarfile.open(dest, "w") as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
        add("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        add("index.json", json.dumps(index).encode())
        for digest, data in blobs.items():
            add("blobs/sha256/" + digest.split(":", 1)[1], data)
    return dest
