"""Before anything is created: reading config.json and every check that can be made on it
(runtime.md "create": the runtime MUST generate an error if the config cannot be applied).
"""

from __future__ import annotations

import os

from pyoci_nb.errors import ConfigError
from pyoci_nb.runtime import hooks, jsonio, namespaces, process
from pyoci_nb.runtime import syscalls as sc

#: how deeply config.json may nest arrays and objects.  The spec's deepest field
#: (linux.seccomp.syscalls[].args[]) is 6 levels down; the limit keeps every later step (the
#: state file holds the config one level down, hooks get JSON) far from Python's recursion limit.
MAX_CONFIG_DEPTH = 128


def _read_regular_file(path: str) -> bytes:
    """The bytes of ``path``, which must be a regular file: a FIFO or a device named
    config.json would block or never end (opened non-blocking, checked on the open fd)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if info.st_mode & 0o170000 != 0o100000:  # not S_ISREG
            raise ConfigError("config.json is not a regular file", where=path,
                              why="a FIFO, device or directory named config.json could block or never end",
                              hint="config.json must be a regular file holding a JSON object")
        chunks: list[bytes] = []
        while True:
            chunk = os.read(fd, info.st_size + 4096)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def load_config(bundle: str) -> dict:
    """Read ``<bundle>/config.json`` as a dict (the runtime never needs pydantic)."""
    path = os.path.join(bundle, "config.json")
    try:
        data = _read_regular_file(path)
        config = jsonio.loads(data)
    except FileNotFoundError:
        raise ConfigError("config.json not found", where=path,
                          why="a bundle is a directory with config.json and the root filesystem",
                          hint="create one with `pyoci spec` or pyoci_nb.Bundle.create()") from None
    except jsonio.NestingError as exc:
        raise ConfigError("config.json nests too deeply", where=path, why=str(exc),
                          hint=f"config.json may nest arrays and objects at most {MAX_CONFIG_DEPTH} levels deep"
                          ) from None
    except ValueError as exc:
        raise ConfigError("config.json is not valid JSON", where=path, why=str(exc)) from None
    if not isinstance(config, dict):
        raise ConfigError("config.json must hold a JSON object", where=path)
    # nesting deeper than MAX_CONFIG_DEPTH needs that many brackets: count them first (fast)
    if data.count(b"[") + data.count(b"{") > MAX_CONFIG_DEPTH:
        deep = jsonio.deeper_than(config, MAX_CONFIG_DEPTH)
        if deep is not None:
            raise ConfigError(f"config.json nests more than {MAX_CONFIG_DEPTH} levels deep", where=deep,
                              why="the runtime refuses absurdly nested documents (they exhaust the stack)",
                              hint="flatten or remove this value")
    return config


def preflight(config: dict, bundle: str, *, rootless: bool, console: bool) -> dict:
    """Every check that can be made before anything is created.  Returns facts for create:
    the rootfs path, joined namespaces, new namespace flags and the compiled seccomp filter
    (``seccomp_filter``, a ``SeccompFilter`` or None: the caller closes it).

    The runtime checks what it is about to use, with JSON paths in its messages.  The full
    schema validation (``pyoci_nb.spec.validation.validate_config``) costs more than a whole
    container start, so it runs only when the config turns out malformed, to name the problem
    precisely (``pyoci validate`` runs it always)."""
    try:
        return _preflight(config, bundle, rootless=rootless, console=console)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        from pyoci_nb.spec.validation import validate_config

        try:
            problems = validate_config(config, for_start=True)
        except Exception:  # noqa: BLE001 - the validator tripped over the same value: name the first error
            problems = []
        if problems:
            first = problems[0]
            more = f" (and {len(problems) - 1} more; run `pyoci validate`)" if len(problems) > 1 else ""
            raise ConfigError(first.message + more, where=first.path,
                              why="config.json breaks the runtime spec") from None
        raise ConfigError(f"config.json is malformed: {type(exc).__name__}: {exc}",
                          where=os.path.join(bundle, "config.json")) from None


def _preflight(config: dict, bundle: str, *, rootless: bool, console: bool) -> dict:
    from pyoci_nb.runtime import mounts

    if not isinstance(config.get("ociVersion"), str):
        raise ConfigError("ociVersion is missing", where="ociVersion",
                          why="config.md: ociVersion is REQUIRED", hint='e.g. "1.0.2"')
    if not isinstance(config.get("root"), dict) or not config["root"].get("path"):
        raise ConfigError("root.path is missing", where="root.path",
                          why="config.md (Linux): root is REQUIRED", hint='e.g. {"path": "rootfs"}')
    _refuse_unsupported(config)
    proc = config.get("process")
    process.check_process(proc)  # (first: config.md's order, process before mounts)
    _check_shapes(config)
    linux = config.get("linux") or {}
    process.check_linux_process(linux)
    hooks.check_hooks(config)
    joined, flags = namespaces.parse(config)
    kinds = set(joined) | {k for k, (flag, _) in namespaces.NAMESPACES.items() if flags & flag}
    if "mount" not in kinds and "user" in kinds:
        # (without a mount namespace the container's mounts are made in the runtime's, below
        # a bind of the rootfs: mounts.RootfsBind)
        raise ConfigError("a user namespace needs a mount namespace of the container's own", where="linux.namespaces",
                          why="without a mount namespace the container's mounts are made in the runtime's, "
                              "which a process in another user namespace has no right to mount in",
                          hint='add {"type": "mount"} to linux.namespaces')
    mounts.check_idmapped_mounts(config, kinds, rootless=os.geteuid() != 0)
    mounts.check_root_mount(config, own_mount_ns="mount" in kinds)
    for key in ("hostname", "domainname"):
        if config.get(key) and "uts" not in kinds:
            raise ConfigError(f"cannot set {key} without a UTS namespace", where=key,
                              why="config.md: the runtime MUST generate an error when the container has no "
                                  "uts namespace of its own",
                              hint='add {"type": "uts"} to linux.namespaces')
    if (linux.get("uidMappings") or linux.get("gidMappings")) and "user" not in kinds:
        raise ConfigError("id mappings need a user namespace", where="linux.uidMappings",
                          hint='add {"type": "user"} to linux.namespaces')
    if flags & sc.CLONE_NEWUSER and not (linux.get("uidMappings") and linux.get("gidMappings")):
        raise ConfigError("a new user namespace needs uidMappings and gidMappings", where="linux",
                          hint="map at least the container's root, e.g. [{containerID: 0, hostID: 1000, size: 1}]")
    for key in linux.get("sysctl") or {}:
        owner = _sysctl_namespace(key)
        if owner is None:
            raise ConfigError(f"sysctl {key!r} is not namespaced", where=f'linux.sysctl["{key}"]',
                              why="only sysctls of the ipc, uts and network namespaces may be set in a container")
        if owner not in kinds:
            raise ConfigError(f"sysctl {key!r} belongs to the {owner} namespace, which the container does not own",
                              where=f'linux.sysctl["{key}"]', hint=f'add {{"type": "{owner}"}} to linux.namespaces')
        field = _SYSCTL_FIELDS.get(key)
        if field and config.get(field):
            raise ConfigError(f"sysctl {key!r} conflicts with {field}", where=f'linux.sysctl["{key}"]',
                              why=f"both set the {field} of the container's UTS namespace (runc refuses this too)",
                              hint=f"set only {field} (or only the sysctl)")
    if rootless and "user" not in kinds and os.geteuid() != 0:
        raise ConfigError("a rootless container needs a user namespace", where="linux.namespaces",
                          why="an unprivileged user cannot mount or create namespaces without one",
                          hint="generate the config with `pyoci spec --rootless`")
    if proc.get("terminal") and not console:
        raise ConfigError("cannot allocate a terminal without a console socket", where="process.terminal",
                          why="the pty master must be handed to someone (runc's --console-socket)",
                          hint="pass --console-socket, or set terminal to false")
    seccomp_filter = None
    if linux.get("seccomp"):  # compiled once: init gets this one (its fork's copy) to load
        from pyoci_nb.runtime import seccomp

        seccomp_filter = seccomp.compile_filter(linux["seccomp"])
    root = config.get("root") or {}
    rootfs = root.get("path") or ""
    rootfs = os.path.realpath(os.path.join(bundle, rootfs))
    if not os.path.isdir(rootfs):
        if seccomp_filter is not None:
            seccomp_filter.close()
        raise ConfigError(f"root filesystem {rootfs!r} is not a directory", where="root.path",
                          hint="root.path is relative to the bundle, usually 'rootfs'")
    return {"rootfs": rootfs, "joined": joined, "flags": flags, "kinds": sorted(kinds),
            "seccomp_filter": seccomp_filter}


def _check_strings(values, where: str) -> list:
    """``values``: an array of strings without NUL (None: []); else ConfigError naming the item."""
    for i, value in enumerate(process.check_list(values, where)):
        if not process.plain_string(value):
            process.check_string(value, f"{where}[{i}]")
    return values or []


#: HOST_NAME_MAX: the most bytes sethostname(2) and setdomainname(2) take
_MAX_HOSTNAME = 64


def _check_shapes(config: dict) -> None:
    """The type (and range) of every config value the runtime or the container's init reads
    besides ``process`` (``process.check_process``) and ``hooks`` (``hooks.check_hooks``), so
    that a malformed config is refused here, naming the field, instead of failing inside the
    container.  Cheap: a few isinstance checks per value."""
    for key in ("hostname", "domainname"):
        value = config.get(key)
        if value is not None:
            process.check_string(value, key)
            if len(value.encode(errors="surrogatepass")) > _MAX_HOSTNAME:
                raise ConfigError(f"{key} is {len(value.encode(errors='surrogatepass'))} bytes long", where=key,
                                  why=f"the kernel takes at most {_MAX_HOSTNAME} bytes (HOST_NAME_MAX)",
                                  hint=f"use a {key} of at most {_MAX_HOSTNAME} characters")
    annotations = config.get("annotations")
    if annotations is not None:
        if not isinstance(annotations, dict):
            raise ConfigError("annotations must be an object of strings", where="annotations",
                              why="config.md: annotations is a map of string keys to string values")
        for key, value in annotations.items():
            if not isinstance(value, str):
                raise ConfigError(f"annotation values must be strings, not {type(value).__name__}",
                                  where=f"annotations[{jsonio.dumps(key)}]",
                                  why="config.md: values MUST be strings")
    root = config["root"]
    process.check_string(root["path"], "root.path")
    if "readonly" in root and not isinstance(root["readonly"], bool):
        raise ConfigError("readonly must be true or false", where="root.readonly")
    # (the JSON paths of the messages are made only for a bad value: this runs on every create)
    for i, mount in enumerate(process.check_list(config.get("mounts"), "mounts")):
        if not isinstance(mount, dict):
            raise ConfigError(f"a mount must be an object, not {type(mount).__name__}", where=f"mounts[{i}]",
                              hint='e.g. {"destination": "/proc", "type": "proc", "source": "proc"}')
        if "destination" not in mount:
            raise ConfigError("the mount has no destination", where=f"mounts[{i}].destination",
                              why="config.md: destination is REQUIRED")
        for key in ("destination", "type", "source"):
            if key in mount and not process.plain_string(mount[key]):
                process.check_string(mount[key], f"mounts[{i}].{key}")
        options = mount.get("options")
        if options is not None:
            _check_strings(options, f"mounts[{i}].options")
        for key in ("uidMappings", "gidMappings"):
            if key in mount:
                _check_id_mappings(mount[key], f"mounts[{i}].{key}")
    linux = config.get("linux")
    if linux is None:
        return
    if not isinstance(linux, dict):
        raise ConfigError("linux must be an object", where="linux")
    for i, ns in enumerate(process.check_list(linux.get("namespaces"), "linux.namespaces")):
        if not isinstance(ns, dict):
            raise ConfigError("a namespace must be an object", where=f"linux.namespaces[{i}]",
                              hint='e.g. {"type": "pid"}')
        process.check_string(ns.get("type"), f"linux.namespaces[{i}].type")
        if ns.get("path") is not None:
            process.check_string(ns["path"], f"linux.namespaces[{i}].path")
    for key in ("uidMappings", "gidMappings"):
        _check_id_mappings(linux.get(key), f"linux.{key}")
    for key in ("maskedPaths", "readonlyPaths"):
        for i, path in enumerate(_check_strings(linux.get(key), f"linux.{key}")):
            if not path.startswith("/"):
                raise ConfigError(f"{path!r:.200} is not an absolute path", where=f"linux.{key}[{i}]",
                                  why=f"config-linux.md: {key} are absolute paths in the container")
    if linux.get("rootfsPropagation") is not None:
        process.check_string(linux["rootfsPropagation"], "linux.rootfsPropagation")
    sysctl = linux.get("sysctl")
    if sysctl is not None:
        if not isinstance(sysctl, dict):
            raise ConfigError("sysctl must be an object of strings", where="linux.sysctl")
        for key, value in sysctl.items():
            process.check_string(value, f"linux.sysctl[{jsonio.dumps(key)}]")
            if "/" in key or "" in key.split("."):
                raise ConfigError(f"sysctl {key!r:.200} is not a sysctl name",
                                  where=f"linux.sysctl[{jsonio.dumps(key)}]",
                                  why="a sysctl name is dot-separated words (net.ipv4.ip_forward)")
    for i, device in enumerate(process.check_list(linux.get("devices"), "linux.devices")):
        where = f"linux.devices[{i}]"
        if not isinstance(device, dict):
            raise ConfigError("a device must be an object", where=where,
                              hint='e.g. {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}')
        for key in ("path", "type"):
            if key not in device:
                raise ConfigError(f"the device has no {key}", where=f"{where}.{key}",
                                  why="config-linux.md: path and type are REQUIRED")
            process.check_string(device[key], f"{where}.{key}")
        for key, high in (("major", 2 ** 12 - 1), ("minor", 2 ** 20 - 1), ("fileMode", 2 ** 32 - 1),
                          ("uid", process.MAX_ID), ("gid", process.MAX_ID)):
            if key in device:
                process.check_int(device[key], f"{where}.{key}", 0, high,
                                  "Linux device numbers are 12-bit major, 20-bit minor; modes and ids 32-bit")
    offsets = linux.get("timeOffsets")
    if offsets is not None:
        if not isinstance(offsets, dict):
            raise ConfigError("timeOffsets must be an object", where="linux.timeOffsets",
                              hint='e.g. {"monotonic": {"secs": 3600}}')
        for clock, value in offsets.items():
            where = f"linux.timeOffsets[{jsonio.dumps(clock)}]"
            if clock not in ("monotonic", "boottime"):
                raise ConfigError(f"unknown clock {clock!r:.80}", where=where,
                                  why="time_namespaces(7): only monotonic and boottime can be offset")
            if not isinstance(value, dict):
                raise ConfigError("a time offset must be an object", where=where)
            process.check_int(value.get("secs", 0), f"{where}.secs", -2 ** 63, 2 ** 63 - 1,
                              "seconds are a signed 64-bit number")
            process.check_int(value.get("nanosecs", 0), f"{where}.nanosecs", 0, 999999999,
                              "nanoseconds are less than one second")
    for key in ("resources", "seccomp"):
        if linux.get(key) is not None and not isinstance(linux[key], dict):
            raise ConfigError(f"{key} must be an object", where=f"linux.{key}")
    if linux.get("cgroupsPath") is not None:
        process.check_string(linux["cgroupsPath"], "linux.cgroupsPath")


def _check_id_mappings(mappings, where: str) -> None:
    """An array of id mappings (config-linux.md "User namespace mappings", also the mappings of
    id-mapped mounts): objects of three unsigned 32-bit numbers, ranges within 32 bits."""
    for i, mapping in enumerate(process.check_list(mappings, where)):
        item = f"{where}[{i}]"
        if not isinstance(mapping, dict):
            raise ConfigError("an id mapping must be an object", where=item,
                              hint='e.g. {"containerID": 0, "hostID": 100000, "size": 65536}')
        for field in ("containerID", "hostID", "size"):
            if field not in mapping:
                raise ConfigError(f"the mapping has no {field}", where=f"{item}.{field}",
                                  why="config-linux.md: containerID, hostID and size are REQUIRED")
            process.check_int(mapping[field], f"{item}.{field}", 1 if field == "size" else 0,
                              2 ** 32 - 1, "user_namespaces(7): ids and sizes are unsigned 32-bit numbers")


#: config fields pyoci does not implement: refused rather than silently ignored (JSON path, why)
_UNSUPPORTED = (
    ("linux.netDevices", "moving network devices into the container's network namespace is not implemented"),
    ("linux.intelRdt", "Intel RDT (resctrl) is not implemented"),
    ("linux.mountLabel", "SELinux is not supported"),
    ("process.selinuxLabel", "SELinux is not supported"),
    ("process.apparmorProfile", "AppArmor is not supported"),
    ("process.execCPUAffinity", "CPU affinity of the container process is not implemented"),
)


def _refuse_unsupported(config: dict) -> None:
    """UnsupportedError for a field pyoci would otherwise silently ignore."""
    from pyoci_nb.errors import UnsupportedError

    for path, why in _UNSUPPORTED:
        section, _, key = path.partition(".")
        if (config.get(section) or {}).get(key):
            raise UnsupportedError(f"{key} is not supported by pyoci", where=path, why=why,
                                   hint=f"remove {path} from config.json "
                                        "(`pyoci features` lists what pyoci implements)")


_IPC_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")


#: the sysctls that config.json also sets with a field of its own
_SYSCTL_FIELDS = {"kernel.hostname": "hostname", "kernel.domainname": "domainname"}


def _sysctl_namespace(key: str) -> str | None:
    if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
        return "ipc"
    if key in ("kernel.hostname", "kernel.domainname"):
        return "uts"
    if key.startswith("net."):
        return "network"
    return None


def cgroup_hierarchies(config: dict, facts: dict) -> list | None:
    """The host's cgroup hierarchies for init's ``cgroup`` mount, read here once (init starts
    from this mount table), or None: no such mount, or init joins another mount namespace."""
    from pyoci_nb.runtime import mounts

    wanted = any(isinstance(m, dict) and m.get("type") == "cgroup" for m in config.get("mounts") or [])
    if not wanted or "mount" in facts["joined"]:
        return None
    return mounts.cgroup_hierarchies()
