"""The engine: one small single-threaded process that makes containers for a Python process.

A Jupyter kernel is multi-threaded (heartbeat, IOPub, history threads): forking it and running
Python in the child can deadlock on a lock another thread held at fork time.  So the Python API
(``Container``, ``run``) and the ``%%container`` magic never fork the caller: each process gets
one engine, started once (lazily, or early by ``%load_ext``) with ``subprocess`` as ``python -S
-m pyoci_nb.runtime.engine FD``, in its own session (a kernel interrupt does not reach it).
The engine runs the same lifecycle code as the ``pyoci`` command line (``container.py`` with
``IN_PROCESS`` set) and forks the containers' processes itself, so:

* the caller passes the container's stdio (its pipes or pty slaves) to the engine with
  ``SCM_RIGHTS``; the container writes straight into them, live, stdout and stderr apart;
* the engine is the parent (a permanent subreaper) of every container init and exec'd process:
  it reaps them as they exit and keeps their exit statuses until the caller asks (``status``),
  and hands the caller a *pidfd* of each, which becomes readable when the process exits -- the
  caller waits on that, never on the engine;
* ``exec`` forks the new process straight into the container's pid namespace (``setns`` of
  ``pid_for_children`` around the fork), so the process is the engine's child and nothing sits
  between them;
* when the caller's end of the socket closes (the caller exited, or was killed), the engine
  force-deletes the containers the caller marked ``remove_on_exit`` (``run()``'s and the
  magic's), removes the paths it registered (the magic's session directory) and exits: a
  killed kernel leaves nothing behind.

Protocol: requests and replies are ``Channel`` messages (JSON, fds in SCM_RIGHTS) on a
SOCK_SEQPACKET socket pair, one request at a time.  A request is ``{"op": NAME, ...}``; a
reply ``{"ok": RESULT, "warnings": [...]}`` or ``{"error": {"class", "what", "where", "why",
"hint"}, "warnings": [...]}``.  An interrupt of the caller while a create or exec is being made
is forwarded as SIGINT, which the engine turns into KeyboardInterrupt only while an operation
runs (the operation's own clean-up then removes what it made).
"""

from __future__ import annotations

import os
import sys
import threading

from pyoci_nb.errors import ContainerError
from pyoci_nb.runtime import children
from pyoci_nb.runtime import messages as msg
from pyoci_nb.runtime.create import write_file_atomic
from pyoci_nb.runtime.exec_process import (
    compiled_seccomp,
    exec_conversation,
    exec_detached,
)
from pyoci_nb.runtime.init import Channel

#: requests the caller may interrupt (SIGINT to the engine): they can wait on hooks or sockets
INTERRUPTIBLE = frozenset({"create", "start", "exec"})


class EngineChannel(Channel):
    """A ``Channel`` that carries up to the kernel's limit of fds per message (SCM_MAX_FD):
    three stdio fds, a console and the ``preserve_fds`` of a request."""

    MAX_FDS = 253


# ---------------------------------------------------------------------------------------------
# the caller's side
# ---------------------------------------------------------------------------------------------

class EngineError(ContainerError):
    """The engine process died or broke the protocol (its stderr says why)."""


