"""pydantic v2 models of runtime-spec 1.3 ``config.json`` (Linux), ``state`` and ``features``.

JSON names are the spec's camelCase (``noNewPrivileges``); Python attributes are snake_case
(``no_new_privileges``).  Either may be used to build a model.  Every model keeps properties it
does not know (the spec says a runtime MUST ignore, not reject, unknown properties) and writes
them back unchanged, so ``load_spec(x).to_dict()`` is JSON-equal to ``x`` for every valid config.

The rules the spec states in prose are defined once, in ``pyoci_nb.spec.validation`` (standard
library only, also used by the runtime); the field validators here call those functions.
Whole-document rules (duplicate namespaces, id mappings that need a user namespace ...) are
checked by ``load_spec`` / ``Spec.model_validate`` and by ``Spec.check()``.
"""

from __future__ import annotations

import inspect
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    model_serializer,
    model_validator,
)
from pydantic.alias_generators import to_camel

from pyoci_nb.spec import validation as rules
from pyoci_nb.spec.defaults import default_config
from pyoci_nb.spec.problems import Problem, ReprMixin, ValidationReport, config_error, join_path, short_repr

# --------------------------------------------------------------------------- field types


def _rule(check: Callable[[Any], str | None]) -> AfterValidator:
    """A pydantic validator that applies one rule function of ``validation``."""

    def apply(value):
        message = check(value)
        if message:
            raise ValueError(message)
        return value

    return AfterValidator(apply)


Int32 = Annotated[int, Strict(), Field(ge=-(2 ** 31), le=2 ** 31 - 1)]
Int64 = Annotated[int, Strict(), Field(ge=-(2 ** 63), le=2 ** 63 - 1)]
Uint16 = Annotated[int, Strict(), Field(ge=0, le=2 ** 16 - 1)]
Uint32 = Annotated[int, Strict(), Field(ge=0, le=2 ** 32 - 1)]
Uint64 = Annotated[int, Strict(), Field(ge=0, le=2 ** 64 - 1)]
Str = Annotated[str, Strict()]
Bool = Annotated[bool, Strict()]
StrList = list[Str]
StrMap = dict[Str, Str]
AbsolutePath = Annotated[str, Strict(), _rule(lambda v: rules.check_absolute(v))]
EnvEntry = Annotated[str, Strict(), _rule(rules.check_env_entry)]
CapabilityName = Annotated[str, Strict(), _rule(rules.check_capability)]
RlimitType = Annotated[str, Strict(), _rule(rules.check_rlimit_type)]
NamespaceType = Annotated[str, Strict(), _rule(rules.check_namespace_type)]
RootfsPropagation = Annotated[str, Strict(), _rule(rules.check_rootfs_propagation)]
SeccompAction = Annotated[str, Strict(), _rule(rules.check_seccomp_action)]
SeccompArch = Annotated[str, Strict(), _rule(rules.check_seccomp_arch)]
SeccompOperator = Annotated[str, Strict(), _rule(rules.check_seccomp_operator)]
SeccompFlag = Annotated[str, Strict(), _rule(rules.check_seccomp_flag)]
DeviceType = Annotated[str, Strict(), _rule(rules.check_device_type)]
CgroupDeviceType = Annotated[str, Strict(), _rule(rules.check_cgroup_device_type)]
CgroupDeviceAccess = Annotated[str, Strict(), _rule(rules.check_cgroup_device_access)]
SchedulerPolicy = Annotated[str, Strict(), _rule(rules.check_one_of("scheduler policy", rules.SCHEDULER_POLICIES))]
SchedulerFlag = Annotated[str, Strict(), _rule(rules.check_one_of("scheduler flag", rules.SCHEDULER_FLAGS))]
IOPriorityClass = Annotated[str, Strict(), _rule(rules.check_one_of("I/O priority class", rules.IOPRIO_CLASSES))]
PersonalityDomain = Annotated[str, Strict(), _rule(rules.check_one_of("personality domain", rules.PERSONALITY_DOMAINS))]
MemoryPolicyMode = Annotated[str, Strict(), _rule(rules.check_one_of("memory policy mode", rules.MEMORY_POLICY_MODES))]
MemoryPolicyFlag = Annotated[str, Strict(), _rule(rules.check_one_of("memory policy flag", rules.MEMORY_POLICY_FLAGS))]
ContainerStatus = Annotated[str, Strict(), _rule(rules.check_one_of("container status", rules.CONTAINER_STATUSES))]
CpuList = Annotated[str, Strict(), Field(pattern=r"^[0-9, -]*$")]
HugepageSize = Annotated[str, Strict(), Field(pattern=r"^[1-9][0-9]*[KMG]B$")]


def _field(description: str, *, alias: str | None = None, required: bool = False, **extra) -> Any:
    """A field with the spec's description; optional ones default to None (not written)."""
    return Field(... if required else None, description=description, alias=alias, **extra)


