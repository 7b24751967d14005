"""The ``%%container`` cell magic: run a cell's body in a real OCI container.

``%load_ext pyoci_nb`` registers:

* ``%%container [options]`` -- run the cell body with ``/bin/sh -c BODY`` (or ``--shell PROG``) as
  the process of a fresh container (runtime-spec config.json ``process.args``) with pid, mount,
  uts, ipc and network namespaces (``linux.namespaces``) on an overlay snapshot of a cached
  busybox root filesystem (``root.path``; ``rootfs/overlay.py``: the cached tree is the shared,
  read-only lower layer, the container writes to its own upper layer), created, started,
  waited for and deleted through the runtime's lifecycle (runtime.md: create, start, delete).
  ``--name NAME`` creates the container on first use with a long-running first process and
  *execs* later cells into it, so files and background processes persist until
  ``%container_rm NAME`` or the kernel's exit.
* ``%containers`` -- the named containers of this kernel with their state (runtime.md "state").
* ``%container_rm NAME... | --all`` -- kill and delete named containers.

How it runs containers: a Jupyter kernel is multi-threaded, so the kernel process is never forked
to run Python in the child.  Every lifecycle operation goes to the kernel's engine
(``pyoci_nb.runtime.engine``): one single-threaded helper process, started when the extension
loads, in its own session (a kernel interrupt reaches neither it nor the containers), that runs
the same lifecycle code as the ``pyoci`` command line and forks the containers' processes.  The
cell's two terminals are handed to it (SCM_RIGHTS) and the container writes straight into them;
an exec'd process is the engine's own child in the container's pid namespace; the engine hands
back a pidfd the magic waits on.  Each kernel has a private session directory
(``$PYOCI_MAGIC_ROOT`` or ``<pyoci's default root>-nb``, then ``kernel-<pid>-<token>``) holding
the state root (``state/``), one bundle per container (``bundles/<id>``: config.json and the
snapshot; ids end with the token because cgroup paths are host-wide) and the cached root
filesystems.  If the kernel dies without cleaning up (it does so itself at exit, ``atexit``, and
on ``%unload_ext``), the engine sees its socket close and removes every container and the
session directory.

Output: the container's stdout and stderr are two pseudo-terminals (so programs line-buffer as on
a terminal) read live and written to the cell's stdout and stderr streams; stdin is /dev/null.
A non-zero exit raises ``ContainerCellError`` (a ``subprocess.CalledProcessError``, as ``%%bash``
raises) naming the status, unless ``--no-raise-error``.  Interrupting the kernel (or
``--timeout``) kills the container's processes and removes what the cell created.
"""

from __future__ import annotations

import atexit
import codecs
import contextlib
import copy
import errno
import itertools
import json
import keyword
import os
import re
import selectors
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from pyoci_nb.errors import ConfigError, ContainerError, PyociError, UnsupportedError

#: Environment variable naming the directory under which each kernel makes its session directory.
ROOT_ENV = "PYOCI_MAGIC_ROOT"
#: First process of a named container: keeps it alive and reaps orphans (pid 1 of its namespace).
KEEPER_ARGS = ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done"]
#: Options that shape a container when it is created; a later cell with ``--name`` cannot change them.
CREATION_OPTIONS = ("bundle", "rootfs", "image", "hostname", "readonly", "memory", "pids", "cpus",
                    "cap_add", "cap_drop", "net", "rootless")
#: Programs copied into a ``--rootfs host`` root filesystem besides the shell.
HOST_ROOTFS_PROGRAMS = ("sh", "sleep", "cat", "echo", "ls", "env", "id", "hostname", "ps")
#: Writable tmpfs directories of the shared, read-only ``--rootfs host`` root filesystem.
HOST_ROOTFS_WRITABLE = (("/tmp", "1777"), ("/var/tmp", "1777"), ("/run", "755"), ("/root", "700"),
                        ("/home", "755"))
#: How long the output is still read after the process exited while something else (a background
#: process of a named container) keeps the terminal open.
DRAIN_IDLE_SECONDS = 0.05
DRAIN_MAX_SECONDS = 1.0

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_HOSTNAME_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                          r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


# ----------------------------------------------------------------------------------------------
# Results and errors
# ----------------------------------------------------------------------------------------------

class ContainerCellError(subprocess.CalledProcessError):
    """The cell's process in the container exited with a non-zero status (or was killed).

    A ``subprocess.CalledProcessError`` like the one ``%%bash`` raises, so tools that look for a
    failing cell (nbval) see it.  ``returncode`` is the process's exit status as the runtime
    reports it (128 + signal number when a signal ended it).
    """

    def __init__(self, returncode: int, cmd, output=None, stderr=None, container: str = "", reason: str = ""):
        super().__init__(returncode, cmd, output, stderr)
        self.container = container
        self.reason = reason

    def __str__(self) -> str:
        program = self.cmd[0] if isinstance(self.cmd, list) and self.cmd else self.cmd
        message = (f"The cell ({program} -c ...) in container {self.container!r} returned non-zero "
                   f"exit status {self.returncode}.")
        if self.reason:
            message += f" {self.reason}"
        return message

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


class ContainerCellTimeout(ContainerCellError):
    """``--timeout SECONDS`` ran out: the cell's processes were killed."""


@dataclass
class CellResult:
    """What ``--capture VAR`` stores: the cell's exit status, its stdout and stderr (text), the
    container it ran in, the command inside the container and the runtime command on the host."""

    returncode: int
    stdout: str
    stderr: str
    container: str
    args: list[str]
    runtime_command: list[str]
    duration: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def check_returncode(self) -> None:
        """Raise ``ContainerCellError`` if the exit status is non-zero."""
        if self.returncode != 0:
            raise ContainerCellError(self.returncode, self.args, self.stdout, self.stderr, self.container)

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(f"CellResult(container={self.container!r}, returncode={self.returncode}, "
                     f"stdout={_clip(self.stdout)!r}, stderr={_clip(self.stderr)!r}, "
                     f"duration={self.duration:.3f}s)")


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _concise(exc: BaseException) -> BaseException:
    """Make IPython show a PyociError as one readable message instead of a traceback."""
    exc._render_traceback_ = lambda: [f"{type(exc).__name__}: {exc}"]  # type: ignore[attr-defined]
    return exc


