"""The container's root filesystem: propagation, the rootfs bind, ``mounts``, /dev, pivot_root,
masked and read-only paths (config.md "Root", "Mounts"; config-linux.md "Devices",
"Default Devices", "Masked Paths", "Readonly Paths", "Rootfs Mount Propagation").

Runs inside the container's new mount namespace (in init, before the user process).  Every
destination is resolved *inside* the rootfs through file descriptors (``inroot``): symlinks
are followed as the container would see them, missing targets are made relative to their
parent's fd, and a mount goes onto the O_PATH fd of its target (``/proc/self/fd/N`` of the
host's /proc before pivot_root; open_tree/move_mount after it, when /proc is the
container's), then is checked to have landed there.  A path string is never checked and then
used: a directory swapped for a symlink meanwhile (CVE-2021-30465) cannot send a mount
outside the rootfs.  What masking binds is the null device (checked on its fd: CVE-2025-31133),
/dev/console gets the pty init opened (CVE-2025-52565), and sysctls are written to files
checked to be the container's procfs (CVE-2025-52881).
"""

from __future__ import annotations

import errno
import os
import stat

from pyoci_nb.errors import ConfigError, SetupError
from pyoci_nb.runtime import inroot
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
#: id-mapped mount options (config.md "Linux mount options"): the bind alone, or recursively
IDMAP_OPTIONS = ("idmap", "ridmap")
#: options handled by the runtime itself rather than the kernel
RUNTIME_OPTIONS = ("tmpcopyup",) + IDMAP_OPTIONS
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
        #: "idmap" (the mount itself) or "ridmap" (with the mounts below it): an id-mapped bind
        self.idmap: str | None = None
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
            elif option in IDMAP_OPTIONS:
                self.idmap = option
            else:
                self.data.append(option)

    @property
    def bind(self) -> bool:
        """True for bind and rbind mounts."""
        return bool(self.flags & sc.MS_BIND)


def resolve_in_root(root: str, path: str) -> str:
    """The host path of ``path`` as seen inside ``root``: every symlink is followed relative to
    ``root`` (an absolute link target restarts at ``root``, ``..`` stops at ``root``), so the
    result is always below ``root``.  Missing components are kept as they are.  (A string, to
    look at; init itself resolves through file descriptors: ``inroot.open_in_root``.)"""
    return inroot.resolve_in_root(os.path.realpath(root), path)


class Rootfs:
    """The container's root while init sets it up: an O_PATH fd of it and its path as init
    sees it.  Before pivot_root it is the bundle's rootfs, opened after the rootfs bind (so
    that mounts land on that mount); after pivot_root it is "/"."""

    def __init__(self, path: str, fd: int | None = None):
        self.path = os.path.realpath(path) if fd is None else path
        self.fd = os.open(self.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) if fd is None \
            else os.dup(fd)

    def close(self) -> None:
        """Close the fd."""
        os.close(self.fd)

    def __enter__(self) -> Rootfs:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _escaped(what: str, location: str, root: str) -> SetupError:
    return SetupError(what, where=location,
                      why=f"it resolved (or was moved) outside the container's root filesystem {root}: "
                          "a directory of it was replaced by a symbolic link or moved while the runtime "
                          "worked (CVE-2021-30465)",
                      hint="make sure nothing else changes the root filesystem or the volumes under it "
                           "while the container is created")


class Target:
    """A mount point inside the rootfs, held by an O_PATH file descriptor from the moment it
    is resolved (and created, if missing) to the moment the mount is checked.

    ``path`` (``/proc/self/fd/N``, the host's /proc: init has not pivoted yet) is what
    mount(2) gets as the target: the kernel mounts on exactly the file the fd refers to.
    ``landed()`` checks that the file is still where it was resolved; ``mounted()`` opens the
    new mount's root for the calls that act on it (remount, propagation, mount_setattr)."""

    def __init__(self, root: Rootfs, destination: str, like_dir: bool):
        self.root = root
        self.destination = destination
        self.top = -1
        with inroot.open_in_root(root.fd, destination) as resolved:
            #: made by the runtime (it was missing in the rootfs)?
            self.created = bool(resolved.missing)
            if resolved.missing:
                resolved.create(like_dir)
            self.fd = resolved.detach()
        try:
            if stat.S_ISLNK(os.fstat(self.fd).st_mode):
                raise OSError(40, "the mount target is a symbolic link", destination)
            self.location = inroot.fd_location(self.fd)
            if not inroot.is_inside(self.location, root.path):
                raise _escaped(f"refusing to mount on {destination!r}", self.location, root.path)
        except BaseException:
            os.close(self.fd)
            raise

    @property
    def path(self) -> str:
        """The target as mount(2) takes it: the magic link to the fd."""
        return f"/proc/self/fd/{self.fd}"

    def landed(self) -> None:
        """After mounting on ``path``: the target is still where it was resolved."""
        now = inroot.fd_location(self.fd)
        if now != self.location:
            raise _escaped(f"the mount on {self.destination!r} did not land there", now, self.root.path)

    def mounted(self) -> str:
        """The root of the mount just made on the target, as a ``/proc/self/fd/M`` path,
        after checking that the destination now resolves to a new mount at the same place."""
        if self.top < 0:
            self.landed()
            with inroot.open_in_root(self.root.fd, self.destination) as resolved:
                top = resolved.detach()
                missing = resolved.missing
            try:
                if missing or sc.mount_id(top) == sc.mount_id(self.fd) \
                        or inroot.fd_location(top) != self.location:
                    raise _escaped(f"the mount on {self.destination!r} is not where it was made",
                                   inroot.fd_location(top), self.root.path)
            except BaseException:
                os.close(top)
                raise
            self.top = top
        return f"/proc/self/fd/{self.top}"

    def close(self) -> None:
        """Close the fds."""
        for fd in (self.fd, self.top):
            if fd >= 0:
                os.close(fd)
        self.fd = self.top = -1

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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

    def __init__(self, dirs: list[str] | tuple[()] = (), hierarchies: list[tuple] | None = None):
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


