"""Hostile configs get a clear error, never a traceback; large-but-valid ones run (issue #10, item 9).

Every test makes the real attempt: it writes the config into a bundle and runs the runtime under
test (``pyoci`` or ``$PYOCI_TEST_RUNTIME``) on it, then checks that the answer is either a
working container or a non-zero exit with one ``time="..." level=error msg="..."`` line (for
pyoci: naming the field by its JSON path), never a Python traceback, never a hang, and that
nothing is left behind (state entry, mounts, processes, cgroups).

* a 70,000-character hostname (init's error message outgrew the 64 KiB channel packet),
  a 100,000-deep JSON config (RecursionError), ``mounts: [1]`` (AttributeError), uid 2**40
  (OverflowError), rlimit -5 (a misleading EPERM) and their relatives;
* large valid configs: 100 kB of annotations with a createContainer hook (init's channel
  carried the hook state in one packet and truncated it), an error message of 80 kB;
* the Python API (``pyoci_nb.run``, ``Container.create``) raises PyociError subclasses;
* a fuzzer (hypothesis + hypothesis-jsonschema over the official runtime-spec schemas) makes
  schema-valid configs and damaged ones, made safe to run on this host (see ``make_safe``).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oci_harness import assert_nothing_left, leftovers

TRACEBACK = "Traceback (most recent call last)"
DEEP = "\x00deep\x00"  # a placeholder string replaced by a deeply nested array when written


# --- helpers ---------------------------------------------------------------------------------

def is_pyoci(runtime) -> bool:
    return runtime.command[-2:] == ["-m", "pyoci_nb"]


def write_config(bundle: Path, config: dict, deep: int = 0) -> None:
    """Write config.json; the string ``DEEP`` becomes an array nested ``deep`` levels (too deep
    for json.dumps to write)."""
    text = json.dumps(config)
    if deep:
        text = text.replace(json.dumps(DEEP), "[" * deep + "]" * deep)
    (bundle / "config.json").write_text(text)


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The runtime's error: the last line of stderr, which must be one log line (runc's text
    format, which pyoci shares) -- no traceback, no stray output."""
    assert TRACEBACK not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines, f"exit status {proc.returncode} without any error message"
    last = lines[-1]
    assert last.startswith('time="') and " level=error msg=" in last, proc.stderr[-3000:]
    quoted = last.split(" level=error msg=", 1)[1]
    try:  # the message, unquoted (pyoci writes JSON strings; Go's quoting mostly agrees)
        return json.JSONDecoder().raw_decode(quoted)[0]
    except ValueError:
        return quoted


def assert_refused(box, proc, *words: str) -> str:
    """A non-zero exit with one clear error line; for pyoci the line names ``words`` (the JSON
    path, the rule) and is not an internal error.  Nothing is left behind."""
    assert proc.returncode != 0, f"accepted: {proc.stdout[-500:]} {proc.stderr[-500:]}"
    line = error_line(proc)
    if is_pyoci(box.runtime):
        assert "internal error" not in line, line
        for word in words:
            assert word in line, f"{word!r} not in {line[:2000]!r}"
    assert_nothing_left(box)
    return line


def set_path(config: dict, path: str, value) -> None:
    """``config[a][b][0]... = value`` for ``path`` "a.b[0]" (missing objects are created)."""
    keys = [int(k) if k.isdigit() else k for k in re.findall(r"[^.\[\]]+", path)]
    node = config
    for key in keys[:-1]:
        if isinstance(node, dict):
            node = node.setdefault(key, {})
        else:
            node = node[key]
    node[keys[-1]] = value


# --- the reproduced attacks --------------------------------------------------------------------

def test_a_70000_character_hostname_is_refused(box):
    """Was: init's error ("setting hostname 'hhh...'") outgrew the 64 KiB channel packet, the
    runtime read a truncated message and died with SystemError from the JSON scanner."""
    box.config["hostname"] = "h" * 70000
    proc = box.run("true")
    assert_refused(box, proc, "hostname", "64")


def test_a_64_byte_hostname_works(box):
    box.config["hostname"] = "h" * 64
    proc = box.run("hostname")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "h" * 64


