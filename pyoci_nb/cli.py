"""``pyoci``: a runc-compatible command line.

Global flags come before the command, as with runc: ``pyoci [--root DIR] [--log FILE]
[--log-format text|json] [--debug] [--systemd-cgroup] COMMAND [flags] ID``.  Flags are accepted
both as ``--flag=value`` and ``--flag value``.  Each command's work lives in the module named in
``COMMANDS`` and is imported only when that command runs, so ``pyoci --version`` and the lifecycle
commands never import pydantic, ipywidgets or pyroute2.

Handlers have the signature ``handler(args: argparse.Namespace) -> int``; they raise
``pyoci_nb.errors.PyociError`` for failures the user should read, which is printed on stderr
(and written to ``--log`` as the last ``"level":"error"`` line) with exit status 1.
"""

from __future__ import annotations

import importlib
import os
import sys

from pyoci_nb import OCI_VERSION, __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~10 ms)
if TYPE_CHECKING:
    import argparse

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


def default_root() -> str:
    """runc's default state root: ``/run/pyoci`` for root, else ``$XDG_RUNTIME_DIR/pyoci``,
    else a per-user directory under /tmp."""
    if os.geteuid() == 0:
        return "/run/pyoci"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return os.path.join(xdg, "pyoci")
    return f"/tmp/pyoci-{os.geteuid()}"


def version_text() -> str:
    return (f"pyoci version {__version__}\n"
            f"spec: {OCI_VERSION}\n"
            f"python: {sys.version.split()[0]}\n")


def _help_formatter(prog: str) -> argparse.HelpFormatter:
    """argparse's HelpFormatter, as wide as the terminal (``shutil.get_terminal_size``'s
    rule: $COLUMNS, else the terminal of stdout, else 80) without importing shutil, which
    argparse would import for every parser (~5 ms with bz2 and lzma)."""
    import argparse

    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return argparse.HelpFormatter(prog, width=(columns or 80) - 2)


def _add_id(p: argparse.ArgumentParser) -> None:
    p.add_argument("container_id", metavar="ID", help="the container's unique id")


def _add_create_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", "-b", default=".", help="path to the root of the bundle directory (default: current directory)")
    p.add_argument("--console-socket", default=None, help="path to an AF_UNIX socket which will receive the pty master fd")
    p.add_argument("--pid-file", default=None, help="file to write the container init's pid to (exists before create returns)")
    p.add_argument("--no-pivot", action="store_true", help="do not use pivot_root to jail the process inside the rootfs")
    p.add_argument("--no-new-keyring", action="store_true", help="do not create a new session keyring for the container")
    p.add_argument("--preserve-fds", type=int, default=0, help="pass N additional file descriptors (3 .. 3+N-1) to the container")


class _FlagsNotBuilt:
    """Stands in for the sub-parser of a command that is not being run: building argparse
    actions for all of runc's flags costs more than the rest of ``pyoci state``."""

    def add_argument(self, *args, **kwargs) -> None:
        pass


# global flags that take a value (skipped when looking for the command name)
_GLOBAL_VALUE_FLAGS = ("--root", "--log", "--log-format", "--rootless", "--criu")


