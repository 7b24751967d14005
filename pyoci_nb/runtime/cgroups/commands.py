"""``pyoci pause | resume | update | events``: runc's commands that work on a container's cgroup.

* ``pause ID`` freezes every process of a running (or created) container: status ``paused``
  (runc's extension of runtime.md's states) while the freezer holds them.
* ``resume ID`` thaws a paused container.
* ``update [--resources FILE|-] [--memory 64m] [--cpu-quota N] [--pids-limit N] ... ID`` changes
  ``linux.resources`` of a live container.  ``--resources`` takes the JSON of
  ``linux.resources`` (``-`` reads stdin); without it the flags build one, as in runc (sizes
  accept k/m/g/t/p suffixes, base 1024; ``--memory-swap -1`` is unlimited).  Only the fields
  given change; the merged result is saved in state.json.
* ``events [--stats] [--interval 5s] ID``: with ``--stats`` one JSON stats object (runc's
  ``{"type":"stats","id":..,"data":{cpu, memory, pids, blkio, hugetlb}}``); without, a stats
  object every interval plus ``{"type":"oom","id":..}`` for each OOM of the container's
  memory cgroup, until the container stops.

Standard library only (CLI path).
"""

from __future__ import annotations

import json
import os
import re
import select
import sys
import time

from pyoci_nb.errors import ConfigError, ContainerError, InvalidState, UnsupportedError
from pyoci_nb.runtime.state import StateDir, derive_status

# --- loading a container ---------------------------------------------------------------------

def _load(args, lock: bool):
    """(state dir, record, status, cgroup manager) of the container named on the command line."""
    from pyoci_nb.runtime.cgroups import manager_from_state

    state_dir = StateDir(args.root, args.container_id)
    if lock:
        state_dir.lock()
    record = state_dir.read()
    status = derive_status(record, state_dir)
    saved = record.get("cgroup")
    if not saved:
        raise ContainerError("the container has no cgroup", where=f"container {args.container_id!r}",
                             why="state.json holds no cgroup state (the container was never "
                                 "fully created)",
                             hint="delete it with pyoci delete --force")
    return state_dir, record, status, manager_from_state(saved)


def pause_command(args) -> int:
    """Freeze the container (runc: allowed when running or created)."""
    state_dir, _, status, manager = _load(args, lock=True)
    try:
        if status not in ("running", "created"):
            raise InvalidState("container not running or created", where=f"container {args.container_id!r}",
                               why=f"its status is {status}; only a running or created container "
                                   "can be paused")
        manager.freeze()
    finally:
        state_dir.unlock()
    return 0


def resume_command(args) -> int:
    """Thaw a paused container."""
    state_dir, _, status, manager = _load(args, lock=True)
    try:
        if status != "paused":
            raise InvalidState("container not paused", where=f"container {args.container_id!r}",
                               why=f"its status is {status}; only a paused container can be resumed")
        manager.thaw()
    finally:
        state_dir.unlock()
    return 0


# --- update ------------------------------------------------------------------------------------

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_size(text: str, flag: str, allow_unlimited: bool = False) -> int:
    """runc's RAMInBytes: ``64m``, ``1g``, ``512k``, ``1048576`` (base 1024); ``-1`` = unlimited
    where the flag allows it."""
    if allow_unlimited and text.strip() == "-1":
        return -1
    match = _SIZE.match(text)
    if not match:
        raise ConfigError(f"invalid size {text!r}", where=flag,
                          why="a size is a number with an optional k, m, g, t or p suffix (base 1024)",
                          hint="e.g. --memory 64m" + (" (or -1 for unlimited)" if allow_unlimited else ""))
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def _parse_int(text: str, flag: str, minimum: int | None = None) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise ConfigError(f"invalid number {text!r}", where=flag, why="expected an integer") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{flag} must be at least {minimum}", where=flag, why=f"got {value}")
    return value


