"""Small helpers shared by the tutorial notebooks (imported from the notebooks' directory).

* ``Workspace(name)`` -- a private temporary directory per notebook with its own state root
  (the runtime's ``--root``) and the ``%%container`` magic's session directory, so nothing
  lands in ``/run/pyoci`` and a failed notebook leaves nothing behind once ``cleanup()`` ran.
* ``ws.pyoci(*args)`` -- run the ``pyoci`` command line (runc's commands and flags) against that
  state root and show what it printed, with the workspace path shortened to ``$WS``.
* ``ws.bundle(name, ...)`` -- a busybox bundle (``pyoci_nb.Bundle.create``) inside the workspace.
* ``ws.registry()`` -- a real registry (Debian's ``docker-registry``) on a loopback port, its
  storage in the workspace; stopped by ``cleanup()``.
* ``ws.cleanup()`` -- ``delete --force`` every container left in the state root, then remove the
  workspace.  Every notebook calls it in its last cell.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path


class Ran(subprocess.CompletedProcess):
    """What ``Workspace.pyoci`` returns: a ``CompletedProcess`` that the notebook does not echo
    (``pyoci`` already printed its output)."""

    def _ipython_display_(self) -> None:
        pass


class Workspace:
    """A notebook's private directory: ``state/`` (``--root``), ``magic/`` (``%%container``), bundles."""

    def __init__(self, name: str):
        self.name = name
        self.dir = Path(tempfile.mkdtemp(prefix=f"pyoci-{name}-"))
        # mkdtemp makes it 0700; container users mapped to other host uids (user namespaces)
        # must be able to reach the bundles inside
        self.dir.chmod(0o711)
        self.state = self.dir / "state"
        self.state.mkdir()
        #: the state root as a string, for ``root=`` of the Python API
        self.root = str(self.state)
        # the %%container magic reads this when it makes its session directory
        os.environ["PYOCI_MAGIC_ROOT"] = str(self.dir / "magic")

    def __repr__(self) -> str:
        return f"Workspace({self.name!r}, dir=$WS, state root=$WS/state)"

    def short(self, text: str) -> str:
        """``text`` with the workspace path written ``$WS`` (outputs stay the same run to run)."""
        return text.replace(str(self.dir), "$WS")

    def command(self, *args: str) -> list[str]:
        """``pyoci --root <state> ARGS`` as an argument list (``python -m pyoci_nb`` is ``pyoci``)."""
        return [sys.executable, "-m", "pyoci_nb", "--root", str(self.state), *map(str, args)]

    def pyoci(self, *args, check: bool = True, show: bool = True, timeout: float = 60,
              container_output: str | os.PathLike | None = None) -> Ran:
        """Run one ``pyoci`` command to completion and print it, its output and its exit status.

        ``container_output``: a file for the command's stdout and stderr, which a container made
        by ``create`` or ``run --detach`` inherits (a pipe would stay open as long as it runs).
        """
        args = [str(a) for a in args]
        if container_output is not None:
            with open(container_output, "ab") as out:
                completed = subprocess.run(self.command(*args), stdout=out, stderr=out, timeout=timeout,
                                           stdin=subprocess.DEVNULL)
            completed.stdout = completed.stderr = ""
        else:
            completed = subprocess.run(self.command(*args), capture_output=True, text=True,
                                       timeout=timeout, stdin=subprocess.DEVNULL)
        if show:
            print("$ pyoci " + self.short(shlex.join(args)))
            if completed.stdout:
                print(self.short(completed.stdout), end="" if completed.stdout.endswith("\n") else "\n")
            if completed.stderr:
                print(self.short(completed.stderr), end="" if completed.stderr.endswith("\n") else "\n")
            if completed.returncode:
                print(f"(exit status {completed.returncode})")
        completed = Ran(completed.args, completed.returncode, completed.stdout, completed.stderr)
        if check and completed.returncode:
            raise RuntimeError(f"pyoci {args[0]} failed with status {completed.returncode}: "
                               f"{self.short(completed.stderr.strip())}")
        return completed

    def state_of(self, container_id: str) -> dict:
        """``pyoci state ID`` parsed."""
        return json.loads(self.pyoci("state", container_id, show=False).stdout)

    def bundle(self, name: str, spec=None, rootfs="busybox", args=None, hostname=None):
        """A new bundle ``$WS/<name>`` (config.json from ``spec`` or ``default_spec()``, busybox
        rootfs), with a non-terminal process; ``args``/``hostname`` replace the defaults."""
        from pyoci_nb import Bundle

        bundle = Bundle.create(self.dir / name, spec=spec, rootfs=rootfs)
        bundle.spec.process.terminal = False
        if args is not None:
            bundle.spec.process.args = list(args)
        if hostname is not None:
            bundle.spec.hostname = hostname
        bundle.save()
        return bundle

    def registry(self) -> str:
        """Start ``docker-registry`` on 127.0.0.1 (a free port, storage in ``$WS/registry``) and
        return its ``HOST:PORT``; ``cleanup()`` stops it."""
        import socket
        import time

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        config = self.dir / "registry.yml"
        config.write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
                          f"    rootdirectory: {self.dir / 'registry'}\nhttp:\n  addr: 127.0.0.1:{port}\n")
        self._registry = subprocess.Popen(["docker-registry", "serve", str(config)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(400):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return f"127.0.0.1:{port}"
            time.sleep(0.05)
        raise RuntimeError("docker-registry did not start")

    def cleanup(self) -> None:
        """Force-delete every container in the state root, stop the registry, remove the workspace."""
        from pyoci_nb.rootfs.tree import remove_tree

        registry = getattr(self, "_registry", None)
        if registry is not None:
            registry.terminate()
            registry.wait(10)

        left = []
        if self.state.exists():
            for entry in sorted(self.state.iterdir()):
                if entry.is_dir():
                    left.append(entry.name)
                    subprocess.run(self.command("delete", "--force", entry.name), capture_output=True,
                                   timeout=60)
        remove_tree(self.dir)
        os.environ.pop("PYOCI_MAGIC_ROOT", None)
        print(f"workspace removed; containers still present at the end: {left or 'none'}")


def host_ns(kind: str, pid: int | str = "self") -> str:
    """``/proc/<pid>/ns/<kind>`` as the kernel shows it, e.g. ``pid:[4026531836]``."""
    return os.readlink(f"/proc/{pid}/ns/{kind}")
