"""What the v1 and v2 drivers share: cgroup file I/O with clear errors, reading
``linux.resources`` values with JSON paths, directory creation/removal, process listing.

config-linux.md: ``linux.resources`` configures the cgroups of the container; "if the cgroup
the runtime is asked to apply a resource to does not offer it, the runtime MUST generate an
error".  ``write_file`` is that rule in one place: a missing file names the file and the
controller it belongs to; EINVAL/EBUSY/EPERM name the file, the value and the config field.
Standard library only.
"""

from __future__ import annotations

import errno
import os
import time

from pyoci_nb.errors import ConfigError, SetupError, UnsupportedError
from pyoci_nb.runtime import log
from pyoci_nb.runtime import syscalls as sc

RESOURCES = "linux.resources"


# --- files ----------------------------------------------------------------------------------

def read_file(directory: str, name: str) -> str:
    """The contents of a cgroup file, stripped (OSError as the kernel reports it).  Raw
    reads, see ``syscalls.read_file``."""
    return sc.read_file(os.path.join(directory, name)).decode().strip()


def read_int(directory: str, name: str, default: int | None = None) -> int | None:
    """A cgroup file holding one number ("max" reads as None); ``default`` if it is missing."""
    try:
        text = read_file(directory, name)
    except (FileNotFoundError, PermissionError):
        return default
    if text == "max" or text == "":
        return None
    return int(text.split()[0])


def read_keyed(directory: str, name: str) -> dict[str, int]:
    """A flat-keyed file (``key value`` lines: memory.stat, cpu.stat, memory.events)."""
    out: dict[str, int] = {}
    try:
        text = read_file(directory, name)
    except (FileNotFoundError, PermissionError):
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


def write_file(directory: str, name: str, value, field: str, keep_open: dict | None = None) -> None:
    """Write ``value`` to the cgroup file ``directory/name`` on behalf of the config ``field``.

    Errors name the file, the field and the kernel's reason: a missing file means the
    kernel (or this cgroup layout) does not offer the resource.  With ``keep_open`` (path ->
    fd, closed by the caller) a file written many times is opened once: each write(2) to
    devices.allow is one rule.
    """
    path = os.path.join(directory, name)
    data = str(value)
    fd = keep_open.get(path) if keep_open is not None else None
    if fd is None:
        fd = _open_for_writing(path, directory, name, field)
        if keep_open is not None:
            keep_open[path] = fd
    try:
        os.write(fd, data.encode())
    except OSError as exc:
        why = {errno.EINVAL: "the kernel rejected the value (EINVAL)",
               errno.EBUSY: "the cgroup is busy (EBUSY): e.g. usage is above the new limit",
               errno.EPERM: "not permitted (EPERM): a parent cgroup does not allow it",
               errno.EOPNOTSUPP: "the kernel no longer supports this setting (EOPNOTSUPP)",
               errno.ERANGE: "value out of range (ERANGE)",
               errno.ENOSPC: "no space (ENOSPC): e.g. cpuset or RT budget not available",
               }.get(exc.errno, f"{errno.errorcode.get(exc.errno, exc.errno)}: {exc.strerror}")
        raise SetupError(f"cannot set {field} to {data!r}", where=path, why=why) from None
    finally:
        if keep_open is None:
            os.close(fd)


def _open_for_writing(path: str, directory: str, name: str, field: str) -> int:
    try:
        return os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        if not os.path.isdir(directory):
            raise SetupError(f"cannot set {field}", where=path,
                             why="the cgroup directory does not exist (was the cgroup removed?)"
                             ) from None
        controller = name.split(".", 1)[0]
        raise UnsupportedError(f"cannot set {field}", where=path,
                               why=f"the kernel offers no {name} here (the '{controller}' "
                                   "controller, or this file of it, is missing from this cgroup)",
                               hint=f"remove {field} from config.json, or use a kernel / cgroup "
                                    f"layout with the {controller} controller") from None
    except PermissionError:
        raise SetupError(f"cannot set {field}", where=path, why="permission denied",
                         hint="cgroups need root or a delegated cgroup") from None


# --- reading linux.resources -----------------------------------------------------------------

def resources_object(resources) -> dict:
    """``linux.resources`` as a dict ({} when absent); a clear error when it is not an object."""
    resources = resources or {}
    if not isinstance(resources, dict):
        raise ConfigError("resources must be an object", where=RESOURCES,
                          why=f"got {type(resources).__name__}")
    return resources


