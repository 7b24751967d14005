"""Hypothesis strategies for valid Linux config.json documents (plain dicts).

They produce every part of the Linux config with random subsets of the optional properties,
plus unknown properties (which a runtime must keep and ignore), while keeping the spec's
rules (absolute paths, known names, unique namespaces and rlimit types, soft <= hard, id mappings
only with a user namespace, sysctls only for namespaces the container has ...).
"""

from __future__ import annotations

import string

from hypothesis import strategies as st

from pyoci_nb.spec.capabilities import ALL_CAPABILITIES
from pyoci_nb.spec import validation as v

UINT32 = st.integers(0, 2 ** 32 - 1)
UINT64 = st.integers(0, 2 ** 64 - 1)
INT64 = st.integers(-(2 ** 63), 2 ** 63 - 1)
INT32 = st.integers(-(2 ** 31), 2 ** 31 - 1)
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
WORD = st.text(string.ascii_lowercase + string.digits + "_", min_size=1, max_size=8)
ABS_PATH = st.lists(st.text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=6),
                    max_size=4).map(lambda parts: "/" + "/".join(parts))
ENV = st.builds(lambda k, val: f"{k}={val}", st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,7}", fullmatch=True), TEXT)
# JSON values for unknown properties (nulls included: they must be written back too)
JSON = st.recursive(st.none() | st.booleans() | st.integers(-1000, 1000) | TEXT,
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(WORD, inner, max_size=3),
                    max_leaves=6)


def obj(required: dict, optional: dict, *, unknown: bool = True) -> st.SearchStrategy[dict]:
    """A dict with all ``required`` keys, a random subset of ``optional`` ones and, maybe,
    unknown ``x-...`` properties."""

    @st.composite
    def build(draw):
        result = {key: draw(strategy) for key, strategy in required.items()}
        for key, strategy in optional.items():
            if draw(st.booleans()):
                result[key] = draw(strategy)
        if unknown and draw(st.integers(0, 4)) == 0:
            for key in draw(st.lists(WORD, max_size=2, unique=True)):
                result["x-" + key] = draw(JSON)
        return result

    return build()


def unique_by(strategy, key, max_size=4):
    return st.lists(strategy, max_size=max_size, unique_by=key)


ID_MAPPING = obj({"containerID": UINT32, "hostID": UINT32, "size": UINT32}, {})
CAP_LIST = st.lists(st.sampled_from(ALL_CAPABILITIES), max_size=5)


@st.composite
def rlimit(draw):
    hard = draw(UINT64)
    soft = draw(st.integers(0, hard))
    return draw(obj({"type": st.sampled_from(v.RLIMIT_TYPES), "hard": st.just(hard), "soft": st.just(soft)}, {}))


PROCESS = obj(
    {"cwd": ABS_PATH},
    {
        "terminal": st.booleans(),
        "consoleSize": obj({"height": UINT64, "width": UINT64}, {}),
        "user": obj({}, {"uid": UINT32, "gid": UINT32, "umask": UINT32, "additionalGids": st.lists(UINT32, max_size=3),
                         "username": TEXT}),
        "args": st.lists(TEXT, min_size=1, max_size=4),
        "commandLine": TEXT,
        "env": st.lists(ENV, max_size=4),
        "capabilities": obj({}, {name: CAP_LIST for name in ("bounding", "effective", "inheritable", "permitted", "ambient")}),
        "rlimits": unique_by(rlimit(), lambda r: r["type"]),
        "noNewPrivileges": st.booleans(),
        "apparmorProfile": TEXT,
        "oomScoreAdj": st.integers(-1000, 1000),
        "selinuxLabel": TEXT,
        "ioPriority": obj({"class": st.sampled_from(v.IOPRIO_CLASSES)}, {"priority": st.integers(0, 7)}),
        "scheduler": obj({"policy": st.sampled_from(v.SCHEDULER_POLICIES)},
                         {"nice": INT32, "priority": INT32, "flags": st.lists(st.sampled_from(v.SCHEDULER_FLAGS), max_size=3),
                          "runtime": UINT64, "deadline": UINT64, "period": UINT64}),
        "execCPUAffinity": obj({}, {"initial": st.from_regex(r"[0-9, -]{0,8}", fullmatch=True),
                                    "final": st.from_regex(r"[0-9, -]{0,8}", fullmatch=True)}),
    },
)

