"""The thin ctypes layer over libc: the system calls Python 3.11's ``os`` module lacks.

Every function raises ``OSError(errno, strerror, path)`` on failure, exactly like ``os.*``, so
callers (and tests) see the kernel's answer unchanged.  Nothing here decides policy: the
runtime spec's rules live in ``namespaces.py``, ``mounts.py`` and ``process.py``.
Standard library only (CLI fast path); ctypes and libc are loaded on first use, so commands
that make no system call of their own (state, kill, delete, list) never import ctypes.
"""

from __future__ import annotations

import os
import sys

# --- constants from <sched.h>, <sys/mount.h>, <linux/prctl.h>, <linux/capability.h> --------
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_POSIXACL = 1 << 16
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_I_VERSION = 1 << 23
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MNT_DETACH = 0x2
UMOUNT_NOFOLLOW = 0x8

# mount_setattr(2) (recursive mount options: rro, rnosuid, ...)
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_NOSYMFOLLOW = 0x200000
AT_RECURSIVE = 0x8000
AT_FDCWD = -100

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

NS_GET_NSTYPE = 0xB703
KEYCTL_JOIN_SESSION_KEYRING = 1
TIOCSCTTY = 0x540E
TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431
TIOCSWINSZ = 0x5414

_LINUX_CAPABILITY_VERSION_3 = 0x20080522

CLOSE_RANGE_CLOEXEC = 1 << 2

# x86_64 / aarch64 syscall numbers for calls glibc 2.36 has no wrapper for
_SYSCALLS = {
    "x86_64": {"pivot_root": 155, "capget": 125, "capset": 126, "keyctl": 250, "mount_setattr": 442,
               "openat2": 437, "open_tree": 428, "move_mount": 429, "close_range": 436,
               "sched_setattr": 314, "ioprio_set": 251, "set_mempolicy": 238, "clone": 56},
    "aarch64": {"pivot_root": 41, "capget": 90, "capset": 91, "keyctl": 219, "mount_setattr": 442,
                "openat2": 437, "open_tree": 428, "move_mount": 429, "close_range": 436,
                "sched_setattr": 274, "ioprio_set": 30, "set_mempolicy": 237, "clone": 220},
}

#: this machine's table of ``_SYSCALLS`` (looked up once: ``os.uname().machine`` says "i686"
#: once ``linux.personality`` LINUX32 is applied, just before the container's execve)
_machine_syscalls: dict | None = None

_libc = None


def libc():
    """libc, loaded once with errno capture."""
    global _libc
    if _libc is None:
        import ctypes

        _libc = ctypes.CDLL("libc.so.6", use_errno=True)
        _libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                                ctypes.c_ulong, ctypes.c_char_p)
        _libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
        _libc.syscall.restype = ctypes.c_long
        _libc.prctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                                ctypes.c_ulong)
    return _libc


def _syscall_number(name: str) -> int:
    global _machine_syscalls
    if _machine_syscalls is None:
        _machine_syscalls = _SYSCALLS.get(os.uname().machine, {})
    try:
        return _machine_syscalls[name]
    except KeyError:
        raise OSError(38, f"{name}: no syscall number known for {os.uname().machine}") from None


def _check(result: int, what: str, path: str | None = None) -> int:
    if result < 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {errno_text(err)}", path)
    return result


def errno_text(err: int) -> str:
    """``EPERM (Operation not permitted)``: the symbol engines and people search for, and its text."""
    import errno

    return f"{errno.errorcode.get(err, str(err))} ({os.strerror(err)})"


class Step:
    """``with Step('mounting "proc" to rootfs at "/proc"'):`` turns an OSError raised inside
    into a SetupError whose message names the step, the system call and the errno:
    ``mounting "proc" to rootfs at "/proc": mount: EPERM (Operation not permitted)``."""

    def __init__(self, what: str):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if isinstance(exc, OSError) and not hasattr(exc, "step"):
            from pyoci_nb.errors import SetupError

            text = exc.strerror or str(exc)
            if exc.errno and ":" not in text:
                text = f"{errno_text(exc.errno)}"
            if exc.filename and isinstance(exc.filename, str) and exc.filename not in self.what:
                text = f"{text} ({exc.filename})" if ":" in text else f"{exc.filename}: {text}"
            error = SetupError(self.what, why=text)
            error.errno = exc.errno
            error.step = self.what
            raise error from exc
        return False


