"""The state directory against other local users (issue #10, items 5-7).

Each test makes the real attempt: another user (an unprivileged account the session creates,
or ``nobody``) opens a container's exec FIFO, pre-creates a state root with a planted
``state.json`` whose poststop hook would run as its victim, or a link is planted at
``<root>/<id>`` or in place of a state file.  The attacks must fail and leave the host as it
was.

* exec FIFO (item 5): the state root and every container directory are 0700, so nobody else
  can reach ``exec.fifo`` to block ``start`` or inject what it prints; ``start`` opens the
  FIFO without following links and checks on the fd that it is the FIFO it made.
* planted state root (item 6): a state root must belong to the caller and be closed to others
  (``/tmp/pyoci-UID`` without XDG_RUNTIME_DIR, ``$XDG_RUNTIME_DIR/pyoci``, ``--root``).
* planted links (item 7): every state path is opened relative to a directory fd with
  ``O_NOFOLLOW``; ``delete --force`` of a link removes the link, never what it points to.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from oci_harness import Box, Runtime

_ROOTLESS_CONFTEST = Path(__file__).resolve().parent.parent / "rootless" / "conftest.py"
_spec = importlib.util.spec_from_file_location("rootless_fixtures", _ROOTLESS_CONFTEST)
rootless = sys.modules.setdefault(_spec.name, importlib.util.module_from_spec(_spec))
if not hasattr(rootless, "Session"):
    _spec.loader.exec_module(rootless)

# the rootless suite's unprivileged user and world-readable copy of the package
rootless_user = rootless.rootless_user
user_package = rootless.user_package


# --- helpers -----------------------------------------------------------------------------------

def is_pyoci(runtime: Runtime) -> bool:
    return runtime.command[0] == sys.executable


@pytest.fixture
def shared_dir():
    """A directory under /tmp that every user may enter (as /run or /tmp are), removed after."""
    path = Path(tempfile.mkdtemp(prefix="pyoci-sec-state-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def user_session(rootless_user, user_package, shared_dir):
    """Run commands as the unprivileged user (``session.as_user(...)``, clean environment)."""
    work = shared_dir / "user"
    for name in ("", "bundle", "xdg", "home"):
        (work / name).mkdir(mode=0o700, exist_ok=True)
        os.chown(work / name, rootless_user.uid, rootless_user.gid)
    return rootless.Session(rootless_user, user_package, work, work / "bundle", work / "xdg",
                            work / "home")


def user_runtime_argv(runtime: Runtime, session) -> list[str]:
    """The runtime under test as the user runs it."""
    if is_pyoci(runtime):
        return [rootless.SYSTEM_PYTHON, "-m", "pyoci_nb"]
    return list(runtime.command)


def as_user_in_background(session, script: str, *argv, **popen) -> subprocess.Popen:
    """Start a Python script as the unprivileged user, in its own process group."""
    return subprocess.Popen(["runuser", "-u", session.user.name, "--", "env", "-i", f"PATH={rootless.PATH}",
                             rootless.SYSTEM_PYTHON, "-c", script, *map(str, argv)],
                            cwd="/", start_new_session=True, **popen)


def stop(session, proc: subprocess.Popen) -> None:
    """End a process started by ``as_user_in_background`` and everything the user runs."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, 9)
        except ProcessLookupError:
            pass
    proc.communicate()
    rootless._wait_for_no_processes(session.user.name, timeout=5)


def plant_as_nobody(script: str, *argv) -> None:
    """Run a Python script as ``nobody``: the other local user who plants things."""
    proc = subprocess.run(["runuser", "-u", "nobody", "--", "env", "-i", f"PATH={rootless.PATH}",
                           rootless.SYSTEM_PYTHON, "-c", script, *map(str, argv)],
                          capture_output=True, text=True, timeout=60, cwd="/", check=False)
    assert proc.returncode == 0, proc.stderr


#: a pyoci state.json of a stopped container whose poststop hook writes the uid it runs as
def planted_record(container_id: str, marker: Path) -> dict:
    return {"id": container_id, "status": "stopped", "pid": 0, "bundle": "/", "rootfs": "/",
            "created": "2024-01-01T00:00:00Z", "annotations": {},
            "config": {"ociVersion": "1.0.2", "hooks": {"poststop": [
                {"path": "/bin/sh", "args": ["sh", "-c", f"id -u > {marker}"]}]}}}