MOUNT = st.one_of(
    obj({"destination": ABS_PATH}, {"type": WORD, "source": TEXT, "options": st.lists(WORD, max_size=4)}),
    obj({"destination": ABS_PATH, "uidMappings": st.lists(ID_MAPPING, min_size=1, max_size=2),
         "gidMappings": st.lists(ID_MAPPING, min_size=1, max_size=2)},
        {"type": st.just("bind"), "source": ABS_PATH, "options": st.just(["bind", "idmap"])}),
)

HOOK = obj({"path": ABS_PATH}, {"args": st.lists(TEXT, max_size=3), "env": st.lists(ENV, max_size=2),
                                "timeout": st.integers(1, 2 ** 31)})
HOOKS = obj({}, {name: st.lists(HOOK, max_size=2) for name in v.HOOK_NAMES})

DEVICE = st.one_of(
    obj({"type": st.sampled_from(("c", "b", "u")), "path": ABS_PATH, "major": INT64, "minor": INT64},
        {"fileMode": st.integers(0, 0o777), "uid": UINT32, "gid": UINT32}),
    obj({"type": st.just("p"), "path": ABS_PATH}, {"fileMode": st.integers(0, 0o777), "uid": UINT32, "gid": UINT32}),
)
DEVICE_RULE = obj({"allow": st.booleans()}, {"type": st.sampled_from(v.CGROUP_DEVICE_TYPES), "major": INT64,
                                             "minor": INT64, "access": st.sampled_from(("r", "w", "m", "rw", "rwm", "rm"))})
THROTTLE = obj({"major": INT64, "minor": INT64}, {"rate": UINT64})
RESOURCES = obj({}, {
    "devices": st.lists(DEVICE_RULE, max_size=3),
    "memory": obj({}, {"limit": st.integers(-1, 2 ** 40), "reservation": INT64, "kernel": INT64, "kernelTCP": INT64,
                       "swappiness": st.integers(0, 100), "disableOOMKiller": st.booleans(),
                       "useHierarchy": st.booleans(), "checkBeforeUpdate": st.booleans()}),
    "cpu": obj({}, {"shares": UINT64, "quota": INT64, "burst": UINT64, "period": UINT64, "realtimeRuntime": INT64,
                    "realtimePeriod": UINT64, "cpus": st.just("0-1"), "mems": st.just("0"), "idle": st.integers(0, 1)}),
    "pids": obj({"limit": INT64}, {}),
    "blockIO": obj({}, {"weight": st.integers(10, 1000), "leafWeight": st.integers(10, 1000),
                        "weightDevice": st.lists(obj({"major": INT64, "minor": INT64},
                                                     {"weight": st.integers(10, 1000), "leafWeight": st.integers(10, 1000)}),
                                                 max_size=2),
                        "throttleReadBpsDevice": st.lists(THROTTLE, max_size=2),
                        "throttleWriteBpsDevice": st.lists(THROTTLE, max_size=2),
                        "throttleReadIOPSDevice": st.lists(THROTTLE, max_size=2),
                        "throttleWriteIOPSDevice": st.lists(THROTTLE, max_size=2)}),
    "hugepageLimits": st.lists(obj({"pageSize": st.from_regex(r"[1-9][0-9]{0,3}[KMG]B", fullmatch=True),
                                    "limit": UINT64}, {}), max_size=2),
    "network": obj({}, {"classID": UINT32, "priorities": st.lists(obj({"name": WORD, "priority": UINT32}, {}), max_size=2)}),
    "rdma": st.dictionaries(WORD, obj({}, {"hcaHandles": UINT32, "hcaObjects": UINT32}), max_size=2),
    "unified": st.dictionaries(WORD, TEXT, max_size=2),
})
SECCOMP_ARG = obj({"index": st.integers(0, 5), "value": UINT64, "op": st.sampled_from(v.SECCOMP_OPERATORS)},
                  {"valueTwo": UINT64})
