"""Rootless containers: an unprivileged user runs ``pyoci spec --rootless`` and then the
lifecycle (run, create/start, exec, kill, delete) without any privilege.  Every test also runs
with runc as the same user (``runtime`` = "runc"), which shows what a rootless runtime does."""

from __future__ import annotations

import json
import os
import time

import pytest



def rootless_bundle(session, runtime: str, args: list[str]) -> dict:
    """``<runtime> spec --rootless`` as the user in the bundle, then ``terminal: false`` and
    ``process.args = args``; returns the config it wrote."""
    made = session.as_user(*session.runtime_argv(runtime), "spec", "--rootless")
    assert made.returncode == 0, made.stderr
    config = session.config()
    config["process"]["terminal"] = False
    config["process"]["args"] = args
    session.write_config(config)
    return config


def run(session, runtime: str, container_id: str, *extra, **kwargs):
    return session.as_user(*session.runtime_argv(runtime), *extra, "run", container_id, **kwargs)


def test_spec_rootless_writes_what_runc_writes(session):
    """``pyoci spec --rootless`` as the user: the user's own uid/gid mapped to 0, no network or
    cgroup namespace, sysfs bind-mounted, no resources -- the same JSON as ``runc spec --rootless``."""
    ours = session.as_user(*session.runtime_argv("pyoci"), "spec", "--rootless")
    assert ours.returncode == 0, ours.stderr
    pyoci_config = session.config()
    assert os.stat(session.bundle / "config.json").st_uid == session.user.uid
    (session.bundle / "config.json").unlink()
    theirs = session.as_user("/usr/sbin/runc", "spec", "--rootless")
    assert theirs.returncode == 0, theirs.stderr
    assert pyoci_config == session.config()
    assert pyoci_config["linux"]["uidMappings"] == [{"containerID": 0, "hostID": session.user.uid, "size": 1}]
    assert pyoci_config["linux"]["gidMappings"] == [{"containerID": 0, "hostID": session.user.gid, "size": 1}]


def test_run_maps_container_root_to_the_user(session, runtime):
    rootless_bundle(session, runtime, ["sh", "-c", "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map"])
    proc = run(session, runtime, "rl-ids")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split("\n")
    assert lines[:2] == ["0", "0"]
    assert lines[2].split() == ["0", str(session.user.uid), "1"]
    assert lines[3].split() == ["0", str(session.user.gid), "1"]


def _bind(config: dict, source, destination: str) -> None:
    config["mounts"].append({"destination": destination, "type": "bind", "source": str(source),
                             "options": ["rbind", "rw"]})


def test_container_root_cannot_write_a_host_root_file(session, runtime):
    """Root in the container is the user on the host: a root-owned host file bind-mounted in
    shows up as owned by the overflow id and stays unwritable; the user's own file is writable."""
    host_root_file = session.make_user_file("root-owned", "original\n", owner_uid=0)
    user_file = session.make_user_file("user-owned", "original\n", owner_uid=session.user.uid)
    config = rootless_bundle(session, runtime, [
        "sh", "-c", "stat -c %u /root-owned; echo changed >> /user-owned && echo user-file-ok; "
                    "echo changed >> /root-owned"])
    _bind(config, host_root_file, "/root-owned")
    _bind(config, user_file, "/user-owned")
    session.write_config(config)
    proc = run(session, runtime, "rl-write")
    assert proc.returncode != 0
    assert proc.stdout.split() == ["65534", "user-file-ok"], proc.stderr
    assert "Permission denied" in proc.stderr
    assert host_root_file.read_text() == "original\n"
    assert user_file.read_text() == "original\nchanged\n"


def test_create_start_exec_kill_delete(session, runtime):
    rootless_bundle(session, runtime, ["sleep", "300"])
    argv = session.runtime_argv(runtime)

    def state() -> dict:
        proc = session.as_user(*argv, "state", "rl-life")
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    created = session.as_user(*argv, "create", "rl-life")
    assert created.returncode == 0, created.stderr
    assert state()["status"] == "created"
    started = session.as_user(*argv, "start", "rl-life")
    assert started.returncode == 0, started.stderr
    running = state()
    assert running["status"] == "running"
    assert os.stat(f"/proc/{running['pid']}").st_uid == session.user.uid   # the init runs as the user

    executed = session.as_user(*argv, "exec", "rl-life", "sh", "-c", "id -u; cat /proc/1/cmdline | tr '\\0' ' '")
    assert executed.returncode == 0, executed.stderr
    assert executed.stdout.split("\n")[:2] == ["0", "sleep 300 "]

    killed = session.as_user(*argv, "kill", "rl-life", "KILL")
    assert killed.returncode == 0, killed.stderr
    deadline = time.monotonic() + 10
    while state()["status"] != "stopped":
        assert time.monotonic() < deadline, "the container did not stop after SIGKILL"
        time.sleep(0.05)

    deleted = session.as_user(*argv, "delete", "rl-life")
    assert deleted.returncode == 0, deleted.stderr
    gone = session.as_user(*argv, "state", "rl-life")
    assert gone.returncode != 0 and "does not exist" in gone.stderr
    assert not (session.state_root(runtime) / "rl-life").exists()


