"""load -> dump is JSON-equal for valid configs; invalid ones are refused naming the field."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyoci_nb.errors import ConfigError
from pyoci_nb.spec import Spec, load_spec, validate_config
from pyoci_nb.spec import jsonschema_lite

from spec_strategies import linux_configs

GOOD_LINUX = ["spec-example.json", "minimal.json", "minimal-for-start.json", "linux-netdevice.json", "linux-rdma.json"]
BAD_LINUX = {  # file -> the field the error must name
    "linux-hugepage.json": "linux.resources.hugepageLimits[0].pageSize",
    "linux-netdevice.json": "linux.netDevices.eth0.name",
    "linux-rdma.json": "linux.resources.rdma.mlx5_1.hcaHandles",
}
SETTINGS = settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", GOOD_LINUX)
def test_good_configs_round_trip(runtime_spec_dir, name):
    path = runtime_spec_dir / "test" / "config" / "good" / name
    original = json.loads(path.read_text())
    spec = load_spec(path)
    assert spec.to_dict() == original
    assert json.loads(spec.to_json()) == original
    assert load_spec(spec.to_json()) == spec
    assert validate_config(original) == []


def test_unknown_properties_are_kept_everywhere(runtime_spec_dir):
    config = json.loads((runtime_spec_dir / "test/config/good/spec-example.json").read_text())
    # spec-example.json itself carries one: linux.resources.oomScoreAdj is not a resources property
    spec = load_spec(config)
    assert spec.linux.resources.unknown_properties == {"oomScoreAdj": 100}
    config["org.example.future"] = {"nested": [1, None, "x"]}
    config["process"]["user"]["x-new"] = None
    config["linux"]["namespaces"][0]["x-flag"] = True
    spec = load_spec(config)
    assert spec.to_dict() == config
    assert spec.process.user.unknown_properties == {"x-new": None}


def test_snake_case_keys_in_a_document_are_unknown_properties():
    """Only the spec's JSON names are fields: ``no_new_privileges`` in config.json is an unknown
    property, kept as is (not a second spelling of ``noNewPrivileges``)."""
    config = {"ociVersion": "1.0.0", "root": {"path": "rootfs"},
              "process": {"cwd": "/", "no_new_privileges": True, "noNewPrivileges": False},
              "oci_version": "not the version"}
    spec = load_spec(config)
    assert spec.process.no_new_privileges is False
    assert spec.oci_version == "1.0.0"
    assert spec.to_dict() == config


@pytest.mark.parametrize("name, field", sorted(BAD_LINUX.items()))
def test_bad_linux_configs_are_refused_naming_the_field(runtime_spec_dir, name, field):
    path = runtime_spec_dir / "test" / "config" / "bad" / name
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    assert field in str(info.value)
    assert str(path) in str(info.value)
    assert [p.path for p in info.value.problems] == [field]
    assert [p.path for p in validate_config(json.loads(path.read_text()))] == [field]


def test_invalid_json_is_refused_with_line_and_column(runtime_spec_dir):
    path = runtime_spec_dir / "test/config/bad/invalid-json.json"
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    assert f"{path}:1:2" in str(info.value)


@SETTINGS
@given(linux_configs())
def test_generated_configs_round_trip(schema_validator, config):
    original = copy.deepcopy(config)
    assert list(schema_validator("config-schema.json").iter_errors(config)) == []
    assert validate_config(config) == []
    spec = Spec.model_validate(config)
    dumped = spec.to_dict()
    assert dumped == original
    assert config == original  # loading does not modify its input
    again = load_spec(json.dumps(dumped))
    assert again == spec
    assert again.to_dict() == original


def _leaf_paths(value, path=()):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaf_paths(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaf_paths(item, path + (index,))
    yield path


@SETTINGS
@given(linux_configs(), st.data())
def test_stdlib_schema_check_agrees_with_jsonschema(schema_validator, config, data):
    """Put a value of a wrong JSON type somewhere: jsonschema and the runtime's stdlib checker
    must agree on whether that breaks the schema, and on where."""
    paths = [p for p in _leaf_paths(config) if p]
    path = data.draw(st.sampled_from(paths))
    replacement = data.draw(st.sampled_from([None, "text", -1, 2 ** 70, True, [], {}, 1.5]))
    target = config
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = replacement
    official = sorted((".".join(map(str, e.absolute_path)) for e in schema_validator("config-schema.json").iter_errors(config)))
    ours = jsonschema_lite.check(config)
    assert bool(official) == bool(ours)
    for problem in ours:  # every path we report is one jsonschema reports (in our notation)
        normalised = problem.path.replace("[", ".").replace("]", "").replace('"', "")
        assert any(normalised == o or normalised.startswith(o + ".") or o.startswith(normalised)
                   for o in official), (problem, official)
