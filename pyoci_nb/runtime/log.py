"""The runtime's log, in runc's formats.

``pyoci --log FILE --log-format json`` writes one JSON object per line
(``{"level": "error", "msg": "...", "time": "..."}``), exactly like runc/logrus.  Engines
(containerd's runc shim, conmon) show the *last* ``"level":"error"`` line to the user, so an
error message must carry the whole story.  ``--log-format text`` writes logrus-style
``time="..." level=error msg="..."`` lines.  Without ``--log`` messages go to stderr and only
warnings and errors are shown unless ``--debug`` is given; there, when stderr is a terminal (a
person, not an engine) and the format is text, they are plain ``pyoci: error: ...`` lines.

Standard library only (CLI fast path).
"""

from __future__ import annotations

import os
import sys
import time

from pyoci_nb.runtime import jsonio

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}

_path: str | None = None
_format = "text"
_min_level = _LEVELS["warning"]
_plain = False


def configure(path: str | None = None, fmt: str = "text", debug: bool = False) -> None:
    """Set where and how messages go; called once by the CLI from the global flags."""
    global _path, _format, _min_level, _plain
    if fmt not in ("text", "json"):
        from pyoci_nb.errors import PyociError

        raise PyociError(f"unknown log format {fmt!r}", where="--log-format",
                         why="runc accepts 'text' or 'json'")
    _path = path or None
    _format = fmt
    _min_level = _LEVELS["debug"] if debug else (_LEVELS["info"] if path else _LEVELS["warning"])
    _plain = not path and fmt == "text" and _stderr_is_terminal()


def _stderr_is_terminal() -> bool:
    try:
        return os.isatty(2)
    except OSError:
        return False


def _timestamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e9):09d}Z"


def _format_line(level: str, msg: str, fields: dict) -> str:
    if _format == "json":
        record = {"level": level, "msg": msg, "time": _timestamp()}
        record.update(fields)
        return jsonio.dumps(record, default=str) + "\n"
    extra = "".join(f" {k}={jsonio.dumps(v, default=str)}" for k, v in fields.items())
    if _plain:
        return f"pyoci: {level}: {msg}{extra}\n"
    return f'time="{_timestamp()}" level={level} msg={jsonio.dumps(msg)}{extra}\n'


_captured: list | None = None


def capture(into: list | None) -> None:
    """Collect warnings into the list ``into`` instead of writing them (None: write again).
    The engine does this per request and sends them to its caller, whose log shows them."""
    global _captured
    _captured = into


def log(level: str, msg: str, **fields) -> None:
    """Write one message at ``level`` (debug, info, warning, error); never raises."""
    if _LEVELS[level] < _min_level:
        return
    if _captured is not None and level == "warning":
        _captured.append(msg)
        return
    line = _format_line(level, msg, fields)
    try:
        if _path:
            fd = os.open(_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        else:
            sys.stderr.write(line)
            sys.stderr.flush()
    except OSError:
        pass


def debug(msg: str, **fields) -> None:
    log("debug", msg, **fields)


def info(msg: str, **fields) -> None:
    log("info", msg, **fields)


def warning(msg: str, **fields) -> None:
    log("warning", msg, **fields)


def error(msg: str, **fields) -> None:
    log("error", msg, **fields)


def logging_to_file() -> bool:
    """True when ``--log FILE`` was given (errors then also go to stderr, as runc does)."""
    return bool(_path)