# --------------------------------------------------------------------------- base class

_ALIASES: dict[type, frozenset] = {}  # model class -> JSON names of its fields


class SpecModel(ReprMixin, BaseModel):
    """Base of every runtime-spec model: camelCase JSON names, unknown properties kept,
    assignments validated, fields never set are not written back (``to_dict``)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, validate_assignment=True,
                              alias_generator=to_camel, protected_namespaces=())

    @model_serializer(mode="wrap")
    def _drop_unset_known_fields(self, handler):
        # A known field holding None means "not set" (the schema never allows null); unknown
        # properties are written back exactly, nulls included.
        data = handler(self)
        if isinstance(data, dict):
            known = self._known_aliases()
            extra = self.__pydantic_extra__ or {}
            for key in [k for k, v in data.items() if v is None and k in known and k not in extra]:
                del data[key]
        return data

    @classmethod
    def _known_aliases(cls) -> frozenset:
        cached = _ALIASES.get(cls)
        if cached is None:
            cached = _ALIASES[cls] = frozenset((f.alias or name) for name, f in cls.model_fields.items())
        return cached

    def to_dict(self) -> dict:
        """The JSON form: spec names, only what was set, unknown properties as they were."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)

    def to_json(self, indent: int | str | None = 2) -> str:
        """``to_dict()`` as JSON text (``indent="\\t"`` writes it the way runc does)."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @property
    def unknown_properties(self) -> dict:
        """Properties this model does not define, kept as they were read."""
        return dict(self.__pydantic_extra__ or {})


_VALIDATES_BY_NAME_SWITCH = "by_name" in inspect.signature(BaseModel.model_validate).parameters


def _json_names_only(kwargs: dict) -> dict:
    """Keyword arguments that make pydantic read config.json keys by their JSON names only, so a
    snake_case key in a document (``no_new_privileges``) is an unknown property kept as is,
    not a second spelling of a field."""
    if _VALIDATES_BY_NAME_SWITCH:
        kwargs.setdefault("by_alias", True)
        kwargs.setdefault("by_name", False)
    return kwargs


def problems_from_validation_error(error: ValidationError, base: str = "") -> list[Problem]:
    """Turn pydantic's errors into ``Problem``s whose paths are JSON paths (aliases, list
    indexes and map keys as in config.json: ``process.capabilities.bounding[2]``)."""
    problems = []
    for item in error.errors(include_url=False):
        path = base
        for part in item.get("loc", ()):
            if isinstance(part, str) and ("[" in part or part.startswith("function-")):
                continue  # pydantic's internal step names (function-after[...], list[...])
            path = join_path(path, part)
        message = item.get("msg", "invalid value")
        for prefix in ("Value error, ", "Assertion failed, "):
            if message.startswith(prefix):
                message = message[len(prefix):]
        value = item.get("input")
        if item.get("type") != "missing" and repr(value) not in message:
            message = f"{message}, got {short_repr(value)}"
        problems.append(Problem(path, message, value))
    return problems


# --------------------------------------------------------------------------- process


class ConsoleSize(SpecModel):
    """config.md ``process.consoleSize``: the size of the console in characters; only
    meaningful when ``terminal`` is true."""

    height: Uint64 = _field("console height in characters", required=True)
    width: Uint64 = _field("console width in characters", required=True)


class User(SpecModel):
    """config.md ``process.user`` (POSIX platforms): the user the process runs as, with ids
    in the container's user namespace.  Symbolic names (/etc/passwd) are left to upper levels."""

    uid: Uint32 | None = _field("user ID in the container namespace")
    gid: Uint32 | None = _field("group ID in the container namespace")
    umask: Uint32 | None = _field("umask of the process (decimal: 18 is 0o022); unset keeps the runtime's")
    additional_gids: list[Uint32] | None = _field("additional group IDs in the container namespace")
    username: Str | None = _field("user name (Windows only; ignored on Linux)")


class Capabilities(SpecModel):
    """config.md ``process.capabilities``: the Linux capability sets of the process, names as
    in capabilities(7).  A runtime MUST error on a name it cannot map to a capability."""

    bounding: list[CapabilityName] | None = _field("bounding set: the limit of capabilities the process can ever gain")
    effective: list[CapabilityName] | None = _field("effective set: capabilities the kernel checks now")
    inheritable: list[CapabilityName] | None = _field("inheritable set: preserved across execve for programs with matching file capabilities")
    permitted: list[CapabilityName] | None = _field("permitted set: the superset of effective capabilities")
    ambient: list[CapabilityName] | None = _field("ambient set: kept across execve of unprivileged programs (must also be permitted and inheritable)")


