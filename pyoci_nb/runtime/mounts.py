"""The container's root filesystem: propagation, the rootfs bind, ``mounts``, /dev, pivot_root,
masked and read-only paths (config.md "Root", "Mounts"; config-linux.md "Devices",
"Default Devices", "Masked Paths", "Readonly Paths", "Rootfs Mount Propagation").

Runs inside the container's new mount namespace (in init, before the user process).  Every
destination is resolved *inside* the rootfs, following symlinks as the container would see
them (``resolve_in_root``): a symlink in the rootfs can never send a mount outside it.
"""

from __future__ import annotations

import errno
import os
import stat

from pyoci_nb.errors import ConfigError
from pyoci_nb.runtime import syscalls as sc
from pyoci_nb.runtime.syscalls import Step

# option -> (clear?, flag): runc's mount option table
MOUNT_FLAGS: dict[str, tuple[bool, int]] = {
    "defaults": (False, 0), "ro": (False, sc.MS_RDONLY), "rw": (True, sc.MS_RDONLY),
    "suid": (True, sc.MS_NOSUID), "nosuid": (False, sc.MS_NOSUID),
    "dev": (True, sc.MS_NODEV), "nodev": (False, sc.MS_NODEV),
    "exec": (True, sc.MS_NOEXEC), "noexec": (False, sc.MS_NOEXEC),
    "sync": (False, sc.MS_SYNCHRONOUS), "async": (True, sc.MS_SYNCHRONOUS),
    "dirsync": (False, sc.MS_DIRSYNC), "remount": (False, sc.MS_REMOUNT),
    "mand": (False, sc.MS_MANDLOCK), "nomand": (True, sc.MS_MANDLOCK),
    "atime": (True, sc.MS_NOATIME), "noatime": (False, sc.MS_NOATIME),
    "diratime": (True, sc.MS_NODIRATIME), "nodiratime": (False, sc.MS_NODIRATIME),
    "relatime": (False, sc.MS_RELATIME), "norelatime": (True, sc.MS_RELATIME),
    "strictatime": (False, sc.MS_STRICTATIME), "nostrictatime": (True, sc.MS_STRICTATIME),
    "lazytime": (False, sc.MS_LAZYTIME), "nolazytime": (True, sc.MS_LAZYTIME),
    "iversion": (False, sc.MS_I_VERSION), "noiversion": (True, sc.MS_I_VERSION),
    "silent": (False, sc.MS_SILENT), "loud": (True, sc.MS_SILENT),
    "symfollow": (True, sc.MS_NOSYMFOLLOW), "nosymfollow": (False, sc.MS_NOSYMFOLLOW),
    "bind": (False, sc.MS_BIND), "rbind": (False, sc.MS_BIND | sc.MS_REC),
}
PROPAGATION_FLAGS: dict[str, int] = {
    "private": sc.MS_PRIVATE, "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "shared": sc.MS_SHARED, "rshared": sc.MS_SHARED | sc.MS_REC,
    "slave": sc.MS_SLAVE, "rslave": sc.MS_SLAVE | sc.MS_REC,
    "unbindable": sc.MS_UNBINDABLE, "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}
# recursive options (mount_setattr with AT_RECURSIVE): option -> (clear?, attr)
RECURSIVE_FLAGS: dict[str, tuple[bool, int]] = {
    "rro": (False, sc.MOUNT_ATTR_RDONLY), "rrw": (True, sc.MOUNT_ATTR_RDONLY),
    "rnosuid": (False, sc.MOUNT_ATTR_NOSUID), "rsuid": (True, sc.MOUNT_ATTR_NOSUID),
    "rnodev": (False, sc.MOUNT_ATTR_NODEV), "rdev": (True, sc.MOUNT_ATTR_NODEV),
    "rnoexec": (False, sc.MOUNT_ATTR_NOEXEC), "rexec": (True, sc.MOUNT_ATTR_NOEXEC),
    "rnodiratime": (False, sc.MOUNT_ATTR_NODIRATIME), "rdiratime": (True, sc.MOUNT_ATTR_NODIRATIME),
    "rnosymfollow": (False, sc.MOUNT_ATTR_NOSYMFOLLOW), "rsymfollow": (True, sc.MOUNT_ATTR_NOSYMFOLLOW),
    "rnoatime": (False, sc.MOUNT_ATTR_NOATIME), "ratime": (True, sc.MOUNT_ATTR__ATIME),
    "rrelatime": (False, sc.MOUNT_ATTR_RELATIME), "rnorelatime": (True, sc.MOUNT_ATTR__ATIME),
    "rstrictatime": (False, sc.MOUNT_ATTR_STRICTATIME), "rnostrictatime": (True, sc.MOUNT_ATTR__ATIME),
}
#: options handled by the runtime itself rather than the kernel
RUNTIME_OPTIONS = ("tmpcopyup",)
#: the flags a read-only remount must keep (the kernel refuses to drop locked ones in a user ns)
_KEPT_FLAGS = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_NOATIME | sc.MS_NODIRATIME | sc.MS_RELATIME

# config-linux.md "Default Devices": path, major, minor
DEFAULT_DEVICES = (("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7),
                   ("/dev/random", 1, 8), ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0))
DEV_SYMLINKS = (("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
                ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"))


class MountOptions:
    """``mounts[i].options`` split into what mount(2), propagation and mount_setattr(2) take."""

    def __init__(self, options: list[str], where: str = "mounts[]"):
        self.flags = 0
        self.cleared = 0
        self.propagation: list[int] = []
        self.attr_set = 0
        self.attr_clr = 0
        self.data: list[str] = []
        self.tmpcopyup = False
        for i, option in enumerate(options or []):
            if not isinstance(option, str):
                raise ConfigError(f"mount option {option!r} is not a string", where=f"{where}.options[{i}]")
            if option in MOUNT_FLAGS:
                clear, flag = MOUNT_FLAGS[option]
                if clear:
                    self.flags &= ~flag
                    self.cleared |= flag
                else:
                    self.flags |= flag
            elif option in PROPAGATION_FLAGS:
                self.propagation.append(PROPAGATION_FLAGS[option])
            elif option in RECURSIVE_FLAGS:
                clear, attr = RECURSIVE_FLAGS[option]
                if clear:
                    self.attr_clr |= attr
                else:
                    if attr & sc.MOUNT_ATTR__ATIME or attr in (sc.MOUNT_ATTR_RELATIME,):
                        self.attr_clr |= sc.MOUNT_ATTR__ATIME
                    self.attr_set |= attr
            elif option == "tmpcopyup":
                self.tmpcopyup = True
            else:
                self.data.append(option)

    @property
    def bind(self) -> bool:
        """True for bind and rbind mounts."""
        return bool(self.flags & sc.MS_BIND)


def resolve_in_root(root: str, path: str) -> str:
    """The host path of ``path`` as seen inside ``root``: every symlink is followed relative to
    ``root`` (an absolute link target restarts at ``root``, ``..`` stops at ``root``), so the
    result is always below ``root``.  Missing components are kept as they are."""
    return _resolve(root, path)[0]


def _resolve(root: str, path: str) -> tuple[str, bool, bool]:
    """``resolve_in_root``, whether the result exists and whether its parent does (saving
    each caller the lstat calls the resolution made already)."""
    root = _real_root(root)
    parts = [p for p in path.split("/") if p and p != "."]
    resolved: list[str] = []
    links = 0
    missing_at = None  # len(resolved) where the first missing component went
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            if missing_at is not None and len(resolved) <= missing_at:
                missing_at = None
            continue
        candidate = os.path.join(root, *resolved, part)
        if missing_at is not None:  # below a missing component nothing exists (nor a link)
            resolved.append(part)
            continue
        try:
            st = os.lstat(candidate)
        except OSError:
            missing_at = len(resolved)
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > 255:
                raise OSError(40, "too many levels of symbolic links", os.path.join("/", *resolved, part))
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        resolved.append(part)
    return (os.path.join(root, *resolved), missing_at is None,
            missing_at is None or missing_at == len(resolved) - 1)


_REAL_ROOTS: dict[str, str] = {}


def _real_root(root: str) -> str:
    """``os.path.realpath(root)``, once per root (init resolves dozens of paths in one rootfs)."""
    real = _REAL_ROOTS.get(root)
    if real is None:
        real = _REAL_ROOTS[root] = os.path.realpath(root)
    return real


def _make_target(target: str, like_dir: bool, exists: bool) -> None:
    """Create the mount point ``target`` (resolved inside the rootfs) unless it ``exists``."""
    if exists:
        return
    parent = os.path.dirname(target)
    os.makedirs(parent if not like_dir else target, 0o755, exist_ok=True)
    if not like_dir:
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644))


def _kept_flags(path: str) -> int:
    try:
        return os.statvfs(path).f_flag & _KEPT_FLAGS
    except OSError:
        return 0


class CgroupView:
    """What a ``cgroup`` mount shows the container, as the runtime knows it before init runs:
    the container's cgroup directories (init may not be in them yet), and the host's cgroup
    hierarchies (``cgroup_hierarchies()``, read by the runtime before it forked init: the
    mount table init starts from), or None to read them in init."""

    def __init__(self, dirs: list[str] = (), hierarchies: list[tuple] | None = None):
        self.dirs = list(dirs)
        self.hierarchies = hierarchies


def cgroup_hierarchies() -> list[tuple[str, str, str, str]]:
    """The cgroup filesystems mounted under /sys/fs/cgroup: (name, fstype, super options,
    mount point) from /proc/self/mountinfo."""
    found = []
    for line in sc.read_file("/proc/self/mountinfo").decode().splitlines():
        fields = line.split()
        sep = fields.index("-")
        fstype, super_opts = fields[sep + 1], fields[sep + 3]
        mount_point = fields[4]
        if fstype in ("cgroup", "cgroup2") and mount_point.startswith("/sys/fs/cgroup"):
            found.append((os.path.basename(mount_point), fstype, super_opts, mount_point))
    return found


def prepare_rootfs(config: dict, rootfs: str, bundle: str, in_userns: bool,
                   cgroupns: bool, cgroups: CgroupView | None = None) -> None:
    """Everything before pivot_root: propagation, the rootfs bind, ``mounts`` in order, /dev.
    ``cgroups``: what a ``cgroup`` mount without a cgroup namespace binds."""
    linux = config.get("linux") or {}
    propagation = linux.get("rootfsPropagation")
    flag = sc.MS_SLAVE | sc.MS_REC
    if propagation:
        if propagation not in PROPAGATION_FLAGS:
            raise ConfigError(f"unknown rootfsPropagation {propagation!r}", where="linux.rootfsPropagation",
                              why="one of " + ", ".join(PROPAGATION_FLAGS))
        flag = PROPAGATION_FLAGS[propagation] | sc.MS_REC
    with Step(f"making / {propagation or 'rslave'}"):
        sc.mount(None, "/", None, flag)
    if propagation in ("shared", "rshared"):  # otherwise no mount is shared any more
        with Step(f"making the parent mount of rootfs {rootfs!r} private"):
            _make_parent_mount_private(rootfs)
    with Step(f"bind-mounting rootfs {rootfs!r}"):
        sc.mount(rootfs, rootfs, None, sc.MS_BIND | sc.MS_REC)
    dev_is_bound = False
    for i, m in enumerate(config.get("mounts") or []):
        if m.get("destination") == "/dev" and "bind" in (m.get("options") or []) + [m.get("type")]:
            dev_is_bound = True
        mount_one(m, i, rootfs, bundle, in_userns, cgroupns, cgroups)
    if not dev_is_bound:
        create_devices(rootfs, linux.get("devices") or [], in_userns)
    elif linux.get("devices"):
        create_devices(rootfs, linux["devices"], in_userns, defaults=False)


def _make_parent_mount_private(rootfs: str) -> None:
    """pivot_root(2) refuses a new root whose parent mount is shared: make that mount private."""
    best, best_shared = "/", False
    for line in sc.read_file("/proc/self/mountinfo").decode().splitlines():
        fields = line.split()
        mount_point = fields[4].replace("\\040", " ")
        if (rootfs == mount_point or rootfs.startswith(mount_point.rstrip("/") + "/")) \
                and len(mount_point) >= len(best):
            best = mount_point
            best_shared = any(x.startswith("shared:") for x in fields[6:fields.index("-")])
    if best_shared:
        sc.mount(None, best, None, sc.MS_PRIVATE)


def mount_one(m: dict, index: int, rootfs: str, bundle: str, in_userns: bool, cgroupns: bool,
              cgroups: CgroupView | None = None) -> None:
    """One entry of ``mounts``: create the destination inside the rootfs and mount it."""
    where = f"mounts[{index}]"
    destination = m.get("destination")
    if not destination or not isinstance(destination, str):
        raise ConfigError("mount destination missing", where=f"{where}.destination",
                          why="every mount needs a destination path inside the container")
    fstype = m.get("type") or None
    opts = MountOptions(m.get("options") or [], where)
    source = m.get("source") or fstype or "none"
    bind = opts.bind or fstype == "bind"
    if bind:
        opts.flags |= sc.MS_BIND
        if not os.path.isabs(source):
            source = os.path.join(bundle, source)
    target, exists, _ = _resolve(rootfs, destination)
    what = f'mounting "{m.get("source") or fstype}" to rootfs at "{destination}"'
    with Step(what):
        if bind:
            try:
                source_is_dir = os.path.isdir(source)
                os.stat(source)
            except OSError as exc:
                raise OSError(exc.errno, f"stat: {sc.errno_text(exc.errno)}", source) from None
            _make_target(target, source_is_dir, exists)
            _bind(source, target, opts)
        elif fstype == "cgroup":
            _make_target(target, True, exists)
            _mount_cgroup(target, opts, in_userns, cgroupns, cgroups or CgroupView())
        else:
            _make_target(target, True, exists)
            if opts.tmpcopyup and fstype == "tmpfs":
                _mount_tmpfs_copyup(source, target, opts)
            else:
                try:
                    sc.mount(source, target, fstype, opts.flags, ",".join(opts.data) or None)
                except OSError as exc:
                    if fstype == "sysfs" and in_userns and exc.errno == 1:
                        # sysfs needs a network namespace of one's own: bind the host's /sys (runc does)
                        _bind("/sys", target, MountOptions(["rbind"] + [o for o in m.get("options") or []
                                                                        if o in MOUNT_FLAGS]))
                    elif in_userns and exc.errno == 1:
                        from pyoci_nb.errors import SetupError

                        raise SetupError(
                            f"{what}: mount: EPERM (Operation not permitted)", where=where,
                            why=f"in a user namespace (a rootless container) the kernel mounts only filesystems "
                                f"marked FS_USERNS_MOUNT (tmpfs, proc, sysfs, mqueue, devpts, overlay, fuse...), "
                                f"not {fstype!r}: that needs privileges on the host",
                            hint="bind-mount a host directory instead (\"type\": \"bind\"), or run the container "
                                 "as root") from exc
                    else:
                        raise
        for flag in opts.propagation:
            sc.mount(None, target, None, flag)
        if opts.attr_set or opts.attr_clr:
            sc.mount_setattr(target, opts.attr_set, opts.attr_clr, recursive=True)


def _bind(source: str, target: str, opts: MountOptions) -> None:
    sc.mount(source, target, None, opts.flags & (sc.MS_BIND | sc.MS_REC))
    extra = opts.flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT)
    if extra:
        # a bind mount ignores other flags: they take a remount (keeping locked flags)
        sc.mount(None, target, None, sc.MS_REMOUNT | sc.MS_BIND | extra | _kept_flags(target))


