"""Container lifecycle (runtime.md "Operations" and "Lifecycle") and the Python API.

``Container.create`` does runtime.md's create: it validates the config, takes the per-id lock,
makes the state directory and exec FIFO, creates the cgroup, forks the container's init
(``init.py``: straight into its pid namespace, or through an intermediate when a user
namespace needs id maps first), moves it into the cgroup while it mounts, answers its requests
(id maps, ``prestart``/``createRuntime`` hooks, the seccomp listener), and when init reports
ready writes ``state.json`` (status ``created``) and the pid file.  The user process runs only
after ``start`` opens the FIFO (``run`` opens it at once).  Any failure tears everything down:
processes, cgroup, state.

The same code serves the ``pyoci`` CLI (``commands.py``) and Python callers::

    c = Container.create("/path/to/bundle")     # or a Bundle (anything with .path)
    c.start(); c.wait(); c.delete()
    pyoci_nb.run(bundle, ["echo", "hi"], capture_output=True).stdout

Standard library only.
"""

from __future__ import annotations

import os
import time

from pyoci_nb.errors import (ConfigError, ContainerError, InvalidState, PyociError, SetupError)
from pyoci_nb.richrepr import ReprMixin
from pyoci_nb.runtime import hooks, jsonio, log, namespaces, process, trampoline
from pyoci_nb.runtime import syscalls as sc
from pyoci_nb.runtime.state import (StateDir, check_id, derive_status, init_alive, list_ids,
                                    public_state)


def default_root() -> str:
    """The default state root (``/run/pyoci`` for root); the CLI's rule."""
    from pyoci_nb.cli import default_root as cli_default_root

    return cli_default_root()


def _bundle_path(bundle) -> str:
    path = getattr(bundle, "path", bundle)
    return os.path.abspath(os.fspath(path))


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
        chunks = []
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
    the rootfs path, joined namespaces and new namespace flags.

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
                              why="config.md: the runtime MUST generate an error when the container has no uts namespace of its own",
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
    if linux.get("seccomp"):
        from pyoci_nb.runtime import seccomp

        seccomp.compile_filter(linux["seccomp"]).close()
    root = config.get("root") or {}
    rootfs = root.get("path") or ""
    rootfs = os.path.realpath(os.path.join(bundle, rootfs))
    if not os.path.isdir(rootfs):
        raise ConfigError(f"root filesystem {rootfs!r} is not a directory", where="root.path",
                          hint="root.path is relative to the bundle, usually 'rootfs'")
    return {"rootfs": rootfs, "joined": joined, "flags": flags, "kinds": sorted(kinds)}


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
                raise ConfigError(f"sysctl {key!r:.200} is not a sysctl name", where=f"linux.sysctl[{jsonio.dumps(key)}]",
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
                                   hint=f"remove {path} from config.json (`pyoci features` lists what pyoci implements)")


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


def _cgroup_hierarchies(config: dict, facts: dict) -> list | None:
    """The host's cgroup hierarchies for init's ``cgroup`` mount, read here once (init starts
    from this mount table), or None: no such mount, or init joins another mount namespace."""
    from pyoci_nb.runtime import mounts

    wanted = any(isinstance(m, dict) and m.get("type") == "cgroup" for m in config.get("mounts") or [])
    if not wanted or "mount" in facts["joined"]:
        return None
    return mounts.cgroup_hierarchies()


def _channels(console_socket: str | None, console_fd: int | None, closers: list):
    """What a forked child talks through: the console socket's fd (connected to
    ``console_socket`` if given, else ``console_fd``) and a Channel pair (runtime end, child
    end).  What the runtime must close afterwards goes into ``closers``."""
    from pyoci_nb.runtime.init import Channel

    if console_socket:
        from pyoci_nb.runtime.console import connect_console_socket

        sock = connect_console_socket(console_socket)
        closers.append(sock)
        console_fd = sock.fileno()
    parent, child = Channel.pair()
    closers.append(parent)
    return console_fd, parent, child


class _no_collection:
    """No cyclic garbage collection while a forked child shares this process's memory: a
    collection then touches every object and copies the whole heap page by page (copy on
    write), milliseconds per container.  Collection resumes (if it was on) afterwards."""

    def __enter__(self):
        import gc

        self.was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc):
        if self.was_enabled:
            import gc

            gc.enable()


def _tell(channel, kind: str) -> None:
    """Send init a message it waits for (``cgroup-joined``).  If init has already failed, its
    error message is waiting in the channel: the caller reads it next."""
    try:
        channel.send({"type": kind})
    except (BrokenPipeError, ConnectionResetError):
        pass


def _write_file_atomic(path: str, text: str) -> None:
    """Write ``path`` (a pid file) as a whole: a new temporary file beside it, never an existing
    one nor through a link (``O_EXCL|O_NOFOLLOW``: the directory may be shared), then renamed
    over ``path`` (rename replaces the name, it does not follow a link planted there)."""
    tmp = f"{path}.{os.urandom(6).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.rename(tmp, path)


