"""Rough edges a new user hits on the command line (issue 13): container ids checked with runc's
rules and words, a ``terminal: true`` config without a terminal (an error, or a relay that ends),
and errors printed plainly to a person at a terminal but in runc's log format for engines."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import threading

import pytest
from runtime_helpers import REPO, edit_config, pyoci

pytestmark = pytest.mark.root

# runc 1.1 (libcontainer/factory_linux.go): an empty id -> "container id cannot be empty"; otherwise
# ^[\w+-\.]+$ (ASCII word characters and the range '+' .. '.', i.e. + , - .) and not "." or "..".
EMPTY = "container id cannot be empty"
BAD_FORMAT = "invalid container ID format"
REJECTED = [
    ("", EMPTY),                # the empty id (pyoci used to make one up and exit 0)
    ("a/b", BAD_FORMAT),        # a path separator
    (".", BAD_FORMAT),          # the current directory
    ("..", BAD_FORMAT),         # the parent directory
    ("a b", BAD_FORMAT),        # white space
    ("a:b", BAD_FORMAT),        # punctuation outside + , - . _
    ("caf\u00e9", BAD_FORMAT),  # a letter outside ASCII (\w is ASCII in Go's RE2)
]


@pytest.mark.parametrize("command", ["run", "create"])
@pytest.mark.parametrize(("container_id", "message"), REJECTED, ids=[repr(i) for i, _ in REJECTED])
def test_a_bad_id_is_refused_in_runcs_words(bundle, state_root, command, container_id, message):
    result = pyoci(command, "--bundle", bundle, container_id, root=state_root, stdin=subprocess.DEVNULL)
    assert result.returncode == 1, result
    assert message in result.stderr and "Traceback" not in result.stderr
    assert list(state_root.iterdir()) == []  # nothing created, under any name


@pytest.mark.parametrize("container_id", ["", "a/b", ".."])
def test_commands_on_an_existing_container_check_the_id_too(state_root, container_id):
    result = pyoci("state", container_id, root=state_root)
    assert result.returncode == 1
    assert (EMPTY if container_id == "" else BAD_FORMAT) in result.stderr


@pytest.mark.parametrize("container_id", ["a,b", "A_z+0-9.x", "..."])
def test_every_character_runc_accepts_is_accepted(bundle, state_root, container_id):
    pyoci("create", "--bundle", bundle, container_id, root=state_root, check=True, stdin=subprocess.DEVNULL)
    state = json.loads(pyoci("state", container_id, root=state_root, check=True).stdout)
    assert state["id"] == container_id and state["status"] == "created"
    pyoci("delete", "--force", container_id, root=state_root, check=True)


def _run_pyoci(args, *, stdin, stdout, stderr, timeout=60):
    """``python -m pyoci_nb ARGS`` in a new session (so no controlling terminal is inherited)."""
    return subprocess.run([sys.executable, "-m", "pyoci_nb", *map(str, args)], stdin=stdin, stdout=stdout,
                          stderr=stderr, cwd=REPO, start_new_session=True, timeout=timeout)


def test_terminal_true_without_any_terminal_is_an_error_not_a_hang(bundle, state_root, container_id, tmp_path):
    edit_config(bundle, **{"process.terminal": True})
    err = tmp_path / "err"
    with open(err, "wb") as err_file:  # a hang fails the test through the timeout
        result = _run_pyoci(["--root", state_root, "run", "--bundle", bundle, container_id],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err_file, timeout=30)
    message = err.read_text()
    assert result.returncode == 1, message
    assert "asks for a terminal but there is none" in message and 'terminal\\": false' in message
    assert list(state_root.iterdir()) == []


def _read_all(master: int, into: bytearray) -> None:
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: every slave closed
            return
        if not data:
            return
        into.extend(data)


def test_terminal_true_with_a_piped_stdin_ends_when_the_pipe_ends(bundle, state_root, container_id):
    """stdout and stderr on a real pty, stdin a pipe without `exit`: the shell in the container
    reads the pipe's end (its terminal's EOF character) and exits, instead of waiting forever."""
    edit_config(bundle, **{"process.terminal": True, "process.args": ["sh"]})
    master, slave = pty.openpty()
    output = bytearray()
    reader = threading.Thread(target=_read_all, args=(master, output), daemon=True)
    reader.start()
    read_end, write_end = os.pipe()
    os.write(write_end, b"echo from the pipe\n")
    os.close(write_end)
    try:
        result = _run_pyoci(["--root", state_root, "run", "--bundle", bundle, container_id],
                            stdin=read_end, stdout=slave, stderr=slave, timeout=30)
    finally:
        os.close(read_end)
        os.close(slave)
        reader.join(10)
        os.close(master)
    assert result.returncode == 0, bytes(output)
    assert b"\nfrom the pipe\r" in output.replace(b"echo from the pipe", b"")  # the output of echo
    assert list(state_root.iterdir()) == []


def _stderr_on_a_pty(args) -> tuple[int, str]:
    """Run pyoci with its stderr on a real pty: (exit status, what it wrote there)."""
    master, slave = pty.openpty()
    try:
        result = _run_pyoci(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave)
        os.close(slave)
        slave = None
        text = bytearray()
        _read_all(master, text)
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)
    return result.returncode, text.decode()


def test_errors_are_plain_on_a_terminal_and_runc_lines_otherwise(state_root, tmp_path):
    status, text = _stderr_on_a_pty(["--root", state_root, "state", "nope"])
    assert status == 1
    assert text.startswith("pyoci: error: container 'nope': container does not exist"), text
    assert "level=" not in text

    piped = pyoci("state", "nope", root=state_root)  # stderr a file: an engine reads it
    assert piped.returncode == 1
    assert piped.stderr.startswith('time="') and 'level=error msg="container' in piped.stderr

    # --log-format json is for engines, even on a terminal
    status, text = _stderr_on_a_pty(["--root", state_root, "--log-format", "json", "state", "nope"])
    assert status == 1
    record = json.loads(text.strip().splitlines()[-1])
    assert record["level"] == "error" and "does not exist" in record["msg"]

    log_file = tmp_path / "log.json"  # --log FILE: the log keeps runc's format
    status, _ = _stderr_on_a_pty(["--root", state_root, "--log", log_file, "--log-format", "json", "state", "nope"])
    assert status == 1
    assert json.loads(log_file.read_text().splitlines()[-1])["level"] == "error"


def test_exec_tty_without_any_terminal_is_an_error_not_a_hang(bundle, state_root, container_id, tmp_path):
    edit_config(bundle, **{"process.args": ["sleep", "300"]})
    pyoci("run", "--detach", "--bundle", bundle, container_id, root=state_root, check=True, stdin=subprocess.DEVNULL)
    err = tmp_path / "err"
    with open(err, "wb") as err_file:
        result = _run_pyoci(["--root", state_root, "exec", "--tty", container_id, "sh"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err_file, timeout=30)
    assert result.returncode == 1
    assert "--tty: the container asks for a terminal but there is none" in err.read_text()
    state = json.loads(pyoci("state", container_id, root=state_root, check=True).stdout)
    assert state["status"] == "running"  # the container is untouched
    assert json.loads(pyoci("ps", "--format", "json", container_id, root=state_root, check=True).stdout) == [state["pid"]]
