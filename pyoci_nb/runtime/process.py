"""The container process (config.md "Process", config-linux.md process fields): rlimits, user
(uid, gid, additionalGids, umask), the five capability sets, ``noNewPrivileges``, ``cwd``
(created when missing), ``env`` (``HOME`` from the container's /etc/passwd when it is not set),
``args`` (resolved through the container's PATH), the scheduler, I/O priority, NUMA memory
policy and execution domain (``process.scheduler``, ``process.ioPriority``,
``linux.memoryPolicy``, ``linux.personality``) and the final execve.

Shared by the container's init (``init.py``) and ``exec`` (``container.py``): one piece of code
applies a ``process`` object.  ``check_process`` validates one before any fork, so a bad value
is reported with its JSON path instead of failing inside the container.
"""

from __future__ import annotations

import os
import stat

from pyoci_nb.errors import ConfigError
from pyoci_nb.runtime import syscalls as sc
from pyoci_nb.runtime import trampoline
from pyoci_nb.runtime.syscalls import Step
from pyoci_nb.spec.capabilities import ALL_CAPABILITIES

CAPABILITY_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")

_RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}


#: the largest id setresuid/setresgid/setgroups take: (uid_t)-1 = 2**32-1 means "unchanged"
MAX_ID = 2 ** 32 - 2
#: rlim_t is an unsigned 64-bit number (2**64-1 is RLIM_INFINITY)
MAX_RLIMIT = 2 ** 64 - 1


def is_int(value) -> bool:
    """An integer, and not a boolean (JSON true/false load as bool, a subclass of int)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(value, where: str, low: int, high: int, why: str) -> None:
    """ConfigError unless ``value`` is an integer (not a boolean) from ``low`` to ``high``."""
    if not is_int(value) or not low <= value <= high:
        raise ConfigError(f"{value!r:.80} is not an integer from {low} to {high}", where=where, why=why)


def check_string(value, where: str, what: str = "a string") -> None:
    """ConfigError unless ``value`` is a string without NUL characters."""
    if not isinstance(value, str):
        raise ConfigError(f"must be {what}, not {type(value).__name__}", where=where)
    if "\0" in value:
        raise ConfigError("contains a NUL character", where=where,
                          why="the kernel takes C strings: a NUL would silently cut the value short")


def _check_bool(process: dict, key: str, where: str) -> None:
    if key in process and not isinstance(process[key], bool):
        raise ConfigError(f"{key} must be true or false, not {process[key]!r:.80}", where=f"{where}.{key}")


def plain_string(value) -> bool:
    """A string without NUL characters (the fast test; ``check_string`` words the error)."""
    return isinstance(value, str) and "\0" not in value


def check_list(value, where: str) -> list:
    """``value`` if it is a list, [] for None (absent), else ConfigError."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"must be an array, not {type(value).__name__}", where=where)
    return value