def _b(value: str | bytes | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return os.fsencode(value)


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    """mount(2)."""
    _check(libc().mount(_b(source), _b(target), _b(fstype), flags, _b(data)), "mount", target)


def umount2(target: str, flags: int = 0) -> None:
    """umount2(2)."""
    _check(libc().umount2(_b(target), flags), "umount2", target)


def mount_setattr(path: str | int, attr_set: int, attr_clr: int, recursive: bool = True,
                  propagation: int = 0, userns_fd: int = 0) -> None:
    """mount_setattr(2) on ``path`` -- or, given an int, on the mount that file descriptor
    refers to (AT_EMPTY_PATH) -- and every mount below it when ``recursive``.
    ``propagation``: one of MS_PRIVATE, MS_SLAVE, MS_SHARED, MS_UNBINDABLE (0: unchanged);
    ``userns_fd``: the user namespace of MOUNT_ATTR_IDMAP."""
    import ctypes

    class MountAttr(ctypes.Structure):
        _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                    ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]

    attr = MountAttr(attr_set, attr_clr, propagation, userns_fd)
    flags = AT_RECURSIVE if recursive else 0
    if isinstance(path, int):
        dirfd, name, flags, shown = path, b"", flags | AT_EMPTY_PATH, f"fd {path}"
    else:
        dirfd, name, shown = AT_FDCWD, os.fsencode(path), path
    _check(libc().syscall(_syscall_number("mount_setattr"), dirfd, name, flags,
                          ctypes.byref(attr), ctypes.sizeof(attr)), "mount_setattr", shown)


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2)."""
    _check(libc().syscall(_syscall_number("pivot_root"), _b(new_root), _b(put_old)),
           "pivot_root", new_root)


def unshare(flags: int) -> None:
    """unshare(2)."""
    _check(libc().unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    """setns(2) with an open namespace file descriptor."""
    _check(libc().setns(fd, nstype), "setns")


def sethostname(name: str) -> None:
    """sethostname(2)."""
    data = name.encode()
    _check(libc().sethostname(data, len(data)), "sethostname")


def setdomainname(name: str) -> None:
    """setdomainname(2)."""
    data = name.encode()
    _check(libc().setdomainname(data, len(data)), "setdomainname")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2)."""
    return _check(libc().prctl(option, arg2, arg3, arg4, arg5), "prctl")


def drop_bounding_set(keep: int) -> None:
    """PR_CAPBSET_DROP of every capability not in the mask ``keep`` (one prctl per
    capability, with the libc function looked up once: init's longest loop)."""
    call = libc().prctl
    for number in range(last_capability() + 1):
        if not keep & (1 << number):
            _check(call(PR_CAPBSET_DROP, number, 0, 0, 0), "prctl(PR_CAPBSET_DROP)")


def keyctl_join_session_keyring(name: str | None) -> int:
    """keyctl(KEYCTL_JOIN_SESSION_KEYRING, name): a fresh session keyring for the container."""
    return _check(libc().syscall(_syscall_number("keyctl"), KEYCTL_JOIN_SESSION_KEYRING,
                                 _b(name)), "keyctl")


_cap_types = None


def _cap_structs():
    """(header, data[2]) ctypes types of capget/capset (built once, on first use)."""
    global _cap_types
    if _cap_types is None:
        _cap_types = _build_cap_structs()
    return _cap_types


