"""No Python import after init has entered the container's root (or an exec has joined its
mount namespace): from then on the host's library paths name the *container's* files, so an
import would run code the image planted there, as the runtime (root).

The attack: an image ships a module at the very path where the host's Python keeps one the
runtime has not imported yet.  ``init.close_imports`` (called right after pivot_root / the
join) makes such an import fail instead of running the planted file; everything init needs
later is imported before (``init.preload_modules``).  The lifecycle tests below run containers
through the paths that used to import lazily (terminal, seccomp, hooks, error reports, exec)
and check that none of them trips over the closed import system."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from oci_harness import ConsoleSocket

pytestmark = [pytest.mark.root, pytest.mark.pyoci_only]

REPO = Path(__file__).resolve().parents[2]
CLOSED = ("after pivot_root", "after joining the container's mount namespace", "No module named")


def _planted_module(rootfs: Path, marker: str) -> str:
    """Plant, in ``rootfs``, a module at the host path of a stdlib module pyoci never imports
    (``colorsys``); it writes ``marker`` when run.  Returns the module's name."""
    import colorsys

    host_path = Path(colorsys.__file__)
    planted = rootfs / host_path.relative_to("/")
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.write_text(f"open({marker!r}, 'w').write('the image ran code as the runtime')\n")
    return "colorsys"


def test_an_import_after_entering_the_root_fails_instead_of_running_the_images_module(busybox_rootfs, tmp_path):
    rootfs = tmp_path / "rootfs"
    subprocess.run(["cp", "-a", str(busybox_rootfs), str(rootfs)], check=True)
    marker = "/planted-marker"
    name = _planted_module(rootfs, marker)
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(REPO)!r})
        from pyoci_nb.runtime import init
        if sys.argv[1] == "closed":
            init.close_imports("pivot_root")
        os.chroot({str(rootfs)!r}); os.chdir("/")
        try:
            import {name}
            print("imported")
        except ImportError as exc:
            print("refused:", exc)
        """)
    closed = subprocess.run([sys.executable, "-S", "-c", script, "closed"], capture_output=True, text=True,
                            timeout=60)
    assert closed.returncode == 0, closed.stderr
    assert closed.stdout.startswith("refused:") and "after pivot_root" in closed.stdout, closed.stdout
    assert not (rootfs / marker.lstrip("/")).exists(), "the planted module ran"
    # the same without close_imports: the image's module runs (what the defence prevents)
    opened = subprocess.run([sys.executable, "-S", "-c", script, "open"], capture_output=True, text=True,
                            timeout=60)
    assert opened.stdout.strip() == "imported", opened.stdout + opened.stderr
    assert (rootfs / marker.lstrip("/")).exists()


def _no_closed_import(*texts: str) -> None:
    for text in texts:
        for words in CLOSED:
            assert words not in text, text


def test_containers_through_every_late_step_import_nothing(box, tmp_path):
    """seccomp (the default profile), capabilities, rlimits, hostname, masked and read-only
    paths, createContainer and startContainer hooks, and the error reports of steps after
    pivot_root (a missing program, a cwd that is a file) all run with imports closed."""
    marker = "/planted-marker"
    _planted_module(box.rootfs, marker)
    from pyoci_nb.runtime.seccomp import default_profile

    box.config["linux"]["seccomp"] = default_profile()
    box.config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 256}]
    box.config["hostname"] = "closed-imports"
    box.add_hook("createContainer", {"path": "/bin/true"})
    box.add_hook("startContainer", {"path": "/bin/true"})
    ok = box.run("sh", "-c", "hostname; ulimit -n")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.split() == ["closed-imports", "256"]
    _no_closed_import(ok.stderr)
    missing = box.run("/no/such/program")
    assert missing.returncode != 0 and "no such file" in missing.stderr.lower(), missing.stderr
    _no_closed_import(missing.stderr)
    box.config["process"]["cwd"] = "/etc/passwd"
    box.save()
    not_a_dir = box.run("true")
    assert not_a_dir.returncode != 0 and "not a directory" in not_a_dir.stderr.lower(), not_a_dir.stderr
    _no_closed_import(not_a_dir.stderr)
    assert not (box.rootfs / marker.lstrip("/")).exists()


def test_terminal_and_exec_paths_import_nothing(box, tmp_path):
    marker = "/planted-marker"
    _planted_module(box.rootfs, marker)
    with ConsoleSocket(tmp_path / "console.sock") as console:
        box.args("sh", "-c", "tty; echo on-a-terminal; sleep 30")
        box.config["process"]["terminal"] = True
        box.save()
        created = box.runtime("create", "--bundle", box.bundle, "--console-socket", console.path, box.id)
        assert created.returncode == 0, created.stderr
        master = console.receive_master()
        box.start()
        assert "on-a-terminal" in console.read_until(master, "on-a-terminal")
    executed = box.exec("sh", "-c", "echo from-exec")
    assert executed.returncode == 0 and executed.stdout == "from-exec\n", executed.stderr
    failed = box.exec("/no/such/program")
    assert failed.returncode != 0 and "no such file" in failed.stderr.lower(), failed.stderr
    _no_closed_import(executed.stderr, failed.stderr)
    assert not (box.rootfs / marker.lstrip("/")).exists()


def test_exec_through_the_engine_imports_nothing(busybox_bundle, state_root, container_id):
    """The Python API's exec (the engine's resident helper joins the mount namespace once and
    forks every exec from there) with imports closed."""
    import pyoci_nb

    rootfs = busybox_bundle / "rootfs"
    marker = "/planted-marker"
    _planted_module(rootfs, marker)
    config_path = busybox_bundle / "config.json"
    import json

    config = json.loads(config_path.read_text())
    config["process"]["args"] = ["sleep", "60"]
    config_path.write_text(json.dumps(config))
    container = pyoci_nb.Container.create(busybox_bundle, id=container_id, root=state_root, start=True)
    try:
        r, w = os.pipe()
        assert container.exec(["echo", "warm"], stdout=w) == 0
        assert container.exec(["sh", "-c", "echo again"], stdout=w) == 0
        os.close(w)
        assert os.read(r, 100) == b"warm\nagain\n"
        os.close(r)
        with pytest.raises(pyoci_nb.PyociError) as failed:
            container.exec(["/no/such/program"])
        _no_closed_import(str(failed.value))
    finally:
        container.delete(force=True)
    assert not (rootfs / marker.lstrip("/")).exists()
