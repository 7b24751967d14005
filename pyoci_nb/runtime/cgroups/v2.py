"""The cgroup v2 (unified hierarchy) driver.

Documentation/admin-guide/cgroup-v2.rst: one tree; a controller is usable in a cgroup only when
its parent lists it in ``cgroup.subtree_control``; processes live in leaves (no internal
processes outside the root).  config-linux.md's resources map onto v2 files as runc maps them:

* memory: ``limit`` -> memory.max, ``reservation`` -> memory.low, ``swap`` (memory+swap in the
  spec) -> memory.swap.max = swap - limit; ``disableOOMKiller``, ``swappiness`` and
  ``useHierarchy: false`` have no v2 file and are refused; ``checkBeforeUpdate`` refuses a
  limit below memory.current;
* cpu: ``shares`` -> cpu.weight = 1 + (shares - 2) * 9999 / 262142, ``quota``/``period`` ->
  cpu.max, ``burst`` -> cpu.max.burst, ``idle`` -> cpu.idle, ``cpus``/``mems`` -> cpuset.*;
  realtime has no v2 file (refused);
* blockIO: ``weight`` -> io.bfq.weight (same scale) or io.weight = 1 + (w - 10) * 9999 / 990,
  ``weightDevice`` likewise, throttle* -> io.max (``rbps wbps riops wiops``);
* pids -> pids.max, hugepageLimits -> hugetlb.<size>.max (+ .rsvd.max), rdma -> rdma.max,
  unified -> the named files, devices -> an eBPF program (devices.py), network -> refused
  (v2 has no net_cls/net_prio).

Freezing uses cgroup.freeze (status ``paused`` while it reads 1).  Standard library only.
"""

from __future__ import annotations

import os
import time

from pyoci_nb.errors import ConfigError, SetupError, UnsupportedError
from pyoci_nb.runtime import log
from pyoci_nb.runtime.cgroups import base
from pyoci_nb.runtime.cgroups.base import (
    RESOURCES,
    CgroupManager,
    boolean,
    integer,
    items,
    read_file,
    read_int,
    read_keyed,
    resources_object,
    section,
    string,
    write_file,
)

UINT64_MAX = (1 << 64) - 1


def shares_to_weight(shares: int) -> int:
    """runc's cpu.shares (2..262144) -> cpu.weight (1..10000) conversion."""
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """runc's blkio.weight (10..1000) -> io.weight (1..10000) conversion."""
    if weight == 0:
        return 0
    return 1 + ((weight - 10) * 9999) // 990


def swap_to_v2(swap: int, limit: int, where: str) -> int | str | None:
    """Spec ``memory.swap`` (memory+swap, v1 semantics) -> memory.swap.max (swap only)."""
    if limit == -1 and swap == 0:
        return "max"   # memory unlimited and swap unset: unlimited too
    if swap == -1:
        return "max"
    if swap == 0:
        return None
    if limit in (0, -1):
        raise ConfigError("a swap limit needs a memory limit", where=f"{where}.swap",
                          why="memory.swap is memory+swap; on cgroup v2 pyoci writes "
                              "memory.swap.max = swap - limit",
                          hint="set linux.resources.memory.limit too")
    if swap < limit:
        raise ConfigError(f"swap ({swap}) is below limit ({limit})", where=f"{where}.swap",
                          why="memory.swap is the memory+swap limit, so it must be >= memory.limit")
    return swap - limit


def _limit(value: int) -> str:
    return "max" if value < 0 else str(value)


