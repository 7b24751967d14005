"""The container's terminal (config.md ``process.terminal``, ``process.consoleSize``; runc's
``--console-socket``).

With ``terminal: true`` the container's init opens a pseudo-terminal in the container's own
devpts (after pivot_root, so /dev/ptmx is the container's), makes the slave its controlling
terminal and stdio, bind-mounts it over /dev/console, and sends the master over the
``--console-socket`` AF_UNIX socket with SCM_RIGHTS -- exactly what runc does and what
conmon and containerd's shim receive.  ``pyoci run`` without a console socket makes its own
socket pair and relays the terminal itself.
"""

from __future__ import annotations

import os
import socket
import struct

from pyoci_nb.errors import ContainerError


def connect_console_socket(path: str) -> socket.socket:
    """Connect to the engine's console socket (before fork: after pivot_root it is unreachable)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise ContainerError("cannot connect to the console socket", where=path,
                             why=exc.strerror, hint="--console-socket must name a listening AF_UNIX socket") from None
    return sock


def open_terminal(console_size: dict | None) -> tuple[int, int, str]:
    """A new pty from the current /dev/ptmx: (master fd, slave fd, slave path)."""
    master, slave = os.openpty()
    name = os.ttyname(slave)
    if console_size:
        import fcntl

        winsize = struct.pack("HHHH", console_size.get("height", 0), console_size.get("width", 0), 0, 0)
        fcntl.ioctl(slave, 0x5414, winsize)  # TIOCSWINSZ
    return master, slave, name


def make_controlling_terminal(slave: int) -> None:
    """The slave becomes stdin/stdout/stderr and the controlling terminal of this new session."""
    import fcntl

    fcntl.ioctl(slave, 0x540E, 0)  # TIOCSCTTY (caller has called setsid())
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)


def send_fd(sock_fd: int, fd: int, name: str) -> None:
    """Send ``fd`` over the connected AF_UNIX socket ``sock_fd`` (SCM_RIGHTS), ``name`` as payload."""
    sock = socket.socket(fileno=sock_fd)
    try:
        socket.send_fds(sock, [name.encode()], [fd])
    finally:
        sock.detach()


def receive_fd(sock: socket.socket) -> int:
    """Receive one file descriptor sent with ``send_fd``."""
    _, fds, _, _ = socket.recv_fds(sock, 4096, 1)
    if not fds:
        raise ContainerError("no file descriptor received on the console socket")
    return fds[0]


def relay(master: int, wait_done) -> None:
    """Copy our stdin to the pty master and the master to our stdout until the container's
    process exits (``wait_done()`` returns True); the local terminal is put in raw mode."""
    import select

    saved = None
    if os.isatty(0):
        import termios
        import tty

        saved = termios.tcgetattr(0)
        tty.setraw(0)
    stdin_open = True
    try:
        while True:
            readers = [master] + ([0] if stdin_open else [])
            ready, _, _ = select.select(readers, [], [], 0.1)
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    break
                os.write(1, data)
            if 0 in ready:
                data = os.read(0, 65536)
                if not data:
                    stdin_open = False
                else:
                    os.write(master, data)
            if not ready and wait_done():
                break
    finally:
        if saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, saved)
