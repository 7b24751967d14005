"""What runs inside the new namespaces, from fork to execve (runtime.md "Lifecycle" steps 2-3,
config.md/config-linux.md for each step).

``create`` starts the container's *init* (PID 1 of its pid namespace) in one of two ways:

* directly (``init_direct``), when the config has no user or time namespace: the runtime forks
  init into a new pid namespace (``namespaces.fork_into_new_pid_namespace``) and init joins the
  namespaces given by path and unshares the other new ones itself;
* through an *intermediate* process (``intermediate_main``) otherwise: it joins namespaces given
  by path (user first), unshares a new user namespace (the runtime writes its id maps),
  unshares the other new namespaces (a new pid or time namespace only applies to children),
  forks init, reports init's pid and exits.

Meanwhile the runtime moves init into the container's cgroup and says ``cgroup-joined``; init
waits for that before anything that must happen inside the cgroup (a new cgroup namespace,
hooks, reporting ``ready``), so the cgroup migration overlaps with the mounts.  Init then, in
this order:

1. prepares the rootfs (propagation, rootfs bind, ``mounts``, /dev) -- ``mounts.prepare_rootfs``
   -- in its mount namespace, new or joined by path; without one, below the rootfs bind the
   runtime made in its own (``mounts.RootfsBind``)
2. asks the runtime to run ``prestart``/``createRuntime`` hooks, then runs ``createContainer``
3. pivot_root (or, with ``--no-pivot`` or without a mount namespace of its own, chroot);
   terminal (pty, /dev/console, console socket) (before: ``HOME`` from the container's
   /etc/passwd if unset, a missing ``cwd`` created)
4. masked and read-only paths, rootfs propagation, read-only root
5. hostname, domainname, sysctl, oomScoreAdj, rlimits, session keyring, a session of its own
   (the process leads its process group, as with runc), I/O priority, scheduler, memory policy
6. user, groups, capabilities (a warning for the runtime's log names those left out),
   no_new_privs, cwd, resolves args[0]
7. reports "ready"; opens the exec FIFO for writing, which blocks until ``start``
8. ``startContainer`` hooks, personality, seccomp (last), execve

These processes talk to the runtime over a SOCK_SEQPACKET socket (``Channel``): JSON messages of
any size in chunks of packets, file descriptors in SCM_RIGHTS.  A failure becomes an ``error`` message carrying the
step, so the runtime's last log line tells the whole story.  These functions never return.
"""

from __future__ import annotations

import _socket  # the C module: `socket` costs ~5 ms of imports on every create and is not needed
import gc
import os
import sys
from typing import TypeVar

from pyoci_nb.runtime import hooks, jsonio, mounts, namespaces, process, trampoline
from pyoci_nb.runtime import messages as msg
from pyoci_nb.runtime import syscalls as sc
from pyoci_nb.runtime.syscalls import Step

M = TypeVar("M", bound="msg.Message")
C = TypeVar("C", bound="Channel")