class Engine:
    """The caller's handle on its engine process (``engine()`` returns the one of this process)."""

    def __init__(self):
        import socket
        import subprocess

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ)
        package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        if package_parent not in paths:  # -S: no site-packages; pyoci_nb must still be importable
            env["PYTHONPATH"] = os.pathsep.join([package_parent, *paths])
        # its own session: a kernel interrupt (SIGINT to the kernel's process group) must not
        # reach it; the caller forwards an interrupt itself, for the request it waits on
        self.process = subprocess.Popen(
            [sys.executable, "-S", "-m", "pyoci_nb.runtime.engine", str(theirs.fileno())],
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, start_new_session=True, env=env)
        theirs.close()
        self.channel = EngineChannel(ours)
        self.owner = os.getpid()
        self.lock = threading.Lock()

    @property
    def pid(self) -> int:
        """The engine's process id."""
        return self.process.pid

    def alive(self) -> bool:
        return self.owner == os.getpid() and self.process.poll() is None

    def call(self, op: str, fds: list[int] | tuple = (), **args):
        """Send one request (with ``fds``) and return ``(result, fds received)``; the engine's
        error is raised here as the same exception class.

        An interrupt (SIGINT) while the request runs never splits a reply: it is held until
        the reply is in, forwarded to the engine for a create, start or exec (which then
        removes what it made), and raised afterwards (what completed anyway is undone)."""
        from pyoci_nb.runtime import log

        request = dict(args, op=op)
        with self.lock, _HeldInterrupt(self.pid if op in INTERRUPTIBLE else None) as held:
            try:
                self.channel.send(request, list(fds))
                reply, received = self.channel.receive()
            except OSError as exc:
                raise EngineError(f"the pyoci engine (pid {self.pid}) is gone", why=str(exc)) from None
        if reply is None:
            raise EngineError(f"the pyoci engine (pid {self.pid}) exited", why="see its messages on stderr")
        for warning in reply.get("warnings") or ():
            log.warning(warning)
        if "error" in reply:
            for fd in received:
                os.close(fd)
            held.deliver()
            raise _rebuild_error(reply["error"])
        if held.interrupted:
            # the operation finished before the interrupt reached it: undo what it made
            for fd in received:
                os.close(fd)
            _undo(self, op, args, reply["ok"])
            held.deliver()
        return reply["ok"], received


class _HeldInterrupt:
    """While a request runs in the main thread: SIGINT is noted (and sent on to ``forward_to``)
    instead of raising KeyboardInterrupt in the middle of reading a reply; ``deliver()`` then
    does what the interrupted handler would have done.  Elsewhere it does nothing (only the
    main thread gets KeyboardInterrupt)."""

    def __init__(self, forward_to: int | None):
        self.forward_to = forward_to
        self.interrupted = False
        self.previous = None

    def __enter__(self):
        import signal

        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._note)
        return self

    def _note(self, signum, frame):
        import signal

        if self.previous is signal.SIG_IGN:
            return
        self.interrupted = True
        if self.forward_to is not None:
            try:
                os.kill(self.forward_to, signal.SIGINT)
            except ProcessLookupError:
                pass
            self.forward_to = None

    def __exit__(self, *exc):
        import signal

        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def deliver(self) -> None:
        """Act on a held interrupt as the handler we replaced would have."""
        import signal

        if not self.interrupted:
            return
        self.interrupted = False
        if callable(self.previous) and self.previous is not signal.default_int_handler:
            self.previous(signal.SIGINT, None)
        else:
            raise KeyboardInterrupt


def _undo(engine: Engine, op: str, args: dict, result) -> None:
    """An interrupted create or exec that completed anyway: kill (and delete) what it made."""
    try:
        if op == "create":
            engine.call("delete", id=args["id"], root=args["root"], force=True)
        elif op == "exec" and isinstance(result, dict) and result.get("pid"):
            engine.call("kill_pid", pid=result["pid"], signal=9)
    except Exception:
        pass


_engine: Engine | None = None
_start_lock = threading.Lock()


def engine() -> Engine:
    """This process's engine, started on first use (again if it died, or in a forked child)."""
    global _engine
    current = _engine
    if current is None or not current.alive():
        with _start_lock:
            current = _engine
            if current is None or not current.alive():
                current = _engine = Engine()
    return current


def running_engine() -> Engine | None:
    """The engine of this process if one runs (None: nothing was started, so nothing to ask)."""
    current = _engine
    return current if current is not None and current.alive() else None


