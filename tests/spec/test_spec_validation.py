"""validate_config: every problem names the JSON path, the offending value and the rule."""

from __future__ import annotations

import pytest

from pyoci_nb.errors import ConfigError
from pyoci_nb.spec import Problem, ValidationReport, load_spec, validate_config
from pyoci_nb.spec.capabilities import ALL_CAPABILITIES, CAPABILITY_NUMBERS
from pyoci_nb.spec.defaults import default_config


def problems_of(mutate, for_start=False):
    config = default_config()
    mutate(config)
    return validate_config(config, for_start=for_start)


def only_problem(mutate, for_start=False) -> Problem:
    problems = problems_of(mutate, for_start)
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


def test_unknown_capability_message_has_path_value_and_known_names():
    def mutate(c):
        c["process"]["capabilities"]["bounding"][2] = "CAP_FOO"
    problem = only_problem(mutate)
    assert problem.path == "process.capabilities.bounding[2]"
    assert problem.value == "CAP_FOO"
    text = str(problem)
    assert text.startswith("process.capabilities.bounding[2]: not a known capability: 'CAP_FOO' (known ones are CAP_CHOWN,")
    assert "CAP_CHECKPOINT_RESTORE" in text


def test_capability_table_matches_the_kernel_header():
    import re
    from pathlib import Path

    header = Path("/usr/include/linux/capability.h")
    if not header.exists():
        pytest.skip("linux-libc-dev headers not installed")
    defined = {name: int(number) for name, number in
               re.findall(r"^#define\s+(CAP_[A-Z_]+)\s+(\d+)\s*$", header.read_text(), re.M)
               if name not in ("CAP_LAST_CAP",)}
    for name, number in CAPABILITY_NUMBERS.items():
        assert defined[name] == number, name
    assert len(ALL_CAPABILITIES) == 41 and ALL_CAPABILITIES[40] == "CAP_CHECKPOINT_RESTORE"


CASES = [
    # (mutation, path, value, words of the rule)
    (lambda c: c["process"].__setitem__("cwd", "tmp"), "process.cwd", "tmp", "absolute path"),
    (lambda c: c["process"].__setitem__("args", []), "process.args", [], "at least one entry"),
    (lambda c: c["process"]["env"].append("NOEQUALS"), "process.env[2]", "NOEQUALS", "has no '='"),
    (lambda c: c["process"]["env"].append("=x"), "process.env[2]", "=x", "empty name"),
    (lambda c: c["process"]["rlimits"].append({"type": "RLIMIT_FOO", "soft": 1, "hard": 1}),
     "process.rlimits[1].type", "RLIMIT_FOO", "not a known rlimit type"),
    (lambda c: c["process"]["rlimits"].append({"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}),
     "process.rlimits[1].type", "RLIMIT_NOFILE", "duplicate rlimit"),
    (lambda c: c["process"]["rlimits"][0].__setitem__("soft", 4096), "process.rlimits[0].soft", 4096,
     "above the hard limit"),
    (lambda c: c["process"].__setitem__("oomScoreAdj", 1001), "process.oomScoreAdj", 1001, "-1000..1000"),
    (lambda c: c["process"].__setitem__("ioPriority", {"class": "IOPRIO_CLASS_BE", "priority": 9}),
     "process.ioPriority.priority", 9, "0..7"),
    (lambda c: c["mounts"][0].__setitem__("destination", "proc"), "mounts[0].destination", "proc", "absolute path"),
    (lambda c: c["mounts"][0].__setitem__("uidMappings", [{"containerID": 0, "hostID": 0, "size": 1}]),
     "mounts[0].gidMappings", None, "both uidMappings and gidMappings"),
    (lambda c: c["linux"]["namespaces"].append({"type": "pid"}), "linux.namespaces[5].type", "pid",
     "duplicate namespace type"),
    (lambda c: c["linux"]["namespaces"].append({"type": "net"}), "linux.namespaces[5].type", "net",
     "not a known namespace type"),
    (lambda c: c["linux"]["namespaces"].append({"type": "cgroup", "path": "proc/1/ns/cgroup"}),
     "linux.namespaces[5].path", "proc/1/ns/cgroup", "absolute path"),
    (lambda c: c["linux"].__setitem__("uidMappings", [{"containerID": 0, "hostID": 1000, "size": 1}]),
     "linux.uidMappings", [{"containerID": 0, "hostID": 1000, "size": 1}], "need a user namespace"),
    (lambda c: c["linux"].__setitem__("timeOffsets", {"monotonic": {"secs": 1}}), "linux.timeOffsets",
     {"monotonic": {"secs": 1}}, "time namespace"),
    (lambda c: c.__setitem__("hooks", {"prestart": [{"path": "hook.sh"}]}), "hooks.prestart[0].path", "hook.sh",
     "absolute path"),
    (lambda c: c["linux"].__setitem__("sysctl", {"kernel.panic": "1"}), 'linux.sysctl["kernel.panic"]',
     "kernel.panic", "not in a separate kernel namespace"),
    (lambda c: c["linux"].__setitem__("sysctl", {"bad key": "1"}), 'linux.sysctl["bad key"]', "bad key",
     "not a sysctl name"),
    (lambda c: (c["linux"].__setitem__("namespaces", [{"type": "mount"}, {"type": "uts"}]),
                c["linux"].__setitem__("sysctl", {"net.ipv4.ip_forward": "1"})),
     'linux.sysctl["net.ipv4.ip_forward"]', "net.ipv4.ip_forward", "needs a network namespace"),
    (lambda c: c["linux"].__setitem__("rootfsPropagation", "rprivate"), "linux.rootfsPropagation", "rprivate",
     "not a known rootfs propagation"),
    (lambda c: c["linux"].__setitem__("maskedPaths", ["proc/kcore"]), "linux.maskedPaths[0]", "proc/kcore",
     "absolute path"),
    (lambda c: c["linux"].__setitem__("devices", [{"type": "c", "path": "/dev/fuse", "major": 10}]),
     "linux.devices[0].minor", None, "REQUIRED unless type is p"),
    (lambda c: c["linux"]["resources"]["devices"][0].__setitem__("access", "rwx"),
     "linux.resources.devices[0].access", "rwx", "r (read), w (write) and m (mknod)"),
    (lambda c: c["linux"].__setitem__("seccomp", {"defaultAction": "SCMP_ACT_DENY"}),
     "linux.seccomp.defaultAction", "SCMP_ACT_DENY", "not a known seccomp action"),
    (lambda c: c["linux"].__setitem__("seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["x86_64"]}),
     "linux.seccomp.architectures[0]", "x86_64", "not a known seccomp architecture"),
    (lambda c: c["linux"].__setitem__("seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQUAL"}]}]}),
     "linux.seccomp.syscalls[0].args[0].op", "SCMP_CMP_EQUAL", "not a known seccomp operator"),
    (lambda c: c["linux"].__setitem__("seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]}),
     "linux.seccomp.listenerPath", None, "SCMP_ACT_NOTIFY"),
    (lambda c: c.__setitem__("ociVersion", "1.0"), "ociVersion", "1.0", "SemVer"),
    (lambda c: c.pop("root"), "root", None, "required on Linux"),
    (lambda c: c["linux"].__setitem__("namespaces", [{"type": "mount"}]), "hostname", "runc", "uts namespace"),
    # schema violations found by the stdlib schema check
    (lambda c: c["process"]["user"].__setitem__("uid", -1), "process.user.uid", -1, "below the minimum 0"),
    (lambda c: c["process"].__setitem__("terminal", "yes"), "process.terminal", "yes", "must be a boolean"),
    (lambda c: c["root"].pop("path"), "root.path", None, "is required"),
]