@pytest.mark.parametrize("depth", [100_000, pytest.param(200, marks=pytest.mark.runc_divergent)])
def test_a_deeply_nested_config_is_refused(box, depth):
    """Was: RecursionError (a traceback) for 100,000 levels; 200 levels parsed, and a state file
    holding the config one level deeper is a hazard for every later command.  (runc reads up to
    Go's 10,000 levels.)"""
    box.config["process"]["terminal"] = False
    box.config["process"]["args"] = ["true"]
    box.config["org.example.extension"] = DEEP
    write_config(box.bundle, box.config, deep=depth)
    proc = box.runtime("run", "--bundle", box.bundle, box.id)
    assert_refused(box, proc, "nest")


#: (JSON path, hostile value, words the error names) -- each was a traceback or a misleading
#: message from inside the container before
MALFORMED = [
    ("mounts", [1], ["mounts[0]", "object"]),
    ("mounts", ["/proc"], ["mounts[0]"]),
    ("mounts", "proc", ["mounts", "array"]),
    ("mounts[0].options", [7], ["mounts[0].options[0]"]),
    ("mounts[0].destination", 5, ["mounts[0].destination"]),
    ("process.user.uid", 2 ** 40, ["process.user.uid", "4294967294"]),
    ("process.user.gid", -1, ["process.user.gid"]),
    ("process.user.uid", "0", ["process.user.uid"]),
    ("process.user.umask", 2 ** 40, ["process.user.umask"]),
    ("process.user.additionalGids", [2 ** 33], ["process.user.additionalGids[0]"]),
    ("process.user.additionalGids", ["wheel"], ["process.user.additionalGids[0]"]),
    ("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": -5, "hard": -5}], ["process.rlimits[0].soft"]),
    ("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 2 ** 64}], ["process.rlimits[0].hard"]),
    ("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": "1", "hard": 2}], ["process.rlimits[0].soft"]),
    ("process.rlimits", [3], ["process.rlimits[0]"]),
    ("process.oomScoreAdj", 2 ** 63, ["process.oomScoreAdj"]),
    ("process.env", ["PATH=/bin", 7], ["process.env[1]"]),
    ("process.env", "PATH=/bin", ["process.env"]),
    ("process.capabilities", ["CAP_KILL"], ["process.capabilities"]),
    ("process.capabilities.bounding", [["CAP_KILL"]], ["process.capabilities.bounding[0]"]),
    ("process.consoleSize", {"height": -1, "width": 80}, ["process.consoleSize.height"]),
    ("process.user", [0, 0], ["process.user"]),
    ("annotations", {"a": 1}, ['annotations["a"]']),
    ("annotations", ["a"], ["annotations"]),
    ("hooks", [], ["hooks"]),
    ("hooks.createRuntime", [{"path": "/bin/true", "args": [1]}], ["hooks.createRuntime[0].args[0]"]),
    ("hooks.poststop", [5], ["hooks.poststop[0]"]),
    ("hooks.prestart", [{"path": "/bin/true", "timeout": 0}], ["hooks.prestart[0].timeout"]),
    ("hooks.prestart", [{"path": "/bin/true", "timeout": True}], ["hooks.prestart[0].timeout"]),
    ("linux.maskedPaths", [1], ["linux.maskedPaths[0]"]),
    ("linux.readonlyPaths", "/proc/sys", ["linux.readonlyPaths"]),
    ("linux.devices", [1], ["linux.devices[0]"]),
    pytest.param("linux.devices", [{"path": "/dev/x", "type": "c", "major": 2 ** 40, "minor": 1}],
                 ["linux.devices[0].major"], marks=pytest.mark.runc_divergent),  # runc truncates it
    ("linux.namespaces", [1], ["linux.namespaces[0]"]),
    ("linux.sysctl", {"net.ipv4.ip_forward": 1}, ['linux.sysctl["net.ipv4.ip_forward"]']),
    ("linux.resources", [1], ["linux.resources"]),
    ("linux.seccomp", "unconfined", ["linux.seccomp"]),
    ("linux.cgroupsPath", 5, ["linux.cgroupsPath"]),
    ("root.readonly", "yes", ["root.readonly"]),
    ("hostname", 5, ["hostname"]),
    # runc cuts the argument at the NUL and runs `sh -c true`
    pytest.param("process.args", ["sh", "-c", "true\x00rm -rf /"], ["process.args[2]", "NUL"],
                 marks=pytest.mark.runc_divergent),
]


def _case_id(case) -> str:
    path, value, _ = case.values if hasattr(case, "values") else case
    return f"{path}={str(value)[:30]}"


