"""cgroups of a container: ``linux.cgroupsPath`` and ``linux.resources``, on cgroup v1 and v2.

config-linux.md:

* ``cgroupsPath`` (string, OPTIONAL) is the path of the container's cgroup.  An absolute path is
  relative to the cgroup mount point (the root of each hierarchy); a relative path is relative
  to the runtime's own cgroup in that hierarchy.  When absent the runtime picks one
  (pyoci: ``/pyoci/<id>``; rootless: ``pyoci/<id>`` under its own cgroup).  The cgroup may
  already exist: the container then joins it (and pyoci never removes it).
* ``resources`` configures the cgroup; a resource the cgroup does not offer is an error.

The layout of the machine is detected from ``/proc/self/mountinfo``, never assumed:

* ``unified``: only cgroup2 (every controller in one tree) -> ``V2Manager``;
* ``hybrid``: v1 controller hierarchies plus a cgroup2 tree (``/sys/fs/cgroup/unified``) ->
  ``V1Manager`` that also joins the cgroup2 tree, which serves the controllers bound to v2 only
  (e.g. hugetlb) and ``linux.resources.unified``;
* ``legacy``: v1 only -> ``V1Manager``.

The runtime calls ``manager_for(config, id, rootless)`` at create and saves ``to_state()`` in
state.json; later commands rebuild the manager with ``manager_from_state(saved)``.
systemd-style paths (``slice:prefix:name``) are refused: pyoci drives cgroupfs only.
Standard library only.
"""

from __future__ import annotations

import os

from pyoci_nb.errors import ConfigError, UnsupportedError
from pyoci_nb.runtime import log
from pyoci_nb.runtime.cgroups.base import CgroupManager, NoCgroupManager
from pyoci_nb.runtime.records import FrozenRecord
from pyoci_nb.runtime.syscalls import read_file

__all__ = ["CgroupLayout", "CgroupManager", "Mount", "detect_layout", "manager_for",
           "manager_from_state", "resolve_cgroups_path", "V1_CONTROLLERS"]

#: v1 controllers the kernel may mount (named hierarchies such as name=systemd are kept too).
V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls",
                  "net_prio", "blkio", "perf_event", "hugetlb", "pids", "rdma", "misc")


class Mount(FrozenRecord):
    """One cgroup hierarchy mount: ``mountpoint`` (str), the cgroup it shows as its ``root``
    (str: a cgroup namespace or a bind mount shows a subtree), and the v1 ``controllers``
    (tuple of str) bound to it.  Immutable, compared by value."""

    __slots__ = ("mountpoint", "root", "controllers")
    _defaults = {"controllers": ()}
    mountpoint: str
    root: str
    controllers: tuple[str, ...]

    def directory(self, cgroup: str) -> str:
        """The directory of the cgroup path ``cgroup`` (as /proc/self/cgroup names it)."""
        relative = cgroup
        if self.root != "/" and (cgroup == self.root or cgroup.startswith(self.root + "/")):
            relative = cgroup[len(self.root):]
        return os.path.join(self.mountpoint, relative.lstrip("/"))


class CgroupLayout:
    """The cgroup filesystems of this machine (``mode`` is unified, hybrid or legacy)."""

    __slots__ = ("v1", "v2")

    def __init__(self, v1: dict[str, Mount] | None = None, v2: Mount | None = None):
        self.v1: dict[str, Mount] = {} if v1 is None else v1   # controller (or name=X) -> mount
        self.v2: Mount | None = v2

    def __eq__(self, other) -> bool:
        if not isinstance(other, CgroupLayout):
            return NotImplemented
        return (self.v1, self.v2) == (other.v1, other.v2)

    def __repr__(self) -> str:
        return f"CgroupLayout(v1={self.v1!r}, v2={self.v2!r})"

    @property
    def mode(self) -> str:
        """``unified``, ``hybrid``, ``legacy`` or ``none`` (no cgroup filesystem at all)."""
        if any(not c.startswith("name=") for c in self.v1):
            return "hybrid" if self.v2 else "legacy"
        return "unified" if self.v2 else "none"

    def hierarchies(self) -> list[Mount]:
        """The distinct v1 mounts (co-mounted controllers appear once)."""
        seen, out = set(), []
        for mount in self.v1.values():
            if mount.mountpoint not in seen:
                seen.add(mount.mountpoint)
                out.append(mount)
        return out