# ----------------------------------------------------------------------------------------------
# Options
# ----------------------------------------------------------------------------------------------

def parse_size(text: str, option: str) -> int:
    """``64m`` / ``1g`` / ``512k`` / ``1048576`` -> bytes (binary multiples, runc's RAMInBytes,
    the same parser as ``pyoci update --memory``); must be more than 0."""
    from pyoci_nb.runtime.cgroups.commands import parse_size as parse_runc_size

    value = parse_runc_size(str(text), option)
    if value <= 0:
        raise ConfigError(f"invalid size {text!r}", where=option, why="must be more than 0 bytes")
    return value


def normalize_capability(name: str, where: str) -> str:
    """``net_admin`` / ``NET_ADMIN`` / ``CAP_NET_ADMIN`` -> ``CAP_NET_ADMIN`` (or ``ALL``)."""
    from pyoci_nb.spec.capabilities import ALL_CAPABILITIES

    upper = name.strip().upper()
    if upper == "ALL":
        return upper
    if not upper.startswith("CAP_"):
        upper = "CAP_" + upper
    if upper not in ALL_CAPABILITIES:
        raise ConfigError(f"unknown capability {name!r}", where=where,
                          why="capabilities are the names in capabilities(7)",
                          hint="e.g. NET_ADMIN, SYS_PTRACE or ALL")
    return upper


def parse_user(text: str) -> dict:
    """``UID[:GID]`` -> config.json ``process.user`` (numeric, as the runtime spec requires)."""
    match = re.match(r"^(\d+)(?::(\d+))?$", text.strip())
    if not match:
        raise ConfigError(f"invalid user {text!r}", where="--user",
                          why="process.user needs a numeric uid and gid (no name lookup in the rootfs)",
                          hint="e.g. --user 1000 or --user 1000:1000")
    uid = int(match.group(1))
    return {"uid": uid, "gid": int(match.group(2)) if match.group(2) else uid}


@dataclass
class CellOptions:
    """The ``%%container`` options, checked and converted."""

    name: str | None = None
    bundle: str | None = None
    rootfs: str | None = None
    image: str | None = None
    shell: str = "/bin/sh"
    hostname: str | None = None
    env: list[str] = field(default_factory=list)
    user: dict | None = None
    user_text: str | None = None
    workdir: str | None = None
    readonly: bool = False
    memory: int | None = None
    pids: int | None = None
    cpus: float | None = None
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    net: str | None = None
    timeout: float | None = None
    rootless: bool = False
    capture: str | None = None
    raise_error: bool = True
    if_unavailable: str = "error"

    @classmethod
    def from_args(cls, args) -> CellOptions:
        """Check every option (errors name the option, the rule and an example)."""
        if args.name is not None and not _NAME_RE.match(args.name):
            raise ConfigError(f"invalid container name {args.name!r}", where="--name",
                              why="names are 1-128 characters: letters, digits, '_', '.', '-', "
                                  "starting with a letter or digit", hint="e.g. --name web1")
        if args.image is not None:
            from pyoci_nb.image.image import ImageError, parse_source

            try:                                # a bad reference is refused before anything is made
                parse_source(args.image)
            except ImageError as exc:
                raise ImageError(exc.what, where="--image", why=exc.why, hint=exc.hint) from None
            if args.bundle is not None or args.rootfs is not None:
                raise ConfigError("--image cannot be combined with --bundle or --rootfs", where="--image",
                                  why="an image brings its own root filesystem and process defaults",
                                  hint="drop --bundle/--rootfs")
        if args.net == "bridge":
            raise UnsupportedError("--net bridge is not supported yet", where="--net",
                                   why="bridge networking (a veth pair to a host bridge) is not part "
                                       "of pyoci_nb yet",
                                   hint="use --net none (own network namespace, loopback only) or --net host")
        if args.bundle is not None and args.rootfs is not None:
            raise ConfigError("--bundle and --rootfs cannot be combined", where="--rootfs",
                              why="a bundle brings its own root filesystem (config.json root.path)",
                              hint="drop one of them")
        if args.bundle is not None and not (Path(args.bundle) / "config.json").is_file():
            raise ConfigError("not a bundle", where=str(Path(args.bundle).absolute() / "config.json"),
                              why="an OCI bundle is a directory with a config.json",
                              hint="create one with pyoci_nb.Bundle.create(path) or `pyoci spec`")
        if args.rootfs not in (None, "busybox", "host") and not Path(args.rootfs).is_dir():
            raise ConfigError(f"no such directory {args.rootfs!r}", where="--rootfs",
                              why="--rootfs is busybox, host or a directory holding a root filesystem",
                              hint="e.g. --rootfs busybox")
        if args.hostname is not None and not _HOSTNAME_RE.match(args.hostname):
            raise ConfigError(f"invalid hostname {args.hostname!r}", where="--hostname",
                              why="a hostname is dot-separated labels of letters, digits and '-'")
        for index, item in enumerate(args.env):
            key = item.partition("=")[0]
            if "=" not in item or not key or "\0" in item:
                raise ConfigError(f"invalid environment entry {item!r}", where=f"--env[{index}]",
                                  why="process.env entries are KEY=VALUE", hint="e.g. --env GREETING=hello")
        if args.workdir is not None and not args.workdir.startswith("/"):
            raise ConfigError(f"relative working directory {args.workdir!r}", where="--workdir",
                              why="process.cwd MUST be an absolute path (runtime spec)", hint="e.g. --workdir /tmp")
        if args.pids is not None and args.pids <= 0:
            raise ConfigError(f"invalid pids limit {args.pids}", where="--pids", why="must be at least 1")
        if args.cpus is not None and args.cpus <= 0:
            raise ConfigError(f"invalid cpus {args.cpus}", where="--cpus", why="must be more than 0",
                              hint="e.g. --cpus 0.5")
        if args.timeout is not None and args.timeout <= 0:
            raise ConfigError(f"invalid timeout {args.timeout}", where="--timeout", why="must be more than 0 seconds")
        if args.capture is not None and (not args.capture.isidentifier() or keyword.iskeyword(args.capture)):
            raise ConfigError(f"invalid variable name {args.capture!r}", where="--capture",
                              why="the result is stored in a Python variable", hint="e.g. --capture result")
        shell = args.shell or "/bin/sh"
        return cls(
            name=args.name, bundle=args.bundle, rootfs=args.rootfs, image=args.image,
            shell=shell, hostname=args.hostname, env=list(args.env),
            user=parse_user(args.user) if args.user is not None else None, user_text=args.user,
            workdir=args.workdir, readonly=bool(args.readonly),
            memory=parse_size(args.memory, "--memory") if args.memory is not None else None,
            pids=args.pids, cpus=args.cpus,
            cap_add=[normalize_capability(c, f"--cap-add[{i}]") for i, c in enumerate(args.cap_add)],
            cap_drop=[normalize_capability(c, f"--cap-drop[{i}]") for i, c in enumerate(args.cap_drop)],
            net=args.net, timeout=args.timeout, rootless=bool(args.rootless) or os.geteuid() != 0,
            capture=args.capture, raise_error=not args.no_raise_error, if_unavailable=args.if_unavailable,
        )

    def creation_values(self) -> dict:
        return {key: getattr(self, key) for key in CREATION_OPTIONS}

    @property
    def needs_cgroups(self) -> bool:
        return any(value is not None for value in (self.memory, self.pids, self.cpus))