def _rebuild_error(error: dict) -> BaseException:
    from pyoci_nb import errors

    name = error.get("class", "")
    if name == "TimeoutError":
        return TimeoutError(error.get("what"))
    if name == "ContainerNotFound":
        found = errors.ContainerNotFound(error.get("id") or "?")
        found.what, found.where, found.why, found.hint = (error.get("what"), error.get("where"),
                                                          error.get("why"), error.get("hint"))
        return found
    kind = getattr(errors, name, None)
    if isinstance(kind, type) and issubclass(kind, errors.PyociError):
        return kind(error.get("what") or "engine error", where=error.get("where"), why=error.get("why"),
                    hint=error.get("hint"))
    return errors.ContainerError(error.get("what") or "engine error", where=error.get("where"),
                                 why=error.get("why"))


# ---------------------------------------------------------------------------------------------
# the engine's side
# ---------------------------------------------------------------------------------------------

class _Server:
    """The request loop (see the module docstring)."""

    def __init__(self, fd: int):
        import signal

        from pyoci_nb.runtime import container
        from pyoci_nb.runtime import syscalls as sc

        container.IN_PROCESS = True
        self.container = container
        # our own fds live high, out of the way of the preserved fds a request puts at 3..
        self.channel = EngineChannel(_socket_at(_high_fd(fd)))
        wake_r, wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self.wake_r, self.wake_w = _high_fd(wake_r), _high_fd(wake_w)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        signal.signal(signal.SIGINT, self._on_sigint)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        # every container process is our child or, orphaned, becomes one: we reap them all
        sc.set_child_subreaper(True)
        children.keep_subreaper("engine")
        self.busy = False
        self.remove_on_exit: dict[tuple[str, str], bool] = {}
        self.zygotes: dict[tuple[str, str], _Zygote] = {}
        self.cleanup_paths: dict[str, list[str]] = {}

    def _on_sigint(self, signum, frame):
        if self.busy:
            raise KeyboardInterrupt

    def serve(self) -> None:
        import select

        poller = select.poll()
        poller.register(self.channel.fileno(), select.POLLIN)
        poller.register(self.wake_r, select.POLLIN)
        while True:
            ready = {fd for fd, _ in poller.poll()}
            if self.wake_r in ready:
                try:
                    while os.read(self.wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
                children.reap_children()
            if self.channel.fileno() not in ready:
                continue
            try:
                request, fds = self.channel.receive()
            except KeyboardInterrupt:  # an interrupt meant for a request already answered
                continue
            if request is None:
                break
            self.channel.send(*self.handle(request, fds))
        self.shutdown()

    def handle(self, request: dict, fds: list[int]) -> tuple[dict, list[int]]:
        from pyoci_nb.errors import ContainerNotFound, PyociError
        from pyoci_nb.runtime import log

        op = request.get("op")
        method = getattr(self, "op_" + str(op), None)
        warnings: list[str] = []
        log.capture(warnings)
        result = _UNSET = object()
        reply_fds: list[int] = []
        try:
            if method is None:
                raise PyociError(f"unknown engine request {op!r}")
            self.busy = op in INTERRUPTIBLE
            result, reply_fds = method(request, fds)
            self.busy = False
            reply = {"ok": result}
        except BaseException as exc:  # everything becomes a reply: the engine keeps serving
            self.busy = False
            if result is not _UNSET:  # the interrupt came after the operation completed
                reply = {"ok": result}
            elif isinstance(exc, ContainerNotFound):
                reply = {"error": {"class": "ContainerNotFound", "id": request.get("id"), "what": exc.what,
                                   "where": exc.where, "why": exc.why, "hint": exc.hint}}
            elif isinstance(exc, PyociError):
                reply = {"error": {"class": type(exc).__name__, "what": exc.what, "where": exc.where,
                                   "why": exc.why, "hint": exc.hint}}
            elif isinstance(exc, TimeoutError):
                reply = {"error": {"class": "TimeoutError", "what": str(exc)}}
            elif isinstance(exc, KeyboardInterrupt):
                reply = {"error": {"class": "ContainerError", "what": f"{op} interrupted",
                                   "why": "the caller was interrupted; what the operation made was removed"}}
            elif isinstance(exc, SystemExit):
                raise
            else:
                reply = {"error": {"class": "ContainerError", "what": f"{op} failed",
                                   "why": f"{type(exc).__name__}: {exc}"}}
        finally:
            log.capture(None)
            for fd in fds:
                _close_quietly(fd)
        reply["warnings"] = warnings
        return reply, reply_fds

    # -- operations: each takes (request, fds) and returns (result, fds to send) ----------------
    def op_create(self, request: dict, fds: list[int]):
        Container = self.container.Container
        stdio, console_fd, preserve = _place_fds(request, fds)
        root = request["root"]
        created = Container.create(
            request["bundle"], id=request["id"], root=root, console_socket=request.get("console_socket"),
            console_fd=console_fd, pid_file=request.get("pid_file"), no_pivot=bool(request.get("no_pivot")),
            no_new_keyring=bool(request.get("no_new_keyring")), preserve_fds=preserve,
            rootless=request.get("rootless"), stdin=stdio[0], stdout=stdio[1], stderr=stdio[2],
            start=bool(request.get("start")))
        _close_placed(preserve)
        if request.get("remove_on_exit"):
            self.remove_on_exit[(root, created.id)] = True
        if request.get("cleanup_paths"):
            self.cleanup_paths[f"{root}\0{created.id}"] = list(request["cleanup_paths"])
        pid = created._record()["pid"]  # (not state(): it would reap an init that has exited)
        return {"id": created.id, "pid": pid}, _pidfds(pid)

    def op_start(self, request: dict, fds: list[int]):
        self.container.Container.load(request["id"], request["root"]).start()
        return None, []

    def op_delete(self, request: dict, fds: list[int]):
        from pyoci_nb.errors import ContainerNotFound

        root, container_id = request["root"], request["id"]
        zygote = self.zygotes.pop((root, container_id), None)
        if zygote is not None:
            zygote.close()
        pid = 0
        try:
            target = self.container.Container.load(container_id, root)
            pid = target._record().get("pid") or 0
            target.delete(force=bool(request.get("force")))
        except ContainerNotFound:
            if not request.get("missing_ok"):
                raise
        self.remove_on_exit.pop((root, container_id), None)
        for path in self.cleanup_paths.pop(f"{root}\0{container_id}", ()):
            _remove_path(path)
        # the init's exit status, if it was ours and nobody asked yet (saves a `status` request)
        return {"status": children.exit_status(pid) if pid > 0 else None}, []

    def op_exec(self, request: dict, fds: list[int]):
        container = self.container.Container.load(request["id"], request["root"])
        layout = request.get("layout") or {}
        if not (layout.get("preserve") or layout.get("console") is not None or request.get("console_socket")):
            stdio = [None if i is None else fds[i] for i in layout.get("stdio", (None, None, None))]
            for _ in range(2):  # a helper that died (kill --all) is replaced once
                zygote = self._zygote(container)
                if zygote is None:
                    break
                pid = zygote.exec(container, request["process"], stdio)
                if pid:
                    if request.get("pid_file"):
                        write_file_atomic(request["pid_file"], str(pid))
                    return {"pid": pid}, _pidfds(pid)
                self.zygotes.pop((container.root, container.id), None)
        stdio, console_fd, preserve = _place_fds(request, fds)
        pid = exec_detached(container, request["process"], console_socket=request.get("console_socket"),
                                      console_fd=console_fd, pid_file=request.get("pid_file"),
                                      preserve_fds=preserve, stdio=stdio)
        _close_placed(preserve)
        return {"pid": pid}, _pidfds(pid)

    def _zygote(self, container) -> _Zygote | None:
        """The container's exec helper (made on its first exec), or None where there is none:
        unprivileged, no mount namespace of its own, a time namespace, or a pids limit (the
        helper would take one of the container's pids)."""
        key = (container.root, container.id)
        record = container._record()
        current = self.zygotes.get(key)
        if current is not None and current.init == (record.get("pid"), record.get("initStartTime")):
            return current
        if current is not None:
            current.close()
            del self.zygotes[key]
        from pyoci_nb.runtime import namespaces

        config = record.get("config") or {}
        linux = config.get("linux") or {}
        if os.geteuid() != 0 or not record.get("cgroup") or not record.get("pid") or \
                ((linux.get("resources") or {}).get("pids") or {}).get("limit"):
            return None
        kinds = namespaces.different_namespaces(record["pid"])
        if "mount" not in kinds or "time" in kinds:
            return None
        try:
            zygote = _Zygote(record, kinds)
        except Exception as exc:  # the long way still works; say why the short one did not
            from pyoci_nb.runtime import log

            log.debug(f"no exec helper for container {container.id!r}: {exc}")
            return None
        self.zygotes[key] = zygote
        return zygote

    def op_status(self, request: dict, fds: list[int]):
        """The exit status of a process of ours that has exited (None: still running or unknown)."""
        return children.exit_status(int(request["pid"])), []

    def op_pidfd(self, request: dict, fds: list[int]):
        """A pidfd for ``pid`` if it is a child of ours (one this engine made)."""
        pid = int(request["pid"])
        if not children.is_our_child(pid):
            return False, []
        return True, _pidfds(pid)

    def op_kill_pid(self, request: dict, fds: list[int]):
        pid = int(request["pid"])
        if children.is_our_child(pid):
            try:
                os.kill(pid, int(request.get("signal", 9)))
            except ProcessLookupError:
                pass
        return None, []

    def op_cleanup_on_exit(self, request: dict, fds: list[int]):
        """Remove ``path`` (after deleting every container in ``root``) when the caller goes away
        (``forget``: not any more)."""
        key = f"{request['root']}\0"
        if request.get("forget"):
            self.cleanup_paths.pop(key, None)
        else:
            self.cleanup_paths[key] = [request["path"]]
        return None, []

    def op_probe(self, request: dict, fds: list[int]):
        """Run the host probe's child program (``notebook/probe.py``: it unshares namespaces, so
        it needs a fresh process) and return its exit status and output: the caller (a kernel)
        never starts a Python child itself."""
        import subprocess

        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        command = [*request.get("prefix", ()), request.get("python") or sys.executable, "-I", "-S",
                   os.path.join(here, "notebook", "probe.py")]
        done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=request.get("timeout") or 60, check=False)
        return {"command": command, "returncode": done.returncode, "stdout": done.stdout,
                "stderr": done.stderr}, []

    def op_ping(self, request: dict, fds: list[int]):
        return os.getpid(), []

    # -- the caller went away ---------------------------------------------------------------------
    def shutdown(self) -> None:
        """Force-delete the containers marked ``remove_on_exit`` and everything in the state
        roots registered with ``cleanup_on_exit``, then remove the registered paths."""
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)
        Container = self.container.Container
        doomed = set(self.remove_on_exit)
        for key in self.cleanup_paths:
            root, _, container_id = key.partition("\0")
            if not container_id:
                doomed |= {(root, cid) for cid in self.container.list_ids_quietly(root)}
        for root, container_id in sorted(doomed):
            try:
                Container.load(container_id, root).delete(force=True)
            except Exception as exc:
                sys.stderr.write(f"pyoci engine: removing container {container_id!r}: {exc}\n")
        for paths in self.cleanup_paths.values():
            for path in paths:
                _remove_path(path)