def check_process(process: dict, where: str = "process") -> None:
    """Refuse a ``process`` object the runtime cannot apply, naming the offending field: every
    value the container's init uses has the type and range its system call takes."""
    if not isinstance(process, dict):
        raise ConfigError("process must be an object", where=where,
                          why="config.md: process is REQUIRED when start is called")
    args = process.get("args")
    if not args or not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ConfigError("args must be a non-empty list of strings", where=f"{where}.args",
                          why="config.md: args is REQUIRED when start is called",
                          hint='e.g. "args": ["sh"]')
    for i, arg in enumerate(args):
        if "\0" in arg:
            check_string(arg, f"{where}.args[{i}]")
    cwd = process.get("cwd")
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        raise ConfigError(f"cwd {cwd!r:.200} is not an absolute path", where=f"{where}.cwd",
                          why="config.md: cwd MUST be an absolute path")
    check_string(cwd, f"{where}.cwd")
    for i, entry in enumerate(check_list(process.get("env"), f"{where}.env")):
        if not isinstance(entry, str) or "=" not in entry:
            raise ConfigError(f"env entry {entry!r:.200} is not KEY=VALUE", where=f"{where}.env[{i}]")
        if "\0" in entry:
            check_string(entry, f"{where}.env[{i}]")
    for key in ("terminal", "noNewPrivileges"):
        _check_bool(process, key, where)
    size = process.get("consoleSize")
    if size is not None:
        if not isinstance(size, dict):
            raise ConfigError("consoleSize must be an object", where=f"{where}.consoleSize",
                              hint='e.g. {"height": 24, "width": 80}')
        for key in ("height", "width"):
            if key in size:  # used only with a terminal: then it must fit struct winsize
                check_int(size[key], f"{where}.consoleSize.{key}", 0, 65535 if process.get("terminal") else MAX_RLIMIT,
                          "a terminal's size is an unsigned 16-bit number (struct winsize)")
    _check_user(process.get("user"), f"{where}.user")
    if "oomScoreAdj" in process:
        check_int(process["oomScoreAdj"], f"{where}.oomScoreAdj", -1000, 1000,
                  "proc(5): oom_score_adj ranges from -1000 to 1000")
    caps = process.get("capabilities")
    if caps is not None and not isinstance(caps, dict):
        raise ConfigError("capabilities must be an object of capability sets", where=f"{where}.capabilities",
                          hint='e.g. {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"]}')
    for set_name in CAPABILITY_SETS:
        names = (caps or {}).get(set_name)
        if names is not None and not isinstance(names, list):
            check_list(names, f"{where}.capabilities.{set_name}")
        for i, name in enumerate(names or ()):
            # an unknown name is only a warning (config.md 1.3: unknown or unavailable
            # capabilities SHOULD NOT fail the runtime), given when the sets are applied
            if not plain_string(name):
                raise ConfigError(f"capability {name!r:.80} is not a name",
                                  where=f"{where}.capabilities.{set_name}[{i}]",
                                  why="capability names are strings, those of capabilities(7), e.g. CAP_NET_ADMIN")
    if process.get("scheduler") is not None:
        _check_scheduler(process["scheduler"], f"{where}.scheduler")
    if process.get("ioPriority") is not None:
        _check_io_priority(process["ioPriority"], f"{where}.ioPriority")
    seen = set()
    for i, rlimit in enumerate(check_list(process.get("rlimits"), f"{where}.rlimits")):
        if not isinstance(rlimit, dict):
            raise ConfigError("an rlimit must be an object", where=f"{where}.rlimits[{i}]",
                              hint='e.g. {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}')
        kind = rlimit.get("type")
        if not isinstance(kind, str) or kind not in _RLIMITS:
            raise ConfigError(f"unknown rlimit {kind!r:.80}", where=f"{where}.rlimits[{i}].type",
                              why="one of " + ", ".join(_RLIMITS))
        if kind in seen:
            raise ConfigError(f"rlimit {kind} given twice", where=f"{where}.rlimits[{i}]",
                              why="config.md: the runtime MUST generate an error for duplicate types")
        seen.add(kind)
        for key in ("soft", "hard"):
            if key not in rlimit:
                raise ConfigError(f"rlimit {kind} has no {key} limit", where=f"{where}.rlimits[{i}].{key}",
                                  why="config.md: soft and hard are REQUIRED")
            check_int(rlimit[key], f"{where}.rlimits[{i}].{key}", 0, MAX_RLIMIT,
                      f"a limit is an unsigned 64-bit number ({MAX_RLIMIT} is unlimited)")
        if rlimit["soft"] > rlimit["hard"]:
            raise ConfigError(f"soft limit {rlimit['soft']} exceeds hard limit {rlimit['hard']}",
                              where=f"{where}.rlimits[{i}]", why="setrlimit(2) refuses a soft limit above the hard one")


def _check_user(user, where: str) -> None:
    if user is None:
        return
    if not isinstance(user, dict):
        raise ConfigError("user must be an object", where=where, hint='e.g. {"uid": 0, "gid": 0}')
    for key in ("uid", "gid"):
        if key in user:
            check_int(user[key], f"{where}.{key}", 0, MAX_ID,
                      "ids are unsigned 32-bit numbers, and 4294967295 ((uid_t)-1) means 'unchanged'")
    if "umask" in user:
        check_int(user["umask"], f"{where}.umask", 0, 2 ** 32 - 1, "a umask is an unsigned 32-bit number")
    gids = check_list(user.get("additionalGids"), f"{where}.additionalGids")
    if len(gids) > 65536:
        raise ConfigError(f"{len(gids)} additional gids", where=f"{where}.additionalGids",
                          why="setgroups(2) takes at most NGROUPS_MAX (65536) groups")
    for i, gid in enumerate(gids):
        check_int(gid, f"{where}.additionalGids[{i}]", 0, MAX_ID,
                  "ids are unsigned 32-bit numbers, and 4294967295 ((gid_t)-1) is not a group")


