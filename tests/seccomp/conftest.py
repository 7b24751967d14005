"""Fixtures of the seccomp tests; the fork helpers are in seccomp_helpers.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from pyoci_nb.runtime import seccomp


@pytest.fixture(autouse=True)
def _needs_libseccomp():
    if not seccomp.available():
        pytest.fail("libseccomp2 is not installed (scripts/setup.sh installs it)")


_ROOT_CONFTEST = Path(__file__).resolve().parent.parent / "conftest.py"


@pytest.fixture
def runtime_command(request) -> list[str]:
    """The runtime under test as tests/conftest.py's ``pyoci_command()`` names it
    ($PYOCI_TEST_RUNTIME, e.g. /usr/sbin/runc, or this checkout's pyoci)."""
    for plugin in request.config.pluginmanager.get_plugins():
        if getattr(plugin, "__file__", None) and Path(plugin.__file__).resolve() == _ROOT_CONFTEST:
            return plugin.pyoci_command()
    raise RuntimeError(f"{_ROOT_CONFTEST} is not loaded")


@pytest.fixture
def run_container(runtime_command, busybox_bundle, state_root, container_id):
    """``run_container(args, seccomp=None, **process)`` runs the busybox bundle in the
    foreground (``<runtime> --root STATE run --bundle B ID``) with ``process.args = args`` and
    ``linux.seccomp = seccomp``; returns the CompletedProcess (stdout/stderr as text).  The
    state root is force-cleaned after the test by the ``state_root`` fixture."""
    config_path = busybox_bundle / "config.json"

    def run(args, seccomp=None, timeout=30, **process):
        config = json.loads(config_path.read_text())
        config["root"]["readonly"] = False     # the tests create directories
        config["process"]["args"] = list(args)
        config["process"].update(process)
        if seccomp is None:
            config["linux"].pop("seccomp", None)
        else:
            config["linux"]["seccomp"] = seccomp
        config_path.write_text(json.dumps(config, indent=2))
        argv = runtime_command + ["--root", str(state_root), "run", "--bundle", str(busybox_bundle), container_id]
        # output through files: a pipe held open by a stray container process would never end
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_processes_mentioning(str(state_root))
                out.seek(0)
                err.seek(0)
                pytest.fail(f"{' '.join(argv)} did not finish within {timeout}s\nstdout: {out.read()!r}\n"
                            f"stderr: {err.read()!r}")
            out.seek(0)
            err.seek(0)
            proc.stdout = out.read().decode(errors="replace")
            proc.stderr = err.read().decode(errors="replace")
        return proc

    return run


def _kill_processes_mentioning(text: str) -> None:
    """SIGKILL the processes whose command line contains ``text`` (this test's private state
    root): a hung runtime's container init is a fork of it, so ``delete --force`` may not know
    about it yet."""
    for pid in [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    os.kill(pid, signal.SIGKILL)
        except (FileNotFoundError, ProcessLookupError):
            pass

