"""``pyoci_nb.probe()``: what this host lets a container runtime do, and why not when it does not.

A runtime that follows the OCI runtime spec needs, for a Linux container: the namespaces listed
in ``linux.namespaces`` (runtime-spec config-linux.md "Namespaces": pid, mount, uts, ipc, network,
user), a fresh ``/proc`` in the new pid namespace (``mounts``), ``pivot_root`` into ``root.path``,
and, when ``linux.resources`` is set, writable cgroups.  Hosts take these away in ways that all look
alike from the outside (``EPERM``): a seccomp profile (Docker's default blocks ``unshare``,
``mount`` and ``pivot_root``), an AppArmor profile, sysctls (``user.max_user_namespaces=0``,
``kernel.unprivileged_userns_clone=0``, ``kernel.apparmor_restrict_unprivileged_userns=1``), a
``/proc`` with masked paths (the kernel refuses a new proc mount inside a user namespace while parts
of the host's /proc are hidden), a read-only cgroupfs.

The probe finds out for real: it runs the checks in a *fresh* Python process (never a fork of the
caller, which may be a multi-threaded Jupyter kernel), which forks one short-lived child per check
and performs the very system calls a runtime would (``unshare``, ``mount``, ``pivot_root``, a cgroup
``mkdir`` + write).  Each failure is explained from what the probe saw (the errno, the process's
seccomp mode, its AppArmor label, the sysctls, /proc's overmounts) with a fix.  The result is cached
per process; ``probe(refresh=True)`` runs it again.

This file is also the probe's child program: ``python probe.py`` prints the checks as JSON.  Its
module-level imports are therefore standard library only.
"""

from __future__ import annotations

import ctypes
import errno as errno_module
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field

if __name__ == "__main__":  # run as the probe's child program (python -I -S probe.py)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
# the runtime's syscall layer (standard library only): the same constants and libc the runtime uses
from pyoci_nb.runtime import namespaces  # noqa: E402
from pyoci_nb.runtime.syscalls import (  # noqa: E402
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    MNT_DETACH,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_REC,
)
from pyoci_nb.runtime.syscalls import libc as _libc

# --------------------------------------------------------------------------------------------
# Child side: runs in the fresh probe process (``python probe.py``).
# --------------------------------------------------------------------------------------------

CAP_SYS_ADMIN = 21

#: Check names, in the order they are shown.
CHECK_NAMES = (
    "user namespaces",
    "mount namespace + tmpfs",
    "pid namespace + fresh /proc",
    "uts + ipc namespaces",
    "pivot_root",
    "network namespace",
    "cgroup writes",
)


class _StepFailed(Exception):
    def __init__(self, step: str, err: int):
        super().__init__(step, err)
        self.step = step
        self.errno = err


def _call(step: str, result: int) -> None:
    if result != 0:
        raise _StepFailed(step, ctypes.get_errno())


def _unshare(flags: int, step: str = "unshare") -> None:
    _call(step, _libc().unshare(flags))


def _mount(source, target, fstype, flags, data, step):
    def enc(s):
        return (s.encode() if isinstance(s, str) else s)
    _call(step, _libc().mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)))


