"""linux.seccomp filters on the real kernel: each test forks a child of the pytest process, loads
a filter there with ``pyoci_nb.runtime.seccomp.load`` and tries system calls; the exit status (or
the signal that killed the child) says what the kernel did.  No mocks."""

from __future__ import annotations

import errno
import os
import signal
import threading
import time

import pytest

from pyoci_nb.runtime import seccomp
from seccomp_helpers import (answer_one_notification, errno_of, libc, raw_syscall, run_in_child, start_child,
                             wait_child)

#: an errno mkdir never returns by itself, so seeing it proves the filter answered
CHOSEN_ERRNO = errno.ENOMSG


def allow_all_but(*rules, **extra) -> dict:
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": list(rules)}
    profile.update(extra)
    return profile


MKDIR_NAMES = ["mkdir", "mkdirat"]


@pytest.fixture
def scratch(tmp_path):
    return tmp_path / "made-by-child"


def test_mkdir_works_without_a_filter(scratch):
    """The control of the errno tests: the same child code succeeds when no filter is loaded."""
    assert run_in_child(lambda: errno_of(lambda: os.mkdir(scratch))).exit_code == 0
    assert scratch.is_dir()


def test_errno_rule_makes_mkdir_fail_with_the_chosen_errno(scratch):
    profile = allow_all_but({"names": MKDIR_NAMES, "action": "SCMP_ACT_ERRNO", "errnoRet": CHOSEN_ERRNO})

    def child():
        seccomp.load(profile)
        return errno_of(lambda: os.mkdir(scratch))

    assert run_in_child(child).exit_code == CHOSEN_ERRNO
    assert not scratch.exists()


def test_errno_rule_without_errnoret_answers_eperm(scratch):
    profile = allow_all_but({"names": MKDIR_NAMES, "action": "SCMP_ACT_ERRNO"})

    def child():
        seccomp.load(profile)
        return errno_of(lambda: os.mkdir(scratch))

    assert run_in_child(child).exit_code == errno.EPERM


def test_other_system_calls_still_work_under_an_errno_rule(tmp_path):
    profile = allow_all_but({"names": MKDIR_NAMES, "action": "SCMP_ACT_ERRNO", "errnoRet": CHOSEN_ERRNO})
    target = tmp_path / "file"

    def child():
        seccomp.load(profile)
        target.write_text("written under seccomp")
        return 0

    assert run_in_child(child).exit_code == 0
    assert target.read_text() == "written under seccomp"


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS"])
def test_kill_rule_kills_with_sigsys(scratch, action):
    profile = allow_all_but({"names": MKDIR_NAMES, "action": action})

    def child():
        seccomp.load(profile)
        os.mkdir(scratch)
        return 0

    result = run_in_child(child)
    assert result.signal == signal.SIGSYS, result
    assert not scratch.exists()


def test_kill_process_kills_every_thread_but_kill_thread_only_the_caller(scratch):
    """KILL_THREAD ends the calling thread only: a single-threaded process dies of it, but when a
    non-main thread makes the call, the main thread lives on (exit 7); KILL_PROCESS ends all."""
    def child_for(action):
        def child():
            seccomp.load(allow_all_but({"names": MKDIR_NAMES, "action": action}))
            worker = threading.Thread(target=lambda: os.mkdir(scratch), daemon=True)
            worker.start()
            task = f"/proc/self/task/{worker.native_id}"
            while os.path.exists(task):    # join() would wait for ever on a killed thread
                time.sleep(0.01)
            return 7
        return child

    assert run_in_child(child_for("SCMP_ACT_KILL_THREAD")).exit_code == 7
    assert run_in_child(child_for("SCMP_ACT_KILL_PROCESS")).signal == signal.SIGSYS


def test_trap_rule_raises_a_catchable_sigsys(scratch):
    """SCMP_ACT_TRAP sends SIGSYS, which a handler can catch -- unlike the kill actions."""
    profile = allow_all_but({"names": MKDIR_NAMES, "action": "SCMP_ACT_TRAP"})

    def child():
        caught = []
        signal.signal(signal.SIGSYS, lambda signum, frame: caught.append(signum))
        seccomp.load(profile)
        errno_of(lambda: os.mkdir(scratch))   # skipped by the kernel; its return value is not defined
        return 9 if caught == [signal.SIGSYS] else 1

    assert run_in_child(child).exit_code == 9
    assert not scratch.exists()