class Channel:
    """JSON messages of any size over a SOCK_SEQPACKET socket, optionally with file descriptors.

    A message is sent as one or more packets of at most ``CHUNK`` bytes (the kernel keeps
    packets whole and in order; a packet must fit the socket buffer and the receiver's
    buffer).  Each packet starts with one byte: ``+`` when more of the same message follows,
    ``.`` on its last packet.  File descriptors (SCM_RIGHTS) travel with the first packet.
    The exec trampoline (``trampoline.py``) writes one packet of its own when the program's
    execve fails, ``X`` + errno: it arrives as ``messages.ExecFailed``."""

    #: the most payload bytes in one packet (well below the default socket buffer)
    CHUNK = 32768
    #: the most file descriptors one message may carry
    MAX_FDS = 4

    def __init__(self, sock: _socket.socket):
        self.sock = sock

    @classmethod
    def pair(cls: type[C]) -> tuple[C, C]:
        """A connected pair (runtime end, child end); both ends are close-on-exec."""
        a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
        return cls(a), cls(b)

    def send(self, message: dict, fds: list[int] | None = None) -> None:
        """Send one message (and fds with SCM_RIGHTS)."""
        data = jsonio.dumps(message).encode()
        chunk = self.CHUNK
        ancillary = []
        if fds:
            rights = b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds)
            ancillary = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)]
        for start in range(0, max(len(data), 1), chunk):
            end = start + chunk
            self.sock.sendmsg([b"+" if end < len(data) else b".", data[start:end]], ancillary)
            ancillary = []

    def receive(self) -> tuple[dict | None, list[int]]:
        """The next message and any fds; (None, []) when the other side has closed."""
        parts: list[bytes] = []
        fds: list[int] = []
        while True:
            try:
                data, ancillary, flags, _ = self.sock.recvmsg(self.CHUNK + 1, _socket.CMSG_SPACE(4 * self.MAX_FDS))
            except ConnectionResetError:
                # the other side exited with a message of ours unread (init failing before it
                # read ``cgroup-joined``): the kernel says so once, before the messages it sent
                # before it closed -- its error report among them -- which are still queued
                continue
            for level, kind, payload in ancillary:
                if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                    whole = len(payload) - len(payload) % 4
                    fds += memoryview(payload[:whole]).cast("i").tolist()
            if not data:  # closed (perhaps in the middle of a message: it is lost)
                for fd in fds:
                    os.close(fd)
                return None, []
            failed = trampoline.failure(data) if not parts else None
            if failed is not None:  # the exec trampoline's report: its execve failed
                return msg.ExecFailed(errno=failed).to_wire(), fds
            if flags & _socket.MSG_TRUNC or data[:1] not in (b"+", b"."):
                for fd in fds:
                    os.close(fd)
                raise RuntimeError("protocol error: a packet that is not a message chunk "
                                   f"({len(data)} bytes, starting {data[:16]!r})")
            parts.append(data[1:])
            if data[:1] == b".":
                return jsonio.loads(b"".join(parts)), fds

    def fileno(self) -> int:
        """The socket's fd."""
        return self.sock.fileno()

    def close(self) -> None:
        """Close this end."""
        self.sock.close()


class MessageChannel(Channel):
    """A ``Channel`` between the runtime and a process it forked, carrying the typed messages
    of ``messages.py`` (every one there is, with its fields)."""

    def send(self, message: msg.Message, fds: list[int] | None = None) -> None:  # type: ignore[override]
        """Send one message (and fds with SCM_RIGHTS)."""
        super().send(message.to_wire(), fds)

    def receive(self) -> tuple[msg.Message | None, list[int]]:  # type: ignore[override]
        """The next message and any fds; (None, []) when the other side has closed."""
        data, fds = super().receive()
        if data is None:
            return None, fds
        try:
            return msg.from_wire(data), fds
        except msg.ProtocolError:
            for fd in fds:
                os.close(fd)
            raise

    def expect(self, kind: type[M]) -> M:
        """The next message, which must be a ``kind``; exits if the runtime is gone."""
        message, _ = self.receive()
        if message is None:
            os._exit(1)  # the runtime went away: nothing must be left running
        if not isinstance(message, kind):
            raise msg.ProtocolError(f"protocol error: expected {kind.KIND!r}, got {message!r}")
        return message