class POSIXRlimit(SpecModel):
    """config.md ``process.rlimits[]``: one setrlimit(2) resource limit.  The kernel enforces
    ``soft``; ``hard`` is the ceiling an unprivileged process may raise ``soft`` to.  Unknown
    types and duplicated types MUST be an error."""

    type: RlimitType = _field("the resource, RLIMIT_* as in setrlimit(2)", required=True)
    hard: Uint64 = _field("hard limit (ceiling for the soft limit)", required=True)
    soft: Uint64 = _field("soft limit (enforced by the kernel)", required=True)

    @model_validator(mode="after")
    def _soft_not_above_hard(self):
        message = rules.check_rlimit_range(self.soft, self.hard)
        if message:
            raise ValueError(message)
        return self


Rlimit = POSIXRlimit


class IOPriority(SpecModel):
    """config.md ``process.ioPriority``: the I/O scheduling class and priority (ioprio_set(2))."""

    class_: IOPriorityClass = _field("IOPRIO_CLASS_RT, IOPRIO_CLASS_BE or IOPRIO_CLASS_IDLE", alias="class", required=True)
    priority: Annotated[Int32, _rule(rules.check_io_priority)] | None = _field("priority within the class: 0 (highest) to 7 (lowest)")


class Scheduler(SpecModel):
    """config.md ``process.scheduler``: the scheduling policy and attributes (sched_setattr(2))."""

    policy: SchedulerPolicy = _field("scheduling policy: SCHED_OTHER, SCHED_FIFO, SCHED_RR, SCHED_BATCH, SCHED_ISO, SCHED_IDLE, SCHED_DEADLINE", required=True)
    nice: Int32 | None = _field("nice value (SCHED_OTHER/SCHED_BATCH); lower is higher priority")
    priority: Int32 | None = _field("static priority (SCHED_FIFO/SCHED_RR)")
    flags: list[SchedulerFlag] | None = _field("SCHED_FLAG_* flags")
    runtime: Uint64 | None = _field("SCHED_DEADLINE runtime in nanoseconds")
    deadline: Uint64 | None = _field("SCHED_DEADLINE deadline in nanoseconds")
    period: Uint64 | None = _field("SCHED_DEADLINE period in nanoseconds")


class ExecCPUAffinity(SpecModel):
    """config.md ``process.execCPUAffinity``: CPU affinity of the process while the runtime
    sets it up (``initial``) and after execve (``final``), in cpuset list format ("0-3,7")."""

    initial: CpuList | None = _field("CPUs for the process before it joins the container's cgroup")
    final: CpuList | None = _field("CPUs for the process after execve")


class Process(SpecModel):
    """config.md ``process``: the container process.  REQUIRED when ``start`` is called.
    ``cwd`` MUST be absolute; ``args`` needs at least one entry (the program, looked up like
    execvp); ``env`` entries are ``KEY=value``."""

    terminal: Bool | None = _field("attach a pseudo-terminal to the process (default false)")
    console_size: ConsoleSize | None = _field("console size in characters (with terminal)")
    user: User | None = _field("the user the process runs as")
    args: list[Str] | None = _field("the program and its arguments (execvp semantics)")
    command_line: Str | None = _field("the full command line (Windows only)")
    env: list[EnvEntry] | None = _field("environment, KEY=value entries")
    cwd: AbsolutePath = _field("working directory, an absolute path in the container", required=True)
    capabilities: Capabilities | None = _field("Linux capability sets")
    rlimits: list[POSIXRlimit] | None = _field("resource limits (setrlimit)")
    no_new_privileges: Bool | None = _field("set no_new_privs: execve cannot grant more privileges")
    apparmor_profile: Str | None = _field("AppArmor profile to confine the process")
    oom_score_adj: Annotated[int, Strict(), _rule(rules.check_oom_score_adj)] | None = _field("oom_score_adj of the process (-1000..1000)")
    selinux_label: Str | None = _field("SELinux process label")
    io_priority: IOPriority | None = _field("I/O priority")
    scheduler: Scheduler | None = _field("scheduling policy and attributes")
    exec_cpu_affinity: ExecCPUAffinity | None = _field("CPU affinity during set-up and after execve", alias="execCPUAffinity")


# --------------------------------------------------------------------------- root, mounts, hooks


class Root(SpecModel):
    """config.md ``root``: the container's root filesystem.  ``path`` is absolute or relative
    to the bundle; with ``readonly`` the root filesystem MUST be read-only inside the container."""

    path: Str = _field("root filesystem directory, absolute or relative to the bundle", required=True)
    readonly: Bool | None = _field("make the root filesystem read-only in the container")


class IDMapping(SpecModel):
    """config-linux.md id mapping: ``size`` ids starting at ``hostID`` on the host appear as
    ``containerID`` onwards in the container (uid_map/gid_map, or an id-mapped mount)."""

    container_id: Uint32 = _field("first id in the container", alias="containerID", required=True)
    host_id: Uint32 = _field("first id on the host", alias="hostID", required=True)
    size: Uint32 = _field("number of ids mapped", required=True)


