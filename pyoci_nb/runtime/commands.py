"""CLI handlers of the lifecycle commands: ``pyoci create|start|state|kill|delete|run|exec|list|ps``.

Each is ``handler(args) -> exit status`` (see ``cli.py``); the work is done by
``container.Container``, so the CLI and the Python API share one implementation.  The
messages keep runc's words where engines match on them ("does not exist",
"container not running").
"""

from __future__ import annotations

import os
import sys

from pyoci_nb.errors import ContainerNotFound, PyociError
from pyoci_nb.runtime import jsonio
from pyoci_nb.runtime.container import Container, parse_signal


def _rootless(args) -> bool:
    value = getattr(args, "rootless_mode", "auto")  # the global --rootless flag
    if value == "auto":
        return os.geteuid() != 0
    return value == "true"


def _create(args, subreaper: bool, console_fd: int | None = None, start: bool = False) -> Container:
    return Container.create(args.bundle, id=args.container_id, root=args.root,
                            console_socket=args.console_socket, console_fd=console_fd,
                            pid_file=args.pid_file, no_pivot=args.no_pivot,
                            no_new_keyring=args.no_new_keyring, preserve_fds=args.preserve_fds,
                            rootless=_rootless(args), subreaper=subreaper, start=start)


def create_command(args) -> int:
    """runtime.md "create": the runtime's process exits, the container's init waits for start."""
    _create(args, subreaper=False)
    return 0


def start_command(args) -> int:
    """runtime.md "start": run the user process of a created container."""
    Container.load(args.container_id, args.root).start()
    return 0


def state_command(args) -> int:
    """runtime.md "state": print the state JSON (state-schema.json)."""
    state = Container.load(args.container_id, args.root).state()
    sys.stdout.write(jsonio.dumps(state, indent=2) + "\n")
    return 0


def kill_command(args) -> int:
    """runtime.md "kill": signal by name (TERM, SIGKILL) or number; --all: every process."""
    Container.load(args.container_id, args.root).kill(parse_signal(args.signal), all=args.all)
    return 0


def delete_command(args) -> int:
    """``delete --force`` of an unknown id succeeds (engines rely on it, as with runc)."""
    from pyoci_nb.runtime.state import BadState, StateDir

    try:
        Container.load(args.container_id, args.root).delete(force=args.force)
    except (ContainerNotFound, BadState):
        if args.force:
            # a runtime killed before it wrote state.json, a corrupt state.json, or a link or
            # file planted at <root>/<id>: the entry goes (never what a link points to)
            StateDir(args.root, args.container_id).remove_stale()
            return 0
        raise
    return 0


_FORWARDED = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGCONT")


