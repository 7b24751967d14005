"""The configuration ``runc spec`` writes, as a plain ``dict`` (standard library only).

``default_config()`` is JSON-equal to what ``runc spec`` writes and ``default_config(rootless=True)``
to what ``runc spec --rootless`` writes (runc's ``specconv.Example()`` and ``ToRootless()``).
The ``pyoci spec`` command and the runtime use it without importing pydantic; the pydantic
``pyoci_nb.spec.default_spec()`` is built from it.
"""

from __future__ import annotations

import copy
import json
import os

#: The ociVersion runc 1.1 writes into a new config.json.
RUNC_SPEC_OCI_VERSION = "1.0.2-dev"

_DEFAULT_CAPABILITIES = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]

_DEFAULT_CONFIG: dict = {
    "ociVersion": RUNC_SPEC_OCI_VERSION,
    "process": {
        "terminal": True,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh"],
        "env": [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "TERM=xterm",
        ],
        "cwd": "/",
        "capabilities": {
            "bounding": list(_DEFAULT_CAPABILITIES),
            "effective": list(_DEFAULT_CAPABILITIES),
            "permitted": list(_DEFAULT_CAPABILITIES),
            "ambient": list(_DEFAULT_CAPABILITIES),
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "runc",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ],
    "linux": {
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                       {"type": "uts"}, {"type": "mount"}],
        "maskedPaths": [
            "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
            "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
            "/proc/scsi",
        ],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    },
}


def default_config(rootless: bool = False) -> dict:
    """A fresh deep copy of the config.json ``runc spec`` (``--rootless``) writes.

    Rootless (runc's ``ToRootless``): no network namespace (an unprivileged user cannot set one
    up usefully), a new user namespace mapping container uid/gid 0 to the caller's effective
    uid/gid (size 1), no ``gid=5`` on /dev/pts (gid 5 is not mapped), /sys bind-mounted from
    the host (sysfs cannot be mounted without a network namespace of one's own) and no
    ``linux.resources`` (cgroups are not writable for an unprivileged user).
    """
    config = copy.deepcopy(_DEFAULT_CONFIG)
    if rootless:
        _make_rootless(config)
    return config


def _make_rootless(config: dict) -> None:
    linux = config["linux"]
    namespaces = [ns for ns in linux["namespaces"] if ns["type"] != "network"]
    namespaces.append({"type": "user"})
    linux["namespaces"] = namespaces
    linux["uidMappings"] = [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    linux.pop("resources", None)
    mounts = []
    for mount in config["mounts"]:
        if mount["destination"] == "/sys":
            mount = {"destination": "/sys", "type": "none", "source": "/sys",
                     "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
        elif mount["type"] == "devpts":
            mount = dict(mount, options=[o for o in mount["options"] if not o.startswith("gid=")])
        mounts.append(mount)
    config["mounts"] = mounts


def config_json(config: dict) -> str:
    """``config`` serialised the way runc writes config.json: tab indentation, no trailing
    newline (Go's ``json.MarshalIndent(spec, "", "\\t")``)."""
    return json.dumps(config, indent="\t", ensure_ascii=False)