class Mount(SpecModel):
    """config.md ``mounts[]``: additional mounts, performed in order.  ``destination`` MUST be
    an absolute path in the container; ``options`` are mount(8) options (``bind``, ``ro``,
    ``nosuid`` ...); with uid/gid mappings the mount is id-mapped."""

    destination: AbsolutePath = _field("mount point, an absolute path in the container", required=True)
    type: Str | None = _field("filesystem type (proc, tmpfs, bind ...)")
    source: Str | None = _field("device name, directory (bind mounts) or a dummy such as \"proc\"")
    options: list[Str] | None = _field("mount options as in mount(8)")
    uid_mappings: list[IDMapping] | None = _field("uid mapping of an id-mapped mount")
    gid_mappings: list[IDMapping] | None = _field("gid mapping of an id-mapped mount")


class Hook(SpecModel):
    """config.md hook: a program run at a lifecycle point with the container state on stdin.
    ``path`` MUST be absolute; ``args``/``env`` as in execve; after ``timeout`` seconds the
    runtime MUST abort the hook."""

    path: AbsolutePath = _field("program to run, an absolute path in the runtime namespace", required=True)
    args: list[Str] | None = _field("argv of the hook (argv[0] included)")
    env: list[EnvEntry] | None = _field("environment of the hook, KEY=value")
    timeout: Annotated[int, Strict(), Field(ge=1)] | None = _field("seconds before the hook is aborted (>= 1)")


class Hooks(SpecModel):
    """config.md ``hooks``: programs run at lifecycle points.  prestart (deprecated),
    createRuntime and poststart/poststop run in the runtime namespace; createContainer and
    startContainer in the container namespace.  A failing create/start hook fails the
    operation; poststart/poststop failures are only logged."""

    prestart: list[Hook] | None = _field("DEPRECATED: after the namespaces are set up, before pivot_root")
    create_runtime: list[Hook] | None = _field("during create, after the environment is set up, in the runtime namespace")
    create_container: list[Hook] | None = _field("during create, in the container namespace, before pivot_root")
    start_container: list[Hook] | None = _field("during start, in the container, before the user process runs")
    poststart: list[Hook] | None = _field("after the user process has started")
    poststop: list[Hook] | None = _field("after the container is deleted")


# --------------------------------------------------------------------------- linux


class Namespace(SpecModel):
    """config-linux.md ``linux.namespaces[]``: a namespace to create (no ``path``) or to join
    (``path`` of a namespace file, absolute).  Types not listed are inherited from the runtime;
    a type listed twice MUST be an error."""

    type: NamespaceType = _field("mount, pid, network, uts, ipc, user, cgroup or time", required=True)
    path: AbsolutePath | None = _field("namespace file to join, e.g. /proc/1234/ns/net")


class TimeOffset(SpecModel):
    """config-linux.md ``linux.timeOffsets.<clock>``: offset of a clock in the time namespace."""

    secs: Int64 | None = _field("offset in seconds")
    nanosecs: Uint32 | None = _field("offset in nanoseconds")


class Device(SpecModel):
    """config-linux.md ``linux.devices[]``: a device node that MUST exist in the container
    (created with mknod or bind-mounted).  major/minor are REQUIRED unless type is ``p``."""

    type: DeviceType = _field("c (char), b (block), u (unbuffered char) or p (FIFO)", required=True)
    path: AbsolutePath = _field("full path of the device in the container", required=True)
    major: Int64 | None = _field("major device number")
    minor: Int64 | None = _field("minor device number")
    file_mode: Annotated[int, Strict(), Field(ge=0, le=511)] | None = _field("permission bits (decimal: 438 is 0o666)")
    uid: Uint32 | None = _field("owner id in the container")
    gid: Uint32 | None = _field("group id in the container")


class NetDevice(SpecModel):
    """config-linux.md ``linux.netDevices.<host name>``: a host network device moved into the
    container's network namespace, optionally renamed."""

    name: Str | None = _field("name of the device inside the container")


class DeviceCgroup(SpecModel):
    """config-linux.md ``linux.resources.devices[]``: an entry of the device allow/deny list,
    applied in order.  Unset type/major/minor mean "all"."""

    allow: Bool = _field("allow (true) or deny (false)", required=True)
    type: CgroupDeviceType | None = _field("a (all), c (char) or b (block)")
    major: Int64 | None = _field("major number (unset: all)")
    minor: Int64 | None = _field("minor number (unset: all)")
    access: CgroupDeviceAccess | None = _field("combination of r (read), w (write), m (mknod)")