#: process.scheduler.policy -> SCHED_* (sched(7))
SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3, "SCHED_ISO": 4,
                  "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
#: process.scheduler.flags -> SCHED_FLAG_* (sched_setattr(2))
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02, "SCHED_FLAG_DL_OVERRUN": 0x04,
               "SCHED_FLAG_KEEP_POLICY": 0x08, "SCHED_FLAG_KEEP_PARAMS": 0x10,
               "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20, "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}
#: the policies with a static priority (1..99); the others take priority 0
_REALTIME_POLICIES = ("SCHED_FIFO", "SCHED_RR")
#: process.ioPriority.class -> IOPRIO_CLASS_* (ioprio_set(2))
IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
#: linux.memoryPolicy.mode -> MPOL_* and .flags -> MPOL_F_* (set_mempolicy(2))
MEMORY_POLICY_MODES = {"MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2, "MPOL_INTERLEAVE": 3,
                       "MPOL_LOCAL": 4, "MPOL_PREFERRED_MANY": 5, "MPOL_WEIGHTED_INTERLEAVE": 6}
MEMORY_POLICY_FLAGS = {"MPOL_F_NUMA_BALANCING": 1 << 13, "MPOL_F_RELATIVE_NODES": 1 << 14,
                       "MPOL_F_STATIC_NODES": 1 << 15}
#: set_mempolicy(2) takes a node mask of at most one page of bits (EINVAL beyond)
MAX_NUMA_NODE = 32767
#: linux.personality.domain -> PER_* (personality(2))
PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}
#: sched(7): SCHED_DEADLINE's runtime is at least 2**10 ns (DL_SCALE), its times below 2**63
_DL_MIN_RUNTIME = 1 << 10
_DL_MAX = (1 << 63) - 1


def _check_object(value, where: str, example: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"must be an object, not {type(value).__name__}", where=where, hint=f"e.g. {example}")
    return value


def _check_name(value, where: str, known, why: str, hint: str | None = None) -> None:
    if not plain_string(value) or value not in known:
        raise ConfigError(f"{value!r:.80} is not one of {', '.join(known)}", where=where, why=why, hint=hint)


def _check_scheduler(scheduler, where: str) -> None:
    """config.md ``process.scheduler``: what sched_setattr(2) accepts, named field by field."""
    scheduler = _check_object(scheduler, where, '{"policy": "SCHED_BATCH", "nice": 5}')
    if "policy" not in scheduler:
        raise ConfigError("the scheduler has no policy", where=f"{where}.policy",
                          why="config.md: policy is REQUIRED", hint='e.g. "SCHED_OTHER"')
    policy = scheduler["policy"]
    _check_name(policy, f"{where}.policy", SCHED_POLICIES, "config.md: the policies of sched(7)")
    if policy == "SCHED_ISO":
        raise ConfigError("SCHED_ISO is not implemented by Linux", where=f"{where}.policy",
                          why="sched(7): SCHED_ISO is reserved but not implemented (sched_setattr fails with EINVAL)",
                          hint="use SCHED_OTHER, SCHED_BATCH or SCHED_IDLE, or a real-time policy")
    check_int(scheduler.get("nice", 0), f"{where}.nice", -20, 19, "sched(7): nice values range from -20 to 19")
    priority = scheduler.get("priority", 0)
    if policy in _REALTIME_POLICIES:
        check_int(priority, f"{where}.priority", 1, 99,
                  f"sched(7): {policy} runs at a static priority from 1 (low) to 99 (high)")
    else:
        check_int(priority, f"{where}.priority", 0, 0,
                  "sched(7): only SCHED_FIFO and SCHED_RR have a static priority; the others take 0")
    for i, flag in enumerate(check_list(scheduler.get("flags"), f"{where}.flags")):
        _check_name(flag, f"{where}.flags[{i}]", SCHED_FLAGS, "config.md: the SCHED_FLAG_* flags of sched_setattr(2)")
        if flag.startswith("SCHED_FLAG_UTIL_CLAMP"):
            raise ConfigError(f"{flag} cannot be applied", where=f"{where}.flags[{i}]",
                              why="sched_setattr(2) takes a utilization clamp value with it, and config.md "
                                  "has no field for that value",
                              hint="remove the flag")
    times = {}
    for key in ("runtime", "deadline", "period"):
        times[key] = scheduler.get(key, 0)
        check_int(times[key], f"{where}.{key}", 0, 2 ** 64 - 1, "config.md: a time in nanoseconds (uint64)")
    if policy != "SCHED_DEADLINE":
        for key, value in times.items():
            if value:
                raise ConfigError(f"{key} is set for {policy}", where=f"{where}.{key}",
                                  why="sched(7): runtime, deadline and period belong to SCHED_DEADLINE only",
                                  hint=f"remove {key}, or use the policy SCHED_DEADLINE")
        return
    runtime, deadline, period = times["runtime"], times["deadline"], times["period"] or times["deadline"]
    if not _DL_MIN_RUNTIME <= runtime <= deadline <= period <= _DL_MAX:
        raise ConfigError(f"runtime {runtime}, deadline {times['deadline']}, period {times['period']} cannot be "
                          "scheduled", where=where,
                          why=f"sched(7): SCHED_DEADLINE needs {_DL_MIN_RUNTIME} <= runtime <= deadline <= period "
                              f"(period 0: the deadline) < 2**63 nanoseconds",
                          hint='e.g. {"policy": "SCHED_DEADLINE", "runtime": 10000000, "deadline": 30000000, '
                               '"period": 30000000}')