def _build_cap_structs():
    import ctypes

    class CapHeader(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class CapData(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    return CapHeader, CapData * 2


def capget(pid: int = 0) -> tuple[int, int, int]:
    """capget(2): (effective, permitted, inheritable) as 64-bit masks."""
    import ctypes

    header_type, data_type = _cap_structs()
    header = header_type(_LINUX_CAPABILITY_VERSION_3, pid)
    data = data_type()
    _check(libc().syscall(_syscall_number("capget"), ctypes.byref(header), data), "capget")
    return tuple(data[0].__getattribute__(f) | (data[1].__getattribute__(f) << 32)
                 for f in ("effective", "permitted", "inheritable"))  # type: ignore[return-value]


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2) for the calling thread; masks are 64-bit (capability n is bit n)."""
    import ctypes

    header_type, data_type = _cap_structs()
    header = header_type(_LINUX_CAPABILITY_VERSION_3, 0)
    data = data_type()
    for i in (0, 1):
        data[i].effective = (effective >> (32 * i)) & 0xFFFFFFFF
        data[i].permitted = (permitted >> (32 * i)) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> (32 * i)) & 0xFFFFFFFF
    _check(libc().syscall(_syscall_number("capset"), ctypes.byref(header), data), "capset")


def read_file(path: str) -> bytes:
    """A whole file with raw reads: ``open()`` adds an fstat, an ioctl and an lseek to each of
    the dozens of /proc, /sys and state files a container start reads."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return read_fd(fd)
    finally:
        os.close(fd)


def read_fd(fd: int) -> bytes:
    """Everything left to read from ``fd``, with raw reads."""
    chunks: list[bytes] = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


_last_capability: int | None = None


def last_capability() -> int:
    """The highest capability number the running kernel knows (read once: it is fixed for
    the kernel's lifetime, and init asks for it many times after pivot_root)."""
    global _last_capability
    if _last_capability is None:
        try:
            _last_capability = int(read_file("/proc/sys/kernel/cap_last_cap"))
        except OSError:
            return 40
    return _last_capability


def set_dumpable(enabled: bool) -> None:
    """PR_SET_DUMPABLE: a non-dumpable process's /proc/PID/{exe,environ,fd,mem,...} are closed to
    everyone without CAP_SYS_PTRACE (ptrace_may_access), also to the container's root."""
    prctl(PR_SET_DUMPABLE, 1 if enabled else 0)


CLONE_PARENT = 0x00008000


def fork_sibling() -> int:
    """fork(), except that the child's parent is our parent (clone(2) ``CLONE_PARENT``): it is
    reaped by, and its exit reported to, our parent.  Returns 0 in the child, as fork does.
    Only for a single-threaded process whose child goes on to execve: no fork handlers run
    (Python's included), which a single thread does not need."""
    import ctypes
    import signal

    pid = libc().syscall(_syscall_number("clone"), ctypes.c_ulong(CLONE_PARENT | signal.SIGCHLD),
                         ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))
    _check(pid, "clone")
    return pid


def close_range(first: int, last: int = 0xFFFFFFFF, cloexec: bool = False) -> None:
    """close_range(2): close every fd from ``first`` to ``last`` (with ``cloexec``: mark them
    close-on-exec instead); before Linux 5.9 (5.11 for ``cloexec``) each fd in /proc/self/fd."""
    if first > last:
        return
    try:
        _check(libc().syscall(_syscall_number("close_range"), first, last,
                              CLOSE_RANGE_CLOEXEC if cloexec else 0), "close_range")
        return
    except OSError as exc:
        if exc.errno not in (22, 38):  # EINVAL/ENOSYS: an older kernel
            raise
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if first <= fd <= last:
            try:
                if cloexec:
                    os.set_inheritable(fd, False)
                else:
                    os.close(fd)
            except OSError:
                pass  # the fd of the listing itself, closed meanwhile


def set_child_subreaper(enabled: bool = True) -> None:
    """PR_SET_CHILD_SUBREAPER: orphaned descendants (a container's init) are reparented to us."""
    prctl(PR_SET_CHILD_SUBREAPER, 1 if enabled else 0)


def namespace_type(fd: int) -> int:
    """ioctl(NS_GET_NSTYPE): the CLONE_NEW* flag of the namespace ``fd`` refers to."""
    import fcntl

    return fcntl.ioctl(fd, NS_GET_NSTYPE)


class ProcStat:
    """What the runtime reads of /proc/PID/stat (proc(5)): ``state`` (R, S, Z ...), ``ppid`` and
    ``start_time`` (field 22, clock ticks since boot).  The one parser of that file: the
    command name in parentheses may itself hold spaces and parentheses, so fields are counted
    from the last ``)``."""

    __slots__ = ("state", "ppid", "start_time")

    def __init__(self, state: str, ppid: int, start_time: int):
        self.state, self.ppid, self.start_time = state, ppid, start_time

    @property
    def running(self) -> bool:
        """Not yet exited (a zombie, Z, or a dead task, X, has finished running)."""
        return self.state not in ("Z", "X")


