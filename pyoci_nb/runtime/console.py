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


def check_relay_terminal(where: str = "process.terminal") -> None:
    """Before a container with ``terminal: true`` is created for a relay here (no console
    socket, not detached): there must be a terminal to relay it to, as runc requires (it tries
    stderr, stdout, stdin, then /dev/tty, and fails with "open /dev/tty: no such device or
    address").  Without one the container's shell would wait on its pty forever."""
    if any(os.isatty(fd) for fd in (2, 1, 0)):
        return
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC))
        return
    except OSError as exc:
        why = ("stdin, stdout and stderr are not terminals and there is no controlling terminal "
               f"(/dev/tty: {exc.strerror})")
    raise ContainerError("the container asks for a terminal but there is none to relay it to", where=where,
                         why=why, hint='run it from a terminal, or set "terminal": false in config.json '
                                       "(sed -i 's/\"terminal\": true/\"terminal\": false/' config.json), "
                                       "or pass --console-socket or --detach")


def _end_of_input(master: int, last: bytes) -> None:
    """Our stdin (not a terminal) ended: tell the container's terminal with its EOF character,
    twice when a partial line is pending (the first only ends the line)."""
    try:
        import termios

        eof = termios.tcgetattr(master)[6][termios.VEOF]
    except (OSError, ImportError):
        eof = b"\x04"
    eof = eof if isinstance(eof, bytes) else bytes([eof])
    try:
        os.write(master, eof if last in (b"", b"\n", b"\r", eof) else eof * 2)
    except OSError:
        pass


def relay(master: int, wait_done) -> None:
    """Copy our stdin to the pty master and the master to our stdout until the container's
    process exits (``wait_done()`` returns True); the local terminal is put in raw mode.

    When our stdin is not a terminal (a pipe, a file, /dev/null) and ends, the container's
    terminal gets its EOF character each time it goes quiet (0.1 s without output) after new
    output: a shell reading the pipe's commands then ends instead of waiting forever.  (Sent at
    once, it could reach the terminal before the program has switched it to raw mode, and be
    lost in the switch.)"""
    import select

    saved = None
    if os.isatty(0):
        import termios
        import tty

        saved = termios.tcgetattr(0)
        tty.setraw(0)
    stdin_open = True
    last = b""
    eof_due = False  # our stdin ended, and the container wrote since the last EOF we sent
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
                eof_due = not stdin_open and saved is None
            if 0 in ready:
                data = os.read(0, 65536)
                if not data:
                    stdin_open = False
                    eof_due = saved is None  # a pipe or file, not a terminal: pass its end on
                else:
                    os.write(master, data)
                    last = data[-1:]
            if not ready:
                if wait_done():
                    break
                if eof_due:
                    _end_of_input(master, last)
                    last, eof_due = b"", False
    finally:
        if saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, saved)
