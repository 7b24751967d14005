"""config-linux.md, allowed device list: "The runtime MUST apply entries in the listed order."

The v1 kernel keeps a cgroup's exceptions in the order the rules made them (a new one goes
last, one merged into an existing exception keeps its place) and lists them so in
devices.list: fed line by line it is the oracle for ``DeviceRules`` (the replay),
``write_v1_in_order`` (a new cgroup) and ``V1Manager`` (create).  The eBPF program of cgroup v2
checks the exceptions the later rules made first, and answers as the v1 kernel does."""

from __future__ import annotations

import os
import struct

import pytest

from pyoci_nb.runtime.cgroups import detect_layout, devices
from pyoci_nb.runtime.cgroups.base import write_file
from pyoci_nb.runtime.cgroups.devices import DeviceRule, DeviceRules

from .conftest import PYTHON
from .test_devices import SEQUENCES
from .test_v2 import v2_manager

LAYOUT = detect_layout()
needs_v1_devices = pytest.mark.skipif("devices" not in LAYOUT.v1, reason="no v1 devices controller")

#: issue #11's example: the config's rules, then the runtime's defaults
ISSUE_RULES = [DeviceRule(False), DeviceRule(True, "c", 10, 229, "rwm"),
               DeviceRule(True, "b", 8, 20, "rw"), DeviceRule(True, "b", 10, 200, "r")]
ORDERED = {**SEQUENCES,
           "issue-11": ISSUE_RULES + list(devices.DEFAULT_ALLOWED),
           "re-added-goes-last": [DeviceRule(False), DeviceRule(True, "c", 4, 1, "r"),
                                  DeviceRule(True, "c", 4, 2, "r"), DeviceRule(False, "c", 4, 1, "r"),
                                  DeviceRule(True, "b", 1, 1, "m"), DeviceRule(True, "c", 4, 1, "w"),
                                  DeviceRule(True, "c", 4, 2, "w")]}
#: an allow-all cgroup lists only "a *:* rwm": its order cannot be seen
DENY_ALL = sorted(n for n, rules in ORDERED.items() if not DeviceRules.from_rules(rules).default_allow)


def _devices_dir(parent: str, name: str) -> str:
    directory = os.path.join(LAYOUT.v1["devices"].mountpoint, parent.lstrip("/"), name)
    os.makedirs(directory)
    return directory


def _listed(directory: str) -> list[str]:
    with open(os.path.join(directory, "devices.list")) as f:
        return [line for line in f.read().splitlines() if line]


@pytest.mark.root
@needs_v1_devices
@pytest.mark.parametrize("name", DENY_ALL)
def test_replay_keeps_the_kernels_order(name, cgroup_parent):
    rules = ORDERED[name]
    oracle = _devices_dir(cgroup_parent, "oracle")
    write_file(oracle, "devices.deny", "a", "test")
    for rule in rules:
        write_file(oracle, "devices.allow" if rule.allow else "devices.deny", rule.v1_line(), "test")
    state = DeviceRules.from_rules(rules)
    kernel = _listed(oracle)
    assert [r.v1_line() for r in state.exception_rules()] == kernel
    ours = _devices_dir(cgroup_parent, "ours")
    assert devices.write_v1_in_order(ours, rules, write_file) == state
    assert _listed(ours) == kernel


@pytest.mark.root
@needs_v1_devices
def test_a_new_container_cgroup_lists_the_rules_as_given(cgroup_parent):
    from pyoci_nb.runtime.cgroups import manager_for

    config = {"linux": {"cgroupsPath": f"{cgroup_parent}/c",
                        "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}],
                        "resources": {"devices": [r.to_json() for r in ISSUE_RULES]}}}
    manager = manager_for(config, "c", rootless=False)
    manager.create()
    manager.set(config["linux"]["resources"])
    listed = _listed(manager.path("devices"))
    assert listed[:3] == ["c 10:229 rwm", "b 8:20 rw", "b 10:200 r"]
    assert listed[3:] == [r.v1_line() for r in devices.DEFAULT_ALLOWED]   # (fuse merged in place)
    # update diffs: a rule more, nothing rewritten, the order kept
    manager.set({"devices": [r.to_json() for r in ISSUE_RULES] +
                 [{"allow": True, "type": "c", "major": 4, "minor": 1, "access": "r"}]})
    assert _listed(manager.path("devices")) == listed + ["c 4:1 r"]


