"""Only fds 0-2 and ``--preserve-fds`` reach a container (the CVE-2024-21626 family).

The attack: the runtime's caller holds a descriptor of a host directory and of a host file
(``exec 7</ 8>>/tmp/f; pyoci run ...``, or a Python that opened files without O_CLOEXEC).  A
container that inherits them reads the host through ``openat(7, ...)`` and writes through 8.
``fdprobe`` (a static program built here) runs as the container's process, lists every open
fd above 2 and tries exactly that on each.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess

import pytest

FDPROBE = r"""
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(void) {
    for (int fd = 3; fd < 4096; fd++) {
        if (fcntl(fd, F_GETFD) == -1) continue;
        printf("open %d\n", fd);
        int f = openat(fd, "host-secret", O_RDONLY);
        if (f >= 0) {
            char buf[64] = {0};
            if (read(f, buf, sizeof buf - 1) > 0) printf("read through %d: %s\n", fd, buf);
        }
        if (write(fd, "written from the container\n", 27) > 0) printf("wrote through %d\n", fd);
    }
    printf("probe done\n");
    return 0;
}
"""

SECRET = "TOPSECRET-of-the-host"


@pytest.fixture
def host_things(tmp_path):
    """A host directory holding a secret and a host file, as fds 7 and 8 (inheritable), as the
    shell's ``exec 7</dir 8>>file`` makes them.  Closed again afterwards."""
    secret_dir = tmp_path / "host-dir"
    secret_dir.mkdir()
    (secret_dir / "host-secret").write_text(SECRET)
    target = tmp_path / "host-file"
    target.write_text("")
    def high(fd: int) -> int:  # out of the way of the numbers the tests place them at
        moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 300)
        os.close(fd)
        return moved

    fds = {7: high(os.open(secret_dir, os.O_RDONLY | os.O_DIRECTORY)),
           8: high(os.open(target, os.O_WRONLY | os.O_APPEND))}
    try:
        yield fds, target
    finally:
        for fd in fds.values():
            os.close(fd)


@pytest.fixture
def probe_box(box, static_program):
    shutil.copy(static_program(FDPROBE, "fdprobe"), box.rootfs / "fdprobe")
    return box


def _run_with_fds(argv, fds, pass_fds=()):
    """Run a runtime command whose fds 7 and 8 are the host's (plus ``pass_fds`` as given)."""
    def place():
        for number, fd in fds.items():
            os.dup2(fd, number)  # inheritable, at the number the attack expects
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, preexec_fn=place,
                          pass_fds=tuple(pass_fds) + tuple(fds))


def _assert_contained(out: str, target, allowed=()):
    assert "probe done" in out, out
    opened = [int(line.split()[1]) for line in out.splitlines() if line.startswith("open ")]
    assert opened == list(allowed), f"fds that reached the container: {opened}\n{out}"
    assert SECRET not in out
    assert target.read_text() == "", "the container wrote into a host file through an inherited fd"


def test_run_does_not_leak_the_callers_fds(probe_box, runtime, host_things):
    fds, target = host_things
    probe_box.args("/fdprobe")
    probe_box.config["process"]["terminal"] = False
    probe_box.save()
    done = _run_with_fds(runtime.argv("run", "--bundle", probe_box.bundle, probe_box.id), fds)
    assert done.returncode == 0, done.stderr
    _assert_contained(done.stdout, target)


def test_exec_does_not_leak_the_callers_fds(probe_box, runtime, host_things):
    fds, target = host_things
    probe_box.start_sleeper()
    done = _run_with_fds(runtime.argv("exec", probe_box.id, "/fdprobe"), fds)
    assert done.returncode == 0, done.stderr
    _assert_contained(done.stdout, target)


def test_preserve_fds_passes_exactly_the_range(probe_box, runtime, host_things, tmp_path):
    fds, target = host_things
    passed = tmp_path / "passed"
    passed.write_text("")
    probe_box.args("/fdprobe")
    probe_box.config["process"]["terminal"] = False
    probe_box.save()
    keep = os.open(passed, os.O_WRONLY | os.O_APPEND)
    try:
        def place():
            os.dup2(keep, 3)
            for number, fd in fds.items():
                os.dup2(fd, number)
        done = subprocess.run(runtime.argv("run", "--preserve-fds", "1", "--bundle", probe_box.bundle,
                                           probe_box.id),
                              capture_output=True, text=True, timeout=60, preexec_fn=place,
                              pass_fds=(3, *fds))
    finally:
        os.close(keep)
    assert done.returncode == 0, done.stderr
    _assert_contained(done.stdout, target, allowed=[3])
    assert passed.read_text() == "written from the container\n"


@pytest.mark.pyoci_only
def test_preserve_fds_of_a_closed_fd_is_refused(probe_box, runtime):
    probe_box.args("/fdprobe")
    probe_box.config["process"]["terminal"] = False
    probe_box.save()
    done = subprocess.run(runtime.argv("run", "--preserve-fds", "40", "--bundle", probe_box.bundle,
                                       probe_box.id), capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "--preserve-fds" in done.stderr and "is not open" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not (runtime.root / probe_box.id).exists()


@pytest.mark.pyoci_only
def test_python_api_does_not_leak_the_callers_fds(probe_box, host_things, state_root):
    """``pyoci_nb.run()`` from a Python that holds inheritable fds (7 and 8 here)."""
    import pyoci_nb

    fds, target = host_things
    placed = []
    try:
        for fd in fds.values():  # inheritable copies, as a Python that opened files without O_CLOEXEC holds
            placed.append(fcntl.fcntl(fd, fcntl.F_DUPFD, 200))
        result = pyoci_nb.run(probe_box.bundle, ["/fdprobe"], root=state_root, capture_output=True)
    finally:
        for number in placed:
            os.close(number)
    assert result.returncode == 0, result.stderr
    _assert_contained(result.stdout.decode(), target)


@pytest.mark.pyoci_only
def test_a_caller_with_many_fds_and_a_low_nofile_limit(probe_box, state_root):
    """A caller holding many fds (a Jupyter kernel, the engine) and a container whose
    RLIMIT_NOFILE is 10: the runtime's init must not keep the caller's fds (their numbers would
    leave no free fd below the limit for the exec FIFO)."""
    import pyoci_nb

    probe_box.config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 10}]
    probe_box.save()
    held = [os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC) for _ in range(12)]
    try:
        result = pyoci_nb.run(probe_box.bundle, ["/fdprobe"], root=state_root, capture_output=True)
    finally:
        for fd in held:
            os.close(fd)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == ["probe done"]