def _mount_tmpfs_copyup(source: str, target: str, opts: MountOptions) -> None:
    """``tmpcopyup``: a tmpfs that starts with a copy of what was at the destination."""
    import shutil
    import tempfile

    stash = tempfile.mkdtemp(prefix="pyoci-copyup-")
    try:
        sc.mount(target, stash, None, sc.MS_BIND)
        try:
            sc.mount(source, target, "tmpfs", opts.flags, ",".join(opts.data) or None)
            shutil.copytree(stash, target, symlinks=True, dirs_exist_ok=True)
        finally:
            sc.umount2(stash, sc.MNT_DETACH)
    finally:
        os.rmdir(stash)


def _mount_cgroup(target: str, opts: MountOptions, in_userns: bool, cgroupns: bool,
                  cgroups: CgroupView) -> None:
    """``type: cgroup``: cgroup2 on a unified host; on v1/hybrid hosts a tmpfs with one mount per
    hierarchy -- a fresh cgroup mount (the namespace's view) with a cgroup namespace, otherwise a
    bind of the container's own cgroup directory (as runc does): the one of ``cgroups.dirs`` in
    that hierarchy, else the cgroup this process is in."""
    flags = opts.flags & ~sc.MS_REMOUNT
    dirs = [] if cgroupns else cgroups.dirs
    hierarchies = cgroups.hierarchies if cgroups.hierarchies is not None else cgroup_hierarchies()
    if any(h[3] == "/sys/fs/cgroup" and h[1] == "cgroup2" for h in hierarchies):
        if cgroupns:
            try:
                sc.mount("cgroup", target, "cgroup2", flags, None)
                return
            except OSError:
                if not in_userns:
                    raise
        own = _container_cgroup("/sys/fs/cgroup", dirs) or \
            "/sys/fs/cgroup" + _own_cgroup_paths().get("", "/").rstrip("/")
        _bind(own, target, MountOptions(["rbind"] + _flag_names(flags)))
        return
    sc.mount("tmpfs", target, "tmpfs", flags & ~sc.MS_RDONLY, "mode=755")
    own_paths = None
    binds = []
    for name, fstype, super_opts, mount_point in hierarchies:
        if "/" in name or not name:
            continue
        sub = target + "/" + name
        try:
            os.mkdir(sub, 0o755)  # in the fresh tmpfs
        except FileExistsError:
            pass
        controllers = [o for o in super_opts.split(",") if o not in ("rw", "ro")]
        mounted = False
        if cgroupns:
            try:
                sc.mount("cgroup", sub, fstype, flags, ",".join(controllers) if fstype == "cgroup" else None)
                mounted = True
            except OSError:
                if not in_userns:
                    raise
        if not mounted:
            own = _container_cgroup(mount_point, dirs)
            if own is None:  # not the container's: the cgroup this process is in
                own_paths = own_paths or _own_cgroup_paths()
                key = ",".join(c for c in controllers if not c.startswith("xattr")) if fstype == "cgroup" else ""
                own = mount_point + _find_own_path(own_paths, key, controllers).rstrip("/")
            sc.mount(own, sub, None, sc.MS_BIND)
            binds.append(sub)
        if "," in name:  # co-mounted controllers (cpu,cpuacct): a link per controller
            for controller in name.split(","):
                if not os.path.lexists(target + "/" + controller):
                    os.symlink(name, target + "/" + controller)
    # the mount's flags (ro, nosuid...) on the tmpfs and every bind below it: one
    # mount_setattr(AT_RECURSIVE) instead of a remount per hierarchy
    attrs = _mount_attrs(flags)
    try:
        if attrs:
            sc.mount_setattr(target, attrs, 0, recursive=True)
        return
    except OSError as exc:
        if exc.errno != errno.ENOSYS:  # Linux < 5.12: remount each
            raise
    for sub in binds:
        sc.mount(None, sub, None, sc.MS_REMOUNT | sc.MS_BIND | flags | _kept_flags(sub))
    if flags & sc.MS_RDONLY:
        sc.mount(None, target, None, sc.MS_REMOUNT | flags | sc.MS_RDONLY)


