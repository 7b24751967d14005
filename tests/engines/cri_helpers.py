"""A private containerd with its CRI plugin, driven the way a kubelet drives it: for
tests/engines/test_cri.py and bench/cri_pods.py.

``private_cri(...)`` starts containerd (its own config, root, state, sockets, CNI config and
IPAM store; never the system's) inside a scratch network namespace it makes, so the pods'
"host network" and the CNI bridge they plug into are not the machine's.  Every runtime given
becomes a handler (a RuntimeClass) on the same shim, ``io.containerd.runc.v2`` with
``BinaryName``.  The images -- busybox, and a sandbox ("pause") image whose entrypoint sleeps
forever -- are OCI archives made from a busybox rootfs and imported with ``ctr images import``:
no registry.  The CRI client is generated from the Kubernetes ``api.proto`` with grpcio-tools.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterator

from engine_helpers import (HostPaths, cgroup_dirs, containerd_config, processes_mentioning, stop_daemon, unmount_under,
                            write_oci_archive)

IMAGE = "docker.io/library/pyoci-busybox:cri"
PAUSE_IMAGE = "docker.io/library/pyoci-pause:cri"
NAMESPACE = "k8s.io"            # the CRI plugin's containerd namespace
SUBNET = "10.244.77.0/24"       # only ever inside the scratch network namespace
GATEWAY = "10.244.77.1"
CNI_BIN = Path("/usr/lib/cni")  # Debian's containernetworking-plugins

CRI_CONFIG = """[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause_image}"
  # the pause container asks for oomScoreAdj -998; without CAP_SYS_RESOURCE (some VMs) that
  # fails: clamp it to containerd's own
  restrict_oom_score_adj = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
{runtimes}
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{base}/cni"
"""

RUNTIME = """    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{name}]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{name}.options]
        BinaryName = "{binary}"
        Root = "{base}/runtime-{name}"
"""


def find_proto() -> Path:
    """``shared/cri-api/api.proto`` beside the repository (or beside a folder of worktrees);
    ``$PYOCI_CRI_API_PROTO`` names another."""
    if os.environ.get("PYOCI_CRI_API_PROTO"):
        return Path(os.environ["PYOCI_CRI_API_PROTO"])
    repo = Path(__file__).resolve().parents[2]
    for parent in repo.parents:
        if (parent / "shared" / "cri-api" / "api.proto").is_file():
            return parent / "shared" / "cri-api" / "api.proto"
    return repo.parent / "shared" / "cri-api" / "api.proto"


def missing_requirements() -> str | None:
    """Why a private CRI containerd cannot run here, or None."""
    if os.geteuid() != 0:
        return "containerd's CRI plugin runs pods as root"
    for program in ("containerd", "ctr", "ip", "nsenter", "runc"):
        if not shutil.which(program):
            return f"{program} is not installed"
    if not (CNI_BIN / "bridge").is_file():
        return f"no CNI bridge plugin in {CNI_BIN} (Debian package containernetworking-plugins)"
    if not find_proto().is_file():
        return f"no CRI api.proto at {find_proto()} (the shared/ folder beside the repository)"
    try:
        import grpc_tools  # noqa: F401
    except ImportError:
        return "grpcio-tools is not installed (pip install -e '.[test]')"
    return None


def load_cri_api(out: Path):
    """Generate the CRI's Python client from api.proto into ``out``: (api_pb2, api_pb2_grpc)."""
    from grpc_tools import protoc

    proto = find_proto()
    include = Path(protoc.__file__).parent / "_proto"
    rc = protoc.main(["grpc_tools.protoc", f"-I{proto.parent}", f"-I{include}",
                      f"--python_out={out}", f"--grpc_python_out={out}", str(proto)])
    if rc != 0:
        raise RuntimeError(f"grpc_tools.protoc failed on {proto} (exit {rc})")
    sys.path.insert(0, str(out))
    try:
        return importlib.import_module("api_pb2"), importlib.import_module("api_pb2_grpc")
    finally:
        sys.path.remove(str(out))


def cni_config(base: Path) -> dict:
    return {"cniVersion": "0.4.0", "name": "pyoci-cri", "plugins": [
        {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": False,
         "ipam": {"type": "host-local", "dataDir": str(base / "ipam"),
                  "ranges": [[{"subnet": SUBNET, "gateway": GATEWAY}]]}}]}