class InitContext:
    """What the runtime hands to the forked processes (plain data and inherited fds)."""

    def __init__(self, **fields):
        self.config: dict = fields["config"]
        self.bundle: str = fields["bundle"]
        self.rootfs: str = fields["rootfs"]
        self.joined: dict[str, str] = fields["joined"]
        self.new_namespaces: int = fields["new_namespaces"]
        self.no_pivot: bool = fields.get("no_pivot", False)
        self.no_new_keyring: bool = fields.get("no_new_keyring", False)
        self.preserve_fds: int = fields.get("preserve_fds", 0)
        self.fifo_fd: int | None = fields.get("fifo_fd")
        self.console_fd: int | None = fields.get("console_fd")
        self.container_id: str = fields["container_id"]
        #: fds to become the container's stdin, stdout, stderr (None: inherit ours)
        self.stdio: tuple = fields.get("stdio") or (None, None, None)
        #: the compiled seccomp filter (compiled by the runtime's preflight, before any
        #: namespace is joined; this fork's copy is loaded last)
        self.seccomp_filter = fields.get("seccomp_filter")
        #: the runtime's fds the container must not keep (the state lock: flock is per open file)
        self.close_fds: list[int] = list(fields.get("close_fds") or [])
        #: the cgroup directories init is being moved into (what /proc/self/cgroup will show
        #: once the runtime says ``cgroup-joined``) and the host's hierarchies, for the
        #: ``cgroup`` mount
        self.cgroups: mounts.CgroupView | None = fields.get("cgroups")
        #: has the runtime said that init is in the container's cgroup?
        self.cgroup_joined = False
        #: without a mount namespace of the container's own: the fd of the rootfs bind the
        #: runtime made in its mount namespace (``mounts.RootfsBind``)
        self.rootfs_fd: int | None = fields.get("rootfs_fd")
        #: {index in ``mounts``: detached id-mapped bind} (``mounts.prepare_idmapped_mounts``)
        self.idmapped: dict[int, int] = fields.get("idmapped") or {}

    def own_fds(self) -> set:
        """The fds of the runtime this process needs (the rest of what it inherited is closed)."""
        return {self.fifo_fd, self.console_fd, self.rootfs_fd, trampoline.prepare(),
                *self.idmapped.values()} - {None}

    def await_cgroup(self, channel: MessageChannel) -> None:
        """Wait until the runtime has moved init into the container's cgroup (once)."""
        if not self.cgroup_joined:
            channel.expect(msg.CgroupJoined)
            self.cgroup_joined = True


def _set_stdio(stdio: tuple) -> None:
    for target, fd in enumerate(stdio):
        if fd is not None and fd != target:
            os.dup2(fd, target)


def _report_error(channel: MessageChannel, exc: BaseException) -> None:
    message = str(exc) or exc.__class__.__name__
    if not hasattr(exc, "step") and not hasattr(exc, "what"):
        message = f"{exc.__class__.__name__}: {message}"
    try:
        channel.send(msg.Error(message=message, step=getattr(exc, "step", None),
                               errno=getattr(exc, "errno", None)))
    except OSError:
        sys.stderr.write(f"pyoci init: {message}\n")


def close_inherited_fds(keep: set, preserve: int) -> None:
    """Close every fd but 0-2, the ``--preserve-fds`` range and ``keep`` (what this process
    itself needs): the runtime's caller (a Jupyter kernel, the fork server, pytest) may hold
    many, none of them the container's, and the container's RLIMIT_NOFILE, set before the exec
    FIFO is opened, counts fd *numbers*: that open needs a low free one."""
    low = 3 + preserve
    for fd in sorted(k for k in keep if k is not None and k >= low):
        sc.close_range(low, fd - 1)
        low = fd + 1
    sc.close_range(low)


def _prelude(ctx: InitContext, channel: MessageChannel) -> None:
    """First steps of a freshly forked process: drop the runtime's fds, take the container's
    stdio, compile the seccomp filter while libseccomp is reachable."""
    # no garbage collection in this short-lived copy of the runtime: a full collection would
    # touch every object, copying the whole heap page by page (copy-on-write)
    gc.disable()
    # until the container's program runs, nothing of this copy of the runtime (the host's
    # interpreter as /proc/PID/exe, the host's environment, the runtime's fds) may be opened
    # through /proc by the container's processes (another container in the same pid namespace,
    # an `exec`): a non-dumpable process is closed to all without CAP_SYS_PTRACE
    sc.set_dumpable(False)
    for fd in ctx.close_fds:
        os.close(fd)
    _set_stdio(ctx.stdio)
    close_inherited_fds(ctx.own_fds() | {channel.fileno()}, ctx.preserve_fds)
    preload_modules(ctx.config)
    if ctx.seccomp_filter is None:
        ctx.seccomp_filter = _compile_seccomp((ctx.config.get("linux") or {}).get("seccomp"))


