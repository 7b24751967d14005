"""Linux namespaces (config-linux.md "Namespaces", "User namespace mappings", "Offset for Time Namespace").

``linux.namespaces`` lists namespaces by ``type`` (pid, network, mount, ipc, uts, user, cgroup,
time).  Without ``path`` the runtime creates a new one; with ``path`` the container joins that
namespace, and the runtime MUST generate an error if the path is not a namespace of that type.
A new user namespace gets ``uidMappings``/``gidMappings`` written by the (outside) runtime.
"""

from __future__ import annotations

import os

from pyoci_nb.errors import ConfigError, SetupError
from pyoci_nb.runtime import syscalls as sc
from pyoci_nb.spec.namespace_types import NAMESPACE_TYPES

_KERNEL_NAMES = {
    "user": (sc.CLONE_NEWUSER, "user"),
    "mount": (sc.CLONE_NEWNS, "mnt"),
    "uts": (sc.CLONE_NEWUTS, "uts"),
    "ipc": (sc.CLONE_NEWIPC, "ipc"),
    "network": (sc.CLONE_NEWNET, "net"),
    "pid": (sc.CLONE_NEWPID, "pid"),
    "cgroup": (sc.CLONE_NEWCGROUP, "cgroup"),
    "time": (sc.CLONE_NEWTIME, "time"),
}
#: spec type (``spec.namespace_types``, the one list) -> (CLONE_NEW* flag, /proc/PID/ns/ name)
NAMESPACES: dict[str, tuple[int, str]] = {kind: _KERNEL_NAMES[kind] for kind in NAMESPACE_TYPES}
#: the order namespaces are joined in: user first (it grants the rights for the others), mount
#: last (after it the host's /proc/PID/ns paths may be unreachable).
JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount")


def parse(config: dict) -> tuple[dict[str, str], int]:
    """Check ``linux.namespaces``; returns ({type: path} for joined ones, flags for new ones)."""
    joined: dict[str, str] = {}
    flags = 0
    seen = set()
    for i, ns in enumerate((config.get("linux") or {}).get("namespaces") or []):
        where = f"linux.namespaces[{i}]"
        kind = ns.get("type")
        if kind not in NAMESPACES:
            raise ConfigError(f"unknown namespace type {kind!r}", where=f"{where}.type",
                              why="the spec knows " + ", ".join(NAMESPACES))
        if kind in seen:
            raise ConfigError(f"namespace {kind!r} given twice", where=where,
                              why="each namespace type may appear only once")
        seen.add(kind)
        path = ns.get("path")
        if path:
            check_namespace_path(path, kind, f"{where}.path")
            joined[kind] = path
        else:
            if kind == "time" and not os.path.exists("/proc/self/ns/time"):
                raise ConfigError("time namespaces are not supported by this kernel",
                                  where=where, why="/proc/self/ns/time is missing (Linux >= 5.6)")
            flags |= NAMESPACES[kind][0]
    return joined, flags


