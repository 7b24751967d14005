"""`pyoci spec` / default_spec(): equal to what runc writes, and valid per the official schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pyoci_nb.spec.defaults import default_config

from spec_cli import REPO, pyoci


@pytest.mark.parametrize("flags, golden", [([], "runc-spec.json"), (["--rootless"], "runc-spec-rootless.json")])
def test_pyoci_spec_writes_runc_config_and_refuses_to_overwrite(tmp_path, runtime_spec_dir, flags, golden):
    first = pyoci("spec", *flags, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    written = (tmp_path / "config.json").read_text()
    expected = json.loads((runtime_spec_dir / golden).read_text())
    if flags:  # runc maps container root to the caller's euid/egid; the golden file was made as root
        for key, host_id in (("uidMappings", os.geteuid()), ("gidMappings", os.getegid())):
            expected["linux"][key][0]["hostID"] = host_id
    assert json.loads(written) == expected
    assert written.startswith('{\n\t"ociVersion"')  # tab indentation, like runc

    second = pyoci("spec", *flags, cwd=tmp_path)
    assert second.returncode != 0
    assert "config.json exists" in second.stderr
    assert "Remove it first" in second.stderr
    assert (tmp_path / "config.json").read_text() == written  # untouched


def test_pyoci_spec_bundle_flag(tmp_path, runtime_spec_dir):
    bundle = tmp_path / "b"
    missing = pyoci("spec", "--bundle", str(bundle))
    assert missing.returncode == 1
    assert str(bundle) in missing.stderr and "does not exist" in missing.stderr
    bundle.mkdir()
    result = pyoci("spec", "--bundle", str(bundle))
    assert result.returncode == 0, result.stderr
    assert json.loads((bundle / "config.json").read_text()) == json.loads((runtime_spec_dir / "runc-spec.json").read_text())


def test_default_config_is_a_fresh_copy():
    first = default_config()
    first["process"]["args"].append("changed")
    first["mounts"].clear()
    assert default_config()["process"]["args"] == ["sh"]
    assert len(default_config()["mounts"]) == 7


def test_default_spec_models_are_json_equal_to_runc(runtime_spec_dir):
    from pyoci_nb.spec import default_spec

    assert default_spec().to_dict() == json.loads((runtime_spec_dir / "runc-spec.json").read_text())
    rootless = default_spec(rootless=True).to_dict()
    assert {ns["type"] for ns in rootless["linux"]["namespaces"]} == {"pid", "ipc", "uts", "mount", "user"}
    assert rootless["linux"]["uidMappings"] == [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    assert "resources" not in rootless["linux"]


@pytest.mark.parametrize("rootless", [False, True])
def test_default_configs_validate_against_official_schema(schema_validator, rootless):
    from pyoci_nb.spec import default_spec

    validator = schema_validator("config-schema.json")
    assert list(validator.iter_errors(default_config(rootless))) == []
    assert list(validator.iter_errors(default_spec(rootless).to_dict())) == []


@pytest.mark.parametrize("argv", [["--version"], ["spec"], ["spec", "--rootless"]])
def test_fast_commands_do_not_import_pydantic(tmp_path, argv):
    """`pyoci --version` and `pyoci spec` stay standard-library only (python -X importtime)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "pyoci_nb", *argv], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")]
    assert "pyoci_nb.cli" in imported  # the measurement really saw our imports
    heavy = [name for name in imported if name.split(".")[0] in ("pydantic", "pydantic_core", "ipywidgets", "pyroute2")]
    assert heavy == []


def test_runtime_modules_import_without_pydantic():
    """validate_config, Problem and the capability table are usable without pydantic."""
    code = ("import sys\n"
            "from pyoci_nb.spec.validation import validate_config\n"
            "from pyoci_nb.spec.problems import Problem, ValidationReport\n"
            "from pyoci_nb.spec.capabilities import ALL_CAPABILITIES\n"
            "from pyoci_nb.spec.defaults import default_config\n"
            "from pyoci_nb.spec import validate_config as again\n"
            "assert validate_config(default_config()) == []\n"
            "print(sorted(m for m in sys.modules if m.startswith('pydantic')))\n")
    result = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(REPO)),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_shipped_schemas_are_the_official_ones(runtime_spec_dir):
    """The schemas the stdlib checker uses (pyoci_nb/spec/schema) are byte-identical to the
    runtime-spec ones in shared/."""
    from pyoci_nb.spec.jsonschema_lite import SCHEMA_DIR

    shipped = sorted(p.name for p in SCHEMA_DIR.glob("*.json"))
    assert "config-schema.json" in shipped and "defs-linux.json" in shipped
    for name in shipped:
        assert (SCHEMA_DIR / name).read_bytes() == (runtime_spec_dir / name).read_bytes(), name
