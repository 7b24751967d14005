"""``linux.seccomp``: system call filters compiled with libseccomp through ctypes.

What the runtime spec (config-linux.md, "Seccomp") says, and what this module does about it:

* ``defaultAction`` (REQUIRED) is what happens to a system call no rule matches;
  ``defaultErrnoRet`` is the errno for ``SCMP_ACT_ERRNO``/``SCMP_ACT_TRACE`` (default EPERM).
  An errno given to an action that takes none is an error, as the spec requires.
* ``architectures`` adds system call ABIs (``SCMP_ARCH_X86`` beside ``SCMP_ARCH_X86_64``...) to the
  filter; the native one is always there.
* ``flags`` are seccomp(2) filter flags: ``SECCOMP_FILTER_FLAG_TSYNC``, ``_LOG``, ``_SPEC_ALLOW``
  (and ``_WAIT_KILLABLE_RECV`` where libseccomp >= 2.6 offers it).  Like runc, a profile without a
  ``flags`` key gets ``SPEC_ALLOW`` when the kernel supports it (no speculative-store-bypass
  mitigation forced on the container); an explicit empty list means no flags.
* ``syscalls[]`` rules: ``names`` (unknown names are skipped with a debug message, as runc does:
  a profile lists system calls of newer kernels or other architectures), ``action``,
  ``errnoRet`` and ``args[]`` comparisons (``index`` 0..5, ``value``, ``valueTwo``, ``op``).  Args
  of one rule are ANDed; when two args compare the *same* index, each arg becomes a rule of its
  own (ORed) -- runc's long-standing behaviour, which profiles such as Docker's rely on.  A rule
  whose action equals the default action is redundant and skipped (libseccomp refuses it).
* ``SCMP_ACT_NOTIFY`` sends matching calls to a user-space agent: loading returns the listener
  fd, which the runtime hands to the agent at ``listenerPath`` together with the container
  process state (``send_listener``).  It cannot be the default action nor apply to ``write``
  (the runtime's init still writes after loading -- runc's rules).

The filter is loaded by the container's init as the last step before execve.  libseccomp's own
no_new_privs handling is switched off: the runtime sets no_new_privs itself when
``process.noNewPrivileges`` asks for it, and without it loading needs CAP_SYS_ADMIN, so the init
must then load the filter *before* it drops capabilities (runc does the same).

Stricter than runc where the spec asks for it: an ``errnoRet`` on an action without errno is an
error (runc ignores it) and an ERRNO errno must be 0..4095 (the kernel caps it there; runc
truncates to 16 bits).  Not done: runc's "patchbpf" rewrite that answers ENOSYS for system calls
newer than libseccomp knows (the default profile answers clone3 with ENOSYS explicitly instead).

Standard library only (CLI path).  Public API: ``available()``, ``compile_filter()`` ->
``SeccompFilter``, ``load()``, ``send_listener()``, ``default_profile()``, ``features()``,
``flag_supported()``, ``library_version()``, ``native_architecture()``.
"""

from __future__ import annotations

import ctypes
import errno as errno_codes
import os

from pyoci_nb.errors import ConfigError, SetupError, UnsupportedError
from pyoci_nb.runtime import log

# --------------------------------------------------------------------------- names and numbers
#: Actions of the runtime spec, with libseccomp's action value (seccomp.h).  ERRNO and TRACE
#: carry a 16-bit datum (the errno, or the message for the tracer) in their low bits.
_ACTION_VALUES = {
    "SCMP_ACT_KILL": 0x00000000,          # the old name of KILL_THREAD
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,
    "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_NOTIFY": 0x7FC00000,
}
#: The actions of the runtime spec (defs-linux.json SeccompAction), in its order.
ACTIONS = tuple(_ACTION_VALUES)
#: Actions that take an errno (``errnoRet``/``defaultErrnoRet``) and its largest value: the kernel
#: caps an ERRNO result at MAX_ERRNO (4095); TRACE passes a 16-bit message to the tracer.
_ERRNO_ACTIONS = {"SCMP_ACT_ERRNO": 4095, "SCMP_ACT_TRACE": 0xFFFF}
#: The lowest libseccomp API level (seccomp_api_get) that supports an action.
_ACTION_MIN_API = {"SCMP_ACT_KILL_PROCESS": 3, "SCMP_ACT_LOG": 3, "SCMP_ACT_NOTIFY": 6}

#: Comparison operators (libseccomp's enum scmp_compare).  MASKED_EQ is
#: ``(arg & value) == valueTwo``; the others compare the argument with ``value``.
_OPERATOR_VALUES = {
    "SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7,
}
OPERATORS = tuple(_OPERATOR_VALUES)