def command_in(argv: list[str]) -> str | None:
    """The command named in ``argv`` (the first word that is not a global flag or its value)."""
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in _GLOBAL_VALUE_FLAGS:
            skip = True
        elif not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``pyoci`` parser; with ``only``, the other commands are not built at all (the
    caller has checked that ``only`` is the command being run)."""
    import argparse  # not at module level: `pyoci --version` does without it (and without re)

    class _VersionAction(argparse.Action):
        def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
            super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

        def __call__(self, parser, namespace, values, option_string=None):
            sys.stdout.write(version_text())
            parser.exit(0)

    parser = argparse.ArgumentParser(
        prog="pyoci", allow_abbrev=False, formatter_class=_help_formatter,
        description="pyoci: an OCI runtime (runtime-spec 1.3) with runc's commands and flags.")
    parser.add_argument("--version", "-v", action=_VersionAction, help="print the version")
    parser.add_argument("--root", default=None, help="root directory for storage of container state (default: /run/pyoci, or $XDG_RUNTIME_DIR/pyoci)")
    parser.add_argument("--log", default=None, help="set the log file to write runtime logs to (default: stderr)")
    parser.add_argument("--log-format", default="text", choices=("text", "json"), help="log format: text (default) or json")
    parser.add_argument("--debug", action="store_true", help="enable debug logging")
    parser.add_argument("--systemd-cgroup", action="store_true", help="manage cgroups through systemd (not supported: refused)")
    parser.add_argument("--rootless", dest="rootless_mode", default="auto", choices=("auto", "true", "false"), help="ignore cgroup permission errors (auto: when not root)")
    parser.add_argument("--criu", default=None, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str) -> argparse.ArgumentParser:
        if only not in (None, name):
            return _FlagsNotBuilt()  # each sub-parser costs ~1 ms (argparse's gettext look-ups)
        return sub.add_parser(name, help=COMMANDS[name][1], description=COMMANDS[name][1],
                              allow_abbrev=False, formatter_class=_help_formatter)

    p = add("spec")
    p.add_argument("--bundle", "-b", default=".", help="path to the root of the bundle directory")
    p.add_argument("--rootless", action="store_true", help="generate a configuration for a rootless container")

    p = add("validate")
    p.add_argument("--bundle", "-b", default=None, help="bundle directory to validate (default: current directory)")
    p.add_argument("--for-start", action="store_true", help="also require what start needs (process.args)")
    p.add_argument("--format", "-f", default="text", choices=("text", "json"), help="output format")
    p.add_argument("file", nargs="?", default=None, help="a config.json file to validate instead of a bundle")

    add("features")

    p = add("create")
    _add_create_flags(p)
    _add_id(p)

    p = add("run")
    _add_create_flags(p)
    p.add_argument("--detach", "-d", action="store_true", help="detach from the container's process")
    p.add_argument("--keep", action="store_true", help="do not delete the container after it exits")
    p.add_argument("--no-subreaper", action="store_true", help="disable the use of the subreaper used to reap reparented processes")
    _add_id(p)

    for name in ("start", "state", "pause", "resume"):
        p = add(name)
        _add_id(p)

    p = add("kill")
    p.add_argument("--all", "-a", action="store_true", help="send the signal to all processes in the container")
    _add_id(p)
    p.add_argument("signal", nargs="?", default="SIGTERM", help="signal name (TERM, SIGKILL) or number (default: SIGTERM)")

    p = add("delete")
    p.add_argument("--force", "-f", action="store_true", help="forcibly delete the container if it is still running (uses SIGKILL)")
    _add_id(p)

    p = add("exec")
    p.add_argument("--console-socket", default=None, help="path to an AF_UNIX socket which will receive the pty master fd")
    p.add_argument("--cwd", default=None, help="current working directory in the container")
    p.add_argument("--env", "-e", action="append", default=[], help="set environment variables (K=V, repeatable)")
    p.add_argument("--tty", "-t", action="store_true", help="allocate a pseudo-TTY")
    p.add_argument("--user", "-u", default=None, help="UID[:GID] to run as")
    p.add_argument("--additional-gids", "-g", action="append", type=int, default=[], help="additional gids (repeatable)")
    p.add_argument("--process", "-p", default=None, help="path to a process.json (the process object of config.json)")
    p.add_argument("--detach", "-d", action="store_true", help="detach from the container's process")
    p.add_argument("--pid-file", default=None, help="file to write the process id to")
    p.add_argument("--process-label", default=None, help="set the asm process label (SELinux)")
    p.add_argument("--apparmor", default=None, help="set the apparmor profile for the process")
    p.add_argument("--no-new-privs", action="store_true", help="set no_new_privs for the process")
    p.add_argument("--cap", "-c", action="append", default=[], help="add a capability to the bounding set")
    p.add_argument("--preserve-fds", type=int, default=0, help="pass N additional file descriptors to the process")
    p.add_argument("--cgroup", action="append", default=[], help="run in a sub-cgroup (controller:path or path)")
    p.add_argument("--ignore-paused", action="store_true", help="allow exec in a paused container")
    _add_id(p)
    p.add_argument("exec_args", metavar="COMMAND", nargs=argparse.REMAINDER, help="command and arguments (after --)")

    p = add("list")
    p.add_argument("--format", "-f", default="table", choices=("table", "json"), help="table or json")
    p.add_argument("--quiet", "-q", action="store_true", help="display only container ids")

    p = add("ps")
    p.add_argument("--format", "-f", default="table", choices=("table", "json"), help="table or json")
    _add_id(p)
    p.add_argument("ps_args", nargs=argparse.REMAINDER, help="arguments for ps (table format)")

    p = add("update")
    p.add_argument("--resources", "-r", default=None, help="path to a file with linux.resources JSON, or - for stdin")
    for flag, helptext in (
        ("--blkio-weight", "blkio weight (10-1000)"), ("--cpu-period", "CPU CFS period (us)"),
        ("--cpu-quota", "CPU CFS quota (us)"), ("--cpu-share", "CPU shares (relative weight)"),
        ("--cpu-rt-period", "CPU realtime period (us)"), ("--cpu-rt-runtime", "CPU realtime runtime (us)"),
        ("--cpu-idle", "CPU idle (0 or 1, v2 only)"),
        ("--cpuset-cpus", "CPUs to use (0-3, 0,1)"), ("--cpuset-mems", "memory nodes to use"),
        ("--memory", "memory limit (bytes, or with k/m/g)"), ("--memory-reservation", "memory reservation"),
        ("--memory-swap", "memory + swap limit"), ("--pids-limit", "maximum number of pids"),
        ("--kernel-memory", "kernel memory limit (deprecated)"), ("--kernel-memory-tcp", "kernel tcp memory (deprecated)"),
        ("--l3-cache-schema", "intel RDT L3 cache schema"), ("--mem-bw-schema", "intel RDT memory bandwidth schema"),
    ):
        p.add_argument(flag, default=None, help=helptext)
    _add_id(p)

    p = add("events")
    p.add_argument("--interval", default="5s", help="set the stats collection interval (e.g. 1s, 500ms)")
    p.add_argument("--stats", action="store_true", help="display the container's stats then exit")
    _add_id(p)

    for name in ("checkpoint", "restore"):
        p = add(name)
        p.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def unsupported_command(args: argparse.Namespace) -> int:
    from pyoci_nb.errors import UnsupportedError

    raise UnsupportedError(f"'{args.command}' is not supported by pyoci",
                           why="checkpoint/restore needs CRIU, which pyoci does not drive")


def _load_handler(command: str):
    module_name, _, function = COMMANDS[command][0].partition(":")
    return getattr(importlib.import_module(module_name), function)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``pyoci``; returns the process exit status.

    Without ``argv`` this is the program itself (the console script, ``python -m pyoci_nb``),
    which is about to exit: its objects are then frozen (``gc.freeze``) so that the
    interpreter's last garbage collection does not walk every object of every imported module
    (~40 ms, more than the rest of ``pyoci state``).  Memory is returned to the system at exit
    anyway; the lifecycle commands keep no cycles that need a finalizer (files are closed by
    ``with`` blocks, the log writes unbuffered)."""
    if argv is not None:
        return _main(argv)
    try:
        return _main(sys.argv[1:])
    finally:
        import gc

        gc.freeze()


