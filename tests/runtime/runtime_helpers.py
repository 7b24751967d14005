"""Helpers of the pyoci-specific runtime tests: the CLI (``pyoci``), config edits, and
``leftovers()`` -- what a container may have left on the host, for the "nothing is left behind"
checks.  (A module of its own, not conftest.py: test directories each have a conftest.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent


def pyoci(*args, root, check=False, timeout=60, **kw) -> subprocess.CompletedProcess:
    """Run this checkout's ``pyoci`` CLI (``python -m pyoci_nb``) with ``--root``.

    stdout/stderr go to temporary files, not pipes: after ``create`` the container's init
    keeps the runtime's stdio, so a pipe would not see EOF until the container exits."""
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.run([sys.executable, "-m", "pyoci_nb", "--root", str(root), *map(str, args)],
                              stdout=out, stderr=err, timeout=timeout, cwd=REPO, **kw)
        out.seek(0)
        err.seek(0)
        result = subprocess.CompletedProcess(proc.args, proc.returncode, out.read().decode(),
                                             err.read().decode())
    if check:
        result.check_returncode()
    return result


def modules_loaded_by(code: str, names: tuple[str, ...]) -> list[str]:
    """Which of the modules ``names`` a fresh interpreter has loaded after running ``code``
    (this checkout on the path; without the coverage .pth hook, which would load json)."""
    probe = code + f"\nimport sys\nprint(sorted(m for m in {names!r} if m in sys.modules))\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO,
                         env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1].replace("'", '"'))


def edit_config(bundle: Path, **changes) -> dict:
    """Apply top-level/dotted changes to <bundle>/config.json: ``edit_config(b, **{"process.args": [...]})``."""
    config = json.loads((bundle / "config.json").read_text())
    for dotted, value in changes.items():
        target = config
        *parents, last = dotted.split(".")
        for key in parents:
            target = target.setdefault(key, {})
        target[last] = value
    (bundle / "config.json").write_text(json.dumps(config))
    return config


def leftovers(container_id: str, bundle: Path, state_root: Path) -> list[str]:
    """What a container may leave behind: its state dir, mounts under the bundle, processes
    whose root or cwd is in the bundle, cgroups named after it."""
    found = []
    if (state_root / container_id).exists():
        found.append(f"state dir {state_root / container_id}")
    bundle_real = os.path.realpath(bundle)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point = line.split()[4]
        if mount_point == bundle_real or mount_point.startswith(bundle_real + "/"):
            found.append(f"mount {mount_point}")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        for link in ("root", "cwd"):
            try:
                target = os.readlink(f"/proc/{pid}/{link}")
            except OSError:
                continue
            if target.startswith(bundle_real):
                try:
                    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                except OSError:
                    continue
                if state != "Z":
                    found.append(f"process {pid} ({link} {target})")
    for controller in Path("/sys/fs/cgroup").iterdir():
        for depth in ("*", "*/*", "*/*/*"):
            for path in controller.glob(depth):
                if path.name == container_id and path.is_dir():
                    found.append(f"cgroup {path}")
    return found