def _check_io_priority(io_priority, where: str) -> None:
    """config.md ``process.ioPriority``: an IOPRIO_CLASS_* and a level from 0 to 7."""
    io_priority = _check_object(io_priority, where, '{"class": "IOPRIO_CLASS_BE", "priority": 4}')
    if "class" not in io_priority:
        raise ConfigError("the I/O priority has no class", where=f"{where}.class",
                          why="config.md: class is REQUIRED", hint='e.g. "IOPRIO_CLASS_BE"')
    _check_name(io_priority["class"], f"{where}.class", IOPRIO_CLASSES, "config.md: the classes of ioprio_set(2)")
    check_int(io_priority.get("priority", 0), f"{where}.priority", 0, 7,
              "ioprio_set(2): levels range from 0 (highest) to 7 (lowest)")


def check_linux_process(linux: dict) -> None:
    """Refuse a ``linux.personality`` or ``linux.memoryPolicy`` (config-linux.md) the kernel
    would refuse, naming the field (they apply to the container's processes)."""
    if linux.get("personality") is not None:
        _check_personality(linux["personality"], "linux.personality")
    if linux.get("memoryPolicy") is not None:
        _check_memory_policy(linux["memoryPolicy"], "linux.memoryPolicy")


def _check_personality(personality, where: str) -> None:
    personality = _check_object(personality, where, '{"domain": "LINUX32"}')
    if "domain" not in personality:
        raise ConfigError("the personality has no domain", where=f"{where}.domain",
                          why="config-linux.md: domain is REQUIRED", hint='e.g. "LINUX32"')
    _check_name(personality["domain"], f"{where}.domain", PERSONALITY_DOMAINS,
                "config-linux.md: the execution domains of personality(2)")
    for i, flag in enumerate(check_list(personality.get("flags"), f"{where}.flags")):
        raise ConfigError(f"personality flag {flag!r:.80} is not supported", where=f"{where}.flags[{i}]",
                          why="config-linux.md: no personality flags are defined yet",
                          hint="remove the flags")


def parse_node_list(text: str) -> list[int]:
    """``"0-3,7"`` -> [0, 1, 2, 3, 7] (the list format of cpuset(7)); ValueError if malformed."""
    nodes: set[int] = set()
    for part in text.split(",") if text else ():
        low, dash, high = part.partition("-")
        if not low.isdigit() or not low.isascii() or (dash and (not high.isdigit() or not high.isascii())):
            raise ValueError(f"{part!r} is not a node number or range")
        first, last = int(low), int(high) if dash else int(low)
        if first > last or last > MAX_NUMA_NODE:
            raise ValueError(f"{part!r} is not a range of node numbers from 0 to {MAX_NUMA_NODE}")
        nodes.update(range(first, last + 1))
    return sorted(nodes)