@pytest.mark.parametrize("path, value, words", MALFORMED, ids=[_case_id(c) for c in MALFORMED])
def test_a_malformed_value_gets_an_error_naming_it(box, path, value, words):
    box.config["process"]["args"] = ["true"]
    set_path(box.config, path, value)
    box.save()
    proc = box.create(check=False)
    assert_refused(box, proc, *words)


def test_a_console_size_beyond_16_bits_is_refused_with_a_terminal(box, tmp_path):
    """struct winsize holds 16-bit numbers: a terminal of 2**40 rows cannot be made.  (Without
    a terminal the size is unused, and any schema-valid number is accepted.)"""
    box.config["process"]["args"] = ["true"]
    box.config["process"]["terminal"] = True
    box.config["process"]["consoleSize"] = {"height": 2 ** 40, "width": 80}
    box.save()
    proc = box.runtime("create", "--bundle", box.bundle, "--console-socket", tmp_path / "no-socket", box.id)
    assert_refused(box, proc, "process.consoleSize.height", "65535")


def test_large_annotations_with_a_createcontainer_hook_run(box):
    """Was: the hook state (100 kB of annotations) went to init in one channel packet of at
    most 64 KiB: truncated JSON, and the container never started.  runc runs it."""
    annotations = {f"org.example.key{i:04d}": f"{i}-" + "v" * 96 for i in range(1000)}
    box.config["annotations"] = annotations
    seen = box.bundle / "hook-state.json"
    box.add_hook("createContainer", {"path": "/bin/sh", "args": ["sh", "-c", f"cat > {seen}"]})
    proc = box.run("true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = json.loads(seen.read_text())
    assert state["annotations"] == annotations
    assert state["id"] == box.id
    assert_nothing_left(box)


def test_an_80_kB_error_message_from_init_arrives_whole(box):
    """Init's error message (an executable path of 40,000 characters, quoted twice) is larger
    than one 64 KiB packet: it must reach the runtime whole, as one clear error."""
    name = "/nonexistent/" + "x" * 40000
    proc = box.run(name)
    line = assert_refused(box, proc)
    if is_pyoci(box.runtime):
        assert line.count(name) == 2 and "no such file" in line, line[:300]


def test_the_full_range_of_valid_numbers_works(box):
    """Schema-valid extremes run: rlimits up to 2**64-1 (unlimited), soft limits above 2**63
    (Python's setrlimit takes only signed 64-bit), a umask beyond the permission bits, the
    uid 2**31-1 (runc's largest; pyoci takes up to 4294967294)."""
    box.config["process"]["rlimits"] = [
        {"type": "RLIMIT_CORE", "soft": 2 ** 63, "hard": 2 ** 64 - 1},
        {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024},
    ]
    box.config["process"]["user"] = {"uid": 2 ** 31 - 1, "gid": 2 ** 31 - 1, "umask": 0o1027}
    proc = box.run("sh", "-c", "cat /proc/self/limits; umask; id -u")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    core = next(line for line in lines if line.startswith("Max core file size"))
    assert core.split()[4:6] == [str(2 ** 63), "unlimited"], core
    assert lines[-2:] == ["0027", str(2 ** 31 - 1)], lines[-2:]


def test_hooks_with_a_timeout_of_34_days_run(box):
    """Was: OverflowError (poll(2) takes milliseconds in a C int) for a valid timeout."""
    for stage in ("createRuntime", "createContainer", "poststart", "poststop"):
        box.add_hook(stage, {"path": "/bin/true", "timeout": 3_000_000})
    proc = box.run("true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_nothing_left(box)


@pytest.mark.runc_divergent  # runc blocks reading the FIFO
def test_a_config_json_fifo_does_not_hang_the_runtime(box):
    """A bundle whose config.json is a FIFO: reading it would block forever."""
    os.unlink(box.bundle / "config.json")
    os.mkfifo(box.bundle / "config.json")
    proc = box.runtime("create", "--bundle", box.bundle, box.id, timeout=30)
    assert_refused(box, proc, "regular file")


@pytest.mark.runc_divergent  # runc 1.1.5 blocks opening the FIFO
def test_a_namespace_path_that_is_a_fifo_does_not_hang_the_runtime(box, tmp_path):
    """``linux.namespaces[].path`` naming a FIFO: opening it to check its type must not block."""
    fifo = tmp_path / "netns"
    os.mkfifo(fifo)
    box.set_namespace("network", str(fifo))
    box.save()
    proc = box.runtime("create", "--bundle", box.bundle, box.id, timeout=30)
    assert_refused(box, proc, "linux.namespaces")


# --- the Python API ----------------------------------------------------------------------------

API_CASES = [
    ("mounts", [1], "mounts[0]"),
    ("process.user.uid", 2 ** 40, "process.user.uid"),
    ("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": -5, "hard": -5}], "process.rlimits[0].soft"),
    ("hostname", "h" * 70000, "hostname"),
    ("org.example.extension", DEEP, None),
]