class _Zygote:
    """The engine's end of a container's exec helper (``init.exec_zygote``)."""

    def __init__(self, record: dict, kinds: list[str]):
        from pyoci_nb.runtime import init
        from pyoci_nb.runtime.cgroups import manager_from_state

        config = record.get("config") or {}
        linux = config.get("linux") or {}
        compiled = compiled_seccomp(record["id"], linux.get("seccomp"))
        self.init = (record.get("pid"), record.get("initStartTime"))
        parent, child = init.MessageChannel.pair()
        with children.no_collection():
            pid = os.fork()
            if pid == 0:
                parent.sock.close()
                init.exec_zygote(record["pid"], kinds, child, compiled, linux)
        child.close()
        self.pid = pid
        self.control = parent
        try:
            manager_from_state(record["cgroup"]).apply(pid)  # the one cgroup migration
            message, _ = parent.receive()
            if not isinstance(message, msg.Ready):
                raise RuntimeError(getattr(message, "message", None) or "the exec helper exited")
        except BaseException:
            self.close()
            raise

    def exec(self, container, proc: dict, stdio: list) -> int:
        """Have the helper fork ``proc`` (our child) and answer it until it execs; its pid, or 0
        if the helper is gone."""
        from pyoci_nb.runtime import init

        record = container._record()
        parent, child = init.MessageChannel.pair()
        fds = [child.fileno()] + [fd for fd in stdio if fd is not None]
        indexes, next_index = [], 1
        for fd in stdio:
            indexes.append(None if fd is None else next_index)
            next_index += fd is not None
        try:
            try:
                self.control.send(msg.ExecRequest(process=proc, stdio=indexes), fds)
            except OSError:
                return 0
            finally:
                child.close()
            message, _ = self.control.receive()
            if message is None:
                return 0
            if not isinstance(message, msg.Pid):
                from pyoci_nb.errors import SetupError

                raise SetupError("exec failed", why=getattr(message, "message", None))
            pid = message.pid
            seccomp_config = ((record.get("config") or {}).get("linux") or {}).get("seccomp")
            try:
                return exec_conversation(container, parent, proc, record, seccomp_config, pid, 0)
            except BaseException:
                self._kill(pid)
                raise
        finally:
            parent.close()

    @staticmethod
    def _kill(pid: int) -> None:
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass

    def close(self) -> None:
        """Let the helper go (it exits when its channel closes; it dies with the container)."""
        self.control.close()


