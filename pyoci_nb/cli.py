"""``pyoci``: a runc-compatible command line.

Global flags come before the command, as with runc: ``pyoci [--root DIR] [--log FILE]
[--log-format text|json] [--debug] [--systemd-cgroup] COMMAND [flags] ID``.  Flags are accepted
both as ``--flag=value`` and ``--flag value`` (the grammar is in ``cliparse.py``).  Each
command's work lives in the module named in ``COMMANDS`` and is imported only when that command
runs, so ``pyoci --version`` and the lifecycle commands never import pydantic, ipywidgets or
pyroute2.

Handlers have the signature ``handler(args: cliparse.Arguments) -> int``; they raise
``pyoci_nb.errors.PyociError`` for failures the user should read, which is printed on stderr
(and written to ``--log`` as the last ``"level":"error"`` line) with exit status 1.  A command
line that does not parse exits with status 2 and the usage on stderr.
"""

from __future__ import annotations

import os
import sys

from pyoci_nb import OCI_VERSION, __version__
from pyoci_nb.cliparse import Arguments, Command, Flag, HelpRequested, Parser, Positional, UsageError

# command -> (handler "module:function", one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "spec": ("pyoci_nb.spec.commands:spec_command", "create a new specification file (config.json)"),
    "validate": ("pyoci_nb.spec.commands:validate_command", "check a bundle or config.json and print every problem"),
    "features": ("pyoci_nb.runtime.features:features_command", "show the enabled features (JSON, per features-schema)"),
    "create": ("pyoci_nb.runtime.commands:create_command", "create a container"),
    "start": ("pyoci_nb.runtime.commands:start_command", "execute the user process in a created container"),
    "state": ("pyoci_nb.runtime.commands:state_command", "output the state of a container"),
    "kill": ("pyoci_nb.runtime.commands:kill_command", "send a signal to the container's init process"),
    "delete": ("pyoci_nb.runtime.commands:delete_command", "delete any resources held by the container"),
    "run": ("pyoci_nb.runtime.commands:run_command", "create and run a container"),
    "exec": ("pyoci_nb.runtime.commands:exec_command", "execute new process inside the container"),
    "list": ("pyoci_nb.runtime.commands:list_command", "lists containers started by pyoci with the given root"),
    "ps": ("pyoci_nb.runtime.commands:ps_command", "ps displays the processes running inside a container"),
    "pause": ("pyoci_nb.runtime.cgroups.commands:pause_command", "pause suspends all processes inside the container"),
    "resume": ("pyoci_nb.runtime.cgroups.commands:resume_command", "resumes all processes that have been previously paused"),
    "update": ("pyoci_nb.runtime.cgroups.commands:update_command", "update container resource constraints"),
    "events": ("pyoci_nb.runtime.cgroups.commands:events_command", "display container events such as OOM notifications, cpu, memory, and IO usage statistics"),
    "checkpoint": ("pyoci_nb.cli:unsupported_command", "checkpoint a running container (not supported)"),
    "restore": ("pyoci_nb.cli:unsupported_command", "restore a container from a previous checkpoint (not supported)"),
}


def version_text() -> str:
    return (f"pyoci version {__version__}\n"
            f"spec: {OCI_VERSION}\n"
            f"python: {sys.version.split()[0]}\n")


_CONSOLE_SOCKET = Flag("--console-socket", "path to an AF_UNIX socket which will receive the pty master fd",
                       metavar="SOCK")
_DETACH = Flag("--detach -d", "detach from the container's process", kind="switch")
_CREATE_FLAGS = (
    Flag("--bundle -b", "path to the root of the bundle directory (default: current directory)", default=".",
         metavar="DIR"),
    _CONSOLE_SOCKET,
    Flag("--pid-file", "file to write the container init's pid to (exists before create returns)", metavar="FILE"),
    Flag("--no-pivot", "do not use pivot_root to jail the process inside the rootfs", kind="switch"),
    Flag("--no-new-keyring", "do not create a new session keyring for the container", kind="switch"),
    Flag("--preserve-fds", "pass N additional file descriptors (3 .. 3+N-1) to the container", kind="int",
         default=0, metavar="N"),
)
_ID = Positional("container_id", "ID", "the container's unique id")
_FORMAT = Flag("--format -f", "output format", default="table", choices=("table", "json"), metavar="FORMAT")
_UPDATE_FLAGS = tuple(Flag(name, text) for name, text in (
    ("--blkio-weight", "blkio weight (10-1000)"), ("--cpu-period", "CPU CFS period (us)"),
    ("--cpu-quota", "CPU CFS quota (us)"), ("--cpu-share", "CPU shares (relative weight)"),
    ("--cpu-rt-period", "CPU realtime period (us)"), ("--cpu-rt-runtime", "CPU realtime runtime (us)"),
    ("--cpu-idle", "CPU idle (0 or 1, v2 only)"),
    ("--cpuset-cpus", "CPUs to use (0-3, 0,1)"), ("--cpuset-mems", "memory nodes to use"),
    ("--memory", "memory limit (bytes, or with k/m/g)"), ("--memory-reservation", "memory reservation"),
    ("--memory-swap", "memory + swap limit"), ("--pids-limit", "maximum number of pids"),
    ("--kernel-memory", "kernel memory limit (deprecated)"), ("--kernel-memory-tcp", "kernel tcp memory (deprecated)"),
    ("--l3-cache-schema", "intel RDT L3 cache schema"), ("--mem-bw-schema", "intel RDT memory bandwidth schema"),
))