def test_log_rule_allows_the_call(scratch):
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": CHOSEN_ERRNO,
               "syscalls": [{"names": MKDIR_NAMES, "action": "SCMP_ACT_LOG"}]}
    with seccomp.compile_filter(profile) as compiled:
        assert "action LOG" in compiled.export_pfc()

    def child():
        seccomp.load(allow_all_but({"names": MKDIR_NAMES, "action": "SCMP_ACT_LOG"}))
        return errno_of(lambda: os.mkdir(scratch))

    assert run_in_child(child).exit_code == 0
    assert scratch.is_dir()


def test_personality_arg_rule_matches_only_that_value():
    """An args comparison restricts the rule to calls with that argument: personality(8)
    (PER_LINUX32) is refused, personality(0xffffffff) (a query) still works."""
    profile = allow_all_but({"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": CHOSEN_ERRNO,
                             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]})

    def child():
        seccomp.load(profile)
        query = raw_syscall("personality", 0xFFFFFFFF)
        refused = raw_syscall("personality", 8)
        return 10 if (query, refused) == (0, CHOSEN_ERRNO) else 1

    assert run_in_child(child).exit_code == 10


# umask(2) takes any mode and never fails, so its argument is free for comparisons.
@pytest.mark.parametrize("op, value, value_two, matching, not_matching", [
    ("SCMP_CMP_EQ", 0o22, 0, 0o22, 0o23),
    ("SCMP_CMP_NE", 0o22, 0, 0o23, 0o22),
    ("SCMP_CMP_LT", 0o22, 0, 0o21, 0o22),
    ("SCMP_CMP_LE", 0o22, 0, 0o22, 0o23),
    ("SCMP_CMP_GE", 0o22, 0, 0o22, 0o21),
    ("SCMP_CMP_GT", 0o22, 0, 0o23, 0o22),
    ("SCMP_CMP_MASKED_EQ", 0o700, 0o700, 0o755, 0o055),
])
def test_each_operator_compares_the_argument(op, value, value_two, matching, not_matching):
    profile = allow_all_but({"names": ["umask"], "action": "SCMP_ACT_ERRNO", "errnoRet": CHOSEN_ERRNO,
                             "args": [{"index": 0, "value": value, "valueTwo": value_two, "op": op}]})

    def child():
        seccomp.load(profile)
        hit = raw_syscall("umask", matching)
        miss = raw_syscall("umask", not_matching)
        return 11 if (hit, miss) == (CHOSEN_ERRNO, 0) else 1

    assert run_in_child(child).exit_code == 11


def test_comparisons_of_different_arguments_must_all_match():
    """getpriority(which, who): the rule needs which == PRIO_PROCESS *and* who == 0."""
    profile = allow_all_but({"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": CHOSEN_ERRNO,
                             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                                      {"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]})

    def child():
        seccomp.load(profile)
        both = errno_of(lambda: os.getpriority(os.PRIO_PROCESS, 0))
        first_only = errno_of(lambda: os.getpriority(os.PRIO_PROCESS, os.getpid()))
        second_only = errno_of(lambda: os.getpriority(os.PRIO_PGRP, 0))
        return 12 if (both, first_only, second_only) == (CHOSEN_ERRNO, 0, 0) else 1

    assert run_in_child(child).exit_code == 12


def test_comparisons_of_the_same_argument_become_separate_rules_as_in_runc():
    """Two comparisons of index 0 are each a rule of their own (OR), as runc does: umask values
    above 0o700 and below 0o10 are refused, 0o100 in between is not (AND would match nothing)."""
    profile = allow_all_but({"names": ["umask"], "action": "SCMP_ACT_ERRNO", "errnoRet": CHOSEN_ERRNO,
                             "args": [{"index": 0, "value": 0o700, "op": "SCMP_CMP_GT"},
                                      {"index": 0, "value": 0o10, "op": "SCMP_CMP_LT"}]})

    def child():
        seccomp.load(profile)
        results = (raw_syscall("umask", 0o701), raw_syscall("umask", 0o5), raw_syscall("umask", 0o100))
        return 13 if results == (CHOSEN_ERRNO, CHOSEN_ERRNO, 0) else 1

    assert run_in_child(child).exit_code == 13


def test_unknown_system_call_names_are_skipped_like_runc(scratch):
    profile = allow_all_but({"names": ["no_such_syscall_at_all", *MKDIR_NAMES], "action": "SCMP_ACT_ERRNO",
                             "errnoRet": CHOSEN_ERRNO})
    with seccomp.compile_filter(profile) as compiled:
        assert compiled.skipped_names == ["no_such_syscall_at_all"]

    def child():
        seccomp.load(profile)
        return errno_of(lambda: os.mkdir(scratch))

    assert run_in_child(child).exit_code == CHOSEN_ERRNO


def test_rule_with_the_default_action_is_skipped():
    """libseccomp refuses a rule whose action is the default one; runc skips it silently."""
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": CHOSEN_ERRNO,
               "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": CHOSEN_ERRNO},
                            {"names": ["mkdir"], "action": "SCMP_ACT_ALLOW"}]}
    with seccomp.compile_filter(profile) as compiled:
        assert "ALLOW" in compiled.export_pfc()