def build_config(options: CellOptions, base: dict, rootfs_path: str, args: list[str],
                 default_hostname: str) -> dict:
    """config.json for one container: ``base`` (runc's default config or the ``--bundle``'s) with
    the cell's process (non-terminal; stdin is /dev/null), the root filesystem, the namespaces
    (pid, mount, uts, ipc, network unless ``--net host``), hostname, resources and capabilities."""
    config = copy.deepcopy(base)
    process = config.setdefault("process", {})
    process["terminal"] = False
    process["args"] = list(args)
    process.setdefault("cwd", "/")
    env = [item for item in process.get("env", []) if item.partition("=")[0] not in
           {entry.partition("=")[0] for entry in options.env}]
    process["env"] = env + list(options.env)
    if options.workdir:
        process["cwd"] = options.workdir
    if options.user:
        process.setdefault("user", {}).update(options.user)
    config["root"] = {"path": rootfs_path,
                      "readonly": options.readonly or (options.bundle is not None and
                                                       bool(base.get("root", {}).get("readonly")))}
    linux = config.setdefault("linux", {})
    namespaces = [ns for ns in linux.get("namespaces", []) if ns.get("type") != "network"]
    present = {ns.get("type") for ns in namespaces}
    for kind in ("pid", "mount", "uts", "ipc"):
        if kind not in present:
            namespaces.append({"type": kind})
    if options.net != "host":
        namespaces.append({"type": "network"})
    linux["namespaces"] = namespaces
    config["hostname"] = options.hostname or (config.get("hostname") if options.bundle else None) or default_hostname
    resources = linux.setdefault("resources", {})
    if options.memory is not None:
        resources.setdefault("memory", {})["limit"] = options.memory
    if options.pids is not None:
        resources["pids"] = {"limit": options.pids}
    if options.cpus is not None:
        period = 100000
        resources.setdefault("cpu", {}).update({"period": period, "quota": int(options.cpus * period)})
    if options.cap_add or options.cap_drop:
        from pyoci_nb.spec.capabilities import ALL_CAPABILITIES

        capabilities = process.setdefault("capabilities", {})
        for kind in ("bounding", "effective", "permitted", "ambient"):
            current = list(capabilities.get(kind, []))
            if kind == "ambient" and kind not in capabilities:
                continue
            if "ALL" in options.cap_drop:
                current = []
            current = [cap for cap in current if cap not in options.cap_drop]
            added = list(ALL_CAPABILITIES) if "ALL" in options.cap_add else options.cap_add
            current += [cap for cap in added if cap not in current]
            capabilities[kind] = current
    return config


def _absolute_bind_sources(config: dict, bundle_dir: Path) -> None:
    """Relative bind-mount sources are relative to the bundle (runtime-spec config.md "mounts");
    the magic writes its own bundle elsewhere, so make them absolute."""
    for mount in config.get("mounts", []):
        source = mount.get("source")
        is_bind = mount.get("type") == "bind" or any(opt in ("bind", "rbind") for opt in mount.get("options", []))
        if is_bind and source and not source.startswith("/"):
            mount["source"] = str((bundle_dir / source).absolute())


# ----------------------------------------------------------------------------------------------
# Running processes and reading their output
# ----------------------------------------------------------------------------------------------

def _engine():
    from pyoci_nb.runtime.engine import engine

    return engine()


class _OutputTerminals:
    """Two pseudo-terminals for the process's stdout and stderr.

    The process sees terminals (``isatty``), so C stdio and Python line-buffer their output as on a
    console instead of holding it back until exit; output post-processing is off (no ``\\r\\n``).
    Falls back to pipes where no pty can be opened.  The slaves go to the engine (SCM_RIGHTS),
    which gives them to the container: it writes straight into them.
    """

    def __init__(self):
        self.pairs: list[tuple[int, int]] = []
        self._closed: set[int] = set()
        try:
            import tty

            for _ in range(2):
                master, slave = os.openpty()
                tty.setraw(slave)
                self.pairs.append((master, slave))
            self.terminals = True
        except OSError:
            self.close()
            self._closed.clear()
            self.pairs = [os.pipe(), os.pipe()]
            self.terminals = False

    @property
    def child_stdout(self) -> int:
        return self.pairs[0][1]

    @property
    def child_stderr(self) -> int:
        return self.pairs[1][1]

    @property
    def readers(self) -> tuple[int, int]:
        return self.pairs[0][0], self.pairs[1][0]

    def close_child_ends(self) -> None:
        """Close this process's copies of the child's ends (once: a closed fd number is reused)."""
        for _, child_end in self.pairs:
            if child_end not in self._closed:
                self._closed.add(child_end)
                os.close(child_end)

    def close(self) -> None:
        for pair in self.pairs:
            for fd in pair:
                if fd not in self._closed:
                    self._closed.add(fd)
                    with contextlib.suppress(OSError):
                        os.close(fd)