class Cri:
    """A running private containerd: stubs of its RuntimeService and ImageService, ``ctr``."""

    def __init__(self, base: Path, netns: str, pb2, pb2_grpc, daemon: subprocess.Popen):
        import grpc

        self.base, self.netns, self.pb, self.daemon = base, netns, pb2, daemon
        self.channel = grpc.insecure_channel(f"unix://{base / 'containerd.sock'}")
        self.runtime = pb2_grpc.RuntimeServiceStub(self.channel)
        self.images = pb2_grpc.ImageServiceStub(self.channel)
        self.log = base / "containerd.log"
        self.cgroup_parents: set[str] = set()   # of the pods made, removed at the end

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(["ctr", "--address", str(self.base / "containerd.sock"), "--namespace", NAMESPACE,
                               *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
        return proc

    def in_netns(self, *args: str) -> subprocess.CompletedProcess:
        """A command in containerd's scratch network namespace (its "host network")."""
        return subprocess.run(["ip", "netns", "exec", self.netns, *args], capture_output=True, text=True, timeout=30)

    def remove_everything(self) -> None:
        for box in self.runtime.ListPodSandbox(self.pb.ListPodSandboxRequest(), timeout=60).items:
            self.runtime.StopPodSandbox(self.pb.StopPodSandboxRequest(pod_sandbox_id=box.id), timeout=60)
            self.runtime.RemovePodSandbox(self.pb.RemovePodSandboxRequest(pod_sandbox_id=box.id), timeout=60)


@contextlib.contextmanager
def private_cri(runtimes: dict[str, str], rootfs: Path, pb2, pb2_grpc) -> Iterator[Cri]:
    """containerd with the CRI plugin and one handler per ``runtimes`` entry (name -> binary),
    the images made from ``rootfs`` imported.  Afterwards every pod is removed, containerd and
    its shims are gone, and so are its directories, mounts and network namespace; what could
    not be removed raises AssertionError."""
    base = Path(tempfile.mkdtemp(prefix="pyoci-cri-", dir="/tmp"))
    netns = "pyoci-cri-" + uuid.uuid4().hex[:8]
    # shims put their sockets and fifos below /run/containerd whatever the config says; the
    # CRI plugin bind-mounts pod network namespaces at /run/netns/cni-*; libcni caches results
    host = HostPaths(owned=[f"/run/netns/{netns}"],
                     shared=["/run/containerd", "/run/containerd/s", "/run/containerd/fifo", "/run/netns",
                             "/var/lib/cni", "/var/lib/cni/results"])
    (base / "cni").mkdir()
    (base / "cni" / "10-pyoci-cri.conflist").write_text(json.dumps(cni_config(base)))
    handlers = "".join(RUNTIME.format(name=name, binary=binary, base=base) for name, binary in runtimes.items())
    (base / "config.toml").write_text(containerd_config(base, cri=True) + CRI_CONFIG.format(
        base=base, pause_image=PAUSE_IMAGE, runtimes=handlers, cni_bin=CNI_BIN))
    daemon = cri = None
    log = open(base / "containerd.log", "wb")
    try:
        subprocess.run(["ip", "netns", "add", netns], check=True)
        subprocess.run(["ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up"], check=True)
        # only the network namespace: `ip netns exec` would also remount /sys (losing the cgroups)
        daemon = subprocess.Popen(["nsenter", f"--net=/run/netns/{netns}", "containerd", "--config",
                                   str(base / "config.toml")],
                                  stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not (base / "containerd.sock").exists():
            if daemon.poll() is not None:
                raise AssertionError("containerd exited: " + (base / "containerd.log").read_text())
            if time.monotonic() > deadline:
                raise AssertionError("containerd did not open its socket in 30 s")
            time.sleep(0.05)
        cri = Cri(base, netns, pb2, pb2_grpc, daemon)
        write_oci_archive(rootfs, base / "busybox.tar", IMAGE)
        write_oci_archive(rootfs, base / "pause.tar", PAUSE_IMAGE, cmd=[], entrypoint=["sleep", "2147483647"])
        for archive in ("busybox.tar", "pause.tar"):
            cri.ctr("images", "import", "--snapshotter", "native", str(base / archive))
        deadline = time.monotonic() + 30   # the CRI plugin learns of imports through events
        while not all(cri.images.ImageStatus(pb2.ImageStatusRequest(image=pb2.ImageSpec(image=name)),
                                             timeout=30).image.id for name in (IMAGE, PAUSE_IMAGE)):
            if time.monotonic() > deadline:
                raise AssertionError("the CRI plugin does not see the imported images")
            time.sleep(0.1)
        yield cri
    finally:
        if cri is not None:
            try:
                cri.remove_everything()
            finally:
                cri.channel.close()
        if daemon is not None:
            stop_daemon(daemon, base)
        log.close()
        unmount_under(base)
        subprocess.run(["ip", "netns", "delete", netns], check=False, stderr=subprocess.DEVNULL)
        problems = host.cleanup()
        for parent in sorted(cri.cgroup_parents if cri is not None else ()):
            problems += remove_cgroups(parent)
        shutil.rmtree(base, ignore_errors=True)
        if problems:
            raise AssertionError(f"left behind: {problems}")


def remove_cgroups(name: str) -> list[str]:
    """rmdir ``/sys/fs/cgroup/*/<name>`` bottom-up in every hierarchy; what refused."""
    problems = []
    for group in cgroup_dirs(name):
        if not os.path.isdir(group):
            continue
        for dirpath, _dirs, _files in sorted(os.walk(group), key=lambda t: -len(t[0])):
            try:
                os.rmdir(dirpath)
            except OSError as exc:
                problems.append(f"{dirpath}: {exc}")
    return problems


class Pod:
    """A pod sandbox run with one handler, as a kubelet asks for it; its containers get their
    own pid namespace unless ``share_pid`` (a pod's ``shareProcessNamespace``)."""

    def __init__(self, cri: Cri, handler: str, host_network: bool = False, share_pid: bool = False):
        pb = cri.pb
        self.cri, self.handler, self.pb, self.share_pid = cri, handler, pb, share_pid
        self.name = f"pod-{uuid.uuid4().hex[:8]}"
        self.cgroup_parent = f"/pyoci-cri-{self.name}"
        cri.cgroup_parents.add(self.cgroup_parent.lstrip("/"))
        self.log_dir = cri.base / "logs" / self.name
        mode = pb.NamespaceMode
        self.config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=self.name, uid=uuid.uuid4().hex, namespace="default"),
            hostname="" if host_network else self.name,   # a hostname needs the pod's own UTS namespace
            log_directory=str(self.log_dir),
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=self.cgroup_parent,
                security_context=pb.LinuxSandboxSecurityContext(namespace_options=pb.NamespaceOption(
                    network=mode.NODE if host_network else mode.POD,
                    pid=mode.POD if share_pid else mode.CONTAINER))))
        self.removed = False
        self.id = cri.runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=self.config, runtime_handler=handler),
                                            timeout=120).pod_sandbox_id

    def create(self, name: str, command: list[str], start: bool = True) -> str:
        pb = self.pb
        mode = pb.NamespaceMode
        config = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name), image=pb.ImageSpec(image=IMAGE), command=command,
            log_path=f"{name}.log",
            linux=pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(
                namespace_options=pb.NamespaceOption(pid=mode.POD if self.share_pid else mode.CONTAINER))))
        cid = self.cri.runtime.CreateContainer(pb.CreateContainerRequest(
            pod_sandbox_id=self.id, config=config, sandbox_config=self.config), timeout=120).container_id
        if start:
            self.start(cid)
        return cid

    def start(self, cid: str) -> None:
        self.cri.runtime.StartContainer(self.pb.StartContainerRequest(container_id=cid), timeout=120)

    def stop(self, cid: str, timeout: int = 10) -> None:
        self.cri.runtime.StopContainer(self.pb.StopContainerRequest(container_id=cid, timeout=timeout),
                                       timeout=timeout + 60)

    def status(self, cid: str):
        return self.cri.runtime.ContainerStatus(self.pb.ContainerStatusRequest(container_id=cid), timeout=60).status

    def wait_exited(self, cid: str, timeout: float = 30):
        deadline = time.monotonic() + timeout
        while (status := self.status(cid)).state != self.pb.ContainerState.CONTAINER_EXITED:
            if time.monotonic() > deadline:
                raise AssertionError(f"container {cid} still {status.state} after {timeout}s")
            time.sleep(0.05)
        return status

    def exec_sync(self, cid: str, *cmd: str, timeout: int = 30):
        return self.cri.runtime.ExecSync(self.pb.ExecSyncRequest(container_id=cid, cmd=list(cmd), timeout=timeout),
                                         timeout=timeout + 30)

    def remove(self) -> None:
        """StopPodSandbox and RemovePodSandbox (its containers go with it), once."""
        if self.removed:
            return
        self.removed = True
        runtime, pb = self.cri.runtime, self.pb
        runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=self.id), timeout=120)
        runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=self.id), timeout=120)

    def leftovers(self) -> list[str]:
        """What is left of the pod: CRI containers and sandbox, containerd containers, shims,
        mounts, cgroups below its parent."""
        left = []
        runtime, pb = self.cri.runtime, self.pb
        containers = runtime.ListContainers(pb.ListContainersRequest(), timeout=60).containers
        left += [f"container {c.id}" for c in containers if c.pod_sandbox_id == self.id]
        left += [f"pod {b.id}" for b in runtime.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=60).items
                 if b.id == self.id]
        left += [f"containerd container {c}" for c in self.cri.ctr("containers", "list", "--quiet").stdout.split()]
        for pid in processes_mentioning(str(self.cri.base)):
            if pid != self.cri.daemon.pid:
                with contextlib.suppress(OSError):
                    left.append(f"process {pid}: {Path(f'/proc/{pid}/cmdline').read_bytes()!r}")
        left += [f"mount {line}" for line in Path("/proc/self/mountinfo").read_text().splitlines()
                 if str(self.cri.base) in line or "/run/netns/cni-" in line or self.id in line]
        for group in cgroup_dirs(self.cgroup_parent.lstrip("/")):
            if os.path.isdir(group):
                left += [f"cgroup {group}/{child}" for child in os.listdir(group)
                         if os.path.isdir(os.path.join(group, child))]
        return left
