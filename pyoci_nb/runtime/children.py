"""The runtime's own children: reaping them, their exit statuses, being their subreaper.

A container's init (and an exec'd process) is a child of the process that made it -- the
``pyoci`` command line or the engine -- or, orphaned, of its subreaper.  Standard library only.
"""

from __future__ import annotations

import os
import time

from pyoci_nb.runtime import syscalls as sc


class no_collection:
    """No cyclic garbage collection while a forked child shares this process's memory: a
    collection then touches every object and copies the whole heap page by page (copy on
    write), milliseconds per container.  Collection resumes (if it was on) afterwards."""

    def __enter__(self):
        import gc

        self.was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc):
        if self.was_enabled:
            import gc

            gc.enable()


def wait_gone(pid: int, start_time: int | None, timeout: float = 10.0) -> None:
    """Wait until ``pid`` (with that start time) has exited; reap it if it is our child."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                note_exit(pid, status)
                return
        except ChildProcessError:
            pass
        if sc.process_start_time(pid) != start_time or start_time is None:
            return
        time.sleep(0.005)


#: exit statuses (as ``exit_code`` gives them) of our children that were reaped before anyone
#: asked for them; ``exit_status`` hands each out once
_exit_statuses: dict[int, int] = {}


def note_exit(pid: int, status: int) -> int:
    code = exit_code(status)
    if len(_exit_statuses) > 4096:  # nobody asked for the oldest: forget them
        for old in list(_exit_statuses)[:1024]:
            del _exit_statuses[old]
    _exit_statuses[pid] = code
    return code


def reap_children() -> None:
    """Reap every child that has exited and keep its status (the engine, between requests)."""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG)
        except ChildProcessError:
            return
        if info is None:
            return
        code = info.si_status + 128 if info.si_code in (os.CLD_KILLED, os.CLD_DUMPED) else info.si_status
        _exit_statuses[info.si_pid] = code


def exit_status(pid: int) -> int | None:
    """The exit status of our child ``pid`` once it has exited (once: it is then forgotten);
    None while it runs or if it is not ours."""
    if pid not in _exit_statuses:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return None
        if done != pid:
            return None
        note_exit(pid, status)
    return _exit_statuses.pop(pid)


def is_our_child(pid: int) -> bool:
    """Is ``pid`` a child of this process (running, or exited and not yet asked for)?"""
    if pid in _exit_statuses:
        return True
    stat = sc.proc_stat(pid)
    return stat is not None and stat.ppid == os.getpid()


def kill_quietly(pid: int, sig: int = 9) -> None:
    if pid > 0:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


#: what this process is a subreaper for: containers it created (until deleted) and exec'd
#: processes it waits for.  PR_SET_CHILD_SUBREAPER makes every orphan below us our child, and a
#: caller (pytest, a Jupyter kernel) never reaps those: so it is held only while needed.
_subreaper_holders: set = set()


def keep_subreaper(holder) -> None:
    """Stay a subreaper for good (the engine: it reaps every container process itself)."""
    _subreaper_holders.add(holder)


def hold_subreaper(holder) -> None:
    """Become a subreaper (a container's orphaned init is reparented to us) for ``holder``."""
    if not _subreaper_holders:
        sc.set_child_subreaper(True)
    _subreaper_holders.add(holder)


def drop_subreaper(holder) -> None:
    """``holder`` no longer needs us as subreaper; when nothing does, stop being one and reap the
    container processes we adopted meanwhile (zombies would keep their pid namespace alive)."""
    if holder not in _subreaper_holders:
        return
    _subreaper_holders.discard(holder)
    if _subreaper_holders:
        return
    sc.set_child_subreaper(False)
    try:  # is there any zombie child at all?  (WNOWAIT: only look, reap nothing)
        if os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            return
    except ChildProcessError:
        return
    our_ns = os.readlink("/proc/self/ns/pid")
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = sc.proc_stat(entry)
        try:
            # only our zombies from other pid namespaces: never a child the caller made itself
            if stat is not None and stat.state == "Z" and stat.ppid == me and \
                    os.readlink(f"/proc/{entry}/ns/pid") != our_ns:
                os.waitpid(int(entry), os.WNOHANG)
        except OSError:
            continue


def waitpid_retry(pid: int) -> tuple[int, int]:
    while True:
        try:
            return os.waitpid(pid, 0)
        except InterruptedError:
            continue


def exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def wait_readable(fd: int, timeout: float | None) -> bool:
    """Wait until ``fd`` is readable (a pidfd: its process exited); False after ``timeout``."""
    import select

    poller = select.poll()
    poller.register(fd, select.POLLIN)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        if poller.poll(None if remaining is None else remaining * 1000):
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
