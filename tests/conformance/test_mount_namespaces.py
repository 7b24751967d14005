"""Mount namespaces and mounts (issue #11 items 2, 3, 4, 7, 8), read back from inside real
containers: ``rootfsPropagation: unbindable`` (config-linux.md "Rootfs Mount Propagation"), a
mount namespace joined by ``path`` and one left out of ``linux.namespaces`` (config-linux.md
"Namespaces": inherited from the runtime), id-mapped mounts (config.md "Mounts":
``uidMappings``/``gidMappings``, options ``idmap``/``ridmap``), and the mode of a tmpfs
without a ``mode`` option (as runc has it)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from oci_harness import NS_FILE, assert_nothing_left, host_ns, parse_mountinfo

ALL_NS = ("pid", "network", "ipc", "uts", "mount", "cgroup", "user")
READ_ALL_NS = "for n in pid net ipc uts mnt cgroup user; do echo $n $(readlink /proc/self/ns/$n); done"


def root_mount_line(mountinfo: str) -> list[str]:
    """The fields of the topmost mountinfo line whose mount point is "/"."""
    found = None
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] == "/":
            found = fields
    assert found, f"no / in\n{mountinfo}"
    return found


def host_root() -> tuple[str, ...]:
    """The host's "/" as this process sees it: per-mount options and propagation fields."""
    fields = root_mount_line(Path("/proc/self/mountinfo").read_text())
    return tuple(fields[5:fields.index("-")])


def with_caps(box, *extra: str) -> None:
    process = box.config["process"]
    for kind in ("bounding", "effective", "permitted"):
        process["capabilities"][kind] = sorted(set(process["capabilities"][kind]) | set(extra))


# --- item 2: rootfsPropagation unbindable ---------------------------------------------------

@pytest.mark.runc_divergent  # runc 1.1.5 makes / unbindable before binding the rootfs: EINVAL
@pytest.mark.parametrize("propagation", ["unbindable", "runbindable"])
def test_rootfs_propagation_unbindable(box, propagation):
    """The container starts, its "/" is unbindable (mountinfo), and binding it fails while
    binding a mount of its own works."""
    box.config["linux"]["rootfsPropagation"] = propagation
    box.config["root"]["readonly"] = False
    with_caps(box, "CAP_SYS_ADMIN")
    out = box.sh("cat /proc/self/mountinfo; echo ==; mkdir -p /tmp/a /tmp/b /tmp/c; "
                 "mount -t tmpfs scratch /tmp/a && mount --bind /tmp/a /tmp/b && echo other-bound; "
                 "mount --bind / /tmp/c 2>/dev/null && echo root-bound || echo root-refused").stdout
    mountinfo, _, results = out.partition("==\n")
    root = root_mount_line(mountinfo)
    assert "unbindable" in root[6:root.index("-")], f"/ is not unbindable: {' '.join(root)}"
    assert results.split() == ["other-bound", "root-refused"]


# --- item 3: a mount namespace joined by path -------------------------------------------------

@pytest.fixture
def mount_namespace(tmp_path):
    """A mount namespace kept by a bind of its nsfs file (``unshare --mount=FILE``; the file's
    directory is a private mount, as the kernel requires); unmounted after the test."""
    holder = tmp_path / "ns"
    holder.mkdir()
    subprocess.run(["mount", "--bind", str(holder), str(holder)], check=True)
    try:
        subprocess.run(["mount", "--make-private", str(holder)], check=True)
        ns_file = holder / "mnt"
        ns_file.touch()
        subprocess.run(["unshare", f"--mount={ns_file}", "true"], check=True)
        try:
            yield ns_file
        finally:
            subprocess.run(["umount", str(ns_file)], check=False)
    finally:
        subprocess.run(["umount", "-l", str(holder)], check=False)


def test_mount_namespace_joined_by_path_gets_the_rootfs(box, mount_namespace):
    """config-linux.md: the container MUST be placed in the namespace at ``path``; it gets the
    whole rootfs set-up there (rootfs, /proc, /dev) -- pivot_root used to fail with EBUSY."""
    box.set_namespace("mount", path=str(mount_namespace))
    (box.rootfs / "marker-of-this-rootfs").write_text("yes\n")
    out = box.sh("readlink /proc/self/ns/mnt; cat /marker-of-this-rootfs; "
                 "grep -c . /proc/self/status >/dev/null && echo proc-ok; ls /dev/null").stdout.split()
    assert out == [f"mnt:[{os.stat(mount_namespace).st_ino}]", "yes", "proc-ok", "/dev/null"]
    assert_nothing_left(box)