#: Architectures of the runtime spec (defs-linux.json SeccompArch).  libseccomp names them
#: without the prefix, in lower case (``SCMP_ARCH_X86_64`` -> ``x86_64``); which of them the
#: installed libseccomp knows is asked at run time (``features()["archs"]``).
ARCHITECTURES = (
    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X",
    "SCMP_ARCH_SH", "SCMP_ARCH_SHEB", "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64",
)

# libseccomp's enum scmp_filter_attr
_ATTR_CTL_NNP = 3
_ATTR_CTL_TSYNC = 4
_ATTR_CTL_LOG = 6
_ATTR_CTL_SSB = 7
_ATTR_CTL_OPTIMIZE = 8
_ATTR_API_SYSRAWRC = 9
_ATTR_CTL_WAITKILL = 10

#: Filter flags of the runtime spec -> (libseccomp attribute, lowest API level that has it).
_FLAG_ATTRIBUTES = {
    "SECCOMP_FILTER_FLAG_TSYNC": (_ATTR_CTL_TSYNC, 2),
    "SECCOMP_FILTER_FLAG_LOG": (_ATTR_CTL_LOG, 3),
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": (_ATTR_CTL_SSB, 4),
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": (_ATTR_CTL_WAITKILL, 7),
}
#: The filter flags this runtime knows (features.json ``knownFlags``).
KNOWN_FLAGS = tuple(_FLAG_ATTRIBUTES)

#: System calls see at most six arguments.
SYSCALL_MAX_ARGUMENTS = 6
_NR_SCMP_ERROR = -1            # seccomp_syscall_resolve_name: unknown name
_UINT64_MAX = 2 ** 64 - 1
#: Name of the seccomp fd in the container process state (runtime.md).
SECCOMP_FD_NAME = "seccompFd"
#: Longer rule sets get libseccomp's binary-tree layout (runc's threshold).
_OPTIMIZE_ABOVE_RULES = 32

_BASE = "linux.seccomp"


# --------------------------------------------------------------------------- the library
class _ArgCmp(ctypes.Structure):
    """struct scmp_arg_cmp."""
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


class _Version(ctypes.Structure):
    """struct scmp_version."""
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


_library: ctypes.CDLL | None = None
_library_error: str | None = None


def _open_library() -> ctypes.CDLL | None:
    global _library, _library_error
    if _library is not None or _library_error is not None:
        return _library
    try:
        lib = ctypes.CDLL("libseccomp.so.2")
    except OSError as exc:
        _library_error = str(exc)
        return None
    ctx = ctypes.c_void_p
    u32 = ctypes.c_uint32
    for name, restype, argtypes in (
        ("seccomp_init", ctx, [u32]),
        ("seccomp_release", None, [ctx]),
        ("seccomp_arch_add", ctypes.c_int, [ctx, u32]),
        ("seccomp_arch_resolve_name", u32, [ctypes.c_char_p]),
        ("seccomp_arch_native", u32, []),
        ("seccomp_syscall_resolve_name", ctypes.c_int, [ctypes.c_char_p]),
        ("seccomp_rule_add_array", ctypes.c_int,
         [ctx, u32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(_ArgCmp)]),
        ("seccomp_attr_set", ctypes.c_int, [ctx, ctypes.c_int, u32]),
        ("seccomp_load", ctypes.c_int, [ctx]),
        ("seccomp_export_bpf", ctypes.c_int, [ctx, ctypes.c_int]),
        ("seccomp_export_pfc", ctypes.c_int, [ctx, ctypes.c_int]),
        ("seccomp_version", ctypes.POINTER(_Version), []),
        ("seccomp_api_get", ctypes.c_uint, []),
    ):
        function = getattr(lib, name)
        function.restype = restype
        function.argtypes = argtypes
    try:  # libseccomp >= 2.5
        lib.seccomp_notify_fd.restype = ctypes.c_int
        lib.seccomp_notify_fd.argtypes = [ctx]
    except AttributeError:
        pass
    _library = lib
    return lib


def _lib() -> ctypes.CDLL:
    lib = _open_library()
    if lib is None:
        raise UnsupportedError(
            "seccomp needs libseccomp, which could not be loaded", where=_BASE,
            why=f"the filter is compiled with libseccomp.so.2 ({_library_error})",
            hint="install it (Debian/Ubuntu: apt-get install libseccomp2; Fedora: dnf install libseccomp) "
                 "or remove linux.seccomp from config.json")
    return lib


