"""runtime.md "Delete" in this process: kill what is left, ``poststop`` hooks, cgroup and state
directory removed.
"""

from __future__ import annotations

import time

from pyoci_nb.errors import InvalidState
from pyoci_nb.runtime import hooks, log
from pyoci_nb.runtime.children import drop_subreaper, kill_quietly, wait_gone
from pyoci_nb.runtime.state import derive_status, init_alive, public_state


def destroy(container, record: dict) -> None:
    """Under the lock: kill every process of the container, run the ``poststop`` hooks
    (failures are warnings), remove the cgroup and the state directory."""
    manager = None
    if record.get("cgroup"):
        from pyoci_nb.runtime.cgroups import manager_from_state

        try:
            manager = manager_from_state(record["cgroup"])
        except Exception as exc:  # a corrupt record: still remove the rest
            log.warning(f"the saved cgroup of container {container.id!r} is unusable: {exc}")
    kill_everything(container, record, manager)
    remove_rootfs_bind(container, record)
    if record.get("status") != "creating":
        hooks.run_poststop(record.get("config") or {}, public_state(record, "stopped"))
    if manager is not None:
        destroy_cgroup(container, manager)
    container._dir.remove()
    container._deleted = True


def destroy_cgroup(container, manager, what: str = "container") -> None:
    """Remove the container's cgroup; a failure is a warning (the rest is removed anyway)."""
    try:
        manager.destroy()
    except Exception as exc:
        log.warning(f"removing the cgroup of {what} {container.id!r}: {exc}")


def kill_everything(container, record: dict, manager) -> None:
    pid = record.get("pid") or 0
    if init_alive(record):  # (after a runtime died mid-create, the cgroup holds the rest)
        kill_quietly(pid)
    if manager is not None:
        try:
            for _ in range(50):
                pids = manager.pids()
                if not pids:
                    break
                for p in pids:
                    kill_quietly(p)
                if manager.frozen():
                    manager.thaw()  # a frozen (paused) process dies of SIGKILL only once thawed
                time.sleep(0.01)
        except Exception:
            pass
    if pid:
        wait_gone(pid, record.get("initStartTime"))
    container._reap(record)


def remove_rootfs_bind(container, record: dict) -> None:
    """A container without a mount namespace of its own: unmount the rootfs bind create
    made in the runtime's mount namespace, with everything mounted below it."""
    saved = record.get("rootfsMount")
    if isinstance(saved, dict):
        from pyoci_nb.runtime import mounts

        try:
            mounts.remove_rootfs_bind(saved)
        except Exception as exc:
            log.warning(f"container {container.id!r}: {exc}")


def delete_here(container, force: bool = False) -> None:
    """``delete`` in this process (under the container's lock)."""
    container._dir.lock()
    try:
        record = container._record()
        container._reap(record)
        status = derive_status(record, container._dir)
        if status != "stopped":
            if not force:
                raise InvalidState(f"cannot delete container that is not stopped: {status}",
                                   where=f"container {container.id!r}",
                                   why="runtime.md: delete of a container that is not stopped is an error",
                                   hint="kill it first, or use delete --force")
        destroy(container, record)
    finally:
        container._dir.unlock()
        drop_subreaper(container._subreaper_key)
