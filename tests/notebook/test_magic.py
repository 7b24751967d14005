"""%%container in a real IPython kernel (jupyter_client): cells run in real containers.

Every test talks to a real ipykernel over ZeroMQ and reads the iopub messages, exactly what a
notebook front end sees.  The kernel's magic keeps its containers under a private directory
(``PYOCI_MAGIC_ROOT``) so the tests can check that nothing is left behind: no state directory, no
process in the container's pid namespace, no mount.  The kernel's engine
(``pyoci_nb.runtime.engine``) makes the containers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("jupyter_client")
pytest.importorskip("ipykernel")

from kernel_harness import (  # the fixtures magic_root, kernel, clean_after: conftest.py
    Kernel,
    bundle_entries,
    gone,
    kernel_namespaces,
    mounts_under,
    processes_in_pid_namespace,
    sessions,
    state_entries,
    submit_and_wait_for_container,
    wait_for,
)

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------- the tests
def test_fresh_container_has_own_namespaces_hostname_and_rootfs(kernel, clean_after):
    host = kernel_namespaces(kernel)
    run = kernel.execute(
        "%%container --hostname nbtest\n"
        "for ns in pid mnt uts ipc net user; do echo \"$ns $(readlink /proc/self/ns/$ns)\"; done\n"
        "echo \"hostname $(hostname)\"\n"
        "echo \"shell-pid $$\"\n"
        "echo \"etc-hostname $(cat /etc/hostname)\"\n"
        "test -e /etc/debian_version && echo 'rootfs host' || echo 'rootfs busybox'\n"
        "echo \"busybox $(readlink /bin/sh)\"\n"
        "echo \"stdin $(cat; echo eof)\"\n")
    assert run.ok, (run.error, run.stderr)
    seen = dict(line.split(" ", 1) for line in run.stdout.splitlines())
    for ns in ("pid", "mnt", "uts", "ipc", "net"):
        assert seen[ns] != host[ns], f"{ns} namespace is the kernel's"
    assert seen["user"] == host["user"], "a rootful container shares the host's user namespace"
    assert seen["hostname"] == "nbtest"
    assert seen["shell-pid"] == "1", "the cell's shell is pid 1 of its own pid namespace"
    assert seen["etc-hostname"] == "pyoci"
    assert seen["rootfs"] == "busybox" and seen["busybox"] == "busybox"
    assert seen["stdin"] == "eof", "stdin is /dev/null: cat sees end of file at once"
    # a fresh container is removed after the cell: no state, no bundle, no process, no mount
    assert state_entries(kernel.magic_root) == []
    assert bundle_entries(kernel.magic_root) == []
    assert gone(seen["pid"])
    assert mounts_under(kernel.magic_root) == []


def test_named_container_keeps_files_and_background_processes(kernel, clean_after):
    first = kernel.execute(
        "%%container --name keeper\n"
        "echo persisted > /tmp/note\n"
        "sleep 300 >/dev/null 2>&1 &\n"
        "echo $! > /tmp/bg.pid\n"
        "readlink /proc/self/ns/pid\n")
    assert first.ok, (first.error, first.stderr)
    pid_ns = first.stdout.strip()
    second = kernel.execute(
        "%%container --name keeper\n"
        "cat /tmp/note\n"
        "kill -0 \"$(cat /tmp/bg.pid)\" && echo background-alive\n"
        "readlink /proc/self/ns/pid\n")
    assert second.ok, (second.error, second.stderr)
    assert second.stdout.splitlines() == ["persisted", "background-alive", pid_ns]
    listing = kernel.execute("%containers")
    assert listing.ok
    table = listing.data[0]["text/plain"]
    assert "keeper" in table and "running" in table
    assert len(processes_in_pid_namespace(pid_ns)) >= 2, "keep-alive process and the background sleep"
    removed = kernel.execute("%container_rm keeper")
    assert removed.ok and "removed keeper" in removed.stdout
    assert state_entries(kernel.magic_root) == []
    assert bundle_entries(kernel.magic_root) == []
    assert gone(pid_ns)
    assert mounts_under(kernel.magic_root) == []
    again = kernel.execute("%container_rm keeper")
    assert not again.ok and "no named container 'keeper'" in again.stderr + str(again.error)


def test_background_process_keeping_output_open_does_not_block_the_cell(kernel, clean_after):
    run = kernel.execute("%%container --name bg\nsleep 100 &\necho started\n", timeout=30)
    assert run.ok and run.stdout == "started\n"
    assert kernel.execute("%%container --name bg\necho next\n").stdout == "next\n"


def test_nonzero_exit_raises_calledprocesserror_naming_the_status(kernel, clean_after):
    run = kernel.execute("%%container\necho before\nexit 3\n")
    assert not run.ok
    assert run.error["ename"] == "ContainerCellError"
    assert "exit status 3" in run.error["evalue"]
    assert run.stdout == "before\n"
    caught = kernel.execute(
        "import subprocess\n"
        "try:\n"
        "    get_ipython().run_cell_magic('container', '', 'exit 4')\n"
        "except subprocess.CalledProcessError as exc:\n"
        "    print('caught', exc.returncode)\n")
    assert caught.ok and caught.stdout == "caught 4\n"
    quiet = kernel.execute("%%container --no-raise-error\nexit 5\n")
    assert quiet.ok and quiet.error is None
    assert quiet.stderr == "%%container: exit status 5\n"  # not raised, but shown
    fine = kernel.execute("%%container --no-raise-error\ntrue\n")
    assert fine.ok and fine.stderr == ""


def test_capture_stores_returncode_stdout_and_stderr(kernel, clean_after):
    run = kernel.execute("%%container --capture res --no-raise-error\necho out\necho err >&2\nexit 2\n")
    assert run.ok
    assert kernel.value("[res.returncode, res.stdout, res.stderr, res.container.startswith('cell-')]") == \
        [2, "out\n", "err\n", True]
    raising = kernel.execute("%%container --capture res2\nexit 6\n")
    assert not raising.ok and kernel.value("res2.returncode") == 6


def test_stderr_arrives_on_the_stderr_stream(kernel, clean_after):
    run = kernel.execute("%%container\necho to-out\necho to-err >&2\n")
    assert run.ok
    assert run.stdout == "to-out\n"
    assert run.stderr == "to-err\n"


def test_output_streams_while_the_command_runs(kernel, clean_after):
    run = kernel.execute("%%container\necho first\nsleep 1\necho second\n")
    assert run.ok
    out = run.streams("stdout")
    firsts = [i for i, m in enumerate(out) if "first" in m["content"]["text"]]
    seconds = [i for i, m in enumerate(out) if "second" in m["content"]["text"]]
    assert firsts and seconds and firsts[0] < seconds[0], \
        "the first line must arrive in an earlier message than the second"
    assert out[firsts[0]]["header"]["date"] < out[seconds[0]]["header"]["date"]


def test_python_output_is_line_buffered_on_a_terminal(kernel, clean_after):
    run = kernel.execute(
        "%%container --rootfs host --shell python3\n"
        "import sys, time\n"
        "print('first', sys.stdout.isatty(), sys.stderr.isatty())\n"
        "time.sleep(1)\n"
        "print('second')\n")
    assert run.ok, (run.error, run.stderr)
    out = run.streams("stdout")
    assert out[0]["content"]["text"] == "first True True\n"
    assert "second" not in out[0]["content"]["text"]


def test_interrupt_kills_the_container_and_leaves_nothing_behind(kernel, clean_after):
    msg_id, _session, _container_id, pid = submit_and_wait_for_container(kernel, "%%container\nsleep 100\n")
    pid_ns = os.readlink(f"/proc/{pid}/ns/pid")
    kernel.manager.interrupt_kernel()
    run = kernel.collect(msg_id, timeout=20)  # sleep 100 would take 100 s
    assert not run.ok and run.error["ename"] == "KeyboardInterrupt"
    assert run.error["traceback"] == ["KeyboardInterrupt: the container was killed and removed"]
    assert gone(pid_ns)
    assert state_entries(kernel.magic_root) == []
    assert bundle_entries(kernel.magic_root) == []
    assert mounts_under(kernel.magic_root) == []
    assert kernel.execute("%%container\necho still-works\n").stdout == "still-works\n"


def test_interrupt_in_a_named_container_kills_the_cell_but_keeps_the_container(kernel, clean_after):
    kernel.execute("%%container --name intr\ntrue\n")
    pid_ns = kernel.execute("%%container --name intr\nreadlink /proc/self/ns/pid\n").stdout.strip()
    before = set(processes_in_pid_namespace(pid_ns))
    msg_id = kernel.submit("%%container --name intr\nsleep 100\n")
    assert wait_for(lambda: any(b"sleep\x00100" in Path(f"/proc/{p}/cmdline").read_bytes()
                                for p in processes_in_pid_namespace(pid_ns) if Path(f"/proc/{p}").exists()))
    kernel.manager.interrupt_kernel()
    run = kernel.collect(msg_id, timeout=20)
    assert not run.ok and run.error["ename"] == "KeyboardInterrupt"
    assert set(processes_in_pid_namespace(pid_ns)) <= before, "the cell's processes are gone"
    assert kernel.execute("%%container --name intr\necho alive\n").stdout == "alive\n"


def test_timeout_kills_the_cell(kernel, clean_after):
    run = kernel.execute("%%container --timeout 1\necho started\nsleep 100\n", timeout=30)
    assert not run.ok
    assert run.error["ename"] == "ContainerCellTimeout"
    assert "--timeout 1" in run.error["evalue"]
    assert run.stdout == "started\n"
    assert state_entries(kernel.magic_root) == []


def test_process_options_env_user_workdir_readonly_capabilities(kernel, clean_after):
    run = kernel.execute(
        "%%container --env GREETING=hello --user 1000:1001 --workdir /tmp --readonly --cap-drop ALL\n"
        "echo \"env $GREETING\"\n"
        "echo \"ids $(id -u):$(id -g)\"\n"
        "echo \"cwd $(pwd)\"\n"
        "touch /cannot-write 2>/dev/null && echo rw || echo ro\n"
        "grep CapBnd /proc/self/status\n")
    assert run.ok, (run.error, run.stderr)
    lines = run.stdout.splitlines()
    assert lines[:4] == ["env hello", "ids 1000:1001", "cwd /tmp", "ro"]
    assert lines[4].split() == ["CapBnd:", "0000000000000000"]
    added = kernel.execute("%%container --cap-add NET_ADMIN\ngrep CapBnd /proc/self/status\n")
    bounding = int(added.stdout.split()[1], 16)
    assert bounding & (1 << 12), "CAP_NET_ADMIN (12) is in the bounding set"


def test_network_none_and_host(kernel, clean_after):
    host = kernel_namespaces(kernel)["net"]
    isolated = kernel.execute("%%container --net none\nreadlink /proc/self/ns/net\nls /sys/class/net\n")
    assert isolated.ok
    lines = isolated.stdout.split()
    assert lines[0] != host and lines[1:] == ["lo"]
    shared = kernel.execute("%%container --net host\nreadlink /proc/self/ns/net\n")
    assert shared.ok and shared.stdout.strip() == host


def test_resource_limits_reach_the_cgroup(kernel, clean_after):
    run = kernel.execute("%%container --pids 42 --memory 64m --cpus 0.5\n"
                         "if [ -f /sys/fs/cgroup/cgroup.controllers ]; then\n"
                         "  cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max\n"
                         "else\n"
                         "  cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory/memory.limit_in_bytes\n"
                         "  cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us\n"
                         "fi\n")
    assert run.ok, (run.error, run.stderr)
    assert run.stdout.split() == ["42", str(64 << 20), "50000", "100000"]


def test_rootless_container_has_its_own_user_namespace(kernel, clean_after):
    host_user = kernel_namespaces(kernel)["user"]
    run = kernel.execute("%%container --rootless\nreadlink /proc/self/ns/user\ncat /proc/self/uid_map\nid -u\n")
    assert run.ok, (run.error, run.stderr)
    user_ns, mapping, uid = run.stdout.splitlines()
    assert user_ns != host_user
    assert mapping.split() == ["0", str(os.geteuid()), "1"], "runc spec --rootless maps uid 0 to the caller"
    assert uid == "0"


def test_usage_errors_name_the_option(kernel, clean_after):
    image = kernel.execute("%%container --image Busybox:latest\necho\n")
    assert image.error["ename"] == "ImageError" and "--image" in image.error["evalue"]
    assert "invalid repository name 'library/Busybox'" in image.error["evalue"]
    both = kernel.execute("%%container --image busybox --rootfs host\necho\n")
    assert both.error["ename"] == "ConfigError" and "--image cannot be combined" in both.error["evalue"]
    bridge = kernel.execute("%%container --net bridge\necho\n")
    assert bridge.error["ename"] == "UnsupportedError" and "--net bridge is not supported yet" in bridge.error["evalue"]
    memory = kernel.execute("%%container --memory lots\necho\n")
    assert memory.error["ename"] == "ConfigError" and "--memory" in memory.error["evalue"]
    env = kernel.execute("%%container --env NOVALUE\necho\n")
    assert "--env[0]" in env.error["evalue"]
    cap = kernel.execute("%%container --cap-add SYS_NOPE\necho\n")
    assert "--cap-add[0]" in cap.error["evalue"] and "unknown capability" in cap.error["evalue"]
    helped = kernel.execute("%container --help")
    assert helped.ok and "--name NAME" in helped.stdout and "--no-raise-error" in helped.stdout
    for cell in ("%%container --help", "%%container --help\n", "%%container -h\n\n"):  # as the README writes it
        cell_help = kernel.execute(cell)
        assert cell_help.ok, cell_help.error
        assert cell_help.stdout == helped.stdout
    assert state_entries(kernel.magic_root) == []


def test_named_container_refuses_changed_creation_options(kernel, clean_after):
    assert kernel.execute("%%container --name fixed --memory 32m\ntrue\n").ok
    changed = kernel.execute("%%container --name fixed --memory 64m\ntrue\n")
    assert not changed.ok and "%container_rm fixed" in changed.stderr + str(changed.error)
    same = kernel.execute("%%container --name fixed --memory 32m --env A=1\necho $A\n")
    assert same.ok and same.stdout == "1\n"


def test_bundle_option_uses_the_bundles_config_and_rootfs(kernel, clean_after, tmp_path):
    from pyoci_nb import rootfs
    from pyoci_nb.spec.defaults import default_config

    bundle = tmp_path / "mybundle"
    bundle.mkdir()
    rootfs.busybox(bundle / "rootfs")
    (bundle / "rootfs" / "marker").write_text("from my bundle\n")
    config = default_config()
    config["hostname"] = "frombundle"
    (bundle / "config.json").write_text(json.dumps(config))
    run = kernel.execute(f"%%container --bundle {bundle}\ncat /marker\nhostname\n")
    assert run.ok, (run.error, run.stderr)
    assert run.stdout == "from my bundle\nfrombundle\n"
    assert (bundle / "rootfs" / "marker").exists(), "the user's bundle is left as it was"
    in_place = kernel.execute(f"%%container --rootfs {bundle / 'rootfs'}\ncat /marker\necho new > /tmp/written\n")
    assert in_place.ok and in_place.stdout == "from my bundle\n"
    assert (bundle / "rootfs" / "tmp" / "written").read_text() == "new\n", "--rootfs DIR is used in place"


def _start_named(kernel: Kernel) -> tuple[Path, str]:
    run = kernel.execute("%%container --name survivor\nsleep 300 >/dev/null 2>&1 &\nreadlink /proc/self/ns/pid\n")
    assert run.ok, (run.error, run.stderr)
    [session] = sessions(kernel.magic_root)
    return session, run.stdout.strip()


def test_kernel_shutdown_removes_named_containers(magic_root, tmp_path):
    kernel = Kernel(magic_root, tmp_path)
    try:
        _session, pid_ns = _start_named(kernel)
        assert processes_in_pid_namespace(pid_ns)
    finally:
        kernel.shutdown(now=False)
    assert gone(pid_ns)
    assert sessions(magic_root) == [], "the kernel removed its session directory on exit"
    assert mounts_under(magic_root) == []


def test_killed_kernel_is_cleaned_up_by_its_engine(magic_root, tmp_path):
    kernel = Kernel(magic_root, tmp_path)
    try:
        session, pid_ns = _start_named(kernel)
        kernel_pid = kernel.pid
    finally:
        kernel.shutdown(now=True)  # SIGKILL: no atexit in the kernel
    assert not Path(f"/proc/{kernel_pid}").exists() or \
        Path(f"/proc/{kernel_pid}/stat").read_text().split()[2] == "Z"
    assert wait_for(lambda: not session.exists(), timeout=60), "the engine removed the session"
    assert gone(pid_ns)
    assert mounts_under(magic_root) == []


def test_host_without_container_support_is_explained(magic_root, tmp_path):
    from test_probe import seccomp_denying_code

    kernel = Kernel(magic_root, tmp_path, load=False)
    try:
        # a real seccomp filter on every thread of the kernel: unshare/mount/pivot_root -> EPERM;
        # inherited by everything the kernel starts from then on (its engine, the probe)
        filtered = kernel.execute(seccomp_denying_code(("unshare", "mount", "pivot_root"), thread_sync=True))
        assert filtered.ok, filtered.error
        kernel.load()
        refused = kernel.execute("%%container\necho never\n")
        assert not refused.ok
        assert refused.error["ename"] == "ContainerError"
        assert "containers cannot be created on this host" in refused.error["evalue"]
        assert "seccomp" in refused.error["evalue"] and "never" not in refused.stdout
        explained = kernel.execute("%%container --if-unavailable explain --hostname shown\necho never\n")
        assert explained.ok, explained.error
        assert "would have run" in explained.stdout and " run --bundle " in explained.stdout
        shown = " ".join(d.get("text/plain", "") + d.get("text/html", "") for d in explained.data)
        assert "shown" in shown, "the config.json that would have been used is displayed"
        assert "seccomp" in shown, "the probe table is displayed"
        assert state_entries(magic_root) == []
    finally:
        kernel.shutdown(now=False)
    assert sessions(magic_root) == []


def test_missing_busybox_says_how_to_get_it(magic_root, tmp_path):
    # a real host without busybox-static: the binary hidden (mount namespace of this child only)
    script = tmp_path / "cell.py"
    script.write_text(
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "shell = InteractiveShell.instance()\n"
        "shell.run_line_magic('load_ext', 'pyoci_nb')\n"
        "try:\n"
        "    shell.run_cell_magic('container', '', 'echo never')\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
        "shell.run_line_magic('unload_ext', 'pyoci_nb')\n")
    hide = " && ".join(f"mount --bind /dev/null {path}" for path in ("/usr/bin/busybox",)
                       if os.path.exists(path))
    completed = subprocess.run(
        ["unshare", "--mount", "sh", "-c", f'{hide} && exec "$@"', "sh", sys.executable, str(script)],
        capture_output=True, text=True, timeout=120, check=False,
        env=dict(os.environ, PYOCI_MAGIC_ROOT=str(magic_root), PYTHONPATH=str(REPO)))
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("RootfsError"), completed.stdout
    assert "busybox not found" in completed.stdout
    assert "apt-get install busybox-static" in completed.stdout
    assert "--rootfs busybox|host|DIR" in completed.stdout
    assert state_entries(magic_root) == [] and bundle_entries(magic_root) == []
    assert sessions(magic_root) == [], "%unload_ext removed the session"