def run_command(args) -> int:
    """create + start (+ wait, exit status passed through: 128+N for a signal death, + delete)."""
    import _signal as signal  # the C module: `signal` builds its enums at import (~1.5 ms)

    console_fd = None
    relay_end = None
    config_terminal = False
    if not args.detach and not args.console_socket:
        from pyoci_nb.runtime.preflight import load_config

        proc = load_config(os.path.abspath(args.bundle)).get("process")
        # (a malformed process is reported by create's preflight, naming the field)
        config_terminal = isinstance(proc, dict) and proc.get("terminal") is True
        if config_terminal:
            import socket

            from pyoci_nb.runtime.console import check_relay_terminal

            check_relay_terminal()  # no terminal here: say so now, not a shell waiting forever

            relay_end, init_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            console_fd = init_end.fileno()
    # create and start as one operation (a failure removes everything), except with --keep,
    # which keeps a container whose start failed for inspection
    container = _create(args, subreaper=not args.detach, console_fd=console_fd, start=not args.keep)
    master = None
    if relay_end is not None:
        from pyoci_nb.runtime.console import receive_fd

        master = receive_fd(relay_end)
        relay_end.close()
        init_end.close()
    if args.keep:
        container.start()
    if args.detach:
        return 0
    pid = container.state()["pid"]

    def forward(signum, frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for name in _FORWARDED:
        signal.signal(getattr(signal, name), forward)
    try:
        if master is not None:
            from pyoci_nb.runtime.console import relay

            def finished() -> bool:
                return container.status == "stopped"

            relay(master, finished)
            os.close(master)
        status = container.wait()
    finally:
        for name in _FORWARDED:
            signal.signal(getattr(signal, name), signal.SIG_DFL)
        if not args.keep:
            container.delete(force=True)
    return status if status is not None else 0


def exec_command(args) -> int:
    """runc's exec: another process in the container (``-- ARGS`` or ``--process process.json``)."""
    process_config = None
    if args.process:
        from pyoci_nb.errors import ConfigError

        try:
            with open(args.process) as f:
                process_config = jsonio.loads(f.read())
        except (OSError, ValueError) as exc:
            raise ConfigError("cannot read the process file", where=args.process, why=str(exc)) from None
    command = list(args.exec_args or [])
    if command and command[0] == "--":
        command = command[1:]
    if process_config is None and not command:
        from pyoci_nb.errors import ConfigError

        raise ConfigError("exec needs a command", where="ARGS",
                          hint="pyoci exec ID -- COMMAND [ARGS...], or --process process.json")
    container = Container.load(args.container_id, args.root)
    if process_config is not None and command:
        process_config = dict(process_config, args=command)
    if args.process_label or args.apparmor:
        from pyoci_nb.errors import UnsupportedError

        raise UnsupportedError("SELinux labels and AppArmor profiles are not supported by pyoci",
                               where="--process-label" if args.process_label else "--apparmor",
                               why="pyoci applies no LSM profile; it would silently run the process unconfined",
                               hint="drop the flag")
    if args.cgroup:
        from pyoci_nb.errors import UnsupportedError

        raise UnsupportedError("exec into a sub-cgroup is not supported", where="--cgroup",
                               hint="drop the flag: the process joins the container's cgroup")
    tty = args.tty or bool(process_config and process_config.get("terminal"))
    relay_here = tty and not args.console_socket and not args.detach
    options = dict(process_config=process_config, env=args.env, cwd=args.cwd, user=args.user,
                   tty=args.tty, console_socket=args.console_socket, pid_file=args.pid_file,
                   preserve_fds=args.preserve_fds, additional_gids=args.additional_gids,
                   add_capabilities=args.cap, no_new_privileges=args.no_new_privs)
    if not relay_here:
        result = container.exec(command, detach=args.detach, **options)
        return 0 if args.detach else result
    # like runc: no console socket and not detached -> relay the terminal ourselves
    import socket

    from pyoci_nb.runtime import syscalls
    from pyoci_nb.runtime.children import exit_code as _exit_code
    from pyoci_nb.runtime.console import check_relay_terminal, receive_fd, relay

    check_relay_terminal("--tty" if args.tty else "process.terminal")

    syscalls.set_child_subreaper()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = container.exec(command, detach=True, console_fd=theirs.fileno(), **options)
    theirs.close()
    master = receive_fd(ours)
    ours.close()
    exited: list[int] = []

    def finished() -> bool:
        if not exited:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                exited.append(status)
        return bool(exited)

    relay(master, finished)
    os.close(master)
    if not exited:
        exited.append(os.waitpid(pid, 0)[1])
    return _exit_code(exited[0])


def list_command(args) -> int:
    """runc's list: the containers of the state root (table or JSON)."""
    from pyoci_nb.runtime.container import list_containers

    states = []
    for container in list_containers(args.root):
        try:
            states.append(container.state())
        except ContainerNotFound:
            continue
    if args.format == "json":
        sys.stdout.write(jsonio.dumps(states) + "\n")
    elif args.quiet:
        for state in states:
            sys.stdout.write(state["id"] + "\n")
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        for s in states:
            rows.append((s["id"], str(s["pid"]), s["status"], s["bundle"], s.get("created", ""),
                         s.get("owner") or _owner()))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            sys.stdout.write("   ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)).rstrip() + "\n")
    return 0


def _owner() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def ps_command(args) -> int:
    """The processes of the container's cgroup: pids as JSON, or ``ps`` lines of those pids."""
    container = Container.load(args.container_id, args.root)
    record = container._record()
    pids: list[int] = []
    if record.get("cgroup"):
        from pyoci_nb.runtime.cgroups import manager_from_state

        pids = sorted(manager_from_state(record["cgroup"]).pids())
    elif container.status != "stopped":
        pids = [record["pid"]]
    if args.format == "json":
        sys.stdout.write(jsonio.dumps(pids) + "\n")
        return 0
    import subprocess

    ps_args = [a for a in (args.ps_args or []) if a != "--"] or ["-ef"]
    output = subprocess.run(["ps"] + ps_args, stdout=subprocess.PIPE, check=True).stdout.decode()
    lines = output.splitlines()
    if not lines:
        return 0
    header = lines[0]
    columns = header.split()
    if "PID" not in columns:
        raise PyociError("ps output has no PID column", where="ps " + " ".join(ps_args))
    index = columns.index("PID")
    sys.stdout.write(header + "\n")
    wanted = set(pids)
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > index and fields[index].isdigit() and int(fields[index]) in wanted:
            sys.stdout.write(line + "\n")
    return 0