def proc_stat(pid: int | str) -> ProcStat | None:
    """/proc/PID/stat of ``pid``, or None if there is no such process."""
    try:
        data = read_file(f"/proc/{pid}/stat")
        fields = data[data.rfind(b")") + 2:].split()
        return ProcStat(fields[0].decode(), int(fields[1]), int(fields[19]))
    except (OSError, IndexError, ValueError):
        return None


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks since boot), None if gone or
    finished (a zombie).

    Stored in state.json so a recycled pid is never mistaken for the container's init."""
    stat = proc_stat(pid)
    return stat.start_time if stat is not None and stat.running else None


# --- file-descriptor based path resolution and mounting ------------------------------------
# openat2(2) (Linux 5.6), open_tree(2) and move_mount(2) (Linux 5.2), statx(2) and fstatfs(2):
# what resolving and mounting through file descriptors needs (mounts.py, inroot.py), and
# renameat2(2) (the RENAME_EXCHANGE race of the security tests).
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x04
MOVE_MOUNT_T_EMPTY_PATH = 0x40
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
STATX_MNT_ID = 0x1000
STATX_ATTR_MOUNT_ROOT = 0x2000
PROC_SUPER_MAGIC = 0x9FA0
PROC_ROOT_INO = 1
TMPFS_MAGIC = 0x01021994
OVERLAYFS_SUPER_MAGIC = 0x794C7630


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2): open ``path`` relative to ``dirfd`` under the RESOLVE_* restrictions
    (ENOSYS before Linux 5.6).  Returns the new fd."""
    import ctypes

    how = (ctypes.c_uint64 * 3)(flags, mode, resolve)
    return _check(libc().syscall(_syscall_number("openat2"), ctypes.c_int(dirfd), _b(path),
                                 ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how))), "openat2", path)


def open_tree(dirfd: int, path: str = "", flags: int = OPEN_TREE_CLONE) -> int:
    """open_tree(2): with OPEN_TREE_CLONE a detached copy of the mount at ``dirfd``/``path``
    (a bind mount not attached anywhere yet; AT_RECURSIVE: with the mounts below it).
    An empty ``path`` means ``dirfd`` itself.  Returns the mount's fd (close-on-exec)."""
    if not path:
        flags |= AT_EMPTY_PATH
    return _check(libc().syscall(_syscall_number("open_tree"), dirfd, _b(path),
                                 flags | OPEN_TREE_CLOEXEC), "open_tree", path or f"fd {dirfd}")


def move_mount(from_fd: int, to_fd: int) -> None:
    """move_mount(2) of the mount ``from_fd`` (from open_tree) onto the file or directory the
    file descriptor ``to_fd`` refers to: no path is looked up."""
    _check(libc().syscall(_syscall_number("move_mount"), from_fd, b"", to_fd, b"",
                          MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH), "move_mount", f"fd {to_fd}")


def renameat2(olddirfd: int, old: str, newdirfd: int, new: str, flags: int = 0) -> None:
    """renameat2(2) (RENAME_EXCHANGE swaps two names atomically)."""
    _check(libc().renameat2(olddirfd, _b(old), newdirfd, _b(new), flags), "renameat2", old)


def mount_id(fd: int) -> int:
    """The id of the mount the file descriptor ``fd`` is on (statx STATX_MNT_ID, Linux 5.8;
    /proc/self/fdinfo before that)."""
    import ctypes

    buf = ctypes.create_string_buffer(256)
    if libc().statx(fd, b"", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, buf) == 0:
        mask = int.from_bytes(buf.raw[0:4], sys.byteorder)
        if mask & STATX_MNT_ID:
            return int.from_bytes(buf.raw[144:152], sys.byteorder)
    for line in read_file(f"/proc/self/fdinfo/{fd}").splitlines():
        if line.startswith(b"mnt_id:"):
            return int(line.split()[1])
    raise OSError(38, "mount id: neither statx nor fdinfo tells it")


def filesystem_type(fd: int) -> int:
    """fstatfs(2) ``f_type`` of the filesystem ``fd`` is on (PROC_SUPER_MAGIC, TMPFS_MAGIC...)."""
    import ctypes

    buf = ctypes.create_string_buffer(128)  # struct statfs: f_type is the first long
    _check(libc().fstatfs(fd, buf), "fstatfs", f"fd {fd}")
    return int.from_bytes(buf.raw[0:ctypes.sizeof(ctypes.c_long)], sys.byteorder, signed=True)