#: namespaces init unshares itself: a cgroup namespace only once init is in its cgroup
_LATE_NAMESPACES = sc.CLONE_NEWCGROUP


def init_direct(ctx: InitContext, channel: MessageChannel) -> None:
    """Init forked by the runtime straight into its new pid namespace: join the namespaces
    given by path, unshare the other new ones, then go on as init."""
    try:
        _prelude(ctx, channel)
        with Step("joining namespaces"):
            namespaces.join(ctx.joined)
        rest = ctx.new_namespaces & ~(sc.CLONE_NEWPID | _LATE_NAMESPACES)
        if rest:
            with Step("creating namespaces"):
                sc.unshare(rest)
    except BaseException as exc:
        _report_error(channel, exc)
        os._exit(1)
    init_main(ctx, channel)


def intermediate_main(ctx: InitContext, channel: MessageChannel) -> None:
    """The intermediate process: namespaces, then fork init and exit."""
    status = 1
    try:
        _prelude(ctx, channel)
        with Step("joining namespaces"):
            namespaces.join(ctx.joined)
        flags = ctx.new_namespaces
        if flags & sc.CLONE_NEWUSER:
            with Step("creating the user namespace"):
                sc.unshare(sc.CLONE_NEWUSER)
            sc.set_dumpable(True)  # /proc/PID/uid_map must belong to us for the runtime to write it
            channel.send(msg.IdMap())
            channel.expect(msg.IdMapDone)
            sc.set_dumpable(False)
            for call in (os.setresgid, os.setresuid):
                try:
                    call(0, 0, 0)
                except OSError:
                    pass  # 0 is not mapped: stay the overflow id; the process user is set later
        rest = flags & ~(sc.CLONE_NEWUSER | _LATE_NAMESPACES)
        if rest:
            with Step("creating namespaces"):
                sc.unshare(rest)
        if rest & sc.CLONE_NEWTIME:
            with Step("writing linux.timeOffsets"):
                namespaces.write_time_offsets(ctx.config)
        pid = os.fork()
        if pid == 0:
            init_main(ctx, channel)
        channel.send(msg.Pid(pid=pid))
        status = 0
    except BaseException as exc:
        _report_error(channel, exc)
    finally:
        os._exit(status)


#: the hooks that run while the container is being created, whose state comes from the runtime
_CREATE_HOOKS = ("prestart", "createRuntime", "createContainer", "startContainer")