def _first_propagation(propagation: str | None) -> int:
    """The propagation the container's mounts start from, before anything is mounted: rslave
    by default (the host's mounts still reach the container, none goes back);
    ``rootfsPropagation`` private or slave as given; unbindable (which would make the rootfs
    bind fail with EINVAL) private, shared as given -- both become what was asked only after
    pivot_root (``finish_rootfs``)."""
    if propagation is None:
        return sc.MS_SLAVE | sc.MS_REC
    if propagation not in PROPAGATION_FLAGS:
        raise ConfigError(f"unknown rootfsPropagation {propagation!r}", where="linux.rootfsPropagation",
                          why="one of " + ", ".join(PROPAGATION_FLAGS))
    if propagation in ("unbindable", "runbindable"):
        return sc.MS_PRIVATE | sc.MS_REC
    return PROPAGATION_FLAGS[propagation] | sc.MS_REC


def prepare_rootfs(config: dict, rootfs: str, bundle: str, in_userns: bool,
                   cgroupns: bool, cgroups: CgroupView | None = None,
                   bound_rootfs: int | None = None, idmapped: dict[int, int] | None = None) -> None:
    """Everything before pivot_root: propagation, the rootfs bind, ``mounts`` in order, /dev.
    ``cgroups``: what a ``cgroup`` mount without a cgroup namespace binds.

    In the container's own mount namespace (new or joined) "/" gets its propagation and the
    rootfs is bound onto itself.  Without one, ``bound_rootfs`` is the fd of the rootfs bind
    the runtime made in its mount namespace (``RootfsBind``): everything is mounted below it
    and nothing else -- not the propagation of "/", nor anything outside the rootfs -- is
    touched.  ``idmapped``: {index in ``mounts``: detached id-mapped tree} (``IdmappedMounts``).
    An overlay mount on "/" (``mounts[0]``, ``check_root_mount``) goes onto the rootfs bind
    before everything else, and everything else goes into it (``mount_root_overlay``)."""
    linux = config.get("linux") or {}
    root_overlay = check_root_mount(config, own_mount_ns=bound_rootfs is None)
    propagation = linux.get("rootfsPropagation")
    flag = _first_propagation(propagation)
    if bound_rootfs is None:
        with Step(f"making / {propagation or 'rslave'}"):
            sc.mount(None, "/", None, flag)
        if propagation in ("shared", "rshared"):  # otherwise no mount is shared any more
            with Step(f"making the parent mount of rootfs {rootfs!r} private"):
                _make_parent_mount_private(rootfs)
        with Step(f"bind-mounting rootfs {rootfs!r}"):
            sc.mount(rootfs, rootfs, None, sc.MS_BIND | sc.MS_REC)
            root = Rootfs(rootfs)  # the bind: what everything below is mounted on
    else:
        root = Rootfs(rootfs, bound_rootfs)
    if root_overlay:
        root = mount_root_overlay(config["mounts"][0], root, in_userns)
    with root:
        dev_is_bound = False
        for i, m in enumerate(config.get("mounts") or []):
            if i == 0 and root_overlay:
                continue
            if m.get("destination") == "/dev" and "bind" in (m.get("options") or []) + [m.get("type")]:
                dev_is_bound = True
            mount_one(m, i, root, bundle, in_userns, cgroupns, cgroups, (idmapped or {}).get(i))
        if not dev_is_bound:
            create_devices(root, linux.get("devices") or [], in_userns)
        elif linux.get("devices"):
            create_devices(root, linux["devices"], in_userns, defaults=False)


def _is_root_destination(destination) -> bool:
    return isinstance(destination, str) and destination.startswith("/") and os.path.normpath(destination) in ("/", "//")


def check_root_mount(config: dict, own_mount_ns: bool = True) -> bool:
    """Whether ``mounts`` starts with an overlay on "/", the container's root filesystem made
    of layers (``pyoci_nb.rootfs.overlay.Snapshot``); ConfigError for a mount on "/" this
    runtime cannot make right.

    config.md leaves a mount on "/" to the runtime; runc mounts it on the rootfs, so that
    later mounts resolve inside it.  Here: only ``type: overlay`` (a bind or tmpfs over the
    root would hide what is under it -- use ``root.path`` for that), only as ``mounts[0]``
    (a later one would cover the mounts before it), only in a mount namespace of the
    container's own (without one the overlay would be made in the runtime's mount namespace,
    over the rootfs bind, where ``delete`` does not look for it)."""
    found = False
    for i, m in enumerate(config.get("mounts") or []):
        if not isinstance(m, dict) or not _is_root_destination(m.get("destination")):
            continue
        where = f"mounts[{i}]"
        if m.get("type") != "overlay":
            raise ConfigError(f"a {m.get('type') or 'typeless'} mount on \"/\" is not supported", where=where,
                              why="a mount on the container's root is supported for type overlay only (the root "
                                  "filesystem made of layers); anything else would hide the root filesystem",
                              hint="set root.path to the directory instead, or mount it on a subdirectory")
        if i != 0:
            raise ConfigError("the overlay mount on \"/\" is not the first mount", where=where,
                              why="the root filesystem is mounted before everything else: mounted later it "
                                  "would cover the mounts listed before it (/proc, /dev...)",
                              hint="move it to mounts[0]")
        if not own_mount_ns:
            raise ConfigError("an overlay mount on \"/\" needs a mount namespace of the container's own",
                              where=where,
                              why="without one it would be made in the runtime's mount namespace, where it "
                                  "would outlive the container",
                              hint='add {"type": "mount"} to linux.namespaces')
        found = True
    return found


def mount_root_overlay(m: dict, root: Rootfs, in_userns: bool) -> Rootfs:
    """Mount the overlay ``m`` (``mounts[0]``, destination "/") on the rootfs bind ``root``
    and return the root the other mounts go into: the overlay's root, opened anew and checked
    to be an overlayfs mounted right on the bind (its parent mount in
    /proc/self/mountinfo).  ``root`` is closed.  The layer paths of the options are host
    paths, looked up by the kernel now, before pivot_root (runc does the same).  In a user
    namespace this is an unprivileged overlay mount (Linux >= 5.11)."""
    where = "mounts[0]"
    opts = MountOptions(m.get("options") or [], where)
    if opts.bind or opts.tmpcopyup or opts.idmap:
        root.close()
        raise ConfigError("bind, tmpcopyup and idmap options do not apply to an overlay mount on \"/\"",
                          where=f"{where}.options",
                          hint="give lowerdir=, upperdir=, workdir= and mount flags such as ro or nosuid")
    what = 'mounting "overlay" to rootfs at "/"'
    try:
        try:
            sc.mount(m.get("source") or "overlay", f"/proc/self/fd/{root.fd}", "overlay",
                     opts.flags & ~sc.MS_REMOUNT, ",".join(opts.data) or None)
        except OSError as exc:
            userns = ("; in a user namespace (rootless) the kernel must allow unprivileged overlay "
                      "mounts (Linux >= 5.11) and the container's root must be able to read every "
                      "layer and write the upper and work directories") if in_userns else ""
            raise SetupError(what, where=f"{where}.options",
                             why=f"mount: {sc.errno_text(exc.errno or 0)}{userns}",
                             hint="check that every lowerdir exists, that upperdir and workdir are on one "
                                  "filesystem (not an overlay itself) and workdir is empty; `dmesg` shows "
                                  "the kernel's reason") from None
        with Step(what):
            top = Rootfs(root.path)
        try:
            with Step(what):
                _check_on_top(top, root)
                for flag in opts.propagation:
                    sc.mount(None, f"/proc/self/fd/{top.fd}", None, flag)
                if opts.attr_set or opts.attr_clr:
                    sc.mount_setattr(top.fd, opts.attr_set, opts.attr_clr, recursive=True)
        except BaseException:
            top.close()
            raise
        return top
    finally:
        root.close()


def _check_on_top(top: Rootfs, under: Rootfs) -> None:
    """``top`` is the root of an overlayfs whose parent mount is the one of ``under``."""
    top_id, under_id = sc.mount_id(top.fd), sc.mount_id(under.fd)
    parent = None
    for line in sc.read_file("/proc/self/mountinfo").decode(errors="replace").splitlines():
        fields = line.split()
        if fields and fields[0] == str(top_id):
            parent = int(fields[1])
    if sc.filesystem_type(top.fd) != sc.OVERLAYFS_SUPER_MAGIC or not sc.is_mount_root(top.fd) \
            or parent != under_id or inroot.fd_location(top.fd) != under.path:
        raise _escaped("the overlay mount on \"/\" did not land on the root filesystem",
                       inroot.fd_location(top.fd), under.path)


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


def mount_one(m: dict, index: int, root: Rootfs, bundle: str, in_userns: bool, cgroupns: bool,
              cgroups: CgroupView | None = None, idmapped_tree: int | None = None) -> None:
    """One entry of ``mounts``: resolve (and create) the destination inside the rootfs through
    file descriptors and mount onto it.  ``idmapped_tree``: the detached id-mapped bind the
    runtime prepared for this entry (``IdmappedMounts``), attached instead of a bind."""
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
    what = f'mounting "{m.get("source") or fstype}" to rootfs at "{destination}"'
    with Step(what):
        if idmapped_tree is not None:
            with Target(root, destination, stat.S_ISDIR(os.fstat(idmapped_tree).st_mode)) as target:
                sc.move_mount(idmapped_tree, target.fd)
                target.landed()
                _remount_bind(target, opts)
                _finish_mount(target, opts)
            return
        if bind:
            # the source is opened once: what was looked at is what gets bound
            try:
                source_fd = os.open(source, os.O_PATH | os.O_CLOEXEC)
            except OSError as exc:
                raise OSError(exc.errno, f"stat: {sc.errno_text(exc.errno)}", source) from None
            try:
                source_is_dir = stat.S_ISDIR(os.fstat(source_fd).st_mode)
                with Target(root, destination, source_is_dir) as target:
                    _bind(f"/proc/self/fd/{source_fd}", target, opts)
                    _finish_mount(target, opts)
            finally:
                os.close(source_fd)
            return
        with Target(root, destination, True) as target:
            if fstype == "cgroup":
                _mount_cgroup(target, opts, in_userns, cgroupns, cgroups or CgroupView())
            elif opts.tmpcopyup and fstype == "tmpfs":
                _keep_directory_mode(target, opts)
                _mount_tmpfs_copyup(source, target, opts)
            else:
                if fstype == "tmpfs":
                    _keep_directory_mode(target, opts)
                try:
                    sc.mount(source, target.path, fstype, opts.flags, ",".join(opts.data) or None)
                except OSError as exc:
                    if fstype == "sysfs" and in_userns and exc.errno == 1:
                        # sysfs needs a network namespace of one's own: bind the host's /sys (runc does)
                        _bind("/sys", target, MountOptions(["rbind"] + [o for o in m.get("options") or []
                                                                        if o in MOUNT_FLAGS]))
                    elif in_userns and exc.errno == 1:
                        raise SetupError(
                            f"{what}: mount: EPERM (Operation not permitted)", where=where,
                            why=f"in a user namespace (a rootless container) the kernel mounts only filesystems "
                                f"marked FS_USERNS_MOUNT (tmpfs, proc, sysfs, mqueue, devpts, overlay, fuse...), "
                                f"not {fstype!r}: that needs privileges on the host",
                            hint="bind-mount a host directory instead (\"type\": \"bind\"), or run the container "
                                 "as root") from exc
                    else:
                        raise
                target.landed()
            _finish_mount(target, opts)


def _finish_mount(target: Target, opts: MountOptions) -> None:
    """Propagation and recursive attributes of the mount just made on ``target``."""
    for flag in opts.propagation:
        sc.mount(None, target.mounted(), None, flag)
    if opts.attr_set or opts.attr_clr:
        sc.mount_setattr(target.mounted(), opts.attr_set, opts.attr_clr, recursive=True)


def _keep_directory_mode(target: Target, opts: MountOptions) -> None:
    """A tmpfs without a ``mode`` option gets the mode of the directory it covers, as runc
    does (a tmpfs's own default is 1777): a ``/data`` of mode 0700 in the image stays 0700.
    A directory the runtime made for the mount keeps the tmpfs default, and a ``mode`` option
    wins (runc 1.1 chmods the tmpfs to the directory's mode even then)."""
    if target.created or any(option.startswith("mode=") for option in opts.data):
        return
    opts.data.insert(0, f"mode={stat.S_IMODE(os.fstat(target.fd).st_mode):04o}")


def _bind(source: str, target: Target, opts: MountOptions) -> None:
    sc.mount(source, target.path, None, opts.flags & (sc.MS_BIND | sc.MS_REC))
    target.landed()
    _remount_bind(target, opts)


def _remount_bind(target: Target, opts: MountOptions) -> None:
    """The flags of a bind (ro, nosuid...) on the bind just made: a bind ignores them, they
    take a remount."""
    extra = opts.flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT)
    if extra:
        # a bind mount ignores other flags: they take a remount (keeping locked flags)
        top = target.mounted()
        sc.mount(None, top, None, sc.MS_REMOUNT | sc.MS_BIND | extra | _kept_flags(top))


def _mount_tmpfs_copyup(source: str, target: Target, opts: MountOptions) -> None:
    """``tmpcopyup``: a tmpfs that starts with a copy of what was at the destination."""
    import shutil
    import tempfile

    stash = tempfile.mkdtemp(prefix="pyoci-copyup-")
    try:
        sc.mount(target.path, stash, None, sc.MS_BIND)
        try:
            sc.mount(source, target.path, "tmpfs", opts.flags, ",".join(opts.data) or None)
            target.landed()
            shutil.copytree(stash, target.mounted(), symlinks=True, dirs_exist_ok=True)
        finally:
            sc.umount2(stash, sc.MNT_DETACH)
    finally:
        os.rmdir(stash)


def _mount_cgroup(target: Target, opts: MountOptions, in_userns: bool, cgroupns: bool,
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
                sc.mount("cgroup", target.path, "cgroup2", flags, None)
                target.landed()
                return
            except OSError:
                if not in_userns:
                    raise
        own = _container_cgroup("/sys/fs/cgroup", dirs) or \
            "/sys/fs/cgroup" + _own_cgroup_paths().get("", "/").rstrip("/")
        _bind(own, target, MountOptions(["rbind"] + _flag_names(flags)))
        return
    sc.mount("tmpfs", target.path, "tmpfs", flags & ~sc.MS_RDONLY, "mode=755")
    top = target.mounted()  # the fresh tmpfs: everything below is made in it
    own_paths = None
    binds = []
    for name, fstype, super_opts, mount_point in hierarchies:
        if "/" in name or not name:
            continue
        sub = top + "/" + name
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
                if not os.path.lexists(top + "/" + controller):
                    os.symlink(name, top + "/" + controller)
    # the mount's flags (ro, nosuid...) on the tmpfs and every bind below it: one
    # mount_setattr(AT_RECURSIVE) instead of a remount per hierarchy
    attrs = _mount_attrs(flags)
    try:
        if attrs:
            sc.mount_setattr(top, attrs, 0, recursive=True)
        return
    except OSError as exc:
        if exc.errno != errno.ENOSYS:  # Linux < 5.12: remount each
            raise
    for sub in binds:
        sc.mount(None, sub, None, sc.MS_REMOUNT | sc.MS_BIND | flags | _kept_flags(sub))
    if flags & sc.MS_RDONLY:
        sc.mount(None, top, None, sc.MS_REMOUNT | flags | sc.MS_RDONLY)


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


def create_devices(root: Rootfs, devices: list[dict], in_userns: bool, defaults: bool = True) -> None:
    """The default devices, ``linux.devices``, and the /dev symlinks (/dev/fd, stdio, ptmx).
    Each node and link is made relative to its directory's fd, never through a path."""
    old_umask = os.umask(0)
    try:
        wanted = []
        if defaults:
            wanted = [{"path": p, "type": "c", "major": ma, "minor": mi, "fileMode": 0o666,
                       "uid": 0, "gid": 0} for p, ma, mi in DEFAULT_DEVICES]
        given = {d.get("path") for d in devices}
        wanted = [d for d in wanted if d["path"] not in given] + list(devices)
        for i, device in enumerate(wanted):
            _create_device(root, device, in_userns, f"linux.devices[{i - (len(wanted) - len(devices))}]")
        if defaults:
            for target, link in DEV_SYMLINKS:
                with Step(f"creating symlink {link} -> {target}"):
                    _symlink(root, link, target, replace=False)
            with Step("creating symlink /dev/ptmx -> pts/ptmx"):
                _symlink(root, "/dev/ptmx", "pts/ptmx", replace=True)
            if os.path.exists("/proc/kcore"):
                with Step("creating symlink /dev/core -> /proc/kcore"):
                    _symlink(root, "/dev/core", "/proc/kcore", replace=False)
    finally:
        os.umask(old_umask)


def _parent(root: Rootfs, path: str) -> tuple[int, str]:
    """An O_PATH fd of the directory ``path`` is in (resolved inside the root, created when
    missing) and the last component of ``path``."""
    parent, name = os.path.split(path.rstrip("/"))
    if name in ("", ".", ".."):
        raise OSError(22, f"{path!r} does not name a file", path)
    with inroot.open_in_root(root.fd, parent or "/") as resolved:
        if resolved.missing:
            resolved.create(like_dir=True)
        return resolved.detach(), name


def _lexists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False


def _symlink(root: Rootfs, link: str, target: str, replace: bool) -> None:
    """The symlink ``link`` -> ``target`` inside the root, unless something is there already
    (``replace``: instead of it)."""
    dir_fd, name = _parent(root, link)
    try:
        if _lexists(name, dir_fd):
            if not replace:
                return
            os.unlink(name, dir_fd=dir_fd)
        os.symlink(target, name, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


_DEVICE_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def _create_device(root: Rootfs, device: dict, in_userns: bool, where: str) -> None:
    path = device.get("path")
    kind = device.get("type")
    if not path or not path.startswith("/dev/") and not path.startswith("/"):
        raise ConfigError(f"device path {path!r} is not absolute", where=f"{where}.path")
    if kind not in _DEVICE_TYPES:
        raise ConfigError(f"unknown device type {kind!r}", where=f"{where}.type",
                          why="one of c, b, u, p")
    with Step(f'creating device "{path}"'):
        dir_fd, name = _parent(root, path)
        try:
            exists = _lexists(name, dir_fd)
            if in_userns:
                # mknod is not allowed in a user namespace: bind the host's node (runc does)
                if exists and stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                    os.unlink(name, dir_fd=dir_fd)
                    exists = False
                if not exists:
                    os.mknod(name, stat.S_IFREG | 0o644, dir_fd=dir_fd)
                node = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
                try:
                    if stat.S_ISLNK(os.fstat(node).st_mode) or stat.S_ISDIR(os.fstat(node).st_mode):
                        raise OSError(21, "the device's place is a directory or a symbolic link", path)
                    location = inroot.fd_location(node)
                    sc.mount(path, f"/proc/self/fd/{node}", None, sc.MS_BIND)
                    if inroot.fd_location(node) != location:
                        raise _escaped(f"the bind of {path} did not land there", location, root.path)
                finally:
                    os.close(node)
                return
            if exists:
                os.unlink(name, dir_fd=dir_fd)
            mode = device.get("fileMode", 0o666)
            os.mknod(name, _DEVICE_TYPES[kind] | (mode & 0o7777),
                     os.makedev(device.get("major", 0), device.get("minor", 0)) if kind != "p" else 0,
                     dir_fd=dir_fd)
            if mode & 0o7000:  # with umask 0, mknod sets the permission bits; these need chmod
                os.chmod(name, mode & 0o7777, dir_fd=dir_fd, follow_symlinks=False)
            owner = (device.get("uid", 0), device.get("gid", 0))
            if owner != (os.geteuid(), os.getegid()):  # the node is ours already
                os.chown(name, *owner, dir_fd=dir_fd, follow_symlinks=False)
        finally:
            os.close(dir_fd)


# --- after pivot_root: /proc is the container's, so nothing is mounted through /proc/self/fd
def _bind_fd(source_fd: int, target_fd: int, recursive: bool = False, read_only: bool = False) -> None:
    """Bind what ``source_fd`` refers to onto what ``target_fd`` refers to, with no path
    looked up: open_tree(OPEN_TREE_CLONE), mount_setattr (``read_only``), move_mount.  Before
    Linux 5.12 (no mount_setattr; open_tree and move_mount are 5.2) through /proc/self/fd of a
    /proc checked to be a procfs root."""
    tree = -1
    try:
        tree = sc.open_tree(source_fd, "", sc.OPEN_TREE_CLONE | (sc.AT_RECURSIVE if recursive else 0))
        if read_only:
            sc.mount_setattr(tree, sc.MOUNT_ATTR_RDONLY, 0, recursive=False)
        sc.move_mount(tree, target_fd)
        return
    except OSError as exc:
        if exc.errno != errno.ENOSYS:
            raise
    finally:
        if tree >= 0:
            os.close(tree)
    os.close(_proc_root())  # the container's procfs: its /proc/self/fd can be used
    target = f"/proc/self/fd/{target_fd}"
    sc.mount(f"/proc/self/fd/{source_fd}", target, None, sc.MS_BIND | (sc.MS_REC if recursive else 0))
    if read_only:
        sc.mount(None, target, None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY | _kept_flags(target))


def _open_beneath(dir_fd: int, path: str, flags: int, cross_mounts: bool = False) -> int:
    """Open ``path`` below ``dir_fd`` following no symlink at all and (unless
    ``cross_mounts``) entering no other mount: openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
    RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV), or before Linux 5.6 O_NOFOLLOW opens one
    component at a time, checking the device number."""
    resolve = sc.RESOLVE_BENEATH | sc.RESOLVE_NO_SYMLINKS | sc.RESOLVE_NO_MAGICLINKS
    if not cross_mounts:
        resolve |= sc.RESOLVE_NO_XDEV
    try:
        return sc.openat2(dir_fd, path, flags | os.O_CLOEXEC | os.O_NOFOLLOW, resolve)
    except OSError as exc:
        if exc.errno not in (errno.ENOSYS, errno.E2BIG, errno.EPERM):
            raise
    parts = [p for p in path.split("/") if p and p != "."]
    if ".." in parts:
        raise OSError(errno.EXDEV, "'..' is not allowed here", path)
    device = os.fstat(dir_fd).st_dev
    fd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)
    for i, part in enumerate(parts):
        step = flags if i == len(parts) - 1 else os.O_PATH | os.O_DIRECTORY
        try:
            next_fd = os.open(part, step | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        finally:
            os.close(fd)
        fd = next_fd
        if not cross_mounts and os.fstat(fd).st_dev != device:
            os.close(fd)
            raise OSError(errno.EXDEV, "the path crosses a mount point", path)
    return fd


def _proc_root() -> int:
    """An fd of the container's /proc, opened without following any symlink and checked to be
    the root of a procfs (fstatfs magic, inode 1): an image cannot pass a directory or a file
    of its own off as /proc (CVE-2025-52881)."""
    root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = _open_beneath(root, "proc", os.O_PATH | os.O_DIRECTORY, cross_mounts=True)
    except OSError as exc:
        raise _not_proc("/proc", f"it cannot be opened as a plain directory ({sc.errno_text(exc.errno)})") from exc
    finally:
        os.close(root)
    if sc.filesystem_type(fd) != sc.PROC_SUPER_MAGIC or os.fstat(fd).st_ino != sc.PROC_ROOT_INO:
        os.close(fd)
        raise _not_proc("/proc", "it is not the root of a procfs")
    return fd


def _not_proc(where: str, why: str) -> SetupError:
    return SetupError("refusing to write to /proc", where=where,
                      why=f"{why}; the runtime writes only to files of the procfs mounted at /proc, "
                          "reached without symbolic links or other mounts (CVE-2025-52881)",
                      hint="mount proc at /proc (config.json \"mounts\"), keep /proc a plain directory in "
                           "the root filesystem and mount nothing over files below it")


def write_sysctl(key: str, value) -> None:
    """Write ``linux.sysctl`` ``key`` = ``value`` to /proc/sys/<key with dots as slashes> of
    the container's procfs (``write_proc``)."""
    write_proc("sys/" + key.replace(".", "/"), value)


def write_proc(path: str, value) -> None:
    """Write ``value`` to ``/proc/<path>`` of the container's procfs (``self/...``: this process,
    as that procfs names it): the file is opened below a checked /proc with no symlink followed
    and no mount crossed, and must itself be a procfs file (CVE-2025-52881)."""
    proc = _proc_root()
    try:
        if path.startswith("self/"):  # a plain symlink procfs resolves to our pid: read it ourselves
            path = os.readlink("self", dir_fd=proc) + path[4:]
        fd = _open_beneath(proc, path, os.O_WRONLY)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EXDEV):
            raise _not_proc("/proc/" + path, f"it is a symbolic link or another mount is on its way "
                                             f"({sc.errno_text(exc.errno)})") from exc
        raise
    finally:
        os.close(proc)
    try:
        if sc.filesystem_type(fd) != sc.PROC_SUPER_MAGIC:
            raise _not_proc("/proc/" + path, "it is not a procfs file")
        os.write(fd, str(value).encode())
    finally:
        os.close(fd)


def _kind(st: os.stat_result) -> str:
    mode = st.st_mode
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return f"the {'character' if stat.S_ISCHR(mode) else 'block'} device " \
               f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    return {stat.S_IFREG: "a regular file", stat.S_IFDIR: "a directory", stat.S_IFLNK: "a symbolic link",
            stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket"}.get(stat.S_IFMT(mode), "not a device")


def _null_device(root_fd: int) -> int:
    """An O_PATH fd of the container's /dev/null, checked to be the null device (character
    device 1:3) wherever the image's links led."""
    with inroot.open_in_root(root_fd, "/dev/null") as resolved:
        st = None if resolved.missing else os.fstat(resolved.fd)
        if st is None or not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(1, 3):
            raise SetupError(
                "refusing to mask paths with /dev/null", where="/dev/null",
                why=f"it is {'missing' if st is None else _kind(st)}, not the null device (character device "
                    "1:3): masking binds /dev/null over each of linux.maskedPaths, so another file would be "
                    "exposed there instead of hidden (CVE-2025-31133)",
                hint="fix the image: /dev must be a plain directory, or leave /dev to the runtime")
        return resolved.detach()


class _Root:
    """The container's "/" after pivot_root (an O_PATH fd) and, once needed, its checked
    /dev/null."""

    def __init__(self):
        self.fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self._null = -1

    def null(self) -> int:
        """The checked /dev/null (opened on first use)."""
        if self._null < 0:
            self._null = _null_device(self.fd)
        return self._null

    def close(self) -> None:
        """Close the fds."""
        for fd in (self.fd, self._null):
            if fd >= 0:
                os.close(fd)
        self.fd = self._null = -1


def bind_console(pty_slave: int) -> None:
    """/dev/console (after pivot_root): the pty slave init opened -- its fd, checked to be a
    pseudo-terminal, not a path that could be swapped (CVE-2025-52565) -- bound over a regular
    file made in the container's /dev relative to /dev's fd."""
    with Step("bind-mounting the terminal to /dev/console"):
        st = os.fstat(pty_slave)
        if not stat.S_ISCHR(st.st_mode) or not 136 <= os.major(st.st_rdev) <= 143:
            raise SetupError("refusing to bind the terminal to /dev/console", where="/dev/console",
                             why=f"the terminal init opened is {_kind(st)}, not a pseudo-terminal slave",
                             hint="/dev/ptmx and /dev/pts must be the container's devpts: leave /dev to "
                                  "the runtime")
        root = _Root()
        try:
            with inroot.open_in_root(root.fd, "/dev") as dev:
                if dev.missing or not stat.S_ISDIR(os.fstat(dev.fd).st_mode):
                    raise OSError(errno.ENOTDIR, "/dev is not a directory", "/dev")
                if not _lexists("console", dev.fd):
                    os.mknod("console", stat.S_IFREG | 0o600, dir_fd=dev.fd)
                console = os.open("console", os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dev.fd)
            try:
                st = os.fstat(console)
                if not (stat.S_ISREG(st.st_mode) or stat.S_ISCHR(st.st_mode)):
                    raise SetupError("refusing to bind the terminal to /dev/console", where="/dev/console",
                                     why=f"it is {_kind(st)}: the terminal is bound only over a file or "
                                         "device of the container's /dev",
                                     hint="remove /dev/console from the image")
                _bind_fd(pty_slave, console)
            finally:
                os.close(console)
        finally:
            root.close()


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
    masked = linux.get("maskedPaths") or []
    readonly = linux.get("readonlyPaths") or []
    if masked or readonly:
        root = _Root()
        try:
            for path in masked:
                with Step(f'masking "{path}"'):
                    mask_path(path, root)
            for path in readonly:
                with Step(f'making "{path}" read-only'):
                    readonly_path(path, root)
        finally:
            root.close()
    propagation = linux.get("rootfsPropagation")
    if propagation in ("shared", "rshared", "unbindable", "runbindable"):
        with Step(f"making / {propagation}"):
            sc.mount(None, "/", None, PROPAGATION_FLAGS[propagation])
    if (config.get("root") or {}).get("readonly"):
        with Step("remounting / read-only"):
            sc.mount(None, "/", None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY | _kept_flags("/"))


def mask_path(path: str, root: _Root) -> None:
    """maskedPaths: a directory gets an empty read-only tmpfs, anything else the (checked)
    null device; the path is resolved inside the container and mounted on through its fd."""
    with inroot.open_in_root(root.fd, path) as resolved:
        if resolved.missing:
            return
        if stat.S_ISDIR(os.fstat(resolved.fd).st_mode):
            _mount_on_directory(resolved.fd, "tmpfs", "tmpfs", sc.MS_RDONLY)
        else:
            _bind_fd(root.null(), resolved.fd)


def _mount_on_directory(dir_fd: int, source: str, fstype: str, flags: int) -> None:
    """mount(2) on the directory ``dir_fd`` refers to, without /proc: as "." after fchdir."""
    cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fchdir(dir_fd)
        sc.mount(source, ".", fstype, flags, None)
    finally:
        os.fchdir(cwd)
        os.close(cwd)


def readonly_path(path: str, root: _Root) -> None:
    """readonlyPaths: a recursive bind of the path onto itself, made read-only before it is
    attached; the path is resolved inside the container and held by its fd."""
    with inroot.open_in_root(root.fd, path) as resolved:
        if resolved.missing:
            return
        _bind_fd(resolved.fd, resolved.fd, recursive=True, read_only=True)


# --- made by the runtime before init runs: the rootfs bind of a container without a mount
# namespace of its own, id-mapped binds; and what `delete` removes
def chroot_into(bound_rootfs: int, rootfs: str) -> None:
    """Without a mount namespace of the container's own: chroot into the rootfs bind through
    its fd, checked to be the root of a mount -- "/" in the container is then that bind, so
    what is done to "/" later (a read-only remount, ``rootfsPropagation``) never reaches the
    host's "/"."""
    with Step(f"changing root to {rootfs!r}"):
        if not sc.is_mount_root(bound_rootfs):
            raise SetupError(f"refusing to change root to {rootfs!r}", where=rootfs,
                             why="it is not the root of the bind mount the runtime made of the root "
                                 "filesystem: a read-only root or rootfsPropagation would change the "
                                 "host's mount instead",
                             hint="report this as a bug of pyoci")
        os.fchdir(bound_rootfs)
        os.chroot(".")
        os.chdir("/")


class RootfsBind:
    """The root of a container that shares the runtime's mount namespace (config-linux.md: a
    namespace type left out of ``linux.namespaces`` is inherited -- ``mount`` included): a
    recursive bind of the rootfs onto itself in the runtime's mount namespace, below which init
    mounts everything (``prepare_rootfs(bound_rootfs=...)``) before it chroots into it
    (``chroot_into``).  Nothing outside it is touched: not the propagation or the read-only
    state of the host's "/".

    The bind is made detached first (open_tree), its propagation set (rslave by default,
    private while ``rootfsPropagation`` is shared or unbindable: the container's mounts must
    not propagate to the mount the rootfs directory is on), and its ids are saved in
    state.json (``saved()``) *before* it is attached (``attach()``): ``delete`` -- also after
    ``delete --force`` or a runtime killed in the middle of ``create`` -- finds it and removes
    it with everything mounted below it (``remove_rootfs_bind``).  Source and target are one
    file descriptor of the rootfs: a path swapped meanwhile cannot move the bind elsewhere."""

    def __init__(self, rootfs: str, propagation: str | None):
        self.path = rootfs
        self.fd = -1
        self._target = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            location = inroot.fd_location(self._target)
            if location != rootfs:
                raise _escaped(f"refusing to bind the root filesystem {rootfs!r}", location, rootfs)
            with Step(f"bind-mounting rootfs {rootfs!r}"):
                self.fd = sc.open_tree(self._target, "", sc.OPEN_TREE_CLONE | sc.AT_RECURSIVE)
        except BaseException:
            os.close(self._target)
            raise
        flag = _first_propagation(propagation) & ~sc.MS_REC
        self._propagation = sc.MS_PRIVATE if flag == sc.MS_SHARED else flag

    def saved(self) -> dict:
        """What ``remove_rootfs_bind`` needs (state.json): the path and the bind's mount ids."""
        return {"path": self.path, "mountId": sc.mount_id(self.fd), "uniqueId": sc.mount_unique_id(self.fd)}

    def attach(self) -> None:
        """Set the bind's propagation and attach it over the rootfs."""
        with Step(f"bind-mounting rootfs {self.path!r}"):
            try:
                sc.mount_setattr(self.fd, 0, 0, recursive=True, propagation=self._propagation)
                early = True
            except OSError as exc:
                if exc.errno != errno.ENOSYS:  # Linux < 5.12: right after attaching it
                    raise
                early = False
            sc.move_mount(self.fd, self._target)
            if not early:
                sc.mount(None, f"/proc/self/fd/{self.fd}", None, self._propagation | sc.MS_REC)
        os.close(self._target)
        self._target = -1

    def close(self) -> None:
        """Close the fds (an attached bind stays; a detached one is gone with its fd)."""
        for fd in (self.fd, self._target):
            if fd >= 0:
                os.close(fd)
        self.fd = self._target = -1


def remove_rootfs_bind(saved: dict) -> None:
    """Unmount the rootfs bind ``RootfsBind.saved()`` describes, with everything mounted below
    it (MNT_DETACH), if it is the mount on top of its path -- the very mount (its unique id;
    before Linux 6.8 its id, and the root of a mount).  Nothing when it is gone or was never
    attached; SetupError when it is still mounted but covered by another mount."""
    path = saved.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        return
    try:
        fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        fd = -1
    if fd >= 0:
        try:
            unique = saved.get("uniqueId")
            if (sc.mount_unique_id(fd) == unique) if unique is not None else \
                    (sc.mount_id(fd) == saved.get("mountId") and sc.is_mount_root(fd)):
                with Step(f"unmounting the container's root filesystem bind at {path!r}"):
                    sc.umount2(f"/proc/self/fd/{fd}", sc.MNT_DETACH)
                return
        finally:
            os.close(fd)
    for line in sc.read_file("/proc/self/mountinfo").decode(errors="replace").splitlines():
        fields = line.split()
        if fields[0] == str(saved.get("mountId")) and fields[4].replace("\\040", " ") == path:
            raise SetupError("the container's root filesystem bind was left mounted", where=path,
                             why=f"another mount covers it (mount {fields[0]} in /proc/self/mountinfo), so "
                                 "the runtime cannot reach it to unmount it",
                             hint=f"unmount what was mounted over {path}, then run `umount -R {path}`")


#: the most lines a uid_map or gid_map takes (user_namespaces(7), Linux >= 4.15)
MAX_ID_MAP_LINES = 340


def idmapped_mounts(config: dict) -> list[tuple[int, dict, MountOptions]]:
    """The id-mapped entries of ``mounts``: (index, mount, options) of those with
    ``uidMappings``/``gidMappings`` or an ``idmap``/``ridmap`` option."""
    found = []
    for i, m in enumerate(config.get("mounts") or []):
        if not isinstance(m, dict):
            continue
        options = m.get("options") or []
        if m.get("uidMappings") or m.get("gidMappings") or any(o in IDMAP_OPTIONS for o in options):
            found.append((i, m, MountOptions(options, f"mounts[{i}]")))
    return found


def check_idmapped_mounts(config: dict, kinds, rootless: bool) -> None:
    """The rules of id-mapped mounts (config.md "Mounts" and "Linux mount options"), before
    anything is made: bind mounts only; ``uidMappings`` and ``gidMappings`` both or neither;
    neither takes the container's user namespace, which must then exist; at most 340 ranges
    each; a runtime with CAP_SYS_ADMIN in the initial user namespace (mount_setattr)."""
    for i, m, opts in idmapped_mounts(config):
        where = f"mounts[{i}]"
        if not (opts.bind or m.get("type") == "bind"):
            raise ConfigError(f"an id-mapped mount of type {m.get('type')!r} is not a bind mount", where=where,
                              why="id-mapped mounts are made of bind mounts (mount_setattr(2) MOUNT_ATTR_IDMAP "
                                  "maps the ids of a bind of a directory or file)",
                              hint='add "bind" or "rbind" to its options, or drop uidMappings/gidMappings')
        given = [key for key in ("uidMappings", "gidMappings") if m.get(key)]
        if len(given) == 1:
            missing = ({"uidMappings", "gidMappings"} - set(given)).pop()
            raise ConfigError(f"the id-mapped mount has {given[0]} but no {missing}", where=f"{where}.{missing}",
                              why="an id-mapped mount maps user and group ids through one user namespace: "
                                  "both mappings are needed",
                              hint=f"add {missing} (e.g. the same ranges as {given[0]})")
        for key in given:
            if len(m[key]) > MAX_ID_MAP_LINES:
                raise ConfigError(f"{key} has {len(m[key])} ranges", where=f"{where}.{key}",
                                  why=f"the kernel takes at most {MAX_ID_MAP_LINES} ranges per map",
                                  hint="merge adjacent ranges")
        if not given and "user" not in kinds:
            raise ConfigError(f"the {opts.idmap} mount has no uidMappings/gidMappings and the container no "
                              "user namespace", where=where,
                              why="config.md: without mappings of its own an id-mapped mount takes the "
                                  "container's user namespace; without one the runtime MUST fail",
                              hint='add uidMappings and gidMappings to the mount, or {"type": "user"} '
                                   "to linux.namespaces")
        if rootless:
            raise ConfigError("id-mapped mounts need a privileged runtime", where=where,
                              why="mount_setattr(MOUNT_ATTR_IDMAP) needs CAP_SYS_ADMIN in the initial user "
                                  "namespace, which a rootless runtime lacks",
                              hint="remove uidMappings/gidMappings and idmap/ridmap, or run pyoci as root")


def _map_text(mappings: list[dict]) -> str:
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in mappings)


def _user_namespace(uid_maps: list[dict], gid_maps: list[dict], where: str) -> int:
    """An fd of a new user namespace with these id maps (the mapping of id-mapped mounts): a
    child of the runtime unshares it, the runtime writes its maps and opens it, the child
    exits (the fd keeps the namespace)."""
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(ready_r)
            os.close(done_w)
            sc.unshare(sc.CLONE_NEWUSER)
            os.write(ready_w, b"1")
            os.read(done_r, 1)  # until the runtime is done (or gone)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise SetupError("cannot create the user namespace of an id-mapped mount", where=where,
                             why="unshare(CLONE_NEWUSER) failed in the runtime's helper process",
                             hint="check that user namespaces are enabled (user.max_user_namespaces)")
        for kind, maps in (("uid", uid_maps), ("gid", gid_maps)):
            fd = os.open(f"/proc/{pid}/{kind}_map", os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, _map_text(maps).encode())
            except OSError as exc:
                raise ConfigError(f"the kernel refused the {kind} mappings of an id-mapped mount",
                                  where=f"{where}.{kind}Mappings",
                                  why=f"writing {kind}_map: {sc.errno_text(exc.errno)}: ranges must not overlap "
                                      "and must stay below 2**32",
                                  hint="fix the ranges") from None
            finally:
                os.close(fd)
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(done_w)
        os.waitpid(pid, 0)


def prepare_idmapped_mounts(config: dict, bundle: str, joined: dict[str, str]) -> dict[int, int]:
    """The id-mapped binds of ``mounts``, made by the runtime before it forks init (it has
    CAP_SYS_ADMIN in the initial user namespace, which mount_setattr needs; init may not):
    each source opened once, cloned detached (open_tree; ``rbind``: with its submounts) and
    id-mapped (MOUNT_ATTR_IDMAP; ``ridmap``: the submounts too) through a user namespace
    with the mount's mappings -- or the container's own user namespace when it has none.
    Returns {index in ``mounts``: detached tree fd}; init attaches each onto its destination
    (``mount_one``).  The caller closes the fds."""
    trees: dict[int, int] = {}
    namespaces: dict[tuple[str, str], int] = {}
    linux = config.get("linux") or {}
    try:
        for i, m, opts in idmapped_mounts(config):
            where = f"mounts[{i}]"
            uid_maps, gid_maps = m.get("uidMappings"), m.get("gidMappings")
            if not uid_maps:
                uid_maps, gid_maps = linux.get("uidMappings"), linux.get("gidMappings")
            if uid_maps:
                key = (_map_text(uid_maps), _map_text(gid_maps))
                if key not in namespaces:
                    namespaces[key] = _user_namespace(uid_maps, gid_maps, where)
                userns = namespaces[key]
            else:  # the container joins a user namespace: it is the mapping
                key = ("path", joined["user"])
                if key not in namespaces:
                    namespaces[key] = os.open(joined["user"], os.O_RDONLY | os.O_CLOEXEC)
                userns = namespaces[key]
            source = m.get("source") or ""
            if not os.path.isabs(source):
                source = os.path.join(bundle, source)
            recursive = bool(opts.flags & sc.MS_REC)
            with Step(f'id-mapping "{m.get("source")}" for "{m.get("destination")}"'):
                try:
                    source_fd = os.open(source, os.O_PATH | os.O_CLOEXEC)
                except OSError as exc:
                    raise ConfigError(f"cannot open the source {source!r} of an id-mapped mount",
                                      where=f"{where}.source", why=sc.errno_text(exc.errno),
                                      hint="the source is a host path (relative: to the bundle)") from None
                try:
                    trees[i] = sc.open_tree(source_fd, "", sc.OPEN_TREE_CLONE | (sc.AT_RECURSIVE if recursive else 0))
                finally:
                    os.close(source_fd)
                try:
                    sc.mount_setattr(trees[i], sc.MOUNT_ATTR_IDMAP, 0, recursive=opts.idmap == "ridmap",
                                     userns_fd=userns)
                except OSError as exc:
                    if exc.errno in (errno.EINVAL, errno.EPERM, errno.ENOSYS):
                        raise SetupError(f"cannot id-map the mount of {source!r}", where=where,
                                         why=f"mount_setattr(MOUNT_ATTR_IDMAP): {sc.errno_text(exc.errno)}: the "
                                             "kernel (Linux >= 5.12) and the source's filesystem must support "
                                             "id-mapped mounts, and the source must not be id-mapped already",
                                         hint="use a source on a filesystem that supports them (ext4, xfs, "
                                              "btrfs, tmpfs since Linux 6.3...)") from None
                    raise
        return trees
    except BaseException:
        for fd in trees.values():
            os.close(fd)
        raise
    finally:
        for fd in namespaces.values():
            os.close(fd)