SECCOMP = obj(
    {"defaultAction": st.sampled_from([a for a in v.SECCOMP_ACTIONS if a != "SCMP_ACT_NOTIFY"])},
    {"defaultErrnoRet": UINT32, "flags": st.lists(st.sampled_from(v.SECCOMP_FLAGS), max_size=2),
     "listenerPath": ABS_PATH, "listenerMetadata": TEXT,
     "architectures": st.lists(st.sampled_from(v.SECCOMP_ARCHES), max_size=3),
     "syscalls": st.lists(obj({"names": st.lists(WORD, min_size=1, max_size=3),
                               "action": st.sampled_from([a for a in v.SECCOMP_ACTIONS if a != "SCMP_ACT_NOTIFY"])},
                              {"errnoRet": UINT32, "args": st.lists(SECCOMP_ARG, max_size=2)}), max_size=3)},
)


@st.composite
def linux(draw):
    namespaces = draw(st.lists(st.sampled_from(v.NAMESPACE_TYPES), unique=True, max_size=8))
    ns_entries = []
    for kind in namespaces:
        entry = {"type": kind}
        if draw(st.integers(0, 3)) == 0:
            entry["path"] = f"/proc/1/ns/{kind}"
        ns_entries.append(entry)
    optional = {
        "devices": st.lists(DEVICE, max_size=3),
        "netDevices": st.dictionaries(WORD, obj({}, {"name": WORD}), max_size=2),
        "cgroupsPath": st.one_of(ABS_PATH, WORD),
        "resources": RESOURCES,
        "intelRdt": obj({}, {"closID": WORD, "schemata": st.lists(TEXT, max_size=2), "l3CacheSchema": TEXT,
                             "memBwSchema": st.from_regex(r"MB:[0-9=;]{0,8}", fullmatch=True),
                             "enableMonitoring": st.booleans()}),
        "seccomp": SECCOMP,
        "rootfsPropagation": st.sampled_from(v.ROOTFS_PROPAGATIONS),
        "maskedPaths": st.lists(ABS_PATH, max_size=3),
        "readonlyPaths": st.lists(ABS_PATH, max_size=3),
        "mountLabel": TEXT,
        "personality": obj({}, {"domain": st.sampled_from(v.PERSONALITY_DOMAINS), "flags": st.lists(WORD, max_size=2)}),
        "memoryPolicy": obj({}, {"mode": st.sampled_from(v.MEMORY_POLICY_MODES), "nodes": st.just("0-1"),
                                 "flags": st.lists(st.sampled_from(v.MEMORY_POLICY_FLAGS), max_size=2)}),
    }
    if "user" in namespaces:
        optional["uidMappings"] = st.lists(ID_MAPPING, max_size=3)
        optional["gidMappings"] = st.lists(ID_MAPPING, max_size=3)
    if "time" in namespaces:
        optional["timeOffsets"] = st.dictionaries(st.sampled_from(("boottime", "monotonic")),
                                                  obj({}, {"secs": INT64, "nanosecs": UINT32}), max_size=2)
    sysctl_names = []
    if "network" in namespaces:
        sysctl_names += ["net.ipv4.ip_forward", "net.core.somaxconn"]
    if "ipc" in namespaces:
        sysctl_names += ["kernel.shmmax", "fs.mqueue.msg_max"]
    if sysctl_names:
        optional["sysctl"] = st.dictionaries(st.sampled_from(sysctl_names), st.from_regex(r"[0-9]{1,4}", fullmatch=True),
                                             max_size=2)
    result = draw(obj({}, optional))
    if ns_entries or draw(st.booleans()):
        result["namespaces"] = ns_entries
    return result


@st.composite
def linux_configs(draw):
    """A valid Linux config.json (as a dict)."""
    linux_part = draw(linux())
    namespaces = {ns["type"] for ns in linux_part.get("namespaces", [])}
    optional = {
        "process": PROCESS,
        "mounts": st.lists(MOUNT, max_size=4),
        "hooks": HOOKS,
        "annotations": st.dictionaries(st.text(string.ascii_lowercase + ".", min_size=1, max_size=10), TEXT, max_size=3),
    }
    if "uts" in namespaces:
        optional["hostname"] = TEXT
        optional["domainname"] = TEXT
    config = draw(obj({"ociVersion": st.sampled_from(["1.0.0", "1.0.2-dev", "1.3.0", "1.2.1+build.5"]),
                       "root": obj({"path": st.sampled_from(["rootfs", "/var/lib/c/rootfs"])},
                                   {"readonly": st.booleans()})},
                      optional))
    if draw(st.booleans()):
        config["linux"] = linux_part
    return config