def test_defaultaction_errno_with_defaulterrnoret_refuses_what_is_not_allowed(scratch):
    """An allowlist profile (the Docker-like default) answers everything else with its errno."""
    profile = seccomp.default_profile()
    profile["defaultErrnoRet"] = CHOSEN_ERRNO

    def child():
        seccomp.load(profile)
        return raw_syscall("keyctl", 0, 0, 0, 0, 0)

    assert run_in_child(child).exit_code == CHOSEN_ERRNO


def test_notify_returns_a_listener_fd_that_receives_the_calls(tmp_path, scratch):
    """SCMP_ACT_NOTIFY: load() returns the listener fd; an agent holding it sees the child's mkdir
    (its pid and system call number) and answers it -- here with an errno."""
    import socket

    profile = allow_all_but({"names": MKDIR_NAMES, "action": "SCMP_ACT_NOTIFY"},
                            listenerPath=str(tmp_path / "agent.sock"))
    parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

    def child():
        parent_end.close()
        fd = seccomp.load(profile)
        if fd is None:
            return 2
        socket.send_fds(child_end, [b"fd"], [fd])
        os.close(fd)
        return errno_of(lambda: os.mkdir(scratch))

    pid = start_child(child)
    child_end.close()
    try:
        parent_end.settimeout(20)
        _, fds, _, _ = socket.recv_fds(parent_end, 16, 1)
        try:
            notification = answer_one_notification(fds[0], error=CHOSEN_ERRNO)
        finally:
            os.close(fds[0])
    finally:
        parent_end.close()
        result = wait_child(pid)
    assert result.exit_code == CHOSEN_ERRNO, result
    assert notification["pid"] == pid
    names = {seccomp._lib().seccomp_syscall_resolve_name(name.encode()) for name in MKDIR_NAMES}
    assert notification["nr"] in names
    assert not scratch.exists()


