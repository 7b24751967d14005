"""The container process (config.md "Process", config-linux.md process fields): rlimits, user
(uid, gid, additionalGids, umask), the five capability sets, ``noNewPrivileges``, ``cwd``,
``env``, ``args`` (resolved through the container's PATH) and the final execve.

Shared by the container's init (``init.py``) and ``exec`` (``container.py``): one piece of code
applies a ``process`` object.  ``check_process`` validates one before any fork, so a bad value
is reported with its JSON path instead of failing inside the container.
"""

from __future__ import annotations

import os

from pyoci_nb.errors import ConfigError
from pyoci_nb.runtime import syscalls as sc
from pyoci_nb.runtime import trampoline
from pyoci_nb.runtime.syscalls import Step
from pyoci_nb.spec.capabilities import ALL_CAPABILITIES

CAPABILITY_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")

_RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}


#: the largest id setresuid/setresgid/setgroups take: (uid_t)-1 = 2**32-1 means "unchanged"
MAX_ID = 2 ** 32 - 2
#: rlim_t is an unsigned 64-bit number (2**64-1 is RLIM_INFINITY)
MAX_RLIMIT = 2 ** 64 - 1


def is_int(value) -> bool:
    """An integer, and not a boolean (JSON true/false load as bool, a subclass of int)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(value, where: str, low: int, high: int, why: str) -> None:
    """ConfigError unless ``value`` is an integer (not a boolean) from ``low`` to ``high``."""
    if not is_int(value) or not low <= value <= high:
        raise ConfigError(f"{value!r:.80} is not an integer from {low} to {high}", where=where, why=why)


def check_string(value, where: str, what: str = "a string") -> None:
    """ConfigError unless ``value`` is a string without NUL characters."""
    if not isinstance(value, str):
        raise ConfigError(f"must be {what}, not {type(value).__name__}", where=where)
    if "\0" in value:
        raise ConfigError("contains a NUL character", where=where,
                          why="the kernel takes C strings: a NUL would silently cut the value short")


def _check_bool(process: dict, key: str, where: str) -> None:
    if key in process and not isinstance(process[key], bool):
        raise ConfigError(f"{key} must be true or false, not {process[key]!r:.80}", where=f"{where}.{key}")


def plain_string(value) -> bool:
    """A string without NUL characters (the fast test; ``check_string`` words the error)."""
    return isinstance(value, str) and "\0" not in value


def check_list(value, where: str) -> list:
    """``value`` if it is a list, [] for None (absent), else ConfigError."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"must be an array, not {type(value).__name__}", where=where)
    return value