def test_state_root_defaults_to_xdg_runtime_dir(session, runtime):
    rootless_bundle(session, runtime, ["sleep", "300"])
    argv = session.runtime_argv(runtime)
    created = session.as_user(*argv, "create", "rl-root")
    assert created.returncode == 0, created.stderr
    root = session.state_root(runtime)
    assert (root / "rl-root").is_dir()
    assert os.stat(root).st_uid == session.user.uid
    listed = session.as_user(*argv, "list", "--quiet")
    assert listed.stdout.split() == ["rl-root"]


def test_state_root_without_xdg_runtime_dir_is_per_user_under_tmp(session):
    """Without XDG_RUNTIME_DIR pyoci keeps state in /tmp/pyoci-<uid> (runc would use /run/runc,
    which an unprivileged user cannot create)."""
    root = session.work.parent / f"pyoci-{session.user.uid}"
    existed = root.exists()
    if not existed:
        session.extra_roots.append(root)
    rootless_bundle(session, "pyoci", ["sleep", "300"])
    created = session.as_user(*session.runtime_argv("pyoci"), "create", "rl-tmp", xdg=False)
    assert created.returncode == 0, created.stderr
    assert (root / "rl-tmp").is_dir()
    assert os.stat(root).st_uid == session.user.uid
    assert os.stat(root).st_mode & 0o077 == 0 or not existed, "others may not read the state of the user's containers"
    deleted = session.as_user(*session.runtime_argv("pyoci"), "delete", "--force", "rl-tmp", xdg=False)
    assert deleted.returncode == 0, deleted.stderr


def test_mount_that_needs_privileges_is_refused(session, runtime):
    """A filesystem the kernel does not let a user namespace mount (ext4) is refused; pyoci's
    message names the mount, the rule and what to do."""
    config = rootless_bundle(session, runtime, ["true"])
    config["mounts"].append({"destination": "/mnt", "type": "ext4", "source": "/dev/null", "options": ["ro"]})
    session.write_config(config)
    proc = run(session, runtime, "rl-mount")
    assert proc.returncode != 0
    assert "/mnt" in proc.stderr
    assert "not permitted" in proc.stderr.lower()
    if runtime == "pyoci":
        index = len(config["mounts"]) - 1
        assert f"mounts[{index}]" in proc.stderr, proc.stderr
        assert "user namespace" in proc.stderr or "rootless" in proc.stderr, proc.stderr
    assert not (session.state_root(runtime) / "rl-mount").exists()


def test_resources_without_a_delegated_cgroup_are_skipped_with_a_warning(session, runtime):
    """The user owns no cgroup: pyoci runs the container and warns that linux.resources is
    ignored.  (runc 1.1 on cgroup v1 refuses instead: "cannot set memory limit: container could
    not join or create cgroup" -- the issue asks for the warning.)"""
    config = rootless_bundle(session, runtime, ["sh", "-c", "echo ran"])
    config["linux"]["resources"] = {"memory": {"limit": 64 * 1024 * 1024}, "pids": {"limit": 64}}
    session.write_config(config)
    proc = run(session, runtime, "rl-res")
    if runtime == "runc":
        assert proc.returncode != 0 and "cannot set memory limit" in proc.stderr
        return
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ran"
    warnings = [line for line in proc.stderr.splitlines() if "level=warning" in line]
    assert any("linux.resources" in line and "memory" in line and "pids" in line for line in warnings), proc.stderr


def test_delegated_cgroup_is_used(session, runtime):
    """When the user owns a cgroup (here a pids cgroup root delegated to it), the container runs
    in it and its limits apply.  (runc 1.1 on cgroup v1 wants every controller delegated.)"""
    if runtime == "runc":
        pytest.skip("runc 1.1 on cgroup v1 needs all controllers delegated for an explicit cgroupsPath")
    pids_root = "/sys/fs/cgroup/pids"
    if not os.path.isdir(pids_root) or not os.path.exists(f"{pids_root}/cgroup.procs"):
        pytest.skip("no cgroup v1 pids hierarchy on this host")
    name = session.work.name
    delegated = f"{pids_root}/{name}"
    os.mkdir(delegated)
    try:
        for entry in [delegated, *[os.path.join(delegated, f) for f in os.listdir(delegated)]]:
            os.chown(entry, session.user.uid, session.user.gid)
        config = rootless_bundle(session, runtime, ["sh", "-c", "grep pids /proc/self/cgroup; "
                                                               "cat /sys/fs/cgroup/pids/pids.max"])
        config["linux"]["cgroupsPath"] = f"/{name}/ctr"
        config["linux"]["resources"] = {"pids": {"limit": 42}}
        session.write_config(config)
        proc = run(session, runtime, "rl-cg")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == [f"{_pids_line_prefix()}/{name}/ctr", "42"], (proc.stdout, proc.stderr)
        assert os.listdir(delegated) and not os.path.exists(f"{delegated}/ctr")   # removed with the container
    finally:
        if os.path.isdir(f"{delegated}/ctr"):
            os.rmdir(f"{delegated}/ctr")
        os.rmdir(delegated)