@pytest.mark.parametrize("mutate, path, value, rule", CASES, ids=[c[1] + ":" + c[3] for c in CASES])
def test_rule_messages(mutate, path, value, rule):
    problem = only_problem(mutate)
    assert problem.path == path
    assert problem.value == value
    assert rule in problem.message
    assert str(problem).startswith(f"{path}: ")
    if value is not None and not isinstance(value, (list, dict)):
        assert repr(value) in str(problem) or str(value) in str(problem)


def test_for_start_requires_process_and_args():
    minimal = {"ociVersion": "1.0.0", "root": {"path": "rootfs"}}
    assert validate_config(minimal) == []
    assert [p.path for p in validate_config(minimal, for_start=True)] == ["process"]
    no_args = dict(minimal, process={"cwd": "/"})
    assert validate_config(no_args) == []
    assert [p.path for p in validate_config(no_args, for_start=True)] == ["process.args"]


def test_unknown_root_level_properties_are_fine():
    config = default_config()
    config["vendor.example/whatever"] = {"anything": [1, 2]}
    config["linux"]["futureThing"] = 3
    assert validate_config(config) == []


def test_every_problem_is_reported_at_once():
    config = default_config()
    config["process"]["cwd"] = "relative"
    config["process"]["capabilities"]["ambient"] = ["CAP_NOPE", "CAP_KILL", "CAP_NOPE2"]
    config["mounts"][3]["destination"] = "dev/shm"
    paths = [p.path for p in validate_config(config)]
    assert paths == ["process.cwd", "process.capabilities.ambient[0]", "process.capabilities.ambient[2]",
                     "mounts[3].destination"]
    with pytest.raises(ConfigError) as info:
        load_spec(config)
    message = str(info.value)
    assert "4 problems" in message
    for path in paths:
        assert path in message
    assert [p.path for p in info.value.problems] == paths


def test_not_an_object():
    problems = validate_config(["not", "a", "config"])
    assert len(problems) == 1 and "JSON object" in problems[0].message


def test_validation_report():
    report = ValidationReport(validate_config({"ociVersion": "x", "root": {"path": "rootfs"}}), source="c.json")
    assert not report.ok and len(report) == 1
    assert str(report).splitlines()[0] == "c.json: 1 problem"
    assert "ociVersion: 'x' is not a SemVer" in str(report)
    assert ValidationReport([]).ok
    with pytest.raises(ConfigError):
        report.raise_for_problems()