def _host_memory_nodes() -> list[int] | None:
    """The NUMA nodes of this host that have memory (sysfs), or None when it does not say."""
    for name in ("has_memory", "online"):
        try:
            return parse_node_list(sc.read_file(f"/sys/devices/system/node/{name}").decode().strip())
        except (OSError, ValueError):
            continue
    return None


def _check_memory_policy(policy, where: str) -> None:
    """config-linux.md ``linux.memoryPolicy``: the mode, node list and flags set_mempolicy(2) takes."""
    policy = _check_object(policy, where, '{"mode": "MPOL_BIND", "nodes": "0"}')
    if "mode" not in policy:
        raise ConfigError("the memory policy has no mode", where=f"{where}.mode",
                          why="config-linux.md: mode is REQUIRED", hint='e.g. "MPOL_INTERLEAVE"')
    mode = policy["mode"]
    _check_name(mode, f"{where}.mode", MEMORY_POLICY_MODES, "config-linux.md: the modes of set_mempolicy(2)")
    flags = check_list(policy.get("flags"), f"{where}.flags")
    for i, flag in enumerate(flags):
        _check_name(flag, f"{where}.flags[{i}]", MEMORY_POLICY_FLAGS,
                    "config-linux.md: the MPOL_F_* flags of set_mempolicy(2)")
    if "MPOL_F_STATIC_NODES" in flags and "MPOL_F_RELATIVE_NODES" in flags:
        raise ConfigError("MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES together", where=f"{where}.flags",
                          why="set_mempolicy(2): the two flags exclude each other", hint="keep one of them")
    text = policy.get("nodes", "")
    check_string(text, f"{where}.nodes")
    try:
        nodes = parse_node_list(text)
    except ValueError as exc:
        raise ConfigError(f"nodes {text!r:.80} is not a node list: {exc}", where=f"{where}.nodes",
                          why="config-linux.md: a comma-separated list of node numbers and ranges",
                          hint='e.g. "0-3,7"') from None
    if mode in ("MPOL_DEFAULT", "MPOL_LOCAL"):
        if nodes or (flags and mode == "MPOL_DEFAULT") or {"MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"} & set(flags):
            raise ConfigError(f"{mode} takes no nodes{' and no flags' if mode == 'MPOL_DEFAULT' else ''}",
                              where=f"{where}.nodes" if nodes else f"{where}.flags",
                              why=f"set_mempolicy(2): {mode} allocates on the local node (EINVAL otherwise)",
                              hint='use "nodes": "" and no node flags, or another mode')
        return
    if not nodes and (mode != "MPOL_PREFERRED" or flags):
        raise ConfigError(f"{mode} needs nodes", where=f"{where}.nodes",
                          why=f"set_mempolicy(2): {mode} allocates from the nodes given (EINVAL without)",
                          hint='e.g. "nodes": "0"')
    if "MPOL_F_RELATIVE_NODES" in flags:
        return  # relative to the nodes the container may use, whatever their numbers
    host = _host_memory_nodes()
    missing = [n for n in nodes if host is not None and n not in host]
    if missing:
        raise ConfigError(f"NUMA node {missing[0]} has no memory on this host", where=f"{where}.nodes",
                          why="set_mempolicy(2): the nodes must be memory nodes the process may use (EINVAL)",
                          hint=f"this host's memory nodes are {','.join(map(str, host)) or 'none'}; or add the "
                               "flag MPOL_F_RELATIVE_NODES")


def set_scheduling(process: dict) -> None:
    """``process.ioPriority`` (ioprio_set) and ``process.scheduler`` (sched_setattr) of this
    process, inherited by the program it execs.  Before the capabilities are dropped: a
    real-time class, a negative nice value or a real-time policy need CAP_SYS_NICE/ADMIN."""
    io_priority = process.get("ioPriority")
    if io_priority is not None:
        with Step(f"setting the I/O priority {io_priority['class']} {io_priority.get('priority', 0)}"):
            sc.ioprio_set(IOPRIO_CLASSES[io_priority["class"]], io_priority.get("priority", 0))
    scheduler = process.get("scheduler")
    if scheduler is not None:
        flags = 0
        for flag in scheduler.get("flags") or ():
            flags |= SCHED_FLAGS[flag]
        with Step(f"setting the scheduling policy {scheduler['policy']}"):
            sc.sched_setattr(SCHED_POLICIES[scheduler["policy"]], flags, scheduler.get("nice", 0),
                             scheduler.get("priority", 0), scheduler.get("runtime", 0),
                             scheduler.get("deadline", 0), scheduler.get("period", 0))