def check_process(process: dict, where: str = "process") -> None:
    """Refuse a ``process`` object the runtime cannot apply, naming the offending field: every
    value the container's init uses has the type and range its system call takes."""
    if not isinstance(process, dict):
        raise ConfigError("process must be an object", where=where,
                          why="config.md: process is REQUIRED when start is called")
    args = process.get("args")
    if not args or not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ConfigError("args must be a non-empty list of strings", where=f"{where}.args",
                          why="config.md: args is REQUIRED when start is called",
                          hint='e.g. "args": ["sh"]')
    for i, arg in enumerate(args):
        if "\0" in arg:
            check_string(arg, f"{where}.args[{i}]")
    cwd = process.get("cwd")
    if not isinstance(cwd, str) or not cwd.startswith("/"):
        raise ConfigError(f"cwd {cwd!r:.200} is not an absolute path", where=f"{where}.cwd",
                          why="config.md: cwd MUST be an absolute path")
    check_string(cwd, f"{where}.cwd")
    for i, entry in enumerate(check_list(process.get("env"), f"{where}.env")):
        if not isinstance(entry, str) or "=" not in entry:
            raise ConfigError(f"env entry {entry!r:.200} is not KEY=VALUE", where=f"{where}.env[{i}]")
        if "\0" in entry:
            check_string(entry, f"{where}.env[{i}]")
    for key in ("terminal", "noNewPrivileges"):
        _check_bool(process, key, where)
    size = process.get("consoleSize")
    if size is not None:
        if not isinstance(size, dict):
            raise ConfigError("consoleSize must be an object", where=f"{where}.consoleSize",
                              hint='e.g. {"height": 24, "width": 80}')
        for key in ("height", "width"):
            if key in size:  # used only with a terminal: then it must fit struct winsize
                check_int(size[key], f"{where}.consoleSize.{key}", 0, 65535 if process.get("terminal") else MAX_RLIMIT,
                          "a terminal's size is an unsigned 16-bit number (struct winsize)")
    _check_user(process.get("user"), f"{where}.user")
    if "oomScoreAdj" in process:
        check_int(process["oomScoreAdj"], f"{where}.oomScoreAdj", -1000, 1000,
                  "proc(5): oom_score_adj ranges from -1000 to 1000")
    caps = process.get("capabilities")
    if caps is not None and not isinstance(caps, dict):
        raise ConfigError("capabilities must be an object of capability sets", where=f"{where}.capabilities",
                          hint='e.g. {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"]}')
    for set_name in CAPABILITY_SETS:
        names = (caps or {}).get(set_name)
        if names is not None and not isinstance(names, list):
            check_list(names, f"{where}.capabilities.{set_name}")
        for i, name in enumerate(names or ()):
            if not isinstance(name, str) or name not in ALL_CAPABILITIES:
                raise ConfigError(f"unknown capability {name!r:.80}", where=f"{where}.capabilities.{set_name}[{i}]",
                                  why="capability names are those of capabilities(7), e.g. CAP_NET_ADMIN")
    seen = set()
    for i, rlimit in enumerate(check_list(process.get("rlimits"), f"{where}.rlimits")):
        if not isinstance(rlimit, dict):
            raise ConfigError("an rlimit must be an object", where=f"{where}.rlimits[{i}]",
                              hint='e.g. {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}')
        kind = rlimit.get("type")
        if not isinstance(kind, str) or kind not in _RLIMITS:
            raise ConfigError(f"unknown rlimit {kind!r:.80}", where=f"{where}.rlimits[{i}].type",
                              why="one of " + ", ".join(_RLIMITS))
        if kind in seen:
            raise ConfigError(f"rlimit {kind} given twice", where=f"{where}.rlimits[{i}]",
                              why="config.md: the runtime MUST generate an error for duplicate types")
        seen.add(kind)
        for key in ("soft", "hard"):
            if key not in rlimit:
                raise ConfigError(f"rlimit {kind} has no {key} limit", where=f"{where}.rlimits[{i}].{key}",
                                  why="config.md: soft and hard are REQUIRED")
            check_int(rlimit[key], f"{where}.rlimits[{i}].{key}", 0, MAX_RLIMIT,
                      f"a limit is an unsigned 64-bit number ({MAX_RLIMIT} is unlimited)")
        if rlimit["soft"] > rlimit["hard"]:
            raise ConfigError(f"soft limit {rlimit['soft']} exceeds hard limit {rlimit['hard']}",
                              where=f"{where}.rlimits[{i}]", why="setrlimit(2) refuses a soft limit above the hard one")


def _check_user(user, where: str) -> None:
    if user is None:
        return
    if not isinstance(user, dict):
        raise ConfigError("user must be an object", where=where, hint='e.g. {"uid": 0, "gid": 0}')
    for key in ("uid", "gid"):
        if key in user:
            check_int(user[key], f"{where}.{key}", 0, MAX_ID,
                      "ids are unsigned 32-bit numbers, and 4294967295 ((uid_t)-1) means 'unchanged'")
    if "umask" in user:
        check_int(user["umask"], f"{where}.umask", 0, 2 ** 32 - 1, "a umask is an unsigned 32-bit number")
    gids = check_list(user.get("additionalGids"), f"{where}.additionalGids")
    if len(gids) > 65536:
        raise ConfigError(f"{len(gids)} additional gids", where=f"{where}.additionalGids",
                          why="setgroups(2) takes at most NGROUPS_MAX (65536) groups")
    for i, gid in enumerate(gids):
        check_int(gid, f"{where}.additionalGids[{i}]", 0, MAX_ID,
                  "ids are unsigned 32-bit numbers, and 4294967295 ((gid_t)-1) is not a group")