def _wait_gone(pid: int, start_time: int | None, timeout: float = 10.0) -> None:
    """Wait until ``pid`` (with that start time) has exited; reap it if it is our child."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                _note_exit(pid, status)
                return
        except ChildProcessError:
            pass
        if sc.process_start_time(pid) != start_time or start_time is None:
            return
        time.sleep(0.005)


#: True in the processes that fork containers themselves: the ``pyoci`` command line and the
#: engine (``engine.py``).  Everywhere else (a script, a Jupyter kernel) the lifecycle methods
#: send their work to this process's engine, so the caller is never forked.
IN_PROCESS = False

#: exit statuses (as ``_exit_code`` gives them) of our children that were reaped before anyone
#: asked for them; ``exit_status`` hands each out once
_exit_statuses: dict[int, int] = {}


def _note_exit(pid: int, status: int) -> int:
    code = _exit_code(status)
    if len(_exit_statuses) > 4096:  # nobody asked for the oldest: forget them
        for old in list(_exit_statuses)[:1024]:
            del _exit_statuses[old]
    _exit_statuses[pid] = code
    return code


def reap_children() -> None:
    """Reap every child that has exited and keep its status (the engine, between requests)."""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG)
        except ChildProcessError:
            return
        if info is None:
            return
        code = info.si_status + 128 if info.si_code in (os.CLD_KILLED, os.CLD_DUMPED) else info.si_status
        _exit_statuses[info.si_pid] = code


def exit_status(pid: int) -> int | None:
    """The exit status of our child ``pid`` once it has exited (once: it is then forgotten);
    None while it runs or if it is not ours."""
    if pid not in _exit_statuses:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return None
        if done != pid:
            return None
        _note_exit(pid, status)
    return _exit_statuses.pop(pid)


def is_our_child(pid: int) -> bool:
    """Is ``pid`` a child of this process (running, or exited and not yet asked for)?"""
    if pid in _exit_statuses:
        return True
    try:
        data = sc.read_file(f"/proc/{pid}/stat")
    except OSError:
        return False
    return int(data[data.rfind(b")") + 2:].split()[1]) == os.getpid()


def list_ids_quietly(root: str) -> list[str]:
    """The container ids in a state root; none if it cannot be read."""
    try:
        return list_ids(root)
    except (OSError, PyociError):
        return []


def _kill_quietly(pid: int, sig: int = 9) -> None:
    if pid > 0:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


#: what this process is a subreaper for: containers it created (until deleted) and exec'd
#: processes it waits for.  PR_SET_CHILD_SUBREAPER makes every orphan below us our child, and a
#: caller (pytest, a Jupyter kernel) never reaps those: so it is held only while needed.
_subreaper_holders: set = set()


def keep_subreaper(holder) -> None:
    """Stay a subreaper for good (the engine: it reaps every container process itself)."""
    _subreaper_holders.add(holder)


def _hold_subreaper(holder) -> None:
    """Become a subreaper (a container's orphaned init is reparented to us) for ``holder``."""
    if not _subreaper_holders:
        sc.set_child_subreaper(True)
    _subreaper_holders.add(holder)


def _drop_subreaper(holder) -> None:
    """``holder`` no longer needs us as subreaper; when nothing does, stop being one and reap the
    container processes we adopted meanwhile (zombies would keep their pid namespace alive)."""
    if holder not in _subreaper_holders:
        return
    _subreaper_holders.discard(holder)
    if _subreaper_holders:
        return
    sc.set_child_subreaper(False)
    try:  # is there any zombie child at all?  (WNOWAIT: only look, reap nothing)
        if os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            return
    except ChildProcessError:
        return
    our_ns = os.readlink("/proc/self/ns/pid")
    me = str(os.getpid())
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            # only our zombies from other pid namespaces: never a child the caller made itself
            if fields[0] == b"Z" and fields[1].decode() == me and \
                    os.readlink(f"/proc/{entry}/ns/pid") != our_ns:
                os.waitpid(int(entry), os.WNOHANG)
        except (OSError, IndexError):
            continue


class Container(ReprMixin):
    """One container in a state root: the runtime spec's lifecycle as methods.

    ``create`` -> ``start`` -> (``kill``) -> ``wait`` -> ``delete``; ``state()`` returns the state
    object of runtime.md (ociVersion, id, status, pid, bundle, annotations).
    """

    def __init__(self, container_id: str, root: str | None = None):
        self.id = container_id
        self.root = os.path.abspath(root or default_root())
        self._dir = StateDir(self.root, container_id)
        self._exit_status: int | None = None
        self._pidfd: int | None = None  # the init's, from the engine that made it
        self._deleted = False  # by us: wait() then returns what is known

    def __del__(self):
        if getattr(self, "_pidfd", None) is not None:
            try:
                os.close(self._pidfd)
            except OSError:
                pass

    @property
    def _subreaper_key(self) -> tuple:
        return ("container", self.root, self.id)

    def __repr__(self) -> str:
        try:
            status = self.status
        except PyociError:
            status = "deleted"
        return f"<Container {self.id!r} {status} root={self.root!r}>"

    # --- loading -------------------------------------------------------------------------
    @classmethod
    def load(cls, container_id: str, root: str | None = None) -> "Container":
        """An existing container; ContainerNotFound ("does not exist") if there is none."""
        container = cls(container_id, root)
        container._record()
        return container

    def _record(self) -> dict:
        return self._dir.read()

    @property
    def pid(self) -> int:
        """The host pid of the container's init (runtime.md: REQUIRED when created or
        running; 0 once stopped)."""
        return self.state()["pid"]

    @property
    def status(self) -> str:
        """creating, created, running, paused or stopped -- derived from the init process,
        the exec FIFO and the cgroup freezer, never trusted from the saved file."""
        return derive_status(self._record(), self._dir)

    @property
    def bundle(self) -> str:
        """The absolute path of the container's bundle (runtime.md state ``bundle``)."""
        return self._record()["bundle"]

    @property
    def config(self) -> dict:
        """The config.json the container was created from (a plain dict)."""
        return self._record()["config"]

    def state(self) -> dict:
        """runtime.md "Query State": the state object (state-schema.json)."""
        record = self._record()
        self._reap(record)
        return public_state(record, derive_status(record, self._dir))

    def _reap(self, record: dict) -> None:
        """Collect init's exit status if it is our child and has exited (no zombie left)."""
        pid = record.get("pid") or 0
        if pid > 0 and self._exit_status is None:
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return
            if done == pid:
                self._exit_status = _note_exit(pid, status)  # kept there too: the engine's caller asks

    # --- create ----------------------------------------------------------------------------
    @classmethod
    def create(cls, bundle, id: str | None = None, root: str | None = None, *,
               console_socket: str | None = None, console_fd: int | None = None,
               pid_file: str | None = None, no_pivot: bool = False, no_new_keyring: bool = False,
               preserve_fds: int = 0, rootless: bool | None = None,
               stdin: int | None = None, stdout: int | None = None, stderr: int | None = None,
               subreaper: bool = True, start: bool = False, remove_on_exit: bool = False,
               cleanup_paths: list[str] | None = None) -> "Container":
        """runtime.md "Create": set up everything config.json asks for, without running the
        user process.  ``stdin``/``stdout``/``stderr`` are fds for the container's stdio
        (default: ours); ``preserve_fds`` passes our fds 3 .. 3+N-1 on as well.

        With ``start`` this is runc's ``run`` up to the wait: create, then start, as one
        operation under the per-id lock; the user process is released as soon as init is
        ready, while the runtime finishes its bookkeeping (state, pid file).

        From Python the work is done by this process's engine (``engine.py``), which is the
        init's parent, so ``wait()`` returns its exit status.  ``remove_on_exit``: the engine
        force-deletes the container when this process exits without deleting it;
        ``cleanup_paths`` are removed with the container (by ``delete``, or then).
        ``subreaper`` is the command line's: with it, this process becomes the init's parent."""
        bundle_path = _bundle_path(bundle)
        container_id = "pyoci-" + os.urandom(6).hex() if id is None else id
        check_id(container_id)  # "" is runc's "container id cannot be empty", not a made-up id
        if rootless is None:
            rootless = os.geteuid() != 0
        container = cls(container_id, root)
        if not IN_PROCESS:
            container._create_through_engine(bundle_path, console_socket, console_fd, pid_file, no_pivot,
                                             no_new_keyring, preserve_fds, rootless, (stdin, stdout, stderr),
                                             start, remove_on_exit, cleanup_paths)
            return container
        if subreaper:
            _hold_subreaper(container._subreaper_key)
        try:
            return cls._create_as(container, bundle_path, console_socket, console_fd, pid_file, no_pivot,
                                  no_new_keyring, preserve_fds, rootless, stdin, stdout, stderr, start)
        except BaseException:
            _drop_subreaper(container._subreaper_key)
            raise

    @staticmethod
    def _create_as(container, bundle_path, console_socket, console_fd, pid_file, no_pivot,
                   no_new_keyring, preserve_fds, rootless, stdin, stdout, stderr, start) -> "Container":
        with _no_collection():
            container._create(bundle_path, console_socket=console_socket, console_fd=console_fd,
                              pid_file=pid_file, no_pivot=no_pivot, no_new_keyring=no_new_keyring,
                              preserve_fds=preserve_fds, rootless=rootless,
                              stdio=(stdin, stdout, stderr), start=start)
        return container

    def _create_through_engine(self, bundle, console_socket, console_fd, pid_file, no_pivot, no_new_keyring,
                               preserve_fds, rootless, stdio, start, remove_on_exit, cleanup_paths) -> None:
        from pyoci_nb.runtime.engine import engine

        process.check_preserved_fds(preserve_fds)
        fds, layout = _fds_for_engine(stdio, console_fd, preserve_fds)
        result, received = engine().call(
            "create", fds, bundle=bundle, id=self.id, root=self.root, console_socket=console_socket,
            pid_file=os.path.abspath(pid_file) if pid_file else None, no_pivot=no_pivot,
            no_new_keyring=no_new_keyring, rootless=rootless, start=start, layout=layout,
            remove_on_exit=remove_on_exit, cleanup_paths=[os.fspath(p) for p in cleanup_paths or ()])
        self._pidfd = received[0] if received else None

    def _create(self, bundle: str, *, console_socket, console_fd, pid_file, no_pivot,
                no_new_keyring, preserve_fds, rootless, stdio, start=False) -> None:
        from pyoci_nb.runtime import mounts
        from pyoci_nb.runtime.init import (InitContext, init_direct, intermediate_main,
                                           preload_modules)

        process.check_preserved_fds(preserve_fds)  # before the runtime opens fds of its own
        config = load_config(bundle)
        facts = preflight(config, bundle, rootless=rootless,
                          console=bool(console_socket or console_fd is not None))
        preload_modules(config)  # once per process, not once per forked child (config checked)
        state_dir = self._dir
        state_dir.make()
        me = os.getpid()
        record = {
            "id": self.id, "status": "creating", "pid": 0, "bundle": bundle,
            "rootfs": facts["rootfs"], "annotations": config.get("annotations") or {},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{time.time_ns() % 10**9:09d}Z",
            "runtimePid": me, "runtimeStartTime": sc.process_start_time(me),
            "namespaces": facts["kinds"], "rootless": rootless, "config": config,
        }
        cgroup = None
        ipid = 0
        init_pid = 0
        fds_to_close: list[int] = []
        closers = []
        hook_failed = False
        rootfs_bind = None
        idmapped: dict[int, int] = {}
        try:
            state_dir.write(record)
            state_dir.make_fifo()
            from pyoci_nb.runtime.cgroups import manager_for

            cgroup = manager_for(config, self.id, rootless)
            direct = namespaces.forks_init_directly(facts["joined"], facts["flags"])
            cgroup.create()
            record["cgroup"] = cgroup.to_state()
            state_dir.write(record)
            fifo_fd = state_dir.open_fifo(os.O_PATH)
            fds_to_close.append(fifo_fd)
            idmapped = mounts.prepare_idmapped_mounts(config, bundle, facts["joined"])
            fds_to_close += idmapped.values()
            if "mount" not in facts["kinds"]:
                # the container's mounts go below a bind of the rootfs in our mount namespace;
                # saved before it is attached, so that `delete` finds it whatever happens next
                rootfs_bind = mounts.RootfsBind(facts["rootfs"], (config.get("linux") or {}).get("rootfsPropagation"))
                closers.append(rootfs_bind)
                record["rootfsMount"] = rootfs_bind.saved()
                state_dir.write(record)
                rootfs_bind.attach()
            console_fd, parent, child = _channels(console_socket, console_fd, closers)
            ctx = InitContext(config=config, bundle=bundle, rootfs=facts["rootfs"],
                              joined=facts["joined"], new_namespaces=facts["flags"],
                              no_pivot=no_pivot, no_new_keyring=no_new_keyring,
                              preserve_fds=preserve_fds, fifo_fd=fifo_fd, console_fd=console_fd,
                              container_id=self.id, stdio=stdio,
                              close_fds=[state_dir.lock_fd, state_dir.dir_fd],
                              cgroups=mounts.CgroupView(cgroup.directories(),
                                                        _cgroup_hierarchies(config, facts)),
                              rootfs_fd=rootfs_bind.fd if rootfs_bind else None, idmapped=idmapped)
            if direct:
                new_pid_ns = bool(facts["flags"] & sc.CLONE_NEWPID)
                init_pid = namespaces.fork_into_new_pid_namespace() if new_pid_ns else os.fork()
                if init_pid == 0:
                    parent.sock.close()
                    init_direct(ctx, child)  # never returns
            else:
                ipid = os.fork()
                if ipid == 0:
                    parent.sock.close()
                    intermediate_main(ctx, child)  # never returns
            child.close()
            # while init sets up its namespaces and mounts: the cgroup's limits, then init into
            # it (the first move into a cgroup waits for an RCU grace period: milliseconds)
            if direct:
                record.update(pid=init_pid, initStartTime=sc.process_start_time(init_pid))
            # also without linux.resources: the device allowlist (the runtime's defaults and
            # linux.devices) is what keeps /dev/sda & co. out of reach, as runc has it
            cgroup.set((config.get("linux") or {}).get("resources") or {})
            if direct:
                cgroup.apply(init_pid)
                _tell(parent, "cgroup-joined")
            while True:
                message, fds = parent.receive()
                if message is None:
                    raise SetupError("container init failed",
                                     why="the container's init exited before reporting (see its stderr)")
                kind = message.get("type")
                if kind == "idmap":
                    namespaces.write_id_maps(ipid, config)
                    parent.send({"type": "idmap-done"})
                elif kind == "pid":
                    init_pid = message["pid"]
                    record.update(pid=init_pid, initStartTime=sc.process_start_time(init_pid))
                    os.waitpid(ipid, 0)
                    ipid = 0
                    cgroup.apply(init_pid)
                    _tell(parent, "cgroup-joined")
                elif kind == "hooks":
                    state = public_state(record, "creating")
                    state["pid"] = init_pid
                    state_dir.write(record)  # hooks take time: `delete --force` must find init
                    hook_failed = True
                    hooks.run_hooks(config, "prestart", state)
                    hooks.run_hooks(config, "createRuntime", state)
                    hook_failed = False
                    parent.send({"type": "hooks-done", "state": state})
                elif kind == "seccomp-listener":
                    from pyoci_nb.runtime import seccomp

                    seccomp_config = config["linux"]["seccomp"]
                    state = public_state(record, "creating")
                    state["pid"] = init_pid
                    try:
                        seccomp.send_listener(seccomp_config["listenerPath"], fds[0], state,
                                              seccomp_config.get("listenerMetadata", ""))
                    finally:
                        for fd in fds:
                            os.close(fd)
                    parent.send({"type": "seccomp-listener-done"})
                elif kind == "ready":
                    if start:  # a reader on the FIFO: init goes on to execve at once
                        fifo_reader = state_dir.open_fifo(os.O_RDONLY | os.O_NONBLOCK)
                        fds_to_close.append(fifo_reader)
                    break
                elif kind == "warning":
                    log.warning(message.get("message") or "")
                elif kind == "error":
                    error = SetupError("container init failed", why=message.get("message"))
                    raise error
                else:
                    raise SetupError(f"unexpected message from the container's init: {message!r}")
            record["status"] = "created"
            record["cgroup"] = cgroup.to_state()
            state_dir.write(record)
            if pid_file:
                _write_file_atomic(os.path.abspath(pid_file), str(init_pid))
            log.debug("container created", id=self.id, pid=init_pid)
            if start:
                fds_to_close.remove(fifo_reader)
                hook_failed = True  # a failed start ends like a stopped container: poststop runs
                self._start_user_process(record, fifo_reader)
                hook_failed = False
        except BaseException:
            self._teardown_failed_create(record, cgroup, ipid, init_pid, config, hook_failed)
            raise
        finally:
            for fd in fds_to_close:
                os.close(fd)
            for closer in closers:
                closer.close()
            state_dir.unlock()

    def _teardown_failed_create(self, record, cgroup, ipid, init_pid, config, hook_failed) -> None:
        """A failed create leaves nothing: processes, cgroup, state directory."""
        for pid in (init_pid, ipid):
            _kill_quietly(pid)
        if cgroup is not None:
            try:
                for pid in cgroup.pids():
                    _kill_quietly(pid)
            except Exception:
                pass
        if ipid:
            try:
                os.waitpid(ipid, 0)
            except ChildProcessError:
                pass
        if init_pid:
            _wait_gone(init_pid, record.get("initStartTime"))
        if hook_failed:
            hooks.run_poststop(config, public_state(record, "stopped"))
        self._remove_rootfs_bind(record)
        if cgroup is not None:
            try:
                cgroup.destroy()
            except Exception as exc:
                log.warning(f"removing the cgroup of failed container {self.id!r}: {exc}")
        self._dir.remove()

    def _remove_rootfs_bind(self, record: dict) -> None:
        """A container without a mount namespace of its own: unmount the rootfs bind create
        made in the runtime's mount namespace, with everything mounted below it."""
        saved = record.get("rootfsMount")
        if isinstance(saved, dict):
            from pyoci_nb.runtime import mounts

            try:
                mounts.remove_rootfs_bind(saved)
            except Exception as exc:
                log.warning(f"container {self.id!r}: {exc}")

    # --- start -----------------------------------------------------------------------------
    def start(self) -> None:
        """runtime.md "Start": run the user process of a ``created`` container, then the
        ``poststart`` hooks (a failure stops and deletes the container -- runtime.md lifecycle
        steps 9, 12, 13: poststop hooks run -- and is an error)."""
        if not IN_PROCESS:
            from pyoci_nb.runtime.engine import engine

            engine().call("start", id=self.id, root=self.root)
            return
        with self._dir.lock():
            record = self._record()
            status = derive_status(record, self._dir)
            if status != "created":
                what = {"stopped": "cannot start a container that has stopped",
                        "running": "cannot start an already running container",
                        "paused": "cannot start a paused container",
                        "creating": "cannot start a container that is still being created"}[status]
                raise InvalidState(what, where=f"container {self.id!r}",
                                   why="runtime.md: start needs a container in the created state")
            self._start_user_process(record, destroy_on_failure=True)

    def _start_user_process(self, record: dict, fifo_reader: int | None = None,
                            destroy_on_failure: bool = False) -> None:
        """Release the user process (the status reads running from then on: no FIFO), then
        run the ``poststart`` hooks; a failing hook kills the container and, with
        ``destroy_on_failure``, deletes it (a failed ``run`` is torn down by its create)."""
        self._release(record, fifo_reader)
        try:
            hooks.run_hooks(record["config"], "poststart", public_state(record, "running"))
        except SetupError:
            if destroy_on_failure:
                try:
                    self._destroy(record)
                finally:
                    _drop_subreaper(self._subreaper_key)
            else:
                _kill_quietly(record["pid"])
                _wait_gone(record["pid"], record.get("initStartTime"))
            raise

    def _release(self, record: dict, fd: int | None = None) -> None:
        """Open the exec FIFO for reading (or use ``fd``, opened so already): init's blocked
        open returns, it writes one byte and goes on to execve, which closes its end.  Fails
        if init dies instead."""
        if fd is None:
            fd = self._dir.open_fifo(os.O_RDONLY | os.O_NONBLOCK)
        try:
            import select

            received = b""
            while True:
                select.select([fd], [], [], 0.1)
                try:
                    data = os.read(fd, 4096)
                except BlockingIOError:
                    data = None
                if data:
                    received += data  # "0": startContainer hooks done; wait for execve to close it
                    continue
                if data == b"" and received:
                    break
                # nothing yet: init has not opened its end (or has died)
                if not init_alive(record):
                    raise ContainerError("container init exited before start", where=f"container {self.id!r}",
                                         why="the init process died while starting (a startContainer hook "
                                             "or the last set-up steps failed; see the container's stderr)")
                if data == b"":
                    time.sleep(0.0005)  # no writer yet: read() says EOF at once
            report = received[1:] if received[:1] == b"0" else received
            failed = trampoline.failure(report)
            if failed is not None:  # the trampoline's execve of the program failed
                raise SetupError("the container's program could not be executed", where=f"container {self.id!r}",
                                 why=_exec_failure(record["config"].get("process") or {}, failed))
            if report[:1] == b"E":  # "E" + message: init failed after create returned
                raise SetupError("container init failed", where=f"container {self.id!r}",
                                 why=report[1:].decode(errors="replace"))
        finally:
            os.close(fd)
        self._dir.remove_fifo()

    # --- kill, wait --------------------------------------------------------------------------
    def kill(self, signal: int | str = "SIGTERM", all: bool = False) -> None:
        """runtime.md "Kill": send ``signal`` to the init (``all``: every process of the
        container's cgroup); an error unless the container is created, running or paused.

        ``all`` of a stopped container succeeds, as with runc: what is left in its cgroup (the
        init's children outlive it without a pid namespace of their own) gets the signal, and
        an empty cgroup is nothing to do.  containerd's shim sends it after every exit of a
        container sharing a pid namespace."""
        number = parse_signal(signal)
        record = self._record()
        status = derive_status(record, self._dir)
        if all and status == "stopped":
            if record.get("cgroup"):   # (the init itself is gone: its pid may be another's)
                from pyoci_nb.runtime.cgroups import manager_from_state

                for pid in manager_from_state(record["cgroup"]).pids():
                    _kill_quietly(pid, number)
            return
        if status not in ("created", "running", "paused"):
            raise InvalidState("container not running", where=f"container {self.id!r}",
                               why=f"its status is {status}; only a created or running container can be signalled")
        pids = [record["pid"]]
        if all and record.get("cgroup"):
            from pyoci_nb.runtime.cgroups import manager_from_state

            pids = sorted(set(manager_from_state(record["cgroup"]).pids()) | set(pids))
        for pid in pids:
            try:
                os.kill(pid, number)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the init to exit; its exit status (128+N for signal N, like a shell), or
        None if the init is not our child (then the status cannot be known).  TimeoutError if
        it runs longer than ``timeout`` seconds."""
        if self._exit_status is not None or self._deleted:
            return self._exit_status
        if not IN_PROCESS:
            return self._wait_through_engine(timeout)
        record = self._record()
        pid = record.get("pid") or 0
        deadline = None if timeout is None else time.monotonic() + timeout
        if pid <= 0:
            return None
        try:
            if deadline is None:
                _, status = _waitpid_retry(pid)
                self._exit_status = _exit_code(status)
                return self._exit_status
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done == pid:
                    self._exit_status = _exit_code(status)
                    return self._exit_status
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"container {self.id!r} still running after {timeout}s")
                time.sleep(0.005)
        except ChildProcessError:
            pass
        while init_alive(record):
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"container {self.id!r} still running after {timeout}s")
            time.sleep(0.01)
        return None

    def _wait_through_engine(self, timeout: float | None) -> int | None:
        from pyoci_nb.runtime.engine import running_engine

        record = self._record()
        pid = record.get("pid") or 0
        if pid <= 0:
            return None
        current = running_engine()
        ours = self._pidfd is not None
        if not ours and current is not None:
            ours, received = current.call("pidfd", pid=pid)
            if received:
                self._pidfd = received[0]
        if not ours:  # not made by our engine: its status cannot be known
            deadline = None if timeout is None else time.monotonic() + timeout
            while init_alive(record):
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"container {self.id!r} still running after {timeout}s")
                time.sleep(0.01)
            return None
        if self._pidfd is not None and not wait_readable(self._pidfd, timeout):
            raise TimeoutError(f"container {self.id!r} still running after {timeout}s")
        if current is None:  # the engine died with the container's status
            return None
        self._exit_status, _ = current.call("status", pid=pid)
        return self._exit_status

    # --- delete ------------------------------------------------------------------------------
    def delete(self, force: bool = False) -> None:
        """runtime.md "Delete": remove what create made (an error unless ``stopped``; with
        ``force`` the processes are killed first).  Runs ``poststop`` hooks (failures are
        warnings), removes the cgroup and the state directory."""
        if not IN_PROCESS:
            from pyoci_nb.runtime.engine import engine

            result, _ = engine().call("delete", id=self.id, root=self.root, force=force)
            if self._exit_status is None and result.get("status") is not None:
                self._exit_status = result["status"]  # for a wait() after the delete
            self._deleted = True
            if self._pidfd is not None:
                os.close(self._pidfd)
                self._pidfd = None
            return
        self._dir.lock()
        try:
            record = self._record()
            self._reap(record)
            status = derive_status(record, self._dir)
            if status != "stopped":
                if not force:
                    raise InvalidState(f"cannot delete container that is not stopped: {status}",
                                       where=f"container {self.id!r}",
                                       why="runtime.md: delete of a container that is not stopped is an error",
                                       hint="kill it first, or use delete --force")
            self._destroy(record)
        finally:
            self._dir.unlock()
            _drop_subreaper(self._subreaper_key)

    def _destroy(self, record: dict) -> None:
        """Under the lock: kill every process of the container, run the ``poststop`` hooks
        (failures are warnings), remove the cgroup and the state directory."""
        manager = None
        if record.get("cgroup"):
            from pyoci_nb.runtime.cgroups import manager_from_state

            try:
                manager = manager_from_state(record["cgroup"])
            except Exception as exc:  # a corrupt record: still remove the rest
                log.warning(f"the saved cgroup of container {self.id!r} is unusable: {exc}")
        self._kill_everything(record, manager)
        self._remove_rootfs_bind(record)
        if record.get("status") != "creating":
            hooks.run_poststop(record.get("config") or {}, public_state(record, "stopped"))
        if manager is not None:
            try:
                manager.destroy()
            except Exception as exc:
                log.warning(f"removing the cgroup of container {self.id!r}: {exc}")
        self._dir.remove()
        self._deleted = True

    def _kill_everything(self, record: dict, manager) -> None:
        pid = record.get("pid") or 0
        if init_alive(record):  # (after a runtime died mid-create, the cgroup holds the rest)
            _kill_quietly(pid)
        if manager is not None:
            try:
                for _ in range(50):
                    pids = manager.pids()
                    if not pids:
                        break
                    for p in pids:
                        _kill_quietly(p)
                    if manager.frozen():
                        manager.thaw()  # a frozen (paused) process dies of SIGKILL only once thawed
                    time.sleep(0.01)
            except Exception:
                pass
        if pid:
            _wait_gone(pid, record.get("initStartTime"))
        self._reap(record)

    # --- exec --------------------------------------------------------------------------------
    def exec(self, args: list[str] | None = None, *, process_config: dict | None = None,
             env: list[str] | dict | None = None, cwd: str | None = None, user: str | None = None,
             tty: bool = False, console_socket: str | None = None, console_fd: int | None = None,
             detach: bool = False, pid_file: str | None = None, preserve_fds: int = 0,
             additional_gids: list[int] | None = None, add_capabilities: list[str] | None = None,
             no_new_privileges: bool = False,
             stdin: int | None = None, stdout: int | None = None, stderr: int | None = None) -> int:
        """runc's exec: run another process in the container's namespaces and cgroup.

        ``process_config`` is a ``process`` object (as in config.json; default: the config's
        process with ``args`` replaced).  Returns the exit status, or the pid with ``detach``.
        ``popen`` returns a handle instead."""
        proc = self._exec_process(args, process_config, env, cwd, user, tty, console_socket, console_fd,
                                  preserve_fds, additional_gids, add_capabilities, no_new_privileges)
        stdio = (stdin, stdout, stderr)
        if not IN_PROCESS:
            started = self._exec_through_engine(proc, console_socket, console_fd, pid_file, preserve_fds, stdio)
            if detach:
                return started.pid
            try:
                return started.wait()
            except BaseException:  # interrupted: the process does not outlive the call
                started.kill()
                raise
        # waiting for an exec'd process reparented to us needs us as its subreaper
        holder = None if detach else ("exec", self.root, self.id, object())
        if holder:
            _hold_subreaper(holder)
        try:
            pid = self.exec_detached(proc, console_socket=console_socket, console_fd=console_fd,
                                     pid_file=pid_file, preserve_fds=preserve_fds, stdio=stdio)
            if detach:
                return pid
            _, status = _waitpid_retry(pid)
            return _exit_code(status)
        finally:
            if holder:
                _drop_subreaper(holder)

    def popen(self, args: list[str] | None = None, *, process_config: dict | None = None,
              env: list[str] | dict | None = None, cwd: str | None = None, user: str | None = None,
              tty: bool = False, console_socket: str | None = None, pid_file: str | None = None,
              stdin: int | None = None, stdout: int | None = None,
              stderr: int | None = None) -> "ContainerProcess":
        """Start another process in the container (as ``exec``) and return at once with a
        handle to it, like ``subprocess.Popen``: ``pid``, ``poll()``, ``wait(timeout)``,
        ``send_signal()``, ``kill()``, ``returncode``.  Its stdio are the fds given (default:
        ours), written to directly by the process."""
        proc = self._exec_process(args, process_config, env, cwd, user, tty, console_socket, None, 0,
                                  None, None, False)
        return self._exec_through_engine(proc, console_socket, None, pid_file, 0, (stdin, stdout, stderr))

    def _exec_process(self, args, process_config, env, cwd, user, tty, console_socket, console_fd,
                      preserve_fds, additional_gids, add_capabilities, no_new_privileges) -> dict:
        """The checked process object of an exec, for a container that can take one."""
        process.check_preserved_fds(preserve_fds)
        record = self._record()
        status = derive_status(record, self._dir)
        if status == "created" and os.geteuid() != 0:
            raise InvalidState("an unprivileged runtime cannot exec into a created container",
                               where=f"container {self.id!r}",
                               why="until the container's program runs, its init is non-dumpable (nothing "
                                   "of the runtime is reachable through its /proc from inside), and "
                                   "opening its namespaces then needs CAP_SYS_PTRACE on the host",
                               hint="start the container first, then exec into it")
        if status not in ("created", "running"):
            raise InvalidState("container not running" if status != "paused" else "container is paused",
                               where=f"container {self.id!r}",
                               why=f"exec needs a created or running container; it is {status}")
        proc = build_exec_process(record["config"], process_config, args, env, cwd, user, tty,
                                  additional_gids, add_capabilities, no_new_privileges)
        process.check_process(proc, "process.json" if process_config else "process")
        if proc.get("terminal") and not (console_socket or console_fd is not None):
            raise ConfigError("cannot allocate a terminal without a console socket", where="--tty",
                              hint="pass --console-socket")
        return proc

    def _exec_through_engine(self, proc, console_socket, console_fd, pid_file, preserve_fds,
                             stdio) -> "ContainerProcess":
        from pyoci_nb.runtime.engine import engine

        fds, layout = _fds_for_engine(stdio, console_fd, preserve_fds)
        current = engine()
        result, received = current.call("exec", fds, id=self.id, root=self.root, process=proc,
                                        console_socket=console_socket, layout=layout,
                                        pid_file=os.path.abspath(pid_file) if pid_file else None)
        return ContainerProcess(self, list(proc.get("args") or []), result["pid"],
                                received[0] if received else None, current)

    def exec_detached(self, proc: dict, *, console_socket: str | None = None, console_fd: int | None = None,
                      pid_file: str | None = None, preserve_fds: int = 0,
                      stdio: tuple = (None, None, None)) -> int:
        """The process of an exec, started; returns its pid (this process's own work: the
        command line's, or the engine's).

        Privileged, the process is forked straight into the container's pid namespace (our
        ``pid_for_children`` set to it around the fork) and joins the other namespaces and the
        cgroup itself: it is our child, nothing sits between us.  Unprivileged (joining the
        pid namespace needs CAP_SYS_ADMIN in our own user namespace) or with a time namespace,
        an intermediate joins them and forks it (``init.exec_main``)."""
        record = self._record()
        seccomp_config = (record["config"].get("linux") or {}).get("seccomp")
        closers: list = []
        console_fd, parent, child = _channels(console_socket, console_fd, closers)
        init_pid = record["pid"]
        kinds = namespaces.different_namespaces(init_pid)
        direct = os.geteuid() == 0 and "time" not in kinds
        pid = ipid = 0
        with _no_collection():  # the child shares our memory until it execs
            try:
                if direct:
                    from pyoci_nb.runtime.init import exec_direct

                    compiled = _compiled_seccomp(self.id, seccomp_config)
                    pid = namespaces.fork_into_pid_namespace_of(init_pid) if "pid" in kinds else os.fork()
                    if pid == 0:
                        parent.sock.close()
                        exec_direct(proc, init_pid, [k for k in kinds if k != "pid"], child, preserve_fds,
                                    console_fd, compiled, stdio, record["config"].get("linux") or {})
                else:
                    from pyoci_nb.runtime.init import exec_main

                    ipid = os.fork()
                    if ipid == 0:
                        parent.sock.close()
                        exec_main(proc, init_pid, kinds, child, preserve_fds, console_fd, seccomp_config,
                                  stdio, record["config"].get("linux") or {})
                child.close()
                if record.get("cgroup"):
                    from pyoci_nb.runtime.cgroups import manager_from_state

                    manager_from_state(record["cgroup"]).apply(pid or ipid)
                parent.send({"type": "go"})
                pid = self._exec_conversation(parent, proc, record, seccomp_config, pid, ipid)
            except BaseException:
                for p in (pid, ipid):
                    _kill_quietly(p)
                    if p:
                        try:
                            os.waitpid(p, 0)
                        except ChildProcessError:
                            pass
                raise
            finally:
                for closer in closers:
                    closer.close()
                parent.close()
        if pid_file:
            _write_file_atomic(os.path.abspath(pid_file), str(pid))
        return pid

    def _exec_conversation(self, parent, proc, record, seccomp_config, pid, ipid) -> int:
        """Answer the exec'd process (or its intermediate) until its channel closes on execve;
        returns the process's pid."""
        while True:
            message, fds = parent.receive()
            if message is None:
                break
            kind = message.get("type")
            if kind == "pid":
                pid = message["pid"]
                os.waitpid(ipid, 0)
            elif kind == "seccomp-listener":
                # as runc: the agent gets a listener for the exec'd process too
                from pyoci_nb.runtime import seccomp

                try:
                    seccomp.send_listener(seccomp_config["listenerPath"], fds[0], public_state(record, "running"),
                                          seccomp_config.get("listenerMetadata", ""), pid=pid or None)
                finally:
                    for fd in fds:
                        os.close(fd)
                parent.send({"type": "seccomp-listener-done"})
            elif kind == "warning":
                log.warning(message.get("message") or "")
            elif kind == "error":
                raise SetupError("exec failed", why=message.get("message"))
            elif kind == "exec-failed":
                raise SetupError("exec failed", why=_exec_failure(proc, message["errno"]))
        if not pid:
            raise SetupError("exec failed", why="the process exited before reporting")
        return pid