@pytest.mark.pyoci_only
@pytest.mark.parametrize("path, value, where", API_CASES, ids=[p for p, _, _ in API_CASES])
@pytest.mark.parametrize("entry", ["run", "Container.create"])
def test_the_python_api_raises_pyoci_errors(busybox_bundle, state_root, path, value, where, entry):
    from pyoci_nb.errors import ConfigError
    from pyoci_nb.runtime.container import Container, list_containers, run

    config = json.loads((busybox_bundle / "config.json").read_text())
    config["process"]["args"] = ["true"]
    set_path(config, path, value)
    write_config(busybox_bundle, config, deep=100_000 if value == DEEP else 0)
    with pytest.raises(ConfigError) as caught:
        if entry == "run":
            run(busybox_bundle, root=state_root)
        else:
            Container.create(busybox_bundle, id="api-hostile", root=state_root).delete(force=True)
    if where:
        assert caught.value.where == where, str(caught.value)
    assert list_containers(state_root) == []


@pytest.mark.pyoci_only
@pytest.mark.parametrize("args", ["echo hi", 5, [b"echo"], [1]])
def test_run_refuses_args_that_are_not_a_list_of_strings(busybox_bundle, state_root, args):
    from pyoci_nb.errors import ConfigError
    from pyoci_nb.runtime.container import list_containers, run

    with pytest.raises(ConfigError):
        run(busybox_bundle, args, root=state_root)
    assert list_containers(state_root) == []