# --- item 4: no mount namespace: the runtime's, below a bind of the rootfs --------------------

def no_namespaces(box) -> None:
    box.config["linux"]["namespaces"] = []
    box.config.pop("hostname", None)  # a hostname needs a uts namespace of its own


@pytest.mark.runc_divergent  # runc 1.1.5 refuses maskedPaths without a mount namespace, and leaks mounts
def test_no_namespaces_runs_with_every_namespace_the_callers(box):
    """``namespaces: []``: every namespace link equals the caller's; the root is the bundle's
    rootfs with /proc, /dev, masked and read-only paths; the host's "/" keeps its options and
    propagation although the container's root is read-only; nothing is left afterwards."""
    no_namespaces(box)
    assert box.config["root"]["readonly"] is True
    before = host_root()
    (box.rootfs / "marker-of-this-rootfs").write_text("yes\n")
    out = box.sh(READ_ALL_NS + "; cat /marker-of-this-rootfs; touch /x 2>/dev/null || echo root-ro; "
                 "ls /dev/null; cat /proc/self/mountinfo").stdout.splitlines()
    inside = dict(line.split(" ", 1) for line in out[:len(ALL_NS)])
    for ns_type in ALL_NS:
        assert inside[NS_FILE[ns_type]] == host_ns(ns_type), f"{ns_type} namespace is not the caller's"
    assert out[len(ALL_NS):len(ALL_NS) + 3] == ["yes", "root-ro", "/dev/null"]
    seen = parse_mountinfo("\n".join(out[len(ALL_NS) + 3:]))
    assert seen["/proc"].fstype == "proc" and seen["/dev"].fstype == "tmpfs"
    assert seen["/proc/keys"].fstype == "tmpfs", "maskedPaths: /proc/keys is not the null device"
    assert "ro" in seen["/proc/sys"].options, "readonlyPaths: /proc/sys is not read-only"
    assert host_root() == before, "the host's / changed"
    assert_nothing_left(box)


@pytest.mark.runc_divergent
@pytest.mark.parametrize("how", ["delete", "delete --force"])
def test_no_mount_namespace_delete_removes_every_mount(box, how):
    """The mounts create made in the runtime's mount namespace are there while the container
    lives (``exec`` runs in its root) and all gone after ``delete`` (runc 1.1 leaks them)."""
    no_namespaces(box)
    bundle = os.path.realpath(box.bundle)
    (box.rootfs / "marker-of-this-rootfs").write_text("yes\n")
    box.start_sleeper()
    mounted = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
               if line.split()[4].startswith(bundle + "/")]
    assert f"{bundle}/rootfs" in mounted and f"{bundle}/rootfs/proc" in mounted
    proc = box.exec("cat", "/marker-of-this-rootfs")
    assert (proc.returncode, proc.stdout) == (0, "yes\n"), proc.stderr
    if how == "delete":
        box.kill("KILL")
        box.runtime.wait_status(box.id, "stopped")
        box.delete()
    else:
        box.delete(force=True)
    assert_nothing_left(box)


@pytest.mark.runc_divergent
def test_no_mount_namespace_runtime_killed_mid_create(box):
    """A runtime killed in the middle of create (by a createRuntime hook, after init made the
    mounts): ``delete --force`` still removes every mount."""
    no_namespaces(box)
    box.add_hook("createRuntime", {"path": "/bin/sh", "args": ["sh", "-c", "kill -9 $PPID"]})
    bundle = os.path.realpath(box.bundle)
    box.args("true")
    proc = box.create(check=False)
    assert proc.returncode != 0
    assert any(line.split()[4] == f"{bundle}/rootfs/proc"
               for line in Path("/proc/self/mountinfo").read_text().splitlines()), \
        "the mounts were not made before the runtime was killed: the test proves nothing"
    box.delete(force=True)
    assert_nothing_left(box)


