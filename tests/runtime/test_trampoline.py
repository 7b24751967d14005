"""The exec trampoline (pyoci_nb/runtime/trampoline.py) for every machine it has code for.

Its bytes must be what its assembly says (re-assembled with binutils: `as` for the host,
Debian's binutils-aarch64-linux-gnu for aarch64), and the ELF built around them must do its
job when the kernel runs it (natively, or under qemu-user for the other machine): exec the
program with the given argv and environment, mark the report fd close-on-exec, report a failed
execve as ``X`` + errno, and refuse to run when started any other way.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

import pytest

from pyoci_nb.runtime import trampoline

_TOOLS = {  # machine -> (as, objcopy, how to run its ELF here)
    "x86_64": ("x86_64-linux-gnu-as", "x86_64-linux-gnu-objcopy", "qemu-x86_64"),
    "aarch64": ("aarch64-linux-gnu-as", "aarch64-linux-gnu-objcopy", "qemu-aarch64"),
}


def _native(machine: str) -> bool:
    return platform.machine() == machine


def _tool(name: str, machine: str) -> str | None:
    found = shutil.which(name)
    if found is None and _native(machine):
        found = shutil.which(name.split("-linux-gnu-")[-1])  # the host's own `as`/`objcopy`
    return found


@pytest.mark.parametrize("machine", sorted(trampoline.CODE))
def test_code_is_its_assembly(machine, tmp_path):
    assembler, objcopy = _tool(_TOOLS[machine][0], machine), _tool(_TOOLS[machine][1], machine)
    if not (assembler and objcopy):
        pytest.skip(f"no binutils for {machine} (Debian: binutils-{machine.replace('_', '-')}-linux-gnu)")
    (tmp_path / "t.s").write_text(".globl _start\n" + trampoline.SOURCE[machine])
    subprocess.run([assembler, "-o", tmp_path / "t.o", tmp_path / "t.s"], check=True)
    subprocess.run([objcopy, "-O", "binary", "-j", ".text", tmp_path / "t.o", tmp_path / "t.bin"],
                   check=True)
    assert (tmp_path / "t.bin").read_bytes() == trampoline.CODE[machine]


@pytest.fixture(params=sorted(trampoline.CODE))
def run_trampoline(request, tmp_path):
    """run(argv, report_fd) -> (exit status, stdout, what reached the report fd)."""
    machine = request.param
    elf = tmp_path / f"trampoline-{machine}"
    elf.write_bytes(trampoline.elf(machine))
    elf.chmod(0o755)
    prefix: list[str] = []
    if not _native(machine):
        emulator = shutil.which(_TOOLS[machine][2])
        if emulator is None:
            pytest.skip(f"cannot run {machine} code here (Debian: qemu-user)")
        prefix = [emulator, "-0"]  # qemu's way to set argv[0]

    def run(argv: list[str], env: dict | None = None):
        read_end, write_end = os.pipe()
        try:
            argv = [a.replace("REPORT", str(write_end)) for a in argv]
            if prefix:
                command, executable = prefix + [argv[0], str(elf)] + argv[1:], None
            else:
                command, executable = argv, str(elf)
            child = subprocess.run(command, executable=executable, capture_output=True, text=True,
                                   env=env or {}, pass_fds=(write_end,), timeout=60)
            os.close(write_end)
            write_end = -1
            report = os.read(read_end, 64)
        finally:
            os.close(read_end)
            if write_end >= 0:
                os.close(write_end)
        return child.returncode, child.stdout, report

    return run


def test_execs_the_program_with_its_argv_and_env(run_trampoline):
    status, out, report = run_trampoline(["REPORT", "/bin/sh", "my-argv0", "-c",
                                          'echo "$0 $1 $WHO"; tr "\\0" " " </proc/$$/cmdline', "zero", "one"],
                                         env={"WHO": "container", "PATH": "/bin:/usr/bin"})
    lines = out.splitlines()
    assert status == 0
    assert lines[0] == "zero one container"
    assert lines[1].startswith("my-argv0 -c ")
    assert report == b"", "the report fd must close on the program's execve, unwritten"


def test_report_fd_does_not_reach_the_program(run_trampoline):
    status, out, _ = run_trampoline(["REPORT", "/bin/sh", "sh", "-c", "ls /proc/self/fd"])
    assert status == 0
    assert sorted(int(fd) for fd in out.split()) == [0, 1, 2, 3]  # 3: ls's own listing


@pytest.mark.parametrize("what, errno", [("missing", 2), ("not-executable", 13), ("directory", 13),
                                         ("not-a-program", 8)])
def test_failed_execve_is_reported(run_trampoline, tmp_path, what, errno):
    path = tmp_path / what
    if what == "not-executable":
        path.write_text("#!/bin/sh\n")
        path.chmod(0o644)
    elif what == "directory":
        path.mkdir()
    elif what == "not-a-program":
        path.write_bytes(b"\x7fELF garbage")
        path.chmod(0o755)
    status, _, report = run_trampoline(["REPORT", str(path), "argv0"])
    assert status == 127
    assert report == b"X" + bytes([errno])
    assert trampoline.failure(report) == errno


def test_refuses_to_run_when_not_started_by_the_runtime(run_trampoline):
    """``#!/proc/self/exe`` in an image makes argv[0] a path: exit 126, exec nothing."""
    status, out, report = run_trampoline(["/proc/self/exe", "/bin/echo", "echo", "ran"])
    assert (status, out, report) == (126, "", b"")