def available() -> bool:
    """True when libseccomp can be loaded and the kernel supports seccomp filters, i.e. when a
    config with ``linux.seccomp`` can run here."""
    lib = _open_library()
    return lib is not None and lib.seccomp_api_get() >= 1


def library_version() -> str | None:
    """The installed libseccomp's version (``"2.5.4"``), or None when it cannot be loaded;
    ``pyoci features`` shows it as the annotation ``io.github.seccomp.libseccomp.version``."""
    lib = _open_library()
    if lib is None:
        return None
    version = lib.seccomp_version().contents
    return f"{version.major}.{version.minor}.{version.micro}"


def _strerror(rc: int) -> str:
    code = -rc if rc < 0 else rc
    return f"{errno_codes.errorcode.get(code, code)} ({os.strerror(code)})"


# --------------------------------------------------------------------------- validation
def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _type_error(where: str, value, expected: str) -> ConfigError:
    return ConfigError(f"{value!r} is not {expected}", where=where,
                       why=f"the runtime spec's linux.seccomp schema requires {expected} here")


def _uint(value, where: str, maximum: int, expected: str) -> int:
    if not _is_int(value):
        raise _type_error(where, value, expected)
    if not 0 <= value <= maximum:
        raise ConfigError(f"{value} is out of range", where=where, why=f"must be {expected} (0..{maximum})")
    return value


def _name_from(table, value, where: str, kind: str, hint: str | None = None) -> str:
    if not isinstance(value, str):
        raise _type_error(where, value, f"a string naming a seccomp {kind}")
    if value not in table:
        raise ConfigError(f"unknown seccomp {kind} {value!r}", where=where,
                          why=f"the runtime spec allows {', '.join(table)}", hint=hint)
    return value


