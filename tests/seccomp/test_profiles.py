"""The Docker-like default profile (on the real kernel, in forked children), profile validation
errors that name the JSON path, and the features report."""

from __future__ import annotations

import copy
import errno
import json
import os

import pytest

from pyoci_nb.errors import ConfigError, UnsupportedError
from pyoci_nb.runtime import seccomp
from seccomp_helpers import errno_of, raw_syscall, run_in_child

CLONE_NEWUTS = 0x04000000
CLONE_NEWUSER = 0x10000000


def unshare_errno() -> int:
    return raw_syscall("unshare", CLONE_NEWUTS)


def test_unshare_works_without_the_profile():
    """Control: the test process (root) may unshare, so the refusal below is the filter's."""
    assert run_in_child(unshare_errno).exit_code == 0


def test_default_profile_blocks_unshare_mount_keyctl_and_namespace_clones():
    profile = seccomp.default_profile()

    def child():
        seccomp.load(profile)
        results = (
            unshare_errno(),
            raw_syscall("mount", 0, 0, 0, 0, 0),
            raw_syscall("keyctl", 0, 0, 0, 0, 0),
            raw_syscall("setns", 0, 0),
            raw_syscall("clone", CLONE_NEWUSER, 0, 0, 0, 0),
            raw_syscall("clone3", 0, 0),
        )
        expected = (errno.EPERM,) * 5 + (errno.ENOSYS,)   # clone3: ENOSYS so libc falls back to clone
        return 30 if results == expected else 31

    assert run_in_child(child).exit_code == 30


def test_ordinary_programs_run_under_the_default_profile(tmp_path):
    """Files, directories, fork/exec/wait, sockets and threads all keep working."""
    import socket
    import subprocess
    import threading

    profile = seccomp.default_profile()

    def child():
        seccomp.load(profile)
        (tmp_path / "dir").mkdir()
        (tmp_path / "dir" / "file").write_text("ok")
        out = subprocess.run(["/usr/bin/busybox", "cat", str(tmp_path / "dir" / "file")],
                             capture_output=True, check=True).stdout
        a, b = socket.socketpair()
        a.sendall(b"x")
        thread = threading.Thread(target=lambda: None)
        thread.start()
        thread.join()
        return 32 if out == b"ok" and b.recv(1) == b"x" else 33

    assert run_in_child(child).exit_code == 32


def test_cap_sys_admin_lets_the_default_profile_allow_unshare():
    profile = seccomp.default_profile(capabilities=["CAP_SYS_ADMIN"])
    names = {name for rule in profile["syscalls"] for name in rule["names"]}
    assert {"unshare", "mount", "setns", "clone3"} <= names

    def child():
        seccomp.load(profile)
        return unshare_errno()

    assert run_in_child(child).exit_code == 0


def test_default_profile_shape():
    profile = seccomp.default_profile()
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    assert profile["defaultErrnoRet"] == errno.EPERM
    assert profile["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    allowed = {name for rule in profile["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW" and "args" not in rule
               for name in rule["names"]}
    for blocked in ("unshare", "mount", "umount2", "setns", "keyctl", "add_key", "request_key", "bpf",
                    "kexec_load", "init_module", "reboot", "swapon", "chroot", "pivot_root", "clone3",
                    "open_by_handle_at", "settimeofday", "acct", "iopl"):
        assert blocked not in allowed, blocked
    for needed in ("read", "write", "execve", "mmap", "arch_prctl", "exit_group", "wait4", "ptrace"):
        assert needed in allowed, needed


def test_default_profile_for_other_architectures_and_old_kernels():
    arm = seccomp.default_profile(arch="SCMP_ARCH_AARCH64")
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    arm_names = {name for rule in arm["syscalls"] for name in rule["names"]}
    assert "set_tls" in arm_names and "arch_prctl" not in arm_names
    s390 = seccomp.default_profile(arch="SCMP_ARCH_S390X")
    clone_rules = [rule for rule in s390["syscalls"] if rule["names"] == ["clone"]]
    assert [rule["args"][0]["index"] for rule in clone_rules] == [1]   # s390 puts the flags second
    old = seccomp.default_profile(kernel="4.4.0-210-generic")
    assert "ptrace" not in {name for rule in old["syscalls"] for name in rule["names"]}
    with seccomp.compile_filter(arm):      # libseccomp builds filters for other ABIs too
        pass