_PLANT_STATE = """
import json, os, sys
root, cid, record = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(os.path.join(root, cid), exist_ok=True)
with open(os.path.join(root, cid, "state.json"), "w") as f:
    f.write(record)
for path in (os.path.join(root, cid), root):
    if os.stat(path).st_uid == os.getuid():
        os.chmod(path, 0o777)
"""


# --- item 5: the exec FIFO is out of other users' reach -----------------------------------------

_OPEN_FIFO = """
import errno, os, sys, time
print("trying", flush=True)
try:
    fd = os.open(sys.argv[1], os.O_WRONLY)  # blocks until start opens the reading end
except OSError as exc:
    print("refused", errno.errorcode[exc.errno], flush=True)
    sys.exit(0)
os.write(fd, b"Einjected by another user")
print("opened", flush=True)
time.sleep(5)  # holding the writing end: start waits for it
"""


@pytest.mark.parametrize("existing_root", [
    pytest.param(False, id="fresh-root"),
    pytest.param(True, id="existing-0755-root", marks=pytest.mark.runc_divergent),
])
def test_other_user_cannot_open_exec_fifo(runtime, busybox_bundle, container_id, shared_dir,
                                          user_session, existing_root):
    """Another user opens a created container's exec.fifo for writing, to block ``start`` and
    inject what it prints.  The state root (made now, or already there as 0755: runc 1.1.5
    leaves that one open) and the container directory are 0700: the open fails (EACCES) and
    ``start`` runs the container."""
    root = shared_dir / "state"
    if existing_root:
        root.mkdir(mode=0o755)
        root.chmod(0o755)
    rt = Runtime(runtime.command, root)
    box = Box(rt, busybox_bundle, container_id).args("sleep", "60")
    attacker = None
    try:
        box.create()
        fifo = root / container_id / "exec.fifo"
        attacker = as_user_in_background(user_session, _OPEN_FIFO, fifo, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True)
        assert attacker.stdout.readline().strip() == "trying"
        time.sleep(0.5)  # in its open() by now, or refused
        started = rt("start", container_id, timeout=30)
        try:
            attacker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(attacker.pid, 9)
            attacker.wait()
        said = attacker.stdout.read()  # (the buffered reader may hold it already)
        assert "refused EACCES" in said, f"another user reached exec.fifo: {said!r}"
        assert started.returncode == 0, started.stderr
        assert "injected" not in started.stdout + started.stderr
        assert rt.wait_status(container_id, "running")["status"] == "running"
        assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
        if is_pyoci(runtime):  # (runc 1.1.5 makes it 0711, under its 0700 root)
            assert stat.S_IMODE(os.stat(root / container_id).st_mode) == 0o700
    finally:
        if attacker is not None:
            stop(user_session, attacker)
        rt("delete", "--force", container_id)


@pytest.mark.pyoci_only  # runc 1.1.5 uses such a root as it is
def test_open_root_with_other_files_is_refused_not_changed(runtime, shared_dir):
    """A root others may enter that holds files (``--root /run`` by mistake) is not a state
    root pyoci may tighten: commands refuse it, saying what to do, and leave its mode alone."""
    root = shared_dir / "state"
    root.mkdir()
    root.chmod(0o755)
    (root / "utmp").write_text("not a container\n")
    rt = Runtime(runtime.command, root)
    for command in (["list"], ["state", "x"], ["delete", "--force", "x"]):
        proc = rt(*command)
        assert proc.returncode != 0
        assert "open to other users" in proc.stderr and "chmod 700" in proc.stderr, proc.stderr
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o755


_WRITE_ZERO = """
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)  # the attacker's own FIFO: start opened it
os.write(fd, b"0")
os.close(fd)
"""


