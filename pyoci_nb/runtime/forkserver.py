"""A single-threaded helper process that makes containers for multi-threaded callers.

Forking a multi-threaded process (a Jupyter kernel: its heartbeat, IOPub and history threads)
and running Python in the child can deadlock on a lock another thread held at fork time.  So
``pyoci_nb.run()`` called with more than one thread alive sends the request to this server
instead: one helper started once with ``subprocess`` (``python -m
pyoci_nb.runtime.forkserver``), single-threaded, speaking one JSON object per line over a Unix
socket pair; it runs ``container.run_here`` (which forks *it*) and returns the result.
Requests are served one at a time; the client serializes them with a lock.
"""

from __future__ import annotations

import json
import sys
import threading

_lock = threading.Lock()
_server = None  # (Popen, socket file)


def _encode(data: bytes | None) -> str | None:
    return None if data is None else data.decode("latin-1")


def _decode(text: str | None) -> bytes | None:
    return None if text is None else text.encode("latin-1")


def _start_server():
    import socket
    import subprocess

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    # its own session: a kernel interrupt (SIGINT to the kernel's process group) must not kill
    # it; the client forwards an interrupt itself, for the request it is waiting on
    proc = subprocess.Popen([sys.executable, "-m", "pyoci_nb.runtime.forkserver", str(theirs.fileno())],
                            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, start_new_session=True)
    theirs.close()
    return proc, ours.makefile("rwb", buffering=0), ours


def run(bundle: str, args, *, id=None, root=None, capture_output=False, input=None, timeout=None):
    """``container.run`` through the fork server (started on first use)."""
    global _server
    from pyoci_nb.runtime.container import CompletedContainer

    import os

    request = {"bundle": os.fspath(bundle), "args": args, "id": id,
               "root": None if root is None else os.fspath(root),
               "capture_output": capture_output, "input": _encode(input), "timeout": timeout}
    with _lock:
        if _server is None or _server[0].poll() is not None:
            _server = _start_server()
        server, stream, _ = _server
        stream.write(json.dumps(request).encode() + b"\n")
        try:
            line = stream.readline()
        except KeyboardInterrupt:
            # stop the container (the server's run deletes it on SIGINT), take the reply that
            # says so, so the next request does not read it, and let the interrupt go on
            import signal

            server.send_signal(signal.SIGINT)
            stream.readline()
            raise
        if not line:
            _server = None
            from pyoci_nb.errors import ContainerError

            raise ContainerError("the pyoci fork server exited", why="see its stderr")
    reply = json.loads(line)
    if "error" in reply:
        raise _rebuild_error(reply["error"])
    return CompletedContainer(reply["args"], reply["returncode"], _decode(reply["stdout"]),
                              _decode(reply["stderr"]), id=reply["id"])


def _rebuild_error(error: dict) -> Exception:
    from pyoci_nb import errors

    kind = getattr(errors, error.get("class", ""), None)
    if error.get("class") == "TimeoutError":
        return TimeoutError(error.get("what"))
    if isinstance(kind, type) and issubclass(kind, errors.PyociError) and kind is not errors.ContainerNotFound:
        return kind(error["what"], where=error.get("where"), why=error.get("why"), hint=error.get("hint"))
    return errors.ContainerError(error.get("what", "fork server error"), why=error.get("why"))


def serve(fd: int) -> None:
    """The server loop: one request per line, one reply per line, until the client closes."""
    import socket

    from pyoci_nb.errors import PyociError
    from pyoci_nb.runtime.container import run_here

    sock = socket.socket(fileno=fd)
    stream = sock.makefile("rwb", buffering=0)
    for line in stream:
        request = json.loads(line)
        try:
            result = run_here(request["bundle"], request["args"], id=request["id"], root=request["root"],
                              capture_output=request["capture_output"], input=_decode(request["input"]),
                              timeout=request["timeout"])
            reply = {"returncode": result.returncode, "stdout": _encode(result.stdout),
                     "stderr": _encode(result.stderr), "id": result.id, "args": result.args}
        except PyociError as exc:
            reply = {"error": {"class": type(exc).__name__, "what": exc.what, "where": exc.where,
                               "why": exc.why, "hint": exc.hint}}
        except TimeoutError as exc:
            reply = {"error": {"class": "TimeoutError", "what": str(exc)}}
        except KeyboardInterrupt:
            reply = {"error": {"class": "ContainerError", "what": "interrupted; the container was deleted"}}
        except Exception as exc:  # report, keep serving
            reply = {"error": {"class": "ContainerError", "what": f"{type(exc).__name__}: {exc}"}}
        stream.write(json.dumps(reply).encode() + b"\n")


if __name__ == "__main__":
    serve(int(sys.argv[1]))
