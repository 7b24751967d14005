"""The magic's watchdog: removes a kernel's containers when the kernel dies without cleaning up.

``%%container`` keeps each kernel's containers under a private session directory (state root +
bundles).  A kernel that shuts down normally deletes them itself (``atexit``).  A kernel that is
killed (``SIGKILL`` from the notebook server after a failed shutdown, an OOM kill, a crash) cannot,
so the magic starts this small single-threaded process once per kernel, in its own session (a
kernel interrupt does not reach it), with a pipe on its stdin.  When the pipe closes without the
kernel having written ``done``, the watchdog force-deletes every container in the state root
through the runtime's CLI (``delete --force``, which kills the processes and releases mounts and
cgroups) and removes the session directory.

Run as a script (``python kernel_helper.py SESSION_DIR STATE_ROOT -- RUNTIME...``) so that it
imports only the standard library.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

#: What the kernel writes on the pipe after it removed everything itself.
DONE = b"done\n"


def force_delete_all(runtime: list[str], state_root: str, env: dict | None = None) -> list[str]:
    """``RUNTIME --root STATE_ROOT delete --force ID`` for every container in the state root;
    returns the ids whose deletion failed (their state directory is still there)."""
    failed = []
    try:
        ids = sorted(entry for entry in os.listdir(state_root)
                     if os.path.isdir(os.path.join(state_root, entry)))
    except FileNotFoundError:
        return failed
    for container_id in ids:
        try:
            subprocess.run([*runtime, "--root", state_root, "delete", "--force", container_id],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=60, env=env, check=False,
                           start_new_session=True)
        except subprocess.TimeoutExpired:
            pass
        if os.path.isdir(os.path.join(state_root, container_id)):
            failed.append(container_id)
    return failed


def main(argv: list[str]) -> int:
    """Wait for the kernel's pipe to close; clean up unless it said ``done``."""
    if len(argv) < 4 or argv[2] != "--":
        sys.stderr.write("usage: kernel_helper.py SESSION_DIR STATE_ROOT -- RUNTIME...\n")
        return 2
    session_dir, state_root, runtime = argv[0], argv[1], argv[3:]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    received = b""
    while True:
        try:
            chunk = os.read(0, 4096)
        except InterruptedError:
            continue
        if not chunk:
            break
        received += chunk
    if received.endswith(DONE):
        return 0
    force_delete_all(runtime, state_root)
    shutil.rmtree(session_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