def _mount_attrs(flags: int) -> int:
    """The MOUNT_ATTR_* bits of the MS_* flags ro, nosuid, nodev, noexec."""
    return ((sc.MOUNT_ATTR_RDONLY if flags & sc.MS_RDONLY else 0)
            | (sc.MOUNT_ATTR_NOSUID if flags & sc.MS_NOSUID else 0)
            | (sc.MOUNT_ATTR_NODEV if flags & sc.MS_NODEV else 0)
            | (sc.MOUNT_ATTR_NOEXEC if flags & sc.MS_NOEXEC else 0))


def _flag_names(flags: int) -> list[str]:
    return [n for n in ("ro", "nosuid", "nodev", "noexec") if flags & MOUNT_FLAGS[n][1]]


def _container_cgroup(mount_point: str, cgroup_dirs: list[str]) -> str | None:
    """The directory of ``cgroup_dirs`` in the hierarchy mounted at ``mount_point``."""
    for directory in cgroup_dirs:
        if directory == mount_point or directory.startswith(mount_point.rstrip("/") + "/"):
            return directory
    return None


def _own_cgroup_paths() -> dict[str, str]:
    """/proc/self/cgroup as {controllers: path} ("" for the unified hierarchy)."""
    paths = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            paths[controllers] = path
    return paths