class _Stream:
    """One output stream: decodes UTF-8 incrementally, writes to the cell, keeps text for --capture."""

    def __init__(self, target, keep: bool):
        self.target = target
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.kept: list[str] | None = [] if keep else None

    def feed(self, data: bytes, final: bool = False) -> None:
        text = self.decoder.decode(data, final)
        if not text:
            return
        if self.kept is not None:
            self.kept.append(text)
        target = self.target()
        target.write(text)
        target.flush()

    @property
    def text(self) -> str:
        return "".join(self.kept or [])


def _pump(exit_fd: int | None, fds: dict[int, _Stream], deadline: float | None) -> bool:
    """Copy output to the cell until the process behind the pidfd ``exit_fd`` has exited and its
    output is read; True then, False on the deadline (None: it had already exited).

    After the exit, output is read until every writer closed its end or nothing arrives for
    ``DRAIN_IDLE_SECONDS`` (a background process of a named container may keep it open).
    """
    selector = selectors.DefaultSelector()
    exited_at = None if exit_fd is not None else time.monotonic()
    try:
        for fd in fds:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        if exit_fd is not None:
            selector.register(exit_fd, selectors.EVENT_READ)
        open_fds = set(fds)
        while open_fds or exited_at is None:
            now = time.monotonic()
            if exited_at is None:
                if deadline is not None and now >= deadline:
                    return False
                wait = None if deadline is None else max(0.0, deadline - now)
            else:
                if now - exited_at > DRAIN_MAX_SECONDS:
                    break
                wait = DRAIN_IDLE_SECONDS
            events = selector.select(wait)
            if not events and exited_at is not None:
                break
            for key, _ in events:
                if key.fd == exit_fd:
                    selector.unregister(exit_fd)
                    exited_at = time.monotonic()
                    continue
                try:
                    data = os.read(key.fd, 65536)
                except BlockingIOError:
                    continue
                except OSError as exc:  # EIO: every writer of the terminal closed it
                    if exc.errno != errno.EIO:
                        raise
                    data = b""
                if data:
                    fds[key.fd].feed(data)
                else:
                    selector.unregister(key.fd)
                    open_fds.discard(key.fd)
        return True
    finally:
        selector.close()
        for stream in fds.values():
            stream.feed(b"", final=True)


@contextlib.contextmanager
def _sigint_deferred():
    """While cleaning up after an interrupt, a second interrupt must not leave things half-removed:
    SIGINT is noted and dropped (main thread only; other threads cannot change handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc; host pids)."""
    from pyoci_nb.runtime.syscalls import proc_stat

    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = proc_stat(entry)
        if stat is not None:
            children.setdefault(stat.ppid, []).append(int(entry))
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        queue.extend(children.get(current, []))
    return found


# ----------------------------------------------------------------------------------------------
# The kernel's session: state root, bundles, named containers
# ----------------------------------------------------------------------------------------------

@dataclass
class NamedContainer:
    """A container kept across cells (``--name``)."""

    name: str
    id: str
    bundle: Path
    created: float
    options: dict
    rootfs_kind: str
    cells: int = 0