def test_memfd_is_sealed_and_execute_only():
    fd = trampoline.prepare()
    if fd is None:
        pytest.skip("no trampoline for this machine")
    import fcntl
    import stat

    seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
    wanted = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
    assert seals & wanted == wanted
    assert stat.S_IMODE(os.fstat(fd).st_mode) == 0o111
    with pytest.raises(PermissionError):
        os.pwrite(fd, b"x", 0)
    writable = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY)
    try:
        with pytest.raises(PermissionError):
            os.write(writable, b"PWNED")
    finally:
        os.close(writable)
    assert Path(f"/proc/self/fd/{fd}").read_bytes() == trampoline.elf(platform.machine())


@pytest.mark.root
@pytest.mark.parametrize("how", ["run", "exec"])
def test_a_program_the_kernel_refuses_is_reported_by_the_runtime(how, busybox_bundle, state_root,
                                                                 container_id):
    """A failure of the very last execve (the trampoline's) reaches the user as an error naming
    the program and the kernel's reason, for ``run`` (through the exec FIFO) and ``exec``
    (through the channel)."""
    import json
    import sys

    bad = busybox_bundle / "rootfs" / "bad"
    bad.write_bytes(b"\x7fELF not really")
    bad.chmod(0o755)
    pyoci = [sys.executable, "-m", "pyoci_nb", "--root", str(state_root)]
    config = json.loads((busybox_bundle / "config.json").read_text())
    config["process"]["args"] = ["/bad"] if how == "run" else ["sleep", "100"]
    (busybox_bundle / "config.json").write_text(json.dumps(config))
    try:
        if how == "run":
            done = subprocess.run(pyoci + ["run", "--bundle", str(busybox_bundle), container_id],
                                  capture_output=True, text=True, timeout=60)
        else:
            subprocess.run(pyoci + ["run", "-d", "--bundle", str(busybox_bundle), container_id],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
            done = subprocess.run(pyoci + ["exec", container_id, "/bad"], capture_output=True,
                                  text=True, timeout=60)
    finally:
        subprocess.run(pyoci + ["delete", "--force", container_id], capture_output=True, timeout=60)
    assert done.returncode != 0
    assert 'exec: \\"/bad\\": Exec format error (errno 8)' in done.stderr, done.stderr  # runc's log format
    assert "Traceback" not in done.stderr