class ContainerProcess:
    """A process started in a container by ``Container.popen`` (or ``exec``), like a
    ``subprocess.Popen``: the engine that made it is its parent and hands us a pidfd, which
    becomes readable when the process exits; ``returncode`` is 128+N after signal N."""

    def __init__(self, container: "Container", args: list[str], pid: int, pidfd: int | None, engine):
        self.container = container
        self.args = args
        self.pid = pid
        self.returncode: int | None = None
        self._pidfd = pidfd
        self._engine = engine

    def __repr__(self) -> str:
        return f"<ContainerProcess pid={self.pid} args={self.args!r} returncode={self.returncode!r}>"

    def fileno(self) -> int | None:
        """The pidfd (readable once the process has exited), for ``select``; None if it had
        exited before we could hold it."""
        return self._pidfd

    def poll(self) -> int | None:
        """The exit status if the process has exited, else None."""
        if self.returncode is None and (self._pidfd is None or wait_readable(self._pidfd, 0)):
            self._collect()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the exit; TimeoutError after ``timeout`` seconds."""
        if self.returncode is None:
            if self._pidfd is not None and not wait_readable(self._pidfd, timeout):
                raise TimeoutError(f"process {self.pid} of container {self.container.id!r} still "
                                   f"running after {timeout}s")
            self._collect()
        assert self.returncode is not None
        return self.returncode

    def _collect(self) -> None:
        status, _ = self._engine.call("status", pid=self.pid)
        self.returncode = -1 if status is None else status
        self._close()

    def send_signal(self, sig: int | str) -> None:
        """Send a signal to the process (nothing once it has exited)."""
        if self.returncode is not None or self._pidfd is None:
            return
        import signal

        try:
            signal.pidfd_send_signal(self._pidfd, parse_signal(sig))
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL."""
        self.send_signal(9)

    def _close(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None

    def __del__(self):
        self._close()


def wait_readable(fd: int, timeout: float | None) -> bool:
    """Wait until ``fd`` is readable (a pidfd: its process exited); False after ``timeout``."""
    import select

    poller = select.poll()
    poller.register(fd, select.POLLIN)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        if poller.poll(None if remaining is None else remaining * 1000):
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False


def _fds_for_engine(stdio: tuple, console_fd: int | None, preserve_fds: int) -> tuple[list[int], dict]:
    """The fds a request hands the engine and their roles: stdio (ours where not given), a
    console, and our fds 3 .. 3+N-1 for ``preserve_fds``."""
    fds: list[int] = []
    roles: list = []
    for number, fd in enumerate(stdio):
        if fd is None:
            fd = number
            try:
                os.fstat(fd)
            except OSError:  # ours is closed: the container gets nothing there either
                roles.append(None)
                continue
        roles.append(len(fds))
        fds.append(fd)
    layout: dict = {"stdio": roles}
    if console_fd is not None:
        layout["console"] = len(fds)
        fds.append(console_fd)
    layout["preserve"] = list(range(len(fds), len(fds) + preserve_fds))
    fds += list(range(3, 3 + preserve_fds))
    return fds, layout


_seccomp_cache: dict = {}


def _compiled_seccomp(container_id: str, seccomp_config: dict | None):
    """The container's seccomp filter compiled once for all its execs (the default profile
    takes milliseconds to compile); None without one."""
    if not seccomp_config:
        return None
    from pyoci_nb.runtime.init import _compile_seccomp

    key = (container_id, jsonio.dumps(seccomp_config))
    if key not in _seccomp_cache:
        if len(_seccomp_cache) > 64:
            _seccomp_cache.clear()
        _seccomp_cache[key] = _compile_seccomp(seccomp_config)
    return _seccomp_cache[key]


def _waitpid_retry(pid: int) -> tuple[int, int]:
    while True:
        try:
            return os.waitpid(pid, 0)
        except InterruptedError:
            continue


def build_exec_process(config: dict, process_config: dict | None, args, env, cwd, user, tty,
                       additional_gids=None, add_capabilities=None, no_new_privileges=False) -> dict:
    """The process object of an exec: ``process_config`` (a process.json) as given, else the
    container's process with args/env/cwd/user/terminal replaced (runc's exec flags:
    ``--additional-gids``, ``--cap`` adds to the bounding, effective and permitted sets,
    ``--no-new-privs``)."""
    if process_config is not None:
        proc = dict(process_config)
    else:
        import copy

        proc = copy.deepcopy(config.get("process") or {})
        proc["args"] = list(args or [])
        proc["terminal"] = bool(tty)
        proc.pop("consoleSize", None)
    if env:
        items = [f"{k}={v}" for k, v in env.items()] if isinstance(env, dict) else list(env)
        merged = process.env_dict(proc)
        for item in items:
            key, _, value = item.partition("=")
            merged[key] = value
        proc["env"] = [f"{k}={v}" for k, v in merged.items()]
    if cwd:
        proc["cwd"] = cwd
    if user:
        uid, _, gid = str(user).partition(":")
        try:
            proc["user"] = dict(proc.get("user") or {}, uid=int(uid), gid=int(gid or 0))
        except ValueError:
            raise ConfigError(f"user {user!r} is not UID[:GID]", where="--user",
                              hint="numeric ids only, e.g. 1000:1000") from None
    if additional_gids:
        proc["user"] = dict(proc.get("user") or {}, additionalGids=list(additional_gids))
    if add_capabilities:
        caps = {k: list(v) for k, v in (proc.get("capabilities") or {}).items()}
        for name in add_capabilities:
            name = name.upper() if name.upper().startswith("CAP_") else "CAP_" + name.upper()
            for set_name in ("bounding", "effective", "permitted"):
                if name not in caps.setdefault(set_name, []):
                    caps[set_name].append(name)
        proc["capabilities"] = caps
    if no_new_privileges:
        proc["noNewPrivileges"] = True
    proc.setdefault("cwd", "/")
    return proc


def _exec_failure(proc: dict, errno: int) -> str:
    """What the trampoline's report of a failed execve means, in the words of runc."""
    name = (proc.get("args") or ["?"])[0]
    return f'exec: "{name}": {os.strerror(errno)} (errno {errno})'


def _exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def parse_signal(value: int | str) -> int:
    """A signal as runc accepts it: ``9``, ``KILL``, ``SIGKILL``, ``sigkill``."""
    import signal as signal_module

    if isinstance(value, int):
        number = value
    else:
        text = str(value).strip()
        if text.isdigit():
            number = int(text)
        else:
            name = text.upper()
            if not name.startswith("SIG"):
                name = "SIG" + name
            try:
                number = int(signal_module.Signals[name])
            except KeyError:
                raise ContainerError(f"unknown signal {value!r}", where="SIGNAL",
                                     hint="a name like TERM, SIGKILL or a number like 15") from None
    if not 0 < number < 65:
        raise ContainerError(f"invalid signal number {number}", where="SIGNAL", why="signals are 1..64")
    return number


def list_containers(root: str | None = None) -> list[Container]:
    """Every container under the state root (``/run/pyoci`` by default)."""
    root = os.path.abspath(root or default_root())
    return [Container(cid, root) for cid in list_ids(root)]


class CompletedContainer(ReprMixin):
    """What ``run`` returns, like ``subprocess.CompletedProcess``: ``args``, ``returncode``,
    ``stdout``, ``stderr`` (bytes with ``capture_output``, else None) and the container ``id``."""

    def __init__(self, args, returncode, stdout=None, stderr=None, id=None):
        self.args = args
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.id = id

    def __repr__(self) -> str:
        parts = [f"args={self.args!r}", f"returncode={self.returncode!r}"]
        if self.stdout is not None:
            parts.append(f"stdout={self.stdout!r}")
        if self.stderr is not None:
            parts.append(f"stderr={self.stderr!r}")
        return f"CompletedContainer({', '.join(parts)})"

    def check_returncode(self) -> None:
        """Raise ContainerError if the process exited non-zero (like CompletedProcess)."""
        if self.returncode:
            raise ContainerError(f"container process {self.args!r} exited with status {self.returncode}",
                                 where=f"container {self.id!r}",
                                 why=(self.stderr or b"").decode(errors="replace").strip()[-500:] or None)


def run(bundle, args: list[str] | None = None, *, id: str | None = None, root: str | None = None,
        capture_output: bool = False, input: bytes | str | None = None,
        timeout: float | None = None, check: bool = False) -> CompletedContainer:
    """Create, start, wait for and delete a container, like ``subprocess.run``.

    ``args`` replaces ``process.args`` of the bundle's config (the bundle is not modified);
    ``input`` is fed to the process's stdin; ``timeout`` kills it (SIGKILL) and raises
    ``TimeoutError``; ``check`` raises ``ContainerError`` on a non-zero status; an interrupt
    (KeyboardInterrupt) kills and deletes the container.  The container is made by this
    process's engine (``engine.py``), never by forking this process, and is removed by the
    engine if this process dies first."""
    bundle = _bundle_path(bundle)
    root = os.path.abspath(os.fspath(root)) if root is not None else None
    if args is not None and (not isinstance(args, (list, tuple)) or not all(isinstance(a, str) for a in args)):
        raise ConfigError(f"args must be a list of strings, not {args!r:.80}", where="args",
                          hint='e.g. run(bundle, ["echo", "hi"])')
    if isinstance(input, str):
        input = input.encode()
    import tempfile

    work = None
    config = load_config(bundle)
    proc = config.setdefault("process", {})
    if not isinstance(proc, dict):
        raise ConfigError("process must be an object", where="process",
                          why="config.md: process is REQUIRED when start is called")
    if args is not None or proc.get("terminal"):
        # a private bundle view: same rootfs, config with args replaced and no terminal (the
        # output is captured or inherited, never a pty: runc spec's default terminal: true
        # would otherwise need a console socket)
        if args is not None:
            proc["args"] = list(args)
        proc["terminal"] = False
        rootfs = config.get("root")
        if not isinstance(rootfs, dict) or not isinstance(rootfs.get("path"), str) or not rootfs["path"]:
            raise ConfigError("root.path is missing", where="root.path",
                              why="config.md (Linux): root is REQUIRED", hint='e.g. {"path": "rootfs"}')
        rootfs["path"] = os.path.join(bundle, rootfs["path"])
        work = tempfile.mkdtemp(prefix="pyoci-run-")
        with open(os.path.join(work, "config.json"), "w") as f:
            f.write(jsonio.dumps(config))
        bundle_for_create = work
    else:
        bundle_for_create = bundle
    pipes = []
    stdin_fd = stdout_fd = stderr_fd = None
    try:
        stdin_r = stdin_w = None
        if input is not None:
            stdin_r, stdin_w = os.pipe()
            pipes += [stdin_r, stdin_w]
            stdin_fd = stdin_r
        else:
            stdin_fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            pipes.append(stdin_fd)
        out_r = err_r = None
        if capture_output:
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            pipes += [out_r, out_w, err_r, err_w]
            stdout_fd, stderr_fd = out_w, err_w
        container = Container.create(bundle_for_create, id=id, root=root, stdin=stdin_fd,
                                     stdout=stdout_fd, stderr=stderr_fd, start=True, remove_on_exit=True,
                                     cleanup_paths=[work] if work else None)
        try:
            for fd in (stdin_fd, stdout_fd, stderr_fd):
                if fd is not None:
                    os.close(fd)
                    pipes.remove(fd)
            stdout, stderr = _communicate(container, stdin_w, input, out_r, err_r, timeout, pipes)
            code = container.wait()
        finally:
            container.delete(force=True)
        result_args = list(args) if args is not None else config["process"]["args"]
        result = CompletedContainer(result_args, code, stdout, stderr, id=container.id)
    finally:
        for fd in pipes:
            try:
                os.close(fd)
            except OSError:
                pass
        if work:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    if check:
        result.check_returncode()
    return result


def _communicate(container: Container, stdin_w, input, out_r, err_r, timeout, pipes):
    """Feed ``input`` and collect stdout/stderr until both close (or the timeout kills it)."""
    import select

    deadline = None if timeout is None else time.monotonic() + timeout
    chunks = {out_r: [], err_r: []}
    readers = [fd for fd in (out_r, err_r) if fd is not None]
    writers = [stdin_w] if stdin_w is not None else []
    pending = input or b""
    if stdin_w is not None and not pending:
        os.close(stdin_w)
        pipes.remove(stdin_w)
        writers = []
    while readers or writers:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            break
        ready_r, ready_w, _ = select.select(readers, writers, [], remaining if remaining is not None else 1.0)
        for fd in ready_r:
            data = os.read(fd, 65536)
            if data:
                chunks[fd].append(data)
            else:
                readers.remove(fd)
        for fd in ready_w:
            try:
                written = os.write(fd, pending[:65536])
                pending = pending[written:]
            except BrokenPipeError:
                pending = b""
            if not pending:
                os.close(fd)
                pipes.remove(fd)
                writers.remove(fd)
    if deadline is not None:
        try:
            container.wait(timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            container.kill("SIGKILL")
            container.wait()
            raise TimeoutError(f"container {container.id!r} timed out after {timeout}s") from None
    stdout = b"".join(chunks[out_r]) if out_r is not None else None
    stderr = b"".join(chunks[err_r]) if err_r is not None else None
    return stdout, stderr
