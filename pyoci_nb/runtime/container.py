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

from pyoci_nb.errors import ConfigError, ContainerError, InvalidState, PyociError
from pyoci_nb.richrepr import ReprMixin
from pyoci_nb.runtime import jsonio
from pyoci_nb.runtime.children import (
    drop_subreaper,
    exit_code,
    hold_subreaper,
    kill_quietly,
    no_collection,
    note_exit,
    wait_readable,
    waitpid_retry,
)
from pyoci_nb.runtime.state import StateDir, check_id, default_root, derive_status, init_alive, list_ids, public_state

#: True in the processes that fork containers themselves: the ``pyoci`` command line and the
#: engine (``engine.py``).  Everywhere else (a script, a Jupyter kernel) the lifecycle methods
#: send their work to this process's engine, so the caller is never forked.
IN_PROCESS = False


def list_ids_quietly(root: str) -> list[str]:
    """The container ids in a state root; none if it cannot be read."""
    try:
        return list_ids(root)
    except (OSError, PyociError):
        return []


def _bundle_path(bundle) -> str:
    """The absolute path of a bundle given as a path or as anything with a ``.path`` (a Bundle)."""
    path = getattr(bundle, "path", bundle)
    return os.path.abspath(os.fspath(path))


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
    def load(cls, container_id: str, root: str | None = None) -> Container:
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
                self._exit_status = note_exit(pid, status)  # kept there too: the engine's caller asks

    # --- create ----------------------------------------------------------------------------
    @classmethod
    def create(cls, bundle, id: str | None = None, root: str | None = None, *,
               console_socket: str | None = None, console_fd: int | None = None,
               pid_file: str | None = None, no_pivot: bool = False, no_new_keyring: bool = False,
               preserve_fds: int = 0, rootless: bool | None = None,
               stdin: int | None = None, stdout: int | None = None, stderr: int | None = None,
               subreaper: bool = True, start: bool = False, remove_on_exit: bool = False,
               cleanup_paths: list[str] | None = None) -> Container:
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
            hold_subreaper(container._subreaper_key)
        try:
            from pyoci_nb.runtime.create import create_here  # (only when used: CLI start-up)

            with no_collection():
                create_here(container, bundle_path, console_socket=console_socket, console_fd=console_fd,
                            pid_file=pid_file, no_pivot=no_pivot, no_new_keyring=no_new_keyring,
                            preserve_fds=preserve_fds, rootless=rootless, stdio=(stdin, stdout, stderr),
                            start=start)
            return container
        except BaseException:
            drop_subreaper(container._subreaper_key)
            raise


    def _create_through_engine(self, bundle, console_socket, console_fd, pid_file, no_pivot, no_new_keyring,
                               preserve_fds, rootless, stdio, start, remove_on_exit, cleanup_paths) -> None:
        from pyoci_nb.runtime import process
        from pyoci_nb.runtime.engine import engine

        process.check_preserved_fds(preserve_fds)
        fds, layout = _fds_for_engine(stdio, console_fd, preserve_fds)
        result, received = engine().call(
            "create", fds, bundle=bundle, id=self.id, root=self.root, console_socket=console_socket,
            pid_file=os.path.abspath(pid_file) if pid_file else None, no_pivot=no_pivot,
            no_new_keyring=no_new_keyring, rootless=rootless, start=start, layout=layout,
            remove_on_exit=remove_on_exit, cleanup_paths=[os.fspath(p) for p in cleanup_paths or ()])
        self._pidfd = received[0] if received else None


    # --- start -----------------------------------------------------------------------------
    def start(self) -> None:
        """runtime.md "Start": run the user process of a ``created`` container, then the
        ``poststart`` hooks (a failure stops and deletes the container -- runtime.md lifecycle
        steps 9, 12, 13: poststop hooks run -- and is an error)."""
        if not IN_PROCESS:
            from pyoci_nb.runtime.engine import engine

            engine().call("start", id=self.id, root=self.root)
            return
        from pyoci_nb.runtime.start import start_here  # (each operation's modules only when used: CLI start-up)

        start_here(self)


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
                    kill_quietly(pid, number)
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
                _, status = waitpid_retry(pid)
                self._exit_status = exit_code(status)
                return self._exit_status
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done == pid:
                    self._exit_status = exit_code(status)
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
        from pyoci_nb.runtime.delete import delete_here  # (only when used: CLI start-up)

        delete_here(self, force)


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
        from pyoci_nb.runtime.exec_process import checked_exec_process, exec_detached  # (CLI start-up)

        proc = checked_exec_process(self, args, process_config, env, cwd, user, tty, console_socket, console_fd,
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
            hold_subreaper(holder)
        try:
            pid = exec_detached(self, proc, console_socket=console_socket, console_fd=console_fd,
                                     pid_file=pid_file, preserve_fds=preserve_fds, stdio=stdio)
            if detach:
                return pid
            _, status = waitpid_retry(pid)
            return exit_code(status)
        finally:
            if holder:
                drop_subreaper(holder)

    def popen(self, args: list[str] | None = None, *, process_config: dict | None = None,
              env: list[str] | dict | None = None, cwd: str | None = None, user: str | None = None,
              tty: bool = False, console_socket: str | None = None, pid_file: str | None = None,
              stdin: int | None = None, stdout: int | None = None,
              stderr: int | None = None) -> ContainerProcess:
        """Start another process in the container (as ``exec``) and return at once with a
        handle to it, like ``subprocess.Popen``: ``pid``, ``poll()``, ``wait(timeout)``,
        ``send_signal()``, ``kill()``, ``returncode``.  Its stdio are the fds given (default:
        ours), written to directly by the process."""
        from pyoci_nb.runtime.exec_process import checked_exec_process  # (CLI start-up)

        proc = checked_exec_process(self, args, process_config, env, cwd, user, tty, console_socket, None, 0,
                                  None, None, False)
        return self._exec_through_engine(proc, console_socket, None, pid_file, 0, (stdin, stdout, stderr))


    def _exec_through_engine(self, proc, console_socket, console_fd, pid_file, preserve_fds,
                             stdio) -> ContainerProcess:
        from pyoci_nb.runtime.engine import engine

        fds, layout = _fds_for_engine(stdio, console_fd, preserve_fds)
        current = engine()
        result, received = current.call("exec", fds, id=self.id, root=self.root, process=proc,
                                        console_socket=console_socket, layout=layout,
                                        pid_file=os.path.abspath(pid_file) if pid_file else None)
        return ContainerProcess(self, list(proc.get("args") or []), result["pid"],
                                received[0] if received else None, current)


class ContainerProcess:
    """A process started in a container by ``Container.popen`` (or ``exec``), like a
    ``subprocess.Popen``: the engine that made it is its parent and hands us a pidfd, which
    becomes readable when the process exits; ``returncode`` is 128+N after signal N."""

    def __init__(self, container: Container, args: list[str], pid: int, pidfd: int | None, engine):
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


def parse_signal(value: int | str) -> int:
    """A signal as runc accepts it: ``9``, ``KILL``, ``SIGKILL``, ``sigkill``.  The signal
    module (it imports enum: milliseconds) only for a name: containerd's shim sends numbers."""
    if isinstance(value, int):
        number = value
    else:
        text = str(value).strip()
        if text.isdigit():
            number = int(text)
        else:
            import signal as signal_module

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
    from pyoci_nb.runtime.preflight import load_config

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