@pytest.mark.runc_divergent
def test_start_does_not_follow_a_link_planted_as_exec_fifo(box, tmp_path, user_session):
    """exec.fifo is replaced by a link to a FIFO another user writes ``0`` to and closes: a
    runtime that follows it reports the container started while its init still waits (runc
    1.1.5 does).  ``start`` must refuse, naming exec.fifo, and the container stays created."""
    box.args("sleep", "60").create()
    fake = user_session.work / "fake.fifo"
    os.mkfifo(fake, 0o600)
    os.chown(fake, user_session.user.uid, user_session.user.gid)
    fifo = box.runtime.root / box.id / "exec.fifo"
    fifo.unlink()
    fifo.symlink_to(fake)
    writer = as_user_in_background(user_session, _WRITE_ZERO, fake, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
    try:
        started = box.start(check=False)
        assert started.returncode != 0, "start followed the planted link (a fake start)"
        assert "exec.fifo" in started.stderr
        if is_pyoci(box.runtime):
            assert "Traceback" not in started.stderr
            assert box.state()["status"] == "created"
        assert fifo.is_symlink() and stat.S_ISFIFO(os.stat(fake).st_mode)
    finally:
        stop(user_session, writer)


# --- item 6: a state root another user made is refused ---------------------------------------

@pytest.mark.pyoci_only  # the planted state.json is pyoci's; runc has no /tmp default root
@pytest.mark.parametrize("where", ["tmp-default", "xdg-runtime-dir"])
def test_state_root_planted_by_another_user_is_refused(runtime, user_session, shared_dir, where):
    """``nobody`` pre-creates the victim's default state root (``/tmp/pyoci-UID`` without
    XDG_RUNTIME_DIR; ``$XDG_RUNTIME_DIR/pyoci`` when that is a shared directory) with a planted
    container whose poststop hook would run as the victim on ``delete --force``.  Every command
    refuses the root (it belongs to another user) and the hook never runs."""
    uid = user_session.user.uid
    marker = user_session.work / "hook-ran"
    if where == "tmp-default":
        root, env = Path(f"/tmp/pyoci-{uid}"), {}
        if root.is_symlink() or root.is_file():  # left by an earlier user with this uid
            root.unlink()
        elif root.exists():
            shutil.rmtree(root)
    else:  # XDG_RUNTIME_DIR set to a directory others may write (a sticky one, like /tmp)
        shared = shared_dir / "run"
        shared.mkdir()
        shared.chmod(0o1777)
        root, env = shared / "pyoci", {"XDG_RUNTIME_DIR": str(shared)}
    try:
        plant_as_nobody(_PLANT_STATE, root, "planted", json.dumps(planted_record("planted", marker)))
        argv = user_runtime_argv(runtime, user_session)
        for command in (["delete", "--force", "planted"], ["state", "planted"], ["list"],
                        ["kill", "planted", "KILL"]):
            proc = user_session.as_user(*argv, *command, xdg=False, **env)
            assert proc.returncode != 0, f"{command}: {proc.stdout}"
            assert "belongs to another user" in proc.stderr and str(root) in proc.stderr, proc.stderr
            assert "Traceback" not in proc.stderr
        assert not marker.exists(), f"the planted poststop hook ran as uid {marker.read_text().strip()}"
        assert (root / "planted" / "state.json").exists()  # refused, not touched
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.pyoci_only  # the planted state.json is pyoci's
@pytest.mark.parametrize("kind", ["owned-by-nobody", "writable-by-others"])
def test_root_refuses_a_state_root_others_control(runtime, shared_dir, kind):
    """root runs ``delete --force`` in a ``--root`` another user owns, or one others may write
    (0777), in which ``nobody`` planted a container whose poststop hook would run as root."""
    root = shared_dir / "state"
    root.mkdir()
    if kind == "owned-by-nobody":
        os.chown(root, 65534, 65534)
    else:
        root.chmod(0o777)
    marker = shared_dir / "hook-ran"
    plant_as_nobody(_PLANT_STATE, root, "planted", json.dumps(planted_record("planted", marker)))
    rt = Runtime(runtime.command, root)
    deleted = rt("delete", "--force", "planted")
    assert deleted.returncode != 0
    expected = "belongs to another user" if kind == "owned-by-nobody" else "writable by others"
    assert expected in deleted.stderr and "Traceback" not in deleted.stderr, deleted.stderr
    assert not marker.exists(), "the planted poststop hook ran as root"
    assert rt("list").returncode != 0


# --- item 7: links planted in the state root or a state directory ------------------------------

def test_delete_force_of_a_link_to_outside_leaves_its_target(runtime, shared_dir):
    """A link at ``<root>/<id>`` to a directory elsewhere holding files named like state files:
    ``delete --force ID`` must not delete (or create) anything there; ``state`` and ``list``
    know no such container."""
    root = shared_dir / "state"
    rt = Runtime(runtime.command, root)
    assert rt("list").returncode == 0
    root.mkdir(mode=0o700, exist_ok=True)
    target = shared_dir / "precious"
    target.mkdir()
    names = ("lock", "exec.fifo", "state.json.tmp", "data")
    for name in names:
        (target / name).write_text(f"keep {name}\n")
    (root / "evil").symlink_to(target)
    assert "evil" not in [c["id"] for c in rt.listed()]
    assert rt("state", "evil").returncode != 0
    deleted = rt("delete", "--force", "evil")
    assert deleted.returncode == 0, deleted.stderr
    assert sorted(p.name for p in target.iterdir()) == sorted(names)
    for name in names:
        assert (target / name).read_text() == f"keep {name}\n"
    assert not (root / "evil").is_symlink(), "delete --force should remove the planted link itself"


def test_link_to_another_container_is_not_that_container(box):
    """A link ``<root>/evil`` to the directory of a live container: ``state evil`` must not
    report it and ``delete --force evil`` must neither kill it nor remove its state."""
    pid = box.start_sleeper()
    root = box.runtime.root
    (root / "evil").symlink_to(root / box.id)
    assert box.runtime("state", "evil").returncode != 0
    assert [c["id"] for c in box.runtime.listed()] == [box.id]
    assert box.runtime("delete", "--force", "evil").returncode == 0
    assert not (root / "evil").is_symlink()
    assert box.state()["status"] == "running" and box.state()["pid"] == pid
    os.kill(pid, 0)
    assert (root / box.id / "state.json").is_file()


def test_links_planted_in_a_state_directory_are_not_followed(box, shared_dir):
    """Links in place of the temporary state file (to a file of the host) and of the lock (to
    a path that does not exist): ``update`` (which locks and rewrites state.json) and
    ``delete --force`` must not write through them, and delete still cleans up."""
    box.args("sleep", "60").create()
    state_dir = box.runtime.root / box.id
    original = (state_dir / "state.json").read_bytes()
    victim = shared_dir / "victim-file"
    victim.write_text("precious\n")
    created_through_lock = shared_dir / "created-through-lock"
    try:
        (state_dir / "state.json.tmp").symlink_to(victim)
        (state_dir / "lock").unlink(missing_ok=True)
        (state_dir / "lock").symlink_to(created_through_lock)
        updated = box.runtime("update", "--pids-limit", "77", box.id)
        assert updated.returncode == 0, updated.stderr
        assert victim.read_text() == "precious\n"
        assert not created_through_lock.exists()
        assert (state_dir / "state.json").is_file() and not (state_dir / "state.json").is_symlink()
        deleted = box.delete(force=True, check=False)
        assert deleted.returncode == 0, deleted.stderr
        assert victim.read_text() == "precious\n" and not created_through_lock.exists()
        assert not state_dir.exists()
    finally:  # a runtime that followed the links left them: the box's delete --force needs the state
        if state_dir.is_dir():
            for name in ("state.json", "state.json.tmp", "lock"):
                if (state_dir / name).is_symlink():
                    (state_dir / name).unlink()
            if not (state_dir / "state.json").exists():
                (state_dir / "state.json").write_bytes(original)


@pytest.mark.pyoci_only  # the forged state.json is pyoci's
def test_state_json_link_is_not_followed(box, shared_dir):
    """state.json replaced by a link to a forged record whose poststop hook writes a marker:
    ``state`` refuses it (no traceback), ``delete --force`` removes the state directory
    without running the forged hook, and the forged file stays."""
    box.start_sleeper()
    state_dir = box.runtime.root / box.id
    original = (state_dir / "state.json").read_bytes()
    marker = shared_dir / "hook-ran"
    forged = shared_dir / "forged.json"
    forged.write_text(json.dumps(planted_record(box.id, marker)))
    try:
        (state_dir / "state.json").unlink()
        (state_dir / "state.json").symlink_to(forged)
        shown = box.runtime("state", box.id)
        assert shown.returncode != 0 and "state.json" in shown.stderr, shown.stdout
        assert "Traceback" not in shown.stderr
        deleted = box.delete(force=True, check=False)
        assert deleted.returncode == 0, deleted.stderr
        assert not marker.exists(), "the forged poststop hook ran"
        assert forged.is_file() and not state_dir.exists()
    finally:  # its state is gone: put the real one back for the box's delete --force
        state_dir.mkdir(mode=0o700, exist_ok=True)
        if (state_dir / "state.json").is_symlink():
            (state_dir / "state.json").unlink()
        (state_dir / "state.json").write_bytes(original)
