"""The cgroup v1 driver (legacy and hybrid layouts).

Documentation/admin-guide/cgroup-v1/: one hierarchy per controller (or group of co-mounted
controllers), each with its own copy of the container's cgroup.  config-linux.md's resources
map onto the v1 files directly:

* memory: limit -> memory.limit_in_bytes, swap (memory+swap) -> memory.memsw.limit_in_bytes
  (written in the order the kernel accepts: memsw >= limit at every step), reservation ->
  memory.soft_limit_in_bytes, kernelTCP -> memory.kmem.tcp.limit_in_bytes, swappiness ->
  memory.swappiness, disableOOMKiller -> memory.oom_control, useHierarchy ->
  memory.use_hierarchy; kernel is ignored with a warning (deprecated, as runc does);
* cpu: shares, cfs quota/period/burst, rt runtime/period, idle -> cpu.*; cpus/mems -> cpuset.*.
  A cgroup's realtime runtime comes out of its parent's (the sum of the children's
  runtime/period must fit in the parent's), and a new cgroup has none: the parents pyoci made
  (and its own ``/pyoci`` base) get what the container needs first, and are lowered again to
  what their remaining children need when it is deleted; a parent that is not pyoci's is
  never changed: the error says what it needs;
* blockIO -> blkio.weight (or blkio.bfq.weight), leaf weights, *_device and throttle files;
* pids -> pids.max; hugepageLimits -> hugetlb.<size>.limit_in_bytes; network -> net_cls.classid
  and net_prio.ifpriomap; rdma -> rdma.max; devices -> devices.allow/deny (devices.py).

In a hybrid layout the container also joins the cgroup2 tree (``unified``): controllers bound
only to cgroup2 (hugetlb on many hybrid machines) and ``linux.resources.unified`` are served
there.  Pause uses freezer.state (or cgroup.freeze of the cgroup2 half without a v1 freezer).
Standard library only.
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
from pyoci_nb.runtime.cgroups.v2 import UINT64_MAX, V2Manager, _omit

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_BW_SHIFT = 20  # the fixed point of the kernel's to_ratio() (kernel/sched/core.c)
_V1_UNLIMITED = 0x7FFFFFFFFFFFF000  # what memory.limit_in_bytes shows for "no limit"


class V1Manager(CgroupManager):
    """A container's cgroups in every v1 hierarchy (plus the cgroup2 half of a hybrid layout).

    ``paths`` maps each hierarchy (its controllers joined by commas, e.g. ``cpu,cpuacct`` or
    ``name=systemd``) to the container's directory in it.
    """

    driver = "v1"

    def __init__(self, container_id: str, cgroups_path: str, paths: dict[str, str],
                 unified: V2Manager | None = None, rootless: bool = False,
                 implied_devices: list | None = None, created: dict[str, list[str]] | None = None,
                 rt_raised: list[str] | None = None):
        super().__init__(container_id, cgroups_path, rootless, implied_devices)
        self.paths = dict(paths)
        self.unified = unified
        self.created: dict[str, list[str]] = {k: list(v) for k, v in (created or {}).items()}
        #: the devices cgroup was made by create() and has had no rules yet: they are then
        #: written in the listed order (not saved: update and later commands diff)
        self._new_devices_cgroup = False
        #: the parent cgroups whose cpu.rt_runtime_us this container raised (destroy() lowers
        #: them again to what their remaining children need)
        self.rt_raised: list[str] = list(rt_raised or [])

    # --- state -----------------------------------------------------------------------------
    def to_state(self) -> dict:
        """The base state plus the per-hierarchy paths, what was created, and the cgroup2 half."""
        state = super().to_state()
        state.update(paths=self.paths, created=self.created,
                     unified=self.unified.to_state() if self.unified else None)
        if self.rt_raised:
            state["rtRaised"] = self.rt_raised
        return state

    @classmethod
    def from_state(cls, saved: dict) -> V1Manager:
        """Rebuild from ``to_state()`` output."""
        unified = V2Manager.from_state(saved["unified"]) if saved.get("unified") else None
        manager = cls(saved.get("id", ""), saved.get("cgroupsPath", ""), saved.get("paths") or {},
                      unified, saved.get("rootless", False),
                      saved.get("impliedDevices") or [],
                      saved.get("created"), saved.get("rtRaised"))
        manager.resources = saved.get("resources") or {}
        return manager

    def path(self, controller: str) -> str | None:
        """The container's directory in the hierarchy that has ``controller``."""
        for key, directory in self.paths.items():
            if controller in key.split(","):
                return directory
        return None

    def _need(self, controller: str, file: str, field: str) -> str:
        directory = self.path(controller)
        if directory is None:
            raise UnsupportedError(f"cannot set {field}", where=f"{file} (cgroup v1 '{controller}')",
                                   why=f"the '{controller}' controller is not mounted on this "
                                       f"host (no {controller} hierarchy in /proc/self/mountinfo)",
                                   hint=f"remove {field}, or mount the {controller} controller")
        return directory

    # --- lifecycle -------------------------------------------------------------------------
    def create(self) -> None:
        """Make the cgroup in every hierarchy (joining existing ones).  New cpuset cgroups
        start with empty cpus/mems, which would refuse every process: copy the parent's."""
        for key, directory in self.paths.items():
            try:
                made = base.make_dirs(directory)
            except PermissionError:
                raise SetupError("cannot create the container's cgroup", where=directory,
                                 why="permission denied", hint="run as root") from None
            ours = [directory] if self.keep_parents and directory in made else made
            if "devices" in key.split(",") and directory in made:
                self._new_devices_cgroup = True
            self.created.setdefault(key, []).extend(d for d in ours if d not in self.created.get(key, []))
            if "cpuset" in key.split(","):
                for new in made:
                    for name in ("cpuset.cpus", "cpuset.mems"):
                        if not read_file(new, name):
                            write_file(new, name, read_file(os.path.dirname(new), name),
                                       "linux.cgroupsPath")
        if self.unified is not None:
            self.unified.create()

    def apply(self, pid: int) -> None:
        """Write ``pid`` to cgroup.procs in every hierarchy (and the cgroup2 half)."""
        for directory in self.paths.values():
            base.move_pid(directory, pid)
        if self.unified is not None:
            self.unified.apply(pid)

    def directories(self) -> list[str]:
        """The container's directory in every v1 hierarchy (and in the cgroup2 half)."""
        return list(self.paths.values()) + (self.unified.directories() if self.unified else [])

    def destroy(self) -> None:
        """Remove the cgroups created here, in every hierarchy (each leaf retried on EBUSY)."""
        left = []
        self._drop_own_rt_runtime()
        for key in list(self.created):
            left += base.remove_created(self.created[key], self.pids)
            if not any(d in left for d in self.created[key]):
                del self.created[key]
        if self.unified is not None:
            try:
                self.unified.destroy()
            except SetupError as exc:
                left.append(exc.where or "")
        if left:
            raise SetupError("cannot remove the container's cgroups", where=", ".join(left),
                             why="still busy (processes left in them?)",
                             hint="kill the processes (pyoci kill --all ID KILL) and delete again")
        self._give_back_rt_budget()

    # --- freezer ---------------------------------------------------------------------------
    def freeze(self) -> None:
        """freezer.state = FROZEN, retried until the kernel reports FROZEN (not FREEZING)."""
        directory = self.path("freezer")
        if directory is None:
            if self.unified is not None:
                return self.unified.freeze()
            self._need("freezer", "freezer.state", "pause")
        deadline = time.monotonic() + 10.0
        while True:
            write_file(directory, "freezer.state", "FROZEN", "pause")
            if read_file(directory, "freezer.state") == "FROZEN":
                return
            if time.monotonic() > deadline:
                write_file(directory, "freezer.state", "THAWED", "pause")
                raise SetupError("the container did not freeze", where=f"{directory}/freezer.state",
                                 why="still FREEZING after 10s", hint="retry pause")
            time.sleep(0.01)

    def thaw(self) -> None:
        """freezer.state = THAWED, retried until the kernel reports THAWED."""
        directory = self.path("freezer")
        if directory is None:
            if self.unified is not None:
                return self.unified.thaw()
            self._need("freezer", "freezer.state", "resume")
        write_file(directory, "freezer.state", "THAWED", "resume")
        deadline = time.monotonic() + 10.0
        while read_file(directory, "freezer.state") != "THAWED":
            if time.monotonic() > deadline:
                raise SetupError("the container did not thaw", where=f"{directory}/freezer.state",
                                 why="not THAWED after 10s")
            write_file(directory, "freezer.state", "THAWED", "resume")
            time.sleep(0.01)

    def frozen(self) -> bool:
        """freezer.state is FROZEN (or FREEZING): the status is then paused."""
        directory = self.path("freezer")
        if directory is None:
            return self.unified.frozen() if self.unified is not None else False
        try:
            return read_file(directory, "freezer.state") in ("FROZEN", "FREEZING")
        except (FileNotFoundError, NotADirectoryError):
            return False

    # --- queries ---------------------------------------------------------------------------
    def pids(self) -> list[int]:
        """cgroup.procs of the container's cgroup and its sub-cgroups (freezer hierarchy first)."""
        for controller in ("freezer", "pids", "memory", "devices", "cpu"):
            directory = self.path(controller)
            if directory is not None and os.path.isdir(directory):
                return base.procs_recursive(directory)
        for directory in self.paths.values():
            if os.path.isdir(directory):
                return base.procs_recursive(directory)
        return self.unified.pids() if self.unified is not None else []

    def oom_killed(self) -> bool:
        """memory.oom_control reports ``oom_kill`` > 0."""
        directory = self.path("memory")
        if directory is None:
            return self.unified.oom_killed() if self.unified is not None else False
        return read_keyed(directory, "memory.oom_control").get("oom_kill", 0) > 0

    def oom_eventfd(self) -> int | None:
        """An eventfd the kernel signals on every OOM in the container's memory cgroup
        (cgroup.event_control + memory.oom_control); None without a memory hierarchy."""
        directory = self.path("memory")
        if directory is None:
            return None
        event_fd = os.eventfd(0, os.EFD_CLOEXEC)
        control = os.open(os.path.join(directory, "memory.oom_control"), os.O_RDONLY | os.O_CLOEXEC)
        try:
            write_file(directory, "cgroup.event_control", f"{event_fd} {control}", "events")
        except BaseException:
            os.close(event_fd)
            raise
        finally:
            os.close(control)
        return event_fd

    def stats(self) -> dict:
        """runc's ``events --stats`` object."""
        return self._event(self.stats_data())

    def stats_data(self) -> dict:
        """runc's ``events --stats`` data from the v1 files (cpuacct, cpu, memory, pids, blkio,
        hugetlb; hugetlb from the cgroup2 half in a hybrid layout)."""
        data: dict = {"cpu": {"usage": {"kernel": 0, "user": 0}, "throttling": {}}, "memory": {},
                      "pids": {}, "blkio": {}, "hugetlb": {}}
        acct = self.path("cpuacct")
        if acct:
            stat = read_keyed(acct, "cpuacct.stat")
            usage = {"total": read_int(acct, "cpuacct.usage", 0) or 0,
                     "percpu": _numbers(acct, "cpuacct.usage_percpu"),
                     "percpu_kernel": [], "percpu_user": [],
                     "kernel": stat.get("system", 0) * 1_000_000_000 // _CLOCK_TICKS,
                     "user": stat.get("user", 0) * 1_000_000_000 // _CLOCK_TICKS}
            try:
                for line in read_file(acct, "cpuacct.usage_all").splitlines()[1:]:
                    _, user, system = line.split()
                    usage["percpu_user"].append(int(user))
                    usage["percpu_kernel"].append(int(system))
            except (FileNotFoundError, ValueError):
                pass
            data["cpu"]["usage"] = _omit(usage, keep=("kernel", "user"))
        cpu = self.path("cpu")
        if cpu:
            stat = read_keyed(cpu, "cpu.stat")
            data["cpu"]["throttling"] = _omit({"periods": stat.get("nr_periods", 0),
                                               "throttledPeriods": stat.get("nr_throttled", 0),
                                               "throttledTime": stat.get("throttled_time", 0)})
        memory = self.path("memory")
        if memory:
            data["memory"] = self._memory_stats(memory)
        pids = self.path("pids")
        if pids:
            data["pids"] = _omit({"current": read_int(pids, "pids.current", 0) or 0,
                                  "limit": read_int(pids, "pids.max", 0) or 0})
        blkio = self.path("blkio")
        if blkio:
            data["blkio"] = _blkio_stats(blkio)
        hugetlb = self.path("hugetlb")
        if hugetlb:
            for size in base.hugepage_sizes():
                data["hugetlb"][size] = _omit({
                    "usage": read_int(hugetlb, f"hugetlb.{size}.usage_in_bytes", 0) or 0,
                    "max": read_int(hugetlb, f"hugetlb.{size}.max_usage_in_bytes", 0) or 0,
                    "failcnt": read_int(hugetlb, f"hugetlb.{size}.failcnt", 0) or 0}, keep=("failcnt",))
        elif self.unified is not None:
            data["hugetlb"] = self.unified._hugetlb_stats()
        return data

    @staticmethod
    def _memory_stats(directory: str) -> dict:
        def entry(prefix: str) -> dict:
            limit = read_int(directory, f"{prefix}limit_in_bytes", 0) or 0
            return _omit({"limit": UINT64_MAX if limit >= _V1_UNLIMITED else limit,
                          "usage": read_int(directory, f"{prefix}usage_in_bytes", 0) or 0,
                          "max": read_int(directory, f"{prefix}max_usage_in_bytes", 0) or 0,
                          "failcnt": read_int(directory, f"{prefix}failcnt", 0) or 0},
                         keep=("limit", "failcnt"))

        raw = read_keyed(directory, "memory.stat")
        out = {"usage": entry("memory."), "swap": entry("memory.memsw."),
               "kernel": entry("memory.kmem."), "kernelTCP": entry("memory.kmem.tcp.")}
        if raw.get("cache"):
            out["cache"] = raw["cache"]
        if raw:
            out["raw"] = raw
        return out

    # --- resources -------------------------------------------------------------------------
    def set(self, resources: dict) -> None:
        """Apply ``linux.resources`` to the v1 files (see the module docstring)."""
        resources = resources_object(resources)
        cpu = section(resources, "cpu")
        self._set_cpuset(cpu)
        if not self.rootless:   # runc ignores device rules for rootless containers
            self.set_devices(resources.get("devices"))
        self._set_memory(section(resources, "memory"))
        self._set_cpu(cpu)
        self._set_pids(section(resources, "pids"))
        self._set_blkio(section(resources, "blockIO"))
        self._set_hugetlb(resources)
        self._set_network(section(resources, "network"))
        self._set_rdma(section(resources, "rdma"))
        unified = resources.get("unified")
        if unified:
            if self.unified is None:
                raise UnsupportedError("cannot set linux.resources.unified",
                                       where=f"{RESOURCES}.unified",
                                       why="this host has only cgroup v1 hierarchies (no cgroup2 "
                                           "mount in /proc/self/mountinfo)",
                                       hint="remove unified, or use the v1 resource fields")
            self.unified.set_unified(unified)
        self.resources = resources

    def set_devices(self, rules) -> None:
        """devices.allow/deny for the config's rules followed by the implied ones: on the
        cgroup create() has just made, every rule in the listed order (config-linux.md);
        otherwise (update, a joined cgroup) the fewest writes from what devices.list shows."""
        from pyoci_nb.runtime.cgroups import devices

        directory = self.path("devices")
        listed = devices.rules_from_spec(rules) + list(self.implied_devices)
        if directory is None:
            if rules:
                self._need("devices", "devices.allow", f"{RESOURCES}.devices")
            return
        files: dict[str, int] = {}  # devices.allow/deny opened once, one write per rule

        def write(d, name, value, field):
            write_file(d, name, value, field, files)
        try:
            if self._new_devices_cgroup:
                devices.write_v1_in_order(directory, listed, write)
                self._new_devices_cgroup = False
            else:
                devices.apply_v1(directory, devices.DeviceRules.from_rules(listed), write)
        finally:
            for fd in files.values():
                os.close(fd)

    def _set_cpuset(self, cpu: dict) -> None:
        where = f"{RESOURCES}.cpu"
        for key, name in (("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")):
            value = string(cpu, key, where)
            if value:
                write_file(self._need("cpuset", name, f"{where}.{key}"), name, value, f"{where}.{key}")

    def _set_memory(self, memory: dict) -> None:
        where = f"{RESOURCES}.memory"
        limit = integer(memory, "limit", where)
        swap = integer(memory, "swap", where)
        reservation = integer(memory, "reservation", where)
        kernel_tcp = integer(memory, "kernelTCP", where)
        swappiness = integer(memory, "swappiness", where)
        disable_oom = boolean(memory, "disableOOMKiller", where)
        use_hierarchy = boolean(memory, "useHierarchy", where)
        wanted = [v for v in (limit, swap, reservation, kernel_tcp, swappiness) if v] + \
            [v for v in (disable_oom, use_hierarchy) if v is not None]
        if not wanted:
            if integer(memory, "kernel", where):
                log.warning(f"{where}.kernel is ignored: kernel memory limits are deprecated")
            return
        directory = self._need("memory", "memory.limit_in_bytes", where)
        if use_hierarchy is not None:
            write_file(directory, "memory.use_hierarchy", int(use_hierarchy), f"{where}.useHierarchy")
        if boolean(memory, "checkBeforeUpdate", where) and limit is not None and limit > 0:
            usage = read_int(directory, "memory.usage_in_bytes", 0) or 0
            if limit < usage:
                raise SetupError(f"memory limit {limit} is below the current usage {usage}",
                                 where=f"{where}.limit",
                                 why="checkBeforeUpdate refuses a limit lower than "
                                     "memory.usage_in_bytes",
                                 hint="free memory in the container or choose a higher limit")
        if limit == -1 and not swap:
            swap = -1   # unlimited memory: unlimited memory+swap too (runc)
        memsw = "memory.memsw.limit_in_bytes"
        if limit and swap:
            current = read_int(directory, "memory.limit_in_bytes", 0) or 0
            if swap == -1 or current < swap:   # grow memsw before memory
                write_file(directory, memsw, swap, f"{where}.swap")
                write_file(directory, "memory.limit_in_bytes", limit, f"{where}.limit")
            else:                              # shrink memory before memsw
                write_file(directory, "memory.limit_in_bytes", limit, f"{where}.limit")
                write_file(directory, memsw, swap, f"{where}.swap")
        elif limit:
            write_file(directory, "memory.limit_in_bytes", limit, f"{where}.limit")
        elif swap:
            write_file(directory, memsw, swap, f"{where}.swap")
        if reservation:
            write_file(directory, "memory.soft_limit_in_bytes", reservation, f"{where}.reservation")
        if integer(memory, "kernel", where):
            log.warning(f"{where}.kernel is ignored: kernel memory limits are deprecated "
                        "(memory.kmem.limit_in_bytes is gone from current kernels)")
        if kernel_tcp:
            write_file(directory, "memory.kmem.tcp.limit_in_bytes", kernel_tcp, f"{where}.kernelTCP")
        if swappiness is not None:
            if not 0 <= swappiness <= 100:
                raise ConfigError(f"swappiness {swappiness} is out of range", where=f"{where}.swappiness",
                                  why="memory.swappiness takes 0..100")
            write_file(directory, "memory.swappiness", swappiness, f"{where}.swappiness")
        if disable_oom is not None:
            write_file(directory, "memory.oom_control", int(disable_oom), f"{where}.disableOOMKiller")

    def _set_cpu(self, cpu: dict) -> None:
        where = f"{RESOURCES}.cpu"
        shares = integer(cpu, "shares", where, minimum=0)
        quota = integer(cpu, "quota", where)
        period = integer(cpu, "period", where, minimum=0)
        burst = integer(cpu, "burst", where, minimum=0)
        rt_runtime = integer(cpu, "realtimeRuntime", where)
        rt_period = integer(cpu, "realtimePeriod", where, minimum=0)
        idle = integer(cpu, "idle", where)
        if not (shares or quota or period or burst is not None or rt_runtime or rt_period
                or idle is not None):
            return
        directory = self._need("cpu", "cpu.shares", where)
        if shares:
            write_file(directory, "cpu.shares", shares, f"{where}.shares")
            actual = read_int(directory, "cpu.shares")
            if actual != shares:
                raise ConfigError(f"shares {shares} is out of range", where=f"{where}.shares",
                                  why=f"the kernel clamped cpu.shares to {actual} (range 2..262144)")
        period_failed = None
        if period:
            try:
                write_file(directory, "cpu.cfs_period_us", period, f"{where}.period")
            except SetupError as exc:
                if not quota:
                    raise
                period_failed = exc   # old quota / new period too big: retry after the quota
        if quota:
            write_file(directory, "cpu.cfs_quota_us", quota, f"{where}.quota")
            if period_failed is not None:
                write_file(directory, "cpu.cfs_period_us", period, f"{where}.period")
        if burst is not None:
            write_file(directory, "cpu.cfs_burst_us", burst, f"{where}.burst")
        if rt_period:
            write_file(directory, "cpu.rt_period_us", rt_period, f"{where}.realtimePeriod")
        if rt_runtime:
            self._set_rt_runtime(directory, rt_runtime, f"{where}.realtimeRuntime")
        if idle is not None:
            write_file(directory, "cpu.idle", idle, f"{where}.idle")

    # --- realtime budget (cgroup v1 cpu controller, CONFIG_RT_GROUP_SCHED) --------------------
    def _set_rt_runtime(self, directory: str, runtime: int, field: str) -> None:
        """cpu.rt_runtime_us = ``runtime``, after making room for it in the parents pyoci owns
        (``_make_rt_room``).  A container created at the same time may take the room first,
        or a sibling cgroup removed a moment ago may still hold its budget (the kernel frees
        it a little later; such a cgroup is no longer listed): the kernel then says EINVAL,
        and the room is made again after a short pause (five tries, ~0.75 s in all)."""
        name = "cpu.rt_runtime_us"
        if not os.path.exists(os.path.join(directory, name)):
            write_file(directory, name, runtime, field)   # the clear "not offered" error
        period = read_int(directory, "cpu.rt_period_us", 0) or 0
        if period and runtime > period:
            raise ConfigError(f"realtimeRuntime {runtime} is longer than the period {period}",
                              where=field, why="a realtime runtime is the part of each "
                                               "cpu.rt_period_us that realtime tasks may use",
                              hint="choose a realtimeRuntime up to realtimePeriod")
        for attempt in range(5):
            self._make_rt_room(directory, runtime, field)
            try:
                write_file(directory, name, runtime, field)
                return
            except SetupError as exc:
                if "EINVAL" not in (exc.why or "") or attempt == 4:
                    raise SetupError(exc.what, where=exc.where,
                                     why=f"{exc.why}: a realtime runtime must not exceed the "
                                         f"cgroup's period ({period} µs), nor what its parents "
                                         "and the system (/proc/sys/kernel/sched_rt_runtime_us) "
                                         "have left", hint="choose a smaller realtimeRuntime"
                                     ) from None
            time.sleep(0.05 * 2 ** attempt)

    def _drop_own_rt_runtime(self) -> None:
        """Set the realtime runtime of the container's own cpu cgroup back to 0 before it is
        removed: a removed cgroup lingers in the kernel for a moment and its budget still
        counts against its parent until then (the parent could not be lowered, and a
        container created next to it would be refused)."""
        directory = self.path("cpu")
        if directory is None or not any(directory in dirs for dirs in self.created.values()):
            return
        try:
            if (read_int(directory, "cpu.rt_runtime_us", 0) or 0) > 0:
                write_file(directory, "cpu.rt_runtime_us", 0, "cgroup cleanup")
        except (OSError, SetupError, UnsupportedError) as exc:
            log.debug(f"cannot drop the realtime runtime of {directory}: {exc}")

    def _owned_parents(self, directory: str) -> set[str]:
        """The parents of ``directory`` whose realtime budget pyoci may change: the ones this
        manager created, and the ``/pyoci`` base of the default cgroupsPath."""
        owned = {d for dirs in self.created.values() for d in dirs}
        if self.keep_parents:
            owned.add(os.path.dirname(directory))
        owned.discard(directory)
        return owned

    def _make_rt_room(self, directory: str, runtime: int, field: str) -> None:
        """Raise the realtime budget of the parents on the way up until ``runtime`` per the
        cgroup's period fits: the kernel wants every cgroup's children to add up (in runtime /
        period) to no more than its own share.  Worked out bottom-up (stopping at the first
        parent with room), written top-down; a parent without room that is not pyoci's is an
        error naming it and what it lacks."""
        owned = self._owned_parents(directory)
        child = directory
        need = _rt_ratio(runtime, read_int(directory, "cpu.rt_period_us", 0) or 0)
        plan: list[tuple[str, int]] = []
        while True:
            parent = os.path.dirname(child)
            if parent == child or not os.path.exists(os.path.join(parent, "cpu.rt_runtime_us")):
                break
            others = sum(_rt_ratio_of(os.path.join(parent, entry.name))
                         for entry in os.scandir(parent)
                         if entry.is_dir(follow_symlinks=False) and entry.path != child)
            required = others + need
            have = _rt_ratio_of(parent)
            if have >= required:
                break
            period = read_int(parent, "cpu.rt_period_us", 0) or 0
            wanted = _rt_runtime_for(required, period)
            if parent not in owned:
                raise SetupError(
                    f"cannot give {field} = {runtime} µs a realtime budget",
                    where=os.path.join(parent, "cpu.rt_runtime_us"),
                    why=f"on cgroup v1 a cgroup's realtime runtime comes out of its parent's: "
                        f"{parent} has {read_int(parent, 'cpu.rt_runtime_us', 0)} µs per "
                        f"{period} µs, and it needs {wanted} µs for this container and its other "
                        "children; pyoci changes the budget only of the parent cgroups it "
                        "created itself",
                    hint=f"write {wanted} (or more) to {parent}/cpu.rt_runtime_us (its own "
                         "parents need as much room), or leave linux.cgroupsPath out: pyoci "
                         "then gives its own /pyoci parent the budget")
            if wanted > period:
                raise SetupError(
                    f"cannot give {field} = {runtime} µs a realtime budget",
                    where=os.path.join(parent, "cpu.rt_runtime_us"),
                    why=f"{parent} would need {wanted} µs per {period} µs: more realtime than "
                        "time, the other containers under it already take the rest",
                    hint="choose a smaller realtimeRuntime")
            plan.append((parent, wanted))
            child, need = parent, required
        for parent, wanted in reversed(plan):   # top-down: each parent has room for the next
            write_file(parent, "cpu.rt_runtime_us", wanted, field)
            if parent not in self.rt_raised:
                self.rt_raised.append(parent)

    def _give_back_rt_budget(self) -> None:
        """After the container's cgroups are gone: lower each parent whose budget this
        container raised to what its remaining children need (deepest first).  The budget of
        a parent pyoci owns is pyoci's to manage; a container being created next to it at
        the same moment finds the room gone and makes it again (``_set_rt_runtime``)."""
        for parent in sorted(self.rt_raised, key=lambda d: d.count("/"), reverse=True):
            if not os.path.isdir(parent):
                continue
            try:
                current = read_int(parent, "cpu.rt_runtime_us", 0) or 0
                period = read_int(parent, "cpu.rt_period_us", 0) or 0
                children = sum(_rt_ratio_of(entry.path) for entry in os.scandir(parent)
                               if entry.is_dir(follow_symlinks=False))
                target = _rt_runtime_for(children, period)
                if target < current:
                    write_file(parent, "cpu.rt_runtime_us", target, "cgroup cleanup")
            except (OSError, SetupError, UnsupportedError) as exc:
                log.debug(f"cannot give back the realtime budget of {parent}: {exc}")
        self.rt_raised = []

    def _set_pids(self, pids: dict) -> None:
        where = f"{RESOURCES}.pids"
        limit = integer(pids, "limit", where)
        if limit:
            directory = self._need("pids", "pids.max", f"{where}.limit")
            write_file(directory, "pids.max", "max" if limit < 0 else limit, f"{where}.limit")

    def _set_blkio(self, blkio: dict) -> None:
        where = f"{RESOURCES}.blockIO"
        if not any(blkio.get(k) for k in blkio):
            return
        directory = self._need("blkio", "blkio.weight", where)
        cfq = os.path.exists(os.path.join(directory, "blkio.weight"))
        weight_file = "blkio.weight" if cfq else "blkio.bfq.weight"
        weight = integer(blkio, "weight", where, minimum=0)
        if weight:
            if not cfq and not os.path.exists(os.path.join(directory, weight_file)):
                raise UnsupportedError(f"cannot set {where}.weight",
                                       where=os.path.join(directory, "blkio.weight"),
                                       why="the kernel offers neither blkio.weight (CFQ) nor "
                                           "blkio.bfq.weight (BFQ) in this cgroup: no "
                                           "proportional I/O scheduler is active",
                                       hint="remove blockIO.weight, or select the bfq I/O scheduler")
            write_file(directory, weight_file, weight, f"{where}.weight")
        leaf = integer(blkio, "leafWeight", where, minimum=0)
        if leaf:
            write_file(directory, "blkio.leaf_weight", leaf, f"{where}.leafWeight")
        for path, entry in items(blkio, "weightDevice", where):
            device = base.device_numbers(entry, path)
            value = integer(entry, "weight", path, minimum=0)
            if value:
                write_file(directory, weight_file + "_device", f"{device} {value}", f"{path}.weight")
            leaf_value = integer(entry, "leafWeight", path, minimum=0)
            if leaf_value:
                write_file(directory, "blkio.leaf_weight_device", f"{device} {leaf_value}",
                           f"{path}.leafWeight")
        for key, name in (("throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
                          ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
                          ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
                          ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device")):
            for path, entry in items(blkio, key, where):
                device = base.device_numbers(entry, path)
                rate = integer(entry, "rate", path, minimum=0)
                if rate is None:
                    raise ConfigError("rate is required", where=f"{path}.rate",
                                      why="config-linux.md: throttle entries need rate")
                write_file(directory, name, f"{device} {rate}", path)

    def _set_hugetlb(self, resources: dict) -> None:
        if not resources.get("hugepageLimits"):
            return
        directory = self.path("hugetlb")
        if directory is None and self.unified is not None \
                and "hugetlb" in self.unified.controllers():
            self.unified._set_hugetlb(resources)   # bound to cgroup2 on this hybrid host
            return
        directory = directory or self._need("hugetlb", "hugetlb.<size>.limit_in_bytes",
                                            f"{RESOURCES}.hugepageLimits")
        for path, size, limit in base.hugepage_limits(resources, base.hugepage_sizes(), directory):
            write_file(directory, f"hugetlb.{size}.limit_in_bytes", limit if limit >= 0 else -1,
                       f"{path}.limit")
            if os.path.exists(os.path.join(directory, f"hugetlb.{size}.rsvd.limit_in_bytes")):
                write_file(directory, f"hugetlb.{size}.rsvd.limit_in_bytes",
                           limit if limit >= 0 else -1, f"{path}.limit")

    def _set_network(self, network: dict) -> None:
        where = f"{RESOURCES}.network"
        class_id = integer(network, "classID", where, minimum=0)
        if class_id is not None:
            directory = self._need("net_cls", "net_cls.classid", f"{where}.classID")
            write_file(directory, "net_cls.classid", class_id, f"{where}.classID")
        for path, entry in items(network, "priorities", where):
            name = string(entry, "name", path)
            priority = integer(entry, "priority", path, minimum=0)
            if not name or priority is None:
                raise ConfigError("name and priority are required", where=path,
                                  why="config-linux.md: network.priorities entries need both")
            directory = self._need("net_prio", "net_prio.ifpriomap", path)
            write_file(directory, "net_prio.ifpriomap", f"{name} {priority}", path)

    def _set_rdma(self, rdma: dict) -> None:
        for device, limits in rdma.items():
            path = f"{RESOURCES}.rdma.{device}"
            if not isinstance(limits, dict):
                raise ConfigError("an rdma entry must be an object", where=path)
            parts = [device]
            for key, kernel_key in (("hcaHandles", "hca_handle"), ("hcaObjects", "hca_object")):
                value = integer(limits, key, path, minimum=0)
                if value is not None:
                    parts.append(f"{kernel_key}={value}")
            if len(parts) > 1:
                directory = self.path("rdma")
                if directory is None and self.unified is not None \
                        and "rdma" in self.unified.controllers():
                    self.unified._set_rdma({device: limits})
                    continue
                directory = directory or self._need("rdma", "rdma.max", path)
                write_file(directory, "rdma.max", " ".join(parts), path)


def _rt_ratio(runtime: int | None, period: int) -> int:
    """The kernel's to_ratio(): a realtime share in units of 2**-20 (runtime -1: all)."""
    if runtime is not None and runtime < 0:
        return 1 << _BW_SHIFT
    if not runtime or period <= 0:
        return 0
    return (runtime << _BW_SHIFT) // period


def _rt_ratio_of(directory: str) -> int:
    """The realtime share of a cgroup (0 once it is gone)."""
    return _rt_ratio(read_int(directory, "cpu.rt_runtime_us", 0),
                     read_int(directory, "cpu.rt_period_us", 0) or 0)


def _rt_runtime_for(ratio: int, period: int) -> int:
    """The smallest cpu.rt_runtime_us whose share per ``period`` is at least ``ratio``."""
    return -((-ratio * period) >> _BW_SHIFT) if ratio > 0 else 0


def _numbers(directory: str, name: str) -> list[int]:
    try:
        return [int(x) for x in read_file(directory, name).split()]
    except (FileNotFoundError, ValueError):
        return []


def _blkio_stats(directory: str) -> dict:
    """blkio.throttle.* (and CFQ/BFQ when present) recursive counters as runc's entries."""
    out: dict = {}
    for key, names in (("ioServiceBytesRecursive", ("blkio.io_service_bytes_recursive",
                                                    "blkio.bfq.io_service_bytes_recursive",
                                                    "blkio.throttle.io_service_bytes_recursive")),
                       ("ioServicedRecursive", ("blkio.io_serviced_recursive",
                                                "blkio.bfq.io_serviced_recursive",
                                                "blkio.throttle.io_serviced_recursive"))):
        for name in names:
            try:
                text = read_file(directory, name)
            except (FileNotFoundError, PermissionError):
                continue
            entries = []
            for line in text.splitlines():
                parts = line.split()
                if len(parts) == 3 and ":" in parts[0]:
                    major, minor = (int(x) for x in parts[0].split(":"))
                    entries.append(_omit({"major": major, "minor": minor, "op": parts[1],
                                          "value": int(parts[2])}))
            if entries:
                out[key] = entries
            break
    return out