def _list(value, where: str, expected: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _type_error(where, value, expected)
    return value


def _action_value(action: str, errno_value, action_where: str, errno_where: str) -> int:
    """The libseccomp action value for ``action`` with its optional errno (spec: EPERM when
    absent; an error when the action takes none)."""
    base = _ACTION_VALUES[action]
    if action in _ERRNO_ACTIONS:
        if errno_value is None:
            errno_value = errno_codes.EPERM
        maximum = _ERRNO_ACTIONS[action]
        _uint(errno_value, errno_where, maximum,
              "an errno number" if action == "SCMP_ACT_ERRNO" else "a 16-bit value for the tracer")
        return base | errno_value
    if errno_value is not None:
        raise ConfigError(f"{action} takes no errno", where=errno_where,
                          why=f"the runtime spec requires an error when the action does not support an errno "
                              f"(only {' and '.join(_ERRNO_ACTIONS)} do); see {action_where}",
                          hint="remove it, or use SCMP_ACT_ERRNO")
    return base


class _Rule:
    """One (system call name, action, conditions) rule as runc expands ``syscalls[i].names[j]``."""

    __slots__ = ("where", "action_where", "name", "action", "action_value", "conditions")

    def __init__(self, where, action_where, name, action, action_value, conditions):
        self.where = where                  # linux.seccomp.syscalls[i].names[j]
        self.action_where = action_where    # linux.seccomp.syscalls[i].action
        self.name = name
        self.action = action
        self.action_value = action_value
        self.conditions = conditions  # list of (where, index, op value, datum_a, datum_b)


class _Profile:
    """A validated ``linux.seccomp``: everything checked that can be checked without libseccomp."""

    def __init__(self, seccomp):
        if not isinstance(seccomp, dict):
            raise _type_error(_BASE, seccomp, "an object")
        default = seccomp.get("defaultAction")
        if default is None:
            raise ConfigError("defaultAction is missing", where=f"{_BASE}.defaultAction",
                              why="the runtime spec requires it: it is what happens to every system call no "
                                  "rule matches",
                              hint="set it (SCMP_ACT_ERRNO for an allowlist, SCMP_ACT_ALLOW for a denylist) "
                                   "or remove linux.seccomp")
        self.default_action = _name_from(_ACTION_VALUES, default, f"{_BASE}.defaultAction", "action")
        if self.default_action == "SCMP_ACT_NOTIFY":
            raise ConfigError("SCMP_ACT_NOTIFY cannot be the default action", where=f"{_BASE}.defaultAction",
                              why="every system call of the container, including the runtime's own last writes "
                                  "before execve, would wait for the agent (runc refuses it too)",
                              hint="use SCMP_ACT_NOTIFY in syscalls[] rules only")
        self.default_value = _action_value(self.default_action, seccomp.get("defaultErrnoRet"),
                                           f"{_BASE}.defaultAction", f"{_BASE}.defaultErrnoRet")
        self.architectures = []
        for i, arch in enumerate(_list(seccomp.get("architectures"), f"{_BASE}.architectures", "an array")):
            where = f"{_BASE}.architectures[{i}]"
            self.architectures.append((where, _name_from(ARCHITECTURES, arch, where, "architecture")))
        flags = seccomp.get("flags")
        self.flags_given = flags is not None
        self.flags = []
        for i, flag in enumerate(_list(flags, f"{_BASE}.flags", "an array")):
            where = f"{_BASE}.flags[{i}]"
            self.flags.append((where, _name_from(_FLAG_ATTRIBUTES, flag, where, "filter flag")))
        self.listener_path = seccomp.get("listenerPath")
        if self.listener_path is not None and not isinstance(self.listener_path, str):
            raise _type_error(f"{_BASE}.listenerPath", self.listener_path, "a string")
        self.listener_metadata = seccomp.get("listenerMetadata")
        if self.listener_metadata is not None and not isinstance(self.listener_metadata, str):
            raise _type_error(f"{_BASE}.listenerMetadata", self.listener_metadata, "a string")
        self.rules: list[_Rule] = []
        self.notify_where: str | None = None
        for i, syscall in enumerate(_list(seccomp.get("syscalls"), f"{_BASE}.syscalls", "an array")):
            self._add_syscall(f"{_BASE}.syscalls[{i}]", syscall)
        if self.notify_where and not self.listener_path:
            raise ConfigError("SCMP_ACT_NOTIFY needs listenerPath", where=f"{_BASE}.listenerPath",
                              why=f"{self.notify_where} sends system calls to a seccomp agent, and the runtime "
                                  "hands the agent the notify fd over the UNIX socket named by listenerPath",
                              hint="set listenerPath to the agent's socket, or use another action")
        if self.notify_where and not os.path.isabs(self.listener_path):
            raise ConfigError(f"{self.listener_path!r} is not an absolute path", where=f"{_BASE}.listenerPath",
                              why="the runtime connects to it from its own working directory, which the caller "
                                  "does not control", hint="give the absolute path of the agent's socket")

    def _add_syscall(self, where: str, syscall) -> None:
        if not isinstance(syscall, dict):
            raise _type_error(where, syscall, "an object with names and action")
        names = syscall.get("names")
        if not isinstance(names, list) or not names:
            raise ConfigError("names must be a non-empty array of system call names", where=f"{where}.names",
                              why="the runtime spec requires names (minItems 1)",
                              hint='e.g. "names": ["mkdir", "mkdirat"]')
        if "action" not in syscall:
            raise ConfigError("action is missing", where=f"{where}.action",
                              why="the runtime spec requires an action for each syscalls[] entry")
        action = _name_from(_ACTION_VALUES, syscall["action"], f"{where}.action", "action")
        action_value = _action_value(action, syscall.get("errnoRet"), f"{where}.action", f"{where}.errnoRet")
        conditions = []
        for k, arg in enumerate(_list(syscall.get("args"), f"{where}.args", "an array")):
            arg_where = f"{where}.args[{k}]"
            if not isinstance(arg, dict):
                raise _type_error(arg_where, arg, "an object with index, value and op")
            for key in ("index", "value", "op"):
                if key not in arg:
                    raise ConfigError(f"{key} is missing", where=f"{arg_where}.{key}",
                                      why="the runtime spec requires index, value and op in each argument comparison")
            index = arg["index"]
            if not _is_int(index):
                raise _type_error(f"{arg_where}.index", index, "an argument index")
            if not 0 <= index < SYSCALL_MAX_ARGUMENTS:
                raise ConfigError(f"argument index {index} is out of range", where=f"{arg_where}.index",
                                  why="system calls have at most six arguments (index 0..5)")
            value = _uint(arg["value"], f"{arg_where}.value", _UINT64_MAX, "an unsigned 64-bit integer")
            value_two = _uint(arg.get("valueTwo", 0), f"{arg_where}.valueTwo", _UINT64_MAX,
                              "an unsigned 64-bit integer")
            op = _name_from(_OPERATOR_VALUES, arg["op"], f"{arg_where}.op", "operator")
            conditions.append((arg_where, index, _OPERATOR_VALUES[op], value, value_two))
        for j, name in enumerate(names):
            name_where = f"{where}.names[{j}]"
            if not isinstance(name, str) or not name:
                raise ConfigError(f"{name!r} is not a system call name", where=name_where,
                                  why="names lists system calls by name, e.g. \"mkdir\"")
            if action == "SCMP_ACT_NOTIFY":
                self.notify_where = self.notify_where or f"{where}.action"
                if name == "write":
                    raise ConfigError("SCMP_ACT_NOTIFY cannot be used for the write system call",
                                      where=name_where,
                                      why="the runtime's init writes to its parent after loading the filter, so "
                                          "it would wait forever for an agent it has not reached yet "
                                          "(runc refuses it too)")
            self.rules.append(_Rule(name_where, f"{where}.action", name, action, action_value, conditions))


# --------------------------------------------------------------------------- the filter
class SeccompFilter:
    """A libseccomp filter built from a ``linux.seccomp`` object and not loaded yet.

    ``compile_filter()`` makes one; ``load()`` installs it into the calling thread (the
    container's init, right before execve); ``export_bpf()`` / ``export_pfc()`` show the program
    the kernel would run.  Release it with ``close()`` or a ``with`` block.
    """

    def __init__(self, profile: _Profile):
        self._profile = profile
        self._ctx = None
        #: System call names the installed libseccomp does not know, skipped as runc does.
        self.skipped_names: list[str] = []
        lib = _lib()
        api = int(lib.seccomp_api_get())
        if api < 1:
            raise UnsupportedError("this kernel does not support seccomp filters", where=_BASE,
                                   why="seccomp_api_get() reports level 0 (no SECCOMP_SET_MODE_FILTER)",
                                   hint="remove linux.seccomp, or use a kernel built with CONFIG_SECCOMP_FILTER")
        self._check_actions(api)
        ctx = lib.seccomp_init(profile.default_value)
        if not ctx:
            raise ConfigError("libseccomp refused the default action", where=f"{_BASE}.defaultAction",
                              why=f"seccomp_init({profile.default_action}) failed")
        self._ctx = ctx
        try:
            self._build(lib, api)
        except BaseException:
            self.close()
            raise

    @property
    def uses_notify(self) -> bool:
        """True when a rule uses SCMP_ACT_NOTIFY: ``load()`` then returns the listener fd."""
        return self._profile.notify_where is not None

    @property
    def listener_path(self) -> str | None:
        """``linux.seccomp.listenerPath``: where the runtime sends the listener fd."""
        return self._profile.listener_path

    @property
    def listener_metadata(self) -> str:
        """``linux.seccomp.listenerMetadata``: opaque data passed on to the agent."""
        return self._profile.listener_metadata or ""

    def _check_actions(self, api: int) -> None:
        wheres = [(f"{_BASE}.defaultAction", self._profile.default_action)]
        wheres += [(rule.action_where, rule.action) for rule in self._profile.rules]
        for where, action in wheres:
            needed = _ACTION_MIN_API.get(action, 1)
            if api < needed:
                raise UnsupportedError(
                    f"{action} is not supported here", where=where,
                    why=f"it needs libseccomp API level {needed}, this host offers {api} "
                        f"(libseccomp {library_version()}, kernel {os.uname().release})",
                    hint="use a newer kernel/libseccomp (SCMP_ACT_NOTIFY: libseccomp >= 2.5 and Linux >= 5.7) "
                         "or another action")

    def _attr(self, lib, attribute: int, value: int) -> int:
        return int(lib.seccomp_attr_set(self._ctx, attribute, value))

    def _build(self, lib, api: int) -> None:
        profile = self._profile
        for where, arch in profile.architectures:
            token = lib.seccomp_arch_resolve_name(arch[len("SCMP_ARCH_"):].lower().encode())
            if not token:
                raise UnsupportedError(f"architecture {arch} is not supported by libseccomp {library_version()}",
                                       where=where, why="libseccomp cannot build filters for this ABI",
                                       hint="remove it from linux.seccomp.architectures or install a newer libseccomp")
            rc = lib.seccomp_arch_add(self._ctx, token)
            if rc < 0 and rc != -errno_codes.EEXIST:  # the native architecture is always present
                raise ConfigError(f"libseccomp could not add architecture {arch}", where=where, why=_strerror(rc))
        # the kernel's own errno from seccomp_load (not libseccomp's catch-all ECANCELED)
        if self._attr(lib, _ATTR_API_SYSRAWRC, 1) < 0:
            log.debug("libseccomp cannot report raw kernel errors (SCMP_FLTATR_API_SYSRAWRC)")
        # runc: the runtime handles no_new_privs itself (process.noNewPrivileges)
        rc = self._attr(lib, _ATTR_CTL_NNP, 0)
        if rc < 0:
            raise SetupError("libseccomp refused to leave no_new_privs alone", where=_BASE, why=_strerror(rc))
        if profile.flags_given:
            for where, flag in profile.flags:
                self._set_flag(lib, api, where, flag)
        elif flag_supported("SECCOMP_FILTER_FLAG_SPEC_ALLOW"):
            self._set_flag(lib, api, f"{_BASE}.flags", "SECCOMP_FILTER_FLAG_SPEC_ALLOW")
        if len(profile.rules) > _OPTIMIZE_ABOVE_RULES:
            if self._attr(lib, _ATTR_CTL_OPTIMIZE, 2) < 0:
                log.debug("seccomp binary tree optimization not available")
        for rule in profile.rules:
            self._add_rule(lib, rule)

    def _set_flag(self, lib, api: int, where: str, flag: str) -> None:
        attribute, needed = _FLAG_ATTRIBUTES[flag]
        rc = self._attr(lib, attribute, 1) if api >= needed else -errno_codes.EOPNOTSUPP
        if rc < 0:
            raise UnsupportedError(
                f"seccomp flag {flag} is not supported here", where=where,
                why=f"libseccomp {library_version()} (API level {api}) on kernel {os.uname().release} cannot set it: "
                    f"{_strerror(rc)}",
                hint="remove it from linux.seccomp.flags; `pyoci features` lists the supportedFlags")

    def _add_rule(self, lib, rule: _Rule) -> None:
        if rule.action_value == self._profile.default_value:
            return  # redundant: the default action already does this (libseccomp would refuse it)
        number = lib.seccomp_syscall_resolve_name(rule.name.encode())
        if number == _NR_SCMP_ERROR:
            self.skipped_names.append(rule.name)
            log.debug(f"unknown seccomp syscall {rule.name!r} ignored", where=rule.where)
            return
        conditions = rule.conditions
        indexes = [c[1] for c in conditions]
        if len(set(indexes)) != len(indexes):
            groups = [[c] for c in conditions]   # runc: the same index twice -> one rule per comparison
        else:
            groups = [conditions]
        for group in groups:
            array = (_ArgCmp * max(len(group), 1))(*[_ArgCmp(c[1], c[2], c[3], c[4]) for c in group])
            rc = lib.seccomp_rule_add_array(self._ctx, rule.action_value, number, len(group), array)
            if rc < 0:
                where = group[0][0] if group and len(groups) > 1 else rule.where
                why = _strerror(rc)
                if rc == -errno_codes.EEXIST:
                    why += ": another rule already gives this system call a different action"
                elif rc == -errno_codes.EINVAL and group:
                    why += (": libseccomp cannot compare the arguments of this system call on every "
                            "architecture of the filter")
                raise ConfigError(f"libseccomp refused the rule for {rule.name!r} ({rule.action})",
                                  where=where, why=why)

    def _export(self, function_name: str) -> bytes:
        lib = _lib()
        fd = os.memfd_create("pyoci-seccomp-export", os.MFD_CLOEXEC)
        try:
            rc = getattr(lib, function_name)(self._require_ctx(), fd)
            if rc < 0:
                raise SetupError("libseccomp could not generate the filter program", where=_BASE,
                                 why=f"{function_name}: {_strerror(rc)}")
            os.lseek(fd, 0, os.SEEK_SET)
            chunks = []
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def export_bpf(self) -> bytes:
        """The classic-BPF program (struct sock_filter[]) the kernel would run."""
        return self._export("seccomp_export_bpf")

    def export_pfc(self) -> str:
        """libseccomp's human-readable Pseudo Filter Code for this filter."""
        return self._export("seccomp_export_pfc").decode()

    def _require_ctx(self):
        if not self._ctx:
            raise SetupError("the seccomp filter was already released", where=_BASE)
        return self._ctx

    def load(self) -> int | None:
        """Install the filter into the calling thread (for ever: filters cannot be removed) and
        return the SCMP_ACT_NOTIFY listener fd, or None when no rule notifies."""
        lib = _lib()
        rc = lib.seccomp_load(self._require_ctx())
        if rc < 0:
            hint = None
            if rc in (-errno_codes.EACCES, -errno_codes.EPERM):
                hint = ("without no_new_privs, loading a filter needs CAP_SYS_ADMIN: set process.noNewPrivileges, "
                        "or load the filter before capabilities are dropped")
            raise SetupError("the kernel refused the seccomp filter", where=_BASE,
                             why=f"seccomp_load: {_strerror(rc)}", hint=hint)
        if not self.uses_notify:
            return None
        fd = lib.seccomp_notify_fd(self._ctx)
        if fd < 0:
            raise SetupError("no SCMP_ACT_NOTIFY listener fd after loading the filter", where=_BASE,
                             why=f"seccomp_notify_fd: {_strerror(fd)}")
        return int(fd)

    def close(self) -> None:
        """Free libseccomp's context (a loaded filter stays in the kernel)."""
        if self._ctx:
            _lib().seccomp_release(self._ctx)
            self._ctx = None

    def __enter__(self) -> SeccompFilter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def compile_filter(seccomp: dict) -> SeccompFilter:
    """Validate ``linux.seccomp`` and build its filter without loading it.

    The runtime calls this before it forks so a bad profile fails early, with a
    ``pyoci_nb.errors.ConfigError`` naming the JSON path (``linux.seccomp.syscalls[3].action``),
    the value and the rule; ``UnsupportedError`` when this host lacks what the profile needs
    (libseccomp, an architecture, a flag, an action).  Close the result when done."""
    return SeccompFilter(_Profile(seccomp))


def load(seccomp: dict) -> int | None:
    """Compile ``linux.seccomp`` and load it into the calling thread: the container init's last
    step before execve (after no_new_privs when ``process.noNewPrivileges`` is true; without it,
    while the init still holds CAP_SYS_ADMIN).  Returns the SCMP_ACT_NOTIFY listener fd for
    ``send_listener()`` (else None)."""
    with compile_filter(seccomp) as compiled:
        return compiled.load()


def flag_supported(flag: str) -> bool:
    """True when the filter flag ``flag`` is known here and this libseccomp and kernel can set it."""
    if flag not in _FLAG_ATTRIBUTES:
        return False
    lib = _open_library()
    if lib is None:
        return False
    attribute, needed = _FLAG_ATTRIBUTES[flag]
    if lib.seccomp_api_get() < needed:
        return False
    ctx = lib.seccomp_init(_ACTION_VALUES["SCMP_ACT_ALLOW"])
    if not ctx:
        return False
    try:
        return lib.seccomp_attr_set(ctx, attribute, 1) == 0
    finally:
        lib.seccomp_release(ctx)


# --------------------------------------------------------------------------- notify agent
def send_listener(listener_path: str, fd: int, state: dict, metadata: str = "",
                  pid: int | None = None) -> None:
    """Send the seccomp listener fd to the agent at ``listenerPath`` (runtime.md, "Container
    process state"): one connection to the AF_UNIX SOCK_STREAM socket, one JSON container process
    state ``{"ociVersion", "fds": ["seccompFd"], "pid", "metadata", "state"}`` with the fd in
    SCM_RIGHTS, then the connection is closed.  ``state`` is the container's state (status
    "creating" for the init, "running" for an exec'd process); ``pid`` is the process whose
    listener this is (default: the init's, ``state["pid"]``).  A failure raises ``SetupError``:
    the spec requires the runtime to fail then."""
    from pyoci_nb import OCI_VERSION

    process_state = {
        "ociVersion": state.get("ociVersion", OCI_VERSION),
        "fds": [SECCOMP_FD_NAME],
        "pid": pid if pid is not None else state.get("pid"),
        "metadata": metadata or "",
        "state": state,
    }
    import socket  # only for a listener: socket's imports cost milliseconds of every start

    from pyoci_nb.runtime import jsonio

    payload = jsonio.dumps(process_state).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as conn:
            conn.connect(listener_path)
            sent = socket.send_fds(conn, [payload], [fd])
            if sent < len(payload):
                conn.sendall(payload[sent:])
    except OSError as exc:
        raise SetupError("could not hand the seccomp notify fd to the agent", where=f"{_BASE}.listenerPath",
                         why=f"sending to {listener_path}: {exc.strerror or exc}; the runtime spec requires the "
                             "runtime to fail when it cannot reach the listener",
                         hint="start the seccomp agent (listening on that AF_UNIX stream socket) before the "
                              "container") from exc


# --------------------------------------------------------------------------- features / profile
def features() -> dict:
    """The ``linux.seccomp`` object of ``pyoci features`` (features-linux.md): ``enabled``,
    and what this host's libseccomp and kernel support: ``actions``, ``operators``, ``archs``,
    ``knownFlags`` (flags this runtime knows) and ``supportedFlags`` (those it can set here)."""
    lib = _open_library()
    if lib is None:
        return {"enabled": False}
    api = int(lib.seccomp_api_get())
    return {
        "enabled": api >= 1,
        "actions": sorted(a for a in ACTIONS if api >= _ACTION_MIN_API.get(a, 1)),
        "operators": sorted(OPERATORS),
        "archs": sorted(a for a in ARCHITECTURES
                        if lib.seccomp_arch_resolve_name(a[len("SCMP_ARCH_"):].lower().encode())),
        "knownFlags": list(KNOWN_FLAGS),
        "supportedFlags": [f for f in KNOWN_FLAGS if flag_supported(f)],
    }


#: ``os.uname().machine`` -> the native seccomp architecture.
_MACHINE_ARCHITECTURES = {
    "x86_64": "SCMP_ARCH_X86_64", "amd64": "SCMP_ARCH_X86_64", "i386": "SCMP_ARCH_X86",
    "i486": "SCMP_ARCH_X86", "i586": "SCMP_ARCH_X86", "i686": "SCMP_ARCH_X86",
    "aarch64": "SCMP_ARCH_AARCH64", "arm64": "SCMP_ARCH_AARCH64", "armv6l": "SCMP_ARCH_ARM",
    "armv7l": "SCMP_ARCH_ARM", "armv8l": "SCMP_ARCH_ARM", "ppc64le": "SCMP_ARCH_PPC64LE",
    "ppc64": "SCMP_ARCH_PPC64", "s390x": "SCMP_ARCH_S390X", "riscv64": "SCMP_ARCH_RISCV64",
    "mips64": "SCMP_ARCH_MIPS64", "loongarch64": "SCMP_ARCH_LOONGARCH64",
}
_DEFAULT_PROFILE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seccomp_default.json")


def native_architecture() -> str:
    """This machine's seccomp architecture name (``SCMP_ARCH_X86_64`` on x86-64)."""
    machine = os.uname().machine
    try:
        return _MACHINE_ARCHITECTURES[machine]
    except KeyError:
        raise UnsupportedError(f"no seccomp architecture known for machine {machine!r}",
                               why="default_profile() picks its architectures from the machine type",
                               hint="pass arch='SCMP_ARCH_...' explicitly") from None


def _kernel_at_least(release: str, minimum: str) -> bool:
    def numbers(text: str) -> tuple[int, ...]:
        parts = []
        for part in text.split("-")[0].split(".")[:3]:
            digits = "".join(ch for ch in part if ch.isdigit())
            parts.append(int(digits or 0))
        return tuple(parts)
    return numbers(release) >= numbers(minimum)


def default_profile(capabilities=(), arch: str | None = None, kernel: str | None = None) -> dict:
    """A Docker-like default ``linux.seccomp`` object (the rules of Docker's default profile).

    Default action SCMP_ACT_ERRNO with EPERM, an allowlist of the system calls ordinary programs
    use, and nothing that escapes or reconfigures the container -- unshare, mount, setns, keyctl,
    add_key, bpf, kexec_load, module loading, reboot, clock setting, clone with CLONE_NEW* flags
    (clone3 answers ENOSYS so libc falls back to clone) -- unless ``capabilities`` (e.g. the
    config's ``process.capabilities.bounding``) grants the capability that makes the call
    legitimate, exactly as Docker resolves its profile.  As in Docker, ptrace is allowed on
    kernels >= 4.8 (seccomp re-checks a call changed by a tracer since then).

    ``arch`` (an ``SCMP_ARCH_*`` name, default this machine's) selects the filter's architectures
    (x86_64 + x86 + x32, aarch64 + arm, ...) and arch-only calls; ``kernel`` (default the running
    kernel's release) the version-gated rules.  The data lives in ``seccomp_default.json``.
    """
    from pyoci_nb.runtime import jsonio

    with open(_DEFAULT_PROFILE_FILE, encoding="utf-8") as data:
        template = jsonio.loads(data.read())
    native = arch or native_architecture()
    if native not in ARCHITECTURES:
        raise ConfigError(f"unknown seccomp architecture {native!r}", where="arch",
                          why=f"the runtime spec allows {', '.join(ARCHITECTURES)}")
    granted = set(capabilities or ())
    release = kernel or os.uname().release
    syscalls = []
    for rule in template["syscalls"]:
        includes = rule.get("includes", {})
        excludes = rule.get("excludes", {})
        if not set(includes.get("caps", ())) <= granted:
            continue
        if includes.get("arches") and native not in includes["arches"]:
            continue
        if includes.get("minKernel") and not _kernel_at_least(release, includes["minKernel"]):
            continue
        if granted & set(excludes.get("caps", ())) or native in excludes.get("arches", ()):
            continue
        syscalls.append({key: value for key, value in rule.items()
                         if key in ("names", "action", "errnoRet", "args")})
    return {
        "defaultAction": template["defaultAction"],
        "defaultErrnoRet": template["defaultErrnoRet"],
        "architectures": list(template["archMap"].get(native, [native])),
        "syscalls": syscalls,
    }
