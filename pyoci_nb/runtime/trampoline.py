"""The exec trampoline: the container's process is never exec'd by the host's interpreter.

CVE-2019-5736 (runc): while the runtime's process turns into the container's program, the kernel
resolves ``/proc/self/exe`` to the runtime's *own* executable.  A container image whose program
is ``#!/proc/self/exe`` (or an ELF whose interpreter is ``/proc/self/exe``) makes the kernel run
that executable -- here the host's Python interpreter -- inside the container, with the image's
``ld.so`` as its loader; the loader keeps a descriptor of ``/proc/self/exe`` and, once the
runtime has exited, writes through it into the host's interpreter.

pyoci's init and ``exec`` processes are forks of the runtime (Python), so their
``/proc/self/exe`` is the interpreter, and ``PR_SET_MM_EXE_FILE`` needs CAP_SYS_RESOURCE.
Instead, the last execve goes through this trampoline: a 150-byte static program, written here
as machine code (no compiler needed), in a sealed memfd (no write, grow or shrink: nobody can
change it, and it is no file of the host).  The runtime execs it with
``argv = [REPORT_FD, PATH, *process.args]``; it

1. makes itself non-dumpable (``/proc/PID/fd``, ``environ``, ``exe`` closed to the container;
   the memfd is execute-only and the caller drops the capabilities that read any file from its
   effective set first (``process.hide_the_trampoline``), so the kernel already starts it
   non-dumpable: no window),
2. marks ``REPORT_FD`` close-on-exec,
3. ``execve(PATH, process.args, envp)``; if that fails it writes ``b"X" + bytes([errno])`` to
   ``REPORT_FD`` (the exec FIFO of ``start``, or the channel of ``exec``) and exits 127.

While the container's program is exec'd, ``/proc/self/exe`` is the sealed memfd, which has no
loader (static) and refuses writes.  Started any other way (``#!/proc/self/exe`` in an image:
argv[0] is not a number) it exits 126 at once.  ``SOURCE`` holds the assembly the bytes come
from (``tests/security/test_host_executable.py`` re-assembles it with binutils where present).
Standard library only.
"""

from __future__ import annotations

import fcntl
import os
import struct

#: the assembly of ``CODE`` (GNU as syntax), per machine
SOURCE = {
    "x86_64": """_start:
    mov    $157, %eax
    mov    $4, %edi
    xor    %esi, %esi
    syscall
    mov    8(%rsp), %rsi
    xor    %r12d, %r12d
    movzbl (%rsi), %eax
    sub    $48, %eax
    cmp    $9, %eax
    ja     3f
1:  movzbl (%rsi), %eax
    sub    $48, %eax
    cmp    $9, %eax
    ja     2f
    imul   $10, %r12d, %r12d
    add    %eax, %r12d
    inc    %rsi
    jmp    1b
2:  mov    $72, %eax
    mov    %r12d, %edi
    mov    $2, %esi
    mov    $1, %edx
    syscall
    mov    (%rsp), %rcx
    lea    16(%rsp,%rcx,8), %rdx
    mov    16(%rsp), %rdi
    lea    24(%rsp), %rsi
    mov    $59, %eax
    syscall
    neg    %eax
    sub    $16, %rsp
    movb   $88, (%rsp)
    mov    %al, 1(%rsp)
    mov    $1, %eax
    mov    %r12d, %edi
    mov    %rsp, %rsi
    mov    $2, %edx
    syscall
    mov    $231, %eax
    mov    $127, %edi
    syscall
3:  mov    $231, %eax
    mov    $126, %edi
    syscall
""",
    "aarch64": """_start:
    mov x8, #167
    mov x0, #4
    mov x1, #0
    svc #0
    ldr x9, [sp, #8]
    mov w19, #0
    mov w11, #10
    ldrb w10, [x9]
    sub w10, w10, #48
    cmp w10, #9
    b.hi 3f
1:  ldrb w10, [x9], #1
    sub w10, w10, #48
    cmp w10, #9
    b.hi 2f
    madd w19, w19, w11, w10
    b 1b
2:  mov x8, #25
    mov w0, w19
    mov x1, #2
    mov x2, #1
    svc #0
    ldr x10, [sp]
    add x2, sp, x10, lsl #3
    add x2, x2, #16
    ldr x0, [sp, #16]
    add x1, sp, #24
    mov x8, #221
    svc #0
    neg w0, w0
    sub sp, sp, #16
    mov w10, #88
    strb w10, [sp]
    strb w0, [sp, #1]
    mov w0, w19
    mov x1, sp
    mov x2, #2
    mov x8, #64
    svc #0
    mov x0, #127
    mov x8, #94
    svc #0
3:  mov x0, #126
    mov x8, #94
    svc #0
""",
}