@pytest.mark.pyoci_only
def test_a_user_namespace_without_a_mount_namespace_is_refused(box):
    """A container in another user namespace has no right to mount in the runtime's mount
    namespace: refused before anything is made, with the fix named."""
    box.set_namespace("user")
    box.remove_namespace("mount")
    box.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
    box.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
    proc = box.run("true")
    assert proc.returncode != 0
    assert "linux.namespaces" in proc.stderr and "mount namespace" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert_nothing_left(box)


# --- item 7: id-mapped mounts -------------------------------------------------------------------

@pytest.fixture
def owned_tree(tmp_path):
    """A directory with files owned by 0:0, 1000:1000 and 200000:200000 (outside the maps)."""
    source = tmp_path / "volume"
    source.mkdir()
    for name, owner in (("f0", 0), ("f1000", 1000), ("fbig", 200000)):
        (source / name).touch()
        os.chown(source / name, owner, owner)
    return source


def owners(listing: str) -> dict[str, str]:
    """``stat -c '%n %u:%g'`` lines -> {basename: "uid:gid"}."""
    return {os.path.basename(name): ids for name, ids in (line.split() for line in listing.splitlines())}


@pytest.mark.runc_divergent  # runc 1.1.5 ignores uidMappings/gidMappings of mounts
def test_idmapped_bind_shows_mapped_owners(box, owned_tree):
    """The mount's mappings apply to the files seen through it (0 -> 5000 for users, 0 -> 7000
    for groups); an id outside them is the overflow id; the source keeps its owners."""
    box.config["mounts"].append({"destination": "/data", "type": "bind", "source": str(owned_tree),
                                 "options": ["rbind"],
                                 "uidMappings": [{"containerID": 0, "hostID": 5000, "size": 65536}],
                                 "gidMappings": [{"containerID": 0, "hostID": 7000, "size": 65536}]})
    out = box.sh("stat -c '%n %u:%g' /data/f0 /data/f1000 /data/fbig; grep ' /data ' /proc/self/mountinfo").stdout
    lines = out.splitlines()
    assert owners("\n".join(lines[:3])) == {"f0": "5000:7000", "f1000": "6000:8000", "fbig": "65534:65534"}
    assert "idmapped" in lines[3]
    assert (os.stat(owned_tree / "f0").st_uid, os.stat(owned_tree / "f1000").st_gid) == (0, 1000)
    assert_nothing_left(box)


@pytest.mark.runc_divergent
def test_idmap_option_takes_the_container_user_namespace(box, owned_tree):
    """``idmap`` without mappings of its own: the container's user namespace maps the mount.
    Its ids from 1 on are host ids from 100001 on, so without the id-mapped mount the volume's
    1000 would be unmapped (65534) inside; through it the container sees 1000, and what it
    creates as 1000 is 1000 on disk.  (Container root stays host root: the test's bundle is
    below a directory closed to other users.)"""
    box.set_namespace("user")
    maps = [{"containerID": 0, "hostID": 0, "size": 1}, {"containerID": 1, "hostID": 100001, "size": 65535}]
    box.config["linux"]["uidMappings"] = maps
    box.config["linux"]["gidMappings"] = maps
    box.config["mounts"].append({"destination": "/data", "type": "bind", "source": str(owned_tree),
                                 "options": ["bind", "idmap"]})
    with_caps(box, "CAP_CHOWN")
    out = box.sh("stat -c '%n %u:%g' /data/f0 /data/f1000 /data/fbig; "
                 "touch /data/made-inside; chown 1000:1000 /data/made-inside").stdout
    assert owners(out) == {"f0": "0:0", "f1000": "1000:1000", "fbig": "65534:65534"}
    made = os.stat(owned_tree / "made-inside")
    assert (made.st_uid, made.st_gid) == (1000, 1000)


@pytest.fixture
def tree_with_submount(owned_tree):
    """``owned_tree`` with a tmpfs mounted at ``sub`` holding a root-owned file."""
    sub = owned_tree / "sub"
    sub.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(sub)], check=True)
    try:
        (sub / "inner").touch()
        yield owned_tree
    finally:
        subprocess.run(["umount", "-l", str(sub)], check=False)


