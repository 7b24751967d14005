"""What each field of config.json, state and features means, in a few plain words.

The reprs show these beside the field (and the editors as tooltips); the pydantic models'
``Field(description=...)`` texts, which quote the runtime spec, are shown on hover.  Keys are
JSON paths with list indices removed (``mounts[2].options`` -> ``mounts.options``); the
state's and features' fields are under ``state.`` and ``features.``.
"""

from __future__ import annotations

import re

EXPLANATIONS: dict[str, str] = {
    # --- config.md -------------------------------------------------------------------
    "ociVersion": "the version of the runtime spec this document follows",
    "root": "the container's root filesystem",
    "root.path": "the root filesystem, relative to the bundle (or absolute)",
    "root.readonly": "the whole root filesystem is read-only inside the container",
    "hostname": "the host name the container sees (needs its own uts namespace)",
    "domainname": "the NIS domain name the container sees (needs its own uts namespace)",
    "mounts": "filesystems mounted into the container after the root, in this order",
    "mounts.destination": "where it appears inside the container",
    "mounts.source": "device, directory or filesystem name; relative paths are relative to the bundle",
    "mounts.type": "filesystem type (proc, tmpfs, sysfs, bind ...)",
    "mounts.options": "mount(8) options, e.g. ro, nosuid, bind",
    "mounts.uidMappings": "idmapped mount: file owners shown shifted by this map",
    "mounts.gidMappings": "idmapped mount: file groups shown shifted by this map",
    "process": "the program the container runs",
    "process.terminal": "give the process a pseudo-terminal (stdin/stdout/stderr on a pty)",
    "process.consoleSize": "the terminal's size in characters",
    "process.cwd": "working directory inside the container (absolute)",
    "process.env": "environment variables, KEY=value",
    "process.args": "the program and its arguments, as execvp() takes them",
    "process.commandLine": "the full command line (Windows only)",
    "process.user": "who the process runs as, in the container's user namespace",
    "process.user.uid": "user id inside the container",
    "process.user.gid": "group id inside the container",
    "process.user.umask": "file mode creation mask",
    "process.user.additionalGids": "supplementary groups",
    "process.user.username": "user name (Windows only)",
    "process.capabilities": "Linux capabilities of the process, in five sets",
    "process.capabilities.bounding": "every capability the process and its children may ever hold",
    "process.capabilities.effective": "those checked now, by the kernel, on each privileged operation",
    "process.capabilities.inheritable": "kept across exec for programs whose file capabilities ask for them",
    "process.capabilities.permitted": "those it may make effective",
    "process.capabilities.ambient": "kept across exec, even for ordinary programs",
    "process.rlimits": "resource limits (setrlimit): soft is enforced, hard is the ceiling",
    "process.rlimits.type": "which limit (RLIMIT_NOFILE = open files ...)",
    "process.rlimits.soft": "the limit enforced now",
    "process.rlimits.hard": "the ceiling the soft limit may be raised to",
    "process.noNewPrivileges": "no setuid gain: exec can never grant more privileges",
    "process.apparmorProfile": "AppArmor profile to apply",
    "process.selinuxLabel": "SELinux label of the process",
    "process.oomScoreAdj": "how eagerly the OOM killer picks this process (-1000 .. 1000)",
    "process.scheduler": "scheduling policy and priority (sched_setattr)",
    "process.ioPriority": "I/O scheduling class and priority (ioprio_set)",
    "process.execCPUAffinity": "CPUs the process may run on while and after it execs",
    "hooks": "programs the runtime runs at points of the lifecycle",
    "hooks.prestart": "deprecated: run after the namespaces exist, before pivot_root",
    "hooks.createRuntime": "run in the runtime's namespaces after the container's namespaces exist",
    "hooks.createContainer": "run in the container's namespaces before pivot_root",
    "hooks.startContainer": "run in the container right before the user program",
    "hooks.poststart": "run after the user program has started",
    "hooks.poststop": "run after the container is deleted",
    "annotations": "arbitrary metadata (reverse-domain keys)",
    "linux": "Linux-specific settings",
    "linux.namespaces": "new namespaces for the container; a path joins an existing one; types not listed are shared with the host",
    "linux.namespaces.type": "pid, network, mount, ipc, uts, user, cgroup or time",
    "linux.namespaces.path": "join this existing namespace instead of creating one",
    "linux.uidMappings": "container uids mapped onto host uids (user namespace)",
    "linux.gidMappings": "container gids mapped onto host gids (user namespace)",
    "linux.uidMappings.containerID": "first id inside the container",
    "linux.uidMappings.hostID": "first id on the host",
    "linux.uidMappings.size": "how many ids are mapped",
    "linux.gidMappings.containerID": "first id inside the container",
    "linux.gidMappings.hostID": "first id on the host",
    "linux.gidMappings.size": "how many ids are mapped",
    "linux.timeOffsets": "clock offsets of the time namespace",
    "linux.devices": "device nodes created in the container's /dev",
    "linux.devices.path": "path inside the container",
    "linux.devices.type": "c (character), b (block), u (unbuffered) or p (FIFO)",
    "linux.devices.major": "major device number",
    "linux.devices.minor": "minor device number",
    "linux.devices.fileMode": "permission bits",
    "linux.cgroupsPath": "the container's cgroup, relative to the cgroup root (or absolute)",
    "linux.resources": "cgroup limits",
    "linux.resources.devices": "device access allow/deny rules, applied in order",
    "linux.resources.memory": "memory controller",
    "linux.resources.memory.limit": "memory limit in bytes (-1: none)",
    "linux.resources.memory.reservation": "soft limit in bytes",
    "linux.resources.memory.swap": "memory + swap limit in bytes",
    "linux.resources.cpu": "cpu and cpuset controllers",
    "linux.resources.cpu.shares": "relative weight against other cgroups",
    "linux.resources.cpu.quota": "microseconds of CPU time per period",
    "linux.resources.cpu.period": "length of a period in microseconds",
    "linux.resources.cpu.cpus": "CPUs the container may use (0-3,6)",
    "linux.resources.cpu.mems": "memory nodes the container may use",
    "linux.resources.pids": "pids controller",
    "linux.resources.pids.limit": "maximum number of tasks (processes and threads)",
    "linux.resources.blockIO": "block I/O weights and throttles",
    "linux.resources.hugepageLimits": "hugetlb limits per page size",
    "linux.resources.network": "net_cls class id and net_prio priorities",
    "linux.resources.unified": "cgroup v2 files written as given",
    "linux.intelRdt": "Intel RDT cache and memory bandwidth allocation",
    "linux.sysctl": "kernel parameters set inside the container's namespaces",
    "linux.seccomp": "system call filter",
    "linux.seccomp.defaultAction": "what happens to a system call no rule matches",
    "linux.seccomp.defaultErrnoRet": "errno returned by the default action",
    "linux.seccomp.architectures": "architectures the filter also accepts (e.g. 32-bit x86)",
    "linux.seccomp.flags": "seccomp(2) flags",
    "linux.seccomp.listenerPath": "socket that receives the notify fd",
    "linux.seccomp.syscalls": "rules: system call names -> action, optionally on argument values",
    "linux.rootfsPropagation": "mount propagation of the root (shared, slave, private ...)",
    "linux.maskedPaths": "hidden from the container",
    "linux.readonlyPaths": "read-only inside the container",
    "linux.mountLabel": "SELinux context of the container's mounts",
    "linux.personality": "execution domain (e.g. LINUX32)",
    # --- runtime.md: the state ---------------------------------------------------------
    "state.ociVersion": "the version of the runtime spec the state follows",
    "state.id": "the container's unique id on this host",
    "state.status": "creating, created, running or stopped",
    "state.pid": "the container's process, as the host sees it",
    "state.bundle": "absolute path of the bundle directory",
    "state.annotations": "the annotations of config.json",
    # --- features.md -----------------------------------------------------------------
    "features.ociVersionMin": "oldest spec version the runtime accepts",
    "features.ociVersionMax": "newest spec version the runtime accepts",
    "features.hooks": "hook kinds the runtime runs",
    "features.mountOptions": "mount options the runtime knows",
    "features.linux": "Linux features the runtime supports",
    "features.annotations": "runtime-specific facts",
}

_INDEX = re.compile(r"\[[^\]]*\]")


def normalize_path(path: str) -> str:
    """``mounts[2].options`` -> ``mounts.options``; ``linux.sysctl["a.b"]`` -> ``linux.sysctl``."""
    return _INDEX.sub("", path)


def explain(path: str) -> str:
    """The plain-words explanation of the field at JSON ``path`` ("" when there is none)."""
    return EXPLANATIONS.get(normalize_path(path), "")
