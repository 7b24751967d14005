"""The device allowlist: ``linux.resources.devices`` on cgroup v1 and cgroup v2.

config-linux.md: ``devices`` is a list of rules ``{allow, type, major, minor, access}`` that
the runtime MUST apply in the listed order; ``type`` is ``a`` (all), ``c`` or ``b`` (default
``a``), ``major``/``minor`` default to "every number", ``access`` is a composition of ``r``,
``w``, ``m`` (default all three).  The semantics are those of the v1 ``devices`` controller
(Documentation/admin-guide/cgroup-v1/devices.rst):

* a rule of type ``a`` resets the cgroup: ``allow`` -> every device allowed, ``deny`` -> none;
* any other rule either adds an *exception* to the current default (an allow rule in deny-all
  mode, a deny rule in allow-all mode) or removes access bits from the exception with exactly
  the same type/major/minor.

``DeviceRules`` replays a rule list with exactly those semantics (as runc's devices emulator
does), keeping the exceptions in the order the kernel keeps them (a new exception goes last,
one merged into an existing exception keeps its place), so both drivers start from the same
answer:

* cgroup v1, a cgroup the runtime has just created: ``write_v1_in_order`` writes the rules to
  ``devices.allow``/``devices.deny`` one by one, in the listed order (config-linux.md: "The
  runtime MUST apply entries in the listed order"), and checks that ``devices.list`` shows
  what the replay predicts;
* cgroup v1, an existing cgroup (``update``, or a cgroup the container joins): ``apply_v1``
  moves ``devices.allow``/``devices.deny`` from what ``devices.list`` shows now to the target
  with as few writes as possible, adding before removing so a running container never sees a
  transient "deny everything";
* cgroup v2 has no devices controller: the kernel asks a ``BPF_PROG_TYPE_CGROUP_DEVICE`` program
  attached to the cgroup.  ``device_program`` compiles the replayed rules to eBPF, the later
  rules checked first (a later rule wins, as crun's program and the v1 replay have it),
  ``attach_program`` loads it with ``bpf(2)`` (through ctypes) and attaches it with
  ``BPF_F_ALLOW_MULTI``, then detaches the programs it replaces.

As runc does, the runtime appends ``DEFAULT_ALLOWED`` (mknod of anything; /dev/null, zero,
full, tty, random, urandom, console, ptmx, pts, tun) and one allow rule per ``linux.devices``
entry after the config's own rules (``implied_rules``).  Standard library only.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

from pyoci_nb.errors import ConfigError, SetupError, UnsupportedError
from pyoci_nb.runtime.records import FrozenRecord
from pyoci_nb.runtime.syscalls import read_file

WILDCARD = None  # a major/minor of "every number"
_ACCESS_ORDER = "rwm"


class DeviceRule(FrozenRecord):
    """One rule: ``allow`` or deny ``access`` (subset of "rwm") to devices of ``type`` a/c/b
    with ``major``:``minor`` (``None`` = every number).  Immutable, compared by value."""

    __slots__ = ("allow", "type", "major", "minor", "access")
    _defaults = {"type": "a", "major": WILDCARD, "minor": WILDCARD, "access": "rwm"}
    allow: bool
    type: str
    major: int
    minor: int
    access: str

    def v1_line(self) -> str:
        """The line the v1 devices controller takes: ``c 1:3 rwm``, ``a`` for type all."""
        if self.type == "a":
            return "a"
        major = "*" if self.major is None else str(self.major)
        minor = "*" if self.minor is None else str(self.minor)
        return f"{self.type} {major}:{minor} {self.access}"

    def to_json(self) -> dict:
        """The rule as a linux.resources.devices entry (saved in state.json)."""
        out: dict = {"allow": self.allow, "type": self.type, "access": self.access}
        if self.major is not None:
            out["major"] = self.major
        if self.minor is not None:
            out["minor"] = self.minor
        return out


def _canonical_access(access: str) -> str:
    return "".join(c for c in _ACCESS_ORDER if c in access)


def rule_from_spec(entry, where: str) -> DeviceRule:
    """Check one ``linux.resources.devices[i]`` entry and turn it into a DeviceRule."""
    if not isinstance(entry, dict):
        raise ConfigError("a device rule must be an object", where=where,
                          why=f"got {type(entry).__name__}")
    allow = entry.get("allow")
    if not isinstance(allow, bool):
        raise ConfigError("'allow' is required and must be true or false", where=f"{where}.allow",
                          why="config-linux.md: allow (boolean, REQUIRED)")
    dev_type = entry.get("type", "a") or "a"
    if dev_type not in ("a", "b", "c"):
        raise ConfigError(f"unknown device type {dev_type!r}", where=f"{where}.type",
                          why="the devices cgroup knows 'a' (all), 'b' (block) and 'c' (char)",
                          hint="use 'c' for character devices such as /dev/null")
    numbers = []
    for key in ("major", "minor"):
        value = entry.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ConfigError(f"{key} must be an integer", where=f"{where}.{key}",
                              why=f"got {value!r}")
        if value is not None and value < 0:
            value = None  # runc's wildcard is -1
        numbers.append(value)
    access = entry.get("access", "rwm")
    if access is None or access == "":
        access = "rwm"
    if not isinstance(access, str) or set(access) - set(_ACCESS_ORDER):
        raise ConfigError(f"invalid device access {access!r}", where=f"{where}.access",
                          why="access is a composition of 'r' (read), 'w' (write) and 'm' (mknod)")
    return DeviceRule(allow, dev_type, numbers[0], numbers[1], _canonical_access(access))


def rules_from_spec(devices, where: str = "linux.resources.devices") -> list[DeviceRule]:
    """All rules of ``linux.resources.devices`` (validated, in order)."""
    if devices is None:
        return []
    if not isinstance(devices, list):
        raise ConfigError("devices must be a list of rules", where=where,
                          why=f"got {type(devices).__name__}")
    return [rule_from_spec(entry, f"{where}[{i}]") for i, entry in enumerate(devices)]


#: What runc appends to every container's rules (libcontainer/specconv AllowedDevices).
DEFAULT_ALLOWED: tuple[DeviceRule, ...] = (
    DeviceRule(True, "c", None, None, "m"),       # mknod of any char device
    DeviceRule(True, "b", None, None, "m"),       # mknod of any block device
    DeviceRule(True, "c", 1, 3, "rwm"),           # /dev/null
    DeviceRule(True, "c", 1, 8, "rwm"),           # /dev/random
    DeviceRule(True, "c", 1, 7, "rwm"),           # /dev/full
    DeviceRule(True, "c", 5, 0, "rwm"),           # /dev/tty
    DeviceRule(True, "c", 1, 5, "rwm"),           # /dev/zero
    DeviceRule(True, "c", 1, 9, "rwm"),           # /dev/urandom
    DeviceRule(True, "c", 5, 1, "rwm"),           # /dev/console
    DeviceRule(True, "c", 136, None, "rwm"),      # /dev/pts/*
    DeviceRule(True, "c", 5, 2, "rwm"),           # /dev/ptmx
    DeviceRule(True, "c", 10, 200, "rwm"),        # /dev/net/tun
)


def implied_rules(config: dict) -> list[DeviceRule]:
    """The allow rules the runtime adds after the config's own: ``DEFAULT_ALLOWED`` and one
    ``rwm`` rule per ``linux.devices`` entry (a device the config creates is usable)."""
    rules = list(DEFAULT_ALLOWED)
    linux = config.get("linux") or {}
    for _i, dev in enumerate(linux.get("devices") or []):
        if not isinstance(dev, dict):
            continue  # the runtime's own validation of linux.devices reports it
        dev_type = dev.get("type")
        if dev_type == "u":
            dev_type = "c"  # unbuffered character device
        if dev_type not in ("b", "c"):
            continue  # 'p' (FIFO) needs no cgroup permission
        major, minor = dev.get("major"), dev.get("minor")
        if isinstance(major, int) and isinstance(minor, int):
            rules.append(DeviceRule(True, dev_type, major, minor, "rwm"))
    return rules


class DeviceRules:
    """The state a list of rules leaves a v1 devices cgroup in: a default (allow or deny all)
    plus exceptions ``(type, major, minor) -> access``.  New cgroups start as deny-all here
    (runc's default), so a config without rules still gets only the implied devices."""

    def __init__(self, default_allow: bool = False,
                 exceptions: dict[tuple[str, int | None, int | None], str] | None = None):
        self.default_allow = default_allow
        self.exceptions: dict[tuple[str, int | None, int | None], str] = dict(exceptions or {})

    @classmethod
    def from_rules(cls, rules) -> DeviceRules:
        """The state after replaying ``rules`` in order on a new (deny-all) cgroup."""
        state = cls()
        for rule in rules:
            state.apply(rule)
        return state

    def apply(self, rule: DeviceRule) -> None:
        """Replay one rule as the kernel's v1 devices controller would."""
        if rule.type == "a":
            self.default_allow = rule.allow
            self.exceptions.clear()
            return
        key = (rule.type, rule.major, rule.minor)
        current = self.exceptions.get(key, "")
        if rule.allow != self.default_allow:   # an exception to the default
            self.exceptions[key] = _canonical_access(current + rule.access)
        else:                                  # takes access back out of an exception
            remaining = _canonical_access("".join(c for c in current if c not in rule.access))
            if remaining:
                self.exceptions[key] = remaining
            else:
                self.exceptions.pop(key, None)

    def allows(self, dev_type: str, major: int, minor: int, access: str) -> bool:
        """Would the kernel allow ``access`` to this device (v1 matching rules)?"""
        def matches(key):
            t, ma, mi = key
            return t == dev_type and ma in (None, major) and mi in (None, minor)

        if self.default_allow:
            return not any(matches(k) and set(v) & set(access) for k, v in self.exceptions.items())
        return any(matches(k) and set(access) <= set(v) for k, v in self.exceptions.items())

    def exception_rules(self) -> list[DeviceRule]:
        """The exceptions as rules (allow rules in deny-all mode, deny rules otherwise), in
        the order the rules made them -- the order the v1 kernel lists them in devices.list."""
        return [DeviceRule(not self.default_allow, t, ma, mi, acc)
                for (t, ma, mi), acc in self.exceptions.items()]

    def __eq__(self, other) -> bool:
        return (isinstance(other, DeviceRules) and self.default_allow == other.default_allow
                and self.exceptions == other.exceptions)

    def __repr__(self) -> str:
        mode = "allow-all" if self.default_allow else "deny-all"
        return f"DeviceRules({mode}, {[r.v1_line() for r in self.exception_rules()]})"


# --- cgroup v1 -------------------------------------------------------------------------------

def read_v1_list(directory: str) -> DeviceRules | None:
    """What ``devices.list`` says now.  ``None`` for allow-all: the kernel then shows only
    ``a *:* rwm`` and hides the deny exceptions, so the state is not fully known."""
    text = read_file(os.path.join(directory, "devices.list")).decode()
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if any(parts[0] == "a" for parts in lines):
        return None
    state = DeviceRules(default_allow=False)
    for dev_type, numbers, access in lines:
        major, minor = numbers.split(":")
        key = (dev_type, None if major == "*" else int(major), None if minor == "*" else int(minor))
        state.exceptions[key] = _canonical_access(access)
    return state


def write_v1_in_order(directory: str, rules: list[DeviceRule], write) -> DeviceRules:
    """Apply ``rules`` to a v1 devices cgroup the runtime has just created, one write per
    rule in the listed order (config-linux.md), after a ``deny a`` that resets what the new
    cgroup inherited from its parent (unless the first rule resets it anyway).  ``write`` is
    as for ``apply_v1``.  Returns the replayed state; a ``devices.list`` that differs from it
    (the kernel and the replay disagree) is an error rather than a silent surprise."""
    field = "linux.resources.devices"
    if not rules or rules[0].type != "a":
        write(directory, "devices.deny", "a", field)
    for rule in rules:
        write(directory, "devices.allow" if rule.allow else "devices.deny", rule.v1_line(), field)
    state = DeviceRules.from_rules(rules)
    shown = read_v1_list(directory)
    if not state.default_allow and (shown is None or shown.exception_rules() != state.exception_rules()):
        listed = "a *:* rwm" if shown is None else ", ".join(r.v1_line() for r in shown.exception_rules())
        raise SetupError("the devices cgroup does not hold the rules written to it",
                         where=os.path.join(directory, "devices.list"),
                         why=f"expected {', '.join(r.v1_line() for r in state.exception_rules())}; "
                             f"the kernel lists {listed}",
                         hint="is another program changing this cgroup? retry the create")
    return state


def apply_v1(directory: str, target: DeviceRules, write) -> None:
    """Bring a v1 devices cgroup to ``target``; ``write(directory, file, line, field)``
    writes one line (the manager's writer, which turns errno into a clear error)."""
    field = "linux.resources.devices"
    current = read_v1_list(directory)
    if target.default_allow:
        # Resetting to allow-all never denies anything transiently; then add the denies.
        write(directory, "devices.allow", "a", field)
        for rule in target.exception_rules():
            write(directory, "devices.deny", rule.v1_line(), field)
        return
    if current is None:
        write(directory, "devices.deny", "a", field)
        current = DeviceRules(default_allow=False)
    if current == target:
        return
    for rule in target.exception_rules():           # add first ...
        have = current.exceptions.get((rule.type, rule.major, rule.minor), "")
        if set(rule.access) - set(have):
            write(directory, "devices.allow", rule.v1_line(), field)
    for key, have in list(current.exceptions.items()):  # ... then take away
        extra = _canonical_access("".join(c for c in have if c not in target.exceptions.get(key, "")))
        if extra:
            write(directory, "devices.deny", DeviceRule(False, *key, extra).v1_line(), field)


# --- cgroup v2: eBPF ----------------------------------------------------------------------

# <linux/bpf.h>
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2
BPF_DEVCG_ACC_MKNOD, BPF_DEVCG_ACC_READ, BPF_DEVCG_ACC_WRITE = 1, 2, 4
BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR = 1, 2
_BPF_SYSCALL = {"x86_64": 321, "aarch64": 280}

# instruction opcodes
_LDX_W = 0x61        # BPF_LDX | BPF_MEM | BPF_W
_AND32_K = 0x54      # BPF_ALU | BPF_AND | BPF_K
_RSH32_K = 0x74      # BPF_ALU | BPF_RSH | BPF_K
_MOV32_X = 0xBC      # BPF_ALU | BPF_MOV | BPF_X
_MOV32_K = 0xB4      # BPF_ALU | BPF_MOV | BPF_K
_JNE_K = 0x55        # BPF_JMP | BPF_JNE | BPF_K
_JNE_X = 0x5D        # BPF_JMP | BPF_JNE | BPF_X
_JEQ_K = 0x15        # BPF_JMP | BPF_JEQ | BPF_K
_EXIT = 0x95         # BPF_JMP | BPF_EXIT
_NEXT = object()     # jump target placeholder: "the next rule's block"


def _insn(code: int, dst: int = 0, src: int = 0, off=0, imm: int = 0):
    return [code, dst, src, off, imm]


def device_program(state: DeviceRules) -> bytes:
    """Compile ``state`` into a BPF_PROG_TYPE_CGROUP_DEVICE program.

    The context is ``struct bpf_cgroup_dev_ctx {u32 access_type; u32 major; u32 minor;}``
    with the device type in the low 16 bits of access_type and the requested access in the
    high 16.  Prologue: r2 = type, r3 = access, r4 = major, r5 = minor.  One block per
    exception, the exception the latest rule made first (later rules win, as in crun's
    program; after the replay all exceptions have the same verdict, so the answers are those
    of the v1 controller whatever the order), each jumping to the next block when the device
    does not match; the last block returns the default.  Allow exceptions need the requested
    access to be a subset of theirs, deny exceptions match on any overlap -- the v1
    controller's rules.
    """
    insns = [
        _insn(_LDX_W, 2, 1, 0), _insn(_AND32_K, 2, imm=0xFFFF),
        _insn(_LDX_W, 3, 1, 0), _insn(_RSH32_K, 3, imm=16),
        _insn(_LDX_W, 4, 1, 4),
        _insn(_LDX_W, 5, 1, 8),
    ]
    verdict = 0 if state.default_allow else 1   # what a matching exception returns
    for rule in reversed(state.exception_rules()):
        block = []
        block.append(_insn(_JNE_K, 2, off=_NEXT,
                           imm=BPF_DEVCG_DEV_CHAR if rule.type == "c" else BPF_DEVCG_DEV_BLOCK))
        mask = ((BPF_DEVCG_ACC_READ if "r" in rule.access else 0)
                | (BPF_DEVCG_ACC_WRITE if "w" in rule.access else 0)
                | (BPF_DEVCG_ACC_MKNOD if "m" in rule.access else 0))
        if mask != 7:
            block.append(_insn(_MOV32_X, 1, 3))
            block.append(_insn(_AND32_K, 1, imm=mask))
            if verdict == 1:   # allow: every requested bit must be in the mask
                block.append(_insn(_JNE_X, 1, 3, off=_NEXT))
            else:              # deny: any requested bit in the mask
                block.append(_insn(_JEQ_K, 1, off=_NEXT, imm=0))
        if rule.major is not None:
            block.append(_insn(_JNE_K, 4, off=_NEXT, imm=rule.major))
        if rule.minor is not None:
            block.append(_insn(_JNE_K, 5, off=_NEXT, imm=rule.minor))
        block.append(_insn(_MOV32_K, 0, imm=verdict))
        block.append(_insn(_EXIT))
        for i, ins in enumerate(block):
            if ins[3] is _NEXT:
                ins[3] = len(block) - i - 1   # offsets count from the following instruction
        insns.extend(block)
    insns.append(_insn(_MOV32_K, 0, imm=1 if state.default_allow else 0))
    insns.append(_insn(_EXIT))
    return b"".join(struct.pack("<BBhi", code, (src << 4) | dst, off, imm)
                    for code, dst, src, off, imm in insns)


def _bpf(cmd: int, attr: bytes) -> tuple[int, bytes]:
    """Call bpf(2); returns (result, the attr buffer as the kernel left it)."""
    from pyoci_nb.runtime import syscalls

    number = _BPF_SYSCALL.get(os.uname().machine)
    if number is None:
        raise OSError(errno.ENOSYS, f"bpf: no syscall number known for {os.uname().machine}")
    buf = ctypes.create_string_buffer(attr, len(attr))
    lib = syscalls.libc()
    result = lib.syscall(ctypes.c_long(number), ctypes.c_long(cmd), buf, ctypes.c_uint(len(attr)))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result, buf.raw


def load_program(program: bytes) -> int:
    """Load a device program; returns its fd.  The verifier's log is in the error."""
    code = ctypes.create_string_buffer(program, len(program))
    license_ = ctypes.create_string_buffer(b"Apache")
    log = ctypes.create_string_buffer(65536)

    def attr(with_log: bool) -> bytes:
        # prog_type, insn_cnt, insns, license, log_level, log_size, log_buf, kern_version,
        # prog_flags, prog_name[16], prog_ifindex, expected_attach_type
        return struct.pack("<IIQQIIQII16sII", BPF_PROG_TYPE_CGROUP_DEVICE, len(program) // 8,
                           ctypes.addressof(code), ctypes.addressof(license_),
                           1 if with_log else 0, len(log) if with_log else 0,
                           ctypes.addressof(log) if with_log else 0, 0, 0, b"pyoci_devices",
                           0, BPF_CGROUP_DEVICE).ljust(128, b"\0")
    try:
        return _bpf(BPF_PROG_LOAD, attr(False))[0]
    except OSError as exc:
        if exc.errno == errno.EACCES or exc.errno == errno.EINVAL:
            try:
                _bpf(BPF_PROG_LOAD, attr(True))
            except OSError:
                pass
            verifier = log.value.decode(errors="replace").strip()
            raise OSError(exc.errno, f"{exc.strerror}; verifier: {verifier[-400:]}") from None
        raise


def attached_programs(cgroup_fd: int) -> list[int]:
    """Ids of the device programs attached to the cgroup (BPF_PROG_QUERY)."""
    ids = (ctypes.c_uint32 * 64)()
    attr = struct.pack("<IIIIQI", cgroup_fd, BPF_CGROUP_DEVICE, 0, 0, ctypes.addressof(ids),
                       64).ljust(64, b"\0")
    _, out = _bpf(BPF_PROG_QUERY, attr)
    count = struct.unpack_from("<I", out, 24)[0]
    return list(ids[:min(count, 64)])


def attach_program(directory: str, state: DeviceRules) -> None:
    """Load the program for ``state`` and make it the only device program of the v2 cgroup
    ``directory``: attach the new one first, then detach the old ones (no window without a
    filter).  The kernel keeps an attached program alive after our fds are closed."""
    where = "linux.resources.devices"
    program = device_program(state)
    try:
        prog_fd = load_program(program)
    except OSError as exc:
        raise UnsupportedError("cannot load the eBPF device filter", where=where,
                               why=f"bpf(BPF_PROG_LOAD, BPF_PROG_TYPE_CGROUP_DEVICE) failed: {exc}",
                               hint="cgroup v2 controls devices only through eBPF: it needs "
                                    "CONFIG_CGROUP_BPF and CAP_SYS_ADMIN (CAP_BPF)") from None
    cgroup_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            old = attached_programs(cgroup_fd)
        except OSError as exc:
            raise SetupError("cannot query the cgroup's device programs", where=directory,
                             why=f"bpf(BPF_PROG_QUERY, BPF_CGROUP_DEVICE) failed: {exc}",
                             hint="the directory must be a cgroup2 cgroup") from None
        try:
            _bpf(BPF_PROG_ATTACH, struct.pack("<IIIII", cgroup_fd, prog_fd, BPF_CGROUP_DEVICE,
                                              BPF_F_ALLOW_MULTI, 0).ljust(32, b"\0"))
        except OSError as exc:
            raise SetupError("cannot attach the eBPF device filter", where=directory,
                             why=f"bpf(BPF_PROG_ATTACH, BPF_CGROUP_DEVICE) failed: {exc}",
                             hint="another program may be attached without BPF_F_ALLOW_MULTI"
                             ) from None
        for prog_id in old:
            detach_program(cgroup_fd, prog_id)
    finally:
        os.close(cgroup_fd)
        os.close(prog_fd)


def detach_program(cgroup_fd: int, prog_id: int) -> None:
    """Detach the device program with this id from the cgroup (gone already: fine)."""
    try:
        fd, _ = _bpf(BPF_PROG_GET_FD_BY_ID, struct.pack("<III", prog_id, 0, 0).ljust(16, b"\0"))
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return
        raise
    try:
        _bpf(BPF_PROG_DETACH, struct.pack("<IIIII", cgroup_fd, fd, BPF_CGROUP_DEVICE, 0, 0)
             .ljust(32, b"\0"))
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
    finally:
        os.close(fd)