class Memory(SpecModel):
    """config-linux.md ``linux.resources.memory``: memory cgroup limits in bytes (-1: unlimited)."""

    limit: Int64 | None = _field("memory usage limit in bytes")
    reservation: Int64 | None = _field("soft limit in bytes")
    swap: Int64 | None = _field("memory+swap limit in bytes")
    kernel: Int64 | None = _field("NOT RECOMMENDED: kernel memory limit")
    kernel_tcp: Int64 | None = _field("NOT RECOMMENDED: kernel TCP buffer limit", alias="kernelTCP")
    swappiness: Uint64 | None = _field("vmscan swappiness 0..100")
    disable_oom_killer: Bool | None = _field("disable the OOM killer for the cgroup", alias="disableOOMKiller")
    use_hierarchy: Bool | None = _field("hierarchical accounting (cgroup v1)")
    check_before_update: Bool | None = _field("refuse a new limit below the current usage")


class CPU(SpecModel):
    """config-linux.md ``linux.resources.cpu``: cpu and cpuset cgroup settings."""

    shares: Uint64 | None = _field("relative CPU weight (cpu.shares)")
    quota: Int64 | None = _field("CFS quota in microseconds per period")
    burst: Uint64 | None = _field("CFS burst in microseconds")
    period: Uint64 | None = _field("CFS period in microseconds")
    realtime_runtime: Int64 | None = _field("realtime runtime in microseconds per period")
    realtime_period: Uint64 | None = _field("realtime period in microseconds")
    cpus: Str | None = _field("CPUs allowed (cpuset list, e.g. 0-3,7)")
    mems: Str | None = _field("memory nodes allowed (cpuset list)")
    idle: Int64 | None = _field("cgroup v2 cpu.idle (0 or 1)")


class Pids(SpecModel):
    """config-linux.md ``linux.resources.pids``: the maximum number of tasks (-1: unlimited)."""

    limit: Int64 = _field("maximum number of tasks in the cgroup", required=True)


class WeightDevice(SpecModel):
    """config-linux.md ``linux.resources.blockIO.weightDevice[]``: per-device I/O weight."""

    major: Int64 = _field("major number of the block device", required=True)
    minor: Int64 = _field("minor number of the block device", required=True)
    weight: Uint16 | None = _field("weight 10..1000")
    leaf_weight: Uint16 | None = _field("leaf weight 10..1000 (cgroup v1 CFQ)")


class ThrottleDevice(SpecModel):
    """config-linux.md ``linux.resources.blockIO.throttle*Device[]``: per-device I/O rate limit."""

    major: Int64 = _field("major number of the block device", required=True)
    minor: Int64 = _field("minor number of the block device", required=True)
    rate: Uint64 | None = _field("bytes or operations per second")


class BlockIO(SpecModel):
    """config-linux.md ``linux.resources.blockIO``: blkio (io) cgroup settings."""

    weight: Uint16 | None = _field("default I/O weight 10..1000")
    leaf_weight: Uint16 | None = _field("weight of tasks in this cgroup vs. children (v1)")
    weight_device: list[WeightDevice] | None = _field("per-device weights")
    throttle_read_bps_device: list[ThrottleDevice] | None = _field("read bytes/s limits")
    throttle_write_bps_device: list[ThrottleDevice] | None = _field("write bytes/s limits")
    throttle_read_iops_device: list[ThrottleDevice] | None = _field("read IO/s limits", alias="throttleReadIOPSDevice")
    throttle_write_iops_device: list[ThrottleDevice] | None = _field("write IO/s limits", alias="throttleWriteIOPSDevice")


class HugepageLimit(SpecModel):
    """config-linux.md ``linux.resources.hugepageLimits[]``: HugeTLB usage limit per page size."""

    page_size: HugepageSize = _field("page size such as 2MB or 64KB (<size><unit>, unit KB/MB/GB)", required=True)
    limit: Uint64 = _field("limit in bytes of HugeTLB usage", required=True)


class InterfacePriority(SpecModel):
    """config-linux.md ``linux.resources.network.priorities[]``: net_prio of one interface."""

    name: Str = _field("interface name", required=True)
    priority: Uint32 = _field("priority of traffic on that interface", required=True)


class Network(SpecModel):
    """config-linux.md ``linux.resources.network``: net_cls/net_prio cgroup settings."""

    class_id: Uint32 | None = _field("net_cls class id of packets", alias="classID")
    priorities: list[InterfacePriority] | None = _field("per-interface priorities")


class Rdma(SpecModel):
    """config-linux.md ``linux.resources.rdma.<device>``: RDMA cgroup limits of one device."""

    hca_handles: Uint32 | None = _field("maximum number of HCA handles")
    hca_objects: Uint32 | None = _field("maximum number of HCA objects")