@pytest.mark.pyoci_only
def test_an_unexpected_exception_is_one_line_not_a_traceback(tmp_path):
    """The CLI's last resort: an exception no handler expected (a bug) is one error line that
    says it is a bug and what to report; the traceback only with --debug."""
    program = ("import sys\n"
               "from pyoci_nb import cli\n"
               "def broken(args):\n"
               "    raise ZeroDivisionError('division by zero')\n"
               "cli.broken = broken\n"
               "cli.COMMANDS['state'] = ('pyoci_nb.cli:broken', 'broken')\n"
               "sys.argv[0] = 'pyoci'\n"
               "cli.main()\n")
    for debug in ([], ["--debug"]):
        proc = subprocess.run([sys.executable, "-c", program, "--root", str(tmp_path), *debug, "state", "x"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1
        if debug:  # the traceback inside a debug log line
            assert re.match(r'time=".*" level=debug msg="Traceback \(most recent call last\)', proc.stderr)
            proc.stderr = proc.stderr.splitlines()[-1]
        line = error_line(proc)
        assert "internal error in pyoci state: ZeroDivisionError: division by zero" in line
        assert "bug" in line and "report" in line


# --- the fuzzer --------------------------------------------------------------------------------

def _inline(node, document: dict, documents: dict, name: str):
    """The schema ``node`` of ``documents[name]`` with every $ref replaced by its target
    (hypothesis-jsonschema resolves only local references)."""
    if isinstance(node, list):
        return [_inline(item, document, documents, name) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target_file, _, pointer = node["$ref"].partition("#")
        target_name = target_file or name
        target = documents[target_name]
        for part in pointer.strip("/").split("/") if pointer.strip("/") else []:
            target = target[part]
        return _inline(target, documents[target_name], documents, target_name)
    return {key: _inline(value, document, documents, name) for key, value in node.items()
            if key not in ("$schema", "id", "$id")}


#: parts of a config the fuzzer replaces with schema-generated values (JSON paths)
FUZZ_TARGETS = (
    "hostname", "domainname", "annotations", "mounts", "hooks", "root",
    "process.user", "process.rlimits", "process.capabilities", "process.env", "process.cwd",
    "process.oomScoreAdj", "process.noNewPrivileges", "process.consoleSize", "process.terminal",
    "linux.namespaces", "linux.uidMappings", "linux.gidMappings", "linux.timeOffsets",
    "linux.resources", "linux.maskedPaths", "linux.readonlyPaths", "linux.devices",
    "linux.seccomp", "linux.rootfsPropagation", "linux.sysctl", "linux.personality",
)


def schema_strategy(node: dict):
    """Values valid under the (inlined) schema ``node``.  Leaves -- strings with patterns,
    bounded integers, enums -- come from hypothesis-jsonschema; objects and arrays are built
    here: its object strategy relies on hypothesis internals that hypothesis 6.170 changed
    (``'many' object has no attribute 'more'``)."""
    from hypothesis_jsonschema import from_schema

    if "allOf" in node:
        merged = {k: v for k, v in node.items() if k != "allOf"}
        for part in node["allOf"]:
            merged["properties"] = {**merged.get("properties", {}), **part.get("properties", {})}
            merged["required"] = sorted(set(merged.get("required", [])) | set(part.get("required", [])))
            merged.setdefault("type", part.get("type"))
        return schema_strategy(merged)
    for key in ("anyOf", "oneOf"):
        if key in node:
            rest = {k: v for k, v in node.items() if k != key}
            return st.one_of([schema_strategy({**rest, **alternative}) for alternative in node[key]])
    kind = node.get("type")
    if kind == "object" or "properties" in node or "patternProperties" in node:
        properties = node.get("properties", {})
        if properties:
            required = [k for k in node.get("required", []) if k in properties]
            return st.fixed_dictionaries({k: schema_strategy(properties[k]) for k in required},
                                         optional={k: schema_strategy(v) for k, v in properties.items()
                                                   if k not in required})
        for pattern, value in (node.get("patternProperties") or {}).items():
            return st.dictionaries(from_schema({"type": "string", "pattern": pattern}), schema_strategy(value),
                                   max_size=4)
        if isinstance(node.get("additionalProperties"), dict):
            return st.dictionaries(st.text(min_size=1, max_size=8), schema_strategy(node["additionalProperties"]),
                                   max_size=4)
        return st.just({})
    if kind == "array":
        items = schema_strategy(node.get("items", {}))
        low = node.get("minItems", 0)
        return st.lists(items, min_size=low, max_size=max(low, min(node.get("maxItems", 4), 4)),
                        unique_by=(lambda v: json.dumps(v, sort_keys=True)) if node.get("uniqueItems") else None)
    if kind is None and "enum" not in node and "const" not in node:
        return st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8))
    return from_schema(node)


@pytest.fixture(scope="module")
def part_strategies(runtime_spec_dir):
    """{JSON path: hypothesis strategy of schema-valid values} for ``FUZZ_TARGETS``."""
    documents = {p.name: json.loads(p.read_text()) for p in runtime_spec_dir.glob("*.json")}
    schema = _inline(documents["config-schema.json"], documents["config-schema.json"], documents,
                     "config-schema.json")
    strategies = _Parts()
    for target in FUZZ_TARGETS:
        node = schema
        for key in target.split("."):
            node = node["properties"][key]
        strategies[target] = schema_strategy(node)
    return strategies


class _Parts(dict):
    """{JSON path: strategy}, with a short repr for hypothesis's failure reports."""

    def __repr__(self) -> str:
        return f"<schema strategies for {len(self)} parts>"


_FILESYSTEMS = {line.split()[-1] for line in Path("/proc/filesystems").read_text().splitlines() if line.strip()}
_SAFE_FILESYSTEMS = {"proc", "tmpfs", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2"}
_SAFE_DESTINATION = re.compile(r"/[A-Za-z0-9_./-]{0,60}")


def make_safe(config, rootfs: str):
    """Keep the shapes, take away what could touch the host: root.path is the test's rootfs;
    the process runs ``true`` (no generated command); hooks run /bin/true; no bind mounts, no
    mounts of real filesystems (a host disk), destinations without ".."; no joined namespaces
    (paths), no sysctls, no device nodes, no cgroupsPath (the default one is the container's
    own), no rootfsPropagation (shared would reach the host), no seccomp listener socket, no
    cgroup v2 "unified" file names (they are paths)."""
    if not isinstance(config, dict):
        return config
    if isinstance(config.get("root"), dict):
        config["root"]["path"] = rootfs
    proc = config.get("process")
    if isinstance(proc, dict):
        args = proc.get("args")
        if isinstance(args, list) and all(isinstance(a, str) for a in args):
            proc["args"] = ["true"]
    hooks = config.get("hooks")
    if isinstance(hooks, dict):
        for entries in hooks.values():
            for hook in entries if isinstance(entries, list) else ():
                if isinstance(hook, dict):
                    hook["path"] = "/bin/true"
    mounts = config.get("mounts")
    for mount in mounts if isinstance(mounts, list) else ():
        if not isinstance(mount, dict):
            continue
        options = mount.get("options")
        if isinstance(options, list):
            mount["options"] = [o for o in options if o not in ("bind", "rbind")]
        kind = mount.get("type")
        if isinstance(kind, str) and (kind in ("none", "overlay") or "bind" in kind
                                      or (kind in _FILESYSTEMS and kind not in _SAFE_FILESYSTEMS)) \
                or ("type" not in mount and isinstance(options, list)):
            mount["type"] = "tmpfs"
        destination = mount.get("destination")
        if isinstance(destination, str) and ("\0" not in destination) and \
                (not _SAFE_DESTINATION.fullmatch(destination) or ".." in destination):
            mount["destination"] = "/mnt/fuzz"
    linux = config.get("linux")
    if isinstance(linux, dict):
        for ns in linux.get("namespaces") if isinstance(linux.get("namespaces"), list) else ():
            if isinstance(ns, dict):
                ns.pop("path", None)
        if isinstance(linux.get("sysctl"), dict):
            del linux["sysctl"]
        if isinstance(linux.get("devices"), list):
            linux["devices"] = [d for d in linux["devices"]
                                if not (isinstance(d, dict) and isinstance(d.get("path"), str))]
        for key in ("cgroupsPath", "rootfsPropagation"):
            if isinstance(linux.get(key), str):
                del linux[key]
        if isinstance(linux.get("seccomp"), dict):
            linux["seccomp"].pop("listenerPath", None)
        resources = linux.get("resources")
        if isinstance(resources, dict) and isinstance(resources.get("unified"), dict):
            resources["unified"] = {k: v for k, v in resources["unified"].items()
                                    if isinstance(k, str) and "/" not in k and ".." not in k}
    return config


#: hostile values the mutator puts anywhere: wrong types, limits of C integer types, long and
#: NUL-holding strings, deep nesting (``DEEP``), huge arrays
HOSTILE_VALUES = st.one_of(
    st.sampled_from([None, True, False, 0, -1, -5, 1.5, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 40, 2 ** 63,
                     2 ** 64, -(2 ** 63) - 1, 10 ** 30, "", "\0", "a\0b", "x" * 70000, "/" + "y" * 5000,
                     [], {}, [1], [None], {"": 1}, [[[[[]]]]], DEEP, list(range(20000))]),
    st.integers(),
    st.text(max_size=20),
)


def _paths(node, prefix=()):
    """Every (path of keys) to a value inside ``node``, at most 24 levels down (``DEEP`` may
    already sit somewhere in it)."""
    yield prefix
    if len(prefix) >= 24:
        return
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node[:50]):
            yield from _paths(value, prefix + (i,))


def _mutate(config: dict, data) -> dict:
    """Replace, delete or add one value at a random place of ``config``."""
    paths = [p for p in _paths(config) if p]
    path = data.draw(st.sampled_from(paths), label="where")
    parent = config
    for key in path[:-1]:  # copy the containers on the way: values like DEEP are shared
        child = parent[key]
        parent[key] = child = dict(child) if isinstance(child, dict) else list(child)
        parent = child
    action = data.draw(st.sampled_from(["replace", "replace", "delete", "add"]), label="action")
    if action == "delete":
        del parent[path[-1]]
    elif action == "add" and isinstance(parent, dict):
        parent[data.draw(st.text(max_size=12), label="new key")] = data.draw(HOSTILE_VALUES, label="new value")
    else:
        parent[path[-1]] = data.draw(HOSTILE_VALUES, label="value")
    return config


_attempts = itertools.count(1)


class Fuzzer:
    """Runs one generated config through ``run`` and checks the outcome."""

    def __init__(self, box):
        self.box = box

    def attempt(self, config) -> None:
        box, runtime = self.box, self.box.runtime
        cid = f"{box.id}-{next(_attempts)}"  # a fresh id each time: never one a failed attempt held
        text = json.dumps(config)
        if json.dumps(DEEP) in text:
            text = text.replace(json.dumps(DEEP), "[" * 100_000 + "]" * 100_000)
        (box.bundle / "config.json").write_text(text)
        try:
            proc = runtime("run", "--bundle", box.bundle, cid, timeout=60)
            assert TRACEBACK not in proc.stderr, proc.stderr[-3000:]
            # 128+N: the container's process ran and was killed by signal N (a seccomp
            # filter's SCMP_ACT_KILL, a tiny memory limit): its status, not the runtime's error
            if proc.returncode != 0 and not (proc.returncode > 128 and " level=error " not in proc.stderr):
                line = error_line(proc)
                if is_pyoci(runtime):
                    assert "internal error" not in line, line[:3000]
            found = []
            for _ in range(30):
                found = leftovers(runtime, cid, box.bundle)
                if not found:
                    break
                time.sleep(0.1)
            assert found == [], f"left behind: {found}"
        except BaseException:
            print("config:", text[:5000], file=sys.stderr)
            raise
        finally:
            runtime("delete", "--force", cid)


def _settings(examples: int):
    """A fixed budget: ``examples`` examples, derandomized (the same ones on every CI run), no
    example database; the per-run timeout of the runtime call (60 s) catches a hang."""
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])