# --- id-mapped mounts and the rootfs bind of a container without a mount namespace ---------
# mount_setattr(2) MOUNT_ATTR_IDMAP (Linux 5.12) and the unique mount ids of statx(2)
# (STATX_MNT_ID_UNIQUE, Linux 6.8: never reused, unlike the ids of /proc/self/mountinfo).
MOUNT_ATTR_IDMAP = 0x100000
STATX_MNT_ID_UNIQUE = 0x4000


def mount_unique_id(fd: int) -> int | None:
    """The unique (never reused) id of the mount the file descriptor ``fd`` is on, or None
    before Linux 6.8."""
    import ctypes

    buf = ctypes.create_string_buffer(256)
    if libc().statx(fd, b"", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID_UNIQUE, buf) == 0:
        mask = int.from_bytes(buf.raw[0:4], sys.byteorder)
        if mask & STATX_MNT_ID_UNIQUE:
            return int.from_bytes(buf.raw[144:152], sys.byteorder)
    return None


def is_mount_root(fd: int) -> bool:
    """Whether the file descriptor ``fd`` refers to the root of a mount (statx
    STATX_ATTR_MOUNT_ROOT, Linux 5.8; else: its mount differs from its parent's)."""
    import ctypes

    buf = ctypes.create_string_buffer(256)
    if libc().statx(fd, b"", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, 0, buf) == 0:
        attributes_mask = int.from_bytes(buf.raw[0x38:0x40], sys.byteorder)
        if attributes_mask & STATX_ATTR_MOUNT_ROOT:
            return bool(int.from_bytes(buf.raw[0x08:0x10], sys.byteorder) & STATX_ATTR_MOUNT_ROOT)
    parent = os.open("..", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
    try:
        return mount_id(parent) != mount_id(fd) or os.fstat(parent).st_ino == os.fstat(fd).st_ino
    finally:
        os.close(parent)


# --- the process's scheduling, I/O priority, NUMA memory policy and execution domain ---------
# (config.md process.scheduler and process.ioPriority, config-linux.md linux.memoryPolicy and
# linux.personality): what init and exec apply to themselves before the container's execve.
SCHED_ATTR_SIZE_VER0 = 48
IOPRIO_WHO_PROCESS = 1
IOPRIO_CLASS_SHIFT = 13


def sched_setattr(policy: int, flags: int = 0, nice: int = 0, priority: int = 0, runtime: int = 0,
                  deadline: int = 0, period: int = 0) -> None:
    """sched_setattr(2) of the calling thread (struct sched_attr, SCHED_ATTR_SIZE_VER0: the
    fields config.md ``process.scheduler`` has)."""
    import struct

    attr = struct.pack("=IIQiIQQQ", SCHED_ATTR_SIZE_VER0, policy, flags, nice, priority,
                       runtime, deadline, period)
    _check(libc().syscall(_syscall_number("sched_setattr"), 0, attr, 0), "sched_setattr")


def ioprio_set(io_class: int, level: int) -> None:
    """ioprio_set(IOPRIO_WHO_PROCESS, 0, IOPRIO_PRIO_VALUE(class, level)) for the calling thread."""
    _check(libc().syscall(_syscall_number("ioprio_set"), IOPRIO_WHO_PROCESS, 0,
                          (io_class << IOPRIO_CLASS_SHIFT) | level), "ioprio_set")


def set_mempolicy(mode: int, nodes: list[int]) -> None:
    """set_mempolicy(2): ``mode`` (MPOL_* | MPOL_F_* flags) over the NUMA ``nodes`` (a bitmask
    of unsigned longs; maxnode is one more than the bits passed, as the kernel expects)."""
    import ctypes

    bits = 8 * ctypes.sizeof(ctypes.c_ulong)
    words = (max(nodes) // bits + 1) if nodes else 1
    mask = (ctypes.c_ulong * words)()
    for node in nodes:
        mask[node // bits] |= 1 << (node % bits)
    _check(libc().syscall(_syscall_number("set_mempolicy"), ctypes.c_int(mode),
                          mask if nodes else None, ctypes.c_ulong(words * bits + 1 if nodes else 0)),
           "set_mempolicy")


def personality(persona: int) -> None:
    """personality(2): set the execution domain (PER_LINUX32 makes ``uname -m`` say i686)."""
    import ctypes

    call = libc().personality
    call.argtypes = (ctypes.c_ulong,)
    call.restype = ctypes.c_int  # the previous persona, or -1
    _check(call(persona), "personality")
