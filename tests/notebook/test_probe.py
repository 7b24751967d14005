"""pyoci_nb.probe(): real checks in a fresh child process, and real explanations.

Each "missing piece" test builds the restriction for real around the probe's child -- a seccomp
filter (libseccomp, as Docker's default profile does), user.max_user_namespaces=0 in a user
namespace, a /proc with a masked path (as Docker masks /proc/keys), an unprivileged user -- and
checks that the probe finds the piece missing and names the cause and the fix.
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from html import escape

import pytest

from pyoci_nb.notebook import probe as probe_module
from pyoci_nb.notebook.probe import CHECK_NAMES, ProbeResult, probe, run_probe

pytestmark = pytest.mark.root


def seccomp_denying_code(syscalls: tuple[str, ...], thread_sync: bool = False) -> str:
    """Python source that installs a real seccomp filter (libseccomp) making ``syscalls`` fail
    with EPERM, as Docker's default profile does for unshare/mount/pivot_root.  With
    ``thread_sync`` the filter covers every thread of the process (SCMP_FLTATR_CTL_TSYNC)."""
    return textwrap.dedent(f"""
        import ctypes
        _lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        _lib.seccomp_init.restype = ctypes.c_void_p
        _lib.seccomp_init.argtypes = [ctypes.c_uint32]
        _lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
        _lib.seccomp_load.argtypes = [ctypes.c_void_p]
        _lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        _ctx = _lib.seccomp_init(0x7fff0000)  # SCMP_ACT_ALLOW
        if {thread_sync!r}:
            assert _lib.seccomp_attr_set(_ctx, 4, 1) == 0  # SCMP_FLTATR_CTL_TSYNC
        for _name in {tuple(syscalls)!r}:
            _nr = _lib.seccomp_syscall_resolve_name(_name.encode())
            assert _lib.seccomp_rule_add(_ctx, 0x00050000 | 1, _nr, 0) == 0  # SCMP_ACT_ERRNO(EPERM)
        assert _lib.seccomp_load(_ctx) == 0
    """)


@pytest.fixture
def seccomp_wrapper(tmp_path):
    """A program that installs the filter, then execs its arguments (the filter is inherited)."""
    script = tmp_path / "seccomp_wrapper.py"
    script.write_text(seccomp_denying_code(("unshare", "mount", "pivot_root"))
                      + "import os, sys\nos.execv(sys.argv[1], sys.argv[1:])\n")
    return [sys.executable, str(script)]


def test_probe_as_root_on_this_host_finds_every_piece():
    result = probe(refresh=True)
    assert [check.name for check in result.checks] == list(CHECK_NAMES)
    assert result.mode == "root"
    failed = [(check.name, check.why) for check in result.checks if not check.ok]
    assert failed == []
    assert result.can_run_containers
    assert probe() is result, "probe() is cached per process"
    assert probe(refresh=True) is not result


def test_probe_reprs_show_every_check_with_reasons(seccomp_wrapper):
    ok = probe()
    html, text = ok._repr_html_(), str(ok)
    for name in CHECK_NAMES:
        assert escape(name) in html
        assert name in text
    broken = run_probe(seccomp_wrapper)
    html = broken._repr_html_()
    assert "missing" in html and "seccomp" in html
    from IPython.lib.pretty import pretty

    assert "MISSING" in pretty(broken) and "seccomp" in pretty(broken)
    # the self-contained fallback table carries the same facts
    fallback = probe_module.probe_html_table(broken)
    assert "<table>" in fallback and "seccomp=unconfined" in fallback


def test_seccomp_filter_is_named_as_the_cause(seccomp_wrapper):
    result = run_probe(seccomp_wrapper)
    assert result.context["seccomp_mode"] == 2
    assert not result.can_run_containers
    userns = result.check("user namespaces")
    assert not userns.ok and "EPERM" in userns.why and "seccomp" in userns.why
    assert "seccomp=unconfined" in userns.fix
    for name in ("mount namespace + tmpfs", "pid namespace + fresh /proc", "pivot_root", "network namespace"):
        check = result.check(name)
        assert not check.ok and "seccomp" in check.why, (name, check.why)
    assert result.check("cgroup writes").ok, "mkdir/write of a cgroup is not a filtered syscall"
    assert {check.name for check in result.missing()} >= {"mount namespace + tmpfs", "pivot_root"}


def test_max_user_namespaces_zero_is_named_as_the_cause():
    limit_zero = ["unshare", "--user", "--map-root-user", "sh", "-c",
                  'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"', "sh"]
    result = run_probe(limit_zero)
    userns = result.check("user namespaces")
    assert not userns.ok
    assert "ENOSPC" in userns.why and "max_user_namespaces" in userns.why
    assert "sysctl -w user.max_user_namespaces" in userns.fix
    # root of that user namespace can still make every other namespace
    assert result.can_run_containers
    assert [c.name for c in result.missing(rootless=True)] == ["user namespaces"]


def test_masked_proc_is_named_as_the_cause():
    # /proc/keys hidden under /dev/null as Docker does, then a user namespace (as rootless or
    # nested runtimes use): the kernel refuses a fresh proc mount there.
    masked = ["unshare", "--mount", "sh", "-c",
              'mount --bind /dev/null /proc/keys && exec unshare --user --map-root-user "$@"', "sh"]
    result = run_probe(masked)
    assert "/proc/keys" in result.context["proc_overmounts"]
    proc = result.check("pid namespace + fresh /proc")
    assert not proc.ok
    assert "masked" in proc.why and "/proc/keys" in proc.why and "EPERM" in proc.why
    assert "systempaths=unconfined" in proc.fix
    assert result.check("mount namespace + tmpfs").ok
    assert not result.can_run_containers


@pytest.mark.skipif(not shutil.which("setpriv") or not os.path.exists("/usr/bin/python3"),
                    reason="needs setpriv and /usr/bin/python3")
def test_unprivileged_user_probes_rootless():
    result = run_probe(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"],
                       python="/usr/bin/python3")
    assert result.mode == "rootless" and result.context["euid"] == 65534
    if not result.check("user namespaces").ok:
        pytest.skip(f"user namespaces are not available to unprivileged users here: {result.check('user namespaces').why}")
    assert result.can_run_containers, result.missing()
    cgroups = result.check("cgroup writes")
    assert not cgroups.ok and "EACCES" in cgroups.why and "delegated" in cgroups.why
    assert result.missing(cgroups=True) == [cgroups]


def test_report_round_trip_keeps_explanations(seccomp_wrapper):
    result = run_probe(seccomp_wrapper)
    data = result.to_dict()
    assert data["can_run_containers"] is False
    assert any("seccomp" in check["why"] for check in data["checks"])
    assert isinstance(result, ProbeResult)
