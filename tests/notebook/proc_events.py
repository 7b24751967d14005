"""Process creation on the whole host, as the kernel reports it: the netlink process connector.

``ProcessWatch(root_pid)`` subscribes to the connector (``NETLINK_CONNECTOR``, group
``CN_IDX_PROC``; needs CAP_NET_ADMIN, i.e. root in the initial network namespace) and follows the
process tree under ``root_pid`` from a background thread: every ``PROC_EVENT_FORK`` of a process
(not a thread) in the tree adds the child, every ``PROC_EVENT_EXEC`` records what the process now
runs (``/proc/PID/exe`` and ``cmdline``, read at once: the process may be gone already, then the
fields stay empty), every ``PROC_EVENT_EXIT`` marks it ended.  ``ProcessWatch.unavailable()`` says
why the connector cannot be used here (``None`` when it can).

The structures (linux/netlink.h, linux/connector.h, linux/cn_proc.h)::

    struct nlmsghdr  { u32 len; u16 type; u16 flags; u32 seq; u32 pid; }           16 bytes
    struct cn_msg    { u32 idx; u32 val; u32 seq; u32 ack; u16 len; u16 flags; }   20 bytes
    struct proc_event { u32 what; u32 cpu; u64 timestamp_ns; union event_data; }
      fork: u32 parent_pid, parent_tgid, child_pid, child_tgid
      exec: u32 process_pid, process_tgid
      exit: u32 process_pid, process_tgid, exit_code, exit_signal
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Self

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
NLMSG_DONE = 3
PROC_CN_MCAST_LISTEN = 1
PROC_CN_MCAST_IGNORE = 2
PROC_EVENT_FORK = 0x00000001
PROC_EVENT_EXEC = 0x00000002
PROC_EVENT_EXIT = 0x80000000
SO_RCVBUFFORCE = 33

_NLMSGHDR = struct.Struct("=IHHII")
_CN_MSG = struct.Struct("=IIIIHH")
_EVENT_HEADER = struct.Struct("=IIQ")
_FORK = struct.Struct("=IIII")
_EXEC = struct.Struct("=II")
_EXIT = struct.Struct("=IIII")


@dataclass
class Proc:
    """One process of the watched tree."""

    pid: int
    parent: int
    forked_at: float
    execs: list[tuple[str, list[str]]] = field(default_factory=list)  # (exe, argv) at each exec
    exited: bool = False

    @property
    def executed(self) -> bool:
        return bool(self.execs)

    def describe(self) -> str:
        if not self.execs:
            return f"pid {self.pid} (parent {self.parent}): forked, never executed a program" + \
                ("" if self.exited else ", still running")
        runs = "; then ".join(f"{exe or '?'} {' '.join(argv) or '?'}" for exe, argv in self.execs)
        return f"pid {self.pid} (parent {self.parent}): {runs}"


def _subscribe(sock: socket.socket, op: int) -> None:
    payload = struct.pack("=I", op)
    cn = _CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(payload), 0)
    header = _NLMSGHDR.pack(_NLMSGHDR.size + len(cn) + len(payload), NLMSG_DONE, 0, 0, os.getpid())
    sock.send(header + cn + payload)


def _read_image(pid: int) -> tuple[str, list[str]]:
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        exe = ""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0")[:-1]]
    except OSError:
        argv = []
    return exe, argv


class ProcessWatch:
    """The process tree under ``root_pid`` as it grows, from the moment of ``start()``."""

    def __init__(self, root_pid: int):
        self.root_pid = root_pid
        self.procs: dict[int, Proc] = {}
        self.lost_events = False
        self._tree = {root_pid}
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = False
        self._last_exit: dict[int, float] = {}  # any process of the host: pid -> when it exited

    @staticmethod
    def unavailable() -> str | None:
        """Why the process connector cannot be used here, or ``None``."""
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
        except OSError as exc:
            return f"no netlink connector socket: {exc}"
        try:
            sock.bind((0, CN_IDX_PROC))
            _subscribe(sock, PROC_CN_MCAST_LISTEN)
            _subscribe(sock, PROC_CN_MCAST_IGNORE)
        except OSError as exc:
            return f"cannot subscribe to the process connector (root in the initial network namespace): {exc}"
        finally:
            sock.close()
        return None

    def start(self) -> ProcessWatch:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 << 20)  # the whole host's forks
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        sock.bind((0, CN_IDX_PROC))
        sock.settimeout(0.1)
        _subscribe(sock, PROC_CN_MCAST_LISTEN)
        self._sock = sock
        self._thread = threading.Thread(target=self._run, name="proc-events", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._sock is not None:
            try:
                _subscribe(self._sock, PROC_CN_MCAST_IGNORE)
            except OSError:
                pass
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- reading ---------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop:
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # the queue overflowed: events were dropped
                    self.lost_events = True
                    continue
                return
            self._parse(data)

    def _parse(self, data: bytes) -> None:
        offset = 0
        while offset + _NLMSGHDR.size <= len(data):
            length = _NLMSGHDR.unpack_from(data, offset)[0]
            if length < _NLMSGHDR.size:
                return
            body = offset + _NLMSGHDR.size
            idx, val, _, _, size, _ = _CN_MSG.unpack_from(data, body)
            if (idx, val) == (CN_IDX_PROC, CN_VAL_PROC):
                self._event(data[body + _CN_MSG.size:body + _CN_MSG.size + size])
            offset += (length + 3) & ~3

    def _event(self, event: bytes) -> None:
        if len(event) < _EVENT_HEADER.size:
            return
        what = _EVENT_HEADER.unpack_from(event)[0]
        data = _EVENT_HEADER.size
        with self._lock:
            if what == PROC_EVENT_FORK:
                _, parent_tgid, child_pid, child_tgid = _FORK.unpack_from(event, data)
                if child_pid == child_tgid and parent_tgid in self._tree:  # a process, not a thread
                    self._tree.add(child_tgid)
                    self.procs[child_tgid] = Proc(child_tgid, parent_tgid, time.monotonic())
            elif what == PROC_EVENT_EXEC:
                _, tgid = _EXEC.unpack_from(event, data)
                if tgid in self.procs:
                    self.procs[tgid].execs.append(_read_image(tgid))
            elif what == PROC_EVENT_EXIT:
                pid, tgid, _, _ = _EXIT.unpack_from(event, data)
                if pid == tgid:
                    self._last_exit[tgid] = time.monotonic()
                if pid == tgid and tgid in self.procs:
                    self.procs[tgid].exited = True
                    self._tree.discard(tgid)  # its pid may be reused by anyone

    def sync(self, timeout: float = 30) -> None:
        """Wait until the events of everything that happened before this call have been read:
        a marker process is run to its end, and its exit event comes after theirs."""
        started = time.monotonic()
        marker = subprocess.Popen(["true"])
        marker.wait()
        pid = marker.pid
        deadline = started + timeout
        while True:
            with self._lock:
                if self._last_exit.get(pid, 0) >= started:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"the process connector did not report the marker process {pid}'s exit")
            time.sleep(0.01)

    # -- the result ------------------------------------------------------------------------------
    def snapshot(self) -> list[Proc]:
        with self._lock:
            return [Proc(p.pid, p.parent, p.forked_at, list(p.execs), p.exited) for p in self.procs.values()]

    def children(self, pid: int | None = None) -> list[Proc]:
        """The processes forked by ``pid`` (default: the root) since ``start()``."""
        parent = self.root_pid if pid is None else pid
        return [p for p in self.snapshot() if p.parent == parent]

    def descendants(self, pid: int) -> list[Proc]:
        procs = self.snapshot()
        found, frontier = [], {pid}
        while frontier:
            level = [p for p in procs if p.parent in frontier]
            found += level
            frontier = {p.pid for p in level}
        return found