def detect_layout(mountinfo: str = "/proc/self/mountinfo") -> CgroupLayout:
    """Read the cgroup mounts from mountinfo (fields: ... root mountpoint ... - fstype src opts)."""
    layout = CgroupLayout()
    lines = read_file(mountinfo).decode().splitlines()
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        root, mountpoint = _unescape(fields[3]), _unescape(fields[4])
        fstype, superopts = tail[0], tail[2].split(",")
        if fstype == "cgroup2":
            if layout.v2 is None or mountpoint == "/sys/fs/cgroup" or root == "/":
                if layout.v2 is None or layout.v2.root != "/":
                    layout.v2 = Mount(mountpoint, root)
        elif fstype == "cgroup":
            controllers = tuple(o for o in superopts
                                if o in V1_CONTROLLERS or o.startswith("name="))
            mount = Mount(mountpoint, root, controllers)
            for controller in controllers:
                if controller not in layout.v1 or (layout.v1[controller].root != "/" and root == "/"):
                    layout.v1[controller] = mount
    return layout


def _unescape(text: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    if "\\" not in text:
        return text
    import re

    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def own_cgroups(path: str = "/proc/self/cgroup") -> dict[str, str]:
    """This process's cgroup per controller (v1 names, ``name=X``) and ``""`` for cgroup2."""
    out: dict[str, str] = {}
    for line in read_file(path).decode().splitlines():
        _, controllers, cgroup = line.split(":", 2)
        if controllers == "":
            out[""] = cgroup
        for controller in controllers.split(","):
            if controller:
                out[controller] = cgroup
    return out


def default_cgroups_path(container_id: str, rootless: bool) -> str:
    """What pyoci uses when ``linux.cgroupsPath`` is absent: ``/pyoci/<id>`` (as root; the
    ``/pyoci`` base cgroup is kept for the next container, like a systemd slice), or
    ``pyoci/<id>`` below the user's own cgroup (rootless)."""
    return f"pyoci/{container_id}" if rootless else f"/pyoci/{container_id}"


def check_cgroups_path(cgroups_path) -> str:
    """Validate ``linux.cgroupsPath``: a string, no ``..``, not systemd-style, not the root."""
    where = "linux.cgroupsPath"
    if not isinstance(cgroups_path, str):
        raise ConfigError("cgroupsPath must be a string", where=where, why=f"got {cgroups_path!r}")
    if ":" in cgroups_path:
        raise UnsupportedError(f"systemd-style cgroupsPath {cgroups_path!r} is not supported",
                               where=where,
                               why="'slice:prefix:name' is the --systemd-cgroup format; pyoci "
                                   "manages cgroups through cgroupfs only",
                               hint="use a path such as /pyoci/mycontainer (podman: "
                                    "--cgroup-manager=cgroupfs; containerd: SystemdCgroup = false)")
    parts = [p for p in cgroups_path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ConfigError(f"cgroupsPath {cgroups_path!r} contains '..'", where=where,
                          why="a cgroup path must not climb out of its base cgroup")
    if not parts:
        raise ConfigError(f"cgroupsPath {cgroups_path!r} names the root cgroup", where=where,
                          why="a container needs a cgroup of its own (the root cgroup has no limits)",
                          hint="use a path such as /pyoci/<id>, or leave cgroupsPath out")
    return ("/" if cgroups_path.startswith("/") else "") + "/".join(parts)


def resolve_cgroups_path(cgroups_path: str, mount: Mount, own: str | None) -> str:
    """The directory of ``cgroups_path`` in one hierarchy: absolute paths hang off the
    hierarchy's root, relative ones off the runtime's own cgroup ``own`` there."""
    if cgroups_path.startswith("/"):
        return os.path.join(mount.mountpoint, cgroups_path.lstrip("/"))
    return os.path.join(mount.directory(own or "/"), cgroups_path)


def _writable(directory: str) -> bool:
    """Can this user create or join the cgroup at ``directory`` (rootless delegation)?"""
    probe = directory
    while not os.path.isdir(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            return False
        probe = parent
    if probe == directory:
        return os.access(os.path.join(directory, "cgroup.procs"), os.W_OK)
    return os.access(probe, os.W_OK | os.X_OK)


def manager_for(config: dict, container_id: str, rootless: bool) -> CgroupManager:
    """The cgroup manager for a new container from its config.json (a plain dict).

    Rootless (runc's behaviour): use the cgroup if the user may write it (a delegated cgroup),
    otherwise run without one and ignore ``linux.resources`` with a warning.
    """
    from pyoci_nb.runtime.cgroups import devices
    from pyoci_nb.runtime.cgroups.v1 import V1Manager
    from pyoci_nb.runtime.cgroups.v2 import V2Manager

    linux = config.get("linux") or {}
    raw_path = linux.get("cgroupsPath")
    cgroups_path = check_cgroups_path(raw_path if raw_path not in (None, "")
                                      else default_cgroups_path(container_id, rootless))
    implied = [] if rootless else devices.implied_rules(config)
    layout = detect_layout()
    own = own_cgroups()
    if layout.mode == "none":
        if rootless:
            return NoCgroupManager(container_id, cgroups_path, True, implied,
                                   reason="no cgroup filesystem is mounted")
        raise UnsupportedError("no cgroup filesystem is mounted", where="/proc/self/mountinfo",
                               why="a container's resources live in cgroups",
                               hint="mount cgroup2 on /sys/fs/cgroup")
    unified = None
    if layout.v2 is not None:
        v2_dir = resolve_cgroups_path(cgroups_path, layout.v2, own.get(""))
        unified = V2Manager(container_id, cgroups_path, v2_dir, layout.v2.mountpoint, rootless,
                            implied)
        if rootless and not _writable(v2_dir):
            unified = None
    if layout.mode == "unified":
        if unified is None:
            return NoCgroupManager(container_id, cgroups_path, True, implied,
                                   reason=f"the user may not write the cgroup for {cgroups_path}")
        return unified
    paths: dict[str, str] = {}
    skipped = []
    for mount in layout.hierarchies():
        key = ",".join(mount.controllers)
        directory = resolve_cgroups_path(cgroups_path, mount, own.get(mount.controllers[0]))
        if rootless and not _writable(directory):
            skipped.append(key)
            continue
        paths[key] = directory
    if rootless and skipped:
        log.warning(f"rootless container: no writable cgroup in {', '.join(skipped)}; "
                    "those resources are ignored")
    if rootless and not paths and unified is None:
        return NoCgroupManager(container_id, cgroups_path, True, implied,
                               reason=f"the user may not write the cgroup for {cgroups_path}")
    return V1Manager(container_id, cgroups_path, paths, unified, rootless, implied)


def manager_from_state(saved: dict) -> CgroupManager:
    """Rebuild the manager the runtime saved with ``to_state()`` in state.json."""
    from pyoci_nb.runtime.cgroups.v1 import V1Manager
    from pyoci_nb.runtime.cgroups.v2 import V2Manager

    driver = saved.get("driver")
    if driver == "v1":
        return V1Manager.from_state(saved)
    if driver == "v2":
        return V2Manager.from_state(saved)
    if driver == "none":
        manager = NoCgroupManager(saved.get("id", ""), saved.get("cgroupsPath", ""),
                                  saved.get("rootless", True), reason=saved.get("reason", ""))
        manager.init_pid = saved.get("initPid")
        manager.resources = saved.get("resources") or {}
        return manager
    from pyoci_nb.errors import ContainerError

    raise ContainerError(f"unknown cgroup driver {driver!r} in the saved state",
                         where="state.json: cgroup.driver",
                         why="expected 'v1', 'v2' or 'none'",
                         hint="the state was written by another pyoci version; delete --force it")
