"""Fixtures of the cgroup tests: a private parent cgroup per test and processes to put in it.

``cgroup_parent`` is ``/pyoci-test-<random>`` (absolute, in every hierarchy); on teardown every
process still in it is killed (thawed first) and every directory under it removed, in all v1
hierarchies and the cgroup2 tree -- also when the test failed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from pyoci_nb.runtime.cgroups import detect_layout


def _hierarchy_roots() -> list[str]:
    layout = detect_layout()
    roots = [m.mountpoint for m in layout.hierarchies()]
    if layout.v2 is not None:
        roots.append(layout.v2.mountpoint)
    return roots


def remove_cgroup_tree(relative: str) -> None:
    """Kill what is left in ``relative`` (in every hierarchy) and remove its directories."""
    dirs = [os.path.join(root, relative.lstrip("/")) for root in _hierarchy_roots()]
    for d in dirs:
        for name in ("freezer.state", "cgroup.freeze"):
            for top, _, files in os.walk(d):
                if name in files:
                    try:
                        with open(os.path.join(top, name), "w") as f:
                            f.write("THAWED" if name == "freezer.state" else "0")
                    except OSError:
                        pass
    for _ in range(100):
        pids = set()
        for d in dirs:
            for top, _, files in os.walk(d):
                try:
                    with open(os.path.join(top, "cgroup.procs")) as f:
                        pids.update(int(x) for x in f.read().split())
                except OSError:
                    pass
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.02)
    for d in dirs:
        for top, subdirs, _ in os.walk(d, topdown=False):
            for sub in subdirs:
                _rmdir(os.path.join(top, sub))
        _rmdir(d)


def _rmdir(path: str) -> None:
    for _ in range(100):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)


@pytest.fixture
def cgroup_parent():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    relative = f"/pyoci-test-{uuid.uuid4().hex[:10]}"
    yield relative
    remove_cgroup_tree(relative)


class Held:
    """A process started paused (``read`` on stdin) so it can be moved into a cgroup before
    it runs ``command``; ``go()`` lets it run."""

    def __init__(self, command: str):
        self.proc = subprocess.Popen(["/bin/sh", "-c", f"read _go; exec {command}"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.pid = self.proc.pid

    def go(self) -> "Held":
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        return self

    def finish(self, timeout: float = 30) -> tuple[int, str]:
        out, _ = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.communicate(timeout=10)
        except Exception:
            pass


@pytest.fixture
def held():
    """``held(command)`` -> a Held process; every one is killed on teardown."""
    started: list[Held] = []

    def start(command: str) -> Held:
        process = Held(command)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


PYTHON = sys.executable