def test_default_profile_is_a_valid_linux_seccomp(runtime_spec_dir):
    """A config.json carrying the profile validates against the runtime spec's config-schema.json."""
    jsonschema = pytest.importorskip("jsonschema")
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    from pyoci_nb.spec.defaults import default_config

    registry = Registry().with_resources(
        (path.name, Resource.from_contents(json.loads(path.read_text()), default_specification=DRAFT4))
        for path in runtime_spec_dir.glob("*.json") if not path.name.startswith("runc-"))
    validator = jsonschema.Draft4Validator(json.loads((runtime_spec_dir / "config-schema.json").read_text()),
                                           registry=registry)
    for caps in ((), ("CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_TIME")):
        config = default_config()
        config["linux"]["seccomp"] = seccomp.default_profile(capabilities=caps)
        errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(config)]
        assert errors == []
    broken = default_config()
    broken["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_NOPE"}
    assert list(validator.iter_errors(broken)), "the validator does check linux.seccomp"


GOOD = {"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                      "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]}]}


def changed(path: str, value):
    """GOOD with the value at ``path`` (dots and [n] like the error paths) replaced or, for
    value ``...``, removed."""
    profile = copy.deepcopy(GOOD)
    keys = [int(part) if part.isdigit() else part
            for part in path.replace("[", ".").replace("]", "").split(".")]
    target = profile
    for key in keys[:-1]:
        target = target[key]
    if value is ...:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return profile


@pytest.mark.parametrize("profile, where, words", [
    (changed("syscalls[0].action", "SCMP_ACT_BOGUS"), "linux.seccomp.syscalls[0].action", "unknown seccomp action"),
    (changed("defaultAction", "ALLOW"), "linux.seccomp.defaultAction", "unknown seccomp action"),
    (changed("defaultAction", ...), "linux.seccomp.defaultAction", "missing"),
    (changed("architectures", ["SCMP_ARCH_PDP11"]), "linux.seccomp.architectures[0]", "unknown seccomp architecture"),
    (changed("syscalls[0].args[0].op", "SCMP_CMP_ABOUT"), "linux.seccomp.syscalls[0].args[0].op", "unknown seccomp operator"),
    (changed("syscalls[0].args[0].op", ...), "linux.seccomp.syscalls[0].args[0].op", "missing"),
    (changed("syscalls[0].args[0].index", 6), "linux.seccomp.syscalls[0].args[0].index", "out of range"),
    (changed("syscalls[0].args[0].value", "0"), "linux.seccomp.syscalls[0].args[0].value", "not an unsigned 64-bit integer"),
    (changed("syscalls[0].args[0].value", -1), "linux.seccomp.syscalls[0].args[0].value", "out of range"),
    (changed("syscalls[0].args[0].valueTwo", 2 ** 64), "linux.seccomp.syscalls[0].args[0].valueTwo", "out of range"),
    (changed("syscalls[0].names", "mkdir"), "linux.seccomp.syscalls[0].names", "non-empty array"),
    (changed("syscalls[0].names", []), "linux.seccomp.syscalls[0].names", "non-empty array"),
    (changed("syscalls[0].names", ["mkdir", 5]), "linux.seccomp.syscalls[0].names[1]", "not a system call name"),
    (changed("syscalls[0].errnoRet", True), "linux.seccomp.syscalls[0].errnoRet", "not an errno number"),
    (changed("syscalls[0].errnoRet", 5000), "linux.seccomp.syscalls[0].errnoRet", "out of range"),
    (changed("syscalls[0].action", "SCMP_ACT_KILL"), "linux.seccomp.syscalls[0].errnoRet", "takes no errno"),
    (changed("defaultErrnoRet", 1), "linux.seccomp.defaultErrnoRet", "takes no errno"),
    (changed("syscalls", {"names": ["mkdir"]}), "linux.seccomp.syscalls", "not an array"),
    (changed("syscalls[0]", "mkdir"), "linux.seccomp.syscalls[0]", "not an object"),
    (changed("flags", ["SECCOMP_FILTER_FLAG_FAST"]), "linux.seccomp.flags[0]", "unknown seccomp filter flag"),
    (changed("defaultAction", "SCMP_ACT_NOTIFY"), "linux.seccomp.defaultAction", "cannot be the default action"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
      "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_NOTIFY"}]},
     "linux.seccomp.syscalls[0].names[1]", "write"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]},
     "linux.seccomp.listenerPath", "needs listenerPath"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "agent.sock",
      "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]},
     "linux.seccomp.listenerPath", "not an absolute path"),
    ("SCMP_ACT_ALLOW", "linux.seccomp", "not an object"),
])
def test_bad_profiles_are_refused_naming_the_field(profile, where, words):
    with pytest.raises(ConfigError) as info:
        seccomp.compile_filter(profile)
    assert info.value.where == where
    assert words in str(info.value)
    assert info.value.why, "the error says which rule was broken"


