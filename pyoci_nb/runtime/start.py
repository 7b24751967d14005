"""runtime.md "Start" in this process: release the user process through the exec FIFO, then
the ``poststart`` hooks.
"""

from __future__ import annotations

import os
import time

from pyoci_nb.errors import ContainerError, InvalidState, SetupError
from pyoci_nb.runtime import hooks, trampoline
from pyoci_nb.runtime.children import drop_subreaper, kill_quietly, wait_gone
from pyoci_nb.runtime.delete import destroy
from pyoci_nb.runtime.state import derive_status, init_alive, public_state


def start_user_process(container, record: dict, fifo_reader: int | None = None,
                        destroy_on_failure: bool = False) -> None:
    """Release the user process (the status reads running from then on: no FIFO), then
    run the ``poststart`` hooks; a failing hook kills the container and, with
    ``destroy_on_failure``, deletes it (a failed ``run`` is torn down by its create)."""
    release(container, record, fifo_reader)
    try:
        hooks.run_hooks(record["config"], "poststart", public_state(record, "running"))
    except SetupError:
        if destroy_on_failure:
            try:
                destroy(container, record)
            finally:
                drop_subreaper(container._subreaper_key)
        else:
            kill_quietly(record["pid"])
            wait_gone(record["pid"], record.get("initStartTime"))
        raise


def release(container, record: dict, fd: int | None = None) -> None:
    """Open the exec FIFO for reading (or use ``fd``, opened so already): init's blocked
    open returns, it writes one byte and goes on to execve, which closes its end.  Fails
    if init dies instead."""
    if fd is None:
        fd = container._dir.open_fifo(os.O_RDONLY | os.O_NONBLOCK)
    try:
        import select

        received = b""
        while True:
            select.select([fd], [], [], 0.1)
            try:
                data = os.read(fd, 4096)
            except BlockingIOError:
                data = None
            if data:
                received += data  # "0": startContainer hooks done; wait for execve to close it
                continue
            if data == b"" and received:
                break
            # nothing yet: init has not opened its end (or has died)
            if not init_alive(record):
                raise ContainerError("container init exited before start", where=f"container {container.id!r}",
                                     why="the init process died while starting (a startContainer hook "
                                         "or the last set-up steps failed; see the container's stderr)")
            if data == b"":
                time.sleep(0.0005)  # no writer yet: read() says EOF at once
        report = received[1:] if received[:1] == b"0" else received
        failed = trampoline.failure(report)
        if failed is not None:  # the trampoline's execve of the program failed
            raise SetupError("the container's program could not be executed", where=f"container {container.id!r}",
                             why=exec_failure(record["config"].get("process") or {}, failed))
        if report[:1] == b"E":  # "E" + message: init failed after create returned
            raise SetupError("container init failed", where=f"container {container.id!r}",
                             why=report[1:].decode(errors="replace"))
    finally:
        os.close(fd)
    container._dir.remove_fifo()


def start_here(container) -> None:
    """``start`` in this process: the container must be ``created``."""
    with container._dir.lock():
        record = container._record()
        status = derive_status(record, container._dir)
        if status != "created":
            what = {"stopped": "cannot start a container that has stopped",
                    "running": "cannot start an already running container",
                    "paused": "cannot start a paused container",
                    "creating": "cannot start a container that is still being created"}[status]
            raise InvalidState(what, where=f"container {container.id!r}",
                               why="runtime.md: start needs a container in the created state")
        start_user_process(container, record, destroy_on_failure=True)


def exec_failure(proc: dict, errno: int) -> str:
    """What the trampoline's report of a failed execve means, in the words of runc."""
    name = (proc.get("args") or ["?"])[0]
    return f'exec: "{name}": {os.strerror(errno)} (errno {errno})'