def set_memory_policy(linux: dict) -> None:
    """``linux.memoryPolicy``: set_mempolicy(2) of this process (inherited across fork and execve)."""
    policy = linux.get("memoryPolicy")
    if policy is not None:
        mode = MEMORY_POLICY_MODES[policy["mode"]]
        for flag in policy.get("flags") or ():
            mode |= MEMORY_POLICY_FLAGS[flag]
        nodes = policy.get("nodes") or ""
        with Step(f"setting the memory policy {policy['mode']}" + (f" on nodes {nodes}" if nodes else "")):
            sc.set_mempolicy(mode, parse_node_list(nodes))


def set_personality(linux: dict) -> None:
    """``linux.personality``: the execution domain (personality(2)), the last step before the
    execve (from then on ``uname`` answers for that domain)."""
    personality = linux.get("personality")
    if personality is not None:
        with Step(f"setting the personality {personality['domain']}"):
            sc.personality(PERSONALITY_DOMAINS[personality["domain"]])


def env_dict(process: dict) -> dict[str, str]:
    """``process.env`` (KEY=VALUE strings) as a dict; a later duplicate wins."""
    env = {}
    for entry in process.get("env") or []:
        key, _, value = entry.partition("=")
        env[key] = value
    return env


def resolve_executable(process: dict) -> str:
    """args[0] resolved through PATH from the container's env (in the container's root)."""
    name = process["args"][0]
    if "/" in name:
        path = name if name.startswith("/") else os.path.join(process.get("cwd", "/"), name)
        _check_executable(path, name)
        return path
    search = env_dict(process).get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    for directory in search.split(":"):
        path = os.path.join(directory or ".", name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise OSError(2, f'exec: "{name}": executable file not found in $PATH')


def _check_executable(path: str, name: str) -> None:
    if not os.path.exists(path):
        raise OSError(2, f'exec: "{name}": stat {path}: no such file or directory')
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        raise OSError(13, f'exec: "{name}": permission denied')


def set_rlimits(process: dict) -> None:
    """``process.rlimits`` with setrlimit(2) (config.md: soft and hard limits)."""
    import resource

    for rlimit in process.get("rlimits") or []:
        number = _RLIMITS[rlimit["type"]]
        wanted = (rlimit["soft"], rlimit["hard"])
        with Step(f"setting rlimit {rlimit['type']} to soft {wanted[0]}, hard {wanted[1]}"):
            try:
                # rlim_t is unsigned 64-bit, Python's setrlimit takes a signed long long:
                # 2**63 .. 2**64-1 (RLIM_INFINITY) pass as the negative numbers of the same bits
                resource.setrlimit(number, tuple(v - 2 ** 64 if v >= 2 ** 63 else v for v in wanted))
            except ValueError:  # Python's word for EPERM here
                current = resource.getrlimit(number)[1]
                raise OSError(1, "setrlimit: EPERM (raising the hard limit above the current "
                                 f"{current} needs CAP_SYS_RESOURCE, which this runtime does not have)") from None


def _bounding_set() -> int:
    """This process's capability bounding set as a mask (PR_CAPBSET_READ of each capability)."""
    mask = 0
    for number in range(sc.last_capability() + 1):
        if sc.prctl(sc.PR_CAPBSET_READ, number):
            mask |= 1 << number
    return mask


def capability_masks(caps: dict) -> tuple[dict[str, int], str | None]:
    """The masks of the five sets of ``process.capabilities`` that this process can apply, and a
    warning naming what it leaves out and why (None: nothing).  config.md (1.3): unknown or
    unavailable capabilities SHOULD NOT make the runtime fail and MUST be logged as a warning:
    a name capabilities(7) does not have, one the running kernel does not know, and one this
    process does not hold (its own bounding set for ``bounding``, its permitted set for the
    others: capset(2) cannot grant more) are dropped; the rest is applied."""
    last = sc.last_capability()
    _, permitted, _ = sc.capget()
    bounding = _bounding_set()
    masks: dict[str, int] = {}
    dropped: dict[str, tuple[str, list[str]]] = {}  # name -> (why, the sets it was dropped from)
    for set_name in CAPABILITY_SETS:
        mask = 0
        for name in caps.get(set_name) or ():
            number = ALL_CAPABILITIES.index(name) if name in ALL_CAPABILITIES else None
            held = bounding if set_name == "bounding" else permitted
            if number is None:
                why = "not a capability of capabilities(7)"
            elif number > last:
                why = f"not known to this kernel (its last capability is number {last})"
            elif not held >> number & 1:
                why = ("not in the runtime's own bounding set" if not bounding >> number & 1 else
                       "not in the runtime's permitted set") + ": the runtime cannot grant it"
            else:
                mask |= 1 << number
                continue
            dropped.setdefault(name, (why, []))[1].append(set_name)
        masks[set_name] = mask
    if not dropped:
        return masks, None
    details = "; ".join(f"{name} is {why} (left out of {', '.join(sets)})" for name, (why, sets) in dropped.items())
    return masks, f"ignoring unknown or unavailable capabilities: [{' '.join(dropped)}]: {details}"


def set_user_and_capabilities(process: dict, setgroups_allowed: bool = True) -> str | None:
    """Drop the bounding set, switch uid/gid/groups keeping capabilities, then set the
    effective, permitted and inheritable sets and raise the ambient ones (config.md order:
    the user switch must not lose the capabilities the config keeps).  Returns the warning of
    ``capability_masks`` (for the runtime's log) or None."""
    caps = process.get("capabilities")
    user = process.get("user") or {}
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    warning = None
    if caps is not None:
        masks, warning = capability_masks(caps)
        with Step("dropping capabilities from the bounding set"):
            sc.drop_bounding_set(masks["bounding"])
    with Step(f"setting groups to {user.get('additionalGids') or []}"):
        if setgroups_allowed:
            os.setgroups(user.get("additionalGids") or [])
        elif user.get("additionalGids"):
            raise OSError(1, "setgroups: EPERM (setgroups is denied in this user namespace)")
    sc.prctl(sc.PR_SET_KEEPCAPS, 1)
    with Step(f"setting gid to {gid}"):
        os.setresgid(gid, gid, gid)
    with Step(f"setting uid to {uid}"):
        os.setresuid(uid, uid, uid)
    sc.prctl(sc.PR_SET_KEEPCAPS, 0)
    if caps is not None:
        with Step("setting capabilities"):
            sc.capset(masks["effective"], masks["permitted"], masks["inheritable"])
            sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_CLEAR_ALL)
            for number in range(sc.last_capability() + 1):
                if masks["ambient"] >> number & 1:
                    try:
                        sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_RAISE, number)
                    except OSError as exc:  # not in permitted+inheritable: runc ignores it too
                        if exc.errno != 1:
                            raise
    if "umask" in user:
        os.umask(user["umask"] & 0o777)  # umask(2) keeps the permission bits of any number
    return warning