def _write(path: str, text: str, step: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as exc:
        raise _StepFailed(step, exc.errno or errno_module.EIO) from None


def _enter_user_namespace(extra_flags: int = 0) -> None:
    """Become root of a new user namespace (what a rootless runtime does first)."""
    uid, gid = os.geteuid(), os.getegid()
    _unshare(CLONE_NEWUSER | extra_flags, "unshare(CLONE_NEWUSER)")
    _write("/proc/self/setgroups", "deny", "write /proc/self/setgroups")
    _write("/proc/self/uid_map", f"0 {uid} 1", "write /proc/self/uid_map")
    _write("/proc/self/gid_map", f"0 {gid} 1", "write /proc/self/gid_map")


def _in_child(function, use_user_namespace: bool, scratch: str) -> dict:
    """Run ``function(scratch)`` in a forked child of this (single-threaded) probe process."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_end)
        try:
            if use_user_namespace:
                _enter_user_namespace()
            detail = function(scratch, write_end) or ""
            outcome = {"ok": True, "detail": detail}
        except _StepFailed as failed:
            outcome = {"ok": False, "step": failed.step, "errno": failed.errno}
        except BaseException as exc:  # report anything, never let the child return into the caller
            outcome = {"ok": False, "step": type(exc).__name__, "errno": getattr(exc, "errno", None) or 0,
                       "detail": str(exc)}
        try:
            os.write(write_end, (json.dumps(outcome) + "\n").encode())
        finally:
            os._exit(0)
    os.close(write_end)
    chunks = []
    while True:
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    lines = b"".join(chunks).decode().splitlines()
    if not lines:
        return {"ok": False, "step": "child", "errno": 0, "detail": "the probe child died without a report"}
    return json.loads(lines[-1])


def _check_user_namespace(scratch, report_fd):
    return "new user namespace with uid/gid maps written"


def _check_mount(scratch, report_fd):
    _unshare(CLONE_NEWNS, "unshare(CLONE_NEWNS)")
    _mount(None, "/", None, MS_REC | MS_PRIVATE, None, "mount --make-rprivate /")
    _mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k", "mount tmpfs")
    return "private mount namespace; tmpfs mounted"


def _check_pid_proc(scratch, report_fd):
    _unshare(CLONE_NEWPID | CLONE_NEWNS, "unshare(CLONE_NEWPID|CLONE_NEWNS)")
    _mount(None, "/", None, MS_REC | MS_PRIVATE, None, "mount --make-rprivate /")
    pid = os.fork()
    if pid == 0:  # pid 1 of the new pid namespace mounts its own /proc
        try:
            if os.getpid() != 1:
                raise _StepFailed("getpid() == 1 in the new pid namespace", errno_module.EINVAL)
            _mount("proc", scratch, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None, "mount proc")
            with open(os.path.join(scratch, "self", "stat")) as f:
                own_pid = f.read().split()[0]
            outcome = {"ok": True, "detail": f"pid 1 in a new pid namespace; fresh /proc shows pid {own_pid}"}
        except _StepFailed as failed:
            outcome = {"ok": False, "step": failed.step, "errno": failed.errno}
        os.write(report_fd, (json.dumps(outcome) + "\n").encode())
        os._exit(0)
    os.waitpid(pid, 0)
    # the grandchild's report is the last line on the pipe; make the caller use it
    os._exit(0)


def _check_uts_ipc(scratch, report_fd):
    _unshare(CLONE_NEWUTS | CLONE_NEWIPC, "unshare(CLONE_NEWUTS|CLONE_NEWIPC)")
    name = b"pyoci-probe"
    _call("sethostname", _libc().sethostname(name, len(name)))
    return "new uts and ipc namespaces; sethostname works"


def _check_pivot_root(scratch, report_fd):
    _unshare(CLONE_NEWNS, "unshare(CLONE_NEWNS)")
    _mount(None, "/", None, MS_REC | MS_PRIVATE, None, "mount --make-rprivate /")
    _mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k", "mount tmpfs")
    os.mkdir(os.path.join(scratch, "old"))
    os.chdir(scratch)
    libc = _libc()
    _call("pivot_root", libc.syscall(155 if os.uname().machine == "x86_64" else 41, b".", b"old"))
    _call("umount2(old root, MNT_DETACH)", libc.umount2(b"/old", MNT_DETACH))
    return "pivot_root into a tmpfs; old root detached"


def _check_network(scratch, report_fd):
    _unshare(CLONE_NEWNET, "unshare(CLONE_NEWNET)")
    try:
        namespaces.bring_up_loopback()
    except OSError as exc:
        raise _StepFailed("bring loopback up (SIOCSIFFLAGS)", exc.errno) from None
    return "new network namespace; loopback brought up"


def _cgroup_probe_dir() -> tuple[str, str, str]:
    """(hierarchy description, parent directory, file to write) for the cgroup check."""
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        own = "/"
        with open("/proc/self/cgroup") as f:
            for line in f:
                if line.startswith("0::"):
                    own = line.strip()[3:] or "/"
        parent = "/sys/fs/cgroup" + (own if own != "/" else "")
        if os.geteuid() == 0:
            parent = "/sys/fs/cgroup"
        return "cgroup v2", parent, ""  # the file is chosen once the cgroup exists
    for controller in ("pids", "memory", "cpu,cpuacct", "cpu"):
        parent = f"/sys/fs/cgroup/{controller}"
        if os.path.isdir(parent):
            target = {"pids": "pids.max", "memory": "memory.limit_in_bytes"}.get(controller, "cpu.shares")
            return f"cgroup v1 ({controller})", parent, target
    return "no cgroup hierarchy", "", ""


def _check_cgroups(scratch, report_fd):
    hierarchy, parent, target = _cgroup_probe_dir()
    if not parent:
        raise _StepFailed("find a cgroup hierarchy under /sys/fs/cgroup", errno_module.ENOENT)
    path = os.path.join(parent, f"pyoci-probe-{os.getpid()}")
    try:
        os.mkdir(path)
    except OSError as exc:
        raise _StepFailed(f"mkdir {path}", exc.errno) from None
    try:
        if not target:  # cgroup v2: a limit file of a controller the parent enables for children
            target = next((name for name in ("pids.max", "memory.max", "cpu.max")
                           if os.path.exists(os.path.join(path, name))), "")
            if not target:
                raise _StepFailed(f"find pids.max, memory.max or cpu.max in {path} (no controller is "
                                  f"enabled in {parent}/cgroup.subtree_control)", errno_module.ENOENT)
        value = {"pids.max": "max", "memory.max": "max", "cpu.max": "max",
                 "memory.limit_in_bytes": "-1", "cpu.shares": "1024"}[target]
        _write(os.path.join(path, target), value, f"write {target} in {path}")
    finally:
        os.rmdir(path)
    return f"{hierarchy}: created {parent}/pyoci-probe-*, wrote {target}, removed it"


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _status_field(name: str) -> str | None:
    for line in (_read("/proc/self/status") or "").splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return None


def _proc_overmounts() -> list[str]:
    """Mount points below /proc (Docker's masked paths), except empty directories such as
    /proc/sys/fs/binfmt_misc, which do not hide anything from the kernel's point of view."""
    found = []
    for line in (_read("/proc/self/mountinfo") or "").splitlines():
        fields = line.split()
        if len(fields) > 4:
            point = fields[4].replace("\\040", " ")
            if point.startswith("/proc/") and not point.startswith("/proc/sys/fs/binfmt_misc"):
                found.append(point)
    return found


def _in_user_namespace() -> bool:
    """Whether this process is in a user namespace other than the initial one (whose uid_map is
    the identity over all 2^32-1 ids)."""
    return (_read("/proc/self/uid_map") or "").split() != ["0", "0", "4294967295"]


def host_context() -> dict:
    """What the explanations need: who we are, seccomp/AppArmor, sysctls, /proc overmounts."""
    cap_eff = int(_status_field("CapEff") or "0", 16)
    apparmor = _read("/proc/self/attr/apparmor/current") or _read("/proc/self/attr/current")
    return {
        "euid": os.geteuid(),
        "cap_sys_admin": bool(cap_eff >> CAP_SYS_ADMIN & 1),
        "seccomp_mode": int(_status_field("Seccomp") or 0),
        "apparmor": apparmor,
        "max_user_namespaces": _read("/proc/sys/user/max_user_namespaces"),
        "unprivileged_userns_clone": _read("/proc/sys/kernel/unprivileged_userns_clone"),
        "apparmor_restrict_unprivileged_userns": _read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
        "proc_overmounts": _proc_overmounts(),
        "in_user_namespace": _in_user_namespace(),
        "kernel": os.uname().release,
    }


def run_checks() -> dict:
    """Child entry point: run every check, return ``{"context": ..., "mode": ..., "checks": [...]}``."""
    context = host_context()
    checks: list[dict] = []
    scratch = tempfile.mkdtemp(prefix="pyoci-probe-")
    try:
        userns = _in_child(_check_user_namespace, True, scratch)
        checks.append({"name": "user namespaces", **userns})
        # As root (CAP_SYS_ADMIN in the initial user namespace) a runtime needs no user namespace;
        # otherwise it works inside one (rootless), as the checks below then do.
        rootful = context["cap_sys_admin"]
        context["mode"] = "root" if rootful else "rootless"
        for name, function in (("mount namespace + tmpfs", _check_mount),
                               ("pid namespace + fresh /proc", _check_pid_proc),
                               ("uts + ipc namespaces", _check_uts_ipc),
                               ("pivot_root", _check_pivot_root),
                               ("network namespace", _check_network)):
            if not rootful and not userns["ok"]:
                checks.append({"name": name, "ok": False, "step": "needs root or a user namespace",
                               "errno": errno_module.EPERM, "skipped": True})
                continue
            checks.append({"name": name, **_in_child(function, not rootful, scratch)})
        checks.append({"name": "cgroup writes", **_in_child(_check_cgroups, False, scratch)})
    finally:
        os.rmdir(scratch)
    return {"context": context, "checks": checks}


# --------------------------------------------------------------------------------------------
# Caller side: explanations, the result object and its reprs.
# --------------------------------------------------------------------------------------------

_SECCOMP_FIX = ("run the kernel's container without that profile, e.g. docker run --security-opt "
                "seccomp=unconfined (or --privileged); podman: --security-opt seccomp=unconfined")
_APPARMOR_FIX = "docker run --security-opt apparmor=unconfined (or an AppArmor profile that allows mount)"


def _explain(name: str, outcome: dict, context: dict) -> tuple[str, str]:
    """(why it is missing, what would fix it) for a failed check, from the errno and the context."""
    err = outcome.get("errno") or 0
    step = outcome.get("step", "")
    errname = errno_module.errorcode.get(err, str(err))
    what = f"{step} failed with {errname} ({os.strerror(err)})" if err else f"{step} failed"
    if outcome.get("detail") and not err:
        what += f": {outcome['detail']}"
    if outcome.get("skipped"):
        return ("not root (no CAP_SYS_ADMIN) and user namespaces are unavailable, so there is no "
                "namespace in which this could be done",
                "run as root, or make user namespaces available (see the 'user namespaces' row)")
    seccomp = context.get("seccomp_mode") == 2
    apparmor = context.get("apparmor") or ""
    apparmor_confined = bool(apparmor) and not apparmor.startswith("unconfined")
    if name == "user namespaces":
        if err == errno_module.ENOSPC:
            return (f"{what}: user.max_user_namespaces is {context.get('max_user_namespaces')} "
                    "(0 disables user namespaces) or its limit is reached",
                    "sysctl -w user.max_user_namespaces=15000 (as root on the host)")
        if err == errno_module.EPERM and context.get("unprivileged_userns_clone") == "0" and context["euid"] != 0:
            return (f"{what}: kernel.unprivileged_userns_clone is 0",
                    "sysctl -w kernel.unprivileged_userns_clone=1 (as root on the host)")
        restricted = context.get("apparmor_restrict_unprivileged_userns") == "1"
        if err in (errno_module.EPERM, errno_module.EACCES) and restricted:
            return (f"{what}: kernel.apparmor_restrict_unprivileged_userns is 1 (AppArmor restricts "
                    "unprivileged user namespaces)",
                    "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor profile with 'userns,'")
        if err == errno_module.EPERM and seccomp:
            return (f"{what}: this process runs under a seccomp filter (Seccomp: 2 in /proc/self/status), "
                    "such as Docker's default profile, which refuses unshare(CLONE_NEWUSER)", _SECCOMP_FIX)
        if err == errno_module.EPERM and step.startswith("write"):
            return (f"{what}: the id maps could not be written", "run as root, or install uidmap (newuidmap)")
        return (what, "check dmesg and the sysctls user.max_user_namespaces / kernel.unprivileged_userns_clone")
    if name == "cgroup writes":
        if err == errno_module.EROFS:
            return (f"{what}: the cgroup filesystem is mounted read-only (as in an unprivileged Docker container)",
                    "run privileged or with a writable, delegated cgroup; containers still run without "
                    "--memory/--pids/--cpus")
        if err in (errno_module.EACCES, errno_module.EPERM) and context["euid"] != 0:
            return (f"{what}: an unprivileged user may only write a cgroup delegated to it (cgroup v2)",
                    "run as root, or from a delegated cgroup (systemd-run --user --scope -p Delegate=yes); "
                    "containers still run without --memory/--pids/--cpus")
        if err == errno_module.ENOENT and "subtree_control" in step:
            return (what, "enable controllers for child cgroups: echo '+pids +memory +cpu' > "
                          "<parent>/cgroup.subtree_control; containers still run without limits")
        if err == errno_module.ENOENT:
            return (f"{what}: no cgroup hierarchy is mounted under /sys/fs/cgroup",
                    "mount cgroup2 on /sys/fs/cgroup (mount -t cgroup2 none /sys/fs/cgroup)")
        return (what, "run as root with a writable /sys/fs/cgroup; containers still run without limits")
    if name == "pid namespace + fresh /proc" and err == errno_module.EPERM and step == "mount proc":
        overmounts = context.get("proc_overmounts") or []
        if overmounts and (context.get("mode") == "rootless" or context.get("in_user_namespace")):
            shown = ", ".join(overmounts[:4]) + (" ..." if len(overmounts) > 4 else "")
            return (f"{what}: /proc is masked ({shown} mounted over, as Docker does); inside a user "
                    "namespace the kernel refuses a new proc mount while parts of the host's /proc are hidden",
                    "run with an unmasked /proc: docker run --security-opt systempaths=unconfined "
                    "(or --privileged); podman: --security-opt unmask=ALL")
    if err == errno_module.EPERM and seccomp:
        return (f"{what}: this process runs under a seccomp filter (Seccomp: 2 in /proc/self/status), "
                "such as Docker's default profile, which refuses unshare, mount and pivot_root", _SECCOMP_FIX)
    if err in (errno_module.EPERM, errno_module.EACCES) and apparmor_confined and "mount" in step:
        return (f"{what}: the AppArmor profile '{apparmor}' denies it", _APPARMOR_FIX)
    if err == errno_module.EPERM and not context.get("cap_sys_admin") and context.get("mode") == "root":
        return (f"{what}: the process lacks CAP_SYS_ADMIN",
                "run as root with all capabilities (docker run --privileged)")
    if name == "pivot_root" and err == errno_module.EINVAL:
        return (f"{what}: the root is not a mount point pivot_root can leave (e.g. an initramfs root)",
                "runtimes need --no-pivot on such hosts (pyoci/runc run --no-pivot)")
    return (what, "see the errno; run as root on a regular Linux host")


@dataclass
class ProbeCheck:
    """One capability a container runtime needs: whether this host grants it, and if not why and
    what would fix it."""

    name: str
    ok: bool
    detail: str = ""
    why: str = ""
    fix: str = ""


@dataclass
class ProbeResult:
    """What this host allows a container runtime (see the module docstring).

    ``mode`` is ``"root"`` (CAP_SYS_ADMIN in the initial user namespace: runtime-spec containers
    with every namespace) or ``"rootless"`` (everything happens inside a user namespace).
    ``can_run_containers`` says whether a container with pid, mount, uts, ipc and network
    namespaces, a fresh /proc and pivot_root can be created; cgroup writes are only needed for
    ``linux.resources``.
    """

    checks: list[ProbeCheck]
    context: dict = field(default_factory=dict)

    @classmethod
    def from_report(cls, report: dict) -> ProbeResult:
        """Build the result (with explanations) from the child's JSON report."""
        context = report.get("context", {})
        checks = []
        for outcome in report.get("checks", []):
            if outcome.get("ok"):
                checks.append(ProbeCheck(outcome["name"], True, outcome.get("detail", "")))
            else:
                why, fix = _explain(outcome["name"], outcome, context)
                checks.append(ProbeCheck(outcome["name"], False, outcome.get("step", ""), why, fix))
        return cls(checks, context)

    @property
    def mode(self) -> str:
        return self.context.get("mode", "root")

    def check(self, name: str) -> ProbeCheck:
        """The check called ``name`` (one of ``CHECK_NAMES``)."""
        for item in self.checks:
            if item.name == name:
                return item
        raise KeyError(name)

    def missing(self, *, rootless: bool | None = None, network_namespace: bool = True,
                cgroups: bool = False) -> list[ProbeCheck]:
        """The failed checks a container needs: pid, mount, uts, ipc (and network unless it shares
        the host's) namespaces, a fresh /proc, pivot_root; user namespaces when rootless; cgroup
        writes when resource limits are asked for."""
        rootless = self.mode == "rootless" if rootless is None else rootless
        needed = ["mount namespace + tmpfs", "pid namespace + fresh /proc", "uts + ipc namespaces", "pivot_root"]
        if network_namespace:
            needed.append("network namespace")
        if rootless:
            needed.append("user namespaces")
        if cgroups:
            needed.append("cgroup writes")
        return [item for item in self.checks if item.name in needed and not item.ok]

    @property
    def can_run_containers(self) -> bool:
        return not self.missing()

    def to_dict(self) -> dict:
        return {"mode": self.mode, "can_run_containers": self.can_run_containers,
                "checks": [vars(item).copy() for item in self.checks], "context": dict(self.context)}

    def summary(self) -> str:
        if self.can_run_containers:
            return f"containers can be created here ({self.mode})"
        names = ", ".join(item.name for item in self.missing())
        return f"containers cannot be created here ({self.mode}): missing {names}"

    def _repr_html_(self) -> str:
        renderer = _reprs_renderer("html_repr")
        if renderer is not None:
            try:
                rendered = renderer(self)
            except (TypeError, NotImplementedError):
                rendered = None
            if rendered:
                return rendered
        return probe_html_table(self)

    def _repr_pretty_(self, printer, cycle) -> None:
        renderer = _reprs_renderer("text_repr")
        if renderer is not None:
            try:
                rendered = renderer(self)
            except (TypeError, NotImplementedError):
                rendered = None
            if rendered:
                printer.text(rendered)
                return
        printer.text(probe_text_table(self))

    def __str__(self) -> str:
        return probe_text_table(self)


def _reprs_renderer(name: str):
    """``pyoci_nb.notebook.reprs.<name>`` when the reprs module has it, else None."""
    try:
        from pyoci_nb.notebook import reprs
    except Exception:  # missing or broken: the self-contained table below is used
        return None
    return getattr(reprs, name, None)


def probe_text_table(result: ProbeResult) -> str:
    """The probe as plain text: one line per check, then why/fix under each failure."""
    lines = [f"pyoci probe: {result.summary()}"]
    width = max(len(name) for name in CHECK_NAMES)
    for item in result.checks:
        lines.append(f"  {'ok  ' if item.ok else 'MISSING'} {item.name.ljust(width)}  "
                     f"{item.detail if item.ok else ''}".rstrip())
        if not item.ok:
            lines.append(f"      why: {item.why}")
            lines.append(f"      fix: {item.fix}")
    return "\n".join(lines)


def probe_html_table(result: ProbeResult) -> str:
    """The probe as a self-contained HTML table (used when notebook.reprs has no renderer for it)."""
    from html import escape

    rows = []
    for item in result.checks:
        mark = ('<span style="color:#1a7f37">&#10003; ok</span>' if item.ok
                else '<span style="color:#cf222e">&#10007; missing</span>')
        explanation = (escape(item.detail) if item.ok
                       else f"<b>why:</b> {escape(item.why)}<br><b>fix:</b> {escape(item.fix)}")
        rows.append(f"<tr><td style='text-align:left'>{escape(item.name)}</td><td>{mark}</td>"
                    f"<td style='text-align:left'>{explanation}</td></tr>")
    context = result.context
    facts = (f"mode {escape(result.mode)}, euid {context.get('euid')}, seccomp mode "
             f"{context.get('seccomp_mode')}, AppArmor {escape(str(context.get('apparmor') or 'none'))}, "
             f"kernel {escape(str(context.get('kernel')))}")
    return ("<div class='pyoci-probe'><table>"
            f"<caption style='text-align:left'><b>pyoci probe</b>: {escape(result.summary())}"
            f"<br><small>{facts}</small></caption>"
            "<thead><tr><th style='text-align:left'>needs</th><th>status</th>"
            "<th style='text-align:left'>details</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table></div>")


def run_probe(command_prefix: tuple[str, ...] | list[str] = (), timeout: float = 60,
              python: str | None = None) -> ProbeResult:
    """Run the checks in a fresh child process (started by the engine) and return the explained
    result (not cached).

    ``command_prefix`` runs the child under another program first (``unshare``, ``setpriv`` ...),
    to probe what a process started that way would be allowed to do; ``python`` is the interpreter
    of the child (default: this one; the child needs only the standard library).
    """
    from pyoci_nb.errors import PyociError
    from pyoci_nb.runtime.engine import engine

    # started by this process's engine: a Jupyter kernel starts no Python child of its own
    completed, _ = engine().call("probe", prefix=list(command_prefix), python=python, timeout=timeout)
    if completed["returncode"] != 0 or not completed["stdout"].strip():
        raise PyociError("the probe process failed", where=" ".join(completed["command"]),
                         why=(completed["stderr"].strip() or f"exit status {completed['returncode']}")[-2000:])
    return ProbeResult.from_report(json.loads(completed["stdout"]))


_cached: ProbeResult | None = None


def probe(refresh: bool = False) -> ProbeResult:
    """What this host allows (user namespaces, mount namespace + tmpfs, pid namespace + a fresh
    /proc, uts/ipc namespaces, pivot_root, network namespaces, cgroup writes), found out once in a
    fresh child process and cached; ``refresh=True`` probes again.  Displays as a table that says
    why each missing piece is missing and what would fix it."""
    global _cached
    if _cached is None or refresh:
        _cached = run_probe()
    return _cached


if __name__ == "__main__":
    sys.stdout.write(json.dumps(run_checks()) + "\n")