def env_dict(process: dict) -> dict[str, str]:
    """``process.env`` (KEY=VALUE strings) as a dict; a later duplicate wins."""
    env = {}
    for entry in process.get("env") or []:
        key, _, value = entry.partition("=")
        env[key] = value
    return env


def resolve_executable(process: dict) -> str:
    """args[0] resolved through PATH from the container's env (in the container's root)."""
    name = process["args"][0]
    if "/" in name:
        path = name if name.startswith("/") else os.path.join(process.get("cwd", "/"), name)
        _check_executable(path, name)
        return path
    search = env_dict(process).get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    for directory in search.split(":"):
        path = os.path.join(directory or ".", name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise OSError(2, f'exec: "{name}": executable file not found in $PATH')


def _check_executable(path: str, name: str) -> None:
    if not os.path.exists(path):
        raise OSError(2, f'exec: "{name}": stat {path}: no such file or directory')
    if os.path.isdir(path) or not os.access(path, os.X_OK):
        raise OSError(13, f'exec: "{name}": permission denied')


def set_rlimits(process: dict) -> None:
    """``process.rlimits`` with setrlimit(2) (config.md: soft and hard limits)."""
    import resource

    for rlimit in process.get("rlimits") or []:
        number = _RLIMITS[rlimit["type"]]
        wanted = (rlimit["soft"], rlimit["hard"])
        with Step(f"setting rlimit {rlimit['type']} to soft {wanted[0]}, hard {wanted[1]}"):
            try:
                # rlim_t is unsigned 64-bit, Python's setrlimit takes a signed long long:
                # 2**63 .. 2**64-1 (RLIM_INFINITY) pass as the negative numbers of the same bits
                resource.setrlimit(number, tuple(v - 2 ** 64 if v >= 2 ** 63 else v for v in wanted))
            except ValueError:  # Python's word for EPERM here
                current = resource.getrlimit(number)[1]
                raise OSError(1, "setrlimit: EPERM (raising the hard limit above the current "
                                 f"{current} needs CAP_SYS_RESOURCE, which this runtime does not have)") from None


def _mask(names) -> int:
    last = sc.last_capability()
    mask = 0
    for name in names or []:
        number = ALL_CAPABILITIES.index(name)
        if number <= last:  # a capability the kernel does not know is ignored (runc warns)
            mask |= 1 << number
    return mask


def set_user_and_capabilities(process: dict, setgroups_allowed: bool = True) -> None:
    """Drop the bounding set, switch uid/gid/groups keeping capabilities, then set the
    effective, permitted and inheritable sets and raise the ambient ones (config.md order:
    the user switch must not lose the capabilities the config keeps)."""
    caps = process.get("capabilities")
    user = process.get("user") or {}
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    if caps is not None:
        with Step("dropping capabilities from the bounding set"):
            sc.drop_bounding_set(_mask(caps.get("bounding")))
    with Step(f"setting groups to {user.get('additionalGids') or []}"):
        if setgroups_allowed:
            os.setgroups(user.get("additionalGids") or [])
        elif user.get("additionalGids"):
            raise OSError(1, "setgroups: EPERM (setgroups is denied in this user namespace)")
    sc.prctl(sc.PR_SET_KEEPCAPS, 1)
    with Step(f"setting gid to {gid}"):
        os.setresgid(gid, gid, gid)
    with Step(f"setting uid to {uid}"):
        os.setresuid(uid, uid, uid)
    sc.prctl(sc.PR_SET_KEEPCAPS, 0)
    if caps is not None:
        with Step("setting capabilities"):
            sc.capset(_mask(caps.get("effective")), _mask(caps.get("permitted")),
                      _mask(caps.get("inheritable")))
            sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_CLEAR_ALL)
            for name in caps.get("ambient") or []:
                number = ALL_CAPABILITIES.index(name)
                if number <= sc.last_capability():
                    try:
                        sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_RAISE, number)
                    except OSError as exc:  # not in permitted+inheritable: runc ignores it too
                        if exc.errno != 1:
                            raise
    if "umask" in user:
        os.umask(user["umask"] & 0o777)  # umask(2) keeps the permission bits of any number