class Resources(SpecModel):
    """config-linux.md ``linux.resources``: cgroup settings.  Do not set it unless limits have
    to be changed; ``unified`` writes cgroup v2 files directly."""

    devices: list[DeviceCgroup] | None = _field("device allow/deny list, applied in order")
    memory: Memory | None = _field("memory limits")
    cpu: CPU | None = _field("CPU and cpuset settings")
    pids: Pids | None = _field("task number limit")
    block_io: BlockIO | None = _field("block I/O settings", alias="blockIO")
    hugepage_limits: list[HugepageLimit] | None = _field("HugeTLB limits")
    network: Network | None = _field("net_cls / net_prio settings")
    rdma: dict[Str, Rdma] | None = _field("RDMA limits by device name")
    unified: StrMap | None = _field("cgroup v2 file name -> value, written as is")


class IntelRdt(SpecModel):
    """config-linux.md ``linux.intelRdt``: Intel RDT (resctrl) class of service."""

    clos_id: Str | None = _field("resctrl group (class of service) name", alias="closID")
    schemata: list[Str] | None = _field("schemata lines written to the group")
    l3_cache_schema: Str | None = _field("L3 cache allocation schema")
    mem_bw_schema: Annotated[str, Strict(), Field(pattern=r"^MB:[^\n]*$")] | None = _field("memory bandwidth schema (MB:...)")
    enable_monitoring: Bool | None = _field("enable resctrl monitoring of the group")


class SeccompArg(SpecModel):
    """config-linux.md ``linux.seccomp.syscalls[].args[]``: a comparison on one argument."""

    index: Annotated[Uint32, _rule(rules.check_syscall_arg_index)] = _field("argument index 0..5", required=True)
    value: Uint64 = _field("value compared with", required=True)
    value_two: Uint64 | None = _field("second value (mask for SCMP_CMP_MASKED_EQ)")
    op: SeccompOperator = _field("SCMP_CMP_* operator", required=True)


class SeccompSyscall(SpecModel):
    """config-linux.md ``linux.seccomp.syscalls[]``: an action for system calls by name,
    optionally only when the argument comparisons match."""

    names: Annotated[list[Str], Field(min_length=1)] = _field("system call names (at least one)", required=True)
    action: SeccompAction = _field("SCMP_ACT_* action", required=True)
    errno_ret: Uint32 | None = _field("errno returned with SCMP_ACT_ERRNO / SCMP_ACT_TRACE")
    args: list[SeccompArg] | None = _field("argument comparisons (all must match)")


class Seccomp(SpecModel):
    """config-linux.md ``linux.seccomp``: the seccomp filter loaded before the user process
    runs.  SCMP_ACT_NOTIFY needs ``listenerPath``."""

    default_action: SeccompAction = _field("action for system calls no rule matches", required=True)
    default_errno_ret: Uint32 | None = _field("errno for an ERRNO default action")
    flags: list[SeccompFlag] | None = _field("SECCOMP_FILTER_FLAG_* flags for seccomp(2)")
    listener_path: Str | None = _field("UNIX socket receiving the notify fd (SCMP_ACT_NOTIFY)")
    listener_metadata: Str | None = _field("opaque data sent with the notify fd")
    architectures: list[SeccompArch] | None = _field("SCMP_ARCH_* architectures the filter covers")
    syscalls: list[SeccompSyscall] | None = _field("rules by system call")


class Personality(SpecModel):
    """config-linux.md ``linux.personality``: the execution domain (personality(2))."""

    domain: PersonalityDomain | None = _field("LINUX or LINUX32")
    flags: list[Str] | None = _field("additional personality flags")


class MemoryPolicy(SpecModel):
    """config-linux.md ``linux.memoryPolicy``: NUMA memory policy (set_mempolicy(2))."""

    mode: MemoryPolicyMode | None = _field("MPOL_* mode")
    nodes: Str | None = _field("NUMA nodes (list format)")
    flags: list[MemoryPolicyFlag] | None = _field("MPOL_F_* flags")


class Linux(SpecModel):
    """config-linux.md ``linux``: the Linux-specific configuration (namespaces, id mappings,
    devices, cgroups, sysctl, seccomp, masked/read-only paths, labels)."""

    namespaces: list[Namespace] | None = _field("namespaces to create or join")
    uid_mappings: list[IDMapping] | None = _field("user namespace uid mappings")
    gid_mappings: list[IDMapping] | None = _field("user namespace gid mappings")
    time_offsets: dict[Str, TimeOffset] | None = _field("time namespace offsets by clock (boottime, monotonic)")
    devices: list[Device] | None = _field("devices that MUST exist in the container")
    net_devices: dict[Str, NetDevice] | None = _field("host network devices to move in, by host name")
    cgroups_path: Str | None = _field("cgroup path (absolute: from the cgroup root)")
    resources: Resources | None = _field("cgroup settings")
    intel_rdt: IntelRdt | None = _field("Intel RDT settings")
    sysctl: StrMap | None = _field("kernel parameters set in the container (namespaced ones only)")
    seccomp: Seccomp | None = _field("seccomp filter")
    rootfs_propagation: RootfsPropagation | None = _field("propagation of the root mount: private, shared, slave or unbindable")
    masked_paths: list[AbsolutePath] | None = _field("paths hidden in the container (absolute)")
    readonly_paths: list[AbsolutePath] | None = _field("paths made read-only in the container (absolute)")
    mount_label: Str | None = _field("SELinux context of the mounts")
    personality: Personality | None = _field("execution domain")
    memory_policy: MemoryPolicy | None = _field("NUMA memory policy")


