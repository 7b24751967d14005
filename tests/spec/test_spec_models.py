"""The pydantic models: names, descriptions, assignment checks, error paths, save, diff, reprs."""

from __future__ import annotations

import json
import os
import sys

import pytest
from pydantic import ValidationError

from pyoci_nb.errors import ConfigError
from pyoci_nb.spec import (ALL_MODELS, Capabilities, Features, Linux, Namespace, POSIXRlimit, Process, Rlimit,
                           Spec, SpecModel, State, default_spec, load_spec, problems_from_validation_error)
from pyoci_nb.spec.defaults import default_config


def test_every_model_and_field_is_documented():
    assert len(ALL_MODELS) > 40
    for name, model in ALL_MODELS.items():
        assert issubclass(model, SpecModel)
        assert model.__doc__ and len(model.__doc__) > 30, name
        for field_name, field in model.model_fields.items():
            assert field.description, f"{name}.{field_name}"
            assert field.alias, f"{name}.{field_name}"


@pytest.mark.parametrize("model, attribute, alias", [
    (Process, "no_new_privileges", "noNewPrivileges"), (Process, "exec_cpu_affinity", "execCPUAffinity"),
    (Linux, "uid_mappings", "uidMappings"), (Spec, "oci_version", "ociVersion"),
    (ALL_MODELS["IDMapping"], "container_id", "containerID"), (ALL_MODELS["Memory"], "kernel_tcp", "kernelTCP"),
    (ALL_MODELS["Memory"], "disable_oom_killer", "disableOOMKiller"), (ALL_MODELS["BlockIO"], "block_io", None),
    (ALL_MODELS["Resources"], "block_io", "blockIO"), (ALL_MODELS["IOPriority"], "class_", "class"),
    (ALL_MODELS["BlockIO"], "throttle_read_iops_device", "throttleReadIOPSDevice"),
    (ALL_MODELS["Network"], "class_id", "classID"), (ALL_MODELS["IntelRdt"], "clos_id", "closID"),
])
def test_json_names_are_the_spec_camel_case(model, attribute, alias):
    if alias is None:
        assert attribute not in model.model_fields
    else:
        assert model.model_fields[attribute].alias == alias


def test_every_schema_property_has_a_field(runtime_spec_dir):
    """Each property the official schema defines for config.json, process and linux is a model field."""
    from pyoci_nb.spec.jsonschema_lite import _load

    config = _load("config-schema.json")
    linux = _load("config-linux.json")["linux"]
    expectations = [
        (Spec, set(config["properties"]) - {"solaris", "windows", "vm", "zos", "freebsd"}),
        (Process, set(config["properties"]["process"]["properties"])),
        (Linux, set(linux["properties"])),
        (ALL_MODELS["Resources"], set(linux["properties"]["resources"]["properties"])),
        (ALL_MODELS["Seccomp"], set(linux["properties"]["seccomp"]["properties"])),
        (ALL_MODELS["Memory"], set(linux["properties"]["resources"]["properties"]["memory"]["properties"])),
        (ALL_MODELS["CPU"], set(linux["properties"]["resources"]["properties"]["cpu"]["properties"])),
        (ALL_MODELS["BlockIO"], set(linux["properties"]["resources"]["properties"]["blockIO"]["properties"])),
    ]
    for model, properties in expectations:
        aliases = {field.alias for field in model.model_fields.values()}
        assert properties - aliases == set(), model.__name__


