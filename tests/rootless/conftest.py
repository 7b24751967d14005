"""Fixtures of the rootless tests: an unprivileged user the session creates (and removes), a
world-readable copy of pyoci_nb for it, and per-test bundles it owns.

This checkout's python3 is a build under /root that other users cannot read, so the user runs
Debian's ``/usr/bin/python3`` with ``PYTHONPATH`` pointing at the copy -- the runtime's CLI path
is standard-library only, so that is all it needs.  Commands run through
``runuser -u USER -- env -i ...`` with a clean environment.  The same steps also run with runc
as that user (``runtime`` is parametrized), which shows the tests expect what a rootless
runtime really does.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
SYSTEM_PYTHON = "/usr/bin/python3"
RUNC = "/usr/sbin/runc"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.rootless)
            if os.geteuid() != 0:
                item.add_marker(pytest.mark.skip(reason="the rootless tests create their user: need root"))


def _run(argv, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, **kwargs)


@dataclass
class User:
    name: str
    uid: int
    gid: int
    subuid: tuple[int, int]      # (first id, count) from /etc/subuid
    subgid: tuple[int, int]


def _subordinate_range(path: str, name: str) -> tuple[int, int] | None:
    with open(path) as f:
        for line in f:
            parts = line.strip().split(":")
            if len(parts) == 3 and parts[0] == name:
                return int(parts[1]), int(parts[2])
    return None


@pytest.fixture(scope="session")
def rootless_user():
    """A fresh unprivileged user with subordinate uid/gid ranges (for newuidmap/newgidmap);
    removed, with its ranges and any process left, after the session."""
    for tool in ("useradd", "userdel", "runuser", "newuidmap", "newgidmap"):
        if not shutil.which(tool, path=PATH):
            pytest.fail(f"{tool} is missing (scripts/setup.sh installs passwd, util-linux and uidmap)")
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.fail(f"{SYSTEM_PYTHON} is missing (scripts/setup.sh installs python3)")
    name = "pyocirl" + uuid.uuid4().hex[:8]
    created = _run(["useradd", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/bin/sh",
                    "--user-group", name])
    assert created.returncode == 0, created.stderr
    try:
        entry = pwd.getpwnam(name)
        if _subordinate_range("/etc/subuid", name) is None or _subordinate_range("/etc/subgid", name) is None:
            start = _free_subordinate_start()
            added = _run(["usermod", "--add-subuids", f"{start}-{start + 65535}",
                          "--add-subgids", f"{start}-{start + 65535}", name])
            assert added.returncode == 0, added.stderr
        yield User(name, entry.pw_uid, entry.pw_gid, _subordinate_range("/etc/subuid", name),
                   _subordinate_range("/etc/subgid", name))
    finally:
        _kill_processes_of(name)
        removed = _run(["userdel", name])
        for path in ("/etc/subuid", "/etc/subgid"):      # older shadow versions keep the ranges
            with open(path) as f:
                lines = f.readlines()
            kept = [line for line in lines if not line.startswith(name + ":")]
            if kept != lines:
                with open(path, "w") as f:
                    f.writelines(kept)
        assert removed.returncode == 0, removed.stderr


def _free_subordinate_start() -> int:
    end = 100000
    for path in ("/etc/subuid", "/etc/subgid"):
        with open(path) as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) == 3:
                    end = max(end, int(parts[1]) + int(parts[2]))
    return end


def _kill_processes_of(name: str) -> None:
    """SIGKILL the processes still running as the test user (by pid, from /proc)."""
    uid = pwd.getpwnam(name).pw_uid
    for pid in [int(p) for p in os.listdir("/proc") if p.isdigit()]:
        try:
            if os.stat(f"/proc/{pid}").st_uid == uid:
                os.kill(pid, 9)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass


@pytest.fixture(scope="session")
def user_package():
    """A world-readable copy of the pyoci_nb package for the user's PYTHONPATH."""
    directory = Path(tempfile.mkdtemp(prefix="pyoci-rootless-pkg-"))
    try:
        shutil.copytree(REPO / "pyoci_nb", directory / "pyoci_nb",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for path in [directory, *directory.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@dataclass
class Session:
    """One test's work area: a bundle owned by the user, its XDG_RUNTIME_DIR and HOME, and ways
    to run commands as the user."""
    user: User
    package: Path
    work: Path
    bundle: Path
    xdg: Path
    home: Path
    extra_roots: list[Path] = field(default_factory=list)

    def env(self, xdg: bool = True, **extra) -> dict:
        env = {"PATH": PATH, "HOME": str(self.home), "USER": self.user.name, "LOGNAME": self.user.name,
               "PYTHONPATH": str(self.package), "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}
        if xdg:
            env["XDG_RUNTIME_DIR"] = str(self.xdg)
        env.update(extra)
        return env

    def as_user(self, *argv, xdg: bool = True, cwd: Path | None = None, timeout: float = 60,
                input: str | None = None, **extra_env) -> subprocess.CompletedProcess:
        """Run ``argv`` as the user (clean environment, cwd = the bundle); output as text."""
        env = self.env(xdg=xdg, **extra_env)
        command = ["runuser", "-u", self.user.name, "--", "env", "-i",
                   *[f"{k}={v}" for k, v in env.items()], *map(str, argv)]
        # output through files: a container process may keep a pipe open
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.run(command, cwd=str(cwd or self.bundle), stdout=out, stderr=err, timeout=timeout,
                                  input=input.encode() if input is not None else None,
                                  stdin=None if input is not None else subprocess.DEVNULL)
            out.seek(0)
            err.seek(0)
            proc.stdout = out.read().decode(errors="replace")
            proc.stderr = err.read().decode(errors="replace")
        return proc

    def runtime_argv(self, runtime: str) -> list[str]:
        return [SYSTEM_PYTHON, "-m", "pyoci_nb"] if runtime == "pyoci" else [RUNC]

    def state_root(self, runtime: str) -> Path:
        """Where the runtime keeps state for the user by default: $XDG_RUNTIME_DIR/<name>."""
        return self.xdg / ("pyoci" if runtime == "pyoci" else "runc")

    def config(self) -> dict:
        return json.loads((self.bundle / "config.json").read_text())

    def write_config(self, config: dict) -> None:
        (self.bundle / "config.json").write_text(json.dumps(config, indent=2))

    def make_user_file(self, name: str, text: str, owner_uid: int, mode: int = 0o644) -> Path:
        path = self.work / name
        path.write_text(text)
        os.chown(path, owner_uid, owner_uid)
        path.chmod(mode)
        return path


@pytest.fixture(params=["pyoci", "runc"])
def runtime(request) -> str:
    """The runtime the user drives: this checkout's pyoci, or runc (to check the test itself)."""
    return request.param


@pytest.fixture
def session(rootless_user, user_package, busybox_rootfs) -> Session:
    """A bundle (rootfs copied from the session's busybox rootfs, owned by the user, no
    config.json yet), an XDG_RUNTIME_DIR; afterwards every container the user left in its
    state roots is force-deleted and the work area removed."""
    work = Path(tempfile.mkdtemp(prefix="pyoci-rootless-"))
    work.chmod(0o755)
    bundle = work / "bundle"
    bundle.mkdir()
    shutil.copytree(busybox_rootfs, bundle / "rootfs", symlinks=True)
    xdg = work / "xdg"
    xdg.mkdir(mode=0o700)
    home = work / "home"
    home.mkdir(mode=0o700)
    for path in (bundle, xdg, home):
        _chown_tree(path, rootless_user.uid, rootless_user.gid)
    s = Session(rootless_user, user_package, work, bundle, xdg, home)
    try:
        yield s
    finally:
        for runtime_name in ("pyoci", "runc"):
            for root in [s.state_root(runtime_name), *s.extra_roots]:
                if root.is_dir():
                    for entry in root.iterdir():
                        s.as_user(*s.runtime_argv(runtime_name), "--root", root, "delete", "--force", entry.name,
                                  timeout=30)
        _wait_for_no_processes(rootless_user.name)
        for root in s.extra_roots:
            shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.lchown(path, uid, gid)
    for entry in path.rglob("*"):
        os.lchown(entry, uid, gid)


def _wait_for_no_processes(name: str, timeout: float = 10) -> None:
    """After delete --force the container processes go away; kill stragglers after a while."""
    uid = pwd.getpwnam(name).pw_uid
    deadline = time.monotonic() + timeout

    def remaining():
        pids = []
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    if os.stat(f"/proc/{p}").st_uid == uid:
                        pids.append(int(p))
                except FileNotFoundError:
                    pass
        return pids

    while remaining() and time.monotonic() < deadline:
        time.sleep(0.05)
    _kill_processes_of(name)
