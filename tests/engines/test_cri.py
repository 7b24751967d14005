"""Kubernetes' way in: containerd's CRI plugin runs pods with the runtime under test as a
RuntimeClass handler (``io.containerd.runc.v2`` with ``BinaryName``), side by side with runc.

A private containerd (``cri_helpers.private_cri``: its own config, root, state, sockets, CNI
config and IPAM store; never the system's) runs inside a scratch network namespace it makes, so
its "host network" and the CNI bridge its pods plug into are not the machine's.  It has two
handlers on the same shim, ``runc`` and ``pyoci``; every test runs for both.  The CRI client is
generated from the Kubernetes ``api.proto`` (``shared/cri-api/`` beside the repository) with
grpcio-tools into a temporary directory; the images (busybox, and a sandbox image whose
entrypoint sleeps forever) are OCI archives made here and imported with ``ctr images import`` --
no registry.

Each test ends with its pod removed and checks that nothing is left: no container or pod in the
CRI, no shim, no mount, no cgroup below the pod's parent; and that containerd logged no error
line for the pyoci handler that it did not log for runc in the same test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid

import pytest

from cri_helpers import GATEWAY, NAMESPACE, SUBNET, Pod, missing_requirements, load_cri_api, private_cri, remove_cgroups

pytestmark = [pytest.mark.slow, pytest.mark.root]

HANDLERS = ["runc", "pyoci"]


@pytest.fixture(scope="module")
def cri(engine_runtime, busybox_rootfs, tmp_path_factory):
    """The private containerd of this module, with the handlers ``runc`` and ``pyoci``."""
    reason = missing_requirements()
    if reason:
        pytest.skip(reason)
    pb2, pb2_grpc = load_cri_api(tmp_path_factory.mktemp("cri-api"))
    with private_cri({"runc": shutil.which("runc"), "pyoci": engine_runtime}, busybox_rootfs, pb2, pb2_grpc) as cri:
        yield cri


ERROR_LINE = re.compile(r'level=(error|fatal|panic)\b')
NOISE = [re.compile(p) for p in (r'(OCI runtime \w+ failed: ).*?(: unknown)', r'time="[^"]*"', r'\b[0-9a-f]{12,}\b',
                                  r'pod-[0-9a-f]+', r'/tmp/pyoci-cri-\w+', r'cni-[0-9a-f-]+', r'/proc/self/fd/\d+')]
# what each handler's tests made containerd log as errors, normalized: {test name: set}
ERRORS_SEEN: dict[str, set[str]] = {}


def normalized(line: str) -> str:
    """An error line without what differs between runs and handlers (times, ids, paths, the
    runtime's own wording of an error both runtimes give)."""
    for pattern in NOISE:
        line = pattern.sub(r"\1*\2" if pattern.groups else "*", line)
    return line.strip()


@pytest.fixture(params=HANDLERS)
def pods(request, cri):
    """Makes pods with this test's handler; afterwards: every pod stopped and removed, nothing of
    them left, and no containerd error line for pyoci that runc did not cause here too."""
    handler = request.param
    made: list[Pod] = []
    start = cri.log.stat().st_size

    def make(**kw) -> Pod:
        pod = Pod(cri, handler, **kw)
        made.append(pod)
        return pod

    make.handler = handler
    try:
        yield make
        for pod in made:
            pod.remove()
        deadline = time.monotonic() + 10   # a shim exits after its last Delete has returned
        while (left := [item for pod in made for item in pod.leftovers()]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert left == [], f"left behind by {handler}: {left}"
        time.sleep(0.2)  # the shims' last log lines
        with open(cri.log, "rb") as f:
            f.seek(start)
            lines = f.read().decode(errors="replace").splitlines()
        errors = {normalized(line) for line in lines if ERROR_LINE.search(line)}
        test = request.node.originalname
        if handler == "runc":
            ERRORS_SEEN[test] = errors
        else:
            extra = errors - ERRORS_SEEN.get(test, set())
            assert not extra, f"containerd logged errors with pyoci that runc did not cause: {sorted(extra)}"
    finally:
        for pod in made:
            try:
                pod.remove()
            except Exception:
                pass
            remove_cgroups(pod.cgroup_parent.lstrip("/"))


# ---------------------------------------------------------------------------------------------------


def test_runtime_class_handler_runs_the_pod(pods, cri, engine_runtime):
    """The handler picks the runtime binary: the pod's tasks live in that runtime's --root."""
    pod = pods()
    cid = pod.create("sleeper", ["sleep", "1000"])
    state_root = cri.base / f"runtime-{pods.handler}" / NAMESPACE
    assert {pod.id, cid} <= set(os.listdir(state_root)), os.listdir(state_root)
    other = "runc" if pods.handler == "pyoci" else "pyoci"
    assert not (cri.base / f"runtime-{other}" / NAMESPACE / cid).exists()
    binary = shutil.which("runc") if pods.handler == "runc" else engine_runtime
    # what `crictl inspectp` shows: the handler the pod runs with
    info = cri.runtime.PodSandboxStatus(cri.pb.PodSandboxStatusRequest(pod_sandbox_id=pod.id, verbose=True)).info
    assert json.loads(info["info"])["runtimeHandler"] == pods.handler
    state = subprocess.run([binary, "--root", str(state_root), "state", cid], capture_output=True, text=True,
                           timeout=30)
    assert state.returncode == 0, state.stderr
    assert json.loads(state.stdout)["status"] == "running"


def test_container_output_goes_to_its_log_file(pods):
    pod = pods()
    cid = pod.create("hello", ["sh", "-c", "echo hello from $(hostname); echo to stderr >&2; exit 3"])
    status = pod.wait_exited(cid)
    assert status.exit_code == 3
    lines = (pod.log_dir / "hello.log").read_text().splitlines()
    # CRI log format: <RFC3339 time> <stream> <F|P> <text>
    assert sorted(line.split(" ", 3)[1:] for line in lines) == [["stderr", "F", "to stderr"],
                                                                ["stdout", "F", f"hello from {pod.name}"]], lines


def test_exec_sync_in_a_running_container_then_stop_and_remove(pods):
    pod = pods()
    cid = pod.create("server", ["sh", "-c", "trap 'echo bye; exit 0' TERM; echo up; while :; do sleep 1; done"])
    assert pod.status(cid).state == pod.pb.ContainerState.CONTAINER_RUNNING
    result = pod.exec_sync(cid, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; id -u; hostname; exit 4")
    assert result.exit_code == 4
    assert result.stdout.decode().splitlines() == ["sh -c trap 'echo bye; exit 0' TERM; echo up; while :; "
                                                   "do sleep 1; done ", "0", pod.name]
    result = pod.exec_sync(cid, "sh", "-c", "echo oops >&2")
    assert (result.exit_code, result.stderr) == (0, b"oops\n")
    time.sleep(0.2)  # the trap is set once "up" is out: wait for it
    pod.cri.runtime.StopContainer(pod.pb.StopContainerRequest(container_id=cid, timeout=10), timeout=60)
    status = pod.status(cid)
    assert (status.state, status.exit_code) == (pod.pb.ContainerState.CONTAINER_EXITED, 0)
    assert (pod.log_dir / "server.log").read_text().split("\n")[1].endswith("stdout F bye")
    pod.cri.runtime.RemoveContainer(pod.pb.RemoveContainerRequest(container_id=cid), timeout=60)
    assert cid not in [c.id for c in pod.cri.runtime.ListContainers(pod.pb.ListContainersRequest()).containers]


def test_shared_pid_namespace_pod(pods):
    """shareProcessNamespace: the containers see each other and the sandbox's pause process;
    after each exit the shim kills what is left of it (``kill --all`` of a stopped container)."""
    pod = pods(share_pid=True)
    long = pod.create("long", ["sleep", "1000"])
    short = pod.create("short", ["sh", "-c", "sleep 999 & sleep 0.5; ps -o pid,args"])
    status = pod.wait_exited(short)
    assert status.exit_code == 0
    seen = [line.split(" ", 3)[3].split(None, 1) for line in (pod.log_dir / "short.log").read_text().splitlines()]
    processes = {args: pid for pid, args in seen[1:]}
    assert {"sleep 2147483647", "sleep 1000", "sleep 999"} <= set(processes), seen
    assert processes["sleep 2147483647"] == "1", seen  # the sandbox's pause is the pod's init
    # the short container's background sleep went with it (the shim's `kill --all` after the
    # exit): a zombie at most, as the pause here reaps nothing
    out = pod.exec_sync(long, "ps", "-o", "args").stdout.decode().splitlines()
    assert "sleep 999" not in out and {"sleep 1000", "sleep 2147483647"} <= set(out), out
    pod.cri.runtime.StopContainer(pod.pb.StopContainerRequest(container_id=long, timeout=2), timeout=60)
    assert pod.status(long).state == pod.pb.ContainerState.CONTAINER_EXITED


def test_host_network_pod(pods, cri):
    pod = pods(host_network=True)
    cid = pod.create("net", ["sleep", "1000"])
    ours = cri.in_netns("readlink", "/proc/self/ns/net").stdout.strip()
    assert pod.exec_sync(cid, "readlink", "/proc/1/ns/net").stdout.decode().strip() == ours
    links = pod.exec_sync(cid, "ip", "-o", "link").stdout.decode()
    assert ": lo:" in links


def test_host_network_pod_with_a_hostname_is_refused(pods, cri):
    """As with runc: no UTS namespace of its own, so no hostname to set."""
    import grpc

    pb = cri.pb
    name = "refused-" + uuid.uuid4().hex[:12]
    config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="default"),
        hostname="not-allowed", log_directory=str(cri.base / "logs" / name),
        linux=pb.LinuxPodSandboxConfig(
            cgroup_parent="/pyoci-cri-refused",  # (removed in the finally below)
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.NamespaceMode.NODE))))
    try:
        with pytest.raises(grpc.RpcError) as failure:
            cri.runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=config, runtime_handler=pods.handler), timeout=120)
        assert "hostname" in failure.value.details(), failure.value.details()
        assert not [b for b in cri.runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items
                    if b.metadata.name == config.metadata.name and b.state == pb.PodSandboxState.SANDBOX_READY]
    finally:
        for box in cri.runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items:
            if box.metadata.name == config.metadata.name:
                cri.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=box.id), timeout=60)
        remove_cgroups("pyoci-cri-refused")


def test_pod_network_through_the_cni_bridge(pods, cri):
    pod = pods()
    status = cri.runtime.PodSandboxStatus(cri.pb.PodSandboxStatusRequest(pod_sandbox_id=pod.id)).status
    ip = status.network.ip
    assert ip.startswith(SUBNET.rsplit(".", 1)[0] + "."), ip
    cid = pod.create("net", ["sleep", "1000"])
    addresses = pod.exec_sync(cid, "ip", "-o", "-4", "addr", "show", "eth0").stdout.decode()
    assert f"inet {ip}/24" in addresses
    ping = pod.exec_sync(cid, "ping", "-c", "1", "-W", "5", GATEWAY)
    assert ping.exit_code == 0, ping.stdout + ping.stderr
    # the bridge and the pod's veth are in the scratch namespace, not the machine's
    assert cri.in_netns("ip", "link", "show", "cni0").returncode == 0
    bridge_ports = cri.in_netns("ip", "-o", "link", "show", "master", "cni0").stdout
    assert "veth" in bridge_ports
    host_link = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert " cni0:" not in host_link