class MagicSession:
    """Everything one kernel's magic owns, under one private session directory:
    ``state/`` (the runtime's state root), ``bundles/<id>/`` (config.json and, for busybox, the
    container's overlay snapshot) and the cached root filesystems.  The engine removes it all if
    the kernel dies; ``shutdown()`` does it otherwise."""

    def __init__(self, base_dir: str | None = None):
        self.base_dir = Path(base_dir or os.environ.get(ROOT_ENV) or _default_base())
        self.dir: Path | None = None
        self.named: dict[str, NamedContainer] = {}
        self._counter = itertools.count(1)
        self._rootfs_cache: dict[tuple, Path] = {}
        self.overlay_unavailable: str | None = None

    # -- directories ---------------------------------------------------------------------------
    def ensure_dir(self) -> Path:
        """Create the session directory (on first use) and have the engine remove it, with every
        container in it, if this kernel goes away without ``shutdown()``."""
        if self.dir is None:
            # the base must be ours and closed to others (as a state root): another user could
            # otherwise pre-create it and swap our session directory for a link
            from pyoci_nb.runtime.state import open_root

            os.close(open_root(str(self.base_dir), create=True))
            self.dir = Path(tempfile.mkdtemp(prefix=f"kernel-{os.getpid()}-", dir=self.base_dir))
            # container ids carry the session's token: cgroup paths (<runtime>/<id>) are host-wide
            self.token = self.dir.name.rsplit("-", 1)[-1]
            (self.dir / "state").mkdir(mode=0o700)
            (self.dir / "bundles").mkdir()
            _engine().call("cleanup_on_exit", root=str(self.dir / "state"), path=str(self.dir))
            atexit.register(self.shutdown)
        return self.dir

    @property
    def state_root(self) -> Path:
        return self.ensure_dir() / "state"

    def container(self, container_id: str):
        from pyoci_nb.runtime.container import Container

        return Container(container_id, str(self.state_root))

    def cli_equivalent(self, *args: str) -> list[str]:
        """The ``pyoci`` command line that does what the magic asks the engine for (shown by
        ``--if-unavailable explain`` and kept in ``CellResult.runtime_command``)."""
        return ["pyoci", "--root", str(self.state_root), *args]

    # -- root filesystems and bundles ----------------------------------------------------------
    def _cached_rootfs(self, kind: str, programs: tuple[str, ...] = ()) -> Path:
        key = (kind, programs)
        if key not in self._rootfs_cache:
            from pyoci_nb import rootfs
            from pyoci_nb.errors import RootfsError

            dest = self.ensure_dir() / f"rootfs-{kind}-{len(self._rootfs_cache)}"
            try:
                if kind == "busybox":
                    rootfs.busybox(dest)
                else:
                    rootfs.from_host(dest, list(programs))
            except RootfsError as exc:
                other = "or run the cell on another root filesystem: --rootfs busybox|host|DIR or --bundle DIR"
                raise RootfsError(exc.what, where=exc.where, why=exc.why,
                                  hint=f"{exc.hint}; {other}" if exc.hint else other) from None
            self._rootfs_cache[key] = dest
        return self._rootfs_cache[key]

    def make_bundle(self, container_id: str, options: CellOptions, args: list[str]) -> Path:
        """Write ``bundles/<id>/config.json`` and, for busybox, the container's overlay snapshot
        of the cached root filesystem (removed again if that fails)."""
        bundle = self.ensure_dir() / "bundles" / container_id
        bundle.mkdir()
        try:
            self._fill_bundle(bundle, options, args)
        except BaseException:
            self.remove_bundle(container_id)
            raise
        return bundle

    def _fill_bundle(self, bundle: Path, options: CellOptions, args: list[str]) -> None:
        from pyoci_nb.spec.defaults import default_config

        snapshot = None
        if options.bundle is not None:
            source = Path(options.bundle).absolute()
            try:
                base = json.loads((source / "config.json").read_text())
            except (OSError, ValueError) as exc:
                raise ConfigError("cannot read config.json", where=str(source / "config.json"),
                                  why=str(exc)) from None
            _absolute_bind_sources(base, source)
            root_path = str((source / base.get("root", {}).get("path", "rootfs")).absolute())
        elif options.image is not None:  # the image's layers from the shared store, under a snapshot
            from pyoci_nb.image.bundle import cell_root

            base, snapshot, root_path = cell_root(options.image, bundle, options.rootless)
        else:
            base = default_config(rootless=options.rootless)
            kind = options.rootfs or "busybox"
            if kind == "busybox":  # a private writable layer over the shared cached rootfs
                snapshot, root_path = self._busybox_root(bundle)
            elif kind == "host":  # tens of MB (Python's stdlib): shared read-only, tmpfs where programs write
                from pyoci_nb.rootfs.host import find_host_program

                extras = []
                for program in HOST_ROOTFS_PROGRAMS:
                    with contextlib.suppress(PyociError):
                        find_host_program(program)
                        extras.append(program)
                programs = tuple(dict.fromkeys((options.shell, *extras)))
                root_path = str(self._cached_rootfs(kind, programs))
            else:
                root_path = str(Path(kind).absolute())
        default_hostname = options.name or "pyoci"
        config = build_config(options, base, root_path, args, default_hostname)
        if snapshot is not None:
            snapshot.apply_to(config)
        if options.rootfs == "host":
            config["root"]["readonly"] = True
            config["mounts"] = config.get("mounts", []) + [
                {"destination": path, "type": "tmpfs", "source": "tmpfs",
                 "options": ["nosuid", "nodev", f"mode={mode}", "size=65536k"]}
                for path, mode in HOST_ROOTFS_WRITABLE]
        (bundle / "config.json").write_text(json.dumps(config, indent=2))

    def _busybox_root(self, bundle: Path):
        """An overlay snapshot of the cached busybox rootfs (nothing copied), or a private copy
        where this kernel cannot mount overlays (the reason is kept in ``overlay_unavailable``)."""
        from pyoci_nb.rootfs.overlay import Snapshot, overlay_support

        cached = self._cached_rootfs("busybox")
        if self.overlay_unavailable is None:
            reason = overlay_support(rootless=os.geteuid() != 0)
            self.overlay_unavailable = reason or ""
        if not self.overlay_unavailable:
            snapshot = Snapshot.create([cached], bundle / "snapshot")
            return snapshot, str(snapshot.rootfs)
        from pyoci_nb.rootfs.tree import copy_tree

        copy_tree(cached, bundle / "rootfs")
        return None, str(bundle / "rootfs")

    def remove_bundle(self, container_id: str) -> None:
        from pyoci_nb.rootfs.tree import remove_tree

        with contextlib.suppress(FileNotFoundError):
            remove_tree(self.ensure_dir() / "bundles" / container_id)

    def new_id(self, name: str | None = None) -> str:
        """A container id unique on this host: ``NAME-TOKEN`` or ``cell-N-TOKEN``."""
        self.ensure_dir()
        return f"{name}-{self.token}" if name else f"cell-{next(self._counter)}-{self.token}"

    def status(self, container_id: str) -> str:
        """The container's status (runtime.md "state"), or why it is unknown."""
        try:
            return self.container(container_id).status
        except PyociError as exc:
            return f"unknown ({_clip(str(exc), 120)})"

    def container_exists(self, container_id: str) -> bool:
        return (self.state_root / container_id).exists()

    def delete(self, container_id: str) -> None:
        """Kill and delete a container; the engine removes its bundle with it."""
        from pyoci_nb.runtime.engine import running_engine

        with _sigint_deferred():
            try:
                if self.container_exists(container_id):
                    self.container(container_id).delete(force=True)
            except PyociError:
                if running_engine() is not None and self.container_exists(container_id):
                    raise
            self.remove_bundle(container_id)

    # -- host check ------------------------------------------------------------------------------
    def unavailable(self, options: CellOptions):
        """The probe's missing pieces for this cell's container (empty when it can be created)."""
        from pyoci_nb.notebook.probe import probe

        try:
            result = probe()
        except (PyociError, OSError, subprocess.SubprocessError, ValueError):
            return None, []
        missing = result.missing(rootless=options.rootless, network_namespace=options.net != "host",
                                 cgroups=options.needs_cgroups and not options.rootless)
        return result, missing

    # -- running cells ---------------------------------------------------------------------------
    def run_fresh(self, options: CellOptions, args: list[str]) -> CellResult:
        """A new container for this cell, created and started by the engine with the cell's
        terminals as its stdout and stderr; waited for, then deleted: nothing is left."""
        container_id = self.new_id()
        bundle = self.make_bundle(container_id, options, args)
        command = self.cli_equivalent("run", "--bundle", str(bundle), container_id)
        return self._run_streaming(command, options, container_id, args, lambda stdio: self._start_fresh(
            container_id, bundle, stdio), cleanup=lambda: self.delete(container_id))

    def _start_fresh(self, container_id: str, bundle: Path, stdio: tuple):
        from pyoci_nb.runtime.container import Container

        try:
            container = Container.create(bundle, id=container_id, root=str(self.state_root), start=True,
                                         stdin=stdio[0], stdout=stdio[1], stderr=stdio[2],
                                         remove_on_exit=True, cleanup_paths=[str(bundle)])
        except BaseException:
            self.remove_bundle(container_id)
            raise
        return _FreshCell(container)

    def create_named(self, options: CellOptions) -> NamedContainer:
        """Create and start a named container whose first process keeps it alive."""
        from pyoci_nb.runtime.container import Container

        name = options.name
        container_id = self.new_id(name)
        bundle = self.make_bundle(container_id, options, KEEPER_ARGS)
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            Container.create(bundle, id=container_id, root=str(self.state_root), start=True,
                             stdin=null, stdout=null, stderr=null, remove_on_exit=True,
                             cleanup_paths=[str(bundle)])
        except PyociError as exc:
            self.remove_bundle(container_id)
            raise ContainerError(f"cannot create container {name!r}", where=exc.where, why=exc.what + (
                f": {exc.why}" if exc.why else ""),
                hint="a named container's first process is /bin/sh (a keep-alive loop with sleep), so "
                     "its root filesystem needs sh and sleep") from None
        except BaseException:
            self.remove_bundle(container_id)
            raise
        finally:
            os.close(null)
        container = NamedContainer(name, container_id, bundle, time.time(), options.creation_values(),
                                   options.bundle or options.image or options.rootfs or "busybox")
        self.named[name] = container
        return container

    def exec_named(self, container: NamedContainer, options: CellOptions, args: list[str]) -> CellResult:
        """Run the cell as a new process in the named container (``exec``)."""
        container.cells += 1
        flags: list[str] = []
        for item in options.env:
            flags += ["--env", item]
        if options.workdir:
            flags += ["--cwd", options.workdir]
        if options.user_text:
            flags += ["--user", options.user_text]
        command = self.cli_equivalent("exec", *flags, container.id, *args)
        target = self.container(container.id)

        def start(stdio):
            return _ExecCell(target.popen(args, env=list(options.env) or None, cwd=options.workdir,
                                          user=options.user_text, stdin=stdio[0], stdout=stdio[1],
                                          stderr=stdio[2]))

        return self._run_streaming(command, options, container.name, args, start, cleanup=None)

    def _run_streaming(self, command, options: CellOptions, container: str, args, start, cleanup) -> CellResult:
        terminals = _OutputTerminals()
        streams = {terminals.readers[0]: _Stream(lambda: sys.stdout, options.capture is not None),
                   terminals.readers[1]: _Stream(lambda: sys.stderr, options.capture is not None)}
        started = time.monotonic()
        cell = None
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            try:
                cell = start((null, terminals.child_stdout, terminals.child_stderr))
            finally:
                os.close(null)
                terminals.close_child_ends()
            deadline = started + options.timeout if options.timeout else None
            finished = _pump(cell.exit_fd(), streams, deadline)
            if not finished:
                with _sigint_deferred():
                    cell.stop()
                    _pump(cell.exit_fd(), streams, None)
                raise ContainerCellTimeout(cell.returncode(), args, container=container,
                                           reason=f"The cell ran longer than --timeout {options.timeout:g} s "
                                                  "and was killed.")
            returncode = cell.returncode()
        except KeyboardInterrupt:
            if cell is not None:
                with _sigint_deferred():
                    cell.stop()
            raise
        finally:
            terminals.close()
            if cleanup is not None:
                cleanup()
        out, err = streams.values()
        return CellResult(returncode, out.text, err.text, container, list(args), list(command),
                          time.monotonic() - started)

    def remove_named(self, name: str) -> None:
        """Kill and delete a named container and its bundle."""
        container = self.named.pop(name)
        self.delete(container.id)
        if self.container_exists(container.id):
            raise ContainerError(f"container {name!r} could not be deleted",
                                 where=str(self.state_root / container.id),
                                 hint=f"pyoci --root {self.state_root} delete --force {container.id}")

    def shutdown(self) -> None:
        """Delete every container of this kernel and remove the session directory."""
        if self.dir is None:
            return
        from pyoci_nb.rootfs.tree import remove_tree
        from pyoci_nb.runtime.engine import running_engine

        with _sigint_deferred():
            self.named.clear()
            state_root = self.dir / "state"
            with contextlib.suppress(OSError):
                for container_id in sorted(os.listdir(state_root)):
                    with contextlib.suppress(PyociError):
                        self.delete(container_id)
            with contextlib.suppress(OSError):
                remove_tree(self.dir)
            current = running_engine()
            if current is not None:
                with contextlib.suppress(PyociError):
                    current.call("cleanup_on_exit", root=str(state_root), forget=True)
            with contextlib.suppress(Exception):
                atexit.unregister(self.shutdown)
            self.dir = None
            self._rootfs_cache.clear()


