"""`pyoci validate`: every problem with its path, exit 1 when there is any."""

from __future__ import annotations

import json

import pytest

from pyoci_nb.spec.defaults import default_config

from spec_cli import pyoci


def write(path, config):
    path.write_text(json.dumps(config))
    return path


def test_valid_file(tmp_path):
    result = pyoci("validate", str(write(tmp_path / "config.json", default_config())))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{tmp_path / 'config.json'}: valid"


def test_invalid_file_lists_every_problem_text(tmp_path):
    config = default_config()
    config["process"]["capabilities"]["bounding"][2] = "CAP_FOO"
    config["mounts"][0]["destination"] = "proc"
    config["linux"]["namespaces"].append({"type": "pid"})
    result = pyoci("validate", str(write(tmp_path / "c.json", config)))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"{tmp_path / 'c.json'}: 3 problems"
    assert lines[1].strip().startswith("process.capabilities.bounding[2]: not a known capability: 'CAP_FOO'")
    assert lines[2].strip().startswith("mounts[0].destination: a mount destination must be an absolute path")
    assert lines[3].strip().startswith("linux.namespaces[5].type: duplicate namespace type 'pid'")


def test_json_format_and_for_start(tmp_path, runtime_spec_dir):
    minimal = runtime_spec_dir / "test/config/good/minimal.json"
    plain = pyoci("validate", "--format", "json", str(minimal))
    assert plain.returncode == 0
    assert json.loads(plain.stdout) == {"source": str(minimal), "ok": True, "problems": []}
    for_start = pyoci("validate", "--for-start", "--format", "json", str(minimal))
    assert for_start.returncode == 1
    report = json.loads(for_start.stdout)
    assert report["ok"] is False
    assert [p["path"] for p in report["problems"]] == ["process"]


@pytest.mark.parametrize("name", ["linux-hugepage.json", "linux-rdma.json", "invalid-json.json"])
def test_bad_spec_files(runtime_spec_dir, name):
    path = runtime_spec_dir / "test/config/bad" / name
    result = pyoci("validate", "--format", "json", str(path))
    assert result.returncode == 1
    problems = json.loads(result.stdout)["problems"]
    assert len(problems) == 1
    if name == "invalid-json.json":
        assert problems[0]["path"] == f"{path}:1:2" and "not valid JSON" in problems[0]["message"]
    else:
        assert problems[0]["path"].startswith("linux.resources.")


def test_missing_file(tmp_path):
    result = pyoci("validate", str(tmp_path / "nope.json"))
    assert result.returncode == 1
    assert "nope.json" in result.stderr and "No such file" in result.stderr


def test_bundle(tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    write(bundle / "config.json", default_config())
    missing_rootfs = pyoci("validate", "--bundle", str(bundle))
    assert missing_rootfs.returncode == 1
    assert "root.path:" in missing_rootfs.stdout and "does not exist" in missing_rootfs.stdout
    (bundle / "rootfs").mkdir()
    ok = pyoci("validate", "--bundle", str(bundle))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    in_cwd = pyoci("validate", cwd=bundle)  # default: the current directory
    assert in_cwd.returncode == 0, in_cwd.stdout + in_cwd.stderr
    config = default_config()
    config["process"]["cwd"] = "home"
    write(bundle / "config.json", config)
    bad = pyoci("validate", "--bundle", str(bundle), "--format", "json")
    assert bad.returncode == 1
    assert [p["path"] for p in json.loads(bad.stdout)["problems"]] == ["process.cwd"]


def test_bundle_and_file_together_is_an_error(tmp_path):
    result = pyoci("validate", "--bundle", str(tmp_path), str(tmp_path / "config.json"))
    assert result.returncode == 1
    assert "either --bundle or a FILE" in result.stderr
