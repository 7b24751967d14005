"""OCI hooks (config.md "POSIX-platform Hooks", runtime.md "Lifecycle").

Each hook is ``{path, args, env, timeout}``; it is run with the container's state JSON on stdin.
``prestart`` (deprecated), ``createRuntime``, ``poststart`` and ``poststop`` run in the runtime's
namespaces (by the runtime process); ``createContainer`` and ``startContainer`` run in the
container's namespaces (by the container's init, before pivot_root and before execve).  Hooks of
one kind run in order.  runtime-spec 1.3: a failing hook up to and including ``poststart``
is an error that stops and tears down the container; a failing ``poststop`` hook is a warning.
"""

from __future__ import annotations

from pyoci_nb.errors import ConfigError, SetupError
from pyoci_nb.runtime import jsonio

#: the longest hook timeout subprocess can wait for (poll(2) takes milliseconds in a C int); a
#: longer one means no timeout at all
_LONGEST_TIMEOUT = (2 ** 31 - 1) // 1000

HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def check_hooks(config: dict) -> None:
    """Refuse malformed hooks before anything is created, naming the field."""
    from pyoci_nb.runtime.process import check_list, check_string, is_int

    hooks = config.get("hooks")
    if hooks is None:
        return
    if not isinstance(hooks, dict):
        raise ConfigError("hooks must be an object of hook lists", where="hooks",
                          hint='e.g. {"createRuntime": [{"path": "/usr/bin/setup"}]}')
    for kind, entries in hooks.items():
        if kind not in HOOK_KINDS:
            raise ConfigError(f"unknown hook kind {kind!r:.80}", where=f"hooks[{jsonio.dumps(kind)}]",
                              why="one of " + ", ".join(HOOK_KINDS))
        for i, hook in enumerate(check_list(entries, f"hooks.{kind}")):
            where = f"hooks.{kind}[{i}]"
            if not isinstance(hook, dict):
                raise ConfigError("a hook must be an object", where=where, hint='e.g. {"path": "/usr/bin/true"}')
            path = hook.get("path")
            if not isinstance(path, str) or not path.startswith("/"):
                raise ConfigError(f"hook path {path!r:.200} is not absolute", where=f"{where}.path",
                                  why="config.md: path MUST be an absolute path")
            check_string(path, f"{where}.path")
            for key in ("args", "env"):
                for j, item in enumerate(check_list(hook.get(key), f"{where}.{key}")):
                    check_string(item, f"{where}.{key}[{j}]")
            timeout = hook.get("timeout")
            if timeout is not None and (not is_int(timeout) or timeout <= 0):
                raise ConfigError(f"hook timeout {timeout!r:.80} must be a positive integer", where=f"{where}.timeout",
                                  why="config.md: timeout is the number of seconds before aborting the hook, "
                                      "and MUST be greater than zero")


def run_hooks(config: dict, kind: str, state: dict) -> None:
    """Run every hook of ``kind`` in order; SetupError naming the hook on the first failure."""
    hooks = (config.get("hooks") or {}).get(kind) or []
    if not hooks:
        return
    import subprocess

    data = jsonio.dumps(state).encode()
    for i, hook in enumerate(hooks):
        path = hook["path"]
        args = hook.get("args") or [path]
        env = {}
        for entry in hook.get("env") or []:
            key, _, value = entry.partition("=")
            env[key] = value
        where = f"hooks.{kind}[{i}]"
        timeout = hook.get("timeout")
        if timeout is not None and timeout > _LONGEST_TIMEOUT:
            timeout = None  # poll(2) counts milliseconds in an int: 24 days is forever enough
        try:
            done = subprocess.run(args, executable=path, input=data, env=env,
                                  capture_output=True, timeout=timeout, close_fds=True)
        except subprocess.TimeoutExpired:
            raise SetupError(f"{kind} hook {path!r} timed out", where=where,
                             why=f"it ran longer than its timeout of {hook['timeout']}s") from None
        except OSError as exc:
            raise SetupError(f"{kind} hook {path!r} could not be run", where=where,
                             why=exc.strerror) from None
        if done.returncode != 0:
            output = (done.stderr or done.stdout).decode(errors="replace").strip()
            raise SetupError(f"{kind} hook {path!r} failed", where=where,
                             why=f"exit status {done.returncode}" + (f": {output}" if output else ""))


def run_poststop(config: dict, state: dict) -> None:
    """poststop hooks: each one runs even if an earlier one failed; a failure is only a
    warning (runtime.md: the runtime MUST log a warning and continue)."""
    from pyoci_nb.runtime import log

    entries = (config.get("hooks") or {}).get("poststop") or []
    for i, hook in enumerate(entries):
        try:
            run_hooks({"hooks": {"poststop": [hook]}}, "poststop", state)
        except SetupError as exc:
            log.warning(f"hooks.poststop[{i}]: {exc}")
        except Exception as exc:  # a poststop failure must never stop delete
            log.warning(f"hooks.poststop[{i}]: poststop hook failed: {exc}")