def test_snake_case_construction_and_camel_case_output():
    process = Process(cwd="/", args=["sh"], no_new_privileges=True,
                      capabilities=Capabilities(bounding=["CAP_KILL"]), rlimits=[Rlimit(type="RLIMIT_NOFILE", soft=1, hard=2)])
    assert process.to_dict() == {"cwd": "/", "args": ["sh"], "noNewPrivileges": True,
                                 "capabilities": {"bounding": ["CAP_KILL"]},
                                 "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 2, "soft": 1}]}
    assert Rlimit is POSIXRlimit


def test_assignment_is_validated_with_the_same_rules():
    spec = default_spec()
    spec.process.cwd = "/srv"
    spec.process.terminal = False
    assert spec.to_dict()["process"]["cwd"] == "/srv"
    with pytest.raises(ValidationError) as info:
        spec.process.cwd = "srv"
    [problem] = problems_from_validation_error(info.value, base="process")
    assert problem.path == "process.cwd" and "absolute path" in problem.message and "'srv'" in problem.message
    with pytest.raises(ValidationError):
        spec.process.capabilities.bounding = ["CAP_KILL", "CAP_NOPE"]
    with pytest.raises(ValidationError):
        spec.process.terminal = "yes"  # strict: JSON booleans only


def test_setting_a_field_to_none_removes_it():
    spec = default_spec()
    spec.hostname = None
    assert "hostname" not in spec.to_dict()


def test_pydantic_errors_become_json_paths():
    with pytest.raises(ValidationError) as info:
        Spec(oci_version="1.0.0", process={"cwd": "/", "user": {"uid": "0"},
                                           "capabilities": {"bounding": ["CAP_KILL", "CAP_FOO"]},
                                           "rlimits": [{"type": "RLIMIT_CPU", "soft": 5, "hard": 1}]},
             linux={"namespaces": [{"type": "pid"}, {"type": "netns"}], "sysctl": {"net.x": 1}})
    problems = {p.path: p for p in problems_from_validation_error(info.value)}
    assert set(problems) == {"process.user.uid", "process.capabilities.bounding[1]", "process.rlimits[0]",
                             "linux.namespaces[1].type", 'linux.sysctl["net.x"]'}
    assert problems["process.user.uid"].value == "0" and "'0'" in problems["process.user.uid"].message
    assert "not a known capability: 'CAP_FOO'" in problems["process.capabilities.bounding[1]"].message
    assert "above the hard limit" in problems["process.rlimits[0]"].message
    assert "not a known namespace type: 'netns'" in problems["linux.namespaces[1].type"].message


def test_model_validate_raises_config_error_listing_everything():
    config = default_config()
    config["process"]["user"]["uid"] = "root"
    config["linux"]["namespaces"].append({"type": "pid"})
    with pytest.raises(ConfigError) as info:
        Spec.model_validate(config)
    assert [p.path for p in info.value.problems] == ["process.user.uid", "linux.namespaces[5].type"]
    assert "process.user.uid: must be an integer, not a string ('root')" in str(info.value)


def test_load_spec_sources(tmp_path):
    config = default_config()
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert load_spec(tmp_path).to_dict() == config
    assert load_spec(tmp_path / "config.json").to_dict() == config
    assert load_spec(str(tmp_path / "config.json")).to_dict() == config
    assert load_spec(json.dumps(config)).to_dict() == config
    assert load_spec(json.dumps(config).encode()).to_dict() == config
    with pytest.raises(ConfigError) as info:
        load_spec(tmp_path / "missing.json")
    assert "missing.json" in str(info.value) and "No such file" in str(info.value)


def test_save_is_atomic_and_runc_formatted(tmp_path):
    spec = default_spec()
    spec.hostname = "saved"
    target = spec.save(tmp_path)
    assert target == tmp_path / "config.json"
    text = target.read_text()
    assert text.startswith('{\n\t"ociVersion"')
    assert load_spec(target) == spec
    assert sorted(os.listdir(tmp_path)) == ["config.json"]  # no temporary file left


def test_failed_save_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    default_spec().save(tmp_path)
    before = (tmp_path / "config.json").read_bytes()
    spec = default_spec()
    spec.hostname = "new"

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        spec.save(tmp_path / "config.json")
    assert (tmp_path / "config.json").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["config.json"]


def test_diff_against_default_and_between_specs():
    spec = default_spec()
    assert not spec.diff() and str(spec.diff()) == "no differences"
    spec.process.args = ["sleep", "10"]
    spec.process.capabilities.bounding = ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
    spec.linux.namespaces = [Namespace(type=t) for t in ("pid", "ipc", "uts", "mount", "cgroup")]
    spec.hostname = None
    spec.annotations = {"a": "b"}
    diff = spec.diff()
    as_tuples = [(c.path, c.kind, c.old, c.new) for c in diff]
    assert as_tuples == [
        ("process.args[0]", "changed", "sh", "sleep"),
        ("process.args[1]", "added", None, "10"),
        ("process.capabilities.bounding[0]", "removed", "CAP_AUDIT_WRITE", None),
        ("hostname", "removed", "runc", None),
        ("linux.namespaces[1]", "removed", {"type": "network"}, None),
        ("linux.namespaces[4]", "added", None, {"type": "cgroup"}),
        ("annotations", "added", None, {"a": "b"}),
    ]
    text = str(diff)
    assert text.splitlines()[0] == "3 added, 3 removed, 1 changed"
    assert '~ process.args[0]: "sh" -> "sleep"' in text
    assert '- hostname: "runc"' in text
    assert '+ annotations: {"a": "b"}' in text
    back = default_spec().diff(spec)
    assert {(c.path, c.kind) for c in back} >= {("hostname", "added"), ("annotations", "removed")}
    assert not spec.diff(spec.to_dict())


def test_reprs_never_raise(monkeypatch):
    """Without pyoci_nb.notebook.reprs (or when it fails) the HTML repr is escaped plain text."""
    import builtins

    real_import = builtins.__import__

    def failing_import(name, *args, **kwargs):
        if name == "pyoci_nb.notebook.reprs":
            raise ImportError("simulated missing module")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", failing_import)
    spec = default_spec()
    spec.hostname = "<b>x</b>"
    html = spec._repr_html_()
    assert html.startswith("<pre>") and "&lt;b&gt;x&lt;/b&gt;" in html
    report = spec.check()
    assert report._repr_html_() == "<pre>config: valid</pre>"
    assert "<pre>" in spec.diff()._repr_html_()
    assert repr(spec).startswith("Spec(oci_version='1.0.2-dev'")  # the normal pydantic repr

    class Printer:
        def __init__(self):
            self.out = []

        def text(self, value):
            self.out.append(value)

    printer = Printer()
    spec.process._repr_pretty_(printer, False)
    assert printer.out and "cwd" in printer.out[0]


def test_check_reports_rules(tmp_path):
    spec = default_spec()
    assert spec.check().ok
    spec.linux.namespaces = [Namespace(type="pid"), Namespace(type="pid")]
    report = spec.check(for_start=True)
    assert not report.ok
    assert [p.path for p in report] == ["hostname", "linux.namespaces[1].type"]


def test_state_and_features(runtime_spec_dir):
    state = State.model_validate({"ociVersion": "1.3.0", "id": "c1", "status": "running", "pid": 42,
                                  "bundle": "/b", "annotations": {"k": "v"}})
    assert state.status == "running" and state.to_dict()["pid"] == 42
    with pytest.raises(ConfigError) as info:
        State.model_validate({"ociVersion": "1.3.0", "id": "c1", "status": "paused", "bundle": "/b"})
    assert "status" in str(info.value) and "paused" in str(info.value)
    features_json = json.loads((runtime_spec_dir / "runc-features.json").read_text())
    features = Features.model_validate(features_json)
    assert features.to_dict() == features_json
    assert features.linux.seccomp.enabled is True and "CAP_BPF" in features.linux.capabilities
    with pytest.raises(ConfigError) as info:
        Features.model_validate({"ociVersionMin": "1.0.0"})
    assert "ociVersionMax" in str(info.value)


def test_models_module_is_importable_lazily():
    import pyoci_nb

    assert pyoci_nb.Spec is Spec and pyoci_nb.default_spec is default_spec
    assert "pyoci_nb.spec.models" in sys.modules