def init_main(ctx: InitContext, channel: MessageChannel) -> None:
    """The container's init: everything up to execve (see the module docstring)."""
    ready = False
    fifo = None
    try:
        config = ctx.config
        proc = config["process"]
        linux = config.get("linux") or {}
        in_userns = bool(ctx.new_namespaces & sc.CLONE_NEWUSER) or "user" in ctx.joined
        # a mount namespace of its own, new or joined (config-linux.md: the container MUST be
        # placed in the one at ``path``, which gets the whole rootfs set-up); else the
        # runtime's, below the rootfs bind it made
        own_mount_ns = bool(ctx.new_namespaces & sc.CLONE_NEWNS) or "mount" in ctx.joined
        if not own_mount_ns and ctx.rootfs_fd is None:  # never mount on the host's "/" itself
            raise RuntimeError("no mount namespace of the container's own and no rootfs bind")
        if ctx.new_namespaces & sc.CLONE_NEWCGROUP:
            # the new cgroup namespace is rooted at the cgroup init is in when it unshares
            ctx.await_cgroup(channel)
            with Step("creating the cgroup namespace"):
                sc.unshare(sc.CLONE_NEWCGROUP)
        mounts.prepare_rootfs(config, ctx.rootfs, ctx.bundle, in_userns,
                              cgroupns=bool(ctx.new_namespaces & sc.CLONE_NEWCGROUP) or "cgroup" in ctx.joined,
                              cgroups=ctx.cgroups, bound_rootfs=None if own_mount_ns else ctx.rootfs_fd,
                              idmapped=ctx.idmapped)
        for fd in ctx.idmapped.values():
            os.close(fd)
        ctx.idmapped = {}
        seccomp_config = linux.get("seccomp")
        seccomp_filter = ctx.seccomp_filter
        state = None
        if any((config.get("hooks") or {}).get(kind) for kind in _CREATE_HOOKS):
            # the runtime runs prestart/createRuntime and hands us the state for ours (without
            # any of these hooks the round trip would only cost time)
            ctx.await_cgroup(channel)
            channel.send(msg.Hooks())
            state = channel.expect(msg.HooksDone).state
            hooks.run_hooks(config, "createContainer", state)
        _prepare_in_root(proc, ctx.rootfs)
        if own_mount_ns:
            mounts.pivot_root(ctx.rootfs, ctx.no_pivot)
        else:
            mounts.chroot_into(ctx.rootfs_fd, ctx.rootfs)
            os.close(ctx.rootfs_fd)
            ctx.rootfs_fd = None
        close_imports("pivot_root")
        pty_slave = None
        if proc.get("terminal"):
            with Step("setting up the terminal"):
                master, pty_slave, slave_name = _open_console(proc)
                mounts.bind_console(pty_slave)
                from pyoci_nb.runtime import console

                console.send_fd(ctx.console_fd, master, slave_name)
                os.close(master)
                os.close(ctx.console_fd)
        for key, value in (linux.get("sysctl") or {}).items():
            # before readonlyPaths makes /proc/sys read-only
            with Step(f"writing sysctl {key}={value}"):
                mounts.write_sysctl(key, value)
        mounts.finish_rootfs(config)
        if ctx.new_namespaces & sc.CLONE_NEWNET:
            with Step("bringing up the loopback interface of the new network namespace"):
                namespaces.bring_up_loopback()
        if config.get("hostname"):
            with Step(f"setting hostname {config['hostname']!r}"):
                sc.sethostname(config["hostname"])
        if config.get("domainname"):
            with Step(f"setting domainname {config['domainname']!r}"):
                sc.setdomainname(config["domainname"])
        process.set_oom_score_adj(proc)
        process.set_rlimits(proc)
        if not ctx.no_new_keyring:
            try:
                sc.keyctl_join_session_keyring(None)
            except OSError as exc:
                if exc.errno not in (38, 1, 13):  # ENOSYS/EPERM/EACCES: keyrings unavailable
                    raise
        os.setsid()  # its own session and process group, as with runc (getpgrp() == getpid())
        if pty_slave is not None:
            with Step("making the terminal the controlling terminal"):
                from pyoci_nb.runtime import console

                console.make_controlling_terminal(pty_slave)
        process.set_scheduling(proc)
        process.set_memory_policy(linux)
        seccomp_loaded = False
        if seccomp_config and (not proc.get("noNewPrivileges") or seccomp_config.get("listenerPath")):
            # without no_new_privs the filter needs CAP_SYS_ADMIN: load it before dropping caps
            ctx.await_cgroup(channel)
            _load_seccomp(seccomp_filter, channel)
            seccomp_loaded = True
        setgroups_allowed = _setgroups_allowed()
        _warn(channel, process.set_user_and_capabilities(proc, setgroups_allowed))
        process.set_no_new_privileges(proc)
        process.change_directory(proc)
        with Step("resolving the executable"):
            executable = process.resolve_executable(proc)
        ctx.await_cgroup(channel)  # the user process must start inside the cgroup
        channel.send(msg.Ready())
        ready = True
        channel.close()
        # blocks until `start` opens the FIFO for reading
        fifo = os.open(f"/proc/self/fd/{ctx.fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
        os.close(ctx.fifo_fd)
        # before execve the user process has not run yet: the status is still "created"
        # (runtime.md: "running" means the user-specified program was executed; runc agrees)
        if state is not None:
            hooks.run_hooks(config, "startContainer", dict(state, status="created"))
        # the byte says "started"; the FIFO closing on execve (CLOEXEC) tells `start` that the
        # user process runs, so poststart hooks run after it (runtime.md)
        os.write(fifo, b"0")
        process.set_personality(linux)
        process.hide_the_trampoline()
        if seccomp_config and not seccomp_loaded:
            _load_seccomp(seccomp_filter, None)
        process.exec_process(proc, executable, ctx.preserve_fds, fifo)
    except BaseException as exc:
        if ready:
            # the runtime that created us is gone: tell `start` through the FIFO ("E" + message)
            message = str(exc) or exc.__class__.__name__
            try:
                if fifo is None:
                    raise OSError("the exec FIFO is not open")
                os.write(fifo, b"E" + message.encode(errors="replace")[:4000])
            except OSError:
                sys.stderr.write(f"pyoci: container init failed: {message}\n")
                sys.stderr.flush()
        else:
            _report_error(channel, exc)
    os._exit(127 if ready else 1)


def _prepare_in_root(proc: dict, root: str) -> None:
    """``process.prepare_in_root`` of the container's init: its root filesystem, mounts made,
    before pivot_root (the host's /proc still reopens files by fd)."""
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        process.prepare_in_root(proc, root_fd, create_cwd=True)
    finally:
        os.close(root_fd)


def _warn(channel: MessageChannel, warning: str | None) -> None:
    """Have the runtime log ``warning`` (the container's stderr is not the runtime's log)."""
    if warning:
        channel.send(msg.LogWarning(message=warning))


def _open_console(proc: dict):
    from pyoci_nb.runtime import console

    return console.open_terminal(proc.get("consoleSize"))


def _setgroups_allowed() -> bool:
    try:
        return sc.read_file("/proc/self/setgroups").strip() != b"deny"
    except OSError:
        return True


class _ImportsClosed:
    """A ``sys.meta_path`` finder that refuses every import not done yet.  Once init has
    pivoted into the container's root (or an exec has joined its mount namespace), the paths
    on ``sys.path`` name the *container's* files: an import would run code the image chose, as
    the runtime.  Everything needed later is imported beforehand (``preload_modules``); an
    import that slips through is a bug and fails loudly with this message."""

    def __init__(self, step: str):
        self.step = step

    def find_spec(self, name, path=None, target=None):
        raise ImportError(f"pyoci: import of {name!r} after {self.step} (the host's Python library is out "
                          "of reach: this is a bug in pyoci, please report it)")


def close_imports(step: str) -> None:
    """From now on no module may be imported in this process (see ``_ImportsClosed``)."""
    sys.meta_path.insert(0, _ImportsClosed(step))


def preload_modules(config: dict) -> None:
    """Import now what later steps need: after pivot_root the host's Python library is out of
    reach, so nothing may be imported from then on."""
    import errno  # noqa: F401  (Step's messages)
    import fcntl  # noqa: F401
    import resource  # noqa: F401
    import struct  # noqa: F401  (bring_up_loopback)

    from pyoci_nb import errors  # noqa: F401

    if (config.get("process") or {}).get("terminal"):
        import termios  # noqa: F401

        from pyoci_nb.runtime import console  # noqa: F401
    sc.libc()
    sc.last_capability()
    trampoline.prepare()
    hooks_config = config.get("hooks") or {}
    if hooks_config.get("startContainer") or hooks_config.get("createContainer"):
        import selectors  # noqa: F401
        import subprocess  # noqa: F401


def _compile_seccomp(seccomp_config: dict | None):
    """The seccomp filter, compiled while libseccomp is still reachable (before pivot_root)."""
    if not seccomp_config:
        return None
    from pyoci_nb.runtime import seccomp

    with Step("compiling the seccomp filter"):
        return seccomp.compile_filter(seccomp_config)


def _load_seccomp(compiled, channel: MessageChannel | None) -> None:
    with Step("loading the seccomp filter"):
        listener = compiled.load()
    if listener is not None:
        if channel is None:
            raise RuntimeError("seccomp notify listener created after the runtime exited")
        channel.send(msg.SeccompListener(), [listener])
        os.close(listener)
        channel.expect(msg.SeccompListenerDone)


def exec_main(proc: dict, pid: int, kinds: list[str], channel: MessageChannel, preserve: int,
              console_fd: int | None, seccomp_config: dict | None, stdio: tuple,
              linux: dict | None = None) -> None:
    """``exec`` through an intermediate (an unprivileged runtime, or a time namespace): it joins
    the namespaces of the container's init and forks the process, which applies ``proc`` (and
    the container's ``linux.memoryPolicy`` and ``linux.personality``) and execs.  Never returns."""
    status = 1
    try:
        _exec_prelude(stdio, channel, console_fd, preserve, proc)
        compiled = _compile_seccomp(seccomp_config)
        channel.expect(msg.Go)
        _join_container(proc, pid, kinds)
        child = os.fork()
        if child == 0:
            try:
                _exec_child(proc, channel, preserve, console_fd, compiled, linux or {})
            except BaseException as exc:
                _report_error(channel, exc)
            os._exit(1)
        channel.send(msg.Pid(pid=child))
        status = 0
    except BaseException as exc:
        _report_error(channel, exc)
    finally:
        os._exit(status)


def exec_direct(proc: dict, pid: int, kinds: list[str], channel: MessageChannel, preserve: int,
                console_fd: int | None, compiled_seccomp, stdio: tuple, linux: dict) -> None:
    """``exec`` without an intermediate: this process was forked straight into the pid
    namespace of the container's init (``namespaces.fork_into_pid_namespace_of``) and is moved
    into its cgroup by the runtime before ``go``; it joins the other namespaces (``kinds``),
    applies ``proc`` and execs.  ``compiled_seccomp`` was compiled by the runtime, once per
    container.  Never returns."""
    try:
        _exec_prelude(stdio, channel, console_fd, preserve, proc)
        channel.expect(msg.Go)
        _join_container(proc, pid, kinds)
        _exec_child(proc, channel, preserve, console_fd, compiled_seccomp, linux)
    except BaseException as exc:
        _report_error(channel, exc)
    os._exit(1)


def exec_zygote(pid: int, kinds: list[str], control: MessageChannel, compiled_seccomp, linux: dict) -> None:
    """A resident exec helper of one container (the engine's, for warm execs): it joins the
    namespaces ``kinds`` of the container's init ``pid`` except the pid namespace, which it
    sets for its children only (it stays in the host's: invisible from inside), and is moved
    into the container's cgroups once by the runtime.  Then, per request on ``control`` (a
    process object, the exec's own channel and stdio as fds), it forks the process as its
    *sibling* (``CLONE_PARENT``: the engine's child) -- already in the container's pid
    namespace and cgroups, so no cgroup migration (which waits for an RCU grace period, ~10 ms
    on an idle machine) stands between a cell and its process -- which applies the process
    settings and execs as any exec does.  Exits when ``control`` closes.  Never returns."""
    try:
        sc.set_dumpable(False)  # nothing of the runtime is reachable through /proc
        null = os.open("/dev/null", os.O_RDWR)
        _set_stdio((null, null, null))
        if null > 2:
            os.close(null)
        close_inherited_fds({control.fileno(), trampoline.prepare()}, 0)
        preload_modules({"process": {"terminal": True}})
        with Step(f"opening the root of pid {pid}"):
            root_fd = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            pid_ns = os.open(f"/proc/{pid}/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        with Step(f"joining the namespaces of pid {pid}"):
            namespaces.join_process(pid, [kind for kind in kinds if kind != "pid"])
            if "pid" in kinds:
                sc.setns(pid_ns, sc.CLONE_NEWPID)
            os.close(pid_ns)
        close_imports("joining the container's mount namespace")
        control.send(msg.Ready())
    except BaseException as exc:
        _report_error(control, exc)
        os._exit(1)
    while True:
        request, fds = control.receive()
        if request is None:
            os._exit(0)
        if not isinstance(request, msg.ExecRequest):
            _report_error(control, msg.ProtocolError(f"protocol error: expected an exec request, got {request!r}"))
            for fd in fds:
                os.close(fd)
            continue
        child = -1
        try:
            child = sc.fork_sibling()
            if child == 0:
                _zygote_child(request, fds, root_fd, compiled_seccomp, linux)
            control.send(msg.Pid(pid=child))
        except BaseException as exc:
            if child == 0:
                os._exit(1)
            _report_error(control, exc)
        finally:
            for fd in fds:
                os.close(fd)


def _zygote_child(request: msg.ExecRequest, fds: list[int], root_fd: int, compiled_seccomp, linux: dict) -> None:
    """One exec forked by the zygote: ``fds`` are its channel, then its stdio (``request.stdio``
    gives each one's index, or None for /dev/null).  Never returns."""
    import _socket

    channel = MessageChannel(_socket.socket(fileno=fds[0]))
    try:
        proc = request.process
        process.prepare_in_root(proc, root_fd, create_cwd=False)
        _set_stdio(tuple(None if i is None else fds[i] for i in request.stdio))
        close_inherited_fds({channel.fileno(), trampoline.prepare()}, 0)
        _exec_child(proc, channel, 0, None, compiled_seccomp, linux)
    except BaseException as exc:
        _report_error(channel, exc)
    os._exit(1)


def _exec_prelude(stdio: tuple, channel: MessageChannel, console_fd: int | None, preserve: int, proc: dict) -> None:
    sc.set_dumpable(False)  # as init's prelude: nothing of the runtime is reachable through /proc
    _set_stdio(stdio)
    close_inherited_fds({channel.fileno(), console_fd, trampoline.prepare()} - {None}, preserve)
    preload_modules({"process": proc})


def _join_container(proc: dict, pid: int, kinds: list[str]) -> None:
    """Join the namespaces ``kinds`` of the container's init ``pid``; without a mount namespace
    of its own, change root to the container's (opened through the host's /proc first)."""
    with Step(f"opening the root of pid {pid}"):
        root_fd = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        process.prepare_in_root(proc, root_fd, create_cwd=False)
    except BaseException:
        os.close(root_fd)
        raise
    root = None
    if "mount" not in kinds:  # the container shares our mount namespace: its root is a chroot
        root = root_fd
    else:
        os.close(root_fd)
    with Step(f"joining the namespaces of pid {pid}"):
        namespaces.join_process(pid, kinds)
    if "mount" in kinds:
        close_imports("joining the container's mount namespace")
    if root is not None:
        with Step("changing root to the container's"):
            os.fchdir(root)
            os.chroot(".")
            os.chdir("/")
            os.close(root)


def _exec_child(proc: dict, channel: MessageChannel, preserve: int, console_fd: int | None,
                seccomp_config, linux: dict) -> None:
    os.setsid()  # its own session and process group, as the container's init (and runc)
    if proc.get("terminal"):
        with Step("setting up the terminal"):
            from pyoci_nb.runtime import console

            master, slave, name = console.open_terminal(proc.get("consoleSize"))
            console.send_fd(console_fd, master, name)
            os.close(master)
            os.close(console_fd)
            console.make_controlling_terminal(slave)
    process.set_oom_score_adj(proc)
    process.set_rlimits(proc)
    process.set_scheduling(proc)
    process.set_memory_policy(linux)
    seccomp_loaded = False
    if seccomp_config and not proc.get("noNewPrivileges"):
        _load_seccomp(seccomp_config, channel)
        seccomp_loaded = True
    _warn(channel, process.set_user_and_capabilities(proc, _setgroups_allowed()))
    process.set_no_new_privileges(proc)
    process.change_directory(proc)
    with Step("resolving the executable"):
        executable = process.resolve_executable(proc)
    process.set_personality(linux)
    process.hide_the_trampoline()
    if seccomp_config and not seccomp_loaded:
        _load_seccomp(seccomp_config, channel)
    # success is the channel closing on execve (CLOEXEC) without an error message; the
    # trampoline reports a failing execve on it
    process.exec_process(proc, executable, preserve, channel.fileno())