def test_send_listener_passes_the_fd_and_the_container_process_state(tmp_path):
    """runtime.md: the agent gets one connection with the container process state as JSON and
    the seccomp fd in SCM_RIGHTS."""
    import json
    import socket

    path = str(tmp_path / "agent.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    received = {}

    def agent():
        conn, _ = server.accept()
        with conn:
            chunks, fds = [], []
            while True:
                data, new_fds, _, _ = socket.recv_fds(conn, 65536, 4)
                fds += new_fds
                if not data:
                    break
                chunks.append(data)
        received["state"] = json.loads(b"".join(chunks))
        received["fd_target"] = os.readlink(f"/proc/self/fd/{fds[0]}")
        for fd in fds:
            os.close(fd)

    thread = threading.Thread(target=agent)
    thread.start()
    state = {"ociVersion": "1.3.0", "id": "c1", "status": "creating", "pid": os.getpid(),
             "bundle": str(tmp_path), "annotations": {"k": "v"}}
    read_end, write_end = os.pipe()
    try:
        seccomp.send_listener(path, read_end, state, "MKNOD=/dev/null")
    finally:
        thread.join(timeout=20)
        server.close()
        os.close(read_end)
        os.close(write_end)
    assert received["state"] == {"ociVersion": "1.3.0", "fds": ["seccompFd"], "pid": os.getpid(),
                                 "metadata": "MKNOD=/dev/null", "state": state}
    assert received["fd_target"].startswith("pipe:")


def test_send_listener_failure_names_listenerpath(tmp_path):
    from pyoci_nb.errors import SetupError

    read_end, write_end = os.pipe()
    try:
        with pytest.raises(SetupError) as info:
            seccomp.send_listener(str(tmp_path / "nobody-listens.sock"), read_end, {"pid": 1}, "")
    finally:
        os.close(read_end)
        os.close(write_end)
    assert info.value.where == "linux.seccomp.listenerPath"
    assert "nobody-listens.sock" in str(info.value)


@pytest.mark.parametrize("flag", ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                                  "SECCOMP_FILTER_FLAG_SPEC_ALLOW"])
def test_supported_flags_load(scratch, flag):
    assert flag in seccomp.features()["supportedFlags"]
    profile = allow_all_but({"names": MKDIR_NAMES, "action": "SCMP_ACT_ERRNO", "errnoRet": CHOSEN_ERRNO},
                            flags=[flag])

    def child():
        seccomp.load(profile)
        return errno_of(lambda: os.mkdir(scratch))

    assert run_in_child(child).exit_code == CHOSEN_ERRNO


@pytest.mark.parametrize("flags, other_thread_errno", [
    (["SECCOMP_FILTER_FLAG_TSYNC"], CHOSEN_ERRNO),
    ([], 0),
])
def test_tsync_puts_the_filter_on_every_thread(tmp_path, flags, other_thread_errno):
    """Without TSYNC a filter binds the loading thread only; with it, all threads of the process."""
    profile = allow_all_but({"names": MKDIR_NAMES, "action": "SCMP_ACT_ERRNO", "errnoRet": CHOSEN_ERRNO},
                            flags=flags)

    def child():
        go = threading.Event()
        result = {}

        def other_thread():
            go.wait()
            result["errno"] = errno_of(lambda: os.mkdir(tmp_path / "from-other-thread"))

        thread = threading.Thread(target=other_thread)
        thread.start()          # exists before the filter is loaded
        seccomp.load(profile)
        go.set()
        thread.join()
        return result["errno"]

    assert run_in_child(child).exit_code == other_thread_errno


def test_unsupported_flag_is_refused_clearly():
    missing = [f for f in seccomp.KNOWN_FLAGS if f not in seccomp.features()["supportedFlags"]]
    if not missing:
        pytest.skip("this libseccomp and kernel support every known flag")
    from pyoci_nb.errors import UnsupportedError

    with pytest.raises(UnsupportedError) as info:
        seccomp.compile_filter({"defaultAction": "SCMP_ACT_ALLOW", "flags": [missing[0]]})
    assert info.value.where == "linux.seccomp.flags[0]"
    assert missing[0] in str(info.value)


def test_loading_without_no_new_privs_needs_cap_sys_admin(scratch):
    """Without no_new_privs the kernel lets only CAP_SYS_ADMIN load a filter: an unprivileged
    child gets a SetupError that says so; with no_new_privs set first it loads (why the runtime
    loads before dropping capabilities when process.noNewPrivileges is false)."""
    from pyoci_nb.errors import SetupError

    profile = allow_all_but({"names": MKDIR_NAMES, "action": "SCMP_ACT_ERRNO", "errnoRet": CHOSEN_ERRNO})
    pr_set_no_new_privs = 38

    def child_for(no_new_privs: bool):
        def child():
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)     # drops every capability
            if no_new_privs:
                assert libc.prctl(pr_set_no_new_privs, 1, 0, 0, 0) == 0
            try:
                seccomp.load(profile)
            except SetupError as exc:
                return 20 if "CAP_SYS_ADMIN" in str(exc) and "noNewPrivileges" in str(exc) else 21
            return 22
        return child

    assert run_in_child(child_for(False)).exit_code == 20
    assert run_in_child(child_for(True)).exit_code == 22