def test_bad_action_error_lists_the_allowed_actions():
    with pytest.raises(ConfigError) as info:
        seccomp.compile_filter(changed("syscalls[0].action", "SCMP_ACT_BOGUS"))
    message = str(info.value)
    assert "'SCMP_ACT_BOGUS'" in message
    for action in seccomp.ACTIONS:
        assert action in message


def test_architecture_unknown_to_libseccomp_is_unsupported_not_ignored():
    known_to_spec_only = [a for a in seccomp.ARCHITECTURES if a not in seccomp.features()["archs"]]
    if not known_to_spec_only:
        pytest.skip("this libseccomp knows every architecture of the runtime spec")
    with pytest.raises(UnsupportedError) as info:
        seccomp.compile_filter(changed("architectures", [known_to_spec_only[0]]))
    assert info.value.where == "linux.seccomp.architectures[0]"
    assert seccomp.library_version() in str(info.value)


def test_flags_default_to_spec_allow_like_runc_and_an_empty_list_means_none():
    """runc sets SECCOMP_FILTER_FLAG_SPEC_ALLOW when a profile has no flags key; [] sets none.
    The flag is visible in /proc/PID/status of a process whose filter was loaded with it only on
    kernels that force the mitigation, so this checks the attribute libseccomp was given."""
    if "SECCOMP_FILTER_FLAG_SPEC_ALLOW" not in seccomp.features()["supportedFlags"]:
        pytest.skip("SPEC_ALLOW is not supported here")
    lib = seccomp._lib()
    import ctypes

    lib.seccomp_attr_get.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_uint32)]
    ssb_attribute = 7

    def ssb(profile) -> int:
        with seccomp.compile_filter(profile) as compiled:
            value = ctypes.c_uint32(99)
            assert lib.seccomp_attr_get(compiled._ctx, ssb_attribute, ctypes.byref(value)) == 0
            return value.value

    assert ssb({"defaultAction": "SCMP_ACT_ALLOW"}) == 1
    assert ssb({"defaultAction": "SCMP_ACT_ALLOW", "flags": []}) == 0
    assert ssb({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG"]}) == 0


def test_features_match_the_schema_and_this_host(runtime_spec_dir):
    features = seccomp.features()
    defs = json.loads((runtime_spec_dir / "defs-linux.json").read_text())["definitions"]
    assert features["enabled"] is True
    assert set(features["actions"]) <= set(defs["SeccompAction"]["enum"])
    assert set(features["operators"]) == set(defs["SeccompOperators"]["enum"])
    assert set(features["archs"]) <= set(defs["SeccompArch"]["enum"])
    assert "SCMP_ARCH_X86_64" in features["archs"]
    assert set(features["knownFlags"]) <= set(defs["SeccompFlag"]["enum"])
    assert set(features["supportedFlags"]) <= set(features["knownFlags"])
    assert seccomp.library_version().count(".") == 2
    # every action listed really compiles and every supported flag really loads
    for action in features["actions"]:
        rule = {"names": ["mkdir"], "action": action}
        extra = {"listenerPath": "/run/agent.sock"} if action == "SCMP_ACT_NOTIFY" else {}
        seccomp.compile_filter({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule], **extra}).close()


def test_compile_filter_loads_nothing_into_the_caller(tmp_path):
    """compile_filter runs in the runtime before fork: it must not filter the runtime itself."""
    with seccomp.compile_filter({"defaultAction": "SCMP_ACT_ALLOW",
                                 "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL"}]}):
        pass
    with open(f"/proc/{os.getpid()}/status") as status:
        assert "Seccomp:\t0" in status.read()
    assert errno_of(lambda: os.mkdir(tmp_path / "still-allowed")) == 0