def _find_own_path(paths: dict[str, str], key: str, controllers: list[str]) -> str:
    if key in paths:
        return paths[key]
    for k, v in paths.items():
        if k and (set(k.split(",")) & set(controllers)):
            return v
    return paths.get("", "/")


def create_devices(rootfs: str, devices: list[dict], in_userns: bool, defaults: bool = True) -> None:
    """The default devices, ``linux.devices``, and the /dev symlinks (/dev/fd, stdio, ptmx)."""
    old_umask = os.umask(0)
    try:
        wanted = []
        if defaults:
            wanted = [{"path": p, "type": "c", "major": ma, "minor": mi, "fileMode": 0o666,
                       "uid": 0, "gid": 0} for p, ma, mi in DEFAULT_DEVICES]
        given = {d.get("path") for d in devices}
        wanted = [d for d in wanted if d["path"] not in given] + list(devices)
        for i, device in enumerate(wanted):
            _create_device(rootfs, device, in_userns, f"linux.devices[{i - (len(wanted) - len(devices))}]")
        if defaults:
            for target, link in DEV_SYMLINKS:
                with Step(f"creating symlink {link} -> {target}"):
                    path, exists, _ = _resolve(rootfs, link)
                    if not exists:
                        os.symlink(target, path)
            with Step("creating symlink /dev/ptmx -> pts/ptmx"):
                ptmx, exists, _ = _resolve(rootfs, "/dev/ptmx")
                if exists:
                    os.unlink(ptmx)
                os.symlink("pts/ptmx", ptmx)
            if os.path.exists("/proc/kcore"):
                core = resolve_in_root(rootfs, "/dev/core")
                if not os.path.lexists(core):
                    os.symlink("/proc/kcore", core)
    finally:
        os.umask(old_umask)


