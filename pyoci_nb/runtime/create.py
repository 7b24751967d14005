"""runtime.md "Create" in this process: state directory, cgroup, init forked into its
namespaces (``init.py``), its requests answered (id maps, hooks, seccomp listener) until it is
ready; a failure tears everything down.  ``Container.create`` calls ``create_here`` in the
processes that fork (the command line, the engine).
"""

from __future__ import annotations

import os
import time

from pyoci_nb.errors import SetupError
from pyoci_nb.runtime import hooks, log, namespaces, process
from pyoci_nb.runtime import messages as msg
from pyoci_nb.runtime import syscalls as sc
from pyoci_nb.runtime.children import kill_quietly, wait_gone
from pyoci_nb.runtime.delete import destroy_cgroup, remove_rootfs_bind
from pyoci_nb.runtime.preflight import cgroup_hierarchies, load_config, preflight
from pyoci_nb.runtime.start import start_user_process
from pyoci_nb.runtime.state import public_state


def open_channels(console_socket: str | None, console_fd: int | None, closers: list):
    """What a forked child talks through: the console socket's fd (connected to
    ``console_socket`` if given, else ``console_fd``) and a Channel pair (runtime end, child
    end).  What the runtime must close afterwards goes into ``closers``."""
    from pyoci_nb.runtime.init import MessageChannel

    if console_socket:
        from pyoci_nb.runtime.console import connect_console_socket

        sock = connect_console_socket(console_socket)
        closers.append(sock)
        console_fd = sock.fileno()
    parent, child = MessageChannel.pair()
    closers.append(parent)
    return console_fd, parent, child


def _tell(channel, message: msg.Message) -> None:
    """Send init a message it waits for (``CgroupJoined``).  If init has already failed, its
    error message is waiting in the channel: the caller reads it next."""
    try:
        channel.send(message)
    except (BrokenPipeError, ConnectionResetError):
        pass


def write_file_atomic(path: str, text: str) -> None:
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


def create_here(container, bundle: str, *, console_socket, console_fd, pid_file, no_pivot,
            no_new_keyring, preserve_fds, rootless, stdio, start=False) -> None:
    from pyoci_nb.runtime import mounts
    from pyoci_nb.runtime.init import (
        InitContext,
        init_direct,
        intermediate_main,
        preload_modules,
    )

    process.check_preserved_fds(preserve_fds)  # before the runtime opens fds of its own
    config = load_config(bundle)
    facts = preflight(config, bundle, rootless=rootless,
                      console=bool(console_socket or console_fd is not None))
    seccomp_filter = facts["seccomp_filter"]
    state_dir = container._dir
    try:
        preload_modules(config)  # once per process, not once per forked child (config checked)
        state_dir.make()
    except BaseException:
        if seccomp_filter is not None:
            seccomp_filter.close()
        raise
    me = os.getpid()
    record = {
        "id": container.id, "status": "creating", "pid": 0, "bundle": bundle,
        "rootfs": facts["rootfs"], "annotations": config.get("annotations") or {},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{time.time_ns() % 10**9:09d}Z",
        "runtimePid": me, "runtimeStartTime": sc.process_start_time(me),
        "namespaces": facts["kinds"], "rootless": rootless, "config": config,
    }
    cgroup = None
    ipid = 0
    init_pid = 0
    fds_to_close: list[int] = []
    closers: list = [seccomp_filter] if seccomp_filter is not None else []
    hook_failed = False
    rootfs_bind = None
    idmapped: dict[int, int] = {}
    try:
        state_dir.write(record)
        state_dir.make_fifo()
        from pyoci_nb.runtime.cgroups import manager_for

        cgroup = manager_for(config, container.id, rootless)
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
        console_fd, parent, child = open_channels(console_socket, console_fd, closers)
        ctx = InitContext(config=config, bundle=bundle, rootfs=facts["rootfs"],
                          joined=facts["joined"], new_namespaces=facts["flags"],
                          no_pivot=no_pivot, no_new_keyring=no_new_keyring,
                          preserve_fds=preserve_fds, fifo_fd=fifo_fd, console_fd=console_fd,
                          container_id=container.id, stdio=stdio,
                          close_fds=[state_dir.lock_fd, state_dir.dir_fd],
                          cgroups=mounts.CgroupView(cgroup.directories(),
                                                    cgroup_hierarchies(config, facts)),
                          rootfs_fd=rootfs_bind.fd if rootfs_bind else None, idmapped=idmapped,
                          seccomp_filter=seccomp_filter)
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
            _tell(parent, msg.CgroupJoined())
        while True:
            message, fds = parent.receive()
            if message is None:
                raise SetupError("container init failed",
                                 why="the container's init exited before reporting (see its stderr)")
            if isinstance(message, msg.IdMap):
                namespaces.write_id_maps(ipid, config)
                parent.send(msg.IdMapDone())
            elif isinstance(message, msg.Pid):
                init_pid = message.pid
                record.update(pid=init_pid, initStartTime=sc.process_start_time(init_pid))
                os.waitpid(ipid, 0)
                ipid = 0
                cgroup.apply(init_pid)
                _tell(parent, msg.CgroupJoined())
            elif isinstance(message, msg.Hooks):
                state = public_state(record, "creating")
                state["pid"] = init_pid
                state_dir.write(record)  # hooks take time: `delete --force` must find init
                hook_failed = True
                hooks.run_hooks(config, "prestart", state)
                hooks.run_hooks(config, "createRuntime", state)
                hook_failed = False
                parent.send(msg.HooksDone(state=state))
            elif isinstance(message, msg.SeccompListener):
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
                parent.send(msg.SeccompListenerDone())
            elif isinstance(message, msg.Ready):
                if start:  # a reader on the FIFO: init goes on to execve at once
                    fifo_reader = state_dir.open_fifo(os.O_RDONLY | os.O_NONBLOCK)
                    fds_to_close.append(fifo_reader)
                break
            elif isinstance(message, msg.LogWarning):
                log.warning(message.message or "")
            elif isinstance(message, msg.Error):
                raise SetupError("container init failed", why=message.message)
            else:
                raise SetupError(f"unexpected message from the container's init: {message!r}")
        record["status"] = "created"
        record["cgroup"] = cgroup.to_state()
        state_dir.write(record)
        if pid_file:
            write_file_atomic(os.path.abspath(pid_file), str(init_pid))
        log.debug("container created", id=container.id, pid=init_pid)
        if start:
            fds_to_close.remove(fifo_reader)
            hook_failed = True  # a failed start ends like a stopped container: poststop runs
            start_user_process(container, record, fifo_reader)
            hook_failed = False
    except BaseException:
        teardown_failed_create(container, record, cgroup, ipid, init_pid, config, hook_failed)
        raise
    finally:
        for fd in fds_to_close:
            os.close(fd)
        for closer in closers:
            closer.close()
        state_dir.unlock()


def teardown_failed_create(container, record, cgroup, ipid, init_pid, config, hook_failed) -> None:
    """A failed create leaves nothing: processes, cgroup, state directory."""
    for pid in (init_pid, ipid):
        kill_quietly(pid)
    if cgroup is not None:
        try:
            for pid in cgroup.pids():
                kill_quietly(pid)
        except Exception:
            pass
    if ipid:
        try:
            os.waitpid(ipid, 0)
        except ChildProcessError:
            pass
    if init_pid:
        wait_gone(init_pid, record.get("initStartTime"))
    if hook_failed:
        hooks.run_poststop(config, public_state(record, "stopped"))
    remove_rootfs_bind(container, record)
    if cgroup is not None:
        destroy_cgroup(container, cgroup, "failed container")
    container._dir.remove()