class _FreshCell:
    """A fresh container running a cell: its init is the cell's process."""

    def __init__(self, container):
        self.container = container
        self._status: int | None = None

    def exit_fd(self) -> int | None:
        return self.container._pidfd

    def returncode(self) -> int:
        """The init's exit status, collected by deleting the container (one request)."""
        if self._status is None:
            self.container.delete(force=True)
            status = self.container.wait()
            self._status = -9 if status is None else status
        return self._status

    def stop(self) -> None:
        """SIGKILL to the init: the kernel then kills its whole pid namespace."""
        with contextlib.suppress(PyociError):
            self.container.kill("SIGKILL")


class _ExecCell:
    """A process exec'd into a named container for one cell."""

    def __init__(self, process):
        self.process = process

    def exit_fd(self) -> int | None:
        return self.process.fileno()

    def returncode(self) -> int:
        return self.process.wait()

    def stop(self) -> None:
        """SIGKILL to the process and everything it started (the container's keeper stays)."""
        for target in reversed(_descendants(self.process.pid)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(target, signal.SIGKILL)
        self.process.kill()



def _default_base() -> str:
    from pyoci_nb.runtime.state import default_root

    return default_root() + "-nb"


# ----------------------------------------------------------------------------------------------
# The magics
# ----------------------------------------------------------------------------------------------

@magics_class
class ContainerMagics(Magics):
    """``%%container``, ``%containers`` and ``%container_rm`` (see the module docstring)."""

    def __init__(self, shell, session: MagicSession | None = None):
        super().__init__(shell)
        self.session = session or MagicSession()

    @magic_arguments()
    @argument("-h", "--help", action="store_true", help="show this help and do nothing else")
    @argument("--name", default=None, help="create the container on first use and keep it; later cells "
              "with the same name exec into it (files and processes persist) until %%container_rm NAME "
              "or the kernel exits")
    @argument("--bundle", default=None, metavar="DIR", help="use this OCI bundle's config.json and rootfs")
    @argument("--rootfs", default=None, metavar="busybox|host|DIR",
              help="root filesystem: busybox (default, a private writable copy), host (the shell and a "
                   "few programs copied from the host with their libraries, built once per kernel and "
                   "shared read-only, with tmpfs on /tmp, /var/tmp, /run, /root, /home) or a directory "
                   "(used in place)")
    @argument("--image", default=None, metavar="REF", help="an OCI image (e.g. 127.0.0.1:5000/demo:1), pulled "
              "into the local image store on first use; its layers are shared read-only under the "
              "container's overlay and its Env, WorkingDir and User apply")
    @argument("--shell", default=None, metavar="PROG", help="run the cell as PROG -c BODY (default /bin/sh), "
              "e.g. python3 with --rootfs host")
    @argument("--hostname", default=None, help="the container's hostname (default: its name, or pyoci)")
    @argument("--env", "-e", action="append", default=[], metavar="K=V",
              help="set an environment variable (repeatable)")
    @argument("--user", "-u", default=None, metavar="UID[:GID]", help="run as this numeric user")
    @argument("--workdir", "-w", default=None, metavar="DIR", help="working directory (absolute)")
    @argument("--readonly", action="store_true", help="mount the root filesystem read-only")
    @argument("--memory", default=None, help="memory limit, e.g. 64m (linux.resources.memory.limit)")
    @argument("--pids", type=int, default=None, help="maximum number of processes (linux.resources.pids.limit)")
    @argument("--cpus", type=float, default=None, help="CPU limit in CPUs, e.g. 0.5 (CFS quota/period)")
    @argument("--cap-add", action="append", default=[], metavar="CAP", help="add a capability (repeatable; ALL)")
    @argument("--cap-drop", action="append", default=[], metavar="CAP", help="drop a capability (repeatable; ALL)")
    @argument("--net", default=None, choices=("none", "host", "bridge"),
              help="none: own network namespace with loopback (default); host: share the host's; "
                   "bridge: not supported yet")
    @argument("--timeout", type=float, default=None, metavar="SECONDS", help="kill the cell after this long")
    @argument("--rootless", action="store_true", help="run in a user namespace as with `runc spec --rootless` "
              "(automatic when the kernel is not root)")
    @argument("--capture", default=None, metavar="VAR", help="store a CellResult (returncode, stdout, stderr) in VAR")
    @argument("--no-raise-error", action="store_true", help="do not raise ContainerCellError on a non-zero exit")
    @argument("--if-unavailable", default="error", choices=("error", "explain"),
              help="when this host cannot create containers: error (default) or explain (show the "
                   "bundle and commands that would have run)")
    @line_cell_magic
    def container(self, line: str, cell: str | None = None):
        """Run the cell body in a real OCI container (a fresh one, or the one named by --name).

        ``%%container --help`` (alone in a cell) or ``%container --help`` shows the options;
        everything else needs the cell form.
        """
        args = parse_argstring(self.container, line)
        if args.help:
            print(self.container.parser.format_help().lstrip(":").lstrip("\n"))
            return None
        if cell is None:
            raise UsageError("%%container runs a cell: put %%container [options] on the first line of a "
                             "cell and the commands below it (%container --help lists the options)")
        try:
            options = CellOptions.from_args(args)
            return self._run_cell(options, cell)
        except PyociError as exc:
            raise _concise(exc) from None
        except KeyboardInterrupt as exc:
            # IPython would format every frame of the magic (seconds); say what happened instead
            what = ("the cell's processes were killed; the container is kept" if args.name
                    else "the container was killed and removed")
            exc._render_traceback_ = lambda: [f"KeyboardInterrupt: {what}"]  # type: ignore[attr-defined]
            raise

    def _run_cell(self, options: CellOptions, cell: str):
        session = self.session
        command = [options.shell, "-c", cell]
        existing = session.named.get(options.name) if options.name else None
        if existing is not None:
            requested = options.creation_values()
            for key in CREATION_OPTIONS:
                value = requested[key]
                if value not in (None, [], False) and value != existing.options[key]:
                    raise UsageError(f"--{key.replace('_', '-')} applies when container {options.name!r} "
                                     f"is created, and it already exists; remove it first with "
                                     f"%container_rm {options.name}")
            result = session.exec_named(existing, options, command)
            if result.returncode != 0:
                status = session.status(existing.id)
                if status != "running":
                    raise ContainerError(f"named container {options.name!r} is {status}", where="--name",
                                         why="cells exec into the container's running first process, "
                                             "which has exited",
                                         hint=f"remove it with %container_rm {options.name}; the next cell "
                                              "with this name creates it again")
        else:
            probe_result, missing = session.unavailable(options)
            if missing:
                return self._unavailable(options, command, probe_result, missing)
            if options.name:
                container = session.create_named(options)
                result = session.exec_named(container, options, command)
            else:
                result = session.run_fresh(options, command)
        if options.capture:
            self.shell.user_ns[options.capture] = result
        if result.returncode != 0 and options.raise_error:
            raise ContainerCellError(result.returncode, command, result.stdout, result.stderr, result.container)
        if result.returncode != 0:  # --no-raise-error: not raised, but never silent
            print(f"%%container: exit status {result.returncode}", file=sys.stderr)
        return None

    def _unavailable(self, options: CellOptions, command: list[str], probe_result, missing):
        reasons = "; ".join(f"{item.name}: {item.why}" for item in missing)
        fixes = "; ".join(dict.fromkeys(item.fix for item in missing))
        if options.if_unavailable != "explain":
            raise ContainerError("containers cannot be created on this host", where="%%container",
                                 why=reasons, hint=f"{fixes}; pyoci_nb.probe() shows the details, and "
                                                   "--if-unavailable explain shows what would have run")
        from IPython.display import display

        session = self.session
        container_id = session.new_id(options.name)
        bundle = session.make_bundle(container_id, options, KEEPER_ARGS if options.name else command)
        if options.name:
            commands = [session.cli_equivalent("run", "--detach", "--bundle", str(bundle), container_id),
                        session.cli_equivalent("exec", container_id, *command)]
        else:
            commands = [session.cli_equivalent("run", "--bundle", str(bundle), container_id)]
        print("Containers cannot be created on this host, so nothing ran. This is what would have run:")
        for item in commands:
            print("  $ " + shlex.join(item))
        print(f"bundle (kept for inspection until the kernel exits): {bundle}")
        config = json.loads((bundle / "config.json").read_text())
        shown = config
        with contextlib.suppress(Exception):
            from pyoci_nb.spec import load_spec

            shown = load_spec(config)
        display(shown if shown is not config else _JsonText(config))
        display(probe_result)
        return None

    @line_magic
    def containers(self, line: str = ""):
        """List this kernel's named containers with their runtime state."""
        rows = []
        for name, container in self.session.named.items():
            try:
                state = self.session.container(container.id).state()
                status, pid = state.get("status", "unknown"), state.get("pid", 0)
            except PyociError as exc:
                status, pid = f"unknown ({_clip(str(exc), 80)})", 0
            rows.append((name, container.id, status, str(pid), container.rootfs_kind,
                         time.strftime("%H:%M:%S", time.localtime(container.created)), str(container.cells)))
        return ContainerTable(rows, str(self.session.state_root) if self.session.dir else "")

    @line_magic
    def container_rm(self, line: str):
        """``%container_rm NAME...`` or ``%container_rm --all``: kill and delete named containers."""
        names = shlex.split(line)
        if not names:
            raise UsageError("usage: %container_rm NAME... | --all")
        if names == ["--all"]:
            names = list(self.session.named)
        unknown = [name for name in names if name not in self.session.named]
        if unknown:
            known = ", ".join(self.session.named) or "none"
            raise UsageError(f"no named container {', '.join(map(repr, unknown))} in this kernel "
                             f"(named containers: {known})")
        for name in names:
            try:
                self.session.remove_named(name)
            except PyociError as exc:
                raise _concise(exc) from None
            print(f"removed {name}")


class _JsonText:
    """config.json shown as indented JSON (when the pydantic spec model cannot load it)."""

    def __init__(self, data: dict):
        self.data = data

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(json.dumps(self.data, indent=2))


class ContainerTable:
    """``%containers``: the named containers of this kernel and their state."""

    HEADERS = ("name", "id", "status", "pid", "rootfs", "created", "cells")

    def __init__(self, rows: list[tuple[str, ...]], state_root: str):
        self.rows = rows
        self.state_root = state_root

    @property
    def names(self) -> list[str]:
        return [row[0] for row in self.rows]

    def _repr_pretty_(self, printer, cycle) -> None:
        if not self.rows:
            printer.text("no named containers in this kernel")
            return
        widths = [max(len(h), *(len(r[i]) for r in self.rows)) for i, h in enumerate(self.HEADERS)]
        lines = ["  ".join(h.upper().ljust(w) for h, w in zip(self.HEADERS, widths, strict=False))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) for row in self.rows]
        printer.text("\n".join(lines))

    def _repr_html_(self) -> str:
        from html import escape

        if not self.rows:
            return "<p>no named containers in this kernel</p>"
        head = "".join(f"<th style='text-align:left'>{escape(h)}</th>" for h in self.HEADERS)
        body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{escape(c)}</td>" for c in row) + "</tr>"
                       for row in self.rows)
        return (f"<table class='pyoci-containers'><caption style='text-align:left'>named containers "
                f"(state root {escape(self.state_root)})</caption><thead><tr>{head}</tr></thead>"
                f"<tbody>{body}</tbody></table>")