_DEVICE_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def _create_device(rootfs: str, device: dict, in_userns: bool, where: str) -> None:
    path = device.get("path")
    kind = device.get("type")
    if not path or not path.startswith("/dev/") and not path.startswith("/"):
        raise ConfigError(f"device path {path!r} is not absolute", where=f"{where}.path")
    if kind not in _DEVICE_TYPES:
        raise ConfigError(f"unknown device type {kind!r}", where=f"{where}.type",
                          why="one of c, b, u, p")
    target, exists, parent_exists = _resolve(rootfs, path)
    with Step(f'creating device "{path}"'):
        if not parent_exists:
            os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
        if in_userns:
            # mknod is not allowed in a user namespace: bind the host's node (runc does)
            if not exists:
                os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
            sc.mount(path, target, None, sc.MS_BIND)
            return
        if exists:
            os.unlink(target)
        mode = device.get("fileMode", 0o666)
        os.mknod(target, _DEVICE_TYPES[kind] | (mode & 0o7777),
                 os.makedev(device.get("major", 0), device.get("minor", 0)) if kind != "p" else 0)
        if mode & 0o7000:  # with umask 0, mknod sets the permission bits; these need chmod
            os.chmod(target, mode & 0o7777)
        owner = (device.get("uid", 0), device.get("gid", 0))
        if owner != (os.geteuid(), os.getegid()):  # the node is ours already
            os.chown(target, *owner)