#: the flags of each command (runc's names and short names)
_COMMAND_FLAGS: dict[str, tuple[tuple[Flag, ...], tuple[Positional, ...]]] = {
    "spec": ((Flag("--bundle -b", "path to the root of the bundle directory", default=".", metavar="DIR"),
              Flag("--rootless", "generate a configuration for a rootless container", kind="switch")), ()),
    "validate": ((Flag("--bundle -b", "bundle directory to validate (default: current directory)", metavar="DIR"),
                  Flag("--for-start", "also require what start needs (process.args)", kind="switch"),
                  Flag("--format -f", "output format", default="text", choices=("text", "json"),
                       metavar="FORMAT")),
                 (Positional("file", "FILE", "a config.json file to validate instead of a bundle",
                             required=False),)),
    "features": ((), ()),
    "create": (_CREATE_FLAGS, (_ID,)),
    "run": (_CREATE_FLAGS + (
        _DETACH,
        Flag("--keep", "do not delete the container after it exits", kind="switch"),
        Flag("--no-subreaper", "disable the use of the subreaper used to reap reparented processes",
             kind="switch")), (_ID,)),
    "start": ((), (_ID,)),
    "state": ((), (_ID,)),
    "pause": ((), (_ID,)),
    "resume": ((), (_ID,)),
    "kill": ((Flag("--all -a", "send the signal to all processes in the container", kind="switch"),),
             (_ID, Positional("signal", "SIGNAL", "signal name (TERM, SIGKILL) or number (default: SIGTERM)",
                              required=False, default="SIGTERM"))),
    "delete": ((Flag("--force -f", "forcibly delete the container if it is still running (uses SIGKILL)",
                     kind="switch"),), (_ID,)),
    "exec": ((_CONSOLE_SOCKET,
              Flag("--cwd", "current working directory in the container", metavar="DIR"),
              Flag("--env -e", "set environment variables (K=V)", kind="list", metavar="K=V"),
              Flag("--tty -t", "allocate a pseudo-TTY", kind="switch"),
              Flag("--user -u", "UID[:GID] to run as", metavar="UID[:GID]"),
              Flag("--additional-gids -g", "additional gids", kind="int-list", metavar="GID"),
              Flag("--process -p", "path to a process.json (the process object of config.json)", metavar="FILE"),
              _DETACH,
              Flag("--pid-file", "file to write the process id to", metavar="FILE"),
              Flag("--process-label", "set the asm process label (SELinux)", metavar="LABEL"),
              Flag("--apparmor", "set the apparmor profile for the process", metavar="PROFILE"),
              Flag("--no-new-privs", "set no_new_privs for the process", kind="switch"),
              Flag("--cap -c", "add a capability to the bounding set", kind="list", metavar="CAP"),
              Flag("--preserve-fds", "pass N additional file descriptors to the process", kind="int",
                   default=0, metavar="N"),
              Flag("--cgroup", "run in a sub-cgroup (controller:path or path)", kind="list", metavar="PATH"),
              Flag("--ignore-paused", "allow exec in a paused container", kind="switch")),
             (_ID, Positional("exec_args", "COMMAND", "command and arguments (after --)", rest=True))),
    "list": ((_FORMAT, Flag("--quiet -q", "display only container ids", kind="switch")), ()),
    "ps": ((_FORMAT,), (_ID, Positional("ps_args", "PS_ARGS", "arguments for ps (table format)", rest=True))),
    "update": ((Flag("--resources -r", "path to a file with linux.resources JSON, or - for stdin",
                     metavar="FILE"),) + _UPDATE_FLAGS, (_ID,)),
    "events": ((Flag("--interval", "set the stats collection interval (e.g. 1s, 500ms)", default="5s",
                     metavar="DURATION"),
                Flag("--stats", "display the container's stats then exit", kind="switch")), (_ID,)),
    "checkpoint": ((), (Positional("rest", "ARGS", "(not supported)", rest=True),)),
    "restore": ((), (Positional("rest", "ARGS", "(not supported)", rest=True),)),
}

GLOBAL_FLAGS = (
    Flag("--root", "root directory for storage of container state (default: /run/pyoci, or "
                   "$XDG_RUNTIME_DIR/pyoci)", metavar="DIR"),
    Flag("--log", "set the log file to write runtime logs to (default: stderr)", metavar="FILE"),
    Flag("--log-format", "log format", default="text", choices=("text", "json"), metavar="FORMAT"),
    Flag("--debug", "enable debug logging", kind="switch"),
    Flag("--systemd-cgroup", "manage cgroups through systemd (not supported: refused)", kind="switch"),
    Flag("--rootless", "ignore cgroup permission errors (auto: when not root)", default="auto",
         choices=("auto", "true", "false"), dest="rootless_mode", metavar="MODE"),
    Flag("--criu", "path to criu (checkpoint/restore are not supported)", hidden=True),
    Flag("--version -v", "print the version", kind="switch"),
)