def _main(argv: list[str]) -> int:
    if argv in (["--version"], ["-v"]):
        sys.stdout.write(version_text())
        return 0
    # `pyoci --help run` shows the list of every command: build them all for help
    wants_help = "-h" in argv or "--help" in argv
    parser = build_parser(only=None if wants_help else command_in(argv))
    args = parser.parse_args(argv)
    from pyoci_nb.runtime import log

    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        log.configure(args.log, args.log_format, args.debug)
    except Exception as exc:  # bad --log-format is caught by argparse; an unwritable path is not
        sys.stderr.write(f"pyoci: {exc}\n")
        return 1
    if args.root is None:
        args.root = default_root()
    args.root = os.path.abspath(args.root)
    from pyoci_nb.errors import PyociError

    try:
        if args.systemd_cgroup:
            from pyoci_nb.errors import UnsupportedError

            raise UnsupportedError("--systemd-cgroup is not supported",
                                   where="--systemd-cgroup",
                                   why="pyoci manages cgroups through the cgroupfs driver only",
                                   hint="drop the flag (podman: --cgroup-manager=cgroupfs; containerd: SystemdCgroup = false)")
        handler = _load_handler(args.command)
        return int(handler(args) or 0)
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


def _report_error(args: argparse.Namespace, message: str) -> None:
    """Log the error (the last "level":"error" line is what engines show) and, when the log
    goes to a file, print it on stderr as well, as runc does."""
    from pyoci_nb.runtime import log

    log.error(message)
    if log.logging_to_file():
        sys.stderr.write(f"pyoci: {message}\n")


if __name__ == "__main__":
    sys.exit(main())