#: the machine code assembled from ``SOURCE``
CODE = {
    "x86_64": bytes.fromhex(
        "b89d000000bf0400000031f60f05488b7424084531e40fb60683e83083f80977"
        "710fb60683e83083f809770c456be40a4101c448ffc6ebe9b8480000004489e7"
        "be02000000ba010000000f05488b0c24488d54cc10488b7c2410488d742418b8"
        "3b0000000f05f7d84883ec10c604245888442401b8010000004489e74889e6ba"
        "020000000f05b8e7000000bf7f0000000f05b8e7000000bf7e0000000f05"),
    "aarch64": bytes.fromhex(
        "e81480d2800080d2010080d2010000d4e90740f9130080524b0180522a014039"
        "4ac100515f250071080400542a1540384ac100515f25007168000054732a0b1b"
        "fbffff17280380d2e003132a410080d2220080d2010000d4ea0340f9e26f2a8b"
        "42400091e00b40f9e1630091a81b80d2010000d4e003004bff4300d10a0b8052"
        "ea030039e0070039e003132ae1030091420080d2080880d2010000d4e00f80d2"
        "c80b80d2010000d4c00f80d2c80b80d2010000d4"),
}

_ELF_MACHINE = {"x86_64": 62, "aarch64": 183}
_BASE = 0x400000
_PT_LOAD, _PT_GNU_STACK = 1, 0x6474E551
_MFD_EXEC = 0x10  # Linux 6.3: ask for an executable memfd (vm.memfd_noexec)

_memfd: int | None = None


def elf(machine: str) -> bytes:
    """A minimal static ELF executable (one read+execute PT_LOAD, a non-executable stack)
    running ``CODE[machine]``."""
    code = CODE[machine]
    header_size, phdr_size, phdrs = 64, 56, 2
    entry = _BASE + header_size + phdr_size * phdrs
    size = header_size + phdr_size * phdrs + len(code)
    header = struct.pack("<4sBBBBB7xHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0,
                         2, _ELF_MACHINE[machine], 1, entry, header_size, 0, 0,
                         header_size, phdr_size, phdrs, 0, 0, 0)
    load = struct.pack("<IIQQQQQQ", _PT_LOAD, 5, 0, _BASE, _BASE, size, size, 0x1000)
    stack = struct.pack("<IIQQQQQQ", _PT_GNU_STACK, 6, 0, 0, 0, 0, 0, 16)
    return header + load + stack + code


def available() -> bool:
    """Is there a trampoline for this machine?"""
    return os.uname().machine in CODE


def prepare() -> int | None:
    """The sealed memfd holding the trampoline (made once per process and inherited by forked
    children; close-on-exec), or None on a machine without one."""
    global _memfd
    if _memfd is None and available():
        _memfd = _sealed_memfd(elf(os.uname().machine))
    return _memfd


def _sealed_memfd(data: bytes) -> int:
    flags = os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING
    try:
        fd = os.memfd_create("pyoci-exec", flags | _MFD_EXEC)
    except OSError as exc:
        if exc.errno == 13:  # EACCES: vm.memfd_noexec=2 forbids executable memfds
            from pyoci_nb.errors import SetupError

            raise SetupError("cannot create the exec trampoline", where="vm.memfd_noexec",
                             why="this host forbids executable memfds (vm.memfd_noexec = 2), and pyoci "
                                 "execs every container's program through a sealed memfd so that the "
                                 "host's interpreter is never reachable from inside (CVE-2019-5736)",
                             hint="set the sysctl vm.memfd_noexec to 0 or 1") from None
        if exc.errno != 22:  # EINVAL: a kernel before 6.3, where every memfd may be executed
            raise
        fd = os.memfd_create("pyoci-exec", flags)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK
                    | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE)
        # execute-only: a process that cannot read the file it execs stays non-dumpable from
        # the first instruction (the kernel's would_dump), so the container never sees the
        # trampoline's fds through /proc, not even before its first prctl
        os.fchmod(fd, 0o111)
    except BaseException:
        os.close(fd)
        raise
    return fd


def execve(path: str, args: list[str], env: dict[str, str], report_fd: int) -> None:
    """Replace this process by ``path`` through the trampoline; never returns.  A failing
    execve of ``path`` is reported on ``report_fd`` (see ``failure``); on a machine without a
    trampoline this is a plain execve."""
    memfd = prepare()
    if memfd is None:
        os.execve(path, args, env)
    os.set_inheritable(report_fd, True)
    os.execve(memfd, [str(report_fd), path, *args], env)


def failure(data: bytes) -> int | None:
    """The errno in a trampoline's report (``b"X" + bytes([errno])``), or None."""
    if len(data) == 2 and data[:1] == b"X":
        return data[1]
    return None