def draw_config(data, parts, base: dict, rootfs: Path, damaged: bool) -> dict:
    """``base`` running ``true``, with one to three parts replaced by schema-valid values, and
    when ``damaged`` then hit in one to three places by ``HOSTILE_VALUES`` -- made safe to run."""
    config = json.loads(json.dumps(base))
    config["process"]["args"] = ["true"]
    config["process"]["terminal"] = False
    targets = data.draw(st.lists(st.sampled_from(FUZZ_TARGETS), min_size=0 if damaged else 1,
                                 max_size=1 if damaged else 3, unique=True), label="targets")
    for target in targets:
        set_path(config, target, data.draw(parts[target], label=target))
    if damaged:
        for _ in range(data.draw(st.integers(1, 3), label="mutations")):
            config = _mutate(config, data)
    return make_safe(config, str(rootfs.resolve()))


@pytest.mark.pyoci_only
@_settings(1000)
@given(data=st.data(), damaged=st.booleans())
def test_fuzz_preflight_and_validator_in_process(busybox_bundle, part_strategies, data, damaged):
    """Fast and many: reading config.json and pyoci's checks before anything is created
    (``load_config``, ``preflight``) raise only PyociError, and ``validate_config`` (``pyoci
    validate``) never raises, for any shape."""
    from pyoci_nb.errors import PyociError
    from pyoci_nb.runtime.preflight import load_config, preflight
    from pyoci_nb.spec.validation import validate_config

    base = json.loads((busybox_bundle / "config.json").read_text())
    config = draw_config(data, part_strategies, base, busybox_bundle / "rootfs", damaged)
    bundle = busybox_bundle / "fuzz"
    bundle.mkdir(exist_ok=True)
    write_config(bundle, config, deep=100_000)
    try:
        preflight(load_config(str(bundle)), str(busybox_bundle), rootless=False, console=False)
    except PyociError:
        pass
    text = json.dumps(config).replace(json.dumps(DEEP), json.dumps([[[[]]]]))
    validate_config(json.loads(text), for_start=True)


@pytest.mark.slow
@pytest.mark.runc_divergent  # runc 1.1.5 hangs on defaultAction SCMP_ACT_KILL, leaving zombie inits and cgroups
@_settings(100)
@given(data=st.data())
def test_fuzz_schema_valid_parts(box, part_strategies, data):
    """Real runs of configs with schema-valid parts: each one works or is a clear error, and
    nothing is left behind."""
    Fuzzer(box).attempt(draw_config(data, part_strategies, box.config, box.rootfs, damaged=False))


@pytest.mark.slow
@_settings(100)
@given(data=st.data())
def test_fuzz_damaged_configs(box, part_strategies, data):
    """Real runs of damaged configs: each one works or is a clear error, and nothing is left
    behind."""
    Fuzzer(box).attempt(draw_config(data, part_strategies, box.config, box.rootfs, damaged=True))