def build_parser() -> Parser:
    """The ``pyoci`` command line: runc's global flags, commands and flags."""
    commands = tuple(Command(name, COMMANDS[name][1], *_COMMAND_FLAGS[name]) for name in COMMANDS)
    return Parser("pyoci", "pyoci: an OCI runtime (runtime-spec 1.3) with runc's commands and flags.",
                  GLOBAL_FLAGS, commands)


def unsupported_command(args: Arguments) -> int:
    from pyoci_nb.errors import UnsupportedError

    raise UnsupportedError(f"'{args.command}' is not supported by pyoci",
                           why="checkpoint/restore needs CRIU, which pyoci does not drive")


def _load_handler(command: str):
    module_name, _, function = COMMANDS[command][0].partition(":")
    __import__(module_name)  # importlib.import_module without importing importlib
    return getattr(sys.modules[module_name], function)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``pyoci``; returns the process exit status.

    Without ``argv`` this is the program itself (the console script, ``python -m pyoci_nb``):
    a short run that allocates little, so the cyclic garbage collector is off -- one full
    collection walks every object of every imported module (~3 ms of a container start on a
    small VM) -- and it ends with ``os._exit`` once stdout and stderr are flushed: tearing
    down the interpreter's modules would cost ~4 ms more, and there is nothing to tear down
    (files are closed by ``with`` blocks, the log and state files are written with os.write,
    no atexit handler is registered on these paths).  The long-running commands (``run``,
    ``exec``, ``events``) make no reference cycles worth collecting either."""
    if argv is not None:
        return _main(argv)
    import gc

    gc.disable()
    status = _main(sys.argv[1:])
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: the output is lost, say so
            status = status or 1
    os._exit(status)


def _main(argv: list[str]) -> int:
    if argv in (["--version"], ["-v"]):
        sys.stdout.write(version_text())
        return 0
    parser = build_parser()
    try:
        args = parser.parse(argv)
    except HelpRequested as wanted:
        sys.stdout.write(parser.help(wanted.command))
        return 0
    except UsageError as error:
        prefix = f"{parser.prog} {error.command.name}" if error.command else parser.prog
        sys.stderr.write(f"{prefix}: {error}\n{parser.usage(error.command)}\n")
        return 2
    if args.version:
        sys.stdout.write(version_text())
        return 0
    if args.command is None:
        sys.stderr.write(parser.help())
        return 2
    from pyoci_nb.runtime import log

    try:
        log.configure(args.log, args.log_format, args.debug)
    except Exception as exc:  # a bad --log-format is a usage error; an unwritable path is not
        sys.stderr.write(f"pyoci: {exc}\n")
        return 1
    if args.root is None:
        from pyoci_nb.runtime.state import default_root

        args.root = default_root()
    args.root = os.path.abspath(args.root)
    from pyoci_nb.errors import PyociError

    try:
        if args.systemd_cgroup:
            from pyoci_nb.errors import UnsupportedError

            raise UnsupportedError("--systemd-cgroup is not supported",
                                   where="--systemd-cgroup",
                                   why="pyoci manages cgroups through the cgroupfs driver only",
                                   hint="drop the flag (podman: --cgroup-manager=cgroupfs; "
                                        "containerd: SystemdCgroup = false)")
        handler = _load_handler(args.command)
        from pyoci_nb.runtime import container

        # the command line forks containers itself (it is the engine engines talk to)
        outer, container.IN_PROCESS = container.IN_PROCESS, True
        try:
            return int(handler(args) or 0)
        finally:
            container.IN_PROCESS = outer
    except PyociError as exc:
        _report_error(args, str(exc))
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1
    except OSError as exc:
        _report_error(args, f"{args.command} failed: {exc}")
        return 1
    except Exception as exc:  # noqa: BLE001 - the last resort: one clear line, never a traceback
        _report_internal_error(args, exc)
        return 1


def _report_internal_error(args: Arguments, exc: Exception) -> None:
    """An exception no handler expected is a bug of pyoci: say so on one line, with what to
    report; the traceback goes to the log only with ``--debug``."""
    from pyoci_nb.runtime import log

    if args.debug:
        import traceback

        log.debug("".join(traceback.format_exception(exc)))
    what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if len(what) > 500:
        what = what[:500] + "..."
    _report_error(args, f"internal error in pyoci {args.command}: {what} (this is a bug of pyoci, "
                        "not of your input: please report it to the pyoci_nb issue tracker with the command "
                        "line, `pyoci --version` and the config.json; --debug logs the traceback)")


def _report_error(args: Arguments, message: str) -> None:
    """Log the error (the last "level":"error" line is what engines show) and, when the log
    goes to a file, print it on stderr as well, as runc does."""
    from pyoci_nb.runtime import log

    log.error(message)
    if log.logging_to_file():
        sys.stderr.write(f"pyoci: {message}\n")


if __name__ == "__main__":
    sys.exit(main())
