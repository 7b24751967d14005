"""A container's state directory: ``<root>/<id>/`` with ``state.json``, ``exec.fifo`` and ``lock``.

runtime.md: the state of a container holds ``ociVersion``, ``id``, ``status`` (creating,
created, running, stopped; runc adds paused), ``pid`` (required when created or running),
``bundle`` and ``annotations``.  ``state.json`` keeps these plus what later commands need
(the init's start time, to detect pid reuse; the cgroup manager's state; the config) and is
written atomically (temporary file, rename).  Commands that change a container hold the
per-id ``flock`` for their whole run, so two commands on one id are serialized.  The status is
never trusted from the file alone: it is derived from the process (a dead init means
``stopped``, whoever killed it), the exec FIFO (present until ``start``) and the cgroup freezer.
"""

from __future__ import annotations

import os

from pyoci_nb import OCI_VERSION
from pyoci_nb.errors import ContainerError, ContainerExists, ContainerNotFound
from pyoci_nb.runtime import jsonio, syscalls

STATE_FILE = "state.json"
FIFO_FILE = "exec.fifo"
LOCK_FILE = "lock"
_ID_PUNCTUATION = frozenset("_+.-")


def check_id(container_id: str) -> None:
    """runc's rule for ids: letters, digits, ``_ + - .``; never a path."""
    if not isinstance(container_id, str) or not container_id or container_id in (".", "..") or \
            not all(c.isascii() and (c.isalnum() or c in _ID_PUNCTUATION) for c in container_id):
        raise ContainerError(f"invalid container id {container_id!r}", where="ID",
                             why="an id may contain only letters, digits, '_', '+', '-' and '.'")


class StateDir:
    """The state directory of one container id under a state root."""

    def __init__(self, root: str, container_id: str):
        check_id(container_id)
        self.root = os.path.abspath(str(root))
        self.id = container_id
        self.path = os.path.join(self.root, container_id)
        self.state_path = os.path.join(self.path, STATE_FILE)
        self.fifo_path = os.path.join(self.path, FIFO_FILE)
        self._lock_fd: int | None = None

    # --- existence and locking ---------------------------------------------------------
    def exists(self) -> bool:
        """True when state.json exists (the container is known)."""
        return os.path.exists(self.state_path)

    def make(self) -> None:
        """Create the directory (0711) and take its lock; ContainerExists if the id is taken."""
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        try:
            os.mkdir(self.path, 0o711)
        except FileExistsError:
            raise ContainerExists("container already exists", where=f"container {self.id!r}",
                                  why=f"{self.path} is in use",
                                  hint="choose another id or delete the old container") from None
        self.lock()

    def lock(self) -> "StateDir":
        """Take the per-id lock (blocking); ContainerNotFound if the container is gone meanwhile."""
        import fcntl

        try:
            fd = os.open(os.path.join(self.path, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                         0o600)
        except (FileNotFoundError, NotADirectoryError):
            raise ContainerNotFound(self.id, self.root) from None
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._lock_fd = fd
        return self

    @property
    def lock_fd(self) -> int | None:
        """The fd holding the lock (a forked child must close it: flock is per open file)."""
        return self._lock_fd

    def unlock(self) -> None:
        """Release the per-id lock (closing the fd)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "StateDir":
        if self._lock_fd is None:
            self.lock()
        return self

    def __exit__(self, *exc) -> None:
        self.unlock()

    # --- state.json ----------------------------------------------------------------------
    def write(self, record: dict) -> None:
        """Write state.json atomically: a reader sees the old or the new file, never a part
        (temporary file + rename).  No fsync: the state describes live processes, which a
        crash of the machine ends anyway, and the default root /run is a tmpfs (runc's way)."""
        tmp = self.state_path + ".tmp"
        data = jsonio.dumps(record, separators=(",", ":")).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.rename(tmp, self.state_path)

    def read(self) -> dict:
        """The saved record; ContainerNotFound if there is none."""
        try:
            return jsonio.loads(syscalls.read_file(self.state_path))
        except FileNotFoundError:
            raise ContainerNotFound(self.id, self.root) from None
        except ValueError as exc:
            raise ContainerError("state.json is corrupt", where=self.state_path, why=str(exc),
                                 hint="pyoci delete --force removes it") from None

    def remove(self) -> None:
        """Remove the whole state directory (the lock stays valid until unlock).  The
        directory holds only pyoci's files (state.json, lock, exec.fifo), removed by name;
        shutil, whose import costs more than a whole ``pyoci state``, is needed only if
        something else was put there."""
        try:
            for name in (STATE_FILE, FIFO_FILE, LOCK_FILE, STATE_FILE + ".tmp"):
                try:
                    os.unlink(os.path.join(self.path, name))
                except FileNotFoundError:
                    pass
            os.rmdir(self.path)
        except FileNotFoundError:
            pass
        except OSError:  # other files (a pid file?), a directory: what rmtree is for
            import shutil

            shutil.rmtree(self.path, ignore_errors=True)

    # --- exec FIFO -------------------------------------------------------------------------
    def make_fifo(self) -> None:
        """Create exec.fifo (0622): init opens it for writing and blocks until start reads it."""
        old = os.umask(0)
        try:
            os.mkfifo(self.fifo_path, 0o622)
        finally:
            os.umask(old)

    def has_fifo(self) -> bool:
        """True until start has consumed the FIFO (the container is then no longer ``created``)."""
        return os.path.exists(self.fifo_path)


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


def list_ids(root: str) -> list[str]:
    """Ids of every container with a state directory under ``root`` (sorted)."""
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if os.path.isfile(os.path.join(root, n, STATE_FILE)))
