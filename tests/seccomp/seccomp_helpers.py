"""Helpers of the seccomp tests (imported as ``seccomp_helpers``): run a function in a forked child of the (single-threaded)
pytest process, where it may load a seccomp filter for ever without harming the test process,
and report what happened through the child's exit status or the signal that killed it."""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import struct
import sys
import time
import traceback
from dataclasses import dataclass

import pytest

from pyoci_nb.runtime import seccomp

#: exit status of a child whose function raised (the traceback goes to stderr)
CHILD_RAISED = 250

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def raw_syscall(name: str, *args: int) -> int:
    """Call a system call by name with integer arguments; returns 0 or the errno it failed with."""
    number = seccomp._lib().seccomp_syscall_resolve_name(name.encode())
    assert number >= 0, f"{name} is not a system call of this architecture"
    result = libc.syscall(ctypes.c_long(number), *[ctypes.c_ulong(a) for a in args])
    return ctypes.get_errno() if result == -1 else 0


@dataclass
class ChildResult:
    exit_code: int | None
    signal: int | None

    def __repr__(self) -> str:
        if self.signal is not None:
            return f"<killed by {signal.Signals(self.signal).name}>"
        return f"<exit {self.exit_code}>"


def start_child(function) -> int:
    """Fork; the child runs ``function()`` and exits with its return value (an int 0..255),
    or CHILD_RAISED after printing the traceback.  Returns the child's pid."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = CHILD_RAISED
        try:
            code = int(function())
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


def wait_child(pid: int, timeout: float = 20.0) -> ChildResult:
    """How the child ended; a child still running after ``timeout`` seconds is killed."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"the child did not finish within {timeout}s")
        time.sleep(0.005)
    if os.WIFSIGNALED(status):
        return ChildResult(None, os.WTERMSIG(status))
    return ChildResult(os.WEXITSTATUS(status), None)


def run_in_child(function, timeout: float = 20.0) -> ChildResult:
    """Run ``function()`` in a forked child and return how the child ended."""
    return wait_child(start_child(function), timeout)


def errno_of(call) -> int:
    """Run ``call()``; 0 when it succeeds, else the errno of the OSError it raised."""
    try:
        call()
    except OSError as exc:
        return exc.errno
    return 0


def answer_one_notification(listener_fd: int, error: int) -> dict:
    """A minimal seccomp agent (seccomp_unotify(2)): receive one notification with
    SECCOMP_IOCTL_NOTIF_RECV and answer it with SECCOMP_IOCTL_NOTIF_SEND, failing the call with
    ``error``."""
    notif_recv = 0xC0502100   # _IOWR('!', 0, struct seccomp_notif) -- 80 bytes
    notif_send = 0xC0182101   # _IOWR('!', 1, struct seccomp_notif_resp) -- 24 bytes
    request = bytearray(80)
    fcntl.ioctl(listener_fd, notif_recv, request)
    notification_id, pid, _flags, nr, arch = struct.unpack_from("=QIIiI", request)
    fcntl.ioctl(listener_fd, notif_send, struct.pack("=QqiI", notification_id, 0, -error, 0))
    return {"id": notification_id, "pid": pid, "nr": nr, "arch": arch}
