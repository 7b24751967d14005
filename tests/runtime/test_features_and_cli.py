"""`pyoci features` (honest and schema-valid), `--version`, and the CLI fast path's imports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from runtime_helpers import REPO, pyoci


def test_features_is_valid_and_matches_the_implementation(runtime_spec_dir, tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    proc = pyoci("features", root=tmp_path)
    assert proc.returncode == 0, proc.stderr
    features = json.loads(proc.stdout)
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    registry = Registry().with_resources(
        (path.name, Resource.from_contents(json.loads(path.read_text()), default_specification=DRAFT4))
        for path in runtime_spec_dir.glob("*.json") if not path.name.startswith("runc-"))
    schema = json.loads((runtime_spec_dir / "features-schema.json").read_text())
    jsonschema.Draft4Validator(schema, registry=registry).validate(features)
    # a wrong type is caught: the check is real
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(schema, registry=registry).validate(dict(features, hooks="prestart"))
    # every mount option advertised is one the mount code understands
    from pyoci_nb.runtime.mounts import MountOptions

    for option in features["mountOptions"]:
        parsed = MountOptions([option])
        assert not parsed.data, f"{option} would be passed through as fs data, not handled"
    # the shape of runc's features, and no feature pyoci does not have
    runc = json.loads((runtime_spec_dir / "runc-features.json").read_text())
    assert set(features["hooks"]) == set(runc["hooks"])
    assert features["linux"]["cgroup"]["systemd"] is False
    assert features["linux"]["apparmor"] == {"enabled": False}
    assert "time" in features["linux"]["namespaces"]


def test_version_is_runc_style(tmp_path):
    lines = pyoci("--version", root=tmp_path).stdout.splitlines()
    assert lines[0].startswith("pyoci version ") and lines[1] == "spec: 1.3.0"


def test_lifecycle_commands_import_only_the_standard_library(tmp_path):
    code = ("import sys\n"
            "from pyoci_nb.cli import main\n"
            f"for argv in (['state', 'x'], ['delete', '--force', 'x'], ['list']):\n"
            f"    main(['--root', {str(tmp_path)!r}] + argv)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('pydantic', 'ipywidgets', 'pyroute2', 'IPython', 'jsonschema')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr
