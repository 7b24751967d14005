"""A container's state directory: ``<root>/<id>/`` with ``state.json``, ``exec.fifo`` and ``lock``.

runtime.md: the state of a container holds ``ociVersion``, ``id``, ``status`` (creating,
created, running, stopped; runc adds paused), ``pid`` (required when created or running),
``bundle`` and ``annotations``.  ``state.json`` keeps these plus what later commands need
(the init's start time, to detect pid reuse; the cgroup manager's state; the config) and is
written atomically (temporary file, rename).  Commands that change a container hold the
per-id ``flock`` for their whole run, so two commands on one id are serialized.  The status is
never trusted from the file alone: it is derived from the process (a dead init means
``stopped``, whoever killed it), the exec FIFO (present until ``start``) and the cgroup freezer.

Other local users and whatever they planted are hostile: the state root must belong to the
caller and be closed to everyone else (0700; a looser root of the caller's is tightened, one of
another user is refused: its ``state.json`` could name hooks that would run as the caller), each
container directory is 0700, and every path below the root is opened relative to a directory
fd without following symbolic links (``O_NOFOLLOW``, ``openat``/``unlinkat``/``renameat``), so
a link planted at ``<root>/<id>`` or in place of one of the files is never followed.
"""

from __future__ import annotations

import os

from pyoci_nb import OCI_VERSION
from pyoci_nb.errors import ContainerError, ContainerExists, ContainerNotFound
from pyoci_nb.runtime import jsonio, syscalls

STATE_FILE = "state.json"
FIFO_FILE = "exec.fifo"
LOCK_FILE = "lock"
TMP_FILE = STATE_FILE + ".tmp"
_ID_PUNCTUATION = frozenset("_+,-.")  # runc 1.1: ^[\w+-\.]+$ -- "+-\." is the range + , - .
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_S_IFMT, _S_IFDIR, _S_IFREG, _S_IFIFO = 0o170000, 0o040000, 0o100000, 0o010000


def check_id(container_id: str) -> None:
    """runc's rules for ids, with runc's words: not empty ("container id cannot be empty"),
    only ASCII letters, digits and ``_ + , - .`` (runc 1.1's ``^[\\w+-\\.]+$``), never ``.`` or
    ``..`` ("invalid container ID format"); so an id is never a path."""
    if not isinstance(container_id, str) or not container_id:
        raise ContainerError("container id cannot be empty", where="ID",
                             hint="name the container: pyoci run NAME")
    if container_id in (".", "..") or \
            not all(c.isascii() and (c.isalnum() or c in _ID_PUNCTUATION) for c in container_id):
        raise ContainerError("invalid container ID format", where=f"ID {container_id!r}",
                             why="an id is made of ASCII letters, digits and '_', '+', ',', '-', '.' "
                                 "and is not '.' or '..'")


def _kind(mode: int) -> str:
    """What a file is, for messages."""
    return {0o120000: "a symbolic link", _S_IFREG: "a regular file", _S_IFIFO: "a FIFO",
            _S_IFDIR: "a directory", 0o020000: "a character device", 0o060000: "a block device",
            0o140000: "a socket"}.get(mode & _S_IFMT, "a special file")


def open_root(root: str, create: bool = False) -> int | None:
    """Open the state root (a directory fd, close-on-exec); None if it does not exist and
    ``create`` is false, else it is made (0700, parents as needed).

    It must belong to the caller and be closed to everyone else, else another user could plant
    a ``state.json`` (whose hooks would run as the caller) or open a container's exec FIFO.  The
    checks are fstat on the opened fd, so the directory checked is the one used.  A root of
    another user, or one others may write (whatever is in it may be planted), is refused.  One
    others may only enter or read (0711 from an older pyoci, 0755 from ``mkdir``) is tightened
    to 0700 if it holds nothing but directories, as a state root does; a directory with files
    or links in it (``--root /run`` by mistake) is refused rather than changed."""
    try:
        try:
            fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            if not create:
                return None
            os.makedirs(root, mode=0o700, exist_ok=True)
            fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise ContainerError("cannot open the state root", where=root,
                             why=f"{exc.strerror}: --root names the directory that keeps the "
                                 "containers' state",
                             hint="pass --root a directory of your own or a path you may create; "
                                  "an unprivileged user may set XDG_RUNTIME_DIR instead") from None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o077:
            _check_root(fd, root, st)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_root(fd: int, root: str, st: os.stat_result) -> None:
    """Refuse a state root the caller does not own or others may write; tighten one others
    may only enter or read (see ``open_root``)."""
    euid = os.geteuid()
    hint = ("use a state root of your own: --root DIR, or XDG_RUNTIME_DIR set to your runtime "
            "directory (pyoci creates DIR/pyoci with mode 0700)")
    if st.st_uid != euid:
        raise ContainerError("the state root belongs to another user", where=root,
                             why=f"it is owned by uid {st.st_uid}, not by the caller (uid {euid}); "
                                 "state another user can write could run hooks as the caller",
                             hint=hint)
    mode = st.st_mode & 0o7777
    if mode & 0o022:
        raise ContainerError("the state root is writable by others", where=root,
                             why=f"its mode is {mode:04o}: another user may have planted state in it "
                                 "(hooks that would run as the caller)",
                             hint=f"check what is in it, then chmod 700 {root}; or {hint}")
    with os.scandir(fd) as entries:
        stray = next((e.name for e in entries if not e.is_dir(follow_symlinks=False)), None)
    if stray is not None:
        raise ContainerError("the state root is open to other users", where=root,
                             why=f"its mode is {mode:04o} (others may enter it and open a container's "
                                 f"exec FIFO) and it holds {stray!r}, which is not a container "
                                 "directory, so pyoci does not tighten it itself",
                             hint=f"if it is meant as the state root, chmod 700 {root}; else {hint}")
    os.fchmod(fd, mode & 0o7700)  # nobody else may enter or list it


class _NotAStateDir(ContainerNotFound):
    """``<root>/<id>`` exists but is not a state directory pyoci made (a symbolic link, a file,
    a directory of another user): there is no container, and nothing it points to is used."""

    def __init__(self, container_id: str, path: str, what: str):
        ContainerError.__init__(self, "container does not exist", where=f"container {container_id!r}",
                                why=f"{path} is {what}, not a state directory made by pyoci "
                                    "(state paths are never followed through links)",
                                hint=f"pyoci delete --force {container_id} removes the entry itself, "
                                     "never what a link points to")
        self.container_id = container_id


class BadState(ContainerError):
    """A file of a container's state directory is corrupt or not what pyoci made (a link, a
    FIFO in place of state.json...).  ``delete --force`` removes the directory."""


