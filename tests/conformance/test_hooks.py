"""POSIX-platform hooks (config.md#posix-platform-hooks): prestart (legacy), createRuntime,
createContainer, startContainer, poststart, poststop.

Every hook here is busybox run as ``sh -c SCRIPT ...``: busybox picks its applet from argv[0],
so a runtime that ignored ``args[0]`` (running ``busybox -c ...``) would fail the hook.  The
script appends one JSON line to a log file outside the container: the hook name, its env
(HOOK_MARKER), its mount/net namespaces and the state JSON it read on stdin.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from oci_harness import assert_nothing_left, host_ns

HOST_BUSYBOX = "/usr/bin/busybox"
RECORD = r"""B=$BUSYBOX
{ printf '{"hook":"%s","marker":"%s","mnt":"%s","net":"%s","state":' \
    "$2" "$HOOK_MARKER" "$($B readlink /proc/self/ns/mnt)" "$($B readlink /proc/self/ns/net)"
  $B cat
  printf '}\n'
} >> "$1"
"""


class HookLog:
    """A host directory with the log the hooks append to (also bind-mounted at /hooklog)."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.file = directory / "hooks.log"

    def records(self) -> list[dict]:
        if not self.file.exists():
            return []
        return [json.loads(line) for line in self.file.read_text().splitlines() if line.strip()]

    def names(self) -> list[str]:
        return [r["hook"] for r in self.records()]


@pytest.fixture
def hook_log(tmp_path) -> HookLog:
    d = tmp_path / "hooklog"
    d.mkdir()
    return HookLog(d)


def recording_hook(log: HookLog, stage: str, busybox: str = HOST_BUSYBOX, logfile: str | None = None,
                   path: str | None = None, **extra) -> dict:
    return {"path": path or busybox,
            "args": ["sh", "-c", RECORD, "hook", logfile or str(log.file), stage],
            "env": [f"HOOK_MARKER=marker-{stage}", f"BUSYBOX={busybox}"], **extra}


def add_all_hooks(box, log: HookLog) -> None:
    # startContainer runs after pivot_root, so its path resolves in the container: a name that
    # exists only in the rootfs, logging through a bind mount of the log directory.
    os.symlink("/bin/busybox", box.rootfs / "start-container-hook")
    box.add_mount("/hooklog", str(log.dir), "bind", ["rbind", "rw"])
    # createContainer's path resolves in the runtime's mount namespace: a host-only path.
    host_only = log.dir.parent / "host-only-busybox"
    os.symlink(HOST_BUSYBOX, host_only)
    box.add_hook("prestart", recording_hook(log, "prestart"))
    box.add_hook("createRuntime", recording_hook(log, "createRuntime"))
    box.add_hook("createContainer", recording_hook(log, "createContainer", path=str(host_only)))
    box.add_hook("startContainer", recording_hook(log, "startContainer", busybox="/bin/busybox",
                                                  logfile="/hooklog/hooks.log",
                                                  path="/start-container-hook"))
    box.add_hook("poststart", recording_hook(log, "poststart"))
    box.add_hook("poststop", recording_hook(log, "poststop"))


def test_hooks_run_in_order_with_state_env_and_namespaces(box, hook_log):
    add_all_hooks(box, hook_log)
    box.args("sh", "-c", "echo ran > /hooklog/process-ran")
    box.create()
    created_pid = box.state()["pid"]
    after_create = hook_log.names()
    assert {"prestart", "createRuntime", "createContainer"} <= set(after_create)
    assert "startContainer" not in after_create, "startContainer ran before start"
    assert after_create.index("createRuntime") < after_create.index("createContainer")
    assert not (hook_log.dir / "process-ran").exists()

    box.start()
    names = hook_log.names()
    assert names.count("startContainer") == 1 and names.count("poststart") == 1, names
    assert names.index("createContainer") < names.index("startContainer")
    box.runtime.wait_status(box.id, "stopped")
    assert (hook_log.dir / "process-ran").exists()
    assert "poststop" not in hook_log.names(), "poststop ran before delete"

    box.delete()
    records = {r["hook"]: r for r in hook_log.records()}
    assert hook_log.names()[-1] == "poststop"
    bundle = os.path.realpath(box.bundle)
    for name, rec in records.items():
        assert rec["marker"] == f"marker-{name}", f"{name}: env not passed"
        assert rec["state"]["id"] == box.id, name
        assert os.path.realpath(rec["state"]["bundle"]) == bundle, name
        assert rec["state"]["ociVersion"], name
    for name in ("prestart", "createRuntime", "poststart"):
        assert records[name]["state"]["pid"] == created_pid, name
    # runtime namespace vs container namespace
    for name in ("prestart", "createRuntime", "poststart", "poststop"):
        assert records[name]["mnt"] == host_ns("mount"), f"{name} did not run in the runtime's mount ns"
        assert records[name]["net"] == host_ns("network"), f"{name} did not run in the runtime's net ns"
    for name in ("createContainer", "startContainer"):
        assert records[name]["mnt"] != host_ns("mount"), f"{name} did not run in the container's mount ns"
        assert records[name]["net"] != host_ns("network"), f"{name} did not run in the container's net ns"
    assert records["poststop"]["state"]["status"] == "stopped"