def _high_fd(fd: int) -> int:
    """Move ``fd`` near the top of the fd table (close-on-exec)."""
    import fcntl
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    floor = max(64, min(soft, 4096) - 64)
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor)
    os.close(fd)
    return moved


def _socket_at(fd: int):
    import _socket

    return _socket.socket(fileno=fd)


def _place_fds(request: dict, fds: list[int]) -> tuple[tuple, int | None, int]:
    """The request's fds by role: ``stdio`` (three indexes into ``fds`` or None), ``console``
    (an index) and the ``preserve`` fds, which are put at 3, 4, ... in this process (where the
    lifecycle code expects a caller's preserved fds; ours live higher).  Received fds in the
    way are moved first; ``fds`` is updated in place (the caller closes what it lists)."""
    layout = request.get("layout") or {}
    preserve = list(layout.get("preserve", ()))
    if preserve:
        import fcntl

        for index, fd in enumerate(fds):
            if 3 <= fd < 3 + len(preserve):
                fds[index] = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3 + len(preserve))
                os.close(fd)
        for target, index in enumerate(preserve, start=3):
            os.dup2(fds[index], target, inheritable=True)
    stdio = tuple(None if i is None else fds[i] for i in layout.get("stdio", (None, None, None)))
    console = layout.get("console")
    return stdio, None if console is None else fds[console], len(preserve)


def _close_placed(count: int) -> None:
    for fd in range(3, 3 + count):
        _close_quietly(fd)


def _pidfds(pid: int) -> list[int]:
    if pid <= 0:
        return []
    try:
        return [os.pidfd_open(pid)]
    except OSError:  # gone already and reaped: the caller asks ``status``
        return []


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _remove_path(path: str) -> None:
    from pyoci_nb.rootfs.tree import remove_tree

    try:
        remove_tree(path)
    except FileNotFoundError:
        pass
    except Exception as exc:
        sys.stderr.write(f"pyoci engine: removing {path}: {exc}\n")


def main(argv: list[str]) -> int:
    """``python -S -m pyoci_nb.runtime.engine FD``: serve the socket ``FD`` until it closes."""
    if len(argv) != 1 or not argv[0].isdigit():
        sys.stderr.write("usage: python -m pyoci_nb.runtime.engine FD (started by pyoci_nb itself)\n")
        return 2
    _Server(int(argv[0])).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