@pytest.mark.runc_divergent
@pytest.mark.parametrize("option, inner", [("idmap", "0:0"), ("ridmap", "5000:5000")])
def test_ridmap_maps_the_submounts_too(box, tree_with_submount, option, inner):
    """With ``rbind``, ``idmap`` maps the bind itself and ``ridmap`` also the mounts below it."""
    maps = [{"containerID": 0, "hostID": 5000, "size": 65536}]
    box.config["mounts"].append({"destination": "/data", "type": "bind", "source": str(tree_with_submount),
                                 "options": ["rbind", option], "uidMappings": maps, "gidMappings": maps})
    out = box.sh("stat -c '%n %u:%g' /data/f0 /data/sub/inner").stdout
    assert owners(out) == {"f0": "5000:5000", "inner": inner}


@pytest.mark.runc_divergent  # runc 1.1.5 ignores the fields: nothing to refuse
@pytest.mark.parametrize("mount, words", [
    ({"type": "tmpfs", "source": "tmpfs"}, ["mounts[", "not a bind mount"]),
    ({"type": "bind", "options": ["rbind"], "gidMappings": None}, ["mounts[", ".gidMappings", "both"]),
    ({"type": "bind", "options": ["rbind", "idmap"], "uidMappings": None, "gidMappings": None},
     ["mounts[", "user namespace"]),
    ({"type": "bind", "options": ["rbind"],
      "uidMappings": [{"containerID": 0, "hostID": 1, "size": 10}, {"containerID": 5, "hostID": 100, "size": 10}]},
     ["mounts[", ".uidMappings", "overlap"]),
    ({"type": "bind", "options": ["rbind"], "source": "/nonexistent-pyoci-volume"}, ["mounts[", ".source", "ENOENT"]),
])
def test_bad_idmapped_mounts_are_refused(box, owned_tree, mount, words):
    """A non-bind id-mapped mount, one mapping without the other, ``idmap`` with neither and
    no user namespace, overlapping ranges, a missing source: a clear error naming the mount's
    field, nothing left."""
    maps = [{"containerID": 0, "hostID": 5000, "size": 65536}]
    entry = {"destination": "/data", "source": str(owned_tree), "uidMappings": maps, "gidMappings": maps}
    entry.update(mount)
    box.config["mounts"].append({k: v for k, v in entry.items() if v is not None})
    proc = box.run("true")
    assert proc.returncode != 0
    message = proc.stderr.lower()
    assert all(word.lower() in message for word in words), proc.stderr
    assert "traceback" not in message
    assert_nothing_left(box)


@pytest.mark.pyoci_only
def test_features_list_idmapped_mounts(runtime):
    features = json.loads(runtime("features", check=True).stdout)
    assert features["linux"]["mountExtensions"] == {"idmap": {"enabled": True}}
    assert {"idmap", "ridmap"} <= set(features["mountOptions"])


# --- item 8: the mode of a tmpfs without a mode option -------------------------------------------

def test_tmpfs_without_mode_keeps_the_mode_of_the_directory_it_covers(box):
    """As runc: a tmpfs over an existing directory takes its mode (0710, 2750 here); over a
    directory the runtime makes, the tmpfs default 1777."""
    for name, mode in (("private", 0o710), ("shared", 0o2750)):
        (box.rootfs / name).mkdir()
        os.chmod(box.rootfs / name, mode)
        box.add_mount(f"/{name}", "tmpfs", "tmpfs")
    box.add_mount("/made-here", "tmpfs", "tmpfs")
    out = box.sh("stat -c '%n %a' /private /shared /made-here; grep ' /private ' /proc/self/mountinfo").stdout
    lines = out.splitlines()
    assert lines[:3] == ["/private 710", "/shared 2750", "/made-here 1777"]
    assert parse_mountinfo(lines[3])["/private"].fstype == "tmpfs"


@pytest.mark.runc_divergent  # runc 1.1.5 chmods the tmpfs to the directory's mode after mounting
def test_tmpfs_mode_option_wins_over_the_directory(box):
    (box.rootfs / "private").mkdir()
    os.chmod(box.rootfs / "private", 0o710)
    box.add_mount("/private", "tmpfs", "tmpfs", ["mode=755"])
    assert box.sh("stat -c '%a' /private").stdout == "755\n"