def _pids_line_prefix() -> str:
    with open("/proc/self/cgroup") as f:
        for line in f:
            number, controllers, _ = line.strip().split(":", 2)
            if "pids" in controllers.split(","):
                return f"{number}:{controllers}:"
    raise AssertionError("no pids line in /proc/self/cgroup")


def test_multiple_ids_are_mapped_with_newuidmap(session, runtime):
    """A mapping of more than the user's own id goes through newuidmap/newgidmap with the
    user's /etc/subuid and /etc/subgid ranges: container uid 1000 then exists."""
    config = rootless_bundle(session, runtime, [
        "sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; touch /tmp/f && chown 1000:1000 /tmp/f "
                    "&& stat -c '%u:%g' /tmp/f"])
    sub_uid, sub_gid = session.user.subuid, session.user.subgid
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": session.user.uid, "size": 1},
                                      {"containerID": 1, "hostID": sub_uid[0], "size": 65536}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": session.user.gid, "size": 1},
                                      {"containerID": 1, "hostID": sub_gid[0], "size": 65536}]
    config["root"]["readonly"] = False
    for kind in ("bounding", "effective", "permitted"):
        config["process"]["capabilities"][kind].append("CAP_CHOWN")
    session.write_config(config)
    proc = run(session, runtime, "rl-map")
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.strip().split("\n")]
    assert rows[:4] == [["0", str(session.user.uid), "1"], ["1", str(sub_uid[0]), "65536"],
                        ["0", str(session.user.gid), "1"], ["1", str(sub_gid[0]), "65536"]]
    assert rows[4] == ["1000:1000"]


def test_python_api_in_a_threaded_process_as_the_user(session):
    """What a notebook does: the Python API, from a process with threads (like a Jupyter
    kernel), as the unprivileged user."""
    rootless_bundle(session, "pyoci", ["true"])
    script = (
        "import threading, sys\n"
        "from pyoci_nb.runtime.container import run\n"
        "worker = threading.Thread(target=threading.Event().wait, daemon=True); worker.start()\n"
        f"result = run({str(session.bundle)!r}, ['sh', '-c', 'id -u; echo $0'], capture_output=True, timeout=60)\n"
        "sys.stdout.write(repr((result.returncode, result.stdout)))\n"
    )
    proc = session.as_user(session.runtime_argv("pyoci")[0], "-c", script)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == repr((0, b"0\nsh\n"))


@pytest.mark.parametrize("no_new_privileges", [True, False])
def test_seccomp_in_a_rootless_container(session, runtime, no_new_privileges):
    """linux.seccomp works rootless too: without noNewPrivileges the filter is loaded while the
    init still has CAP_SYS_ADMIN in its own user namespace."""
    config = rootless_bundle(session, runtime, ["mkdir", "/tmp/made"])
    config["root"]["readonly"] = False
    config["process"]["noNewPrivileges"] = no_new_privileges
    config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW",
                                  "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                                                "errnoRet": 42}]}
    session.write_config(config)
    proc = run(session, runtime, "rl-seccomp")
    assert proc.returncode == 1
    assert os.strerror(42) in proc.stderr


def test_exec_into_a_created_container(session, runtime):
    """The created (not yet started) init is non-dumpable (nothing of the runtime is reachable
    through its /proc), so an unprivileged runtime cannot open its namespaces: pyoci says so
    clearly and exec works once the container runs (runc 1.1.5 leaves its init dumpable)."""
    rootless_bundle(session, runtime, ["sleep", "300"])
    argv = session.runtime_argv(runtime)
    try:
        created = session.as_user(*argv, "create", "rl-created")
        assert created.returncode == 0, created.stderr
        executed = session.as_user(*argv, "exec", "rl-created", "sh", "-c", "echo joined; id -u")
        if runtime == "runc":  # runc 1.1.5's created init is dumpable: its /proc is open to the container
            assert executed.returncode == 0, executed.stderr
            assert executed.stdout.split("\n")[:2] == ["joined", "0"]
        else:  # refused, clearly, rather than opening the init's /proc to the container
            assert executed.returncode != 0
            assert "cannot exec into a created container" in executed.stderr, executed.stderr
            assert "start the container first" in executed.stderr
            started = session.as_user(*argv, "start", "rl-created")
            assert started.returncode == 0, started.stderr
            executed = session.as_user(*argv, "exec", "rl-created", "sh", "-c", "echo joined; id -u")
            assert executed.returncode == 0, executed.stderr
            assert executed.stdout.split("\n")[:2] == ["joined", "0"]
    finally:
        session.as_user(*argv, "delete", "--force", "rl-created")
