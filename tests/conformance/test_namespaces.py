"""linux.namespaces (config-linux.md#namespaces): a namespace listed without a path is new, one
with a path is joined, one not listed is shared with the runtime; PID 1 is the user process."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from oci_harness import NS_FILE, assert_nothing_left, host_ns

# The namespaces runc's default config creates (user/time need more config, see below).
DEFAULT_NS = ("pid", "network", "ipc", "uts", "mount")
READ_ALL_NS = "for n in pid net ipc uts mnt cgroup user; do echo $n $(readlink /proc/self/ns/$n); done"


def container_ns(box) -> dict[str, str]:
    out = box.sh(READ_ALL_NS).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


def test_pid1_is_the_user_process(box):
    out = box.sh("echo $$; cat /proc/1/cmdline; echo").stdout.splitlines()
    assert out[0] == "1"
    assert out[1].split("\0")[:2] == ["sh", "-c"]


def test_configured_namespaces_are_new_the_others_are_the_hosts(box):
    box.set_namespace("cgroup")
    inside = container_ns(box)
    for ns_type in DEFAULT_NS + ("cgroup",):
        assert inside[NS_FILE[ns_type]] != host_ns(ns_type), f"{ns_type} namespace was not unshared"
    assert inside["user"] == host_ns("user"), "user namespace not in the config but not the host's"


@pytest.mark.parametrize("removed", ["pid", "network", "ipc", "uts", "cgroup"])
def test_namespace_removed_from_config_is_the_hosts(box, removed):
    box.set_namespace("cgroup")
    box.remove_namespace(removed)
    if removed == "uts":
        box.config.pop("hostname", None)  # a hostname needs its own uts namespace
    inside = container_ns(box)
    assert inside[NS_FILE[removed]] == host_ns(removed)
    for other in set(DEFAULT_NS + ("cgroup",)) - {removed}:
        assert inside[NS_FILE[other]] != host_ns(other)


def test_new_network_namespace_has_loopback_up(box):
    """A new network namespace holds only ``lo``; runtimes bring it up (runc does), so programs
    in the container can talk to 127.0.0.1."""
    out = box.sh("cat /sys/class/net/lo/flags; ls /sys/class/net").stdout.split()
    assert int(out[0], 16) & 0x1, f"lo is down in the new network namespace (flags {out[0]})"
    assert out[1:] == ["lo"], "a new network namespace should hold only lo"


def test_hostname_without_uts_namespace_is_refused(box):
    box.remove_namespace("uts")
    box.config["hostname"] = "box"
    proc = box.run("true")
    assert proc.returncode != 0, "hostname set without a private uts namespace"
    assert_nothing_left(box)


def test_user_namespace_with_mappings(box):
    box.set_namespace("user")
    box.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
    box.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
    out = box.sh("readlink /proc/self/ns/user; cat /proc/self/uid_map /proc/self/gid_map").stdout.split("\n")
    assert out[0] != host_ns("user")
    assert out[1].split() == ["0", "0", "65536"]
    assert out[2].split() == ["0", "0", "65536"]


@pytest.fixture
def netns():
    """A named network namespace (``ip netns add``), deleted after the test."""
    name = "pyoci-t-" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield f"/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def test_join_namespace_by_path(box, netns):
    box.set_namespace("network", path=netns)
    inside = container_ns(box)
    assert inside["net"] == f"net:[{os.stat(netns).st_ino}]"
    assert inside["net"] != host_ns("network")


def test_namespace_path_of_the_wrong_type_is_refused(box, netns):
    box.set_namespace("uts", path=netns)  # a network namespace file given as the uts namespace
    proc = box.run("true")
    assert proc.returncode != 0, "a net namespace was accepted as a uts namespace"
    assert_nothing_left(box)