@pytest.mark.runc_divergent  # runc 1.1 gives these hooks the pid in the container's pid ns (1)
def test_container_namespace_hooks_get_the_host_pid(box, hook_log):
    """state.md: pid is the container process's id *as seen by the host*, also for the hooks
    that run inside the container's namespaces."""
    add_all_hooks(box, hook_log)
    box.args("sleep", "1000")
    box.create()
    box.start()
    pid = box.state()["pid"]
    records = {r["hook"]: r for r in hook_log.records()}
    assert records["createContainer"]["state"]["pid"] == pid
    assert records["startContainer"]["state"]["pid"] == pid
    assert records["startContainer"]["state"]["status"] == "created", \
        "startContainer hooks run before the user program: the container is not running yet"


@pytest.mark.runc_divergent  # runc 1.1 runs poststart hooks during create (fixed in runc 1.2)
def test_poststart_runs_during_start_not_create(box, hook_log):
    box.add_hook("poststart", recording_hook(hook_log, "poststart"))
    box.args("sleep", "1000")
    box.create()
    assert hook_log.names() == [], "poststart ran before the user process was started"
    box.start()
    assert hook_log.names() == ["poststart"], "poststart did not run before start returned"
    assert hook_log.records()[0]["state"]["status"] == "running"


def test_failing_create_runtime_hook_fails_create_and_leaves_nothing(box, hook_log):
    box.add_hook("createRuntime", {"path": HOST_BUSYBOX, "args": ["false"]})
    box.add_hook("poststop", recording_hook(hook_log, "poststop"))
    proc = box.create(check=False)
    assert proc.returncode != 0
    assert_nothing_left(box)


def test_failing_poststop_hook_only_warns(box, hook_log):
    box.add_hook("poststop", {"path": HOST_BUSYBOX, "args": ["false"]})
    box.add_hook("poststop", recording_hook(hook_log, "poststop"))
    box.args("true")
    box.create()
    box.start()
    box.runtime.wait_status(box.id, "stopped")
    proc = box.delete(check=False)
    assert proc.returncode == 0, f"a failing poststop hook failed delete: {proc.stderr}"
    assert_nothing_left(box)


@pytest.mark.runc_divergent  # runc 1.1 stops at the first failing poststop hook
def test_hooks_after_a_failing_poststop_hook_still_run(box, hook_log):
    box.add_hook("poststop", {"path": HOST_BUSYBOX, "args": ["false"]})
    box.add_hook("poststop", recording_hook(hook_log, "poststop"))
    box.args("true")
    box.create()
    box.start()
    box.runtime.wait_status(box.id, "stopped")
    box.delete(check=False)
    assert hook_log.names() == ["poststop"]


def test_hook_timeout_is_honored(box, hook_log):
    pid_file = hook_log.dir / "hook.pid"
    box.add_hook("createRuntime", {"path": HOST_BUSYBOX,
                                   "args": ["sh", "-c", f"echo $$ > {pid_file}; exec {HOST_BUSYBOX} sleep 600"],
                                   "timeout": 1})
    proc = box.create(check=False)  # the harness's own 60 s timeout fails the test if ignored
    assert proc.returncode != 0
    hook_pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while Path(f"/proc/{hook_pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{hook_pid}").exists(), "the timed-out hook is still running"
    assert_nothing_left(box)
