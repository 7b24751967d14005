"""``pyoci features`` (features.md, features-linux.md): what this runtime really implements.

Every list is built from the tables the runtime itself uses (hook kinds from ``hooks.py``,
mount options from ``mounts.py``, namespaces from ``namespaces.py``, capabilities the running
kernel knows, seccomp from ``seccomp.features()``, cgroup layouts pyoci drives, the scheduler
policies, I/O priority classes, memory policy modes and personality domains ``process.py``
applies), so the output cannot claim more than the code does.  The shape follows runc's
``features`` output; ``memoryPolicy`` follows features-linux.md, and ``scheduler``,
``ioPriority`` and ``personality`` take the same form (features.md: unknown fields are ignored).
"""

from __future__ import annotations

import json
import os
import sys

from pyoci_nb import OCI_VERSION, __version__


def features() -> dict:
    """The features object (features-schema.json)."""
    from pyoci_nb.runtime import hooks, mounts, namespaces, process, syscalls
    from pyoci_nb.spec.capabilities import ALL_CAPABILITIES

    mount_options = set(mounts.MOUNT_FLAGS) | set(mounts.PROPAGATION_FLAGS) | set(mounts.RECURSIVE_FLAGS) \
        | set(mounts.RUNTIME_OPTIONS)
    known_namespaces = [kind for kind, (_, name) in namespaces.NAMESPACES.items()
                        if os.path.exists(f"/proc/self/ns/{name}")]
    last = syscalls.last_capability()
    try:
        from pyoci_nb.runtime import seccomp

        seccomp_features = seccomp.features()
        libseccomp_version = seccomp.library_version()
    except Exception:  # no libseccomp: say so rather than fail
        seccomp_features = {"enabled": False}
        libseccomp_version = None
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(hooks.HOOK_KINDS),
        "mountOptions": sorted(mount_options),
        "linux": {
            "namespaces": sorted(known_namespaces),
            "capabilities": [name for number, name in enumerate(ALL_CAPABILITIES) if number <= last],
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": False},
            "seccomp": seccomp_features,
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            # id-mapped mounts (mounts.prepare_idmapped_mounts): mount_setattr(2), Linux 5.12
            "mountExtensions": {"idmap": {"enabled": _have_mount_setattr()}},
            "memoryPolicy": {"modes": list(process.MEMORY_POLICY_MODES),
                             "flags": list(process.MEMORY_POLICY_FLAGS)},
            # SCHED_ISO is refused (Linux reserves it but never implemented it), and so are
            # the utilization clamp flags (config.md has no clamp values for them)
            "scheduler": {"policies": [p for p in process.SCHED_POLICIES if p != "SCHED_ISO"],
                          "flags": [f for f in process.SCHED_FLAGS if "UTIL_CLAMP" not in f]},
            "ioPriority": {"classes": list(process.IOPRIO_CLASSES)},
            "personality": {"domains": list(process.PERSONALITY_DOMAINS), "flags": []},
        },
        "annotations": {
            "io.github.pyoci.version": __version__,
            **({"io.github.seccomp.libseccomp.version": libseccomp_version} if libseccomp_version else {}),
        },
    }


def _have_mount_setattr() -> bool:
    """Does the kernel have mount_setattr(2) (Linux 5.12)?"""
    release = os.uname().release.split("-")[0].split(".")
    try:
        return (int(release[0]), int(release[1])) >= (5, 12)
    except (ValueError, IndexError):
        return False


def features_command(args) -> int:
    """``pyoci features``: print the features JSON."""
    sys.stdout.write(json.dumps(features(), indent=4) + "\n")
    return 0
