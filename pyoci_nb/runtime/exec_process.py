"""runc's exec in this process: the process object, then the process forked into the container's
namespaces and cgroup (straight into its pid namespace, or through an intermediate), answered
until it execs.
"""

from __future__ import annotations

import os

from pyoci_nb.errors import ConfigError, InvalidState, SetupError
from pyoci_nb.runtime import jsonio, log, namespaces, process
from pyoci_nb.runtime import messages as msg
from pyoci_nb.runtime.children import kill_quietly, no_collection
from pyoci_nb.runtime.create import open_channels, write_file_atomic
from pyoci_nb.runtime.start import exec_failure
from pyoci_nb.runtime.state import derive_status, public_state

_seccomp_cache: dict = {}


def compiled_seccomp(container_id: str, seccomp_config: dict | None):
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


def checked_exec_process(container, args, process_config, env, cwd, user, tty, console_socket, console_fd,
                  preserve_fds, additional_gids, add_capabilities, no_new_privileges) -> dict:
    """The checked process object of an exec, for a container that can take one."""
    process.check_preserved_fds(preserve_fds)
    record = container._record()
    status = derive_status(record, container._dir)
    if status == "created" and os.geteuid() != 0:
        raise InvalidState("an unprivileged runtime cannot exec into a created container",
                           where=f"container {container.id!r}",
                           why="until the container's program runs, its init is non-dumpable (nothing "
                               "of the runtime is reachable through its /proc from inside), and "
                               "opening its namespaces then needs CAP_SYS_PTRACE on the host",
                           hint="start the container first, then exec into it")
    if status not in ("created", "running"):
        raise InvalidState("container not running" if status != "paused" else "container is paused",
                           where=f"container {container.id!r}",
                           why=f"exec needs a created or running container; it is {status}")
    proc = build_exec_process(record["config"], process_config, args, env, cwd, user, tty,
                              additional_gids, add_capabilities, no_new_privileges)
    process.check_process(proc, "process.json" if process_config else "process")
    if proc.get("terminal") and not (console_socket or console_fd is not None):
        raise ConfigError("cannot allocate a terminal without a console socket", where="--tty",
                          hint="pass --console-socket")
    return proc


def exec_detached(container, proc: dict, *, console_socket: str | None = None, console_fd: int | None = None,
                  pid_file: str | None = None, preserve_fds: int = 0,
                  stdio: tuple = (None, None, None)) -> int:
    """The process of an exec, started; returns its pid (this process's own work: the
    command line's, or the engine's).

    Privileged, the process is forked straight into the container's pid namespace (our
    ``pid_for_children`` set to it around the fork) and joins the other namespaces and the
    cgroup itself: it is our child, nothing sits between us.  Unprivileged (joining the
    pid namespace needs CAP_SYS_ADMIN in our own user namespace) or with a time namespace,
    an intermediate joins them and forks it (``init.exec_main``)."""
    record = container._record()
    seccomp_config = (record["config"].get("linux") or {}).get("seccomp")
    closers: list = []
    console_fd, parent, child = open_channels(console_socket, console_fd, closers)
    init_pid = record["pid"]
    kinds = namespaces.different_namespaces(init_pid)
    direct = os.geteuid() == 0 and "time" not in kinds
    pid = ipid = 0
    with no_collection():  # the child shares our memory until it execs
        try:
            if direct:
                from pyoci_nb.runtime.init import exec_direct

                compiled = compiled_seccomp(container.id, seccomp_config)
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
            parent.send(msg.Go())
            pid = exec_conversation(container, parent, proc, record, seccomp_config, pid, ipid)
        except BaseException:
            for p in (pid, ipid):
                kill_quietly(p)
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
        write_file_atomic(os.path.abspath(pid_file), str(pid))
    return pid


def exec_conversation(container, parent, proc, record, seccomp_config, pid, ipid) -> int:
    """Answer the exec'd process (or its intermediate) until its channel closes on execve;
    returns the process's pid."""
    while True:
        message, fds = parent.receive()
        if message is None:
            break
        if isinstance(message, msg.Pid):
            pid = message.pid
            os.waitpid(ipid, 0)
        elif isinstance(message, msg.SeccompListener):
            # as runc: the agent gets a listener for the exec'd process too
            from pyoci_nb.runtime import seccomp

            try:
                seccomp.send_listener(seccomp_config["listenerPath"], fds[0], public_state(record, "running"),
                                      seccomp_config.get("listenerMetadata", ""), pid=pid or None)
            finally:
                for fd in fds:
                    os.close(fd)
            parent.send(msg.SeccompListenerDone())
        elif isinstance(message, msg.LogWarning):
            log.warning(message.message or "")
        elif isinstance(message, msg.Error):
            raise SetupError("exec failed", why=message.message)
        elif isinstance(message, msg.ExecFailed):
            raise SetupError("exec failed", why=exec_failure(proc, message.errno))
    if not pid:
        raise SetupError("exec failed", why="the process exited before reporting")
    return pid