def set_no_new_privileges(process: dict) -> None:
    """``process.noNewPrivileges``: PR_SET_NO_NEW_PRIVS, so execve cannot gain privileges."""
    if process.get("noNewPrivileges"):
        with Step("setting no_new_privs"):
            sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)


def change_directory(process: dict) -> None:
    """``process.cwd`` (made by ``prepare_in_root`` for the container's init if missing; an
    exec fails on a missing one, as with runc)."""
    cwd = process.get("cwd", "/")
    with Step(f'changing directory to "{cwd}"'):
        os.chdir(cwd)


#: the most of the container's /etc/passwd read to find the user's home directory
MAX_PASSWD_BYTES = 16 << 20


def _home_directory(root_fd: int, uid: int) -> str | None:
    """The home directory of ``uid`` in /etc/passwd of the root ``root_fd`` (None: no entry).
    The image is hostile: the file is resolved inside the root (``inroot``), must be a regular
    file (a FIFO would block, a device never end) and is read up to MAX_PASSWD_BYTES."""
    from pyoci_nb.runtime import inroot  # (loaded already where containers are made)

    try:
        resolved = inroot.open_in_root(root_fd, "/etc/passwd")
    except OSError:
        return None
    with resolved:
        if resolved.missing or not stat.S_ISREG(os.fstat(resolved.fd).st_mode):
            return None
        # the O_PATH fd pins the checked file: reopen that very file for reading
        fd = os.open(f"/proc/self/fd/{resolved.fd}", os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        wanted = str(uid).encode()
        pending = b""
        total = 0
        while total < MAX_PASSWD_BYTES:
            chunk = os.read(fd, 65536)
            total += len(chunk)
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop() if chunk else b""
            for line in lines:
                fields = line.split(b":")
                if len(fields) >= 6 and fields[2] == wanted and b"\0" not in fields[5]:
                    return fields[5].decode(errors="surrogateescape") or "/"
            if not chunk:
                return None
        return None
    finally:
        os.close(fd)


def prepare_in_root(process: dict, root_fd: int, create_cwd: bool) -> None:
    """What the process needs from its root filesystem ``root_fd`` (the container's root, all
    mounts made), as runc does: ``HOME`` from the user's /etc/passwd entry (or ``/``) when the
    environment has none, and with ``create_cwd`` (the container's init) a missing ``cwd``
    created (0755, as the container's root), every component relative to its parent's fd."""
    env = env_dict(process)
    if not env.get("HOME"):
        uid = (process.get("user") or {}).get("uid", 0)
        with Step(f"finding the home directory of uid {uid} in /etc/passwd"):
            home = _home_directory(root_fd, uid) or "/"
        process["env"] = list(process.get("env") or []) + [f"HOME={home}"]
    if create_cwd:
        from pyoci_nb.runtime import inroot

        cwd = process.get("cwd", "/")
        with Step(f'creating the working directory "{cwd}"'):
            with inroot.open_in_root(root_fd, cwd) as resolved:
                if resolved.missing:
                    resolved.create(like_dir=True, mode=0o755)


def set_oom_score_adj(process: dict) -> None:
    """``process.oomScoreAdj`` into /proc/self/oom_score_adj of the container's procfs, reached
    without following anything the image planted (``mounts.write_proc``)."""
    if "oomScoreAdj" in process:
        from pyoci_nb.runtime import mounts  # loaded by init before pivot_root: no import here

        with Step(f"writing oomScoreAdj {process['oomScoreAdj']}"):
            mounts.write_proc("self/oom_score_adj", process["oomScoreAdj"])


#: CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH: the capabilities that read any file
_READ_ANY_FILE = (1 << 1) | (1 << 2)


def hide_the_trampoline() -> None:
    """Before the last execve (and before a seccomp filter that may forbid capset): drop the
    capabilities that read any file from the *effective* set, so that the execute-only
    trampoline (``trampoline.py``) cannot be read and the kernel keeps the process non-dumpable
    through its execve.  The program's capabilities are computed anew at its own execve from the
    permitted, inheritable and ambient sets, which stay as they are."""
    effective, permitted, inheritable = sc.capget()
    if effective & _READ_ANY_FILE:
        sc.capset(effective & ~_READ_ANY_FILE, permitted, inheritable)


def exec_process(process: dict, executable: str, preserve: int, report_fd: int) -> None:
    """The last step, never returns: only fds 0-2 and the ``--preserve-fds`` range 3 ..
    3+``preserve``-1 survive (everything else the runtime or its caller held is marked
    close-on-exec), then execve through the sealed trampoline (``trampoline.py``), so that the
    host's interpreter is never ``/proc/self/exe`` while the container's program is exec'd
    (CVE-2019-5736).  A failing execve is reported on ``report_fd``."""
    for fd in range(3, 3 + preserve):
        os.set_inheritable(fd, True)
    sc.close_range(3 + preserve, cloexec=True)  # (whatever was opened since init closed the rest)
    trampoline.execve(executable, process["args"], env_dict(process), report_fd)


def check_preserved_fds(count: int) -> None:
    """``--preserve-fds N`` hands the container fds 3 .. 3+N-1 of the caller: each must be open
    before the runtime opens anything of its own (else the runtime's own fds would take those
    numbers and reach the container)."""
    for fd in range(3, 3 + count):
        try:
            os.fstat(fd)
            if fd == trampoline.prepare():
                raise OSError(9, "the runtime's own trampoline")
        except OSError:
            raise ConfigError(f"fd {fd} is not open", where="--preserve-fds",
                              why=f"--preserve-fds {count} passes fds 3..{2 + count} of the caller to the container",
                              hint="open those fds before calling the runtime, or pass a smaller count") from None