def check_namespace_path(path: str, kind: str, where: str) -> None:
    """Refuse a ``path`` that is not a namespace of type ``kind``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO must not hang us
    except OSError as exc:
        raise ConfigError(f"cannot open namespace path {path!r}", where=where,
                          why=exc.strerror) from None
    try:
        actual = sc.namespace_type(fd)
    except OSError:
        raise ConfigError(f"{path!r} is not a namespace", where=where,
                          why=f"a {kind} namespace path must be a /proc/PID/ns/* file or a bind mount of one") from None
    finally:
        os.close(fd)
    if actual != NAMESPACES[kind][0]:
        names = {flag: name for name, (flag, _) in NAMESPACES.items()}
        raise ConfigError(f"{path!r} is a {names.get(actual, hex(actual))} namespace, not a {kind} namespace",
                          where=where, why="the namespace at path must be of the given type")


def join(joined: dict[str, str]) -> None:
    """setns() into every namespace given by path, user first, mount last."""
    for kind in JOIN_ORDER:
        path = joined.get(kind)
        if not path:
            continue
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            sc.setns(fd, NAMESPACES[kind][0])
        except OSError as exc:
            raise OSError(exc.errno, f"joining {kind} namespace: {exc.strerror}", path) from None
        finally:
            os.close(fd)


def forks_init_directly(joined: dict[str, str], flags: int) -> bool:
    """Can the runtime fork the container's init itself, without an intermediate process?

    A new pid namespace, like a new time namespace, takes effect only for the children of the
    process that unshares it, which is why runtimes fork twice (runc's stage-1/stage-2, pyoci's
    intermediate).  Without a user or time namespace, and without joining a pid one, the runtime
    can instead create the pid namespace for its next child and step back out of it
    (``fork_into_new_pid_namespace``); init then joins and unshares the other namespaces
    itself.  A user namespace needs the intermediate: it must exist (with its id maps written
    by the runtime) before the namespaces it owns are created."""
    if flags & (sc.CLONE_NEWUSER | sc.CLONE_NEWTIME):
        return False
    return not {"user", "pid", "time"} & set(joined)


def fork_into_new_pid_namespace() -> int:
    """``os.fork()`` whose child is PID 1 of a new pid namespace: unshare(CLONE_NEWPID) makes
    it the namespace of our next child, and setns back to the namespace our children went to
    before (normally our own) undoes that for every child after it.  The way back is tried
    first, so this process never stays stuck forking into the container's namespace."""
    try:
        own = os.open("/proc/self/ns/pid_for_children", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:  # Linux < 4.12, or a namespace of ours with no process yet
        own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        sc.setns(own, sc.CLONE_NEWPID)
        sc.unshare(sc.CLONE_NEWPID)
        pid = -1
        try:
            pid = os.fork()
        finally:
            if pid != 0:  # the parent, also when fork failed
                sc.setns(own, sc.CLONE_NEWPID)
    finally:
        os.close(own)
    return pid


def fork_into_pid_namespace_of(pid: int) -> int:
    """``os.fork()`` whose child is in the pid namespace of process ``pid`` (exec's process,
    without an intermediate): setns to it for our children, fork, and setns back, as
    ``fork_into_new_pid_namespace`` does.  Needs CAP_SYS_ADMIN in our own user namespace."""
    target = os.open(f"/proc/{pid}/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        own = os.open("/proc/self/ns/pid_for_children", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        sc.setns(own, sc.CLONE_NEWPID)
        try:
            sc.setns(target, sc.CLONE_NEWPID)
        except OSError as exc:
            raise OSError(exc.errno, f"joining the pid namespace of {pid}: {exc.strerror}") from None
        child = -1
        try:
            child = os.fork()
        finally:
            if child != 0:
                sc.setns(own, sc.CLONE_NEWPID)
    finally:
        os.close(own)
        os.close(target)
    return child


def join_process(pid: int, kinds: list[str]) -> None:
    """setns() into the namespaces of process ``pid`` (``exec``); opens all before joining any."""
    fds = []
    try:
        for kind in JOIN_ORDER:
            if kind not in kinds:
                continue
            path = f"/proc/{pid}/ns/{NAMESPACES[kind][1]}"
            fds.append((kind, path, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
        for kind, path, fd in fds:
            try:
                sc.setns(fd, NAMESPACES[kind][0])
            except OSError as exc:
                raise OSError(exc.errno, f"joining {kind} namespace: {exc.strerror}", path) from None
    finally:
        for _, _, fd in fds:
            os.close(fd)


def different_namespaces(pid: int) -> list[str]:
    """Namespace types in which process ``pid`` differs from the calling process."""
    kinds = []
    for kind, (_, name) in NAMESPACES.items():
        try:
            if os.stat(f"/proc/{pid}/ns/{name}").st_ino != os.stat(f"/proc/self/ns/{name}").st_ino:
                kinds.append(kind)
        except FileNotFoundError:
            continue
    return kinds


def _map_text(mappings: list[dict]) -> str:
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in mappings)


def write_id_maps(pid: int, config: dict) -> None:
    """Write ``uidMappings``/``gidMappings`` for process ``pid``'s new user namespace.

    As root the maps are written directly.  An unprivileged runtime can write one mapping of its
    own ids (after ``setgroups deny``); anything else goes through newuidmap/newgidmap (shadow's
    setuid helpers, which check /etc/subuid and /etc/subgid)."""
    linux = config.get("linux") or {}
    uid_maps = linux.get("uidMappings") or []
    gid_maps = linux.get("gidMappings") or []
    privileged = os.geteuid() == 0 and _in_initial_userns()
    for kind, maps in (("uid", uid_maps), ("gid", gid_maps)):
        if not maps:
            continue
        own = os.geteuid() if kind == "uid" else os.getegid()
        single_own = len(maps) == 1 and maps[0]["hostID"] == own and maps[0]["size"] == 1
        if privileged or single_own:
            if kind == "gid" and not privileged:
                _write(f"/proc/{pid}/setgroups", "deny")
            _write(f"/proc/{pid}/{kind}_map", _map_text(maps))
            continue
        import shutil  # here: with bz2/lzma it costs every `pyoci create` ~5 ms

        helper = shutil.which(f"new{kind}map")
        if not helper:
            raise SetupError(f"cannot write {kind}_map for {len(maps)} mapping(s) without privileges",
                             where=f"linux.{kind}Mappings",
                             why=f"an unprivileged user may map only its own {kind}; ranges need new{kind}map",
                             hint="install the uidmap package and configure /etc/sub{kind}")
        import subprocess

        argv = [helper, str(pid)]
        for m in maps:
            argv += [str(m["containerID"]), str(m["hostID"]), str(m["size"])]
        done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if done.returncode != 0:
            raise SetupError(f"new{kind}map failed", where=f"linux.{kind}Mappings",
                             why=done.stdout.decode(errors="replace").strip() or f"exit status {done.returncode}",
                             hint=f"check /etc/sub{kind} for user {os.geteuid()}")


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    except OSError as exc:
        raise SetupError(f"writing {text.strip()!r} failed", where=path, why=exc.strerror) from None
    finally:
        os.close(fd)


def _in_initial_userns() -> bool:
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() == ["0", "0", "4294967295"]
    except OSError:
        return True


def write_time_offsets(config: dict) -> None:
    """``linux.timeOffsets`` into /proc/self/timens_offsets (after unshare(CLONE_NEWTIME),
    before the first process enters the new time namespace)."""
    offsets = (config.get("linux") or {}).get("timeOffsets") or {}
    lines = "".join(f"{clock} {value.get('secs', 0)} {value.get('nanosecs', 0)}\n"
                    for clock, value in offsets.items())
    if lines:
        fd = os.open("/proc/self/timens_offsets", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, lines.encode())
        finally:
            os.close(fd)


_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def bring_up_loopback() -> None:
    """Set ``lo`` up in a new network namespace, as runc does: a fresh namespace holds only a
    loopback device, and it is down until someone raises it (config-linux.md "network")."""
    import _socket  # the C module (init preloads it; `socket` is not loaded after pivot_root)
    import fcntl
    import struct

    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, request))[1]
        if not flags & _IFF_UP:
            fcntl.ioctl(sock.fileno(), _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))
    finally:
        sock.close()