def set_no_new_privileges(process: dict) -> None:
    """``process.noNewPrivileges``: PR_SET_NO_NEW_PRIVS, so execve cannot gain privileges."""
    if process.get("noNewPrivileges"):
        with Step("setting no_new_privs"):
            sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)


def change_directory(process: dict) -> None:
    """``process.cwd`` (config.md: the runtime MUST fail if it does not exist)."""
    cwd = process.get("cwd", "/")
    with Step(f'changing directory to "{cwd}"'):
        os.chdir(cwd)


def set_oom_score_adj(process: dict) -> None:
    """``process.oomScoreAdj`` into /proc/self/oom_score_adj of the container's procfs, reached
    without following anything the image planted (``mounts.write_proc``)."""
    if "oomScoreAdj" in process:
        from pyoci_nb.runtime import mounts  # loaded by init before pivot_root: no import here

        with Step(f"writing oomScoreAdj {process['oomScoreAdj']}"):
            mounts.write_proc("self/oom_score_adj", process["oomScoreAdj"])


#: CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH: the capabilities that read any file
_READ_ANY_FILE = (1 << 1) | (1 << 2)


def hide_the_trampoline() -> None:
    """Before the last execve (and before a seccomp filter that may forbid capset): drop the
    capabilities that read any file from the *effective* set, so that the execute-only
    trampoline (``trampoline.py``) cannot be read and the kernel keeps the process non-dumpable
    through its execve.  The program's capabilities are computed anew at its own execve from the
    permitted, inheritable and ambient sets, which stay as they are."""
    effective, permitted, inheritable = sc.capget()
    if effective & _READ_ANY_FILE:
        sc.capset(effective & ~_READ_ANY_FILE, permitted, inheritable)


def exec_process(process: dict, executable: str, preserve: int, report_fd: int) -> None:
    """The last step, never returns: only fds 0-2 and the ``--preserve-fds`` range 3 ..
    3+``preserve``-1 survive (everything else the runtime or its caller held is marked
    close-on-exec), then execve through the sealed trampoline (``trampoline.py``), so that the
    host's interpreter is never ``/proc/self/exe`` while the container's program is exec'd
    (CVE-2019-5736).  A failing execve is reported on ``report_fd``."""
    for fd in range(3, 3 + preserve):
        os.set_inheritable(fd, True)
    sc.cloexec_from(3 + preserve)
    trampoline.execve(executable, process["args"], env_dict(process), report_fd)


def check_preserved_fds(count: int) -> None:
    """``--preserve-fds N`` hands the container fds 3 .. 3+N-1 of the caller: each must be open
    before the runtime opens anything of its own (else the runtime's own fds would take those
    numbers and reach the container)."""
    for fd in range(3, 3 + count):
        try:
            os.fstat(fd)
            if fd == trampoline.prepare():
                raise OSError(9, "the runtime's own trampoline")
        except OSError:
            raise ConfigError(f"fd {fd} is not open", where="--preserve-fds",
                              why=f"--preserve-fds {count} passes fds 3..{2 + count} of the caller to the container",
                              hint="open those fds before calling the runtime, or pass a smaller count") from None