def section(resources: dict, key: str) -> dict:
    """``resources[key]`` as a dict ({} when absent); a clear error when it is not an object."""
    value = resources.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must be an object", where=f"{RESOURCES}.{key}",
                          why=f"got {type(value).__name__}")
    return value


def integer(obj: dict, key: str, where: str, *, minimum: int | None = None) -> int | None:
    """An integer member (None when absent) with the JSON path in the error."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{key} must be an integer", where=f"{where}.{key}",
                          why=f"got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key} must be at least {minimum}", where=f"{where}.{key}",
                          why=f"got {value}")
    return value


def boolean(obj: dict, key: str, where: str) -> bool | None:
    """A boolean member (None when absent) with the JSON path in the error."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false", where=f"{where}.{key}",
                          why=f"got {value!r}")
    return value


def string(obj: dict, key: str, where: str) -> str | None:
    """A string member (None when absent) with the JSON path in the error."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string", where=f"{where}.{key}", why=f"got {value!r}")
    return value


def items(obj: dict, key: str, where: str) -> list[tuple[str, dict]]:
    """A list of objects as ``(json_path, entry)`` pairs."""
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{key} must be a list", where=f"{where}.{key}",
                          why=f"got {type(value).__name__}")
    out: list = []
    for i, entry in enumerate(value):
        path = f"{where}.{key}[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError("entry must be an object", where=path,
                              why=f"got {type(entry).__name__}")
        out.append((path, entry))
    return out


def device_numbers(entry: dict, where: str) -> str:
    """``major:minor`` of a blockIO device entry (both REQUIRED)."""
    major = integer(entry, "major", where, minimum=0)
    minor = integer(entry, "minor", where, minimum=0)
    if major is None or minor is None:
        raise ConfigError("major and minor are required", where=where,
                          why="config-linux.md: blockIO device entries need major and minor")
    return f"{major}:{minor}"


def hugepage_limits(resources: dict, available: list[str], where_files: str) -> list[tuple[str, str, int]]:
    """Check ``hugepageLimits``: ``(json_path, pageSize, limit)`` for each entry; a page size
    the kernel does not offer is an error listing the ones it does."""
    out: list = []
    for path, entry in items(resources, "hugepageLimits", RESOURCES):
        size = string(entry, "pageSize", path)
        limit = integer(entry, "limit", path)
        if size is None or limit is None:
            raise ConfigError("pageSize and limit are required", where=path,
                              why="config-linux.md: hugepageLimits entries need both")
        if size not in available:
            raise UnsupportedError(f"hugepage size {size!r} is not offered", where=f"{path}.pageSize",
                                   why=f"{where_files} has hugetlb.<size> files for "
                                       f"{', '.join(available) or 'no size'}",
                                   hint="use one of those sizes (e.g. 2MB)")
        out.append((path, size, limit))
    return out


def hugepage_sizes() -> list[str]:
    """Page sizes of /sys/kernel/mm/hugepages in the kernel's cgroup naming (2MB, 1GB, 64KB)."""
    sizes: list = []
    try:
        names = os.listdir("/sys/kernel/mm/hugepages")
    except FileNotFoundError:
        return sizes
    for name in names:
        kb = int(name.split("-")[1].rstrip("kB"))
        for unit, factor in (("GB", 1 << 20), ("MB", 1 << 10), ("KB", 1)):
            if kb % factor == 0:
                sizes.append(f"{kb // factor}{unit}")
                break
    return sorted(sizes)


# --- directories ----------------------------------------------------------------------------

def make_dirs(path: str) -> list[str]:
    """Create ``path`` and any missing parents; returns the ones created here (top first).
    An existing cgroup is joined, never taken over (nor one another container creates
    meanwhile: shared, not ours)."""
    try:
        os.mkdir(path, 0o755)
        return [path]
    except FileExistsError:
        return []
    except FileNotFoundError:
        parent = os.path.dirname(path)
        if parent == path:
            raise
    created = make_dirs(parent)
    try:
        os.mkdir(path, 0o755)
        created.append(path)
    except FileExistsError:
        pass
    return created