def resources_from_flags(args) -> dict:
    """The ``linux.resources`` fragment the update flags describe (only the flags given)."""
    resources: dict = {}

    def put(section: str, key: str, value) -> None:
        resources.setdefault(section, {})[key] = value

    if args.blkio_weight is not None:
        weight = _parse_int(args.blkio_weight, "--blkio-weight", 0)
        if weight and not 10 <= weight <= 1000:
            raise ConfigError("--blkio-weight must be 10..1000", where="--blkio-weight",
                              why=f"got {weight}")
        put("blockIO", "weight", weight)
    for flag, key, minimum in (("cpu_period", "period", 0), ("cpu_quota", "quota", None),
                               ("cpu_share", "shares", 0), ("cpu_rt_period", "realtimePeriod", 0),
                               ("cpu_rt_runtime", "realtimeRuntime", None), ("cpu_idle", "idle", 0)):
        value = getattr(args, flag, None)
        if value is not None:
            put("cpu", key, _parse_int(value, "--" + flag.replace("_", "-"), minimum))
    if args.cpuset_cpus is not None:
        put("cpu", "cpus", args.cpuset_cpus)
    if args.cpuset_mems is not None:
        put("cpu", "mems", args.cpuset_mems)
    for flag, key, unlimited in (("memory", "limit", True), ("memory_reservation", "reservation", True),
                                 ("memory_swap", "swap", True), ("kernel_memory", "kernel", False),
                                 ("kernel_memory_tcp", "kernelTCP", False)):
        value = getattr(args, flag, None)
        if value is not None:
            put("memory", key, parse_size(value, "--" + flag.replace("_", "-"), unlimited))
    if args.pids_limit is not None:
        put("pids", "limit", _parse_int(args.pids_limit, "--pids-limit"))
    for flag in ("l3_cache_schema", "mem_bw_schema"):
        if getattr(args, flag, None) is not None:
            raise UnsupportedError(f"--{flag.replace('_', '-')} is not supported",
                                   where=f"--{flag.replace('_', '-')}",
                                   why="Intel RDT (resctrl) is not implemented by pyoci")
    return resources


def read_resources_file(path: str) -> dict:
    """``--resources FILE`` (or ``-`` for stdin): the JSON of ``linux.resources``."""
    try:
        text = sys.stdin.read() if path == "-" else open(path).read()
    except OSError as exc:
        raise ConfigError("cannot read the resources file", where=path, why=exc.strerror) from None
    try:
        resources = json.loads(text)
    except ValueError as exc:
        raise ConfigError("the resources file is not valid JSON", where=path, why=str(exc)) from None
    if not isinstance(resources, dict):
        raise ConfigError("the resources file must hold a JSON object (linux.resources)", where=path)
    return resources


def merge_resources(base: dict, update: dict) -> dict:
    """``base`` with every member ``update`` gives replaced (objects merged one level deep,
    as runc's update merges only what was set)."""
    merged = json.loads(json.dumps(base or {}))
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key].update(value)
        else:
            merged[key] = value
    return merged


def update_command(args) -> int:
    """Change the resources of a created, running or paused container."""
    if args.resources is not None:
        update = read_resources_file(args.resources)
    else:
        update = resources_from_flags(args)
    state_dir, record, status, manager = _load(args, lock=True)
    try:
        if status not in ("created", "running", "paused"):
            raise InvalidState("cannot update a container that is not running",
                               where=f"container {args.container_id!r}",
                               why=f"its status is {status}")
        current = manager.resources or ((record.get("config") or {}).get("linux") or {}).get("resources") or {}
        if "devices" in update:
            from pyoci_nb.runtime import log

            log.warning("update: linux.resources.devices cannot be updated (as in runc); ignored")
            update = {k: v for k, v in update.items() if k != "devices"}
        merged = merge_resources(current, update)
        # the device rules stay those of create; re-applying them changes nothing
        partial = dict(update)
        partial["devices"] = current.get("devices")
        manager.set(partial)
        manager.resources = merged
        record["cgroup"] = manager.to_state()
        state_dir.write(record)
    finally:
        state_dir.unlock()
    return 0