class StateDir:
    """The state directory of one container id under a state root.

    Every file in it is reached through an fd of the directory (opened with ``O_NOFOLLOW``
    relative to an fd of the root); the fd is kept while the per-id lock is held, else opened
    for each operation, so a ``StateDir`` kept around never holds a deleted directory.
    ``path`` is for messages only."""

    def __init__(self, root: str, container_id: str):
        check_id(container_id)
        self.root = os.path.abspath(str(root))
        self.id = container_id
        self.path = os.path.join(self.root, container_id)
        self.state_path = os.path.join(self.path, STATE_FILE)
        self.fifo_path = os.path.join(self.path, FIFO_FILE)
        self._lock_fd: int | None = None
        self._fd: int | None = None      # the directory, while locked

    # --- opening -------------------------------------------------------------------------
    def _open(self, root_fd: int | None = None) -> int:
        """An fd of ``<root>/<id>``: never through a link, a directory owned by the caller;
        ContainerNotFound if there is none."""
        own_root = root_fd is None
        if own_root:
            root_fd = open_root(self.root)
            if root_fd is None:
                raise ContainerNotFound(self.id, self.root)
        try:
            try:
                fd = os.open(self.id, _DIR_FLAGS, dir_fd=root_fd)
            except FileNotFoundError:
                raise ContainerNotFound(self.id, self.root) from None
            except OSError:  # ELOOP (a link), ENOTDIR (a file...)
                try:
                    st = os.stat(self.id, dir_fd=root_fd, follow_symlinks=False)
                except FileNotFoundError:
                    raise ContainerNotFound(self.id, self.root) from None
                raise _NotAStateDir(self.id, self.path, _kind(st.st_mode)) from None
            st = os.fstat(fd)
            if st.st_uid != os.geteuid():
                os.close(fd)
                raise _NotAStateDir(self.id, self.path, f"a directory of uid {st.st_uid}")
            return fd
        finally:
            if own_root:
                os.close(root_fd)

    def _borrow(self) -> tuple[int, bool]:
        """(directory fd, whether the caller must close it)."""
        if self._fd is not None:
            return self._fd, False
        return self._open(), True

    def _locked_fd(self) -> int:
        """The directory's fd of the lock holder (the FIFO is only touched under the lock)."""
        if self._fd is None:
            raise RuntimeError(f"the state directory of {self.id!r} is not locked")
        return self._fd

    @property
    def dir_fd(self) -> int | None:
        """The directory's fd while the lock is held (a forked child must close it)."""
        return self._fd

    # --- existence and locking ---------------------------------------------------------
    def exists(self) -> bool:
        """True when state.json exists (the container is known)."""
        try:
            fd, owned = self._borrow()
        except ContainerNotFound:
            return False
        try:
            return _is(STATE_FILE, fd, _S_IFREG)
        finally:
            if owned:
                os.close(fd)

    def make(self) -> None:
        """Create the directory (0700; the root too if needed) and take its lock;
        ContainerExists if the id is taken."""
        root_fd = open_root(self.root, create=True)
        try:
            try:
                os.mkdir(self.id, 0o700, dir_fd=root_fd)
            except FileExistsError:
                raise ContainerExists("container already exists", where=f"container {self.id!r}",
                                      why=f"{self.path} is in use",
                                      hint="choose another id or delete the old container") from None
            try:
                self._lock(self._open(root_fd))
            except BaseException:  # nothing left behind
                try:
                    os.rmdir(self.id, dir_fd=root_fd)
                except OSError:
                    pass
                raise
        finally:
            os.close(root_fd)

    def lock(self) -> StateDir:
        """Take the per-id lock (blocking); ContainerNotFound if the container is gone meanwhile."""
        self._lock(self._open())
        return self

    def _lock(self, dir_fd: int) -> None:
        import fcntl

        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            try:
                fd = os.open(LOCK_FILE, flags, 0o600, dir_fd=dir_fd)
            except FileNotFoundError:  # the directory was removed meanwhile
                raise ContainerNotFound(self.id, self.root) from None
            except OSError:
                # a link in its place (ELOOP): never followed; removed, so that delete --force
                # can still clean up (a racing command makes or opens the new file alike)
                if _is(LOCK_FILE, dir_fd, 0o120000):
                    os.unlink(LOCK_FILE, dir_fd=dir_fd)
                try:
                    fd = os.open(LOCK_FILE, flags, 0o600, dir_fd=dir_fd)
                except FileNotFoundError:
                    raise ContainerNotFound(self.id, self.root) from None
                except OSError as exc:
                    raise self._unsafe(LOCK_FILE, exc) from None
        except BaseException:
            os.close(dir_fd)
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            os.close(dir_fd)
            raise
        self._lock_fd, self._fd = fd, dir_fd

    def _unsafe(self, name: str, exc: OSError) -> BadState:
        """The error for a file of the state directory that cannot be opened safely."""
        return BadState(f"cannot open {name}", where=os.path.join(self.path, name),
                              why=f"{exc.strerror}: state files are opened without following links "
                                  "and must be what pyoci made (something else was put there)",
                              hint=f"pyoci delete --force {self.id} removes the directory")

    @property
    def lock_fd(self) -> int | None:
        """The fd holding the lock (a forked child must close it: flock is per open file)."""
        return self._lock_fd

    def unlock(self) -> None:
        """Release the per-id lock (closing the fd) and the directory's fd."""
        for fd in (self._lock_fd, self._fd):
            if fd is not None:
                os.close(fd)
        self._lock_fd = self._fd = None

    def __enter__(self) -> StateDir:
        if self._lock_fd is None:
            self.lock()
        return self

    def __exit__(self, *exc) -> None:
        self.unlock()

    # --- state.json ----------------------------------------------------------------------
    def write(self, record: dict) -> None:
        """Write state.json atomically: a reader sees the old or the new file, never a part
        (a new temporary file, ``O_EXCL``, renamed within the directory).  No fsync: the state
        describes live processes, which a crash of the machine ends anyway, and the default
        root /run is a tmpfs (runc's way)."""
        data = jsonio.dumps(record, separators=(",", ":")).encode()
        dir_fd, owned = self._borrow()
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                try:
                    fd = os.open(TMP_FILE, flags, 0o600, dir_fd=dir_fd)
                except FileExistsError:  # left by a killed runtime (or planted): never opened
                    os.unlink(TMP_FILE, dir_fd=dir_fd)
                    fd = os.open(TMP_FILE, flags, 0o600, dir_fd=dir_fd)
            except OSError as exc:
                raise self._unsafe(TMP_FILE, exc) from None
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            os.rename(TMP_FILE, STATE_FILE, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        finally:
            if owned:
                os.close(dir_fd)

    def read(self) -> dict:
        """The saved record; ContainerNotFound if there is none."""
        dir_fd, owned = self._borrow()
        try:
            try:
                # O_NONBLOCK: a FIFO put in its place must not block the reader
                fd = os.open(STATE_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                             dir_fd=dir_fd)
            except FileNotFoundError:
                raise ContainerNotFound(self.id, self.root) from None
            except OSError as exc:
                raise self._unsafe(STATE_FILE, exc) from None
        finally:
            if owned:
                os.close(dir_fd)
        try:
            return jsonio.loads(syscalls.read_fd(fd))
        except (ValueError, OSError) as exc:
            raise BadState("state.json is corrupt", where=self.state_path, why=str(exc),
                                 hint=f"pyoci delete --force {self.id} removes it") from None
        finally:
            os.close(fd)

    def remove(self) -> None:
        """Remove the whole state directory (the lock stays valid until unlock).  The
        directory holds only pyoci's files (state.json, lock, exec.fifo), removed by name
        relative to its fd; shutil, whose import costs more than a whole ``pyoci state``, is
        needed only if something else was put there (its rmtree with ``dir_fd`` never follows
        a link out of the directory).  Only the directory this StateDir has open is removed:
        if ``<root>/<id>`` is another one by now, that one is left alone."""
        dir_fd, owned = self._borrow()
        try:
            for name in (STATE_FILE, FIFO_FILE, LOCK_FILE, TMP_FILE):
                try:
                    os.unlink(name, dir_fd=dir_fd)
                except FileNotFoundError:
                    pass
            root_fd = open_root(self.root)
            if root_fd is None:
                return
            try:
                mine = os.fstat(dir_fd)
                try:
                    there = os.stat(self.id, dir_fd=root_fd, follow_symlinks=False)
                except FileNotFoundError:
                    return
                if (there.st_dev, there.st_ino) != (mine.st_dev, mine.st_ino):
                    return
                try:
                    os.rmdir(self.id, dir_fd=root_fd)
                except FileNotFoundError:
                    pass
                except OSError:  # other files (a pid file?), a directory: what rmtree is for
                    import shutil

                    shutil.rmtree(self.id, dir_fd=root_fd, ignore_errors=True)
            finally:
                os.close(root_fd)
        finally:
            if owned:
                os.close(dir_fd)

    def remove_stale(self) -> None:
        """``delete --force`` of an id without a usable state.json: remove what is at
        ``<root>/<id>`` -- a directory a runtime killed before it wrote state.json left, or one
        whose state.json is corrupt (under its lock), or anything else planted there (a link is
        removed itself, never what it points to)."""
        root_fd = open_root(self.root)
        if root_fd is None:
            return
        try:
            try:
                st = os.stat(self.id, dir_fd=root_fd, follow_symlinks=False)
            except FileNotFoundError:
                return
            if st.st_mode & _S_IFMT != _S_IFDIR:
                os.unlink(self.id, dir_fd=root_fd)
                return
        finally:
            os.close(root_fd)
        try:
            self.lock()
        except ContainerNotFound:
            return
        try:
            try:
                self.read()
                return  # a complete container by now (a create that went on): not stale
            except (ContainerNotFound, BadState):
                self.remove()
        finally:
            self.unlock()

    # --- exec FIFO -------------------------------------------------------------------------
    def make_fifo(self) -> None:
        """Create exec.fifo (0622: init, maybe another uid in a user namespace, opens it for
        writing and blocks until start reads it; nobody else can reach it, the directory is
        0700).  Needs the lock."""
        old = os.umask(0)
        try:
            os.mkfifo(FIFO_FILE, 0o622, dir_fd=self._locked_fd())
        finally:
            os.umask(old)

    def open_fifo(self, flags: int) -> int:
        """Open exec.fifo (``O_PATH`` for init, ``O_RDONLY|O_NONBLOCK`` for start) without
        following a link, and check on the opened fd that it is a FIFO the caller owns, so
        nothing planted in its place is read or handed to init.  Needs the lock."""
        try:
            fd = os.open(FIFO_FILE, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self._locked_fd())
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise self._unsafe(FIFO_FILE, exc) from None
        st = os.fstat(fd)
        if st.st_mode & _S_IFMT != _S_IFIFO or st.st_uid != os.geteuid():
            os.close(fd)
            raise BadState("exec.fifo is not the container's FIFO", where=self.fifo_path,
                                 why=f"it is {_kind(st.st_mode)} of uid {st.st_uid}; start uses only "
                                     "the FIFO pyoci made (something else was put there)",
                                 hint=f"pyoci delete --force {self.id}, then create the container again")
        return fd

    def remove_fifo(self) -> None:
        """Unlink exec.fifo (start is done with it: the status reads running).  Needs the lock."""
        os.unlink(FIFO_FILE, dir_fd=self._locked_fd())

    def has_fifo(self) -> bool:
        """True until start has consumed the FIFO (the container is then no longer ``created``)."""
        try:
            fd, owned = self._borrow()
        except ContainerNotFound:
            return False
        try:  # whatever is there (a link put in its place too): start has not consumed it
            return _is(FIFO_FILE, fd)
        finally:
            if owned:
                os.close(fd)



def _is(name: str, dir_fd: int, kind: int | None = None) -> bool:
    """True if ``name`` exists in the directory (and is of ``kind``; a link is not followed)."""
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return False
    return kind is None or mode & _S_IFMT == kind


def init_alive(record: dict) -> bool:
    """True while the container's init (pid + start time from state.json) still runs."""
    pid = record.get("pid") or 0
    if pid <= 0:
        return False
    return syscalls.process_start_time(pid) == record.get("initStartTime")


def derive_status(record: dict, state_dir: StateDir) -> str:
    """The status now, from the process rather than from the file (runtime.md: status)."""
    saved = record.get("status")
    if saved == "creating":
        creator = record.get("runtimePid") or 0
        if creator and syscalls.process_start_time(creator) == record.get("runtimeStartTime"):
            return "creating"
        return "stopped"
    if not init_alive(record):
        return "stopped"
    if state_dir.has_fifo():
        return "created"
    cgroup = record.get("cgroup")
    if cgroup:
        try:
            from pyoci_nb.runtime.cgroups import manager_from_state

            if manager_from_state(cgroup).frozen():
                return "paused"
        except OSError:
            pass
    return "running"


def public_state(record: dict, status: str) -> dict:
    """The state object of runtime.md / state-schema.json (what ``pyoci state`` prints)."""
    state = {
        "ociVersion": OCI_VERSION,
        "id": record["id"],
        "status": status,
        "pid": record.get("pid", 0) if status in ("created", "running", "paused") else 0,
        "bundle": record["bundle"],
        "rootfs": record.get("rootfs", ""),
        "created": record.get("created", ""),
        "owner": "",
    }
    if record.get("annotations"):
        state["annotations"] = record["annotations"]
    return state


def default_root() -> str:
    """runc's default state root: ``/run/pyoci`` for root, else ``$XDG_RUNTIME_DIR/pyoci``,
    else a per-user directory under /tmp.  Whichever root is used (this one, ``--root`` or
    the Python API's ``root=``), ``runtime.state.open_root`` refuses it unless it belongs to
    the caller and others cannot write it (another user may pre-create ``/tmp/pyoci-UID``)."""
    if os.geteuid() == 0:
        return "/run/pyoci"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return os.path.join(xdg, "pyoci")
    return f"/tmp/pyoci-{os.geteuid()}"


def list_ids(root: str) -> list[str]:
    """Ids of every container with a state directory under ``root`` (sorted): real
    directories with a regular state.json; links and other entries are not containers."""
    root_fd = open_root(root)
    if root_fd is None:
        return []
    try:
        with os.scandir(root_fd) as entries:
            names = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
        return sorted(n for n in names if _is(f"{n}/{STATE_FILE}", root_fd, _S_IFREG))
    finally:
        os.close(root_fd)