class V2Manager(CgroupManager):
    """A container's cgroup in the unified hierarchy (also the cgroup2 half of a hybrid
    layout, where V1Manager uses it for membership and the controllers bound to v2)."""

    driver = "v2"

    def __init__(self, container_id: str, cgroups_path: str, path: str, mountpoint: str,
                 rootless: bool = False, implied_devices: list | None = None,
                 created: list[str] | None = None):
        super().__init__(container_id, cgroups_path, rootless, implied_devices)
        self.path = path
        self.mountpoint = mountpoint
        self.created: list[str] = list(created or [])

    # --- state -----------------------------------------------------------------------------
    def to_state(self) -> dict:
        """The base state plus the cgroup directory, the hierarchy root and what was created."""
        state = super().to_state()
        state.update(path=self.path, mountpoint=self.mountpoint, created=self.created)
        return state

    @classmethod
    def from_state(cls, saved: dict) -> V2Manager:
        """Rebuild from ``to_state()`` output."""
        manager = cls(saved.get("id", ""), saved.get("cgroupsPath", ""), saved["path"],
                      saved["mountpoint"], saved.get("rootless", False),
                      saved.get("impliedDevices") or [],
                      saved.get("created"))
        manager.resources = saved.get("resources") or {}
        return manager

    # --- lifecycle -------------------------------------------------------------------------
    def controllers(self, directory: str | None = None) -> list[str]:
        """The controllers available in a cgroup (its cgroup.controllers)."""
        try:
            return read_file(directory or self.path, "cgroup.controllers").split()
        except FileNotFoundError:
            return []

    def directories(self) -> list[str]:
        """The container's cgroup directory."""
        return [self.path]

    def create(self) -> None:
        """Make the cgroup (joining an existing one) and enable, from the hierarchy root down
        to its parent, every controller the parent offers, as runc does.  An ancestor that
        refuses (processes in it, or not ours to change) is skipped: a resource that then
        lacks its file gets the clear error naming that file."""
        parent = os.path.dirname(self.path)
        chain = []
        probe = parent
        while probe.startswith(self.mountpoint):
            chain.append(probe)
            if probe == self.mountpoint:
                break
            probe = os.path.dirname(probe)
        try:
            parents = base.make_dirs(parent)
            if not self.keep_parents:
                self.created.extend(d for d in parents if d not in self.created)
        except PermissionError:
            raise SetupError("cannot create the container's cgroup", where=parent,
                             why="permission denied",
                             hint="run as root, or give the user a delegated cgroup") from None
        for directory in reversed(chain):
            self._enable_controllers(directory)
        for directory in base.make_dirs(self.path):
            if directory not in self.created:
                self.created.append(directory)

    def _enable_controllers(self, directory: str) -> None:
        try:
            enabled = set(read_file(directory, "cgroup.subtree_control").split())
        except OSError:
            return
        missing = [c for c in self.controllers(directory) if c not in enabled]
        if not missing:
            return
        try:
            with open(os.path.join(directory, "cgroup.subtree_control"), "w") as f:
                f.write(" ".join("+" + c for c in missing))
        except OSError as exc:
            log.debug(f"cannot enable {missing} in {directory}/cgroup.subtree_control: {exc}")

    def apply(self, pid: int) -> None:
        """Write ``pid`` to cgroup.procs (EBUSY explained: v2 keeps processes in leaves)."""
        try:
            base.move_pid(self.path, pid)
        except SetupError as exc:
            if "EBUSY" in str(exc):
                raise SetupError(f"cannot move pid {pid} into the cgroup", where=self.path,
                                 why="EBUSY: cgroup v2 keeps processes out of cgroups whose "
                                     "subtree_control enables controllers",
                                 hint="choose a leaf cgroup as linux.cgroupsPath") from None
            raise

    def destroy(self) -> None:
        """Remove the cgroups this manager created (the leaf retried briefly on EBUSY)."""
        left = base.remove_created(self.created, self.pids)
        if left:
            pids = base.procs_recursive(left[-1]) if os.path.isdir(left[-1]) else []
            raise SetupError("cannot remove the container's cgroup", where=left[0],
                             why=f"it is still busy (processes: {pids or 'none left, retry'})",
                             hint="kill the processes (pyoci kill --all ID KILL) and delete again")
        self.created = []

    # --- freezer ---------------------------------------------------------------------------
    def freeze(self) -> None:
        """cgroup.freeze = 1, then wait until cgroup.events reports frozen 1."""
        write_file(self.path, "cgroup.freeze", "1", "pause")
        self._wait_frozen(True)

    def thaw(self) -> None:
        """cgroup.freeze = 0, then wait until cgroup.events reports frozen 0."""
        write_file(self.path, "cgroup.freeze", "0", "resume")
        self._wait_frozen(False)

    def _wait_frozen(self, want: bool, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while read_keyed(self.path, "cgroup.events").get("frozen", 0) != int(want):
            if time.monotonic() > deadline:
                raise SetupError("the cgroup did not " + ("freeze" if want else "thaw"),
                                 where=os.path.join(self.path, "cgroup.events"),
                                 why=f"still not 'frozen {int(want)}' after {timeout:.0f}s")
            time.sleep(0.01)

    def frozen(self) -> bool:
        """cgroup.freeze reads 1: the status is then paused."""
        try:
            return read_file(self.path, "cgroup.freeze") == "1"
        except (FileNotFoundError, NotADirectoryError):
            return False

    # --- queries ---------------------------------------------------------------------------
    def pids(self) -> list[int]:
        """cgroup.procs of the cgroup and its sub-cgroups."""
        return base.procs_recursive(self.path)

    def populated(self) -> bool:
        """cgroup.events ``populated``: any process in the cgroup or below."""
        return read_keyed(self.path, "cgroup.events").get("populated", 0) == 1

    def oom_killed(self) -> bool:
        """memory.events reports ``oom_kill`` (or ``oom_group_kill``) > 0."""
        events = read_keyed(self.path, "memory.events")
        return events.get("oom_kill", 0) > 0 or events.get("oom_group_kill", 0) > 0

    def oom_count(self) -> int:
        """memory.events ``oom`` (times the limit was hit and reclaim failed)."""
        return read_keyed(self.path, "memory.events").get("oom", 0)

    def stats(self) -> dict:
        """runc's ``events --stats`` object from the v2 files."""
        return self._event(self.stats_data())

    def stats_data(self) -> dict:
        """The ``data`` member of the stats object, from cpu.stat, memory.*, pids.*, io.stat, hugetlb.*."""
        p = self.path
        cpu_stat = read_keyed(p, "cpu.stat")
        cpu = {"usage": _omit({"total": cpu_stat.get("usage_usec", 0) * 1000,
                               "kernel": cpu_stat.get("system_usec", 0) * 1000,
                               "user": cpu_stat.get("user_usec", 0) * 1000}, keep=("kernel", "user")),
               "throttling": _omit({"periods": cpu_stat.get("nr_periods", 0),
                                    "throttledPeriods": cpu_stat.get("nr_throttled", 0),
                                    "throttledTime": cpu_stat.get("throttled_usec", 0) * 1000})}
        raw = read_keyed(p, "memory.stat")
        memory: dict = {}
        if os.path.exists(os.path.join(p, "memory.current")):
            limit = read_int(p, "memory.max")
            usage = read_int(p, "memory.current", 0)
            events = read_keyed(p, "memory.events")
            memory["usage"] = _omit({"limit": UINT64_MAX if limit is None else limit,
                                     "usage": usage, "max": read_int(p, "memory.peak", 0) or 0,
                                     "failcnt": events.get("max", 0)}, keep=("limit", "failcnt"))
            if os.path.exists(os.path.join(p, "memory.swap.current")):
                swap_limit = read_int(p, "memory.swap.max")
                memory["swap"] = _omit({
                    "limit": UINT64_MAX if swap_limit is None or limit is None else swap_limit + limit,
                    "usage": read_int(p, "memory.swap.current", 0) + usage,
                    "failcnt": read_keyed(p, "memory.swap.events").get("max", 0)},
                    keep=("limit", "failcnt"))
            if raw.get("file"):
                memory["cache"] = raw["file"]
            if raw:
                memory["raw"] = raw
        pids = _omit({"current": read_int(p, "pids.current", 0) or 0,
                      "limit": read_int(p, "pids.max", 0) or 0})
        return {"cpu": cpu, "memory": memory, "pids": pids, "blkio": self._io_stats(),
                "hugetlb": self._hugetlb_stats()}

    def _io_stats(self) -> dict:
        service_bytes: list = []
        serviced: list = []
        try:
            text = read_file(self.path, "io.stat")
        except (FileNotFoundError, PermissionError):
            return {}
        for line in text.splitlines():
            device, *pairs = line.split()
            major, minor = (int(x) for x in device.split(":"))
            values = dict(pair.split("=", 1) for pair in pairs if "=" in pair)
            for key, op, target in (("rbytes", "Read", service_bytes), ("wbytes", "Write", service_bytes),
                                    ("rios", "Read", serviced), ("wios", "Write", serviced)):
                if key in values:
                    target.append(_omit({"major": major, "minor": minor, "op": op,
                                         "value": int(values[key])}))
        return _omit({"ioServiceBytesRecursive": service_bytes, "ioServicedRecursive": serviced})

    def _hugetlb_stats(self) -> dict:
        out = {}
        for size in base.hugepage_sizes():
            usage = read_int(self.path, f"hugetlb.{size}.current")
            if usage is None and not os.path.exists(os.path.join(self.path, f"hugetlb.{size}.current")):
                continue
            out[size] = _omit({"usage": usage or 0,
                               "failcnt": read_keyed(self.path, f"hugetlb.{size}.events").get("max", 0)},
                              keep=("failcnt",))
        return out

    # --- resources -------------------------------------------------------------------------
    def set(self, resources: dict) -> None:
        """Apply ``linux.resources`` to the v2 files (see the module docstring)."""
        resources = resources_object(resources)
        self._set_cpuset(section(resources, "cpu"))
        self._set_memory(section(resources, "memory"))
        self._set_cpu(section(resources, "cpu"))
        self._set_pids(section(resources, "pids"))
        self._set_io(section(resources, "blockIO"))
        self._set_hugetlb(resources)
        self._set_rdma(section(resources, "rdma"))
        self._refuse_network(section(resources, "network"))
        if not self.rootless:
            self.set_devices(resources.get("devices"))
        self.set_unified(resources.get("unified"))
        self.resources = resources

    def set_devices(self, rules) -> None:
        """The eBPF device filter for the config's rules plus the implied ones."""
        from pyoci_nb.runtime.cgroups import devices

        state = devices.DeviceRules.from_rules(
            devices.rules_from_spec(rules) + list(self.implied_devices))
        devices.attach_program(self.path, state)

    def _set_cpuset(self, cpu: dict) -> None:
        where = f"{RESOURCES}.cpu"
        for key, name in (("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")):
            value = string(cpu, key, where)
            if value:
                write_file(self.path, name, value, f"{where}.{key}")

    def _set_memory(self, memory: dict) -> None:
        where = f"{RESOURCES}.memory"
        limit = integer(memory, "limit", where)
        swap = integer(memory, "swap", where)
        reservation = integer(memory, "reservation", where)
        if boolean(memory, "checkBeforeUpdate", where) and limit is not None and limit > 0:
            usage = read_int(self.path, "memory.current", 0) or 0
            if limit < usage:
                raise SetupError(f"memory limit {limit} is below the current usage {usage}",
                                 where=f"{where}.limit",
                                 why="checkBeforeUpdate refuses a limit lower than memory.current",
                                 hint="free memory in the container or choose a higher limit")
        if limit is not None and limit != 0:
            swap_max = swap_to_v2(swap or 0, limit, where)
            # raise the swap room first when shrinking memory, so no step is refused
            if swap_max is not None:
                write_file(self.path, "memory.swap.max", swap_max, f"{where}.swap")
            write_file(self.path, "memory.max", _limit(limit), f"{where}.limit")
        elif swap is not None and swap != 0:
            current = read_int(self.path, "memory.max")
            swap_max = swap_to_v2(swap, -1 if current is None else current, where)
            if swap_max is not None:
                write_file(self.path, "memory.swap.max", swap_max, f"{where}.swap")
        if reservation is not None and reservation != 0:
            write_file(self.path, "memory.low", _limit(reservation), f"{where}.reservation")
        if integer(memory, "kernel", where):
            log.warning(f"{where}.kernel is ignored: kernel memory limits are deprecated "
                        "(cgroup v2 accounts kernel memory in memory.max)")
        if integer(memory, "kernelTCP", where):
            raise UnsupportedError("cannot set a kernel TCP memory limit", where=f"{where}.kernelTCP",
                                   why="cgroup v2 has no memory.kmem.tcp.limit_in_bytes "
                                       "(TCP memory counts toward memory.max)",
                                   hint="remove kernelTCP")
        if integer(memory, "swappiness", where) is not None:
            raise UnsupportedError("cannot set memory swappiness", where=f"{where}.swappiness",
                                   why="cgroup v2 has no memory.swappiness file",
                                   hint="remove swappiness (use memory.swap.max through swap)")
        if boolean(memory, "disableOOMKiller", where):
            raise UnsupportedError("cannot disable the OOM killer", where=f"{where}.disableOOMKiller",
                                   why="cgroup v2 has no memory.oom_control file",
                                   hint="remove disableOOMKiller (memory.oom.group is the v2 knob)")
        if boolean(memory, "useHierarchy", where) is False:
            raise UnsupportedError("cannot turn off hierarchical accounting",
                                   where=f"{where}.useHierarchy",
                                   why="cgroup v2 is always hierarchical (no memory.use_hierarchy)")

    def _set_cpu(self, cpu: dict) -> None:
        where = f"{RESOURCES}.cpu"
        shares = integer(cpu, "shares", where, minimum=0)
        if shares:
            weight = shares_to_weight(shares)
            if not 1 <= weight <= 10000:
                raise ConfigError(f"shares {shares} is out of range", where=f"{where}.shares",
                                  why="cpu.shares must be 2..262144 (cpu.weight 1..10000)")
            write_file(self.path, "cpu.weight", weight, f"{where}.shares")
        quota = integer(cpu, "quota", where)
        period = integer(cpu, "period", where, minimum=0)
        if quota or period:
            current = "max 100000"
            try:
                current = read_file(self.path, "cpu.max")
            except FileNotFoundError:
                pass
            old_quota, old_period = (current.split() + ["100000"])[:2]
            new_quota = old_quota if not quota else ("max" if quota < 0 else str(quota))
            new_period = str(period) if period else old_period
            write_file(self.path, "cpu.max", f"{new_quota} {new_period}",
                       f"{where}.quota" if quota else f"{where}.period")
        burst = integer(cpu, "burst", where, minimum=0)
        if burst is not None:
            write_file(self.path, "cpu.max.burst", burst, f"{where}.burst")
        idle = integer(cpu, "idle", where)
        if idle is not None:
            write_file(self.path, "cpu.idle", idle, f"{where}.idle")
        for key in ("realtimeRuntime", "realtimePeriod"):
            if integer(cpu, key, where):
                raise UnsupportedError(f"cannot set {key}", where=f"{where}.{key}",
                                       why="cgroup v2 has no cpu.rt_runtime_us / cpu.rt_period_us "
                                           "(realtime group scheduling is v1 only)",
                                       hint=f"remove {key}")

    def _set_pids(self, pids: dict) -> None:
        where = f"{RESOURCES}.pids"
        limit = integer(pids, "limit", where)
        if limit is not None and limit != 0:
            write_file(self.path, "pids.max", _limit(limit), f"{where}.limit")

    def _set_io(self, blkio: dict) -> None:
        where = f"{RESOURCES}.blockIO"
        bfq = os.path.exists(os.path.join(self.path, "io.bfq.weight"))
        weight = integer(blkio, "weight", where, minimum=0)
        if weight:
            if bfq:
                write_file(self.path, "io.bfq.weight", weight, f"{where}.weight")
            else:
                write_file(self.path, "io.weight", blkio_weight_to_io_weight(weight), f"{where}.weight")
        if integer(blkio, "leafWeight", where):
            raise UnsupportedError("cannot set leafWeight", where=f"{where}.leafWeight",
                                   why="cgroup v2 has no blkio.leaf_weight (no internal processes)",
                                   hint="remove leafWeight")
        for path, entry in items(blkio, "weightDevice", where):
            device = base.device_numbers(entry, path)
            value = integer(entry, "weight", path, minimum=0)
            if integer(entry, "leafWeight", path):
                raise UnsupportedError("cannot set leafWeight", where=f"{path}.leafWeight",
                                       why="cgroup v2 has no blkio.leaf_weight_device")
            if value:
                if bfq:
                    write_file(self.path, "io.bfq.weight", f"{device} {value}", f"{path}.weight")
                else:
                    write_file(self.path, "io.weight",
                               f"{device} {blkio_weight_to_io_weight(value)}", f"{path}.weight")
        for key, io_key in (("throttleReadBpsDevice", "rbps"), ("throttleWriteBpsDevice", "wbps"),
                            ("throttleReadIOPSDevice", "riops"), ("throttleWriteIOPSDevice", "wiops")):
            for path, entry in items(blkio, key, where):
                device = base.device_numbers(entry, path)
                rate = integer(entry, "rate", path, minimum=0)
                if rate is None:
                    raise ConfigError("rate is required", where=f"{path}.rate",
                                      why="config-linux.md: throttle entries need rate")
                write_file(self.path, "io.max", f"{device} {io_key}={rate or 'max'}", path)

    def _set_hugetlb(self, resources: dict) -> None:
        for path, size, limit in base.hugepage_limits(resources, base.hugepage_sizes(), self.path):
            write_file(self.path, f"hugetlb.{size}.max", _limit(limit), f"{path}.limit")
            if os.path.exists(os.path.join(self.path, f"hugetlb.{size}.rsvd.max")):
                write_file(self.path, f"hugetlb.{size}.rsvd.max", _limit(limit), f"{path}.limit")

    def _set_rdma(self, rdma: dict) -> None:
        for device, limits in rdma.items():
            path = f"{RESOURCES}.rdma.{device}"
            if not isinstance(limits, dict):
                raise ConfigError("an rdma entry must be an object", where=path)
            handles = integer(limits, "hcaHandles", path, minimum=0)
            objects = integer(limits, "hcaObjects", path, minimum=0)
            parts = [device]
            if handles is not None:
                parts.append(f"hca_handle={handles}")
            if objects is not None:
                parts.append(f"hca_object={objects}")
            if len(parts) > 1:
                write_file(self.path, "rdma.max", " ".join(parts), path)

    def _refuse_network(self, network: dict) -> None:
        where = f"{RESOURCES}.network"
        if network.get("classID") is not None or network.get("priorities"):
            raise UnsupportedError("cannot set network classID/priorities", where=where,
                                   why="cgroup v2 has no net_cls.classid / net_prio.ifpriomap "
                                       "(those are v1 controllers)",
                                   hint="remove linux.resources.network, or run on cgroup v1")

    def set_unified(self, unified) -> None:
        """``linux.resources.unified``: write each ``file: value`` (config-linux.md: the
        runtime MUST error if a file is not available or not writable)."""
        where = f"{RESOURCES}.unified"
        if unified is None:
            return
        if not isinstance(unified, dict):
            raise ConfigError("unified must be an object of file: value", where=where)
        for name, value in unified.items():
            key = f"{where}.{name}"
            if not isinstance(value, str):
                raise ConfigError("a unified value must be a string", where=key, why=f"got {value!r}")
            if "/" in name or name.startswith(".") or not name:
                raise ConfigError(f"{name!r} is not a cgroup file name", where=key,
                                  why="unified keys name files of the container's cgroup")
            controller = name.split(".", 1)[0]
            if (not os.path.exists(os.path.join(self.path, name))
                    and controller not in ("cgroup",) and controller not in self.controllers()):
                raise UnsupportedError(f"cannot set {name}", where=os.path.join(self.path, name),
                                       why=f"the '{controller}' controller is not available in "
                                           f"this cgroup (cgroup.controllers: "
                                           f"{' '.join(self.controllers()) or 'none'})",
                                       hint=f"remove {key}, or enable {controller} on this host")
            write_file(self.path, name, value, key)


def _omit(values: dict, keep: tuple = ()) -> dict:
    """Go's ``omitempty``: drop zero/empty members (except those in ``keep``)."""
    return {k: v for k, v in values.items() if v or k in keep}
