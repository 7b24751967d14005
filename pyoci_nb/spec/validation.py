"""Validation of config.json as a plain ``dict`` (standard library only).

``validate_config(config, for_start=False)`` returns every ``Problem`` in a config: violations of
the official runtime-spec 1.3 JSON schema (``jsonschema_lite``) plus the rules the spec states in
prose that the schema cannot express (absolute paths, known capability and rlimit names,
duplicate namespaces, id mappings that need a user namespace, sysctl names ...).  Unknown
properties are never a problem: the spec says a runtime MUST ignore them.

The ``check_*`` functions are the single definition of each rule; the pydantic models in
``models.py`` call the same functions from their validators, and the runtime calls
``validate_config`` for its pre-flight check without importing pydantic.  Each returns ``None``
when the value is fine, else the message of the rule it breaks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pyoci_nb.runtime import seccomp as _seccomp
from pyoci_nb.spec import jsonschema_lite
from pyoci_nb.spec.capabilities import ALL_CAPABILITIES, CAPABILITY_NUMBERS, CAPABILITY_SETS
from pyoci_nb.spec.namespace_types import NAMESPACE_TYPES
from pyoci_nb.spec.problems import Problem, join_path, short_repr

# --------------------------------------------------------------------------- known names
#: setrlimit(2) resources, index == RLIMIT_* number on Linux.
RLIMIT_TYPES: tuple[str, ...] = (
    "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS",
    "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS",
    "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME",
)
ROOTFS_PROPAGATIONS = ("private", "shared", "slave", "unbindable")
# the seccomp vocabulary is defined once, by the runtime module that compiles filters
SECCOMP_ACTIONS = _seccomp.ACTIONS
SECCOMP_ARCHES = _seccomp.ARCHITECTURES
SECCOMP_OPERATORS = _seccomp.OPERATORS
SECCOMP_FLAGS = _seccomp.KNOWN_FLAGS
SCHEDULER_POLICIES = ("SCHED_OTHER", "SCHED_FIFO", "SCHED_RR", "SCHED_BATCH", "SCHED_ISO", "SCHED_IDLE",
                      "SCHED_DEADLINE")
SCHEDULER_FLAGS = ("SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_RECLAIM", "SCHED_FLAG_DL_OVERRUN",
                   "SCHED_FLAG_KEEP_POLICY", "SCHED_FLAG_KEEP_PARAMS", "SCHED_FLAG_UTIL_CLAMP_MIN",
                   "SCHED_FLAG_UTIL_CLAMP_MAX")
IOPRIO_CLASSES = ("IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE", "IOPRIO_CLASS_IDLE")
PERSONALITY_DOMAINS = ("LINUX", "LINUX32")
MEMORY_POLICY_MODES = ("MPOL_DEFAULT", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE",
                       "MPOL_PREFERRED", "MPOL_PREFERRED_MANY", "MPOL_LOCAL")
MEMORY_POLICY_FLAGS = ("MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES")
HOOK_NAMES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
DEVICE_TYPES = ("c", "b", "u", "p")
CGROUP_DEVICE_TYPES = ("a", "c", "b")
CONTAINER_STATUSES = ("creating", "created", "running", "stopped")

#: sysctls that belong to the IPC namespace (runc's validator); ``fs.mqueue.*`` too.
IPC_SYSCTLS = frozenset({"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                         "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"})
UTS_SYSCTLS = frozenset({"kernel.hostname", "kernel.domainname"})

_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
                     r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
                     r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$")
_ENV_NAME = re.compile(r"^[^=]+$")
_SYSCTL_NAME = re.compile(r"^[A-Za-z0-9_*-]+([./][A-Za-z0-9_*@:+-]+)+$")


def unknown_name(kind: str, value: Any, known: Iterable[str]) -> str:
    """The message for a name outside a closed list, with the list."""
    return f"not a known {kind}: {short_repr(value)} (known ones are {', '.join(known)})"


# --------------------------------------------------------------------------- one rule each
def check_oci_version(value: str) -> str | None:
    """config.md: ociVersion MUST be in SemVer v2.0.0 format."""
    if not _SEMVER.match(value):
        return f"{short_repr(value)} is not a SemVer 2.0.0 version (like \"1.3.0\" or \"1.0.2-dev\")"
    return None


def check_absolute(value: str, what: str = "path") -> str | None:
    """The spec requires this path to be absolute (start with "/")."""
    if not value.startswith("/"):
        return f"{what} must be an absolute path (start with \"/\"), got {short_repr(value)}"
    return None


def check_capability(name: str) -> str | None:
    """config.md: capability names are those of capabilities(7); unknown ones MUST be an error."""
    if name not in CAPABILITY_NUMBERS:
        return unknown_name("capability", name, ALL_CAPABILITIES)
    return None


def check_rlimit_type(name: str) -> str | None:
    """config.md: rlimit types are the resources of setrlimit(2); unknown ones MUST be an error."""
    if name not in RLIMIT_TYPES:
        return unknown_name("rlimit type", name, RLIMIT_TYPES)
    return None


def check_rlimit_range(soft: int, hard: int) -> str | None:
    """setrlimit(2): the soft limit cannot exceed the hard limit (EINVAL)."""
    if soft > hard:
        return f"soft limit {soft} is above the hard limit {hard} (setrlimit(2) refuses soft > hard)"
    return None


def check_env_entry(entry: str) -> str | None:
    """config.md: env entries are "KEY=value" (IEEE Std 1003.1 environ); runc refuses a missing
    '=' or an empty name."""
    name, sep, _ = entry.partition("=")
    if not sep:
        return f"environment entry {short_repr(entry)} has no '=': write it as NAME=value"
    if not name or not _ENV_NAME.match(name):
        return f"environment entry {short_repr(entry)} has an empty name: write it as NAME=value"
    return None


def check_namespace_type(value: str) -> str | None:
    """config-linux.md: the namespace types are mount, pid, network, uts, ipc, user, cgroup, time."""
    if value not in NAMESPACE_TYPES:
        return unknown_name("namespace type", value, NAMESPACE_TYPES)
    return None


def check_one_of(kind: str, known: tuple[str, ...]):
    """A rule function accepting only the names in ``known``."""
    def rule(value: str) -> str | None:
        return None if value in known else unknown_name(kind, value, known)
    rule.__doc__ = f"{kind} must be one of {', '.join(known)}."
    rule.__name__ = "check_" + kind.replace(" ", "_")
    return rule


check_rootfs_propagation = check_one_of("rootfs propagation", ROOTFS_PROPAGATIONS)
check_seccomp_action = check_one_of("seccomp action", SECCOMP_ACTIONS)
check_seccomp_arch = check_one_of("seccomp architecture", SECCOMP_ARCHES)
check_seccomp_operator = check_one_of("seccomp operator", SECCOMP_OPERATORS)
check_seccomp_flag = check_one_of("seccomp flag", SECCOMP_FLAGS)
check_device_type = check_one_of("device type", DEVICE_TYPES)
check_cgroup_device_type = check_one_of("cgroup device type", CGROUP_DEVICE_TYPES)


def check_cgroup_device_access(access: str) -> str | None:
    """config-linux.md: access is a composition of r (read), w (write) and m (mknod)."""
    if not set(access) <= set("rwm"):
        return f"access {short_repr(access)} may only combine the letters r (read), w (write) and m (mknod)"
    return None


def check_sysctl_name(name: str, namespace_types: Iterable[str] | None = None) -> str | None:
    """config-linux.md: sysctl keys are kernel parameter names (net.ipv4.ip_forward).  A container
    can only set namespaced ones, and only when it has that namespace of its own (runc's rule):
    net.* needs a network namespace, IPC ones (kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*)
    an ipc namespace, kernel.hostname/domainname a uts namespace."""
    if not _SYSCTL_NAME.match(name) or ".." in name:
        return (f"{short_repr(name)} is not a sysctl name (dot-separated words such as "
                f"net.ipv4.ip_forward, as in /proc/sys)")
    if namespace_types is None:
        return None
    namespaces = set(namespace_types)
    dotted = name.replace("/", ".")
    if dotted.startswith("net."):
        needed = "network"
    elif dotted in IPC_SYSCTLS or dotted.startswith("fs.mqueue."):
        needed = "ipc"
    elif dotted in UTS_SYSCTLS:
        needed = "uts"
    else:
        return (f"sysctl {short_repr(name)} is not in a separate kernel namespace, so a container "
                f"cannot set it (only net.*, IPC and uts sysctls can be set per container)")
    if needed not in namespaces:
        return (f"sysctl {short_repr(name)} needs a {needed} namespace of the container's own: "
                f"add {{\"type\": \"{needed}\"}} to linux.namespaces")
    return None


def check_oom_score_adj(value: int) -> str | None:
    """proc(5): oom_score_adj ranges from -1000 to 1000."""
    if not -1000 <= value <= 1000:
        return f"{value} is outside -1000..1000 (the range of /proc/PID/oom_score_adj)"
    return None


def check_io_priority(value: int) -> str | None:
    """config.md: ioPriority.priority ranges from 0 (highest) to 7 (lowest)."""
    if not 0 <= value <= 7:
        return f"{value} is outside 0..7 (0 is the highest I/O priority, 7 the lowest)"
    return None


def check_syscall_arg_index(value: int) -> str | None:
    """seccomp filters see the first six system call arguments (index 0..5)."""
    if not 0 <= value <= 5:
        return f"argument index {value} is outside 0..5 (system calls have at most six arguments)"
    return None


# --------------------------------------------------------------------------- the walker
def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


class _Collector:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def rule(self, path: str, value: Any, message: str | None) -> None:
        if message:
            self.problems.append(Problem(path, message, value))

    def strings(self, path: str, values: Any, rule) -> None:
        """Apply ``rule`` to every string of a list."""
        for index, item in enumerate(_list(values)):
            if isinstance(item, str):
                self.rule(join_path(path, index), item, rule(item))


def rule_problems(config: dict, for_start: bool = False) -> list[Problem]:
    """The problems with the spec's prose rules (those the JSON schema cannot say).  Values of
    the wrong JSON type are skipped here: the schema check reports them."""
    out = _Collector()
    linux = _dict(config.get("linux"))
    namespaces = [ns for ns in _list(linux.get("namespaces")) if isinstance(ns, dict)]
    namespace_types = [ns.get("type") for ns in namespaces if isinstance(ns.get("type"), str)]
    new_or_joined = set(namespace_types)

    version = config.get("ociVersion")
    if isinstance(version, str):
        out.rule("ociVersion", version, check_oci_version(version))

    if "root" not in config:
        out.rule("root", None, "is required on Linux (config.md: root is REQUIRED on all platforms but "
                               "Windows/VMs): add {\"path\": \"rootfs\"}")
    root = _dict(config.get("root"))
    if isinstance(root.get("path"), str) and not root["path"]:
        out.rule("root.path", "", "must not be empty: give the root filesystem's directory (e.g. \"rootfs\")")

    _process_rules(out, config.get("process"), "process", for_start, "process" in config)

    for index, mount in enumerate(_list(config.get("mounts"))):
        if not isinstance(mount, dict):
            continue
        path = join_path("mounts", index)
        if isinstance(mount.get("destination"), str):
            out.rule(join_path(path, "destination"), mount["destination"],
                     check_absolute(mount["destination"], "a mount destination"))
        has_uid, has_gid = bool(mount.get("uidMappings")), bool(mount.get("gidMappings"))
        if has_uid != has_gid:
            missing = "gidMappings" if has_uid else "uidMappings"
            out.rule(join_path(path, missing), None,
                     "an id-mapped mount needs both uidMappings and gidMappings (one user namespace carries both)")

    hooks = _dict(config.get("hooks"))
    for hook_name in HOOK_NAMES:
        for index, hook in enumerate(_list(hooks.get(hook_name))):
            if isinstance(hook, dict) and isinstance(hook.get("path"), str):
                hook_path = join_path(join_path(join_path("hooks", hook_name), index), "path")
                out.rule(hook_path, hook["path"], check_absolute(hook["path"], "a hook path"))
            if isinstance(hook, dict):
                out.strings(join_path(join_path(join_path("hooks", hook_name), index), "env"),
                            hook.get("env"), check_env_entry)

    hostname_needs_uts = [key for key in ("hostname", "domainname")
                          if isinstance(config.get(key), str) and config[key]]
    if hostname_needs_uts and "uts" not in new_or_joined and "linux" in config:
        for key in hostname_needs_uts:
            out.rule(key, config[key], f"setting the {key} to {short_repr(config[key])} needs a uts namespace "
                                       "of the container's own: add {\"type\": \"uts\"} to linux.namespaces")

    if isinstance(config.get("linux"), dict):
        _linux_rules(out, linux, namespaces, new_or_joined)
    return out.problems


def _process_rules(out: _Collector, process: Any, base: str, for_start: bool, present: bool) -> None:
    if not present:
        if for_start:
            out.rule(base, None, "is required to start a container "
                                 "(config.md: process is REQUIRED when start is called)")
        return
    if not isinstance(process, dict):
        return
    cwd = process.get("cwd")
    if isinstance(cwd, str):
        out.rule(join_path(base, "cwd"), cwd, check_absolute(cwd, "cwd"))
    args = process.get("args")
    if isinstance(args, list) and not args:
        out.rule(join_path(base, "args"), args, "must have at least one entry (the program to run)")
    elif args is None and for_start:
        out.rule(join_path(base, "args"), None, "is required to start a container: give the program to run, "
                                               "e.g. [\"sh\"]")
    out.strings(join_path(base, "env"), process.get("env"), check_env_entry)
    capabilities = _dict(process.get("capabilities"))
    for set_name in CAPABILITY_SETS:
        out.strings(join_path(join_path(base, "capabilities"), set_name),
                    capabilities.get(set_name), check_capability)
    seen_rlimits: dict[str, int] = {}
    for index, rlimit in enumerate(_list(process.get("rlimits"))):
        if not isinstance(rlimit, dict):
            continue
        path = join_path(join_path(base, "rlimits"), index)
        kind = rlimit.get("type")
        if isinstance(kind, str):
            out.rule(join_path(path, "type"), kind, check_rlimit_type(kind))
            if kind in seen_rlimits:
                out.rule(join_path(path, "type"), kind,
                         f"duplicate rlimit {kind} (also at {join_path(base, 'rlimits')}[{seen_rlimits[kind]}]); "
                         "config.md: duplicated rlimit types MUST be an error")
            seen_rlimits.setdefault(kind, index)
        soft, hard = rlimit.get("soft"), rlimit.get("hard")
        if _is_int(soft) and _is_int(hard):
            out.rule(join_path(path, "soft"), soft, check_rlimit_range(soft, hard))
    if _is_int(process.get("oomScoreAdj")):
        out.rule(join_path(base, "oomScoreAdj"), process["oomScoreAdj"], check_oom_score_adj(process["oomScoreAdj"]))
    io_priority = _dict(process.get("ioPriority"))
    if _is_int(io_priority.get("priority")):
        out.rule(join_path(join_path(base, "ioPriority"), "priority"), io_priority["priority"],
                 check_io_priority(io_priority["priority"]))


def _linux_rules(out: _Collector, linux: dict, namespaces: list[dict], new_or_joined: set) -> None:
    seen: dict[str, int] = {}
    for index, namespace in enumerate(_list(linux.get("namespaces"))):
        if not isinstance(namespace, dict):
            continue
        path = join_path("linux.namespaces", index)
        kind = namespace.get("type")
        if isinstance(kind, str):
            out.rule(join_path(path, "type"), kind, check_namespace_type(kind))
            if kind in seen:
                out.rule(join_path(path, "type"), kind,
                         f"duplicate namespace type {kind!r} (also at linux.namespaces[{seen[kind]}]); "
                         "config-linux.md: duplicated namespace types MUST be an error")
            seen.setdefault(kind, index)
        if isinstance(namespace.get("path"), str):
            out.rule(join_path(path, "path"), namespace["path"], check_absolute(namespace["path"], "a namespace path"))

    for key in ("uidMappings", "gidMappings"):
        if _list(linux.get(key)) and "user" not in new_or_joined:
            out.rule(join_path("linux", key), linux[key],
                     "id mappings need a user namespace: add {\"type\": \"user\"} to linux.namespaces")
    if _dict(linux.get("timeOffsets")) and "time" not in new_or_joined:
        out.rule("linux.timeOffsets", linux["timeOffsets"],
                 "time offsets need a time namespace: add {\"type\": \"time\"} to linux.namespaces")

    for index, device in enumerate(_list(linux.get("devices"))):
        if not isinstance(device, dict):
            continue
        path = join_path("linux.devices", index)
        if isinstance(device.get("path"), str):
            out.rule(join_path(path, "path"), device["path"], check_absolute(device["path"], "a device path"))
        if isinstance(device.get("type"), str):
            out.rule(join_path(path, "type"), device["type"], check_device_type(device["type"]))
            if device["type"] in ("c", "b", "u"):
                for number in ("major", "minor"):
                    if number not in device:
                        out.rule(join_path(path, number), None,
                                 f"is required for a device of type {device['type']!r} "
                                 "(config-linux.md: major and minor are REQUIRED unless type is p)")

    for key in ("maskedPaths", "readonlyPaths"):
        out.strings(join_path("linux", key), linux.get(key), lambda v: check_absolute(v, "a path"))

    sysctl = _dict(linux.get("sysctl"))
    for name in sysctl:
        out.rule(join_path("linux.sysctl", name), name, check_sysctl_name(name, new_or_joined))

    if isinstance(linux.get("rootfsPropagation"), str):
        out.rule("linux.rootfsPropagation", linux["rootfsPropagation"],
                 check_rootfs_propagation(linux["rootfsPropagation"]))

    resources = _dict(linux.get("resources"))
    for index, rule in enumerate(_list(resources.get("devices"))):
        if not isinstance(rule, dict):
            continue
        path = join_path("linux.resources.devices", index)
        if isinstance(rule.get("type"), str):
            out.rule(join_path(path, "type"), rule["type"], check_cgroup_device_type(rule["type"]))
        if isinstance(rule.get("access"), str):
            out.rule(join_path(path, "access"), rule["access"], check_cgroup_device_access(rule["access"]))
    memory = _dict(resources.get("memory"))
    limit, swap = memory.get("limit"), memory.get("swap")
    if _is_int(limit) and _is_int(swap) and limit > 0 and swap > 0 and swap < limit:
        out.rule("linux.resources.memory.swap", swap,
                 f"memory+swap limit {swap} is below the memory limit {limit} (swap counts memory plus swap; "
                 "use -1 for unlimited swap)")

    seccomp = linux.get("seccomp")
    if isinstance(seccomp, dict):
        _seccomp_rules(out, seccomp)


def _seccomp_rules(out: _Collector, seccomp: dict) -> None:
    base = "linux.seccomp"
    uses_notify = False
    if isinstance(seccomp.get("defaultAction"), str):
        out.rule(f"{base}.defaultAction", seccomp["defaultAction"], check_seccomp_action(seccomp["defaultAction"]))
        uses_notify = seccomp["defaultAction"] == "SCMP_ACT_NOTIFY"
    out.strings(f"{base}.architectures", seccomp.get("architectures"), check_seccomp_arch)
    out.strings(f"{base}.flags", seccomp.get("flags"), check_seccomp_flag)
    for index, syscall in enumerate(_list(seccomp.get("syscalls"))):
        if not isinstance(syscall, dict):
            continue
        path = join_path(f"{base}.syscalls", index)
        if isinstance(syscall.get("action"), str):
            out.rule(f"{path}.action", syscall["action"], check_seccomp_action(syscall["action"]))
            uses_notify = uses_notify or syscall["action"] == "SCMP_ACT_NOTIFY"
        for arg_index, arg in enumerate(_list(syscall.get("args"))):
            if not isinstance(arg, dict):
                continue
            arg_path = join_path(f"{path}.args", arg_index)
            if isinstance(arg.get("op"), str):
                out.rule(f"{arg_path}.op", arg["op"], check_seccomp_operator(arg["op"]))
            if _is_int(arg.get("index")):
                out.rule(f"{arg_path}.index", arg["index"], check_syscall_arg_index(arg["index"]))
    if uses_notify and not seccomp.get("listenerPath"):
        out.rule(f"{base}.listenerPath", None,
                 "is required when SCMP_ACT_NOTIFY is used: give the UNIX socket that receives the notify fd")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --------------------------------------------------------------------------- entry points
def _document_positions(value: Any, path: str = "", out: dict | None = None) -> dict:
    """JSON path -> position of that value in the document (depth-first, in key order)."""
    if out is None:
        out = {}
    out[path] = len(out)
    if isinstance(value, dict):
        for key, item in value.items():
            _document_positions(item, join_path(path, key), out)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _document_positions(item, join_path(path, index), out)
    return out


_PARENT = re.compile(r'(\.[^.\[]+|\[\d+\]|\["[^"]*"\])$')


def in_document_order(problems: list[Problem], config: Any) -> list[Problem]:
    """``problems`` sorted by where their path is in ``config`` (a required property that is
    missing sorts right after the object that lacks it)."""
    positions = _document_positions(config)

    def key(problem: Problem):
        path = problem.path
        missing = 0
        while path not in positions and path:
            shorter = _PARENT.sub("", path)
            if shorter == path:
                shorter = ""
            path, missing = shorter, missing + 1
        return positions.get(path, 0), missing

    return sorted(problems, key=key)


def merge_problems(*groups: Iterable[Problem]) -> list[Problem]:
    """Problems from several checks, one per (path, message), first group first at a path."""
    merged: list[Problem] = []
    seen_paths: set[str] = set()
    for group in groups:
        group_paths = set()
        for problem in group:
            if problem.path in seen_paths:
                continue
            merged.append(problem)
            group_paths.add(problem.path)
        seen_paths |= group_paths
    return merged


def validate_config(config: Any, for_start: bool = False) -> list[Problem]:
    """Every problem in ``config`` (a parsed config.json): schema violations and broken rules,
    each with its JSON path.  ``for_start`` also requires what ``start`` needs (process, args).
    An empty list means the config is valid."""
    if not isinstance(config, dict):
        return [Problem("", f"config.json must hold a JSON object, not {jsonschema_lite.json_type_name(config)}",
                        config)]
    rules = rule_problems(config, for_start)
    schema = jsonschema_lite.check(config, "config-schema.json")
    return in_document_order(merge_problems(rules, schema), config)


def validate_state(state: Any) -> list[Problem]:
    """Problems of a ``state`` output against the spec's state-schema.json."""
    return jsonschema_lite.check(state, "state-schema.json")


def validate_features(features: Any) -> list[Problem]:
    """Problems of a ``features`` output against the spec's features-schema.json."""
    return jsonschema_lite.check(features, "features-schema.json")