# --- cgroup v2: the eBPF program -------------------------------------------------------------

def _blocks(program: bytes) -> list[tuple[int, int | None, int | None]]:
    """(bpf device type, major, minor) of each rule block of a device program, in order."""
    out, current = [], None
    for i in range(0, len(program), 8):
        code, regs, _off, imm = struct.unpack_from("<BBhi", program, i)
        dst = regs & 0xF
        if code == 0x55 and dst == 2:       # JNE r2 (type): a block starts
            current = [imm, None, None]
        elif code == 0x55 and dst in (4, 5) and current is not None:
            current[dst - 3] = imm
        elif code == 0x95 and current is not None:
            out.append(tuple(current))
            current = None
    return out


def test_program_checks_the_later_rules_first():
    state = DeviceRules.from_rules(ISSUE_RULES + list(devices.DEFAULT_ALLOWED))
    kind = {"c": devices.BPF_DEVCG_DEV_CHAR, "b": devices.BPF_DEVCG_DEV_BLOCK}
    expected = [(kind[r.type], r.major, r.minor) for r in reversed(state.exception_rules())]
    assert _blocks(devices.device_program(state)) == expected
    assert expected[-3:] == [(1, 10, 200), (1, 8, 20), (2, 10, 229)]


OPEN_PROBE = r"""
import os, stat, sys, tempfile
d = tempfile.mkdtemp()
out = []
for spec in sys.argv[1:]:
    kind, major, minor, mode = spec.split(":")
    path = os.path.join(d, spec.replace(":", "-"))
    try:
        os.mknod(path, (stat.S_IFCHR if kind == "c" else stat.S_IFBLK) | 0o600,
                 os.makedev(int(major), int(minor)))
        flags = {"r": os.O_RDONLY, "w": os.O_WRONLY}[mode] | os.O_NONBLOCK
        os.close(os.open(path, flags))
        out.append(spec + "=ok")
    except OSError as e:
        out.append(spec + "=" + ("EPERM" if e.errno == 1 else "other"))
    finally:
        if os.path.exists(path):
            os.unlink(path)
os.rmdir(d)
print(" ".join(out))
"""


@pytest.mark.root
@pytest.mark.skipif(LAYOUT.v2 is None, reason="no cgroup2 tree for an eBPF device program")
def test_program_answers_the_issue_rules_on_the_kernel(cgroup_parent, held):
    """Attached to a real cgroup2 cgroup: what the rules allow opens (or fails for another
    reason: no such device here), what they do not is EPERM -- as the v1 controller says."""
    state = DeviceRules.from_rules(ISSUE_RULES + list(devices.DEFAULT_ALLOWED))
    manager = v2_manager(cgroup_parent, name="bpf")
    devices.attach_program(manager.path, state)
    probes = {"c:10:229:r": True, "b:8:20:w": True, "b:10:200:r": True, "b:10:200:w": False,
              "c:1:1:r": False, "b:8:21:r": False, "c:1:3:w": True}
    proc = held(f"{PYTHON} -c '{OPEN_PROBE}' " + " ".join(probes))
    manager.apply(proc.pid)
    proc.go()
    status, out = proc.finish()
    assert status == 0, out
    answers = dict(item.split("=") for item in out.split())
    for spec, allowed in probes.items():
        type_, major, minor, mode = spec.split(":")
        assert state.allows(type_, int(major), int(minor), mode) == allowed, spec
        assert (answers[spec] != "EPERM") == allowed, (spec, answers[spec])