def bind_console(rootfs_view: str, pty_slave: str) -> None:
    """/dev/console: an empty file bind-mounted over by the terminal's pty slave."""
    target = os.path.join(rootfs_view, "dev/console")
    with Step(f"bind-mounting {pty_slave} to /dev/console"):
        if not os.path.lexists(target):
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
        sc.mount(pty_slave, target, None, sc.MS_BIND)


def pivot_root(rootfs: str, no_pivot: bool) -> None:
    """Make ``rootfs`` the root: pivot_root(".", ".") then detach the old root (runc's way), or
    with ``--no-pivot`` move the rootfs over / and chroot."""
    with Step(f"changing root to {rootfs!r}"):
        os.chdir(rootfs)
        if no_pivot:
            sc.mount(rootfs, "/", None, sc.MS_MOVE)
            os.chroot(".")
        else:
            sc.pivot_root(".", ".")
            # the old root is now mounted over "."; keep its mount events from reaching the host
            sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)
            sc.umount2(".", sc.MNT_DETACH)
        os.chdir("/")


def finish_rootfs(config: dict) -> None:
    """After pivot_root: masked paths, read-only paths, propagation of /, read-only root."""
    linux = config.get("linux") or {}
    for path in linux.get("maskedPaths") or []:
        with Step(f'masking "{path}"'):
            mask_path(path)
    for path in linux.get("readonlyPaths") or []:
        with Step(f'making "{path}" read-only'):
            readonly_path(path)
    propagation = linux.get("rootfsPropagation")
    if propagation in ("shared", "rshared", "unbindable", "runbindable"):
        with Step(f"making / {propagation}"):
            sc.mount(None, "/", None, PROPAGATION_FLAGS[propagation])
    if (config.get("root") or {}).get("readonly"):
        with Step("remounting / read-only"):
            sc.mount(None, "/", None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY | _kept_flags("/"))


def mask_path(path: str) -> None:
    """maskedPaths: a directory gets an empty read-only tmpfs, anything else /dev/null."""
    try:
        try:
            is_dir = stat.S_ISDIR(os.lstat(path).st_mode)  # a symlink gets /dev/null (on its target)
        except FileNotFoundError:
            return
        if is_dir:
            sc.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY, None)
        else:
            sc.mount("/dev/null", path, None, sc.MS_BIND)
    except OSError as exc:
        if exc.errno != 2:
            raise


def readonly_path(path: str) -> None:
    """readonlyPaths: a recursive bind of the path onto itself, remounted read-only."""
    try:
        sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC)
    except OSError as exc:
        if exc.errno == 2:
            return
        raise
    sc.mount(None, path, None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY | _kept_flags(path))