def wait_until_empty(list_pids, timeout: float = 2.0) -> bool:
    """Give exiting processes ``timeout`` seconds to leave the cgroup; True once
    ``list_pids()`` is empty."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if not list_pids():
                return True
        except OSError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


def remove_dirs(created: list[str], timeout: float = 0.5) -> list[str]:
    """Remove the cgroups in ``created`` (top first), deepest first.  The leaf is retried on
    EBUSY for up to ``timeout`` seconds (processes being reaped); a parent that another cgroup
    still uses stays.  Returns the directories that could not be removed."""
    left = []
    leaf = created[-1] if created else None
    for directory in reversed(created):
        ok = _rmdir_retry(directory, 0.0)
        if not ok and directory == leaf:
            # sub-cgroups made inside the container (nested runtimes, exec --cgroup) go first
            for sub in _subdirs_deepest_first(directory):
                _rmdir_retry(sub, timeout)
            ok = _rmdir_retry(directory, timeout)
        if not ok:
            left.append(directory)
    return left


def remove_created(created: list[str], list_pids) -> list[str]:
    """Remove the cgroups a manager created (``remove_dirs``): at once, and if the leaf is
    still busy (EBUSY lags the exit of its last processes), again once ``list_pids()`` is
    empty (given 2 s), the leaf retried for 0.5 s.  Returns what could not be removed."""
    left = remove_dirs(created, 0.0)
    if created and created[-1] in left:  # (a parent another container uses just stays)
        retry = 0.5 if wait_until_empty(list_pids) else 0.0
        left = remove_dirs([d for d in created if d in left], retry)
    return left


def _subdirs_deepest_first(directory: str) -> list[str]:
    out: list = []
    for top, dirs, _ in os.walk(directory, topdown=False):
        out.extend(os.path.join(top, d) for d in dirs)
    return out


def _rmdir_retry(directory: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            os.rmdir(directory)
            return True
        except FileNotFoundError:
            return True
        except OSError as exc:
            if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY, errno.EAGAIN) \
                    or time.monotonic() >= deadline:
                if directory and exc.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                    log.warning(f"cannot remove cgroup {directory}: {exc.strerror}")
                return False
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def procs_recursive(directory: str) -> list[int]:
    """Every pid in the cgroup and its sub-cgroups (cgroup.procs), sorted."""
    pids: set[int] = set()
    for top, _, _ in os.walk(directory):
        try:
            pids.update(int(line) for line in sc.read_file(os.path.join(top, "cgroup.procs")).split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return sorted(pids)


def move_pid(directory: str, pid: int, field: str = "linux.cgroupsPath") -> None:
    """Write ``pid`` to ``directory/cgroup.procs`` (moves the whole thread group)."""
    write_file(directory, "cgroup.procs", pid, field)


class CgroupManager:
    """The interface the runtime uses (docs/ARCHITECTURE.md); v1, v2 and the no-op manager of
    rootless containers without a delegated cgroup implement it."""

    driver = "none"

    def __init__(self, container_id: str, cgroups_path: str, rootless: bool = False,
                 implied_devices: list | None = None):
        self.id = container_id
        self.cgroups_path = cgroups_path
        self.rootless = rootless
        #: DeviceRule objects, or their JSON as saved in state.json until a command needs them
        self._implied_devices = list(implied_devices or [])
        self.resources: dict = {}

    # lifecycle
    def create(self) -> None:
        """Create the cgroup directories (an existing cgroup is joined)."""
        raise NotImplementedError

    def apply(self, pid: int) -> None:
        """Move ``pid`` (and its threads) into the cgroup, in every hierarchy."""
        raise NotImplementedError

    def directories(self) -> list[str]:
        """The container's cgroup directory in every hierarchy ``apply`` moves a process into
        (what a ``cgroup`` mount without a cgroup namespace shows the container)."""
        return []

    def set(self, resources: dict) -> None:
        """Apply ``linux.resources`` (the spec's JSON names)."""
        raise NotImplementedError

    def destroy(self) -> None:
        """Remove the cgroups this manager created, once their processes are gone."""
        raise NotImplementedError

    def freeze(self) -> None:
        """Suspend every process of the cgroup (runc pause; status becomes paused)."""
        raise NotImplementedError

    def thaw(self) -> None:
        """Resume the processes of a frozen cgroup (runc resume)."""
        raise NotImplementedError

    def frozen(self) -> bool:
        """True while the cgroup is frozen (state.json's status then reads paused)."""
        raise NotImplementedError

    def pids(self) -> list[int]:
        """Every pid in the cgroup and its sub-cgroups (runc ps, kill --all)."""
        raise NotImplementedError

    def stats(self) -> dict:
        """runc's ``events --stats`` object: {type: stats, id, data: {cpu, memory, pids, blkio, hugetlb}}."""
        raise NotImplementedError

    def oom_killed(self) -> bool:
        """True once the kernel's OOM killer has killed a process of the cgroup."""
        raise NotImplementedError

    def to_state(self) -> dict:
        """What state.json keeps of the manager (JSON-able); manager_from_state reads it back."""
        return {"driver": self.driver, "id": self.id, "cgroupsPath": self.cgroups_path,
                "rootless": self.rootless, "resources": self.resources,
                "impliedDevices": [r if isinstance(r, dict) else r.to_json() for r in self._implied_devices]}

    @property
    def keep_parents(self) -> bool:
        """The default cgroupsPath of a container run as root (``/pyoci/<id>``): create()
        records only the container's own cgroup, and the ``/pyoci`` base stays for the next."""
        from pyoci_nb.runtime.cgroups import default_cgroups_path

        return not self.rootless and self.cgroups_path == default_cgroups_path(self.id, False)

    @property
    def implied_devices(self) -> list:
        """The device rules the runtime adds to the config's (``devices.implied_rules``).  A
        manager rebuilt from state.json parses them only when asked: ``state``, ``kill`` and
        ``delete`` never need them."""
        if any(isinstance(r, dict) for r in self._implied_devices):
            from pyoci_nb.runtime.cgroups.devices import rule_from_spec

            self._implied_devices = [rule_from_spec(r, "state.json: cgroup.impliedDevices")
                                     if isinstance(r, dict) else r for r in self._implied_devices]
        return self._implied_devices

    def _event(self, data: dict) -> dict:
        return {"type": "stats", "id": self.id, "data": data}


class NoCgroupManager(CgroupManager):
    """A rootless container without a cgroup it may write to: runc then runs the container in
    the caller's cgroup and ignores resources, with a warning.  Status and ``ps`` fall back to
    what can be known without a cgroup."""

    driver = "none"

    def __init__(self, container_id: str, cgroups_path: str, rootless: bool = True,
                 implied_devices: list | None = None, reason: str = ""):
        super().__init__(container_id, cgroups_path, rootless, implied_devices)
        self.reason = reason
        self.init_pid: int | None = None

    def create(self) -> None:
        """Nothing to create: the container stays in the caller's cgroup."""

    def apply(self, pid: int) -> None:
        """Remember the init's pid (the only process ps can name without a cgroup)."""
        self.init_pid = pid

    def set(self, resources: dict) -> None:
        """Ignore linux.resources with a warning (runc's rootless behaviour)."""
        wanted = [k for k, v in (resources or {}).items() if v not in (None, {}, [])
                  and k != "devices"]
        if wanted:
            log.warning(f"rootless container without a delegated cgroup: {RESOURCES}."
                        f"{', '.join(wanted)} ignored ({self.reason})")
        self.resources = dict(resources or {})

    def destroy(self) -> None:
        """Nothing was created, nothing to remove."""

    def freeze(self) -> None:
        """Refused: freezing needs a cgroup of the container's own."""
        raise UnsupportedError("cannot pause the container", where=f"container {self.id!r}",
                               why=f"it has no cgroup of its own ({self.reason})",
                               hint="give the user a delegated cgroup (systemd: Delegate=yes)")

    thaw = freeze

    def frozen(self) -> bool:
        """Never frozen: there is no freezer."""
        return False

    def pids(self) -> list[int]:
        """The init's pid while it lives (children cannot be found without a cgroup)."""
        if self.init_pid and os.path.exists(f"/proc/{self.init_pid}"):
            return [self.init_pid]
        return []

    def stats(self) -> dict:
        """An empty stats object (no cgroup to read)."""
        return self._event({"cpu": {"usage": {"kernel": 0, "user": 0}, "throttling": {}},
                            "memory": {"usage": {"limit": 0, "failcnt": 0}},
                            "pids": {}, "blkio": {}, "hugetlb": {}})

    def oom_killed(self) -> bool:
        """Unknown without a memory cgroup: False."""
        return False

    def to_state(self) -> dict:
        """The base state plus why there is no cgroup and the init's pid."""
        state = super().to_state()
        state.update(reason=self.reason, initPid=self.init_pid)
        return state