# --------------------------------------------------------------------------- config.json


class Spec(SpecModel):
    """config.md: the container configuration (``config.json``) of an OCI bundle.

    ``ociVersion`` (SemVer) is REQUIRED; ``root`` is REQUIRED on Linux; ``process`` is REQUIRED
    when start is called.  Other platforms' sections (solaris, windows, vm, zos, freebsd) and any
    unknown property are kept as they were read.
    """

    oci_version: Str = _field("version of the runtime spec the bundle complies with (SemVer)", required=True)
    process: Process | None = _field("the container process")
    root: Root | None = _field("the root filesystem")
    hostname: Str | None = _field("hostname in the container (needs a uts namespace)")
    domainname: Str | None = _field("NIS domain name in the container (needs a uts namespace)")
    mounts: list[Mount] | None = _field("additional mounts, in order")
    hooks: Hooks | None = _field("lifecycle hooks")
    annotations: StrMap | None = _field("arbitrary metadata (reverse-domain keys)")
    linux: Linux | None = _field("Linux-specific configuration")

    @classmethod
    def model_validate(cls, obj: Any, *, strict: bool | None = None, from_attributes: bool | None = None,
                       context: Any = None, **kwargs) -> Spec:
        """Build a Spec from a config.json ``dict``; raises ``ConfigError`` listing every
        problem (schema and spec rules) with its JSON path."""
        if not isinstance(obj, BaseModel):
            problems = rules.validate_config(obj)
            if problems:
                raise config_error(problems)
        if isinstance(obj, dict):
            kwargs = _json_names_only(kwargs)
        try:
            return super().model_validate(obj, strict=strict, from_attributes=from_attributes,
                                          context=context, **kwargs)
        except ValidationError as exc:
            raise config_error(problems_from_validation_error(exc)) from None

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **kwargs) -> Spec:
        """Build a Spec from config.json text (same checks as ``model_validate``)."""
        return load_spec(json_data if isinstance(json_data, str) else bytes(json_data))

    def check(self, for_start: bool = False) -> ValidationReport:
        """Every problem of this config (schema and spec rules); ``for_start`` also requires
        what start needs."""
        return ValidationReport(rules.validate_config(self.to_dict(), for_start=for_start))

    def save(self, path: str | os.PathLike) -> Path:
        """Write config.json atomically (temporary file + rename), tab-indented like runc.
        A directory ``path`` means ``path/config.json``."""
        target = Path(path)
        if target.is_dir():
            target = target / "config.json"
        text = self.to_json(indent="\t")
        fd, tmp = tempfile.mkstemp(prefix=".config.json.", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        return target

    def diff(self, other: Spec | dict | None = None):
        """What changed from ``other`` (default: ``default_spec()``) to this spec, as a
        ``SpecDiff`` of (path, added/removed/changed, old, new)."""
        from pyoci_nb.spec.diff import diff_configs

        if other is None:
            before = default_config()
        elif isinstance(other, SpecModel):
            before = other.to_dict()
        else:
            before = other
        return diff_configs(before, self.to_dict())


# --------------------------------------------------------------------------- state, features


class State(SpecModel):
    """runtime.md: the state of a container, as printed by ``state``: its id, status
    (creating, created, running, stopped), the pid of the container process (when created or
    running), the absolute bundle path and the config's annotations."""

    oci_version: Str = _field("version of the runtime spec of the state", required=True)
    id: Str = _field("the container's id, unique on the host", required=True)
    status: ContainerStatus = _field("creating, created, running or stopped", required=True)
    pid: Annotated[int, Strict(), Field(ge=0)] | None = _field("pid of the container process (host pid namespace)")
    bundle: Str = _field("absolute path of the bundle directory", required=True)
    annotations: StrMap | None = _field("annotations of the container's config")

    @classmethod
    def model_validate(cls, obj: Any, **kwargs) -> State:
        """Build a State from ``state`` JSON; ``ConfigError`` names every problem."""
        if isinstance(obj, dict):
            problems = rules.validate_state(obj)
            if problems:
                raise config_error(problems, "state")
            kwargs = _json_names_only(kwargs)
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            raise config_error(problems_from_validation_error(exc), "state") from None


class EnabledFeature(SpecModel):
    """features-linux.md: a feature the runtime may support: ``enabled`` says whether it does."""

    enabled: Bool | None = _field("whether the runtime supports it (unset: unknown)")


class CgroupFeatures(SpecModel):
    """features-linux.md ``linux.cgroup``: which cgroup set-ups the runtime supports."""

    v1: Bool | None = _field("cgroup v1")
    v2: Bool | None = _field("cgroup v2")
    systemd: Bool | None = _field("systemd cgroup driver")
    systemd_user: Bool | None = _field("systemd user-session cgroup driver")
    rdma: Bool | None = _field("RDMA controller")


class SeccompFeatures(SpecModel):
    """features-linux.md ``linux.seccomp``: seccomp support and the names the runtime knows."""

    enabled: Bool | None = _field("seccomp is supported")
    actions: list[Str] | None = _field("SCMP_ACT_* actions supported")
    operators: list[Str] | None = _field("SCMP_CMP_* operators supported")
    archs: list[Str] | None = _field("SCMP_ARCH_* architectures supported")
    known_flags: list[Str] | None = _field("SECCOMP_FILTER_FLAG_* flags known")
    supported_flags: list[Str] | None = _field("flags supported by this kernel")


class IDMapFeature(SpecModel):
    """features-linux.md ``linux.mountExtensions``: mount extensions (id-mapped mounts)."""

    idmap: EnabledFeature | None = _field("id-mapped mounts")


class LinuxFeatures(SpecModel):
    """features-linux.md ``linux``: Linux features of the runtime."""

    namespaces: list[Str] | None = _field("namespace types supported")
    capabilities: list[Str] | None = _field("capabilities known")
    cgroup: CgroupFeatures | None = _field("cgroup support")
    seccomp: SeccompFeatures | None = _field("seccomp support")
    apparmor: EnabledFeature | None = _field("AppArmor support")
    selinux: EnabledFeature | None = _field("SELinux support")
    intel_rdt: EnabledFeature | None = _field("Intel RDT support")
    mount_extensions: IDMapFeature | None = _field("mount extensions")
    net_devices: EnabledFeature | None = _field("linux.netDevices support")


class Features(SpecModel):
    """features.md: what a runtime supports (``pyoci features``): the range of spec versions,
    hooks, mount options, annotations and Linux features."""

    oci_version_min: Str = _field("lowest spec version supported", required=True)
    oci_version_max: Str = _field("highest spec version supported", required=True)
    hooks: list[Str] | None = _field("hook names supported")
    mount_options: list[Str] | None = _field("mount options recognised")
    annotations: StrMap | None = _field("runtime-specific information")
    potentially_unsafe_config_annotations: list[Str] | None = _field("config annotations that may change the runtime's behaviour")
    linux: LinuxFeatures | None = _field("Linux features")

    @classmethod
    def model_validate(cls, obj: Any, **kwargs) -> Features:
        """Build Features from ``features`` JSON; ``ConfigError`` names every problem."""
        if isinstance(obj, dict):
            problems = rules.validate_features(obj)
            if problems:
                raise config_error(problems, "features")
            kwargs = _json_names_only(kwargs)
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            raise config_error(problems_from_validation_error(exc), "features") from None


# --------------------------------------------------------------------------- functions


def default_spec(rootless: bool = False) -> Spec:
    """The config ``runc spec`` (``--rootless``) writes, as a ``Spec``."""
    return Spec.model_validate(default_config(rootless))


def load_spec(source: str | os.PathLike | dict | bytes) -> Spec:
    """A ``Spec`` from a path to a config.json (or a bundle directory), a ``dict``, or JSON text.
    Raises ``ConfigError`` naming every problem (with the file when read from one)."""
    from pyoci_nb.errors import ConfigError

    if isinstance(source, dict):
        return Spec.model_validate(source)
    origin = None
    if isinstance(source, bytes):
        source = source.decode("utf-8")
    if isinstance(source, str) and source.lstrip().startswith("{"):
        text = source
    else:
        path = Path(source)
        if path.is_dir():
            path = path / "config.json"
        origin = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read {path}", where=str(path), why=exc.strerror or str(exc),
                              hint="give the path of a config.json or of a bundle directory") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError("config.json is not valid JSON", where=f"{origin or '<text>'}:{exc.lineno}:{exc.colno}",
                          why=exc.msg, hint="fix the JSON syntax at that line and column") from None
    try:
        return Spec.model_validate(data)
    except ConfigError as exc:
        if origin is None:
            raise
        problems = getattr(exc, "problems", [])
        raise config_error(problems, origin) from None


#: Every model class, by name (for reprs, widgets and docs).
ALL_MODELS: dict[str, type[SpecModel]] = {
    name: value for name, value in list(globals().items())
    if isinstance(value, type) and issubclass(value, SpecModel) and value is not SpecModel
}