# --- events ------------------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str, flag: str = "--interval") -> float:
    """A Go duration (``5s``, ``500ms``, ``1m30s``) in seconds."""
    text = text.strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ConfigError(f"invalid duration {text!r}", where=flag,
                          why="a duration is numbers with units ns, us, ms, s, m, h",
                          hint="e.g. --interval 1s or 500ms")
    seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ConfigError("the interval must be positive", where=flag, why=f"got {text!r}")
    return seconds


class OomWatch:
    """Kernel notifications of OOM in the container's memory cgroup: v1 an eventfd registered
    through cgroup.event_control on memory.oom_control; v2 inotify on memory.events (the
    ``oom`` counter is compared on every change).  ``fd`` is what to select() on."""

    def __init__(self, manager):
        from pyoci_nb.runtime.cgroups.v1 import V1Manager
        from pyoci_nb.runtime.cgroups.v2 import V2Manager

        self.fd: int | None = None
        self._v2: V2Manager | None = None
        self._count = 0
        self._v1_dir = manager.path("memory") if isinstance(manager, V1Manager) else None
        if self._v1_dir:
            self.fd = manager.oom_eventfd()
        else:
            v2 = manager if isinstance(manager, V2Manager) else getattr(manager, "unified", None)
            if v2 is not None and os.path.exists(os.path.join(v2.path, "memory.events")):
                self._v2 = v2
                self._count = v2.oom_count()
                self.fd = _inotify_watch(os.path.join(v2.path, "memory.events"))

    def read(self) -> int:
        """How many OOM events arrived (call when ``fd`` is readable)."""
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return 0
        if self._v2 is None:
            if not os.path.isdir(self._v1_dir):
                return 0   # the kernel also signals when the cgroup is removed
            return int.from_bytes(data[:8], sys.byteorder) if len(data) >= 8 else 0
        try:
            count = self._v2.oom_count()
        except OSError:
            return 0
        new, self._count = max(0, count - self._count), count
        return new

    def close(self) -> None:
        """Stop watching (closes the eventfd / inotify fd)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _inotify_watch(path: str) -> int | None:
    """An inotify fd watching ``path`` for modification (libc through ctypes)."""
    import ctypes

    from pyoci_nb.runtime import syscalls

    lib = syscalls.libc()
    fd = lib.inotify_init1(os.O_CLOEXEC | os.O_NONBLOCK)
    if fd < 0:
        return None
    if lib.inotify_add_watch(fd, path.encode(), ctypes.c_uint32(0x2)) < 0:  # IN_MODIFY
        os.close(fd)
        return None
    return fd


def _emit(event: dict) -> None:
    sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def events_command(args) -> int:
    """runc events: stats once (``--stats``) or stats every interval plus OOM events."""
    interval = parse_duration(args.interval)
    state_dir, record, status, manager = _load(args, lock=False)
    if status == "stopped":
        raise InvalidState("container is not running", where=f"container {args.container_id!r}",
                           why="events reads the cgroup of a created, running or paused container")
    if args.stats:
        _emit(manager.stats())
        return 0
    watch = OomWatch(manager)
    try:
        next_tick = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= next_tick:
                if _stopped(state_dir):
                    return 0
                try:
                    _emit(manager.stats())
                except OSError:
                    if _stopped(state_dir):
                        return 0
                    raise
                next_tick = now + interval
            timeout = max(0.0, min(next_tick - time.monotonic(), 1.0))
            ready = select.select([watch.fd], [], [], timeout)[0] if watch.fd is not None else \
                (time.sleep(timeout) or [])
            if ready:
                for _ in range(watch.read()):
                    _emit({"type": "oom", "id": args.container_id})
            if _stopped(state_dir):
                return 0
    finally:
        watch.close()


def _stopped(state_dir: StateDir) -> bool:
    from pyoci_nb.errors import ContainerNotFound

    try:
        return derive_status(state_dir.read(), state_dir) == "stopped"
    except ContainerNotFound:
        return True
