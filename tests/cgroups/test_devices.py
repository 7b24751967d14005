"""The device allowlist: DeviceRules replays config-linux.md's rules with the v1 devices
controller's semantics.  The kernel is the oracle: the same rules written line by line into a
v1 devices cgroup must give the same devices.list and the same answers to real open()/mknod()
calls as apply_v1 (minimal transitions) and as the eBPF program of cgroup v2."""

from __future__ import annotations

import os

import pytest

from pyoci_nb.errors import ConfigError
from pyoci_nb.runtime.cgroups import detect_layout, devices
from pyoci_nb.runtime.cgroups.base import write_file
from pyoci_nb.runtime.cgroups.devices import DeviceRule, DeviceRules

from .test_v2 import PROBE, v2_manager

LAYOUT = detect_layout()

SEQUENCES = {
    "deny-all+runc-defaults": [DeviceRule(False)] + list(devices.DEFAULT_ALLOWED),
    "allow-then-take-back": [DeviceRule(False), DeviceRule(True, "c", 1, 3, "rwm"),
                             DeviceRule(False, "c", 1, 3, "w"), DeviceRule(True, "c", 1, 5, "r"),
                             DeviceRule(True, "b", 7, None, "m")],
    "allow-all-with-denies": [DeviceRule(True), DeviceRule(False, "c", 1, 3, "rwm"),
                              DeviceRule(False, "c", None, None, "m"), DeviceRule(False, "c", 1, 5, "w")],
    "deny-then-reset-to-allow": [DeviceRule(False), DeviceRule(True, "c", 1, 3, "r"), DeviceRule(True),
                                 DeviceRule(False, "b", None, None, "m")],
    "access-merges": [DeviceRule(False), DeviceRule(True, "c", 1, 5, "r"), DeviceRule(True, "c", 1, 5, "w"),
                      DeviceRule(True, "c", None, None, "m"), DeviceRule(True, "c", 1, 7, "rw")],
}

# (probe key, type, major, minor, access) of what PROBE does
PROBED = {"null-rw": ("c", 1, 3, "rw"), "zero-r": ("c", 1, 5, "r"), "zero-w": ("c", 1, 5, "w"),
          "full-r": ("c", 1, 7, "r"), "mknod-c1:1": ("c", 1, 1, "m"), "mknod-b7:0": ("b", 7, 0, "m")}


def test_rule_from_spec_defaults_and_errors():
    assert devices.rule_from_spec({"allow": False}, "x") == DeviceRule(False, "a", None, None, "rwm")
    assert devices.rule_from_spec({"allow": True, "type": "c", "major": 1, "minor": -1, "access": "wr"}, "x") \
        == DeviceRule(True, "c", 1, None, "rw")
    with pytest.raises(ConfigError) as info:
        devices.rules_from_spec([{"allow": True}, {"allow": True, "type": "x"}])
    assert info.value.where == "linux.resources.devices[1].type"
    with pytest.raises(ConfigError) as info:
        devices.rules_from_spec([{"allow": True, "access": "rwx"}])
    assert info.value.where == "linux.resources.devices[0].access"
    with pytest.raises(ConfigError) as info:
        devices.rules_from_spec([{"type": "c"}])
    assert info.value.where == "linux.resources.devices[0].allow"


def test_implied_rules_add_linux_devices():
    config = {"linux": {"devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229},
                                    {"path": "/dev/loop0", "type": "b", "major": 7, "minor": 0},
                                    {"path": "/dev/fifo", "type": "p"}]}}
    rules = devices.implied_rules(config)
    assert rules[:len(devices.DEFAULT_ALLOWED)] == list(devices.DEFAULT_ALLOWED)
    assert rules[len(devices.DEFAULT_ALLOWED):] == [DeviceRule(True, "c", 10, 229, "rwm"),
                                                    DeviceRule(True, "b", 7, 0, "rwm")]


def _fresh_v1(parent: str, name: str) -> str:
    directory = os.path.join(LAYOUT.v1["devices"].mountpoint, parent.lstrip("/"), name)
    os.makedirs(directory)
    return directory


def _probe_in(held, directories: list[str]) -> dict[str, str]:
    proc = held(f"{os.sys.executable} -c '{PROBE}'")
    for directory in directories:
        with open(os.path.join(directory, "cgroup.procs"), "w") as f:
            f.write(str(proc.pid))
    proc.go()
    status, out = proc.finish()
    assert status == 0, out
    return dict(item.split("=") for item in out.split())


@pytest.mark.root
@pytest.mark.skipif("devices" not in LAYOUT.v1, reason="no v1 devices controller")
@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_emulation_matches_the_v1_kernel(name, cgroup_parent, held):
    rules = SEQUENCES[name]
    # the oracle: the kernel fed the rules one by one
    oracle = _fresh_v1(cgroup_parent, "oracle")
    for rule in rules:
        write_file(oracle, "devices.allow" if rule.allow else "devices.deny", rule.v1_line(), "test")
    # ours: the replayed state, applied as a transition from what a new cgroup inherits
    ours = _fresh_v1(cgroup_parent, "ours")
    state = DeviceRules.from_rules(rules)
    devices.apply_v1(ours, state, write_file)
    with open(os.path.join(oracle, "devices.list")) as a, open(os.path.join(ours, "devices.list")) as b:
        assert sorted(a.read().split("\n")) == sorted(b.read().split("\n"))
    if not state.default_allow:
        assert devices.read_v1_list(oracle) == state
    # and the same answers to real accesses: kernel, our v1 cgroup, our eBPF program, our model
    expected = {key: "ok" if state.allows(*spec) else "1" for key, spec in PROBED.items()}
    assert _probe_in(held, [oracle]) == expected
    assert _probe_in(held, [ours]) == expected
    if LAYOUT.v2 is not None:
        bpf = v2_manager(cgroup_parent, name="bpf")
        devices.attach_program(bpf.path, state)
        assert _probe_in(held, [bpf.path]) == expected


@pytest.mark.root
@pytest.mark.skipif("devices" not in LAYOUT.v1, reason="no v1 devices controller")
def test_v1_transition_between_rule_sets(cgroup_parent):
    directory = _fresh_v1(cgroup_parent, "t")
    first = DeviceRules.from_rules(SEQUENCES["allow-then-take-back"])
    second = DeviceRules.from_rules(SEQUENCES["deny-all+runc-defaults"])
    for target in (first, second, first, DeviceRules.from_rules(SEQUENCES["allow-all-with-denies"]), second):
        devices.apply_v1(directory, target, write_file)
        if not target.default_allow:
            assert devices.read_v1_list(directory) == target
        else:
            assert devices.read_v1_list(directory) is None