_registered: dict[int, ContainerMagics] = {}


def _help_cell(lines: list[str]) -> list[str]:
    """An input transformer: a cell that is only ``%%container ... --help`` (which IPython
    refuses: "the cell body is empty") runs as the line magic, which prints the help."""
    first = lines[0].strip() if lines else ""
    if first.startswith("%%container ") and not any(line.strip() for line in lines[1:]) and \
            {"-h", "--help"} & set(first.split()[1:]):
        return [first[1:] + "\n"]
    return lines


def load_ipython_extension(ipython) -> None:
    """Register the magics on this IPython shell (once)."""
    if id(ipython) in _registered:
        return
    magics = ContainerMagics(ipython)
    ipython.register_magics(magics)
    ipython.input_transformers_cleanup.append(_help_cell)  # `%%container --help` alone in a cell
    _registered[id(ipython)] = magics
    # start the engine now (it imports while the user types): the first cell does not wait for it
    with contextlib.suppress(Exception):
        _engine()


def unload_ipython_extension(ipython) -> None:
    """Remove this kernel's containers (named ones included) and forget the session."""
    magics = _registered.pop(id(ipython), None)
    with contextlib.suppress(ValueError):
        ipython.input_transformers_cleanup.remove(_help_cell)
    if magics is not None:
        magics.session.shutdown()
