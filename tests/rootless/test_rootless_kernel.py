"""A rootless container from a real Jupyter kernel run by the unprivileged user.

The kernel is Debian's python3-ipykernel under /usr/bin/python3 (scripts/setup.sh installs it),
started as the user through a kernelspec whose argv ends in ``runuser -u USER -- env -i ... python3
-m ipykernel_launcher``; this test drives it with jupyter_client like a notebook front end does.
A kernel is multi-threaded, so ``run`` goes through the kernel's engine."""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest

KERNEL_PYTHON = "/usr/bin/python3"


@pytest.fixture
def user_kernel(session, tmp_path_factory):
    """A started kernel running as the user, and its client; shut down afterwards."""
    jupyter_client = pytest.importorskip("jupyter_client")
    from jupyter_client.kernelspec import KernelSpecManager

    has_ipykernel = subprocess.run([KERNEL_PYTHON, "-c", "import ipykernel"], capture_output=True)
    if has_ipykernel.returncode != 0:
        pytest.fail(f"{KERNEL_PYTHON} has no ipykernel: apt-get install python3-ipykernel (scripts/setup.sh)")
    spec_root = tmp_path_factory.mktemp("kernelspecs")
    spec_dir = spec_root / "pyoci-rootless"
    spec_dir.mkdir()
    env = session.env()
    user_copy = session.home / "kernel-connection.json"
    # the front end (root) writes the connection file 0600; hand the user a copy it owns
    as_user = ["runuser", "-u", session.user.name, "--", "env", "-i", *[f"{k}={v}" for k, v in env.items()],
               KERNEL_PYTHON, "-m", "ipykernel_launcher", "-f", str(user_copy)]
    script = (f"install -o {session.user.uid} -g {session.user.gid} -m 600 \"$0\" {shlex.quote(str(user_copy))}"
              f" && exec {shlex.join(as_user)}")
    (spec_dir / "kernel.json").write_text(json.dumps({"argv": ["/bin/sh", "-c", script, "{connection_file}"],
                                                      "display_name": "rootless", "language": "python"}))
    manager = jupyter_client.KernelManager(kernel_name="pyoci-rootless",
                                           kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec_root)]))
    manager.start_kernel(cwd=str(session.home))
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        yield client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=False)
        manager.cleanup_resources()


def execute(client, code: str) -> str:
    """Run ``code`` in the kernel; its stdout, or the traceback as an assertion failure."""
    out, errors = [], []

    def hook(message):
        kind, content = message["msg_type"], message["content"]
        if kind == "stream" and content["name"] == "stdout":
            out.append(content["text"])
        elif kind == "error":
            errors.append("\n".join(content["traceback"]))

    reply = client.execute_interactive(code, timeout=120, output_hook=hook)
    assert reply["content"]["status"] == "ok" and not errors, "\n".join(errors)
    return "".join(out)


def test_kernel_of_the_user_runs_a_rootless_container(session, user_kernel):
    made = session.as_user(*session.runtime_argv("pyoci"), "spec", "--rootless")
    assert made.returncode == 0, made.stderr
    code = (
        "import os, threading\n"
        "from pyoci_nb.runtime.container import run\n"
        f"result = run({str(session.bundle)!r}, ['sh', '-c', 'id -u; cat /proc/self/uid_map'],"
        " capture_output=True, timeout=60)\n"
        "print(os.geteuid(), threading.active_count() > 1, result.returncode, result.stdout.decode().split())\n"
    )
    output = execute(user_kernel, code)
    expected_map = ["0", "0", str(session.user.uid), "1"]
    assert output.strip() == f"{session.user.uid} True 0 {expected_map!r}", output
